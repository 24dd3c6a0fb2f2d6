/* taesd.c - TAESD encoder and decoder (madebyollin/taesd taesd.py Encoder()/Decoder(),
 * diffusers EncoderTiny/DecoderTiny).  Kept apart from vae.c because the two networks share
 * nothing but the convolution op: TAESD is a plain stack of 3x3 convolutions, ReLUs and
 * residual Blocks with no normalisation and no attention.
 *
 * The layer list is read from the canonical names taesd.{encoder,decoder}.layers.N
 * (diffusers numbering).  What the index holds tells the layer:
 *   N.weight (+ N.bias)            a 3x3 convolution, padding 1; in the encoder one WITHOUT
 *                                  bias is the stride-2 downsampler;
 *   N.conv.{0,2,4}.* (+ N.skip.*)  a Block: relu(conv4(relu(conv2(relu(conv0(x))))) + skip(x));
 *   nothing                        in the decoder: the ReLU after the first convolution, or
 *                                  the 2x nearest upsampling before a bias-less convolution. */
#include "internal/taesd.h"

#include "internal/model.h"
#include "internal/ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_LAYERS 64
#define MAX_CHANNELS 65536
#define MAX_SIDE 65536

typedef enum layer_kind { L_CONV, L_CONV_DOWN, L_BLOCK, L_RELU, L_UPSAMPLE } layer_kind;

typedef struct conv {
    const sd_tensor *w;   /* [O, C, k, k] */
    const sd_tensor *b;   /* [O] or NULL */
    int cout, cin;
} conv;

typedef struct layer {
    layer_kind kind;
    conv c;               /* L_CONV, L_CONV_DOWN; L_BLOCK: conv.0 */
    conv c2, c4;          /* L_BLOCK: conv.2, conv.4 */
    conv skip;            /* L_BLOCK: 1x1 without bias when the width changes, else w NULL */
} layer;

typedef struct tnet {
    int n;
    layer layers[MAX_LAYERS];
    int cin, cout, max_c, factor;
} tnet;

/* ============================================================================================
 * Reading the layer list
 * ========================================================================================== */

/* `base`.weight [O, cin, k, k] and, if present, `base`.bias [O] (required if `bias`). */
static sd_status load_conv(const sd_model *m, sd_error *err, conv *c, const char *base, int cin,
                           int k, bool bias)
{
    char name[256];
    sd_name(name, sizeof name, "%s.weight", base);
    const sd_tensor *w = sd_model_tensor(m, name);
    if (!w)
        return sd_fail(err, SD_ERR_FORMAT, "model is missing tensor %s", name);
    if (!sd_dtype_is_float(w->dtype) || w->ndim != 4 || w->shape[2] != k || w->shape[3] != k ||
        w->shape[0] < 1 || w->shape[0] > MAX_CHANNELS || (cin >= 0 && w->shape[1] != cin) ||
        w->shape[1] < 1 || w->shape[1] > MAX_CHANNELS)
        return sd_fail(err, SD_ERR_FORMAT, "tensor %s: %s with %d dimensions, expected "
                       "[O, %d, %d, %d]", name, sd_dtype_name(w->dtype), w->ndim, cin, k, k);
    sd_name(name, sizeof name, "%s.bias", base);
    const sd_tensor *b = sd_model_tensor(m, name);
    if (!b && bias)
        return sd_fail(err, SD_ERR_FORMAT, "model is missing tensor %s", name);
    if (b && (!sd_dtype_is_float(b->dtype) || b->ndim != 1 || b->shape[0] != w->shape[0]))
        return sd_fail(err, SD_ERR_FORMAT, "tensor %s does not match %lld outputs", name,
                       (long long)w->shape[0]);
    c->w = w, c->b = b, c->cout = (int)w->shape[0], c->cin = (int)w->shape[1];
    return SD_OK;
}

static sd_status load_block(const sd_model *m, sd_error *err, layer *l, const char *base,
                            int cin)
{
    char b[256];
    sd_status st;
    sd_name(b, sizeof b, "%s.conv.0", base);
    if ((st = load_conv(m, err, &l->c, b, cin, 3, true)) != SD_OK)
        return st;
    int c = l->c.cout;
    sd_name(b, sizeof b, "%s.conv.2", base);
    if ((st = load_conv(m, err, &l->c2, b, c, 3, true)) != SD_OK)
        return st;
    sd_name(b, sizeof b, "%s.conv.4", base);
    if ((st = load_conv(m, err, &l->c4, b, c, 3, true)) != SD_OK)
        return st;
    if (l->c2.cout != c || l->c4.cout != c)
        return sd_fail(err, SD_ERR_FORMAT, "%s: convolutions of unequal width", base);
    memset(&l->skip, 0, sizeof l->skip);
    if (sd_model_tensorf(m, "%s.skip.weight", base)) {
        sd_name(b, sizeof b, "%s.skip", base);
        if ((st = load_conv(m, err, &l->skip, b, cin, 1, false)) != SD_OK)
            return st;
        if (l->skip.cout != c)
            return sd_fail(err, SD_ERR_FORMAT, "%s has %d outputs, expected %d", b,
                           l->skip.cout, c);
    } else if (cin != c) {
        return sd_fail(err, SD_ERR_FORMAT, "model is missing tensor %s.skip.weight", base);
    }
    return SD_OK;
}

/* The encoder (`decoder` false) or decoder under `prefix`; n = 0 when absent. */
static sd_status load_net(const sd_model *m, const char *prefix, bool decoder, tnet *t,
                          sd_error *err)
{
    char b[256];
    memset(t, 0, sizeof *t);
    int last = -1;
    for (int i = 0; i < MAX_LAYERS; i++) {
        sd_name(b, sizeof b, "%s.%d", prefix, i);
        if (sd_model_tensorf(m, "%s.weight", b) || sd_model_tensorf(m, "%s.conv.0.weight", b))
            last = i;
    }
    if (last < 0)
        return SD_OK;
    sd_name(b, sizeof b, "%s.%d", prefix, MAX_LAYERS);
    if (sd_model_tensorf(m, "%s.weight", b) || sd_model_tensorf(m, "%s.conv.0.weight", b))
        return sd_fail(err, SD_ERR_UNSUPPORTED, "%s: more than %d layers", prefix, MAX_LAYERS);
    int c = -1;        /* running width; the first convolution sets the input width */
    t->factor = 1;
    for (int i = 0; i <= last; i++) {
        layer *l = &t->layers[i];
        sd_status st;
        sd_name(b, sizeof b, "%s.%d", prefix, i);
        if (sd_model_tensorf(m, "%s.conv.0.weight", b)) {
            if (c < 0)
                return sd_fail(err, SD_ERR_FORMAT, "%s: starts with a Block", prefix);
            l->kind = L_BLOCK;
            if ((st = load_block(m, err, l, b, c)) != SD_OK)
                return st;
            c = l->c.cout;
        } else if (sd_model_tensorf(m, "%s.weight", b)) {
            if ((st = load_conv(m, err, &l->c, b, c, 3, false)) != SD_OK)
                return st;
            bool up = i > 0 && t->layers[i - 1].kind == L_UPSAMPLE;
            if (l->c.b || up || i == 0) {
                l->kind = L_CONV;
            } else if (!decoder) {
                l->kind = L_CONV_DOWN;
                t->factor *= 2;
            } else {
                return sd_fail(err, SD_ERR_FORMAT, "%s: convolution without bias where no "
                               "upsampling precedes it", b);
            }
            if (i == 0)
                t->cin = l->c.cin;
            c = l->c.cout;
        } else if (decoder && i == 1 && t->layers[0].kind == L_CONV) {
            l->kind = L_RELU;
        } else if (decoder && i > 0 && i < last) {
            char nb[256];
            sd_name(nb, sizeof nb, "%s.%d", prefix, i + 1);
            if (!sd_model_tensorf(m, "%s.weight", nb) || sd_model_tensorf(m, "%s.bias", nb))
                return sd_fail(err, SD_ERR_FORMAT, "%s: no layer at index %d", prefix, i);
            l->kind = L_UPSAMPLE;
            t->factor *= 2;
        } else {
            return sd_fail(err, SD_ERR_FORMAT, "%s: no layer at index %d", prefix, i);
        }
        if (c > t->max_c)
            t->max_c = c;
    }
    if (t->layers[last].kind != L_CONV)
        return sd_fail(err, SD_ERR_FORMAT, "%s: does not end in a convolution", prefix);
    t->n = last + 1;
    t->cout = c;
    if (t->cin > t->max_c)
        t->max_c = t->cin;
    return SD_OK;
}

typedef struct taesd_net {
    tnet enc, dec;
} taesd_net;

static sd_status load_all(const sd_model *m, taesd_net *n, sd_error *err)
{
    sd_status st = load_net(m, "taesd.encoder.layers", false, &n->enc, err);
    if (st == SD_OK)
        st = load_net(m, "taesd.decoder.layers", true, &n->dec, err);
    if (st != SD_OK)
        return sd_fail_prefix(err, st, "TAESD: ");
    if (!n->enc.n && !n->dec.n)
        return sd_fail(err, SD_ERR_FORMAT, "model has no TAESD encoder or decoder");
    if (n->enc.n && (n->enc.cin != 3))
        return sd_fail(err, SD_ERR_FORMAT, "TAESD encoder takes %d channels, not RGB",
                       n->enc.cin);
    if (n->dec.n && n->dec.cout != 3)
        return sd_fail(err, SD_ERR_FORMAT, "TAESD decoder makes %d channels, not RGB",
                       n->dec.cout);
    if (n->enc.n && n->dec.n && (n->enc.cout != n->dec.cin || n->enc.factor != n->dec.factor))
        return sd_fail(err, SD_ERR_FORMAT, "TAESD encoder (%d channels, factor %d) and "
                       "decoder (%d, %d) do not match", n->enc.cout, n->enc.factor,
                       n->dec.cin, n->dec.factor);
    return SD_OK;
}

static sd_status new_net(const sd_model *m, taesd_net **out, sd_error *err)
{
    *out = NULL;
    if (!m)
        return sd_fail(err, SD_ERR_INVALID_ARG, "TAESD: no model");
    taesd_net *n = sd_malloc(sizeof *n);
    if (!n)
        return sd_fail_nomem(err, "TAESD description");
    sd_status st = load_all(m, n, err);
    if (st != SD_OK) {
        sd_free(n);
        return st;
    }
    *out = n;
    return SD_OK;
}

sd_status sd_taesd_get_info(const sd_model *m, sd_taesd_info *out, sd_error *err)
{
    memset(out, 0, sizeof *out);
    taesd_net *n;
    sd_status st = new_net(m, &n, err);
    if (st != SD_OK)
        return st;
    out->has_encoder = n->enc.n > 0;
    out->has_decoder = n->dec.n > 0;
    out->latent_channels = n->enc.n ? n->enc.cout : n->dec.cin;
    out->factor = n->enc.n ? n->enc.factor : n->dec.factor;
    sd_free(n);
    return SD_OK;
}

/* ============================================================================================
 * Forward pass
 * ========================================================================================== */

/* y = relu(y + x) (x may be NULL: y = relu(y)), split over the pool. */
typedef struct relu_job {
    float *y;
    const float *x;
    int64_t n;
} relu_job;

static void relu_task(void *arg, int task, int n_tasks)
{
    const relu_job *j = arg;
    int64_t a = j->n * task / n_tasks, b = j->n * (task + 1) / n_tasks;
    /* v > 0 ? v : 0 is fmaxf(v, 0) (NaN gives 0 either way) without a libm call per
     * element, so the compiler vectorises it */
    if (j->x) {
        for (int64_t i = a; i < b; i++) {
            float v = j->y[i] + j->x[i];
            j->y[i] = v > 0.0f ? v : 0.0f;
        }
    } else {
        for (int64_t i = a; i < b; i++)
            j->y[i] = j->y[i] > 0.0f ? j->y[i] : 0.0f;
    }
}

static void add_relu(sd_ctx *ctx, float *y, const float *x, int64_t n)
{
    relu_job j = {y, x, n};
    int tasks = (int)SD_MIN((int64_t)ctx->n_threads * 4, n / 4096 + 1);
    sd_pool_run(ctx->pool, relu_task, &j, tasks);
}

static const sd_conv2d_params CONV3 = {.stride = 1, .pad_top = 1, .pad_left = 1,
                                       .pad_bottom = 1, .pad_right = 1};
static const sd_conv2d_params CONV3_S2 = {.stride = 2, .pad_top = 1, .pad_left = 1,
                                          .pad_bottom = 1, .pad_right = 1};
static const sd_conv2d_params CONV1 = {.stride = 1};

/* The first of the three work buffers that is neither a nor b. */
static float *other(float *const bufs[3], const float *a, const float *b)
{
    for (int i = 0; i < 3; i++)
        if (bufs[i] != a && bufs[i] != b)
            return bufs[i];
    return NULL;
}

/* Run t on in [t->cin, H, W] -> out [t->cout, H', W'], with three work buffers each large
 * enough for any activation.  in may be one of them; it is then overwritten. */
static sd_status forward(sd_ctx *ctx, const tnet *t, const float *in, int H, int W,
                         float *const bufs[3], float *out, sd_error *err)
{
    const float *cur = in;       /* the current activation */
    int C = t->cin;
    sd_status st = SD_OK;
    for (int i = 0; i < t->n && st == SD_OK; i++) {
        const layer *l = &t->layers[i];
        int64_t hw = (int64_t)H * W;
        float *dst = i == t->n - 1 ? out : other(bufs, cur, NULL);
        switch (l->kind) {
        case L_CONV:
            st = sd_op_conv2d(ctx, cur, 1, C, H, W, l->c.w, l->c.b, &CONV3, dst, err);
            C = l->c.cout;
            cur = dst;
            break;
        case L_CONV_DOWN:
            st = sd_op_conv2d(ctx, cur, 1, C, H, W, l->c.w, l->c.b, &CONV3_S2, dst, err);
            H = (H + 1) / 2, W = (W + 1) / 2;
            C = l->c.cout;
            cur = dst;
            break;
        case L_RELU:             /* follows the first convolution: cur is a work buffer */
            add_relu(ctx, (float *)cur, NULL, (int64_t)C * hw);
            break;
        case L_UPSAMPLE:
            sd_op_upsample2x(ctx, cur, dst, C, H, W);
            H *= 2, W *= 2;
            cur = dst;
            break;
        case L_BLOCK: {
            /* Block.forward: relu(conv(x) + skip(x)), conv = conv0, ReLU, conv2, ReLU, conv4 */
            float *a = other(bufs, cur, NULL), *b = other(bufs, cur, a);
            int co = l->c.cout;
            int64_t n = (int64_t)co * hw;
            if ((st = sd_op_conv2d(ctx, cur, 1, C, H, W, l->c.w, l->c.b, &CONV3, a, err)) !=
                SD_OK)
                break;
            add_relu(ctx, a, NULL, n);
            if ((st = sd_op_conv2d(ctx, a, 1, co, H, W, l->c2.w, l->c2.b, &CONV3, b, err)) !=
                SD_OK)
                break;
            add_relu(ctx, b, NULL, n);
            if ((st = sd_op_conv2d(ctx, b, 1, co, H, W, l->c4.w, l->c4.b, &CONV3, a, err)) !=
                SD_OK)
                break;
            if (l->skip.w) {
                st = sd_op_conv2d(ctx, cur, 1, C, H, W, l->skip.w, NULL, &CONV1, b, err);
                if (st != SD_OK)
                    break;
                add_relu(ctx, a, b, n);
            } else {
                add_relu(ctx, a, cur, n);
            }
            C = co;
            cur = a;
            break;
        }
        }
    }
    return st;
}

/* ============================================================================================
 * Public entry points
 * ========================================================================================== */

static sd_status alloc_bufs(float *bufs[3], int64_t n, sd_error *err)
{
    size_t bytes;
    bufs[0] = bufs[1] = bufs[2] = NULL;
    if (n < 1 || !sd_mul_ok((size_t)n, sizeof(float), &bytes))
        return sd_fail(err, SD_ERR_TOO_LARGE, "TAESD: activations too large");
    for (int i = 0; i < 3; i++)
        bufs[i] = sd_malloc(bytes);
    if (!bufs[0] || !bufs[1] || !bufs[2]) {
        for (int i = 0; i < 3; i++) {
            sd_free(bufs[i]);
            bufs[i] = NULL;
        }
        return sd_fail_nomem(err, "TAESD activations");
    }
    return SD_OK;
}

sd_status sd_taesd_encode(sd_ctx *ctx, const sd_model *m, const float *image, int H, int W,
                          float *latents, sd_error *err)
{
    if (!ctx || !image || !latents)
        return sd_fail(err, SD_ERR_INVALID_ARG, "TAESD: NULL argument");
    taesd_net *n;
    sd_status st = new_net(m, &n, err);
    if (st != SD_OK)
        return st;
    const tnet *t = &n->enc;
    float *bufs[3] = {NULL, NULL, NULL};
    if (!t->n)
        st = sd_fail(err, SD_ERR_FORMAT, "model has no TAESD encoder");
    else if (H < t->factor || W < t->factor || H > MAX_SIDE || W > MAX_SIDE || H % t->factor ||
             W % t->factor)
        st = sd_fail(err, SD_ERR_INVALID_ARG, "TAESD: image size %dx%d must be a multiple of "
                     "%d between %d and %d", W, H, t->factor, t->factor, MAX_SIDE);
    else
        st = alloc_bufs(bufs, (int64_t)t->max_c * H * W, err);
    if (st == SD_OK)
        st = forward(ctx, t, image, H, W, bufs, latents, err);
    sd_free(bufs[0]), sd_free(bufs[1]), sd_free(bufs[2]);
    sd_free(n);
    return st;
}

sd_status sd_taesd_decode(sd_ctx *ctx, const sd_model *m, const float *latents, int h, int w,
                          float *image, sd_error *err)
{
    if (!ctx || !latents || !image)
        return sd_fail(err, SD_ERR_INVALID_ARG, "TAESD: NULL argument");
    taesd_net *n;
    sd_status st = new_net(m, &n, err);
    if (st != SD_OK)
        return st;
    const tnet *t = &n->dec;
    float *bufs[3] = {NULL, NULL, NULL};
    if (!t->n)
        st = sd_fail(err, SD_ERR_FORMAT, "model has no TAESD decoder");
    else if (h < 1 || w < 1 || h > MAX_SIDE / t->factor || w > MAX_SIDE / t->factor)
        st = sd_fail(err, SD_ERR_INVALID_ARG, "TAESD: latent size %dx%d out of range [1, %d]",
                     w, h, MAX_SIDE / t->factor);
    else
        st = alloc_bufs(bufs, (int64_t)t->max_c * (h * t->factor) * (w * t->factor), err);
    if (st == SD_OK) {
        /* taesd.py Clamp(): squash the latents smoothly into (-3, 3) */
        int64_t nz = (int64_t)t->cin * h * w;
        for (int64_t i = 0; i < nz; i++)
            bufs[0][i] = tanhf(latents[i] / 3.0f) * 3.0f;
        st = forward(ctx, t, bufs[0], h, w, bufs, image, err);
    }
    sd_free(bufs[0]), sd_free(bufs[1]), sd_free(bufs[2]);
    sd_free(n);
    return st;
}
