/* tests/t_sampler.c - the sampler steps replayed against the golden diffusers pipeline runs
 * (tiny-sd15 txt2img with Euler, Euler a, DDIM, DPM++ 2M and DPM++ 2M Karras; tiny-sd2v
 * Euler with v-prediction; img2img; legacy 4-channel inpainting; 9-channel inpainting with
 * DDIM).  For each case:
 *   - the schedule equals the recorded timesteps/sigmas, and the seeded generator reproduces
 *     every recorded noise draw (init_latents, randn{j});
 *   - the start latents (init_noise_sigma, or add_noise of the image latents);
 *   - one step at a time: scale_input(step{i-1}.latents) == step{i}.unet_in, and
 *     step(step{i-1}.latents, step{i}.noise_pred) == step{i}.latents (the legacy inpainting
 *     blend included), to STEP_RTOL;
 *   - the whole chain from the start latents with only the recorded noise_preds fed in: the
 *     final latents to the golden README's pipeline tolerance (1e-4 * max|ref|). */
#include "harness.h"
#include "case_util.h"
#include "internal/safetensors.h"
#include "internal/schedule.h"
#include "pyjson.h"

/* One step from recorded inputs: float32 rounding differences only (measured: bit-exact or a
 * few ulp); 100x below the per-step float32-vs-float64 noise of the pipelines. */
#define STEP_RTOL 1e-6
/* golden README, full pipelines: final latents |c - ref| <= 1e-4 * max|ref| */
#define CHAIN_RTOL 1e-4

#define N_LAT 1024 /* 1 x 4 x 16 x 16 */
#define HW 256

typedef enum start_kind { START_NOISE, START_IMG2IMG, START_INPAINT_LEGACY } start_kind;

typedef struct pcase {
    const char *file; /* under tests/data, without extension */
    sd_sampler_kind kind;
    sd_spacing spacing;
    bool karras;
    sd_prediction prediction;
    int n_steps;
    double strength;
    start_kind start;
    int unet_channels; /* channels of step{i}.unet_in per batch row (9: inpainting UNet) */
} pcase;

static const pcase cases[] = {
    {"tiny-sd15/pipeline_txt2img_euler", SD_SAMPLER_EULER, SD_SPACING_LINSPACE, false,
     SD_PREDICT_EPSILON, 4, 1.0, START_NOISE, 4},
    {"tiny-sd15/pipeline_txt2img_euler_a", SD_SAMPLER_EULER_A, SD_SPACING_LINSPACE, false,
     SD_PREDICT_EPSILON, 5, 1.0, START_NOISE, 4},
    {"tiny-sd15/pipeline_txt2img_ddim", SD_SAMPLER_DDIM, SD_SPACING_LEADING, false,
     SD_PREDICT_EPSILON, 4, 1.0, START_NOISE, 4},
    {"tiny-sd15/pipeline_txt2img_dpmpp2m", SD_SAMPLER_DPMPP_2M, SD_SPACING_LINSPACE, false,
     SD_PREDICT_EPSILON, 4, 1.0, START_NOISE, 4},
    {"tiny-sd15/pipeline_txt2img_dpmpp2m_karras", SD_SAMPLER_DPMPP_2M, SD_SPACING_LINSPACE, true,
     SD_PREDICT_EPSILON, 6, 1.0, START_NOISE, 4},
    {"tiny-sd2v/pipeline_txt2img_euler", SD_SAMPLER_EULER, SD_SPACING_LINSPACE, false,
     SD_PREDICT_V, 4, 1.0, START_NOISE, 4},
    {"tiny-sd15/pipeline_img2img", SD_SAMPLER_EULER, SD_SPACING_LINSPACE, false,
     SD_PREDICT_EPSILON, 10, 0.6, START_IMG2IMG, 4},
    {"tiny-sd15/pipeline_inpaint_legacy", SD_SAMPLER_EULER, SD_SPACING_LINSPACE, false,
     SD_PREDICT_EPSILON, 8, 0.75, START_INPAINT_LEGACY, 4},
    {"tiny-sd15-inpaint/pipeline_inpaint", SD_SAMPLER_DDIM, SD_SPACING_LEADING, false,
     SD_PREDICT_EPSILON, 8, 1.0, START_NOISE, 9},
};

static const sd_st_file *cur;
static const char *cur_name;

/* A float32 golden tensor of the current case with n elements, or NULL (counted as a
 * failure). */
static const float *get(const char *name, size_t n)
{
    return t_case_view(cur, cur_name, name, n);
}

static bool same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

/* The generator replays every recorded draw; returns the seeded generator advanced past
 * the draws that precede the sampling loop (the ones Euler a draws in the loop are left). */
static void check_draws(const pcase *c, const sd_json *side, sd_rng *rng)
{
    int64_t seed = sd_json_int(sd_json_get(sd_json_get(side, "diffusers_call"), "seed"), -1);
    CHECK(seed >= 0, "%s: no seed in the sidecar", c->file);
    sd_rng_seed(rng, (uint64_t)seed);
    float buf[N_LAT];
    if (c->start == START_NOISE) {
        /* the passed latents are the generator's first draw */
        const float *init = get("init_latents", N_LAT);
        sd_rng_randn(rng, buf, N_LAT);
        CHECK(init && same_bits(buf, init, N_LAT), "%s: init_latents != first draw", c->file);
    }
    const sd_json *draws = sd_json_get(side, "draws");
    size_t n_draws = draws ? draws->n : 0;
    sd_rng probe = *rng;
    for (size_t j = 0; j < n_draws; j++) {
        char name[32];
        snprintf(name, sizeof name, "randn%zu", j);
        const float *want = get(name, N_LAT);
        sd_rng_randn(&probe, buf, N_LAT);
        CHECK(want && same_bits(buf, want, N_LAT), "%s: %s != draw %zu of the generator",
              c->file, name, j);
    }
    if (c->kind != SD_SAMPLER_EULER_A)
        *rng = probe;
}

/* diffusers' posterior sample: 0.18215 * (mean + exp(0.5 * logvar) * noise). */
static void vae_sample(const float *mean, const float *logvar, const float *noise, float *z)
{
    for (size_t k = 0; k < N_LAT; k++) {
        float lv = logvar[k] < -30.0f ? -30.0f : logvar[k] > 20.0f ? 20.0f : logvar[k];
        z[k] = 0.18215f * (mean[k] + expf(0.5f * lv) * noise[k]);
    }
}

static void check_start(const pcase *c, const sd_schedule *s, float *x)
{
    const float *want = get("start_latents", N_LAT);
    if (!want)
        return;
    char what[160];
    snprintf(what, sizeof what, "%s start_latents", c->file);
    if (c->start == START_NOISE) {
        const float *init = get("init_latents", N_LAT);
        for (size_t k = 0; init && k < N_LAT; k++)
            x[k] = init[k] * s->init_noise_sigma;
        CHECK(init && same_bits(x, want, N_LAT), "%s: not init_latents * %g", what,
              s->init_noise_sigma);
    } else if (c->start == START_IMG2IMG) {
        const float *mean = get("vae_encode0.mean", N_LAT), *lv = get("vae_encode0.logvar", N_LAT);
        const float *n0 = get("randn0", N_LAT), *n1 = get("randn1", N_LAT);
        if (!mean || !lv || !n0 || !n1)
            return;
        float z[N_LAT];
        vae_sample(mean, lv, n0, z);
        sd_schedule_add_noise(s, s->begin, z, n1, x, N_LAT);
        t_close(what, x, want, N_LAT, 0, STEP_RTOL);
    } else {
        const float *z = get("image_latents", N_LAT), *noise = get("noise", N_LAT);
        if (!z || !noise)
            return;
        sd_schedule_add_noise(s, s->begin, z, noise, x, N_LAT);
        CHECK(same_bits(x, want, N_LAT), "%s: add_noise(image_latents, noise, t_start)", what);
    }
    /* continue from the recorded start so that the step checks see diffusers' inputs */
    memcpy(x, want, sizeof(float) * N_LAT);
}

/* After step i of legacy inpainting: the known region re-noised and blended. */
static void reimpose(const pcase *c, const sd_schedule *s, int i, float *x)
{
    if (c->start != START_INPAINT_LEGACY)
        return;
    const float *z = get("image_latents", N_LAT), *noise = get("noise", N_LAT);
    const float *mask = get("mask_latents", HW);
    if (z && noise && mask)
        sd_schedule_reimpose_known(s, i, x, z, noise, mask, HW, 4);
}

static void run_case(const pcase *c)
{
    char path[256];
    snprintf(path, sizeof path, "%s.safetensors", c->file);
    sd_st_file *f = NULL;
    sd_error err = {0};
    CHECK(sd_st_open(t_data(path), &f, &err) == SD_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s.json", c->file);
    sd_json *side = t_pyjson_load(t_data(path));
    CHECK(side != NULL, "%s: no sidecar", c->file);
    sd_schedule_params p = sd_schedule_params_default();
    p.kind = c->kind;
    p.spacing = c->spacing;
    p.karras = c->karras;
    p.prediction = c->prediction;
    p.n_steps = c->n_steps;
    p.strength = c->strength;
    sd_schedule *s = NULL;
    CHECK(sd_schedule_new(&p, &s, &err) == SD_OK, "%s: %s", c->file, err.msg);
    sd_sampler *smp = NULL, *chain = NULL;
    if (s) {
        CHECK(sd_sampler_new(s, N_LAT, &smp, &err) == SD_OK, "%s", err.msg);
        CHECK(sd_sampler_new(s, N_LAT, &chain, &err) == SD_OK, "%s", err.msg);
    }
    if (!f || !side || !s || !smp || !chain)
        goto out;
    cur = f;
    cur_name = c->file;

    /* schedule == what the pipeline ran */
    int run = s->n_steps - s->begin;
    const float *ts = get("timesteps", (size_t)run);
    for (int i = 0; ts && i < run; i++)
        CHECK(s->timesteps[s->begin + i] == ts[i], "%s: timestep %d: %g want %g", c->file, i,
              s->timesteps[s->begin + i], ts[i]);
    const sd_json *sched = sd_json_get(side, "scheduler");
    const sd_json *sig = sd_json_get(sched, "sigmas");
    if (s->sigmas) {
        CHECK(sig && sig->n == (size_t)s->n_steps + 1, "%s: sigma count", c->file);
        for (int i = 0; sig && i <= s->n_steps && (size_t)i < sig->n; i++)
            CHECK(s->sigmas[i] == (float)sd_json_num(sd_json_at(sig, (size_t)i), NAN),
                  "%s: sigma %d", c->file, i);
    }
    CHECK(s->init_noise_sigma == (float)sd_json_num(sd_json_get(sched, "init_noise_sigma"), 0),
          "%s: init_noise_sigma", c->file);

    sd_rng rng;
    check_draws(c, side, &rng);
    sd_noise_src src = {.rng = rng}, chain_src = {.rng = rng};

    float x[N_LAT], start[N_LAT], cx[N_LAT], unet_in[N_LAT], x0[N_LAT];
    check_start(c, s, start);
    memcpy(cx, start, sizeof cx);
    char what[192];
    for (int k = 0; k < run; k++) {
        int i = s->begin + k;
        char name[48];
        snprintf(name, sizeof name, "step%d.unet_in", k);
        const float *uin = get(name, (size_t)2 * (size_t)c->unet_channels * HW);
        snprintf(name, sizeof name, "step%d.noise_pred", k);
        const float *eps = get(name, N_LAT);
        snprintf(name, sizeof name, "step%d.latents", k);
        const float *want = get(name, N_LAT);
        if (k > 0) {
            snprintf(name, sizeof name, "step%d.latents", k - 1);
            const float *prev = get(name, N_LAT);
            if (prev)
                memcpy(x, prev, sizeof x);
        } else {
            memcpy(x, start, sizeof x);
        }
        if (!uin || !eps || !want)
            break;

        /* the UNet input: scale_model_input(x) in the first 4 channels of both batch rows */
        sd_schedule_scale_input(s, i, x, unet_in, N_LAT);
        for (int row = 0; row < 2; row++) {
            snprintf(what, sizeof what, "%s step%d unet_in[%d]", c->file, k, row);
            t_close(what, unet_in, uin + (size_t)row * c->unet_channels * HW, N_LAT, 0,
                    STEP_RTOL);
        }

        /* one step from the recorded latents */
        CHECK(sd_sampler_step(smp, i, x, eps, &src, x0, &err) == SD_OK, "%s", err.msg);
        reimpose(c, s, i, x);
        snprintf(what, sizeof what, "%s step%d latents", c->file, k);
        t_close(what, x, want, N_LAT, 0, STEP_RTOL);

        /* the chain, fed only the recorded model outputs */
        CHECK(sd_sampler_step(chain, i, cx, eps, &chain_src, NULL, &err) == SD_OK, "%s",
              err.msg);
        reimpose(c, s, i, cx);
    }
    const float *fin = get("final_latents", N_LAT);
    if (fin) {
        snprintf(what, sizeof what, "%s chained final_latents", c->file);
        t_close(what, cx, fin, N_LAT, 0, CHAIN_RTOL);
    }
    /* a step out of order is refused */
    CHECK(sd_sampler_step(smp, s->begin, x, x, &src, NULL, &err) == SD_ERR_INVALID_ARG,
          "%s: step after the end accepted", c->file);
out:
    sd_sampler_free(smp);
    sd_sampler_free(chain);
    sd_schedule_free(s);
    sd_json_free(side);
    sd_st_close(f);
}

/* LCM has no golden pipeline run: check its step against the closed form on synthetic data
 * (boundary condition c_skip/c_out, noise between steps, none after the last). */
static void check_lcm(void)
{
    sd_schedule_params p = sd_schedule_params_default();
    p.kind = SD_SAMPLER_LCM;
    p.n_steps = 4;
    sd_schedule *s = NULL;
    sd_sampler *smp = NULL;
    sd_error err = {0};
    CHECK(sd_schedule_new(&p, &s, &err) == SD_OK, "%s", err.msg);
    if (!s)
        return;
    CHECK(sd_sampler_new(s, 16, &smp, &err) == SD_OK, "%s", err.msg);
    float x[16], eps[16], noise[16];
    sd_noise_src src;
    sd_rng ref;
    sd_noise_src_seed(&src, 5);
    for (int k = 0; k < 16; k++)
        x[k] = (float)(k - 8) * 0.25f, eps[k] = (float)((k * 7) % 5) * 0.3f - 0.6f;
    CHECK(sd_sampler_step(smp, 0, x, eps, NULL, NULL, &err) == SD_ERR_INVALID_ARG,
          "LCM without a generator accepted");
    for (int i = 0; smp && i < s->n_steps; i++) {
        double t = s->timesteps[i];
        double a = s->alphas_cumprod[(int)t];
        double ap = i + 1 < s->n_steps ? s->alphas_cumprod[(int)s->timesteps[i + 1]] : 1.0;
        double st = t * 10.0, c_skip = 0.25 / (st * st + 0.25), c_out = st / sqrt(st * st + 0.25);
        ref = src.rng;
        if (i + 1 < s->n_steps)
            sd_rng_randn(&ref, noise, 16);
        double want[16];
        for (int k = 0; k < 16; k++) {
            double x0 = (x[k] - sqrt(1 - a) * eps[k]) / sqrt(a);
            double den = c_out * x0 + c_skip * x[k];
            want[k] = i + 1 < s->n_steps ? sqrt(ap) * den + sqrt(1 - ap) * noise[k] : den;
        }
        CHECK(sd_sampler_step(smp, i, x, eps, &src, NULL, &err) == SD_OK, "%s", err.msg);
        double worst = 0;
        for (int k = 0; k < 16; k++)
            worst = fmax(worst, fabs(x[k] - want[k]));
        CHECK(worst < 1e-5, "LCM step %d deviates by %g", i, worst);
        CHECK(src.rng.left == ref.left && src.rng.next == ref.next &&
                  memcmp(src.rng.mt, ref.mt, sizeof src.rng.mt) == 0,
              "LCM step %d drew the wrong amount", i);
    }
    sd_sampler_free(smp);
    sd_schedule_free(s);
}

/* add_noise of the samplers without a golden img2img run, against the closed forms. */
static void check_add_noise(void)
{
    static const sd_sampler_kind kinds[] = {SD_SAMPLER_DDIM, SD_SAMPLER_DPMPP_2M, SD_SAMPLER_LCM,
                                            SD_SAMPLER_EULER_A};
    for (size_t k = 0; k < SD_ARRAY_LEN(kinds); k++) {
        sd_schedule_params p = sd_schedule_params_default();
        p.kind = kinds[k];
        p.n_steps = 10;
        sd_schedule *s = NULL;
        sd_error err = {0};
        CHECK(sd_schedule_new(&p, &s, &err) == SD_OK, "%s", err.msg);
        if (!s)
            continue;
        float x0[8], noise[8], out[8];
        for (int e = 0; e < 8; e++)
            x0[e] = (float)e * 0.5f - 2.0f, noise[e] = (float)(e % 3) - 1.0f;
        for (int i = 0; i < s->n_steps; i++) {
            double a, b;
            if (s->sigmas) {
                double sg = s->sigmas[i];
                a = kinds[k] == SD_SAMPLER_EULER_A ? 1.0 : 1.0 / sqrt(sg * sg + 1);
                b = kinds[k] == SD_SAMPLER_EULER_A ? sg : sg / sqrt(sg * sg + 1);
            } else {
                double ac = s->alphas_cumprod[(int)s->timesteps[i]];
                a = sqrt(ac), b = sqrt(1 - ac);
            }
            sd_schedule_add_noise(s, i, x0, noise, out, 8);
            double worst = 0;
            for (int e = 0; e < 8; e++)
                worst = fmax(worst, fabs(out[e] - (a * x0[e] + b * noise[e])));
            CHECK(worst < 1e-5, "%s add_noise step %d off by %g", sd_sampler_kind_name(kinds[k]),
                  i, worst);
        }
        sd_schedule_free(s);
    }
}

int main(void)
{
    for (size_t k = 0; k < SD_ARRAY_LEN(cases); k++)
        run_case(&cases[k]);
    check_lcm();
    check_add_noise();

    /* allocation failures */
    sd_schedule_params p = sd_schedule_params_default();
    p.kind = SD_SAMPLER_DPMPP_2M;
    sd_schedule *s = NULL;
    sd_error err = {0};
    CHECK(sd_schedule_new(&p, &s, &err) == SD_OK, "%s", err.msg);
    size_t live = sd_alloc_live_bytes();
    for (long k = 1; s && k < 5; k++) {
        sd_sampler *smp = NULL;
        sd_alloc_fail_after(k, false);
        sd_status st = sd_sampler_new(s, 64, &smp, &err);
        sd_alloc_fail_after(0, false);
        if (st == SD_OK) {
            sd_sampler_free(smp);
            break;
        }
        CHECK(st == SD_ERR_NOMEM && !smp, "sampler alloc failure %ld", k);
    }
    CHECK(sd_alloc_live_bytes() == live, "sampler leak");
    sd_sampler *none = NULL;
    CHECK(s && sd_sampler_new(s, 0, &none, &err) == SD_ERR_INVALID_ARG, "0 elements");
    sd_schedule_free(s);
    return t_summary("t_sampler");
}
