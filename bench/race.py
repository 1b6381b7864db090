#!/usr/bin/env python3
"""bench/race.py — turbo against PyTorch (eager and torch.compile) on the same UNet, side by side.

One forward + backward of turbo's default UNet (B = 1, 16 frames of 16x16x4 latents, 8 text
tokens) per iteration, in three long-lived worker processes: turbo (build/bench/bench_unet
--serve), PyTorch eager and PyTorch torch.compile (bench/torch_unet.py --serve). The workers run
in rounds, one at a time (the other two wait on a read, taking no CPU), in a rotating order
(A B C, B C A, C A B, ...), so that a busy spell of the shared machine falls on all three alike.
For each thread count it prints the median and best time per iteration, turbo's speed-up over
each PyTorch mode (median against median) with a 95% interval from a bootstrap over the rounds
(a round's iterations of all three are resampled together), the peak resident memory of each
process (VmHWM), the time per op group of one profiled iteration (turbo: TURBO_OPS_PROFILE's
table; PyTorch: torch.profiler's self CPU time), and how much of the CPU other processes used
while it ran (from /proc/stat, less the workers' own time).

  python3 bench/race.py [--threads "1 2"] [--rounds 12] [--per-round 4] [--no-compile]
Exit status: 0 when the race ran, 1 when a worker failed, 2 on bad options.
"""
import argparse
import os
import random
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# turbo's op names (kernels/ops_list.h) by group; the same groups as torch_unet.OP_GROUPS.
# turbo fuses SiLU into group norm (groupnorm_silu_*): that SiLU is in "norm" here, PyTorch's in
# "elementwise".
TURBO_GROUPS = [
    ("conv", ("conv2d", "tconv", "conv3d")),
    ("linear/matmul", ("linear", "matmul")),
    ("attention", ("attention", "softmax")),
    ("norm", ("groupnorm", "layernorm")),
    ("elementwise", ("geglu", "silu", "gelu", "add", "axpy", "bias_add", "scale", "mul",
                     "timestep_embedding")),
    ("copy/layout", ("permute", "concat", "upsample", "repeat")),
]
GROUP_ORDER = ["conv", "linear/matmul", "attention", "norm", "elementwise", "copy/layout", "other"]


def turbo_group(op):
    for g, subs in TURBO_GROUPS:
        if any(op.startswith(s) for s in subs):
            return g
    return "other"


class Worker:
    def __init__(self, name, argv, env, errdir):
        self.name, self.argv = name, argv
        self.errpath = os.path.join(errdir, "race-" + name.replace(" ", "_") + ".err")
        self.err = open(self.errpath, "w")
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                  stderr=self.err, text=True, bufsize=1, cwd=ROOT)
        self.times, self.by_round, self.groups, self.mem = [], {}, {}, {}

    def lines_until_done(self, what):
        out = []
        for line in self.p.stdout:
            line = line.strip()
            if line == "done" or line == what:
                return out
            if line.startswith("error"):
                raise RuntimeError(f"{self.name}: {line}")
            out.append(line)
        self.err.flush()
        with open(self.errpath) as f:
            tail = f.read()[-2000:]
        raise RuntimeError(f"{self.name} ({' '.join(self.argv)}) ended early, exit "
                           f"{self.p.wait()}; its stderr ({self.errpath}) ends:\n{tail}")

    def ready(self):
        self.lines_until_done("ready")

    def cmd(self, c):
        self.p.stdin.write(c + "\n")
        self.p.stdin.flush()
        return self.lines_until_done("done")

    def run(self, rnd, k):
        ms = [float(l.split()[1]) for l in self.cmd(f"run {k}") if l.startswith("ms ")]
        if len(ms) != k:
            raise RuntimeError(f"{self.name}: asked for {k} iterations, got {len(ms)}")
        self.times += ms
        self.by_round[rnd] = ms

    def profile(self):
        groups = {}
        for l in self.cmd("prof"):
            f = l.split()
            if f[0] == "group":  # torch worker: "group NAME MS"
                groups[" ".join(f[1:-1])] = float(f[-1])
            elif len(f) == 5 and f[4].endswith("%") and f[1].isdigit():  # turbo's op table
                g = turbo_group(f[0])
                groups[g] = groups.get(g, 0.0) + float(f[2])
        self.groups = groups

    def memory(self):
        for l in self.cmd("mem"):
            f = l.split()
            if f and f[0] == "rss_kib":
                self.mem = {"rss": int(f[1]) / 1024, "hwm": int(f[3]) / 1024}

    def cpu_seconds(self):
        try:
            with open(f"/proc/{self.p.pid}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
            return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            return 0.0

    def quit(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.err.close()


def cpu_busy():
    """(busy, total) seconds of all CPUs from /proc/stat"""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    tck = os.sysconf("SC_CLK_TCK")
    return (sum(v) - idle) / tck, sum(v) / tck


def median(v):
    return statistics.median(v)


def bootstrap_ratio(w_other, w_turbo, rounds, n=2000, seed=1):
    """95% interval of median(other) / median(turbo), rounds resampled together"""
    rng = random.Random(seed)
    rs, out = list(rounds), []
    for _ in range(n):
        pick = [rng.choice(rs) for _ in rs]
        a = [x for r in pick for x in w_other.by_round[r]]
        b = [x for r in pick for x in w_turbo.by_round[r]]
        out.append(median(a) / median(b))
    out.sort()
    return out[int(0.025 * n)], out[int(0.975 * n) - 1]


def race(threads, a, flop):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TURBO_NO_TTY="1")
    env.pop("TURBO_OPS_PROFILE", None)
    py = [sys.executable, os.path.join(HERE, "torch_unet.py"), "--serve", str(threads)]
    specs = [("turbo", [a.turbo, "--serve", str(threads)]), ("torch eager", py)]
    if not a.no_compile:
        specs.append(("torch compile", py + ["--compile"]))
    workers = []
    try:
        for name, argv in specs:  # one at a time: torch.compile's compilation gets the cores
            t0 = time.time()
            workers.append(Worker(name, argv, env, a.errdir))
            workers[-1].ready()
            print(f"  {name}: ready in {time.time() - t0:.1f} s", file=sys.stderr, flush=True)
        load0 = os.getloadavg()[0]
        b0, t0 = cpu_busy()
        w0 = sum(w.cpu_seconds() for w in workers)
        for r in range(a.rounds):
            order = workers[r % len(workers):] + workers[:r % len(workers)]
            for w in order:
                w.run(r, a.per_round)
                time.sleep(0.05)  # the OpenMP threads of the last worker stop spinning
        b1, t1 = cpu_busy()
        w1 = sum(w.cpu_seconds() for w in workers)
        load1 = os.getloadavg()[0]
        ncpu = os.cpu_count() or 1
        others = max(0.0, (b1 - b0) - (w1 - w0)) / max(1e-9, (t1 - t0) / ncpu)
        for w in workers:
            w.profile()
            w.memory()
    finally:
        for w in workers:
            w.quit()
    turbo = workers[0]
    print(f"\n{threads} thread{'s' if threads > 1 else ''}: {a.rounds} rounds x {a.per_round} "
          f"iterations each, interleaved; load average {load0:.2f} -> {load1:.2f}, other "
          f"processes used {others:.2f} of {ncpu} cores meanwhile")
    print(f"  {'':<14} {'median ms':>10} {'best ms':>9} {'GFLOP/s':>8} {'turbo speed-up [95% CI]':>26}"
          f" {'peak RSS MiB':>13}")
    for w in workers:
        m = median(w.times)
        if w is turbo:
            sp = "1.00 (itself)"
        else:
            lo, hi = bootstrap_ratio(w, turbo, range(a.rounds))
            sp = f"{m / median(turbo.times):.2f} [{lo:.2f}, {hi:.2f}]"
        g = f"{flop / m * 1e-6:.1f}" if flop else "-"
        print(f"  {w.name:<14} {m:>10.1f} {min(w.times):>9.1f} {g:>8} {sp:>26} "
              f"{w.mem.get('hwm', float('nan')):>13.1f}")
    print(f"  time per op group, one profiled iteration: ms (share). turbo: time inside op_ calls, "
          f"SiLU fused into group norm;\n  torch: torch.profiler's self CPU time (the profiler's "
          f"own overhead included, so totals exceed the median)")
    print(f"  {'group':<14}" + "".join(f" {w.name:>17}" for w in workers))
    tot = [max(1e-9, sum(w.groups.values())) for w in workers]
    for g in GROUP_ORDER:
        if not any(g in w.groups for w in workers):
            continue
        print(f"  {g:<14}" + "".join(f" {w.groups.get(g, 0.0):>9.1f} ({100 * w.groups.get(g, 0.0) / t:>4.1f}%)"
                                     for w, t in zip(workers, tot)))
    print(f"  {'total':<14}" + "".join(f" {t:>9.1f}        " for t in tot))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1 2", help='thread counts, e.g. "1 2"')
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--per-round", type=int, default=4, help="iterations per worker per round")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--errdir", default=os.path.join(os.environ.get("BUILD", "build"), "bench-out"),
                    help="where the workers' stderr goes")
    ap.add_argument("--turbo", default=os.path.join(os.environ.get("BUILD", "build"), "bench",
                                                    "bench_unet"))
    a = ap.parse_args()
    try:
        counts = [int(t) for t in a.threads.replace(",", " ").split()]
    except ValueError:
        print(f"race.py: --threads '{a.threads}' is not a list of numbers", file=sys.stderr)
        return 2
    if not counts or min(counts) < 1 or a.rounds < 2 or a.per_round < 1:
        print("race.py: need thread counts >= 1, --rounds >= 2, --per-round >= 1", file=sys.stderr)
        return 2
    if not os.path.isabs(a.turbo):
        a.turbo = os.path.join(ROOT, a.turbo)
    if not os.path.isabs(a.errdir):
        a.errdir = os.path.join(ROOT, a.errdir)
    os.makedirs(a.errdir, exist_ok=True)
    if not os.access(a.turbo, os.X_OK):
        print(f"race.py: {a.turbo} is not built (make benches)", file=sys.stderr)
        return 2
    flop = None
    out = subprocess.run([a.turbo], env=dict(os.environ, TURBO_BENCH_THREADS="0"),
                         capture_output=True, text=True, cwd=ROOT)
    for tok in out.stdout.split(","):  # "... 24.57 GFLOP per forward+backward"
        if "GFLOP per forward+backward" in tok:
            flop = float(tok.split()[0]) * 1e9
    print(f"race: turbo vs PyTorch, default UNet fwd+bwd, B=1, 16 frames of 16x16x4, "
          f"{flop * 1e-9 if flop else float('nan'):.2f} GFLOP per iteration")
    try:
        for t in counts:
            race(t, a, flop)
    except RuntimeError as e:
        print(f"race.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
