/* cli/bench_figures.c - the runners of `sd bench`: each loads its random checkpoint, builds
 * the network, runs it once to warm up (this run also packs the weights) and then times the
 * repeats, wall and process CPU time, with the ctx's FLOP counter giving the work.  Inputs
 * are deterministic pseudo-random values of the right sizes: the timings do not depend on
 * them.  Runs in the child process cmd_bench.c forked for the figure. */
#include "cli/bench.h"
#include "internal/ctx.h"
#include "internal/pack.h"
#include "internal/safetensors.h"
#include "internal/taesd.h"
#include "internal/text_encoder.h"
#include "internal/unet.h"
#include "internal/vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

void bench_model_path(const bench_env *env, const char *stem, char *buf, size_t cap)
{
    if (!strcmp(stem, "taesd"))
        snprintf(buf, cap, "%s", env->taesd);
    else
        snprintf(buf, cap, "%s/%s-random-f16.safetensors", env->models, stem);
}

bool bench_make_novae(const bench_env *env, char *msg, size_t cap)
{
    char src[1024], dst[1024];
    bench_model_path(env, "sd21", src, sizeof src);
    bench_model_path(env, "sd21-novae", dst, sizeof dst);
    struct stat sb;
    if (stat(dst, &sb) == 0 || stat(src, &sb) != 0)
        return true;
    sd_error err = {0};
    sd_st_file *f = NULL;
    if (sd_st_open(src, &f, &err) != SD_OK) {
        snprintf(msg, cap, "%s", err.msg);
        return false;
    }
    const char **names = malloc(f->n * sizeof *names);
    sd_tensor *ts = malloc(f->n * sizeof *ts);
    size_t n = 0;
    for (size_t i = 0; names && ts && i < f->n; i++) {
        const sd_tensor *t = sd_st_tensor(f, f->entries[i].name);
        if (t && strncmp(f->entries[i].name, "first_stage_model.", 18) != 0) {
            names[n] = f->entries[i].name;
            ts[n++] = *t;
        }
    }
    bool ok = names && ts &&
              sd_st_write(dst, names, ts, n, f->metadata_json, &err) == SD_OK;
    if (!ok)
        snprintf(msg, cap, "%s", names && ts ? err.msg : "out of memory");
    free(names);
    free(ts);
    sd_st_close(f);
    return ok;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static void fill_random(float *x, size_t n, float lo, float hi, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = lo + (hi - lo) * (float)(s >> 40) * (1.0f / 16777216.0f);
    }
}

static void fail(bench_result *r, int status, const char *msg)
{
    r->status = status;
    snprintf(r->msg, sizeof r->msg, "%s", msg);
}

/* A network call timed by time_runs. */
typedef sd_status (*run_fn)(void *arg, sd_error *err);

static void time_runs(sd_ctx *ctx, int repeats, run_fn fn, void *arg, bench_result *r)
{
    sd_error err = {0};
    uint64_t f0 = ctx->flops;
    double t0 = now();
    if (fn(arg, &err) != SD_OK) {
        fail(r, 1, err.msg);
        return;
    }
    r->first_wall = now() - t0;
    r->gflop = (double)(ctx->flops - f0) * 1e-9;
    r->runs = repeats < BENCH_MAX_RUNS ? repeats : BENCH_MAX_RUNS;
    for (int i = 0; i < r->runs; i++) {
        double w = now(), c = cpu_now();
        if (fn(arg, &err) != SD_OK) {
            fail(r, 1, err.msg);
            return;
        }
        r->wall[i] = now() - w;
        r->cpu[i] = cpu_now() - c;
    }
    r->pack_mb = (double)sd_pack_total_bytes() / 1048576.0;
    r->status = 0;
}

/* ---- text encoder ------------------------------------------------------------------------ */

typedef struct text_run {
    sd_ctx *ctx;
    const sd_model *m;
    int32_t *ids;
    int batch;
    float *out;
} text_run;

static sd_status text_call(void *arg, sd_error *err)
{
    text_run *t = arg;
    return sd_text_encode(t->ctx, t->m, t->ids, NULL, t->batch, 0, t->out, err);
}

static void run_text(sd_ctx *ctx, const sd_model *m, const bench_fig *f, int repeats,
                     bench_result *r)
{
    int hidden = sd_text_hidden_size(m);
    text_run t = {.ctx = ctx, .m = m, .batch = f->batch};
    t.ids = malloc((size_t)f->batch * SD_TEXT_WINDOW * sizeof *t.ids);
    t.out = malloc((size_t)f->batch * SD_TEXT_WINDOW * (size_t)(hidden > 0 ? hidden : 1) *
                   sizeof *t.out);
    if (hidden <= 0 || !t.ids || !t.out) {
        fail(r, 1, hidden <= 0 ? "the model has no text encoder" : "out of memory");
    } else {
        /* a prompt of 20 tokens then end-of-text padding, per window */
        uint64_t s = 7;
        for (int b = 0; b < f->batch; b++)
            for (int i = 0; i < SD_TEXT_WINDOW; i++) {
                s = s * 6364136223846793005ULL + 1;
                int32_t id = i == 0 ? 49406 : i <= 20 ? (int32_t)(300 + (s >> 33) % 40000)
                                                     : 49407;
                t.ids[b * SD_TEXT_WINDOW + i] = id;
            }
        time_runs(ctx, repeats, text_call, &t, r);
    }
    free(t.ids);
    free(t.out);
}

/* ---- UNet --------------------------------------------------------------------------------- */

typedef struct unet_run {
    sd_ctx *ctx;
    sd_unet *u;
    sd_unet_args a;           /* points at x, c, t */
    float *x, *c, *t, *out;   /* owned */
} unet_run;

static sd_status unet_call(void *arg, sd_error *err)
{
    unet_run *u = arg;
    return sd_unet_forward(u->ctx, u->u, &u->a, u->out, err);
}

/* The UNet of m with deterministic inputs for batch B at image size `size`: u->a, u->out
 * allocated (free with unet_done).  Returns false (r failed) on error. */
static bool unet_setup(sd_ctx *ctx, const sd_model *m, int B, int size, unet_run *u,
                       size_t *n_out, bench_result *r)
{
    sd_error err = {0};
    sd_unet *net = NULL;
    memset(u, 0, sizeof *u);
    if (sd_unet_new(m, &net, &err) != SD_OK) {
        fail(r, 1, err.msg);
        return false;
    }
    sd_unet_info info;
    sd_unet_get_info(net, &info);
    int h = size / 8, L = SD_TEXT_WINDOW;
    size_t nx = (size_t)B * (size_t)info.in_channels * (size_t)(h * h);
    size_t nc = (size_t)B * L * (size_t)info.context_dim;
    *n_out = (size_t)B * (size_t)info.out_channels * (size_t)(h * h);
    float *x = malloc(nx * sizeof *x), *c = malloc(nc * sizeof *c);
    float *t = malloc((size_t)B * sizeof *t);
    *u = (unet_run){.ctx = ctx, .u = net, .x = x, .c = c, .t = t,
                    .out = malloc(*n_out * sizeof(float)),
                    .a = {.batch = B, .height = h, .width = h, .x = x, .timesteps = t,
                          .context = c, .ctx_len = L}};
    if (!x || !c || !t || !u->out) {
        fail(r, 1, "out of memory");
        return false;
    }
    fill_random(x, nx, -1.5f, 1.5f, 1);
    fill_random(c, nc, -1.0f, 1.0f, 2);
    for (int b = 0; b < B; b++)
        t[b] = 500.0f;
    return true;
}

static void unet_done(unet_run *u)
{
    free(u->x);
    free(u->c);
    free(u->t);
    free(u->out);
    sd_unet_free(u->u);
}

static void run_unet(sd_ctx *ctx, const sd_model *m, const bench_fig *f, int repeats,
                     bench_result *r)
{
    unet_run ur;
    size_t n;
    if (unet_setup(ctx, m, f->batch, f->size, &ur, &n, r))
        time_runs(ctx, repeats, unet_call, &ur, r);
    unet_done(&ur);
}

/* One evaluation in float32 and one in bf16, each with its own ctx and model load (so only
 * one set of packed weights is alive at a time); r->rel_l2 compares the outputs. */
static void run_unet_error(const char *path, const bench_env *env, const bench_fig *f,
                           bench_result *r)
{
    float *out[2] = {NULL, NULL};
    size_t n = 0;
    for (int i = 0; i < 2 && r->status == 0; i++) {
        sd_error err = {0};
        sd_ctx_params cp = sd_ctx_params_default();
        cp.n_threads = env->threads;
        cp.precision = i == 0 ? SD_PRECISION_FP32 : SD_PRECISION_BF16;
        sd_ctx *ctx = NULL;
        sd_model *m = NULL;
        unet_run ur = {0};
        if (sd_ctx_new(&cp, &ctx, &err) != SD_OK || sd_model_load(ctx, path, &m, &err) != SD_OK)
            fail(r, 1, err.msg);
        else if (unet_setup(ctx, m, f->batch, f->size, &ur, &n, r)) {
            double t0 = now();
            if (unet_call(&ur, &err) != SD_OK)
                fail(r, 1, err.msg);
            r->wall[i] = now() - t0;
            r->gflop = (double)ctx->flops * 1e-9;
            out[i] = ur.out;
            ur.out = NULL;
            if (i == 1)
                snprintf(r->kernel, sizeof r->kernel, "%s", sd_ctx_matmul_name(ctx));
        }
        unet_done(&ur);
        sd_model_free(m);
        sd_ctx_free(ctx);
    }
    if (r->status == 0) {
        double d = 0, s = 0;
        for (size_t k = 0; k < n; k++) {
            d += ((double)out[1][k] - out[0][k]) * ((double)out[1][k] - out[0][k]);
            s += (double)out[0][k] * out[0][k];
        }
        r->rel_l2 = s > 0 ? sqrt(d / s) : sqrt(d);
        r->runs = 2;
    }
    free(out[0]);
    free(out[1]);
}

/* ---- VAE and TAESD -------------------------------------------------------------------------- */

typedef struct ae_run {
    sd_ctx *ctx;
    const sd_model *m;
    bench_kind kind;
    int h;                   /* latent side */
    float *lat, *img, *logvar;
} ae_run;

static sd_status ae_call(void *arg, sd_error *err)
{
    ae_run *a = arg;
    int H = 8 * a->h;
    switch (a->kind) {
    case BENCH_VAE_DECODE:
        return sd_vae_decode(a->ctx, a->m, a->lat, a->h, a->h, NULL, a->img, err);
    case BENCH_VAE_ENCODE:
        return sd_vae_encode(a->ctx, a->m, a->img, H, H, NULL, a->lat, a->logvar, err);
    default:
        return sd_taesd_decode(a->ctx, a->m, a->lat, a->h, a->h, a->img, err);
    }
}

static void run_autoencoder(sd_ctx *ctx, const sd_model *m, const bench_fig *f, int repeats,
                            bench_result *r)
{
    int h = f->size / 8;
    size_t nl = (size_t)4 * h * h, ni = (size_t)3 * f->size * f->size;
    ae_run a = {.ctx = ctx, .m = m, .kind = f->kind, .h = h, .lat = malloc(nl * sizeof(float)),
                .img = malloc(ni * sizeof(float)), .logvar = malloc(nl * sizeof(float))};
    if (!a.lat || !a.img || !a.logvar) {
        fail(r, 1, "out of memory");
    } else {
        fill_random(a.lat, nl, -3.0f, 3.0f, 3);
        fill_random(a.img, ni, f->kind == BENCH_VAE_ENCODE ? -1.0f : 0.0f, 1.0f, 4);
        time_runs(ctx, repeats, ae_call, &a, r);
    }
    free(a.lat);
    free(a.img);
    free(a.logvar);
}

/* ---- whole txt2img runs ------------------------------------------------------------------------ */

typedef struct gen_watch {
    double t0;               /* when sd_generate was called */
    double start[4];         /* seconds after t0 at which each sd_phase was first seen */
    int steps;
} gen_watch;

static bool gen_progress(const sd_progress *p, void *user)
{
    gen_watch *g = user;
    if ((unsigned)p->phase < 4 && g->start[p->phase] < 0)
        g->start[p->phase] = now() - g->t0;
    g->steps = p->n_steps;
    return true;
}

/* A generation as a host runs it: ctx, model load(s), sd_generate; timed as one run. */
static void run_txt2img(const char *path, const bench_env *env, const bench_fig *f,
                        bench_result *r)
{
    double t0 = now(), c0 = cpu_now();
    sd_error err = {0};
    sd_ctx_params cp = sd_ctx_params_default();
    cp.n_threads = env->threads;
    cp.precision = f->fp32 ? SD_PRECISION_FP32 : SD_PRECISION_BF16;
    sd_ctx *ctx = NULL;
    sd_model *m = NULL, *taesd = NULL;
    sd_gen_result res = {0};
    if (sd_ctx_new(&cp, &ctx, &err) != SD_OK || sd_model_load(ctx, path, &m, &err) != SD_OK ||
        (f->taesd && sd_model_load(ctx, env->taesd, &taesd, &err) != SD_OK)) {
        fail(r, 1, err.msg);
    } else {
        sd_gen_params p = sd_gen_params_default(SD_TASK_TXT2IMG);
        p.prompt = "a photograph of an astronaut riding a horse on the moon, detailed";
        p.sampler = SD_SAMPLER_EULER;
        p.steps = f->steps;
        p.cfg = f->steps == 1 ? 1.0f : 7.5f; /* 1 step: guidance off (SD-Turbo style) */
        p.seed = 1;
        p.width = p.height = p.resolution = f->size;
        p.taesd = taesd;
        gen_watch g = {.start = {-1, -1, -1, -1}};
        p.progress = gen_progress;
        p.progress_user = &g;
        double load = now() - t0;
        g.t0 = now();
        if (sd_generate(ctx, m, &p, &res, &err) != SD_OK) {
            fail(r, 1, err.msg);
        } else {
            double end = now() - g.t0;
            r->runs = 1;
            r->wall[0] = r->first_wall = now() - t0;
            r->cpu[0] = cpu_now() - c0;
            r->gflop = (double)ctx->flops * 1e-9;
            r->pack_mb = (double)sd_pack_total_bytes() / 1048576.0;
            /* phases: load, then text -> sample -> decode as the callbacks saw them */
            double ts = g.start[SD_PHASE_SAMPLE], td = g.start[SD_PHASE_DECODE];
            snprintf(r->msg, sizeof r->msg, "load %.2f s, text %.2f s, %d steps %.2f s, "
                     "decode %.2f s", load, ts >= 0 ? ts : 0, g.steps,
                     ts >= 0 && td >= 0 ? td - ts : 0, td >= 0 ? end - td : 0);
            snprintf(r->kernel, sizeof r->kernel, "%s", sd_ctx_matmul_name(ctx));
        }
    }
    sd_gen_result_free(&res);
    sd_model_free(taesd);
    sd_model_free(m);
    sd_ctx_free(ctx);
}

/* ---- entry -------------------------------------------------------------------------------- */

void bench_run(const bench_fig *f, const bench_env *env, bench_result *r)
{
    memset(r, 0, sizeof *r);
    int repeats = f->repeats ? f->repeats : env->repeats;
    char path[1024];
    bench_model_path(env, f->model, path, sizeof path);
    if (f->kind == BENCH_UNET_ERROR) {
        run_unet_error(path, env, f, r);
        return;
    }
    if (f->kind == BENCH_TXT2IMG) {
        run_txt2img(path, env, f, r);
        return;
    }
    sd_error err = {0};
    sd_ctx_params cp = sd_ctx_params_default();
    cp.n_threads = env->threads;
    cp.precision = f->fp32 ? SD_PRECISION_FP32 : SD_PRECISION_BF16;
    sd_ctx *ctx = NULL;
    sd_model *m = NULL;
    if (sd_ctx_new(&cp, &ctx, &err) != SD_OK || sd_model_load(ctx, path, &m, &err) != SD_OK) {
        fail(r, 1, err.msg);
    } else {
        snprintf(r->kernel, sizeof r->kernel, "%s", sd_ctx_matmul_name(ctx));
        if (f->kind == BENCH_TEXT) { /* text_encoder.c runs on the sgemm path */
            snprintf(r->kernel, sizeof r->kernel, "%.*s openblas fp32",
                     (int)strcspn(sd_ctx_matmul_name(ctx), " "), sd_ctx_matmul_name(ctx));
            run_text(ctx, m, f, repeats, r);
        }
        else if (f->kind == BENCH_UNET)
            run_unet(ctx, m, f, repeats, r);
        else
            run_autoencoder(ctx, m, f, repeats, r);
    }
    sd_model_free(m);
    sd_ctx_free(ctx);
}
