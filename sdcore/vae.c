/* vae.c - the Stable Diffusion VAE (LDM AutoencoderKL): encoder to the latent posterior,
 * decoder back to pixels, and the overlapping-tile runner that keeps large images within
 * memory.  This file holds the whole network because its parts (ResNet block, mid-block
 * attention, samplers) are shared by the encoder and the decoder and by nothing else.
 *
 * The forward passes mirror ldm/modules/diffusionmodules/model.py (Encoder, Decoder,
 * ResnetBlock, AttnBlock, Downsample, Upsample) and diffusers' AutoencoderKL, which compute
 * the same thing.  The architecture is discovered from the canonical tensor names
 * (internal/model.h): first_stage_model.{encoder,decoder}.*, quant_conv, post_quant_conv. */
#include "internal/vae.h"

#include "internal/model.h"
#include "internal/ops.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MAX_LEVELS 8          /* resolution levels (SD: 4) */
#define MAX_BLOCKS 8          /* ResNet blocks per level (SD: 2 encoder, 3 decoder) */
#define MAX_CHANNELS 65536
#define MAX_SIDE 65536        /* image pixels per side */
#define GN_GROUPS 32          /* LDM Normalize(): GroupNorm(32, C, eps=1e-6) */
#define GN_EPS 1e-6f
#define LOGVAR_MIN -30.0f     /* DiagonalGaussianDistribution clamps logvar to [-30, 20] */
#define LOGVAR_MAX 20.0f

/* ============================================================================================
 * The network description, read from the tensors
 * ========================================================================================== */

typedef struct conv {
    const sd_tensor *w;   /* [O, C, k, k] (1x1 may also be stored [O, C]); NULL: absent */
    const sd_tensor *b;   /* [O] */
    int cout, cin, k;
} conv;

typedef struct norm {
    const sd_tensor *g, *b; /* [C] each */
    int c;
} norm;

typedef struct resblock {  /* ResnetBlock without time embedding */
    norm n1, n2;
    conv c1, c2;
    conv nin;              /* nin_shortcut 1x1 when channels change, else w == NULL */
} resblock;

typedef struct attnblock { /* AttnBlock: single-head self-attention over C channels */
    bool present;
    norm n;
    conv q, k, v, o;       /* 1x1 convolutions = linear maps over channels */
} attnblock;

typedef struct level {
    int n_blocks;
    resblock blocks[MAX_BLOCKS];
    conv resample;         /* Downsample / Upsample convolution, w == NULL: none */
} level;

typedef struct half_net {  /* the encoder or the decoder */
    bool present;
    int n_levels, factor;
    conv conv_in;
    level levels[MAX_LEVELS];   /* in storage order: encoder down.i, decoder up.i */
    resblock mid1, mid2;
    attnblock attn;
    norm norm_out;
    conv conv_out;
    conv quant;            /* encoder: quant_conv after; decoder: post_quant_conv before */
} half_net;

typedef struct vae_net {
    half_net enc, dec;
    int z;                 /* latent channels */
    int factor;
    float scaling_factor;
} vae_net;

/* snprintf for tensor names: names longer than the buffer are cut (and then not found). */
static void nm(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void nm(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

static bool is_float(const sd_tensor *t)
{
    return t->dtype == SD_DTYPE_F32 || t->dtype == SD_DTYPE_F16 || t->dtype == SD_DTYPE_BF16;
}

static void shape_str(const sd_tensor *t, char *buf, size_t n)
{
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "",
                                 (long long)t->shape[i]);
    if (used < n)
        snprintf(buf + used, n - used, "]");
}

static bool exists(const sd_model *m, const char *base, const char *suffix)
{
    char name[256];
    nm(name, sizeof name, "%s%s", base, suffix);
    return sd_model_tensor(m, name) != NULL;
}

/* The tensor `base` + `suffix`, required to be a float tensor of `ndim` dimensions. */
static sd_status need(const sd_model *m, sd_error *err, const sd_tensor **out, const char *base,
                      const char *suffix, int ndim)
{
    char name[256];
    nm(name, sizeof name, "%s%s", base, suffix);
    const sd_tensor *t = sd_model_tensor(m, name);
    if (!t)
        return sd_fail(err, SD_ERR_FORMAT, "model is missing tensor %s", name);
    if (!is_float(t) || t->ndim != ndim) {
        char s[96];
        shape_str(t, s, sizeof s);
        return sd_fail(err, SD_ERR_FORMAT, "tensor %s: %s %s is not a %dD float tensor", name,
                       sd_dtype_name(t->dtype), s, ndim);
    }
    *out = t;
    return SD_OK;
}

/* Convolution `base`.weight [O, cin, k, k] + `base`.bias [O]; cin < 0 accepts any. */
static sd_status load_conv(const sd_model *m, sd_error *err, conv *c, const char *base, int cin,
                           int k)
{
    char name[256];
    nm(name, sizeof name, "%s.weight", base);
    const sd_tensor *w = sd_model_tensor(m, name);
    if (!w)
        return sd_fail(err, SD_ERR_FORMAT, "model is missing tensor %s", name);
    int64_t o = 0, ci = 0, kh = 0, kw = 0;
    if (w->ndim == 4)
        o = w->shape[0], ci = w->shape[1], kh = w->shape[2], kw = w->shape[3];
    else if (w->ndim == 2 && k == 1)
        o = w->shape[0], ci = w->shape[1], kh = kw = 1;
    if (!is_float(w) || kh != k || kw != k || o < 1 || o > MAX_CHANNELS || ci < 1 ||
        ci > MAX_CHANNELS || (cin >= 0 && ci != cin)) {
        char s[96];
        shape_str(w, s, sizeof s);
        if (cin >= 0)
            return sd_fail(err, SD_ERR_FORMAT, "tensor %s: %s %s, expected [O, %d, %d, %d]",
                           name, sd_dtype_name(w->dtype), s, cin, k, k);
        return sd_fail(err, SD_ERR_FORMAT, "tensor %s: %s %s, expected [O, C, %d, %d]", name,
                       sd_dtype_name(w->dtype), s, k, k);
    }
    const sd_tensor *b;
    sd_status st = need(m, err, &b, base, ".bias", 1);
    if (st != SD_OK)
        return st;
    if (b->shape[0] != o)
        return sd_fail(err, SD_ERR_FORMAT, "tensor %s.bias has %lld elements, expected %lld",
                       base, (long long)b->shape[0], (long long)o);
    c->w = w, c->b = b, c->cout = (int)o, c->cin = (int)ci, c->k = k;
    return SD_OK;
}

/* GroupNorm `base`.weight / .bias over c channels. */
static sd_status load_norm(const sd_model *m, sd_error *err, norm *n, const char *base, int c)
{
    char b[256];
    nm(b, sizeof b, "%s.", base);
    sd_status st = need(m, err, &n->g, b, "weight", 1);
    if (st == SD_OK)
        st = need(m, err, &n->b, b, "bias", 1);
    if (st != SD_OK)
        return st;
    if (n->g->shape[0] != c || n->b->shape[0] != c)
        return sd_fail(err, SD_ERR_FORMAT, "norm %s has %lld channels, expected %d", base,
                       (long long)n->g->shape[0], c);
    if (c % GN_GROUPS)
        return sd_fail(err, SD_ERR_FORMAT, "norm %s: %d channels do not split into %d groups",
                       base, c, GN_GROUPS);
    n->c = c;
    return SD_OK;
}

/* ResnetBlock `base` taking cin channels; its output width is r->c2.cout. */
static sd_status load_resblock(const sd_model *m, sd_error *err, resblock *r, const char *base,
                               int cin)
{
    char b[256];
    sd_status st;
    nm(b, sizeof b, "%s.norm1", base);
    if ((st = load_norm(m, err, &r->n1, b, cin)) != SD_OK)
        return st;
    nm(b, sizeof b, "%s.conv1", base);
    if ((st = load_conv(m, err, &r->c1, b, cin, 3)) != SD_OK)
        return st;
    int cout = r->c1.cout;
    nm(b, sizeof b, "%s.norm2", base);
    if ((st = load_norm(m, err, &r->n2, b, cout)) != SD_OK)
        return st;
    nm(b, sizeof b, "%s.conv2", base);
    if ((st = load_conv(m, err, &r->c2, b, cout, 3)) != SD_OK)
        return st;
    if (r->c2.cout != cout)
        return sd_fail(err, SD_ERR_FORMAT, "%s.conv2 has %d outputs, expected %d", base,
                       r->c2.cout, cout);
    memset(&r->nin, 0, sizeof r->nin);
    if (exists(m, base, ".nin_shortcut.weight")) {
        nm(b, sizeof b, "%s.nin_shortcut", base);
        if ((st = load_conv(m, err, &r->nin, b, cin, 1)) != SD_OK)
            return st;
        if (r->nin.cout != cout)
            return sd_fail(err, SD_ERR_FORMAT, "%s has %d outputs, expected %d", b,
                           r->nin.cout, cout);
    } else if (cin != cout) {
        return sd_fail(err, SD_ERR_FORMAT, "model is missing tensor %s.nin_shortcut.weight "
                       "(block maps %d to %d channels)", base, cin, cout);
    }
    return SD_OK;
}

/* The mid block `base` (block_1, optional attn_1, block_2) at c channels. */
static sd_status load_mid(const sd_model *m, sd_error *err, half_net *h, const char *base,
                          int c)
{
    char b[256];
    sd_status st;
    nm(b, sizeof b, "%s.mid.block_1", base);
    if ((st = load_resblock(m, err, &h->mid1, b, c)) != SD_OK)
        return st;
    if (h->mid1.c2.cout != c)
        return sd_fail(err, SD_ERR_FORMAT, "%s changes the width", b);
    nm(b, sizeof b, "%s.mid.attn_1", base);
    h->attn.present = exists(m, b, ".q.weight");
    if (h->attn.present) {
        static const char *const part[] = {"q", "k", "v", "proj_out"};
        conv *cv[] = {&h->attn.q, &h->attn.k, &h->attn.v, &h->attn.o};
        char nb[256];
        nm(nb, sizeof nb, "%s.norm", b);
        if ((st = load_norm(m, err, &h->attn.n, nb, c)) != SD_OK)
            return st;
        for (int i = 0; i < 4; i++) {
            nm(nb, sizeof nb, "%s.%s", b, part[i]);
            if ((st = load_conv(m, err, cv[i], nb, c, 1)) != SD_OK)
                return st;
            if (cv[i]->cout != c)
                return sd_fail(err, SD_ERR_FORMAT, "%s has %d outputs, expected %d", nb,
                               cv[i]->cout, c);
        }
    }
    nm(b, sizeof b, "%s.mid.block_2", base);
    if ((st = load_resblock(m, err, &h->mid2, b, c)) != SD_OK)
        return st;
    if (h->mid2.c2.cout != c)
        return sd_fail(err, SD_ERR_FORMAT, "%s changes the width", b);
    return SD_OK;
}

/* The ResNet blocks of level `base`.{down,up}.i.block.* starting at *c channels, and its
 * resampler (`which` = "downsample" / "upsample") if present.  *c becomes the output width. */
static sd_status load_level(const sd_model *m, sd_error *err, level *lv, const char *base,
                            const char *which, int *c)
{
    char b[256];
    sd_status st;
    lv->n_blocks = 0;
    for (;;) {
        nm(b, sizeof b, "%s.block.%d", base, lv->n_blocks);
        if (!exists(m, b, ".conv1.weight"))
            break;
        if (lv->n_blocks == MAX_BLOCKS)
            return sd_fail(err, SD_ERR_UNSUPPORTED, "%s: more than %d ResNet blocks", base,
                           MAX_BLOCKS);
        if ((st = load_resblock(m, err, &lv->blocks[lv->n_blocks], b, *c)) != SD_OK)
            return st;
        *c = lv->blocks[lv->n_blocks++].c2.cout;
    }
    memset(&lv->resample, 0, sizeof lv->resample);
    nm(b, sizeof b, "%s.%s.conv", base, which);
    if (exists(m, b, ".weight")) {
        if ((st = load_conv(m, err, &lv->resample, b, *c, 3)) != SD_OK)
            return st;
        if (lv->resample.cout != *c)
            return sd_fail(err, SD_ERR_FORMAT, "%s changes the width", b);
    }
    return SD_OK;
}

static int count_levels(const sd_model *m, const char *fmt)
{
    int n = 0;
    char b[256];
    for (; n <= MAX_LEVELS; n++) {
        nm(b, sizeof b, fmt, n);
        if (!exists(m, b, ".block.0.conv1.weight"))
            break;
    }
    return n;
}

#define ENC "first_stage_model.encoder"
#define DEC "first_stage_model.decoder"

static sd_status load_encoder(const sd_model *m, sd_error *err, half_net *e)
{
    sd_status st;
    char b[256];
    e->present = exists(m, ENC, ".conv_in.weight");
    if (!e->present)
        return SD_OK;
    if ((st = load_conv(m, err, &e->conv_in, ENC ".conv_in", 3, 3)) != SD_OK)
        return st;
    int c = e->conv_in.cout;
    e->n_levels = count_levels(m, ENC ".down.%d");
    if (e->n_levels == 0)
        return sd_fail(err, SD_ERR_FORMAT, "model is missing tensor %s",
                       ENC ".down.0.block.0.conv1.weight");
    if (e->n_levels > MAX_LEVELS)
        return sd_fail(err, SD_ERR_UNSUPPORTED, "VAE encoder: more than %d levels", MAX_LEVELS);
    e->factor = 1;
    for (int i = 0; i < e->n_levels; i++) {
        nm(b, sizeof b, ENC ".down.%d", i);
        if ((st = load_level(m, err, &e->levels[i], b, "downsample", &c)) != SD_OK)
            return st;
        if (e->levels[i].resample.w)
            e->factor *= 2;
    }
    if ((st = load_mid(m, err, e, ENC, c)) != SD_OK ||
        (st = load_norm(m, err, &e->norm_out, ENC ".norm_out", c)) != SD_OK ||
        (st = load_conv(m, err, &e->conv_out, ENC ".conv_out", c, 3)) != SD_OK)
        return st;
    if (e->conv_out.cout % 2)
        return sd_fail(err, SD_ERR_FORMAT, "%s has %d outputs: not mean + logvar",
                       ENC ".conv_out", e->conv_out.cout);
    memset(&e->quant, 0, sizeof e->quant);
    if (exists(m, "first_stage_model.quant_conv", ".weight")) {
        st = load_conv(m, err, &e->quant, "first_stage_model.quant_conv", e->conv_out.cout, 1);
        if (st != SD_OK)
            return st;
        if (e->quant.cout != e->conv_out.cout)
            return sd_fail(err, SD_ERR_FORMAT, "quant_conv changes the width");
    }
    return SD_OK;
}

static sd_status load_decoder(const sd_model *m, sd_error *err, half_net *d)
{
    sd_status st;
    char b[256];
    d->present = exists(m, DEC, ".conv_in.weight");
    if (!d->present)
        return SD_OK;
    if ((st = load_conv(m, err, &d->conv_in, DEC ".conv_in", -1, 3)) != SD_OK)
        return st;
    int z = d->conv_in.cin, c = d->conv_in.cout;
    memset(&d->quant, 0, sizeof d->quant);
    if (exists(m, "first_stage_model.post_quant_conv", ".weight")) {
        st = load_conv(m, err, &d->quant, "first_stage_model.post_quant_conv", z, 1);
        if (st != SD_OK)
            return st;
        if (d->quant.cout != z)
            return sd_fail(err, SD_ERR_FORMAT, "post_quant_conv changes the width");
    }
    if ((st = load_mid(m, err, d, DEC, c)) != SD_OK)
        return st;
    d->n_levels = count_levels(m, DEC ".up.%d");
    if (d->n_levels == 0)
        return sd_fail(err, SD_ERR_FORMAT, "model is missing tensor %s",
                       DEC ".up.0.block.0.conv1.weight");
    if (d->n_levels > MAX_LEVELS)
        return sd_fail(err, SD_ERR_UNSUPPORTED, "VAE decoder: more than %d levels", MAX_LEVELS);
    d->factor = 1;
    for (int i = d->n_levels - 1; i >= 0; i--) {   /* the decoder runs up.N-1 .. up.0 */
        nm(b, sizeof b, DEC ".up.%d", i);
        if ((st = load_level(m, err, &d->levels[i], b, "upsample", &c)) != SD_OK)
            return st;
        if (d->levels[i].resample.w)
            d->factor *= 2;
    }
    if ((st = load_norm(m, err, &d->norm_out, DEC ".norm_out", c)) != SD_OK ||
        (st = load_conv(m, err, &d->conv_out, DEC ".conv_out", c, 3)) != SD_OK)
        return st;
    if (d->conv_out.cout != 3)
        return sd_fail(err, SD_ERR_UNSUPPORTED, "VAE decoder produces %d channels, not RGB",
                       d->conv_out.cout);
    return SD_OK;
}

/* Read the whole VAE.  *net is filled (caller-owned, large: allocate it). */
static sd_status load_net(const sd_model *m, vae_net *net, sd_error *err)
{
    memset(net, 0, sizeof *net);
    sd_status st = load_encoder(m, err, &net->enc);
    if (st == SD_OK)
        st = load_decoder(m, err, &net->dec);
    if (st != SD_OK)
        return sd_fail_prefix(err, st, "VAE: ");
    if (!net->enc.present && !net->dec.present)
        return sd_fail(err, SD_ERR_FORMAT, "model has no VAE (no first_stage_model tensors)");
    int ze = net->enc.present ? net->enc.conv_out.cout / 2 : 0;
    int zd = net->dec.present ? net->dec.conv_in.cin : 0;
    if (ze && zd && ze != zd)
        return sd_fail(err, SD_ERR_FORMAT, "VAE: encoder makes %d latent channels, decoder "
                       "takes %d", ze, zd);
    if (net->enc.present && net->dec.present && net->enc.factor != net->dec.factor)
        return sd_fail(err, SD_ERR_FORMAT, "VAE: encoder downscales by %d, decoder upscales "
                       "by %d", net->enc.factor, net->dec.factor);
    net->z = ze ? ze : zd;
    net->factor = net->enc.present ? net->enc.factor : net->dec.factor;
    net->scaling_factor = sd_model_get_hparams(m)->vae_scaling_factor;
    if (!(net->scaling_factor > 0) || !isfinite(net->scaling_factor))
        return sd_fail(err, SD_ERR_FORMAT, "VAE: scaling factor %g is not positive",
                       (double)net->scaling_factor);
    return SD_OK;
}

static sd_status new_net(const sd_model *m, vae_net **out, sd_error *err)
{
    *out = NULL;
    if (!m)
        return sd_fail(err, SD_ERR_INVALID_ARG, "VAE: no model");
    vae_net *net = sd_malloc(sizeof *net);
    if (!net)
        return sd_fail_nomem(err, "VAE description");
    sd_status st = load_net(m, net, err);
    if (st != SD_OK) {
        sd_free(net);
        return st;
    }
    *out = net;
    return SD_OK;
}

sd_vae_opts sd_vae_opts_default(void)
{
    return (sd_vae_opts){.tile = -1, .overlap = -1, .progress = NULL, .user = NULL};
}

sd_status sd_vae_get_info(const sd_model *m, sd_vae_info *out, sd_error *err)
{
    memset(out, 0, sizeof *out);
    vae_net *net;
    sd_status st = new_net(m, &net, err);
    if (st != SD_OK)
        return st;
    out->has_encoder = net->enc.present;
    out->has_decoder = net->dec.present;
    out->image_channels = 3;
    out->latent_channels = net->z;
    out->factor = net->factor;
    out->scaling_factor = net->scaling_factor;
    sd_free(net);
    return SD_OK;
}

/* ============================================================================================
 * Working memory
 * ========================================================================================== */

/* Three activation buffers of `act` floats (the current activation x and two temporaries)
 * and three attention buffers (q, k, v) of `att` floats. */
typedef struct work {
    float *x, *t1, *t2;
    float *q, *k, *v;
} work;

static void work_free(work *w)
{
    sd_free(w->x), sd_free(w->t1), sd_free(w->t2);
    sd_free(w->q), sd_free(w->k), sd_free(w->v);
    memset(w, 0, sizeof *w);
}

static sd_status work_alloc(work *w, int64_t act, int64_t att, sd_error *err)
{
    memset(w, 0, sizeof *w);
    size_t a, b;
    if (act < 1 || !sd_mul_ok((size_t)act, sizeof(float), &a) ||
        !sd_mul_ok((size_t)(att > 0 ? att : 1), sizeof(float), &b))
        return sd_fail(err, SD_ERR_TOO_LARGE, "VAE: activations too large");
    w->x = sd_malloc(a), w->t1 = sd_malloc(a), w->t2 = sd_malloc(a);
    if (att > 0)
        w->q = sd_malloc(b), w->k = sd_malloc(b), w->v = sd_malloc(b);
    if (!w->x || !w->t1 || !w->t2 || (att > 0 && (!w->q || !w->k || !w->v))) {
        work_free(w);
        return sd_fail_nomem(err, "VAE activations");
    }
    return SD_OK;
}

static void swap(float **a, float **b)
{
    float *t = *a;
    *a = *b, *b = t;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Largest activation (floats) of a level's blocks at hw pixels. */
static int64_t level_need(const level *lv, int64_t hw)
{
    int64_t n = 0;
    for (int j = 0; j < lv->n_blocks; j++)
        n = max64(n, (int64_t)SD_MAX(lv->blocks[j].c1.cin, lv->blocks[j].c1.cout) * hw);
    return n;
}

/* Activation and attention sizes for the encoder at H x W image pixels. */
static void enc_need(const half_net *e, int H, int W, int64_t *act, int64_t *att)
{
    int64_t hw = (int64_t)H * W, n = (int64_t)e->conv_in.cout * hw;
    for (int i = 0; i < e->n_levels; i++) {
        n = max64(n, level_need(&e->levels[i], hw));
        if (e->levels[i].resample.w) {
            H /= 2, W /= 2, hw = (int64_t)H * W;
        }
    }
    int c = e->mid1.c1.cin;
    n = max64(n, (int64_t)SD_MAX(c, e->conv_out.cout) * hw);
    *act = n;
    *att = e->attn.present ? (int64_t)c * hw : 0;
}

/* Activation and attention sizes for the decoder at h x w latent pixels. */
static void dec_need(const half_net *d, int h, int w, int64_t *act, int64_t *att)
{
    int64_t hw = (int64_t)h * w;
    int c = d->conv_in.cout;
    int64_t n = (int64_t)SD_MAX(c, d->conv_in.cin) * hw;
    *att = d->attn.present ? (int64_t)c * hw : 0;
    for (int i = d->n_levels - 1; i >= 0; i--) {
        const level *lv = &d->levels[i];
        n = max64(n, level_need(lv, hw));
        if (lv->resample.w) {
            hw *= 4;
            n = max64(n, (int64_t)lv->resample.cout * hw);
        }
    }
    *act = max64(n, (int64_t)d->conv_out.cout * hw);
}

/* ============================================================================================
 * Blocks
 * ========================================================================================== */

static const sd_conv2d_params CONV3 = {.stride = 1, .pad_top = 1, .pad_left = 1,
                                       .pad_bottom = 1, .pad_right = 1};
static const sd_conv2d_params CONV1 = {.stride = 1};
/* ldm Downsample: F.pad(x, (0, 1, 0, 1)) then a 3x3 stride-2 convolution without padding. */
static const sd_conv2d_params CONV_DOWN = {.stride = 2, .pad_bottom = 1, .pad_right = 1};

static sd_status run_conv(sd_ctx *ctx, const conv *c, const float *x, int H, int W,
                          const sd_conv2d_params *p, float *y, sd_error *err)
{
    return sd_op_conv2d(ctx, x, 1, c->cin, H, W, c->w, c->b, p, y, err);
}

static sd_status run_norm(sd_ctx *ctx, const norm *n, const float *x, float *y, int64_t hw,
                          bool silu, sd_error *err)
{
    return sd_op_groupnorm(ctx, x, y, 1, n->c, hw, GN_GROUPS, n->g, n->b, GN_EPS, silu, err);
}

/* ResnetBlock.forward: x + conv2(silu(norm2(conv1(silu(norm1(x)))))), the skip through
 * nin_shortcut when the width changes.  In and out in w->x. */
static sd_status resblock_fwd(sd_ctx *ctx, const resblock *r, work *w, int H, int W,
                              sd_error *err)
{
    int64_t hw = (int64_t)H * W;
    sd_status st;
    if ((st = run_norm(ctx, &r->n1, w->x, w->t1, hw, true, err)) != SD_OK ||
        (st = run_conv(ctx, &r->c1, w->t1, H, W, &CONV3, w->t2, err)) != SD_OK ||
        (st = run_norm(ctx, &r->n2, w->t2, w->t2, hw, true, err)) != SD_OK ||
        (st = run_conv(ctx, &r->c2, w->t2, H, W, &CONV3, w->t1, err)) != SD_OK)
        return st;
    int64_t n = (int64_t)r->c2.cout * hw;
    if (r->nin.w) {
        if ((st = run_conv(ctx, &r->nin, w->x, H, W, &CONV1, w->t2, err)) != SD_OK)
            return st;
        sd_op_add(ctx, w->t2, w->t1, n);
        swap(&w->x, &w->t2);
    } else {
        sd_op_add(ctx, w->x, w->t1, n);
    }
    return SD_OK;
}

/* AttnBlock.forward: x + proj_out(attention(q, k, v)) over the H*W positions, one head of C
 * channels, scale 1/sqrt(C).  In and out in w->x. */
static sd_status attn_fwd(sd_ctx *ctx, const attnblock *a, work *w, int H, int W, sd_error *err)
{
    int C = a->n.c;
    int64_t L = (int64_t)H * W;
    sd_status st = run_norm(ctx, &a->n, w->x, w->t1, L, false, err);
    if (st != SD_OK)
        return st;
    sd_op_transpose(ctx, w->t1, w->t2, 1, C, L);   /* [C, L] -> tokens [L, C] */
    if ((st = sd_op_linear(ctx, w->t2, L, C, a->q.w, a->q.b, w->q, err)) != SD_OK ||
        (st = sd_op_linear(ctx, w->t2, L, C, a->k.w, a->k.b, w->k, err)) != SD_OK ||
        (st = sd_op_linear(ctx, w->t2, L, C, a->v.w, a->v.b, w->v, err)) != SD_OK)
        return st;
    sd_attn_params p = {.batch = 1, .heads = 1, .dh = C, .lq = L, .lk = L, .q_rs = C,
                        .k_rs = C, .v_rs = C, .o_rs = C, .scale = 1.0f / sqrtf((float)C),
                        .causal = false};
    if ((st = sd_op_attention(ctx, w->q, w->k, w->v, w->t1, &p, err)) != SD_OK ||
        (st = sd_op_linear(ctx, w->t1, L, C, a->o.w, a->o.b, w->t2, err)) != SD_OK)
        return st;
    sd_op_transpose(ctx, w->t2, w->t1, 1, L, C);   /* back to [C, L] */
    sd_op_add(ctx, w->x, w->t1, (int64_t)C * L);
    return SD_OK;
}

static sd_status mid_fwd(sd_ctx *ctx, const half_net *h, work *w, int H, int W, sd_error *err)
{
    sd_status st = resblock_fwd(ctx, &h->mid1, w, H, W, err);
    if (st == SD_OK && h->attn.present)
        st = attn_fwd(ctx, &h->attn, w, H, W, err);
    if (st == SD_OK)
        st = resblock_fwd(ctx, &h->mid2, w, H, W, err);
    return st;
}

/* ============================================================================================
 * Encoder and decoder, one piece at a time
 * ========================================================================================== */

/* Encoder.forward + quant_conv + posterior: image [3, H, W] -> moments [2Z, H/f, W/f] =
 * mean | logvar, logvar clamped. */
static sd_status encode_piece(sd_ctx *ctx, const vae_net *net, work *w, const float *image,
                              int H, int W, float *moments, sd_error *err)
{
    const half_net *e = &net->enc;
    sd_status st = run_conv(ctx, &e->conv_in, image, H, W, &CONV3, w->x, err);
    for (int i = 0; st == SD_OK && i < e->n_levels; i++) {
        const level *lv = &e->levels[i];
        for (int j = 0; st == SD_OK && j < lv->n_blocks; j++)
            st = resblock_fwd(ctx, &lv->blocks[j], w, H, W, err);
        if (st == SD_OK && lv->resample.w) {
            st = run_conv(ctx, &lv->resample, w->x, H, W, &CONV_DOWN, w->t1, err);
            swap(&w->x, &w->t1);
            H /= 2, W /= 2;
        }
    }
    if (st == SD_OK)
        st = mid_fwd(ctx, e, w, H, W, err);
    int64_t hw = (int64_t)H * W;
    if (st == SD_OK)
        st = run_norm(ctx, &e->norm_out, w->x, w->t1, hw, true, err);
    if (st == SD_OK)
        st = run_conv(ctx, &e->conv_out, w->t1, H, W, &CONV3, e->quant.w ? w->t2 : moments,
                      err);
    if (st == SD_OK && e->quant.w)
        st = run_conv(ctx, &e->quant, w->t2, H, W, &CONV1, moments, err);
    if (st != SD_OK)
        return st;
    float *logvar = moments + (int64_t)net->z * hw;
    for (int64_t i = 0; i < (int64_t)net->z * hw; i++)
        logvar[i] = fminf(fmaxf(logvar[i], LOGVAR_MIN), LOGVAR_MAX);
    return SD_OK;
}

/* post_quant_conv + Decoder.forward: z [Z, h, w] -> image [3, f h, f w]. */
static sd_status decode_piece(sd_ctx *ctx, const vae_net *net, work *w, const float *z, int H,
                              int W, float *image, sd_error *err)
{
    const half_net *d = &net->dec;
    sd_status st = SD_OK;
    const float *in = z;
    if (d->quant.w) {
        st = run_conv(ctx, &d->quant, z, H, W, &CONV1, w->t1, err);
        in = w->t1;
    }
    if (st == SD_OK)
        st = run_conv(ctx, &d->conv_in, in, H, W, &CONV3, w->x, err);
    if (st == SD_OK)
        st = mid_fwd(ctx, d, w, H, W, err);
    for (int i = d->n_levels - 1; st == SD_OK && i >= 0; i--) {
        const level *lv = &d->levels[i];
        for (int j = 0; st == SD_OK && j < lv->n_blocks; j++)
            st = resblock_fwd(ctx, &lv->blocks[j], w, H, W, err);
        if (st == SD_OK && lv->resample.w) {
            /* Upsample: nearest-neighbour 2x, then a 3x3 convolution */
            sd_op_upsample2x(ctx, w->x, w->t1, lv->resample.cin, H, W);
            H *= 2, W *= 2;
            st = run_conv(ctx, &lv->resample, w->t1, H, W, &CONV3, w->x, err);
        }
    }
    if (st == SD_OK)
        st = run_norm(ctx, &d->norm_out, w->x, w->t1, (int64_t)H * W, true, err);
    if (st == SD_OK)
        st = run_conv(ctx, &d->conv_out, w->t1, H, W, &CONV3, image, err);
    return st;
}

/* ============================================================================================
 * Tiling: overlapping tiles in latent coordinates, blended with linear ramps
 * ========================================================================================== */

typedef struct job {
    const vae_net *net;
    bool decode;           /* decode: in = latent [Z, h, w]; encode: in = image [3, fh, fw] */
    int cin, cout;         /* channels of in and out */
    int in_mul, out_mul;   /* pixels per latent pixel of in and out */
} job;

static void need_for(const job *j, int th, int tw, int64_t *act, int64_t *att)
{
    if (j->decode)
        dec_need(&j->net->dec, th, tw, act, att);
    else
        enc_need(&j->net->enc, th * j->net->factor, tw * j->net->factor, act, att);
}

static sd_status run_piece(sd_ctx *ctx, const job *j, work *w, const float *in, int th, int tw,
                           float *out, sd_error *err)
{
    if (j->decode)
        return decode_piece(ctx, j->net, w, in, th, tw, out, err);
    return encode_piece(ctx, j->net, w, in, th * j->in_mul, tw * j->in_mul, out, err);
}

/* Tile origins along an axis of L latent pixels: n tiles of side T overlapping >= O. */
static int tile_starts(int L, int T, int O, int *starts)
{
    if (L <= T) {
        starts[0] = 0;
        return 1;
    }
    int n = (L - O + (T - O) - 1) / (T - O);
    for (int i = 0; i < n; i++)
        starts[i] = (int)((int64_t)i * (L - T) / (n - 1));
    return n;
}

/* Blending weight along one axis at output pixel p of a tile of S output pixels, with ramps
 * of R pixels on the sides that have a neighbour. */
static float ramp(int p, int S, int R, bool left, bool right)
{
    float wgt = 1.0f;
    if (R > 0 && left)
        wgt = fminf(wgt, ((float)p + 0.5f) / (float)R);
    if (R > 0 && right)
        wgt = fminf(wgt, ((float)(S - p) - 0.5f) / (float)R);
    return wgt;
}

static bool report(const sd_vae_opts *o, int done, int total)
{
    return !o->progress || o->progress(done, total, o->user);
}

/* Run job j over latent size h x w: in [cin, h in_mul, w in_mul] -> out [cout, h out_mul,
 * w out_mul], tiled as opts say. */
static sd_status run_job(sd_ctx *ctx, const job *j, const float *in, int h, int w,
                         const sd_vae_opts *opts, float *out, sd_error *err)
{
    int T = opts->tile, O = opts->overlap;
    if (T < -1 || (T > 0 && T < SD_VAE_TILE_MIN))
        return sd_fail(err, SD_ERR_INVALID_ARG, "VAE: tile size %d (use -1 auto, 0 off, or >= "
                       "%d latent pixels)", T, SD_VAE_TILE_MIN);
    if (T == -1)
        T = SD_MAX(h, w) > SD_VAE_AUTO_TILE_ABOVE ? SD_VAE_TILE_DEFAULT : 0;
    if (O == -1)
        O = SD_MIN(SD_VAE_OVERLAP_DEFAULT, T / 2);
    if (T > 0 && (O < 0 || O >= T))
        return sd_fail(err, SD_ERR_INVALID_ARG, "VAE: overlap %d must be in [0, tile %d)", O, T);
    bool tiled = T > 0 && (h > T || w > T);
    int th = tiled ? SD_MIN(T, h) : h, tw = tiled ? SD_MIN(T, w) : w;

    int64_t act, att;
    need_for(j, th, tw, &act, &att);
    work wk;
    sd_status st = work_alloc(&wk, act, att, err);
    if (st != SD_OK)
        return st;
    if (!tiled) {
        st = run_piece(ctx, j, &wk, in, h, w, out, err);
        work_free(&wk);
        if (st == SD_OK && !report(opts, 1, 1))
            st = SD_CANCELLED;
        return st;
    }

    int ny = 0, nx = 0;
    int64_t IH = (int64_t)h * j->in_mul, IW = (int64_t)w * j->in_mul;
    int64_t OH = (int64_t)h * j->out_mul, OW = (int64_t)w * j->out_mul;
    int64_t tih = (int64_t)th * j->in_mul, tiw = (int64_t)tw * j->in_mul;
    int64_t toh = (int64_t)th * j->out_mul, tow = (int64_t)tw * j->out_mul;
    float *tin = sd_malloc((size_t)(j->cin * tih * tiw) * sizeof(float));
    float *tout = sd_malloc((size_t)(j->cout * toh * tow) * sizeof(float));
    float *wsum = sd_calloc((size_t)(OH * OW), sizeof(float));
    float *wy = sd_malloc((size_t)toh * sizeof(float)), *wx = sd_malloc((size_t)tow * sizeof(float));
    int *ys = sd_malloc((size_t)h * sizeof(int)), *xs = sd_malloc((size_t)w * sizeof(int));
    if (!tin || !tout || !wsum || !wy || !wx || !ys || !xs) {
        st = sd_fail_nomem(err, "VAE tiles");
        goto out;
    }
    ny = tile_starts(h, th, O, ys), nx = tile_starts(w, tw, O, xs);
    sd_log(ctx, SD_LOG_DEBUG, "VAE %s: %dx%d latent in %dx%d tiles of %dx%d, overlap %d",
           j->decode ? "decode" : "encode", w, h, nx, ny, tw, th, O);
    memset(out, 0, (size_t)(j->cout * OH * OW) * sizeof(float));
    int R = O * j->out_mul;
    for (int ty = 0; ty < ny; ty++) {
        for (int tx = 0; tx < nx; tx++) {
            int64_t iy0 = (int64_t)ys[ty] * j->in_mul, ix0 = (int64_t)xs[tx] * j->in_mul;
            for (int c = 0; c < j->cin; c++)
                for (int64_t y = 0; y < tih; y++)
                    memcpy(tin + (c * tih + y) * tiw, in + (c * IH + iy0 + y) * IW + ix0,
                           (size_t)tiw * sizeof(float));
            if ((st = run_piece(ctx, j, &wk, tin, th, tw, tout, err)) != SD_OK)
                goto out;
            for (int64_t y = 0; y < toh; y++)
                wy[y] = ramp((int)y, (int)toh, R, ys[ty] > 0, ys[ty] + th < h);
            for (int64_t x = 0; x < tow; x++)
                wx[x] = ramp((int)x, (int)tow, R, xs[tx] > 0, xs[tx] + tw < w);
            int64_t oy0 = (int64_t)ys[ty] * j->out_mul, ox0 = (int64_t)xs[tx] * j->out_mul;
            for (int64_t y = 0; y < toh; y++) {
                float *ws = wsum + (oy0 + y) * OW + ox0;
                for (int64_t x = 0; x < tow; x++)
                    ws[x] += wy[y] * wx[x];
                for (int c = 0; c < j->cout; c++) {
                    const float *src = tout + (c * toh + y) * tow;
                    float *dst = out + (c * OH + oy0 + y) * OW + ox0;
                    for (int64_t x = 0; x < tow; x++)
                        dst[x] += wy[y] * wx[x] * src[x];
                }
            }
            if (!report(opts, ty * nx + tx + 1, ny * nx)) {
                st = SD_CANCELLED;
                goto out;
            }
        }
    }
    for (int c = 0; c < j->cout; c++)
        for (int64_t i = 0; i < OH * OW; i++)
            out[c * OH * OW + i] /= wsum[i];
out:
    sd_free(tin), sd_free(tout), sd_free(wsum), sd_free(wy), sd_free(wx);
    sd_free(ys), sd_free(xs);
    work_free(&wk);
    return st;
}

/* ============================================================================================
 * Public entry points
 * ========================================================================================== */

static sd_status check_size(int H, int W, int f, const char *what, sd_error *err)
{
    if (H < f || W < f || H > MAX_SIDE || W > MAX_SIDE || H % f || W % f)
        return sd_fail(err, SD_ERR_INVALID_ARG, "VAE: %s size %dx%d must be a multiple of %d "
                       "between %d and %d", what, W, H, f, f, MAX_SIDE);
    return SD_OK;
}

/* Validate arguments and read the network; *net is the caller's to free. */
static sd_status begin(sd_ctx *ctx, const sd_model *m, const void *in, const void *out,
                       bool decode, vae_net **net, sd_error *err)
{
    *net = NULL;
    if (!ctx || !in || !out)
        return sd_fail(err, SD_ERR_INVALID_ARG, "VAE: NULL argument");
    sd_status st = new_net(m, net, err);
    if (st != SD_OK)
        return st;
    if (decode ? !(*net)->dec.present : !(*net)->enc.present) {
        sd_free(*net);
        *net = NULL;
        return sd_fail(err, SD_ERR_FORMAT, "model has no VAE %s", decode ? "decoder"
                                                                         : "encoder");
    }
    return SD_OK;
}

static sd_status encode_moments(sd_ctx *ctx, const vae_net *net, const float *image, int H,
                                int W, const sd_vae_opts *opts, float *moments, sd_error *err)
{
    sd_vae_opts def = sd_vae_opts_default();
    job j = {.net = net, .decode = false, .cin = 3, .cout = 2 * net->z, .in_mul = net->factor,
             .out_mul = 1};
    return run_job(ctx, &j, image, H / net->factor, W / net->factor, opts ? opts : &def,
                   moments, err);
}

sd_status sd_vae_encode(sd_ctx *ctx, const sd_model *m, const float *image, int H, int W,
                        const sd_vae_opts *opts, float *mean, float *logvar, sd_error *err)
{
    vae_net *net;
    sd_status st = begin(ctx, m, image, mean, false, &net, err);
    if (st != SD_OK)
        return st;
    if (!logvar) {
        sd_free(net);
        return sd_fail(err, SD_ERR_INVALID_ARG, "VAE: NULL argument");
    }
    if ((st = check_size(H, W, net->factor, "image", err)) != SD_OK) {
        sd_free(net);
        return st;
    }
    size_t n = (size_t)net->z * (size_t)(H / net->factor) * (size_t)(W / net->factor);
    float *moments = sd_malloc(2 * n * sizeof(float));
    if (!moments) {
        sd_free(net);
        return sd_fail_nomem(err, "VAE moments");
    }
    st = encode_moments(ctx, net, image, H, W, opts, moments, err);
    if (st == SD_OK) {
        memcpy(mean, moments, n * sizeof(float));
        memcpy(logvar, moments + n, n * sizeof(float));
    }
    sd_free(moments);
    sd_free(net);
    return st;
}

sd_status sd_vae_decode(sd_ctx *ctx, const sd_model *m, const float *z, int h, int w,
                        const sd_vae_opts *opts, float *image, sd_error *err)
{
    vae_net *net;
    sd_status st = begin(ctx, m, z, image, true, &net, err);
    if (st != SD_OK)
        return st;
    if (h < 1 || w < 1 || h > MAX_SIDE / net->factor || w > MAX_SIDE / net->factor) {
        st = sd_fail(err, SD_ERR_INVALID_ARG, "VAE: latent size %dx%d out of range [1, %d]",
                     w, h, MAX_SIDE / net->factor);
    } else {
        sd_vae_opts def = sd_vae_opts_default();
        job j = {.net = net, .decode = true, .cin = net->z, .cout = 3, .in_mul = 1,
                 .out_mul = net->factor};
        st = run_job(ctx, &j, z, h, w, opts ? opts : &def, image, err);
    }
    sd_free(net);
    return st;
}

sd_status sd_vae_image_to_latents(sd_ctx *ctx, const sd_model *m, const float *image, int H,
                                  int W, const float *noise, const sd_vae_opts *opts,
                                  float *latents, sd_error *err)
{
    vae_net *net;
    sd_status st = begin(ctx, m, image, latents, false, &net, err);
    if (st != SD_OK)
        return st;
    if ((st = check_size(H, W, net->factor, "image", err)) != SD_OK) {
        sd_free(net);
        return st;
    }
    size_t npix = (size_t)3 * (size_t)H * (size_t)W;
    size_t n = (size_t)net->z * (size_t)(H / net->factor) * (size_t)(W / net->factor);
    float *x = sd_malloc(npix * sizeof(float)), *moments = sd_malloc(2 * n * sizeof(float));
    if (!x || !moments) {
        st = sd_fail_nomem(err, "VAE input");
    } else {
        for (size_t i = 0; i < npix; i++)      /* [0, 1] -> [-1, 1] */
            x[i] = 2.0f * image[i] - 1.0f;
        st = encode_moments(ctx, net, x, H, W, opts, moments, err);
    }
    if (st == SD_OK) {
        float sf = net->scaling_factor;
        for (size_t i = 0; i < n; i++) {
            float v = moments[i];
            if (noise)
                v += expf(0.5f * moments[n + i]) * noise[i];
            latents[i] = sf * v;
        }
    }
    sd_free(x), sd_free(moments);
    sd_free(net);
    return st;
}

sd_status sd_vae_latents_to_image(sd_ctx *ctx, const sd_model *m, const float *latents, int h,
                                  int w, const sd_vae_opts *opts, float *image, sd_error *err)
{
    sd_vae_info info;
    sd_status st = sd_vae_get_info(m, &info, err);
    if (st != SD_OK)
        return st;
    if (!latents || !image)
        return sd_fail(err, SD_ERR_INVALID_ARG, "VAE: NULL argument");
    if (h < 1 || w < 1 || h > MAX_SIDE / info.factor || w > MAX_SIDE / info.factor)
        return sd_fail(err, SD_ERR_INVALID_ARG, "VAE: latent size %dx%d out of range [1, %d]",
                       w, h, MAX_SIDE / info.factor);
    size_t n = (size_t)info.latent_channels * (size_t)h * (size_t)w;
    float *z = sd_malloc(n * sizeof(float));
    if (!z)
        return sd_fail_nomem(err, "VAE latents");
    for (size_t i = 0; i < n; i++)
        z[i] = latents[i] / info.scaling_factor;
    st = sd_vae_decode(ctx, m, z, h, w, opts, image, err);
    sd_free(z);
    if (st != SD_OK)
        return st;
    size_t npix = (size_t)3 * (size_t)(h * info.factor) * (size_t)(w * info.factor);
    for (size_t i = 0; i < npix; i++)
        image[i] = fminf(fmaxf(image[i] * 0.5f + 0.5f, 0.0f), 1.0f);
    return SD_OK;
}
