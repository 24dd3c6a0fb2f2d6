/* model_random.c - full-size random checkpoints (internal/model_random.h): the original
 * (CompVis/LDM) single-file layout of SD 1.x/2.x generated from a few architecture numbers,
 * and a streaming writer that fills each tensor with deterministic values.  The random
 * numbers are counter-based (SplitMix64's output function applied to key + index), so any
 * element can be computed on its own and the work splits over threads without changing a
 * byte. */
#include "internal/model_random.h"

#include "internal/half.h"
#include "internal/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const sd_model_random_arch presets[] = {
    {"sd15", 4, 320, 128, 768, 12, 49408, false},
    {"sd15-inpaint", 9, 320, 128, 768, 12, 49408, false},
    {"sd21", 4, 320, 128, 1024, 24, 49408, true},
};

const char *const sd_model_random_preset_names[] = {"sd15", "sd15-inpaint", "sd21", NULL};

const sd_model_random_arch *sd_model_random_preset(const char *name)
{
    for (size_t i = 0; i < SD_ARRAY_LEN(presets); i++)
        if (!strcmp(presets[i].name, name))
            return &presets[i];
    return NULL;
}

/* ==== layout ============================================================================= */

enum { LEVELS = 4, UNET_RES = 2, VAE_DOWN_RES = 2, VAE_UP_RES = 3, POSITIONS = 77,
       SCHEDULE_STEPS = 1000, LATENT = 4 };
static const int mult[LEVELS] = {1, 2, 4, 4};

typedef struct builder {
    const sd_model_random_arch *a;
    sd_dtype dtype;
    sd_model_random_tensor *items;
    size_t n, cap;
    sd_status st;
    sd_error *err;
} builder;

static void add(builder *b, sd_model_random_init init, float value, sd_dtype dtype, int ndim,
                const int64_t *shape, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static void add(builder *b, sd_model_random_init init, float value, sd_dtype dtype, int ndim,
                const int64_t *shape, const char *fmt, ...)
{
    if (b->st != SD_OK)
        return;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 1024;
        sd_model_random_tensor *p = sd_realloc(b->items, cap * sizeof *p);
        if (!p) {
            b->st = sd_fail_nomem(b->err, "random model layout");
            return;
        }
        b->items = p;
        b->cap = cap;
    }
    sd_model_random_tensor *t = &b->items[b->n];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof t->name) {
        b->st = sd_fail(b->err, SD_ERR_INVALID_ARG, "random model: tensor name too long");
        return;
    }
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->init = init;
    t->value = value;
    t->extra = init != SD_MODEL_RANDOM_UNIFORM && init != SD_MODEL_RANDOM_CONST;
    b->n++;
}

/* PyTorch's default init of Linear/Conv2d: weight and bias uniform in +-1/sqrt(fan_in). */
static void weight(builder *b, const char *p, const int64_t *shape, int ndim, bool bias)
{
    int64_t fan = 1;
    for (int i = 1; i < ndim; i++)
        fan *= shape[i];
    float bound = (float)(1.0 / sqrt((double)fan));
    add(b, SD_MODEL_RANDOM_UNIFORM, bound, b->dtype, ndim, shape, "%s.weight", p);
    if (bias)
        add(b, SD_MODEL_RANDOM_UNIFORM, bound, b->dtype, 1, shape, "%s.bias", p);
}

static void linear(builder *b, const char *p, int64_t out, int64_t in, bool bias)
{
    int64_t s[2] = {out, in};
    weight(b, p, s, 2, bias);
}

static void conv(builder *b, const char *p, int64_t out, int64_t in, int64_t k)
{
    int64_t s[4] = {out, in, k, k};
    weight(b, p, s, 4, true);
}

/* GroupNorm / LayerNorm: weight 1, bias 0. */
static void norm(builder *b, const char *p, int64_t c)
{
    add(b, SD_MODEL_RANDOM_CONST, 1.0f, b->dtype, 1, (const int64_t[]){c}, "%s.weight", p);
    add(b, SD_MODEL_RANDOM_CONST, 0.0f, b->dtype, 1, (const int64_t[]){c}, "%s.bias", p);
}

/* CLIP initialises embeddings from N(0, 0.02^2): uniform with the same deviation. */
static void embedding(builder *b, const char *name, int64_t rows, int64_t width)
{
    add(b, SD_MODEL_RANDOM_UNIFORM, 0.02f * sqrtf(3.0f), b->dtype, 2,
        (const int64_t[]){rows, width}, "%s", name);
}

/* snprintf into a caller's buffer, returning it. */
static const char *fmt_name(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static const char *fmt_name(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, SD_MODEL_RANDOM_NAME_CAP, fmt, ap);
    va_end(ap);
    return buf;
}

/* ---- UNet ------------------------------------------------------------------------------- */

#define U "model.diffusion_model."

static void unet_res(builder *b, const char *p, int64_t in, int64_t out)
{
    char n[SD_MODEL_RANDOM_NAME_CAP];
    norm(b, fmt_name(n, "%s.in_layers.0", p), in);
    conv(b, fmt_name(n, "%s.in_layers.2", p), out, in, 3);
    linear(b, fmt_name(n, "%s.emb_layers.1", p), out, 4 * (int64_t)b->a->unet_ch, true);
    norm(b, fmt_name(n, "%s.out_layers.0", p), out);
    conv(b, fmt_name(n, "%s.out_layers.3", p), out, out, 3);
    if (in != out)
        conv(b, fmt_name(n, "%s.skip_connection", p), out, in, 1);
}

/* SpatialTransformer with one BasicTransformerBlock (self-attention, cross-attention on the
 * text context, GEGLU feed-forward). */
static void unet_attn(builder *b, const char *p, int64_t c)
{
    char n[SD_MODEL_RANDOM_NAME_CAP];
    int64_t ctx = b->a->text_width;
    norm(b, fmt_name(n, "%s.norm", p), c);
    for (int i = 0; i < 2; i++) {
        const char *which = i ? "proj_out" : "proj_in";
        if (b->a->openclip)
            linear(b, fmt_name(n, "%s.%s", p, which), c, c, true);
        else
            conv(b, fmt_name(n, "%s.%s", p, which), c, c, 1);
    }
    for (int k = 1; k <= 2; k++) {
        int64_t kv = k == 1 ? c : ctx;
        linear(b, fmt_name(n, "%s.transformer_blocks.0.attn%d.to_q", p, k), c, c, false);
        linear(b, fmt_name(n, "%s.transformer_blocks.0.attn%d.to_k", p, k), c, kv, false);
        linear(b, fmt_name(n, "%s.transformer_blocks.0.attn%d.to_v", p, k), c, kv, false);
        linear(b, fmt_name(n, "%s.transformer_blocks.0.attn%d.to_out.0", p, k), c, c, true);
    }
    linear(b, fmt_name(n, "%s.transformer_blocks.0.ff.net.0.proj", p), 8 * c, c, true);
    linear(b, fmt_name(n, "%s.transformer_blocks.0.ff.net.2", p), c, 4 * c, true);
    for (int k = 1; k <= 3; k++)
        norm(b, fmt_name(n, "%s.transformer_blocks.0.norm%d", p, k), c);
}

static void unet(builder *b)
{
    char n[SD_MODEL_RANDOM_NAME_CAP];
    int64_t ch = b->a->unet_ch;
    linear(b, U "time_embed.0", 4 * ch, ch, true);
    linear(b, U "time_embed.2", 4 * ch, 4 * ch, true);
    conv(b, U "input_blocks.0.0", ch, b->a->unet_in, 3);
    /* channels of every skip connection, in push order */
    int64_t skips[1 + LEVELS * (UNET_RES + 1)];
    int n_skips = 0;
    skips[n_skips++] = ch;
    int64_t cur = ch;
    int block = 1;
    for (int l = 0; l < LEVELS; l++) {
        int64_t w = ch * mult[l];
        for (int j = 0; j < UNET_RES; j++, block++) {
            unet_res(b, fmt_name(n, U "input_blocks.%d.0", block), cur, w);
            cur = w;
            if (l < LEVELS - 1)
                unet_attn(b, fmt_name(n, U "input_blocks.%d.1", block), w);
            skips[n_skips++] = w;
        }
        if (l < LEVELS - 1) {
            conv(b, fmt_name(n, U "input_blocks.%d.0.op", block++), cur, cur, 3);
            skips[n_skips++] = cur;
        }
    }
    unet_res(b, U "middle_block.0", cur, cur);
    unet_attn(b, U "middle_block.1", cur);
    unet_res(b, U "middle_block.2", cur, cur);
    block = 0;
    for (int l = LEVELS - 1; l >= 0; l--) {
        int64_t w = ch * mult[l];
        for (int j = 0; j <= UNET_RES; j++, block++) {
            unet_res(b, fmt_name(n, U "output_blocks.%d.0", block), cur + skips[--n_skips], w);
            cur = w;
            int sub = 1;
            if (l < LEVELS - 1)
                unet_attn(b, fmt_name(n, U "output_blocks.%d.%d", block, sub++), w);
            if (l > 0 && j == UNET_RES)
                conv(b, fmt_name(n, U "output_blocks.%d.%d.conv", block, sub), w, w, 3);
        }
    }
    norm(b, U "out.0", ch);
    conv(b, U "out.2", LATENT, ch, 3);
}

#undef U

/* ---- VAE -------------------------------------------------------------------------------- */

#define V "first_stage_model."

static void vae_res(builder *b, const char *p, int64_t in, int64_t out)
{
    char n[SD_MODEL_RANDOM_NAME_CAP];
    norm(b, fmt_name(n, "%s.norm1", p), in);
    conv(b, fmt_name(n, "%s.conv1", p), out, in, 3);
    norm(b, fmt_name(n, "%s.norm2", p), out);
    conv(b, fmt_name(n, "%s.conv2", p), out, out, 3);
    if (in != out)
        conv(b, fmt_name(n, "%s.nin_shortcut", p), out, in, 1);
}

static void vae_mid(builder *b, const char *part, int64_t c)
{
    char n[SD_MODEL_RANDOM_NAME_CAP];
    static const char *const proj[] = {"q", "k", "v", "proj_out"};
    vae_res(b, fmt_name(n, V "%s.mid.block_1", part), c, c);
    norm(b, fmt_name(n, V "%s.mid.attn_1.norm", part), c);
    for (size_t i = 0; i < SD_ARRAY_LEN(proj); i++)
        conv(b, fmt_name(n, V "%s.mid.attn_1.%s", part, proj[i]), c, c, 1);
    vae_res(b, fmt_name(n, V "%s.mid.block_2", part), c, c);
}

static void vae(builder *b)
{
    char n[SD_MODEL_RANDOM_NAME_CAP];
    int64_t ch = b->a->vae_ch, top = ch * mult[LEVELS - 1];
    conv(b, V "encoder.conv_in", ch, 3, 3);
    int64_t cur = ch;
    for (int l = 0; l < LEVELS; l++) {
        for (int j = 0; j < VAE_DOWN_RES; j++) {
            vae_res(b, fmt_name(n, V "encoder.down.%d.block.%d", l, j), cur, ch * mult[l]);
            cur = ch * mult[l];
        }
        if (l < LEVELS - 1)
            conv(b, fmt_name(n, V "encoder.down.%d.downsample.conv", l), cur, cur, 3);
    }
    vae_mid(b, "encoder", cur);
    norm(b, V "encoder.norm_out", cur);
    conv(b, V "encoder.conv_out", 2 * LATENT, cur, 3);
    conv(b, V "quant_conv", 2 * LATENT, 2 * LATENT, 1);
    conv(b, V "post_quant_conv", LATENT, LATENT, 1);
    conv(b, V "decoder.conv_in", top, LATENT, 3);
    vae_mid(b, "decoder", top);
    cur = top;
    for (int l = LEVELS - 1; l >= 0; l--) {
        for (int j = 0; j < VAE_UP_RES; j++) {
            vae_res(b, fmt_name(n, V "decoder.up.%d.block.%d", l, j), cur, ch * mult[l]);
            cur = ch * mult[l];
        }
        if (l > 0)
            conv(b, fmt_name(n, V "decoder.up.%d.upsample.conv", l), cur, cur, 3);
    }
    norm(b, V "decoder.norm_out", cur);
    conv(b, V "decoder.conv_out", 3, cur, 3);
}

#undef V

/* ---- text encoders ---------------------------------------------------------------------- */

/* CLIP ViT-L/14 as transformers' CLIPTextModel under cond_stage_model.transformer. */
static void clip(builder *b)
{
#define T "cond_stage_model.transformer.text_model."
    char n[SD_MODEL_RANDOM_NAME_CAP];
    int64_t w = b->a->text_width;
    static const char *const proj[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    embedding(b, T "embeddings.token_embedding.weight", b->a->text_vocab, w);
    embedding(b, T "embeddings.position_embedding.weight", POSITIONS, w);
    add(b, SD_MODEL_RANDOM_ARANGE, 0, SD_DTYPE_I64, 2, (const int64_t[]){1, POSITIONS},
        T "embeddings.position_ids");
    for (int l = 0; l < b->a->text_layers; l++) {
        for (size_t i = 0; i < SD_ARRAY_LEN(proj); i++)
            linear(b, fmt_name(n, T "encoder.layers.%d.self_attn.%s", l, proj[i]), w, w, true);
        norm(b, fmt_name(n, T "encoder.layers.%d.layer_norm1", l), w);
        linear(b, fmt_name(n, T "encoder.layers.%d.mlp.fc1", l), 4 * w, w, true);
        linear(b, fmt_name(n, T "encoder.layers.%d.mlp.fc2", l), w, 4 * w, true);
        norm(b, fmt_name(n, T "encoder.layers.%d.layer_norm2", l), w);
    }
    norm(b, T "final_layer_norm", w);
#undef T
}

/* OpenCLIP ViT-H/14's text tower under cond_stage_model.model. */
static void openclip(builder *b)
{
#define O "cond_stage_model.model."
    char n[SD_MODEL_RANDOM_NAME_CAP];
    int64_t w = b->a->text_width;
    embedding(b, O "token_embedding.weight", b->a->text_vocab, w);
    embedding(b, O "positional_embedding", POSITIONS, w);
    for (int l = 0; l < b->a->text_layers; l++) {
        norm(b, fmt_name(n, O "transformer.resblocks.%d.ln_1", l), w);
        /* fused q/k/v: [3w, w] */
        float bound = (float)(1.0 / sqrt((double)w));
        add(b, SD_MODEL_RANDOM_UNIFORM, bound, b->dtype, 2, (const int64_t[]){3 * w, w},
            O "transformer.resblocks.%d.attn.in_proj_weight", l);
        add(b, SD_MODEL_RANDOM_UNIFORM, bound, b->dtype, 1, (const int64_t[]){3 * w},
            O "transformer.resblocks.%d.attn.in_proj_bias", l);
        linear(b, fmt_name(n, O "transformer.resblocks.%d.attn.out_proj", l), w, w, true);
        norm(b, fmt_name(n, O "transformer.resblocks.%d.ln_2", l), w);
        linear(b, fmt_name(n, O "transformer.resblocks.%d.mlp.c_fc", l), 4 * w, w, true);
        linear(b, fmt_name(n, O "transformer.resblocks.%d.mlp.c_proj", l), w, 4 * w, true);
    }
    norm(b, O "ln_final", w);
    add(b, SD_MODEL_RANDOM_UNIFORM, (float)(1.0 / sqrt((double)w)), b->dtype, 2,
        (const int64_t[]){w, w}, O "text_projection");
    /* CLIP's initial temperature: log(1 / 0.07) */
    add(b, SD_MODEL_RANDOM_CONST, 2.6592600f, b->dtype, 0, (const int64_t[]){0},
        O "logit_scale");
#undef O
}

sd_status sd_model_random_layout(const sd_model_random_arch *a, sd_dtype dtype,
                                 sd_model_random_tensor **out, size_t *n, sd_error *err)
{
    *out = NULL;
    *n = 0;
    if (dtype != SD_DTYPE_F32 && dtype != SD_DTYPE_F16 && dtype != SD_DTYPE_BF16)
        return sd_fail(err, SD_ERR_INVALID_ARG, "random model: weights must be F32, F16 or "
                       "BF16, not %s", sd_dtype_name(dtype));
    if (a->unet_in < 1 || a->unet_ch < 1 || a->vae_ch < 1 || a->text_width < 1 ||
        a->text_layers < 1 || a->text_vocab < 1 || (a->openclip && a->text_layers < 2))
        return sd_fail(err, SD_ERR_INVALID_ARG, "random model %s: bad architecture numbers",
                       a->name ? a->name : "?");
    builder b = {.a = a, .dtype = dtype, .err = err};
    unet(&b);
    vae(&b);
    if (a->openclip)
        openclip(&b);
    else
        clip(&b);
    static const sd_model_random_init schedule[] = {
        SD_MODEL_RANDOM_BETAS, SD_MODEL_RANDOM_ALPHAS_CUMPROD,
        SD_MODEL_RANDOM_ALPHAS_CUMPROD_PREV};
    static const char *const schedule_names[] = {"betas", "alphas_cumprod",
                                                 "alphas_cumprod_prev"};
    for (size_t i = 0; i < SD_ARRAY_LEN(schedule); i++)
        add(&b, schedule[i], 0, SD_DTYPE_F32, 1, (const int64_t[]){SCHEDULE_STEPS}, "%s",
            schedule_names[i]);
    if (b.st != SD_OK) {
        sd_free(b.items);
        return b.st;
    }
    *out = b.items;
    *n = b.n;
    return SD_OK;
}

/* ==== values ============================================================================= */

/* SplitMix64's output function: a bijective 64-bit mixer. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t name_key(uint64_t seed, const char *name)
{
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001B3ull;
    return mix64(seed ^ mix64(h));
}

/* SD's "scaled linear" schedule: betas on a line from sqrt(0.00085) to sqrt(0.012), squared. */
static double beta_at(int64_t k)
{
    double lo = sqrt(0.00085), hi = sqrt(0.012);
    double s = lo + (hi - lo) * (double)k / (SCHEDULE_STEPS - 1);
    return s * s;
}

/* Schedule buffers as the LDM code computes them (float64, stored as float32). */
static double schedule_value(sd_model_random_init init, int64_t i)
{
    if (init == SD_MODEL_RANDOM_BETAS)
        return beta_at(i);
    int64_t upto = init == SD_MODEL_RANDOM_ALPHAS_CUMPROD ? i + 1 : i;
    double prod = 1;
    for (int64_t k = 0; k < upto; k++)
        prod *= 1.0 - beta_at(k);
    return prod;
}

enum { BLOCK = 1 << 16, CHUNK = 1 << 22 }; /* elements per task / per write */

typedef struct fill_job {
    const sd_model_random_tensor *t;
    uint64_t key;
    int64_t first;   /* element index of buf[0] */
    int64_t count;
    void *buf;
} fill_job;

/* float32 -> half, round to nearest even, like sd_f32_to_f16 but without branches (that
 * one's rounding branch is a coin flip on random data) and only for |v| < 65504, which holds
 * for every generated value.  Normal halves: rebias the exponent and round at bit 13.
 * Subnormal halves (|v| < 2^-14): adding 0.5f makes the FPU round |v| to a multiple of 2^-24,
 * the subnormal half's unit, in the low mantissa bits. */
static inline uint16_t f16_bounded(float v)
{
    uint32_t u = sd_f32_bits(v);
    uint32_t a = u & 0x7FFFFFFFu;
    uint32_t normal = (a - (112u << 23) + 0xFFFu + ((a >> 13) & 1u)) >> 13;
    uint32_t sub = sd_f32_bits(sd_f32_from_bits(a) + 0.5f) - 0x3F000000u;
    return (uint16_t)(((u >> 16) & 0x8000u) | (a < 0x38800000u ? sub : normal));
}

static void put_value(void *buf, sd_dtype dtype, int64_t i, float v)
{
    switch (dtype) {
    case SD_DTYPE_F16:
        ((uint16_t *)buf)[i] = f16_bounded(v);
        break;
    case SD_DTYPE_BF16:
        ((uint16_t *)buf)[i] = sd_f32_to_bf16(v);
        break;
    default:
        ((float *)buf)[i] = v;
        break;
    }
}

/* Uniform values: elements 2k and 2k + 1 take bits 40..63 and 8..31 of
 * mix64(key + k * golden), scaled to [-bound, bound).  Tasks and chunks start at even
 * elements, so only a tensor's last element can be without its pair. */
static inline float uniform_at(uint32_t u24, float scale, float bound)
{
    return (float)u24 * scale - bound;
}

/* One loop per dtype (dt is a constant after inlining, so the store needs no switch). */
static inline __attribute__((always_inline)) void
uniform_pairs(const fill_job *j, int64_t lo, int64_t hi, sd_dtype dt)
{
    const float bound = j->t->value, scale = bound * (1.0f / 8388608.0f); /* 2^24 -> 2 */
    uint64_t k = (uint64_t)(j->first + lo) >> 1;
    int64_t i = lo;
    for (; i + 1 < hi; i += 2, k++) {
        uint64_t r = mix64(j->key + k * 0x9E3779B97F4A7C15ull);
        put_value(j->buf, dt, i, uniform_at((uint32_t)(r >> 40), scale, bound));
        put_value(j->buf, dt, i + 1, uniform_at((uint32_t)(r >> 8) & 0xFFFFFF, scale, bound));
    }
    if (i < hi) { /* an odd count: the last element is the first of its pair */
        uint64_t r = mix64(j->key + k * 0x9E3779B97F4A7C15ull);
        put_value(j->buf, dt, i, uniform_at((uint32_t)(r >> 40), scale, bound));
    }
}

static void fill_uniform(const fill_job *j, int64_t lo, int64_t hi)
{
    switch (j->t->dtype) {
    case SD_DTYPE_F16:
        uniform_pairs(j, lo, hi, SD_DTYPE_F16);
        break;
    case SD_DTYPE_BF16:
        uniform_pairs(j, lo, hi, SD_DTYPE_BF16);
        break;
    default:
        uniform_pairs(j, lo, hi, SD_DTYPE_F32);
        break;
    }
}

static void fill_task(void *arg, int task, int n_tasks)
{
    const fill_job *j = arg;
    (void)n_tasks;
    int64_t lo = (int64_t)task * BLOCK, hi = SD_MIN(lo + BLOCK, j->count);
    const sd_model_random_tensor *t = j->t;
    switch (t->init) {
    case SD_MODEL_RANDOM_UNIFORM:
        fill_uniform(j, lo, hi);
        break;
    case SD_MODEL_RANDOM_CONST:
        for (int64_t i = lo; i < hi; i++)
            put_value(j->buf, t->dtype, i, t->value);
        break;
    case SD_MODEL_RANDOM_ARANGE:
        for (int64_t i = lo; i < hi; i++)
            ((int64_t *)j->buf)[i] = j->first + i;
        break;
    case SD_MODEL_RANDOM_BETAS:
    case SD_MODEL_RANDOM_ALPHAS_CUMPROD:
    case SD_MODEL_RANDOM_ALPHAS_CUMPROD_PREV:
        for (int64_t i = lo; i < hi; i++)
            ((float *)j->buf)[i] = (float)schedule_value(t->init, j->first + i);
        break;
    }
}

static int64_t numel(const sd_model_random_tensor *t)
{
    int64_t k = 1;
    for (int i = 0; i < t->ndim; i++)
        k *= t->shape[i];
    return k;
}

sd_status sd_model_random_write(const char *path, const sd_model_random_arch *a,
                                sd_dtype dtype, uint64_t seed, sd_pool *pool,
                                sd_model_random_stats *stats, sd_error *err)
{
    sd_model_random_tensor *items = NULL;
    size_t n = 0;
    sd_status st = sd_model_random_layout(a, dtype, &items, &n, err);
    if (st != SD_OK)
        return st;
    const char **names = sd_calloc(n, sizeof *names);
    sd_tensor *decl = sd_calloc(n, sizeof *decl);
    void *buf = sd_malloc((size_t)CHUNK * 8);
    sd_st_writer *w = NULL;
    if (!names || !decl || !buf) {
        st = sd_fail_nomem(err, "random model");
        goto out;
    }
    sd_model_random_stats s = {.n_tensors = n};
    for (size_t i = 0; i < n; i++) {
        names[i] = items[i].name;
        decl[i].dtype = items[i].dtype;
        decl[i].ndim = items[i].ndim;
        memcpy(decl[i].shape, items[i].shape, sizeof decl[i].shape);
        if (!items[i].extra)
            s.n_params += numel(&items[i]);
        s.data_bytes += (uint64_t)numel(&items[i]) * sd_dtype_size(items[i].dtype);
    }
    char meta[256];
    snprintf(meta, sizeof meta,
             "{\"format\":\"pt\",\"sd_random_model\":\"%s, seed %llu: random weights for "
             "benchmarks, not a trained model\"}", a->name ? a->name : "custom",
             (unsigned long long)seed);
    if ((st = sd_st_writer_begin(path, names, decl, n, meta, &w, err)) != SD_OK)
        goto out;
    size_t i;
    while ((i = sd_st_writer_next(w)) != SIZE_MAX) {
        const sd_model_random_tensor *t = &items[i];
        int64_t total = numel(t);
        size_t es = sd_dtype_size(t->dtype);
        fill_job j = {.t = t, .key = name_key(seed, t->name), .buf = buf};
        for (j.first = 0; j.first < total; j.first += CHUNK) {
            j.count = SD_MIN((int64_t)CHUNK, total - j.first);
            sd_pool_run(pool, fill_task, &j, (int)((j.count + BLOCK - 1) / BLOCK));
            if ((st = sd_st_writer_bytes(w, buf, (size_t)j.count * es, err)) != SD_OK)
                goto out;
        }
    }
    st = sd_st_writer_finish(w, err);
    w = NULL;
    if (st == SD_OK && stats)
        *stats = s;
out:
    sd_st_writer_abort(w);
    sd_free(buf);
    sd_free(decl);
    sd_free(names);
    sd_free(items);
    return st;
}
