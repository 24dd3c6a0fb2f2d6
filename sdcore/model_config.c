/* model_config.c - the hyper-parameters a model's tensors cannot tell (attention head counts,
 * text activation, LayerNorm eps, pad token, prediction type, VAE scaling factor): family
 * defaults first, then the diffusers/transformers config files of a diffusers folder, or a
 * sidecar JSON next to a single file holding the same config objects:
 *
 *   { "unet":         { "attention_head_dim": 8 | [5, 10, 20, 20], "num_attention_heads": ...,
 *                       "upcast_attention": true },
 *     "text_encoder": { "num_attention_heads": 12, "hidden_act": "quick_gelu" | "gelu",
 *                       "layer_norm_eps": 1e-05 },
 *     "vae":          { "scaling_factor": 0.18215 },
 *     "scheduler":    { "prediction_type": "epsilon" | "v_prediction",
 *                       "_class_name": "LCMScheduler" (-> LCM variant),
 *                       "timestep_spacing": "trailing" (-> SD-Turbo variant) },
 *     "tokenizer":    { "pad_token": "<|endoftext|>" | "!" } }
 *
 * Other keys of these objects are ignored (configs hold many); keys starting with '_' are
 * ignored at the top level.  As in diffusers, a UNet's attention_head_dim is a head COUNT. */
#include "internal/model_load.h"

#include <math.h>
#include <string.h>

enum { MAX_HEADS = 1 << 16, N_LEVELS = 4 };

/* Channels of UNet level l (its first ResBlock's output), or 0 when absent. */
static int64_t unet_level_channels(const sd_model *m, int l)
{
    const sd_tensor *t =
        sd_model_tensorf(m, "model.diffusion_model.input_blocks.%d.0.out_layers.3.weight",
                         3 * l + 1);
    return t && t->ndim >= 1 ? t->shape[0] : 0;
}

/* Does UNet level l hold attention?  Level 3's heads are used by the mid block. */
static bool unet_level_attends(const sd_model *m, int l)
{
    if (l == N_LEVELS - 1)
        return sd_model_tensor(m, "model.diffusion_model.middle_block.1.proj_in.weight") != NULL;
    return sd_model_tensorf(m, "model.diffusion_model.input_blocks.%d.1.proj_in.weight",
                            3 * l + 1) != NULL;
}

static int64_t text_hidden(const sd_model *m)
{
    const sd_tensor *t = sd_model_tensor(m, "text_model.embeddings.token_embedding.weight");
    return t && t->ndim == 2 ? t->shape[1] : 0;
}

void sd_model_default_hparams(sd_model *m)
{
    sd_model_hparams *hp = &m->hp;
    memset(hp, 0, sizeof *hp);
    hp->prediction = SD_PREDICT_UNKNOWN;
    hp->vae_scaling_factor = 0.18215f;
    hp->text_eps = 1e-5f;
    switch (m->info.family) {
    case SD_FAMILY_SD1:
    case SD_FAMILY_SD1_INPAINT:
        for (int l = 0; l < N_LEVELS; l++)
            hp->unet_heads[l] = 8;
        hp->text_act = SD_ACT_QUICK_GELU;
        hp->text_pad_id = 49407;
        break;
    case SD_FAMILY_SD2:
    case SD_FAMILY_SD2_INPAINT:
        for (int l = 0; l < N_LEVELS; l++)
            hp->unet_heads[l] = (int)(unet_level_channels(m, l) / 64);
        hp->text_act = SD_ACT_GELU;
        hp->text_pad_id = 0;
        break;
    case SD_FAMILY_TAESD:
        hp->vae_scaling_factor = 1.0f; /* TAESD latents are already in the UNet's scale */
        break;
    case SD_FAMILY_UNKNOWN:
    case SD_FAMILY_COUNT:
        break;
    }
    hp->text_heads = (int)(text_hidden(m) / 64);
}

/* ---- config objects ----------------------------------------------------------------------- */

static bool present(const sd_json *v)
{
    return v && v->type != SD_JSON_NULL;
}

static bool pos_int(const sd_json *v, int *out)
{
    if (!v || v->type != SD_JSON_NUMBER || !v->is_int || v->integer <= 0 ||
        v->integer > MAX_HEADS)
        return false;
    *out = (int)v->integer;
    return true;
}

#define BAD(...) sd_fail(err, SD_ERR_FORMAT, __VA_ARGS__)

static sd_status apply_unet(sd_model_hparams *hp, const sd_json *cfg, const char *what,
                            sd_error *err)
{
    /* diffusers: num_attention_heads = num_attention_heads or attention_head_dim */
    const char *key = "num_attention_heads";
    const sd_json *h = sd_json_get(cfg, key);
    if (!present(h)) {
        key = "attention_head_dim";
        h = sd_json_get(cfg, key);
    }
    if (present(h)) {
        int heads[N_LEVELS];
        bool ok = true;
        if (h->type == SD_JSON_ARRAY) {
            ok = h->n == N_LEVELS;
            for (size_t l = 0; ok && l < N_LEVELS; l++)
                ok = pos_int(&h->items[l], &heads[l]);
        } else {
            ok = pos_int(h, &heads[0]);
            for (int l = 1; l < N_LEVELS; l++)
                heads[l] = heads[0];
        }
        if (!ok)
            return BAD("%s: unet.%s must be a positive integer or a list of %d", what, key,
                       N_LEVELS);
        memcpy(hp->unet_heads, heads, sizeof heads);
    }
    const sd_json *up = sd_json_get(cfg, "upcast_attention");
    if (present(up)) {
        if (up->type != SD_JSON_BOOL)
            return BAD("%s: unet.upcast_attention must be true or false", what);
        hp->unet_upcast_attention = up->boolean;
    }
    return SD_OK;
}

static sd_status apply_text(sd_model_hparams *hp, const sd_json *cfg, const char *what,
                            sd_error *err)
{
    const sd_json *h = sd_json_get(cfg, "num_attention_heads");
    if (present(h) && !pos_int(h, &hp->text_heads))
        return BAD("%s: text_encoder.num_attention_heads must be a positive integer", what);
    const sd_json *act = sd_json_get(cfg, "hidden_act");
    if (present(act)) {
        const char *a = sd_json_str(act, NULL);
        if (!a)
            return BAD("%s: text_encoder.hidden_act must be a string", what);
        if (!strcmp(a, "quick_gelu"))
            hp->text_act = SD_ACT_QUICK_GELU;
        else if (!strcmp(a, "gelu"))
            hp->text_act = SD_ACT_GELU;
        else
            return sd_fail(err, SD_ERR_UNSUPPORTED,
                           "%s: text encoder activation \"%.40s\" is not supported (quick_gelu, "
                           "gelu)", what, a);
    }
    const sd_json *eps = sd_json_get(cfg, "layer_norm_eps");
    if (present(eps)) {
        /* checked as the float it is used as: 1e-50 would become 0 */
        float e = (float)sd_json_num(eps, -1);
        if (eps->type != SD_JSON_NUMBER || !(e > 0 && e < 1))
            return BAD("%s: text_encoder.layer_norm_eps must be a number in (0, 1)", what);
        hp->text_eps = e;
    }
    return SD_OK;
}

static sd_status apply_vae(sd_model_hparams *hp, const sd_json *cfg, const char *what,
                           sd_error *err)
{
    const sd_json *s = sd_json_get(cfg, "scaling_factor");
    if (present(s)) {
        /* checked as the float it is used as (latents are divided by it) */
        float v = (float)sd_json_num(s, -1);
        if (s->type != SD_JSON_NUMBER || !(v >= 1e-6f && v < 1e6f))
            return BAD("%s: vae.scaling_factor must be a number in [1e-6, 1e6)", what);
        hp->vae_scaling_factor = v;
    }
    return SD_OK;
}

static sd_status apply_scheduler(sd_model_hparams *hp, const sd_json *cfg, const char *what,
                                 sd_error *err)
{
    const char *cls = sd_json_str(sd_json_get(cfg, "_class_name"), "");
    const char *spacing = sd_json_str(sd_json_get(cfg, "timestep_spacing"), "");
    if (!strcmp(cls, "LCMScheduler"))
        hp->variant = SD_VARIANT_LCM;
    else if (!strcmp(spacing, "trailing"))
        hp->variant = SD_VARIANT_TURBO;
    const sd_json *p = sd_json_get(cfg, "prediction_type");
    if (!present(p))
        return SD_OK;
    const char *s = sd_json_str(p, NULL);
    if (!s)
        return BAD("%s: scheduler.prediction_type must be a string", what);
    if (!strcmp(s, "epsilon"))
        hp->prediction = SD_PREDICT_EPSILON;
    else if (!strcmp(s, "v_prediction"))
        hp->prediction = SD_PREDICT_V;
    else
        return sd_fail(err, SD_ERR_UNSUPPORTED,
                       "%s: prediction type \"%.40s\" is not supported (epsilon, v_prediction)",
                       what, s);
    return SD_OK;
}

static sd_status apply_tokenizer(sd_model_hparams *hp, const sd_json *cfg, const char *what,
                                 sd_error *err)
{
    static const struct {
        const char *token;
        int id;
    } known[] = {{"<|endoftext|>", 49407}, {"<|startoftext|>", 49406}, {"!", 0}};
    const sd_json *p = sd_json_get(cfg, "pad_token");
    if (!present(p))
        return SD_OK;
    if (p->type == SD_JSON_OBJECT) /* transformers' AddedToken form: {"content": "!", ...} */
        p = sd_json_get(p, "content");
    const char *s = sd_json_str(p, NULL);
    if (!s)
        return BAD("%s: tokenizer.pad_token must be a string", what);
    for (size_t i = 0; i < SD_ARRAY_LEN(known); i++) {
        if (!strcmp(s, known[i].token)) {
            hp->text_pad_id = known[i].id;
            return SD_OK;
        }
    }
    return sd_fail(err, SD_ERR_UNSUPPORTED,
                   "%s: pad token \"%.40s\" is not supported (<|endoftext|> or !)", what, s);
}

sd_status sd_model_apply_config(sd_model *m, const char *which, const sd_json *cfg,
                                const char *what, sd_error *err)
{
    if (!cfg || cfg->type != SD_JSON_OBJECT)
        return BAD("%s: the %s config is not a JSON object", what, which);
    if (!strcmp(which, "unet"))
        return apply_unet(&m->hp, cfg, what, err);
    if (!strcmp(which, "text_encoder"))
        return apply_text(&m->hp, cfg, what, err);
    if (!strcmp(which, "vae"))
        return apply_vae(&m->hp, cfg, what, err);
    if (!strcmp(which, "scheduler"))
        return apply_scheduler(&m->hp, cfg, what, err);
    if (!strcmp(which, "tokenizer"))
        return apply_tokenizer(&m->hp, cfg, what, err);
    return BAD("%s: unknown config section \"%.40s\" (unet, text_encoder, vae, scheduler, "
               "tokenizer)", what, which);
}

sd_status sd_model_apply_sidecar_json(sd_model *m, const sd_json *root, const char *what,
                                      sd_error *err)
{
    if (root->type != SD_JSON_OBJECT)
        return BAD("%s: not a JSON object", what);
    for (size_t i = 0; i < root->n; i++) {
        const char *key = root->keys[i].str;
        if (key[0] == '_')
            continue;
        sd_status st = sd_model_apply_config(m, key, &root->items[i], what, err);
        if (st != SD_OK)
            return st;
    }
    return SD_OK;
}

sd_status sd_model_apply_sidecar(sd_model *m, const char *path, sd_error *err)
{
    sd_json *root = NULL;
    sd_status st = sd_json_parse_file(path, 1 << 20, &root, err);
    if (st != SD_OK)
        return st;
    st = sd_model_apply_sidecar_json(m, root, path, err);
    sd_json_free(root);
    return st;
}

sd_status sd_model_check_hparams(const sd_model *m, const char *what, sd_error *err)
{
    const sd_model_hparams *hp = &m->hp;
    if (m->info.has_unet) {
        for (int l = 0; l < N_LEVELS; l++) {
            int64_t c = unet_level_channels(m, l);
            if (!unet_level_attends(m, l) || c == 0)
                continue;
            if (hp->unet_heads[l] <= 0 || c % hp->unet_heads[l])
                return BAD("%s: UNet level %d has %lld channels, which cannot be split into "
                           "%d attention heads; state unet.attention_head_dim in a config", what,
                           l, (long long)c, hp->unet_heads[l]);
        }
    }
    if (m->info.has_text_encoder) {
        int64_t h = text_hidden(m);
        if (hp->text_heads <= 0 || h % hp->text_heads)
            return BAD("%s: text encoder width %lld cannot be split into %d attention heads; "
                       "state text_encoder.num_attention_heads in a config", what,
                       (long long)h, hp->text_heads);
    }
    return SD_OK;
}
