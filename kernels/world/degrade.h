/* kernels/world/degrade.h — the ways generators degrade videos, applied to clean frames so that
 * readers and scores can be tested against them: blur, noise, colour shift, objects cut by the
 * frame edge (a zoomed crop), and brightness flicker. All act in place on u8 (F, H, W, 3) and are
 * deterministic from their seed. Thread-safe (no globals).
 */
#ifndef TURBO_WORLD_DEGRADE_H
#define TURBO_WORLD_DEGRADE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Separable Gaussian blur of σ pixels (kernel radius ceil(3σ), borders clamped); σ <= 0 does
 * nothing. */
void degrade_blur(uint8_t *rgb, int F, int H, int W, double sigma);
/* Additive Gaussian noise of σ levels per channel and pixel, clamped to [0, 255]. */
void degrade_noise(uint8_t *rgb, int F, int H, int W, double sigma, uint64_t seed);
/* Adds d[c] levels to channel c everywhere (clamped): a colour drift. */
void degrade_colour_shift(uint8_t *rgb, int F, int H, int W, const int d[3]);
/* A colour drift of magnitude `levels` per channel with signs drawn from seed (e.g. (+30, −30,
 * +30)); writes the offsets to d_out (may be NULL). */
void degrade_colour_shift_random(uint8_t *rgb, int F, int H, int W, int levels, uint64_t seed,
                                 int d_out[3]);
/* Zooms into the window of fraction `frac` (0 < frac <= 1) of each side whose top-left corner
 * is at (ox, oy) as fractions of the free margin (0..1, 0.5 centred), resized back to H x W
 * (bilinear): objects near the window's edge are cut by the frame edge, leave the frame instead
 * of wrapping around, and every size and speed grows by 1/frac. */
void degrade_zoom_crop(uint8_t *rgb, int F, int H, int W, double frac, double ox, double oy);
/* Per-frame brightness gain uniform in [1 − amp, 1 + amp] (the corpus' flicker flaw). */
void degrade_flicker(uint8_t *rgb, int F, int H, int W, double amp, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
