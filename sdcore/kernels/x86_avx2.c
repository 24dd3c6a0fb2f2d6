/* kernels/x86_avx2.c - AVX2 + FMA + F16C variants of the kernel slots.  Only this file is
 * compiled with -mavx2 -mfma -mf16c; dispatch.c calls sd_kernels_fill_avx2 only after
 * checking the CPU and OS support them.  Loops run 8 floats per vector (32 in the
 * reductions) and finish with one vmaskmov vector, so tails compute exactly as the body
 * does.  exp and erfc follow kernels/approx.h. */
#include "internal/half.h"
#include "internal/kernels.h"
#include "kernels/approx.h"

#include <immintrin.h>
#include <math.h>

static void sd_k_cvt_f16_f32__avx2(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++)
        dst[i] = sd_f16_to_f32(src[i]);
}

static void sd_k_cvt_bf16_f32__avx2(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
    for (; i < n; i++)
        dst[i] = sd_bf16_to_f32(src[i]);
}

/* ---- vector math ------------------------------------------------------------------------ */

/* lanes [0, n) set, n < 8 */
static inline __m256i tail_mask(size_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* exp(x); vmaxps/vminps return their second operand for NaN, so NaN propagates.  2^n is
 * applied in two halves so that n down to -150 gives correctly rounded subnormals. */
static inline __m256 exp_ps(__m256 x)
{
    x = _mm256_max_ps(_mm256_set1_ps(SD_EXP_ARG_MIN), x);
    x = _mm256_min_ps(_mm256_set1_ps(SD_EXP_ARG_MAX), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(SD_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(SD_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(SD_LN2_LO), r);
    __m256 p = _mm256_set1_ps(SD_EXP_P6);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SD_EXP_P5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SD_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SD_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SD_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SD_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SD_EXP_P0));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1);
    __m256i n2 = _mm256_sub_epi32(ni, n1);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* x * sigmoid(t): with e = exp(-|t|) (never overflows), x / (1 + e) for t >= 0 and
 * x e / (1 + e) for t < 0 */
static inline __m256 sigmoid_mul_ps(__m256 x, __m256 t)
{
    __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_and_ps(t, absmask)));
    __m256 neg = _mm256_cmp_ps(t, _mm256_setzero_ps(), _CMP_LT_OQ);
    __m256 num = _mm256_blendv_ps(x, _mm256_mul_ps(x, e), neg);
    return _mm256_div_ps(num, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static inline __m256 gelu_ps(__m256 x)
{
    __m256 xc = _mm256_max_ps(_mm256_set1_ps(-SD_GELU_X_CLAMP), x);
    xc = _mm256_min_ps(_mm256_set1_ps(SD_GELU_X_CLAMP), xc);
    /* z^2 = xc^2 / 2 as hi + lo */
    __m256 half = _mm256_set1_ps(0.5f);
    __m256 h = _mm256_mul_ps(xc, xc);
    __m256 l = _mm256_mul_ps(_mm256_fmsub_ps(xc, xc, h), half);
    h = _mm256_mul_ps(h, half);
    __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 az = _mm256_mul_ps(_mm256_and_ps(xc, absmask), _mm256_set1_ps((float)M_SQRT1_2));
    az = _mm256_min_ps(az, _mm256_set1_ps(SD_ERFC_Z_MAX));
    __m256 two = _mm256_set1_ps(2.0f);
    __m256 t = _mm256_div_ps(two, _mm256_add_ps(two, az));
    __m256 u = _mm256_fmadd_ps(t, _mm256_set1_ps(SD_ERFC_U_SCALE),
                               _mm256_set1_ps(SD_ERFC_U_SHIFT));
    __m256 q = _mm256_set1_ps(SD_ERFC_Q10);
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(SD_ERFC_Q9));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(SD_ERFC_Q8));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(SD_ERFC_Q7));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(SD_ERFC_Q6));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(SD_ERFC_Q5));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(SD_ERFC_Q4));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(SD_ERFC_Q3));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(SD_ERFC_Q2));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(SD_ERFC_Q1));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(SD_ERFC_Q0));
    /* s + e = q - h exactly (two-sum), then e -= l */
    __m256 s = _mm256_sub_ps(q, h);
    __m256 bb = _mm256_sub_ps(s, q);
    __m256 e = _mm256_add_ps(_mm256_sub_ps(q, _mm256_sub_ps(s, bb)),
                             _mm256_sub_ps(_mm256_sub_ps(_mm256_setzero_ps(), h), bb));
    e = _mm256_sub_ps(e, l);
    __m256 ex = exp_ps(s);
    ex = _mm256_fmadd_ps(ex, e, ex);
    __m256 he = _mm256_mul_ps(_mm256_mul_ps(half, t), ex); /* erfc(|z|) / 2 */
    __m256 phi = _mm256_sub_ps(_mm256_set1_ps(1.0f), he);
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    phi = _mm256_blendv_ps(phi, he, neg);
    return _mm256_mul_ps(x, phi);
}

/* ---- reductions ---------------------------------------------------------------------- */

static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float sd_k_sum_f32__avx2(const float *x, size_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
    if (i < n)
        a1 = _mm256_add_ps(a1, _mm256_maskload_ps(x + i, tail_mask(n - i)));
    return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

static float sd_k_sumsq_dev_f32__avx2(const float *x, size_t n, float mean)
{
    __m256 m = _mm256_set1_ps(mean);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), m);
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), m);
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 16), m);
        __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 24), m);
        a0 = _mm256_fmadd_ps(d0, d0, a0);
        a1 = _mm256_fmadd_ps(d1, d1, a1);
        a2 = _mm256_fmadd_ps(d2, d2, a2);
        a3 = _mm256_fmadd_ps(d3, d3, a3);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), m);
        a0 = _mm256_fmadd_ps(d, d, a0);
    }
    if (i < n) {
        __m256i k = tail_mask(n - i);
        __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, k), m),
                                 _mm256_castsi256_ps(k));
        a1 = _mm256_fmadd_ps(d, d, a1);
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

/* ---- affine maps ------------------------------------------------------------------------ */

static void sd_k_scale_shift_f32__avx2(const float *x, float *y, size_t n, float m, float a,
                                       float b)
{
    __m256 vm = _mm256_set1_ps(m), va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), va, vb));
    if (i < n) {
        __m256i k = tail_mask(n - i);
        __m256 v = _mm256_maskload_ps(x + i, k);
        _mm256_maskstore_ps(y + i, k, _mm256_fmadd_ps(_mm256_sub_ps(v, vm), va, vb));
    }
}

static void sd_k_scale_shift_silu_f32__avx2(const float *x, float *y, size_t n, float m,
                                            float a, float b)
{
    __m256 vm = _mm256_set1_ps(m), va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), va, vb);
        _mm256_storeu_ps(y + i, sigmoid_mul_ps(v, v));
    }
    if (i < n) {
        __m256i k = tail_mask(n - i);
        __m256 v = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, k), vm), va, vb);
        _mm256_maskstore_ps(y + i, k, sigmoid_mul_ps(v, v));
    }
}

static void sd_k_layernorm_apply_f32__avx2(const float *x, float *y, size_t n, float mean,
                                           float rstd, const float *gamma, const float *beta)
{
    __m256 vm = _mm256_set1_ps(mean), vr = _mm256_set1_ps(rstd);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vr);
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(v, _mm256_loadu_ps(gamma + i),
                                                _mm256_loadu_ps(beta + i)));
    }
    if (i < n) {
        __m256i k = tail_mask(n - i);
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, k), vm), vr);
        _mm256_maskstore_ps(y + i, k,
                            _mm256_fmadd_ps(v, _mm256_maskload_ps(gamma + i, k),
                                            _mm256_maskload_ps(beta + i, k)));
    }
}

static void sd_k_add_f32__avx2(float *y, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i k = tail_mask(n - i);
        _mm256_maskstore_ps(y + i, k, _mm256_add_ps(_mm256_maskload_ps(y + i, k),
                                                    _mm256_maskload_ps(x + i, k)));
    }
}

/* ---- activations ------------------------------------------------------------------------ */

static void sd_k_silu_f32__avx2(const float *x, float *y, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(y + i, sigmoid_mul_ps(v, v));
    }
    if (i < n) {
        __m256i k = tail_mask(n - i);
        __m256 v = _mm256_maskload_ps(x + i, k);
        _mm256_maskstore_ps(y + i, k, sigmoid_mul_ps(v, v));
    }
}

static void sd_k_gelu_f32__avx2(const float *x, float *y, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, gelu_ps(_mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i k = tail_mask(n - i);
        _mm256_maskstore_ps(y + i, k, gelu_ps(_mm256_maskload_ps(x + i, k)));
    }
}

static void sd_k_quick_gelu_f32__avx2(const float *x, float *y, size_t n)
{
    __m256 c = _mm256_set1_ps(SD_QUICK_GELU_K);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(y + i, sigmoid_mul_ps(v, _mm256_mul_ps(c, v)));
    }
    if (i < n) {
        __m256i k = tail_mask(n - i);
        __m256 v = _mm256_maskload_ps(x + i, k);
        _mm256_maskstore_ps(y + i, k, sigmoid_mul_ps(v, _mm256_mul_ps(c, v)));
    }
}

static void sd_k_geglu_f32__avx2(const float *a, const float *g, float *y, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(a + i),
                                              gelu_ps(_mm256_loadu_ps(g + i))));
    if (i < n) {
        __m256i k = tail_mask(n - i);
        _mm256_maskstore_ps(y + i, k,
                            _mm256_mul_ps(_mm256_maskload_ps(a + i, k),
                                          gelu_ps(_mm256_maskload_ps(g + i, k))));
    }
}

/* ---- online softmax ------------------------------------------------------------------------ */

static float sd_k_softmax_step_f32__avx2(float *s, size_t n, float *max, float *sum)
{
    __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 vm = ninf;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        vm = _mm256_max_ps(vm, _mm256_loadu_ps(s + i));
    if (i < n) {
        __m256i k = tail_mask(n - i);
        vm = _mm256_max_ps(vm, _mm256_blendv_ps(ninf, _mm256_maskload_ps(s + i, k),
                                                _mm256_castsi256_ps(k)));
    }
    float m = hmax(vm);
    if (*max > m)
        m = *max;
    if (m == -INFINITY) {
        for (size_t j = 0; j < n; j++)
            s[j] = 0;
        return 1;
    }
    __m256 bm = _mm256_set1_ps(m);
    __m256 acc = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(s + i), bm));
        _mm256_storeu_ps(s + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    if (i < n) {
        __m256i k = tail_mask(n - i);
        __m256 e = _mm256_and_ps(exp_ps(_mm256_sub_ps(_mm256_maskload_ps(s + i, k), bm)),
                                 _mm256_castsi256_ps(k));
        _mm256_maskstore_ps(s + i, k, e);
        acc = _mm256_add_ps(acc, e);
    }
    float alpha = m == *max ? 1.0f : expf(*max - m);
    *sum = *sum * alpha + hsum(acc);
    *max = m;
    return alpha;
}

/* ---- machine peak -------------------------------------------------------------------------- */

static double sd_k_peak_fma_f32__avx2(long iters)
{
    enum { NACC = 12 };
    __m256 acc[NACC];
    for (int j = 0; j < NACC; j++)
        acc[j] = _mm256_set1_ps((float)j);
    __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (long i = 0; i < iters; i++) {
        __asm__ volatile("" : "+x"(x), "+x"(y));
#pragma GCC unroll 12
        for (int j = 0; j < NACC; j++)
            acc[j] = _mm256_fmadd_ps(acc[j], x, y);
    }
    __m256 t = acc[0];
    for (int j = 1; j < NACC; j++)
        t = _mm256_add_ps(t, acc[j]);
    float out[8];
    _mm256_storeu_ps(out, t);
    volatile float sink = out[0];
    (void)sink;
    return (double)iters * NACC * 8 * 2;
}

void sd_kernels_fill_avx2(sd_kernels *k)
{
    k->cvt_f16_f32 = sd_k_cvt_f16_f32__avx2;
    k->cvt_bf16_f32 = sd_k_cvt_bf16_f32__avx2;
    k->sum_f32 = sd_k_sum_f32__avx2;
    k->sumsq_dev_f32 = sd_k_sumsq_dev_f32__avx2;
    k->scale_shift_f32 = sd_k_scale_shift_f32__avx2;
    k->scale_shift_silu_f32 = sd_k_scale_shift_silu_f32__avx2;
    k->layernorm_apply_f32 = sd_k_layernorm_apply_f32__avx2;
    k->add_f32 = sd_k_add_f32__avx2;
    k->silu_f32 = sd_k_silu_f32__avx2;
    k->gelu_f32 = sd_k_gelu_f32__avx2;
    k->quick_gelu_f32 = sd_k_quick_gelu_f32__avx2;
    k->geglu_f32 = sd_k_geglu_f32__avx2;
    k->softmax_step_f32 = sd_k_softmax_step_f32__avx2;
    k->peak_fma_f32 = sd_k_peak_fma_f32__avx2;
}
