/* cli/cmd_generate.c - the five filters from the command line: `sd txt2img`, `img2img`,
 * `inpaint`, `outpaint`, `denoise`.  One option parser fills an sd_gen_params for
 * sd_generate (the same entry point the GIMP plug-in uses); images come and go as PNG or as
 * a safetensors tensor `image` [1,3,H,W] (masks: [1,1,H,W]) with values 0..1.
 * `--noise FILE` replays the random draws recorded in a golden case file and `--reference`
 * asks for exactly what diffusers does, so golden cases replay from the command line.
 * `--precision` picks the ctx precision: auto (bf16 products where the CPU has them, unless
 * $SD_PRECISION=fp32) by default, fp32 with --reference. */
#include "cli/cli.h"
#include "cli/image_png.h"
#include "internal/common.h"
#include "internal/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct gen_opts {
    const char *cmd;
    const char *model, *taesd, *input, *mask, *noise, *save_latents, *out;
    long threads;
    int precision; /* an sd_precision, or -1: not given (AUTO; FP32 with --reference) */
    sd_gen_params p;
} gen_opts;

/* ---- images ------------------------------------------------------------------------------ */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Read a PNG (as RGBA) or a safetensors tensor `image`/`mask` [1,C,H,W] into a malloc'ed
 * image with `want` channels (4 = RGBA, 1 = gray mask: the first channel). */
static int read_image(const char *cmd, const char *path, int want, sd_image *img)
{
    memset(img, 0, sizeof *img);
    int w = 0, h = 0;
    float *px = NULL;
    if (ends_with(path, ".safetensors")) {
        sd_error err = {0};
        sd_st_file *f = NULL;
        if (sd_st_open(path, &f, &err))
            return sd_cli_fail_err(cmd, &err);
        const sd_tensor *t = sd_st_tensor(f, want == 1 ? "mask" : "image");
        if (!t)
            t = sd_st_tensor(f, "image");
        if (!t || t->dtype != SD_DTYPE_F32 || t->ndim != 4 || t->shape[0] != 1 ||
            (t->shape[1] != 1 && t->shape[1] != 3 && t->shape[1] != 4)) {
            sd_st_close(f);
            return sd_cli_fail(cmd, "%s: needs a float32 tensor 'image' (or 'mask') of shape "
                               "[1,C,H,W]", path);
        }
        const int C = (int)t->shape[1];
        h = (int)t->shape[2], w = (int)t->shape[3];
        px = malloc((size_t)w * h * 4 * sizeof(float));
        if (!px) {
            sd_st_close(f);
            return sd_cli_fail(cmd, "out of memory");
        }
        const float *d = t->data;
        for (size_t k = 0; k < (size_t)w * h; k++)
            for (int c = 0; c < 4; c++)
                px[k * 4 + c] = c < C ? d[(size_t)c * w * h + k] : c == 3 ? 1.0f : d[k];
        sd_st_close(f);
    } else {
        char msg[256];
        if (sd_cli_png_read(path, &px, &w, &h, msg, sizeof msg))
            return sd_cli_fail(cmd, "%s", msg);
    }
    if (want == 1) {
        for (size_t k = 0; k < (size_t)w * h; k++)
            px[k] = px[k * 4];
    }
    *img = (sd_image){w, h, want, (size_t)w * want, px};
    return 0;
}

static int write_image(const char *cmd, const char *path, const sd_image *img)
{
    if (ends_with(path, ".safetensors")) {
        const size_t hw = (size_t)img->width * img->height;
        float *planar = malloc(3 * hw * sizeof(float));
        if (!planar)
            return sd_cli_fail(cmd, "out of memory");
        for (int y = 0; y < img->height; y++)
            for (int x = 0; x < img->width; x++)
                for (int c = 0; c < 3; c++)
                    planar[c * hw + (size_t)y * img->width + x] =
                        img->data[(size_t)y * img->stride + (size_t)x * img->channels + c];
        sd_tensor t = {.dtype = SD_DTYPE_F32, .ndim = 4,
                       .shape = {1, 3, img->height, img->width},
                       .stride = {(int64_t)(3 * hw), (int64_t)hw, img->width, 1},
                       .data = planar};
        const char *names[] = {"image"};
        sd_error err = {0};
        sd_status st = sd_st_write(path, names, &t, 1, NULL, &err);
        free(planar);
        return st ? sd_cli_fail_err(cmd, &err) : 0;
    }
    /* Drop an alpha channel that is opaque everywhere: a plain RGB file is what people
     * expect from txt2img. */
    int channels = img->channels;
    bool opaque = true;
    for (int y = 0; channels == 4 && opaque && y < img->height; y++)
        for (int x = 0; x < img->width; x++)
            if (img->data[(size_t)y * img->stride + (size_t)x * 4 + 3] < 1.0f) {
                opaque = false;
                break;
            }
    float *tight = malloc((size_t)img->width * img->height * 4 * sizeof(float));
    if (!tight)
        return sd_cli_fail(cmd, "out of memory");
    int oc = channels == 4 && opaque ? 3 : channels;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++)
            for (int c = 0; c < oc; c++)
                tight[((size_t)y * img->width + x) * oc + c] =
                    img->data[(size_t)y * img->stride + (size_t)x * channels + c];
    char msg[256];
    int rc = sd_cli_png_write(path, tight, img->width, img->height, oc, 8, msg, sizeof msg);
    free(tight);
    return rc ? sd_cli_fail(cmd, "%s", msg) : 0;
}

/* ---- recorded noise ----------------------------------------------------------------------- */

typedef struct replay {
    sd_st_file *file;
    const float *draws[64];
    size_t sizes[64];
    int n;
} replay;

/* The draws of a golden case in the order its pipeline made them: `init_latents` (the
 * latents the reference passed, i.e. its generator's first draw) when present, then
 * randn0, randn1, ... */
static int load_replay(const char *cmd, const char *path, replay *rp)
{
    sd_error err = {0};
    if (sd_st_open(path, &rp->file, &err))
        return sd_cli_fail_err(cmd, &err);
    const sd_tensor *t = sd_st_tensor(rp->file, "init_latents");
    if (t && t->dtype == SD_DTYPE_F32) {
        rp->draws[rp->n] = t->data;
        rp->sizes[rp->n++] = (size_t)sd_tensor_numel(t);
    }
    for (int k = 0; rp->n < 64; k++) {
        char name[32];
        snprintf(name, sizeof name, "randn%d", k);
        t = sd_st_tensor(rp->file, name);
        if (!t)
            break;
        if (t->dtype != SD_DTYPE_F32)
            return sd_cli_fail(cmd, "%s: %s is not float32", path, name);
        rp->draws[rp->n] = t->data;
        rp->sizes[rp->n++] = (size_t)sd_tensor_numel(t);
    }
    if (rp->n == 0)
        return sd_cli_fail(cmd, "%s: no init_latents or randn0.. tensors to replay", path);
    return 0;
}

/* ---- callbacks ------------------------------------------------------------------------------ */

static bool progress_bar(const sd_progress *pr, void *user)
{
    (void)user;
    static const char *const phases[] = {"prompt", "encode", "sample", "decode"};
    const int width = 30;
    int done = pr->n_steps ? width * pr->step / pr->n_steps : 0;
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < done ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r%-6s [%s] %d/%d  %.1fs", phases[pr->phase], bar, pr->step, pr->n_steps,
            pr->elapsed);
    if (pr->eta >= 0)
        fprintf(stderr, "  eta %.1fs ", pr->eta);
    return true;
}

typedef struct latents_sink {
    const char *path;
    int status;
} latents_sink;

static void save_latents(const float *lat, int c, int h, int w, void *user)
{
    latents_sink *ls = user;
    sd_tensor t = {.dtype = SD_DTYPE_F32, .ndim = 4, .shape = {1, c, h, w},
                   .stride = {(int64_t)c * h * w, (int64_t)h * w, w, 1}, .data = (void *)lat};
    const char *names[] = {"latents"};
    sd_error err = {0};
    if (sd_st_write(ls->path, names, &t, 1, NULL, &err)) {
        fprintf(stderr, "sd: --save-latents: %s\n", err.msg);
        ls->status = 1;
    }
}

/* ---- options ---------------------------------------------------------------------------------- */

static int parse_enum(const char *cmd, const char *opt, const char *v, const char *const *names,
                      int n, int *out)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) {
            *out = i;
            return 0;
        }
    return sd_cli_fail(cmd, "%s: unknown value '%s'", opt, v);
}

static int parse(int argc, char **argv, gen_opts *o)
{
    const char *cmd = o->cmd;
    sd_gen_params *p = &o->p;
    static const char *const samplers[] = {"euler", "euler_a", "ddim", "dpmpp_2m", "lcm"};
    static const char *const spacings[] = {"leading", "trailing", "linspace"};
    static const char *const fills[] = {"original", "fill", "latent-noise", "latent-nothing"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long l;
        double d;
        int e = 0;
#define NEED_VALUE()                                                                           \
    do {                                                                                       \
        if (!v)                                                                                \
            return sd_cli_fail(cmd, "%s needs a value", a);                                    \
        i++;                                                                                   \
    } while (0)
        if (!strcmp(a, "-m")) {
            NEED_VALUE();
            o->model = v;
        } else if (!strcmp(a, "-p")) {
            NEED_VALUE();
            p->prompt = v;
        } else if (!strcmp(a, "-n")) {
            NEED_VALUE();
            p->negative_prompt = v;
        } else if (!strcmp(a, "-o")) {
            NEED_VALUE();
            o->out = v;
        } else if (!strcmp(a, "-i")) {
            NEED_VALUE();
            o->input = v;
        } else if (!strcmp(a, "--mask")) {
            NEED_VALUE();
            o->mask = v;
        } else if (!strcmp(a, "--taesd")) {
            NEED_VALUE();
            o->taesd = v;
        } else if (!strcmp(a, "--noise")) {
            NEED_VALUE();
            o->noise = v;
        } else if (!strcmp(a, "--save-latents")) {
            NEED_VALUE();
            o->save_latents = v;
        } else if (!strcmp(a, "--sampler")) {
            NEED_VALUE();
            if (parse_enum(cmd, a, v, samplers, 5, &e))
                return 1;
            p->sampler = (sd_sampler_kind)e;
        } else if (!strcmp(a, "--spacing")) {
            NEED_VALUE();
            if (parse_enum(cmd, a, v, spacings, 3, &e))
                return 1;
            p->spacing = (sd_spacing)e;
        } else if (!strcmp(a, "--fill")) {
            NEED_VALUE();
            if (parse_enum(cmd, a, v, fills, 4, &e))
                return 1;
            p->fill = (sd_fill)e;
        } else if (!strcmp(a, "--prediction")) {
            NEED_VALUE();
            if (!strcmp(v, "eps") || !strcmp(v, "epsilon"))
                p->prediction = SD_PREDICT_EPSILON;
            else if (!strcmp(v, "v"))
                p->prediction = SD_PREDICT_V;
            else
                return sd_cli_fail(cmd, "--prediction takes eps or v");
        } else if (!strcmp(a, "--karras")) {
            p->karras = true;
        } else if (!strcmp(a, "--reference")) {
            p->reference = true;
        } else if (!strcmp(a, "--whole-image")) {
            p->whole_image = true;
        } else if (!strcmp(a, "--no-color-match")) {
            p->color_match = false;
        } else if (!strcmp(a, "--precision")) {
            NEED_VALUE();
            if (!strcmp(v, "fp32"))
                o->precision = SD_PRECISION_FP32;
            else if (!strcmp(v, "bf16"))
                o->precision = SD_PRECISION_BF16;
            else if (!strcmp(v, "auto"))
                o->precision = SD_PRECISION_AUTO;
            else
                return sd_cli_fail(cmd, "--precision takes auto, fp32 or bf16");
        } else if (!strcmp(a, "--threads")) {
            NEED_VALUE();
            if (sd_cli_parse_threads(cmd, a, v, &o->threads))
                return 1;
        } else if (!strcmp(a, "--steps") || !strcmp(a, "-W") || !strcmp(a, "-H") ||
                   !strcmp(a, "--clip-skip") || !strcmp(a, "--padding") ||
                   !strcmp(a, "--resolution") || !strcmp(a, "--tile")) {
            NEED_VALUE();
            if (!sd_cli_parse_int(v, 0, 1 << 18, &l))
                return sd_cli_fail(cmd, "%s takes a whole number >= 0", a);
            if (!strcmp(a, "--steps"))
                p->steps = (int)l;
            else if (!strcmp(a, "-W"))
                p->width = (int)l;
            else if (!strcmp(a, "-H"))
                p->height = (int)l;
            else if (!strcmp(a, "--clip-skip"))
                p->clip_skip = (int)l;
            else if (!strcmp(a, "--padding"))
                p->padding = (int)l;
            else if (!strcmp(a, "--resolution"))
                p->resolution = (int)l;
            else
                p->tile = (int)l;
        } else if (!strcmp(a, "--seed")) {
            NEED_VALUE();
            char *end;
            long long s = strtoll(v, &end, 10);
            if (*end || end == v || s < -1)
                return sd_cli_fail(cmd, "--seed takes -1 (random) or a number >= 0");
            p->seed = s;
        } else if (!strcmp(a, "--cfg") || !strcmp(a, "--mask-blur")) {
            NEED_VALUE();
            if (!sd_cli_parse_float(v, 0, 1000, &d))
                return sd_cli_fail(cmd, "%s takes a number >= 0", a);
            if (!strcmp(a, "--cfg"))
                p->cfg = (float)d;
            else
                p->mask_blur = (float)d;
        } else if (!strcmp(a, "--strength")) {
            NEED_VALUE();
            if (!strcmp(v, "auto"))
                p->strength = -1;
            else if (!sd_cli_parse_float(v, 0, 1, &d))
                return sd_cli_fail(cmd, "--strength takes a number in (0, 1] or auto");
            else
                p->strength = (float)d;
        } else if (!strcmp(a, "--extend")) {
            NEED_VALUE();
            int e4[4];
            if (sscanf(v, "%d,%d,%d,%d", &e4[0], &e4[1], &e4[2], &e4[3]) != 4)
                return sd_cli_fail(cmd, "--extend takes LEFT,TOP,RIGHT,BOTTOM pixels");
            p->extend_left = e4[0], p->extend_top = e4[1];
            p->extend_right = e4[2], p->extend_bottom = e4[3];
        } else {
            return sd_cli_fail(cmd, "unknown option '%s' (see sd --help)", a);
        }
#undef NEED_VALUE
    }
    if (!o->model || !o->out)
        return sd_cli_fail(cmd, "need -m MODEL and -o OUT");
    if (p->task != SD_TASK_TXT2IMG && !o->input)
        return sd_cli_fail(cmd, "need -i IMAGE");
    if (p->task == SD_TASK_INPAINT && !o->mask)
        return sd_cli_fail(cmd, "need --mask MASK (white = regenerate)");
    return 0;
}

/* ---- run ------------------------------------------------------------------------------------- */

static int run(int argc, char **argv, sd_task task)
{
    gen_opts o = {.cmd = argv[0], .precision = -1, .p = sd_gen_params_default(task)};
    if (parse(argc, argv, &o))
        return 1;
    int rc = 1;
    sd_error err = {0};
    sd_ctx *ctx;
    sd_model *m, *taesd = NULL;
    sd_image init = {0}, mask = {0};
    sd_gen_result res = {0};
    replay rp = {0};
    latents_sink ls = {o.save_latents, 0};
    sd_precision prec = o.precision >= 0 ? (sd_precision)o.precision
                        : o.p.reference  ? SD_PRECISION_FP32
                                         : SD_PRECISION_AUTO;
    if (sd_cli_open_model(o.cmd, o.model, o.threads, false, prec, &ctx, &m))
        return 1;
    if (o.taesd && sd_model_load(ctx, o.taesd, &taesd, &err)) {
        rc = sd_cli_fail_err(o.cmd, &err);
        goto done;
    }
    if ((o.input && read_image(o.cmd, o.input, 4, &init)) ||
        (o.mask && read_image(o.cmd, o.mask, 1, &mask)) ||
        (o.noise && load_replay(o.cmd, o.noise, &rp)))
        goto done;
    if (o.input)
        o.p.init = &init;
    if (o.mask)
        o.p.mask = &mask;
    o.p.taesd = taesd;
    if (o.noise) {
        o.p.noise_draws = rp.draws;
        o.p.noise_sizes = rp.sizes;
        o.p.n_noise_draws = rp.n;
    }
    if (o.save_latents) {
        o.p.final_latents = save_latents;
        o.p.final_latents_user = &ls;
    }
    if (isatty(STDERR_FILENO))
        o.p.progress = progress_bar;
    sd_status st = sd_generate(ctx, m, &o.p, &res, &err);
    if (o.p.progress)
        fputc('\n', stderr);
    if (st) {
        rc = sd_cli_fail_err(o.cmd, &err);
        goto done;
    }
    if (ls.status || write_image(o.cmd, o.out, &res.image))
        goto done;
    printf("%s: %dx%d, seed %lld", o.out, res.image.width, res.image.height,
           (long long)res.seed);
    if (task == SD_TASK_DENOISE)
        printf(", noise %.1f, strength %.3f", res.noise_sigma, res.strength);
    putchar('\n');
    rc = 0;
done:
    sd_gen_result_free(&res);
    free(init.data);
    free(mask.data);
    sd_st_close(rp.file);
    sd_model_free(taesd);
    sd_model_free(m);
    sd_ctx_free(ctx);
    return rc;
}

static int cmd_txt2img(int argc, char **argv) { return run(argc, argv, SD_TASK_TXT2IMG); }
static int cmd_img2img(int argc, char **argv) { return run(argc, argv, SD_TASK_IMG2IMG); }
static int cmd_inpaint(int argc, char **argv) { return run(argc, argv, SD_TASK_INPAINT); }
static int cmd_outpaint(int argc, char **argv) { return run(argc, argv, SD_TASK_OUTPAINT); }
static int cmd_denoise(int argc, char **argv) { return run(argc, argv, SD_TASK_DENOISE); }

#define COMMON                                                                                 \
    "-m MODEL -p TEXT [-n TEXT] [--sampler euler|euler_a|ddim|dpmpp_2m|lcm] [--karras] "      \
    "[--spacing leading|trailing|linspace] [--steps N] [--cfg G] [--seed S] [--taesd FILE] "  \
    "[--threads N] [--clip-skip N] [--resolution PX] [--prediction eps|v] [--noise FILE] "    \
    "[--save-latents FILE] [--reference] [--precision auto|fp32|bf16] "                       \
    "-o OUT.png|OUT.safetensors"

const sd_cli_cmd sd_cli_cmd_txt2img = {"txt2img", COMMON " [-W W] [-H H]",
                                       "generate an image from a prompt", cmd_txt2img};
const sd_cli_cmd sd_cli_cmd_img2img = {
    "img2img", COMMON " -i IMAGE [--strength S] [--mask MASK] [--mask-blur PX] [--padding PX]",
    "re-imagine an image (or the masked part of it) at a strength", cmd_img2img};
const sd_cli_cmd sd_cli_cmd_inpaint = {
    "inpaint",
    COMMON " -i IMAGE --mask MASK [--strength S] [--mask-blur PX] [--padding PX] "
           "[--fill original|fill|latent-noise|latent-nothing] [--whole-image] "
           "[--no-color-match]",
    "regenerate what the mask covers (white = regenerate)", cmd_inpaint};
const sd_cli_cmd sd_cli_cmd_outpaint = {
    "outpaint", COMMON " -i IMAGE --extend LEFT,TOP,RIGHT,BOTTOM [--no-color-match]",
    "grow the canvas and fill the new border", cmd_outpaint};
const sd_cli_cmd sd_cli_cmd_denoise = {"denoise", COMMON " -i IMAGE [--strength S|auto] [--tile PX]",
                                       "restore a noisy photo (strength from its noise level)",
                                       cmd_denoise};
