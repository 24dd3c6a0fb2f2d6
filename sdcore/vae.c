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

/* Tiled runs keep the latent segment global up to this many latent pixels; the tests lower
 * it to reach the other path on small inputs. */
#ifdef SD_TESTING
static int64_t global_mid_max = SD_VAE_GLOBAL_MID_MAX;
#else
static const int64_t global_mid_max = SD_VAE_GLOBAL_MID_MAX;
#endif

/* ============================================================================================
 * The network description, read from the tensors
 * ========================================================================================== */

typedef struct conv {
    const sd_tensor *w;   /* [O, C, k, k] (1x1 may also be stored [O, C]); NULL: absent */
    const sd_tensor *b;   /* [O] */
    int cout, cin;
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

static void shape_str(const sd_tensor *t, char *buf, size_t n)
{
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "",
                                 (long long)t->shape[i]);
    if (used < n)
        snprintf(buf + used, n - used, "]");
}

/* The tensor `base` + `suffix`, required to be a float tensor of `ndim` dimensions. */
static sd_status need(const sd_model *m, sd_error *err, const sd_tensor **out, const char *base,
                      const char *suffix, int ndim)
{
    char name[256];
    sd_name(name, sizeof name, "%s%s", base, suffix);
    const sd_tensor *t = sd_model_tensor(m, name);
    if (!t)
        return sd_fail(err, SD_ERR_FORMAT, "model is missing tensor %s", name);
    if (!sd_dtype_is_float(t->dtype) || t->ndim != ndim) {
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
    sd_name(name, sizeof name, "%s.weight", base);
    const sd_tensor *w = sd_model_tensor(m, name);
    if (!w)
        return sd_fail(err, SD_ERR_FORMAT, "model is missing tensor %s", name);
    int64_t o = 0, ci = 0, kh = 0, kw = 0;
    if (w->ndim == 4)
        o = w->shape[0], ci = w->shape[1], kh = w->shape[2], kw = w->shape[3];
    else if (w->ndim == 2 && k == 1)
        o = w->shape[0], ci = w->shape[1], kh = kw = 1;
    if (!sd_dtype_is_float(w->dtype) || kh != k || kw != k || o < 1 || o > MAX_CHANNELS || ci < 1 ||
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
    c->w = w, c->b = b, c->cout = (int)o, c->cin = (int)ci;
    return SD_OK;
}

/* GroupNorm `base`.weight / .bias over c channels. */
static sd_status load_norm(const sd_model *m, sd_error *err, norm *n, const char *base, int c)
{
    char b[256];
    sd_name(b, sizeof b, "%s.", base);
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
    sd_name(b, sizeof b, "%s.norm1", base);
    if ((st = load_norm(m, err, &r->n1, b, cin)) != SD_OK)
        return st;
    sd_name(b, sizeof b, "%s.conv1", base);
    if ((st = load_conv(m, err, &r->c1, b, cin, 3)) != SD_OK)
        return st;
    int cout = r->c1.cout;
    sd_name(b, sizeof b, "%s.norm2", base);
    if ((st = load_norm(m, err, &r->n2, b, cout)) != SD_OK)
        return st;
    sd_name(b, sizeof b, "%s.conv2", base);
    if ((st = load_conv(m, err, &r->c2, b, cout, 3)) != SD_OK)
        return st;
    if (r->c2.cout != cout)
        return sd_fail(err, SD_ERR_FORMAT, "%s.conv2 has %d outputs, expected %d", base,
                       r->c2.cout, cout);
    memset(&r->nin, 0, sizeof r->nin);
    if (sd_model_tensorf(m, "%s.nin_shortcut.weight", base)) {
        sd_name(b, sizeof b, "%s.nin_shortcut", base);
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
    sd_name(b, sizeof b, "%s.mid.block_1", base);
    if ((st = load_resblock(m, err, &h->mid1, b, c)) != SD_OK)
        return st;
    if (h->mid1.c2.cout != c)
        return sd_fail(err, SD_ERR_FORMAT, "%s changes the width", b);
    sd_name(b, sizeof b, "%s.mid.attn_1", base);
    h->attn.present = sd_model_tensorf(m, "%s.q.weight", b) != NULL;
    if (h->attn.present) {
        static const char *const part[] = {"q", "k", "v", "proj_out"};
        conv *cv[] = {&h->attn.q, &h->attn.k, &h->attn.v, &h->attn.o};
        char nb[256];
        sd_name(nb, sizeof nb, "%s.norm", b);
        if ((st = load_norm(m, err, &h->attn.n, nb, c)) != SD_OK)
            return st;
        for (int i = 0; i < 4; i++) {
            sd_name(nb, sizeof nb, "%s.%s", b, part[i]);
            if ((st = load_conv(m, err, cv[i], nb, c, 1)) != SD_OK)
                return st;
            if (cv[i]->cout != c)
                return sd_fail(err, SD_ERR_FORMAT, "%s has %d outputs, expected %d", nb,
                               cv[i]->cout, c);
        }
    }
    sd_name(b, sizeof b, "%s.mid.block_2", base);
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
        sd_name(b, sizeof b, "%s.block.%d", base, lv->n_blocks);
        if (!sd_model_tensorf(m, "%s.conv1.weight", b))
            break;
        if (lv->n_blocks == MAX_BLOCKS)
            return sd_fail(err, SD_ERR_UNSUPPORTED, "%s: more than %d ResNet blocks", base,
                           MAX_BLOCKS);
        if ((st = load_resblock(m, err, &lv->blocks[lv->n_blocks], b, *c)) != SD_OK)
            return st;
        *c = lv->blocks[lv->n_blocks++].c2.cout;
    }
    memset(&lv->resample, 0, sizeof lv->resample);
    sd_name(b, sizeof b, "%s.%s.conv", base, which);
    if (sd_model_tensorf(m, "%s.weight", b)) {
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
        sd_name(b, sizeof b, fmt, n);
        if (!sd_model_tensorf(m, "%s.block.0.conv1.weight", b))
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
    e->present = sd_model_tensor(m, ENC ".conv_in.weight") != NULL;
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
        sd_name(b, sizeof b, ENC ".down.%d", i);
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
    if (sd_model_tensor(m, "first_stage_model.quant_conv.weight")) {
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
    d->present = sd_model_tensor(m, DEC ".conv_in.weight") != NULL;
    if (!d->present)
        return SD_OK;
    if ((st = load_conv(m, err, &d->conv_in, DEC ".conv_in", -1, 3)) != SD_OK)
        return st;
    int z = d->conv_in.cin, c = d->conv_in.cout;
    memset(&d->quant, 0, sizeof d->quant);
    if (sd_model_tensor(m, "first_stage_model.post_quant_conv.weight")) {
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
        sd_name(b, sizeof b, DEC ".up.%d", i);
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
    return (sd_vae_opts){.tile = -1, .overlap = -1, .fast = false, .progress = NULL, .user = NULL};
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

typedef struct gn_stats gn_stats;

/* Three activation buffers of `act` floats (the current activation x and two temporaries),
 * three attention buffers (q, k, v) of `att` floats, and the shared GroupNorm statistics
 * of a tiled run (NULL: every norm computes its own). */
typedef struct work {
    float *x, *t1, *t2;
    float *q, *k, *v;
    gn_stats *stats;
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

/* Activation and attention sizes for the whole encoder at H x W image pixels. */
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

/* Activation and attention sizes for the whole decoder at h x w latent pixels. */
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
 * GroupNorm statistics shared by the tiles of one image
 *
 * Normalising each tile with its own statistics makes tiles disagree (brightness and colour
 * shift from tile to tile).  Instead every GroupNorm of a tiled run uses statistics of the
 * whole image: first estimated on a box-downscaled copy of the input that fits in one tile
 * (STATS_RECORD); then, unless opts->fast, measured again over all tiles while replaying
 * that estimate, each tile contributing only the region it owns (the owned regions
 * partition the image); the final pass replays the measured values (STATS_REPLAY).
 * ========================================================================================== */

typedef enum stats_mode { STATS_OWN, STATS_RECORD, STATS_REPLAY } stats_mode;

struct gn_stats {
    stats_mode mode;
    float *mv;              /* (mean, var) per group, for each norm in call order */
    size_t n, cap, pos;     /* floats in mv, allocated, next to replay */
    double *acc;            /* when non-NULL (with STATS_REPLAY): per norm, ACC_STRIDE
                               doubles: sums over owned regions of (x - mean) per group,
                               of (x - mean)^2 per group, and the count per group */
    int th, tw;             /* tile size, latent pixels */
    int oy0, oy1, ox0, ox1; /* owned region of the current tile: latent pixels, tile-relative */
};

#define ACC_STRIDE (2 * GN_GROUPS + 1)

typedef struct moments_job {
    const float *x;
    int cg, H, W;
    int y0, y1, x0, x1;     /* region */
    const float *mv;        /* shift by these means, or NULL */
    double *sum, *sq;       /* [GN_GROUPS] */
} moments_job;

static void moments_task(void *arg, int g, int n_tasks)
{
    (void)n_tasks;
    const moments_job *j = arg;
    double s = 0, q = 0, shift = j->mv ? j->mv[2 * g] : 0.0;
    for (int c = g * j->cg; c < (g + 1) * j->cg; c++)
        for (int y = j->y0; y < j->y1; y++) {
            const float *row = j->x + ((int64_t)c * j->H + y) * j->W;
            for (int x = j->x0; x < j->x1; x++) {
                double d = row[x] - shift;
                s += d, q += d * d;
            }
        }
    j->sum[g] = s, j->sq[g] = q;
}

typedef struct affine_job {
    const float *x;
    float *y;
    const float *ab;        /* per channel: scale, shift */
    int64_t hw;
    bool silu;
} affine_job;

static void affine_task(void *arg, int c, int n_tasks)
{
    (void)n_tasks;
    const affine_job *j = arg;
    const float *x = j->x + c * j->hw;
    float *y = j->y + c * j->hw;
    float a = j->ab[2 * c], b = j->ab[2 * c + 1];
    for (int64_t i = 0; i < j->hw; i++) {
        float t = x[i] * a + b;
        y[i] = j->silu ? t / (1.0f + expf(-t)) : t;
    }
}

/* GroupNorm of x [C, H, W] with the given (mean, var) per group, + SiLU if asked. */
static sd_status norm_with(sd_ctx *ctx, const norm *n, const float *mv, const float *x,
                           float *y, int64_t hw, bool silu, sd_error *err)
{
    float *ab = sd_malloc(2 * (size_t)n->c * sizeof(float));
    float *beta = sd_malloc((size_t)n->c * sizeof(float));
    sd_status st = !ab || !beta ? sd_fail_nomem(err, "VAE norm") : SD_OK;
    if (st == SD_OK)
        st = sd_tensor_to_f32(ctx, n->g, ab, n->c, err);
    if (st == SD_OK)
        st = sd_tensor_to_f32(ctx, n->b, beta, n->c, err);
    if (st == SD_OK) {
        int cg = n->c / GN_GROUPS;
        for (int c = n->c - 1; c >= 0; c--) {   /* backwards: ab[c] is read before written */
            int g = c / cg;
            float a = ab[c] / sqrtf(mv[2 * g + 1] + GN_EPS);
            ab[2 * c] = a;
            ab[2 * c + 1] = beta[c] - mv[2 * g] * a;
        }
        affine_job j = {x, y, ab, hw, silu};
        sd_pool_run(ctx->pool, affine_task, &j, n->c);
    }
    sd_free(ab), sd_free(beta);
    return st;
}

/* The network's GroupNorm (+ SiLU): x [C, H, W] -> y (may alias x), with statistics
 * recorded, replayed or accumulated as w->stats says. */
static sd_status run_norm(sd_ctx *ctx, work *w, const norm *n, const float *x, float *y, int H,
                          int W, bool silu, sd_error *err)
{
    gn_stats *s = w->stats;
    int64_t hw = (int64_t)H * W;
    int cg = n->c / GN_GROUPS;
    double sum[GN_GROUPS], sq[GN_GROUPS];
    if (!s || s->mode == STATS_OWN)
        return sd_op_groupnorm(ctx, x, y, 1, n->c, hw, GN_GROUPS, n->g, n->b, GN_EPS, silu,
                               err);
    if (s->mode == STATS_RECORD) {
        if (s->n + 2 * GN_GROUPS > s->cap) {
            size_t cap = s->cap * 2 + 8 * GN_GROUPS;
            float *mv = sd_realloc(s->mv, cap * sizeof(float));
            if (!mv)
                return sd_fail_nomem(err, "VAE statistics");
            s->mv = mv, s->cap = cap;
        }
        moments_job j = {x, cg, H, W, 0, H, 0, W, NULL, sum, sq};
        sd_pool_run(ctx->pool, moments_task, &j, GN_GROUPS);
        double cnt = (double)cg * (double)hw;
        for (int g = 0; g < GN_GROUPS; g++) {
            double mean = sum[g] / cnt;
            s->mv[s->n++] = (float)mean;
            s->mv[s->n++] = (float)fmax(sq[g] / cnt - mean * mean, 0.0);
        }
        return sd_op_groupnorm(ctx, x, y, 1, n->c, hw, GN_GROUPS, n->g, n->b, GN_EPS, silu,
                               err);
    }
    if (SD_NEVER(s->pos + 2 * GN_GROUPS > s->n))
        return sd_fail(err, SD_ERR_INTERNAL, "VAE: statistics replay out of step");
    const float *mv = s->mv + s->pos;
    if (s->acc) {
        int scale = H / s->th;    /* activation pixels per latent pixel at this level */
        moments_job j = {x, cg, H, W, s->oy0 * scale, s->oy1 * scale, s->ox0 * scale,
                         s->ox1 * scale, mv, sum, sq};
        sd_pool_run(ctx->pool, moments_task, &j, GN_GROUPS);
        double *acc = s->acc + s->pos / (2 * GN_GROUPS) * ACC_STRIDE;
        for (int g = 0; g < GN_GROUPS; g++)
            acc[g] += sum[g], acc[GN_GROUPS + g] += sq[g];
        acc[2 * GN_GROUPS] += (double)(j.y1 - j.y0) * (double)(j.x1 - j.x0) * cg;
    }
    s->pos += 2 * GN_GROUPS;
    return norm_with(ctx, n, mv, x, y, hw, silu, err);
}

/* Replace the replayed statistics by those accumulated over the owned regions. */
static void stats_from_acc(gn_stats *s)
{
    for (size_t k = 0; k < s->n / (2 * GN_GROUPS); k++) {
        const double *acc = s->acc + k * ACC_STRIDE;
        float *mv = s->mv + k * 2 * GN_GROUPS;
        double cnt = acc[2 * GN_GROUPS];
        if (cnt <= 0)
            continue;
        for (int g = 0; g < GN_GROUPS; g++) {
            double m1 = acc[g] / cnt;
            mv[2 * g + 1] = (float)fmax(acc[GN_GROUPS + g] / cnt - m1 * m1, 0.0);
            mv[2 * g] = (float)(mv[2 * g] + m1);
        }
    }
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

/* ResnetBlock.forward: x + conv2(silu(norm2(conv1(silu(norm1(x)))))), the skip through
 * nin_shortcut when the width changes.  In and out in w->x. */
static sd_status resblock_fwd(sd_ctx *ctx, const resblock *r, work *w, int H, int W,
                              sd_error *err)
{
    sd_status st;
    if ((st = run_norm(ctx, w, &r->n1, w->x, w->t1, H, W, true, err)) != SD_OK ||
        (st = run_conv(ctx, &r->c1, w->t1, H, W, &CONV3, w->t2, err)) != SD_OK ||
        (st = run_norm(ctx, w, &r->n2, w->t2, w->t2, H, W, true, err)) != SD_OK ||
        (st = run_conv(ctx, &r->c2, w->t2, H, W, &CONV3, w->t1, err)) != SD_OK)
        return st;
    int64_t n = (int64_t)r->c2.cout * H * W;
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
    sd_status st = run_norm(ctx, w, &a->n, w->x, w->t1, H, W, false, err);
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
 * The two segments of each network
 *
 * Each network splits into a full-resolution segment (encoder: conv_in and the down levels;
 * decoder: the up levels and the output) and a latent-resolution segment around the
 * mid-block attention (encoder: mid block, norm_out, conv_out, quant_conv; decoder:
 * post_quant_conv, conv_in, mid block).  Tiling cuts the first; the second, small in memory
 * but global through its attention, runs on the whole latent when it is not too large.
 * ========================================================================================== */

/* Encoder, full-resolution segment: image [3, H, W] -> features in w->x [C, H/f, W/f]. */
static sd_status enc_down(sd_ctx *ctx, const half_net *e, work *w, const float *image, int H,
                          int W, sd_error *err)
{
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
    return st;
}

/* Encoder, latent segment + posterior: features in w->x [C, h, w] -> moments [2Z, h, w] =
 * mean | logvar, logvar clamped to [-30, 20]. */
static sd_status enc_out(sd_ctx *ctx, const vae_net *net, work *w, int h, int wd,
                         float *moments, sd_error *err)
{
    const half_net *e = &net->enc;
    sd_status st = mid_fwd(ctx, e, w, h, wd, err);
    if (st == SD_OK)
        st = run_norm(ctx, w, &e->norm_out, w->x, w->t1, h, wd, true, err);
    if (st == SD_OK)
        st = run_conv(ctx, &e->conv_out, w->t1, h, wd, &CONV3, e->quant.w ? w->t2 : moments,
                      err);
    if (st == SD_OK && e->quant.w)
        st = run_conv(ctx, &e->quant, w->t2, h, wd, &CONV1, moments, err);
    if (st != SD_OK)
        return st;
    int64_t n = (int64_t)net->z * h * wd;
    float *logvar = moments + n;
    for (int64_t i = 0; i < n; i++)
        logvar[i] = fminf(fmaxf(logvar[i], LOGVAR_MIN), LOGVAR_MAX);
    return SD_OK;
}

/* Decoder, latent segment: z [Z, h, w] -> w->x [C, h, w] (post_quant_conv, conv_in, mid). */
static sd_status dec_mid(sd_ctx *ctx, const half_net *d, work *w, const float *z, int h, int wd,
                         sd_error *err)
{
    sd_status st = SD_OK;
    const float *in = z;
    if (d->quant.w) {
        st = run_conv(ctx, &d->quant, z, h, wd, &CONV1, w->t1, err);
        in = w->t1;
    }
    if (st == SD_OK)
        st = run_conv(ctx, &d->conv_in, in, h, wd, &CONV3, w->x, err);
    if (st == SD_OK)
        st = mid_fwd(ctx, d, w, h, wd, err);
    return st;
}

/* Decoder, full-resolution segment: w->x [C, h, w] -> image [3, f h, f w]. */
static sd_status dec_up(sd_ctx *ctx, const half_net *d, work *w, int H, int W, float *image,
                        sd_error *err)
{
    sd_status st = SD_OK;
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
        st = run_norm(ctx, w, &d->norm_out, w->x, w->t1, H, W, true, err);
    if (st == SD_OK)
        st = run_conv(ctx, &d->conv_out, w->t1, H, W, &CONV3, image, err);
    return st;
}

/* ============================================================================================
 * Running a network on a whole image or on overlapping tiles
 * ========================================================================================== */

/* One network run: in [cin, h in_mul, w in_mul] -> out [cout, h out_mul, w out_mul] for a
 * latent size h x w. */
typedef struct job {
    const vae_net *net;
    bool decode;
    bool with_mid;         /* the latent segment runs inside the job (else before/after it) */
    int cin, cout;
    int in_mul, out_mul;   /* pixels per latent pixel of in and out */
} job;

static void job_need(const job *j, int h, int w, int64_t *act, int64_t *att)
{
    if (j->decode)
        dec_need(&j->net->dec, h, w, act, att);
    else
        enc_need(&j->net->enc, h * j->in_mul, w * j->in_mul, act, att);
    if (!j->with_mid)
        *att = 0;
}

static sd_status job_run(sd_ctx *ctx, const job *j, work *w, const float *in, int h, int wd,
                         float *out, sd_error *err)
{
    sd_status st;
    if (j->decode) {
        if (j->with_mid)
            st = dec_mid(ctx, &j->net->dec, w, in, h, wd, err);
        else
            st = SD_OK, memcpy(w->x, in, (size_t)j->cin * (size_t)h * (size_t)wd * 4);
        if (st == SD_OK)
            st = dec_up(ctx, &j->net->dec, w, h, wd, out, err);
        return st;
    }
    st = enc_down(ctx, &j->net->enc, w, in, h * j->in_mul, wd * j->in_mul, err);
    if (st == SD_OK && j->with_mid)
        st = enc_out(ctx, j->net, w, h, wd, out, err);
    else if (st == SD_OK)
        memcpy(out, w->x, (size_t)j->cout * (size_t)h * (size_t)wd * sizeof(float));
    return st;
}

/* Run j on the whole image with its own working memory. */
static sd_status job_whole(sd_ctx *ctx, const job *j, const float *in, int h, int w,
                           float *out, sd_error *err)
{
    int64_t act, att;
    job_need(j, h, w, &act, &att);
    work wk;
    sd_status st = work_alloc(&wk, act, att, err);
    if (st == SD_OK)
        st = job_run(ctx, j, &wk, in, h, w, out, err);
    work_free(&wk);
    return st;
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

/* The part of tile i that it owns: from the middle of its overlap with the previous tile to
 * the middle of its overlap with the next; *a, *b relative to the tile. */
static void owned(const int *starts, int n, int i, int T, int L, int *a, int *b)
{
    int lo = i == 0 ? 0 : (starts[i] + starts[i - 1] + T) / 2;
    int hi = i == n - 1 ? L : (starts[i + 1] + starts[i] + T) / 2;
    *a = lo - starts[i], *b = hi - starts[i];
}

/* Blending weight along one axis at output pixel p of a tile of S output pixels, on the
 * sides that have a neighbour: 0 over the first R/4 pixels (the tile's rim, disturbed by the
 * zero padding of the convolutions), then a linear ramp up to 1 at R.  The neighbour covers
 * the rim with weight > 0 because tiles overlap by at least R. */
static float ramp(int64_t p, int64_t S, int64_t R, bool left, bool right)
{
    float wgt = 1.0f, m = (float)(R / 4), r = (float)R - m;
    if (R > 0 && left)
        wgt = fminf(wgt, ((float)p + 0.5f - m) / r);
    if (R > 0 && right)
        wgt = fminf(wgt, ((float)(S - p) - 0.5f - m) / r);
    return fmaxf(wgt, 0.0f);
}

typedef struct tiling {
    const job *j;
    const float *in;
    int h, w;              /* latent size of the whole image */
    int th, tw, overlap;   /* tile size and overlap, latent pixels */
    int ny, nx;
    int *ys, *xs;          /* tile origins */
    const sd_vae_opts *opts;
    int done, total;       /* progress */
} tiling;

/* One pass over all tiles with working memory wk (whose stats say how to normalise); blends
 * into out [cout, h out_mul, w out_mul] when out is non-NULL (wsum: the weights' sum). */
static sd_status tile_pass(sd_ctx *ctx, tiling *t, work *wk, float *tin, float *tout,
                           float *out, float *wsum, sd_error *err)
{
    const job *j = t->j;
    int64_t IH = (int64_t)t->h * j->in_mul, IW = (int64_t)t->w * j->in_mul;
    int64_t OH = (int64_t)t->h * j->out_mul, OW = (int64_t)t->w * j->out_mul;
    int64_t tih = (int64_t)t->th * j->in_mul, tiw = (int64_t)t->tw * j->in_mul;
    int64_t toh = (int64_t)t->th * j->out_mul, tow = (int64_t)t->tw * j->out_mul;
    int64_t R = (int64_t)t->overlap * j->out_mul;
    gn_stats *s = wk->stats;
    for (int ty = 0; ty < t->ny; ty++) {
        for (int tx = 0; tx < t->nx; tx++) {
            int64_t iy0 = (int64_t)t->ys[ty] * j->in_mul, ix0 = (int64_t)t->xs[tx] * j->in_mul;
            for (int c = 0; c < j->cin; c++)
                for (int64_t y = 0; y < tih; y++)
                    memcpy(tin + (c * tih + y) * tiw, t->in + (c * IH + iy0 + y) * IW + ix0,
                           (size_t)tiw * sizeof(float));
            s->pos = 0;
            owned(t->ys, t->ny, ty, t->th, t->h, &s->oy0, &s->oy1);
            owned(t->xs, t->nx, tx, t->tw, t->w, &s->ox0, &s->ox1);
            sd_status st = job_run(ctx, j, wk, tin, t->th, t->tw, tout, err);
            if (st != SD_OK)
                return st;
            if (out) {
                bool top = t->ys[ty] > 0, bottom = t->ys[ty] + t->th < t->h;
                bool left = t->xs[tx] > 0, right = t->xs[tx] + t->tw < t->w;
                int64_t oy0 = (int64_t)t->ys[ty] * j->out_mul;
                int64_t ox0 = (int64_t)t->xs[tx] * j->out_mul;
                for (int64_t y = 0; y < toh; y++) {
                    float wy = ramp(y, toh, R, top, bottom);
                    float *ws = wsum + (oy0 + y) * OW + ox0;
                    for (int64_t x = 0; x < tow; x++)
                        ws[x] += wy * ramp(x, tow, R, left, right);
                    for (int c = 0; c < j->cout; c++) {
                        const float *src = tout + (c * toh + y) * tow;
                        float *dst = out + (c * OH + oy0 + y) * OW + ox0;
                        for (int64_t x = 0; x < tow; x++)
                            dst[x] += wy * ramp(x, tow, R, left, right) * src[x];
                    }
                }
            }
            t->done++;
            if (t->opts->progress && !t->opts->progress(t->done, t->total, t->opts->user))
                return SD_CANCELLED;
        }
    }
    if (out)
        for (int c = 0; c < j->cout; c++)
            for (int64_t i = 0; i < OH * OW; i++)
                out[c * OH * OW + i] /= wsum[i];
    return SD_OK;
}

/* Box-downscale the job's input by ky x kx latent pixels into buf: [cin, sh in_mul,
 * sw in_mul] with sh = h / ky, sw = w / kx (a remainder at the bottom/right is left out). */
static void downscale(const tiling *t, int ky, int kx, float *buf, int sh, int sw)
{
    const job *j = t->j;
    int64_t IH = (int64_t)t->h * j->in_mul, IW = (int64_t)t->w * j->in_mul;
    int64_t SH = (int64_t)sh * j->in_mul, SW = (int64_t)sw * j->in_mul;
    for (int c = 0; c < j->cin; c++)
        for (int64_t y = 0; y < SH; y++)
            for (int64_t x = 0; x < SW; x++) {
                double acc = 0;
                for (int dy = 0; dy < ky; dy++)
                    for (int dx = 0; dx < kx; dx++)
                        acc += t->in[(c * IH + y * ky + dy) * IW + x * kx + dx];
                buf[(c * SH + y) * SW + x] = (float)(acc / (ky * kx));
            }
}

/* Run j over the image in tiles, with shared GroupNorm statistics (see above). */
static sd_status job_tiled(sd_ctx *ctx, tiling *t, bool fast, float *out, sd_error *err)
{
    const job *j = t->j;
    int64_t act, att;
    job_need(j, t->th, t->tw, &act, &att);
    work wk;
    sd_status st = work_alloc(&wk, act, att, err);
    if (st != SD_OK)
        return st;
    gn_stats stats = {.mode = STATS_RECORD, .th = t->th, .tw = t->tw};
    wk.stats = &stats;
    int64_t OH = (int64_t)t->h * j->out_mul, OW = (int64_t)t->w * j->out_mul;
    size_t nin = (size_t)j->cin * (size_t)(t->th * j->in_mul) * (size_t)(t->tw * j->in_mul);
    size_t nout = (size_t)j->cout * (size_t)(t->th * j->out_mul) * (size_t)(t->tw * j->out_mul);
    float *tin = sd_malloc(nin * sizeof(float)), *tout = sd_malloc(nout * sizeof(float));
    float *wsum = sd_calloc((size_t)(OH * OW), sizeof(float));
    if (!tin || !tout || !wsum) {
        st = sd_fail_nomem(err, "VAE tiles");
        goto out;
    }
    /* 1: estimate on the image box-downscaled to fit in one tile, each axis on its own (a
     * uniform factor makes strips so thin that the estimate is all border) */
    int ky = (t->h + t->th - 1) / t->th, kx = (t->w + t->tw - 1) / t->tw;
    int sh = t->h / ky, sw = t->w / kx;
    downscale(t, ky, kx, tin, sh, sw);
    if ((st = job_run(ctx, j, &wk, tin, sh, sw, tout, err)) != SD_OK)
        goto out;
    stats.mode = STATS_REPLAY;
    /* 2: measure over the tiles' owned regions */
    if (!fast) {
        stats.acc = sd_calloc(stats.n / (2 * GN_GROUPS) * ACC_STRIDE, sizeof(double));
        if (!stats.acc) {
            st = sd_fail_nomem(err, "VAE statistics");
            goto out;
        }
        if ((st = tile_pass(ctx, t, &wk, tin, tout, NULL, NULL, err)) != SD_OK)
            goto out;
        stats_from_acc(&stats);
        sd_free(stats.acc);
        stats.acc = NULL;
    }
    /* 3: the result */
    memset(out, 0, (size_t)j->cout * (size_t)(OH * OW) * sizeof(float));
    st = tile_pass(ctx, t, &wk, tin, tout, out, wsum, err);
out:
    sd_free(tin), sd_free(tout), sd_free(wsum);
    sd_free(stats.mv), sd_free(stats.acc);
    work_free(&wk);
    return st;
}

/* Run the encoder (moments out) or decoder (image out) over latent size h x w as opts say:
 * whole, or tiled with the latent segment on the whole latent when it has at most
 * SD_VAE_GLOBAL_MID_MAX pixels. */
static sd_status run_net(sd_ctx *ctx, const vae_net *net, bool decode, const float *in, int h,
                         int w, const sd_vae_opts *opts, float *out, sd_error *err)
{
    sd_vae_opts def = sd_vae_opts_default();
    if (!opts)
        opts = &def;
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
    int f = net->factor, C = decode ? net->dec.conv_in.cout : net->enc.mid1.c1.cin;
    job whole = {.net = net, .decode = decode, .with_mid = true,
                 .cin = decode ? net->z : 3, .cout = decode ? 3 : 2 * net->z,
                 .in_mul = decode ? 1 : f, .out_mul = decode ? f : 1};
    if (T == 0 || (h <= T && w <= T)) {
        sd_status st = job_whole(ctx, &whole, in, h, w, out, err);
        if (st == SD_OK && opts->progress && !opts->progress(1, 1, opts->user))
            st = SD_CANCELLED;
        return st;
    }

    bool global_mid = (int64_t)h * w <= global_mid_max;
    job tj = whole;
    if (global_mid) {
        tj.with_mid = false;
        if (decode)
            tj.cin = C;
        else
            tj.cout = C;
    }
    tiling t = {.j = &tj, .in = in, .h = h, .w = w, .th = SD_MIN(T, h), .tw = SD_MIN(T, w),
                .overlap = O, .opts = opts};
    float *mid = NULL;
    sd_status st = SD_OK;
    t.ys = sd_malloc((size_t)h * sizeof(int)), t.xs = sd_malloc((size_t)w * sizeof(int));
    if (global_mid)
        mid = sd_malloc((size_t)C * (size_t)h * (size_t)w * sizeof(float));
    if (!t.ys || !t.xs || (global_mid && !mid)) {
        st = sd_fail_nomem(err, "VAE tiles");
        goto out;
    }
    t.ny = tile_starts(h, t.th, O, t.ys), t.nx = tile_starts(w, t.tw, O, t.xs);
    t.total = t.ny * t.nx * (opts->fast ? 1 : 2);
    sd_log(ctx, SD_LOG_DEBUG, "VAE %s %dx%d latent: %dx%d tiles of %dx%d, overlap %d, %s mid",
           decode ? "decode" : "encode", w, h, t.nx, t.ny, t.tw, t.th, O,
           global_mid ? "global" : "tiled");
    if (decode && global_mid) {
        /* the latent segment on the whole latent, then the up path in tiles */
        work wk;
        int64_t act = (int64_t)SD_MAX(C, net->z) * h * w;
        if ((st = work_alloc(&wk, act, net->dec.attn.present ? (int64_t)C * h * w : 0, err)) ==
            SD_OK)
            st = dec_mid(ctx, &net->dec, &wk, in, h, w, err);
        if (st == SD_OK)
            memcpy(mid, wk.x, (size_t)act * sizeof(float));
        work_free(&wk);
        t.in = mid;
        if (st == SD_OK)
            st = job_tiled(ctx, &t, opts->fast, out, err);
    } else if (global_mid) {
        /* the down path in tiles, then the latent segment on the whole latent */
        if ((st = job_tiled(ctx, &t, opts->fast, mid, err)) == SD_OK) {
            work wk;
            int64_t act = (int64_t)SD_MAX(C, 2 * net->z) * h * w;
            st = work_alloc(&wk, act, net->enc.attn.present ? (int64_t)C * h * w : 0, err);
            if (st == SD_OK) {
                memcpy(wk.x, mid, (size_t)C * (size_t)h * (size_t)w * sizeof(float));
                st = enc_out(ctx, net, &wk, h, w, out, err);
            }
            work_free(&wk);
        }
    } else {
        st = job_tiled(ctx, &t, opts->fast, out, err);
    }
out:
    sd_free(t.ys), sd_free(t.xs), sd_free(mid);
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

/* Encoder on image [3, H, W] in [-1, 1] -> moments [2Z, H/f, W/f]. */
static sd_status encode_moments(sd_ctx *ctx, const vae_net *net, const float *image, int H,
                                int W, const sd_vae_opts *opts, float *moments, sd_error *err)
{
    sd_status st = check_size(H, W, net->factor, "image", err);
    if (st == SD_OK)
        st = run_net(ctx, net, false, image, H / net->factor, W / net->factor, opts, moments,
                     err);
    return st;
}

sd_status sd_vae_encode(sd_ctx *ctx, const sd_model *m, const float *image, int H, int W,
                        const sd_vae_opts *opts, float *mean, float *logvar, sd_error *err)
{
    if (!logvar)
        return sd_fail(err, SD_ERR_INVALID_ARG, "VAE: NULL argument");
    vae_net *net;
    sd_status st = begin(ctx, m, image, mean, false, &net, err);
    if (st != SD_OK)
        return st;
    size_t n = (size_t)net->z * (size_t)(SD_MAX(H, 0) / net->factor) *
               (size_t)(SD_MAX(W, 0) / net->factor);
    float *moments = sd_malloc(2 * SD_MAX(n, 1) * sizeof(float));
    if (!moments)
        st = sd_fail_nomem(err, "VAE moments");
    else
        st = encode_moments(ctx, net, image, H, W, opts, moments, err);
    if (st == SD_OK) {
        memcpy(mean, moments, n * sizeof(float));
        memcpy(logvar, moments + n, n * sizeof(float));
    }
    sd_free(moments);
    sd_free(net);
    return st;
}

static sd_status check_latent(int h, int w, int f, sd_error *err)
{
    if (h < 1 || w < 1 || h > MAX_SIDE / f || w > MAX_SIDE / f)
        return sd_fail(err, SD_ERR_INVALID_ARG, "VAE: latent size %dx%d out of range [1, %d]",
                       w, h, MAX_SIDE / f);
    return SD_OK;
}

sd_status sd_vae_decode(sd_ctx *ctx, const sd_model *m, const float *z, int h, int w,
                        const sd_vae_opts *opts, float *image, sd_error *err)
{
    vae_net *net;
    sd_status st = begin(ctx, m, z, image, true, &net, err);
    if (st != SD_OK)
        return st;
    if ((st = check_latent(h, w, net->factor, err)) == SD_OK)
        st = run_net(ctx, net, true, z, h, w, opts, image, err);
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
        /* DiagonalGaussianDistribution.sample / .mode, times scaling_factor */
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
    vae_net *net;
    sd_status st = begin(ctx, m, latents, image, true, &net, err);
    if (st != SD_OK)
        return st;
    float *z = NULL;
    if ((st = check_latent(h, w, net->factor, err)) == SD_OK) {
        size_t n = (size_t)net->z * (size_t)h * (size_t)w;
        z = sd_malloc(n * sizeof(float));
        if (!z)
            st = sd_fail_nomem(err, "VAE latents");
        for (size_t i = 0; z && i < n; i++)
            z[i] = latents[i] / net->scaling_factor;
    }
    if (st == SD_OK)
        st = run_net(ctx, net, true, z, h, w, opts, image, err);
    if (st == SD_OK) {
        size_t npix = (size_t)3 * (size_t)(h * net->factor) * (size_t)(w * net->factor);
        for (size_t i = 0; i < npix; i++)
            image[i] = fminf(fmaxf(image[i] * 0.5f + 0.5f, 0.0f), 1.0f);
    }
    sd_free(z);
    sd_free(net);
    return st;
}
