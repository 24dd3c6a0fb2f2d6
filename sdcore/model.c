/* model.c - sd_model_load and the model accessors.  Finds the files of a model (single
 * safetensors file + optional sidecar JSON, diffusers folder, TAESD files), maps them, has
 * model_names.c rename their tensors onto the canonical names of internal/model.h, lets
 * model_detect.c decide the family and model_config.c the hyper-parameters, and answers
 * lookups by canonical name afterwards.  Pickle checkpoints are refused unread.  The keys a
 * sidecar `<name>.json` or a diffusers config may hold are documented in model_config.c. */
#include "internal/ctx.h"
#include "internal/model_load.h"
#include "internal/pack.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

enum { PATH_CAP = 4096 };

const char *sd_family_name(sd_family f)
{
    static const char *const names[SD_FAMILY_COUNT] = {
        [SD_FAMILY_UNKNOWN] = "unknown",         [SD_FAMILY_SD1] = "SD1",
        [SD_FAMILY_SD1_INPAINT] = "SD1-inpaint", [SD_FAMILY_SD2] = "SD2",
        [SD_FAMILY_SD2_INPAINT] = "SD2-inpaint", [SD_FAMILY_TAESD] = "TAESD",
    };
    return (unsigned)f < SD_FAMILY_COUNT ? names[f] : "unknown";
}

/* ---- files -------------------------------------------------------------------------------- */

static bool is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static sd_status join(char *out, const char *dir, const char *rel, sd_error *err)
{
    int k = snprintf(out, PATH_CAP, "%s/%s", dir, rel);
    if (k < 0 || k >= PATH_CAP)
        return sd_fail(err, SD_ERR_IO, "%.100s...: path too long", dir);
    return SD_OK;
}

static bool has_ext(const char *path, const char *ext)
{
    size_t a = strlen(path), b = strlen(ext);
    return a >= b && !strcasecmp(path + a - b, ext);
}

/* Refuse pickle (and GGUF) files by name or by their first bytes, before mapping anything:
 * unpickling can run arbitrary code, so a pickle is never parsed. */
static sd_status refuse_foreign(const char *path, sd_error *err)
{
    static const char *const pickle_ext[] = {".ckpt", ".pt", ".pth", ".bin", ".pkl"};
    bool pickle = false;
    for (size_t i = 0; i < SD_ARRAY_LEN(pickle_ext); i++)
        pickle |= has_ext(path, pickle_ext[i]);
    unsigned char head[4] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sd_fail(err, SD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    ssize_t got = read(fd, head, sizeof head);
    close(fd);
    if (got == 4 && !memcmp(head, "PK\3\4", 4))
        pickle = true; /* torch.save's zip container holds a pickle */
    if (got >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5)
        pickle = true; /* a bare pickle stream (protocol 2..5) */
    if (pickle)
        return sd_fail(err, SD_ERR_UNSUPPORTED,
                       "%s: pickle checkpoints are not loaded (they can run code); convert to "
                       ".safetensors", path);
    if (got == 4 && !memcmp(head, "GGUF", 4))
        return sd_fail(err, SD_ERR_UNSUPPORTED, "%s: GGUF files are not supported; use "
                       ".safetensors", path);
    return SD_OK;
}

/* ---- building the canonical tensor table -------------------------------------------------- */

typedef struct source {
    sd_st_file *f;
    sd_layout layout;
} source;

typedef struct builder {
    sd_model *m;
    source src[SD_MODEL_MAX_FILES];
    int n_src;
    size_t count, bytes;   /* pass 1 */
    char *pos;             /* pass 2: next free byte of the arena */
} builder;

static void count_cb(void *user, const char *name, const sd_tensor *view)
{
    builder *b = user;
    (void)view;
    b->count++;
    b->bytes += strlen(name) + 1;
}

static void fill_cb(void *user, const char *name, const sd_tensor *view)
{
    builder *b = user;
    sd_model *m = b->m;
    if (SD_NEVER(m->n >= b->count))
        return;
    size_t len = strlen(name) + 1;
    memcpy(b->pos, name, len);
    m->tensors[m->n].name = b->pos;
    m->tensors[m->n].t = *view;
    m->tensors[m->n].t.owned = false;
    m->n++;
    b->pos += len;
}

/* Open `path` as a source of `layout` (or classify it when classify is set), count its
 * canonical tensors (pass 1) and keep it. */
static sd_status add_source(builder *b, const char *path, bool classify, sd_layout layout,
                            sd_error *err)
{
    if (SD_NEVER(b->n_src >= SD_MODEL_MAX_FILES))
        return sd_fail(err, SD_ERR_INTERNAL, "too many model files");
    sd_status st = refuse_foreign(path, err);
    if (st != SD_OK)
        return st;
    sd_st_file *f = NULL;
    if ((st = sd_st_open(path, &f, err)) != SD_OK)
        return st;
    b->m->files[b->m->n_files++] = f;
    if (classify)
        st = sd_model_classify(f, path, &layout, err);
    else
        st = sd_model_reject_others(f, path, err);
    if (st == SD_OK)
        st = sd_model_map_names(f, layout, path, count_cb, b, err);
    if (st != SD_OK)
        return st;
    if (layout == SD_LAYOUT_LDM && sd_st_find(f, "cond_stage_model.model.token_embedding.weight"))
        b->m->openclip = true;
    b->src[b->n_src++] = (source){f, layout};
    return SD_OK;
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const sd_model_entry *)a)->name, ((const sd_model_entry *)b)->name);
}

/* Pass 2: fill the sorted table. */
static sd_status build_table(builder *b, const char *what, sd_error *err)
{
    sd_model *m = b->m;
    m->tensors = sd_calloc(b->count ? b->count : 1, sizeof *m->tensors);
    m->names = sd_malloc(b->bytes ? b->bytes : 1);
    if (!m->tensors || !m->names)
        return sd_fail_nomem(err, "model tensor table");
    b->pos = m->names;
    for (int i = 0; i < b->n_src; i++) {
        sd_status st = sd_model_map_names(b->src[i].f, b->src[i].layout, what, fill_cb, b, err);
        if (SD_NEVER(st != SD_OK))
            return sd_fail(err, SD_ERR_INTERNAL, "%s: renaming changed between passes", what);
    }
    qsort(m->tensors, m->n, sizeof *m->tensors, cmp_tensor);
    for (size_t i = 1; i < m->n; i++)
        if (!strcmp(m->tensors[i - 1].name, m->tensors[i].name))
            return sd_fail(err, SD_ERR_FORMAT, "%s: two tensors map to the same name %.120s",
                           what, m->tensors[i].name);
    return SD_OK;
}

static void fill_info(sd_model *m)
{
    sd_model_info *in = &m->info;
    int64_t by_dtype[SD_DTYPE_COUNT] = {0};
    in->params_unet = in->params_vae = in->params_text = in->params_taesd = 0;
    for (size_t i = 0; i < m->n; i++) {
        const char *name = m->tensors[i].name;
        int64_t k = sd_tensor_numel(&m->tensors[i].t);
        by_dtype[m->tensors[i].t.dtype] += k;
        if (!strncmp(name, "model.diffusion_model.", 22))
            in->params_unet += k;
        else if (!strncmp(name, "first_stage_model.", 18))
            in->params_vae += k;
        else if (!strncmp(name, "text_model.", 11))
            in->params_text += k;
        else if (!strncmp(name, "taesd.", 6))
            in->params_taesd += k;
    }
    in->dtype = SD_DTYPE_F32;
    for (int t = 0; t < SD_DTYPE_COUNT; t++)
        if (by_dtype[t] > by_dtype[in->dtype])
            in->dtype = (sd_dtype)t;
    in->n_tensors = (int64_t)m->n;
    in->prediction = m->hp.prediction;
    in->variant = m->hp.variant;
    in->vae_scaling_factor = m->hp.vae_scaling_factor;
}

/* ---- layouts on disk ---------------------------------------------------------------------- */

/* X.safetensors -> X.json (any other name: name + ".json"). */
static sd_status sidecar_path(const char *path, char *out, sd_error *err)
{
    size_t n = strlen(path);
    if (has_ext(path, ".safetensors"))
        n -= strlen(".safetensors");
    if (n + 6 > PATH_CAP)
        return sd_fail(err, SD_ERR_IO, "%.100s...: path too long", path);
    memcpy(out, path, n);
    memcpy(out + n, ".json", 6);
    return SD_OK;
}

/* The other half of a taesd.py encoder/decoder pair: the same name with "encoder" and
 * "decoder" swapped in the file name. */
static bool taesd_sibling(const char *path, sd_layout have, char *out)
{
    const char *from = have == SD_LAYOUT_TAESD_ENCODER ? "encoder" : "decoder";
    const char *to = have == SD_LAYOUT_TAESD_ENCODER ? "decoder" : "encoder";
    size_t n = strlen(path);
    if (n >= PATH_CAP)
        return false;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *hit = NULL;
    for (const char *p = base; (p = strstr(p, from)); p++)
        hit = p;
    if (!hit)
        return false;
    memcpy(out, path, n + 1);
    memcpy(out + (hit - path), to, strlen(to));
    return is_file(out);
}

static sd_status load_file(builder *b, const char *path, char *sidecar, sd_error *err)
{
    sd_status st = add_source(b, path, true, SD_LAYOUT_LDM, err);
    if (st != SD_OK)
        return st;
    sd_layout have = b->src[0].layout;
    if (have == SD_LAYOUT_TAESD_ENCODER || have == SD_LAYOUT_TAESD_DECODER) {
        char other[PATH_CAP];
        if (taesd_sibling(path, have, other)) {
            if ((st = add_source(b, other, true, SD_LAYOUT_LDM, err)) != SD_OK)
                return st;
            if (b->src[1].layout == have)
                return sd_fail(err, SD_ERR_FORMAT, "%s and %s are both TAESD %ss", path, other,
                               have == SD_LAYOUT_TAESD_ENCODER ? "encoder" : "decoder");
        }
    }
    if ((st = sidecar_path(path, sidecar, err)) != SD_OK)
        return st;
    if (!is_file(sidecar))
        sidecar[0] = 0;
    return SD_OK;
}

/* The weights file of diffusers component `comp` (full or .fp16), or "" when absent. */
static sd_status component_weights(const char *dir, const char *comp, const char *base,
                                   char *out, sd_error *err)
{
    static const char *const variants[] = {"", ".fp16"};
    char rel[256];
    sd_status st;
    for (size_t i = 0; i < SD_ARRAY_LEN(variants); i++) {
        snprintf(rel, sizeof rel, "%s/%s%s.safetensors", comp, base, variants[i]);
        if ((st = join(out, dir, rel, err)) != SD_OK)
            return st;
        if (is_file(out))
            return SD_OK;
    }
    snprintf(rel, sizeof rel, "%s/%s.safetensors.index.json", comp, base);
    if ((st = join(out, dir, rel, err)) != SD_OK)
        return st;
    if (is_file(out))
        return sd_fail(err, SD_ERR_UNSUPPORTED, "%s: sharded weights are not supported", out);
    snprintf(rel, sizeof rel, "%s/%s.bin", comp, base);
    if ((st = join(out, dir, rel, err)) != SD_OK)
        return st;
    if (is_file(out))
        return refuse_foreign(out, err);
    out[0] = 0;
    return SD_OK;
}

static const struct {
    const char *comp, *base;
    sd_layout layout;
} diffusers_parts[] = {
    {"unet", "diffusion_pytorch_model", SD_LAYOUT_DIFFUSERS_UNET},
    {"vae", "diffusion_pytorch_model", SD_LAYOUT_DIFFUSERS_VAE},
    {"text_encoder", "model", SD_LAYOUT_HF_CLIP_TEXT},
};

/* Pipelines whose model_index.json shows a component this engine does not have. */
static sd_status check_model_index(const char *path, sd_error *err)
{
    sd_json *idx = NULL;
    sd_status st = sd_json_parse_file(path, 1 << 20, &idx, err);
    if (st != SD_OK)
        return st;
    const char *cls = sd_json_str(sd_json_get(idx, "_class_name"), "?");
    if (idx->type != SD_JSON_OBJECT)
        st = sd_fail(err, SD_ERR_FORMAT, "%s: not a JSON object", path);
    else if (sd_json_get(idx, "text_encoder_2") || strstr(cls, "XL"))
        st = sd_fail(err, SD_ERR_UNSUPPORTED, "%s: an SDXL pipeline (%.60s): not supported",
                     path, cls);
    else if (sd_json_get(idx, "transformer"))
        st = sd_fail(err, SD_ERR_UNSUPPORTED,
                     "%s: a transformer-based pipeline (%.60s; SD3/Flux/PixArt?): not supported",
                     path, cls);
    else if (sd_json_get(idx, "prior") || sd_json_get(idx, "prior_prior"))
        st = sd_fail(err, SD_ERR_UNSUPPORTED, "%s: a prior/decoder pipeline (%.60s): not "
                     "supported", path, cls);
    else if (!sd_json_get(idx, "unet"))
        st = sd_fail(err, SD_ERR_UNSUPPORTED, "%s: a pipeline without a UNet (%.60s): not "
                     "supported", path, cls);
    sd_json_free(idx);
    return st;
}

static sd_status load_dir(builder *b, const char *dir, sd_error *err)
{
    char p[PATH_CAP];
    sd_status st;
    if ((st = join(p, dir, "model_index.json", err)) != SD_OK)
        return st;
    if (is_file(p)) {
        if ((st = check_model_index(p, err)) != SD_OK)
            return st;
        for (size_t i = 0; i < SD_ARRAY_LEN(diffusers_parts); i++) {
            st = component_weights(dir, diffusers_parts[i].comp, diffusers_parts[i].base, p, err);
            if (st == SD_OK && p[0])
                st = add_source(b, p, false, diffusers_parts[i].layout, err);
            if (st != SD_OK)
                return st;
        }
        return SD_OK;
    }
    /* a single-component folder (e.g. AutoencoderTiny: config.json + weights) */
    if ((st = component_weights(dir, ".", "diffusion_pytorch_model", p, err)) != SD_OK)
        return st;
    if (p[0])
        return add_source(b, p, true, SD_LAYOUT_LDM, err);
    /* a folder holding the taesd.py pair */
    bool any = false;
    static const char *const taesd[] = {"taesd_encoder.safetensors", "taesd_decoder.safetensors"};
    for (size_t i = 0; i < SD_ARRAY_LEN(taesd); i++) {
        if ((st = join(p, dir, taesd[i], err)) != SD_OK)
            return st;
        if (is_file(p)) {
            if ((st = add_source(b, p, true, SD_LAYOUT_LDM, err)) != SD_OK)
                return st;
            any = true;
        }
    }
    if (!any)
        return sd_fail(err, SD_ERR_FORMAT,
                       "%s: folder without model_index.json or weights (not a diffusers model)",
                       dir);
    return SD_OK;
}

/* Apply the configs of a diffusers folder (each optional). */
static sd_status dir_configs(sd_model *m, const char *dir, sd_error *err)
{
    static const char *const files[][2] = {
        {"unet/config.json", "unet"},
        {"text_encoder/config.json", "text_encoder"},
        {"vae/config.json", "vae"},
        {"scheduler/scheduler_config.json", "scheduler"},
        {"tokenizer/special_tokens_map.json", "tokenizer"},
        {"config.json", "vae"}, /* a single-component AutoencoderTiny folder */
    };
    char p[PATH_CAP];
    for (size_t i = 0; i < SD_ARRAY_LEN(files); i++) {
        sd_status st = join(p, dir, files[i][0], err);
        if (st != SD_OK)
            return st;
        if (!is_file(p))
            continue;
        sd_json *cfg = NULL;
        if ((st = sd_json_parse_file(p, 1 << 20, &cfg, err)) != SD_OK)
            return st;
        st = sd_model_apply_config(m, files[i][1], cfg, p, err);
        sd_json_free(cfg);
        if (st != SD_OK)
            return st;
    }
    return SD_OK;
}

/* ---- public ------------------------------------------------------------------------------- */

/* The variant a file or folder name suggests ("sd_turbo.safetensors", "lcm-dreamshaper"). */
static sd_variant variant_from_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base && base[1] ? base + 1 : path;
    char low[256];
    size_t n = 0;
    for (; base[n] && n + 1 < sizeof low; n++)
        low[n] = (char)(base[n] >= 'A' && base[n] <= 'Z' ? base[n] + 32 : base[n]);
    low[n] = 0;
    if (strstr(low, "turbo"))
        return SD_VARIANT_TURBO;
    if (strstr(low, "lcm"))
        return SD_VARIANT_LCM;
    return SD_VARIANT_BASE;
}

static sd_status load(sd_model *m, const char *path, sd_error *err)
{
    builder b = {.m = m};
    char sidecar[PATH_CAP] = "";
    struct stat sb;
    if (stat(path, &sb) != 0)
        return sd_fail(err, SD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    bool dir = S_ISDIR(sb.st_mode);
    if (!dir && !S_ISREG(sb.st_mode))
        return sd_fail(err, SD_ERR_IO, "%s: not a regular file or folder", path);
    sd_status st = dir ? load_dir(&b, path, err) : load_file(&b, path, sidecar, err);
    if (st != SD_OK)
        return st;
    if ((st = build_table(&b, path, err)) != SD_OK)
        return st;
    if ((st = sd_model_detect_family(m, path, err)) != SD_OK)
        return st;
    sd_model_default_hparams(m);
    m->hp.variant = variant_from_name(path);
    if (dir)
        st = dir_configs(m, path, err);
    else if (sidecar[0])
        st = sd_model_apply_sidecar(m, sidecar, err);
    if (st == SD_OK)
        st = sd_model_check_hparams(m, path, err);
    if (st != SD_OK)
        return st;
    fill_info(m);
    return SD_OK;
}

sd_status sd_model_load(sd_ctx *ctx, const char *path, sd_model **out, sd_error *err)
{
    if (!out)
        return sd_fail(err, SD_ERR_INVALID_ARG, "sd_model_load: out is NULL");
    *out = NULL;
    if (!path || !*path)
        return sd_fail(err, SD_ERR_INVALID_ARG, "sd_model_load: no path");
    sd_model *m = sd_calloc(1, sizeof *m);
    if (!m)
        return sd_fail_nomem(err, "model");
    sd_status st = load(m, path, err);
    if (st == SD_OK)
        st = sd_pack_cache_new(&m->packs, err);
    for (int i = 0; st == SD_OK && i < m->n_files; i++)
        if (m->files[i]->map)
            st = sd_pack_cache_add_mapping(m->packs, m->files[i]->map, m->files[i]->map_size,
                                           err);
    if (st != SD_OK) {
        sd_model_free(m);
        return st;
    }
    sd_log(ctx, SD_LOG_INFO, "loaded %s: %s, %s, %zu tensors", path,
           sd_family_name(m->info.family), sd_dtype_name(m->info.dtype), m->n);
    *out = m;
    return SD_OK;
}

void sd_model_free(sd_model *m)
{
    if (!m)
        return;
    sd_pack_cache_free(m->packs);
    for (int i = 0; i < m->n_files; i++)
        sd_st_close(m->files[i]);
    sd_free(m->tensors);
    sd_free(m->names);
    sd_free(m);
}

void sd_model_get_info(const sd_model *m, sd_model_info *out)
{
    *out = m->info;
}

const sd_model_hparams *sd_model_get_hparams(const sd_model *m)
{
    return &m->hp;
}

static int cmp_key(const void *key, const void *item)
{
    return strcmp(key, ((const sd_model_entry *)item)->name);
}

const sd_tensor *sd_model_tensor(const sd_model *m, const char *name)
{
    if (!m || !m->n)
        return NULL;
    const sd_model_entry *t = bsearch(name, m->tensors, m->n, sizeof *m->tensors, cmp_key);
    return t ? &t->t : NULL;
}

static const sd_tensor *tensor_v(const sd_model *m, const char *fmt, va_list ap, char *name,
                                 size_t cap)
{
    int k = vsnprintf(name, cap, fmt, ap);
    if (k < 0 || (size_t)k >= cap)
        return NULL;
    return sd_model_tensor(m, name);
}

const sd_tensor *sd_model_tensorf(const sd_model *m, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    const sd_tensor *t = tensor_v(m, fmt, ap, name, sizeof name);
    va_end(ap);
    return t;
}

sd_status sd_model_need(const sd_model *m, sd_error *err, const sd_tensor **out,
                        const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    *out = tensor_v(m, fmt, ap, name, sizeof name);
    va_end(ap);
    if (!*out)
        return sd_fail(err, SD_ERR_FORMAT, "model is missing tensor %.200s", name);
    return SD_OK;
}
