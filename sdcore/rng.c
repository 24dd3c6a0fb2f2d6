/* rng.c - PyTorch's CPU random generator and its torch.randn paths, reproduced bit for bit
 * (declared in internal/rng.h).  This file exists because a seed must give the same image
 * as diffusers: every latent and every ancestral-sampler noise there is torch.randn on a
 * seeded CPU generator.
 *
 * Facts reproduced (torch 1.13 .. 2.x, aten/src/ATen/core/MT19937RNGEngine.h,
 * CPUGeneratorImpl.cpp, core/DistributionsHelper.h, native/cpu/DistributionTemplates.h and
 * native/cpu/avx_mathfun.h):
 *  - the engine is the standard 32-bit Mersenne Twister seeded from the seed's low 32 bits
 *    with the usual 1812433253 recurrence; random64() is (first << 32) | second;
 *  - a uniform float is (u32 & 0xffffff) * 2^-24, a uniform double (u64 & (2^53-1)) * 2^-53;
 *  - float tensors of >= 16 elements take the vectorised AVX2 Box-Muller (torch dispatches
 *    its normal kernel to the AVX2 build even on AVX-512 machines).  Its log and sincos are
 *    Cephes-style polynomials evaluated in float; torch's build lets the compiler fuse some
 *    multiply-adds into FMAs, and exactly those are written as fmaf() below, every other
 *    operation is a separately rounded float operation (this file is ISO C, so the compiler
 *    fuses nothing else);
 *  - smaller tensors and float64 use libm in double; the scalar path draws u1 (angle) then
 *    u2 (radius: sqrt(-2 log(1 - u2))) and caches r*sin for the next scalar draw. */
#include "internal/rng.h"
#include "internal/half.h"

#include <math.h>

/* Results must not depend on the compiler fusing a * b + c (GCC never does in ISO C mode;
 * clang would within an expression when the target has FMA). */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* ---- Mersenne Twister ------------------------------------------------------------------ */

#define MT_M 397

void sd_rng_seed(sd_rng *r, uint64_t seed)
{
    r->seed = seed;
    r->mt[0] = (uint32_t)(seed & 0xffffffffu);
    for (uint32_t i = 1; i < SD_RNG_MT_N; i++)
        r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + i;
    r->left = 1;
    r->next = 0;
    r->has_next_normal = false;
    r->next_normal = 0;
}

uint64_t sd_rng_initial_seed(const sd_rng *r)
{
    return r->seed;
}

/* One twist of the whole state (the reference generator's genrand refill). */
static void regenerate(sd_rng *r)
{
    uint32_t *s = r->mt;
    for (int i = 0; i < SD_RNG_MT_N; i++) {
        uint32_t hi = s[i] & 0x80000000u;
        uint32_t lo = s[(i + 1) % SD_RNG_MT_N] & 0x7fffffffu;
        uint32_t y = hi | lo;
        uint32_t v = s[(i + MT_M) % SD_RNG_MT_N] ^ (y >> 1);
        if (lo & 1u)
            v ^= 0x9908b0dfu;
        s[i] = v;
    }
    r->left = SD_RNG_MT_N;
    r->next = 0;
}

uint32_t sd_rng_u32(sd_rng *r)
{
    if (--r->left == 0)
        regenerate(r);
    uint32_t y = r->mt[r->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t sd_rng_u64(sd_rng *r)
{
    uint64_t hi = sd_rng_u32(r);
    uint64_t lo = sd_rng_u32(r);
    return (hi << 32) | lo;
}

static float uniform_f32(sd_rng *r)
{
    return (float)(sd_rng_u32(r) & 0xffffffu) * (1.0f / 16777216.0f);
}

static double uniform_f64(sd_rng *r)
{
    return (double)(sd_rng_u64(r) & ((UINT64_C(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/* ---- torch's AVX2 float math, one lane at a time ---------------------------------------- */

/* Natural log for x in (0, 1] (the Box-Muller radius argument 1 - u, u in [0, 1)).  Split
 * x = m * 2^e with m in [sqrt(1/2), sqrt(2)), then a degree-9 polynomial in m - 1. */
static float box_muller_log(float x)
{
    uint32_t bits = sd_f32_bits(x);
    float e = (float)((int32_t)(bits >> 23) - 127) + 1.0f;
    float m = sd_f32_from_bits((bits & ~0x7f800000u) | 0x3f000000u); /* in [0.5, 1) */
    if (m < 0.707106781186547524f) {
        e = e - 1.0f;
        m = (m - 1.0f) + m;
    } else {
        m = m - 1.0f;
    }
    float z = m * m;
    float y = 7.0376836292e-2f;
    y = fmaf(y, m, -1.1514610310e-1f);
    y = fmaf(y, m, 1.1676998740e-1f);
    y = fmaf(y, m, -1.2420140846e-1f);
    y = fmaf(y, m, 1.4249322787e-1f);
    y = fmaf(y, m, -1.6668057665e-1f);
    y = fmaf(y, m, 2.0000714765e-1f);
    y = fmaf(y, m, -2.4999993993e-1f);
    y = fmaf(y, m, 3.3333331174e-1f);
    y = y * m;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = fmaf(-z, 0.5f, y);
    return fmaf(e, 0.693359375f, m + y);
}

/* sin and cos of x >= 0 (the Box-Muller angle, below 2 pi): reduce by multiples of pi/4 in
 * three parts (extended precision), then pick the sine or cosine polynomial per octant. */
static void box_muller_sincos(float x, float *s, float *c)
{
    int32_t j = (int32_t)(x * 1.27323954473516f); /* 4 / pi; truncation */
    j = (j + 1) & ~1;
    float y = (float)j;
    uint32_t sin_sign = ((uint32_t)j & 4u) << 29;
    uint32_t cos_sign = (~(uint32_t)(j - 2) & 4u) << 29;
    bool sine_poly_for_sin = (j & 2) == 0;

    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    float z = x * x;

    float pc = 2.443315711809948e-5f;
    pc = fmaf(pc, z, -1.388731625493765e-3f);
    pc = fmaf(pc, z, 4.166664568298827e-2f);
    pc = pc * z;
    pc = fmaf(pc, z, -(z * 0.5f));
    pc = pc + 1.0f;

    float ps = -1.9515295891e-4f;
    ps = fmaf(ps, z, 8.3321608736e-3f);
    ps = fmaf(ps, z, -1.6666654611e-1f);
    ps = ps * z;
    ps = fmaf(ps, x, x);

    float vs = sine_poly_for_sin ? ps : pc;
    float vc = sine_poly_for_sin ? pc : ps;
    *s = sd_f32_from_bits(sd_f32_bits(vs) ^ sin_sign);
    *c = sd_f32_from_bits(sd_f32_bits(vc) ^ cos_sign);
}

/* Turn 16 uniforms into 16 normals in place: pairs (d[j], d[j+8]). */
static void box_muller_16(float *d)
{
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        float radius = sqrtf(-2.0f * box_muller_log(1.0f - d[j]));
        float s, c;
        box_muller_sincos(two_pi * d[j + 8], &s, &c);
        d[j] = radius * c;
        d[j + 8] = radius * s;
    }
}

static void box_muller_16_f64(double *d)
{
    for (int j = 0; j < 8; j++) {
        double radius = sqrt(-2.0 * log(1.0 - d[j]));
        double theta = 2.0 * 3.14159265358979323846 * d[j + 8];
        d[j] = radius * cos(theta);
        d[j + 8] = radius * sin(theta);
    }
}

/* torch's scalar at::normal_distribution<double>, with the generator-held cache. */
static double scalar_normal(sd_rng *r)
{
    if (r->has_next_normal) {
        r->has_next_normal = false;
        return r->next_normal;
    }
    double u1 = uniform_f64(r);
    double u2 = uniform_f64(r);
    double radius = sqrt(-2.0 * log(1.0 - u2));
    double theta = 2.0 * 3.14159265358979323846 * u1;
    r->next_normal = radius * sin(theta);
    r->has_next_normal = true;
    return radius * cos(theta);
}

/* ---- randn ------------------------------------------------------------------------------ */

void sd_rng_randn(sd_rng *r, float *out, size_t n)
{
    if (n < 16) {
        for (size_t i = 0; i < n; i++)
            out[i] = (float)scalar_normal(r);
        return;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = uniform_f32(r);
    for (size_t i = 0; i + 16 <= n; i += 16)
        box_muller_16(out + i);
    if (n % 16 != 0) {
        float *tail = out + n - 16;
        for (int i = 0; i < 16; i++)
            tail[i] = uniform_f32(r);
        box_muller_16(tail);
    }
}

void sd_rng_randn_f64(sd_rng *r, double *out, size_t n)
{
    if (n < 16) {
        for (size_t i = 0; i < n; i++)
            out[i] = scalar_normal(r);
        return;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = uniform_f64(r);
    for (size_t i = 0; i + 16 <= n; i += 16)
        box_muller_16_f64(out + i);
    if (n % 16 != 0) {
        double *tail = out + n - 16;
        for (int i = 0; i < 16; i++)
            tail[i] = uniform_f64(r);
        box_muller_16_f64(tail);
    }
}
