/* unet_blocks.c - the math of the UNet's layers: ResBlock, spatial transformer (self- and
 * cross-attention, GEGLU feed-forward), down- and upsampler.  Written only in terms of the
 * ops of internal/ops.h (plus the nearest-neighbour resize for odd latent sizes, which is
 * data movement), on the buffers of the forward pass's workspace; unet_forward.c decides
 * which buffers and in what order. */
#include "internal/ops.h"
#include "internal/unet_net.h"

#include <math.h>

static const sd_conv2d_params same3 = {.stride = 1, .pad_top = 1, .pad_left = 1,
                                       .pad_bottom = 1, .pad_right = 1};

/* ==== ResBlock ==========================================================================
 * diffusers ResnetBlock2D.forward (models/resnet.py) = LDM ResBlock._forward
 * (openaimodel.py) without scale-shift norm:
 *   h = conv1(silu(norm1(x)));  h += time_emb_proj(silu(temb))[:, :, None, None]
 *   h = conv2(silu(norm2(h)))   (dropout is the identity at inference)
 *   y = (conv_shortcut(x) or x) + h */
sd_status sd_unet_res_forward(sd_ctx *ctx, const sd_unet_res *r, sd_unet_ws *ws,
                              const float *x, float *y, int H, int W, sd_error *err)
{
    const int B = ws->batch;
    const int64_t hw = (int64_t)H * W;
    sd_status st;
    /* in_layers: GroupNorm32 + SiLU, 3x3 conv */
    if ((st = sd_op_groupnorm(ctx, x, ws->t1, B, r->cin, hw, SD_UNET_GROUPS, r->in_norm_w,
                              r->in_norm_b, SD_UNET_RES_EPS, true, err)) ||
        (st = sd_op_conv2d(ctx, ws->t1, B, r->cin, H, W, r->in_conv_w, r->in_conv_b, &same3,
                           ws->t2, err)))
        return st;
    /* emb_layers: Linear on the SiLU'd time embedding, broadcast over the pixels */
    if ((st = sd_op_linear(ctx, ws->semb, B, ws->temb_dim, r->emb_w, r->emb_b, ws->embo,
                           err)))
        return st;
    sd_op_add_channel(ctx, ws->t2, ws->embo, B, r->cout, hw);
    /* out_layers: GroupNorm32 + SiLU, (dropout), 3x3 conv */
    if ((st = sd_op_groupnorm(ctx, ws->t2, ws->t2, B, r->cout, hw, SD_UNET_GROUPS,
                              r->out_norm_w, r->out_norm_b, SD_UNET_RES_EPS, true, err)) ||
        (st = sd_op_conv2d(ctx, ws->t2, B, r->cout, H, W, r->out_conv_w, r->out_conv_b,
                           &same3, y, err)))
        return st;
    /* skip_connection: 1x1 conv when the width changes, else identity */
    int64_t n = (int64_t)B * r->cout * hw;
    if (r->skip_w) {
        const sd_conv2d_params one = {.stride = 1};
        if ((st = sd_op_conv2d(ctx, x, B, r->cin, H, W, r->skip_w, r->skip_b, &one, ws->t1,
                               err)))
            return st;
        sd_op_add(ctx, y, ws->t1, n);
    } else {
        sd_op_add(ctx, y, x, n);
    }
    return SD_OK;
}

/* ==== spatial transformer =============================================================== */

/* diffusers Attention with AttnProcessor (attention_processor.py) = LDM CrossAttention:
 * q = to_q(xn), k = to_k(kv_src), v = to_v(kv_src), per head softmax(q k^T / sqrt(dh)) v
 * (tiled, no score matrix), then to_out.0.  xn [B*lq, inner]; kv_src [B*lk, kv_dim] is xn
 * itself (self-attention) or the text context (cross-attention).  The heads' output goes
 * to o, the projected result to dst (which may be xn, not o).  Uses ws->q, k, v. */
static sd_status attention(sd_ctx *ctx, const sd_unet_xf *t, const sd_unet_attn *a,
                           sd_unet_ws *ws, const float *xn, int64_t lq, const float *kv_src,
                           int64_t lk, int64_t kv_dim, float *o, float *dst, sd_error *err)
{
    const int B = ws->batch;
    const int64_t inner = t->inner;
    sd_status st;
    if ((st = sd_op_linear(ctx, xn, B * lq, inner, a->q, NULL, ws->q, err)) ||
        (st = sd_op_linear(ctx, kv_src, B * lk, kv_dim, a->k, NULL, ws->k, err)) ||
        (st = sd_op_linear(ctx, kv_src, B * lk, kv_dim, a->v, NULL, ws->v, err)))
        return st;
    const sd_attn_params p = {
        .batch = B, .heads = t->heads, .dh = t->dh, .lq = lq, .lk = lk,
        .q_rs = inner, .k_rs = inner, .v_rs = inner, .o_rs = inner,
        .scale = 1.0f / sqrtf((float)t->dh), .causal = false,
    };
    if ((st = sd_op_attention(ctx, ws->q, ws->k, ws->v, o, &p, err)))
        return st;
    return sd_op_linear(ctx, o, B * lq, inner, a->out_w, a->out_b, dst, err);
}

/* diffusers BasicTransformerBlock.forward (attention.py), norm_type "layer_norm":
 *   h = attn1(norm1(h)) + h;  h = attn2(norm2(h), context) + h;  h = ff(norm3(h)) + h
 * with ff = FeedForward(GEGLU): net.2(geglu(net.0.proj(x))).  h = ws->hid [B*HW, inner];
 * t1 and t2 are scratch. */
static sd_status tblock(sd_ctx *ctx, const sd_unet_xf *t, const sd_unet_tblock *tb,
                        sd_unet_ws *ws, int64_t hw, sd_error *err)
{
    const int B = ws->batch;
    const int64_t inner = t->inner, rows = B * hw;
    float *h = ws->hid, *xn = ws->t1, *o = ws->t2;
    sd_status st;
    /* self-attention */
    if ((st = sd_op_layernorm(ctx, h, xn, rows, inner, tb->norm1_w, tb->norm1_b,
                              SD_UNET_LN_EPS, err)) ||
        (st = attention(ctx, t, &tb->attn1, ws, xn, hw, xn, hw, inner, o, xn, err)))
        return st;
    sd_op_add(ctx, h, xn, rows * inner);
    /* cross-attention to the text states */
    int64_t cdim = tb->attn2.k->shape[1];
    if ((st = sd_op_layernorm(ctx, h, xn, rows, inner, tb->norm2_w, tb->norm2_b,
                              SD_UNET_LN_EPS, err)) ||
        (st = attention(ctx, t, &tb->attn2, ws, xn, hw, ws->context, ws->ctx_len, cdim, o, xn,
                        err)))
        return st;
    sd_op_add(ctx, h, xn, rows * inner);
    /* feed-forward, in chunks of rows so the 8x-wide GEGLU input stays small */
    if ((st = sd_op_layernorm(ctx, h, xn, rows, inner, tb->norm3_w, tb->norm3_b,
                              SD_UNET_LN_EPS, err)))
        return st;
    for (int64_t r0 = 0; r0 < rows; r0 += ws->ff_rows) {
        int64_t n = SD_MIN(ws->ff_rows, rows - r0);
        if ((st = sd_op_linear(ctx, xn + r0 * inner, n, inner, tb->ff_in_w, tb->ff_in_b,
                               ws->ff1, err)))
            return st;
        sd_op_geglu(ctx, ws->ff1, ws->ff2, n, t->ff);
        if ((st = sd_op_linear(ctx, ws->ff2, n, t->ff, tb->ff_out_w, tb->ff_out_b,
                               o + r0 * inner, err)))
            return st;
    }
    sd_op_add(ctx, h, o, rows * inner);
    return SD_OK;
}

/* diffusers Transformer2DModel.forward for continuous inputs (transformer_2d.py) = LDM
 * SpatialTransformer.forward (attention.py):
 *   h = norm(x) (GroupNorm32, eps 1e-6);  NCHW -> [B, HW, C];  h = proj_in(h)
 *   (SD 1.x applies proj_in as a 1x1 conv before the reshape, SD 2.x as a Linear after:
 *   the same per-pixel matrix product, so both run as one linear op on [B*HW, C]);
 *   transformer blocks;  h = proj_out(h);  [B, HW, C] -> NCHW;  x += h */
sd_status sd_unet_xf_forward(sd_ctx *ctx, const sd_unet_xf *t, sd_unet_ws *ws, float *x,
                             int H, int W, sd_error *err)
{
    const int B = ws->batch;
    const int64_t hw = (int64_t)H * W, rows = B * hw;
    sd_status st;
    if ((st = sd_op_groupnorm(ctx, x, ws->t1, B, t->c, hw, SD_UNET_GROUPS, t->norm_w,
                              t->norm_b, SD_UNET_XF_NORM_EPS, false, err)))
        return st;
    sd_op_transpose(ctx, ws->t1, ws->t2, B, t->c, hw);
    if ((st = sd_op_linear(ctx, ws->t2, rows, t->c, t->proj_in_w, t->proj_in_b, ws->hid,
                           err)))
        return st;
    for (int i = 0; i < t->depth; i++)
        if ((st = tblock(ctx, t, &t->blocks[i], ws, hw, err)))
            return st;
    if ((st = sd_op_linear(ctx, ws->hid, rows, t->inner, t->proj_out_w, t->proj_out_b, ws->t2,
                           err)))
        return st;
    sd_op_transpose(ctx, ws->t2, ws->t1, B, hw, t->c);
    sd_op_add(ctx, x, ws->t1, rows * t->c);
    return SD_OK;
}

/* ==== resamplers ======================================================================== */

/* diffusers Downsample2D (resnet.py) with use_conv, padding 1 = LDM Downsample "op". */
sd_status sd_unet_down_forward(sd_ctx *ctx, const sd_unet_layer *l, int batch, const float *x,
                               float *y, int H, int W, sd_error *err)
{
    const sd_conv2d_params p = {.stride = 2, .pad_top = 1, .pad_left = 1, .pad_bottom = 1,
                                .pad_right = 1};
    return sd_op_conv2d(ctx, x, batch, l->cin, H, W, l->conv_w, l->conv_b, &p, y, err);
}

/* torch F.interpolate(mode="nearest", size=(Ho, Wo)) (upsample_nearest2d, torch 1.13):
 * source index = min(floor(dst * (float)in / out), in - 1). */
static void resize_nearest(const float *x, float *y, int64_t planes, int H, int W, int Ho,
                           int Wo)
{
    const float sh = (float)H / (float)Ho, sw = (float)W / (float)Wo;
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *src = x + pl * H * W;
        float *dst = y + pl * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++) {
            int iy = SD_MIN((int)floorf((float)oy * sh), H - 1);
            for (int ox = 0; ox < Wo; ox++)
                dst[(int64_t)oy * Wo + ox] =
                    src[(int64_t)iy * W + SD_MIN((int)floorf((float)ox * sw), W - 1)];
        }
    }
}

/* diffusers Upsample2D.forward (resnet.py) with use_conv: nearest upsampling (to
 * upsample_size when diffusers forwards one for odd latent sizes, else 2x), then a 3x3
 * conv = LDM Upsample "conv". */
sd_status sd_unet_up_forward(sd_ctx *ctx, const sd_unet_layer *l, sd_unet_ws *ws,
                             const float *x, float *y, int H, int W, int Ho, int Wo,
                             sd_error *err)
{
    int64_t planes = (int64_t)ws->batch * l->cin;
    if (Ho == 2 * H && Wo == 2 * W)
        sd_op_upsample2x(ctx, x, ws->t1, planes, H, W);
    else
        resize_nearest(x, ws->t1, planes, H, W, Ho, Wo);
    return sd_op_conv2d(ctx, ws->t1, ws->batch, l->cin, Ho, Wo, l->conv_w, l->conv_b, &same3, y,
                        err);
}
