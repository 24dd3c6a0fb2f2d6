/* internal/imgproc.h - the image processing the five pipelines (txt2img, img2img, inpaint,
 * outpaint, denoise) do around the networks, shared by the GIMP plug-in, the CLI and the
 * tests: inpaint cropping and pasting back (image_crop.c), colour matching of a regenerated
 * area (image_colormatch.c), outpaint canvas extension and window placement
 * (image_outpaint.c), overlapping tiles with seamless blending (image_tiles.c) and noise
 * estimation for denoise (noise_estimate.c).  Pixel conventions are those of
 * internal/image.h.  Everything runs on the calling thread and keeps no state.
 *
 * A typical inpaint ("only masked") call sequence:
 *
 *     sd_inpaint_crop_params cp = sd_inpaint_crop_params_default();
 *     cp.proc_w = cp.proc_h = 512;                    // the model's resolution
 *     sd_inpaint_crop crop;
 *     sd_inpaint_crop_make(&image, &mask, &cp, &crop, err);
 *     // crop.image (512x512 RGB) and crop.mask (soft; binarise it, sd_mask_to_latent)
 *     // go to the sampler, which returns gen (512x512 RGB) ...
 *     sd_paste_params pp = sd_paste_params_default();
 *     sd_img result;
 *     sd_inpaint_paste(&image, &crop, &gen, &pp, &result, err);
 *     sd_inpaint_crop_free(&crop);
 */
#ifndef SD_INTERNAL_IMGPROC_H
#define SD_INTERNAL_IMGPROC_H

#include "internal/image.h"

/* ==== colour matching (image_colormatch.c) ============================================= */

/* Pull the colours of a regenerated area toward its surroundings: the mean, per CIE
 * L*a*b* channel (D65), of the generated pixels in a band just inside the mask's edge is
 * moved onto that of the original pixels in a band just outside it, and the same shift is
 * applied to every generated pixel under the mask.  Optionally the spread (standard
 * deviation) is matched too, but by default it is not: the outer band is a wider ring than
 * the inner one, so on smooth content its spread is larger by about (R + band/2) /
 * (R - band/2) for a mask of radius R, and matching it would raise the contrast of small
 * fills systematically.  Band statistics also mix in content (textures whose large
 * features differ between the two rings), which is why this is an option, not a default
 * step of every paste. */
typedef struct sd_colormatch_params {
    int band;          /* width of both bands in pixels, >= 1 (default 8) */
    float strength;    /* 0..1: fraction of the correction applied (default 1) */
    float max_gain;    /* >= 1; the spread ratio outer/inner is clamped to [1/max_gain,
                        * max_gain] and applied as a gain around the mean: 1 = means only
                        * (default) */
} sd_colormatch_params;

sd_colormatch_params sd_colormatch_params_default(void);

/* Colour-match gen to orig around mask (all three the same w x h; orig and gen c >= 3,
 * mask c = 1, binarised at 0.5 to find the edge).  gen's colour channels are modified in
 * place where mask > 0 (alpha untouched); pixels where mask <= 0 are left bit-identical.
 * Pasting gen through the soft mask afterwards blends the correction out at the edge.
 * When either band holds fewer than 16 pixels (empty mask, or a mask covering the whole
 * image) nothing is changed.  *applied (may be NULL) tells whether a correction was made.
 * Errors: SD_ERR_INVALID_ARG, SD_ERR_NOMEM. */
sd_status sd_colormatch(const sd_img *orig, sd_img *gen, const sd_img *mask,
                        const sd_colormatch_params *p, bool *applied, sd_error *err);

/* ==== inpaint crop and paste (image_crop.c) ============================================ */

/* A1111's get_crop_region_v2: the bounding box of mask channel 0 > 0, grown by pad pixels
 * on every side and clamped to the image.  false (and *out zeroed) for an empty mask. */
bool sd_crop_region(const sd_img *mask, int pad, sd_rect *out);

/* A1111's expand_crop_region: widen (or heighten) r symmetrically so that its aspect
 * ratio matches proc_w : proc_h, shifting it back inside the img_w x img_h image where it
 * would cross an edge and clamping it to the image when the image is too small (then the
 * aspect is not reached).  Integer arithmetic exactly as A1111's. */
sd_rect sd_crop_expand(sd_rect r, int proc_w, int proc_h, int img_w, int img_h);

/* Processing size for a w x h area on a model of native resolution `native` (512, 768):
 * scaled to about native * native pixels keeping the aspect, each side rounded to the
 * nearest multiple of 8 (at least 8). */
void sd_fit_size(int w, int h, int native, int *out_w, int *out_h);

typedef struct sd_inpaint_crop_params {
    bool only_masked;  /* true: process the mask's surroundings (default); false: the image */
    int padding;       /* pixels added around the mask's bounding box (default 32) */
    float mask_blur;   /* sigma in pixels of the blur of the paste mask (default 4; 0 = none),
                        * A1111's "mask blur" */
    int proc_w, proc_h;/* processing size, multiples of 8.  Both > 0: the crop is widened to
                        * this aspect (A1111 "only masked").  Both 0: the crop is kept as it is
                        * and processed at sd_fit_size(crop, native) (img2img on a selection) */
    int native;        /* the model's native resolution for proc 0 (default 512) */
} sd_inpaint_crop_params;

sd_inpaint_crop_params sd_inpaint_crop_params_default(void);

/* What the sampler works on and what pasting back needs. */
typedef struct sd_inpaint_crop {
    sd_rect region;      /* the part of the source image that is processed */
    int proc_w, proc_h;  /* its processing size (multiples of 8) */
    sd_img paste_mask;   /* source-sized, c = 1: the blurred mask the result is pasted with */
    sd_img image;        /* proc_w x proc_h x 3: the region's colours as stored (straight, alpha
                          * dropped) resized with Lanczos-3 */
    sd_img mask;         /* proc_w x proc_h x 1: paste_mask's region resized (soft; the sampler
                          * binarises it, see sd_mask_to_latent) */
} sd_inpaint_crop;

/* Prepare an inpaint or masked img2img: blur the mask (mask_blur), find the region
 * (A1111: bounding box of the blurred mask > 0, plus padding, widened to the processing
 * aspect, clamped), and cut and resize image and mask to the processing size.
 * image: RGB or RGBA; mask: c = 1, same w x h.  *out owns its images; free with
 * sd_inpaint_crop_free.  Errors: SD_ERR_INVALID_ARG (sizes, parameters, or an empty mask:
 * "nothing to regenerate"), SD_ERR_NOMEM.  On error *out is zeroed. */
sd_status sd_inpaint_crop_make(const sd_img *image, const sd_img *mask,
                               const sd_inpaint_crop_params *p, sd_inpaint_crop *out,
                               sd_error *err);
void sd_inpaint_crop_free(sd_inpaint_crop *c);

typedef struct sd_paste_params {
    bool color_match;          /* colour-match the result to its surroundings first (default
                                * false) */
    sd_colormatch_params cm;   /* used when color_match */
} sd_paste_params;

sd_paste_params sd_paste_params_default(void);

/* Paste a generated result back: gen (crop->proc_w x proc_h, c >= 3) is resized to the
 * region (Lanczos-3), optionally colour-matched, and composited over the ORIGINAL through
 * crop->paste_mask (sd_img_composite): pixels where the paste mask is 0 - everything
 * outside the region among them - are bit-identical to orig; alpha is orig's.  *out is a
 * new owned image with orig's size and channels.  Errors: SD_ERR_INVALID_ARG,
 * SD_ERR_NOMEM.  On error *out is zeroed. */
sd_status sd_inpaint_paste(const sd_img *orig, const sd_inpaint_crop *crop, const sd_img *gen,
                           const sd_paste_params *p, sd_img *out, sd_error *err);

/* ==== outpaint (image_outpaint.c) ====================================================== */

typedef struct sd_outpaint_params {
    int left, top, right, bottom; /* pixels added on each side, >= 0, not all 0 */
    int overlap;       /* width of the mask band reaching into the old image on every
                        * extended side (default 32; 0 = none) */
    float fill_blur;   /* sigma of the blur of the edge extension, px (default 8) */
    float noise;       /* amplitude of the pre-fill noise relative to the image's local
                        * detail near the border (default 1; 0 = none) */
    uint64_t seed;     /* seed of that noise */
} sd_outpaint_params;

sd_outpaint_params sd_outpaint_params_default(void);

/* Grow the canvas: *out_img (new, owned, src's channels) has src copied exactly at
 * (left, top); the new area is pre-filled by extending the border pixels outward
 * (nearest border pixel), blurring that extension, and adding Gaussian noise whose
 * per-channel amplitude follows the image's local fine detail at the nearest border
 * point, so the sampler starts from plausible colours and texture; alpha there is 1.
 * *out_mask (new, owned, c = 1) is 1 on the new area, and inside the old image falls from
 * 1 to 0 across the overlap band along every extended side (a smoothstep of the distance),
 * 0 elsewhere.  Errors: SD_ERR_INVALID_ARG, SD_ERR_TOO_LARGE, SD_ERR_NOMEM; on error both
 * outputs are zeroed. */
sd_status sd_outpaint_extend(const sd_img *src, const sd_outpaint_params *p, sd_img *out_img,
                             sd_img *out_mask, sd_error *err);

/* Model-resolution windows covering every pixel of mask (c = 1) that is > 0.  Windows are
 * win_w x win_h (multiples of 8), shrunk to the largest multiple of 8 that fits the canvas
 * when it is smaller, and placed on a grid with at least min_overlap pixels of overlap
 * (>= 0; reduced to half the window size when larger).  They are returned in processing
 * order: each next window is the one with the most content already present (original
 * pixels, mask < 0.5, or pixels of windows before it) times the masked pixels it still
 * has to cover, so windows grow outward from the original image and each sees filled
 * neighbours; windows with nothing left to cover are dropped.  *out (sd_malloc'd, free
 * with sd_free) gets *n rectangles (*n is 0 for an empty mask).  Errors:
 * SD_ERR_INVALID_ARG (mask smaller than 8x8, bad sizes), SD_ERR_NOMEM. */
sd_status sd_outpaint_windows(const sd_img *mask, int win_w, int win_h, int min_overlap,
                              sd_rect **out, int *n, sd_error *err);

/* The mask to regenerate window k of wins[0..k] with: mask restricted to the window and
 * multiplied by (1 - f), where f rises from 0 at the inner edges of earlier windows to 1
 * `feather` pixels inside them, so the edge strips an earlier window generated with
 * one-sided context are redone, and nothing deeper.  *out: new owned wins[k].w x h x 1.
 * Every pixel of mask > 0 gets a non-zero value in the first window that covers it.
 * Errors: SD_ERR_INVALID_ARG, SD_ERR_NOMEM. */
sd_status sd_outpaint_window_mask(const sd_img *mask, const sd_rect *wins, int k, int feather,
                                  sd_img *out, sd_error *err);

/* ==== tiles (image_tiles.c) ============================================================ */

/* Start positions of evenly spaced spans of length `tile` covering 0 .. extent-1, with at
 * least `overlap` in common between neighbours: a single span at 0 when tile >= extent,
 * else 1 + ceil((extent - tile) / (tile - overlap)) spans from 0 to extent - tile, every
 * gap at most tile - overlap.  Requires tile >= 1 and, when tile < extent,
 * 0 <= overlap < tile.  Writes them to pos (may be NULL) and returns their number. */
int sd_tile_positions(int extent, int tile, int overlap, int *pos);

/* Overlapping tiles covering a w x h image row by row: tile_w x tile_h pixels, each shrunk
 * to the largest multiple of 8 that fits a smaller image, evenly spaced with at least
 * `overlap` pixels in common between neighbours (overlap is reduced to size - 8 where the
 * tiles shrank below overlap + 8).  tile_w, tile_h and overlap are multiples of 8 with
 * 0 <= overlap < tile.  *out (sd_malloc'd, free with sd_free) gets *n rectangles, row by
 * row.  Errors: SD_ERR_INVALID_ARG (image smaller than 8x8, bad sizes), SD_ERR_NOMEM. */
sd_status sd_tiles_plan(int w, int h, int tile_w, int tile_h, int overlap, sd_rect **out,
                        int *n, sd_error *err);

/* Accumulates processed tiles into a seamless image: every tile is weighted by a ramp that
 * rises over `ramp` pixels from each tile edge that lies inside the image (edges on the
 * image border get full weight), and the result is the weighted sum divided by the sum of
 * the weights. */
typedef struct sd_tile_acc sd_tile_acc;

/* A w x h x c accumulator with the given ramp (>= 1 px; the planned overlap, or 1 for
 * tiles without overlap).
 * Errors: SD_ERR_INVALID_ARG, SD_ERR_NOMEM.  Free with sd_tile_acc_free. */
sd_status sd_tile_acc_new(int w, int h, int c, int ramp, sd_tile_acc **out, sd_error *err);
void sd_tile_acc_free(sd_tile_acc *a);

/* Add tile (r.w x r.h, the accumulator's channels) placed at r.  Errors:
 * SD_ERR_INVALID_ARG. */
sd_status sd_tile_acc_add(sd_tile_acc *a, sd_rect r, const sd_img *tile, sd_error *err);

/* Write the blended image into dst (same w, h, c).  Errors: SD_ERR_INVALID_ARG (size, or a
 * pixel no tile covered). */
sd_status sd_tile_acc_finish(const sd_tile_acc *a, sd_img *dst, sd_error *err);

/* ==== noise estimation (noise_estimate.c) ============================================== */

typedef struct sd_noise_estimate {
    float sigma;       /* the estimate on the 0..255 scale: mean over the colour channels */
    float sigma_ch[3]; /* per channel (only [0] for a 1-channel image) */
    int n_ch;          /* colour channels measured: 1 or 3 */
    size_t n_used;     /* pixels per channel that entered the estimate */
} sd_noise_estimate;

/* Estimate the standard deviation of additive white noise in img (c = 1, 3 or 4; alpha is
 * not measured, and pixels with alpha < 0.5 are skipped) on the 0..255 scale.  Method, per
 * colour channel: the finest detail band is taken with Immerkaer's 3x3 operator
 * [1 -2 1; -2 4 -2; 1 -2 1] (a product of second differences across and down, blind to
 * constant, linear and axis-aligned structure; for white noise of std s its output has std
 * 6 s); pixels on edges are left out by their Sobel gradient - first the 10 % strongest,
 * then, re-estimating, every gradient above 3x what noise of the current estimate gives,
 * keeping 20..90 % of the pixels (on noise the Sobel output is independent of the
 * operator's, so leaving pixels out this way adds no bias); sigma is the median absolute
 * response / (0.6745 * 6) (Donoho's MAD rule).  Large images are measured on evenly
 * spaced rows (about 4 M pixels).  Needs at least 3x3 pixels.  Errors:
 * SD_ERR_INVALID_ARG (sizes, no opaque pixel), SD_ERR_NOMEM. */
sd_status sd_noise_estimate_img(const sd_img *img, sd_noise_estimate *out, sd_error *err);

/* Map from estimated noise to the denoise filter's img2img strength: strength_lo at or
 * below sigma_lo, strength_hi at or above sigma_hi, and in between linear in log(sigma).
 * The defaults (0.15 at sigma 5, 0.5 at sigma 50, both on the 0..255 scale) give 0.255 at
 * 10 and 0.395 at 25: enough steps to remove the noise, few enough that the photo's
 * structure survives. */
typedef struct sd_denoise_map {
    float sigma_lo, strength_lo;
    float sigma_hi, strength_hi;
} sd_denoise_map;

sd_denoise_map sd_denoise_map_default(void);

/* The strength for `sigma` under map m (NULL = defaults).  Monotone non-decreasing in
 * sigma when strength_lo <= strength_hi; a NaN sigma gives strength_lo.  A map with
 * sigma_lo >= sigma_hi, or either sigma <= 0, is treated as a step at sigma_hi. */
float sd_denoise_strength(float sigma, const sd_denoise_map *m);

#endif
