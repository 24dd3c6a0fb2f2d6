/* image_colormatch.c - colour matching of a regenerated area to its surroundings.  Every
 * diffusion inpainting tool is criticised for results whose tone is slightly off (the VAE
 * round trip and the model drift in brightness and colour cast), which shows as a seam at
 * the mask's edge.  This file corrects that by a transfer of first (and optionally second)
 * moments in CIE L*a*b* (perceptually even, lightness separate from colour): measure the
 * generated pixels in a band just inside the mask edge and the original pixels in a band
 * just outside, and move the generated ones so the inner band's statistics match the
 * outer band's.  It is optional (sd_paste_params.color_match); imgproc.h says why spread
 * matching is off by default. */
#include "internal/imgproc.h"

#include <math.h>
#include <string.h>

sd_colormatch_params sd_colormatch_params_default(void)
{
    return (sd_colormatch_params){.band = 8, .strength = 1.0f, .max_gain = 1.0f};
}

/* ==== sRGB <-> L*a*b* (D65) ============================================================ */

static double srgb_to_linear(double v)
{
    return v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
}

static double linear_to_srgb(double v)
{
    return v <= 0.0031308 ? v * 12.92 : 1.055 * pow(v, 1.0 / 2.4) - 0.055;
}

static const double WHITE[3] = {0.95047, 1.0, 1.08883};
static const double DELTA = 6.0 / 29.0;

static double lab_f(double t)
{
    return t > DELTA * DELTA * DELTA ? cbrt(t) : t / (3.0 * DELTA * DELTA) + 4.0 / 29.0;
}

static double lab_finv(double t)
{
    return t > DELTA ? t * t * t : 3.0 * DELTA * DELTA * (t - 4.0 / 29.0);
}

static void rgb_to_lab(const float *rgb, double lab[3])
{
    double r = srgb_to_linear(rgb[0]), g = srgb_to_linear(rgb[1]), b = srgb_to_linear(rgb[2]);
    double x = 0.4124564 * r + 0.3575761 * g + 0.1804375 * b;
    double y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b;
    double z = 0.0193339 * r + 0.1191920 * g + 0.9503041 * b;
    double fx = lab_f(x / WHITE[0]), fy = lab_f(y / WHITE[1]), fz = lab_f(z / WHITE[2]);
    lab[0] = 116.0 * fy - 16.0;
    lab[1] = 500.0 * (fx - fy);
    lab[2] = 200.0 * (fy - fz);
}

static double clamp01(double v)
{
    return v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
}

static void lab_to_rgb(const double lab[3], double rgb[3])
{
    double fy = (lab[0] + 16.0) / 116.0;
    double x = WHITE[0] * lab_finv(fy + lab[1] / 500.0);
    double y = WHITE[1] * lab_finv(fy);
    double z = WHITE[2] * lab_finv(fy - lab[2] / 200.0);
    double r = 3.2404542 * x - 1.5371385 * y - 0.4985314 * z;
    double g = -0.9692660 * x + 1.8760108 * y + 0.0415560 * z;
    double b = 0.0556434 * x - 0.2040259 * y + 1.0572252 * z;
    rgb[0] = clamp01(linear_to_srgb(clamp01(r)));
    rgb[1] = clamp01(linear_to_srgb(clamp01(g)));
    rgb[2] = clamp01(linear_to_srgb(clamp01(b)));
}

/* ==== the transfer ===================================================================== */

enum { MIN_BAND_PIXELS = 16 };

typedef struct moments {
    double n, sum[3], sq[3];
} moments;

static void moments_add(moments *m, const double lab[3])
{
    m->n += 1.0;
    for (int k = 0; k < 3; k++) {
        m->sum[k] += lab[k];
        m->sq[k] += lab[k] * lab[k];
    }
}

static void moments_get(const moments *m, double mean[3], double sd[3])
{
    for (int k = 0; k < 3; k++) {
        mean[k] = m->sum[k] / m->n;
        double var = m->sq[k] / m->n - mean[k] * mean[k];
        sd[k] = var > 0.0 ? sqrt(var) : 0.0;
    }
}

sd_status sd_colormatch(const sd_img *orig, sd_img *gen, const sd_img *mask,
                        const sd_colormatch_params *p, bool *applied, sd_error *err)
{
    if (applied)
        *applied = false;
    sd_status st = sd_img_check(orig, SD_CH_COLOR, "colour match original", err);
    if (st == SD_OK)
        st = sd_img_check(gen, SD_CH_COLOR, "colour match result", err);
    if (st == SD_OK)
        st = sd_img_check(mask, SD_CH_MASK, "colour match mask", err);
    if (st != SD_OK)
        return st;
    if (orig->w != gen->w || orig->h != gen->h || mask->w != gen->w || mask->h != gen->h)
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "colour match: sizes differ (original %dx%d, result %dx%d, mask %dx%d)",
                       orig->w, orig->h, gen->w, gen->h, mask->w, mask->h);
    if (p->band < 1 || !(p->strength >= 0.0f && p->strength <= 1.0f) || !(p->max_gain >= 1.0f))
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "colour match: band %d, strength %g, max gain %g out of range", p->band,
                       (double)p->strength, (double)p->max_gain);
    if (p->strength == 0.0f)
        return SD_OK;

    sd_img dist;
    st = sd_img_new(gen->w, gen->h, 1, &dist, err);
    if (st != SD_OK)
        return st;
    st = sd_mask_distance(mask, &dist, err);
    if (st != SD_OK)
        goto out;

    /* Moments of the inner band (generated) and the outer band (original). */
    moments in = {0}, outer = {0};
    for (int y = 0; y < gen->h; y++)
        for (int x = 0; x < gen->w; x++) {
            float d = *sd_img_px(&dist, x, y);
            if (!(d <= (float)p->band))
                continue;
            double lab[3];
            if (*sd_img_px(mask, x, y) >= 0.5f) {
                rgb_to_lab(sd_img_px(gen, x, y), lab);
                moments_add(&in, lab);
            } else {
                rgb_to_lab(sd_img_px(orig, x, y), lab);
                moments_add(&outer, lab);
            }
        }
    if (in.n < MIN_BAND_PIXELS || outer.n < MIN_BAND_PIXELS)
        goto out;

    double mg[3], sg[3], mo[3], so[3], gain[3];
    moments_get(&in, mg, sg);
    moments_get(&outer, mo, so);
    for (int k = 0; k < 3; k++) {
        /* a flat band carries no information about spread: keep the contrast then */
        gain[k] = sg[k] > 1e-3 ? so[k] / sg[k] : 1.0;
        gain[k] = gain[k] > p->max_gain ? p->max_gain : gain[k];
        gain[k] = gain[k] < 1.0 / p->max_gain ? 1.0 / p->max_gain : gain[k];
    }

    const double s = p->strength;
    for (int y = 0; y < gen->h; y++) {
        const float *m = sd_img_px(mask, 0, y);
        float *g = sd_img_px(gen, 0, y);
        for (int x = 0; x < gen->w; x++, g += gen->c) {
            if (!(m[x] > 0.0f))
                continue;
            double lab[3], rgb[3];
            rgb_to_lab(g, lab);
            for (int k = 0; k < 3; k++)
                lab[k] = (lab[k] - mg[k]) * gain[k] + mo[k];
            lab_to_rgb(lab, rgb);
            for (int k = 0; k < 3; k++)
                g[k] = (float)(g[k] + s * (rgb[k] - g[k]));
        }
    }
    if (applied)
        *applied = true;
out:
    sd_img_free(&dist);
    return st;
}
