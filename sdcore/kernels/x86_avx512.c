/* kernels/x86_avx512.c - AVX-512 (F/BW/VL/DQ) variants of the kernel slots.  Only this file
 * is compiled with the AVX-512 flags; dispatch.c calls sd_kernels_fill_avx512 only after
 * checking the CPU and OS support them.  Loops run 16 floats per vector (64 in the
 * reductions, four accumulators) and finish with one masked vector, so no scalar tail
 * computes anything differently.  exp and erfc follow kernels/approx.h. */
#include "internal/common.h"
#include "internal/half.h"
#include "internal/kernels.h"
#include "kernels/approx.h"
#include "kernels/x86_avx512_vec.h"

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

/* ---- packed GEMM micro-kernel ------------------------------------------------------------
 * 8 x 32 tile in 16 zmm accumulators; per k two vector loads of B and eight broadcasts of
 * A.  `full` (constant after inlining) selects unmasked B loads for n == 32. */
static inline __attribute__((always_inline)) void gemm_f32_tile(int64_t kc, const float *a,
                                                                const float *b, int64_t ldb,
                                                                float *c, int64_t ldc, int m,
                                                                int n, bool acc, bool full)
{
    enum { MR = SD_GEMM_MR };
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
        c0[r] = c1[r] = _mm512_setzero_ps();
    __mmask16 k0 = full ? 0xFFFF : tail_mask((size_t)SD_MIN(n, 16));
    __mmask16 k1 = full ? 0xFFFF : (n > 16 ? tail_mask((size_t)(n - 16)) : 0);
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0, b1;
        if (full) {
            b0 = _mm512_loadu_ps(b);
            b1 = _mm512_loadu_ps(b + 16);
        } else {
            b0 = _mm512_maskz_loadu_ps(k0, b);
            b1 = _mm512_maskz_loadu_ps(k1, b + 16);
        }
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            __m512 av = _mm512_set1_ps(a[r]);
            c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
        }
        a += MR;
        b += ldb;
    }
    for (int r = 0; r < m; r++) {
        float *cr = c + r * ldc;
        if (acc) {
            c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(k0, cr));
            c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(k1, cr + 16));
        }
        _mm512_mask_storeu_ps(cr, k0, c0[r]);
        _mm512_mask_storeu_ps(cr + 16, k1, c1[r]);
    }
}

static void sd_k_gemm_f32__avx512(int64_t kc, const float *a, const float *b, int64_t ldb,
                                  float *c, int64_t ldc, int m, int n, bool acc)
{
    if (n == SD_GEMM_NR)
        gemm_f32_tile(kc, a, b, ldb, c, ldc, m, n, acc, true);
    else
        gemm_f32_tile(kc, a, b, ldb, c, ldc, m, n, acc, false);
}

/* ---- Winograd F(4x4, 3x3) transforms ------------------------------------------------------
 * 16 tiles per step, one tile per lane.  Input: the column direction first on contiguous
 * row vectors (66 columns in five vectors), then the columns x[4t + c] of each result row
 * are gathered onto the lanes with permutes (four phases from pairs of vectors, phases 4
 * and 5 by shifting 0 and 1 one lane) and transformed along the row.  Output: the row
 * direction on the lanes, then the four results of a tile row are interleaved back into
 * contiguous order with two in-lane and two cross-lane shuffle rounds. */

/* o = BT a (one direction of the input transform) */
static inline __attribute__((always_inline)) void wino_bt6(const __m512 a[6], __m512 o[6])
{
    const __m512 two = _mm512_set1_ps(2.0f), four = _mm512_set1_ps(4.0f);
    const __m512 five = _mm512_set1_ps(5.0f);
    __m512 s12 = _mm512_add_ps(a[1], a[2]), s34 = _mm512_add_ps(a[3], a[4]);
    __m512 d12 = _mm512_sub_ps(a[1], a[2]), d43 = _mm512_sub_ps(a[4], a[3]);
    __m512 d31 = _mm512_sub_ps(a[3], a[1]), d42 = _mm512_sub_ps(a[4], a[2]);
    o[0] = _mm512_fmadd_ps(four, a[0], _mm512_fnmadd_ps(five, a[2], a[4]));
    o[1] = _mm512_fnmadd_ps(four, s12, s34);
    o[2] = _mm512_fmadd_ps(four, d12, d43);
    o[3] = _mm512_fmadd_ps(two, d31, d42);
    o[4] = _mm512_fnmadd_ps(two, d31, d42);
    o[5] = _mm512_fmadd_ps(four, a[1], _mm512_fnmadd_ps(five, a[3], a[5]));
}

/* o = AT a (one direction of the output transform) */
static inline __attribute__((always_inline)) void wino_at4(const __m512 a[6], __m512 o[4])
{
    __m512 s12 = _mm512_add_ps(a[1], a[2]), s34 = _mm512_add_ps(a[3], a[4]);
    __m512 d12 = _mm512_sub_ps(a[1], a[2]), d34 = _mm512_sub_ps(a[3], a[4]);
    o[0] = _mm512_add_ps(_mm512_add_ps(a[0], s12), s34);
    o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d34, d12);
    o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), s34, s12);
    o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d34, d12), a[5]);
}

static inline __mmask16 lanes_mask(int64_t n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : tail_mask((size_t)n);
}

static void sd_k_wino_in_f32__avx512(const float *d, int64_t ld, int nt, float *v, int64_t vs)
{
    const __m512i i01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25,
                                          29);
    const __m512i i23 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23,
                                          27, 31);
    const __m512i sh4 = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                          16);
    const __m512i sh5 = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                          17);
    for (int t0 = 0; t0 < nt; t0 += 16) {
        int g = SD_MIN(16, nt - t0);
        const float *base = d + 4 * (int64_t)t0;
        __m512 w[6][5];
        for (int k = 0; k < 5; k++) {
            __mmask16 mk = lanes_mask(4 * g + 2 - 16 * k);
            __m512 a[6];
            for (int r = 0; r < 6; r++)
                a[r] = _mm512_maskz_loadu_ps(mk, base + r * ld + 16 * k);
            __m512 o[6];
            wino_bt6(a, o);
            for (int i = 0; i < 6; i++)
                w[i][k] = o[i];
        }
        __mmask16 mt = lanes_mask(g);
        for (int i = 0; i < 6; i++) {
            __m512 a01 = _mm512_permutex2var_ps(w[i][0], i01, w[i][1]);
            __m512 a23 = _mm512_permutex2var_ps(w[i][0], i23, w[i][1]);
            __m512 b01 = _mm512_permutex2var_ps(w[i][2], i01, w[i][3]);
            __m512 b23 = _mm512_permutex2var_ps(w[i][2], i23, w[i][3]);
            __m512 p[6], o[6];
            p[0] = _mm512_shuffle_f32x4(a01, b01, 0x44);
            p[1] = _mm512_shuffle_f32x4(a01, b01, 0xEE);
            p[2] = _mm512_shuffle_f32x4(a23, b23, 0x44);
            p[3] = _mm512_shuffle_f32x4(a23, b23, 0xEE);
            p[4] = _mm512_permutex2var_ps(p[0], sh4, w[i][4]);
            p[5] = _mm512_permutex2var_ps(p[1], sh5, w[i][4]);
            wino_bt6(p, o);
            for (int j = 0; j < 6; j++)
                _mm512_mask_storeu_ps(v + (6 * i + j) * vs + t0, mt, o[j]);
        }
    }
}

static void sd_k_wino_out_f32__avx512(const float *m, int64_t ms, int nt, float bias, float *y,
                                      int64_t ldy)
{
    const __m512 bv = _mm512_set1_ps(bias);
    for (int t0 = 0; t0 < nt; t0 += 16) {
        int g = SD_MIN(16, nt - t0);
        __mmask16 mt = lanes_mask(g);
        __m512 s[4][6];
        for (int j = 0; j < 6; j++) {
            __m512 a[6], o[4];
            for (int i = 0; i < 6; i++)
                a[i] = _mm512_maskz_loadu_ps(mt, m + (6 * i + j) * ms + t0);
            wino_at4(a, o);
            for (int r = 0; r < 4; r++)
                s[r][j] = o[r];
        }
        for (int r = 0; r < 4; r++) {
            __m512 q[4];
            wino_at4(s[r], q);
            for (int c = 0; c < 4; c++)
                q[c] = _mm512_add_ps(q[c], bv);
            /* q[c] lane t is y[4t + c]: in-lane 4x4 transposes, then the 128-bit lanes */
            __m512 t0l = _mm512_unpacklo_ps(q[0], q[1]), t0h = _mm512_unpackhi_ps(q[0], q[1]);
            __m512 t1l = _mm512_unpacklo_ps(q[2], q[3]), t1h = _mm512_unpackhi_ps(q[2], q[3]);
            __m512 u0 = _mm512_shuffle_ps(t0l, t1l, 0x44), u1 = _mm512_shuffle_ps(t0l, t1l, 0xEE);
            __m512 u2 = _mm512_shuffle_ps(t0h, t1h, 0x44), u3 = _mm512_shuffle_ps(t0h, t1h, 0xEE);
            __m512 v0 = _mm512_shuffle_f32x4(u0, u1, 0x44), v1 = _mm512_shuffle_f32x4(u2, u3, 0x44);
            __m512 v2 = _mm512_shuffle_f32x4(u0, u1, 0xEE), v3 = _mm512_shuffle_f32x4(u2, u3, 0xEE);
            __m512 out[4] = {
                _mm512_shuffle_f32x4(v0, v1, 0x88), _mm512_shuffle_f32x4(v0, v1, 0xDD),
                _mm512_shuffle_f32x4(v2, v3, 0x88), _mm512_shuffle_f32x4(v2, v3, 0xDD),
            };
            float *yr = y + r * ldy + 4 * (int64_t)t0;
            for (int k = 0; k < 4; k++)
                _mm512_mask_storeu_ps(yr + 16 * k, lanes_mask(4 * g - 16 * k), out[k]);
        }
    }
}

/* ---- flash attention ------------------------------------------------------------------------
 * 32 query lanes = two zmm per row.  Scores: 8 keys at a time (8 x 2 accumulators over dh);
 * the output update: 8 output features at a time over the block's keys.  Tails (keys or
 * features not a multiple of 8) compute on a repeated last row and store only valid ones. */
enum { ATT_ROWS = 8 };

static void att_scores(const float *qt, int dh, const float *k, int64_t k_rs, int nk,
                       int causal, float *s)
{
    enum { NQ = SD_ATT_NQ };
    for (int j0 = 0; j0 < nk; j0 += ATT_ROWS) {
        const float *kr[ATT_ROWS];
        for (int r = 0; r < ATT_ROWS; r++)
            kr[r] = k + (int64_t)SD_MIN(j0 + r, nk - 1) * k_rs;
        __m512 c0[ATT_ROWS], c1[ATT_ROWS];
#pragma GCC unroll 8
        for (int r = 0; r < ATT_ROWS; r++)
            c0[r] = c1[r] = _mm512_setzero_ps();
        for (int e = 0; e < dh; e++) {
            __m512 q0 = _mm512_loadu_ps(qt + e * NQ), q1 = _mm512_loadu_ps(qt + e * NQ + 16);
#pragma GCC unroll 8
            for (int r = 0; r < ATT_ROWS; r++) {
                __m512 kv = _mm512_set1_ps(kr[r][e]);
                c0[r] = _mm512_fmadd_ps(kv, q0, c0[r]);
                c1[r] = _mm512_fmadd_ps(kv, q1, c1[r]);
            }
        }
        int rows = SD_MIN(ATT_ROWS, nk - j0);
        for (int r = 0; r < rows; r++) {
            int j = j0 + r;
            /* lanes q < j - causal cannot see key j */
            int64_t lim = (int64_t)j - causal;
            uint32_t hide = lim <= 0 ? 0 : lim >= NQ ? 0xFFFFFFFFu : (1u << lim) - 1u;
            __m512 ninf = _mm512_set1_ps(-INFINITY);
            _mm512_storeu_ps(s + j * NQ, _mm512_mask_mov_ps(c0[r], (__mmask16)hide, ninf));
            _mm512_storeu_ps(s + j * NQ + 16,
                             _mm512_mask_mov_ps(c1[r], (__mmask16)(hide >> 16), ninf));
        }
    }
}

static void att_update(const float *s, int nk, const float *v, int64_t v_rs, int dh,
                       __m512 alpha0, __m512 alpha1, float *ot)
{
    enum { NQ = SD_ATT_NQ };
    for (int e0 = 0; e0 < dh; e0 += ATT_ROWS) {
        int rows = SD_MIN(ATT_ROWS, dh - e0);
        __m512 c0[ATT_ROWS], c1[ATT_ROWS];
#pragma GCC unroll 8
        for (int r = 0; r < ATT_ROWS; r++) {
            if (r < rows) {
                c0[r] = _mm512_mul_ps(_mm512_loadu_ps(ot + (e0 + r) * NQ), alpha0);
                c1[r] = _mm512_mul_ps(_mm512_loadu_ps(ot + (e0 + r) * NQ + 16), alpha1);
            } else {
                c0[r] = c1[r] = _mm512_setzero_ps();
            }
        }
        if (rows == ATT_ROWS) {
            const float *vr = v + e0;
            for (int j = 0; j < nk; j++, vr += v_rs) {
                __m512 p0 = _mm512_loadu_ps(s + j * NQ), p1 = _mm512_loadu_ps(s + j * NQ + 16);
#pragma GCC unroll 8
                for (int r = 0; r < ATT_ROWS; r++) {
                    __m512 vv = _mm512_set1_ps(vr[r]);
                    c0[r] = _mm512_fmadd_ps(vv, p0, c0[r]);
                    c1[r] = _mm512_fmadd_ps(vv, p1, c1[r]);
                }
            }
        } else {
            for (int j = 0; j < nk; j++) {
                __m512 p0 = _mm512_loadu_ps(s + j * NQ), p1 = _mm512_loadu_ps(s + j * NQ + 16);
                const float *vr = v + (int64_t)j * v_rs + e0;
                for (int r = 0; r < rows; r++) {
                    __m512 vv = _mm512_set1_ps(vr[r]);
                    c0[r] = _mm512_fmadd_ps(vv, p0, c0[r]);
                    c1[r] = _mm512_fmadd_ps(vv, p1, c1[r]);
                }
            }
        }
        for (int r = 0; r < rows; r++) {
            _mm512_storeu_ps(ot + (e0 + r) * NQ, c0[r]);
            _mm512_storeu_ps(ot + (e0 + r) * NQ + 16, c1[r]);
        }
    }
}

static void sd_k_attn_block_f32__avx512(const float *qt, int dh, const float *k, int64_t k_rs,
                                        const float *v, int64_t v_rs, int nk, int causal,
                                        float *ot, float *mx, float *sum, float *s)
{
    enum { NQ = SD_ATT_NQ };
    att_scores(qt, dh, k, k_rs, nk, causal, s);
    __m512 alpha0, alpha1;
    att_softmax(s, nk, mx, sum, &alpha0, &alpha1);
    att_update(s, nk, v, v_rs, dh, alpha0, alpha1, ot);
}

/* ---- machine peak -------------------------------------------------------------------------- */

static double sd_k_peak_fma_f32__avx512(long iters)
{
    enum { NACC = 12 };
    __m512 acc[NACC];
    for (int j = 0; j < NACC; j++)
        acc[j] = _mm512_set1_ps((float)j);
    __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (long i = 0; i < iters; i++) {
        __asm__ volatile("" : "+v"(x), "+v"(y));
#pragma GCC unroll 12
        for (int j = 0; j < NACC; j++)
            acc[j] = _mm512_fmadd_ps(acc[j], x, y);
    }
    __m512 t = acc[0];
    for (int j = 1; j < NACC; j++)
        t = _mm512_add_ps(t, acc[j]);
    volatile float sink = _mm512_reduce_add_ps(t);
    (void)sink;
    return (double)iters * NACC * 16 * 2;
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
    k->gemm_f32 = sd_k_gemm_f32__avx512;
    k->wino_in_f32 = sd_k_wino_in_f32__avx512;
    k->wino_out_f32 = sd_k_wino_out_f32__avx512;
    k->attn_block_f32 = sd_k_attn_block_f32__avx512;
    k->peak_fma_f32 = sd_k_peak_fma_f32__avx512;
    k->packed_f32 = true;
}
