/* tests/t_pack.c - the packed-weight cache (internal/pack.h) as the ops use it: a model's
 * weight is packed on its first use and never again (the cache's byte count grows once per
 * weight and layout), in float32, bf16 and Winograd layouts side by side; two threads with
 * their own ctxs racing to use the same unpacked weight get one pack and the same results; an
 * allocation failure while packing leaks nothing and a later call packs; tensors outside every
 * model (a test's own) are not cached; freeing the model frees its packs.  Under a kernel
 * table without packed micro-kernels (SD_SIMD=avx2 or scalar: sgemm on converted blocks)
 * nothing may be packed at all. */
#include "harness.h"
#include "internal/ctx.h"
#include "internal/kernels.h"
#include "internal/model.h"
#include "internal/ops.h"
#include "internal/pack.h"

#include <pthread.h>
#include <string.h>

static const char *W_NAME = "model.diffusion_model.input_blocks.1.1.proj_in.weight";
static const char *C_NAME = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight";

static sd_ctx *new_ctx(sd_precision prec, int threads)
{
    sd_ctx_params cp = sd_ctx_params_default();
    cp.precision = prec;
    cp.n_threads = threads;
    sd_ctx *ctx = NULL;
    sd_error err = {0};
    CHECK(sd_ctx_new(&cp, &ctx, &err) == SD_OK, "ctx: %s", err.msg);
    return ctx;
}

static float *input(size_t n)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((i * 7919) % 2001) / 1000.0f - 1.0f;
    return x;
}

/* y = x W^T through sd_op_linear; the weight is [N, K] or [N, K, 1, 1] */
static sd_status run_linear(sd_ctx *ctx, const sd_tensor *w, const float *x, int64_t M,
                            float *y)
{
    sd_error err = {0};
    sd_status st = sd_op_linear(ctx, x, M, w->shape[1], w, NULL, y, &err);
    CHECK(st == SD_OK || st == SD_ERR_NOMEM, "linear: %s", err.msg);
    return st;
}

static void test_once(const sd_model *m)
{
    const sd_tensor *w = sd_model_tensor(m, W_NAME), *cw = sd_model_tensor(m, C_NAME);
    CHECK(w && cw, "tiny model tensors %s, %s", W_NAME, C_NAME);
    if (!w || !cw)
        return;
    sd_ctx *fp = new_ctx(SD_PRECISION_FP32, 2), *bf = new_ctx(SD_PRECISION_BF16, 2);
    const int64_t M = 40, K = w->shape[1], N = w->shape[0];
    float *x = input((size_t)(M * K)), *y1 = malloc((size_t)(M * N) * 4);
    float *y2 = malloc((size_t)(M * N) * 4);
    size_t b0 = sd_pack_total_bytes();
    run_linear(fp, w, x, M, y1);
    size_t b1 = sd_pack_total_bytes();
    run_linear(fp, w, x, M, y2);
    size_t b2 = sd_pack_total_bytes();
    CHECK(b1 > b0 && b2 == b1, "fp32 pack made once: %zu -> %zu -> %zu bytes", b0, b1, b2);
    CHECK(!memcmp(y1, y2, (size_t)(M * N) * 4), "same result from the cached pack");
    run_linear(bf, w, x, M, y2);
    size_t b3 = sd_pack_total_bytes();
    run_linear(bf, w, x, M, y2);
    size_t b4 = sd_pack_total_bytes();
    /* a bf16 layout of its own (half the float32 one) when the CPU multiplies in bf16 */
    size_t want = bf->bf16 ? (b1 - b0) / 2 : 0;
    CHECK(b3 - b2 == want && b4 == b3, "bf16 pack made once beside the fp32 one: %zu, %zu "
          "bytes (want %zu)", b3 - b2, b4 - b3, want);
    /* a convolution's weight: its own layout */
    int64_t C = cw->shape[1], O = cw->shape[0];
    float *cx = input((size_t)(2 * C * 64)), *cy = malloc((size_t)(2 * O * 64) * 4);
    sd_conv2d_params p = {.stride = 1, .pad_top = 1, .pad_left = 1, .pad_bottom = 1,
                          .pad_right = 1};
    sd_error err = {0};
    for (int rep = 0; rep < 3; rep++)
        CHECK(sd_op_conv2d(fp, cx, 2, (int)C, 8, 8, cw, NULL, &p, cy, &err) == SD_OK, "conv: %s",
              err.msg);
    size_t b5 = sd_pack_total_bytes();
    CHECK(b5 - b4 >= (size_t)(O * C * 9) * 4 && b5 - b4 < (size_t)(O + 8) * C * 9 * 4,
          "conv pack (%zu bytes for a %lld x %lld x 3 x 3 weight) made once", b5 - b4,
          (long long)O, (long long)C);
    /* ... and the same weight as Winograd F(4x4, 3x3): 36 planes of [O][C] beside it */
    fp->winograd = SD_WINOGRAD_ALWAYS;
    float *cy2 = malloc((size_t)(2 * O * 64) * 4);
    for (int rep = 0; rep < 3; rep++)
        CHECK(sd_op_conv2d(fp, cx, 2, (int)C, 8, 8, cw, NULL, &p, rep ? cy2 : cy, &err) == SD_OK,
              "Winograd conv: %s", err.msg);
    size_t b6 = sd_pack_total_bytes(), wino = (size_t)(36 * ((O + 7) / 8 * 8) * C) * 4;
    CHECK(!fp->packed || b6 - b5 == wino, "Winograd pack %zu bytes made once (want %zu)",
          b6 - b5, wino);
    CHECK(!memcmp(cy, cy2, (size_t)(2 * O * 64) * 4), "same Winograd result from the cache");
    free(cy2);
    fprintf(stderr, "     packs: fp32 linear %zu B, bf16 linear %zu B, fp32 conv %zu B, "
            "Winograd conv %zu B\n", b1 - b0, b3 - b2, b5 - b4, b6 - b5);
    free(x), free(y1), free(y2), free(cx), free(cy);
    sd_ctx_free(fp);
    sd_ctx_free(bf);
}

/* ---- two threads, two ctxs, one weight ------------------------------------------------------ */

typedef struct racer {
    sd_ctx *ctx;
    const sd_tensor *w;
    const float *x;
    float *y;
    int64_t M;
    sd_status st;
} racer;

static void *race_main(void *vp)
{
    racer *r = vp;
    sd_error err = {0};
    r->st = sd_op_linear(r->ctx, r->x, r->M, r->w->shape[1], r->w, NULL, r->y, &err);
    return NULL;
}

static void test_race(const char *path)
{
    for (int round = 0; round < 4; round++) {
        sd_model *m = NULL;
        sd_error err = {0};
        if (sd_model_load(NULL, path, &m, &err) != SD_OK) {
            CHECK(0, "%s: %s", path, err.msg);
            return;
        }
        const sd_tensor *w = sd_model_tensor(m, W_NAME);
        const int64_t M = 64, K = w->shape[1], N = w->shape[0];
        float *x = input((size_t)(M * K));
        racer r[2];
        pthread_t t[2];
        size_t b0 = sd_pack_total_bytes();
        for (int i = 0; i < 2; i++) {
            r[i] = (racer){.ctx = new_ctx(SD_PRECISION_FP32, 1), .w = w, .x = x, .M = M,
                           .y = malloc((size_t)(M * N) * 4)};
            pthread_create(&t[i], NULL, race_main, &r[i]);
        }
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        size_t b1 = sd_pack_total_bytes();
        CHECK(r[0].st == SD_OK && r[1].st == SD_OK, "racing linears");
        CHECK(!memcmp(r[0].y, r[1].y, (size_t)(M * N) * 4), "racing linears agree");
        CHECK(b1 - b0 == (size_t)(N * K) * 4, "one pack for two racing ctxs: %zu bytes, want "
              "%lld", b1 - b0, (long long)(N * K * 4));
        sd_model_free(m);
        CHECK(sd_pack_total_bytes() == b0, "freeing the model frees its packs");
        for (int i = 0; i < 2; i++) {
            sd_ctx_free(r[i].ctx);
            free(r[i].y);
        }
        free(x);
    }
}

/* ---- allocation failure while packing --------------------------------------------------------- */

static void test_nomem(const sd_model *m)
{
    const sd_tensor *w = sd_model_tensor(m, "model.diffusion_model.out.2.weight");
    CHECK(w != NULL, "conv_out weight");
    if (!w)
        return;
    sd_ctx *ctx = new_ctx(SD_PRECISION_FP32, 2);
    int64_t C = w->shape[1], O = w->shape[0];
    float *x = input((size_t)(C * 36)), *y = malloc((size_t)(O * 36) * 4);
    sd_conv2d_params p = {.stride = 1, .pad_top = 1, .pad_left = 1, .pad_bottom = 1,
                          .pad_right = 1};
    size_t b0 = sd_pack_total_bytes();
    int nomem = 0;
    sd_status st = SD_ERR_NOMEM;
    for (long nth = 1; st == SD_ERR_NOMEM && nth < 100; nth++) {
        sd_error err = {0};
        size_t live = sd_alloc_live_bytes();
        sd_alloc_fail_after(nth, false);
        st = sd_op_conv2d(ctx, x, 1, (int)C, 6, 6, w, NULL, &p, y, &err);
        sd_alloc_fail_after(0, false);
        if (st == SD_ERR_NOMEM) {
            /* nothing leaks: the heap grew by what the cache kept (a pack that was made
             * before a later allocation failed stays, with its entry) */
            nomem++;
            size_t grew = sd_alloc_live_bytes() - live, kept = sd_pack_total_bytes() - b0;
            CHECK(kept ? grew >= kept && grew <= kept + 4096 : grew == 0,
                  "allocation %ld failed: heap +%zu bytes, cache +%zu", nth, grew, kept);
        }
    }
    CHECK(st == SD_OK && nomem > 0, "conv after %d failed allocations: %s", nomem,
          sd_status_str(st));
    CHECK(sd_pack_total_bytes() > b0, "packed once it could allocate");
    free(x), free(y);
    sd_ctx_free(ctx);
}

/* ---- tensors of no model ---------------------------------------------------------------------- */

static void test_uncached(void)
{
    sd_tensor w;
    sd_error err = {0};
    CHECK(sd_tensor_new(SD_DTYPE_F16, 2, (int64_t[]){48, 40}, &w, &err) == SD_OK, "tensor");
    sd_ctx *ctx = new_ctx(SD_PRECISION_FP32, 2);
    float *x = input(10 * 40), *y = malloc(10 * 48 * 4);
    size_t b0 = sd_pack_total_bytes(), live = sd_alloc_live_bytes();
    run_linear(ctx, &w, x, 10, y);
    CHECK(sd_pack_total_bytes() == b0 && sd_alloc_live_bytes() == live,
          "a tensor of no model is packed per call, not cached");
    sd_tensor_free(&w);
    free(x), free(y);
    sd_ctx_free(ctx);
}

/* sgemm path: the ops never pack */
static void test_unpacked_table(const char *path)
{
    sd_model *m = NULL;
    sd_error err = {0};
    CHECK(sd_model_load(NULL, path, &m, &err) == SD_OK, "%s: %s", path, err.msg);
    const sd_tensor *w = m ? sd_model_tensor(m, W_NAME) : NULL;
    if (w) {
        sd_ctx *ctx = new_ctx(SD_PRECISION_BF16, 2);
        float *x = input((size_t)(8 * w->shape[1])), *y = malloc((size_t)(8 * w->shape[0]) * 4);
        run_linear(ctx, w, x, 8, y);
        CHECK(!ctx->packed && sd_pack_total_bytes() == 0, "%s table: nothing packed",
              sd_kernel_variant());
        free(x), free(y);
        sd_ctx_free(ctx);
    }
    sd_model_free(m);
}

int main(void)
{
    const char *path = t_data("tiny-sd15/model-f16.safetensors");
    if (!sd_kernels_get()->packed_f32) {
        printf("t_pack: the %s table runs sgemm, no packed kernels: checking nothing is "
               "packed\n", sd_kernel_variant());
        test_unpacked_table(path);
        return t_summary("t_pack");
    }
    sd_model *m = NULL;
    sd_error err = {0};
    CHECK(sd_model_load(NULL, path, &m, &err) == SD_OK, "%s: %s", path, err.msg);
    if (m) {
        test_once(m);
        test_nomem(m);
        size_t before = sd_pack_total_bytes();
        sd_model_free(m);
        CHECK(before > 0 && sd_pack_total_bytes() == 0, "model freed: %zu -> %zu pack bytes",
              before, sd_pack_total_bytes());
    }
    test_race(path);
    test_uncached();
    return t_summary("t_pack");
}
