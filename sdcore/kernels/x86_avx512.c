/* kernels/x86_avx512.c - AVX-512 (F/BW/VL/DQ) variants of the kernel slots.  Only this file
 * is compiled with the AVX-512 flags; dispatch.c calls sd_kernels_fill_avx512 only after
 * checking the CPU and OS support them. */
#include "internal/half.h"
#include "internal/kernels.h"

#include <immintrin.h>

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

void sd_kernels_fill_avx512(sd_kernels *k)
{
    k->cvt_f16_f32 = sd_k_cvt_f16_f32__avx512;
    k->cvt_bf16_f32 = sd_k_cvt_bf16_f32__avx512;
}
