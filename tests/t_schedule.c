/* tests/t_schedule.c - the noise schedules against diffusers' (golden
 * tiny-sd15/schedulers.json): alphas_cumprod bit for bit, and for every scheduler, Karras
 * variant and timestep spacing at 1, 4, 20 and 50 steps the timesteps (exact), sigmas
 * (float32, <= 1e-6 relative), init_noise_sigma, DDIM/LCM alphas_cumprod_t and DDIM's previous
 * timesteps; img2img start indices and the remaining schedule at strength 0.3 and 0.75 (LCM:
 * its strength-dependent schedule, and the rejected combination); parameter errors. */
#include "harness.h"
#include "internal/json.h"
#include "pyjson.h"
#include "internal/schedule.h"

#define SIGMA_RTOL 1e-6

static int n_exact_sigmas, n_sigmas;
static double worst_sigma_rel;

static sd_schedule *make(sd_sampler_kind kind, sd_spacing sp, bool karras, int n,
                         double strength)
{
    sd_schedule_params p = sd_schedule_params_default();
    p.kind = kind;
    p.spacing = sp;
    p.karras = karras;
    p.n_steps = n;
    p.strength = strength;
    sd_schedule *s = NULL;
    sd_error err = {0};
    CHECK(sd_schedule_new(&p, &s, &err) == SD_OK, "%s/%s/%d/%g: %s", sd_sampler_kind_name(kind),
          sd_spacing_name(sp), n, strength, err.msg);
    return s;
}

/* timesteps[from..] == want (exactly, as float32 values or integers) */
static void check_timesteps(const char *what, const sd_schedule *s, int from, const sd_json *want)
{
    int n = s->n_steps - from;
    CHECK(want && want->type == SD_JSON_ARRAY && want->n == (size_t)n,
          "%s: %d timesteps, golden has %zu", what, n, want ? want->n : 0);
    if (!want || want->n != (size_t)n)
        return;
    int bad = 0, first = -1;
    for (int i = 0; i < n; i++) {
        if (s->timesteps[from + i] != sd_json_num(sd_json_at(want, (size_t)i), NAN) &&
            first < 0)
            first = i;
        bad += s->timesteps[from + i] != sd_json_num(sd_json_at(want, (size_t)i), NAN);
    }
    CHECK(bad == 0, "%s: %d timesteps differ, first [%d] %.9g want %.9g", what, bad, first,
          first >= 0 ? s->timesteps[from + first] : 0,
          first >= 0 ? sd_json_num(sd_json_at(want, (size_t)first), 0) : 0);
}

static void check_sigmas(const char *what, const sd_schedule *s, int from, const sd_json *want)
{
    int n = s->n_steps + 1 - from;
    CHECK(s->sigmas && want && want->n == (size_t)n, "%s: sigma count", what);
    if (!s->sigmas || !want || want->n != (size_t)n)
        return;
    double worst = 0;
    int wi = 0;
    for (int i = 0; i < n; i++) {
        double w = sd_json_num(sd_json_at(want, (size_t)i), NAN);
        double g = s->sigmas[from + i];
        double rel = w == 0 ? fabs(g) : fabs(g - w) / fabs(w);
        if (rel > worst)
            worst = rel, wi = i;
        n_sigmas++;
        n_exact_sigmas += (float)w == (float)g;
    }
    if (worst > worst_sigma_rel)
        worst_sigma_rel = worst;
    CHECK(worst <= SIGMA_RTOL, "%s: sigma[%d] %.9g want %.9g (rel %.3g)", what, wi,
          s->sigmas[from + wi], sd_json_num(sd_json_at(want, (size_t)wi), 0), worst);
}

/* DDIM / LCM: alphas_cumprod at the timesteps (exact) and DDIM's previous timesteps. */
static void check_alphas(const char *what, const sd_schedule *s, const sd_json *steps)
{
    const sd_json *at = sd_json_get(steps, "alphas_cumprod_t");
    const sd_json *prev = sd_json_get(steps, "prev_timesteps");
    const sd_json *eq = sd_json_get(steps, "equivalent_sigmas");
    CHECK(at && at->n == (size_t)s->n_steps && eq && eq->n == at->n, "%s: alphas_cumprod_t",
          what);
    for (int i = 0; at && eq && i < s->n_steps && (size_t)i < at->n; i++) {
        float a = sd_schedule_alpha_at(s, i);
        CHECK(a == (float)sd_json_num(sd_json_at(at, (size_t)i), NAN),
              "%s: alphas_cumprod_t[%d] %.9g", what, i, a);
        double es = sqrt((1.0 - a) / a), ew = sd_json_num(sd_json_at(eq, (size_t)i), NAN);
        CHECK(fabs(es - ew) <= 1e-12 * ew, "%s: equivalent sigma[%d]", what, i);
    }
    if (s->kind == SD_SAMPLER_DDIM) {
        CHECK(prev && prev->n == (size_t)s->n_steps, "%s: prev_timesteps", what);
        for (int i = 0; prev && i < s->n_steps && (size_t)i < prev->n; i++)
            CHECK(sd_schedule_ddim_prev(s, i) == sd_json_int(sd_json_at(prev, (size_t)i), -9999),
                  "%s: prev[%d]", what, i);
    }
}

static const struct {
    const char *key;
    sd_sampler_kind kind;
    bool karras;
} scheds[] = {
    {"DDIMScheduler", SD_SAMPLER_DDIM, false},
    {"EulerDiscreteScheduler", SD_SAMPLER_EULER, false},
    {"EulerDiscreteScheduler_karras", SD_SAMPLER_EULER, true},
    {"EulerAncestralDiscreteScheduler", SD_SAMPLER_EULER_A, false},
    {"DPMSolverMultistepScheduler_dpmpp2m", SD_SAMPLER_DPMPP_2M, false},
    {"DPMSolverMultistepScheduler_dpmpp2m_karras", SD_SAMPLER_DPMPP_2M, true},
    {"LCMScheduler", SD_SAMPLER_LCM, false},
};

static void check_img2img(const char *what, sd_sampler_kind kind, sd_spacing sp, bool karras,
                          const sd_json *i2i)
{
    static const char *const strengths[] = {"0.3", "0.75"};
    for (size_t k = 0; k < SD_ARRAY_LEN(strengths); k++) {
        const sd_json *c = sd_json_get(i2i, strengths[k]);
        double strength = atof(strengths[k]);
        char w[256];
        if (kind == SD_SAMPLER_LCM) {
            static const struct { const char *key; int n; } cases[] = {{"4_steps", 4},
                                                                       {"20_steps", 20}};
            for (size_t m = 0; m < SD_ARRAY_LEN(cases); m++) {
                const sd_json *lc = sd_json_get(c, cases[m].key);
                snprintf(w, sizeof w, "%s img2img %s x %d", what, strengths[k], cases[m].n);
                sd_schedule_params p = sd_schedule_params_default();
                p.kind = kind;
                p.n_steps = cases[m].n;
                p.strength = strength;
                sd_schedule *s = NULL;
                sd_error err = {0};
                sd_status st = sd_schedule_new(&p, &s, &err);
                if (sd_json_get(lc, "error")) {
                    CHECK(st == SD_ERR_INVALID_ARG && !s, "%s: accepted", w);
                } else {
                    CHECK(st == SD_OK, "%s: %s", w, err.msg);
                    if (s) {
                        CHECK(s->begin == 0, "%s: begin %d", w, s->begin);
                        check_timesteps(w, s, 0, sd_json_get(lc, "timesteps"));
                    }
                }
                sd_schedule_free(s);
            }
            continue;
        }
        snprintf(w, sizeof w, "%s img2img %s", what, strengths[k]);
        sd_schedule *s = make(kind, sp, karras, 20, strength);
        if (!s)
            continue;
        CHECK(s->begin == sd_json_int(sd_json_get(c, "t_start"), -1), "%s: begin %d", w,
              s->begin);
        CHECK(s->n_steps - s->begin == sd_json_int(sd_json_get(c, "num_steps"), -1),
              "%s: steps run", w);
        check_timesteps(w, s, s->begin, sd_json_get(c, "timesteps"));
        if (s->sigmas)
            check_sigmas(w, s, s->begin, sd_json_get(c, "sigmas_from_begin"));
        sd_schedule_free(s);
    }
}

static void check_errors(void)
{
    sd_schedule_params p = sd_schedule_params_default();
    sd_schedule *s = NULL;
    sd_error err = {0};
    p.n_steps = 0;
    CHECK(sd_schedule_new(&p, &s, &err) == SD_ERR_INVALID_ARG && !s && err.msg[0], "0 steps");
    p.n_steps = 1001;
    CHECK(sd_schedule_new(&p, &s, &err) == SD_ERR_INVALID_ARG, "1001 steps");
    p = sd_schedule_params_default();
    p.strength = 0;
    CHECK(sd_schedule_new(&p, &s, &err) == SD_ERR_INVALID_ARG, "strength 0");
    p.strength = 1.5;
    CHECK(sd_schedule_new(&p, &s, &err) == SD_ERR_INVALID_ARG, "strength 1.5");
    p.strength = 0.04; /* int(20 * 0.04) == 0 */
    CHECK(sd_schedule_new(&p, &s, &err) == SD_ERR_INVALID_ARG, "no step left");
    p = sd_schedule_params_default();
    p.kind = SD_SAMPLER_DDIM;
    p.karras = true;
    CHECK(sd_schedule_new(&p, &s, &err) == SD_ERR_INVALID_ARG, "Karras DDIM");
    p = sd_schedule_params_default();
    p.kind = SD_SAMPLER_LCM;
    p.n_steps = 51;
    CHECK(sd_schedule_new(&p, &s, &err) == SD_ERR_INVALID_ARG, "LCM 51 steps");
    p = sd_schedule_params_default();
    p.kind = SD_SAMPLER_COUNT;
    CHECK(sd_schedule_new(&p, &s, &err) == SD_ERR_INVALID_ARG, "bad kind");
    p = sd_schedule_params_default();
    p.spacing = SD_SPACING_COUNT;
    CHECK(sd_schedule_new(&p, &s, &err) == SD_ERR_INVALID_ARG, "bad spacing");

    /* trailing spacing always gives N steps, ending at t = 999 - (N-1) * 1000/N rounded */
    for (int n = 1; n <= 150; n++) {
        s = make(SD_SAMPLER_EULER, SD_SPACING_TRAILING, false, n, 1.0);
        if (!s)
            break;
        CHECK(s->timesteps[0] == 999 && s->timesteps[n - 1] >= 0 &&
                  s->timesteps[n - 1] == nearbyint(1000.0 / n) - 1,
              "trailing %d steps ends at %g", n, s->timesteps[n - 1]);
        sd_schedule_free(s);
    }

    /* every allocation failure is NOMEM without leaks */
    size_t live = sd_alloc_live_bytes();
    p = sd_schedule_params_default();
    for (long k = 1; k < 10; k++) {
        sd_alloc_fail_after(k, false);
        sd_status st = sd_schedule_new(&p, &s, &err);
        sd_alloc_fail_after(0, false);
        if (st == SD_OK) {
            sd_schedule_free(s);
            break;
        }
        CHECK(st == SD_ERR_NOMEM && !s, "alloc failure %ld: %d", k, st);
    }
    CHECK(sd_alloc_live_bytes() == live, "leak after allocation failures");
}

int main(void)
{
    const char *path = t_data("tiny-sd15/schedulers.json");
    sd_json *root = t_pyjson_load(path);
    CHECK(root != NULL, "cannot load %s", path);
    if (!root)
        return t_summary("t_schedule");

    /* alphas_cumprod, bit for bit */
    sd_schedule *s0 = make(SD_SAMPLER_DDIM, SD_SPACING_LEADING, false, 4, 1.0);
    const sd_json *ac = sd_json_get(root, "alphas_cumprod");
    int bad = 0;
    for (int t = 0; s0 && ac && t < SD_TRAIN_STEPS; t++)
        bad += s0->alphas_cumprod[t] != (float)sd_json_num(sd_json_at(ac, (size_t)t), NAN);
    CHECK(s0 && ac && ac->n == SD_TRAIN_STEPS && bad == 0, "alphas_cumprod: %d of 1000 differ",
          bad);
    sd_schedule_free(s0);

    const sd_json *all = sd_json_get(root, "schedulers");
    static const char *const step_keys[] = {"1", "4", "20", "50"};
    int n_cases = 0;
    for (size_t k = 0; k < SD_ARRAY_LEN(scheds); k++) {
        const sd_json *sp_all = sd_json_get(sd_json_get(all, scheds[k].key), "spacings");
        CHECK(sp_all != NULL, "golden has no %s", scheds[k].key);
        for (int sp = 0; sp < SD_SPACING_COUNT; sp++) {
            const sd_json *spj = sd_json_get(sp_all, sd_spacing_name((sd_spacing)sp));
            const sd_json *steps = sd_json_get(spj, "steps");
            if (!steps) {
                /* LCM ignores the spacing: only 'leading' is recorded */
                CHECK(scheds[k].kind == SD_SAMPLER_LCM && sd_json_get(spj, "not_recorded"),
                      "%s/%s missing", scheds[k].key, sd_spacing_name((sd_spacing)sp));
                continue;
            }
            for (size_t m = 0; m < SD_ARRAY_LEN(step_keys); m++) {
                const sd_json *c = sd_json_get(steps, step_keys[m]);
                char what[160];
                snprintf(what, sizeof what, "%s/%s/%s", scheds[k].key,
                         sd_spacing_name((sd_spacing)sp), step_keys[m]);
                sd_schedule *s = make(scheds[k].kind, (sd_spacing)sp, scheds[k].karras,
                                      atoi(step_keys[m]), 1.0);
                if (!s || !c) {
                    CHECK(c != NULL, "%s missing in golden", what);
                    sd_schedule_free(s);
                    continue;
                }
                n_cases++;
                check_timesteps(what, s, 0, sd_json_get(c, "timesteps"));
                if (s->sigmas)
                    check_sigmas(what, s, 0, sd_json_get(c, "sigmas"));
                else
                    check_alphas(what, s, c);
                double ins = sd_json_num(sd_json_get(c, "init_noise_sigma"), NAN);
                CHECK(s->init_noise_sigma == (float)ins, "%s: init_noise_sigma %.9g want %.9g",
                      what, s->init_noise_sigma, ins);
                sd_schedule_free(s);
            }
            char what[160];
            snprintf(what, sizeof what, "%s/%s", scheds[k].key, sd_spacing_name((sd_spacing)sp));
            check_img2img(what, scheds[k].kind, (sd_spacing)sp, scheds[k].karras,
                          sd_json_get(spj, "img2img_20_steps"));
        }
    }
    fprintf(stderr, "schedules checked: %d; sigmas bit-exact %d of %d, worst relative %.3g\n",
            n_cases, n_exact_sigmas, n_sigmas, worst_sigma_rel);
    CHECK(n_cases == 6 * 3 * 4 + 4, "cases %d", n_cases);
    sd_json_free(root);

    check_errors();
    return t_summary("t_schedule");
}
