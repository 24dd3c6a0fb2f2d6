/* tests/t_precision.c - the bf16 precision mode against float32 on the golden tiny models:
 * every timestep of the golden UNet cases of tiny-sd15 and tiny-sd2v, and the text encoders
 * on a prompt window, each run once in float32 and once in bf16 precision.  The float32 run
 * must match the golden reference (README tolerance: 1e-4 max|ref| + 1e-5), and the bf16 run
 * must stay within a relative L2 error of BF16_REL_L2 of the float32 one.  On a CPU with a
 * native bf16 dot product the bf16 UNet run must also differ from the float32 one (else the
 * mode did nothing and the bound would be vacuous).  The text encoder runs in float32 in
 * both modes (text_encoder.c says why): its results must be identical.  Last, AUTO
 * precision follows $SD_PRECISION (unset/auto/bf16: bf16; fp32: float32; else refused). */
#include "harness.h"
#include "case_util.h"
#include "internal/ctx.h"
#include "internal/kernels.h"
#include "internal/ops.h"
#include "internal/safetensors.h"
#include "internal/text_encoder.h"
#include "internal/unet.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BF16_REL_L2 1e-2
#define GOLD_RTOL 1e-4
#define GOLD_ATOL 1e-5

static sd_ctx *new_ctx(sd_precision prec)
{
    sd_ctx_params cp = sd_ctx_params_default();
    cp.n_threads = 2;
    cp.precision = prec;
    sd_ctx *ctx = NULL;
    sd_error err = {0};
    CHECK(sd_ctx_new(&cp, &ctx, &err) == SD_OK, "ctx: %s", err.msg);
    return ctx;
}

/* The golden `out` [T, B, OC, H, W] (5-D, so not a usable tensor: its stored bytes). */
static const float *golden_out(const sd_st_file *f, size_t n)
{
    const sd_st_entry *e = sd_st_find(f, "out");
    if (!e || strcmp(e->dtype_name, "F32") || e->nbytes != n * sizeof(float))
        return NULL;
    return e->raw;
}

static void test_unet(const char *model, sd_ctx *fp, sd_ctx *bf)
{
    char rel[128];
    snprintf(rel, sizeof rel, "%s/unet.safetensors", model);
    const char *cpath = t_data(rel);
    sd_st_file *f = NULL;
    sd_error err = {0};
    if (sd_st_open(cpath, &f, &err) != SD_OK) {
        CHECK(0, "%s: %s", cpath, err.msg);
        return;
    }
    const sd_tensor *ts = sd_st_tensor(f, "sample"), *tt = sd_st_tensor(f, "timesteps");
    const sd_tensor *tc = sd_st_tensor(f, "encoder_hidden_states");
    float *x = t_case_f32(f, "sample", NULL), *times = t_case_f32(f, "timesteps", NULL);
    float *c = t_case_f32(f, "encoder_hidden_states", NULL);
    snprintf(rel, sizeof rel, "%s/model-f16.safetensors", model);
    sd_model *m = NULL;
    sd_unet *u = NULL;
    bool ok = ts->ndim == 4 && tc->ndim == 3 &&
              sd_model_load(NULL, t_data(rel), &m, &err) == SD_OK &&
              sd_unet_new(m, &u, &err) == SD_OK;
    CHECK(ok, "%s: case and model: %s", model, err.msg);
    int B = ok ? (int)ts->shape[0] : 0, T = ok ? (int)tt->shape[0] : 0;
    size_t per = ok ? (size_t)(B * 4 * ts->shape[2] * ts->shape[3]) : 0;
    const float *gold = ok ? golden_out(f, (size_t)T * per) : NULL;
    CHECK(!ok || gold, "%s: golden out", model);
    float *yf = malloc((per + 1) * sizeof *yf), *yb = malloc((per + 1) * sizeof *yb);
    for (int i = 0; gold && i < T; i++) {
        float tv[16];
        for (int b = 0; b < B && b < 16; b++)
            tv[b] = times[i];
        sd_unet_args a = {.batch = B, .height = (int)ts->shape[2], .width = (int)ts->shape[3],
                          .x = x, .timesteps = tv, .context = c, .ctx_len = (int)tc->shape[1]};
        bool run = B <= 16 && sd_unet_forward(fp, u, &a, yf, &err) == SD_OK &&
                   sd_unet_forward(bf, u, &a, yb, &err) == SD_OK;
        CHECK(run, "%s t=%g: %s", model, times[i], err.msg);
        if (!run)
            break;
        const float *ref = gold + (size_t)i * per;
        double maxref = 0, maxerr = 0;
        for (size_t k = 0; k < per; k++) {
            maxref = fmax(maxref, fabs(ref[k]));
            maxerr = fmax(maxerr, fabs((double)yf[k] - ref[k]));
        }
        double e = t_rel_l2(yb, yf, per), eg = t_rel_l2(yb, ref, per);
        CHECK(maxerr <= GOLD_RTOL * maxref + GOLD_ATOL, "%s t=%g fp32: max err %.3g (max|ref| "
              "%.3g)", model, times[i], maxerr, maxref);
        CHECK(e <= BF16_REL_L2, "%s t=%g: bf16 vs fp32 relative L2 %.3g > %g", model, times[i],
              e, BF16_REL_L2);
        CHECK(!bf->bf16 || e > 0, "%s t=%g: bf16 run identical to fp32", model, times[i]);
        fprintf(stderr, "%s %s UNet t=%-8g bf16 vs fp32 rel L2 %.2e (vs golden %.2e), fp32 max "
                "err %.2e of max|ref| %.3g\n", e <= BF16_REL_L2 ? "ok  " : "FAIL", model,
                times[i], e, eg, maxerr, maxref);
    }
    free(yf), free(yb), free(x), free(times), free(c);
    sd_unet_free(u);
    sd_model_free(m);
    sd_st_close(f);
}

static void test_text(const char *model, sd_ctx *fp, sd_ctx *bf)
{
    char rel[128];
    snprintf(rel, sizeof rel, "%s/model-f16.safetensors", model);
    sd_model *m = NULL;
    sd_error err = {0};
    if (sd_model_load(NULL, t_data(rel), &m, &err) != SD_OK) {
        CHECK(0, "%s: %s", model, err.msg);
        return;
    }
    int hidden = sd_text_hidden_size(m);
    int32_t ids[2 * SD_TEXT_WINDOW];
    for (int i = 0; i < 2 * SD_TEXT_WINDOW; i++) {
        int p = i % SD_TEXT_WINDOW;
        ids[i] = p == 0 ? 49406 : p < 12 + i / SD_TEXT_WINDOW ? 320 + 37 * i : 49407;
    }
    size_t n = (size_t)2 * SD_TEXT_WINDOW * (size_t)hidden;
    float *yf = malloc(n * sizeof *yf), *yb = malloc(n * sizeof *yb);
    bool run = hidden > 0 && sd_text_encode(fp, m, ids, NULL, 2, 0, yf, &err) == SD_OK &&
               sd_text_encode(bf, m, ids, NULL, 2, 0, yb, &err) == SD_OK;
    CHECK(run, "%s text: %s", model, err.msg);
    if (run) {
        double e = t_rel_l2(yb, yf, n);
        CHECK(e == 0, "%s text: the bf16 ctx's text encoder differs from fp32 (rel L2 %.3g)",
              model, e);
        CHECK(bf->bf16 == (sd_kernels_get()->native_bf16 != 0), "%s text: bf16 mode restored",
              model);
    }
    free(yf), free(yb);
    sd_model_free(m);
}

/* A ctx of AUTO precision under SD_PRECISION=value (NULL: unset): its bf16 flag, or -1 when
 * sd_ctx_new refused it (with SD_ERR_INVALID_ARG naming the variable). */
static int auto_bf16(const char *value)
{
    if (value)
        setenv("SD_PRECISION", value, 1);
    else
        unsetenv("SD_PRECISION");
    sd_ctx_params cp = sd_ctx_params_default();
    cp.n_threads = 1;
    cp.precision = SD_PRECISION_AUTO;
    sd_ctx *ctx = NULL;
    sd_error err = {0};
    sd_status st = sd_ctx_new(&cp, &ctx, &err);
    unsetenv("SD_PRECISION");
    if (st != SD_OK) {
        CHECK(st == SD_ERR_INVALID_ARG && strstr(err.msg, "SD_PRECISION"),
              "SD_PRECISION=%s: refused with %s '%s'", value, sd_status_str(st), err.msg);
        return -1;
    }
    int bf = ctx->bf16;
    sd_ctx_free(ctx);
    return bf;
}

static void test_auto(void)
{
    int native = sd_kernels_get()->native_bf16;
    CHECK(auto_bf16(NULL) == native, "AUTO, SD_PRECISION unset: bf16 where native");
    CHECK(auto_bf16("auto") == native, "SD_PRECISION=auto: bf16 where native");
    CHECK(auto_bf16("bf16") == native, "SD_PRECISION=bf16: bf16 where native");
    CHECK(auto_bf16("fp32") == 0, "SD_PRECISION=fp32: float32");
    CHECK(auto_bf16("half") == -1, "SD_PRECISION=half: refused");
}

int main(void)
{
    test_auto();
    sd_ctx *fp = new_ctx(SD_PRECISION_FP32), *bf = new_ctx(SD_PRECISION_BF16);
    if (fp && bf) {
        printf("t_precision: fp32 ctx %s, bf16 ctx %s\n", sd_ctx_matmul_name(fp),
               sd_ctx_matmul_name(bf));
        CHECK(bf->bf16 == sd_kernels_get()->native_bf16, "bf16 mode follows the CPU");
        test_unet("tiny-sd15", fp, bf);
        test_unet("tiny-sd2v", fp, bf);
        test_text("tiny-sd15", fp, bf);
        test_text("tiny-sd2v", fp, bf);
    }
    sd_ctx_free(fp);
    sd_ctx_free(bf);
    return t_summary("t_precision");
}
