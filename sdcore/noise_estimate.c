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
 *   - edge exclusion (after Tai & Yang 2008, made adaptive): pixels with a large Sobel
 *     gradient are left out, first the 10 % strongest, then every one above what noise of
 *     the current estimate would rarely reach, re-estimating until that settles.  The
 *     Sobel kernels are odd and N is even, so on white noise their outputs are
 *     uncorrelated, i.e. independent for Gaussian noise: leaving pixels out by gradient,
 *     however many, does not bias the noise statistic; it only removes edges;
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
/* Edge exclusion keeps, lowest gradients first, between KEEP_MIN and KEEP_MAX of the
 * pixels: all those whose Sobel magnitude stays below GRAD_NOISE_MULT times the typical
 * magnitude of noise alone (sigma * sqrt(12), the Sobel kernels' norm), refined over at
 * most MAX_ROUNDS re-estimates. */
static const double KEEP_MIN = 0.2, KEEP_MAX = 0.9;
static const double GRAD_NOISE_MULT = 3.0;
enum { MAX_ROUNDS = 3 };
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

/* The rows measured: every row_step-th interior row, so at most about MAX_SAMPLES pixels
 * per channel are visited (millions of samples pin a median far below the 1 % level). */
enum { MAX_SAMPLES = 1 << 22 };

typedef struct pass {
    const sd_img *img;
    int k, row_step;
    uint64_t *hist;
} pass;

/* One visit of the sampled pixels: with gmax < 0, the histogram of gradient magnitudes;
 * otherwise that of the responses of pixels whose gradient bin is <= gmax.  Returns the
 * number of pixels counted. */
static uint64_t run_pass(const pass *p, int gmax)
{
    memset(p->hist, 0, NBINS * sizeof(uint64_t));
    uint64_t n = 0;
    double g, r;
    for (int y = 1; y < p->img->h - 1; y += p->row_step)
        for (int x = 1; x < p->img->w - 1; x++) {
            if (!opaque(p->img, x, y))
                continue;
            measure(p->img, x, y, p->k, &g, &r);
            if (gmax < 0) {
                p->hist[bin_of(g, GRAD_MAX)]++;
                n++;
            } else if (bin_of(g, GRAD_MAX) <= gmax) {
                p->hist[bin_of(r, RESP_MAX)]++;
                n++;
            }
        }
    return n;
}

/* The first bin at which the cumulative count reaches q * total. */
static int hist_bin_at(const uint64_t *hist, uint64_t total, double q)
{
    uint64_t want = (uint64_t)ceil(q * (double)total), cum = 0;
    int b = 0;
    while (b < NBINS - 1 && cum + hist[b] < want)
        cum += hist[b++];
    return b;
}

/* sigma (0..1 scale) from the pixels whose gradient bin is <= gmax; *used gets their
 * number. */
static double sigma_below(const pass *p, int gmax, uint64_t *used)
{
    *used = run_pass(p, gmax);
    return hist_quantile(p->hist, *used, 0.5, RESP_MAX) / (MAD * 6.0);
}

sd_status sd_noise_estimate_img(const sd_img *img, sd_noise_estimate *out, sd_error *err)
{
    memset(out, 0, sizeof *out);
    sd_status st = sd_img_check(img, SD_CH_MASK | SD_CH_COLOR, "noise estimate image", err);
    if (st != SD_OK)
        return st;
    if (img->w < 3 || img->h < 3)
        return sd_fail(err, SD_ERR_INVALID_ARG, "noise estimate: image %dx%d (3x3 at least)",
                       img->w, img->h);
    uint64_t *hist = sd_malloc(NBINS * sizeof(uint64_t));
    if (!hist)
        return sd_fail_nomem(err, "noise estimate histogram");
    size_t interior = (size_t)(img->w - 2) * (size_t)(img->h - 2);
    pass p = {img, 0, (int)((interior + MAX_SAMPLES - 1) / MAX_SAMPLES), hist};
    const int nch = img->c == 1 ? 1 : 3;
    double sum = 0.0;
    for (int k = 0; k < nch; k++) {
        p.k = k;
        uint64_t total = run_pass(&p, -1), used = 0;
        if (total == 0) {
            st = sd_fail(err, SD_ERR_INVALID_ARG, "noise estimate: no opaque pixels");
            goto out;
        }
        const int g_lo = hist_bin_at(hist, total, KEEP_MIN);
        const int g_hi = hist_bin_at(hist, total, KEEP_MAX);
        /* start by leaving out the strongest gradients; then leave out every gradient
         * that noise of the current estimate would rarely reach, until that settles */
        int gmax = g_hi;
        double sigma = sigma_below(&p, gmax, &used);
        for (int it = 0; it < MAX_ROUNDS; it++) {
            int g = bin_of(GRAD_NOISE_MULT * sqrt(12.0) * sigma, GRAD_MAX);
            g = g < g_lo ? g_lo : g > g_hi ? g_hi : g;
            if (g == gmax)
                break;
            gmax = g;
            sigma = sigma_below(&p, gmax, &used);
        }
        out->sigma_ch[k] = (float)(sigma * 255.0);
        out->n_used = used;
        sum += out->sigma_ch[k];
    }
    out->n_ch = nch;
    out->sigma = (float)(sum / nch);
out:
    sd_free(hist);
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
