/* cli/image_png.h - PNG files for the `sd` tool, through libpng: any 8/16-bit gray, gray +
 * alpha, palette, RGB or RGBA PNG read into float RGBA in [0, 1]; 8- or 16-bit RGB or RGBA
 * written from float pixels.  Values are the file's (non-linear sRGB) code values scaled to
 * [0, 1]: no gamma or colour-space conversion happens, as the models expect. */
#ifndef SD_CLI_IMAGE_PNG_H
#define SD_CLI_IMAGE_PNG_H

#include <stddef.h>

/* Largest image accepted, in pixels (width * height); each side is also capped at 65535. */
#define SD_CLI_PNG_MAX_PIXELS ((size_t)1 << 28)

/* Read `path` into *rgba: w * h pixels of 4 floats (R, G, B, A), rows top to bottom,
 * malloc'd (free with free()).  Gray is replicated to RGB; a missing alpha is 1.
 * Returns 0, or -1 with a one-line reason ("photo.png: not a PNG file") in errbuf and
 * *rgba NULL.  Thread: any (no shared state). */
int sd_cli_png_read(const char *path, float **rgba, int *w, int *h, char *errbuf, size_t errlen);

/* Write w * h pixels of `channels` floats (3 = RGB, 4 = RGBA; rows top to bottom, stride
 * w * channels) to `path` as a `bits` (8 or 16) per channel PNG.  Values are clamped to
 * [0, 1] and rounded to the nearest code.  Returns 0, or -1 with a reason in errbuf (a
 * partial file may remain on a write error).  Thread: any. */
int sd_cli_png_write(const char *path, const float *pix, int w, int h, int channels, int bits,
                     char *errbuf, size_t errlen);

#endif
