/* tests/imgutil.h - what the image-processing tests share: a seeded PRNG with Gaussian
 * samples (Box-Muller; the project's torch-compatible RNG is not needed here), synthetic
 * test pictures (smooth gradient, piecewise-constant shapes, sinusoid texture, a dense
 * grid of hard-edged discs: edges almost everywhere) and
 * small comparisons of sd_img images. */
#ifndef SD_TEST_IMGUTIL_H
#define SD_TEST_IMGUTIL_H

#include "harness.h"
#include "internal/image.h"

#include <stdint.h>

typedef struct t_rng {
    uint64_t s;
} t_rng;

/* xorshift64*: small and good enough for test data. */
static inline uint64_t t_rng_u64(t_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dull;
}

static inline double t_rng_unit(t_rng *r) /* (0, 1] */
{
    return ((t_rng_u64(r) >> 11) + 1.0) * 0x1p-53;
}

static inline double t_rng_gauss(t_rng *r)
{
    double u1 = t_rng_unit(r), u2 = t_rng_unit(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

enum t_pic { T_GRADIENT, T_SHAPES, T_TEXTURE, T_DOTS, T_NPICS };
static const char *const t_pic_name[T_NPICS] = {"gradient", "shapes", "texture", "dots"};

/* Value of picture `pic` at (x, y), channel k, in 0.3 .. 0.7 (room for noise). */
static inline float t_pic_value(int pic, int x, int y, int k, int w, int h)
{
    double u = (double)x / w, v = (double)y / h;
    switch (pic) {
    case T_GRADIENT:
        return (float)(0.3 + 0.4 * (k == 0 ? u : k == 1 ? v : 0.5 * (u + v * v)));
    case T_SHAPES: {
        double val = 0.45 + 0.05 * k;
        if (x > w / 8 && x < w / 2 && y > h / 6 && y < h / 2)
            val = 0.62 - 0.1 * k;                               /* rectangle */
        double dx = x - 0.65 * w, dy = y - 0.6 * h;
        if (dx * dx + dy * dy < 0.06 * w * h)
            val = 0.33 + 0.12 * k;                              /* disc */
        if (y > h * 0.7 && x - w / 10 > (h - y) && x < w / 2)
            val = 0.68 - 0.05 * k;                              /* triangle */
        return (float)val;
    }
    case T_TEXTURE: {
        /* sinusoids of periods 9 .. 40 px in several directions */
        static const double comp[6][4] = {
            /* period, angle (deg), amplitude, phase */
            {40, 10, 0.06, 0.3}, {23, 75, 0.05, 1.1}, {16, 130, 0.04, 2.0},
            {12, 35, 0.025, 0.7}, {9, 100, 0.02, 2.9}, {29, 160, 0.04, 1.7}};
        double val = 0.5;
        for (int i = 0; i < 6; i++) {
            double a = comp[i][1] * M_PI / 180.0, f = 2.0 * M_PI / comp[i][0];
            val += comp[i][2] * (1.0 - 0.3 * k) *
                   sin(f * (x * cos(a) + y * sin(a)) + comp[i][3] + k);
        }
        return (float)val;
    }
    case T_DOTS: {
        /* discs of radius 5.25 every 15 px, no anti-aliasing: ~40 % of pixels on an edge */
        double dx = x % 15 - 7.0, dy = y % 15 - 7.0;
        return (float)(dx * dx + dy * dy < 5.25 * 5.25 ? 0.7 - 0.1 * k : 0.3 + 0.05 * k);
    }
    }
    return 0.0f;
}

/* A new w x h x c picture (alpha 1 for c = 4). */
static inline sd_img t_pic(int pic, int w, int h, int c)
{
    sd_img im;
    if (sd_img_new(w, h, c, &im, NULL) != SD_OK) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                sd_img_px(&im, x, y)[k] = k == 3 ? 1.0f : t_pic_value(pic, x, y, k, w, h);
    return im;
}

/* Add N(0, sigma255/255) to every colour channel, clamped to 0..1. */
static inline void t_add_noise(sd_img *im, double sigma255, uint64_t seed)
{
    t_rng r = {seed * 0x9e3779b97f4a7c15ull + 1};
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            for (int k = 0; k < SD_MIN(im->c, 3); k++) {
                float *p = sd_img_px(im, x, y) + k;
                double v = *p + t_rng_gauss(&r) * sigma255 / 255.0;
                *p = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
            }
}

/* A new w x h x 1 mask: 1 inside the ellipse centred (cx, cy) with radii (rx, ry). */
static inline sd_img t_ellipse(int w, int h, double cx, double cy, double rx, double ry)
{
    sd_img m;
    if (sd_img_new(w, h, 1, &m, NULL) != SD_OK)
        exit(2);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double dx = (x + 0.5 - cx) / rx, dy = (y + 0.5 - cy) / ry;
            *sd_img_px(&m, x, y) = dx * dx + dy * dy <= 1.0 ? 1.0f : 0.0f;
        }
    return m;
}

/* Largest |a - b| over all samples (same sizes); INFINITY on NaN. */
static inline double t_img_maxdiff(const sd_img *a, const sd_img *b)
{
    double worst = 0.0;
    for (int y = 0; y < a->h; y++)
        for (int x = 0; x < a->w * a->c; x++) {
            double d = fabs((double)sd_img_px(a, 0, y)[x] - sd_img_px(b, 0, y)[x]);
            if (isnan(d))
                return INFINITY;
            worst = d > worst ? d : worst;
        }
    return worst;
}

#endif
