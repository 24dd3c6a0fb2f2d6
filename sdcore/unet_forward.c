/* unet_forward.c - one evaluation of the UNet: the time embedding, the input blocks whose
 * outputs are kept as skip connections, the middle block, the output blocks that consume
 * the skips, and the output head.  This file owns the memory plan (what is alive when) and
 * the order; the math of each layer is in unet_blocks.c.
 *
 * Mirrors diffusers UNet2DConditionModel.forward (unets/unet_2d_condition.py, v0.31) and
 * LDM UNetModel.forward (ldm/modules/diffusionmodules/openaimodel.py).
 *
 * Memory: each skip activation lives from the input block that makes it to the output
 * block that concatenates it; besides those, two main-path buffers (X, Y) hold the current
 * activation and the next, and the workspace (sd_unet_ws) a fixed number of
 * activation-sized temporaries plus one feed-forward chunk.  Attention runs through the
 * tiled op, so nothing grows with the square of the token count.  For SD 1.5 at 64x64
 * latents, batch 2, that is about 250 MiB (sd_unet_memory), against roughly 2.5 GB of
 * activations in diffusers with materialised attention maps. */
#include "internal/ops.h"
#include "internal/unet_net.h"

#include <string.h>

/* Feed-forward rows processed per chunk: bounds the GEGLU buffers to
 * FF_ROWS * 3 * ff floats (15 MB at SD width 320) at any image size. */
enum { FF_ROWS = 1024 };

/* ==== memory plan ======================================================================= */

/* The buffers of one forward pass besides the skips, in floats (sizes in struct plan). */
enum {
    BUF_X, BUF_Y,     /* main path: current and next activation [act] */
    BUF_T1,           /* ws.t1 [max(act, tok)] */
    BUF_T2,           /* ws.t2 [max(res_out, tok)] */
    BUF_HID, BUF_Q,   /* ws.hid, ws.q [tok] */
    BUF_K, BUF_V,     /* ws.k, ws.v [kv] */
    BUF_FF,           /* ws.ff1 then ws.ff2 [ff_rows * 3 * ff] */
    BUF_EMBO,         /* ws.embo [B * max_cout] */
    BUF_TEMB,         /* sinusoids [B, sin_dim], then two [B, temb_dim] */
    N_BUF
};

typedef struct plan {
    size_t act;        /* floats: largest main-path activation (incl. concat, upsampled) */
    size_t res_out;    /* floats: largest ResBlock output B * cout * HW */
    size_t tok;        /* floats: largest transformer activation B * HW * max(inner, c) */
    size_t kv;         /* floats: largest key/value buffer (B * HW or B * L rows) */
    size_t ff_rows;    /* rows per feed-forward chunk */
    size_t ff;         /* largest feed-forward width */
    int max_cout;      /* widest ResBlock output (time-embedding projection) */
    size_t size[N_BUF];/* floats per buffer */
    size_t skips;      /* floats: all skip activations (all alive at the middle block) */
    bool overflow;
} plan;

typedef struct size2 {
    int h, w;
} size2;

/* m = max(m, a * b * c * d), recording overflow. */
static void upd(plan *p, size_t *m, size_t a, size_t b, size_t c, size_t d)
{
    size_t n;
    if (!sd_mul_ok(a, b, &n) || !sd_mul_ok(n, c, &n) || !sd_mul_ok(n, d, &n)) {
        p->overflow = true;
        return;
    }
    if (n > *m)
        *m = n;
}

/* Walk one block's layers from spatial size *s; an upsampler goes to `up`. */
static void plan_block(plan *p, const sd_unet_block *blk, size_t B, size_t L, size2 *s, size2 up)
{
    upd(p, &p->act, B, (size_t)blk->cin, (size_t)s->h, (size_t)s->w);
    for (int k = 0; k < blk->n_layers; k++) {
        const sd_unet_layer *l = &blk->layers[k];
        switch (l->kind) {
        case SD_UNET_RES:
            p->max_cout = SD_MAX(p->max_cout, l->cout);
            upd(p, &p->res_out, B, (size_t)l->cout, (size_t)s->h, (size_t)s->w);
            break;
        case SD_UNET_XF:
            upd(p, &p->tok, B, (size_t)s->h, (size_t)s->w,
                (size_t)SD_MAX(l->xf.inner, l->xf.c));
            upd(p, &p->kv, B, L, (size_t)l->xf.inner, 1);
            p->ff = SD_MAX(p->ff, (size_t)l->xf.ff);
            break;
        case SD_UNET_DOWN:
            s->h = (s->h - 1) / 2 + 1;   /* 3x3, stride 2, padding 1 */
            s->w = (s->w - 1) / 2 + 1;
            break;
        case SD_UNET_UP:
            *s = up;
            break;
        }
        upd(p, &p->act, B, (size_t)l->cout, (size_t)s->h, (size_t)s->w);
    }
}

/* Sizes of everything for this request; skip[i] receives the spatial size of skip i. */
static sd_status make_plan(const sd_unet *u, const sd_unet_args *a, plan *p, size2 *skip,
                           sd_error *err)
{
    memset(p, 0, sizeof *p);
    size_t B = (size_t)a->batch, L = (size_t)a->ctx_len;
    size2 s = {a->height, a->width};
    upd(p, &p->act, B, (size_t)SD_MAX(u->info.in_channels, u->info.model_channels),
        (size_t)s.h, (size_t)s.w);
    skip[0] = s;
    for (int i = 0; i < u->n_in; i++) {
        plan_block(p, &u->in[i], B, L, &s, s);
        skip[i + 1] = s;
    }
    plan_block(p, &u->mid, B, L, &s, s);
    for (int j = 0; j < u->n_out; j++) {
        int si = u->n_in - j;                     /* the skip this block concatenates */
        plan_block(p, &u->out[j], B, L, &s, si > 0 ? skip[si - 1] : s);
    }
    p->kv = SD_MAX(p->kv, p->tok);
    size_t rows = 0;
    upd(p, &rows, B, (size_t)skip[0].h, (size_t)skip[0].w, 1);
    p->ff_rows = SD_MIN(rows, (size_t)FF_ROWS);

    size_t *z = p->size;
    z[BUF_X] = z[BUF_Y] = p->act;
    z[BUF_T1] = SD_MAX(p->act, p->tok);
    z[BUF_T2] = SD_MAX(p->res_out, p->tok);
    z[BUF_HID] = z[BUF_Q] = p->tok;
    z[BUF_K] = z[BUF_V] = p->kv;
    upd(p, &z[BUF_FF], p->ff_rows, 3, p->ff, 1);
    upd(p, &z[BUF_EMBO], B, (size_t)p->max_cout, 1, 1);
    upd(p, &z[BUF_TEMB], B, (size_t)u->sin_dim + 2 * (size_t)u->temb_dim, 1, 1);
    for (int i = 0; i <= u->n_in; i++) {
        size_t n = 0;
        upd(p, &n, B, (size_t)(i ? u->in[i - 1].cout : u->info.model_channels),
            (size_t)skip[i].h, (size_t)skip[i].w);
        p->overflow |= !sd_add_ok(p->skips, n, &p->skips);
    }
    if (p->overflow)
        return sd_fail(err, SD_ERR_TOO_LARGE, "UNet: a %d x %d latent batch of %d is too "
                       "large", a->height, a->width, a->batch);
    return SD_OK;
}

/* ==== buffers =========================================================================== */

static float *alloc_floats(size_t n)
{
    size_t bytes;
    if (!sd_mul_ok(n ? n : 1, sizeof(float), &bytes))
        return NULL;
    return sd_malloc(bytes);
}

/* h [B, ch, HW] becomes cat([h, s], dim=1) [B, ch + cs, HW] in place (h has room).  Batch
 * items move back to front, so no item is overwritten before it has moved. */
static void concat_inplace(float *h, const float *s, int B, int ch, int cs, size_t hw)
{
    for (int b = B - 1; b >= 0; b--) {
        float *dst = h + (size_t)b * (size_t)(ch + cs) * hw;
        memmove(dst, h + (size_t)b * (size_t)ch * hw, (size_t)ch * hw * sizeof *h);
        memcpy(dst + (size_t)ch * hw, s + (size_t)b * (size_t)cs * hw,
               (size_t)cs * hw * sizeof *h);
    }
}

/* ==== blocks ============================================================================ */

/* Run the layers of one TimestepEmbedSequential on x [B, blk->cin, *H, *W], ping-ponging
 * between the main-path buffers X = bufs[0] and Y = bufs[1].  x may be one of them or a
 * skip buffer (left untouched).  An upsampler resizes to `up`.  *y = the buffer holding
 * the result; *H, *W are updated. */
static sd_status run_block(sd_ctx *ctx, const sd_unet_block *blk, sd_unet_ws *ws,
                           float *const bufs[2], float *x, int *H, int *W, size2 up, float **y,
                           sd_error *err)
{
    float *cur = x;
    sd_status st = SD_OK;
    for (int k = 0; k < blk->n_layers && st == SD_OK; k++) {
        const sd_unet_layer *l = &blk->layers[k];
        float *next = cur == bufs[0] ? bufs[1] : bufs[0];
        size_t n = (size_t)ws->batch * (size_t)l->cin * (size_t)*H * (size_t)*W;
        switch (l->kind) {
        case SD_UNET_RES:
            /* ResBlock (openaimodel.py) / ResnetBlock2D (resnet.py) */
            st = sd_unet_res_forward(ctx, &l->res, ws, cur, next, *H, *W, err);
            cur = next;
            break;
        case SD_UNET_XF:
            /* SpatialTransformer (attention.py) / Transformer2DModel (transformer_2d.py),
             * in place; a skip buffer is copied first so the skip stays intact */
            if (cur != bufs[0] && cur != bufs[1]) {
                memcpy(next, cur, n * sizeof *cur);
                cur = next;
            }
            st = sd_unet_xf_forward(ctx, &l->xf, ws, cur, *H, *W, err);
            break;
        case SD_UNET_DOWN:
            /* Downsample (openaimodel.py) / Downsample2D (resnet.py) */
            st = sd_unet_down_forward(ctx, l, ws->batch, cur, next, *H, *W, err);
            *H = (*H - 1) / 2 + 1;
            *W = (*W - 1) / 2 + 1;
            cur = next;
            break;
        case SD_UNET_UP:
            /* Upsample (openaimodel.py) / Upsample2D (resnet.py) with diffusers'
             * upsample_size = the next skip's size (odd latent sizes) */
            st = sd_unet_up_forward(ctx, l, ws, cur, next, *H, *W, up.h, up.w, err);
            *H = up.h;
            *W = up.w;
            cur = next;
            break;
        }
    }
    *y = cur;
    return st;
}

/* ==== forward =========================================================================== */

typedef struct fwd {
    float *buf[N_BUF];  /* see the BUF_* enum */
    float **skip;       /* [n_in + 1], each [B, c, h, w] */
    size2 *skip_hw;     /* [n_in + 1] */
} fwd;

static void fwd_free(const sd_unet *u, fwd *f)
{
    for (int i = 0; i < N_BUF; i++)
        sd_free(f->buf[i]);
    for (int i = 0; f->skip && i <= u->n_in; i++)
        sd_free(f->skip[i]);
    sd_free(f->skip);
    sd_free(f->skip_hw);
}

static bool cancelled(const sd_unet_args *a)
{
    return a->hook && !a->hook(a->hook_user);
}

static sd_status check_args(const sd_unet *u, const sd_unet_args *a, const float *out,
                            sd_error *err)
{
    if (!u || !a || !a->x || !a->timesteps || !out)
        return sd_fail(err, SD_ERR_INVALID_ARG, "UNet: NULL argument");
    if (a->batch < 1 || a->height < 1 || a->width < 1)
        return sd_fail(err, SD_ERR_INVALID_ARG, "UNet: bad latent size %d x %d x %d",
                       a->batch, a->height, a->width);
    if (u->info.n_transformers && (!a->context || a->ctx_len < 1))
        return sd_fail(err, SD_ERR_INVALID_ARG, "UNet: no text context given");
    return SD_OK;
}

sd_status sd_unet_forward(sd_ctx *ctx, const sd_unet *u, const sd_unet_args *a, float *out,
                          sd_error *err)
{
    sd_status st = check_args(u, a, out, err);
    if (st != SD_OK)
        return st;
    const int B = a->batch;
    fwd f = {0};
    plan p;
    sd_unet_ws ws = {.batch = B, .context = a->context, .ctx_len = a->ctx_len,
                     .temb_dim = u->temb_dim};
    f.skip_hw = sd_calloc((size_t)u->n_in + 1, sizeof *f.skip_hw);
    f.skip = sd_calloc((size_t)u->n_in + 1, sizeof *f.skip);
    if (!f.skip_hw || !f.skip) {
        st = sd_fail_nomem(err, "UNet skip list");
        goto out;
    }
    if ((st = make_plan(u, a, &p, f.skip_hw, err)))
        goto out;

    for (int i = 0; i < N_BUF; i++) {
        if (!(f.buf[i] = alloc_floats(p.size[i]))) {
            st = sd_fail_nomem(err, "UNet activations");
            goto out;
        }
    }
    float *const bufs[2] = {f.buf[BUF_X], f.buf[BUF_Y]};
    ws.t1 = f.buf[BUF_T1];
    ws.t2 = f.buf[BUF_T2];
    ws.hid = f.buf[BUF_HID];
    ws.q = f.buf[BUF_Q];
    ws.k = f.buf[BUF_K];
    ws.v = f.buf[BUF_V];
    ws.ff1 = f.buf[BUF_FF];
    ws.ff2 = ws.ff1 + p.ff_rows * 2 * p.ff;
    ws.ff_rows = (int64_t)p.ff_rows;
    ws.embo = f.buf[BUF_EMBO];

    /* ---- 1. time embedding: get_timestep_embedding (flip_sin_to_cos, shift 0) for each
     * batch item, then TimestepEmbedding linear_1 / SiLU / linear_2 (LDM: time_embed).
     * Every ResBlock starts its emb_layers with a SiLU, applied once here. */
    float *sinus = f.buf[BUF_TEMB];
    float *emb1 = sinus + (size_t)B * (size_t)u->sin_dim;
    float *emb2 = emb1 + (size_t)B * (size_t)u->temb_dim;
    for (int b = 0; b < B; b++)
        sd_timestep_embedding(a->timesteps[b], u->sin_dim, true, 0.0f,
                              sinus + (size_t)b * (size_t)u->sin_dim);
    if ((st = sd_op_linear(ctx, sinus, B, u->sin_dim, u->temb1_w, u->temb1_b, emb1, err)))
        goto out;
    sd_op_silu(ctx, emb1, (int64_t)B * u->temb_dim);
    if ((st = sd_op_linear(ctx, emb1, B, u->temb_dim, u->temb2_w, u->temb2_b, emb2, err)))
        goto out;
    sd_op_silu(ctx, emb2, (int64_t)B * u->temb_dim);
    ws.semb = emb2;

    /* ---- 2. conv_in (input_blocks.0): the first skip */
    int H = a->height, W = a->width;
    size_t hw0 = (size_t)H * (size_t)W;
    int c = u->info.model_channels;
    if (!(f.skip[0] = alloc_floats((size_t)B * (size_t)c * hw0))) {
        st = sd_fail_nomem(err, "UNet skip activation");
        goto out;
    }
    const sd_conv2d_params same3 = {.stride = 1, .pad_top = 1, .pad_left = 1,
                                    .pad_bottom = 1, .pad_right = 1};
    if ((st = sd_op_conv2d(ctx, a->x, B, u->info.in_channels, H, W, u->conv_in_w,
                           u->conv_in_b, &same3, f.skip[0], err)))
        goto out;
    if (cancelled(a)) {
        st = SD_CANCELLED;
        goto out;
    }

    /* ---- 3. input blocks (down_blocks: resnets + attentions, then the downsampler);
     * each block's output is kept as a skip connection */
    float *h = f.skip[0];
    for (int i = 0; i < u->n_in; i++) {
        const sd_unet_block *blk = &u->in[i];
        float *y;
        if ((st = run_block(ctx, blk, &ws, bufs, h, &H, &W, f.skip_hw[i], &y, err)))
            goto out;
        size_t n = (size_t)B * (size_t)blk->cout * (size_t)H * (size_t)W;
        if (!(f.skip[i + 1] = alloc_floats(n))) {
            st = sd_fail_nomem(err, "UNet skip activation");
            goto out;
        }
        memcpy(f.skip[i + 1], y, n * sizeof *y);
        h = f.skip[i + 1];
        c = blk->cout;
        if (cancelled(a)) {
            st = SD_CANCELLED;
            goto out;
        }
    }

    /* ---- 4. middle block (UNetMidBlock2DCrossAttn: resnet, attention, resnet) */
    if ((st = run_block(ctx, &u->mid, &ws, bufs, h, &H, &W, f.skip_hw[u->n_in], &h, err)))
        goto out;
    c = u->mid.cout;
    if (cancelled(a)) {
        st = SD_CANCELLED;
        goto out;
    }

    /* ---- 5. output blocks (up_blocks): concatenate the latest skip on channels
     * (torch.cat([h, skip], dim=1)), then resnet, attention, and at the end of a level the
     * upsampler to the next skip's size; a skip is freed once consumed */
    for (int j = 0; j < u->n_out; j++) {
        const sd_unet_block *blk = &u->out[j];
        int si = u->n_in - j;
        concat_inplace(h, f.skip[si], B, c, blk->skip_c, (size_t)H * (size_t)W);
        sd_free(f.skip[si]);
        f.skip[si] = NULL;
        size2 up = si > 0 ? f.skip_hw[si - 1] : f.skip_hw[0];
        if ((st = run_block(ctx, blk, &ws, bufs, h, &H, &W, up, &h, err)))
            goto out;
        c = blk->cout;
        if (cancelled(a)) {
            st = SD_CANCELLED;
            goto out;
        }
    }

    /* ---- 6. out (conv_norm_out, SiLU, conv_out) */
    if ((st = sd_op_groupnorm(ctx, h, ws.t1, B, c, (int64_t)H * W, SD_UNET_GROUPS,
                              u->out_norm_w, u->out_norm_b, SD_UNET_RES_EPS, true, err)) ||
        (st = sd_op_conv2d(ctx, ws.t1, B, c, H, W, u->out_conv_w, u->out_conv_b, &same3, out,
                           err)))
        goto out;
out:
    fwd_free(u, &f);
    return st;
}

sd_status sd_unet_memory(const sd_unet *u, int batch, int height, int width, int ctx_len,
                         size_t *bytes, sd_error *err)
{
    *bytes = 0;
    if (batch < 1 || height < 1 || width < 1 || ctx_len < 1)
        return sd_fail(err, SD_ERR_INVALID_ARG, "UNet: bad latent size %d x %d x %d or "
                       "context length %d", batch, height, width, ctx_len);
    size2 *skip = sd_calloc((size_t)u->n_in + 1, sizeof *skip);
    if (!skip)
        return sd_fail_nomem(err, "UNet skip list");
    const sd_unet_args a = {.batch = batch, .height = height, .width = width,
                            .ctx_len = ctx_len};
    plan p;
    sd_status st = make_plan(u, &a, &p, skip, err);
    sd_free(skip);
    if (st != SD_OK)
        return st;
    size_t floats = p.skips;
    bool ok = true;
    for (int i = 0; i < N_BUF; i++)
        ok = ok && sd_add_ok(floats, p.size[i], &floats);
    if (!ok || !sd_mul_ok(floats, sizeof(float), bytes))
        return sd_fail(err, SD_ERR_TOO_LARGE, "UNet: a %d x %d latent batch of %d is too "
                       "large", height, width, batch);
    return SD_OK;
}
