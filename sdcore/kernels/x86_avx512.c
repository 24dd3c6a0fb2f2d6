/* kernels/x86_avx512.c - AVX-512 (F/BW/VL/DQ) variants of the kernel slots.  Only this file
 * is compiled with the AVX-512 flags; dispatch.c calls sd_kernels_fill_avx512 only after
 * checking the CPU and OS support them.  Loops run 16 floats per vector (64 in the
 * reductions, four accumulators) and finish with one masked vector, so no scalar tail
 * computes anything differently.  exp and erfc follow kernels/approx.h. */
#include "internal/half.h"
#include "internal/kernels.h"
#include "kernels/approx.h"

#include <immintrin.h>
#include <math.h>

static void sd_k_cvt_f16_f32__avx512(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i,
                         _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    for (; i < n; i++)
        dst[i] = sd_f16_to_f32(src[i]);
}

static void sd_k_cvt_bf16_f32__avx512(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
    }
    for (; i < n; i++)
        dst[i] = sd_bf16_to_f32(src[i]);
}

/* ---- vector math ------------------------------------------------------------------------ */

static inline __mmask16 tail_mask(size_t n)
{
    return (__mmask16)((1u << n) - 1u);
}

/* exp(x); vmaxps/vminps return their second operand for NaN, so NaN propagates. */
static inline __m512 exp_ps(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(SD_EXP_ARG_MIN), x);
    x = _mm512_min_ps(_mm512_set1_ps(SD_EXP_ARG_MAX), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(SD_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(SD_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(SD_LN2_LO), r);
    __m512 p = _mm512_set1_ps(SD_EXP_P6);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SD_EXP_P5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SD_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SD_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SD_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SD_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SD_EXP_P0));
    return _mm512_scalef_ps(p, n); /* p * 2^n, subnormal and overflow results exact */
}

/* x * sigmoid(t): with e = exp(-|t|) (never overflows), x / (1 + e) for t >= 0 and
 * x e / (1 + e) for t < 0 */
static inline __m512 sigmoid_mul_ps(__m512 x, __m512 t)
{
    __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(t)));
    __mmask16 neg = _mm512_cmp_ps_mask(t, _mm512_setzero_ps(), _CMP_LT_OQ);
    __m512 num = _mm512_mask_mul_ps(x, neg, x, e);
    return _mm512_div_ps(num, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

static inline __m512 gelu_ps(__m512 x)
{
    __m512 xc = _mm512_max_ps(_mm512_set1_ps(-SD_GELU_X_CLAMP), x);
    xc = _mm512_min_ps(_mm512_set1_ps(SD_GELU_X_CLAMP), xc);
    /* z^2 = xc^2 / 2 as hi + lo */
    __m512 half = _mm512_set1_ps(0.5f);
    __m512 h = _mm512_mul_ps(xc, xc);
    __m512 l = _mm512_mul_ps(_mm512_fmsub_ps(xc, xc, h), half);
    h = _mm512_mul_ps(h, half);
    __m512 az = _mm512_mul_ps(_mm512_abs_ps(xc), _mm512_set1_ps((float)M_SQRT1_2));
    az = _mm512_min_ps(az, _mm512_set1_ps(SD_ERFC_Z_MAX));
    __m512 two = _mm512_set1_ps(2.0f);
    __m512 t = _mm512_div_ps(two, _mm512_add_ps(two, az));
    __m512 u = _mm512_fmadd_ps(t, _mm512_set1_ps(SD_ERFC_U_SCALE),
                               _mm512_set1_ps(SD_ERFC_U_SHIFT));
    __m512 q = _mm512_set1_ps(SD_ERFC_Q10);
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(SD_ERFC_Q9));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(SD_ERFC_Q8));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(SD_ERFC_Q7));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(SD_ERFC_Q6));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(SD_ERFC_Q5));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(SD_ERFC_Q4));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(SD_ERFC_Q3));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(SD_ERFC_Q2));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(SD_ERFC_Q1));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(SD_ERFC_Q0));
    /* s + e = q - h exactly (two-sum), then e -= l */
    __m512 s = _mm512_sub_ps(q, h);
    __m512 bb = _mm512_sub_ps(s, q);
    __m512 e = _mm512_add_ps(_mm512_sub_ps(q, _mm512_sub_ps(s, bb)),
                             _mm512_sub_ps(_mm512_sub_ps(_mm512_setzero_ps(), h), bb));
    e = _mm512_sub_ps(e, l);
    __m512 ex = exp_ps(s);
    ex = _mm512_fmadd_ps(ex, e, ex);
    __m512 he = _mm512_mul_ps(_mm512_mul_ps(half, t), ex); /* erfc(|z|) / 2 */
    __m512 phi = _mm512_sub_ps(_mm512_set1_ps(1.0f), he);
    __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    phi = _mm512_mask_blend_ps(neg, phi, he);
    return _mm512_mul_ps(x, phi);
}

/* ---- reductions ---------------------------------------------------------------------- */

static float sd_k_sum_f32__avx512(const float *x, size_t n)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + i));
        a1 = _mm512_add_ps(a1, _mm512_loadu_ps(x + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_loadu_ps(x + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_loadu_ps(x + i + 48));
    }
    for (; i + 16 <= n; i += 16)
        a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + i));
    if (i < n)
        a1 = _mm512_add_ps(a1, _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static float sd_k_sumsq_dev_f32__avx512(const float *x, size_t n, float mean)
{
    __m512 m = _mm512_set1_ps(mean);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), m);
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), m);
        __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 32), m);
        __m512 d3 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 48), m);
        a0 = _mm512_fmadd_ps(d0, d0, a0);
        a1 = _mm512_fmadd_ps(d1, d1, a1);
        a2 = _mm512_fmadd_ps(d2, d2, a2);
        a3 = _mm512_fmadd_ps(d3, d3, a3);
    }
    for (; i + 16 <= n; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + i), m);
        a0 = _mm512_fmadd_ps(d, d, a0);
    }
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        __m512 d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + i), m);
        a1 = _mm512_fmadd_ps(d, d, a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* ---- affine maps ------------------------------------------------------------------------ */

static void sd_k_scale_shift_f32__avx512(const float *x, float *y, size_t n, float m, float a,
                                         float b)
{
    __m512 vm = _mm512_set1_ps(m), va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i,
                         _mm512_fmadd_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm), va, vb));
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_fmadd_ps(_mm512_sub_ps(v, vm), va, vb));
    }
}

static void sd_k_scale_shift_silu_f32__avx512(const float *x, float *y, size_t n, float m,
                                              float a, float b)
{
    __m512 vm = _mm512_set1_ps(m), va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm), va, vb);
        _mm512_storeu_ps(y + i, sigmoid_mul_ps(v, v));
    }
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        __m512 v = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), va, vb);
        _mm512_mask_storeu_ps(y + i, k, sigmoid_mul_ps(v, v));
    }
}

static void sd_k_layernorm_apply_f32__avx512(const float *x, float *y, size_t n, float mean,
                                             float rstd, const float *gamma, const float *beta)
{
    __m512 vm = _mm512_set1_ps(mean), vr = _mm512_set1_ps(rstd);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm), vr);
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(v, _mm512_loadu_ps(gamma + i),
                                                _mm512_loadu_ps(beta + i)));
    }
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), vr);
        _mm512_mask_storeu_ps(y + i, k,
                              _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(k, gamma + i),
                                              _mm512_maskz_loadu_ps(k, beta + i)));
    }
}

static void sd_k_add_f32__avx512(float *y, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(y + i), _mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, y + i),
                                                      _mm512_maskz_loadu_ps(k, x + i)));
    }
}

/* ---- activations ------------------------------------------------------------------------ */

static void sd_k_silu_f32__avx512(const float *x, float *y, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        _mm512_storeu_ps(y + i, sigmoid_mul_ps(v, v));
    }
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        _mm512_mask_storeu_ps(y + i, k, sigmoid_mul_ps(v, v));
    }
}

static void sd_k_gelu_f32__avx512(const float *x, float *y, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, gelu_ps(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, k, gelu_ps(_mm512_maskz_loadu_ps(k, x + i)));
    }
}

static void sd_k_quick_gelu_f32__avx512(const float *x, float *y, size_t n)
{
    __m512 c = _mm512_set1_ps(SD_QUICK_GELU_K);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        _mm512_storeu_ps(y + i, sigmoid_mul_ps(v, _mm512_mul_ps(c, v)));
    }
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        _mm512_mask_storeu_ps(y + i, k, sigmoid_mul_ps(v, _mm512_mul_ps(c, v)));
    }
}

static void sd_k_geglu_f32__avx512(const float *a, const float *g, float *y, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(a + i),
                                              gelu_ps(_mm512_loadu_ps(g + i))));
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, k,
                              _mm512_mul_ps(_mm512_maskz_loadu_ps(k, a + i),
                                            gelu_ps(_mm512_maskz_loadu_ps(k, g + i))));
    }
}

/* ---- online softmax ------------------------------------------------------------------------ */

static float sd_k_softmax_step_f32__avx512(float *s, size_t n, float *max, float *sum)
{
    __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 vm = ninf;
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        vm = _mm512_max_ps(vm, _mm512_loadu_ps(s + i));
    if (i < n)
        vm = _mm512_max_ps(vm, _mm512_mask_loadu_ps(ninf, tail_mask(n - i), s + i));
    float m = _mm512_reduce_max_ps(vm);
    if (*max > m)
        m = *max;
    if (m == -INFINITY) {
        for (size_t j = 0; j < n; j++)
            s[j] = 0;
        return 1;
    }
    __m512 bm = _mm512_set1_ps(m);
    __m512 acc = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(s + i), bm));
        _mm512_storeu_ps(s + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        __m512 e = _mm512_maskz_mov_ps(k, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + i),
                                                             bm)));
        _mm512_mask_storeu_ps(s + i, k, e);
        acc = _mm512_add_ps(acc, e);
    }
    float alpha = m == *max ? 1.0f : expf(*max - m);
    *sum = *sum * alpha + _mm512_reduce_add_ps(acc);
    *max = m;
    return alpha;
}

void sd_kernels_fill_avx512(sd_kernels *k)
{
    k->cvt_f16_f32 = sd_k_cvt_f16_f32__avx512;
    k->cvt_bf16_f32 = sd_k_cvt_bf16_f32__avx512;
    k->sum_f32 = sd_k_sum_f32__avx512;
    k->sumsq_dev_f32 = sd_k_sumsq_dev_f32__avx512;
    k->scale_shift_f32 = sd_k_scale_shift_f32__avx512;
    k->scale_shift_silu_f32 = sd_k_scale_shift_silu_f32__avx512;
    k->layernorm_apply_f32 = sd_k_layernorm_apply_f32__avx512;
    k->add_f32 = sd_k_add_f32__avx512;
    k->silu_f32 = sd_k_silu_f32__avx512;
    k->gelu_f32 = sd_k_gelu_f32__avx512;
    k->quick_gelu_f32 = sd_k_quick_gelu_f32__avx512;
    k->geglu_f32 = sd_k_geglu_f32__avx512;
    k->softmax_step_f32 = sd_k_softmax_step_f32__avx512;
}
