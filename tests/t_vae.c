/* tests/t_vae.c - the SD VAE against the golden case tiny-sd15/vae.safetensors (encoder
 * posterior, decoder on the case latent and a random latent) from the f16 single file, the
 * diffusers folder and an f32 single file written here; the pipeline conversions against the
 * img2img pipeline case; tiled vs untiled decode and encode (difference bounded, no seam,
 * and the seam measure shown to catch hard tile edges); argument errors, cancellation,
 * allocation failures; the CLI's PNG reader/writer and the `sd vae*` commands. */
#define SD_TESTING
#include "harness.h"
#include "case_util.h"
#include "model_util.h"
#include "internal/safetensors.h"

#include "cli/image_png.c"
#include "vae.c"

#include <sys/stat.h>
#include <unistd.h>

/* Golden tolerance for one network call (golden README): |c - ref| <= 1e-4 max|ref| + 1e-5. */
#define GOLD_RTOL 1e-4
#define GOLD_ATOL 1e-5
/* Pipeline image in [0, 1]: <= 1e-4 absolute. */
#define IMAGE_ATOL 1e-4

/* Tiled vs untiled decode, measured on the tiny VAE with test_tiled_decode (32x32 latent,
 * tile 20, overlap 6; decoded values span about +-1.2): default mode max 0.236, mean 0.0228;
 * fast mode max 0.365, mean 0.0422; mid block inside each tile (latents above
 * SD_VAE_GLOBAL_MID_MAX; its attention then sees only the tile) max 0.512, mean 0.0621.
 * (On a 64x64 latent with tile 32, overlap 8: 0.096 / 0.0106 and fast 0.19 / 0.022; with
 * per-tile GroupNorm statistics and a per-tile mid block, the naive way, 0.78 / 0.076.)
 * The bounds leave room for summation order and kernel variants. */
#define TILED_DEC_MAX 0.30
#define TILED_DEC_MEAN 0.03
#define TILED_DEC_FAST_MAX 0.45
#define TILED_DEC_FAST_MEAN 0.055
#define TILED_DEC_MIDTILE_MAX 0.65
#define TILED_DEC_MIDTILE_MEAN 0.08
/* A 4x64 latent strip in tiles of 4x16 (overlap 4): measured max 0.157, mean 0.0192.  (A
 * statistics estimate downscaled by one factor for both axes gave 0.27 mean here.) */
#define TILED_DEC_STRIP_MEAN 0.03
/* Seam measure (see seam_ratio): the largest mean jump of (tiled - untiled) across a line
 * near a tile border over the mean jump across all other lines.  Measured 1.06 (fast 1.16,
 * mid per tile 1.22) with blending, 8.9 with hard tile edges. */
#define SEAM_RATIO_MAX 2.0
/* Tiled vs untiled encode (test_tiled_encode: 256x256 image, tile 16 overlap 4 latent px).
 * This random tiny encoder is hypersensitive to anything global: zeroing an 8-pixel strip
 * at the right edge of the image moves the posterior mean by up to 15 in the left half.  So
 * the bounds are loose: measured posterior mean max 13 / mean 1.4 (max|ref| 23.6), logvar
 * max 0.14 / mean 0.014. */
#define TILED_ENC_MEAN_MEAN 0.1   /* x max|ref| */
#define TILED_ENC_LOGVAR_MAX 0.3
#define TILED_ENC_LOGVAR_MEAN 0.03

static sd_ctx *ctx;

/* ---- helpers ----------------------------------------------------------------------------- */

/* Bilinear resize (align corners) of [C, h, w] to [C, H, W]: smooth, larger test inputs. */
static float *resize(const float *s, int C, int h, int w, int H, int W)
{
    float *d = malloc((size_t)C * H * W * sizeof(float));
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                float fy = (float)y * (h - 1) / (H - 1), fx = (float)x * (w - 1) / (W - 1);
                int y0 = (int)fy, x0 = (int)fx, y1 = SD_MIN(y0 + 1, h - 1);
                int x1 = SD_MIN(x0 + 1, w - 1);
                float ay = fy - y0, ax = fx - x0;
                const float *p = s + (size_t)c * h * w;
                d[((size_t)c * H + y) * W + x] =
                    (1 - ay) * ((1 - ax) * p[y0 * w + x0] + ax * p[y0 * w + x1]) +
                    ay * ((1 - ax) * p[y1 * w + x0] + ax * p[y1 * w + x1]);
            }
    return d;
}

static void stats(const float *a, const float *b, size_t n, double *maxd, double *meand)
{
    double mx = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        mx = fmax(mx, d), s += d;
    }
    *maxd = mx, *meand = s / (double)n;
}

/* ---- golden cases ------------------------------------------------------------------------ */

static void golden(const char *what, const sd_model *m, const sd_st_file *c)
{
    char label[128];
    sd_error err = {0};
    float *img = t_case_f32(c, "image", NULL);
    float *ref_mean = t_case_f32(c, "posterior_mean", NULL);
    float *ref_lv = t_case_f32(c, "posterior_logvar", NULL);
    float mean[4 * 16 * 16], lv[4 * 16 * 16], *out = malloc(3 * 128 * 128 * sizeof(float));
    sd_status st = sd_vae_encode(ctx, m, img, 128, 128, NULL, mean, lv, &err);
    CHECK(st == SD_OK, "%s encode: %s", what, err.msg);
    snprintf(label, sizeof label, "%s posterior_mean", what);
    t_close(label, mean, ref_mean, 1024, GOLD_ATOL, GOLD_RTOL);
    snprintf(label, sizeof label, "%s posterior_logvar", what);
    t_close(label, lv, ref_lv, 1024, GOLD_ATOL, GOLD_RTOL);
    static const char *const io[2][2] = {{"latent", "decoded"}, {"latent_rand", "decoded_rand"}};
    for (int k = 0; k < 2; k++) {
        float *z = t_case_f32(c, io[k][0], NULL), *ref = t_case_f32(c, io[k][1], NULL);
        for (int i = 0; i < 1024; i++)
            z[i] /= 0.18215f;
        st = sd_vae_decode(ctx, m, z, 16, 16, NULL, out, &err);
        CHECK(st == SD_OK, "%s decode: %s", what, err.msg);
        snprintf(label, sizeof label, "%s %s", what, io[k][1]);
        t_close(label, out, ref, 3 * 128 * 128, GOLD_ATOL, GOLD_RTOL);
        free(z), free(ref);
    }
    free(img), free(ref_mean), free(ref_lv), free(out);
}

static void test_golden(void)
{
    sd_st_file *c = NULL;
    sd_error err = {0};
    CHECK(sd_st_open(t_data("tiny-sd15/vae.safetensors"), &c, &err) == SD_OK, "%s", err.msg);
    if (!c)
        return;
    sd_model *m = t_load_model(ctx, t_data("tiny-sd15/model-f16.safetensors"));
    if (m) {
        sd_vae_info info;
        CHECK(sd_vae_get_info(m, &info, &err) == SD_OK, "%s", err.msg);
        CHECK(info.has_encoder && info.has_decoder && info.latent_channels == 4 &&
                  info.factor == 8 && info.image_channels == 3 &&
                  fabsf(info.scaling_factor - 0.18215f) < 1e-7f,
              "info: z %d f %d sf %g", info.latent_channels, info.factor,
              (double)info.scaling_factor);
        golden("f16 single file", m, c);
    }
    sd_model_free(m);
    m = t_load_model(ctx, t_data("tiny-sd15/diffusers"));
    if (m)
        golden("diffusers folder", m, c);
    sd_model_free(m);
    const char *f32 = t_tmp("tiny-sd15-f32.safetensors");
    CHECK(t_write_model_copy(t_data("tiny-sd15/model-f16.safetensors"), f32, SD_DTYPE_F32),
          "writing f32 copy");
    m = t_load_model(ctx, f32);
    if (m) {
        sd_model_info mi;
        sd_model_get_info(m, &mi);
        CHECK(mi.dtype == SD_DTYPE_F32, "f32 copy loads as %s", sd_dtype_name(mi.dtype));
        golden("f32 single file", m, c);
    }
    sd_model_free(m);
    t_remove_model(f32);
    sd_st_close(c);
}

/* ---- pipeline conversions ---------------------------------------------------------------- */

static void test_pipeline(const sd_model *m)
{
    sd_error err = {0};
    sd_st_file *c = NULL, *p = NULL;
    CHECK(sd_st_open(t_data("tiny-sd15/vae.safetensors"), &c, &err) == SD_OK, "%s", err.msg);
    CHECK(sd_st_open(t_data("tiny-sd15/pipeline_img2img.safetensors"), &p, &err) == SD_OK, "%s",
          err.msg);
    if (!c || !p)
        goto out;
    size_t n;
    float lat[1024], *img = t_case_f32(c, "image", &n);
    float *ref = t_case_f32(c, "latent", NULL);
    for (size_t i = 0; i < n; i++)
        img[i] = img[i] * 0.5f + 0.5f;                 /* the case image in [0, 1] */
    CHECK(sd_vae_image_to_latents(ctx, m, img, 128, 128, NULL, NULL, lat, &err) == SD_OK, "%s",
          err.msg);
    t_close("image_to_latents (mean) vs latent", lat, ref, 1024, GOLD_ATOL, GOLD_RTOL);
    free(img), free(ref);

    float *out = malloc(3 * 128 * 128 * sizeof(float));
    float *z = t_case_f32(c, "latent", NULL);
    ref = t_case_f32(c, "decoded_unit", NULL);
    CHECK(sd_vae_latents_to_image(ctx, m, z, 16, 16, NULL, out, &err) == SD_OK, "%s", err.msg);
    t_close("latents_to_image vs decoded_unit", out, ref, 3 * 128 * 128, IMAGE_ATOL, 0);
    free(z), free(ref);

    /* img2img: latent_dist.sample() with the recorded noise, times 0.18215 */
    img = t_case_f32(p, "init_image", NULL);
    float *noise = t_case_f32(p, "vae_sample_noise", NULL);
    float *mean = t_case_f32(p, "vae_encode0.mean", NULL);
    float *lv = t_case_f32(p, "vae_encode0.logvar", NULL), want[1024];
    for (int i = 0; i < 1024; i++)
        want[i] = 0.18215f * (mean[i] + expf(0.5f * lv[i]) * noise[i]);
    CHECK(sd_vae_image_to_latents(ctx, m, img, 128, 128, noise, NULL, lat, &err) == SD_OK, "%s",
          err.msg);
    t_close("image_to_latents (sample) vs img2img", lat, want, 1024, GOLD_ATOL, GOLD_RTOL);
    free(img), free(noise), free(mean), free(lv);
    /* the pipeline's final decode */
    z = t_case_f32(p, "final_latents", NULL);
    ref = t_case_f32(p, "image", NULL);
    CHECK(sd_vae_latents_to_image(ctx, m, z, 16, 16, NULL, out, &err) == SD_OK, "%s", err.msg);
    t_close("latents_to_image vs img2img image", out, ref, 3 * 128 * 128, IMAGE_ATOL, 0);
    free(z), free(ref), free(out);
out:
    sd_st_close(c);
    sd_st_close(p);
}

/* ---- tiling ------------------------------------------------------------------------------ */

/* Worst mean |jump| of d = a - b across a tile border over the mean jump elsewhere, in both
 * directions: a seam is a line along which the difference to the untiled result jumps.
 * `border[i]` marks the pixel lines i|i+1 (and their neighbours) where tiles begin or end. */
static double seam_ratio(const float *a, const float *b, int C, int P, const char *border)
{
    double worst = 0;
    for (int dir = 0; dir < 2; dir++) {
        double *line = calloc((size_t)P, sizeof(double));
        for (int c = 0; c < C; c++)
            for (int y = 0; y < P; y++)
                for (int x = 0; x + 1 < P; x++) {
                    size_t i0 = dir ? ((size_t)c * P + x) * P + y : ((size_t)c * P + y) * P + x;
                    size_t i1 = dir ? i0 + (size_t)P : i0 + 1;
                    line[x] += fabs((double)(a[i1] - b[i1]) - (double)(a[i0] - b[i0]));
                }
        double mb = 0, so = 0;
        int no = 0;
        for (int x = 0; x + 1 < P; x++)
            if (border[x])
                mb = fmax(mb, line[x]);
            else
                so += line[x], no++;
        worst = fmax(worst, mb / (so / no));
        free(line);
    }
    return worst;
}

/* Mark the lines around where tiles of T latent px (overlap O) start and end on L. */
static void mark_borders(char *border, int L, int T, int O, int f)
{
    int n = (L - O + (T - O) - 1) / (T - O);
    memset(border, 0, (size_t)L * f);
    for (int i = 0; i < n; i++) {
        int s = (int)((int64_t)i * (L - T) / (n - 1));
        int edges[2] = {s * f, (s + T) * f};
        for (int e = 0; e < 2; e++)
            for (int d = f > 1 ? -2 : -1; d <= (f > 1 ? 1 : 0); d++)
                if (edges[e] + d >= 0 && edges[e] + d < L * f - 1 && edges[e] > 0 &&
                    edges[e] < L * f)
                    border[edges[e] + d] = 1;
    }
}

typedef struct prog {
    int calls, last_done, total, stop_at;
} prog;

static bool on_progress(int done, int total, void *user)
{
    prog *p = user;
    p->calls++;
    p->last_done = done, p->total = total;
    return !(p->stop_at && done >= p->stop_at);
}

static void test_tiled_decode(const sd_model *m)
{
    enum { L = 32, T = 20, O = 6, P = 8 * L };
    sd_error err = {0};
    sd_st_file *c = NULL;
    CHECK(sd_st_open(t_data("tiny-sd15/vae.safetensors"), &c, &err) == SD_OK, "%s", err.msg);
    if (!c)
        return;
    float *small = t_case_f32(c, "latent", NULL);
    for (int i = 0; i < 1024; i++)
        small[i] /= 0.18215f;
    float *z = resize(small, 4, 16, 16, L, L);
    size_t n = (size_t)3 * P * P;
    float *u = malloc(n * sizeof(float)), *t = malloc(n * sizeof(float));
    sd_vae_opts o = sd_vae_opts_default();
    prog pr = {0};
    o.progress = on_progress, o.user = &pr;
    CHECK(sd_vae_decode(ctx, m, z, L, L, &o, u, &err) == SD_OK, "untiled: %s", err.msg);
    CHECK(pr.calls == 1 && pr.total == 1, "auto below the threshold is untiled (%d of %d)",
          pr.last_done, pr.total);

    char border[P];
    mark_borders(border, L, T, O, 8);
    double mx, mean, ratio;
    o.tile = T, o.overlap = O;
    pr = (prog){0};
    CHECK(sd_vae_decode(ctx, m, z, L, L, &o, t, &err) == SD_OK, "tiled: %s", err.msg);
    CHECK(pr.calls == 8 && pr.total == 8, "tiled progress: %d calls, total %d", pr.calls,
          pr.total);
    stats(t, u, n, &mx, &mean);
    ratio = seam_ratio(t, u, 3, P, border);
    fprintf(stderr, "tiled decode %dx%d latent, tile %d overlap %d: max|tiled-untiled| %.4f "
            "mean %.5f seam ratio %.2f\n", L, L, T, O, mx, mean, ratio);
    CHECK(mx <= TILED_DEC_MAX && mean <= TILED_DEC_MEAN, "tiled vs untiled: max %g mean %g", mx,
          mean);
    CHECK(ratio <= SEAM_RATIO_MAX, "seam ratio %g", ratio);

    o.fast = true;
    CHECK(sd_vae_decode(ctx, m, z, L, L, &o, t, &err) == SD_OK, "tiled fast: %s", err.msg);
    stats(t, u, n, &mx, &mean);
    ratio = seam_ratio(t, u, 3, P, border);
    fprintf(stderr, "tiled decode, fast: max %.4f mean %.5f seam ratio %.2f\n", mx, mean, ratio);
    CHECK(mx <= TILED_DEC_FAST_MAX && mean <= TILED_DEC_FAST_MEAN, "fast: max %g mean %g", mx,
          mean);
    CHECK(ratio <= SEAM_RATIO_MAX, "fast seam ratio %g", ratio);

    /* the seam measure sees hard tile edges (no overlap, no blending) */
    o.overlap = 0;
    o.fast = true;
    mark_borders(border, L, T, 0, 8);
    CHECK(sd_vae_decode(ctx, m, z, L, L, &o, t, &err) == SD_OK, "hard tiles: %s", err.msg);
    ratio = seam_ratio(t, u, 3, P, border);
    fprintf(stderr, "hard tile edges: seam ratio %.2f\n", ratio);
    CHECK(ratio > 2 * SEAM_RATIO_MAX, "hard tile edges must show as a seam (ratio %g)", ratio);

    /* the mid block inside each tile (the path for latents above SD_VAE_GLOBAL_MID_MAX) */
    o = sd_vae_opts_default();
    o.tile = T, o.overlap = O;
    global_mid_max = 0;
    CHECK(sd_vae_decode(ctx, m, z, L, L, &o, t, &err) == SD_OK, "tiled mid: %s", err.msg);
    global_mid_max = SD_VAE_GLOBAL_MID_MAX;
    stats(t, u, n, &mx, &mean);
    mark_borders(border, L, T, O, 8);
    ratio = seam_ratio(t, u, 3, P, border);
    fprintf(stderr, "tiled decode, mid block per tile: max %.4f mean %.5f seam ratio %.2f\n", mx,
            mean, ratio);
    CHECK(mx <= TILED_DEC_MIDTILE_MAX && mean <= TILED_DEC_MIDTILE_MEAN,
          "mid per tile: max %g mean %g", mx, mean);
    CHECK(ratio <= SEAM_RATIO_MAX, "mid per tile: seam ratio %g", ratio);

    /* a strip: one side shorter than the tile, the other many tiles long */
    enum { SH = 4, SW = 64 };
    float *zs = resize(small, 4, 16, 16, SH, SW);
    float *us = malloc(3 * 64 * SH * SW * sizeof(float)), *ts = malloc(3 * 64 * SH * SW * 4);
    o.tile = 0;
    CHECK(sd_vae_decode(ctx, m, zs, SH, SW, &o, us, &err) == SD_OK, "strip: %s", err.msg);
    o.tile = 16, o.overlap = 4;
    CHECK(sd_vae_decode(ctx, m, zs, SH, SW, &o, ts, &err) == SD_OK, "strip tiled: %s", err.msg);
    stats(ts, us, (size_t)3 * 64 * SH * SW, &mx, &mean);
    fprintf(stderr, "tiled decode of a %dx%d strip, tile 16: max %.4f mean %.5f\n", SH, SW, mx,
            mean);
    CHECK(mean <= TILED_DEC_STRIP_MEAN, "strip: max %g mean %g", mx, mean);
    free(zs), free(us), free(ts);

    /* cancelling after the third tile */
    o = sd_vae_opts_default();
    o.tile = T, o.overlap = O, o.progress = on_progress, o.user = &pr;
    pr = (prog){.stop_at = 3};
    CHECK(sd_vae_decode(ctx, m, z, L, L, &o, t, &err) == SD_CANCELLED && pr.calls == 3,
          "cancel: %d calls", pr.calls);
    free(small), free(z), free(u), free(t);
    sd_st_close(c);
}

static void test_tiled_encode(const sd_model *m)
{
    enum { L = 32, T = 16, O = 4, P = 8 * L };
    sd_error err = {0};
    sd_st_file *c = NULL;
    CHECK(sd_st_open(t_data("tiny-sd15/vae.safetensors"), &c, &err) == SD_OK, "%s", err.msg);
    if (!c)
        return;
    float *small = t_case_f32(c, "image", NULL), *img = resize(small, 3, 128, 128, P, P);
    size_t n = (size_t)4 * L * L;
    float *um = malloc(n * 4), *ul = malloc(n * 4), *tm = malloc(n * 4), *tl = malloc(n * 4);
    sd_vae_opts o = sd_vae_opts_default();
    CHECK(sd_vae_encode(ctx, m, img, P, P, &o, um, ul, &err) == SD_OK, "untiled: %s", err.msg);
    o.tile = T, o.overlap = O;
    CHECK(sd_vae_encode(ctx, m, img, P, P, &o, tm, tl, &err) == SD_OK, "tiled: %s", err.msg);
    double mx, mean, mref = 0;
    char border[L];
    mark_borders(border, L, T, O, 1);
    for (size_t i = 0; i < n; i++)
        mref = fmax(mref, fabs(um[i]));
    stats(tm, um, n, &mx, &mean);
    fprintf(stderr, "tiled encode %dx%d image, tile %d overlap %d: mean: max|diff| %.4f "
            "(max|ref| %.2f) mean %.5f\n", P, P, T * 8, O * 8, mx, mref, mean);
    CHECK(mean <= TILED_ENC_MEAN_MEAN * mref, "tiled encode mean: max %g mean %g", mx, mean);
    double ratio = seam_ratio(tm, um, 4, L, border);
    stats(tl, ul, n, &mx, &mean);
    ratio = fmax(ratio, seam_ratio(tl, ul, 4, L, border));
    fprintf(stderr, "tiled encode logvar: max|diff| %.4f mean %.5f; seam ratio %.2f\n", mx, mean,
            ratio);
    CHECK(mx <= TILED_ENC_LOGVAR_MAX && mean <= TILED_ENC_LOGVAR_MEAN,
          "tiled encode logvar: max %g mean %g", mx, mean);
    CHECK(ratio <= SEAM_RATIO_MAX, "tiled encode seam ratio %g", ratio);
    free(small), free(img), free(um), free(ul), free(tm), free(tl);
    sd_st_close(c);
}

/* ---- errors and allocation failures ------------------------------------------------------ */

static void test_errors(const sd_model *m)
{
    sd_error err = {0};
    float z[4 * 8 * 8] = {0}, img[3 * 64 * 64] = {0}, mean[4 * 8 * 8], lv[4 * 8 * 8];
    sd_vae_opts o = sd_vae_opts_default();
    CHECK(sd_vae_encode(ctx, m, img, 60, 64, NULL, mean, lv, &err) == SD_ERR_INVALID_ARG &&
              strstr(err.msg, "multiple of 8"),
          "size not a multiple of 8: %s", err.msg);
    CHECK(sd_vae_decode(ctx, m, z, 0, 8, NULL, img, &err) == SD_ERR_INVALID_ARG, "empty latent");
    o.tile = 5;
    CHECK(sd_vae_decode(ctx, m, z, 8, 8, &o, img, &err) == SD_ERR_INVALID_ARG &&
              strstr(err.msg, "tile"),
          "tile 5: %s", err.msg);
    o.tile = 8, o.overlap = 8;
    CHECK(sd_vae_decode(ctx, m, z, 8, 8, &o, img, &err) == SD_ERR_INVALID_ARG &&
              strstr(err.msg, "overlap"),
          "overlap = tile: %s", err.msg);
    CHECK(sd_vae_decode(ctx, m, NULL, 8, 8, NULL, img, &err) == SD_ERR_INVALID_ARG, "NULL z");
    CHECK(sd_vae_encode(ctx, m, img, 64, 64, NULL, mean, NULL, &err) == SD_ERR_INVALID_ARG,
          "NULL logvar");

    sd_model *t = t_load_model(ctx, t_data("taesd/taesd_decoder.safetensors"));
    if (t) {
        sd_vae_info info;
        CHECK(sd_vae_get_info(t, &info, &err) == SD_ERR_FORMAT && strstr(err.msg, "no VAE"),
              "TAESD model has no VAE: %s", err.msg);
        CHECK(sd_vae_decode(ctx, t, z, 8, 8, NULL, img, &err) == SD_ERR_FORMAT, "decode TAESD");
    }
    sd_model_free(t);
}

typedef sd_status (*vae_call)(const sd_model *m, void *arg);

/* Fail allocation n for every n up to 25 and for about `spread` more spread over the rest
 * (a full sweep of a tiled run's thousands of allocations would take minutes): each must
 * give SD_ERR_NOMEM and leak nothing. */
static void nomem_loop(const char *what, const sd_model *m, vae_call call, void *arg, int spread)
{
    /* a warm-up run first: weights packed on first use stay with the model */
    CHECK(call(m, arg) == SD_OK, "%s: warm-up run", what);
    size_t live = sd_alloc_live_bytes();
    sd_alloc_fail_after(0, false);
    CHECK(call(m, arg) == SD_OK, "%s: without failures", what);
    long total = sd_alloc_fail_after(0, false);
    long step = total > 25 ? SD_MAX(1, (total - 25) / spread) : 1;
    int fails = 0, runs = 0;
    for (long n = 1; n <= total; n = n < 25 ? n + 1 : n + step) {
        sd_alloc_fail_after(n, false);
        sd_status st = call(m, arg);
        sd_alloc_fail_after(0, false);
        runs++;
        if (st != SD_ERR_NOMEM || sd_alloc_live_bytes() != live) {
            if (++fails < 4)
                fprintf(stderr, "%s: allocation %ld of %ld: %s, %zu bytes leaked\n", what, n,
                        total, sd_status_str(st), sd_alloc_live_bytes() - live);
        }
    }
    CHECK(fails == 0 && total > 1, "%s: %d of %d allocation failures mishandled", what, fails,
          runs);
}

typedef struct call_arg {
    float *in, *out, *out2;
    int h, w;
    sd_vae_opts o;
} call_arg;

static sd_status call_decode(const sd_model *m, void *arg)
{
    call_arg *a = arg;
    return sd_vae_latents_to_image(ctx, m, a->in, a->h, a->w, &a->o, a->out, NULL);
}

static sd_status call_encode(const sd_model *m, void *arg)
{
    call_arg *a = arg;
    return sd_vae_encode(ctx, m, a->in, a->h * 8, a->w * 8, &a->o, a->out, a->out2, NULL);
}

static void test_nomem(const sd_model *m)
{
    call_arg a = {.h = 8, .w = 8, .o = sd_vae_opts_default()};
    a.in = calloc(3 * 96 * 96, sizeof(float));
    a.out = calloc(3 * 96 * 96, sizeof(float)), a.out2 = calloc(4 * 12 * 12, sizeof(float));
    for (int i = 0; i < 3 * 96 * 96; i++)
        a.in[i] = sinf((float)i * 0.01f);
    nomem_loop("decode", m, call_decode, &a, 25);
    nomem_loop("encode", m, call_encode, &a, 25);
    a.h = a.w = 12, a.o.tile = 8, a.o.overlap = 2;
    nomem_loop("tiled decode", m, call_decode, &a, 20);
    nomem_loop("tiled encode", m, call_encode, &a, 20);
    global_mid_max = 0;   /* the path with the mid block inside each tile */
    nomem_loop("tiled decode, tiled mid", m, call_decode, &a, 10);
    nomem_loop("tiled encode, tiled mid", m, call_encode, &a, 10);
    global_mid_max = SD_VAE_GLOBAL_MID_MAX;
    free(a.in), free(a.out), free(a.out2);
}

/* ---- PNG and CLI ------------------------------------------------------------------------- */

static void test_png(void)
{
    enum { W = 37, H = 23 };
    float px[W * H * 4], *back = NULL;
    for (int i = 0; i < W * H * 4; i++)
        px[i] = (float)((i * 7919) % 1000) / 999.0f;
    char msg[512];
    int w = 0, h = 0;
    /* 8-bit RGB: alpha comes back as 1, values within half a code */
    CHECK(sd_cli_png_write(t_tmp("rgb8.png"), px, W, H, 3, 8, msg, sizeof msg) == 0, "%s", msg);
    CHECK(sd_cli_png_read(t_tmp("rgb8.png"), &back, &w, &h, msg, sizeof msg) == 0, "%s", msg);
    if (back && w == W && h == H) {
        double worst = 0, alpha = 1;
        for (int i = 0; i < W * H; i++) {
            for (int c = 0; c < 3; c++)
                worst = fmax(worst, fabs(back[4 * i + c] - px[3 * i + c]));
            alpha = fmin(alpha, back[4 * i + 3]);
        }
        CHECK(worst <= 0.5 / 255 + 1e-6 && alpha == 1, "8-bit round trip: %g, alpha %g", worst,
              alpha);
    }
    free(back), back = NULL;
    /* 16-bit RGBA */
    CHECK(sd_cli_png_write(t_tmp("rgba16.png"), px, W, H, 4, 16, msg, sizeof msg) == 0, "%s", msg);
    CHECK(sd_cli_png_read(t_tmp("rgba16.png"), &back, &w, &h, msg, sizeof msg) == 0, "%s", msg);
    if (back && w == W && h == H) {
        double worst = 0;
        for (int i = 0; i < W * H * 4; i++)
            worst = fmax(worst, fabs(back[i] - px[i]));
        CHECK(worst <= 0.5 / 65535 + 1e-6, "16-bit round trip: %g", worst);
    }
    free(back), back = NULL;
    /* 8-bit gray written with libpng directly: replicated to RGB */
    png_image gi;
    memset(&gi, 0, sizeof gi);
    gi.version = PNG_IMAGE_VERSION, gi.width = 4, gi.height = 2, gi.format = PNG_FORMAT_GRAY;
    unsigned char gray[8] = {0, 51, 102, 153, 204, 255, 1, 128};
    CHECK(png_image_write_to_file(&gi, t_tmp("gray.png"), 0, gray, 0, NULL), "gray PNG");
    CHECK(sd_cli_png_read(t_tmp("gray.png"), &back, &w, &h, msg, sizeof msg) == 0, "%s", msg);
    if (back && w == 4 && h == 2)
        CHECK(back[4 * 3] == 153 / 255.0f && back[4 * 3 + 1] == back[4 * 3] &&
                  back[4 * 3 + 2] == back[4 * 3] && back[4 * 3 + 3] == 1.0f,
              "gray pixel %g %g %g %g", back[12], back[13], back[14], back[15]);
    free(back), back = NULL;
    /* errors */
    FILE *f = fopen(t_tmp("bad.png"), "wb");
    if (f) {
        fputs("not a png at all", f);
        fclose(f);
    }
    CHECK(sd_cli_png_read(t_tmp("bad.png"), &back, &w, &h, msg, sizeof msg) == -1 && !back &&
              strstr(msg, "not a PNG"),
          "bad file: %s", msg);
    CHECK(sd_cli_png_read(t_tmp("missing.png"), &back, &w, &h, msg, sizeof msg) == -1 &&
              strstr(msg, "missing.png"),
          "missing file: %s", msg);
    /* a truncated PNG */
    t_copy_file(t_tmp("rgba16.png"), t_tmp("trunc.png"));
    CHECK(truncate(t_tmp("trunc.png"), 100) == 0, "truncate");
    CHECK(sd_cli_png_read(t_tmp("trunc.png"), &back, &w, &h, msg, sizeof msg) == -1 && !back,
          "truncated: %s", msg);
    CHECK(sd_cli_png_write(t_tmp("x.png"), px, W, H, 2, 8, msg, sizeof msg) == -1, "2 channels");
}

/* Run `sd args`; its exit status.  What it printed goes to the test log. */
static int run(const char *args)
{
    char out[4096], errs[4096];
    int rc = t_run_sd(args, out, sizeof out, errs, sizeof errs);
    fprintf(stderr, "sd %s -> %d\n%s%s", args, rc, out, errs);
    return rc;
}

static void test_cli(void)
{
    char args[3000];
    const char *model = t_data("tiny-sd15/model-f16.safetensors");
    snprintf(args, sizeof args, "vae --case %s -m %s -t 2", t_data("tiny-sd15/vae.safetensors"),
             model);
    CHECK(run(args) == 0, "sd %s", args);
    snprintf(args, sizeof args, "vae --taesd --case %s -m %s",
             t_data("taesd/taesd_cases.safetensors"), t_data("taesd/taesd_decoder.safetensors"));
    CHECK(run(args) == 0, "sd %s", args);
    snprintf(args, sizeof args, "vae --case %s -m %s", t_data("taesd/taesd_cases.safetensors"),
             t_data("taesd/taesd_decoder.safetensors"));
    CHECK(run(args) == 1, "a TAESD case without --taesd is refused");

    /* PNG (the case's 8-bit image) -> latents; must equal the case latent */
    sd_error err = {0};
    sd_st_file *c = NULL;
    CHECK(sd_st_open(t_data("tiny-sd15/vae.safetensors"), &c, &err) == SD_OK, "%s", err.msg);
    if (!c)
        return;
    const sd_tensor *u8 = sd_st_tensor(c, "image_u8");
    float px[128 * 128 * 3];
    for (int i = 0; i < 128 * 128 * 3; i++)
        px[i] = ((const uint8_t *)u8->data)[i] / 255.0f;
    char msg[512];
    CHECK(sd_cli_png_write(t_tmp("in.png"), px, 128, 128, 3, 8, msg, sizeof msg) == 0, "%s", msg);
    snprintf(args, sizeof args, "vae-encode -m %s -i %s -o %s", model, t_tmp("in.png"),
             t_tmp("lat.safetensors"));
    CHECK(run(args) == 0, "sd %s", args);
    sd_st_file *l = NULL;
    CHECK(sd_st_open(t_tmp("lat.safetensors"), &l, &err) == SD_OK, "%s", err.msg);
    if (l) {
        float *got = t_case_f32(l, "latents", NULL), *want = t_case_f32(c, "latent", NULL);
        t_close("sd vae-encode PNG vs latent", got, want, 1024, GOLD_ATOL, GOLD_RTOL);
        free(got), free(want);
        sd_st_close(l);
    }
    /* latents -> safetensors image and PNG; both equal the case's decoded_unit */
    snprintf(args, sizeof args, "vae-decode -m %s -i %s -o %s", model, t_tmp("lat.safetensors"),
             t_tmp("out.safetensors"));
    CHECK(run(args) == 0, "sd %s", args);
    snprintf(args, sizeof args, "vae-decode -m %s -i %s -o %s --tile 8", model,
             t_tmp("lat.safetensors"), t_tmp("out.png"));
    CHECK(run(args) == 0, "sd %s", args);
    sd_st_file *o = NULL;
    float *want = t_case_f32(c, "decoded_unit", NULL);
    CHECK(sd_st_open(t_tmp("out.safetensors"), &o, &err) == SD_OK, "%s", err.msg);
    if (o) {
        float *got = t_case_f32(o, "image", NULL);
        t_close("sd vae-decode image vs decoded_unit", got, want, 3 * 128 * 128, IMAGE_ATOL, 0);
        free(got);
        sd_st_close(o);
    }
    float *back = NULL;
    int w, h;
    CHECK(sd_cli_png_read(t_tmp("out.png"), &back, &w, &h, msg, sizeof msg) == 0, "%s", msg);
    if (back && w == 128 && h == 128) {
        /* tiled with tiny tiles (8 of 16, measured 0.034) and quantised: loosely equal */
        double mean = 0;
        for (int i = 0; i < 128 * 128; i++)
            for (int k = 0; k < 3; k++)
                mean += fabs(back[4 * i + k] - want[k * 128 * 128 + i]);
        mean /= 3 * 128 * 128;
        CHECK(mean < 0.06, "PNG from tiled decode: mean |diff| %g", mean);
    }
    free(back), free(want);
    /* --sample --seed 105 draws the img2img case's VAE noise (its generator's first draw) */
    sd_st_file *p = NULL;
    CHECK(sd_st_open(t_data("tiny-sd15/pipeline_img2img.safetensors"), &p, &err) == SD_OK,
          "%s", err.msg);
    if (p) {
        const char *names[] = {"image"};
        CHECK(sd_st_write(t_tmp("init.safetensors"), names, sd_st_tensor(p, "init_image"), 1,
                          NULL, &err) == SD_OK,
              "%s", err.msg);
        snprintf(args, sizeof args, "vae-encode -m %s -i %s -o %s --sample --seed 105", model,
                 t_tmp("init.safetensors"), t_tmp("sample.safetensors"));
        CHECK(run(args) == 0, "sd %s", args);
        float *mean = t_case_f32(p, "vae_encode0.mean", NULL);
        float *lv = t_case_f32(p, "vae_encode0.logvar", NULL);
        float *noise = t_case_f32(p, "randn0", NULL), want_s[1024];
        for (int i = 0; i < 1024; i++)
            want_s[i] = 0.18215f * (mean[i] + expf(0.5f * lv[i]) * noise[i]);
        CHECK(sd_st_open(t_tmp("sample.safetensors"), &l, &err) == SD_OK, "%s", err.msg);
        if (l) {
            float *got = t_case_f32(l, "latents", NULL);
            t_close("sd vae-encode --sample --seed 105 vs img2img", got, want_s, 1024, GOLD_ATOL,
                    GOLD_RTOL);
            free(got);
            sd_st_close(l);
        }
        free(mean), free(lv), free(noise);
        sd_st_close(p);
    }
    /* TAESD: the case latents -> PNG equals the case's clamped decode within quantisation */
    snprintf(args, sizeof args, "vae-decode --taesd -m %s -i %s -o %s --16bit",
             t_data("taesd/taesd_decoder.safetensors"), t_data("taesd/taesd_cases.safetensors"),
             t_tmp("taesd.png"));
    CHECK(run(args) == 0, "sd %s", args);
    sd_st_file *tc = NULL;
    CHECK(sd_st_open(t_data("taesd/taesd_cases.safetensors"), &tc, &err) == SD_OK, "%s",
          err.msg);
    back = NULL;
    CHECK(sd_cli_png_read(t_tmp("taesd.png"), &back, &w, &h, msg, sizeof msg) == 0, "%s", msg);
    if (tc && back && w == 128 && h == 128) {
        float *ref = t_case_f32(tc, "decoded_clamped", NULL);
        double worst = 0;
        for (int i = 0; i < 128 * 128; i++)
            for (int k = 0; k < 3; k++)
                worst = fmax(worst, fabs(back[4 * i + k] - ref[k * 128 * 128 + i]));
        CHECK(worst <= 0.5 / 65535 + 1e-4, "TAESD PNG vs decoded_clamped: %g", worst);
        free(ref);
    }
    free(back);
    sd_st_close(tc);
    /* errors: a size that is not a multiple of 8, a missing input */
    float odd[12 * 10 * 3] = {0};
    CHECK(sd_cli_png_write(t_tmp("odd.png"), odd, 12, 10, 3, 8, msg, sizeof msg) == 0, "%s", msg);
    snprintf(args, sizeof args, "vae-encode -m %s -i %s -o %s", model, t_tmp("odd.png"),
             t_tmp("x.safetensors"));
    CHECK(run(args) == 1, "odd size refused");
    snprintf(args, sizeof args, "vae-decode -m %s -i %s -o %s", model, t_tmp("nope.safetensors"),
             t_tmp("x.png"));
    CHECK(run(args) == 1, "missing input refused");
    CHECK(run("vae-decode --tile 3 -m x -i y -o z.png") == 1, "bad --tile refused");
    sd_st_close(c);
}

int main(void)
{
    t_tmp_fresh("t_vae");
    if (!(ctx = t_ctx_new(false)))
        return 1;
    test_golden();
    sd_model *m = t_load_model(ctx, t_data("tiny-sd15/model-f16.safetensors"));
    if (m) {
        test_pipeline(m);
        test_tiled_decode(m);
        test_tiled_encode(m);
        test_errors(m);
        test_nomem(m);
    }
    sd_model_free(m);
    test_png();
    test_cli();
    sd_ctx_free(ctx);
    return t_summary("t_vae");
}
