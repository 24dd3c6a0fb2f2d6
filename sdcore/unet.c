/* unet.c - builds the UNet's network description (internal/unet_net.h) from the tensors of
 * a loaded model, because the same code must serve the tiny test models and every real
 * SD 1.x / 2.x checkpoint: levels, channels, ResBlocks per level, where the transformers
 * sit, proj_in as Linear or 1x1 conv, 4 or 9 input channels, context width and transformer
 * depth are all read off the canonical "model.diffusion_model.*" names and shapes.  Every
 * tensor is checked here (presence, float dtype, shape, channel flow through the skip
 * connections), so the forward pass (unet_forward.c) never meets a malformed weight. */
#include "internal/model.h"
#include "internal/unet_net.h"

#include <stdio.h>
#include <string.h>

#define PFX "model.diffusion_model."
#define ANY (-1)

typedef struct builder {
    const sd_model *m;
    const sd_model_hparams *hp;
    sd_error *err;
    sd_unet *u;
    int levels;               /* resolution levels seen so far (DOWN layers + 1) */
} builder;

/* ==== tensor lookup ===================================================================== */

static void shape_str(char *buf, size_t n, int ndim, const int64_t *d)
{
    size_t len = 0;
    len += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && len < n; i++)
        len += d[i] == ANY ? (size_t)snprintf(buf + len, n - len, "%s*", i ? ", " : "")
                           : (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "",
                                              (long long)d[i]);
    if (len < n)
        snprintf(buf + len, n - len, "]");
}

/* *out = the tensor <prefix>.<name>, which must be a float tensor of ndim dimensions
 * matching every dims[i] that is not ANY.  Errors name the tensor. */
static sd_status get(builder *b, const sd_tensor **out, const char *prefix, const char *name,
                     int ndim, const int64_t *dims)
{
    sd_status st = sd_model_need(b->m, b->err, out, PFX "%s.%s", prefix, name);
    if (st != SD_OK)
        return st;
    const sd_tensor *t = *out;
    if (t->dtype != SD_DTYPE_F32 && t->dtype != SD_DTYPE_F16 && t->dtype != SD_DTYPE_BF16)
        return sd_fail(b->err, SD_ERR_FORMAT, "UNet tensor " PFX "%s.%s has dtype %s, not a "
                       "float type", prefix, name, sd_dtype_name(t->dtype));
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = dims[i] == ANY || t->shape[i] == dims[i];
    if (!ok) {
        char have[80], want[80];
        shape_str(have, sizeof have, t->ndim, t->shape);
        shape_str(want, sizeof want, ndim, dims);
        return sd_fail(b->err, SD_ERR_FORMAT, "UNet tensor " PFX "%s.%s has shape %s, "
                       "expected %s", prefix, name, have, want);
    }
    return SD_OK;
}

/* A projection stored either as a Linear weight [n, k] or a 1x1 conv weight [n, k, 1, 1]
 * (the linear op takes both).  *linear tells which. */
static sd_status get_proj(builder *b, const sd_tensor **out, const char *prefix,
                          const char *name, int64_t n, int64_t k, bool *linear)
{
    const sd_tensor *t = sd_model_tensorf(b->m, PFX "%s.%s", prefix, name);
    *linear = t && t->ndim == 2;
    return *linear ? get(b, out, prefix, name, 2, (int64_t[]){n, k})
                   : get(b, out, prefix, name, 4, (int64_t[]){n, k, 1, 1});
}

static bool has(const builder *b, const char *prefix, const char *name)
{
    return sd_model_tensorf(b->m, PFX "%s.%s", prefix, name) != NULL;
}

static bool has_any(const builder *b, const char *prefix, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (has(b, prefix, names[i]))
            return true;
    return false;
}

/* ==== layer kinds ======================================================================= */

static const char *const res_probe[] = {
    "in_layers.0.weight", "in_layers.2.weight", "emb_layers.1.weight",
    "out_layers.0.weight", "out_layers.3.weight"};
static const char *const xf_probe[] = {
    "norm.weight", "proj_in.weight", "proj_out.weight", "transformer_blocks.0.norm1.weight",
    "transformer_blocks.0.attn1.to_q.weight"};
static const char *const down_probe[] = {"op.weight", "op.bias"};
static const char *const up_probe[] = {"conv.weight", "conv.bias"};
static const char *const tblock_probe[] = {
    "norm1.weight", "attn1.to_q.weight", "attn2.to_q.weight", "ff.net.0.proj.weight",
    "norm3.weight"};

static const char *kind_name(sd_unet_kind k)
{
    switch (k) {
    case SD_UNET_RES: return "ResBlock";
    case SD_UNET_XF: return "SpatialTransformer";
    case SD_UNET_DOWN: return "Downsample";
    case SD_UNET_UP: return "Upsample";
    }
    return "?";
}

/* Which layer lives under prefix: *found false if none.  A prefix with tensors of two
 * kinds is corrupt. */
static sd_status probe(builder *b, const char *prefix, bool *found, sd_unet_kind *kind)
{
    const struct {
        sd_unet_kind kind;
        const char *const *names;
        size_t n;
    } kinds[] = {
        {SD_UNET_RES, res_probe, SD_ARRAY_LEN(res_probe)},
        {SD_UNET_XF, xf_probe, SD_ARRAY_LEN(xf_probe)},
        {SD_UNET_DOWN, down_probe, SD_ARRAY_LEN(down_probe)},
        {SD_UNET_UP, up_probe, SD_ARRAY_LEN(up_probe)},
    };
    *found = false;
    for (size_t i = 0; i < SD_ARRAY_LEN(kinds); i++) {
        if (!has_any(b, prefix, kinds[i].names, kinds[i].n))
            continue;
        if (*found)
            return sd_fail(b->err, SD_ERR_FORMAT, "UNet " PFX "%s mixes tensors of a %s and "
                           "a %s", prefix, kind_name(*kind), kind_name(kinds[i].kind));
        *found = true;
        *kind = kinds[i].kind;
    }
    return SD_OK;
}

static sd_status check_groups(builder *b, const char *prefix, int c)
{
    if (c % SD_UNET_GROUPS)
        return sd_fail(b->err, SD_ERR_FORMAT, "UNet " PFX "%s: %d channels cannot form %d "
                       "groups for GroupNorm", prefix, c, SD_UNET_GROUPS);
    return SD_OK;
}

/* ==== ResBlock ========================================================================== */

static sd_status build_res(builder *b, const char *p, int cin, sd_unet_layer *l)
{
    sd_unet_res *r = &l->res;
    int64_t temb = b->u->temb_dim;
    sd_status st;
    if ((st = get(b, &r->in_norm_w, p, "in_layers.0.weight", 1, (int64_t[]){cin})) ||
        (st = get(b, &r->in_norm_b, p, "in_layers.0.bias", 1, (int64_t[]){cin})) ||
        (st = get(b, &r->in_conv_w, p, "in_layers.2.weight", 4, (int64_t[]){ANY, cin, 3, 3})))
        return st;
    int64_t cout = r->in_conv_w->shape[0];
    if (cout < 1 || cout > INT32_MAX)
        return sd_fail(b->err, SD_ERR_FORMAT, "UNet " PFX "%s: bad width %lld", p,
                       (long long)cout);
    if ((st = get(b, &r->in_conv_b, p, "in_layers.2.bias", 1, (int64_t[]){cout})) ||
        (st = get(b, &r->emb_w, p, "emb_layers.1.weight", 2, (int64_t[]){cout, temb})) ||
        (st = get(b, &r->emb_b, p, "emb_layers.1.bias", 1, (int64_t[]){cout})) ||
        (st = get(b, &r->out_norm_w, p, "out_layers.0.weight", 1, (int64_t[]){cout})) ||
        (st = get(b, &r->out_norm_b, p, "out_layers.0.bias", 1, (int64_t[]){cout})) ||
        (st = get(b, &r->out_conv_w, p, "out_layers.3.weight", 4,
                  (int64_t[]){cout, cout, 3, 3})) ||
        (st = get(b, &r->out_conv_b, p, "out_layers.3.bias", 1, (int64_t[]){cout})))
        return st;
    if (has(b, p, "skip_connection.weight") || has(b, p, "skip_connection.bias")) {
        if ((st = get(b, &r->skip_w, p, "skip_connection.weight", 4,
                      (int64_t[]){cout, cin, 1, 1})) ||
            (st = get(b, &r->skip_b, p, "skip_connection.bias", 1, (int64_t[]){cout})))
            return st;
    } else if (cout != cin) {
        return sd_fail(b->err, SD_ERR_FORMAT, "UNet " PFX "%s: ResBlock maps %d to %lld "
                       "channels but has no skip_connection", p, cin, (long long)cout);
    }
    r->cin = cin;
    r->cout = (int)cout;
    l->cin = cin;
    l->cout = (int)cout;
    if ((st = check_groups(b, p, cin)) || (st = check_groups(b, p, (int)cout)))
        return st;
    return SD_OK;
}

/* ==== SpatialTransformer ================================================================ */

static sd_status build_attn(builder *b, const char *p, const char *which, int64_t inner,
                            int64_t kv_dim, sd_unet_attn *a)
{
    char n[64];
    sd_status st;
    snprintf(n, sizeof n, "%s.to_q.weight", which);
    if ((st = get(b, &a->q, p, n, 2, (int64_t[]){inner, inner})))
        return st;
    snprintf(n, sizeof n, "%s.to_k.weight", which);
    if ((st = get(b, &a->k, p, n, 2, (int64_t[]){inner, kv_dim})))
        return st;
    snprintf(n, sizeof n, "%s.to_v.weight", which);
    if ((st = get(b, &a->v, p, n, 2, (int64_t[]){inner, kv_dim})))
        return st;
    snprintf(n, sizeof n, "%s.to_out.0.weight", which);
    if ((st = get(b, &a->out_w, p, n, 2, (int64_t[]){inner, inner})))
        return st;
    snprintf(n, sizeof n, "%s.to_out.0.bias", which);
    return get(b, &a->out_b, p, n, 1, (int64_t[]){inner});
}

static sd_status build_tblock(builder *b, const char *p, sd_unet_xf *t, sd_unet_tblock *tb)
{
    int64_t inner = t->inner;
    sd_unet_info *info = &b->u->info;
    sd_status st;
    if ((st = get(b, &tb->norm1_w, p, "norm1.weight", 1, (int64_t[]){inner})) ||
        (st = get(b, &tb->norm1_b, p, "norm1.bias", 1, (int64_t[]){inner})) ||
        (st = get(b, &tb->norm2_w, p, "norm2.weight", 1, (int64_t[]){inner})) ||
        (st = get(b, &tb->norm2_b, p, "norm2.bias", 1, (int64_t[]){inner})) ||
        (st = get(b, &tb->norm3_w, p, "norm3.weight", 1, (int64_t[]){inner})) ||
        (st = get(b, &tb->norm3_b, p, "norm3.bias", 1, (int64_t[]){inner})) ||
        (st = build_attn(b, p, "attn1", inner, inner, &tb->attn1)))
        return st;
    /* the context width comes from the first cross-attention; all must agree */
    const sd_tensor *k2 = sd_model_tensorf(b->m, PFX "%s.attn2.to_k.weight", p);
    if (info->context_dim == 0 && k2 && k2->ndim == 2 && k2->shape[1] > 0 &&
        k2->shape[1] <= INT32_MAX)
        info->context_dim = (int)k2->shape[1];
    if ((st = build_attn(b, p, "attn2", inner, info->context_dim ? info->context_dim : ANY,
                         &tb->attn2)) ||
        (st = get(b, &tb->ff_in_w, p, "ff.net.0.proj.weight", 2, (int64_t[]){ANY, inner})))
        return st;
    int64_t ff2 = tb->ff_in_w->shape[0];
    if (ff2 < 2 || ff2 % 2 || ff2 / 2 > INT32_MAX || (t->ff && ff2 / 2 != t->ff))
        return sd_fail(b->err, SD_ERR_FORMAT, "UNet " PFX "%s.ff.net.0.proj.weight: GEGLU "
                       "width %lld is not twice the feed-forward width", p, (long long)ff2);
    t->ff = (int)(ff2 / 2);
    if ((st = get(b, &tb->ff_in_b, p, "ff.net.0.proj.bias", 1, (int64_t[]){ff2})) ||
        (st = get(b, &tb->ff_out_w, p, "ff.net.2.weight", 2, (int64_t[]){inner, t->ff})) ||
        (st = get(b, &tb->ff_out_b, p, "ff.net.2.bias", 1, (int64_t[]){inner})))
        return st;
    return SD_OK;
}

static sd_status build_xf(builder *b, const char *p, int c, int level, sd_unet_layer *l)
{
    sd_unet_xf *t = &l->xf;
    sd_status st;
    bool lin_in, lin_out;
    if ((st = get(b, &t->norm_w, p, "norm.weight", 1, (int64_t[]){c})) ||
        (st = get(b, &t->norm_b, p, "norm.bias", 1, (int64_t[]){c})) ||
        (st = check_groups(b, p, c)) ||
        (st = get_proj(b, &t->proj_in_w, p, "proj_in.weight", ANY, c, &lin_in)))
        return st;
    int64_t inner = t->proj_in_w->shape[0];
    if (inner < 1 || inner > INT32_MAX)
        return sd_fail(b->err, SD_ERR_FORMAT, "UNet " PFX "%s: bad transformer width %lld", p,
                       (long long)inner);
    if ((st = get(b, &t->proj_in_b, p, "proj_in.bias", 1, (int64_t[]){inner})) ||
        (st = get_proj(b, &t->proj_out_w, p, "proj_out.weight", c, inner, &lin_out)) ||
        (st = get(b, &t->proj_out_b, p, "proj_out.bias", 1, (int64_t[]){c})))
        return st;
    t->c = c;
    t->inner = (int)inner;
    t->heads = b->hp->unet_heads[level];
    if (t->heads < 1 || inner % t->heads)
        return sd_fail(b->err, SD_ERR_FORMAT, "UNet " PFX "%s: %d attention heads (level %d) "
                       "do not divide the width %lld", p, t->heads, level, (long long)inner);
    t->dh = (int)(inner / t->heads);

    char tp[128];
    int depth = 0;
    for (;; depth++) {
        snprintf(tp, sizeof tp, "%s.transformer_blocks.%d", p, depth);
        if (!has_any(b, tp, tblock_probe, SD_ARRAY_LEN(tblock_probe)))
            break;
        if (depth == 64)
            return sd_fail(b->err, SD_ERR_UNSUPPORTED, "UNet " PFX "%s: more than 64 "
                           "transformer blocks", p);
    }
    if (depth == 0)
        return sd_fail(b->err, SD_ERR_FORMAT, "UNet " PFX "%s: transformer without "
                       "transformer_blocks.0", p);
    t->blocks = sd_calloc((size_t)depth, sizeof *t->blocks);
    if (!t->blocks)
        return sd_fail_nomem(b->err, "UNet transformer blocks");
    t->depth = depth;
    for (int i = 0; i < depth; i++) {
        snprintf(tp, sizeof tp, "%s.transformer_blocks.%d", p, i);
        if ((st = build_tblock(b, tp, t, &t->blocks[i])))
            return st;
    }
    if (b->u->info.n_transformers++ == 0)
        b->u->info.linear_proj = lin_in && lin_out;
    l->cin = l->cout = c;
    return SD_OK;
}

/* ==== blocks ============================================================================ */

static sd_status build_conv(builder *b, const char *p, const char *name, int c,
                            sd_unet_layer *l)
{
    char n[32];
    sd_status st;
    snprintf(n, sizeof n, "%s.weight", name);
    if ((st = get(b, &l->conv_w, p, n, 4, (int64_t[]){c, c, 3, 3})))
        return st;
    snprintf(n, sizeof n, "%s.bias", name);
    if ((st = get(b, &l->conv_b, p, n, 1, (int64_t[]){c})))
        return st;
    l->cin = l->cout = c;
    return SD_OK;
}

typedef enum { PART_INPUT, PART_MIDDLE, PART_OUTPUT } part;

/* Build the TimestepEmbedSequential at "<name>" starting with cin channels at *level. */
static sd_status build_block(builder *b, const char *name, part where, int cin, int *level,
                             sd_unet_block *blk)
{
    blk->cin = cin;
    blk->level = *level;
    int c = cin;
    char p[96];
    sd_status st;
    for (int k = 0; k <= SD_UNET_MAX_LAYERS; k++) {
        snprintf(p, sizeof p, "%s.%d", name, k);
        bool found;
        sd_unet_kind kind = SD_UNET_RES;
        if ((st = probe(b, p, &found, &kind)))
            return st;
        if (!found)
            break;
        if (k == SD_UNET_MAX_LAYERS)
            return sd_fail(b->err, SD_ERR_UNSUPPORTED, "UNet " PFX "%s: more than %d layers "
                           "in one block", name, SD_UNET_MAX_LAYERS);
        if ((kind == SD_UNET_DOWN && where != PART_INPUT) ||
            (kind == SD_UNET_UP && where != PART_OUTPUT))
            return sd_fail(b->err, SD_ERR_FORMAT, "UNet " PFX "%s: unexpected %s", p,
                           kind_name(kind));
        sd_unet_layer *l = &blk->layers[k];
        l->kind = kind;
        switch (kind) {
        case SD_UNET_RES: st = build_res(b, p, c, l); break;
        case SD_UNET_XF: st = build_xf(b, p, c, *level, l); break;
        case SD_UNET_DOWN: st = build_conv(b, p, "op", c, l); break;
        case SD_UNET_UP: st = build_conv(b, p, "conv", c, l); break;
        }
        if (st)
            return st;
        blk->n_layers = k + 1;
        c = l->cout;
        if (kind == SD_UNET_DOWN) {
            if (++*level >= SD_UNET_MAX_LEVELS)
                return sd_fail(b->err, SD_ERR_UNSUPPORTED, "UNet with more than %d "
                               "resolution levels", SD_UNET_MAX_LEVELS);
            b->levels = SD_MAX(b->levels, *level + 1);
        } else if (kind == SD_UNET_UP) {
            if (--*level < 0)
                return sd_fail(b->err, SD_ERR_FORMAT, "UNet " PFX "%s: more upsamplers than "
                               "downsamplers", p);
        }
    }
    if (blk->n_layers == 0)
        return sd_fail(b->err, SD_ERR_FORMAT, "UNet " PFX "%s is empty", name);
    blk->cout = c;
    return SD_OK;
}

/* Number of consecutive blocks "<part>.<i>" from i = first that hold any layer.  A gap
 * followed by more blocks means a block is missing. */
static sd_status count_blocks(builder *b, const char *partname, int first, int *n)
{
    char p[64];
    int i = first;
    for (;; i++) {
        bool found;
        sd_unet_kind kind = SD_UNET_RES;
        sd_status st;
        snprintf(p, sizeof p, "%s.%d.0", partname, i);
        if ((st = probe(b, p, &found, &kind)))
            return st;
        if (!found)
            break;
        if (i == 1000)
            return sd_fail(b->err, SD_ERR_UNSUPPORTED, "UNet with over 1000 %s", partname);
    }
    for (int j = i + 1; j < i + 4; j++) {
        snprintf(p, sizeof p, "%s.%d.0", partname, j);
        bool found;
        sd_unet_kind kind = SD_UNET_RES;
        sd_status st = probe(b, p, &found, &kind);
        if (st)
            return st;
        if (found)
            return sd_fail(b->err, SD_ERR_FORMAT, "UNet " PFX "%s.%d is missing", partname, i);
    }
    *n = i - first;
    return SD_OK;
}

/* ==== the whole network ================================================================= */

static sd_status build(builder *b)
{
    sd_unet *u = b->u;
    sd_status st;

    /* conv_in and the time embedding MLP */
    if (!has(b, "input_blocks.0.0", "weight") && !has(b, "time_embed.0", "weight"))
        return sd_fail(b->err, SD_ERR_FORMAT, "model has no UNet (no " PFX "* tensors)");
    if ((st = get(b, &u->conv_in_w, "input_blocks.0.0", "weight", 4,
                  (int64_t[]){ANY, ANY, 3, 3})))
        return st;
    int64_t mc = u->conv_in_w->shape[0], cin = u->conv_in_w->shape[1];
    if (mc < 1 || mc > INT32_MAX || cin < 1 || cin > INT32_MAX)
        return sd_fail(b->err, SD_ERR_FORMAT, "UNet input_blocks.0.0.weight: bad shape");
    u->info.model_channels = (int)mc;
    u->info.in_channels = (int)cin;
    if ((st = get(b, &u->conv_in_b, "input_blocks.0.0", "bias", 1, (int64_t[]){mc})) ||
        (st = get(b, &u->temb1_w, "time_embed.0", "weight", 2, (int64_t[]){ANY, ANY})))
        return st;
    int64_t temb = u->temb1_w->shape[0], sin_dim = u->temb1_w->shape[1];
    if (temb < 1 || temb > INT32_MAX || sin_dim < 2 || sin_dim % 2 || sin_dim > INT32_MAX)
        return sd_fail(b->err, SD_ERR_FORMAT, "UNet time_embed.0.weight: bad shape [%lld, "
                       "%lld]", (long long)temb, (long long)sin_dim);
    u->temb_dim = (int)temb;
    u->sin_dim = (int)sin_dim;
    if ((st = get(b, &u->temb1_b, "time_embed.0", "bias", 1, (int64_t[]){temb})) ||
        (st = get(b, &u->temb2_w, "time_embed.2", "weight", 2, (int64_t[]){temb, temb})) ||
        (st = get(b, &u->temb2_b, "time_embed.2", "bias", 1, (int64_t[]){temb})))
        return st;

    /* input blocks: every block's output is a skip connection (so is conv_in's) */
    if ((st = count_blocks(b, "input_blocks", 1, &u->n_in)))
        return st;
    u->in = sd_calloc((size_t)u->n_in + 1, sizeof *u->in);
    int *skip_c = sd_calloc((size_t)u->n_in + 1, 2 * sizeof *skip_c);
    if (!u->in || !skip_c) {
        sd_free(skip_c);
        return sd_fail_nomem(b->err, "UNet blocks");
    }
    int *skip_level = skip_c + u->n_in + 1;
    int n_skip = 0, c = (int)mc, level = 0;
    b->levels = 1;
    skip_c[n_skip] = c;
    skip_level[n_skip++] = 0;
    char name[48];
    for (int i = 0; i < u->n_in; i++) {
        snprintf(name, sizeof name, "input_blocks.%d", i + 1);
        if ((st = build_block(b, name, PART_INPUT, c, &level, &u->in[i])))
            goto out;
        c = u->in[i].cout;
        skip_c[n_skip] = c;
        skip_level[n_skip++] = level;
    }

    /* middle block, at the deepest level */
    if ((st = build_block(b, "middle_block", PART_MIDDLE, c, &level, &u->mid)))
        goto out;
    c = u->mid.cout;

    /* output blocks: each concatenates the latest skip first */
    if ((st = count_blocks(b, "output_blocks", 0, &u->n_out)))
        goto out;
    if (u->n_out != n_skip) {
        st = sd_fail(b->err, SD_ERR_FORMAT, "UNet has %d output_blocks for %d skip "
                     "connections", u->n_out, n_skip);
        goto out;
    }
    u->out = sd_calloc((size_t)u->n_out, sizeof *u->out);
    if (!u->out) {
        st = sd_fail_nomem(b->err, "UNet blocks");
        goto out;
    }
    for (int i = 0; i < u->n_out; i++) {
        n_skip--;
        if (level != skip_level[n_skip]) {
            st = sd_fail(b->err, SD_ERR_FORMAT, "UNet output_blocks.%d runs at level %d but "
                         "its skip connection comes from level %d", i, level,
                         skip_level[n_skip]);
            goto out;
        }
        snprintf(name, sizeof name, "output_blocks.%d", i);
        if ((st = build_block(b, name, PART_OUTPUT, c + skip_c[n_skip], &level, &u->out[i])))
            goto out;
        u->out[i].skip_c = skip_c[n_skip];
        if (u->out[i].layers[0].kind != SD_UNET_RES) {
            st = sd_fail(b->err, SD_ERR_FORMAT, "UNet output_blocks.%d does not start with a "
                         "ResBlock", i);
            goto out;
        }
        c = u->out[i].cout;
    }
    if (level != 0) {
        st = sd_fail(b->err, SD_ERR_FORMAT, "UNet output_blocks end at level %d, not 0", level);
        goto out;
    }

    /* out: GroupNorm, SiLU, 3x3 conv */
    if ((st = get(b, &u->out_norm_w, "out.0", "weight", 1, (int64_t[]){c})) ||
        (st = get(b, &u->out_norm_b, "out.0", "bias", 1, (int64_t[]){c})) ||
        (st = check_groups(b, "out.0", c)) ||
        (st = get(b, &u->out_conv_w, "out.2", "weight", 4, (int64_t[]){ANY, c, 3, 3})))
        goto out;
    int64_t oc = u->out_conv_w->shape[0];
    if (oc < 1 || oc > INT32_MAX) {
        st = sd_fail(b->err, SD_ERR_FORMAT, "UNet out.2.weight: bad shape");
        goto out;
    }
    u->info.out_channels = (int)oc;
    if ((st = get(b, &u->out_conv_b, "out.2", "bias", 1, (int64_t[]){oc})))
        goto out;
    if (u->info.n_transformers && u->info.context_dim == 0) {
        st = sd_fail(b->err, SD_ERR_FORMAT, "UNet: cannot tell the context width");
        goto out;
    }
    u->info.levels = b->levels;
out:
    sd_free(skip_c);
    return st;
}

sd_status sd_unet_new(const sd_model *m, sd_unet **out, sd_error *err)
{
    *out = NULL;
    sd_unet *u = sd_calloc(1, sizeof *u);
    if (!u)
        return sd_fail_nomem(err, "UNet");
    builder b = {.m = m, .hp = sd_model_get_hparams(m), .err = err, .u = u};
    sd_status st = build(&b);
    if (st != SD_OK) {
        sd_unet_free(u);
        return st;
    }
    *out = u;
    return SD_OK;
}

static void free_block(sd_unet_block *blk)
{
    for (int k = 0; k < SD_UNET_MAX_LAYERS; k++)
        sd_free(blk->layers[k].xf.blocks);
}

void sd_unet_free(sd_unet *u)
{
    if (!u)
        return;
    for (int i = 0; u->in && i < u->n_in; i++)
        free_block(&u->in[i]);
    free_block(&u->mid);
    for (int i = 0; u->out && i < u->n_out; i++)
        free_block(&u->out[i]);
    sd_free(u->in);
    sd_free(u->out);
    sd_free(u);
}

void sd_unet_get_info(const sd_unet *u, sd_unet_info *out)
{
    *out = u->info;
}
