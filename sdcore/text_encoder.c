/* text_encoder.c - the CLIP text transformer of internal/text_encoder.h.  One forward pass
 * per 77-token window, mirroring transformers' CLIPTextModel (CLIPTextEmbeddings,
 * CLIPEncoderLayer with pre-LayerNorm, causal self-attention, CLIPMLP, final_layer_norm).
 * SD 2.x's OpenCLIP tower arrives already renamed by the loader, so the same code serves.
 * It always multiplies in float32, even on a ctx in bf16 precision: on the golden tiny
 * OpenCLIP tower bf16 products moved the hidden states by 1.05e-2 relative L2 (the UNet stays
 * below 7e-3), for a network that is 1-2 % of a generation's work.  And it never packs its
 * weights (ops on the sgemm path, f16 blocks converted as they are used): it runs once or
 * twice per generation on 77 rows, where a packed float32 copy would cost 0.3 GB (CLIP-L) to
 * 1.2 GB (OpenCLIP-H) of memory and 1.5-3 s of packing on the first run, to save about
 * 0.1-0.2 s per later run (measured with `sd bench --only text_clip_l_b2`). */
#include "internal/text_encoder.h"

#include "internal/ctx.h"
#include "internal/model.h"
#include "internal/ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The tensors of one encoder layer (transformers CLIPEncoderLayer). */
typedef struct text_layer {
    const sd_tensor *ln1_w, *ln1_b;        /* [D] */
    const sd_tensor *q_w, *q_b;            /* [D, D], [D] */
    const sd_tensor *k_w, *k_b;
    const sd_tensor *v_w, *v_b;
    const sd_tensor *o_w, *o_b;            /* out_proj */
    const sd_tensor *ln2_w, *ln2_b;        /* [D] */
    const sd_tensor *fc1_w, *fc1_b;        /* [I, D], [I] */
    const sd_tensor *fc2_w, *fc2_b;        /* [D, I], [D] */
} text_layer;

typedef struct text_net {
    int64_t vocab, dim, inner;             /* V, D, I */
    int n_layers, heads;
    sd_activation act;
    float eps;
    const sd_tensor *tok_emb;              /* [V, D] */
    const sd_tensor *pos_emb;              /* [77, D] */
    const sd_tensor *final_w, *final_b;    /* [D] */
    text_layer *layers;                    /* [n_layers] */
} text_net;

enum { MAX_LAYERS = 64 };

int sd_text_hidden_size(const sd_model *m)
{
    const sd_tensor *t = sd_model_tensor(m, "text_model.embeddings.token_embedding.weight");
    return t && t->ndim == 2 ? (int)t->shape[1] : 0;
}

static bool is_vec(const sd_tensor *t, int64_t n)
{
    return t->ndim == 1 && t->shape[0] == n;
}

static bool is_mat(const sd_tensor *t, int64_t rows, int64_t cols)
{
    return t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols;
}

/* Find and shape-check every tensor; *net->layers is allocated here. */
static sd_status build_net(const sd_model *m, text_net *net, sd_error *err)
{
    const sd_model_hparams *hp = sd_model_get_hparams(m);
    sd_status st;
    memset(net, 0, sizeof *net);
    const char *p = "text_model";
    if ((st = sd_model_need(m, err, &net->tok_emb, "%s.embeddings.token_embedding.weight", p)) ||
        (st = sd_model_need(m, err, &net->pos_emb, "%s.embeddings.position_embedding.weight",
                            p)) ||
        (st = sd_model_need(m, err, &net->final_w, "%s.final_layer_norm.weight", p)) ||
        (st = sd_model_need(m, err, &net->final_b, "%s.final_layer_norm.bias", p)))
        return st;
    if (net->tok_emb->ndim != 2 || net->pos_emb->ndim != 2)
        return sd_fail(err, SD_ERR_FORMAT, "text encoder: embeddings are not matrices");
    net->vocab = net->tok_emb->shape[0];
    net->dim = net->tok_emb->shape[1];
    if (!is_mat(net->pos_emb, SD_TEXT_WINDOW, net->dim) || !is_vec(net->final_w, net->dim) ||
        !is_vec(net->final_b, net->dim))
        return sd_fail(err, SD_ERR_FORMAT,
                       "text encoder: position embedding or final norm has the wrong shape");
    while (net->n_layers < MAX_LAYERS &&
           sd_model_tensorf(m, "%s.encoder.layers.%d.layer_norm1.weight", p, net->n_layers))
        net->n_layers++;
    if (net->n_layers == 0)
        return sd_fail(err, SD_ERR_FORMAT, "text encoder has no layers");
    net->heads = hp->text_heads;
    if (net->heads <= 0 || net->dim % net->heads != 0)
        return sd_fail(err, SD_ERR_FORMAT, "text encoder: %d heads do not divide width %lld",
                       net->heads, (long long)net->dim);
    net->act = hp->text_act;
    net->eps = hp->text_eps;
    net->layers = sd_calloc((size_t)net->n_layers, sizeof *net->layers);
    if (!net->layers)
        return sd_fail_nomem(err, "text encoder");

    const int64_t D = net->dim;
    for (int i = 0; i < net->n_layers; i++) {
        text_layer *L = &net->layers[i];
        char b[96];
        snprintf(b, sizeof b, "%s.encoder.layers.%d", p, i);
        if ((st = sd_model_need(m, err, &L->ln1_w, "%s.layer_norm1.weight", b)) ||
            (st = sd_model_need(m, err, &L->ln1_b, "%s.layer_norm1.bias", b)) ||
            (st = sd_model_need(m, err, &L->q_w, "%s.self_attn.q_proj.weight", b)) ||
            (st = sd_model_need(m, err, &L->q_b, "%s.self_attn.q_proj.bias", b)) ||
            (st = sd_model_need(m, err, &L->k_w, "%s.self_attn.k_proj.weight", b)) ||
            (st = sd_model_need(m, err, &L->k_b, "%s.self_attn.k_proj.bias", b)) ||
            (st = sd_model_need(m, err, &L->v_w, "%s.self_attn.v_proj.weight", b)) ||
            (st = sd_model_need(m, err, &L->v_b, "%s.self_attn.v_proj.bias", b)) ||
            (st = sd_model_need(m, err, &L->o_w, "%s.self_attn.out_proj.weight", b)) ||
            (st = sd_model_need(m, err, &L->o_b, "%s.self_attn.out_proj.bias", b)) ||
            (st = sd_model_need(m, err, &L->ln2_w, "%s.layer_norm2.weight", b)) ||
            (st = sd_model_need(m, err, &L->ln2_b, "%s.layer_norm2.bias", b)) ||
            (st = sd_model_need(m, err, &L->fc1_w, "%s.mlp.fc1.weight", b)) ||
            (st = sd_model_need(m, err, &L->fc1_b, "%s.mlp.fc1.bias", b)) ||
            (st = sd_model_need(m, err, &L->fc2_w, "%s.mlp.fc2.weight", b)) ||
            (st = sd_model_need(m, err, &L->fc2_b, "%s.mlp.fc2.bias", b))) {
            sd_free(net->layers);
            net->layers = NULL;
            return st;
        }
        if (i == 0)
            net->inner = L->fc1_w->ndim == 2 ? L->fc1_w->shape[0] : 0;
        const int64_t I = net->inner;
        bool ok = is_vec(L->ln1_w, D) && is_vec(L->ln1_b, D) && is_vec(L->ln2_w, D) &&
                  is_vec(L->ln2_b, D) && is_mat(L->q_w, D, D) && is_mat(L->k_w, D, D) &&
                  is_mat(L->v_w, D, D) && is_mat(L->o_w, D, D) && is_vec(L->q_b, D) &&
                  is_vec(L->k_b, D) && is_vec(L->v_b, D) && is_vec(L->o_b, D) &&
                  I > 0 && is_mat(L->fc1_w, I, D) && is_vec(L->fc1_b, I) &&
                  is_mat(L->fc2_w, D, I) && is_vec(L->fc2_b, D);
        if (!ok) {
            sd_free(net->layers);
            net->layers = NULL;
            return sd_fail(err, SD_ERR_FORMAT, "text encoder layer %d has ill-shaped tensors",
                           i);
        }
    }
    return SD_OK;
}

/* Working memory of one window. */
typedef struct text_work {
    float *x;      /* [77, D] residual stream */
    float *h;      /* [77, D] normed input of a sub-block */
    float *q, *k, *v, *a; /* [77, D] each */
    float *mlp;    /* [77, I] */
} text_work;

/* CLIPEncoderLayer.forward: x += attn(ln1(x)); x += mlp(ln2(x)). */
static sd_status run_layer(sd_ctx *ctx, const text_net *net, const text_layer *L, text_work *w,
                           sd_error *err)
{
    const int64_t T = SD_TEXT_WINDOW, D = net->dim, I = net->inner;
    sd_status st;
    /* self-attention block (CLIPAttention with the causal mask only, as the SD pipelines) */
    if ((st = sd_op_layernorm(ctx, w->x, w->h, T, D, L->ln1_w, L->ln1_b, net->eps, err)) ||
        (st = sd_op_linear(ctx, w->h, T, D, L->q_w, L->q_b, w->q, err)) ||
        (st = sd_op_linear(ctx, w->h, T, D, L->k_w, L->k_b, w->k, err)) ||
        (st = sd_op_linear(ctx, w->h, T, D, L->v_w, L->v_b, w->v, err)))
        return st;
    const int dh = (int)(D / net->heads);
    sd_attn_params ap = {
        .batch = 1, .heads = net->heads, .dh = dh, .lq = T, .lk = T,
        .q_rs = D, .k_rs = D, .v_rs = D, .o_rs = D,
        .scale = 1.0f / sqrtf((float)dh), .causal = true,
    };
    if ((st = sd_op_attention(ctx, w->q, w->k, w->v, w->a, &ap, err)) ||
        (st = sd_op_linear(ctx, w->a, T, D, L->o_w, L->o_b, w->h, err)))
        return st;
    sd_op_add(ctx, w->x, w->h, T * D);

    /* MLP block (CLIPMLP: fc1, activation, fc2) */
    if ((st = sd_op_layernorm(ctx, w->x, w->h, T, D, L->ln2_w, L->ln2_b, net->eps, err)) ||
        (st = sd_op_linear(ctx, w->h, T, D, L->fc1_w, L->fc1_b, w->mlp, err)))
        return st;
    if (net->act == SD_ACT_QUICK_GELU)
        sd_op_quick_gelu(ctx, w->mlp, T * I);
    else
        sd_op_gelu(ctx, w->mlp, T * I);
    if ((st = sd_op_linear(ctx, w->mlp, T, I, L->fc2_w, L->fc2_b, w->h, err)))
        return st;
    sd_op_add(ctx, w->x, w->h, T * D);
    return SD_OK;
}

/* CLIPTextEmbeddings: token embedding of each id + position embedding. */
static sd_status embed(const sd_ctx *ctx, const text_net *net, const int32_t *ids,
                       const float *pos, float *x, sd_error *err)
{
    const int64_t D = net->dim;
    const size_t esz = sd_dtype_size(net->tok_emb->dtype);
    for (int t = 0; t < SD_TEXT_WINDOW; t++) {
        if (ids[t] < 0 || ids[t] >= net->vocab)
            return sd_fail(err, SD_ERR_INVALID_ARG, "token id %d outside the vocabulary (%lld)",
                           ids[t], (long long)net->vocab);
        sd_tensor row = *net->tok_emb;
        row.ndim = 1;
        row.shape[0] = D;
        row.stride[0] = 1;
        row.owned = false;
        row.data = (char *)net->tok_emb->data + (size_t)ids[t] * (size_t)D * esz;
        sd_status st = sd_tensor_to_f32(ctx, &row, x + t * D, D, err);
        if (st)
            return st;
        for (int64_t i = 0; i < D; i++)
            x[t * D + i] += pos[t * D + i];
    }
    return SD_OK;
}

/* A1111's emphasis: scale each token's hidden state by its weight, then restore the
 * window's original mean. */
static void apply_weights(float *z, const float *weights, int64_t D)
{
    bool any = false;
    for (int t = 0; t < SD_TEXT_WINDOW; t++)
        any |= weights[t] != 1.0f;
    if (!any)
        return;
    const int64_t n = SD_TEXT_WINDOW * D;
    double before = 0, after = 0;
    for (int64_t i = 0; i < n; i++)
        before += z[i];
    for (int t = 0; t < SD_TEXT_WINDOW; t++)
        for (int64_t i = 0; i < D; i++) {
            z[t * D + i] *= weights[t];
            after += z[t * D + i];
        }
    if (after == 0)
        return;
    const float r = (float)(before / after);
    for (int64_t i = 0; i < n; i++)
        z[i] *= r;
}

sd_status sd_text_encode(sd_ctx *ctx, const sd_model *m, const int32_t *ids, const float *weights,
                         int n_chunks, int clip_skip, float *out, sd_error *err)
{
    if (sd_text_hidden_size(m) == 0)
        return sd_fail(err, SD_ERR_INVALID_ARG, "the model has no text encoder");
    if (n_chunks < 1)
        return sd_fail(err, SD_ERR_INVALID_ARG, "no token windows to encode");
    text_net net;
    sd_status st = build_net(m, &net, err);
    if (st)
        return st;
    if (clip_skip < 0 || clip_skip >= net.n_layers) {
        sd_free(net.layers);
        return sd_fail(err, SD_ERR_INVALID_ARG, "clip skip %d out of range 0..%d", clip_skip,
                       net.n_layers - 1);
    }
    const int64_t T = SD_TEXT_WINDOW, D = net.dim, I = net.inner;
    text_work w = {0};
    bool bf16 = ctx->bf16, packed = ctx->packed;
    ctx->bf16 = false;
    ctx->packed = false;
    float *pos = sd_malloc((size_t)(T * D) * sizeof(float));
    float *buf = sd_malloc((size_t)(T * (6 * D + I)) * sizeof(float));
    if (!pos || !buf) {
        st = sd_fail_nomem(err, "text encoder activations");
        goto out;
    }
    w.x = buf;
    w.h = w.x + T * D;
    w.q = w.h + T * D;
    w.k = w.q + T * D;
    w.v = w.k + T * D;
    w.a = w.v + T * D;
    w.mlp = w.a + T * D;
    if ((st = sd_tensor_to_f32(ctx, net.pos_emb, pos, T * D, err)))
        goto out;
    for (int c = 0; c < n_chunks; c++) {
        if ((st = embed(ctx, &net, ids + c * T, pos, w.x, err)))
            goto out;
        for (int l = 0; l < net.n_layers - clip_skip; l++)
            if ((st = run_layer(ctx, &net, &net.layers[l], &w, err)))
                goto out;
        float *z = out + (size_t)c * (size_t)(T * D);
        if ((st = sd_op_layernorm(ctx, w.x, z, T, D, net.final_w, net.final_b, net.eps, err)))
            goto out;
        if (weights)
            apply_weights(z, weights + c * T, D);
    }
out:
    ctx->bf16 = bf16;
    ctx->packed = packed;
    sd_free(buf);
    sd_free(pos);
    sd_free(net.layers);
    return st;
}
