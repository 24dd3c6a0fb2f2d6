/* image.c - the sd_img type's plumbing: allocation, views, validation, copying, masked
 * compositing and conversion to the planar layout the networks take.  Kept apart from the
 * resampling and mask algorithms so those files hold one algorithm each. */
#include "internal/image.h"

#include <math.h>
#include <string.h>

sd_rect sd_rect_intersect(sd_rect a, sd_rect b)
{
    int x0 = SD_MAX(a.x, b.x), y0 = SD_MAX(a.y, b.y);
    int x1 = SD_MIN(a.x + a.w, b.x + b.w), y1 = SD_MIN(a.y + a.h, b.y + b.h);
    sd_rect r = {x0, y0, 0, 0};
    if (x1 > x0 && y1 > y0) {
        r.w = x1 - x0;
        r.h = y1 - y0;
    }
    return r;
}

/* ==== allocation and views ============================================================ */

sd_status sd_img_new(int w, int h, int c, sd_img *out, sd_error *err)
{
    memset(out, 0, sizeof *out);
    if (w < 1 || h < 1 || w > SD_IMG_MAX_DIM || h > SD_IMG_MAX_DIM || c < 1 || c > 4)
        return sd_fail(err, SD_ERR_INVALID_ARG, "image %dx%d with %d channels: out of range", w,
                       h, c);
    size_t n;
    if (!sd_mul_ok((size_t)w * (size_t)c, (size_t)h, &n) || !sd_mul_ok(n, sizeof(float), &n))
        return sd_fail(err, SD_ERR_TOO_LARGE, "image %dx%d: too large", w, h);
    float *data = sd_calloc(1, n);
    if (!data)
        return sd_fail_nomem(err, "image");
    out->w = w;
    out->h = h;
    out->c = c;
    out->stride = (size_t)w * (size_t)c;
    out->data = data;
    out->owned = true;
    return SD_OK;
}

void sd_img_free(sd_img *im)
{
    if (!im)
        return;
    if (im->owned)
        sd_free(im->data);
    memset(im, 0, sizeof *im);
}

sd_img sd_img_view(const float *data, int w, int h, int c, size_t stride)
{
    sd_img v = {w, h, c, stride, (float *)data, false};
    return v;
}

sd_img sd_img_sub(const sd_img *im, sd_rect r)
{
    assert(sd_rect_inside(r, im->w, im->h));
    sd_img v = {r.w, r.h, im->c, im->stride, sd_img_px(im, r.x, r.y), false};
    return v;
}

sd_status sd_img_check(const sd_img *im, unsigned chan_mask, const char *what, sd_error *err)
{
    if (!im || !im->data)
        return sd_fail(err, SD_ERR_INVALID_ARG, "%s: no pixels", what);
    if (im->w < 1 || im->h < 1 || im->w > SD_IMG_MAX_DIM || im->h > SD_IMG_MAX_DIM)
        return sd_fail(err, SD_ERR_INVALID_ARG, "%s: size %dx%d out of range 1..%d", what,
                       im->w, im->h, SD_IMG_MAX_DIM);
    if (im->c < 1 || im->c > 4 || !(chan_mask & (1u << im->c)))
        return sd_fail(err, SD_ERR_INVALID_ARG, "%s: %d channels not accepted here", what,
                       im->c);
    if (im->stride < (size_t)im->w * (size_t)im->c)
        return sd_fail(err, SD_ERR_INVALID_ARG, "%s: stride %zu < width %d x %d channels", what,
                       im->stride, im->w, im->c);
    return SD_OK;
}

sd_status sd_img_clone(const sd_img *src, sd_img *out, sd_error *err)
{
    sd_status st = sd_img_new(src->w, src->h, src->c, out, err);
    if (st != SD_OK)
        return st;
    return sd_img_copy(src, out, err);
}

sd_status sd_img_copy(const sd_img *src, sd_img *dst, sd_error *err)
{
    if (src->w != dst->w || src->h != dst->h || src->c != dst->c)
        return sd_fail(err, SD_ERR_INVALID_ARG, "image copy: %dx%dx%d into %dx%dx%d", src->w,
                       src->h, src->c, dst->w, dst->h, dst->c);
    if (src->data == dst->data && src->stride == dst->stride)
        return SD_OK;
    size_t row = (size_t)src->w * (size_t)src->c * sizeof(float);
    for (int y = 0; y < src->h; y++)
        memcpy(sd_img_px(dst, 0, y), sd_img_px(src, 0, y), row);
    return SD_OK;
}

void sd_img_fill(sd_img *im, float v)
{
    size_t n = (size_t)im->w * (size_t)im->c;
    for (int y = 0; y < im->h; y++) {
        float *p = sd_img_px(im, 0, y);
        for (size_t i = 0; i < n; i++)
            p[i] = v;
    }
}

/* ==== compositing and conversion ====================================================== */

sd_status sd_img_composite(sd_img *dst, int x, int y, const sd_img *src, const sd_img *mask,
                           sd_error *err)
{
    if (src->c < 3 || dst->c < 3 || mask->c != 1 || src->w != mask->w || src->h != mask->h)
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "composite: source %dx%dx%d, mask %dx%dx%d, target %d channels", src->w,
                       src->h, src->c, mask->w, mask->h, mask->c, dst->c);
    if (!sd_rect_inside(sd_rect_make(x, y, src->w, src->h), dst->w, dst->h))
        return sd_fail(err, SD_ERR_INVALID_ARG, "composite: %dx%d at (%d,%d) outside %dx%d",
                       src->w, src->h, x, y, dst->w, dst->h);
    for (int j = 0; j < src->h; j++) {
        const float *s = sd_img_px(src, 0, j);
        const float *m = sd_img_px(mask, 0, j);
        float *d = sd_img_px(dst, x, y + j);
        for (int i = 0; i < src->w; i++, s += src->c, d += dst->c) {
            float a = m[i];
            if (!(a > 0.0f))
                continue;              /* also skips NaN: the original stays */
            if (a >= 1.0f) {
                d[0] = s[0], d[1] = s[1], d[2] = s[2];
                continue;
            }
            for (int k = 0; k < 3; k++)
                d[k] = d[k] * (1.0f - a) + s[k] * a;
        }
    }
    return SD_OK;
}

static inline float clamp01(float v)
{
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

void sd_img_to_planar(const sd_img *src, int n_chan, float scale, float offset, float *dst)
{
    assert(n_chan >= 1 && n_chan <= src->c);
    size_t plane = (size_t)src->w * (size_t)src->h;
    for (int y = 0; y < src->h; y++) {
        const float *s = sd_img_px(src, 0, y);
        for (int x = 0; x < src->w; x++, s += src->c)
            for (int k = 0; k < n_chan; k++)
                dst[(size_t)k * plane + (size_t)y * (size_t)src->w + (size_t)x] =
                    s[k] * scale + offset;
    }
}

void sd_img_from_planar(const float *src, int n_chan, float scale, float offset, sd_img *dst)
{
    assert(n_chan >= 1 && n_chan <= dst->c);
    size_t plane = (size_t)dst->w * (size_t)dst->h;
    for (int y = 0; y < dst->h; y++) {
        float *d = sd_img_px(dst, 0, y);
        for (int x = 0; x < dst->w; x++, d += dst->c)
            for (int k = 0; k < n_chan; k++)
                d[k] = clamp01(src[(size_t)k * plane + (size_t)y * (size_t)dst->w + (size_t)x] *
                                   scale +
                               offset);
    }
}
