/* image_resize.c - resampling of sd_img images: a separable Lanczos-3 filter for scaling
 * pictures up and down (the crop of an inpaint region to the model's resolution and the
 * result back), and torch's "nearest" rule for masks.  It lives apart because every
 * pipeline resizes, and one well-tested filter keeps them consistent.
 *
 * Lanczos geometry (as in PIL, which A1111 resizes with): output sample i sits at source
 * position (i + 0.5) * in/out in pixel-edge coordinates; source pixel x sits at x + 0.5.
 * When shrinking, the kernel is stretched by in/out so it removes what the smaller grid
 * cannot hold.  Taps outside the image are dropped and the rest renormalised to sum 1, so a
 * constant image stays constant up to rounding. */
#include "internal/image.h"

#include <math.h>
#include <string.h>

/* ==== Lanczos taps ===================================================================== */

enum { LANCZOS_A = 3 };

static double lanczos(double x)
{
    x = fabs(x);
    if (x < 1e-12)
        return 1.0;
    if (x >= LANCZOS_A)
        return 0.0;
    double px = M_PI * x;
    return LANCZOS_A * sin(px) * sin(px / LANCZOS_A) / (px * px);
}

/* For each of `out` outputs: the first source index and `max` weights (unused ones 0). */
typedef struct taps {
    int max;
    int *first;       /* [out] */
    int *count;       /* [out] */
    float *w;         /* [out][max] */
} taps;

static void taps_free(taps *t)
{
    sd_free(t->first);
    sd_free(t->count);
    sd_free(t->w);
    memset(t, 0, sizeof *t);
}

static sd_status taps_make(int in, int out, taps *t, sd_error *err)
{
    memset(t, 0, sizeof *t);
    double scale = (double)in / out;
    double fscale = scale > 1.0 ? scale : 1.0;
    double support = LANCZOS_A * fscale;
    t->max = in == out ? 1 : (int)ceil(2.0 * support) + 2;
    t->first = sd_calloc((size_t)out, sizeof(int));
    t->count = sd_calloc((size_t)out, sizeof(int));
    size_t nw;
    if (sd_mul_ok((size_t)out, (size_t)t->max, &nw))
        t->w = sd_calloc(nw, sizeof(float));
    if (!t->first || !t->count || !t->w) {
        taps_free(t);
        return sd_fail_nomem(err, "resize taps");
    }
    for (int i = 0; i < out; i++) {
        float *w = t->w + (size_t)i * (size_t)t->max;
        if (in == out) {               /* exact identity on this axis */
            t->first[i] = i;
            t->count[i] = 1;
            w[0] = 1.0f;
            continue;
        }
        double center = (i + 0.5) * scale;
        int lo = (int)floor(center - support), hi = (int)ceil(center + support);
        lo = SD_MAX(lo, 0);
        hi = SD_MIN(hi, in);
        if (hi - lo > t->max)
            hi = lo + t->max;
        double sum = 0.0;
        for (int x = lo; x < hi; x++)
            sum += lanczos((x + 0.5 - center) / fscale);
        if (SD_NEVER(!(sum > 0.0))) {  /* the nearest tap always has weight > 0.6 */
            taps_free(t);
            return sd_fail(err, SD_ERR_INTERNAL, "resize %d -> %d: empty filter at %d", in,
                           out, i);
        }
        t->first[i] = lo;
        t->count[i] = hi - lo;
        for (int x = lo; x < hi; x++)
            w[x - lo] = (float)(lanczos((x + 0.5 - center) / fscale) / sum);
    }
    return SD_OK;
}

/* ==== the two passes ================================================================== */

static inline float clamp01(float v)
{
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

static sd_status resize_lanczos(const sd_img *src, sd_img *dst, sd_error *err)
{
    const int c = src->c, win = src->w, hin = src->h, wout = dst->w, hout = dst->h;
    const bool premul = c == 4;
    taps tx, ty;
    sd_status st = taps_make(win, wout, &tx, err);
    if (st != SD_OK)
        return st;
    st = taps_make(hin, hout, &ty, err);
    if (st != SD_OK) {
        taps_free(&tx);
        return st;
    }
    /* tmp: the horizontally resampled rows, [hin][wout * c]; row: one premultiplied source
     * row; acc: one output row being accumulated. */
    size_t trow = (size_t)wout * (size_t)c, ntmp;
    float *tmp = NULL, *row = NULL, *acc = NULL;
    if (sd_mul_ok(trow, (size_t)hin, &ntmp))
        tmp = sd_malloc(ntmp * sizeof(float));
    row = sd_malloc((size_t)win * (size_t)c * sizeof(float));
    acc = sd_malloc(trow * sizeof(float));
    if (!tmp || !row || !acc) {
        st = sd_fail_nomem(err, "resize scratch");
        goto out;
    }

    for (int y = 0; y < hin; y++) {
        const float *s = sd_img_px(src, 0, y);
        if (premul) {
            for (int x = 0; x < win; x++) {
                const float *p = s + (size_t)x * 4;
                float a = p[3];
                float *q = row + (size_t)x * 4;
                q[0] = p[0] * a, q[1] = p[1] * a, q[2] = p[2] * a, q[3] = a;
            }
            s = row;
        }
        float *t = tmp + (size_t)y * trow;
        for (int x = 0; x < wout; x++) {
            const float *w = tx.w + (size_t)x * (size_t)tx.max;
            const float *p = s + (size_t)tx.first[x] * (size_t)c;
            for (int k = 0; k < c; k++) {
                float sum = 0.0f;
                for (int j = 0; j < tx.count[x]; j++)
                    sum += w[j] * p[(size_t)j * (size_t)c + (size_t)k];
                t[(size_t)x * (size_t)c + (size_t)k] = sum;
            }
        }
    }

    for (int y = 0; y < hout; y++) {
        const float *w = ty.w + (size_t)y * (size_t)ty.max;
        memset(acc, 0, trow * sizeof(float));
        for (int j = 0; j < ty.count[y]; j++) {
            const float *t = tmp + (size_t)(ty.first[y] + j) * trow;
            float wj = w[j];
            for (size_t i = 0; i < trow; i++)
                acc[i] += wj * t[i];
        }
        float *d = sd_img_px(dst, 0, y);
        if (premul) {
            for (int x = 0; x < wout; x++) {
                const float *p = acc + (size_t)x * 4;
                float *q = d + (size_t)x * 4;
                float a = clamp01(p[3]);
                /* below 1/65536 coverage the colour is noise from ringing: drop it */
                float inv = a > (1.0f / 65536.0f) ? 1.0f / a : 0.0f;
                q[0] = clamp01(p[0] * inv), q[1] = clamp01(p[1] * inv);
                q[2] = clamp01(p[2] * inv), q[3] = a;
            }
        } else {
            for (size_t i = 0; i < trow; i++)
                d[i] = clamp01(acc[i]);
        }
    }
out:
    sd_free(tmp);
    sd_free(row);
    sd_free(acc);
    taps_free(&tx);
    taps_free(&ty);
    return st;
}

/* torch's nearest_idx for an explicit output size (scale = (float)in / out, float maths). */
static int nearest_index(int i, int in, int out)
{
    if (in == out)
        return i;
    if (out == 2 * in)
        return i >> 1;
    float scale = (float)in / (float)out;
    int s = (int)floorf((float)i * scale);
    return SD_MIN(s, in - 1);
}

static void resize_nearest(const sd_img *src, sd_img *dst)
{
    const size_t c = (size_t)src->c;
    for (int y = 0; y < dst->h; y++) {
        const float *s = sd_img_px(src, 0, nearest_index(y, src->h, dst->h));
        float *d = sd_img_px(dst, 0, y);
        for (int x = 0; x < dst->w; x++) {
            const float *p = s + (size_t)nearest_index(x, src->w, dst->w) * c;
            for (size_t k = 0; k < c; k++)
                d[(size_t)x * c + k] = clamp01(p[k]);
        }
    }
}

/* ==== entry points ===================================================================== */

sd_status sd_img_resize_into(const sd_img *src, sd_img *dst, sd_resize_filter f, sd_error *err)
{
    sd_status st = sd_img_check(src, SD_CH_ANY, "resize source", err);
    if (st == SD_OK)
        st = sd_img_check(dst, SD_CH_ANY, "resize target", err);
    if (st != SD_OK)
        return st;
    if (src->c != dst->c)
        return sd_fail(err, SD_ERR_INVALID_ARG, "resize: %d channels into %d", src->c, dst->c);
    if (src->w == dst->w && src->h == dst->h)
        return sd_img_copy(src, dst, err);
    switch (f) {
    case SD_RESIZE_LANCZOS3:
        return resize_lanczos(src, dst, err);
    case SD_RESIZE_NEAREST:
        resize_nearest(src, dst);
        return SD_OK;
    }
    return sd_fail(err, SD_ERR_INVALID_ARG, "resize: unknown filter %d", (int)f);
}

sd_status sd_img_resize(const sd_img *src, int w, int h, sd_resize_filter f, sd_img *out,
                        sd_error *err)
{
    sd_status st = sd_img_new(w, h, src->c, out, err);
    if (st == SD_OK)
        st = sd_img_resize_into(src, out, f, err);
    if (st != SD_OK)
        sd_img_free(out);
    return st;
}
