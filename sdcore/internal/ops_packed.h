/* internal/ops_packed.h - linear, conv2d and attention on the packed GEMM micro-kernels of
 * the kernel table (ops_packed.c), and the work splitting they share with ops.c.  ops.c
 * validates the arguments and calls these when ctx->packed; they trust their arguments. */
#ifndef SD_INTERNAL_OPS_PACKED_H
#define SD_INTERNAL_OPS_PACKED_H

#include "internal/common.h"
#include "internal/ctx.h"
#include "internal/ops.h"

/* ---- work splitting -------------------------------------------------------------------------
 * fn(arg, item, slot) runs for every item in [0, n_items) on the ctx pool: one task per pool
 * thread pulls items from an atomic counter (so uneven items balance); slot is in
 * [0, sd_par_slots(ctx, n_items)) and no two concurrent calls share one, so each slot can
 * own a piece of scratch.  Returns when all are done. */
typedef void (*sd_par_fn)(void *arg, int64_t item, int slot);
void sd_par_run(sd_ctx *ctx, int64_t n_items, sd_par_fn fn, void *arg);
int sd_par_slots(const sd_ctx *ctx, int64_t n_items);

/* Rows [k0, k0 + nk) of the im2col matrix of one image x [C,H,W] for a kh x kw convolution
 * with params p and Wo output columns, for output positions [p0, p0 + np), into col with row
 * stride ld: row r = (c*kh + ky)*kw + kx holds x[c][oy*s - pt + ky][ox*s - pl + kx] (0
 * outside) for each position (oy, ox) = p0 + q.  Shared by both convolution paths. */
void sd_im2col_rows(const float *x, int H, int W, int kh, int kw, int Wo,
                    const sd_conv2d_params *p, int64_t k0, int64_t nk, int64_t p0, int64_t np,
                    float *col, int64_t ld);

/* y[M,N] = x[M,K] W^T (+ bias[N]); W [N,K] contiguous float (F32/F16/BF16), checked by the
 * caller; bias float32 or NULL.  Errors: SD_ERR_NOMEM. */
sd_status sd_packed_linear(sd_ctx *ctx, const float *x, int64_t M, int64_t K,
                           const sd_tensor *w, int64_t N, const float *bias, float *y,
                           sd_error *err);

/* The convolution of ops.h on x [N,C,H,W] -> y [N,O,Ho,Wo]; W [O, C, kh, kw] contiguous
 * float, checked by the caller; bias float32 or NULL.  3x3 stride-1 padding-1 ones run as
 * Winograd F(4x4, 3x3) in float32 where ctx->winograd allows and it pays.
 * Errors: SD_ERR_NOMEM. */
sd_status sd_packed_conv2d(sd_ctx *ctx, const float *x, int N, int C, int H, int W,
                           const sd_tensor *w, int O, int kh, int kw,
                           const sd_conv2d_params *p, int Ho, int Wo, const float *bias,
                           float *y, sd_error *err);

/* The attention of ops.h (arguments checked by the caller) on the flash-attention kernel.
 * Errors: SD_ERR_NOMEM. */
sd_status sd_packed_attention(sd_ctx *ctx, const float *q, const float *k, const float *v,
                              float *out, const sd_attn_params *p, sd_error *err);

#endif
