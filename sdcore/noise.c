/* noise.c - the noise sources of internal/noise.h: seeded (torch's CPU generator) or
 * replayed from recorded draws. */
#include "internal/noise.h"

#include <string.h>

void sd_noise_src_seed(sd_noise_src *src, uint64_t seed)
{
    memset(src, 0, sizeof *src);
    sd_rng_seed(&src->rng, seed);
}

void sd_noise_src_replay(sd_noise_src *src, const float *const *draws, const size_t *sizes,
                         int n_draws)
{
    memset(src, 0, sizeof *src);
    src->draws = draws;
    src->sizes = sizes;
    src->n_draws = n_draws;
}

sd_status sd_noise_draw(sd_noise_src *src, float *out, size_t n, sd_error *err)
{
    if (!src->draws) {
        sd_rng_randn(&src->rng, out, n);
        src->next++;
        return SD_OK;
    }
    if (src->next >= src->n_draws)
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "replayed noise: the run needs draw %d but only %d were given",
                       src->next, src->n_draws);
    if (src->sizes[src->next] != n)
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "replayed noise: draw %d holds %zu values, the run needs %zu", src->next,
                       src->sizes[src->next], n);
    memcpy(out, src->draws[src->next], n * sizeof *out);
    src->next++;
    return SD_OK;
}
