/* kernels/x86_avx512_vec.h - vector helpers shared by the AVX-512 kernel files (included
 * only by files compiled with the AVX-512 flags): tail masks and the float32 exp of
 * kernels/approx.h. */
#ifndef SD_KERNELS_X86_AVX512_VEC_H
#define SD_KERNELS_X86_AVX512_VEC_H

#include "kernels/approx.h"

#include <immintrin.h>
#include <math.h>
#include <stddef.h>

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

/* The online-softmax step of a flash-attention block with SD_ATT_NQ (32) query lanes: s
 * [nk][32] scores become exp(s - m') in place with m' the new running maximum per lane;
 * *alpha0/1 = exp(old max - m') for lanes 0-15/16-31; sum = sum * alpha + the new
 * probabilities; mx = m'.  Lanes with no visible key so far (all -inf) subtract 0 instead
 * of -inf, so their probabilities are 0 and their state stays (-inf, 0). */
static inline void att_softmax(float *s, int nk, float *mx, float *sum, __m512 *alpha0,
                               __m512 *alpha1)
{
    enum { NQ = 32 };
    __m512 old0 = _mm512_loadu_ps(mx), old1 = _mm512_loadu_ps(mx + 16);
    __m512 m0 = old0, m1 = old1;
    for (int j = 0; j < nk; j++) {
        m0 = _mm512_max_ps(m0, _mm512_loadu_ps(s + j * NQ));
        m1 = _mm512_max_ps(m1, _mm512_loadu_ps(s + j * NQ + 16));
    }
    __m512 ninf = _mm512_set1_ps(-INFINITY), zero = _mm512_setzero_ps();
    __m512 z0 = _mm512_mask_mov_ps(m0, _mm512_cmp_ps_mask(m0, ninf, _CMP_EQ_OQ), zero);
    __m512 z1 = _mm512_mask_mov_ps(m1, _mm512_cmp_ps_mask(m1, ninf, _CMP_EQ_OQ), zero);
    __m512 a0 = exp_ps(_mm512_sub_ps(old0, z0)), a1 = exp_ps(_mm512_sub_ps(old1, z1));
    __m512 l0 = zero, l1 = zero;
    for (int j = 0; j < nk; j++) {
        __m512 p0 = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(s + j * NQ), z0));
        __m512 p1 = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(s + j * NQ + 16), z1));
        _mm512_storeu_ps(s + j * NQ, p0);
        _mm512_storeu_ps(s + j * NQ + 16, p1);
        l0 = _mm512_add_ps(l0, p0);
        l1 = _mm512_add_ps(l1, p1);
    }
    _mm512_storeu_ps(sum, _mm512_fmadd_ps(_mm512_loadu_ps(sum), a0, l0));
    _mm512_storeu_ps(sum + 16, _mm512_fmadd_ps(_mm512_loadu_ps(sum + 16), a1, l1));
    _mm512_storeu_ps(mx, m0);
    _mm512_storeu_ps(mx + 16, m1);
    *alpha0 = a0;
    *alpha1 = a1;
}

#endif
