/* ctx.c - creating and freeing an sd_ctx: resolve the thread count, start the pool, pick
 * the kernel table. */
#include "internal/ctx.h"
#include "internal/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sd_ctx_params sd_ctx_params_default(void)
{
    return (sd_ctx_params){
        .n_threads = 0,
        .use_ref = false,
        .precision = SD_PRECISION_FP32,
        .log = NULL,
        .log_user = NULL,
    };
}

/* SD_PRECISION_AUTO: BF16 unless $SD_PRECISION asks for fp32 (see PRECISION in sd.h). */
static sd_status resolve_auto(sd_precision *p, sd_error *err)
{
    const char *env = getenv("SD_PRECISION");
    if (!env || !*env || !strcmp(env, "auto") || !strcmp(env, "bf16"))
        *p = SD_PRECISION_BF16;
    else if (!strcmp(env, "fp32"))
        *p = SD_PRECISION_FP32;
    else
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "SD_PRECISION must be fp32, bf16 or auto, not '%.40s'", env);
    return SD_OK;
}

sd_status sd_ctx_new(const sd_ctx_params *p, sd_ctx **out, sd_error *err)
{
    *out = NULL;
    sd_ctx_params params = p ? *p : sd_ctx_params_default();
    if (params.n_threads < 0)
        return sd_fail(err, SD_ERR_INVALID_ARG, "n_threads must be >= 0 (0 = all cores)");
    if (params.precision != SD_PRECISION_FP32 && params.precision != SD_PRECISION_BF16 &&
        params.precision != SD_PRECISION_AUTO)
        return sd_fail(err, SD_ERR_INVALID_ARG, "unknown precision %d", (int)params.precision);
    if (params.precision == SD_PRECISION_AUTO) {
        sd_status st = resolve_auto(&params.precision, err);
        if (st != SD_OK)
            return st;
    }
    sd_ctx *ctx = sd_calloc(1, sizeof *ctx);
    if (!ctx)
        return sd_fail_nomem(err, "context");
    ctx->params = params;
    ctx->n_threads = params.n_threads ? params.n_threads : sd_cpu_count();
    sd_status st = sd_pool_new(ctx->n_threads, &ctx->pool, err);
    if (st != SD_OK) {
        sd_free(ctx);
        return st;
    }
    ctx->kern = params.use_ref ? sd_kernels_ref() : sd_kernels_get();
    ctx->bf16 = params.precision == SD_PRECISION_BF16 && ctx->kern->native_bf16;
    ctx->packed = ctx->kern->packed_f32 || ctx->bf16;
    ctx->winograd = SD_WINOGRAD_AUTO;
    *out = ctx;
    return SD_OK;
}

void sd_ctx_free(sd_ctx *ctx)
{
    if (!ctx)
        return;
    sd_pool_free(ctx->pool);
    sd_free(ctx);
}

int sd_ctx_n_threads(const sd_ctx *ctx)
{
    return ctx->n_threads;
}

const char *sd_ctx_matmul_name(const sd_ctx *ctx)
{
    static const char *const names[SD_ISA_COUNT][3] = {
        {"scalar openblas fp32", "scalar packed fp32", "scalar packed bf16"},
        {"avx2 openblas fp32", "avx2 packed fp32", "avx2 packed bf16"},
        {"avx512 openblas fp32", "avx512 packed fp32", "avx512 packed bf16"},
        {"avx512bf16 openblas fp32", "avx512bf16 packed fp32", "avx512bf16 packed bf16"},
    };
    return names[ctx->kern->isa][ctx->bf16 ? 2 : ctx->packed ? 1 : 0];
}

void sd_log(const sd_ctx *ctx, sd_log_level level, const char *fmt, ...)
{
    if (!ctx || !ctx->params.log)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ctx->params.log(level, buf, ctx->params.log_user);
}
