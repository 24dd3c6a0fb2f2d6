/* internal/pipeline.h - what the five filters (pipeline_*.c) share: one "run" holding the
 * resolved parameters, the UNet, the prompt conditioning, the noise source and the progress
 * book-keeping, and the steps every filter is made of: encode the prompts, turn an image
 * into latents, run the sampler loop with classifier-free guidance, turn latents back into
 * an image.  sd_generate (generate.c) builds the run and hands it to the filter. */
#ifndef SD_INTERNAL_PIPELINE_H
#define SD_INTERNAL_PIPELINE_H

#include "internal/common.h"
#include "internal/image.h"
#include "internal/model.h"
#include "internal/noise.h"
#include "internal/schedule.h"
#include "internal/unet.h"

typedef struct sd_run {
    sd_ctx *ctx;
    const sd_model *m;
    const sd_model_hparams *hp;
    sd_gen_params p;             /* resolved: no AUTO values left */
    sd_unet *unet;
    sd_unet_info ui;
    sd_noise_src noise;
    uint64_t seed;               /* the seed in use (reported) */
    /* conditioning for the UNet: [n_cond, cond_len, cond_dim]; n_cond = 2 (uncond, cond)
     * with guidance, else 1 (cond) */
    bool guidance;
    int n_cond, cond_len, cond_dim;
    float *cond;
    /* progress */
    double t0;                   /* monotonic seconds at the start */
    int steps_done, steps_total; /* UNet evaluations (one guided step = one) */
    sd_phase phase;
    bool cancelled;
} sd_run;

/* Refuse a request whose estimated peak memory exceeds the limit (p.memory_limit_mb, or 90 %
 * of the memory the system has available): SD_ERR_TOO_LARGE with the estimate and the limit
 * in the message.  Call after sd_run_init. */
sd_status sd_run_check_memory(const sd_run *r, sd_error *err);

/* Monotonic clock in seconds. */
double sd_now(void);

/* Build the run: copy the resolved params, seed or replay the noise, build the UNet.
 * Prompts are encoded separately (sd_run_encode_prompts).  On error the run is freed. */
sd_status sd_run_init(sd_run *r, sd_ctx *ctx, const sd_model *m, const sd_gen_params *p,
                      sd_error *err);
void sd_run_free(sd_run *r);

/* Encode prompt and negative prompt into r->cond.  Reference mode: diffusers' tokenisation
 * (raw text, one 77-token window, truncated); editor mode: A1111 emphasis, BREAK and 75-token
 * chunks, the shorter side padded with empty-prompt windows. */
sd_status sd_run_encode_prompts(sd_run *r, sd_error *err);

/* Report progress (phase, r->steps_done of r->steps_total) to the host; returns false and
 * sets r->cancelled when the host asks to stop. */
bool sd_run_report(sd_run *r, sd_phase phase);

/* What a sampler loop runs on: latents x [4, h, w] (already at the start noise level),
 * updated in place, with the extra inputs of the two inpainting kinds. */
typedef struct sd_sample_job {
    int h, w;
    float *x;
    const sd_schedule *s;
    /* 9-channel inpainting models: UNet input = cat(scaled x, mask, masked-image latents) */
    const float *mask_lat;       /* [h*w], 1 = repaint */
    const float *masked_lat;     /* [4, h, w] */
    /* 4-channel models inpainting: after every step the known region is re-imposed */
    const float *known_x0;       /* [4, h, w] clean image latents, or NULL */
    const float *known_noise;    /* [4, h, w] */
    const float *known_mask;     /* [h*w], 1 = repaint */
} sd_sample_job;

/* Run the sampler from step s->begin to the end with guidance, progress, cancellation and
 * previews.  Errors of the networks; SD_CANCELLED. */
sd_status sd_run_sample(sd_run *r, const sd_sample_job *job, sd_error *err);

/* Schedule for this run with the given strength (1 = all steps). */
sd_status sd_run_schedule(const sd_run *r, double strength, sd_schedule **out, sd_error *err);

/* Image (RGB(A) sd_img, w and h multiples of 8) -> UNet-space latents [4, h/8, w/8].
 * sample: draw the posterior noise from r->noise (diffusers' latent_dist.sample(generator))
 * rather than take the mean. */
sd_status sd_run_encode_image(sd_run *r, const sd_img *img, bool sample, float *latents,
                              sd_error *err);

/* Latents [4, h, w] -> a new owned RGB image (8h x 8w) via the VAE, or TAESD when the model
 * has no VAE decoder and p.taesd is set. */
sd_status sd_run_decode(sd_run *r, const float *latents, int h, int w, sd_img *out,
                        sd_error *err);

/* Draw n normals from the run's noise source. */
sd_status sd_run_draw(sd_run *r, float *out, size_t n, sd_error *err);

/* img2img on one RGB(A) image whose sides are multiples of 8, at its own size: encode
 * (posterior sample), noise to the strength, sample, decode into a new owned RGB *out.
 * The building block of img2img and of every denoise tile. */
sd_status sd_run_img2img(sd_run *r, const sd_img *img, double strength, sd_img *out,
                         sd_error *err);

/* Inpaint one RGB(A) image (sides multiples of 8) through a soft mask of the same size at
 * its own size: the masked-content fill, 4-channel re-imposition or 9-channel conditioning,
 * sampling, decoding into a new owned RGB *out (the whole image; the caller composites).
 * The building block of inpaint and of every outpaint window. */
sd_status sd_run_inpaint(sd_run *r, const sd_img *img, const sd_img *mask, double strength,
                         sd_img *out, sd_error *err);

/* The editor's way with a selection (A1111 "only masked"): the bounding box of `mask` plus
 * p.padding, at the model's resolution with its own aspect, goes through sd_run_inpaint
 * (inpaint true: with the crop's mask; the whole image with p.whole_image) or sd_run_img2img
 * at p.strength and is pasted back into init through the blurred soft mask, the new area's
 * colours matched to its surroundings when inpainting with p.color_match; *out is a new
 * owned RGBA image.  Errors of the steps. */
sd_status sd_run_selection(sd_run *r, const sd_img *init, const sd_img *mask, bool inpaint,
                           sd_img *out, sd_error *err);

/* Sampler steps one sd_run_img2img / sd_run_inpaint call at this strength will take. */
int sd_run_steps_for(const sd_run *r, double strength);

/* A new owned RGBA copy of rgb (c = 3) with the alpha channel of `alpha_from` (same size;
 * c = 4) or 1 when alpha_from has none.  Errors: SD_ERR_NOMEM. */
sd_status sd_run_to_rgba(const sd_img *rgb, const sd_img *alpha_from, sd_img *out,
                         sd_error *err);

/* ---- the five filters: each fills *out (an owned RGBA image) ---------------------------- */
sd_status sd_pipeline_txt2img(sd_run *r, sd_img *out, sd_error *err);
sd_status sd_pipeline_img2img(sd_run *r, sd_img *out, sd_error *err);
sd_status sd_pipeline_inpaint(sd_run *r, sd_img *out, sd_error *err);
sd_status sd_pipeline_outpaint(sd_run *r, sd_img *out, sd_error *err);
sd_status sd_pipeline_denoise(sd_run *r, sd_img *out, float *sigma, sd_error *err);

#endif
