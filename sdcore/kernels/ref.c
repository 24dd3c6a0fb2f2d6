/* kernels/ref.c - the scalar reference of every kernel slot.  Compiled with
 * -ffp-contract=off and no ISA flags: this file is the numerical truth the SIMD variants
 * are tested against.  Never delete a reference when adding a faster variant. */
#include "internal/half.h"
#include "internal/kernels.h"

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

void sd_kernels_fill_ref(sd_kernels *k)
{
    k->cvt_f16_f32 = sd_k_cvt_f16_f32__ref;
    k->cvt_bf16_f32 = sd_k_cvt_bf16_f32__ref;
}
