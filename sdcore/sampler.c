/* sampler.c - the sampler step functions declared in internal/schedule.h: one denoising
 * step of each diffusers scheduler (v0.31 step()) on a float array of latents.  Split from
 * schedule.c because this is the per-run, per-step state machine while that file only
 * builds tables.
 *
 * Every scalar coefficient is computed in float32 in the order diffusers computes it on its
 * 0-dim float32 tensors (x ** 2 is x * x, x ** 0.5 is sqrtf, torch.log/exp on one element are
 * logf/expf, `1 / t` is a float reciprocal), and every element-wise expression keeps
 * diffusers' operand order, so replayed model outputs reproduce diffusers' latents to float32
 * rounding. */
#include "internal/schedule.h"

#include <math.h>

/* Results must not depend on the compiler fusing a * b + c (GCC never does in ISO C mode;
 * clang would within an expression when the target has FMA). */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

struct sd_sampler {
    const sd_schedule *s;
    size_t n;                 /* latent elements per step */
    int next;                 /* the step expected next */
    int lower_order_nums;     /* DPM++: steps done so far, up to the solver order 2 */
    float *prev_x0;           /* DPM++: [n] the previous step's denoised estimate */
    float *noise;             /* Euler a, LCM: [n] this step's noise draw */
};

sd_status sd_sampler_new(const sd_schedule *s, size_t n, sd_sampler **out, sd_error *err)
{
    *out = NULL;
    if (n == 0)
        return sd_fail(err, SD_ERR_INVALID_ARG, "sampler: no latent elements");
    sd_sampler *smp = sd_calloc(1, sizeof *smp);
    if (!smp)
        return sd_fail_nomem(err, "sampler");
    smp->s = s;
    smp->n = n;
    smp->next = s->begin;
    bool ok = true;
    if (s->kind == SD_SAMPLER_DPMPP_2M)
        ok = (smp->prev_x0 = sd_calloc(n, sizeof(float))) != NULL;
    if (s->kind == SD_SAMPLER_EULER_A || s->kind == SD_SAMPLER_LCM)
        ok = (smp->noise = sd_calloc(n, sizeof(float))) != NULL;
    if (!ok) {
        sd_sampler_free(smp);
        return sd_fail_nomem(err, "sampler");
    }
    *out = smp;
    return SD_OK;
}

void sd_sampler_free(sd_sampler *smp)
{
    if (!smp)
        return;
    sd_free(smp->prev_x0);
    sd_free(smp->noise);
    sd_free(smp);
}

/* ---- Euler and Euler ancestral --------------------------------------------------------- */

/* pred_original_sample of the sigma samplers: epsilon x - sigma * eps; v-prediction
 * v * (-sigma / sqrt(sigma^2 + 1)) + x / (sigma^2 + 1). */
typedef struct x0_coefs {
    bool v;
    float sigma, v_coef, v_div;
} x0_coefs;

static x0_coefs sigma_x0_coefs(const sd_schedule *s, float sigma)
{
    float s2p1 = sigma * sigma + 1.0f;
    return (x0_coefs){.v = s->prediction == SD_PREDICT_V,
                      .sigma = sigma,
                      .v_coef = -sigma / sqrtf(s2p1),
                      .v_div = s2p1};
}

static inline float sigma_x0(const x0_coefs *c, float x, float out)
{
    return c->v ? out * c->v_coef + x / c->v_div : x - c->sigma * out;
}

static void euler_step(const sd_sampler *smp, int i, float *x, const float *out, float *x0_out)
{
    const sd_schedule *s = smp->s;
    x0_coefs c = sigma_x0_coefs(s, s->sigmas[i]);
    float sigma = s->sigmas[i];
    float dt = s->sigmas[i + 1] - sigma;
    for (size_t k = 0; k < smp->n; k++) {
        float x0 = sigma_x0(&c, x[k], out[k]);
        float deriv = (x[k] - x0) / sigma;
        x[k] = x[k] + deriv * dt;
        if (x0_out)
            x0_out[k] = x0;
    }
}

static void euler_a_step(sd_sampler *smp, int i, float *x, const float *out, sd_rng *rng,
                         float *x0_out)
{
    const sd_schedule *s = smp->s;
    float sf = s->sigmas[i], st = s->sigmas[i + 1];
    x0_coefs c = sigma_x0_coefs(s, sf);
    float sf2 = sf * sf, st2 = st * st;
    float sigma_up = sqrtf(st2 * (sf2 - st2) / sf2);
    float sigma_down = sqrtf(st2 - sigma_up * sigma_up);
    float dt = sigma_down - sf;
    sd_rng_randn(rng, smp->noise, smp->n);
    for (size_t k = 0; k < smp->n; k++) {
        float x0 = sigma_x0(&c, x[k], out[k]);
        float deriv = (x[k] - x0) / sf;
        float prev = x[k] + deriv * dt;
        x[k] = prev + smp->noise[k] * sigma_up;
        if (x0_out)
            x0_out[k] = x0;
    }
}

/* ---- DDIM (eta 0) ---------------------------------------------------------------------------- */

static void ddim_step(const sd_sampler *smp, int i, float *x, const float *out, float *x0_out)
{
    const sd_schedule *s = smp->s;
    int prev = sd_schedule_ddim_prev(s, i);
    float a = sd_schedule_alpha_at(s, i);
    float a_prev = prev >= 0 ? s->alphas_cumprod[prev] : s->final_alpha_cumprod;
    float sa = sqrtf(a), sb = sqrtf(1.0f - a);
    float sa_prev = sqrtf(a_prev), dir = sqrtf(1.0f - a_prev - 0.0f);
    bool v = s->prediction == SD_PREDICT_V;
    for (size_t k = 0; k < smp->n; k++) {
        float x0, eps;
        if (v) {
            x0 = sa * x[k] - sb * out[k];
            eps = sa * out[k] + sb * x[k];
        } else {
            x0 = (x[k] - sb * out[k]) / sa;
            eps = out[k];
        }
        x[k] = sa_prev * x0 + dir * eps;
        if (x0_out)
            x0_out[k] = x0;
    }
}

/* ---- DPM++ 2M --------------------------------------------------------------------------------- */

/* A sigma of the schedule as DPM-Solver's (alpha_t, sigma_t) and its log-SNR lambda. */
typedef struct vp_point {
    float alpha, sigma, lambda;
} vp_point;

static vp_point vp_of(float sigma)
{
    vp_point p;
    p.alpha = 1.0f / sqrtf(sigma * sigma + 1.0f);
    p.sigma = sigma * p.alpha;
    p.lambda = logf(p.alpha) - logf(p.sigma);
    return p;
}

static void dpmpp_2m_step(sd_sampler *smp, int i, float *x, const float *out, float *x0_out)
{
    const sd_schedule *s = smp->s;
    vp_point t = vp_of(s->sigmas[i + 1]), s0 = vp_of(s->sigmas[i]);
    bool v = s->prediction == SD_PREDICT_V;
    /* first order at the start and (lower_order_final; final sigma 0) at the last step */
    bool second = smp->lower_order_nums >= 1 && i != s->n_steps - 1;
    float h = t.lambda - s0.lambda;
    float ratio = t.sigma / s0.sigma;
    float coef = t.alpha * (expf(-h) - 1.0f);
    float half_coef = 0.5f * coef, inv_r0 = 0.0f;
    if (second) {
        vp_point s1 = vp_of(s->sigmas[i - 1]);
        float h0 = s0.lambda - s1.lambda;
        inv_r0 = 1.0f / (h0 / h);
    }
    for (size_t k = 0; k < smp->n; k++) {
        /* convert_model_output: the data prediction x0 */
        float m0 = v ? s0.alpha * x[k] - s0.sigma * out[k] : (x[k] - s0.sigma * out[k]) / s0.alpha;
        if (second) {
            float d1 = inv_r0 * (m0 - smp->prev_x0[k]);
            x[k] = ratio * x[k] - coef * m0 - half_coef * d1;
        } else {
            x[k] = ratio * x[k] - coef * m0;
        }
        smp->prev_x0[k] = m0;
        if (x0_out)
            x0_out[k] = m0;
    }
    if (smp->lower_order_nums < 2)
        smp->lower_order_nums++;
}

/* ---- LCM ------------------------------------------------------------------------------------- */

static void lcm_step(sd_sampler *smp, int i, float *x, const float *out, sd_rng *rng,
                     float *x0_out)
{
    const sd_schedule *s = smp->s;
    bool last = i == s->n_steps - 1;
    double t = s->timesteps[i], t_prev = last ? t : s->timesteps[i + 1];
    float a = s->alphas_cumprod[(int)t];
    float a_prev = t_prev >= 0 ? s->alphas_cumprod[(int)t_prev] : s->final_alpha_cumprod;
    float sa = sqrtf(a), sb = sqrtf(1.0f - a);
    float sa_prev = sqrtf(a_prev), sb_prev = sqrtf(1.0f - a_prev);
    /* consistency-model boundary condition, sigma_data 0.5, timestep_scaling 10 */
    float scaled = (float)t * 10.0f;
    float d = scaled * scaled + 0.25f;
    float c_skip = 0.25f / d, c_out = scaled / sqrtf(d);
    bool v = s->prediction == SD_PREDICT_V;
    if (!last)
        sd_rng_randn(rng, smp->noise, smp->n);
    for (size_t k = 0; k < smp->n; k++) {
        float x0 = v ? sa * x[k] - sb * out[k] : (x[k] - sb * out[k]) / sa;
        float denoised = c_out * x0 + c_skip * x[k];
        x[k] = last ? denoised : sa_prev * denoised + sb_prev * smp->noise[k];
        if (x0_out)
            x0_out[k] = denoised;
    }
}

/* ---- dispatch ---------------------------------------------------------------------------------- */

sd_status sd_sampler_step(sd_sampler *smp, int i, float *x, const float *model_out,
                          sd_rng *rng, float *x0_out, sd_error *err)
{
    const sd_schedule *s = smp->s;
    if (i != smp->next || i >= s->n_steps)
        return sd_fail(err, SD_ERR_INVALID_ARG, "sampler: step %d requested, expected %d of %d",
                       i, smp->next, s->n_steps);
    bool needs_rng = s->kind == SD_SAMPLER_EULER_A ||
                     (s->kind == SD_SAMPLER_LCM && i != s->n_steps - 1);
    if (needs_rng && !rng)
        return sd_fail(err, SD_ERR_INVALID_ARG, "sampler: %s needs a random generator",
                       sd_sampler_kind_name(s->kind));
    switch (s->kind) {
    case SD_SAMPLER_EULER:
        euler_step(smp, i, x, model_out, x0_out);
        break;
    case SD_SAMPLER_EULER_A:
        euler_a_step(smp, i, x, model_out, rng, x0_out);
        break;
    case SD_SAMPLER_DDIM:
        ddim_step(smp, i, x, model_out, x0_out);
        break;
    case SD_SAMPLER_DPMPP_2M:
        dpmpp_2m_step(smp, i, x, model_out, x0_out);
        break;
    case SD_SAMPLER_LCM:
        lcm_step(smp, i, x, model_out, rng, x0_out);
        break;
    case SD_SAMPLER_COUNT:
        return sd_fail(err, SD_ERR_INTERNAL, "sampler: invalid kind");
    }
    smp->next = i + 1;
    return SD_OK;
}
