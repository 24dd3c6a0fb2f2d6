/* model_names.c - the renaming of every supported file layout onto the canonical tensor names
 * of internal/model.h, so each network is written against one naming.  The diffusers ->
 * original (CompVis/LDM) correspondences are the ones diffusers' own conversion script
 * (scripts/convert_diffusers_to_original_stable_diffusion.py) embodies, written here as
 * index arithmetic; OpenCLIP (SD 2.x) text towers are mapped onto Hugging Face CLIP names.
 * Nothing is copied: renamed tensors are views of the mapped files. */
#include "internal/model_load.h"

#include <stdio.h>
#include <string.h>

/* Canonical names are short; a source name this long cannot be one we map. */
enum { NAME_CAP = 256 };

typedef struct mapper {
    const char *what;
    sd_model_emit_fn emit;
    void *user;
    sd_error *err;
} mapper;

/* ---- small name parsers ----------------------------------------------------------------- */

static bool eat(const char **p, const char *lit)
{
    size_t n = strlen(lit);
    if (strncmp(*p, lit, n))
        return false;
    *p += n;
    return true;
}

/* A decimal index (at most 4 digits) followed by '.', both consumed. */
static bool eat_idx(const char **p, int *v)
{
    const char *s = *p;
    int x = 0, k = 0;
    while (s[k] >= '0' && s[k] <= '9' && k < 4)
        x = x * 10 + (s[k++] - '0');
    if (k == 0 || s[k] != '.' || (k > 1 && s[0] == '0'))
        return false;
    *v = x;
    *p = s + k + 1;
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* ---- emission --------------------------------------------------------------------------- */

/* Emit `view` (or the entry's own tensor when view is NULL) under the printf-style name. */
static sd_status put(mapper *mp, const sd_st_entry *e, const sd_tensor *view, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));

static sd_status put(mapper *mp, const sd_st_entry *e, const sd_tensor *view, const char *fmt,
                     ...)
{
    if (!e->usable || !sd_dtype_is_float(e->t.dtype))
        return sd_fail(mp->err, SD_ERR_UNSUPPORTED,
                       "%s: tensor '%.80s' has dtype %s with %d dims (weights must be F32, "
                       "F16 or BF16)", mp->what, e->name, e->dtype_name, e->ndim);
    char name[NAME_CAP];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof name)
        return SD_OK; /* not a name of ours: see NAME_CAP */
    mp->emit(mp->user, name, view ? view : &e->t);
    return SD_OK;
}

/* A view of rows [r0, r0 + rows) of a 2-D tensor, or elements of a 1-D one. */
static sd_tensor row_view(const sd_tensor *t, int64_t r0, int64_t rows)
{
    sd_tensor v = *t;
    v.shape[0] = rows;
    v.data = (char *)t->data + (size_t)(r0 * t->stride[0]) * sd_dtype_size(t->dtype);
    return v;
}

/* A [C_out, C_in] matrix seen as a [C_out, C_in, 1, 1] convolution kernel. */
static sd_tensor conv1x1_view(const sd_tensor *t)
{
    sd_tensor v = *t;
    v.ndim = 4;
    v.shape[2] = v.shape[3] = 1;
    v.stride[2] = v.stride[3] = 1;
    return v;
}

/* ---- original single file (LDM) with CLIP or OpenCLIP text encoder --------------------- */

static int openclip_blocks(const sd_st_file *f)
{
    int n = 0;
    for (size_t i = 0; i < f->n; i++) {
        const char *p = f->entries[i].name;
        int b;
        if (eat(&p, "cond_stage_model.model.transformer.resblocks.") && eat_idx(&p, &b) &&
            b + 1 > n)
            n = b + 1;
    }
    return n;
}

static sd_status map_openclip_fused(mapper *mp, const sd_st_entry *e, int layer, bool weight)
{
    const sd_tensor *t = &e->t;
    bool ok = e->usable && (weight ? t->ndim == 2 && t->shape[0] == 3 * t->shape[1]
                                   : t->ndim == 1 && t->shape[0] % 3 == 0);
    if (!ok)
        return sd_fail(mp->err, SD_ERR_FORMAT,
                       "%s: tensor '%.80s' is not a fused [3D%s] attention projection",
                       mp->what, e->name, weight ? ", D" : "");
    static const char qkv[3] = {'q', 'k', 'v'};
    int64_t d = t->shape[0] / 3;
    for (int i = 0; i < 3; i++) {
        sd_tensor v = row_view(t, i * d, d);
        sd_status st = put(mp, e, &v, "text_model.encoder.layers.%d.self_attn.%c_proj.%s", layer,
                           qkv[i], weight ? "weight" : "bias");
        if (st != SD_OK)
            return st;
    }
    return SD_OK;
}

/* OpenCLIP text tower names (after "cond_stage_model.model.") onto CLIPTextModel names. */
static sd_status map_openclip(mapper *mp, const sd_st_entry *e, const char *p, int n_blocks)
{
    static const char *const sub[][2] = {
        {"ln_1.", "layer_norm1."},
        {"ln_2.", "layer_norm2."},
        {"mlp.c_fc.", "mlp.fc1."},
        {"mlp.c_proj.", "mlp.fc2."},
        {"attn.out_proj.", "self_attn.out_proj."},
    };
    int b;
    if (!strcmp(p, "token_embedding.weight"))
        return put(mp, e, NULL, "text_model.embeddings.token_embedding.weight");
    if (!strcmp(p, "positional_embedding"))
        return put(mp, e, NULL, "text_model.embeddings.position_embedding.weight");
    if (eat(&p, "ln_final."))
        return put(mp, e, NULL, "text_model.final_layer_norm.%s", p);
    if (!eat(&p, "transformer.resblocks.") || !eat_idx(&p, &b))
        return SD_OK; /* text_projection, logit_scale, attn_mask: not used for conditioning */
    if (b == n_blocks - 1)
        return SD_OK; /* SD 2.x conditions on the penultimate block: drop the last */
    if (!strcmp(p, "attn.in_proj_weight"))
        return map_openclip_fused(mp, e, b, true);
    if (!strcmp(p, "attn.in_proj_bias"))
        return map_openclip_fused(mp, e, b, false);
    for (size_t i = 0; i < SD_ARRAY_LEN(sub); i++)
        if (eat(&p, sub[i][0]))
            return put(mp, e, NULL, "text_model.encoder.layers.%d.%s%s", b, sub[i][1], p);
    return SD_OK;
}

static sd_status map_ldm(mapper *mp, const sd_st_file *f)
{
    int n_blocks = openclip_blocks(f);
    for (size_t i = 0; i < f->n; i++) {
        const sd_st_entry *e = &f->entries[i];
        const char *p = e->name;
        sd_status st = SD_OK;
        if (!strncmp(p, "model.diffusion_model.", 22) || !strncmp(p, "first_stage_model.", 18)) {
            st = put(mp, e, NULL, "%s", p);
        } else if (eat(&p, "cond_stage_model.transformer.")) {
            /* older transformers versions saved CLIPTextModel without the text_model level */
            eat(&p, "text_model.");
            if (!ends_with(p, "position_ids"))
                st = put(mp, e, NULL, "text_model.%s", p);
        } else if (eat(&p, "cond_stage_model.model.")) {
            st = map_openclip(mp, e, p, n_blocks);
        }
        if (st != SD_OK)
            return st;
    }
    return SD_OK;
}

/* ---- diffusers UNet2DConditionModel -> LDM UNet ---------------------------------------- */

typedef struct unet_shape {
    int per_level;     /* ResBlocks per down level (layers_per_block; 2 in SD 1.x/2.x) */
    bool up_attn[64];  /* up block i has attentions (decides the upsampler's position) */
} unet_shape;

static void scan_unet(const sd_st_file *f, unet_shape *s)
{
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < f->n; i++) {
        const char *p = f->entries[i].name;
        int a, b;
        if (eat(&p, "down_blocks.0.resnets.") && eat_idx(&p, &a) && a + 1 > s->per_level)
            s->per_level = a + 1;
        p = f->entries[i].name;
        if (eat(&p, "up_blocks.") && eat_idx(&p, &a) && eat(&p, "attentions.") &&
            eat_idx(&p, &b) && a < (int)SD_ARRAY_LEN(s->up_attn))
            s->up_attn[a] = true;
    }
}

/* ResBlock parameter names: diffusers -> LDM. */
static const char *unet_res_part(const char **p)
{
    static const char *const sub[][2] = {
        {"norm1.", "in_layers.0."},  {"conv1.", "in_layers.2."},
        {"norm2.", "out_layers.0."}, {"conv2.", "out_layers.3."},
        {"time_emb_proj.", "emb_layers.1."}, {"conv_shortcut.", "skip_connection."},
    };
    for (size_t i = 0; i < SD_ARRAY_LEN(sub); i++)
        if (eat(p, sub[i][0]))
            return sub[i][1];
    return NULL;
}

static sd_status map_unet_one(mapper *mp, const sd_st_entry *e, const unet_shape *s)
{
#define U "model.diffusion_model."
    static const char *const top[][2] = {
        {"time_embedding.linear_1.", "time_embed.0."},
        {"time_embedding.linear_2.", "time_embed.2."},
        {"conv_in.", "input_blocks.0.0."},
        {"conv_norm_out.", "out.0."},
        {"conv_out.", "out.2."},
    };
    const char *p = e->name, *r;
    int L = s->per_level, i, j;
    for (size_t k = 0; k < SD_ARRAY_LEN(top); k++)
        if (eat(&p, top[k][0]))
            return put(mp, e, NULL, U "%s%s", top[k][1], p);
    if (eat(&p, "down_blocks.") && eat_idx(&p, &i)) {
        if (eat(&p, "resnets.") && eat_idx(&p, &j) && (r = unet_res_part(&p)))
            return put(mp, e, NULL, U "input_blocks.%d.0.%s%s", 1 + i * (L + 1) + j, r, p);
        if (eat(&p, "attentions.") && eat_idx(&p, &j))
            return put(mp, e, NULL, U "input_blocks.%d.1.%s", 1 + i * (L + 1) + j, p);
        if (eat(&p, "downsamplers.0.conv."))
            return put(mp, e, NULL, U "input_blocks.%d.0.op.%s", (i + 1) * (L + 1), p);
        return SD_OK;
    }
    if (eat(&p, "mid_block.")) {
        if (eat(&p, "resnets.") && eat_idx(&p, &j) && (r = unet_res_part(&p)))
            return put(mp, e, NULL, U "middle_block.%d.%s%s", 2 * j, r, p);
        if (eat(&p, "attentions.0."))
            return put(mp, e, NULL, U "middle_block.1.%s", p);
        return SD_OK;
    }
    if (eat(&p, "up_blocks.") && eat_idx(&p, &i)) {
        /* each up level has L + 1 ResBlocks */
        if (eat(&p, "resnets.") && eat_idx(&p, &j) && (r = unet_res_part(&p)))
            return put(mp, e, NULL, U "output_blocks.%d.0.%s%s", i * (L + 1) + j, r, p);
        if (eat(&p, "attentions.") && eat_idx(&p, &j))
            return put(mp, e, NULL, U "output_blocks.%d.1.%s", i * (L + 1) + j, p);
        if (eat(&p, "upsamplers.0."))
            return put(mp, e, NULL, U "output_blocks.%d.%d.%s", i * (L + 1) + L,
                       i < (int)SD_ARRAY_LEN(s->up_attn) && s->up_attn[i] ? 2 : 1, p);
        return SD_OK;
    }
    return SD_OK;
#undef U
}

/* ---- diffusers AutoencoderKL -> LDM VAE -------------------------------------------------- */

static int scan_vae_up(const sd_st_file *f)
{
    int n = 0;
    for (size_t i = 0; i < f->n; i++) {
        const char *p = f->entries[i].name;
        int a;
        if (eat(&p, "decoder.up_blocks.") && eat_idx(&p, &a) && a + 1 > n)
            n = a + 1;
    }
    return n;
}

static sd_status map_vae_attn(mapper *mp, const sd_st_entry *e, const char *part,
                              const char *p)
{
    static const char *const sub[][2] = {
        {"group_norm.", "norm."}, {"to_q.", "q."},   {"query.", "q."},
        {"to_k.", "k."},          {"key.", "k."},    {"to_v.", "v."},
        {"value.", "v."},         {"to_out.0.", "proj_out."}, {"proj_attn.", "proj_out."},
    };
    for (size_t i = 0; i < SD_ARRAY_LEN(sub); i++) {
        if (!eat(&p, sub[i][0]))
            continue;
        if (i > 0 && !strcmp(p, "weight") && e->usable && e->t.ndim == 2) {
            sd_tensor v = conv1x1_view(&e->t);
            return put(mp, e, &v, "first_stage_model.%s.mid.attn_1.%s%s", part, sub[i][1], p);
        }
        return put(mp, e, NULL, "first_stage_model.%s.mid.attn_1.%s%s", part, sub[i][1], p);
    }
    return SD_OK;
}

static sd_status map_vae_one(mapper *mp, const sd_st_entry *e, int n_up)
{
#define V "first_stage_model."
    const char *p = e->name;
    const char *part = NULL;
    int i, j;
    if (eat(&p, "quant_conv.") || eat(&p, "post_quant_conv."))
        return put(mp, e, NULL, V "%s", e->name);
    if (eat(&p, "encoder."))
        part = "encoder";
    else if (eat(&p, "decoder."))
        part = "decoder";
    else
        return SD_OK;
    if (eat(&p, "conv_in.") || eat(&p, "conv_out."))
        return put(mp, e, NULL, V "%s", e->name);
    if (eat(&p, "conv_norm_out."))
        return put(mp, e, NULL, V "%s.norm_out.%s", part, p);
    if (eat(&p, "mid_block.resnets.") && eat_idx(&p, &j)) {
        bool sc = eat(&p, "conv_shortcut.");
        return put(mp, e, NULL, V "%s.mid.block_%d.%s%s", part, j + 1, sc ? "nin_shortcut." : "",
                   p);
    }
    if (eat(&p, "mid_block.attentions.0."))
        return map_vae_attn(mp, e, part, p);
    if (part[0] == 'e' && eat(&p, "down_blocks.") && eat_idx(&p, &i)) {
        if (eat(&p, "resnets.") && eat_idx(&p, &j)) {
            bool sc = eat(&p, "conv_shortcut.");
            return put(mp, e, NULL, V "encoder.down.%d.block.%d.%s%s", i, j,
                       sc ? "nin_shortcut." : "", p);
        }
        if (eat(&p, "downsamplers.0."))
            return put(mp, e, NULL, V "encoder.down.%d.downsample.%s", i, p);
        return SD_OK;
    }
    if (part[0] == 'd' && eat(&p, "up_blocks.") && eat_idx(&p, &i) && i < n_up) {
        /* diffusers counts decoder levels from the bottom, LDM from the top */
        if (eat(&p, "resnets.") && eat_idx(&p, &j)) {
            bool sc = eat(&p, "conv_shortcut.");
            return put(mp, e, NULL, V "decoder.up.%d.block.%d.%s%s", n_up - 1 - i, j,
                       sc ? "nin_shortcut." : "", p);
        }
        if (eat(&p, "upsamplers.0."))
            return put(mp, e, NULL, V "decoder.up.%d.upsample.%s", n_up - 1 - i, p);
    }
    return SD_OK;
#undef V
}

/* ---- TAESD ------------------------------------------------------------------------------- */

/* taesd.py Sequential indices -> diffusers AutoencoderTiny layer indices: the encoder's are
 * equal; the original Decoder starts with a weightless Clamp at index 0 (diffusers applies
 * the clamp in forward()), so its indices are one higher. */
static sd_status map_taesd_one(mapper *mp, const sd_st_entry *e, sd_layout layout)
{
    const char *p = e->name;
    int n;
    if (layout == SD_LAYOUT_TAESD_DIFFUSERS) {
        if (eat(&p, "encoder.layers.") || eat(&p, "decoder.layers."))
            return put(mp, e, NULL, "taesd.%s", e->name);
        return SD_OK;
    }
    if (!eat_idx(&p, &n))
        return SD_OK;
    if (layout == SD_LAYOUT_TAESD_ENCODER)
        return put(mp, e, NULL, "taesd.encoder.layers.%d.%s", n, p);
    if (n == 0)
        return sd_fail(mp->err, SD_ERR_FORMAT,
                       "%s: TAESD decoder tensor '%.80s' at index 0 (the weightless clamp)",
                       mp->what, e->name);
    return put(mp, e, NULL, "taesd.decoder.layers.%d.%s", n - 1, p);
}

/* ---- entry point ------------------------------------------------------------------------- */

sd_status sd_model_map_names(const sd_st_file *f, sd_layout layout, const char *what,
                             sd_model_emit_fn emit, void *user, sd_error *err)
{
    mapper mp = {what, emit, user, err};
    if (layout == SD_LAYOUT_LDM)
        return map_ldm(&mp, f);
    unet_shape us;
    int n_up = 0;
    if (layout == SD_LAYOUT_DIFFUSERS_UNET)
        scan_unet(f, &us);
    if (layout == SD_LAYOUT_DIFFUSERS_VAE)
        n_up = scan_vae_up(f);
    for (size_t i = 0; i < f->n; i++) {
        const sd_st_entry *e = &f->entries[i];
        sd_status st = SD_OK;
        switch (layout) {
        case SD_LAYOUT_DIFFUSERS_UNET:
            st = map_unet_one(&mp, e, &us);
            break;
        case SD_LAYOUT_DIFFUSERS_VAE:
            st = map_vae_one(&mp, e, n_up);
            break;
        case SD_LAYOUT_HF_CLIP_TEXT:
            if (!strncmp(e->name, "text_model.", 11) && !ends_with(e->name, "position_ids"))
                st = put(&mp, e, NULL, "%s", e->name);
            break;
        case SD_LAYOUT_TAESD_ENCODER:
        case SD_LAYOUT_TAESD_DECODER:
        case SD_LAYOUT_TAESD_DIFFUSERS:
            st = map_taesd_one(&mp, e, layout);
            break;
        case SD_LAYOUT_LDM:
            break;
        }
        if (st != SD_OK)
            return st;
    }
    return SD_OK;
}
