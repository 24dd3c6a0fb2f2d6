/* cli/cmd_unet.c - `sd unet`: runs a model's UNet on the inputs of a golden case file
 * (tests/data/<model>/unet.safetensors) and reports, per timestep, how far the result is
 * from the reference output, so the UNet can be checked (and timed) on any model file from
 * the command line.  Exit status 1 when any timestep is outside the golden tolerance. */
#include "cli/cli.h"
#include "internal/ops.h"
#include "internal/safetensors.h"
#include "internal/unet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char NAME[] = "unet";

/* Golden tolerance for one network call (tests/data README): |c - ref| <= RTOL * max|ref| +
 * ATOL. */
#define RTOL 1e-4
#define ATOL 1e-5

typedef struct golden {
    float *sample, *timesteps, *context, *out;
    int64_t B, C, H, W, T, L, D, OC;
} golden;

static void golden_free(golden *g)
{
    free(g->sample);
    free(g->timesteps);
    free(g->context);
    free(g->out);
}

/* Copy tensor `name` of f (expected ndim) into a new float array. */
static float *read_f32(sd_ctx *ctx, const sd_st_file *f, const char *name, int ndim,
                       const sd_tensor **t, sd_error *err)
{
    if (sd_st_get(f, name, t, err) != SD_OK)
        return NULL;
    if ((*t)->ndim != ndim) {
        sd_fail(err, SD_ERR_FORMAT, "case tensor '%s' has %d dimensions, expected %d", name,
                (*t)->ndim, ndim);
        return NULL;
    }
    int64_t n = sd_tensor_numel(*t);
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    if (!p) {
        sd_fail(err, SD_ERR_NOMEM, "out of memory reading '%s'", name);
        return NULL;
    }
    if (sd_tensor_to_f32(ctx, *t, p, n, err) != SD_OK) {
        free(p);
        return NULL;
    }
    return p;
}

/* The reference `out` [T, B, OC, H, W] has more dimensions than an sd_tensor holds, so it
 * is copied from its stored bytes.  n floats; float32 little-endian like the host. */
static sd_status read_out(const char *path, const sd_st_file *f, size_t n, float *dst,
                          sd_error *err)
{
    const sd_st_entry *e = sd_st_find(f, "out");
    if (!e || strcmp(e->dtype_name, "F32") || e->ndim != 5 || e->nbytes != n * sizeof *dst)
        return sd_fail(err, SD_ERR_FORMAT, "%s: no F32 tensor 'out' of %zu values", path, n);
    memcpy(dst, e->raw, e->nbytes);
    return SD_OK;
}

static sd_status load_case(sd_ctx *ctx, const char *path, golden *g, sd_error *err)
{
    sd_st_file *f = NULL;
    sd_status st = sd_st_open(path, &f, err);
    if (st != SD_OK)
        return st;
    const sd_tensor *ts, *tt, *tc;
    if (!(g->sample = read_f32(ctx, f, "sample", 4, &ts, err)) ||
        !(g->timesteps = read_f32(ctx, f, "timesteps", 1, &tt, err)) ||
        !(g->context = read_f32(ctx, f, "encoder_hidden_states", 3, &tc, err))) {
        st = err->code;
        goto out;
    }
    g->B = ts->shape[0], g->C = ts->shape[1], g->H = ts->shape[2], g->W = ts->shape[3];
    g->T = tt->shape[0];
    g->L = tc->shape[1], g->D = tc->shape[2];
    const sd_st_entry *e = sd_st_find(f, "out");
    int64_t per_oc = g->T * g->B * g->H * g->W;
    if (tc->shape[0] != g->B || g->B < 1 || g->B > 1024 || g->L < 1 || g->L > 1 << 20 ||
        g->T < 1 || per_oc < 1 || !e || e->nbytes % ((size_t)per_oc * sizeof(float))) {
        st = sd_fail(err, SD_ERR_FORMAT, "%s: inconsistent case shapes", path);
        goto out;
    }
    g->OC = (int64_t)(e->nbytes / sizeof(float)) / per_oc;
    size_t n = (size_t)(g->OC * per_oc);
    if (!(g->out = malloc(n * sizeof *g->out))) {
        st = sd_fail(err, SD_ERR_NOMEM, "out of memory reading 'out'");
        goto out;
    }
    st = read_out(path, f, n, g->out, err);
out:
    sd_st_close(f);
    return st;
}

static int usage_fail(const char *msg)
{
    return sd_cli_fail(NAME, "%s\nusage: sd unet -m MODEL --case CASE.safetensors [-t THREADS] "
                       "[--ref]", msg);
}

static int run(int argc, char **argv)
{
    const char *model_path = NULL, *case_path = NULL;
    long threads = 0;
    bool use_ref = false;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc)
            model_path = argv[++i];
        else if (!strcmp(argv[i], "--case") && i + 1 < argc)
            case_path = argv[++i];
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) {
            if (sd_cli_parse_threads(NAME, "-t", argv[++i], &threads))
                return 1;
        } else if (!strcmp(argv[i], "--ref"))
            use_ref = true;
        else
            return usage_fail("unknown or incomplete argument");
    }
    if (!model_path || !case_path)
        return usage_fail("-m and --case are required");

    sd_error err = {0};
    sd_ctx *ctx;
    sd_model *model;
    sd_unet *unet = NULL;
    golden g = {0};
    float *out = NULL;
    int rc = 1;
    if (sd_cli_open_model(NAME, model_path, threads, use_ref, SD_PRECISION_FP32, &ctx,
                          &model))
        return 1;
    if (sd_unet_new(model, &unet, &err) || load_case(ctx, case_path, &g, &err)) {
        rc = sd_cli_fail_err(NAME, &err);
        goto out;
    }
    sd_unet_info info;
    sd_unet_get_info(unet, &info);
    if (g.C != info.in_channels || g.OC != info.out_channels || g.D != info.context_dim) {
        rc = sd_cli_fail(NAME, "case is for a UNet with %lld in / %lld out channels and context "
                         "width %lld; the model has %d / %d / %d", (long long)g.C,
                         (long long)g.OC, (long long)g.D, info.in_channels, info.out_channels,
                         info.context_dim);
        goto out;
    }
    printf("UNet: %d -> %d channels, width %d, %d levels, %d transformers (%s projections), "
           "context %d; kernels %s\n", info.in_channels, info.out_channels, info.model_channels,
           info.levels, info.n_transformers, info.linear_proj ? "linear" : "1x1 conv",
           info.context_dim, use_ref ? "scalar (--ref)" : sd_kernel_variant());

    size_t per = (size_t)(g.B * g.OC * g.H * g.W);
    out = malloc(per * sizeof *out);
    float *tvec = malloc((size_t)g.B * sizeof *tvec);
    if (!out || !tvec) {
        free(tvec);
        rc = sd_cli_fail(NAME, "out of memory");
        goto out;
    }
    rc = 0;
    for (int64_t i = 0; i < g.T; i++) {
        for (int64_t b = 0; b < g.B; b++)
            tvec[b] = g.timesteps[i];
        sd_unet_args a = {.batch = (int)g.B, .height = (int)g.H, .width = (int)g.W,
                          .x = g.sample, .timesteps = tvec, .context = g.context,
                          .ctx_len = (int)g.L};
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (sd_unet_forward(ctx, unet, &a, out, &err)) {
            rc = sd_cli_fail_err(NAME, &err);
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        const float *ref = g.out + (size_t)i * per;
        double maxref = 0, maxerr = 0;
        bool ok = true;
        for (size_t k = 0; k < per; k++)
            maxref = fmax(maxref, fabs(ref[k]));
        for (size_t k = 0; k < per; k++) {
            double d = fabs((double)out[k] - ref[k]);
            if (!(d <= RTOL * maxref + ATOL))
                ok = false;
            maxerr = isnan(d) ? INFINITY : fmax(maxerr, d);
        }
        printf("t=%-10.4f max|err| %.3g  rel %.3g  (max|ref| %.3g, tol %.3g)  %.3f s  %s\n",
               g.timesteps[i], maxerr, maxref > 0 ? maxerr / maxref : maxerr, maxref,
               RTOL * maxref + ATOL,
               (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec),
               ok ? "ok" : "FAIL");
        if (!ok)
            rc = 1;
    }
    free(tvec);
out:
    free(out);
    golden_free(&g);
    sd_unet_free(unet);
    sd_model_free(model);
    sd_ctx_free(ctx);
    return rc;
}

const sd_cli_cmd sd_cli_cmd_unet = {
    "unet", "-m MODEL --case CASE.safetensors [-t THREADS] [--ref]",
    "run the UNet on a golden case file and report the error per timestep", run};
