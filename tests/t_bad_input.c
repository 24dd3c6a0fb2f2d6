/* tests/t_bad_input.c - the bad input a user can hand the engine and the `sd` tool that no
 * other test covers, each with what must happen (docs/bad-input.md is the table):
 * 1x1 pictures and extreme aspect ratios in every filter, whole and empty and out-of-range
 * masks, NaN and infinite samples, malformed prompts, out-of-range filter parameters, models
 * missing their text encoder or VAE, and malformed PNG files on the command line (a tiny
 * file declaring a 2 GB text chunk, a cut file, a file that is no PNG, a missing file, a
 * mask of the wrong size).  A refused call must leave the caller's buffers untouched, the
 * result zero and nothing allocated; the tool must exit non-zero with one line naming the
 * file and write no output. */
#include "harness.h"

#include "internal/common.h"
#include "sd.h"

#include <sys/resource.h>
#include <sys/stat.h>

static sd_ctx *ctx;
static sd_model *sd15, *sd15_inpaint;

static sd_image make_image(int w, int h, int c, float v)
{
    sd_image im = {w, h, c, (size_t)w * c, malloc(sizeof(float) * (size_t)w * h * c)};
    for (size_t i = 0; i < (size_t)w * h * c; i++)
        im.data[i] = c == 4 && i % 4 == 3 ? 0.5f : v + 0.3f * (float)(i % 7) / 7.0f;
    return im;
}

static size_t image_bytes(const sd_image *im)
{
    return sizeof(float) * im->stride * (size_t)im->height;
}

static sd_gen_params base(sd_task task)
{
    sd_gen_params p = sd_gen_params_default(task);
    p.prompt = "an apple";
    p.steps = 2;
    p.cfg = 3.0f;
    p.seed = 1;
    p.resolution = 64;
    return p;
}

/* Run a request that must succeed: the result has the expected size and only finite
 * samples in [0, 1]. */
static void expect_ok(const char *what, const sd_model *m, const sd_gen_params *p, int w, int h,
                      sd_gen_result *keep)
{
    sd_error err = {0};
    sd_gen_result r = {0};
    sd_status st = sd_generate(ctx, m, p, &r, &err);
    CHECK(st == SD_OK && r.image.data, "%s: %s %s", what, sd_status_str(st), err.msg);
    if (st != SD_OK)
        return;
    CHECK(r.image.width == w && r.image.height == h && r.image.channels == 4,
          "%s: %dx%dx%d, want %dx%d", what, r.image.width, r.image.height, r.image.channels, w,
          h);
    long bad = 0;
    for (int y = 0; y < r.image.height; y++)
        for (int x = 0; x < r.image.width * 4; x++) {
            float v = r.image.data[(size_t)y * r.image.stride + x];
            bad += !(v >= 0.0f && v <= 1.0f);
        }
    CHECK(bad == 0, "%s: %ld samples outside [0, 1] or not finite", what, bad);
    if (keep)
        *keep = r;
    else
        sd_gen_result_free(&r);
}

/* Run a request that must be refused with `code` and a message containing `needle`, the
 * caller's image and mask unchanged, the result zero and nothing left allocated. */
static void expect_fail(const char *what, const sd_model *m, const sd_gen_params *p,
                        sd_status code, const char *needle)
{
    void *init_copy = NULL, *mask_copy = NULL;
    if (p->init) {
        init_copy = malloc(image_bytes(p->init));
        memcpy(init_copy, p->init->data, image_bytes(p->init));
    }
    if (p->mask) {
        mask_copy = malloc(image_bytes(p->mask));
        memcpy(mask_copy, p->mask->data, image_bytes(p->mask));
    }
    sd_error err = {0};
    sd_gen_result r;
    memset(&r, 0x77, sizeof r);
    const size_t live = sd_alloc_live_bytes();
    sd_status st = sd_generate(ctx, m, p, &r, &err);
    static const sd_gen_result zero;
    CHECK(st == code && err.code == code && strstr(err.msg, needle), "%s: %s '%s', want %s '%s'",
          what, sd_status_str(st), err.msg, sd_status_str(code), needle);
    CHECK(!memcmp(&r, &zero, sizeof r), "%s: result not zeroed", what);
    CHECK(sd_alloc_live_bytes() == live, "%s: %zd bytes left allocated", what,
          (ssize_t)(sd_alloc_live_bytes() - live));
    CHECK((!p->init || !memcmp(init_copy, p->init->data, image_bytes(p->init))) &&
              (!p->mask || !memcmp(mask_copy, p->mask->data, image_bytes(p->mask))),
          "%s: the caller's image or mask changed", what);
    if (st == SD_OK)
        sd_gen_result_free(&r);
    free(init_copy);
    free(mask_copy);
}

/* ---- tiny pictures and extreme shapes ------------------------------------------------------ */

static void test_tiny_images(void)
{
    sd_image one = make_image(1, 1, 4, 0.4f), one_mask = make_image(1, 1, 1, 1.0f);
    one_mask.data[0] = 1.0f;
    sd_gen_params p = base(SD_TASK_IMG2IMG);
    p.init = &one;
    sd_gen_result r = {0};
    expect_ok("img2img 1x1", sd15, &p, 1, 1, &r);
    CHECK(r.image.data && r.image.data[3] == 0.5f, "img2img 1x1 keeps the alpha");
    sd_gen_result_free(&r);
    p.task = SD_TASK_INPAINT;
    p.mask = &one_mask;
    expect_ok("inpaint 1x1", sd15, &p, 1, 1, NULL);
    expect_ok("inpaint 1x1, inpainting model", sd15_inpaint, &p, 1, 1, NULL);
    p = base(SD_TASK_OUTPAINT);
    p.init = &one;
    p.extend_left = p.extend_top = p.extend_right = p.extend_bottom = 8;
    expect_ok("outpaint 1x1 by 8 px", sd15, &p, 17, 17, NULL);
    p = base(SD_TASK_TXT2IMG);
    p.width = p.height = 1;
    expect_ok("txt2img 1x1", sd15, &p, 1, 1, NULL);
    p.width = 4000, p.height = 8;
    expect_ok("txt2img 4000x8", sd15, &p, 4000, 8, NULL);
    sd_image tall = make_image(2, 1500, 3, 0.3f);
    p = base(SD_TASK_IMG2IMG);
    p.init = &tall;
    expect_ok("img2img 2x1500", sd15, &p, 2, 1500, NULL);
    /* the noise estimate needs a 3x3 neighbourhood: a clear refusal */
    p = base(SD_TASK_DENOISE);
    p.init = &one;
    expect_fail("denoise 1x1", sd15, &p, SD_ERR_INVALID_ARG, "3x3 at least");
    p.init = &tall;
    expect_fail("denoise 2x1500", sd15, &p, SD_ERR_INVALID_ARG, "3x3 at least");
    free(one.data);
    free(one_mask.data);
    free(tall.data);
}

/* ---- masks ----------------------------------------------------------------------------------- */

static void test_masks(void)
{
    sd_image img = make_image(64, 48, 4, 0.4f);
    sd_image whole = make_image(64, 48, 1, 0), empty = make_image(64, 48, 1, 0);
    sd_image negative = make_image(64, 48, 1, 0), above = make_image(64, 48, 1, 0);
    for (size_t i = 0; i < (size_t)64 * 48; i++) {
        whole.data[i] = 1.0f;
        empty.data[i] = 0.0f;
        negative.data[i] = -1.0f;
        above.data[i] = (i % 64) > 20 && (i % 64) < 40 ? 5.0f : 0.0f;
    }
    /* a whole-image selection regenerates everything and keeps the alpha */
    sd_gen_params p = base(SD_TASK_INPAINT);
    p.init = &img;
    p.mask = &whole;
    sd_gen_result r = {0};
    expect_ok("inpaint, whole mask", sd15, &p, 64, 48, &r);
    long same = 0, alpha = 0;
    for (size_t i = 0; r.image.data && i < (size_t)64 * 48 * 4; i++) {
        if (i % 4 == 3)
            alpha += r.image.data[i] != img.data[i];
        else
            same += r.image.data[i] == img.data[i];
    }
    CHECK(r.image.data && same < 64 * 48 / 10 && alpha == 0,
          "whole mask: %ld samples unchanged, %ld alphas changed", same, alpha);
    sd_gen_result_free(&r);
    expect_ok("inpaint, whole mask, inpainting model", sd15_inpaint, &p, 64, 48, NULL);
    /* nothing selected: inpaint refuses, img2img works on the whole picture exactly as
     * without a mask */
    p.mask = &empty;
    expect_fail("inpaint, empty mask", sd15, &p, SD_ERR_INVALID_ARG, "selection is empty");
    p.mask = &negative;
    expect_fail("inpaint, mask below 0", sd15, &p, SD_ERR_INVALID_ARG, "selection is empty");
    p.mask = &above;
    expect_ok("inpaint, mask values 5", sd15, &p, 64, 48, NULL);
    p = base(SD_TASK_IMG2IMG);
    p.init = &img;
    sd_gen_result a = {0}, b = {0};
    expect_ok("img2img, no mask", sd15, &p, 64, 48, &a);
    p.mask = &empty;
    expect_ok("img2img, empty mask", sd15, &p, 64, 48, &b);
    CHECK(a.image.data && b.image.data &&
              !memcmp(a.image.data, b.image.data, image_bytes(&a.image)),
          "img2img: an empty mask is the whole picture");
    sd_gen_result_free(&a);
    sd_gen_result_free(&b);
    /* a mask of another size, a mask with colour channels */
    sd_image small = make_image(32, 48, 1, 1.0f), rgb = make_image(64, 48, 3, 1.0f);
    p.mask = &small;
    expect_fail("img2img, mask 32x48 on 64x48", sd15, &p, SD_ERR_INVALID_ARG, "differ in size");
    p.mask = &rgb;
    expect_fail("img2img, RGB mask", sd15, &p, SD_ERR_INVALID_ARG, "channels");
    free(small.data);
    free(rgb.data);
    free(img.data);
    free(whole.data);
    free(empty.data);
    free(negative.data);
    free(above.data);
}

/* ---- samples that are not numbers ------------------------------------------------------------ */

static void test_non_finite(void)
{
    sd_image img = make_image(64, 48, 3, 0.4f), mask = make_image(64, 48, 1, 0.0f);
    for (int y = 10; y < 30; y++)
        for (int x = 10; x < 30; x++)
            mask.data[(size_t)y * 64 + x] = 1.0f;
    sd_gen_params p = base(SD_TASK_IMG2IMG);
    p.init = &img;
    img.data[(size_t)5 * img.stride + 7 * 3 + 1] = NAN;
    expect_fail("img2img, a NaN sample", sd15, &p, SD_ERR_INVALID_ARG, "at pixel (7, 5)");
    img.data[(size_t)5 * img.stride + 7 * 3 + 1] = INFINITY;
    p.task = SD_TASK_DENOISE;
    expect_fail("denoise, an infinite sample", sd15, &p, SD_ERR_INVALID_ARG, "not a number");
    img.data[(size_t)5 * img.stride + 7 * 3 + 1] = 0.5f;
    mask.data[(size_t)40 * 64 + 50] = NAN;
    p.task = SD_TASK_INPAINT;
    p.mask = &mask;
    expect_fail("inpaint, a NaN in the mask", sd15, &p, SD_ERR_INVALID_ARG,
                "the mask has a sample that is not a number");
    mask.data[(size_t)40 * 64 + 50] = 0.0f;
    expect_ok("inpaint after the NaN is gone", sd15, &p, 64, 48, NULL);
    free(img.data);
    free(mask.data);
}

/* ---- prompts and parameters ------------------------------------------------------------------ */

static void test_prompts_and_params(void)
{
    sd_gen_params p = base(SD_TASK_TXT2IMG);
    p.prompt = "caf\xc3\x28 au lait";
    expect_fail("prompt, invalid UTF-8", sd15, &p, SD_ERR_INVALID_ARG, "not valid UTF-8 (byte 3)");
    p = base(SD_TASK_TXT2IMG);
    p.negative_prompt = "\xed\xa0\x80 surrogate";
    expect_fail("negative prompt, a UTF-16 surrogate", sd15, &p, SD_ERR_INVALID_ARG,
                "not valid UTF-8");
    p = base(SD_TASK_TXT2IMG);
    p.prompt = "(apple:1.2.3)";
    expect_fail("prompt, weight 1.2.3", sd15, &p, SD_ERR_INVALID_ARG, "not a number");
    p.prompt = "(apple:1000000000000000000000000000000000000000)";
    expect_fail("prompt, weight beyond a float", sd15, &p, SD_ERR_INVALID_ARG, "out of range");
    /* unbalanced brackets, stray syntax, empty and huge-nesting prompts are text */
    static const char *const odd[] = {
        "((apple", "apple))", "[[apple]", ":apple:1.5)", "(:)", "\\", "BREAK BREAK BREAK", "",
        "((((((((((((((((((((((((((((((((((((((((apple))))))))))))))))))))))))))))))))))))))))",
        "(apple:0) (pear:-3) [[[[", "<|endoftext|><|startoftext|>!!!",
    };
    for (size_t i = 0; i < SD_ARRAY_LEN(odd); i++) {
        p.prompt = odd[i];
        char what[160];
        snprintf(what, sizeof what, "prompt '%s'", odd[i]);
        expect_ok(what, sd15, &p, 64, 64, NULL);
    }
    /* NaN and out-of-range parameters */
    sd_image img = make_image(64, 48, 3, 0.4f);
    p = base(SD_TASK_DENOISE);
    p.init = &img;
    p.strength = NAN;
    expect_fail("denoise, strength NaN", sd15, &p, SD_ERR_INVALID_ARG, "strength");
    p.strength = -1;
    p.tile = 3;
    expect_fail("denoise, tile 3", sd15, &p, SD_ERR_INVALID_ARG, "tile 3 px");
    p.tile = -64;
    expect_fail("denoise, tile -64", sd15, &p, SD_ERR_INVALID_ARG, "tile -64 px");
    p = base(SD_TASK_IMG2IMG);
    p.init = &img;
    p.cfg = NAN;
    expect_fail("img2img, guidance NaN", sd15, &p, SD_ERR_INVALID_ARG, "guidance");
    p.cfg = 3;
    p.mask_blur = INFINITY;
    expect_fail("img2img, mask blur inf", sd15, &p, SD_ERR_INVALID_ARG, "mask blur");
    p.mask_blur = 4;
    p.seed = -5;
    expect_fail("img2img, seed -5", sd15, &p, SD_ERR_INVALID_ARG, "seed");
    sd_image two = {64, 48, 2, 128, img.data}, strided = {64, 48, 3, 100, img.data};
    p.seed = 1;
    p.init = &two;
    expect_fail("img2img, 2 channels", sd15, &p, SD_ERR_INVALID_ARG, "2 channels");
    p.init = &strided;
    expect_fail("img2img, stride < width", sd15, &p, SD_ERR_INVALID_ARG, "stride");
    free(img.data);
}

/* ---- models with parts missing --------------------------------------------------------------- */

/* A diffusers folder in the scratch space holding the golden model's `parts` (symlinks). */
static const char *partial_folder(const char *name, const char *const *parts, int n)
{
    static char dir[1024];
    char abs[1024], link[1400], target[1400], index[2048] = "{";
    snprintf(dir, sizeof dir, "%s", t_tmp(name));
    mkdir(dir, 0755);
    CHECK(realpath(t_data("tiny-sd15/diffusers"), abs) != NULL, "realpath");
    for (int i = 0; i < n; i++) {
        snprintf(link, sizeof link, "%s/%s", dir, parts[i]);
        snprintf(target, sizeof target, "%s/%s", abs, parts[i]);
        remove(link);
        CHECK(symlink(target, link) == 0, "symlink %s", link);
        snprintf(index + strlen(index), sizeof index - strlen(index), "%s\"%s\": []",
                 i ? ", " : "", parts[i]);
    }
    strcat(index, "}");
    snprintf(link, sizeof link, "%s/model_index.json", dir);
    FILE *f = fopen(link, "w");
    CHECK(f && fputs(index, f) >= 0 && fclose(f) == 0, "model_index.json");
    return dir;
}

static void remove_folder(const char *dir, const char *const *parts, int n)
{
    char path[1400];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, parts[i]);
        remove(path);
    }
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    remove(path);
    rmdir(dir);
}

static void test_model_parts(void)
{
    static const char *const no_text[] = {"unet", "vae"};
    static const char *const no_vae[] = {"unet", "text_encoder"};
    sd_model *taesd_dec = NULL;
    sd_error err = {0};
    CHECK(sd_model_load(ctx, t_data("taesd/taesd_decoder.safetensors"), &taesd_dec, &err) ==
              SD_OK, "%s", err.msg);
    const char *dir = partial_folder("bad-input-no-text", no_text, 2);
    sd_model *m = NULL;
    CHECK(sd_model_load(ctx, dir, &m, &err) == SD_OK, "unet + vae folder: %s", err.msg);
    sd_gen_params p = base(SD_TASK_TXT2IMG);
    if (m)
        expect_fail("txt2img without a text encoder", m, &p, SD_ERR_INVALID_ARG,
                    "no text encoder");
    sd_model_free(m);
    remove_folder(dir, no_text, 2);

    dir = partial_folder("bad-input-no-vae", no_vae, 2);
    m = NULL;
    CHECK(sd_model_load(ctx, dir, &m, &err) == SD_OK, "unet + text folder: %s", err.msg);
    if (m) {
        expect_fail("txt2img without a VAE", m, &p, SD_ERR_INVALID_ARG, "give a TAESD model");
        p.taesd = sd15; /* not a TAESD model */
        expect_fail("a checkpoint given as the TAESD", m, &p, SD_ERR_INVALID_ARG,
                    "not a TAESD model");
        p.taesd = taesd_dec; /* decodes: works */
        expect_ok("txt2img without a VAE, TAESD decoder", m, &p, 64, 64, NULL);
        sd_image img = make_image(64, 48, 3, 0.4f);
        p = base(SD_TASK_IMG2IMG);
        p.init = &img;
        p.taesd = taesd_dec; /* but cannot encode */
        expect_fail("img2img without a VAE encoder", m, &p, SD_ERR_INVALID_ARG, "VAE");
        free(img.data);
    }
    sd_model_free(m);
    remove_folder(dir, no_vae, 2);
    sd_model_free(taesd_dec);
}

/* ---- PNG files on the command line ----------------------------------------------------------- */

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(data, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

/* A PNG chunk: length, type, data, CRC-32 (bitwise; these are a few bytes). */
static size_t put_chunk(unsigned char *out, const char *type, const void *data, uint32_t len,
                        uint32_t declared)
{
    out[0] = declared >> 24, out[1] = declared >> 16, out[2] = declared >> 8, out[3] = declared;
    memcpy(out + 4, type, 4);
    memcpy(out + 8, data, len);
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 4; i < 8 + (size_t)len; i++) {
        crc ^= out[i];
        for (int k = 0; k < 8; k++)
            crc = crc & 1 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
    }
    crc ^= 0xFFFFFFFFu;
    unsigned char *c = out + 8 + len;
    c[0] = crc >> 24, c[1] = crc >> 16, c[2] = crc >> 8, c[3] = crc;
    return 12 + (size_t)len;
}

/* A valid 8-bit gray PNG of w x h pixels of one value, its pixels in a stored (uncompressed)
 * deflate block, so no zlib is needed here. */
static void write_gray_png(const char *path, int w, int h, unsigned char value)
{
    static unsigned char png[70000], raw[65536];
    const size_t nraw = (size_t)h * (size_t)(w + 1);
    if (nraw + 100 > sizeof raw) {
        CHECK(0, "write_gray_png: %dx%d too large", w, h);
        return;
    }
    for (size_t i = 0; i < nraw; i++)
        raw[i] = i % (size_t)(w + 1) ? value : 0; /* filter byte 0, then the row */
    unsigned char z[65600];
    size_t zn = 0;
    uint32_t a = 1, b = 0; /* adler-32 */
    for (size_t i = 0; i < nraw; i++)
        a = (a + raw[i]) % 65521, b = (b + a) % 65521;
    z[zn++] = 0x78, z[zn++] = 0x01, z[zn++] = 0x01; /* zlib header, final stored block */
    z[zn++] = nraw & 0xFF, z[zn++] = nraw >> 8;
    z[zn++] = ~nraw & 0xFF, z[zn++] = (~nraw >> 8) & 0xFF;
    memcpy(z + zn, raw, nraw);
    zn += nraw;
    uint32_t ad = b << 16 | a;
    z[zn++] = ad >> 24, z[zn++] = ad >> 16, z[zn++] = ad >> 8, z[zn++] = ad;
    const unsigned char ihdr[13] = {0, 0, w >> 8, w & 0xFF, 0, 0, h >> 8, h & 0xFF, 8, 0, 0, 0, 0};
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    size_t n = 8;
    memcpy(png, sig, 8);
    n += put_chunk(png + n, "IHDR", ihdr, 13, 13);
    n += put_chunk(png + n, "IDAT", z, (uint32_t)zn, (uint32_t)zn);
    n += put_chunk(png + n, "IEND", "", 0, 0);
    write_bytes(path, png, n);
}

/* Run `sd img2img` on `input` (and `mask`): it must fail with one line that names the input
 * and contains `needle`, and write nothing. */
static void expect_cli_fail(const char *what, const char *input, const char *mask,
                            const char *needle)
{
    char args[4096], out[2048], errs[2048];
    const char *dst = t_tmp("bad-input-out.png");
    remove(dst);
    snprintf(args, sizeof args,
             "img2img -m '%s' -p apple --steps 2 --resolution 64 --threads 1 -i '%s'%s%s%s "
             "-o '%s'",
             t_data("tiny-sd15/model-f16.safetensors"), input, mask ? " --mask '" : "",
             mask ? mask : "", mask ? "'" : "", dst);
    int rc = t_run_sd(args, out, sizeof out, errs, sizeof errs);
    char *nl = strchr(errs, '\n');
    CHECK(rc == 1 && nl && nl[1] == 0 && strstr(errs, needle) && (mask || strstr(errs, input)),
          "%s: exit %d, stderr '%s'", what, rc, errs);
    struct stat sb;
    CHECK(stat(dst, &sb) != 0, "%s: an output file was written", what);
}

static void test_cli_png(void)
{
    if (access(t_sd_bin(), X_OK) != 0) {
        CHECK(0, "%s not built", t_sd_bin());
        return;
    }
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    static const unsigned char ihdr[13] = {0, 0, 0, 4, 0, 0, 0, 4, 8, 6, 0, 0, 0};
    unsigned char png[256];
    size_t n = 8;
    memcpy(png, sig, 8);
    n += put_chunk(png + n, "IHDR", ihdr, 13, 13);

    /* found by fuzz_cli_png: 53 bytes whose tEXt chunk declares 2 GB made libpng allocate and
     * clear 2 GB before noticing the end of the file */
    unsigned char text[] = "Comment\0hello";
    size_t big = n + put_chunk(png + n, "tEXt", text, sizeof text - 1, 0x7C000000u);
    const char *path = t_tmp("bad-text-chunk.png");
    write_bytes(path, png, big - 4); /* CRC cut off: the file ends inside the chunk */
    expect_cli_fail("PNG declaring a 2 GB text chunk", path, NULL, "ends too early");
    struct rusage ru; /* the largest peak of any child so far: this is the first one */
    getrusage(RUSAGE_CHILDREN, &ru);
    CHECK(ru.ru_maxrss < 512 * 1024, "the tool peaked at %ld MB on a 54-byte file",
          ru.ru_maxrss / 1024);

    /* an image cut inside IDAT */
    static const unsigned char idat[] = {0x78, 0x9c, 0x63, 0x60, 0x18, 0x05};
    size_t cut = n + put_chunk(png + n, "IDAT", idat, sizeof idat, 200);
    path = t_tmp("bad-cut.png");
    write_bytes(path, png, cut - 4);
    expect_cli_fail("PNG cut inside its pixel data", path, NULL, "ends too early");
    /* a header with a zero width */
    static const unsigned char zero_w[13] = {0, 0, 0, 0, 0, 0, 0, 4, 8, 6, 0, 0, 0};
    size_t zn = 8 + put_chunk(png + 8, "IHDR", zero_w, 13, 13);
    path = t_tmp("bad-zero-width.png");
    write_bytes(path, png, zn);
    expect_cli_fail("PNG of width 0", path, NULL, "IHDR");
    /* not a PNG at all, and no file */
    path = t_tmp("bad-not-a-png.png");
    write_bytes(path, "GIF89a", 6);
    expect_cli_fail("a GIF named .png", path, NULL, "not a PNG file");
    expect_cli_fail("a missing file", t_tmp("bad-missing.png"), NULL, "No such file");
    /* valid files, but the mask does not fit the picture */
    write_gray_png(t_tmp("bad-input-64x48.png"), 64, 48, 100);
    write_gray_png(t_tmp("bad-input-mask-32x32.png"), 32, 32, 255);
    expect_cli_fail("a 32x32 mask on a 64x48 picture", t_tmp("bad-input-64x48.png"),
                    t_tmp("bad-input-mask-32x32.png"), "differ in size");
    remove(t_tmp("bad-input-64x48.png"));
    remove(t_tmp("bad-input-mask-32x32.png"));
    remove(t_tmp("bad-text-chunk.png"));
    remove(t_tmp("bad-cut.png"));
    remove(t_tmp("bad-zero-width.png"));
    remove(t_tmp("bad-not-a-png.png"));
}

int main(void)
{
    sd_error err = {0};
    sd_ctx_params cp = sd_ctx_params_default();
    cp.n_threads = 2;
    if (sd_ctx_new(&cp, &ctx, &err) ||
        sd_model_load(ctx, t_data("tiny-sd15/model-f16.safetensors"), &sd15, &err) ||
        sd_model_load(ctx, t_data("tiny-sd15-inpaint/model-f16.safetensors"), &sd15_inpaint,
                      &err)) {
        CHECK(0, "setup: %s", err.msg);
        return t_summary("t_bad_input");
    }
    test_cli_png(); /* first: it reads the children's peak memory */
    test_tiny_images();
    test_masks();
    test_non_finite();
    test_prompts_and_params();
    test_model_parts();
    sd_model_free(sd15);
    sd_model_free(sd15_inpaint);
    sd_ctx_free(ctx);
    return t_summary("t_bad_input");
}
