/* pipeline_run.c - the steps every filter is made of (internal/pipeline.h): building a run,
 * encoding the prompts, the sampler loop with classifier-free guidance, and the conversions
 * between images and latents.  The loop mirrors the denoising loop of diffusers'
 * StableDiffusionPipeline / Img2Img / Inpaint pipelines step for step, so that a seed gives
 * the reference image. */
#include "internal/pipeline.h"

#include "internal/ctx.h"
#include "internal/taesd.h"
#include "internal/text_encoder.h"
#include "internal/tokenizer.h"
#include "internal/vae.h"

#include <math.h>
#include <string.h>
#include <time.h>

double sd_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ==== setup ============================================================================= */

sd_status sd_run_init(sd_run *r, sd_ctx *ctx, const sd_model *m, const sd_gen_params *p,
                      sd_error *err)
{
    memset(r, 0, sizeof *r);
    r->t0 = sd_now();
    r->ctx = ctx;
    r->m = m;
    r->hp = sd_model_get_hparams(m);
    r->p = *p;
    r->guidance = p->cfg > 1.0f;
    if (p->n_noise_draws > 0) {
        sd_noise_src_replay(&r->noise, p->noise_draws, p->noise_sizes, p->n_noise_draws);
        r->seed = (uint64_t)(p->seed < 0 ? 0 : p->seed);
    } else {
        r->seed = (uint64_t)p->seed;
        sd_noise_src_seed(&r->noise, r->seed);
    }
    sd_status st = sd_unet_new(m, &r->unet, err);
    if (st != SD_OK) {
        sd_run_free(r);
        return st;
    }
    sd_unet_get_info(r->unet, &r->ui);
    return SD_OK;
}

void sd_run_free(sd_run *r)
{
    sd_unet_free(r->unet);
    sd_free(r->cond);
    memset(r, 0, sizeof *r);
}

sd_status sd_run_draw(sd_run *r, float *out, size_t n, sd_error *err)
{
    return sd_noise_draw(&r->noise, out, n, err);
}

/* ==== progress ============================================================================ */

bool sd_run_report(sd_run *r, sd_phase phase)
{
    r->phase = phase;
    if (!r->p.progress)
        return !r->cancelled;
    sd_progress pr = {
        .phase = phase,
        .step = r->steps_done,
        .n_steps = r->steps_total,
        .elapsed = sd_now() - r->t0,
        .eta = -1,
    };
    if (r->steps_done > 0 && r->steps_total >= r->steps_done)
        pr.eta = pr.elapsed / r->steps_done * (r->steps_total - r->steps_done);
    if (!r->p.progress(&pr, r->p.progress_user))
        r->cancelled = true;
    return !r->cancelled;
}

/* The UNet calls this between its blocks: the host may cancel within one evaluation. */
static bool unet_hook(void *user)
{
    sd_run *r = user;
    return sd_run_report(r, SD_PHASE_SAMPLE);
}

/* ==== prompts ============================================================================ */

/* Encode one prompt into an sd_malloc'ed [n_windows * 77, D] array: diffusers' raw
 * tokenisation in reference mode, the A1111 syntax otherwise. */
static sd_status encode_one(sd_run *r, const sd_tokenizer *tok, const char *text, float **out,
                            int *n_windows, sd_error *err)
{
    return sd_text_encode_prompt(r->ctx, r->m, tok, text, r->p.reference, r->p.clip_skip, out,
                                 n_windows, err);
}

sd_status sd_run_encode_prompts(sd_run *r, sd_error *err)
{
    if (!sd_run_report(r, SD_PHASE_TEXT))
        return SD_CANCELLED;
    const int D = sd_text_hidden_size(r->m);
    if (D == 0)
        return sd_fail(err, SD_ERR_INVALID_ARG, "the model has no text encoder");
    if (D != r->ui.context_dim)
        return sd_fail(err, SD_ERR_FORMAT,
                       "text encoder width %d does not match the UNet's context width %d", D,
                       r->ui.context_dim);
    sd_tokenizer *tok = NULL;
    float *pos = NULL, *neg = NULL, *empty = NULL;
    int n_pos = 0, n_neg = 0, n_empty = 0;
    sd_status st = sd_tokenizer_new(&tok, err);
    if (st)
        return st;
    const char *prompt = r->p.prompt ? r->p.prompt : "";
    const char *negative = r->p.negative_prompt ? r->p.negative_prompt : "";
    if ((st = encode_one(r, tok, prompt, &pos, &n_pos, err)))
        goto out;
    if (r->guidance && (st = encode_one(r, tok, negative, &neg, &n_neg, err)))
        goto out;
    /* Both halves of the guidance batch need the same length: pad the shorter one with
     * windows of the empty prompt, as A1111 does. */
    int n_win = n_pos > n_neg ? n_pos : n_neg;
    if (r->guidance && n_pos != n_neg && (st = encode_one(r, tok, "", &empty, &n_empty, err)))
        goto out;
    const size_t win = (size_t)SD_TEXT_WINDOW * (size_t)D;
    r->n_cond = r->guidance ? 2 : 1;
    r->cond_len = n_win * SD_TEXT_WINDOW;
    r->cond_dim = D;
    r->cond = sd_malloc((size_t)r->n_cond * (size_t)n_win * win * sizeof(float));
    if (!r->cond) {
        st = sd_fail_nomem(err, "prompt embeddings");
        goto out;
    }
    /* batch order [uncond, cond], as diffusers concatenates them */
    float *dst = r->cond;
    if (r->guidance) {
        for (int k = 0; k < n_win; k++, dst += win)
            memcpy(dst, k < n_neg ? neg + k * win : empty, win * sizeof(float));
    }
    for (int k = 0; k < n_win; k++, dst += win)
        memcpy(dst, k < n_pos ? pos + k * win : empty, win * sizeof(float));
out:
    sd_free(pos);
    sd_free(neg);
    sd_free(empty);
    sd_tokenizer_free(tok);
    return st;
}

/* ==== schedule ============================================================================= */

sd_status sd_run_schedule(const sd_run *r, double strength, sd_schedule **out, sd_error *err)
{
    sd_schedule_params sp = sd_schedule_params_default();
    sp.kind = r->p.sampler;
    sp.spacing = r->p.spacing;
    sp.karras = r->p.karras;
    sp.n_steps = r->p.steps;
    sp.strength = strength;
    sp.prediction = r->p.prediction;
    return sd_schedule_new(&sp, out, err);
}

/* ==== previews ============================================================================= */

/* A cheap RGB view of latents without any network: a fixed linear map per latent channel
 * (the well-known approximation of the SD 1.x/2.x VAE's colours), then nearest 8x upsizing. */
static const float latent_rgb[4][3] = {
    {0.298f, 0.207f, 0.208f},
    {0.187f, 0.286f, 0.173f},
    {-0.158f, 0.189f, 0.264f},
    {-0.184f, -0.271f, -0.473f},
};

static void preview(sd_run *r, const float *x0, int h, int w)
{
    if (!r->p.preview)
        return;
    sd_img img = {0};
    if (r->p.taesd) {
        float *planar = sd_malloc((size_t)3 * 64 * (size_t)h * (size_t)w * sizeof(float));
        if (planar && sd_img_new(8 * w, 8 * h, 3, &img, NULL) == SD_OK &&
            sd_taesd_decode(r->ctx, r->p.taesd, x0, h, w, planar, NULL) == SD_OK)
            sd_img_from_planar(planar, 3, 1.0f, 0.0f, &img);
        else
            sd_img_free(&img);
        sd_free(planar);
    }
    if (!img.data) {
        if (sd_img_new(8 * w, 8 * h, 3, &img, NULL) != SD_OK)
            return;
        const size_t hw = (size_t)h * (size_t)w;
        for (int y = 0; y < 8 * h; y++)
            for (int x = 0; x < 8 * w; x++) {
                size_t k = (size_t)(y / 8) * (size_t)w + (size_t)(x / 8);
                float *px = sd_img_px(&img, x, y);
                for (int c = 0; c < 3; c++) {
                    float v = 0;
                    for (int l = 0; l < 4; l++)
                        v += latent_rgb[l][c] * x0[l * hw + k];
                    v = v * 0.5f + 0.5f;
                    px[c] = v < 0 ? 0 : v > 1 ? 1 : v;
                }
            }
    }
    sd_image pub = {img.w, img.h, img.c, img.stride, img.data};
    sd_progress pr = {SD_PHASE_SAMPLE, r->steps_done, r->steps_total, sd_now() - r->t0, -1};
    r->p.preview(&pub, &pr, r->p.preview_user);
    sd_img_free(&img);
}

/* ==== the sampler loop ====================================================================== */

sd_status sd_run_sample(sd_run *r, const sd_sample_job *job, sd_error *err)
{
    const sd_schedule *s = job->s;
    const int B = r->n_cond, cin = r->ui.in_channels;
    const size_t hw = (size_t)job->h * (size_t)job->w, n = 4 * hw;
    if (cin == 9 && (!job->mask_lat || !job->masked_lat))
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "an inpainting model (9 input channels) needs a mask: use it for "
                       "inpaint or outpaint");
    if (cin != 4 && cin != 9)
        return sd_fail(err, SD_ERR_UNSUPPORTED, "UNet with %d input channels", cin);
    sd_sampler *smp = NULL;
    float *unet_in = sd_malloc((size_t)B * (size_t)cin * hw * sizeof(float));
    float *out = sd_malloc((size_t)B * n * sizeof(float));
    float *scaled = sd_malloc(n * sizeof(float));
    float *x0 = r->p.preview ? sd_malloc(n * sizeof(float)) : NULL;
    float t[2];
    sd_status st = SD_OK;
    if (!unet_in || !out || !scaled || (r->p.preview && !x0)) {
        st = sd_fail_nomem(err, "sampler buffers");
        goto out;
    }
    if ((st = sd_sampler_new(s, n, &smp, err)))
        goto out;
    for (int i = s->begin; i < s->n_steps; i++) {
        if (!sd_run_report(r, SD_PHASE_SAMPLE)) {
            st = SD_CANCELLED;
            goto out;
        }
        /* latent_model_input = scale_model_input(cat([x] * B)), plus the inpainting
         * conditioning channels for 9-channel UNets */
        sd_schedule_scale_input(s, i, job->x, scaled, n);
        for (int b = 0; b < B; b++) {
            float *dst = unet_in + (size_t)b * (size_t)cin * hw;
            memcpy(dst, scaled, n * sizeof(float));
            if (cin == 9) {
                memcpy(dst + 4 * hw, job->mask_lat, hw * sizeof(float));
                memcpy(dst + 5 * hw, job->masked_lat, n * sizeof(float));
            }
            t[b] = (float)s->timesteps[i];
        }
        sd_unet_args ua = {
            .batch = B, .height = job->h, .width = job->w,
            .x = unet_in, .timesteps = t,
            .context = r->cond, .ctx_len = r->cond_len,
            .hook = unet_hook, .hook_user = r,
        };
        if ((st = sd_unet_forward(r->ctx, r->unet, &ua, out, err)))
            goto out;
        /* classifier-free guidance: noise_pred = uncond + g * (cond - uncond) */
        if (B == 2) {
            const float g = r->p.cfg;
            for (size_t k = 0; k < n; k++)
                out[k] = out[k] + g * (out[n + k] - out[k]);
        }
        if ((st = sd_sampler_step(smp, i, job->x, out, &r->noise, x0, err)))
            goto out;
        if (job->known_x0)
            sd_schedule_reimpose_known(s, i, job->x, job->known_x0, job->known_noise,
                                       job->known_mask, hw, 4);
        r->steps_done++;
        if (x0)
            preview(r, x0, job->h, job->w);
    }
    if (!sd_run_report(r, SD_PHASE_SAMPLE))
        st = SD_CANCELLED;
out:
    sd_sampler_free(smp);
    sd_free(unet_in);
    sd_free(out);
    sd_free(scaled);
    sd_free(x0);
    return st;
}

/* ==== images <-> latents ================================================================== */

static bool vae_progress(int done, int total, void *user)
{
    (void)done, (void)total;
    sd_run *r = user;
    return sd_run_report(r, r->phase);
}

sd_status sd_run_encode_image(sd_run *r, const sd_img *img, bool sample, float *latents,
                              sd_error *err)
{
    if (img->w % 8 || img->h % 8)
        return sd_fail(err, SD_ERR_INTERNAL, "encode: %dx%d is not a multiple of 8", img->w,
                       img->h);
    if (!sd_run_report(r, SD_PHASE_ENCODE))
        return SD_CANCELLED;
    const size_t hw = (size_t)img->w * (size_t)img->h, lhw = hw / 64;
    float *planar = sd_malloc(3 * hw * sizeof(float));
    float *noise = sample ? sd_malloc(4 * lhw * sizeof(float)) : NULL;
    sd_status st;
    if (!planar || (sample && !noise)) {
        st = sd_fail_nomem(err, "image encoding");
        goto out;
    }
    sd_img_to_planar(img, 3, 1.0f, 0.0f, planar);
    if (sample && (st = sd_run_draw(r, noise, 4 * lhw, err)))
        goto out;
    sd_vae_opts vo = sd_vae_opts_default();
    vo.progress = vae_progress;
    vo.user = r;
    st = sd_vae_image_to_latents(r->ctx, r->m, planar, img->h, img->w, noise, &vo, latents, err);
out:
    sd_free(planar);
    sd_free(noise);
    return st;
}

sd_status sd_run_decode(sd_run *r, const float *latents, int h, int w, sd_img *out,
                        sd_error *err)
{
    memset(out, 0, sizeof *out);
    if (!sd_run_report(r, SD_PHASE_DECODE))
        return SD_CANCELLED;
    if (r->p.final_latents)
        r->p.final_latents(latents, 4, h, w, r->p.final_latents_user);
    const size_t n = (size_t)3 * 64 * (size_t)h * (size_t)w;
    float *planar = sd_malloc(n * sizeof(float));
    if (!planar)
        return sd_fail_nomem(err, "decoded image");
    sd_status st;
    sd_model_info mi;
    sd_model_get_info(r->m, &mi);
    if (mi.has_vae) {
        sd_vae_opts vo = sd_vae_opts_default();
        vo.progress = vae_progress;
        vo.user = r;
        st = sd_vae_latents_to_image(r->ctx, r->m, latents, h, w, &vo, planar, err);
    } else if (r->p.taesd) {
        st = sd_taesd_decode(r->ctx, r->p.taesd, latents, h, w, planar, err);
    } else {
        st = sd_fail(err, SD_ERR_INVALID_ARG,
                     "the model has no VAE decoder: give a TAESD decoder to decode with");
    }
    if (st == SD_OK && (st = sd_img_new(8 * w, 8 * h, 3, out, err)) == SD_OK)
        sd_img_from_planar(planar, 3, 1.0f, 0.0f, out);
    sd_free(planar);
    return st;
}
