/* pipeline_img2img.c - image to image (diffusers StableDiffusionImg2ImgPipeline): encode the
 * picture, noise it to the level `strength` selects (t_start = N - int(N * strength)), run
 * the remaining steps, decode.  With a mask (a selection) the editor works on the
 * selection's bounding box plus padding at the model's resolution and composites the result
 * back through the soft mask; without one, on the whole image resized to the model's
 * resolution and back.  Reference mode does exactly what diffusers does at the image's own
 * size. */
#include "internal/imgproc.h"
#include "internal/pipeline.h"

#include <string.h>

int sd_run_steps_for(const sd_run *r, double strength)
{
    if (r->p.sampler == SD_SAMPLER_LCM)
        return r->p.steps;
    int run = (int)((double)r->p.steps * strength);
    return run < r->p.steps ? run : r->p.steps;
}

sd_status sd_run_to_rgba(const sd_img *rgb, const sd_img *alpha_from, sd_img *out,
                         sd_error *err)
{
    sd_status st = sd_img_new(rgb->w, rgb->h, 4, out, err);
    if (st)
        return st;
    for (int y = 0; y < rgb->h; y++)
        for (int x = 0; x < rgb->w; x++) {
            float *d = sd_img_px(out, x, y);
            const float *s = sd_img_px(rgb, x, y);
            d[0] = s[0], d[1] = s[1], d[2] = s[2];
            d[3] = alpha_from && alpha_from->c == 4 ? sd_img_px(alpha_from, x, y)[3] : 1.0f;
        }
    return SD_OK;
}

sd_status sd_run_img2img(sd_run *r, const sd_img *img, double strength, sd_img *out,
                         sd_error *err)
{
    const int h = img->h / 8, w = img->w / 8;
    const size_t n = (size_t)4 * (size_t)h * (size_t)w;
    sd_schedule *s = NULL;
    float *z = sd_malloc(n * sizeof(float)), *noise = sd_malloc(n * sizeof(float));
    sd_status st;
    memset(out, 0, sizeof *out);
    if (!z || !noise) {
        st = sd_fail_nomem(err, "latents");
        goto out;
    }
    if ((st = sd_run_schedule(r, strength, &s, err)))
        goto out;
    /* prepare_latents: image latents sampled from the posterior (draw 1), noise (draw 2),
     * add_noise at the first step run */
    if ((st = sd_run_encode_image(r, img, true, z, err)) || (st = sd_run_draw(r, noise, n, err)))
        goto out;
    sd_schedule_add_noise(s, s->begin, z, noise, z, n);
    sd_sample_job job = {.h = h, .w = w, .x = z, .s = s};
    if ((st = sd_run_sample(r, &job, err)))
        goto out;
    st = sd_run_decode(r, z, h, w, out, err);
out:
    sd_free(z);
    sd_free(noise);
    sd_schedule_free(s);
    return st;
}

/* Whole image without a mask: resize to the model's resolution and back. */
static sd_status whole_image(sd_run *r, const sd_img *init, sd_img *out, sd_error *err)
{
    int pw = init->w, ph = init->h;
    if (!r->p.reference)
        sd_fit_size(init->w, init->h, r->p.resolution, &pw, &ph);
    sd_img proc = {0}, gen = {0}, back = {0};
    sd_status st;
    if (pw != init->w || ph != init->h)
        st = sd_img_resize(init, pw, ph, SD_RESIZE_LANCZOS3, &proc, err);
    else
        st = sd_img_clone(init, &proc, err);
    if (st == SD_OK)
        st = sd_run_img2img(r, &proc, r->p.strength, &gen, err);
    const sd_img *res = &gen;
    if (st == SD_OK && (gen.w != init->w || gen.h != init->h)) {
        st = sd_img_resize(&gen, init->w, init->h, SD_RESIZE_LANCZOS3, &back, err);
        res = &back;
    }
    if (st == SD_OK)
        st = sd_run_to_rgba(res, init, out, err);
    sd_img_free(&proc);
    sd_img_free(&gen);
    sd_img_free(&back);
    return st;
}

sd_status sd_run_selection(sd_run *r, const sd_img *init, const sd_img *mask, bool inpaint,
                           sd_img *out, sd_error *err)
{
    sd_inpaint_crop_params cp = sd_inpaint_crop_params_default();
    cp.only_masked = !inpaint || !r->p.whole_image;
    cp.padding = r->p.padding;
    cp.mask_blur = r->p.mask_blur;
    cp.native = r->p.resolution;
    cp.proc_w = cp.proc_h = 0; /* the padded selection's own aspect at the model's area */
    sd_inpaint_crop crop = {0};
    sd_img gen = {0}, pasted = {0};
    sd_status st = sd_inpaint_crop_make(init, mask, &cp, &crop, err);
    if (st == SD_OK)
        st = inpaint ? sd_run_inpaint(r, &crop.image, &crop.mask, r->p.strength, &gen, err)
                     : sd_run_img2img(r, &crop.image, r->p.strength, &gen, err);
    if (st == SD_OK) {
        sd_paste_params pp = sd_paste_params_default();
        pp.color_match = inpaint && r->p.color_match; /* img2img is meant to change colours */
        st = sd_inpaint_paste(init, &crop, &gen, &pp, &pasted, err);
    }
    if (st == SD_OK)
        st = pasted.c == 4 ? sd_img_clone(&pasted, out, err)
                           : sd_run_to_rgba(&pasted, NULL, out, err);
    sd_inpaint_crop_free(&crop);
    sd_img_free(&gen);
    sd_img_free(&pasted);
    return st;
}

sd_status sd_pipeline_img2img(sd_run *r, sd_img *out, sd_error *err)
{
    const sd_image *pi = r->p.init;
    sd_img init = sd_img_view(pi->data, pi->width, pi->height, pi->channels, pi->stride);
    r->steps_total = sd_run_steps_for(r, r->p.strength);
    sd_status st = sd_run_encode_prompts(r, err);
    if (st)
        return st;
    if (r->p.mask && !r->p.reference) {
        const sd_image *pm = r->p.mask;
        sd_img mask = sd_img_view(pm->data, pm->width, pm->height, 1, pm->stride);
        if (!sd_mask_is_empty(&mask, 0.0f))
            return sd_run_selection(r, &init, &mask, false, out, err);
    }
    return whole_image(r, &init, out, err);
}
