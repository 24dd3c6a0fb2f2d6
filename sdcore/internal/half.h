/* internal/half.h - scalar conversions between float32 and the 16-bit storage types (IEEE
 * half and bfloat16).  Weights are stored in these; kernels convert while packing.  These
 * scalar versions are the reference the SIMD converters are tested against. */
#ifndef SD_INTERNAL_HALF_H
#define SD_INTERNAL_HALF_H

#include <stdint.h>
#include <string.h>

static inline float sd_f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t sd_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* IEEE 754 binary16 -> binary32, exact for every input (subnormals, inf, NaN). */
static inline float sd_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t man = h & 0x3FF;
    if (exp == 0x1F)
        return sd_f32_from_bits(sign | 0x7F800000u | (man << 13));
    if (exp == 0) {
        if (man == 0)
            return sd_f32_from_bits(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return sd_f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

/* binary32 -> binary16, round to nearest even, overflow to inf, NaN kept quiet. */
static inline uint16_t sd_f32_to_f16(float f)
{
    uint32_t u = sd_f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t a = u & 0x7FFFFFFF;
    if (a >= 0x7F800000u)
        return (uint16_t)(sign | 0x7C00 | (a > 0x7F800000u ? 0x200 : 0));
    if (a >= 0x477FF000u) /* rounds to >= 65520 */
        return (uint16_t)(sign | 0x7C00);
    if (a < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        float v = sd_f32_from_bits(a) * 16777216.0f; /* in units of 2^-24 */
        uint32_t m = (uint32_t)v;
        float r = v - (float)m;
        if (r > 0.5f || (r == 0.5f && (m & 1)))
            m++;
        return (uint16_t)(sign | m);
    }
    uint32_t exp = ((a >> 23) - 112) << 10;
    uint32_t man = (a >> 13) & 0x3FF;
    uint32_t rest = a & 0x1FFF;
    uint32_t h = exp | man;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
}

static inline float sd_bf16_to_f32(uint16_t b)
{
    return sd_f32_from_bits((uint32_t)b << 16);
}

/* binary32 -> bfloat16, round to nearest even, NaN kept quiet. */
static inline uint16_t sd_f32_to_bf16(float f)
{
    uint32_t u = sd_f32_bits(f);
    if ((u & 0x7FFFFFFF) > 0x7F800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7FFF + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

#endif
