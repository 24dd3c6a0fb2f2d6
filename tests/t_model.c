/* tests/t_model.c - the model loader: every golden model from every layout present (single
 * file f16, f32 and bf16 copies, diffusers folders) with the right family, hyper-parameters
 * and parameter counts; canonical names equal across layouts bit for bit (diffusers vs single
 * file, SD2's fused in_proj rows, TAESD's two namings); every unsupported or corrupt input
 * refused with the right status and a message; allocation failures; `sd info`. */
#include "harness.h"
#include "model_util.h"
#include "internal/json.h"
#include "internal/model.h"
#include "internal/safetensors.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* A path kept in the caller's own buffer. */
#define TMP_VAR(var, name)                                                                   \
    char var[1024];                                                                          \
    snprintf(var, sizeof var, "%s", t_tmp(name))

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

#define WRITE_BYTES(path, lit) write_bytes(path, lit, sizeof lit - 1)

static void write_bytes(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static sd_status load(const char *path, sd_model **m, sd_error *err)
{
    memset(err, 0, sizeof *err);
    *m = NULL;
    return sd_model_load(NULL, path, m, err);
}

/* ---- tensor comparison ------------------------------------------------------------------- */

static bool same_shape(const sd_tensor *a, const sd_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return false;
    return true;
}

static bool same_bits(const sd_tensor *a, const sd_tensor *b)
{
    if (!a || !b || a->dtype != b->dtype || !same_shape(a, b))
        return false;
    size_t es = sd_dtype_size(a->dtype);
    int64_t n = sd_tensor_numel(a);
    for (int64_t i = 0; i < n; i++)
        if (memcmp(t_tensor_elem(a, i), t_tensor_elem(b, i), es))
            return false;
    return true;
}

/* Every canonical tensor of `sub` exists in `all` with identical bits.  Returns the count. */
static size_t compare_models(const char *what, const sd_model *sub, const sd_model *all,
                             const char *const *names, size_t n)
{
    size_t same = 0;
    for (size_t i = 0; i < n; i++) {
        const sd_tensor *a = sd_model_tensor(sub, names[i]);
        const sd_tensor *b = sd_model_tensor(all, names[i]);
        if (a && b && same_bits(a, b))
            same++;
        else
            CHECK(0, "%s: tensor %s differs (%p %p)", what, names[i], (void *)a, (void *)b);
    }
    return same;
}

/* The canonical names of a model, listed through the tensors of its files (the test sees
 * only the internal/model.h API, so it enumerates names it derives itself). */
typedef struct name_list {
    char **v;
    size_t n, cap;
} name_list;

static void add_name(name_list *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = strdup(s);
}

static void free_names(name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Names of a single LDM file that are canonical as they are (UNet, VAE) plus the SD1 text
 * encoder names with the prefix stripped. */
static void ldm_names(const char *path, name_list *l)
{
    sd_st_file *f = NULL;
    sd_error err = {0};
    if (sd_st_open(path, &f, &err) != SD_OK)
        return;
    for (size_t i = 0; i < f->n; i++) {
        const char *s = f->entries[i].name;
        if (!strncmp(s, "model.diffusion_model.", 22) || !strncmp(s, "first_stage_model.", 18))
            add_name(l, s);
        else if (!strncmp(s, "cond_stage_model.transformer.", 29) && !strstr(s, "position_ids"))
            add_name(l, s + 29);
    }
    sd_st_close(f);
}

/* ---- golden models ------------------------------------------------------------------------ */

typedef struct expect {
    const char *dir;
    sd_family family;
    int in_ch;
    int64_t unet, vae, text;
    int heads[4];
    bool upcast;
    sd_activation act;
    int pad;
    sd_prediction pred;
} expect;

static const expect models[] = {
    {"tiny-sd15", SD_FAMILY_SD1, 4, 2446788, 1399879, 1609216, {2, 2, 2, 2}, false,
     SD_ACT_QUICK_GELU, 49407, SD_PREDICT_UNKNOWN},
    {"tiny-sd15-inpaint", SD_FAMILY_SD1_INPAINT, 9, 2448228, 1399879, 1609216, {2, 2, 2, 2},
     false, SD_ACT_QUICK_GELU, 49407, SD_PREDICT_UNKNOWN},
    {"tiny-sd2v", SD_FAMILY_SD2, 4, 2446788, 1399879, 1609216, {2, 2, 4, 4}, true, SD_ACT_GELU,
     0, SD_PREDICT_V},
};

static void check_hparams(const char *what, const sd_model *m, const expect *e, bool text)
{
    const sd_model_hparams *hp = sd_model_get_hparams(m);
    for (int l = 0; l < 4; l++)
        CHECK(hp->unet_heads[l] == e->heads[l], "%s: unet_heads[%d] = %d", what, l,
              hp->unet_heads[l]);
    CHECK(hp->unet_upcast_attention == e->upcast, "%s: upcast", what);
    if (text) {
        CHECK(hp->text_heads == 2, "%s: text_heads %d", what, hp->text_heads);
        CHECK(hp->text_act == e->act, "%s: activation", what);
        CHECK(fabsf(hp->text_eps - 1e-5f) < 1e-12f, "%s: eps", what);
    }
    CHECK(hp->prediction == e->pred, "%s: prediction %d", what, hp->prediction);
    CHECK(fabsf(hp->vae_scaling_factor - 0.18215f) < 1e-7f, "%s: scaling", what);
}

static void test_single_files(void)
{
    for (size_t i = 0; i < SD_ARRAY_LEN(models); i++) {
        const expect *e = &models[i];
        char rel[256];
        snprintf(rel, sizeof rel, "%s/model-f16.safetensors", e->dir);
        sd_model *m;
        sd_error err;
        sd_status st = load(t_data(rel), &m, &err);
        CHECK(st == SD_OK, "%s: %s", rel, err.msg);
        if (st != SD_OK)
            continue;
        sd_model_info in;
        sd_model_get_info(m, &in);
        CHECK(in.family == e->family, "%s: family %s", rel, sd_family_name(in.family));
        CHECK(in.dtype == SD_DTYPE_F16, "%s: dtype %s", rel, sd_dtype_name(in.dtype));
        CHECK(in.unet_in_channels == e->in_ch, "%s: in channels %d", rel, in.unet_in_channels);
        CHECK(in.params_unet == e->unet && in.params_vae == e->vae && in.params_text == e->text &&
                  in.params_taesd == 0,
              "%s: params %lld %lld %lld", rel, (long long)in.params_unet,
              (long long)in.params_vae, (long long)in.params_text);
        CHECK(in.has_unet && in.has_vae && in.has_text_encoder && !in.has_taesd_encoder &&
                  !in.has_taesd_decoder, "%s: components", rel);
        CHECK(in.n_tensors == 980, "%s: %lld tensors", rel, (long long)in.n_tensors);
        CHECK(in.prediction == e->pred, "%s: info prediction", rel);
        CHECK(fabsf(in.vae_scaling_factor - 0.18215f) < 1e-7f, "%s: info scaling", rel);
        check_hparams(rel, m, e, true);
        CHECK(sd_model_get_hparams(m)->text_pad_id == e->pad, "%s: pad %d", rel,
              sd_model_get_hparams(m)->text_pad_id);
        const sd_tensor *t = sd_model_tensor(m, "model.diffusion_model.input_blocks.0.0.weight");
        CHECK(t && t->ndim == 4 && t->shape[0] == 32 && t->shape[1] == e->in_ch, "%s: conv_in",
              rel);
        t = sd_model_tensor(m, "first_stage_model.decoder.mid.attn_1.q.weight");
        CHECK(t && t->ndim == 4 && t->shape[0] == 64 && t->shape[1] == 64 && t->shape[2] == 1,
              "%s: VAE attention q [64,64,1,1]", rel);
        CHECK(sd_model_tensor(m, "text_model.encoder.layers.2.mlp.fc2.weight") &&
                  !sd_model_tensor(m, "text_model.encoder.layers.3.mlp.fc2.weight"),
              "%s: 3 text layers", rel);
        CHECK(!sd_model_tensor(m, "text_model.embeddings.position_ids") &&
                  !sd_model_tensor(m, "betas") && !sd_model_tensor(m, "alphas_cumprod"),
              "%s: buffers are not canonical tensors", rel);
        const sd_tensor *need = NULL;
        sd_error e2 = {0};
        CHECK(sd_model_need(m, &e2, &need,
                            "model.diffusion_model.output_blocks.%d.0.skip_connection.weight",
                            3) == SD_OK && need,
              "%s: sd_model_need present", rel);
        CHECK(sd_model_need(m, &e2, &need, "model.diffusion_model.nope.%d", 7) == SD_ERR_FORMAT &&
                  !need && strstr(e2.msg, "missing tensor model.diffusion_model.nope.7"),
              "%s: sd_model_need missing: %s", rel, e2.msg);
        CHECK(sd_model_tensorf(m, "text_model.encoder.layers.%d.self_attn.%c_proj.weight", 1,
                               'v') != NULL, "%s: tensorf", rel);
        sd_model_free(m);
    }
}

/* SD2: the q/k/v views are the right rows of the fused in_proj tensors of the file, the last
 * OpenCLIP block is dropped and the rest is renamed onto the HF names. */
static void test_openclip_split(void)
{
    sd_model *m;
    sd_error err;
    const char *path = t_data("tiny-sd2v/model-f16.safetensors");
    if (load(path, &m, &err) != SD_OK) {
        CHECK(0, "sd2v: %s", err.msg);
        return;
    }
    sd_st_file *f = NULL;
    CHECK(sd_st_open(path, &f, &err) == SD_OK, "open sd2v");
    const char *qkv = "qkv";
    int ok = 0;
    for (int l = 0; l < 3; l++) {
        char name[256];
        snprintf(name, sizeof name,
                 "cond_stage_model.model.transformer.resblocks.%d.attn.in_proj_weight", l);
        const sd_tensor *w = sd_st_tensor(f, name);
        snprintf(name, sizeof name,
                 "cond_stage_model.model.transformer.resblocks.%d.attn.in_proj_bias", l);
        const sd_tensor *b = sd_st_tensor(f, name);
        for (int k = 0; k < 3 && w && b; k++) {
            const char *fmt = "text_model.encoder.layers.%d.self_attn.%c_proj.%s";
            const sd_tensor *q = sd_model_tensorf(m, fmt, l, qkv[k], "weight");
            const sd_tensor *qb = sd_model_tensorf(m, fmt, l, qkv[k], "bias");
            bool good = q && qb && q->ndim == 2 && q->shape[0] == 32 && q->shape[1] == 32 &&
                        qb->ndim == 1 && qb->shape[0] == 32 &&
                        !memcmp(q->data, (const uint16_t *)w->data + k * 32 * 32, 32 * 32 * 2) &&
                        !memcmp(qb->data, (const uint16_t *)b->data + k * 32, 32 * 2);
            ok += good;
        }
    }
    CHECK(ok == 9, "q/k/v row views of the fused in_proj: %d of 9", ok);
    CHECK(same_bits(sd_model_tensor(m, "text_model.encoder.layers.1.mlp.fc1.weight"),
                    sd_st_tensor(f, "cond_stage_model.model.transformer.resblocks.1.mlp.c_fc."
                                    "weight")),
          "c_fc -> fc1");
    CHECK(same_bits(sd_model_tensor(m, "text_model.embeddings.position_embedding.weight"),
                    sd_st_tensor(f, "cond_stage_model.model.positional_embedding")),
          "positional_embedding");
    CHECK(same_bits(sd_model_tensor(m, "text_model.final_layer_norm.bias"),
                    sd_st_tensor(f, "cond_stage_model.model.ln_final.bias")), "ln_final");
    CHECK(sd_st_tensor(f, "cond_stage_model.model.transformer.resblocks.3.ln_1.weight") &&
              !sd_model_tensor(m, "text_model.encoder.layers.3.layer_norm1.weight"),
          "the file's 4th block is dropped");
    sd_st_close(f);
    sd_model_free(m);
}

static void test_diffusers(void)
{
    for (size_t i = 0; i < SD_ARRAY_LEN(models); i++) {
        const expect *e = &models[i];
        char rel[256], single[256];
        snprintf(rel, sizeof rel, "%s/diffusers", e->dir);
        snprintf(single, sizeof single, "%s/model-f16.safetensors", e->dir);
        sd_model *d, *s;
        sd_error err;
        sd_status st = load(t_data(rel), &d, &err);
        CHECK(st == SD_OK, "%s: %s", rel, err.msg);
        if (st != SD_OK)
            continue;
        sd_model_info in;
        sd_model_get_info(d, &in);
        bool full = i == 0, has_text = i != 1;
        CHECK(in.family == e->family, "%s: family %s", rel, sd_family_name(in.family));
        CHECK(in.dtype == SD_DTYPE_F16 && in.unet_in_channels == e->in_ch, "%s: dtype/ch", rel);
        CHECK(in.has_unet && in.has_vae == full && in.has_text_encoder == has_text,
              "%s: components %d %d", rel, in.has_vae, in.has_text_encoder);
        CHECK(in.params_unet == e->unet && in.params_vae == (full ? e->vae : 0) &&
                  in.params_text == (has_text ? e->text : 0), "%s: params", rel);
        check_hparams(rel, d, e, has_text);
        /* bit-for-bit equality with the single file, for every tensor of the folder */
        CHECK(load(t_data(single), &s, &err) == SD_OK, "%s", err.msg);
        name_list names = {0};
        ldm_names(t_data("tiny-sd15/model-f16.safetensors"), &names);
        size_t want = 0;
        name_list sub = {0};
        for (size_t k = 0; k < names.n; k++) {
            bool in_d = (!strncmp(names.v[k], "model.", 6)) ||
                        (full && !strncmp(names.v[k], "first_stage_model.", 18)) ||
                        (has_text && !strncmp(names.v[k], "text_model.", 11));
            if (in_d) {
                add_name(&sub, names.v[k]);
                want++;
            }
        }
        size_t same = compare_models(rel, d, s, (const char *const *)sub.v, sub.n);
        CHECK(same == want && (int64_t)want == in.n_tensors,
              "%s: %zu of %zu canonical tensors equal to the single file's (folder has %lld)",
              rel, same, want, (long long)in.n_tensors);
        free_names(&sub);
        free_names(&names);
        sd_model_free(s);
        sd_model_free(d);
    }
}

/* ---- converted copies --------------------------------------------------------------------- */

static void test_converted(void)
{
    TMP_VAR(f32, "sd15-f32.safetensors");
    TMP_VAR(bf, "sd15-bf16.safetensors");
    const char *src = t_data("tiny-sd15/model-f16.safetensors");
    t_variant to32 = {.convert = true, .dtype = SD_DTYPE_F32, .no_sidecar = true};
    t_variant tobf = {.convert = true, .dtype = SD_DTYPE_BF16, .no_sidecar = true};
    bool ok32 = t_write_model_variant(src, f32, &to32);
    CHECK(ok32, "convert %s to f32", src);
    if (!ok32)
        return;
    bool okbf = t_write_model_variant(src, bf, &tobf);
    CHECK(okbf, "convert %s to bf16", src);
    if (!okbf)
        return;
    sd_model *m, *h;
    sd_error err;
    /* without a sidecar the tiny widths cannot give head counts: a clear error */
    sd_status st = load(f32, &m, &err);
    CHECK(st == SD_ERR_FORMAT && strstr(err.msg, "attention heads") && strstr(err.msg, "config"),
          "no sidecar: %s", err.msg);
    t_copy_file(t_data("tiny-sd15/model-f16.json"), t_sidecar(f32));
    t_copy_file(t_data("tiny-sd15/model-f16.json"), t_sidecar(bf));
    st = load(f32, &m, &err);
    CHECK(st == SD_OK, "f32 copy: %s", err.msg);
    CHECK(load(t_data("tiny-sd15/model-f16.safetensors"), &h, &err) == SD_OK, "%s", err.msg);
    if (st == SD_OK && h) {
        sd_model_info in;
        sd_model_get_info(m, &in);
        CHECK(in.family == SD_FAMILY_SD1 && in.dtype == SD_DTYPE_F32 && in.n_tensors == 980 &&
                  in.params_unet == 2446788, "f32: info");
        CHECK(sd_model_get_hparams(m)->unet_heads[0] == 2, "f32: sidecar applied");
        static const char *const spot[] = {
            "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight",
            "first_stage_model.decoder.mid.attn_1.proj_out.weight",
            "text_model.embeddings.token_embedding.weight",
        };
        for (size_t k = 0; k < SD_ARRAY_LEN(spot); k++) {
            const sd_tensor *a = sd_model_tensor(m, spot[k]), *b = sd_model_tensor(h, spot[k]);
            bool eq = a && b && a->dtype == SD_DTYPE_F32 && same_shape(a, b);
            for (int64_t i = 0; eq && i < sd_tensor_numel(a); i++)
                eq = t_tensor_value(a, i) == t_tensor_value(b, i);
            CHECK(eq, "f32 copy equals f16 values: %s", spot[k]);
        }
    }
    sd_model_free(m);
    st = load(bf, &m, &err);
    CHECK(st == SD_OK, "bf16 copy: %s", err.msg);
    if (st == SD_OK && h) {
        sd_model_info in;
        sd_model_get_info(m, &in);
        CHECK(in.family == SD_FAMILY_SD1 && in.dtype == SD_DTYPE_BF16 && in.n_tensors == 980,
              "bf16: info");
        const char *nm = "model.diffusion_model.out.2.weight";
        const sd_tensor *a = sd_model_tensor(m, nm), *b = sd_model_tensor(h, nm);
        bool close = a && b && same_shape(a, b);
        for (int64_t i = 0; close && i < sd_tensor_numel(a); i++) {
            float va = t_tensor_value(a, i), vb = t_tensor_value(b, i);
            close = fabsf(va - vb) <= fabsf(vb) / 128;
        }
        CHECK(close, "bf16 values within bf16 rounding");
    }
    sd_model_free(m);
    sd_model_free(h);
    t_remove_model(f32);
    t_remove_model(bf);
}

/* ---- full-size layouts -------------------------------------------------------------------- */

static void test_full_size(void)
{
    sd_json *root = t_full_size_layouts();
    if (!root)
        return;
    sd_error err = {0};
    static const struct {
        const char *key;
        sd_family family;
        int in_ch;
        int64_t unet, vae, text;
        int heads[4], text_heads, text_layers;
        sd_activation act;
        int pad;
    } cases[] = {
        {"sd15", SD_FAMILY_SD1, 4, 859520964, 83653863, 123060480, {8, 8, 8, 8}, 12, 12,
         SD_ACT_QUICK_GELU, 49407},
        {"sd15-inpaint", SD_FAMILY_SD1_INPAINT, 9, 859535364, 83653863, 123060480, {8, 8, 8, 8},
         12, 12, SD_ACT_QUICK_GELU, 49407},
        /* OpenCLIP-H: 24 blocks in the file, 23 used; text_projection and logit_scale unused */
        {"sd21", SD_FAMILY_SD2, 4, 865910724, 83653863, 340387840, {5, 10, 20, 20}, 16, 23,
         SD_ACT_GELU, 0},
        {"taesd", SD_FAMILY_TAESD, 0, 0, 0, 0, {0, 0, 0, 0}, 0, 0, SD_ACT_QUICK_GELU, 0},
    };
    TMP_VAR(path, "full.safetensors");
    for (size_t i = 0; i < SD_ARRAY_LEN(cases); i++) {
        const sd_json *layout = sd_json_get(root, cases[i].key);
        if (!t_write_header_only(layout, path)) {
            CHECK(0, "write sparse %s", cases[i].key);
            continue;
        }
        sd_model *m;
        sd_status st = load(path, &m, &err);
        CHECK(st == SD_OK, "full-size %s: %s", cases[i].key, err.msg);
        if (st != SD_OK)
            continue;
        sd_model_info in;
        sd_model_get_info(m, &in);
        const sd_model_hparams *hp = sd_model_get_hparams(m);
        CHECK(in.family == cases[i].family && in.dtype == SD_DTYPE_F16 &&
                  in.unet_in_channels == cases[i].in_ch,
              "full-size %s: %s", cases[i].key, sd_family_name(in.family));
        CHECK(in.params_unet == cases[i].unet && in.params_vae == cases[i].vae &&
                  in.params_text == cases[i].text,
              "full-size %s: params %lld %lld %lld", cases[i].key, (long long)in.params_unet,
              (long long)in.params_vae, (long long)in.params_text);
        if (in.family == SD_FAMILY_TAESD) {
            CHECK(in.has_taesd_encoder && in.has_taesd_decoder && in.n_tensors == 134 &&
                      in.params_taesd > 2000000, "full-size taesd");
        } else {
            for (int l = 0; l < 4; l++)
                CHECK(hp->unet_heads[l] == cases[i].heads[l], "full-size %s: heads[%d] = %d",
                      cases[i].key, l, hp->unet_heads[l]);
            CHECK(hp->text_heads == cases[i].text_heads && hp->text_act == cases[i].act &&
                      hp->text_pad_id == cases[i].pad,
                  "full-size %s: text hparams %d", cases[i].key, hp->text_heads);
            int L = cases[i].text_layers;
            CHECK(sd_model_tensorf(m, "text_model.encoder.layers.%d.mlp.fc1.weight", L - 1) &&
                      !sd_model_tensorf(m, "text_model.encoder.layers.%d.mlp.fc1.weight", L),
                  "full-size %s: %d text layers", cases[i].key, L);
        }
        sd_model_free(m);
    }
    remove(path);
    sd_json_free(root);
}

/* ---- TAESD -------------------------------------------------------------------------------- */

static void test_taesd(void)
{
    sd_model *a, *b;
    sd_error err;
    sd_status st = load(t_data("taesd/taesd_decoder.safetensors"), &a, &err);
    CHECK(st == SD_OK, "taesd decoder path: %s", err.msg);
    if (st != SD_OK)
        return;
    sd_model_info in;
    sd_model_get_info(a, &in);
    CHECK(in.family == SD_FAMILY_TAESD && in.has_taesd_encoder && in.has_taesd_decoder &&
              !in.has_unet && in.n_tensors == 134 && in.params_taesd > 2000000,
          "taesd pair via the decoder's path: %lld tensors", (long long)in.n_tensors);
    CHECK(in.vae_scaling_factor == 1.0f, "taesd scaling 1");
    const sd_tensor *t = sd_model_tensor(a, "taesd.decoder.layers.0.weight");
    CHECK(t && t->shape[0] == 64 && t->shape[1] == 4, "decoder layer 0 = taesd.py index 1");
    t = sd_model_tensor(a, "taesd.decoder.layers.18.weight");
    CHECK(t && t->shape[0] == 3 && t->shape[1] == 64, "decoder layer 18 = final conv");
    CHECK(sd_model_tensor(a, "taesd.decoder.layers.6.weight") &&
              !sd_model_tensor(a, "taesd.decoder.layers.6.bias"), "decoder 6: conv without bias");
    CHECK(sd_model_tensor(a, "taesd.decoder.layers.17.conv.4.weight") &&
              !sd_model_tensor(a, "taesd.decoder.layers.19.weight"), "decoder 17 block");
    t = sd_model_tensor(a, "taesd.encoder.layers.14.weight");
    CHECK(t && t->shape[0] == 4, "encoder layer 14 = latent conv");
    CHECK(load(t_data("taesd/taesd_encoder.safetensors"), &b, &err) == SD_OK, "%s", err.msg);
    sd_model_get_info(b, &in);
    CHECK(in.has_taesd_encoder && in.has_taesd_decoder, "pair via the encoder's path");
    sd_model_free(b);
    CHECK(load(t_data("taesd"), &b, &err) == SD_OK, "taesd folder: %s", err.msg);
    sd_model_free(b);

    /* one file alone */
    mkdir(t_tmp("dec"), 0755);
    t_copy_file(t_data("taesd/taesd_decoder.safetensors"), t_tmp("dec/taesd_decoder.safetensors"));
    CHECK(load(t_tmp("dec/taesd_decoder.safetensors"), &b, &err) == SD_OK, "%s", err.msg);
    sd_model_get_info(b, &in);
    CHECK(!in.has_taesd_encoder && in.has_taesd_decoder && in.n_tensors == 67, "decoder alone");
    sd_model_free(b);
    remove(t_tmp("dec/taesd_decoder.safetensors"));
    rmdir(t_tmp("dec"));

    /* the same weights in diffusers AutoencoderTiny naming, as a file and as a folder */
    mkdir(t_tmp("tiny"), 0755);
    TMP_VAR(tiny, "tiny/diffusion_pytorch_model.safetensors");
    sd_st_file *tf = NULL;
    CHECK(t_write_taesd_autoencodertiny(tiny) && sd_st_open(tiny, &tf, &err) == SD_OK,
          "AutoencoderTiny copy: %s", err.msg);
    if (!tf) {
        sd_model_free(a);
        return;
    }
    size_t n = tf->n;
    write_text(t_tmp("tiny/config.json"),
               "{\"_class_name\": \"AutoencoderTiny\", \"scaling_factor\": 1.0}");
    TMP_VAR(tiny_dir, "tiny");
    const char *paths[2] = {tiny, tiny_dir};
    for (int k = 0; k < 2; k++) {
        st = load(paths[k], &b, &err);
        CHECK(st == SD_OK, "AutoencoderTiny naming (%s): %s", paths[k], err.msg);
        if (st != SD_OK)
            continue;
        sd_model_get_info(b, &in);
        CHECK(in.family == SD_FAMILY_TAESD && in.n_tensors == 134, "AutoencoderTiny info");
        size_t same = 0;
        for (size_t i = 0; i < n; i++) {
            char canon[160];
            snprintf(canon, sizeof canon, "taesd.%s", tf->entries[i].name);
            same += same_bits(sd_model_tensor(a, canon), sd_model_tensor(b, canon));
        }
        CHECK(same == n && n == 134,
              "both TAESD namings give the same canonical tensors: %zu of %zu", same, n);
        sd_model_free(b);
    }
    remove(tiny);
    remove(t_tmp("tiny/config.json"));
    rmdir(t_tmp("tiny"));
    sd_st_close(tf);
    sd_model_free(a);
}

/* ---- synthetic files for the refusal cases ------------------------------------------------ */

typedef struct spec {
    const char *name;
    int ndim;
    int64_t shape[4];
} spec;

/* A minimal but complete SD1 single file (zero weights, tiny widths). */
static const spec sd1_min[] = {
    {"model.diffusion_model.input_blocks.0.0.weight", 4, {8, 4, 3, 3}},
    {"model.diffusion_model.time_embed.0.weight", 2, {16, 8}},
    {"model.diffusion_model.time_embed.2.weight", 2, {16, 16}},
    {"model.diffusion_model.out.0.weight", 1, {8}},
    {"model.diffusion_model.out.2.weight", 4, {4, 8, 3, 3}},
    {"first_stage_model.encoder.conv_in.weight", 4, {8, 3, 3, 3}},
    {"first_stage_model.encoder.conv_out.weight", 4, {8, 8, 3, 3}},
    {"first_stage_model.quant_conv.weight", 4, {8, 8, 1, 1}},
    {"first_stage_model.post_quant_conv.weight", 4, {4, 4, 1, 1}},
    {"first_stage_model.decoder.conv_in.weight", 4, {8, 4, 3, 3}},
    {"first_stage_model.decoder.conv_out.weight", 4, {3, 8, 3, 3}},
    {"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", 2, {10, 64}},
    {"cond_stage_model.transformer.text_model.embeddings.position_embedding.weight", 2, {4, 64}},
    {"cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight", 2,
     {64, 64}},
    {"cond_stage_model.transformer.text_model.final_layer_norm.weight", 1, {64}},
};

/* Write `n` specs as F32 zeros (dtype override for entry `odd` when >= 0). */
static void write_specs(const char *path, const spec *s, size_t n, long odd, sd_dtype odd_dtype)
{
    const char **names = calloc(n, sizeof *names);
    sd_tensor *ts = calloc(n, sizeof *ts);
    static float zeros[8 * 8 * 3 * 3 * 8];
    for (size_t i = 0; i < n; i++) {
        names[i] = s[i].name;
        ts[i].dtype = (long)i == odd ? odd_dtype : SD_DTYPE_F32;
        ts[i].ndim = s[i].ndim;
        int64_t st = 1;
        for (int d = s[i].ndim - 1; d >= 0; d--) {
            ts[i].shape[d] = s[i].shape[d];
            ts[i].stride[d] = st;
            st *= s[i].shape[d];
        }
        ts[i].data = st * 8 <= (int64_t)sizeof zeros ? zeros : calloc((size_t)st, 8);
    }
    sd_error err = {0};
    CHECK(sd_st_write(path, names, ts, n, NULL, &err) == SD_OK, "write %s: %s", path, err.msg);
    for (size_t i = 0; i < n; i++)
        if (ts[i].data != zeros)
            free(ts[i].data);
    free(ts);
    free(names);
}

static void expect_fail(const char *path, sd_status want, const char *needle)
{
    sd_model *m;
    sd_error err;
    sd_status st = load(path, &m, &err);
    CHECK(st == want && m == NULL && strstr(err.msg, needle) && !strchr(err.msg, '\n'),
          "%s: got %s '%s', want %s '%s'", path, sd_status_str(st), err.msg, sd_status_str(want),
          needle);
    sd_model_free(m);
}

static void test_refusals(void)
{
    TMP_VAR(p, "x.safetensors");
    static const struct {
        spec s;
        sd_status st;
        const char *needle;
    } one[] = {
        {{"conditioner.embedders.0.transformer.text_model.final_layer_norm.weight", 1, {4}},
         SD_ERR_UNSUPPORTED, "SDXL"},
        {{"model.diffusion_model.label_emb.0.0.weight", 2, {4, 4}}, SD_ERR_UNSUPPORTED, "SDXL"},
        {{"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight", 2, {4, 4}},
         SD_ERR_UNSUPPORTED, "SD3"},
        {{"double_blocks.0.img_attn.qkv.weight", 2, {4, 4}}, SD_ERR_UNSUPPORTED, "Flux"},
        {{"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", 2, {4, 4}},
         SD_ERR_UNSUPPORTED, "LoRA"},
        {{"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight", 2, {4, 4}},
         SD_ERR_UNSUPPORTED, "LoRA"},
        {{"control_model.input_blocks.0.0.weight", 4, {4, 4, 3, 3}}, SD_ERR_UNSUPPORTED,
         "ControlNet"},
        {{"clip_txt_mapper.weight", 2, {4, 4}}, SD_ERR_UNSUPPORTED, "Stable Cascade"},
        {{"encoder.down.0.block.0.conv1.weight", 4, {4, 4, 3, 3}}, SD_ERR_UNSUPPORTED,
         "standalone VAE"},
        {{"decoder.up_blocks.0.resnets.0.conv1.weight", 4, {4, 4, 3, 3}}, SD_ERR_UNSUPPORTED,
         "standalone VAE"},
        {{"emb_params", 2, {2, 4}}, SD_ERR_UNSUPPORTED, "embedding"},
        {{"foo.weight", 1, {3}}, SD_ERR_FORMAT,
         "not a Stable Diffusion checkpoint (1 tensors, first: foo.weight)"},
    };
    for (size_t i = 0; i < SD_ARRAY_LEN(one); i++) {
        write_specs(p, &one[i].s, 1, -1, SD_DTYPE_F32);
        expect_fail(p, one[i].st, one[i].needle);
    }
    write_specs(p, NULL, 0, -1, SD_DTYPE_F32);
    expect_fail(p, SD_ERR_FORMAT, "no tensors");

    /* the minimal SD1 file loads; then break it one way at a time */
    size_t n = SD_ARRAY_LEN(sd1_min);
    write_specs(p, sd1_min, n, -1, SD_DTYPE_F32);
    sd_model *m;
    sd_error err;
    CHECK(load(p, &m, &err) == SD_OK, "minimal SD1: %s", err.msg);
    if (m) {
        sd_model_info in;
        sd_model_get_info(m, &in);
        CHECK(in.family == SD_FAMILY_SD1 && in.dtype == SD_DTYPE_F32 && in.n_tensors == 15,
              "minimal SD1 info");
        const sd_model_hparams *hp = sd_model_get_hparams(m);
        CHECK(hp->unet_heads[0] == 8 && hp->text_heads == 1 && hp->text_act == SD_ACT_QUICK_GELU &&
                  hp->text_pad_id == 49407 && hp->prediction == SD_PREDICT_UNKNOWN,
              "SD1 defaults");
    }
    sd_model_free(m);
    write_specs(p, sd1_min + 5, n - 5, -1, SD_DTYPE_F32);
    expect_fail(p, SD_ERR_FORMAT, "SD1 checkpoint without a UNet");
    write_specs(p, sd1_min, 4, -1, SD_DTYPE_F32);
    expect_fail(p, SD_ERR_FORMAT, "UNet is missing tensor model.diffusion_model.out.2.weight");
    spec bad[SD_ARRAY_LEN(sd1_min)];
    memcpy(bad, sd1_min, sizeof bad);
    bad[0].shape[1] = 8;
    write_specs(p, bad, n, -1, SD_DTYPE_F32);
    expect_fail(p, SD_ERR_UNSUPPORTED, "8 input channels");
    write_specs(p, sd1_min, n - 1, -1, SD_DTYPE_F32);
    expect_fail(p, SD_ERR_FORMAT, "text encoder is missing tensor");
    write_specs(p, sd1_min, n, 3, SD_DTYPE_I32);
    expect_fail(p, SD_ERR_UNSUPPORTED, "dtype I32");

    /* sidecars: applied, and every kind of bad one named */
    write_specs(p, sd1_min, n, -1, SD_DTYPE_F32);
    TMP_VAR(side, "x.json");
    write_text(side, "{\"_c\": 1, \"unet\": {\"attention_head_dim\": [1, 2, 4, 8], "
                     "\"upcast_attention\": true}, \"text_encoder\": {\"num_attention_heads\": 4, "
                     "\"hidden_act\": \"gelu\", \"layer_norm_eps\": 1e-6}, \"vae\": "
                     "{\"scaling_factor\": 0.13025}, \"scheduler\": {\"prediction_type\": "
                     "\"epsilon\"}, \"tokenizer\": {\"pad_token\": {\"content\": \"!\"}}}");
    CHECK(load(p, &m, &err) == SD_OK, "sidecar: %s", err.msg);
    if (m) {
        const sd_model_hparams *hp = sd_model_get_hparams(m);
        sd_model_info in;
        sd_model_get_info(m, &in);
        CHECK(hp->unet_heads[0] == 1 && hp->unet_heads[3] == 8 && hp->unet_upcast_attention &&
                  hp->text_heads == 4 && hp->text_act == SD_ACT_GELU &&
                  fabsf(hp->text_eps - 1e-6f) < 1e-12f && hp->text_pad_id == 0 &&
                  hp->prediction == SD_PREDICT_EPSILON && in.prediction == SD_PREDICT_EPSILON &&
                  fabsf(in.vae_scaling_factor - 0.13025f) < 1e-7f,
              "sidecar values applied");
    }
    sd_model_free(m);
    static const struct {
        const char *json;
        sd_status st;
        const char *needle;
    } sides[] = {
        {"{\"unet\": {\"attention_head_dim\": 8", SD_ERR_FORMAT, "x.json"},
        {"[1]", SD_ERR_FORMAT, "not a JSON object"},
        {"{\"unet\": 3}", SD_ERR_FORMAT, "unet config is not a JSON object"},
        {"{\"unet\": {\"attention_head_dim\": \"8\"}}", SD_ERR_FORMAT, "attention_head_dim"},
        {"{\"unet\": {\"attention_head_dim\": [8, 8]}}", SD_ERR_FORMAT, "list of 4"},
        {"{\"unet\": {\"num_attention_heads\": 0, \"attention_head_dim\": 8}}", SD_ERR_FORMAT,
         "num_attention_heads"},
        {"{\"unet\": {\"upcast_attention\": 1}}", SD_ERR_FORMAT, "upcast_attention"},
        {"{\"text_encoder\": {\"hidden_act\": \"relu\"}}", SD_ERR_UNSUPPORTED, "relu"},
        {"{\"text_encoder\": {\"num_attention_heads\": 5}}", SD_ERR_FORMAT, "5 attention heads"},
        {"{\"text_encoder\": {\"layer_norm_eps\": -1}}", SD_ERR_FORMAT, "layer_norm_eps"},
        /* found by fuzz_model_config: positive doubles that are 0 as floats */
        {"{\"text_encoder\": {\"layer_norm_eps\": 1e-50}}", SD_ERR_FORMAT, "layer_norm_eps"},
        {"{\"vae\": {\"scaling_factor\": 1e-60}}", SD_ERR_FORMAT, "scaling_factor"},
        {"{\"vae\": {\"scaling_factor\": 1e-7}}", SD_ERR_FORMAT, "scaling_factor"},
        {"{\"vae\": {\"scaling_factor\": \"big\"}}", SD_ERR_FORMAT, "scaling_factor"},
        {"{\"scheduler\": {\"prediction_type\": \"sample\"}}", SD_ERR_UNSUPPORTED, "sample"},
        {"{\"tokenizer\": {\"pad_token\": \"<pad>\"}}", SD_ERR_UNSUPPORTED, "<pad>"},
        {"{\"unte\": {}}", SD_ERR_FORMAT, "unknown config section \"unte\""},
    };
    for (size_t i = 0; i < SD_ARRAY_LEN(sides); i++) {
        write_text(side, sides[i].json);
        expect_fail(p, sides[i].st, sides[i].needle);
    }
    remove(side);

    /* not safetensors at all */
    TMP_VAR(ck, "model.ckpt");
    WRITE_BYTES(ck, "\x80\x02}q\x00.");
    expect_fail(ck, SD_ERR_UNSUPPORTED, "pickle checkpoints are not loaded");
    WRITE_BYTES(p, "PK\x03\x04 a torch zip");
    expect_fail(p, SD_ERR_UNSUPPORTED, "convert to .safetensors");
    WRITE_BYTES(p, "GGUF\x03");
    expect_fail(p, SD_ERR_UNSUPPORTED, "GGUF");
    write_text(p, "");
    expect_fail(p, SD_ERR_FORMAT, "empty file");
    WRITE_BYTES(p, "\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":");
    expect_fail(p, SD_ERR_FORMAT, "past the end");
    expect_fail(t_tmp("missing.safetensors"), SD_ERR_IO, "cannot open");
    TMP_VAR(fifo, "fifo.safetensors");
    CHECK(mkfifo(fifo, 0644) == 0, "mkfifo");
    expect_fail(fifo, SD_ERR_IO, "not a regular file");
    remove(fifo);
    mkdir(t_tmp("empty"), 0755);
    expect_fail(t_tmp("empty"), SD_ERR_FORMAT, "not a diffusers model");
    rmdir(t_tmp("empty"));
    remove(p);
    remove(ck);

    /* a truncated real checkpoint */
    FILE *in = fopen(t_data("tiny-sd15/model-f16.safetensors"), "rb");
    FILE *out = fopen(p, "wb");
    char buf[4096];
    for (int k = 0; in && out && k < 1000 && fread(buf, 1, sizeof buf, in) == sizeof buf; k++)
        fwrite(buf, 1, sizeof buf, out);
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    expect_fail(p, SD_ERR_FORMAT, "truncated?");
    remove(p);
}

/* diffusers folders built from the golden components with symlinks */
static void test_diffusers_refusals(void)
{
    char abs[1024];
    if (!realpath(t_data("tiny-sd15/diffusers"), abs)) {
        CHECK(0, "realpath");
        return;
    }
    TMP_VAR(d, "pipe");
    mkdir(d, 0755);
    mkdir(t_tmp("pipe/unet"), 0755);
    char target[1200];
    snprintf(target, sizeof target, "%s/unet/diffusion_pytorch_model.safetensors", abs);
    CHECK(symlink(target, t_tmp("pipe/unet/diffusion_pytorch_model.fp16.safetensors")) == 0,
          "symlink");
    write_text(t_tmp("pipe/model_index.json"),
               "{\"_class_name\": \"StableDiffusionPipeline\", \"unet\": [\"diffusers\", "
               "\"UNet2DConditionModel\"]}");
    write_text(t_tmp("pipe/unet/config.json"), "{\"attention_head_dim\": 2}");
    sd_model *m;
    sd_error err;
    CHECK(load(d, &m, &err) == SD_OK, "fp16 variant, unet only: %s", err.msg);
    if (m) {
        sd_model_info in;
        sd_model_get_info(m, &in);
        CHECK(in.family == SD_FAMILY_SD1 && in.has_unet && !in.has_vae && !in.has_text_encoder,
              "unet-only folder");
    }
    sd_model_free(m);
    write_text(t_tmp("pipe/unet/config.json"), "{\"attention_head_dim\": [2, 2,}");
    expect_fail(d, SD_ERR_FORMAT, "unet/config.json");
    write_text(t_tmp("pipe/unet/config.json"), "{\"attention_head_dim\": 3}");
    expect_fail(d, SD_ERR_FORMAT, "3 attention heads");
    /* without a config: the SD1 default of 8 heads (divides 32 and 64 channels) */
    remove(t_tmp("pipe/unet/config.json"));
    CHECK(load(d, &m, &err) == SD_OK && sd_model_get_hparams(m)->unet_heads[2] == 8,
          "SD1 default heads: %s", err.msg);
    sd_model_free(m);
    write_text(t_tmp("pipe/model_index.json"),
               "{\"_class_name\": \"StableDiffusionXLPipeline\", \"unet\": [], "
               "\"text_encoder_2\": []}");
    expect_fail(d, SD_ERR_UNSUPPORTED, "SDXL");
    write_text(t_tmp("pipe/model_index.json"),
               "{\"_class_name\": \"StableDiffusion3Pipeline\", \"transformer\": []}");
    expect_fail(d, SD_ERR_UNSUPPORTED, "transformer");
    write_text(t_tmp("pipe/model_index.json"), "{\"unet\": []}");
    remove(t_tmp("pipe/unet/diffusion_pytorch_model.fp16.safetensors"));
    WRITE_BYTES(t_tmp("pipe/unet/diffusion_pytorch_model.bin"), "\x80\x02}q\x00.");
    expect_fail(d, SD_ERR_UNSUPPORTED, "pickle");
    remove(t_tmp("pipe/unet/diffusion_pytorch_model.bin"));
    remove(t_tmp("pipe/model_index.json"));
    rmdir(t_tmp("pipe/unet"));
    rmdir(d);
}

/* ---- allocation failures ------------------------------------------------------------------ */

static void nomem_loop(const char *what, const char *path)
{
    size_t live = sd_alloc_live_bytes();
    int nomem = 0;
    for (long n = 1;; n++) {
        sd_model *m = NULL;
        sd_error err = {0};
        sd_alloc_fail_after(n, false);
        sd_status st = sd_model_load(NULL, path, &m, &err);
        sd_alloc_fail_after(0, false);
        if (st == SD_OK) {
            sd_model_free(m);
            break;
        }
        nomem++;
        if (st != SD_ERR_NOMEM || m) {
            CHECK(0, "%s: allocation %ld: %s %s", what, n, sd_status_str(st), err.msg);
            break;
        }
    }
    fprintf(stderr, "%s: %d allocation failure points, each SD_ERR_NOMEM\n", what, nomem);
    CHECK(nomem > 20, "%s: failure points exercised: %d", what, nomem);
    CHECK(sd_alloc_live_bytes() == live, "%s: no leaks under allocation failure", what);
}

static void test_nomem(void)
{
    TMP_VAR(p, "min.safetensors");
    write_specs(p, sd1_min, SD_ARRAY_LEN(sd1_min), -1, SD_DTYPE_F32);
    write_text(t_tmp("min.json"), "{\"unet\": {\"attention_head_dim\": 2}, \"scheduler\": "
                                "{\"prediction_type\": \"v_prediction\"}}");
    nomem_loop("minimal SD1 + sidecar", p);
    nomem_loop("TAESD pair", t_data("taesd/taesd_encoder.safetensors"));
    remove(p);
    remove(t_tmp("min.json"));
}

/* ---- sd info -------------------------------------------------------------------------------- */

static int run_capture(const char *args, char *out, size_t cap, char *errs, size_t ecap)
{
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "info %s", args);
    return t_run_sd(cmd, out, cap, errs, ecap);
}

static void test_cli(void)
{
    if (access(t_sd_bin(), X_OK) != 0) {
        CHECK(0, "%s not built", t_sd_bin());
        return;
    }
    char out[4096], errs[4096], arg[1200];
    snprintf(arg, sizeof arg, "'%s'", t_data("tiny-sd2v/model-f16.safetensors"));
    int rc = run_capture(arg, out, sizeof out, errs, sizeof errs);
    CHECK(rc == 0 && strstr(out, "family:      SD2\n") && strstr(out, "v_prediction") &&
              strstr(out, "1609216") && strstr(out, "kernels:     ") && !errs[0],
          "sd info sd2v: rc %d\n%s%s", rc, out, errs);
    TMP_VAR(bad, "corrupt.safetensors");
    WRITE_BYTES(bad, "\x20\x00\x00\x00\x00\x00\x00\x00{\"a\": {\"dtype\": \"F32\"}}           ");
    snprintf(arg, sizeof arg, "'%s'", bad);
    rc = run_capture(arg, out, sizeof out, errs, sizeof errs);
    char *nl = strchr(errs, '\n');
    CHECK(rc != 0 && !out[0] && nl && nl[1] == 0 && !strncmp(errs, "sd info: ", 9) &&
              strstr(errs, "shape"), "sd info corrupt: rc %d, stderr '%s'", rc, errs);
    WRITE_BYTES(bad, "\x80\x04pickle");
    rc = run_capture(arg, out, sizeof out, errs, sizeof errs);
    nl = strchr(errs, '\n');
    CHECK(rc != 0 && nl && nl[1] == 0 && strstr(errs, "pickle"), "sd info pickle: '%s'", errs);
    remove(bad);
}

int main(void)
{
    t_tmp_fresh("t_model");
    test_single_files();
    test_openclip_split();
    test_diffusers();
    test_converted();
    test_full_size();
    test_taesd();
    test_refusals();
    test_diffusers_refusals();
    test_nomem();
    test_cli();
    return t_summary("t_model");
}
