/* internal/ops.h - the neural-network operations the text encoders, UNet, VAE and TAESD
 * are written in.  Activations are float32, contiguous, row-major, owned by the caller;
 * weights are sd_tensor views into the mapped model in their stored dtype (F32, F16, BF16),
 * converted inside the op.  Ops split their work over the ctx's pool and use the ctx's
 * kernel table; they may allocate scratch (and fail with SD_ERR_NOMEM), never keep it.
 * Unless stated, an op may be called with y == x (in place). */
#ifndef SD_INTERNAL_OPS_H
#define SD_INTERNAL_OPS_H

#include "internal/common.h"
#include "internal/ctx.h"

/* ---- dense ------------------------------------------------------------------------------
 * y[M,N] = x[M,K] * W^T + b, W of shape [N,K] (or [N,K,1,1]: a 1x1 convolution's weight),
 * b of shape [N] or NULL.  y must not alias x.  (nn.Linear) */
sd_status sd_op_linear(sd_ctx *ctx, const float *x, int64_t M, int64_t K, const sd_tensor *w,
                       const sd_tensor *b, float *y, sd_error *err);

/* ---- convolution ------------------------------------------------------------------------
 * x [N,C,H,W] -> y [N,O,Ho,Wo] with W of shape [O,C,kh,kw], b [O] or NULL, the given
 * stride and zero padding (top, left, bottom, right); Ho = (H + pt + pb - kh) / stride + 1.
 * y must not alias x.  (nn.Conv2d; asymmetric padding covers the VAE's downsampler) */
typedef struct sd_conv2d_params {
    int stride;
    int pad_top, pad_left, pad_bottom, pad_right;
} sd_conv2d_params;
sd_status sd_op_conv2d(sd_ctx *ctx, const float *x, int N, int C, int H, int W,
                       const sd_tensor *w, const sd_tensor *b, const sd_conv2d_params *p,
                       float *y, sd_error *err);

/* ---- normalisation -----------------------------------------------------------------------
 * GroupNorm over x [N,C,HW] with `groups` groups, affine gamma/beta [C], then SiLU if asked.
 * Statistics in float32 with a two-pass (mean, then centred variance) formula. */
sd_status sd_op_groupnorm(sd_ctx *ctx, const float *x, float *y, int N, int C, int64_t HW,
                          int groups, const sd_tensor *gamma, const sd_tensor *beta, float eps,
                          bool silu, sd_error *err);
/* LayerNorm over the last dimension of x [rows, D], affine gamma/beta [D]. */
sd_status sd_op_layernorm(sd_ctx *ctx, const float *x, float *y, int64_t rows, int64_t D,
                          const sd_tensor *gamma, const sd_tensor *beta, float eps,
                          sd_error *err);

/* ---- attention -----------------------------------------------------------------------------
 * Multi-head scaled dot-product attention, computed in tiles with an online softmax (the
 * Lq x Lk score matrix is never stored).  For batch b and head h:
 *   out[b, i, h*dh:(h+1)*dh] = softmax_j(scale * q_i . k_j  [j <= i if causal]) v_j
 * q: rows of length >= heads*dh at row stride q_rs floats, [B, Lq, ...]; likewise k, v
 * ([B, Lk, ...], strides k_rs, v_rs) and out ([B, Lq, ...], stride o_rs).  q, k and v may
 * be column slices of one fused QKV buffer.  out must not alias q, k or v. */
typedef struct sd_attn_params {
    int batch, heads, dh;
    int64_t lq, lk;
    int64_t q_rs, k_rs, v_rs, o_rs;
    float scale;
    bool causal;
} sd_attn_params;
sd_status sd_op_attention(sd_ctx *ctx, const float *q, const float *k, const float *v,
                          float *out, const sd_attn_params *p, sd_error *err);

/* ---- element-wise ------------------------------------------------------------------------- */
void sd_op_silu(sd_ctx *ctx, float *x, int64_t n);        /* x * sigmoid(x) */
void sd_op_gelu(sd_ctx *ctx, float *x, int64_t n);        /* exact (erf) GELU */
void sd_op_quick_gelu(sd_ctx *ctx, float *x, int64_t n);  /* x * sigmoid(1.702 x) */
/* GEGLU: x [rows, 2D] -> y [rows, D], y = x[:, :D] * gelu(x[:, D:]).  y must not alias x. */
void sd_op_geglu(sd_ctx *ctx, const float *x, float *y, int64_t rows, int64_t D);
void sd_op_add(sd_ctx *ctx, float *y, const float *x, int64_t n);    /* y += x */
void sd_op_scale(sd_ctx *ctx, float *y, float s, int64_t n);         /* y *= s */
/* Add a per-channel value: x [N,C,HW] += v[n*C + c] (the UNet's time embedding). */
void sd_op_add_channel(sd_ctx *ctx, float *x, const float *v, int N, int C, int64_t HW);
/* Nearest-neighbour 2x upsampling: x [NC, H, W] -> y [NC, 2H, 2W].  y must not alias x. */
void sd_op_upsample2x(sd_ctx *ctx, const float *x, float *y, int64_t NC, int H, int W);
/* Transpose each of `batch` matrices [rows, cols] -> [cols, rows] (NCHW <-> NHWC).
 * y must not alias x. */
void sd_op_transpose(sd_ctx *ctx, const float *x, float *y, int batch, int64_t rows,
                     int64_t cols);

/* Sinusoidal timestep embedding (diffusers get_timestep_embedding, max_period 10000):
 * half = dim/2, f_i = exp(-ln(10000) * i / (half - shift)), emb = [sin(t f), cos(t f)],
 * swapped to [cos, sin] when flip_sin_to_cos.  out has dim floats. */
void sd_timestep_embedding(float t, int dim, bool flip_sin_to_cos, float shift, float *out);

/* Copy any float tensor (F32/F16/BF16) into n float32s; n must equal its numel.
 * Errors: SD_ERR_FORMAT for a non-float dtype or a size mismatch. */
sd_status sd_tensor_to_f32(const sd_ctx *ctx, const sd_tensor *t, float *dst, int64_t n,
                           sd_error *err);

#endif
