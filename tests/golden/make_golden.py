#!/usr/bin/env python3
"""Writes tests/golden/ops_v1.bin: reference values for turbo's operations computed by an
independent implementation (numpy, float64), read back by tests/test_ops_golden.c.

Run once after changing a case: python3 tests/golden/make_golden.py  (numpy only).

File format (little-endian):
  magic  8 bytes  b"TBGOLDEN"
  u32    version  (1)
  u32    count    number of tensors
  count times:
    u16 name length, name (ASCII), u8 ndim, i32 dims[ndim], f32 data (row-major)
Each case is a group of tensors "<op>.<i>.<what>"; "<op>.<i>.params" holds the integer/float
parameters of the case as floats. Inputs, outputs, incoming gradients ("gout", "gprobs") and the
input/parameter gradients ("dx", "dw", ...) are stored for forward and backward checks.
"""
import os
import struct

import numpy as np

VERSION = 1
rng = np.random.default_rng(20241023)
tensors = []


def put(name, arr):
    tensors.append((name, np.asarray(arr, dtype=np.float64)))


def rnd(*shape, lo=-1.0, hi=1.0):
    # values rounded to f32 first, so the C side starts from exactly the same inputs
    return rng.uniform(lo, hi, size=shape).astype(np.float32).astype(np.float64)


# ---- conv2d: out (N, Co, Ho, Wo) = sum over taps of W[:, :, ky, kx] . shifted input ---------------
def conv2d(x, w, b, stride, pad):
    N, C, H, W = x.shape
    Co, _, k, _ = w.shape
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((N, Co, Ho, Wo)) + b[None, :, None, None]
    for ky in range(k):
        for kx in range(k):
            xs = xp[:, :, ky:ky + stride * (Ho - 1) + 1:stride, kx:kx + stride * (Wo - 1) + 1:stride]
            out += np.einsum("oc,nchw->nohw", w[:, :, ky, kx], xs)
    return out


def conv2d_bwd(x, w, g, stride, pad):
    N, C, H, W = x.shape
    Co, _, k, _ = w.shape
    Ho, Wo = g.shape[2], g.shape[3]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for ky in range(k):
        for kx in range(k):
            sl = (slice(None), slice(None), slice(ky, ky + stride * (Ho - 1) + 1, stride),
                  slice(kx, kx + stride * (Wo - 1) + 1, stride))
            dxp[sl] += np.einsum("oc,nohw->nchw", w[:, :, ky, kx], g)
            dw[:, :, ky, kx] = np.einsum("nohw,nchw->oc", g, xp[sl])
    dx = dxp[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, g.sum(axis=(0, 2, 3))


for i, (N, C, H, W, Co, k, s, p) in enumerate([(2, 3, 7, 6, 4, 3, 1, 1), (3, 4, 9, 8, 5, 3, 2, 1),
                                                (2, 5, 5, 4, 3, 1, 1, 0)]):
    x, w, b = rnd(N, C, H, W), rnd(Co, C, k, k), rnd(Co)
    out = conv2d(x, w, b, s, p)
    g = rnd(*out.shape)
    dx, dw, db = conv2d_bwd(x, w, g, s, p)
    pre = f"conv2d.{i}."
    put(pre + "params", [N, C, H, W, Co, k, s, p])
    for nm, a in [("x", x), ("w", w), ("b", b), ("out", out), ("gout", g), ("dx", dx), ("dw", dw),
                  ("db", db)]:
        put(pre + nm, a)


# ---- temporal conv: x (B, T, C, S), w (Co, C, kt), zero padding kt//2 in time --------------------
def tconv(x, w, b):
    B, T, C, S = x.shape
    Co, _, kt = w.shape
    P = kt // 2
    xp = np.pad(x, ((0, 0), (P, P), (0, 0), (0, 0)))
    out = np.zeros((B, T, Co, S)) + b[None, None, :, None]
    for t in range(T):
        for j in range(kt):
            out[:, t] += np.einsum("oc,bcs->bos", w[:, :, j], xp[:, t + j])
    return out


def tconv_bwd(x, w, g):
    B, T, C, S = x.shape
    Co, _, kt = w.shape
    P = kt // 2
    xp = np.pad(x, ((0, 0), (P, P), (0, 0), (0, 0)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for t in range(T):
        for j in range(kt):
            dxp[:, t + j] += np.einsum("oc,bos->bcs", w[:, :, j], g[:, t])
            dw[:, :, j] += np.einsum("bos,bcs->oc", g[:, t], xp[:, t + j])
    return dxp[:, P:P + T], dw, g.sum(axis=(0, 1, 3))


for i, (B, T, C, S, Co, kt) in enumerate([(2, 5, 3, 6, 4, 3), (3, 1, 2, 5, 3, 3)]):
    x, w, b = rnd(B, T, C, S), rnd(Co, C, kt), rnd(Co)
    out = tconv(x, w, b)
    g = rnd(*out.shape)
    dx, dw, db = tconv_bwd(x, w, g)
    pre = f"tconv.{i}."
    put(pre + "params", [B, T, C, S, Co, kt])
    for nm, a in [("x", x), ("w", w), ("b", b), ("out", out), ("gout", g), ("dx", dx), ("dw", dw),
                  ("db", db)]:
        put(pre + nm, a)


# ---- group norm over (N, T, C, S), statistics per (n, group) over T, C/G, S ----------------------
def groupnorm(x, w, b, G, eps):
    N, T, C, S = x.shape
    xg = x.reshape(N, T, G, C // G, S)
    mu = xg.mean(axis=(1, 3, 4), keepdims=True)
    var = xg.var(axis=(1, 3, 4), keepdims=True)
    rs = 1.0 / np.sqrt(var + eps)
    xh = ((xg - mu) * rs).reshape(N, T, C, S)
    return xh * w[None, None, :, None] + b[None, None, :, None], xh, mu.reshape(N, G), rs.reshape(N, G)


def groupnorm_bwd(xh, rs, w, g, G):
    N, T, C, S = xh.shape
    gx = (g * w[None, None, :, None]).reshape(N, T, G, C // G, S)
    xhg = xh.reshape(N, T, G, C // G, S)
    m1 = gx.mean(axis=(1, 3, 4), keepdims=True)
    m2 = (gx * xhg).mean(axis=(1, 3, 4), keepdims=True)
    dx = (rs.reshape(N, 1, G, 1, 1) * (gx - m1 - xhg * m2)).reshape(N, T, C, S)
    return dx, (g * xh).sum(axis=(0, 1, 3)), g.sum(axis=(0, 1, 3))


for i, (N, T, C, S, G) in enumerate([(3, 1, 6, 7, 3), (2, 4, 8, 5, 2), (2, 1, 5, 9, 5)]):
    x, w, b = rnd(N, T, C, S, lo=-2, hi=3), rnd(C, lo=0.5, hi=1.5), rnd(C)
    eps = 1e-5
    out, xh, mu, rs = groupnorm(x, w, b, G, eps)
    g = rnd(*out.shape)
    dx, dw, db = groupnorm_bwd(xh, rs, w, g, G)
    pre = f"groupnorm.{i}."
    put(pre + "params", [N, T, C, S, G, eps])
    for nm, a in [("x", x), ("w", w), ("b", b), ("out", out), ("mean", mu), ("rstd", rs),
                  ("gout", g), ("dx", dx), ("dw", dw), ("db", db)]:
        put(pre + nm, a)


# ---- attention: q (B, H, Nq, D), k, v (B, H, Nk, D), additive mask (B, Nq, Nk) -------------------
def attention(q, k, v, add, scale):
    s = np.einsum("bhid,bhjd->bhij", q, k) * scale
    if add is not None:
        s = s + add[:, None]
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("bhij,bhjd->bhid", p, v), p


def attention_bwd(q, k, v, p, g, gp, scale):
    dp = np.einsum("bhid,bhjd->bhij", g, v) + gp
    dv = np.einsum("bhij,bhid->bhjd", p, g)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    dq = np.einsum("bhij,bhjd->bhid", ds, k) * scale
    dk = np.einsum("bhij,bhid->bhjd", ds, q) * scale
    return dq, dk, dv


for i, (B, H, Nq, Nk, D, masked) in enumerate([(2, 3, 5, 7, 4, 0), (3, 2, 6, 6, 8, 1),
                                                (4, 2, 16, 16, 8, 0)]):
    q, k, v = rnd(B, H, Nq, D, lo=-1.5, hi=1.5), rnd(B, H, Nk, D, lo=-1.5, hi=1.5), rnd(B, H, Nk, D)
    add = None
    if masked:
        add = rnd(B, Nq, Nk)
        add[rng.uniform(size=add.shape) < 0.25] = -1e9
        add[:, :, 0] = 0.0  # every row keeps at least one key
    scale = 1.0 / np.sqrt(D)
    out, p = attention(q, k, v, add, scale)
    g, gp = rnd(*out.shape), rnd(*p.shape)
    dq, dk, dv = attention_bwd(q, k, v, p, g, gp, scale)
    pre = f"attention.{i}."
    put(pre + "params", [B, H, Nq, Nk, D, masked])
    items = [("q", q), ("k", k), ("v", v), ("out", out), ("probs", p), ("gout", g),
             ("gprobs", gp), ("dq", dq), ("dk", dk), ("dv", dv)]
    if masked:
        items.append(("mask", add))
    for nm, a in items:
        put(pre + nm, a)


# ---- losses ------------------------------------------------------------------------------------------
pred, target = rnd(5, 7), rnd(5, 7)
d = pred - target
put("mse.0.pred", pred)
put("mse.0.target", target)
put("mse.0.loss", [np.mean(d * d)])
put("mse.0.dpred", 2 * d / d.size)
for i, c in enumerate([0.001, 0.5]):
    pre = f"huber.{i}."
    put(pre + "params", [c])
    put(pre + "pred", pred)
    put(pre + "target", target)
    put(pre + "loss", [np.mean(np.sqrt(d * d + c * c) - c)])
    put(pre + "dpred", d / np.sqrt(d * d + c * c) / d.size)

N, D, temp = 6, 5, 0.07
a, b = rnd(N, D), rnd(N, D)
logits = a @ b.T / temp


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


lab, lba = log_softmax(logits), log_softmax(logits.T)
loss = -(np.trace(lab) + np.trace(lba)) / (2 * N)
G = (np.exp(lab) - np.eye(N) + (np.exp(lba) - np.eye(N)).T) / (2 * N)
put("infonce.0.params", [N, D, temp])
put("infonce.0.a", a)
put("infonce.0.b", b)
put("infonce.0.loss", [loss])
put("infonce.0.da", G @ b / temp)
put("infonce.0.db", G.T @ a / temp)

# ---- embeddings ------------------------------------------------------------------------------------
t = np.array([0.0, 1.0, 17.0, 999.0])
half = 160
freqs = np.exp(-np.log(10000.0) * np.arange(half) / half)
args = t[:, None] * freqs[None]
put("timestep.0.t", t)
put("timestep.0.out", np.concatenate([np.cos(args), np.sin(args)], axis=1))  # dim 320
w = np.array([5.0, 7.5, 15.0])
half = 128
freqs = np.exp(-np.log(10000.0) / (half - 1) * np.arange(half))
args = (w * 1000.0)[:, None] * freqs[None]
put("guidance.0.w", w)
put("guidance.0.out", np.concatenate([np.sin(args), np.cos(args)], axis=1))  # dim 256

# ---- write -----------------------------------------------------------------------------------------
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops_v1.bin")
with open(path, "wb") as f:
    f.write(b"TBGOLDEN")
    f.write(struct.pack("<II", VERSION, len(tensors)))
    for name, arr in tensors:
        nb = name.encode("ascii")
        f.write(struct.pack("<H", len(nb)))
        f.write(nb)
        f.write(struct.pack("<B", arr.ndim))
        f.write(struct.pack("<%di" % arr.ndim, *arr.shape))
        f.write(arr.astype("<f4").tobytes())
print(f"wrote {path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")
