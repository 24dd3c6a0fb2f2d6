/* internal/noise.h - where a run's random numbers come from: a torch-compatible generator
 * seeded from the user's seed, or a list of recorded draws replayed in order (so a golden
 * case made by the reference pipeline replays exactly, and tests can pin the noise).
 * Every random draw of a pipeline (start latents, VAE posterior sampling, ancestral sampler
 * noise) goes through sd_noise_draw, in the reference pipeline's order. */
#ifndef SD_INTERNAL_NOISE_H
#define SD_INTERNAL_NOISE_H

#include "internal/rng.h"

typedef struct sd_noise_src {
    sd_rng rng;
    const float *const *draws;   /* replay: draw k is draws[k] with sizes[k] floats */
    const size_t *sizes;
    int n_draws;
    int next;                    /* draws taken so far */
} sd_noise_src;

/* Seeded source: torch.Generator("cpu").manual_seed(seed).  Never fails. */
void sd_noise_src_seed(sd_noise_src *src, uint64_t seed);

/* Replay source: draws are handed out in order; the arrays must outlive the source. */
void sd_noise_src_replay(sd_noise_src *src, const float *const *draws, const size_t *sizes,
                         int n_draws);

/* Fill out[0..n) with the next draw of n standard normals.  Replay errors
 * (SD_ERR_INVALID_ARG): the recorded draws are exhausted, or draw k holds a different count
 * than asked (the message names both).  Thread: the caller owns src. */
sd_status sd_noise_draw(sd_noise_src *src, float *out, size_t n, sd_error *err);

#endif
