/* pipeline_inpaint.c - regenerate what a mask covers (diffusers StableDiffusionInpaintPipeline
 * for both model kinds).  4-channel models: after every step the known region is replaced
 * by the clean image latents noised to the next step's level.  9-channel inpainting models:
 * the UNet also sees the mask and the latents of the image with the masked part grey.
 * The mask used during sampling is binarised (>= 0.5), as diffusers does.
 *
 * The editor way ("only masked", A1111): crop the mask's bounding box plus padding, process
 * it at the model's resolution, paste the result back through the blurred soft mask with
 * the new area's colours matched to its surroundings; pixels the blurred mask leaves at 0
 * are bit-identical to the input.  Reference mode works on the whole image as diffusers
 * does and returns the decoded image unpasted. */
#include "internal/imgproc.h"
#include "internal/pipeline.h"

#include <string.h>

/* A1111's "fill" masked content: every masked pixel takes the colour of its surroundings,
 * by normalised convolution (blur of the known pixels divided by the blur of the known
 * mask), at the smallest of the scales 4, 8, 16, ... px that reaches it. */
static sd_status fill_from_surroundings(const sd_img *img, const sd_img *bin, sd_img *out,
                                        sd_error *err)
{
    sd_img known = {0}, wsum = {0}, bk = {0}, bw = {0};
    const size_t npx = (size_t)img->w * (size_t)img->h;
    unsigned char *todo = sd_malloc(npx);
    size_t left = 0;
    sd_status st;
    if (!todo) {
        st = sd_fail_nomem(err, "fill");
        goto out;
    }
    if ((st = sd_img_clone(img, out, err)) || (st = sd_img_new(img->w, img->h, 3, &known, err)) ||
        (st = sd_img_new(img->w, img->h, 1, &wsum, err)))
        goto out;
    for (int y = 0; y < img->h; y++)
        for (int x = 0; x < img->w; x++) {
            bool masked = sd_img_px(bin, x, y)[0] >= 0.5f;
            todo[(size_t)y * img->w + x] = masked;
            left += masked;
            for (int c = 0; c < 3; c++)
                sd_img_px(&known, x, y)[c] = masked ? 0.0f : sd_img_px(img, x, y)[c];
            sd_img_px(&wsum, x, y)[0] = masked ? 0.0f : 1.0f;
        }
    if ((st = sd_img_new(img->w, img->h, 3, &bk, err)) ||
        (st = sd_img_new(img->w, img->h, 1, &bw, err)))
        goto out;
    const float big = (float)(img->w > img->h ? img->w : img->h);
    for (float sigma = 4.0f; left > 0; sigma *= 2.0f) {
        if ((st = sd_img_blur(&known, sigma, sigma, &bk, err)) ||
            (st = sd_img_blur(&wsum, sigma, sigma, &bw, err)))
            goto out;
        for (int y = 0; y < img->h; y++)
            for (int x = 0; x < img->w; x++) {
                float wgt = sd_img_px(&bw, x, y)[0];
                if (!todo[(size_t)y * img->w + x] || wgt < 1e-3f)
                    continue;
                for (int c = 0; c < 3; c++)
                    sd_img_px(out, x, y)[c] = sd_img_px(&bk, x, y)[c] / wgt;
                todo[(size_t)y * img->w + x] = 0;
                left--;
            }
        if (sigma >= big)
            break;
    }
    for (size_t k = 0; left && k < npx; k++) /* nothing known at all: mid grey */
        if (todo[k])
            for (int c = 0; c < 3; c++)
                sd_img_px(out, (int)(k % img->w), (int)(k / img->w))[c] = 0.5f;
out:
    if (st)
        sd_img_free(out);
    sd_free(todo);
    sd_img_free(&known);
    sd_img_free(&wsum);
    sd_img_free(&bk);
    sd_img_free(&bw);
    return st;
}

sd_status sd_run_inpaint(sd_run *r, const sd_img *img, const sd_img *mask, double strength,
                         sd_img *out, sd_error *err)
{
    const int h = img->h / 8, w = img->w / 8;
    const size_t hw = (size_t)h * (size_t)w, n = 4 * hw;
    const bool nine = r->ui.in_channels == 9, full = strength >= 1.0;
    sd_schedule *s = NULL;
    sd_img bin = {0}, lmask = {0}, masked = {0}, filled = {0};
    float *z = sd_malloc(n * sizeof(float)), *noise = sd_malloc(n * sizeof(float));
    float *x = sd_malloc(n * sizeof(float)), *mz = sd_malloc(n * sizeof(float));
    sd_status st;
    memset(out, 0, sizeof *out);
    if (!z || !noise || !x || !mz) {
        st = sd_fail_nomem(err, "latents");
        goto out;
    }
    if ((st = sd_run_schedule(r, strength, &s, err)) ||
        (st = sd_img_new(img->w, img->h, 1, &bin, err)) ||
        (st = sd_mask_binarize(mask, &bin, err)) || (st = sd_mask_to_latent(mask, &lmask, err)))
        goto out;
    /* masked image: the masked part set to grey (0 in the VAE's -1..1 range) */
    if ((st = sd_img_clone(img, &masked, err)))
        goto out;
    for (int yy = 0; yy < img->h; yy++)
        for (int xx = 0; xx < img->w; xx++)
            if (sd_img_px(&bin, xx, yy)[0] >= 0.5f)
                for (int c = 0; c < 3; c++)
                    sd_img_px(&masked, xx, yy)[c] = 0.5f;

    const sd_img *start_img = img;
    if (!r->p.reference && r->p.fill == SD_FILL_FILL) {
        if ((st = fill_from_surroundings(img, &bin, &filled, err)))
            goto out;
        start_img = &filled;
    }
    /* prepare_latents: the image latents are needed by 4-channel models (re-imposition) and
     * whenever the start is not pure noise; then the noise */
    if (!nine || !full) {
        if ((st = sd_run_encode_image(r, start_img, true, z, err)))
            goto out;
        if (!r->p.reference && r->p.fill == SD_FILL_LATENT_NOISE) {
            if ((st = sd_run_draw(r, x, n, err)))
                goto out;
            for (size_t k = 0; k < n; k++)
                z[k] = lmask.data[k % hw] >= 0.5f ? x[k] : z[k];
        } else if (!r->p.reference && r->p.fill == SD_FILL_LATENT_NOTHING) {
            for (size_t k = 0; k < n; k++)
                z[k] = lmask.data[k % hw] >= 0.5f ? 0.0f : z[k];
        }
    }
    if ((st = sd_run_draw(r, noise, n, err)))
        goto out;
    if (full) {
        for (size_t k = 0; k < n; k++)
            x[k] = noise[k] * s->init_noise_sigma;
    } else {
        sd_schedule_add_noise(s, s->begin, z, noise, x, n);
    }
    /* prepare_mask_latents: the masked image's latents (a posterior sample, drawn even when
     * a 4-channel model does not use them, to keep the random stream of the reference) */
    if (nine) {
        if ((st = sd_run_encode_image(r, &masked, true, mz, err)))
            goto out;
    } else if ((st = sd_run_draw(r, mz, n, err))) {
        goto out;
    }
    sd_sample_job job = {.h = h, .w = w, .x = x, .s = s};
    if (nine) {
        job.mask_lat = lmask.data;
        job.masked_lat = mz;
    } else {
        job.known_x0 = z;
        job.known_noise = noise;
        job.known_mask = lmask.data;
    }
    if ((st = sd_run_sample(r, &job, err)))
        goto out;
    st = sd_run_decode(r, x, h, w, out, err);
out:
    sd_free(z);
    sd_free(noise);
    sd_free(x);
    sd_free(mz);
    sd_img_free(&bin);
    sd_img_free(&lmask);
    sd_img_free(&masked);
    sd_img_free(&filled);
    sd_schedule_free(s);
    return st;
}

sd_status sd_pipeline_inpaint(sd_run *r, sd_img *out, sd_error *err)
{
    const sd_image *pi = r->p.init, *pm = r->p.mask;
    sd_img init = sd_img_view(pi->data, pi->width, pi->height, pi->channels, pi->stride);
    sd_img mask = sd_img_view(pm->data, pm->width, pm->height, 1, pm->stride);
    r->steps_total = sd_run_steps_for(r, r->p.strength);
    sd_status st = sd_run_encode_prompts(r, err);
    if (st)
        return st;
    if (r->p.reference) {
        sd_img gen = {0};
        st = sd_run_inpaint(r, &init, &mask, r->p.strength, &gen, err);
        if (st == SD_OK)
            st = sd_run_to_rgba(&gen, &init, out, err);
        sd_img_free(&gen);
        return st;
    }
    return sd_run_selection(r, &init, &mask, true, out, err);
}
