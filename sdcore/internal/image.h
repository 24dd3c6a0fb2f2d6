/* internal/image.h - the engine's image type and the primitive image operations every
 * pipeline shares: allocation and views, copying and masked compositing, conversion to and
 * from planar tensors, resampling, blurring and mask helpers.  The pipeline-level geometry
 * built on these (inpaint crop/paste, colour matching, outpaint, tiles, noise estimation)
 * is declared in internal/imgproc.h.
 *
 * PIXELS
 *   An sd_img holds float samples, interleaved: pixel (x, y) channel k is
 *   data[y * stride + x * c + k].  stride counts floats (not bytes) between the starts of
 *   two rows and is >= w * c, so a view of a sub-rectangle or of a caller's buffer needs no
 *   copy.  Colour images are non-linear sRGB in 0..1 (GEGL "R'G'B'A float"), c = 3 (RGB) or
 *   4 (RGBA, straight, i.e. not premultiplied, alpha).  Masks are c = 1, 0..1, 1 = regenerate.
 *   Operations that produce pixels clamp them to 0..1 unless stated.
 *
 * OWNERSHIP
 *   owned = true: data came from sd_img_new and is released by sd_img_free.  A view
 *   (sd_img_view, sd_img_sub) borrows its data; sd_img_free only resets it.  Functions that
 *   take a `const sd_img *` never write through it, even though the view's pointer type is
 *   not const (a view of a caller's const buffer is made with a cast inside sd_img_view).
 *
 * THREADS
 *   Nothing here has state: every function may be called from any thread on distinct
 *   images.  All run on the calling thread (no pool).
 */
#ifndef SD_INTERNAL_IMAGE_H
#define SD_INTERNAL_IMAGE_H

#include "internal/common.h"

/* Largest accepted width or height; keeps every coordinate product far from overflow. */
#define SD_IMG_MAX_DIM (1 << 18)

typedef struct sd_img {
    int w, h;         /* extent in pixels */
    int c;            /* channels per pixel: 1 (mask), 3 (RGB) or 4 (RGBA) */
    size_t stride;    /* floats from one row's start to the next's, >= w * c */
    float *data;      /* [h][stride], pixel (x, y) at data + y * stride + x * c */
    bool owned;       /* data is freed by sd_img_free */
} sd_img;

/* A rectangle in pixel coordinates: columns x .. x+w-1, rows y .. y+h-1. */
typedef struct sd_rect {
    int x, y, w, h;
} sd_rect;

/* Address of pixel (x, y); no bounds check. */
static inline float *sd_img_px(const sd_img *im, int x, int y)
{
    return im->data + (size_t)y * im->stride + (size_t)x * (size_t)im->c;
}

static inline sd_rect sd_rect_make(int x, int y, int w, int h)
{
    sd_rect r = {x, y, w, h};
    return r;
}

/* True when r is non-empty and lies inside a w x h image. */
static inline bool sd_rect_inside(sd_rect r, int w, int h)
{
    return r.w > 0 && r.h > 0 && r.x >= 0 && r.y >= 0 && r.x <= w - r.w && r.y <= h - r.h;
}

/* Intersection of two rectangles; w or h is 0 when they do not overlap. */
sd_rect sd_rect_intersect(sd_rect a, sd_rect b);

/* ---- allocation and views ------------------------------------------------------------ */

/* Allocate a zero-filled w x h x c image with stride w * c into *out (owned).
 * Errors: SD_ERR_INVALID_ARG (w, h outside 1..SD_IMG_MAX_DIM or c outside 1..4),
 * SD_ERR_NOMEM.  On error *out is zeroed. */
sd_status sd_img_new(int w, int h, int c, sd_img *out, sd_error *err);

/* Release an owned image's data and zero the struct; a view is only zeroed.  NULL is a
 * no-op. */
void sd_img_free(sd_img *im);

/* A non-owning view of a caller's buffer (stride in floats).  No validation: pass the
 * result to sd_img_check before use when the values come from outside the engine. */
sd_img sd_img_view(const float *data, int w, int h, int c, size_t stride);

/* A view of the rectangle r of im (same channels and stride).  r must satisfy
 * sd_rect_inside(r, im->w, im->h); the view borrows im's data. */
sd_img sd_img_sub(const sd_img *im, sd_rect r);

/* Channel counts accepted by sd_img_check: bit k set = k channels. */
#define SD_CH_MASK (1u << 1)
#define SD_CH_COLOR ((1u << 3) | (1u << 4))            /* RGB or RGBA */
#define SD_CH_ANY ((1u << 1) | (1u << 2) | (1u << 3) | (1u << 4))

/* Validate an image that came from outside: data non-NULL, sizes in range, stride >= w*c,
 * channels among those allowed by `chan_mask` (SD_CH_*, or bit k set = k channels
 * accepted).  `what` names the argument in the message.  Returns SD_OK or
 * SD_ERR_INVALID_ARG. */
sd_status sd_img_check(const sd_img *im, unsigned chan_mask, const char *what, sd_error *err);

/* A new owned, tightly packed copy of src.  Errors: SD_ERR_NOMEM. */
sd_status sd_img_clone(const sd_img *src, sd_img *out, sd_error *err);

/* Copy every sample of src into dst; both must have the same w, h and c (else
 * SD_ERR_INVALID_ARG).  src and dst may be the same image but must not otherwise overlap. */
sd_status sd_img_copy(const sd_img *src, sd_img *dst, sd_error *err);

/* Fill every sample of im with v. */
void sd_img_fill(sd_img *im, float v);

/* ---- compositing and conversion ------------------------------------------------------ */

/* Composite src (w x h, c >= 3) into dst at (x, y) through mask (w x h, c = 1):
 *     dst = dst * (1 - m) + src * m     for the colour channels (first 3),
 * with m clamped to 0..1.  Where m <= 0 dst is left bit-identical; where m >= 1 the colour
 * becomes src's exactly.  dst's alpha (c = 4) is never touched: alpha is carried through,
 * not generated.  The rectangle (x, y, w, h) must lie inside dst.
 * Errors: SD_ERR_INVALID_ARG (sizes/channels/placement). */
sd_status sd_img_composite(sd_img *dst, int x, int y, const sd_img *src, const sd_img *mask,
                           sd_error *err);

/* Write the first `n_chan` channels of src as a planar [n_chan][h][w] float array, each
 * sample mapped to v * scale + offset (e.g. scale 2, offset -1 for the VAE's -1..1 input).
 * dst must hold n_chan * w * h floats; n_chan <= src->c. */
void sd_img_to_planar(const sd_img *src, int n_chan, float scale, float offset, float *dst);

/* Read a planar [n_chan][h][w] array into the first n_chan channels of dst (same w, h),
 * mapping v -> v * scale + offset and clamping to 0..1 (e.g. scale 0.5, offset 0.5 for the
 * VAE's output).  Other channels of dst are left as they are. */
void sd_img_from_planar(const float *src, int n_chan, float scale, float offset, sd_img *dst);

/* ---- resampling (image_resize.c) ----------------------------------------------------- */

typedef enum sd_resize_filter {
    /* Lanczos-3 (a = 3), widened by the scale factor when shrinking so it low-passes before
     * decimating; taps that fall outside the image are dropped and the rest renormalised
     * (PIL's convention, which A1111 uses through Image.resize(LANCZOS)).  RGBA is
     * resampled premultiplied, so a transparent pixel's colour does not bleed. */
    SD_RESIZE_LANCZOS3,
    /* torch.nn.functional.interpolate(mode="nearest") with an output size: source index
     * floor(i * (float)in / out).  Shrinking a mask by 8 picks the top-left pixel of every
     * 8x8 block, as diffusers does for its latent mask. */
    SD_RESIZE_NEAREST,
} sd_resize_filter;

/* Resample src to dst's size (dst allocated by the caller, same c, must not overlap src).
 * Same size is an exact copy.  Output clamped to 0..1.  Errors: SD_ERR_INVALID_ARG,
 * SD_ERR_NOMEM (scratch). */
sd_status sd_img_resize_into(const sd_img *src, sd_img *dst, sd_resize_filter f, sd_error *err);

/* The same into a new owned w x h image *out.  On error *out is zeroed. */
sd_status sd_img_resize(const sd_img *src, int w, int h, sd_resize_filter f, sd_img *out,
                        sd_error *err);

/* ---- blurring and masks (image_mask.c) ----------------------------------------------- */

/* Kernel radius used for a Gaussian of standard deviation sigma: int(2.5 * sigma + 0.5),
 * the relation A1111 uses for its mask blur (cv2.GaussianBlur with ksize 2r+1 and that
 * sigma, where A1111's "mask blur" setting is the sigma itself).  0 for sigma <= 0. */
int sd_blur_radius(float sigma);

/* Separable Gaussian blur of every channel of src into dst (same w, h, c; dst may be src),
 * sigma_x across and sigma_y down (0 = no blur on that axis), truncated at sd_blur_radius
 * and normalised, with clamp-to-edge borders (cv2's default is reflect-101: a mask
 * touching the image border stays at full strength there with clamp, which is what an
 * inpaint mask at the border wants).  Both sigmas 0 is an exact copy.  Not clamped.
 * Errors: SD_ERR_INVALID_ARG (sizes, negative or non-finite sigma, radius > 4096),
 * SD_ERR_NOMEM. */
sd_status sd_img_blur(const sd_img *src, float sigma_x, float sigma_y, sd_img *dst,
                      sd_error *err);

/* Bounding box of the pixels of channel 0 whose value is > thresh (thresh 0: every
 * non-zero pixel, as PIL's getbbox on an L image does).  Returns false, and leaves *out
 * zeroed, when no pixel qualifies (an empty mask). */
bool sd_mask_bbox(const sd_img *mask, float thresh, sd_rect *out);

/* True when no pixel of channel 0 is > thresh. */
bool sd_mask_is_empty(const sd_img *mask, float thresh);

/* Binarise as diffusers does: dst = (src >= 0.5) ? 1 : 0 on every sample (same w, h, c;
 * dst may be src).  Errors: SD_ERR_INVALID_ARG. */
sd_status sd_mask_binarize(const sd_img *src, sd_img *dst, sd_error *err);

/* The latent-resolution mask the inpaint pipelines use: binarise (>= 0.5) then take the
 * top-left pixel of every 8x8 block (diffusers' F.interpolate(mask, (h/8, w/8)) nearest).
 * mask: c = 1, w and h multiples of 8; *out becomes a new owned (w/8) x (h/8) x 1 image.
 * Errors: SD_ERR_INVALID_ARG, SD_ERR_NOMEM. */
sd_status sd_mask_to_latent(const sd_img *mask, sd_img *out, sd_error *err);

/* Euclidean distance transform of a binarised mask (channel 0 >= 0.5 is "inside").
 * dst (same w, h, c = 1) receives, for every inside pixel, the distance in pixels to the
 * nearest outside pixel centre, and for every outside pixel the distance to the nearest
 * inside pixel centre (so pixels next to the boundary get 1).  When one class is absent the
 * other's distances are +INFINITY.  Exact (Felzenszwalb-Huttenlocher lower envelope).
 * Errors: SD_ERR_INVALID_ARG, SD_ERR_NOMEM. */
sd_status sd_mask_distance(const sd_img *mask, sd_img *dst, sd_error *err);

#endif
