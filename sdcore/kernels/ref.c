/* kernels/ref.c - the scalar reference of every kernel slot.  Compiled with
 * -ffp-contract=off and no ISA flags: this file is the numerical truth the SIMD variants
 * are tested against.  Never delete a reference when adding a faster variant.
 *
 * Transcendentals and sums are evaluated in double and rounded once, so the reference is as
 * close to the exact result as float32 output allows; the element-wise affine maps use the
 * float32 operation order their contract states. */
#include "internal/half.h"
#include "internal/kernels.h"

#include <math.h>

static void sd_k_cvt_f16_f32__ref(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = sd_f16_to_f32(src[i]);
}

static void sd_k_cvt_bf16_f32__ref(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = sd_bf16_to_f32(src[i]);
}

/* ---- reductions ---------------------------------------------------------------------- */

static float sd_k_sum_f32__ref(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return (float)s;
}

static float sd_k_sumsq_dev_f32__ref(const float *x, size_t n, float mean)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - mean;
        s += d * d;
    }
    return (float)s;
}

/* ---- affine maps ------------------------------------------------------------------------ */

static float silu1(float x)
{
    return (float)(x / (1.0 + exp(-(double)x)));
}

static void sd_k_scale_shift_f32__ref(const float *x, float *y, size_t n, float m, float a,
                                      float b)
{
    for (size_t i = 0; i < n; i++)
        y[i] = (x[i] - m) * a + b;
}

static void sd_k_scale_shift_silu_f32__ref(const float *x, float *y, size_t n, float m,
                                           float a, float b)
{
    for (size_t i = 0; i < n; i++)
        y[i] = silu1((x[i] - m) * a + b);
}

static void sd_k_layernorm_apply_f32__ref(const float *x, float *y, size_t n, float mean,
                                          float rstd, const float *gamma, const float *beta)
{
    for (size_t i = 0; i < n; i++)
        y[i] = (x[i] - mean) * rstd * gamma[i] + beta[i];
}

static void sd_k_add_f32__ref(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

/* ---- activations ------------------------------------------------------------------------ */

static float gelu1(float x)
{
    /* x * Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2: no cancellation for negative x */
    return (float)(0.5 * x * erfc(-(double)x * M_SQRT1_2));
}

static void sd_k_silu_f32__ref(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = silu1(x[i]);
}

static void sd_k_gelu_f32__ref(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = gelu1(x[i]);
}

static void sd_k_quick_gelu_f32__ref(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float t = 1.702f * x[i];
        y[i] = (float)(x[i] / (1.0 + exp(-(double)t)));
    }
}

static void sd_k_geglu_f32__ref(const float *a, const float *g, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] * gelu1(g[i]);
}

/* ---- online softmax ------------------------------------------------------------------------ */

static float sd_k_softmax_step_f32__ref(float *s, size_t n, float *max, float *sum)
{
    float m = *max;
    for (size_t j = 0; j < n; j++)
        if (s[j] > m)
            m = s[j];
    if (m == -INFINITY) {
        for (size_t j = 0; j < n; j++)
            s[j] = 0;
        return 1;
    }
    double l = 0;
    for (size_t j = 0; j < n; j++) {
        s[j] = (float)exp((double)(s[j] - m)); /* the difference in float, as PyTorch */
        l += s[j];
    }
    float alpha = m == *max ? 1.0f : (float)exp((double)(*max - m));
    *sum = (float)((double)*sum * alpha + l);
    *max = m;
    return alpha;
}

void sd_kernels_fill_ref(sd_kernels *k)
{
    k->cvt_f16_f32 = sd_k_cvt_f16_f32__ref;
    k->cvt_bf16_f32 = sd_k_cvt_bf16_f32__ref;
    k->sum_f32 = sd_k_sum_f32__ref;
    k->sumsq_dev_f32 = sd_k_sumsq_dev_f32__ref;
    k->scale_shift_f32 = sd_k_scale_shift_f32__ref;
    k->scale_shift_silu_f32 = sd_k_scale_shift_silu_f32__ref;
    k->layernorm_apply_f32 = sd_k_layernorm_apply_f32__ref;
    k->add_f32 = sd_k_add_f32__ref;
    k->silu_f32 = sd_k_silu_f32__ref;
    k->gelu_f32 = sd_k_gelu_f32__ref;
    k->quick_gelu_f32 = sd_k_quick_gelu_f32__ref;
    k->geglu_f32 = sd_k_geglu_f32__ref;
    k->softmax_step_f32 = sd_k_softmax_step_f32__ref;
}
