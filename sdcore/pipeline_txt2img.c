/* pipeline_txt2img.c - text to image (diffusers StableDiffusionPipeline): unit noise scaled
 * to the schedule's start level, the full sampler loop, decode.  Outside reference mode the
 * model works at its own resolution (same aspect, multiples of 8) and the result is resized
 * to the requested size, so a 100x100 selection and a 4000x3000 canvas both get an image
 * the model can actually make. */
#include "internal/imgproc.h"
#include "internal/pipeline.h"

sd_status sd_pipeline_txt2img(sd_run *r, sd_img *out, sd_error *err)
{
    const sd_gen_params *p = &r->p;
    int W = p->width ? p->width : p->resolution, H = p->height ? p->height : p->resolution;
    int gw = W, gh = H;
    if (!p->reference)
        sd_fit_size(W, H, p->resolution, &gw, &gh);
    const int h = gh / 8, w = gw / 8;
    const size_t n = (size_t)4 * (size_t)h * (size_t)w;
    sd_schedule *s = NULL;
    sd_img rgb = {0}, sized = {0};
    float *x = sd_malloc(n * sizeof(float));
    sd_status st;
    if (!x) {
        st = sd_fail_nomem(err, "latents");
        goto out;
    }
    if ((st = sd_run_schedule(r, 1.0, &s, err)))
        goto out;
    r->steps_total = s->n_steps - s->begin;
    if ((st = sd_run_encode_prompts(r, err)))
        goto out;
    /* prepare_latents: randn * init_noise_sigma */
    if ((st = sd_run_draw(r, x, n, err)))
        goto out;
    for (size_t k = 0; k < n; k++)
        x[k] *= s->init_noise_sigma;
    sd_sample_job job = {.h = h, .w = w, .x = x, .s = s};
    if ((st = sd_run_sample(r, &job, err)) || (st = sd_run_decode(r, x, h, w, &rgb, err)))
        goto out;
    const sd_img *src = &rgb;
    if (gw != W || gh != H) {
        if ((st = sd_img_resize(&rgb, W, H, SD_RESIZE_LANCZOS3, &sized, err)))
            goto out;
        src = &sized;
    }
    if ((st = sd_img_new(W, H, 4, out, err)))
        goto out;
    sd_img_fill(out, 1.0f);
    for (int y = 0; y < H; y++)
        for (int xx = 0; xx < W; xx++)
            for (int c = 0; c < 3; c++)
                sd_img_px(out, xx, y)[c] = sd_img_px(src, xx, y)[c];
out:
    sd_free(x);
    sd_img_free(&rgb);
    sd_img_free(&sized);
    sd_schedule_free(s);
    return st;
}
