#!/usr/bin/env python3
"""bench/torch_unet.py — turbo's default UNet (kernels/nn/unet.c, unet_config_default) as a
PyTorch module, for the side-by-side benchmark (bench/race.py).

The module is built from the same configuration by the same rules as unet_create, and its
state_dict names are turbo's parameter names, so turbo's weights load into it unchanged.
Layouts: the latent is (B, T, C, H, W) as in turbo; spatial layers run on (B·T, C, H, W), the
temporal conv on (B, C, T, H, W) (Conv3d of kernel (3, 1, 1)), the transformers on token rows.
Each op is the one a PyTorch user would write (nn.Conv2d, nn.Conv3d, F.group_norm,
F.scaled_dot_product_attention, F.gelu), so the race measures PyTorch as it is used.

  python3 bench/torch_unet.py --check DUMP     loads `build/bench/bench_unet --dump DUMP`'s
      weights, runs the same forward + backward, prints the max abs / rel error of the output,
      the input gradient and every parameter gradient; exit 1 when they disagree beyond
      --tol (relative to the tensor's largest value)
  python3 bench/torch_unet.py --serve THREADS [--compile]   a race worker with the protocol of
      bench_unet --serve ("run K", "prof", "mem", "quit"; "ready" / "done" lines)
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- configuration: unet_config_default() and the constants of kernels/nn/unet.c ----------
DEFAULT_CONFIG = dict(in_ch=4, out_ch=4, model_ch=48, n_levels=3, ch_mult=(1, 2, 2), n_res=1,
                      attn_levels=0x6, head_ch=24, text_dim=128, max_frames=16, groups=32)
GN_EPS, TGN_EPS, LN_EPS, FF_MULT = 1e-5, 1e-6, 1e-5, 4
# the benchmark's input (bench_unet.c): B = 1, 16 frames of 16x16x4 latents, 8 text tokens
BENCH_B, BENCH_T, BENCH_H, BENCH_W, BENCH_L = 1, 16, 16, 16, 8


def groups_for(want, c):
    g = min(want, c)
    while c % g:
        g -= 1
    return g


class Dict(nn.ModuleDict):
    """A ModuleDict that takes integer keys (state_dict names such as in_layers.2.weight)."""

    def __init__(self, **kw):
        super().__init__({k.lstrip("_"): v for k, v in kw.items()})


def attention(q, k, v, heads):
    """q (G, Nq, C), k, v (G, Nk, C) → (G, Nq, C); head h is channels [h·d, (h+1)·d)."""
    G, Nq, C = q.shape
    d = C // heads
    q = q.view(G, Nq, heads, d).transpose(1, 2)
    k = k.view(G, k.shape[1], heads, d).transpose(1, 2)
    v = v.view(G, v.shape[1], heads, d).transpose(1, 2)
    o = F.scaled_dot_product_attention(q, k, v)
    return o.transpose(1, 2).reshape(G, Nq, C)


class ResBlock(nn.Module):
    def __init__(self, ci, co, E, groups):
        super().__init__()
        self.gi, self.go = groups_for(groups, ci), groups_for(groups, co)
        self.in_layers = Dict(_0=nn.GroupNorm(self.gi, ci, GN_EPS), _2=nn.Conv2d(ci, co, 3, 1, 1))
        self.emb_layers = Dict(_1=nn.Linear(E, co))
        self.out_layers = Dict(_0=nn.GroupNorm(self.go, co, GN_EPS), _3=nn.Conv2d(co, co, 3, 1, 1))
        self.skip_connection = nn.Conv2d(ci, co, 1) if ci != co else None
        conv3 = lambda: nn.Conv3d(co, co, (3, 1, 1), padding=(1, 0, 0))
        self.temporal_conv = Dict(conv1=Dict(_0=nn.GroupNorm(self.go, co, GN_EPS), _2=conv3()),
                                  conv2=Dict(_0=nn.GroupNorm(self.go, co, GN_EPS), _3=conv3()))

    def forward(self, x, semb, B, T):
        """x (B·T, ci, H, W), semb = SiLU(emb) (B, E) → (B·T, co, H, W)"""
        h = self.in_layers["2"](F.silu(self.in_layers["0"](x)))
        N, co, H, W = h.shape
        e = self.emb_layers["1"](semb)
        h = (h.view(B, T, co, H, W) + e[:, None, :, None, None]).view(N, co, H, W)
        h = self.out_layers["3"](F.silu(self.out_layers["0"](h)))
        h = (self.skip_connection(x) if self.skip_connection is not None else x) + h
        # temporal sub-block on (B, C, T, H, W): group norm statistics over (C/G, T, H, W)
        t = h.view(B, T, co, H, W).permute(0, 2, 1, 3, 4)
        c1, c2 = self.temporal_conv["conv1"], self.temporal_conv["conv2"]
        t = c1["2"](F.silu(c1["0"](t)))
        t = c2["3"](F.silu(c2["0"](t)))
        return h + t.permute(0, 2, 1, 3, 4).reshape(N, co, H, W)


class Attn(nn.Module):
    def __init__(self, C, D):
        super().__init__()
        self.to_q = nn.Linear(C, C, bias=False)
        self.to_k = nn.Linear(D, C, bias=False)
        self.to_v = nn.Linear(D, C, bias=False)
        self.to_out = Dict(_0=nn.Linear(C, C))


class FeedForward(nn.Module):
    def __init__(self, C):
        super().__init__()
        F_ = FF_MULT * C
        self.net = Dict(_0=Dict(proj=nn.Linear(C, 2 * F_)), _2=nn.Linear(F_, C))

    def forward(self, x):
        a, gate = self.net["0"]["proj"](x).chunk(2, dim=-1)
        return self.net["2"](a * F.gelu(gate))


class Block(nn.Module):
    def __init__(self, C, D, cross):
        super().__init__()
        self.norm1, self.attn1 = nn.LayerNorm(C, LN_EPS), Attn(C, C)
        if cross:
            self.norm2, self.attn2 = nn.LayerNorm(C, LN_EPS), Attn(C, D)
        self.norm3, self.ff = nn.LayerNorm(C, LN_EPS), FeedForward(C)


class SpatialTransformer(nn.Module):
    def __init__(self, C, D, heads, groups):
        super().__init__()
        self.heads, self.g = heads, groups_for(groups, C)
        self.norm = nn.GroupNorm(self.g, C, TGN_EPS)
        self.proj_in = nn.Linear(C, C)
        self.transformer_blocks = Dict(_0=Block(C, D, True))
        self.proj_out = nn.Linear(C, C)

    def forward(self, x, ctx, B, T):
        """x (B·T, C, H, W), ctx (B, L, D)"""
        N, C, H, W = x.shape
        tb = self.transformer_blocks["0"]
        h = self.norm(x).view(N, C, H * W).transpose(1, 2)
        h = self.proj_in(h)
        a1 = tb.attn1
        n = tb.norm1(h)
        h = h + a1.to_out["0"](attention(a1.to_q(n), a1.to_k(n), a1.to_v(n), self.heads))
        a2 = tb.attn2
        n = tb.norm2(h)
        L = ctx.shape[1]
        k = a2.to_k(ctx).repeat_interleave(T, dim=0)  # (B·T, L, C): a clip's text, per frame
        v = a2.to_v(ctx).repeat_interleave(T, dim=0)
        h = h + a2.to_out["0"](attention(a2.to_q(n), k, v, self.heads))
        h = h + tb.ff(tb.norm3(h))
        h = self.proj_out(h)
        return x + h.transpose(1, 2).reshape(N, C, H, W)


class TemporalTransformer(nn.Module):
    def __init__(self, C, heads, groups, max_frames):
        super().__init__()
        self.heads, self.g = heads, groups_for(groups, C)
        self.norm = nn.GroupNorm(self.g, C, TGN_EPS)
        self.proj_in = nn.Linear(C, C)
        self.transformer_blocks = Dict(_0=Block(C, C, False))
        self.proj_out = nn.Linear(C, C)
        self.pos_embed = nn.Parameter(torch.zeros(max_frames, C))

    def forward(self, x, B, T):
        """x (B·T, C, H, W): attention across the T frames at each position"""
        N, C, H, W = x.shape
        S = H * W
        tb = self.transformer_blocks["0"]
        h = self.norm(x.view(B, T, C, S).permute(0, 2, 1, 3))  # (B, C, T, S)
        h = h.permute(0, 3, 2, 1).reshape(B * S, T, C)
        h = self.proj_in(h) + self.pos_embed[:T]
        a1 = tb.attn1
        n = tb.norm1(h)
        h = h + a1.to_out["0"](attention(a1.to_q(n), a1.to_k(n), a1.to_v(n), self.heads))
        h = h + tb.ff(tb.norm3(h))
        h = self.proj_out(h)
        h = h.view(B, S, T, C).permute(0, 2, 3, 1).reshape(N, C, H, W)
        return x + h


class Down(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.op = nn.Conv2d(C, C, 3, 2, 1)

    def forward(self, x):
        return self.op(x)


class Up(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.conv = nn.Conv2d(C, C, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def _put(root, prefix, module):
    """registers module under the dotted prefix (input_blocks.3.1) in nested Dicts"""
    parts = prefix.split(".")
    d = root
    for p in parts[:-1]:
        if p not in d:
            d[p] = Dict()
        d = d[p]
    d[parts[-1]] = module


class TurboUNet(nn.Module):
    """The layer list of unet_create, in the same order, under the same names."""

    def __init__(self, cfg=None):
        super().__init__()
        c = dict(DEFAULT_CONFIG, **(cfg or {}))
        self.cfg = c
        mc, E, G, D = c["model_ch"], 4 * c["model_ch"], c["groups"], c["text_dim"]
        self.time_embed = Dict(_0=nn.Linear(mc, E), _2=nn.Linear(E, E))
        self.input_blocks, self.middle_block, self.output_blocks = Dict(), Dict(), Dict()
        root = nn.ModuleDict({"input_blocks": self.input_blocks, "middle_block": self.middle_block,
                              "output_blocks": self.output_blocks})
        # the run list: (kind, prefix, push, pop) in forward order
        self.run = []

        def add(kind, prefix, module, push=False, pop=False):
            _put(root, prefix, module)
            self.run.append((kind, prefix, push, pop))

        skip, ch, ib = [], mc, 1
        add("conv", "input_blocks.0.0", nn.Conv2d(c["in_ch"], mc, 3, 1, 1), push=True)
        skip.append(ch)
        for l in range(c["n_levels"]):
            attn = (c["attn_levels"] >> l) & 1
            for _ in range(c["n_res"]):
                co = c["ch_mult"][l] * mc
                add("res", f"input_blocks.{ib}.0", ResBlock(ch, co, E, G), push=not attn)
                ch = co
                if attn:
                    add("st", f"input_blocks.{ib}.1", SpatialTransformer(ch, D, ch // c["head_ch"], G))
                    add("tt", f"input_blocks.{ib}.2",
                        TemporalTransformer(ch, ch // c["head_ch"], G, c["max_frames"]), push=True)
                skip.append(ch)
                ib += 1
            if l != c["n_levels"] - 1:
                add("conv", f"input_blocks.{ib}.0", Down(ch), push=True)
                skip.append(ch)
                ib += 1
        add("res", "middle_block.0", ResBlock(ch, ch, E, G))
        add("st", "middle_block.1", SpatialTransformer(ch, D, ch // c["head_ch"], G))
        add("tt", "middle_block.2", TemporalTransformer(ch, ch // c["head_ch"], G, c["max_frames"]))
        add("res", "middle_block.3", ResBlock(ch, ch, E, G))
        ob = 0
        for l in reversed(range(c["n_levels"])):
            attn = (c["attn_levels"] >> l) & 1
            for j in range(c["n_res"] + 1):
                co = c["ch_mult"][l] * mc
                add("res", f"output_blocks.{ob}.0", ResBlock(ch + skip.pop(), co, E, G), pop=True)
                ch, sub = co, 1
                if attn:
                    add("st", f"output_blocks.{ob}.1", SpatialTransformer(ch, D, ch // c["head_ch"], G))
                    add("tt", f"output_blocks.{ob}.2",
                        TemporalTransformer(ch, ch // c["head_ch"], G, c["max_frames"]))
                    sub = 3
                if l > 0 and j == c["n_res"]:
                    add("conv", f"output_blocks.{ob}.{sub}", Up(ch))
                ob += 1
        assert not skip
        gout = groups_for(G, ch)
        self.out = Dict(_0=nn.GroupNorm(gout, ch, GN_EPS), _2=nn.Conv2d(ch, c["out_ch"], 3, 1, 1))
        self.mods = {prefix: self._get(root, prefix) for _, prefix, _, _ in self.run}

    @staticmethod
    def _get(root, prefix):
        d = root
        for p in prefix.split("."):
            d = d[p]
        return d

    def timestep_embedding(self, t):
        """LDM's sinusoidal embedding [cos, sin] (computed in double, as turbo's op)"""
        half = self.cfg["model_ch"] // 2
        f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
        a = t.to(torch.float64)[:, None] * f[None]
        return torch.cat([torch.cos(a), torch.sin(a)], dim=1).to(torch.float32)

    def forward(self, x, t, ctx):
        """x (B, T, in_ch, H, W), t (B), ctx (B, L, text_dim) → eps (B, T, out_ch, H, W)"""
        B, T, C, H, W = x.shape
        emb = self.time_embed["2"](F.silu(self.time_embed["0"](self.timestep_embedding(t))))
        semb = F.silu(emb)
        h = x.reshape(B * T, C, H, W)
        stack = []
        for kind, prefix, push, pop in self.run:
            m = self.mods[prefix]
            if pop:
                h = torch.cat([h, stack.pop()], dim=1)
            if kind == "res":
                h = m(h, semb, B, T)
            elif kind == "st":
                h = m(h, ctx, B, T)
            elif kind == "tt":
                h = m(h, B, T)
            else:
                h = m(h)
            if push:
                stack.append(h)
        assert not stack
        h = self.out["2"](F.silu(self.out["0"](h)))
        return h.view(B, T, -1, H, W)


# ---- safetensors (the format's whole reader: 8-byte header length, JSON header, raw data) --
def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: {len(raw)} bytes, too short for a safetensors header")
    (hl,) = struct.unpack("<Q", raw[:8])
    if 8 + hl > len(raw):
        raise ValueError(f"{path}: header of {hl} bytes runs past the end of the file")
    header = json.loads(raw[8:8 + hl])
    base, out = 8 + hl, {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        if e["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} is {e['dtype']}, only F32 is read")
        lo, hi = e["data_offsets"]
        n = int(np.prod(e["shape"])) if e["shape"] else 1
        if hi - lo != 4 * n or base + hi > len(raw):
            raise ValueError(f"{path}: tensor {name}: offsets {lo}..{hi} do not fit shape {e['shape']}")
        out[name] = torch.from_numpy(
            np.frombuffer(raw, dtype="<f4", count=n, offset=base + lo).reshape(e["shape"]).copy())
    return out


def load_turbo(model, tensors):
    """turbo's weights into the module: every state_dict entry must be in the file, same shape"""
    sd = model.state_dict()
    missing = [k for k in sd if k not in tensors]
    if missing:
        raise ValueError(f"{len(missing)} parameters missing from the dump, first {missing[:3]}")
    for k, v in sd.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise ValueError(f"{k}: dump shape {tuple(tensors[k].shape)}, module {tuple(v.shape)}")
    extra = [k for k in tensors if "/" not in k and k not in sd]
    if extra:
        raise ValueError(f"{len(extra)} dump tensors the module does not have, first {extra[:3]}")
    model.load_state_dict({k: tensors[k] for k in sd})


def bench_inputs(seed=0):
    """inputs of the benchmark's shape (the race: values do not matter to the time)"""
    g = torch.Generator().manual_seed(seed)
    u = lambda *s: torch.rand(*s, generator=g) * 2 - 1
    c = DEFAULT_CONFIG
    x = u(BENCH_B, BENCH_T, c["in_ch"], BENCH_H, BENCH_W)
    return x, torch.full((BENCH_B,), 500.0), u(BENCH_B, BENCH_L, c["text_dim"]), u(*x.shape)


def check(path, tol):
    tensors = read_safetensors(path)
    torch.set_num_threads(1)
    model = TurboUNet()
    load_turbo(model, tensors)
    n_par = sum(p.numel() for p in model.parameters())
    x = tensors["io/x"].clone().requires_grad_(True)
    y = model(x, tensors["io/t"], tensors["io/context"])
    y.backward(tensors["io/dy"])
    rows = [("output y", y.detach(), tensors["io/y"]), ("input grad dx", x.grad, tensors["io/dx"])]
    for name, p in model.named_parameters():
        rows.append((name, p.grad, tensors["grad/" + name]))
    print(f"torch mirror of turbo's default UNet: {n_par} parameters, {len(rows) - 2} tensors; "
          f"errors against turbo ({path})")
    worst, worst_name, bad = 0.0, "", 0
    agg = {"output y": None, "input grad dx": None}
    gmax_abs, gmax_rel = 0.0, 0.0
    for name, a, b in rows:
        d = (a - b).abs().max().item()
        scale = b.abs().max().item()
        rel = d / scale if scale > 0 else (0.0 if d == 0 else math.inf)
        if name in agg:
            print(f"  {name:<14} max abs {d:.3e}   max |value| {scale:.3e}   rel {rel:.3e}")
        else:
            if d > gmax_abs:
                gmax_abs = d
            if rel > gmax_rel:
                gmax_rel, worst_name = rel, name
        worst = max(worst, rel)
        bad += rel > tol
    print(f"  param grads    max abs {gmax_abs:.3e}   worst rel {gmax_rel:.3e} ({worst_name})")
    print(f"  (rel = max |torch - turbo| / max |turbo| per tensor; tolerance {tol:g})")
    if bad:
        print(f"FAIL: {bad} tensors differ beyond {tol:g}")
        return 1
    print("ok: outputs and gradients agree")
    return 0


# ---- race worker ----------------------------------------------------------------------------
OP_GROUPS = [  # (group, substrings of a profiler key), first match wins
    ("conv", ("conv", "mkldnn_convolution", "slow_conv")),
    ("linear/matmul", ("addmm", "aten::mm", "aten::bmm", "aten::linear", "aten::matmul", "baddbmm")),
    ("attention", ("attention", "_softmax", "sdpa", "flash")),
    ("norm", ("group_norm", "layer_norm", "native_group_norm", "native_layer_norm")),
    ("elementwise", ("silu", "gelu", "aten::mul", "aten::add", "aten::sum", "aten::div",
                     "threshold", "aten::sub", "fill_", "zero_", "cpp_fused")),
    ("copy/layout", ("copy_", "clone", "cat", "contiguous", "permute", "transpose", "reshape",
                     "view", "expand", "repeat", "upsample", "interpolate", "index", "_unsafe_view",
                     "empty", "as_strided", "split", "chunk", "slice")),
]


def op_group(key):
    k = key.lower()
    for g, subs in OP_GROUPS:
        if any(s.lower() in k for s in subs):
            return g
    return "other"


def mem_line():
    rss = hwm = -1
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return f"rss_kib {rss} hwm_kib {hwm}"


def serve(threads, compiled):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = TurboUNet()
    x0, t, ctx, dy = bench_inputs()
    fn = torch.compile(model) if compiled else model

    def step():
        model.zero_grad(set_to_none=False)
        x = x0.detach().requires_grad_(True)
        fn(x, t, ctx).backward(dy)

    for _ in range(2):  # compile (when asked) and warm up
        step()
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd[:1] == ["run"] and len(cmd) == 2 and cmd[1].isdigit():
            for _ in range(int(cmd[1])):
                t0 = time.perf_counter()
                step()
                print(f"ms {(time.perf_counter() - t0) * 1e3:.3f}", flush=True)
        elif cmd[:1] == ["prof"]:
            from torch.profiler import ProfilerActivity, profile
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                step()
            groups = {}
            for e in prof.key_averages():
                # self time, so that nested ops are not counted twice; the autograd wrappers'
                # own time (dispatch) lands in "other"
                g = op_group(e.key)
                groups[g] = groups.get(g, 0.0) + e.self_cpu_time_total / 1e3
            for g, ms in sorted(groups.items(), key=lambda kv: -kv[1]):
                print(f"group {g} {ms:.3f}")
        elif cmd[:1] == ["mem"]:
            print(mem_line())
        elif cmd[:1] == ["quit"]:
            break
        else:
            print(f"error: unknown command {line.strip()[:40]}")
        print("done", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", metavar="DUMP", help="compare against bench_unet --dump DUMP")
    ap.add_argument("--tol", type=float, default=1e-4, help="relative tolerance of --check")
    ap.add_argument("--serve", metavar="THREADS", type=int, help="run as a race worker")
    ap.add_argument("--compile", action="store_true", help="the worker runs torch.compile(model)")
    a = ap.parse_args()
    if a.check:
        if not os.path.exists(a.check):
            print(f"{a.check}: no such file (write it with build/bench/bench_unet --dump {a.check})",
                  file=sys.stderr)
            return 2
        return check(a.check, a.tol)
    if a.serve:
        serve(a.serve, a.compile)
        return 0
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
