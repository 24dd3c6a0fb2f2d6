/* kernels/x86_avx512bf16.c - the slots that need AVX512_BF16 on top of AVX-512: the bf16
 * GEMM micro-kernel on vdpbf16ps (two bf16 products per float32 lane and instruction) and
 * the float32 -> bf16 pair packing on vcvtne2ps2bf16.  Only this file is compiled with
 * -mavx512bf16; dispatch.c fills it in only when CPUID and XCR0 allow.  On AMD Zen 4 the
 * dot product runs at twice the float32 FMA rate (measured: 235 vs 117 GFLOP/s per core). */
#include "internal/common.h"
#include "internal/kernels.h"
#include "kernels/x86_avx512_vec.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

static inline __mmask16 mask16(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u);
}

/* ---- packed GEMM micro-kernel ------------------------------------------------------------
 * 8 x 32 tile in 16 zmm accumulators; per k pair two vector loads of B (16 column pairs
 * each) and eight 32-bit broadcasts of A pairs. */
static void sd_k_gemm_bf16__avx512bf16(int64_t kp, const uint16_t *a, const uint16_t *b,
                                       int64_t ldb, float *c, int64_t ldc, int m, int n,
                                       bool acc)
{
    enum { MR = SD_GEMM_MR };
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
        c0[r] = c1[r] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int64_t p = 0; p < kp; p++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + 32);
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            int32_t pair;
            memcpy(&pair, a + 2 * r, sizeof pair);
            __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
            c0[r] = _mm512_dpbf16_ps(c0[r], av, b0);
            c1[r] = _mm512_dpbf16_ps(c1[r], av, b1);
        }
        a += 2 * MR;
        b += ldb;
    }
    __mmask16 k0 = mask16(n), k1 = mask16(n - 16);
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

/* ---- packing ------------------------------------------------------------------------------ */

static void sd_k_cvt_f32_bf16__avx512bf16(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = mask16((int)SD_MIN((size_t)16, n - i));
        __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(k, src + i));
        _mm256_mask_storeu_epi16(dst + i, k, (__m256i)h);
    }
}

static void sd_k_pack_bf16_pairs__avx512bf16(const float *r0, const float *r1, uint16_t *dst,
                                             size_t n)
{
    /* vcvtne2ps2bf16 puts row 0 in words 0..15 and row 1 in words 16..31; the permutation
     * interleaves them into (r0[i], r1[i]) pairs: word 2i <- i, word 2i+1 <- 16 + i */
    __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                   8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (size_t i = 0; i < n; i += 16) {
        int left = (int)SD_MIN((size_t)16, n - i);
        __mmask16 k = mask16(left);
        __m512 x0 = _mm512_maskz_loadu_ps(k, r0 + i);
        __m512 x1 = r1 ? _mm512_maskz_loadu_ps(k, r1 + i) : _mm512_setzero_ps();
        __m512i pairs = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
        __mmask32 kk = left >= 16 ? 0xFFFFFFFFu : (__mmask32)((1u << (2 * left)) - 1u);
        _mm512_mask_storeu_epi16(dst + 2 * i, kk, pairs);
    }
}

/* ---- flash attention in bf16 products -----------------------------------------------------
 * As the float32 block of x86_avx512.c, with pairs: scores pair up features (query pairs
 * from qp as the vector operand, key pairs broadcast), the output update pairs up keys
 * (probability pairs as the vector operand, value pairs broadcast). */
enum { ATT_ROWS = 8 };

static inline __m512bh bcast_pair(const uint16_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return (__m512bh)_mm512_set1_epi32(v);
}

/* scores into s [nk][32]; *m0, *m1 (in: the running maxima) become the maxima with them */
static void att_scores_bf16(const uint16_t *qp, int dh, const uint16_t *kb, int64_t kb_rs,
                            int nk, int causal, float *s, __m512 *m0, __m512 *m1)
{
    enum { NQ = SD_ATT_NQ };
    int dp = (dh + 1) / 2;
    for (int j0 = 0; j0 < nk; j0 += ATT_ROWS) {
        const uint16_t *kr[ATT_ROWS];
        for (int r = 0; r < ATT_ROWS; r++)
            kr[r] = kb + (int64_t)SD_MIN(j0 + r, nk - 1) * kb_rs;
        __m512 c0[ATT_ROWS], c1[ATT_ROWS];
#pragma GCC unroll 8
        for (int r = 0; r < ATT_ROWS; r++)
            c0[r] = c1[r] = _mm512_setzero_ps();
        for (int p = 0; p < dp; p++) {
            __m512bh q0 = (__m512bh)_mm512_loadu_si512(qp + p * 2 * NQ);
            __m512bh q1 = (__m512bh)_mm512_loadu_si512(qp + p * 2 * NQ + NQ);
#pragma GCC unroll 8
            for (int r = 0; r < ATT_ROWS; r++) {
                __m512bh kv = bcast_pair(kr[r] + 2 * p);
                c0[r] = _mm512_dpbf16_ps(c0[r], kv, q0);
                c1[r] = _mm512_dpbf16_ps(c1[r], kv, q1);
            }
        }
        int rows = SD_MIN(ATT_ROWS, nk - j0);
        __m512 ninf = _mm512_set1_ps(-INFINITY);
        for (int r = 0; r < rows; r++) {
            int j = j0 + r;
            int64_t lim = (int64_t)j - causal; /* lanes q < lim cannot see key j */
            uint32_t hide = lim <= 0 ? 0 : lim >= NQ ? 0xFFFFFFFFu : (1u << lim) - 1u;
            __m512 v0 = _mm512_mask_mov_ps(c0[r], (__mmask16)hide, ninf);
            __m512 v1 = _mm512_mask_mov_ps(c1[r], (__mmask16)(hide >> 16), ninf);
            _mm512_storeu_ps(s + j * NQ, v0);
            _mm512_storeu_ps(s + j * NQ + 16, v1);
            *m0 = _mm512_max_ps(*m0, v0);
            *m1 = _mm512_max_ps(*m1, v1);
        }
    }
}

/* exp(x) for x <= 0 (or -inf) to about 1e-5 relative: enough for probabilities that are
 * rounded to bf16 (2^-9) before they multiply; x below SD_EXP_ARG_MIN gives 0 */
static inline __m512 exp_neg_ps(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(SD_EXP_ARG_MIN), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(SD_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(SD_LN2_HI), x);
    __m512 p = _mm512_set1_ps(1.0f / 120);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* The online-softmax step fused with the bf16 packing: from the scores s [nk][32] and the
 * block's maxima m0/m1, the probabilities go straight into pp [nk2/2][32][2] (keys 2i,
 * 2i+1 per lane); sum and mx are updated, *alpha0/1 returned (as att_softmax). */
static void att_softmax_pack(const float *s, int nk, __m512 m0, __m512 m1, float *mx,
                             float *sum, uint16_t *pp, __m512 *alpha0, __m512 *alpha1)
{
    enum { NQ = SD_ATT_NQ };
    __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                   8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    __m512 ninf = _mm512_set1_ps(-INFINITY), zero = _mm512_setzero_ps();
    __m512 old0 = _mm512_loadu_ps(mx), old1 = _mm512_loadu_ps(mx + 16);
    m0 = _mm512_max_ps(m0, old0);
    m1 = _mm512_max_ps(m1, old1);
    /* lanes with nothing visible yet subtract 0 instead of -inf */
    __m512 z[2] = {_mm512_mask_mov_ps(m0, _mm512_cmp_ps_mask(m0, ninf, _CMP_EQ_OQ), zero),
                   _mm512_mask_mov_ps(m1, _mm512_cmp_ps_mask(m1, ninf, _CMP_EQ_OQ), zero)};
    __m512 l[2] = {zero, zero};
    for (int j = 0; j < nk; j += 2)
        for (int h = 0; h < 2; h++) {
            __m512 a = exp_neg_ps(_mm512_sub_ps(_mm512_loadu_ps(s + j * NQ + 16 * h), z[h]));
            __m512 b = j + 1 < nk ? exp_neg_ps(_mm512_sub_ps(
                                        _mm512_loadu_ps(s + (j + 1) * NQ + 16 * h), z[h]))
                                  : zero;
            l[h] = _mm512_add_ps(l[h], _mm512_add_ps(a, b));
            __m512i pr = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a));
            _mm512_storeu_si512(pp + j * NQ + 32 * h, pr);
        }
    __m512 a0 = exp_ps(_mm512_sub_ps(old0, z[0])), a1 = exp_ps(_mm512_sub_ps(old1, z[1]));
    _mm512_storeu_ps(sum, _mm512_fmadd_ps(_mm512_loadu_ps(sum), a0, l[0]));
    _mm512_storeu_ps(sum + 16, _mm512_fmadd_ps(_mm512_loadu_ps(sum + 16), a1, l[1]));
    _mm512_storeu_ps(mx, m0);
    _mm512_storeu_ps(mx + 16, m1);
    *alpha0 = a0;
    *alpha1 = a1;
}

static void att_update_bf16(const uint16_t *pp, int nk, const uint16_t *vp, int dh,
                            __m512 alpha0, __m512 alpha1, float *ot)
{
    enum { NQ = SD_ATT_NQ };
    int np = (nk + 1) / 2;
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
            for (int p = 0; p < np; p++) {
                __m512bh p0 = (__m512bh)_mm512_loadu_si512(pp + p * 2 * NQ);
                __m512bh p1 = (__m512bh)_mm512_loadu_si512(pp + p * 2 * NQ + NQ);
                const uint16_t *vr = vp + ((int64_t)p * dh + e0) * 2;
#pragma GCC unroll 8
                for (int r = 0; r < ATT_ROWS; r++) {
                    __m512bh vv = bcast_pair(vr + 2 * r);
                    c0[r] = _mm512_dpbf16_ps(c0[r], vv, p0);
                    c1[r] = _mm512_dpbf16_ps(c1[r], vv, p1);
                }
            }
        } else {
            for (int p = 0; p < np; p++) {
                __m512bh p0 = (__m512bh)_mm512_loadu_si512(pp + p * 2 * NQ);
                __m512bh p1 = (__m512bh)_mm512_loadu_si512(pp + p * 2 * NQ + NQ);
                const uint16_t *vr = vp + ((int64_t)p * dh + e0) * 2;
                for (int r = 0; r < rows; r++) {
                    __m512bh vv = bcast_pair(vr + 2 * r);
                    c0[r] = _mm512_dpbf16_ps(c0[r], vv, p0);
                    c1[r] = _mm512_dpbf16_ps(c1[r], vv, p1);
                }
            }
        }
        for (int r = 0; r < rows; r++) {
            _mm512_storeu_ps(ot + (e0 + r) * NQ, c0[r]);
            _mm512_storeu_ps(ot + (e0 + r) * NQ + 16, c1[r]);
        }
    }
}

static void sd_k_attn_block_bf16__avx512bf16(const uint16_t *qp, int dh, const uint16_t *kb,
                                             int64_t kb_rs, const uint16_t *vp, int nk,
                                             int causal, float *ot, float *mx, float *sum,
                                             float *s, uint16_t *pp)
{
    __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0, alpha0, alpha1;
    att_scores_bf16(qp, dh, kb, kb_rs, nk, causal, s, &m0, &m1);
    att_softmax_pack(s, nk, m0, m1, mx, sum, pp, &alpha0, &alpha1);
    att_update_bf16(pp, nk, vp, dh, alpha0, alpha1, ot);
}

/* lanes l of the block starting at i with lo <= i + l < hi */
static inline __mmask16 span_mask(int i, int lo, int hi)
{
    int a = SD_MAX(lo - i, 0), b = SD_MIN(hi - i, 16);
    return b <= a ? 0 : (__mmask16)(((1u << b) - 1u) & ~((1u << a) - 1u));
}

/* A masked load of 16 floats whose lane l is element i + l - lo of r (a pointer to element
 * lo of a span): the address is formed as an integer, since lanes before the span are
 * masked off and AVX-512 does not touch masked-off lanes. */
static inline __m512 span_load(const float *r, int i, int lo, __mmask16 k)
{
    if (!k)
        return _mm512_setzero_ps();
    uintptr_t a = (uintptr_t)r + (uintptr_t)((intptr_t)(i - lo) * (intptr_t)sizeof(float));
    return _mm512_maskz_loadu_ps(k, (const void *)a);
}

static void sd_k_pack_bf16_pairs_span__avx512bf16(const float *r0, int lo0, int hi0,
                                                  const float *r1, int lo1, int hi1,
                                                  uint16_t *dst, size_t n)
{
    __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                   8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int i = 0; i < (int)n; i += 16) {
        int left = SD_MIN(16, (int)n - i);
        __m512 x0 = span_load(r0, i, lo0, span_mask(i, lo0, hi0));
        __m512 x1 = span_load(r1, i, lo1, span_mask(i, lo1, hi1));
        __m512i pairs = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
        __mmask32 kk = left >= 16 ? 0xFFFFFFFFu : (__mmask32)((1u << (2 * left)) - 1u);
        _mm512_mask_storeu_epi16(dst + 2 * i, kk, pairs);
    }
}

/* ---- machine peak -------------------------------------------------------------------------- */

static double sd_k_peak_dot_bf16__avx512bf16(long iters)
{
    enum { NACC = 12 };
    __m512 acc[NACC];
    for (int j = 0; j < NACC; j++)
        acc[j] = _mm512_set1_ps((float)j);
    __m512bh x = (__m512bh)_mm512_set1_epi16(0x3a83), y = x; /* ~1e-3 */
    for (long i = 0; i < iters; i++) {
        __asm__ volatile("" : "+v"(x), "+v"(y));
#pragma GCC unroll 12
        for (int j = 0; j < NACC; j++)
            acc[j] = _mm512_dpbf16_ps(acc[j], x, y);
    }
    __m512 t = acc[0];
    for (int j = 1; j < NACC; j++)
        t = _mm512_add_ps(t, acc[j]);
    volatile float sink = _mm512_reduce_add_ps(t);
    (void)sink;
    return (double)iters * NACC * 32 * 2;
}

void sd_kernels_fill_avx512bf16(sd_kernels *k)
{
    k->gemm_bf16 = sd_k_gemm_bf16__avx512bf16;
    k->cvt_f32_bf16 = sd_k_cvt_f32_bf16__avx512bf16;
    k->pack_bf16_pairs = sd_k_pack_bf16_pairs__avx512bf16;
    k->pack_bf16_pairs_span = sd_k_pack_bf16_pairs_span__avx512bf16;
    k->attn_block_bf16 = sd_k_attn_block_bf16__avx512bf16;
    k->peak_dot_bf16 = sd_k_peak_dot_bf16__avx512bf16;
    k->native_bf16 = true;
}
