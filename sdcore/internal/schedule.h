/* internal/schedule.h - noise schedules and samplers, reproducing the diffusers schedulers
 * (v0.31) that Stable Diffusion hosts offer: Euler, Euler ancestral, DDIM (eta 0), DPM++ 2M
 * (optionally with Karras sigmas) and LCM, on the SD training schedule (1000 steps,
 * scaled_linear betas 0.00085..0.012, steps_offset 1).
 *
 * Two layers:
 *   sd_schedule  - the numbers: timesteps fed to the UNet, sigmas, the img2img start index,
 *                  init_noise_sigma; plus the element-wise helpers around the UNet call
 *                  (scale_model_input, add_noise, the inpainting re-imposition).
 *   sd_sampler   - the stepping state for one run (DPM++ 2M keeps its previous denoised
 *                  estimate): x_i + model output -> x_{i+1}.
 * Both work on plain float arrays of latents (any shape; n elements, the batch included), so
 * they know nothing about tensors or threads.  The arithmetic follows diffusers' float32
 * order of operations, so replaying recorded model outputs reproduces diffusers' latents to
 * float32 rounding.
 *
 * A run, in diffusers terms (txt2img):
 *     sd_schedule_new(&p, &s, err);  sd_sampler_new(s, n, &smp, err);
 *     sd_rng_randn(rng, x, n);  x[k] *= s->init_noise_sigma;
 *     for (i = s->begin; i < s->n_steps; i++) {
 *         sd_schedule_scale_input(s, i, x, unet_in, n);     // UNet(unet_in, s->timesteps[i])
 *         ... guidance -> model_out
 *         sd_sampler_step(smp, i, x, model_out, rng, NULL, err);
 *     }
 * img2img starts instead from sd_schedule_add_noise(s, s->begin, z, noise, x, n). */
#ifndef SD_INTERNAL_SCHEDULE_H
#define SD_INTERNAL_SCHEDULE_H

#include "internal/common.h"
#include "internal/rng.h"

#define SD_TRAIN_STEPS 1000

typedef enum sd_sampler_kind {
    SD_SAMPLER_EULER,         /* EulerDiscreteScheduler */
    SD_SAMPLER_EULER_A,       /* EulerAncestralDiscreteScheduler (draws noise every step) */
    SD_SAMPLER_DDIM,          /* DDIMScheduler, eta 0, no clipping, set_alpha_to_one false */
    SD_SAMPLER_DPMPP_2M,      /* DPMSolverMultistepScheduler dpmsolver++, order 2, midpoint,
                               * lower_order_final, final sigma 0 */
    SD_SAMPLER_LCM,           /* LCMScheduler (50 original steps, timestep_scaling 10;
                               * draws noise between steps) */
    SD_SAMPLER_COUNT
} sd_sampler_kind;

/* diffusers' timestep_spacing.  LCM has its own schedule and ignores it. */
typedef enum sd_spacing {
    SD_SPACING_LEADING,       /* SD 1.x/2.x configs: t = k * (1000 / N) + 1 */
    SD_SPACING_TRAILING,      /* from t = 999 down in steps of 1000 / N */
    SD_SPACING_LINSPACE,      /* N points spread over [0, 999] */
    SD_SPACING_COUNT
} sd_spacing;

/* "euler", "euler_a", "ddim", "dpmpp_2m", "lcm"; "leading", "trailing", "linspace".
 * Static storage; "?" for out-of-range values. */
const char *sd_sampler_kind_name(sd_sampler_kind k);
const char *sd_spacing_name(sd_spacing s);

typedef struct sd_schedule_params {
    sd_sampler_kind kind;
    sd_spacing spacing;
    bool karras;              /* Karras sigmas: Euler and DPM++ 2M only */
    int n_steps;              /* num_inference_steps: 1..1000 (LCM: 1..50) */
    double strength;          /* img2img/inpaint denoising strength in (0, 1]; 1 = all steps */
    sd_prediction prediction; /* what the UNet predicts; UNKNOWN means EPSILON */
} sd_schedule_params;

/* Euler, leading spacing (the SD 1.x config), no Karras, 20 steps, strength 1, epsilon. */
sd_schedule_params sd_schedule_params_default(void);

/* Everything a run needs to know about its steps.  Read-only after sd_schedule_new. */
typedef struct sd_schedule {
    sd_sampler_kind kind;
    sd_spacing spacing;
    bool karras;
    sd_prediction prediction; /* EPSILON or V */
    int n_steps;              /* length of the full schedule (num_inference_steps) */
    int begin;                /* first step run: img2img's t_start (get_timesteps);
                               * 0 for strength 1 and always for LCM (whose schedule itself
                               * depends on the strength) */
    double *timesteps;        /* [n_steps] the UNet's timestep per step: integers, except
                               * Euler 'linspace'/Karras (float32 values, e.g. 262.894...) */
    float *sigmas;            /* [n_steps + 1] Euler, Euler a, DPM++ 2M: sigma per step, last
                               * 0; NULL for DDIM and LCM */
    float init_noise_sigma;   /* txt2img start latents = unit normal * this */
    float alphas_cumprod[SD_TRAIN_STEPS]; /* float32, exactly as diffusers computes them */
    float final_alpha_cumprod;/* DDIM: alphas_cumprod[0]; LCM: 1 */
} sd_schedule;

/* Build the schedule.  On success *out owns it; free with sd_schedule_free.
 * Errors (SD_ERR_INVALID_ARG, one line naming the problem): unknown kind/spacing/prediction,
 * n_steps out of range, strength outside (0, 1] or leaving no step to run (img2img:
 * int(N * strength) == 0; LCM: int(50 * strength) < N, as diffusers rejects it), Karras with
 * a sampler other than Euler/DPM++ 2M.  SD_ERR_NOMEM.  Thread: any. */
sd_status sd_schedule_new(const sd_schedule_params *p, sd_schedule **out, sd_error *err);
/* Free a schedule (NULL is a no-op).  Samplers made from it must be freed first. */
void sd_schedule_free(sd_schedule *s);

/* alphas_cumprod at timesteps[i] (DDIM, LCM; defined for every kind with integer
 * timesteps).  i in [0, n_steps). */
float sd_schedule_alpha_at(const sd_schedule *s, int i);

/* DDIM's previous timestep for step i: timesteps[i] - 1000 / n_steps (may be negative, then
 * the step uses final_alpha_cumprod). */
int sd_schedule_ddim_prev(const sd_schedule *s, int i);

/* scale_model_input for step i: out = x / sqrt(sigma_i^2 + 1) for Euler/Euler a, a copy for
 * the others.  out may equal x.  Thread: any (pure). */
void sd_schedule_scale_input(const sd_schedule *s, int i, const float *x, float *out,
                             size_t n);

/* add_noise at step i (img2img/inpaint start with i = s->begin; inpainting re-noising of
 * the known region with i = the next step): out = x0 noised to the level of step i:
 *   Euler/Euler a: x0 + noise * sigma_i;  DPM++: alpha * x0 + sigma_t * noise with
 *   alpha = 1/sqrt(sigma_i^2+1), sigma_t = sigma_i * alpha;  DDIM/LCM:
 *   sqrt(a) * x0 + sqrt(1 - a) * noise with a = alphas_cumprod[timesteps[i]].
 * i in [0, n_steps).  out may equal x0 or noise.  Thread: any (pure). */
void sd_schedule_add_noise(const sd_schedule *s, int i, const float *x0, const float *noise,
                           float *out, size_t n);

/* Legacy (4-channel UNet) inpainting, after step i: the known region is replaced by the
 * clean image latents noised to the next step's level (clean after the last step):
 *   x = (1 - mask) * known + mask * x,  known = add_noise(x0, noise, i + 1) or x0.
 * x, x0, noise: [channels * hw] (channel-major); mask: [hw] (1 = repaint), shared by all
 * channels.  Thread: any (pure). */
void sd_schedule_reimpose_known(const sd_schedule *s, int i, float *x, const float *x0,
                                const float *noise, const float *mask, size_t hw,
                                size_t channels);

/* ---- sampler ---------------------------------------------------------------------------- */

typedef struct sd_sampler sd_sampler;

/* Stepping state for one run over n latent elements.  The sampler keeps a pointer to s,
 * which must outlive it.  Errors: SD_ERR_INVALID_ARG (n == 0), SD_ERR_NOMEM.  Thread: any;
 * one sampler serves one run on one thread. */
sd_status sd_sampler_new(const sd_schedule *s, size_t n, sd_sampler **out, sd_error *err);
/* Free a sampler (NULL is a no-op). */
void sd_sampler_free(sd_sampler *smp);

/* One step: x (the current latents, in place) and model_out (the guided UNet output for
 * scale_input(x) at timesteps[i]: epsilon or v as the schedule says) -> the latents for step
 * i + 1.  Steps must run in order i = s->begin, begin + 1, ..., n_steps - 1.  Euler a (every
 * step) and LCM (every step but the last) draw n normals from rng, which must then be
 * non-NULL; the others ignore it.  If x0_out is non-NULL it receives the step's denoised
 * estimate (pred_original_sample; LCM: the boundary-condition denoised), e.g. for previews.
 * x0_out may not alias x or model_out.
 * Errors: SD_ERR_INVALID_ARG (step out of order or range, rng missing).  Thread: the
 * caller's. */
sd_status sd_sampler_step(sd_sampler *smp, int i, float *x, const float *model_out,
                          sd_rng *rng, float *x0_out, sd_error *err);

#endif
