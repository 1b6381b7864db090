#!/usr/bin/env python3
"""Writes tests/golden/diffusion_v1.txt: the teacher's schedule and solver computed by numpy
(float64), written the way the reference code states them (METHOD.md section 1, 3.1, 4), for
tests/test_diffusion.c.  Run from the repository root: python3 tests/golden/make_diffusion_golden.py

Each line is `name count v0 v1 ...` (values printed with 17 significant digits)."""
import numpy as np

T, N_DDIM = 1000, 200
out = []


def put(name, arr):
    arr = np.asarray(arr, dtype=np.float64).ravel()
    out.append(name + " " + str(arr.size) + " " + " ".join("%.17g" % v for v in arr))


# scaled-linear betas: linspace on the square roots, squared; abar = cumprod(1 - beta)
betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, T, dtype=np.float64) ** 2
abar = np.cumprod(1.0 - betas)
put("beta", betas)
put("abar", abar)

# DDIMSolver: step_ratio = T // N, grid (1..N) * ratio - 1, prev = [abar[0]] + abar[grid[:-1]]
ratio = T // N_DDIM
grid = (np.arange(1, N_DDIM + 1) * ratio).round().astype(np.int64) - 1
abar_prev = np.asarray([abar[0]] + abar[grid[:-1]].tolist())
put("ddim_t", grid)
put("ddim_abar", abar[grid])
put("ddim_abar_prev", abar_prev)

# boundary scalings (sigma_data 0.5, timestep scaling 10, integer t)
ts = np.array([0, 1, 4, 9, 19, 99, 249, 499, 749, 999])
put("cs_t", ts)
sd = 0.5
put("c_skip", sd ** 2 / ((ts * 10.0) ** 2 + sd ** 2))
put("c_out", (ts * 10.0) / ((ts * 10.0) ** 2 + sd ** 2) ** 0.5)

# the multistep consistency sampler's timesteps
origin = np.asarray(list(range(1, N_DDIM + 1))) * ratio - 1
for n in (1, 2, 4, 8, 16, 25, 50, 200):
    skip = len(origin) // n
    put("lcm_%d" % n, origin[::-skip][:n])

# q_sample, eps <-> x0, a DDIM step and an inversion step on fixed random vectors
rng = np.random.default_rng(20241005)
n = 37
z0 = rng.standard_normal(n)
noise = rng.standard_normal(n)
put("vec_z0", z0)
put("vec_noise", noise)
for t in (0, 4, 499, 999):
    a, s = abar[t] ** 0.5, (1 - abar[t]) ** 0.5
    zt = a * z0 + s * noise
    put("q_%d" % t, zt)
    put("x0_%d" % t, (zt - s * noise) / a)  # eps -> x0 recovers z0
for idx in (0, 1, 57, 199):
    ap = abar_prev[idx]
    put("ddim_%d" % idx, ap ** 0.5 * z0 + (1 - ap) ** 0.5 * noise)
for t in (4, 9, 504, 999):  # ddim_reverse_step(x=z0, eps=noise, t)
    tp = max(t - ratio, 0)
    xt = (z0 - (1 - abar[tp]) ** 0.5 * noise) * (abar[t] / abar[tp]) ** 0.5 + (1 - abar[t]) ** 0.5 * noise
    put("rev_%d" % t, xt)
w = 7.5
put("cfg_7.5", z0 + w * (z0 - noise))  # eps_c = z0, eps_u = noise

with open("tests/golden/diffusion_v1.txt", "w") as f:
    f.write("# turbo diffusion golden values v1 (tests/golden/make_diffusion_golden.py, numpy float64)\n")
    f.write("\n".join(out) + "\n")
