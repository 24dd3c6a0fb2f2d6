/* schedule.c - the noise schedules declared in internal/schedule.h: alphas_cumprod of the SD
 * training schedule, the timesteps and sigmas of each diffusers scheduler (v0.31) for each
 * timestep spacing, Karras sigmas, the img2img start index, and the element-wise helpers
 * around the UNet call (scale_model_input, add_noise, inpainting re-imposition).
 *
 * The schedules must equal diffusers' exactly (timesteps bit for bit, sigmas to float32
 * rounding), so the arithmetic mirrors where diffusers computes what: alphas_cumprod in torch
 * float32 (see below), the sigma tables in float32, the spacing, interpolation and Karras
 * formulas in numpy float64 (np.interp, np.linspace, np.arange and np.round have the
 * semantics reproduced by the helpers below: linear interpolation exact at the nodes,
 * endpoint pinned to `stop`, round half to even). */
#include "internal/schedule.h"
#include "internal/half.h"

#include <math.h>
#include <string.h>

/* Results must not depend on the compiler fusing a * b + c (GCC never does in ISO C mode;
 * clang would within an expression when the target has FMA). */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* ---- names and defaults ------------------------------------------------------------------ */

const char *sd_sampler_kind_name(sd_sampler_kind k)
{
    static const char *const names[SD_SAMPLER_COUNT] = {"euler", "euler_a", "ddim", "dpmpp_2m",
                                                         "lcm"};
    if (k == SD_SAMPLER_AUTO)
        return "auto";
    return (unsigned)k < SD_SAMPLER_COUNT ? names[k] : "?";
}

const char *sd_spacing_name(sd_spacing s)
{
    static const char *const names[SD_SPACING_COUNT] = {"leading", "trailing", "linspace"};
    if (s == SD_SPACING_AUTO)
        return "auto";
    return (unsigned)s < SD_SPACING_COUNT ? names[s] : "?";
}

sd_schedule_params sd_schedule_params_default(void)
{
    return (sd_schedule_params){
        .kind = SD_SAMPLER_EULER,
        .spacing = SD_SPACING_LEADING,
        .karras = false,
        .n_steps = 20,
        .strength = 1.0,
        .prediction = SD_PREDICT_EPSILON,
    };
}

/* ---- the training schedule ---------------------------------------------------------------- */

#define BETA_START 0.00085
#define BETA_END 0.012
#define LCM_ORIGINAL_STEPS 50

/* diffusers: betas = torch.linspace(sqrt(beta_start), sqrt(beta_end), 1000, float32) ** 2,
 * alphas_cumprod = torch.cumprod(1 - betas).  torch's CPU linspace kernel fills vectors of 16
 * floats: each vector starts at start + step * idx (below the halfway point) or end - step *
 * (999 - idx) (from it on), its lanes add k * step, and the last 1000 % 32 elements take the
 * per-element formula; the compiler fused every one of these multiply-adds.  cumprod
 * accumulates in double and rounds each prefix to float.  This reproduces the float32 table
 * of diffusers bit for bit (tested against the golden schedulers.json). */
static void training_alphas_cumprod(float *ac)
{
    const int n = SD_TRAIN_STEPS, lanes = 16, halfway = SD_TRAIN_STEPS / 2;
    const int vec_end = n / (2 * lanes) * (2 * lanes);
    const float start = (float)sqrt(BETA_START), end = (float)sqrt(BETA_END);
    const float step = (end - start) / (float)(n - 1);
    double prod = 1.0;
    for (int i = 0; i < n; i++) {
        int base = i < vec_end ? i - i % lanes : i;
        float v = base < halfway ? fmaf(step, (float)base, start)
                                 : fmaf(-step, (float)(n - 1 - base), end);
        if (i < vec_end)
            v = fmaf((float)(i % lanes), step, v);
        float beta = v * v;
        prod *= (double)(1.0f - beta);
        ac[i] = (float)prod;
    }
}

/* sigma(t) = sqrt((1 - a_t) / a_t) in float32, as diffusers' torch expression. */
static void training_sigmas(const float *ac, float *sig)
{
    for (int t = 0; t < SD_TRAIN_STEPS; t++)
        sig[t] = sqrtf((1.0f - ac[t]) / ac[t]);
}

/* ---- numpy semantics ------------------------------------------------------------------------ */

/* np.interp(x, arange(1000), fp) in float64 (fp widened from float32). */
static double interp_train(double x, const float *fp)
{
    if (x >= SD_TRAIN_STEPS - 1)
        return fp[SD_TRAIN_STEPS - 1];
    if (!(x >= 0))
        return fp[0];
    int j = (int)floor(x);
    if ((double)j == x)
        return fp[j];
    double slope = (double)fp[j + 1] - (double)fp[j];
    return slope * (x - (double)j) + (double)fp[j];
}

/* np.linspace(start, stop, num)[i], endpoint included. */
static double linspace_at(double start, double stop, int num, int i)
{
    if (num > 1 && i == num - 1)
        return stop;
    if (num <= 1)
        return start;
    double step = (stop - start) / (double)(num - 1);
    return (double)i * step + start;
}

/* np.arange(start, 0, -step)[i] for start > 0, step > 0: numpy fills start + i * delta with
 * delta = (start - step) - start.  numpy's length, ceil(start / step), exceeds N for 62
 * values of N = 1000 / step (61, 103, 121, ...), so diffusers' 'trailing' schedules then get
 * an extra last timestep of -1; callers here take only the first N values. */
static double arange_down_at(double start, double step, int i)
{
    double delta = (start - step) - start;
    return i == 0 ? start : start + (double)i * delta;
}

/* np.round: half to even (the default rounding mode). */
static double round_even(double x)
{
    return nearbyint(x);
}

/* ---- timesteps per spacing -------------------------------------------------------------- */

/* Euler / Euler a: float32 values. */
static void euler_timesteps(sd_spacing sp, int n, double *ts)
{
    for (int i = 0; i < n; i++) {
        double t;
        if (sp == SD_SPACING_LINSPACE)
            t = linspace_at(0, SD_TRAIN_STEPS - 1, n, n - 1 - i);
        else if (sp == SD_SPACING_LEADING)
            t = (double)((n - 1 - i) * (SD_TRAIN_STEPS / n)) + 1;
        else
            t = round_even(arange_down_at(SD_TRAIN_STEPS, (double)SD_TRAIN_STEPS / n, i)) - 1;
        ts[i] = (double)(float)t;
    }
}

/* DDIM: integers. */
static void ddim_timesteps(sd_spacing sp, int n, double *ts)
{
    for (int i = 0; i < n; i++) {
        if (sp == SD_SPACING_LINSPACE)
            ts[i] = round_even(linspace_at(0, SD_TRAIN_STEPS - 1, n, n - 1 - i));
        else if (sp == SD_SPACING_LEADING)
            ts[i] = (double)((n - 1 - i) * (SD_TRAIN_STEPS / n) + 1);
        else
            ts[i] = round_even(arange_down_at(SD_TRAIN_STEPS, (double)SD_TRAIN_STEPS / n, i)) - 1;
    }
}

/* DPM++: integers over n + 1 points with the last (t = 0 end) dropped. */
static void dpm_timesteps(sd_spacing sp, int n, double *ts)
{
    for (int i = 0; i < n; i++) {
        if (sp == SD_SPACING_LINSPACE)
            ts[i] = round_even(linspace_at(0, SD_TRAIN_STEPS - 1, n + 1, n - i));
        else if (sp == SD_SPACING_LEADING)
            ts[i] = (double)((n - i) * (SD_TRAIN_STEPS / (n + 1)) + 1);
        else
            ts[i] = round_even(arange_down_at(SD_TRAIN_STEPS, (double)SD_TRAIN_STEPS / n, i)) - 1;
    }
}

/* LCM: every (50 * strength) / n-th of the 50 original steps 999, 979, ..., from the top. */
static void lcm_timesteps(int n, int n_origin, double *ts)
{
    const int k = SD_TRAIN_STEPS / LCM_ORIGINAL_STEPS;
    for (int i = 0; i < n; i++) {
        int idx = (int)floor((double)i * ((double)n_origin / (double)n));
        ts[i] = (double)((n_origin - idx) * k - 1);
    }
}

/* ---- Karras sigmas ------------------------------------------------------------------------ */

/* Karras et al. (2022) rho = 7 ramp from sigma_max down to sigma_min, float64. */
static double karras_sigma(double sigma_min, double sigma_max, int n, int i)
{
    const double rho = 7.0;
    double min_inv_rho = pow(sigma_min, 1.0 / rho);
    double max_inv_rho = pow(sigma_max, 1.0 / rho);
    double ramp = linspace_at(0, 1, n, i);
    return pow(max_inv_rho + ramp * (min_inv_rho - max_inv_rho), rho);
}

/* np.log on a float32 array (numpy's AVX2/AVX-512 kernel, the one diffusers' log_sigmas
 * table went through): x = m * 2^e with m in (sqrt(1/2), sqrt(2)], then a rational P5/Q5
 * minimax approximation of log(1 + (m - 1)) with fused multiply-adds.  It differs from a
 * correctly rounded logf by up to 4 ulp, enough to move Karras timesteps by a float32 ulp.
 * For the positive normal inputs here (sigmas). */
static float numpy_logf(float x)
{
    static const float p[6] = {0.0f, 9.999999999999998702752e-01f, 2.112677543073053063722e+00f,
                               1.480000633576506585156e+00f, 3.808837741388407920751e-01f,
                               2.589979117907922693523e-02f};
    static const float q[6] = {1.0f, 2.612677543073109236779e+00f, 2.453006071784736363091e+00f,
                               9.864942958519418960339e-01f, 1.546476374983906719538e-01f,
                               5.875095403124574342950e-03f};
    uint32_t bits = sd_f32_bits(x);
    float e = (float)((int32_t)(bits >> 23) - 126);
    float m = sd_f32_from_bits((bits & 0x7fffffu) | (126u << 23)); /* in [0.5, 1) */
    if (m <= 0.707106781186547524400844362104849039f) {
        m = m + m;
        e = e - 1.0f;
    }
    m = m - 1.0f;
    float num = fmaf(p[5], m, p[4]), den = fmaf(q[5], m, q[4]);
    for (int k = 3; k >= 0; k--) {
        num = fmaf(num, m, p[k]);
        den = fmaf(den, m, q[k]);
    }
    return fmaf(e, 0.693147180559945309417232121458176568f, num / den);
}

/* diffusers' _sigma_to_t: the fractional training timestep whose log-sigma interpolates to
 * log(sigma) in the table log_sigmas.  numpy 1.x's value-based casting makes the float64
 * scalar log(sigma) meet the float32 table in float32: the distances and the weight w are
 * float32; only the final (1 - w) * low + w * high is float64 (w times an int64 index). */
static double sigma_to_t(double sigma, const float *log_sigmas)
{
    float ls = (float)log(sigma > 1e-10 ? sigma : 1e-10);
    int low = 0;
    for (int t = 0; t < SD_TRAIN_STEPS; t++)
        if (ls - log_sigmas[t] >= 0)
            low = t;
    if (low > SD_TRAIN_STEPS - 2)
        low = SD_TRAIN_STEPS - 2;
    float lo = log_sigmas[low], hi = log_sigmas[low + 1];
    float w = (lo - ls) / (lo - hi);
    w = w < 0 ? 0 : w > 1 ? 1 : w;
    return (double)(1.0f - w) * low + (double)w * (low + 1);
}

/* ---- construction -------------------------------------------------------------------------- */

static sd_status check_params(const sd_schedule_params *p, sd_error *err)
{
    if ((unsigned)p->kind >= SD_SAMPLER_COUNT)
        return sd_fail(err, SD_ERR_INVALID_ARG, "schedule: unknown sampler %d", (int)p->kind);
    if ((unsigned)p->spacing >= SD_SPACING_COUNT)
        return sd_fail(err, SD_ERR_INVALID_ARG, "schedule: unknown timestep spacing %d",
                       (int)p->spacing);
    if (p->prediction != SD_PREDICT_UNKNOWN && p->prediction != SD_PREDICT_EPSILON &&
        p->prediction != SD_PREDICT_V)
        return sd_fail(err, SD_ERR_INVALID_ARG, "schedule: unknown prediction type %d",
                       (int)p->prediction);
    int max_steps = p->kind == SD_SAMPLER_LCM ? LCM_ORIGINAL_STEPS : SD_TRAIN_STEPS;
    if (p->n_steps < 1 || p->n_steps > max_steps)
        return sd_fail(err, SD_ERR_INVALID_ARG, "schedule: %d steps (%s takes 1..%d)",
                       p->n_steps, sd_sampler_kind_name(p->kind), max_steps);
    if (!(p->strength > 0 && p->strength <= 1))
        return sd_fail(err, SD_ERR_INVALID_ARG, "schedule: strength %g outside (0, 1]",
                       p->strength);
    if (p->karras && p->kind != SD_SAMPLER_EULER && p->kind != SD_SAMPLER_DPMPP_2M)
        return sd_fail(err, SD_ERR_INVALID_ARG, "schedule: Karras sigmas need Euler or DPM++ 2M,"
                       " not %s", sd_sampler_kind_name(p->kind));
    return SD_OK;
}

/* Timesteps and sigmas of the sigma-based samplers (Euler, Euler a, DPM++ 2M). */
static void sigma_schedule(sd_schedule *s, const float *train_sigmas)
{
    const int n = s->n_steps;
    float log_sigmas[SD_TRAIN_STEPS];
    for (int t = 0; t < SD_TRAIN_STEPS; t++)
        log_sigmas[t] = numpy_logf(train_sigmas[t]);

    if (s->kind == SD_SAMPLER_DPMPP_2M) {
        if (s->karras) {
            /* over the whole training range; timesteps rounded to integers */
            for (int i = 0; i < n; i++) {
                double sg = karras_sigma(train_sigmas[0], train_sigmas[SD_TRAIN_STEPS - 1], n, i);
                s->sigmas[i] = (float)sg;
                s->timesteps[i] = round_even(sigma_to_t(sg, log_sigmas));
            }
        } else {
            dpm_timesteps(s->spacing, n, s->timesteps);
            for (int i = 0; i < n; i++)
                s->sigmas[i] = (float)interp_train(s->timesteps[i], train_sigmas);
        }
    } else {
        euler_timesteps(s->spacing, n, s->timesteps);
        if (s->karras) {
            /* between the sigmas of the first and last spaced timestep; fractional t */
            double hi = interp_train(s->timesteps[0], train_sigmas);
            double lo = interp_train(s->timesteps[n - 1], train_sigmas);
            for (int i = 0; i < n; i++) {
                double sg = karras_sigma(lo, hi, n, i);
                s->sigmas[i] = (float)sg;
                s->timesteps[i] = (double)(float)sigma_to_t(sg, log_sigmas);
            }
        } else {
            for (int i = 0; i < n; i++)
                s->sigmas[i] = (float)interp_train(s->timesteps[i], train_sigmas);
        }
    }
    s->sigmas[n] = 0.0f;
}

sd_status sd_schedule_new(const sd_schedule_params *p, sd_schedule **out, sd_error *err)
{
    *out = NULL;
    sd_status st = check_params(p, err);
    if (st != SD_OK)
        return st;
    const int n = p->n_steps;

    /* img2img start (StableDiffusionImg2ImgPipeline.get_timesteps); LCM instead shortens its
     * own schedule (LCMScheduler.set_timesteps(n, strength)) */
    int begin = 0, n_origin = LCM_ORIGINAL_STEPS;
    if (p->kind == SD_SAMPLER_LCM) {
        n_origin = (int)(LCM_ORIGINAL_STEPS * p->strength);
        if (n_origin / n < 1)
            return sd_fail(err, SD_ERR_INVALID_ARG,
                           "LCM: %d original steps x strength %g leave fewer than %d steps",
                           LCM_ORIGINAL_STEPS, p->strength, n);
    } else {
        int init = (int)(n * p->strength);
        begin = n - (init < n ? init : n);
        if (begin >= n)
            return sd_fail(err, SD_ERR_INVALID_ARG,
                           "schedule: strength %g of %d steps leaves no step to run",
                           p->strength, n);
    }

    sd_schedule *s = sd_calloc(1, sizeof *s);
    if (!s)
        return sd_fail_nomem(err, "schedule");
    s->kind = p->kind;
    s->spacing = p->spacing;
    s->karras = p->karras;
    s->prediction = p->prediction == SD_PREDICT_V ? SD_PREDICT_V : SD_PREDICT_EPSILON;
    s->n_steps = n;
    s->begin = begin;
    s->timesteps = sd_calloc((size_t)n, sizeof *s->timesteps);
    bool sigma_based = p->kind == SD_SAMPLER_EULER || p->kind == SD_SAMPLER_EULER_A ||
                       p->kind == SD_SAMPLER_DPMPP_2M;
    if (sigma_based)
        s->sigmas = sd_calloc((size_t)n + 1, sizeof *s->sigmas);
    if (!s->timesteps || (sigma_based && !s->sigmas)) {
        sd_schedule_free(s);
        return sd_fail_nomem(err, "schedule");
    }

    training_alphas_cumprod(s->alphas_cumprod);
    float train_sigmas[SD_TRAIN_STEPS];
    training_sigmas(s->alphas_cumprod, train_sigmas);
    s->init_noise_sigma = 1.0f;
    s->final_alpha_cumprod = s->alphas_cumprod[0];

    switch (p->kind) {
    case SD_SAMPLER_EULER:
    case SD_SAMPLER_EULER_A: {
        sigma_schedule(s, train_sigmas);
        float max = 0;
        for (int i = 0; i <= n; i++)
            max = s->sigmas[i] > max ? s->sigmas[i] : max;
        s->init_noise_sigma = p->spacing == SD_SPACING_LEADING ? sqrtf(max * max + 1.0f) : max;
        break;
    }
    case SD_SAMPLER_DPMPP_2M:
        sigma_schedule(s, train_sigmas);
        break;
    case SD_SAMPLER_DDIM:
        ddim_timesteps(p->spacing, n, s->timesteps);
        break;
    case SD_SAMPLER_LCM:
        lcm_timesteps(n, n_origin, s->timesteps);
        s->final_alpha_cumprod = 1.0f;
        break;
    case SD_SAMPLER_AUTO:
    case SD_SAMPLER_COUNT:
        break;
    }
    *out = s;
    return SD_OK;
}

void sd_schedule_free(sd_schedule *s)
{
    if (!s)
        return;
    sd_free(s->timesteps);
    sd_free(s->sigmas);
    sd_free(s);
}

/* ---- queries and element-wise helpers ----------------------------------------------------- */

/* alphas_cumprod at an integer training timestep (clamped into the table). */
static float alpha_of(const sd_schedule *s, double t)
{
    int k = (int)t;
    k = k < 0 ? 0 : k >= SD_TRAIN_STEPS ? SD_TRAIN_STEPS - 1 : k;
    return s->alphas_cumprod[k];
}

float sd_schedule_alpha_at(const sd_schedule *s, int i)
{
    return alpha_of(s, s->timesteps[i]);
}

int sd_schedule_ddim_prev(const sd_schedule *s, int i)
{
    return (int)s->timesteps[i] - SD_TRAIN_STEPS / s->n_steps;
}

void sd_schedule_scale_input(const sd_schedule *s, int i, const float *x, float *out, size_t n)
{
    if (s->kind == SD_SAMPLER_EULER || s->kind == SD_SAMPLER_EULER_A) {
        float sigma = s->sigmas[i];
        float d = sqrtf(sigma * sigma + 1.0f);
        for (size_t k = 0; k < n; k++)
            out[k] = x[k] / d;
    } else if (out != x) {
        memcpy(out, x, n * sizeof *out);
    }
}

/* The two coefficients of add_noise at step i: out = a * x0 + b * noise (Euler: a unused). */
static void noise_coefs(const sd_schedule *s, int i, float *a, float *b)
{
    switch (s->kind) {
    case SD_SAMPLER_EULER:
    case SD_SAMPLER_EULER_A:
        *a = 1.0f;
        *b = s->sigmas[i];
        break;
    case SD_SAMPLER_DPMPP_2M: {
        float sigma = s->sigmas[i];
        *a = 1.0f / sqrtf(sigma * sigma + 1.0f);
        *b = sigma * *a;
        break;
    }
    case SD_SAMPLER_DDIM:
    case SD_SAMPLER_LCM:
    case SD_SAMPLER_AUTO:
    case SD_SAMPLER_COUNT: {
        float ac = sd_schedule_alpha_at(s, i);
        *a = sqrtf(ac);
        *b = sqrtf(1.0f - ac);
        break;
    }
    }
}

/* One element of add_noise, in diffusers' order of operations. */
static inline float noised(const sd_schedule *s, float a, float b, float x0, float noise)
{
    if (s->kind == SD_SAMPLER_EULER || s->kind == SD_SAMPLER_EULER_A)
        return x0 + noise * b;
    return a * x0 + b * noise;
}

void sd_schedule_add_noise(const sd_schedule *s, int i, const float *x0, const float *noise,
                           float *out, size_t n)
{
    float a, b;
    noise_coefs(s, i, &a, &b);
    for (size_t k = 0; k < n; k++)
        out[k] = noised(s, a, b, x0[k], noise[k]);
}

void sd_schedule_reimpose_known(const sd_schedule *s, int i, float *x, const float *x0,
                                const float *noise, const float *mask, size_t hw,
                                size_t channels)
{
    bool last = i + 1 >= s->n_steps;
    float a = 1.0f, b = 0.0f;
    if (!last)
        noise_coefs(s, i + 1, &a, &b);
    for (size_t c = 0; c < channels; c++) {
        for (size_t k = 0; k < hw; k++) {
            size_t e = c * hw + k;
            float known = last ? x0[e] : noised(s, a, b, x0[e], noise[e]);
            x[e] = (1.0f - mask[k]) * known + mask[k] * x[e];
        }
    }
}
