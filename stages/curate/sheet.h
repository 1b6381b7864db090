/* stages/curate/sheet.h — minimal still (PNG) and animated (GIF) image files for previews.
 *
 * PNG: 8-bit RGB, zlib stream of stored (uncompressed) blocks — larger files, no dependency.
 * GIF: 256-colour 3-3-2 palette, LZW codes kept at 9 bits by clearing the table every 250
 * codes (valid GIF that any viewer reads, without the compression). Both write atomically.
 */
#ifndef TURBO_CURATE_SHEET_H
#define TURBO_CURATE_SHEET_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* rgb: (H, W, 3) u8. TB_OK or TB_ERR + err_get(). */
int sheet_png_write(const char *path, const uint8_t *rgb, int w, int h);
/* frames: (N, H, W, 3) u8, shown delay_cs hundredths of a second each, looping. */
int sheet_gif_write(const char *path, const uint8_t *frames, int n, int w, int h, int delay_cs);

#ifdef __cplusplus
}
#endif
#endif
