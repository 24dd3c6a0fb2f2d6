/* pipeline_denoise.c - diffusion-based restoration of a noisy photo: estimate the noise
 * level, map it to an img2img strength (low enough that the photo's structure survives),
 * and run img2img at the image's own resolution in overlapping tiles of the model's size,
 * blended across the overlaps so no seam shows.  Nothing is down-scaled. */
#include "internal/imgproc.h"
#include "internal/pipeline.h"

#include <string.h>

float sd_denoise_strength_for_sigma(float sigma)
{
    return sd_denoise_strength(sigma, NULL);
}

sd_status sd_estimate_noise(const sd_image *img, float *sigma, sd_error *err)
{
    if (!img || !img->data || !sigma)
        return sd_fail(err, SD_ERR_INVALID_ARG, "sd_estimate_noise: no image");
    sd_img v = sd_img_view(img->data, img->width, img->height, img->channels, img->stride);
    sd_status st = sd_img_check(&v, (1 << 1) | (1 << 3) | (1 << 4), "the image", err);
    if (st)
        return st;
    sd_noise_estimate ne;
    if ((st = sd_noise_estimate_img(&v, &ne, err)))
        return st;
    *sigma = ne.sigma;
    return SD_OK;
}

sd_status sd_pipeline_denoise(sd_run *r, sd_img *out, float *sigma, sd_error *err)
{
    const sd_image *pi = r->p.init;
    sd_img init = sd_img_view(pi->data, pi->width, pi->height, pi->channels, pi->stride);
    sd_noise_estimate ne;
    sd_status st = sd_noise_estimate_img(&init, &ne, err);
    if (st)
        return st;
    *sigma = ne.sigma;
    double strength =
        r->p.strength >= 0 ? r->p.strength : sd_denoise_strength_for_sigma(ne.sigma);
    /* at least one step must run */
    if (strength * r->p.steps < 1.0)
        strength = 1.0 / r->p.steps + 1e-9;
    r->p.strength = (float)strength;

    const int tile = r->p.tile > 0 ? r->p.tile / 8 * 8 : r->p.resolution;
    const int overlap = tile / 4 / 8 * 8;
    sd_rect *tiles = NULL;
    int n_tiles = 0;
    sd_tile_acc *acc = NULL;
    sd_img rgb = {0};
    if ((st = sd_tiles_plan(init.w, init.h, tile, tile, overlap, &tiles, &n_tiles, err)) ||
        (st = sd_tile_acc_new(init.w, init.h, 3, overlap > 8 ? overlap : 8, &acc, err)))
        goto out;
    r->steps_total = n_tiles * sd_run_steps_for(r, strength);
    if ((st = sd_run_encode_prompts(r, err)))
        goto out;
    for (int k = 0; k < n_tiles; k++) {
        sd_img sub = sd_img_sub(&init, tiles[k]), gen = {0};
        st = sd_run_img2img(r, &sub, strength, &gen, err);
        if (st == SD_OK)
            st = sd_tile_acc_add(acc, tiles[k], &gen, err);
        sd_img_free(&gen);
        if (st)
            goto out;
    }
    if ((st = sd_img_new(init.w, init.h, 3, &rgb, err)) ||
        (st = sd_tile_acc_finish(acc, &rgb, err)))
        goto out;
    st = sd_run_to_rgba(&rgb, &init, out, err);
out:
    sd_free(tiles);
    sd_tile_acc_free(acc);
    sd_img_free(&rgb);
    return st;
}
