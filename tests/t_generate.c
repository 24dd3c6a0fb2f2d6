/* tests/t_generate.c - the editor behaviour of the five filters through sd_generate with the
 * tiny models: sizes and alpha, seeds that reproduce, inpaint and masked img2img leaving
 * every pixel outside the blurred mask bit-identical, outpaint keeping the original and
 * filling the whole border, tiled denoise without seams, the noise estimate, cancellation
 * and the errors a user meets (empty selection, wrong model kind). */
#include "harness.h"
#include "model_util.h"

#include "internal/imgproc.h"
#include "sd.h"

static sd_ctx *ctx;
static sd_model *sd15, *sd15_inpaint, *taesd;

/* A synthetic photo-like RGBA picture: gradients, a disc and fine texture. */
static sd_image make_image(int w, int h, int channels)
{
    sd_image im = {w, h, channels, (size_t)w * channels, malloc(sizeof(float) * w * h * channels)};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float *p = im.data + (size_t)y * im.stride + (size_t)x * channels;
            float d = hypotf(x - w * 0.4f, y - h * 0.5f) < h * 0.3f ? 0.3f : 0.0f;
            p[0] = 0.2f + 0.6f * x / w + d * 0.5f;
            p[1] = 0.3f + 0.4f * y / h + 0.05f * sinf(x * 0.7f) * cosf(y * 0.5f);
            p[2] = 0.6f - d;
            if (channels == 4)
                p[3] = x < w / 8 ? 0.5f : 1.0f;
        }
    return im;
}

/* A feathered ellipse: 1 inside, a soft edge, 0 outside. */
static sd_image make_mask(int w, int h, float cx, float cy, float rx, float ry, float feather)
{
    sd_image m = {w, h, 1, (size_t)w, calloc((size_t)w * h, sizeof(float))};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float d = hypotf((x - cx) / rx, (y - cy) / ry);
            float v = (1.0f - d) * rx / feather + 0.5f;
            m.data[(size_t)y * w + x] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
    return m;
}

static sd_gen_params base(sd_task task)
{
    sd_gen_params p = sd_gen_params_default(task);
    p.prompt = "a red apple on a wooden table";
    p.negative_prompt = "blurry";
    p.steps = 6;
    p.seed = 7;
    p.resolution = 128;
    return p;
}

static float px(const sd_image *im, int x, int y, int c)
{
    return im->data[(size_t)y * im->stride + (size_t)x * im->channels + c];
}

/* ---- txt2img ------------------------------------------------------------------------------ */

static void test_txt2img(void)
{
    sd_error err = {0};
    sd_gen_params p = base(SD_TASK_TXT2IMG);
    p.width = 200;
    p.height = 120;
    sd_gen_result a = {0}, b = {0}, c = {0};
    CHECK(sd_generate(ctx, sd15, &p, &a, &err) == SD_OK, "%s", err.msg);
    CHECK(a.image.width == 200 && a.image.height == 120 && a.image.channels == 4,
          "txt2img size %dx%d", a.image.width, a.image.height);
    CHECK(a.seed == 7, "seed reported");
    CHECK(sd_generate(ctx, sd15, &p, &b, &err) == SD_OK, "%s", err.msg);
    size_t n = (size_t)200 * 120 * 4;
    CHECK(a.image.data && b.image.data && !memcmp(a.image.data, b.image.data, n * sizeof(float)),
          "same seed, same pixels");
    int opaque = 1;
    for (size_t k = 3; a.image.data && k < n; k += 4)
        opaque &= a.image.data[k] == 1.0f;
    CHECK(opaque, "txt2img is opaque");
    p.seed = 8;
    CHECK(sd_generate(ctx, sd15, &p, &c, &err) == SD_OK, "%s", err.msg);
    CHECK(c.image.data && memcmp(a.image.data, c.image.data, n * sizeof(float)),
          "another seed, other pixels");
    p.seed = -1;
    sd_gen_result_free(&c);
    CHECK(sd_generate(ctx, sd15, &p, &c, &err) == SD_OK && c.seed >= 0 && c.seed <= 0xFFFFFFFFll,
          "random seed reported: %lld", (long long)c.seed);
    sd_gen_result_free(&a);
    sd_gen_result_free(&b);
    sd_gen_result_free(&c);
}

/* ---- masks: pixels outside stay bit-identical ----------------------------------------------- */

/* Every pixel farther than `margin` from the mask's non-zero area must equal the input; some
 * inside must differ.  margin covers the mask blur (4 px sigma -> radius 10). */
static void check_outside_unchanged(const char *what, const sd_image *in, const sd_image *mask,
                                    const sd_image *out, int margin)
{
    CHECK(out->width == in->width && out->height == in->height, "%s: size", what);
    long changed_outside = 0, changed_inside = 0, alpha_changed = 0;
    for (int y = 0; y < in->height; y++)
        for (int x = 0; x < in->width; x++) {
            bool near = false;
            for (int dy = -margin; dy <= margin && !near; dy += 1)
                for (int dx = -margin; dx <= margin && !near; dx += 1) {
                    int xx = x + dx, yy = y + dy;
                    near = xx >= 0 && yy >= 0 && xx < in->width && yy < in->height &&
                           mask->data[(size_t)yy * mask->stride + xx] > 0;
                }
            bool same = true;
            for (int c = 0; c < 3; c++)
                same &= px(in, x, y, c) == px(out, x, y, c);
            if (in->channels == 4)
                alpha_changed += px(in, x, y, 3) != px(out, x, y, 3);
            if (!near)
                changed_outside += !same;
            else if (mask->data[(size_t)y * mask->stride + x] >= 1.0f)
                changed_inside += !same;
        }
    CHECK(changed_outside == 0, "%s: %ld pixels outside the mask changed", what, changed_outside);
    CHECK(changed_inside > 100, "%s: only %ld pixels inside changed", what, changed_inside);
    CHECK(alpha_changed == 0, "%s: alpha changed at %ld pixels", what, alpha_changed);
}

static void test_inpaint(void)
{
    sd_image img = make_image(160, 128, 4);
    sd_image mask = make_mask(160, 128, 90, 60, 30, 22, 6);
    static const sd_fill fills[] = {SD_FILL_ORIGINAL, SD_FILL_FILL, SD_FILL_LATENT_NOISE,
                                    SD_FILL_LATENT_NOTHING};
    const sd_model *models[] = {sd15, sd15_inpaint};
    for (int mi = 0; mi < 2; mi++)
        for (int f = 0; f < 4; f++) {
            sd_error err = {0};
            sd_gen_params p = base(SD_TASK_INPAINT);
            p.init = &img;
            p.mask = &mask;
            p.fill = fills[f];
            sd_gen_result r = {0};
            char what[96];
            snprintf(what, sizeof what, "inpaint %s fill %s", mi ? "9ch" : "4ch",
                     sd_fill_name(fills[f]));
            CHECK(sd_generate(ctx, models[mi], &p, &r, &err) == SD_OK, "%s: %s", what, err.msg);
            if (r.image.data)
                check_outside_unchanged(what, &img, &mask, &r.image, 12);
            sd_gen_result_free(&r);
        }
    /* masked img2img */
    sd_error err = {0};
    sd_gen_params p = base(SD_TASK_IMG2IMG);
    p.init = &img;
    p.mask = &mask;
    p.strength = 0.8f;
    sd_gen_result r = {0};
    CHECK(sd_generate(ctx, sd15, &p, &r, &err) == SD_OK, "%s", err.msg);
    if (r.image.data)
        check_outside_unchanged("masked img2img", &img, &mask, &r.image, 12);
    sd_gen_result_free(&r);
    /* whole img2img keeps size and alpha */
    p.mask = NULL;
    CHECK(sd_generate(ctx, sd15, &p, &r, &err) == SD_OK && r.image.width == 160 &&
              r.image.height == 128 && px(&r.image, 0, 0, 3) == 0.5f,
          "whole img2img: %s", err.msg);
    sd_gen_result_free(&r);

    /* an empty selection is refused with a message, the image untouched */
    sd_image empty = make_mask(160, 128, -100, -100, 1, 1, 1);
    p = base(SD_TASK_INPAINT);
    p.init = &img;
    p.mask = &empty;
    CHECK(sd_generate(ctx, sd15, &p, &r, &err) == SD_ERR_INVALID_ARG &&
              strstr(err.msg, "selection is empty") && !r.image.data,
          "empty mask: %s", err.msg);
    free(empty.data);
    free(img.data);
    free(mask.data);
}

/* ---- outpaint ------------------------------------------------------------------------------------ */

static void test_outpaint(void)
{
    sd_image img = make_image(96, 80, 3);
    sd_error err = {0};
    const sd_model *models[] = {sd15, sd15_inpaint};
    for (int mi = 0; mi < 2; mi++) {
        sd_gen_params p = base(SD_TASK_OUTPAINT);
        p.init = &img;
        p.extend_left = 40;
        p.extend_top = 16;
        p.extend_right = 48;
        p.extend_bottom = 0;
        sd_gen_result r = {0};
        CHECK(sd_generate(ctx, models[mi], &p, &r, &err) == SD_OK, "outpaint: %s", err.msg);
        if (!r.image.data)
            continue;
        CHECK(r.image.width == 96 + 88 && r.image.height == 96, "outpaint size %dx%d",
              r.image.width, r.image.height);
        /* original pixels away from the 32-px overlap band are kept exactly */
        long changed = 0;
        for (int y = 0; y < 80 - 32; y++)
            for (int x = 32; x < 96 - 32; x++)
                for (int c = 0; c < 3; c++)
                    changed += px(&r.image, x + 40, y + 16 + 32 - 32, c) != px(&img, x, y, c) &&
                               y >= 32;
        CHECK(changed == 0, "outpaint changed %ld original pixels", changed);
        /* the new border is filled: finite values, opaque, not flat */
        double sum = 0, sum2 = 0;
        long n = 0, bad = 0;
        for (int y = 0; y < r.image.height; y++)
            for (int x = 0; x < r.image.width; x++) {
                bool fresh = x < 40 || x >= 40 + 96 || y < 16;
                if (!fresh)
                    continue;
                for (int c = 0; c < 3; c++) {
                    float v = px(&r.image, x, y, c);
                    bad += !(v >= 0 && v <= 1);
                    sum += v, sum2 += v * v, n++;
                }
                bad += px(&r.image, x, y, 3) != 1.0f;
            }
        double var = sum2 / n - (sum / n) * (sum / n);
        CHECK(bad == 0 && var > 1e-4, "outpaint border: %ld bad samples, variance %g", bad, var);
        sd_gen_result_free(&r);
    }
    free(img.data);
}

/* ---- denoise ---------------------------------------------------------------------------------------- */

static uint64_t rng_state = 88172645463325252ull;
static double gauss(void)
{
    double u[2];
    for (int k = 0; k < 2; k++) {
        rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
        u[k] = ((rng_state >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

static void test_denoise(void)
{
    sd_error err = {0};
    /* the estimate through the public API, on synthetic noise of known sigma */
    for (int s = 0; s < 3; s++) {
        const float sigma = (float[]){5, 10, 25}[s];
        sd_image img = make_image(256, 192, 3);
        for (size_t k = 0; k < (size_t)256 * 192 * 3; k++)
            img.data[k] += (float)(gauss() * sigma / 255.0);
        float est = -1;
        CHECK(sd_estimate_noise(&img, &est, &err) == SD_OK, "%s", err.msg);
        CHECK(fabsf(est - sigma) <= 0.15f * sigma, "noise estimate %g for sigma %g", est, sigma);
        free(img.data);
    }
    /* tiled (tile 128 over 320x200: several tiles) against untiled (one 320x200 tile) */
    sd_image img = make_image(320, 200, 3);
    for (size_t k = 0; k < (size_t)320 * 200 * 3; k++)
        img.data[k] += (float)(gauss() * 10 / 255.0);
    sd_gen_params p = base(SD_TASK_DENOISE);
    p.init = &img;
    p.steps = 10;
    p.tile = 128;
    sd_gen_result tiled = {0}, whole = {0};
    CHECK(sd_generate(ctx, sd15, &p, &tiled, &err) == SD_OK, "denoise: %s", err.msg);
    p.tile = 320;
    CHECK(sd_generate(ctx, sd15, &p, &whole, &err) == SD_OK, "denoise: %s", err.msg);
    if (tiled.image.data && whole.image.data) {
        CHECK(tiled.noise_sigma > 7 && tiled.noise_sigma < 13, "denoise sigma %g",
              tiled.noise_sigma);
        CHECK(tiled.strength > 0.15f && tiled.strength < 0.5f, "denoise strength %g",
              tiled.strength);
        CHECK(tiled.image.width == 320 && tiled.image.height == 200, "denoise keeps the size");
        /* seams: the step between neighbouring columns across the tile borders of the tiled
         * run is no larger than the same step in the untiled run */
        double seam_t = 0, seam_w = 0;
        int cols = 0;
        for (int x = 8; x < 320; x += 8) {
            for (int y = 0; y < 200; y++)
                for (int c = 0; c < 3; c++) {
                    seam_t += fabsf(px(&tiled.image, x, y, c) - px(&tiled.image, x - 1, y, c));
                    seam_w += fabsf(px(&whole.image, x, y, c) - px(&whole.image, x - 1, y, c));
                }
            cols++;
        }
        CHECK(seam_t <= 1.25 * seam_w, "tiled column steps %g vs untiled %g", seam_t / cols,
              seam_w / cols);
        /* and the difference to the untiled run is not larger along the tile edges than
         * elsewhere (the two runs draw different noise, so they differ everywhere) */
        int pos[16];
        int nt = sd_tile_positions(320, 128, 32, pos);
        double near_sum = 0, far_sum = 0;
        long near_n = 0, far_n = 0;
        for (int x = 0; x < 320; x++) {
            bool near = false;
            for (int k = 0; k < nt; k++)
                near |= (pos[k] > 0 && abs(x - pos[k]) <= 4) ||
                        (pos[k] + 128 < 320 && abs(x - (pos[k] + 128)) <= 4);
            for (int y = 0; y < 200; y++)
                for (int c = 0; c < 3; c++) {
                    double d = fabsf(px(&tiled.image, x, y, c) - px(&whole.image, x, y, c));
                    if (near)
                        near_sum += d, near_n++;
                    else
                        far_sum += d, far_n++;
                }
        }
        CHECK(nt >= 3 && near_n && far_n && near_sum / near_n <= 1.3 * far_sum / far_n,
              "difference to untiled at tile edges %g vs elsewhere %g (%d tiles)",
              near_sum / near_n, far_sum / far_n, nt);
    }
    sd_gen_result_free(&tiled);
    sd_gen_result_free(&whole);
    free(img.data);
}

/* ---- previews ---------------------------------------------------------------------------------- */

typedef struct preview_log {
    int calls, bad;
    int w, h;
} preview_log;

static void on_preview(const sd_image *img, const sd_progress *pr, void *user)
{
    preview_log *l = user;
    l->calls++;
    l->w = img->width, l->h = img->height;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++)
            for (int c = 0; c < 3; c++) {
                float v = px(img, x, y, c);
                l->bad += !(v >= 0 && v <= 1);
            }
    l->bad += pr->phase != SD_PHASE_SAMPLE || pr->step < 1 || pr->step > pr->n_steps;
}

/* One preview per step, at the generated size, in range: with TAESD and with the
 * latent-to-RGB approximation. */
static void test_previews(void)
{
    for (int with_taesd = 0; with_taesd < 2; with_taesd++) {
        sd_error err = {0};
        sd_gen_params p = base(SD_TASK_TXT2IMG);
        p.width = p.height = 128;
        preview_log log = {0};
        p.preview = on_preview;
        p.preview_user = &log;
        p.taesd = with_taesd ? taesd : NULL;
        sd_gen_result r = {0};
        CHECK(sd_generate(ctx, sd15, &p, &r, &err) == SD_OK, "%s", err.msg);
        CHECK(log.calls == p.steps && log.bad == 0 && log.w == 128 && log.h == 128,
              "previews (%s): %d calls, %d bad, %dx%d", with_taesd ? "taesd" : "approx",
              log.calls, log.bad, log.w, log.h);
        sd_gen_result_free(&r);
    }
}

/* ---- cancel and errors ------------------------------------------------------------------------------ */

static bool cancel_at_2(const sd_progress *pr, void *user)
{
    int *calls = user;
    ++*calls;
    return pr->step < 2;
}

static void test_cancel_and_errors(void)
{
    sd_error err = {0};
    sd_gen_params p = base(SD_TASK_TXT2IMG);
    int calls = 0;
    p.progress = cancel_at_2;
    p.progress_user = &calls;
    sd_gen_result r = {0};
    CHECK(sd_generate(ctx, sd15, &p, &r, &err) == SD_CANCELLED && !r.image.data && calls > 2,
          "cancel: %s", err.msg);
    p = base(SD_TASK_TXT2IMG);
    CHECK(sd_generate(ctx, sd15_inpaint, &p, &r, &err) == SD_ERR_INVALID_ARG &&
              strstr(err.msg, "inpainting model"),
          "inpainting model for txt2img: %s", err.msg);
    CHECK(sd_generate(ctx, taesd, &p, &r, &err) == SD_ERR_INVALID_ARG &&
              strstr(err.msg, "not a generation model"),
          "TAESD as a generator: %s", err.msg);
    p.steps = 5000;
    CHECK(sd_generate(ctx, sd15, &p, &r, &err) == SD_ERR_INVALID_ARG, "steps range");
    p = base(SD_TASK_INPAINT);
    CHECK(sd_generate(ctx, sd15, &p, &r, &err) == SD_ERR_INVALID_ARG, "inpaint without image");
    /* the memory guard: 20000 x 20000 at the model's own size, and a small explicit limit */
    p = base(SD_TASK_TXT2IMG);
    p.width = p.height = 20000;
    p.reference = true;
    CHECK(sd_generate(ctx, sd15, &p, &r, &err) == SD_ERR_TOO_LARGE && !r.image.data &&
              strstr(err.msg, "MB"),
          "20000x20000: %s", err.msg);
    p = base(SD_TASK_TXT2IMG);
    p.width = p.height = 2048;
    p.memory_limit_mb = 16;
    CHECK(sd_generate(ctx, sd15, &p, &r, &err) == SD_ERR_TOO_LARGE && strstr(err.msg, "limit"),
          "explicit limit: %s", err.msg);
}

int main(void)
{
    sd_error err = {0};
    if (!(ctx = t_ctx_new(false)) ||
        sd_model_load(ctx, t_data("tiny-sd15/model-f16.safetensors"), &sd15, &err) ||
        sd_model_load(ctx, t_data("tiny-sd15-inpaint/model-f16.safetensors"), &sd15_inpaint,
                      &err) ||
        sd_model_load(ctx, t_data("taesd/taesd_decoder.safetensors"), &taesd, &err)) {
        CHECK(0, "setup: %s", err.msg);
        return t_summary("t_generate");
    }
    test_txt2img();
    test_inpaint();
    test_outpaint();
    test_denoise();
    test_previews();
    test_cancel_and_errors();
    sd_model_free(sd15);
    sd_model_free(sd15_inpaint);
    sd_model_free(taesd);
    sd_ctx_free(ctx);
    return t_summary("t_generate");
}
