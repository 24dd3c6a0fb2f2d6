/* internal/unet_net.h - the UNet's network description and its building blocks, shared by
 * unet.c (builds the description from the model's tensors), unet_blocks.c (the math of
 * one ResBlock / spatial transformer / resampler) and unet_forward.c (runs the blocks in
 * order with the skip connections).  Nobody outside the UNet includes this.
 *
 * Names follow the original LDM checkpoint layout (openaimodel.py UNetModel): input_blocks
 * and output_blocks are TimestepEmbedSequential lists of up to three layers each
 * (ResBlock, SpatialTransformer, Downsample "op" / Upsample "conv"); middle_block is
 * ResBlock, SpatialTransformer, ResBlock. */
#ifndef SD_INTERNAL_UNET_NET_H
#define SD_INTERNAL_UNET_NET_H

#include "internal/common.h"
#include "internal/ctx.h"
#include "internal/unet.h"

/* Constants of every SD 1.x/2.x UNet that the tensors cannot tell (LDM's normalization()
 * is GroupNorm32(32, C); diffusers: norm_num_groups 32, norm_eps 1e-5; Transformer2DModel's
 * own GroupNorm uses eps 1e-6; BasicTransformerBlock's LayerNorms the torch default 1e-5). */
#define SD_UNET_GROUPS 32
#define SD_UNET_RES_EPS 1e-5f
#define SD_UNET_XF_NORM_EPS 1e-6f
#define SD_UNET_LN_EPS 1e-5f
/* At most this many resolution levels (sd_model_hparams.unet_heads has 4 entries) and
 * layers per TimestepEmbedSequential. */
#define SD_UNET_MAX_LEVELS 4
#define SD_UNET_MAX_LAYERS 3

/* ResBlock (LDM) = ResnetBlock2D (diffusers resnet.py). */
typedef struct sd_unet_res {
    int cin, cout;
    const sd_tensor *in_norm_w, *in_norm_b;   /* in_layers.0      [cin], [cin] */
    const sd_tensor *in_conv_w, *in_conv_b;   /* in_layers.2      [cout, cin, 3, 3], [cout] */
    const sd_tensor *emb_w, *emb_b;           /* emb_layers.1     [cout, temb], [cout] */
    const sd_tensor *out_norm_w, *out_norm_b; /* out_layers.0     [cout], [cout] */
    const sd_tensor *out_conv_w, *out_conv_b; /* out_layers.3     [cout, cout, 3, 3], [cout] */
    const sd_tensor *skip_w, *skip_b;         /* skip_connection  [cout, cin, 1, 1], [cout];
                                                 NULL: identity (cin == cout) */
} sd_unet_res;

/* CrossAttention (LDM) = Attention (diffusers attention_processor.py), no q/k/v biases. */
typedef struct sd_unet_attn {
    const sd_tensor *q;            /* to_q      [inner, inner] */
    const sd_tensor *k, *v;        /* to_k/to_v [inner, kv_dim]: kv_dim = inner (attn1) or
                                                 context_dim (attn2) */
    const sd_tensor *out_w, *out_b; /* to_out.0 [inner, inner], [inner] */
} sd_unet_attn;

/* BasicTransformerBlock: self-attention, cross-attention, GEGLU feed-forward, each
 * pre-LayerNorm with a residual. */
typedef struct sd_unet_tblock {
    const sd_tensor *norm1_w, *norm1_b;   /* [inner] */
    const sd_tensor *norm2_w, *norm2_b;   /* [inner] */
    const sd_tensor *norm3_w, *norm3_b;   /* [inner] */
    sd_unet_attn attn1, attn2;
    const sd_tensor *ff_in_w, *ff_in_b;   /* ff.net.0.proj  [2 * ff, inner], [2 * ff] */
    const sd_tensor *ff_out_w, *ff_out_b; /* ff.net.2       [inner, ff], [inner] */
} sd_unet_tblock;

/* SpatialTransformer (LDM) = Transformer2DModel (diffusers transformer_2d.py). */
typedef struct sd_unet_xf {
    int c;                  /* channels of the feature map */
    int inner;              /* heads * dh: width inside the transformer blocks */
    int heads, dh;
    int ff;                 /* GEGLU hidden width (4 * inner) */
    int depth;              /* number of BasicTransformerBlocks */
    const sd_tensor *norm_w, *norm_b;         /* norm      [c], [c] */
    const sd_tensor *proj_in_w, *proj_in_b;   /* proj_in   [inner, c] (SD 2.x Linear) or
                                                 [inner, c, 1, 1] (SD 1.x conv), [inner] */
    const sd_tensor *proj_out_w, *proj_out_b; /* proj_out  [c, inner] or [c, inner, 1, 1], [c] */
    sd_unet_tblock *blocks;                   /* [depth], owned */
} sd_unet_xf;

typedef enum sd_unet_kind {
    SD_UNET_RES,   /* ResBlock */
    SD_UNET_XF,    /* SpatialTransformer */
    SD_UNET_DOWN,  /* Downsample: 3x3 conv, stride 2, padding 1 ("op") */
    SD_UNET_UP,    /* Upsample: nearest to the next skip's size, then 3x3 conv ("conv") */
} sd_unet_kind;

typedef struct sd_unet_layer {
    sd_unet_kind kind;
    int cin, cout;
    sd_unet_res res;                  /* SD_UNET_RES */
    sd_unet_xf xf;                    /* SD_UNET_XF */
    const sd_tensor *conv_w, *conv_b; /* SD_UNET_DOWN/UP  [c, c, 3, 3], [c] */
} sd_unet_layer;

/* One TimestepEmbedSequential: its layers run in order. */
typedef struct sd_unet_block {
    int n_layers;
    int cin, cout;         /* for output blocks cin includes the concatenated skip */
    int skip_c;            /* output blocks: channels of the skip concatenated first */
    int level;             /* resolution level the block starts at */
    sd_unet_layer layers[SD_UNET_MAX_LAYERS];
} sd_unet_block;

struct sd_unet {
    sd_unet_info info;
    int temb_dim;                             /* time-embedding width (4 * model_channels) */
    int sin_dim;                              /* sinusoidal embedding width (model_channels) */
    const sd_tensor *conv_in_w, *conv_in_b;   /* input_blocks.0.0  [mc, in, 3, 3], [mc] */
    const sd_tensor *temb1_w, *temb1_b;       /* time_embed.0      [temb, sin], [temb] */
    const sd_tensor *temb2_w, *temb2_b;       /* time_embed.2      [temb, temb], [temb] */
    int n_in;                                 /* input_blocks 1..n_in */
    sd_unet_block *in;                        /* [n_in], owned */
    sd_unet_block mid;                        /* middle_block */
    int n_out;                                /* output_blocks 0..n_out-1 (= n_in + 1) */
    sd_unet_block *out;                       /* [n_out], owned */
    const sd_tensor *out_norm_w, *out_norm_b; /* out.0  [mc], [mc] */
    const sd_tensor *out_conv_w, *out_conv_b; /* out.2  [out, mc, 3, 3], [out] */
};

/* Working memory of one forward pass, sized by unet_forward.c for the request; the block
 * functions below use it and own none of it. */
typedef struct sd_unet_ws {
    int batch;
    float *t1;               /* [max(act, tok)]: normalised ResBlock input, upsampled map,
                                transformer staging */
    float *t2;               /* [max(res_out, tok)]: ResBlock inner activation, transformer
                                staging */
    float *hid, *q;          /* [tok]: transformer hidden states, queries */
    float *k, *v;            /* [kv]: keys and values (self: B*HW rows, cross: B*L rows) */
    float *ff1, *ff2;        /* [ff_rows * 2 * ff], [ff_rows * ff]: feed-forward chunk */
    int64_t ff_rows;         /* rows of the feed-forward processed at once */
    const float *semb;       /* [B, temb_dim]: SiLU(time embedding), shared by all ResBlocks */
    int temb_dim;
    float *embo;             /* [B, max cout]: one ResBlock's projected time embedding */
    const float *context;    /* [B, L, context_dim] */
    int ctx_len;
} sd_unet_ws;

/* ResBlock forward, x [B, cin, H, W] -> y [B, cout, H, W] (y must not alias x or the
 * workspace).  Uses ws->t1, t2, embo.  Errors: those of the ops.  Caller's thread. */
sd_status sd_unet_res_forward(sd_ctx *ctx, const sd_unet_res *r, sd_unet_ws *ws,
                              const float *x, float *y, int H, int W, sd_error *err);

/* SpatialTransformer forward in place on x [B, c, H, W] (x must not be a workspace buffer),
 * cross-attending to ws->context.  Errors: those of the ops.  Caller's thread. */
sd_status sd_unet_xf_forward(sd_ctx *ctx, const sd_unet_xf *t, sd_unet_ws *ws, float *x,
                             int H, int W, sd_error *err);

/* Downsample x [B, c, H, W] -> y [B, c, (H+1)/2, (W+1)/2] with the layer's strided conv. */
sd_status sd_unet_down_forward(sd_ctx *ctx, const sd_unet_layer *l, int batch, const float *x,
                               float *y, int H, int W, sd_error *err);

/* Upsample x [B, c, H, W] -> y [B, c, Ho, Wo]: nearest-neighbour resize (torch
 * F.interpolate mode "nearest": exact 2x when Ho = 2H, Wo = 2W) into ws->t1, then the
 * layer's 3x3 conv.  y must not alias x or ws->t1. */
sd_status sd_unet_up_forward(sd_ctx *ctx, const sd_unet_layer *l, sd_unet_ws *ws,
                             const float *x, float *y, int H, int W, int Ho, int Wo,
                             sd_error *err);

#endif
