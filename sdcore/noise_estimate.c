/* noise_estimate.c - how noisy is a photo?  The denoise filter picks its img2img strength
 * from the answer, and the dialog can show it, so it lives in its own file with its own
 * tests on synthetic noise of known sigma.
 *
 * Method (per colour channel; see imgproc.h for the contract):
 *   - detail band: Immerkaer's operator N = [1 -2 1; -2 4 -2; 1 -2 1] (J. Immerkaer, "Fast
 *     noise variance estimation", CVIU 1996), the difference of two Laplacians, equal to
 *     the product of the second differences across and down.  It vanishes on constant,
 *     linear and bilinear intensity and on any structure varying along one axis only, and
 *     passes white noise with gain sqrt(sum N^2) = 6;
 *   - edge exclusion (after Tai & Yang 2008): the pixels with the 10 % largest Sobel
 *     gradient are left out.  The Sobel kernels are odd and N is even, so on white noise
 *     their outputs are uncorrelated, i.e. independent for Gaussian noise: leaving pixels
 *     out by gradient does not bias the noise statistic;
 *   - robust scale: Donoho's MAD rule, sigma = median |N * I| / (0.6745 * 6), so the few
 *     edge and texture responses that remain cannot inflate it the way a mean would.
 * Medians come from 65536-bin histograms with linear interpolation inside the median bin
 * (resolution better than 0.01 on the 0..255 scale), so memory does not grow with the
 * image. */
#include "internal/imgproc.h"

#include <math.h>
#include <string.h>

enum { NBINS = 1 << 16 };
static const double GRAD_MAX = 8.0;   /* |Sobel| <= 4 * sqrt(2) on 0..1 samples */
static const double RESP_MAX = 8.0;   /* |N * I| <= 8 on 0..1 samples */
static const double KEEP = 0.9;       /* fraction of pixels kept, lowest gradients first */
static const double MAD = 0.6744897501960817; /* median of |N(0, 1)| */

static inline int bin_of(double v, double max)
{
    double b = v * (NBINS / max);
    return b >= NBINS - 1 ? NBINS - 1 : b > 0.0 ? (int)b : 0;
}

/* Value at quantile q (0..1) of the histogram, interpolated linearly inside its bin. */
static double hist_quantile(const uint64_t *hist, uint64_t total, double q, double max)
{
    double target = q * (double)total, cum = 0.0;
    for (int b = 0; b < NBINS; b++) {
        double next = cum + (double)hist[b];
        if (hist[b] && next >= target) {
            double frac = (target - cum) / (double)hist[b];
            return (b + frac) * (max / NBINS);
        }
        cum = next;
    }
    return max;
}

/* Sobel gradient magnitude and Immerkaer response at (x, y) of channel k; the 3x3 block
 * is read through row pointers above (a), at (b) and below (c) the pixel. */
static void measure(const sd_img *im, int x, int y, int k, double *grad, double *resp)
{
    const size_t c = (size_t)im->c;
    const float *a = sd_img_px(im, x - 1, y - 1) + k, *b = sd_img_px(im, x - 1, y) + k,
                *d = sd_img_px(im, x - 1, y + 1) + k;
    double a0 = a[0], a1 = a[c], a2 = a[2 * c];
    double b0 = b[0], b1 = b[c], b2 = b[2 * c];
    double d0 = d[0], d1 = d[c], d2 = d[2 * c];
    double gx = (a2 + 2.0 * b2 + d2) - (a0 + 2.0 * b0 + d0);
    double gy = (d0 + 2.0 * d1 + d2) - (a0 + 2.0 * a1 + a2);
    *grad = sqrt(gx * gx + gy * gy);
    /* second difference down of the second differences across */
    double sa = a0 - 2.0 * a1 + a2, sb = b0 - 2.0 * b1 + b2, sc = d0 - 2.0 * d1 + d2;
    *resp = fabs(sa - 2.0 * sb + sc);
}

static bool opaque(const sd_img *im, int x, int y)
{
    return im->c != 4 || sd_img_px(im, x, y)[3] >= 0.5f;
}

sd_status sd_noise_estimate_img(const sd_img *img, sd_noise_estimate *out, sd_error *err)
{
    memset(out, 0, sizeof *out);
    sd_status st = sd_img_check(img, 0x1a, "noise estimate image", err);
    if (st != SD_OK)
        return st;
    if (img->w < 3 || img->h < 3)
        return sd_fail(err, SD_ERR_INVALID_ARG, "noise estimate: image %dx%d (3x3 at least)",
                       img->w, img->h);
    uint64_t *hg = sd_malloc(NBINS * sizeof(uint64_t)), *hr = sd_malloc(NBINS * sizeof(uint64_t));
    if (!hg || !hr) {
        st = sd_fail_nomem(err, "noise estimate histograms");
        goto out;
    }
    const int nch = img->c == 1 ? 1 : 3;
    double sum = 0.0;
    for (int k = 0; k < nch; k++) {
        memset(hg, 0, NBINS * sizeof(uint64_t));
        memset(hr, 0, NBINS * sizeof(uint64_t));
        uint64_t total = 0;
        double g, r;
        for (int y = 1; y < img->h - 1; y++)
            for (int x = 1; x < img->w - 1; x++)
                if (opaque(img, x, y)) {
                    measure(img, x, y, k, &g, &r);
                    hg[bin_of(g, GRAD_MAX)]++;
                    total++;
                }
        if (total == 0) {
            st = sd_fail(err, SD_ERR_INVALID_ARG, "noise estimate: no opaque pixels");
            goto out;
        }
        /* the gradient bin at which KEEP of the pixels are reached */
        uint64_t cum = 0, want = (uint64_t)ceil(KEEP * (double)total);
        int gmax = 0;
        while (gmax < NBINS - 1 && cum + hg[gmax] < want)
            cum += hg[gmax++];
        uint64_t used = 0;
        for (int y = 1; y < img->h - 1; y++)
            for (int x = 1; x < img->w - 1; x++)
                if (opaque(img, x, y)) {
                    measure(img, x, y, k, &g, &r);
                    if (bin_of(g, GRAD_MAX) <= gmax) {
                        hr[bin_of(r, RESP_MAX)]++;
                        used++;
                    }
                }
        double med = hist_quantile(hr, used, 0.5, RESP_MAX);
        out->sigma_ch[k] = (float)(med / (MAD * 6.0) * 255.0);
        out->n_used = used;
        sum += out->sigma_ch[k];
    }
    out->n_ch = nch;
    out->sigma = (float)(sum / nch);
out:
    sd_free(hg);
    sd_free(hr);
    if (st != SD_OK)
        memset(out, 0, sizeof *out);
    return st;
}

/* ==== sigma -> strength ================================================================ */

sd_denoise_map sd_denoise_map_default(void)
{
    return (sd_denoise_map){
        .sigma_lo = 5.0f, .strength_lo = 0.15f, .sigma_hi = 50.0f, .strength_hi = 0.5f};
}

float sd_denoise_strength(float sigma, const sd_denoise_map *m)
{
    sd_denoise_map d = sd_denoise_map_default();
    if (!m)
        m = &d;
    if (!(sigma >= 0.0f))
        return m->strength_lo;
    if (!(m->sigma_lo > 0.0f) || !(m->sigma_hi > m->sigma_lo))
        return sigma < m->sigma_hi ? m->strength_lo : m->strength_hi;
    if (sigma <= m->sigma_lo)
        return m->strength_lo;
    if (sigma >= m->sigma_hi)
        return m->strength_hi;
    double t = log((double)sigma / m->sigma_lo) / log((double)m->sigma_hi / m->sigma_lo);
    return (float)(m->strength_lo + t * (m->strength_hi - m->strength_lo));
}
