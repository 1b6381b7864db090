#!/usr/bin/env python3
"""Golden values for test_eval: VBench's temporal flickering computed directly with numpy on
videos whose u8 frames both sides generate from the same formula (no files of pixels needed):
  v[f, y, x, c] = (x*7 + y*13 + c*51 + f*29 + ((x*y + f*c) % 17) * 3) % 256,
  then for the flicker variant multiplied by g_f = 1 + 0.25*((f*37 % 11)/10*2 - 1), rounded half up
  and clipped to [0, 255].
VBench (temporal_flickering.py): mean over consecutive pairs of mean |f_i - f_{i+1}| over every
pixel and channel; score = (255 - mean)/255. Writes tests/golden/eval_tf_v1.txt:
  name F H W value"""
import numpy as np

def video(F, H, W, flicker):
    f = np.arange(F)[:, None, None, None]
    y = np.arange(H)[None, :, None, None]
    x = np.arange(W)[None, None, :, None]
    c = np.arange(3)[None, None, None, :]
    v = (x * 7 + y * 13 + c * 51 + f * 29 + ((x * y + f * c) % 17) * 3) % 256
    if flicker:
        g = 1 + 0.25 * (((np.arange(F) * 37) % 11) / 10 * 2 - 1)
        v = np.clip(np.floor(v * g[:, None, None, None] + 0.5), 0, 255)
    return v.astype(np.uint8)

def tf(v):
    v = v.astype(np.float64)
    maes = [np.mean(np.abs(v[i] - v[i + 1])) for i in range(len(v) - 1)]
    return (255.0 - np.mean(maes)) / 255.0

with open("tests/golden/eval_tf_v1.txt", "w") as out:
    out.write("# eval_tf v1: name F H W temporal_flickering (numpy, make_eval_tf_golden.py)\n")
    for name, F, H, W, fl in [("plain", 16, 64, 64, 0), ("flicker", 16, 64, 64, 1), ("odd", 7, 37, 53, 0), ("oddflicker", 24, 48, 80, 1)]:
        out.write("%s %d %d %d %.17g\n" % (name, F, H, W, tf(video(F, H, W, fl))))
