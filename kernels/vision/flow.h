/* kernels/vision/flow.h — turbo's own dense optical flow on float frames of any size, and the
 * warps built on it (midpoint interpolation for motion smoothness).
 *
 * Method: coarse-to-fine (image pyramid by 2x2 averaging), at each level a few warping passes of
 * a combined local–global linearisation: the brightness-constancy structure tensor of every
 * colour channel, summed and smoothed over a 3x3 window (Lucas–Kanade's local term), plus a
 * quadratic smoothness term (Horn–Schunck's global term) solved by Gauss–Seidel sweeps. The
 * global term fills textureless object interiors with their edges' motion, so a flat-coloured
 * object moves as a whole (what RAFT gives VBench's dynamic degree), not only at its outline.
 *
 * Convention: flow u from a to b means a(x, y) ≈ b(x + u_x, y + u_y); uv is (H, W, 2) in pixels,
 * (u_x, u_y) per pixel, x to the right and y down.
 *
 *   flow_opts o; flow_opts_default(&o);
 *   flow_ws *ws = flow_ws_new();
 *   flow_dense(ws, &o, a, b, H, W, 3, uv);   // a, b: (H, W, 3) float, any scale (e.g. [0,1])
 *   flow_ws_free(ws);
 *
 * Thread-safety: a workspace belongs to one thread at a time; different workspaces run in
 * parallel. Errors: TB_ERR + err_get() for sizes < 2 or > 16384, bad channel counts.
 */
#ifndef TURBO_VISION_FLOW_H
#define TURBO_VISION_FLOW_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int levels;        /* pyramid levels; 0 = until the coarse side is < 12 pixels (default 0) */
  int warps;         /* warping passes per level (default 2) */
  int sweeps;        /* Gauss–Seidel sweeps per warping pass (default 12) */
  float alpha;       /* smoothness weight, in squared intensity units of the input (default
                        0.004 for [0,1] inputs; scale by 255^2 for [0,255]) */
} flow_opts;

void flow_opts_default(flow_opts *o);

/* Scratch buffers reused between calls (grown on demand). */
typedef struct flow_ws flow_ws;
flow_ws *flow_ws_new(void);
void flow_ws_free(flow_ws *ws); /* ignores NULL */

/* Dense flow from a to b, both (H, W, C) float with C in 1..4, into uv (H, W, 2). ws may be NULL
 * (a temporary one is made). TB_OK, or TB_ERR + err_get() on bad sizes. */
int flow_dense(flow_ws *ws, const flow_opts *o, const float *a, const float *b, int H, int W,
               int C, float *uv);

/* The global translation (tx, ty) of the pixels where mask != 0 (mask (H, W) u8, NULL = all)
 * from a to b, by iterated Lucas–Kanade on the whole masked region (coarse-to-fine), with the
 * region's texture: *strength = mean smallest eigenvalue of the masked structure tensor per
 * pixel (0 for a flat region, whose translation cannot be observed). TB_ERR on bad sizes. */
int flow_translation(flow_ws *ws, const float *a, const float *b, int H, int W, int C,
                     const uint8_t *mask, double *tx, double *ty, double *strength);

/* Bilinear sample of src (H, W, C) at x + s·u(x) for every pixel (border clamped): dst(x) =
 * src(x + s·uv(x)). */
void flow_warp(const float *src, int H, int W, int C, const float *uv, float s, float *dst);

/* The midpoint frame between a and b (H, W, C) from the flow uv a→b (flow_dense):
 * mid(x) = ½ a(x − ½u(x)) + ½ b(x + ½u(x)). */
void flow_midpoint(const float *a, const float *b, int H, int W, int C, const float *uv,
                   float *mid);

/* Mean of the top `frac` of flow magnitudes (VBench's dynamic degree takes the top 5%:
 * int(0.05·H·W) pixels, at least 1). */
double flow_top_mean(const float *uv, int H, int W, double frac);

#ifdef __cplusplus
}
#endif
#endif
