/* kernels/x86_avx2.c - AVX2 + FMA + F16C variants of the kernel slots.  Only this file is
 * compiled with -mavx2 -mfma -mf16c; dispatch.c calls sd_kernels_fill_avx2 only after
 * checking the CPU and OS support them. */
#include "internal/half.h"
#include "internal/kernels.h"

#include <immintrin.h>

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

void sd_kernels_fill_avx2(sd_kernels *k)
{
    k->cvt_f16_f32 = sd_k_cvt_f16_f32__avx2;
    k->cvt_bf16_f32 = sd_k_cvt_bf16_f32__avx2;
}
