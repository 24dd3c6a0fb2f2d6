/* image_mask.c - Gaussian blur and the mask helpers the inpaint and outpaint pipelines
 * share: bounding box, emptiness, diffusers' binarisation and latent downsampling, and an
 * exact Euclidean distance transform (for bands along a mask's edge).  Together because a
 * selection mask goes through them in this order and they are small. */
#include "internal/image.h"

#include <math.h>
#include <string.h>

/* ==== Gaussian blur ==================================================================== */

enum { MAX_BLUR_RADIUS = 4096 };

int sd_blur_radius(float sigma)
{
    if (!(sigma > 0.0f))
        return 0;
    double r = 2.5 * (double)sigma + 0.5;
    return r > MAX_BLUR_RADIUS + 1 ? MAX_BLUR_RADIUS + 1 : (int)r;
}

/* Normalised weights k[0 .. 2r], k[r] the centre. */
static void gauss_kernel(float sigma, int r, float *k)
{
    double sum = 0.0;
    for (int i = -r; i <= r; i++)
        sum += exp(-(double)i * i / (2.0 * (double)sigma * sigma));
    for (int i = -r; i <= r; i++)
        k[i + r] = (float)(exp(-(double)i * i / (2.0 * (double)sigma * sigma)) / sum);
}

sd_status sd_img_blur(const sd_img *src, float sigma_x, float sigma_y, sd_img *dst,
                      sd_error *err)
{
    sd_status st = sd_img_check(src, SD_CH_ANY, "blur source", err);
    if (st != SD_OK)
        return st;
    if (dst->w != src->w || dst->h != src->h || dst->c != src->c)
        return sd_fail(err, SD_ERR_INVALID_ARG, "blur: target %dx%dx%d for %dx%dx%d", dst->w,
                       dst->h, dst->c, src->w, src->h, src->c);
    if (!(sigma_x >= 0.0f) || !(sigma_y >= 0.0f) || !isfinite(sigma_x) || !isfinite(sigma_y))
        return sd_fail(err, SD_ERR_INVALID_ARG, "blur: sigma %g x %g", (double)sigma_x,
                       (double)sigma_y);
    int rx = sd_blur_radius(sigma_x), ry = sd_blur_radius(sigma_y);
    if (rx > MAX_BLUR_RADIUS || ry > MAX_BLUR_RADIUS)
        return sd_fail(err, SD_ERR_INVALID_ARG, "blur: sigma %g x %g too large (max %d px)",
                       (double)sigma_x, (double)sigma_y, (MAX_BLUR_RADIUS - 1) * 2 / 5);
    if (rx == 0 && ry == 0)
        return sd_img_copy(src, dst, err);

    const int w = src->w, h = src->h, c = src->c;
    const size_t rowlen = (size_t)w * (size_t)c;
    float *kx = sd_malloc((size_t)(2 * rx + 1) * sizeof(float));
    float *ky = sd_malloc((size_t)(2 * ry + 1) * sizeof(float));
    float *pad = sd_malloc(((size_t)w + 2 * (size_t)rx) * (size_t)c * sizeof(float));
    float *acc = sd_malloc(rowlen * sizeof(float));
    float *tmp = NULL;
    size_t ntmp;
    if (sd_mul_ok(rowlen, (size_t)h, &ntmp))
        tmp = sd_malloc(ntmp * sizeof(float));
    if (!kx || !ky || !pad || !acc || !tmp) {
        st = sd_fail_nomem(err, "blur scratch");
        goto out;
    }
    if (rx)
        gauss_kernel(sigma_x, rx, kx);
    if (ry)
        gauss_kernel(sigma_y, ry, ky);

    /* across: each row, extended by its edge pixels, into tmp */
    for (int y = 0; y < h; y++) {
        const float *s = sd_img_px(src, 0, y);
        float *t = tmp + (size_t)y * rowlen;
        if (!rx) {
            memcpy(t, s, rowlen * sizeof(float));
            continue;
        }
        for (int x = -rx; x < w + rx; x++) {
            const float *p = s + (size_t)(x < 0 ? 0 : x >= w ? w - 1 : x) * (size_t)c;
            memcpy(pad + (size_t)(x + rx) * (size_t)c, p, (size_t)c * sizeof(float));
        }
        for (size_t i = 0; i < rowlen; i++) {
            float sum = 0.0f;
            const float *p = pad + i;
            for (int j = 0; j <= 2 * rx; j++)
                sum += kx[j] * p[(size_t)j * (size_t)c];
            t[i] = sum;
        }
    }
    /* down: each output row accumulates the clamped neighbouring rows of tmp */
    for (int y = 0; y < h; y++) {
        float *d = sd_img_px(dst, 0, y);
        if (!ry) {
            memcpy(d, tmp + (size_t)y * rowlen, rowlen * sizeof(float));
            continue;
        }
        memset(acc, 0, rowlen * sizeof(float));
        for (int j = -ry; j <= ry; j++) {
            int yy = y + j < 0 ? 0 : y + j >= h ? h - 1 : y + j;
            const float *t = tmp + (size_t)yy * rowlen;
            float wj = ky[j + ry];
            for (size_t i = 0; i < rowlen; i++)
                acc[i] += wj * t[i];
        }
        memcpy(d, acc, rowlen * sizeof(float));
    }
out:
    sd_free(kx);
    sd_free(ky);
    sd_free(pad);
    sd_free(acc);
    sd_free(tmp);
    return st;
}

/* ==== bounding box, emptiness, binarisation ============================================ */

bool sd_mask_bbox(const sd_img *mask, float thresh, sd_rect *out)
{
    int x0 = mask->w, x1 = -1, y0 = mask->h, y1 = -1;
    const size_t c = (size_t)mask->c;
    for (int y = 0; y < mask->h; y++) {
        const float *m = sd_img_px(mask, 0, y);
        int first = -1, last = -1;
        for (int x = 0; x < mask->w; x++)
            if (m[(size_t)x * c] > thresh) {
                first = x;
                break;
            }
        if (first < 0)
            continue;
        for (int x = mask->w - 1; x >= first; x--)
            if (m[(size_t)x * c] > thresh) {
                last = x;
                break;
            }
        x0 = SD_MIN(x0, first);
        x1 = SD_MAX(x1, last);
        y0 = SD_MIN(y0, y);
        y1 = y;
    }
    memset(out, 0, sizeof *out);
    if (x1 < 0)
        return false;
    *out = sd_rect_make(x0, y0, x1 - x0 + 1, y1 - y0 + 1);
    return true;
}

bool sd_mask_is_empty(const sd_img *mask, float thresh)
{
    const size_t c = (size_t)mask->c;
    for (int y = 0; y < mask->h; y++) {
        const float *m = sd_img_px(mask, 0, y);
        for (int x = 0; x < mask->w; x++)
            if (m[(size_t)x * c] > thresh)
                return false;
    }
    return true;
}

sd_status sd_mask_binarize(const sd_img *src, sd_img *dst, sd_error *err)
{
    if (src->w != dst->w || src->h != dst->h || src->c != dst->c)
        return sd_fail(err, SD_ERR_INVALID_ARG, "binarize: %dx%dx%d into %dx%dx%d", src->w,
                       src->h, src->c, dst->w, dst->h, dst->c);
    size_t n = (size_t)src->w * (size_t)src->c;
    for (int y = 0; y < src->h; y++) {
        const float *s = sd_img_px(src, 0, y);
        float *d = sd_img_px(dst, 0, y);
        for (size_t i = 0; i < n; i++)
            d[i] = s[i] >= 0.5f ? 1.0f : 0.0f;
    }
    return SD_OK;
}

sd_status sd_mask_to_latent(const sd_img *mask, sd_img *out, sd_error *err)
{
    memset(out, 0, sizeof *out);
    sd_status st = sd_img_check(mask, SD_CH_MASK, "latent mask", err);
    if (st != SD_OK)
        return st;
    if (mask->w % 8 || mask->h % 8)
        return sd_fail(err, SD_ERR_INVALID_ARG, "latent mask: %dx%d is not a multiple of 8",
                       mask->w, mask->h);
    st = sd_img_new(mask->w / 8, mask->h / 8, 1, out, err);
    if (st != SD_OK)
        return st;
    for (int y = 0; y < out->h; y++)
        for (int x = 0; x < out->w; x++)
            *sd_img_px(out, x, y) = *sd_img_px(mask, 8 * x, 8 * y) >= 0.5f ? 1.0f : 0.0f;
    return SD_OK;
}

/* ==== Euclidean distance transform ===================================================== */

#define NO_SITE 1e20

/* One line of the squared distance transform (Felzenszwalb & Huttenlocher 2012): d[q] =
 * min over p of (q - p)^2 + f[p], via the lower envelope of the parabolas rooted at each p.
 * v: [n] parabola roots, z: [n + 1] boundaries between them. */
static void edt_line(const double *f, double *d, int n, int *v, double *z)
{
    int k = 0;
    v[0] = 0;
    z[0] = -INFINITY;
    z[1] = INFINITY;
    for (int q = 1; q < n; q++) {
        /* where the parabola of q overtakes the rightmost one kept; z[0] = -inf stops it */
        double s;
        for (;;) {
            int p = v[k];
            s = ((f[q] + (double)q * q) - (f[p] + (double)p * p)) / (2.0 * (q - p));
            if (s > z[k])
                break;
            k--;
        }
        k++;
        v[k] = q;
        z[k] = s;
        z[k + 1] = INFINITY;
    }
    k = 0;
    for (int q = 0; q < n; q++) {
        while (z[k + 1] < q)
            k++;
        double dq = q - v[k];
        d[q] = dq * dq + f[v[k]];
    }
}

/* Squared distance from every pixel to the nearest pixel whose class is `site_inside`,
 * into sq (w*h floats, row-major, NO_SITE-ish where none exists). */
static void edt_2d(const sd_img *mask, bool site_inside, float *sq, double *f, double *d, int *v,
                   double *z)
{
    const int w = mask->w, h = mask->h;
    for (int x = 0; x < w; x++) {      /* columns */
        for (int y = 0; y < h; y++) {
            bool inside = *sd_img_px(mask, x, y) >= 0.5f;
            f[y] = inside == site_inside ? 0.0 : NO_SITE;
        }
        edt_line(f, d, h, v, z);
        for (int y = 0; y < h; y++)
            sq[(size_t)y * (size_t)w + (size_t)x] = (float)d[y];
    }
    for (int y = 0; y < h; y++) {      /* rows */
        float *row = sq + (size_t)y * (size_t)w;
        for (int x = 0; x < w; x++)
            f[x] = row[x];
        edt_line(f, d, w, v, z);
        for (int x = 0; x < w; x++)
            row[x] = (float)d[x];
    }
}

sd_status sd_mask_distance(const sd_img *mask, sd_img *dst, sd_error *err)
{
    sd_status st = sd_img_check(mask, SD_CH_ANY, "distance mask", err);
    if (st != SD_OK)
        return st;
    if (dst->w != mask->w || dst->h != mask->h || dst->c != 1)
        return sd_fail(err, SD_ERR_INVALID_ARG, "distance: target %dx%dx%d for %dx%d", dst->w,
                       dst->h, dst->c, mask->w, mask->h);
    const int w = mask->w, h = mask->h, n = SD_MAX(w, h);
    size_t npx = (size_t)w * (size_t)h;
    float *to_in = sd_malloc(npx * sizeof(float));
    float *to_out = sd_malloc(npx * sizeof(float));
    double *f = sd_malloc((size_t)n * sizeof(double));
    double *d = sd_malloc((size_t)n * sizeof(double));
    double *z = sd_malloc(((size_t)n + 1) * sizeof(double));
    int *v = sd_malloc((size_t)n * sizeof(int));
    if (!to_in || !to_out || !f || !d || !z || !v) {
        st = sd_fail_nomem(err, "distance transform");
        goto out;
    }
    edt_2d(mask, true, to_in, f, d, v, z);
    edt_2d(mask, false, to_out, f, d, v, z);
    for (int y = 0; y < h; y++) {
        float *o = sd_img_px(dst, 0, y);
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * (size_t)w + (size_t)x;
            bool inside = *sd_img_px(mask, x, y) >= 0.5f;
            float sq = inside ? to_out[i] : to_in[i];
            o[x] = sq >= (float)(NO_SITE / 2) ? INFINITY : sqrtf(sq);
        }
    }
out:
    sd_free(to_in);
    sd_free(to_out);
    sd_free(f);
    sd_free(d);
    sd_free(z);
    sd_free(v);
    return st;
}
