/* tests/t_unet.c - the UNet against the golden `unet` cases of tiny-sd15 (SD 1.x),
 * tiny-sd15-inpaint (9 input channels) and tiny-sd2v (SD 2.x: linear projections, per-level
 * heads), loaded from the single f16 files, the diffusers folders and an f32 single file;
 * with the default and the reference kernels.  Also: properties that need no reference
 * (batch items independent, a repeated context changes nothing, odd latent sizes),
 * cancellation, clear errors for missing or truncated tensors, allocation failures, the
 * peak memory of a 64x64 forward, and the description built from full-size SD 1.5,
 * SD 1.5 inpainting and SD 2.1 layouts. */
#include "harness.h"
#include "case_util.h"
#include "model_util.h"
#include "internal/json.h"
#include "internal/model.h"
#include "internal/ops.h"
#include "internal/safetensors.h"
#include "internal/unet.h"
#include "internal/unet_net.h"

#include <stdint.h>
#include <unistd.h>

/* golden README: one network call, |c - ref| <= 1e-4 * max|ref| + 1e-5 */
#define RTOL 1e-4
#define ATOL 1e-5


/* ==== golden case ======================================================================= */

typedef struct gcase {
    float *sample, *timesteps, *context, *out;
    int B, C, H, W, T, L, D, OC;
} gcase;

static bool load_case(const char *model, gcase *g)
{
    memset(g, 0, sizeof *g);
    char rel[128];
    snprintf(rel, sizeof rel, "%s/unet.safetensors", model);
    const char *path = t_data(rel);
    sd_st_file *f = NULL;
    sd_error err = {0};
    if (sd_st_open(path, &f, &err) != SD_OK) {
        CHECK(0, "open %s: %s", path, err.msg);
        return false;
    }
    const sd_tensor *s = sd_st_tensor(f, "sample"), *t = sd_st_tensor(f, "timesteps"),
                    *c = sd_st_tensor(f, "encoder_hidden_states");
    bool ok = s && t && c && s->ndim == 4 && t->ndim == 1 && c->ndim == 3;
    if (ok) {
        g->B = (int)s->shape[0], g->C = (int)s->shape[1];
        g->H = (int)s->shape[2], g->W = (int)s->shape[3];
        g->T = (int)t->shape[0], g->L = (int)c->shape[1], g->D = (int)c->shape[2];
        g->OC = 4;
        g->sample = t_case_f32(f, "sample", NULL);
        g->timesteps = t_case_f32(f, "timesteps", NULL);
        g->context = t_case_f32(f, "encoder_hidden_states", NULL);
        size_t n_out;
        g->out = t_case_f32(f, "out", &n_out);   /* [T, B, OC, H, W] */
        ok = n_out == (size_t)g->T * g->B * g->OC * g->H * g->W;
    }
    CHECK(ok, "case %s readable", path);
    sd_st_close(f);
    return ok;
}

static void free_case(gcase *g)
{
    free(g->sample);
    free(g->timesteps);
    free(g->context);
    free(g->out);
}

/* ==== helpers =========================================================================== */

static sd_unet *open_unet(sd_ctx *ctx, const char *path, sd_model **m)
{
    sd_error err = {0};
    sd_unet *u = NULL;
    *m = NULL;
    if (sd_model_load(ctx, path, m, &err) != SD_OK || sd_unet_new(*m, &u, &err) != SD_OK) {
        CHECK(0, "load %s: %s", path, err.msg);
        sd_model_free(*m);
        *m = NULL;
        return NULL;
    }
    return u;
}

/* The tiny-sd15 case and the UNet of its f16 file; false (nothing left to free) when either
 * fails. */
static bool open_sd15(sd_ctx *ctx, gcase *g, sd_model **m, sd_unet **u)
{
    *u = NULL;
    if (load_case("tiny-sd15", g) &&
        (*u = open_unet(ctx, t_data("tiny-sd15/model-f16.safetensors"), m)))
        return true;
    free_case(g);
    return false;
}

static sd_status forward(sd_ctx *ctx, const sd_unet *u, const gcase *g, int ti, float *out,
                         sd_error *err)
{
    float t[64];
    for (int b = 0; b < g->B; b++)
        t[b] = g->timesteps[ti];
    sd_unet_args a = {.batch = g->B, .height = g->H, .width = g->W, .x = g->sample,
                      .timesteps = t, .context = g->context, .ctx_len = g->L};
    return sd_unet_forward(ctx, u, &a, out, err);
}

/* Run every timestep of the case (or only the first n_t) and compare with the reference. */
static void check_golden(sd_ctx *ctx, const char *label, const char *path, const gcase *g,
                         int n_t)
{
    sd_model *m;
    sd_unet *u = open_unet(ctx, path, &m);
    if (!u)
        return;
    size_t per = (size_t)g->B * g->OC * g->H * g->W;
    float *out = malloc(per * sizeof *out);
    for (int i = 0; i < n_t; i++) {
        sd_error err = {0};
        for (size_t k = 0; k < per; k++)
            out[k] = NAN;
        sd_status st = forward(ctx, u, g, i, out, &err);
        CHECK(st == SD_OK, "%s forward: %s", label, err.msg);
        char what[160];
        snprintf(what, sizeof what, "%s t=%g", label, g->timesteps[i]);
        t_close(what, out, g->out + (size_t)i * per, per, ATOL, RTOL);
    }
    free(out);
    sd_unet_free(u);
    sd_model_free(m);
}

/* ==== tests ============================================================================= */

static const struct {
    const char *name;
    int in_channels;
    bool linear_proj;
} models[] = {
    {"tiny-sd15", 4, false},
    {"tiny-sd15-inpaint", 9, false},
    {"tiny-sd2v", 4, true},
};

static void test_description(sd_ctx *ctx)
{
    for (size_t i = 0; i < SD_ARRAY_LEN(models); i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "%s/model-f16.safetensors", models[i].name);
        sd_model *m;
        sd_unet *u = open_unet(ctx, t_data(rel), &m);
        if (!u)
            continue;
        sd_unet_info info;
        sd_unet_get_info(u, &info);
        CHECK(info.in_channels == models[i].in_channels && info.out_channels == 4 &&
                  info.model_channels == 32 && info.context_dim == 32 && info.levels == 4 &&
                  info.n_transformers == 16 && info.linear_proj == models[i].linear_proj,
              "%s: in %d out %d mc %d ctx %d levels %d transformers %d linear %d",
              models[i].name, info.in_channels, info.out_channels, info.model_channels,
              info.context_dim, info.levels, info.n_transformers, info.linear_proj);
        sd_unet_free(u);
        sd_model_free(m);
    }
}

static void test_golden(sd_ctx *ctx, sd_ctx *ref_ctx)
{
    for (size_t i = 0; i < SD_ARRAY_LEN(models); i++) {
        gcase g;
        if (!load_case(models[i].name, &g)) {
            free_case(&g);
            continue;
        }
        char rel[128], label[160];
        snprintf(rel, sizeof rel, "%s/model-f16.safetensors", models[i].name);
        snprintf(label, sizeof label, "%s f16 file", models[i].name);
        check_golden(ctx, label, t_data(rel), &g, g.T);
        snprintf(rel, sizeof rel, "%s/diffusers", models[i].name);
        snprintf(label, sizeof label, "%s diffusers", models[i].name);
        check_golden(ctx, label, t_data(rel), &g, g.T);
        if (i == 0) {
            const char *f32 = t_tmp("tiny-sd15-f32.safetensors");
            t_variant to32 = {.convert = true, .dtype = SD_DTYPE_F32};
            bool w = t_write_model_variant(t_data("tiny-sd15/model-f16.safetensors"), f32, &to32);
            CHECK(w, "f32 copy written");
            if (w)
                check_golden(ctx, "tiny-sd15 f32 file", f32, &g, g.T);
            t_remove_model(f32);
            check_golden(ref_ctx, "tiny-sd15 f16 file, reference kernels",
                         t_data("tiny-sd15/model-f16.safetensors"), &g, g.T);
        }
        if (i == 2)
            check_golden(ref_ctx, "tiny-sd2v f16 file, reference kernels",
                         t_data("tiny-sd2v/model-f16.safetensors"), &g, 1);
        free_case(&g);
    }
}

/* Properties without a reference: one batch item alone equals its row of the batch; a
 * context repeated twice along the sequence (L = 154, what a long prompt's chunking gives)
 * leaves every attention average unchanged; odd latent sizes run (diffusers' upsample to
 * the skip's size) and give finite output. */
static void test_properties(sd_ctx *ctx)
{
    gcase g;
    sd_model *m;
    sd_unet *u;
    if (!open_sd15(ctx, &g, &m, &u))
        return;
    size_t per = (size_t)g.OC * g.H * g.W, in_per = (size_t)g.C * g.H * g.W;
    float *full = malloc(2 * per * sizeof *full), *one = malloc(per * sizeof *one);
    float t[2] = {g.timesteps[2], g.timesteps[2]};
    sd_error err = {0};
    CHECK(forward(ctx, u, &g, 2, full, &err) == SD_OK, "%s", err.msg);

    sd_unet_args a = {.batch = 1, .height = g.H, .width = g.W, .x = g.sample + in_per,
                      .timesteps = t, .context = g.context + (size_t)g.L * g.D,
                      .ctx_len = g.L};
    CHECK(sd_unet_forward(ctx, u, &a, one, &err) == SD_OK, "%s", err.msg);
    t_close("batch item 1 alone", one, full + per, per, 1e-6, 1e-5);

    size_t cl = (size_t)g.L * g.D;
    float *ctx2 = malloc(4 * cl * sizeof *ctx2);
    for (int b = 0; b < 2; b++) {
        memcpy(ctx2 + (2 * b) * cl, g.context + b * cl, cl * sizeof *ctx2);
        memcpy(ctx2 + (2 * b + 1) * cl, g.context + b * cl, cl * sizeof *ctx2);
    }
    float *dup = malloc(2 * per * sizeof *dup);
    a = (sd_unet_args){.batch = 2, .height = g.H, .width = g.W, .x = g.sample, .timesteps = t,
                       .context = ctx2, .ctx_len = 2 * g.L};
    CHECK(sd_unet_forward(ctx, u, &a, dup, &err) == SD_OK, "%s", err.msg);
    t_close("context repeated (L = 154)", dup, full, 2 * per, 1e-5, 1e-5);

    /* odd sizes: 13 x 10 latents -> levels 13x10, 7x5, 4x3, 2x2 */
    int H = 13, W = 10;
    float *x = malloc((size_t)2 * g.C * H * W * sizeof *x), *y = malloc((size_t)2 * 4 * H * W *
                                                                         sizeof *y);
    for (int i = 0; i < 2 * g.C * H * W; i++)
        x[i] = g.sample[i % (2 * in_per)];
    a = (sd_unet_args){.batch = 2, .height = H, .width = W, .x = x, .timesteps = t,
                       .context = g.context, .ctx_len = g.L};
    sd_status st = sd_unet_forward(ctx, u, &a, y, &err);
    CHECK(st == SD_OK, "odd size: %s", err.msg);
    bool finite = true;
    double amax = 0;
    for (int i = 0; st == SD_OK && i < 2 * 4 * H * W; i++) {
        finite = finite && isfinite(y[i]);
        amax = fmax(amax, fabs(y[i]));
    }
    CHECK(finite && amax > 0.01 && amax < 100, "odd size output finite and plausible (%g)",
          amax);

    /* out may alias x */
    float *io = malloc(2 * in_per * sizeof *io);
    memcpy(io, g.sample, 2 * in_per * sizeof *io);
    a = (sd_unet_args){.batch = 2, .height = g.H, .width = g.W, .x = io, .timesteps = t,
                       .context = g.context, .ctx_len = g.L};
    CHECK(sd_unet_forward(ctx, u, &a, io, &err) == SD_OK, "%s", err.msg);
    t_close("out aliasing x", io, full, 2 * per, 0, 0);

    free(io);
    free(x);
    free(y);
    free(dup);
    free(ctx2);
    free(full);
    free(one);
    free_case(&g);
    sd_unet_free(u);
    sd_model_free(m);
}

typedef struct hook_state {
    int calls, stop_at;
} hook_state;

static bool hook(void *user)
{
    hook_state *h = user;
    return ++h->calls != h->stop_at;
}

static void test_cancel_and_args(sd_ctx *ctx)
{
    gcase g;
    sd_model *m;
    sd_unet *u;
    if (!open_sd15(ctx, &g, &m, &u))
        return;
    size_t per = (size_t)g.B * g.OC * g.H * g.W;
    float *out = malloc(per * sizeof *out);
    float t[2] = {500, 500};
    hook_state hs = {0, 0};
    sd_unet_args a = {.batch = g.B, .height = g.H, .width = g.W, .x = g.sample,
                      .timesteps = t, .context = g.context, .ctx_len = g.L, .hook = hook,
                      .hook_user = &hs};
    sd_error err = {0};
    CHECK(sd_unet_forward(ctx, u, &a, out, &err) == SD_OK, "%s", err.msg);
    /* conv_in, 11 input blocks, the middle block, 12 output blocks */
    CHECK(hs.calls == 25, "hook called %d times between blocks, want 25", hs.calls);
    for (size_t k = 0; k < per; k++)
        out[k] = 12345.0f;
    size_t live = sd_alloc_live_bytes();
    hs = (hook_state){0, 13};
    CHECK(sd_unet_forward(ctx, u, &a, out, &err) == SD_CANCELLED && hs.calls == 13,
          "cancelled after the middle block");
    CHECK(out[0] == 12345.0f && out[per - 1] == 12345.0f, "out untouched when cancelled");
    CHECK(sd_alloc_live_bytes() == live, "cancel frees everything");

    a.hook = NULL;
    a.batch = 0;
    CHECK(sd_unet_forward(ctx, u, &a, out, &err) == SD_ERR_INVALID_ARG, "batch 0");
    a.batch = g.B;
    a.context = NULL;
    CHECK(sd_unet_forward(ctx, u, &a, out, &err) == SD_ERR_INVALID_ARG && err.msg[0],
          "missing context: %s", err.msg);
    a.context = g.context;
    a.height = 1 << 30;
    a.width = 1 << 30;
    CHECK(sd_unet_forward(ctx, u, &a, out, &err) == SD_ERR_TOO_LARGE, "absurd size: %s",
          err.msg);

    /* allocation failures: every one reported as NOMEM, nothing leaked */
    a.height = g.H;
    a.width = g.W;
    int n_fail = 0;
    for (long nth = 1; nth < 500; nth++) {
        live = sd_alloc_live_bytes();
        sd_alloc_fail_after(nth, false);
        sd_status st = sd_unet_forward(ctx, u, &a, out, &err);
        sd_alloc_fail_after(0, false);
        CHECK(sd_alloc_live_bytes() == live, "leak after failing allocation %ld", nth);
        if (st == SD_OK)
            break;
        CHECK(st == SD_ERR_NOMEM, "allocation %ld failed: got %s", nth, sd_status_str(st));
        n_fail++;
    }
    CHECK(n_fail > 5, "forward allocates (%d failures injected)", n_fail);
    for (long nth = 1; nth < 500; nth++) {
        live = sd_alloc_live_bytes();
        sd_unet *u2 = NULL;
        sd_alloc_fail_after(nth, false);
        sd_status st = sd_unet_new(m, &u2, &err);
        sd_alloc_fail_after(0, false);
        sd_unet_free(u2);
        CHECK(sd_alloc_live_bytes() == live, "leak after failing build allocation %ld", nth);
        if (st == SD_OK)
            break;
        CHECK(st == SD_ERR_NOMEM && !u2, "build allocation %ld: got %s", nth,
              sd_status_str(st));
    }
    free(out);
    free_case(&g);
    sd_unet_free(u);
    sd_model_free(m);
}

/* A model file with one UNet tensor missing or truncated fails with SD_ERR_FORMAT and a
 * message naming the tensor. */
static void test_bad_tensors(sd_ctx *ctx)
{
    static const char *const victim =
        "model.diffusion_model.output_blocks.4.1.transformer_blocks.0.attn2.to_v.weight";
    const char *path = t_tmp("bad.safetensors");
    for (int mode = 0; mode < 2; mode++) {
        t_variant v = {.drop = mode == 0 ? victim : NULL, .halve = mode == 1 ? victim : NULL};
        bool w = t_write_model_variant(t_data("tiny-sd15/model-f16.safetensors"), path, &v);
        CHECK(w, "variant written");
        if (!w)
            continue;
        sd_error err = {0};
        sd_model *m = NULL;
        sd_unet *u = NULL;
        sd_status st = sd_model_load(ctx, path, &m, &err);
        if (st == SD_OK)
            st = sd_unet_new(m, &u, &err);
        CHECK(st == SD_ERR_FORMAT && !u && strstr(err.msg, "output_blocks.4.1") &&
                  strstr(err.msg, "attn2.to_v"),
              "%s tensor: %s (%s)", mode ? "truncated" : "missing", sd_status_str(st), err.msg);
        fprintf(stderr, "     %s tensor -> %s\n", mode ? "truncated" : "missing", err.msg);
        sd_unet_free(u);
        sd_model_free(m);
    }
    t_remove_model(path);

    /* a model without a UNet */
    sd_error err = {0};
    sd_model *m = NULL;
    sd_unet *u = NULL;
    CHECK(sd_model_load(ctx, t_data("taesd/taesd_decoder.safetensors"), &m, &err) == SD_OK,
          "%s", err.msg);
    CHECK(m && sd_unet_new(m, &u, &err) == SD_ERR_FORMAT && !u && strstr(err.msg, "no UNet"),
          "TAESD file: %s", err.msg);
    sd_model_free(m);
}

/* Peak memory of one 64x64 forward, batch 2: below a single stored 4096 x 4096 score
 * matrix (64 MiB; an untiled attention would hold one per head and batch item, 256 MiB
 * here), so no such matrix can have been built. */
static void test_peak_memory(sd_ctx *ctx)
{
    gcase g;
    sd_model *m;
    sd_unet *u;
    if (!open_sd15(ctx, &g, &m, &u))
        return;
    const int H = 64, W = 64, B = 2;
    float *x = malloc((size_t)B * 4 * H * W * sizeof *x);
    float *y = malloc((size_t)B * 4 * H * W * sizeof *y);
    for (int i = 0; i < B * 4 * H * W; i++)
        x[i] = g.sample[i % (B * 4 * g.H * g.W)];
    float t[2] = {999, 999};
    sd_unet_args a = {.batch = B, .height = H, .width = W, .x = x, .timesteps = t,
                      .context = g.context, .ctx_len = g.L};
    sd_error err = {0};
    /* the first forward also packs the weights, which then stay with the model (they are
     * not activations): measure a second one */
    sd_status st = sd_unet_forward(ctx, u, &a, y, &err);
    size_t base = sd_alloc_live_bytes();
    sd_alloc_peak_reset();
    if (st == SD_OK)
        st = sd_unet_forward(ctx, u, &a, y, &err);
    size_t peak = sd_alloc_peak_bytes() - base;
    CHECK(st == SD_OK, "64x64 forward: %s", err.msg);
    size_t score = (size_t)4096 * 4096 * sizeof(float);
    fprintf(stderr, "     64x64 batch 2 forward: peak %.2f MiB above the model; one 4096x4096 "
            "score matrix: %.0f MiB (x 2 heads x %d batch items untiled)\n",
            (double)peak / 1048576.0, (double)score / 1048576.0, B);
    CHECK(peak < score, "peak %zu bytes, score matrix %zu", peak, score);
    size_t plan = 0;
    CHECK(sd_unet_memory(u, B, H, W, g.L, &plan, &err) == SD_OK, "%s", err.msg);
    fprintf(stderr, "     planned by sd_unet_memory: %.2f MiB (the rest is the ops' scratch)\n",
            (double)plan / 1048576.0);
    CHECK(plan <= peak && peak < plan + plan / 2, "measured peak %zu vs planned %zu", peak,
          plan);
    free(x);
    free(y);
    free_case(&g);
    sd_unet_free(u);
    sd_model_free(m);
}

static void test_full_size(sd_ctx *ctx)
{
    sd_json *root = t_full_size_layouts();
    if (!root)
        return;
    sd_error err = {0};
    static const struct {
        const char *key;
        int in_channels, context_dim;
        bool linear_proj;
        int dh[4];   /* attention head width per level: SD 1.x 8 heads, SD 2.x 64 wide */
    } cases[] = {
        {"sd15", 4, 768, false, {40, 80, 160, 160}},
        {"sd15-inpaint", 9, 768, false, {40, 80, 160, 160}},
        {"sd21", 4, 1024, true, {64, 64, 64, 64}},
    };
    const char *path = t_tmp("full.safetensors");
    for (size_t i = 0; i < SD_ARRAY_LEN(cases); i++) {
        if (!t_write_header_only(sd_json_get(root, cases[i].key), path)) {
            CHECK(0, "write %s", cases[i].key);
            continue;
        }
        sd_model *m;
        sd_unet *u = open_unet(ctx, path, &m);
        if (!u)
            continue;
        sd_unet_info info;
        sd_unet_get_info(u, &info);
        CHECK(info.in_channels == cases[i].in_channels && info.out_channels == 4 &&
                  info.model_channels == 320 && info.context_dim == cases[i].context_dim &&
                  info.levels == 4 && info.n_transformers == 16 &&
                  info.linear_proj == cases[i].linear_proj && u->n_in == 11 && u->n_out == 12,
              "full-size %s: in %d mc %d ctx %d levels %d transformers %d linear %d",
              cases[i].key, info.in_channels, info.model_channels, info.context_dim,
              info.levels, info.n_transformers, info.linear_proj);
        /* input_blocks 1, 4, 7 hold the first transformer of levels 0..2; the middle
         * block's runs at level 3 */
        const sd_unet_xf *xf[4] = {&u->in[0].layers[1].xf, &u->in[3].layers[1].xf,
                                   &u->in[6].layers[1].xf, &u->mid.layers[1].xf};
        for (int l = 0; l < 4; l++)
            CHECK(xf[l]->dh == cases[i].dh[l] && xf[l]->depth == 1 &&
                      xf[l]->ff == 4 * xf[l]->inner,
                  "full-size %s level %d: head width %d, depth %d", cases[i].key, l,
                  xf[l]->dh, xf[l]->depth);
        /* what a 512x512 (SD 1.x) / 768x768 (SD 2.x) image with CFG needs */
        int lat = cases[i].context_dim == 1024 ? 96 : 64;
        size_t bytes = 0;
        CHECK(sd_unet_memory(u, 2, lat, lat, 77, &bytes, &err) == SD_OK, "%s", err.msg);
        fprintf(stderr, "     full-size %s, %dx%d latents, batch 2: %.0f MiB of activations\n",
                cases[i].key, lat, lat, (double)bytes / 1048576.0);
        CHECK(bytes > 0 && bytes < ((size_t)1 << 30), "%s: %zu bytes", cases[i].key, bytes);
        sd_unet_free(u);
        sd_model_free(m);
    }
    unlink(path);
    sd_json_free(root);
}

int main(void)
{
    t_tmp_fresh("t_unet");
    sd_ctx *ctx = t_ctx_new(false), *ref_ctx = t_ctx_new(true);
    CHECK(ctx && ref_ctx, "contexts");
    if (ctx && ref_ctx) {
        test_description(ctx);
        test_golden(ctx, ref_ctx);
        test_properties(ctx);
        test_cancel_and_args(ctx);
        test_bad_tensors(ctx);
        test_peak_memory(ctx);
        test_full_size(ctx);
    }
    sd_ctx_free(ctx);
    sd_ctx_free(ref_ctx);
    return t_summary("t_unet");
}
