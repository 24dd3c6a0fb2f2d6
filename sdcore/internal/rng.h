/* internal/rng.h - a random number generator that reproduces PyTorch's CPU generator bit for
 * bit: torch.Generator("cpu").manual_seed(s) followed by torch.randn(..., generator=g) calls.
 * diffusers draws every latent and every sampler noise this way, so a seed here gives the
 * same image as the reference pipeline.  The generator is a plain value (no allocation):
 * embed it or keep it on the stack. */
#ifndef SD_INTERNAL_RNG_H
#define SD_INTERNAL_RNG_H

#include "internal/common.h"

#define SD_RNG_MT_N 624

/* torch's CPUGeneratorImpl: a 32-bit Mersenne Twister (mt19937) plus the cached second value
 * of the scalar Box-Muller path.  Fields are private to rng.c. */
typedef struct sd_rng {
    uint32_t mt[SD_RNG_MT_N];
    int left;                 /* outputs left before the state is regenerated (+1) */
    int next;                 /* index of the next state word to temper */
    uint64_t seed;            /* as given to sd_rng_seed */
    bool has_next_normal;     /* torch's next_double_normal_sample is set */
    double next_normal;
} sd_rng;

/* (Re)seed: torch's manual_seed(seed).  torch keeps the 64-bit seed but initialises the
 * Mersenne Twister from its low 32 bits only, so seeds that differ only above bit 31 give the
 * same stream (as in torch); a negative Python seed s corresponds to seed = s + 2^64.  Drops
 * the cached normal.  Never fails.  Thread: the caller owns r. */
void sd_rng_seed(sd_rng *r, uint64_t seed);

/* The seed last given to sd_rng_seed. */
uint64_t sd_rng_initial_seed(const sd_rng *r);

/* Next raw 32-bit output (torch's generator->random()). */
uint32_t sd_rng_u32(sd_rng *r);

/* Next 64-bit output: two 32-bit outputs, the first in the high half (random64()). */
uint64_t sd_rng_u64(sd_rng *r);

/* Fill out[0..n) with standard normal float32 values exactly as
 * torch.randn(n, generator=g, dtype=torch.float32) does on an x86-64 CPU with AVX2 (the
 * generator advances identically; the values are bit-identical):
 *   n >= 16: n uniform floats (24 random bits each), transformed in blocks of 16 by
 *            Box-Muller (cos for the first 8, sin for the second 8) with torch's AVX2
 *            polynomial log/sincos; if n % 16 != 0 the last 16 outputs are recomputed from 16
 *            fresh uniforms;
 *   n < 16:  one value at a time from 53-bit uniforms in double, the sin value of each pair
 *            cached in the generator for the next call.
 * The shape of the tensor does not matter, only the element count.  Never fails.  Thread:
 * the caller owns r; out is written only. */
void sd_rng_randn(sd_rng *r, float *out, size_t n);

/* The same for dtype=torch.float64 (53-bit uniforms, libm log/cos/sin in double). */
void sd_rng_randn_f64(sd_rng *r, double *out, size_t n);

#endif
