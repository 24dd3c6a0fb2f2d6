/* cli/cmd_vae.c - the VAE subcommands of `sd`:
 *   sd vae-decode  UNet-space latents (.safetensors) -> image (.png or .safetensors)
 *   sd vae-encode  image (.png or .safetensors) -> UNet-space latents (.safetensors)
 *   sd vae --case  run a golden VAE or TAESD case file and report the errors
 * with the SD VAE or, with --taesd, TAESD.
 *
 * File formats (also in each command's help):
 *   latents .safetensors: tensor "latents" (or "latent", or a file's only tensor), float,
 *     [1, Z, h, w] or [Z, h, w], in the UNet's latent space (VAE posterior * scaling_factor);
 *   image .safetensors:   tensor "image", float, [1, 3, H, W] or [3, H, W], values 0..1
 *     (non-linear sRGB, planar RGB);
 *   image .png:           8/16-bit gray, RGB, palette or with alpha; alpha is ignored on
 *     input; output is 8-bit RGB (--16bit: 16-bit). */
#include "cli/cli.h"
#include "cli/image_png.h"

#include "internal/ops.h"
#include "internal/rng.h"
#include "internal/safetensors.h"
#include "internal/taesd.h"
#include "internal/vae.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ============================================================================================
 * Shared plumbing
 * ========================================================================================== */

typedef struct opts {
    const char *model, *in, *out, *casefile;
    bool taesd, sample, sixteen, fast;
    long tile, overlap, threads;
    uint64_t seed;
} opts;

enum { OPT_TAESD = 256, OPT_TILE, OPT_OVERLAP, OPT_FAST, OPT_SAMPLE, OPT_SEED, OPT_16BIT, OPT_CASE };

static const struct option long_opts[] = {
    {"model", required_argument, NULL, 'm'},  {"input", required_argument, NULL, 'i'},
    {"output", required_argument, NULL, 'o'}, {"threads", required_argument, NULL, 't'},
    {"taesd", no_argument, NULL, OPT_TAESD},  {"tile", required_argument, NULL, OPT_TILE},
    {"overlap", required_argument, NULL, OPT_OVERLAP}, {"fast", no_argument, NULL, OPT_FAST},
    {"sample", no_argument, NULL, OPT_SAMPLE}, {"seed", required_argument, NULL, OPT_SEED},
    {"16bit", no_argument, NULL, OPT_16BIT},  {"case", required_argument, NULL, OPT_CASE},
    {NULL, 0, NULL, 0},
};

/* Parse argv into *o; returns 0, or the exit status after printing the problem. */
static int parse(const char *cmd, int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->tile = -1, o->overlap = -1;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":m:i:o:t:", long_opts, NULL)) != -1) {
        long v;
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'i': o->in = optarg; break;
        case 'o': o->out = optarg; break;
        case OPT_CASE: o->casefile = optarg; break;
        case OPT_TAESD: o->taesd = true; break;
        case OPT_SAMPLE: o->sample = true; break;
        case OPT_16BIT: o->sixteen = true; break;
        case OPT_FAST: o->fast = true; break;
        case 't':
            if (sd_cli_parse_threads(cmd, "--threads", optarg, &o->threads))
                return 1;
            break;
        case OPT_TILE:
            if (!sd_cli_parse_int(optarg, -1, 65536, &o->tile) ||
                (o->tile > 0 && o->tile < SD_VAE_TILE_MIN))
                return sd_cli_fail(cmd, "--tile: '%s' must be -1 (auto), 0 (off) or >= %d "
                                   "latent pixels", optarg, SD_VAE_TILE_MIN);
            break;
        case OPT_OVERLAP:
            if (!sd_cli_parse_int(optarg, 0, 65535, &o->overlap))
                return sd_cli_fail(cmd, "--overlap: '%s' is not a number >= 0", optarg);
            break;
        case OPT_SEED:
            if (!sd_cli_parse_int(optarg, 0, 4294967295L, &v))
                return sd_cli_fail(cmd, "--seed: '%s' is not a number in 0..4294967295",
                                   optarg);
            o->seed = (uint64_t)v;
            break;
        case ':':
            return sd_cli_fail(cmd, "option %s needs a value", argv[optind - 1]);
        default:
            return sd_cli_fail(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return sd_cli_fail(cmd, "unexpected argument '%s'", argv[optind]);
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

/* A ctx and the model at o->model; 0 or the exit status. */
static int open_model(const char *cmd, const opts *o, sd_ctx **ctx, sd_model **m)
{
    *ctx = NULL, *m = NULL;
    if (!o->model)
        return sd_cli_fail(cmd, "no model given (-m MODEL)");
    return sd_cli_open_model(cmd, o->model, o->threads, false, SD_PRECISION_FP32, ctx, m);
}

/* The float tensor `names[0]`, `names[1]`, ... (or the file's only tensor) of shape
 * [1, C, H, W] or [C, H, W] as a malloc'd float32 array. */
static int read_chw(const char *cmd, sd_ctx *ctx, const char *path, const char *const *names,
                    float **data, int *C, int *H, int *W)
{
    sd_error err = {0};
    sd_st_file *f = NULL;
    *data = NULL;
    if (sd_st_open(path, &f, &err) != SD_OK)
        return sd_cli_fail_err(cmd, &err);
    const sd_tensor *t = NULL;
    const char *name = NULL;
    for (int i = 0; names[i] && !t; i++)
        if ((t = sd_st_tensor(f, names[i])))
            name = names[i];
    if (!t && f->n == 1 && f->entries[0].usable)
        t = &f->entries[0].t, name = f->entries[0].name;
    int rc = 0;
    if (!t) {
        rc = sd_cli_fail(cmd, "%s: no tensor '%s'", path, names[0]);
    } else if (!(t->ndim == 3 || (t->ndim == 4 && t->shape[0] == 1)) ||
               t->shape[t->ndim - 1] < 1 || t->shape[t->ndim - 1] > 65536 ||
               t->shape[t->ndim - 2] < 1 || t->shape[t->ndim - 2] > 65536 ||
               t->shape[t->ndim - 3] < 1 || t->shape[t->ndim - 3] > 4096) {
        rc = sd_cli_fail(cmd, "%s: tensor '%s' must have shape [1, C, H, W] or [C, H, W]",
                         path, name);
    } else {
        int64_t n = sd_tensor_numel(t);
        *C = (int)t->shape[t->ndim - 3], *H = (int)t->shape[t->ndim - 2];
        *W = (int)t->shape[t->ndim - 1];
        *data = malloc((size_t)n * sizeof(float));
        if (!*data)
            rc = sd_cli_fail(cmd, "out of memory");
        else if (sd_tensor_to_f32(ctx, t, *data, n, &err) != SD_OK)
            rc = sd_cli_fail(cmd, "%s: tensor '%s': %s", path, name, err.msg);
        if (rc) {
            free(*data);
            *data = NULL;
        }
    }
    sd_st_close(f);
    return rc;
}

/* Write planar data [C, H, W] as tensor `name` [1, C, H, W] float32. */
static int write_chw(const char *cmd, const char *path, const char *name, const float *data,
                     int C, int H, int W, const char *metadata_json)
{
    sd_error err = {0};
    sd_tensor t = {.dtype = SD_DTYPE_F32, .ndim = 4, .shape = {1, C, H, W},
                   .stride = {(int64_t)C * H * W, (int64_t)H * W, W, 1},
                   .data = (void *)data, .owned = false};
    const char *names[] = {name};
    if (sd_st_write(path, names, &t, 1, metadata_json, &err) != SD_OK)
        return sd_cli_fail_err(cmd, &err);
    return 0;
}

/* Read an image (.png or .safetensors) as planar RGB [3, H, W] in 0..1. */
static int read_image(const char *cmd, sd_ctx *ctx, const char *path, float **rgb, int *H,
                      int *W)
{
    *rgb = NULL;
    if (ends_with(path, ".safetensors")) {
        static const char *const names[] = {"image", NULL};
        int C;
        int rc = read_chw(cmd, ctx, path, names, rgb, &C, H, W);
        if (rc == 0 && C != 3) {
            free(*rgb);
            *rgb = NULL;
            return sd_cli_fail(cmd, "%s: image has %d channels, expected 3", path, C);
        }
        return rc;
    }
    char msg[512];
    float *rgba;
    if (sd_cli_png_read(path, &rgba, W, H, msg, sizeof msg) != 0)
        return sd_cli_fail(cmd, "%s", msg);
    size_t n = (size_t)*W * (size_t)*H;
    *rgb = malloc(3 * n * sizeof(float));
    if (!*rgb) {
        free(rgba);
        return sd_cli_fail(cmd, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            (*rgb)[c * n + i] = rgba[4 * i + c];
    free(rgba);
    return 0;
}

/* Write planar RGB [3, H, W] in 0..1 as .png (8 or 16 bits) or .safetensors "image". */
static int write_image(const char *cmd, const char *path, const float *rgb, int H, int W,
                       bool sixteen)
{
    if (ends_with(path, ".safetensors"))
        return write_chw(cmd, path, "image", rgb, 3, H, W, NULL);
    if (!ends_with(path, ".png"))
        return sd_cli_fail(cmd, "%s: output must end in .png or .safetensors", path);
    size_t n = (size_t)W * (size_t)H;
    float *px = malloc(3 * n * sizeof(float));
    if (!px)
        return sd_cli_fail(cmd, "out of memory");
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            px[3 * i + c] = rgb[c * n + i];
    char msg[512];
    int rc = 0;
    if (sd_cli_png_write(path, px, W, H, 3, sixteen ? 16 : 8, msg, sizeof msg) != 0)
        rc = sd_cli_fail(cmd, "%s", msg);
    free(px);
    return rc;
}

/* Latent channels *z, pixels per latent pixel *f and scaling factor *sf (1 for TAESD) of the
 * model's VAE or, with taesd, of its TAESD.  0 or the exit status. */
static int latent_geometry(const char *cmd, const sd_model *m, bool taesd, int *z, int *f,
                           float *sf)
{
    sd_error err = {0};
    if (taesd) {
        sd_taesd_info ti;
        if (sd_taesd_get_info(m, &ti, &err) != SD_OK)
            return sd_cli_fail_err(cmd, &err);
        *z = ti.latent_channels, *f = ti.factor, *sf = 1.0f;
    } else {
        sd_vae_info vi;
        if (sd_vae_get_info(m, &vi, &err) != SD_OK)
            return sd_cli_fail_err(cmd, &err);
        *z = vi.latent_channels, *f = vi.factor, *sf = vi.scaling_factor;
    }
    return 0;
}

static sd_vae_opts vae_opts(const opts *o)
{
    sd_vae_opts v = sd_vae_opts_default();
    v.tile = (int)o->tile;
    v.overlap = (int)o->overlap;
    v.fast = o->fast;
    return v;
}

/* ============================================================================================
 * sd vae-decode
 * ========================================================================================== */

static int cmd_vae_decode(int argc, char **argv)
{
    const char *cmd = "vae-decode";
    opts o;
    int rc = parse(cmd, argc, argv, &o);
    if (rc)
        return rc;
    if (!o.in || !o.out)
        return sd_cli_fail(cmd, "need -i LATENT.safetensors and -o OUT.png|OUT.safetensors");
    if (o.sample || o.seed || o.casefile)
        return sd_cli_fail(cmd, "--sample/--seed/--case do not apply to decoding");
    if (!ends_with(o.out, ".png") && !ends_with(o.out, ".safetensors"))
        return sd_cli_fail(cmd, "%s: output must end in .png or .safetensors", o.out);
    sd_ctx *ctx;
    sd_model *m;
    if ((rc = open_model(cmd, &o, &ctx, &m)))
        return rc;
    static const char *const names[] = {"latents", "latent", NULL};
    float *lat = NULL, *img = NULL;
    int Z, h, w;
    sd_error err = {0};
    int zc = 0, f = 0;
    float sf;
    if ((rc = read_chw(cmd, ctx, o.in, names, &lat, &Z, &h, &w)) ||
        (rc = latent_geometry(cmd, m, o.taesd, &zc, &f, &sf)))
        goto out;
    if (Z != zc) {
        rc = sd_cli_fail(cmd, "%s: %d latent channels, the model takes %d", o.in, Z, zc);
        goto out;
    }
    int H = h * f, W = w * f;
    img = malloc((size_t)3 * (size_t)H * (size_t)W * sizeof(float));
    if (!img) {
        rc = sd_cli_fail(cmd, "out of memory");
        goto out;
    }
    sd_status st;
    if (o.taesd) {
        st = sd_taesd_decode(ctx, m, lat, h, w, img, &err);
        for (size_t i = 0; st == SD_OK && i < (size_t)3 * H * W; i++)
            img[i] = fminf(fmaxf(img[i], 0.0f), 1.0f);
    } else {
        sd_vae_opts vo = vae_opts(&o);
        st = sd_vae_latents_to_image(ctx, m, lat, h, w, &vo, img, &err);
    }
    if (st != SD_OK)
        rc = sd_cli_fail_err(cmd, &err);
    else
        rc = write_image(cmd, o.out, img, H, W, o.sixteen);
out:
    free(lat), free(img);
    sd_model_free(m);
    sd_ctx_free(ctx);
    return rc;
}

const sd_cli_cmd sd_cli_cmd_vae_decode = {
    "vae-decode",
    "-m MODEL -i LATENT.safetensors -o OUT.png|OUT.safetensors [--taesd] [--tile N] "
    "[--overlap N] [--fast] [--16bit] [-t THREADS]",
    "decode UNet-space latents (tensor 'latents' [1,Z,h,w]) to an image (PNG, or tensor "
    "'image' [1,3,H,W] in 0..1); --tile: -1 auto, 0 off, N latent px; --fast: one pass over "
    "the tiles",
    cmd_vae_decode};

/* ============================================================================================
 * sd vae-encode
 * ========================================================================================== */

static int cmd_vae_encode(int argc, char **argv)
{
    const char *cmd = "vae-encode";
    opts o;
    int rc = parse(cmd, argc, argv, &o);
    if (rc)
        return rc;
    if (!o.in || !o.out)
        return sd_cli_fail(cmd, "need -i IMAGE.png|IMAGE.safetensors and -o LATENT.safetensors");
    if (!ends_with(o.out, ".safetensors"))
        return sd_cli_fail(cmd, "%s: output must end in .safetensors", o.out);
    if (o.sample && o.taesd)
        return sd_cli_fail(cmd, "--sample: TAESD has no posterior to sample");
    if (o.seed && !o.sample)
        return sd_cli_fail(cmd, "--seed needs --sample");
    if (o.casefile || o.sixteen)
        return sd_cli_fail(cmd, "--case/--16bit do not apply to encoding");
    sd_ctx *ctx;
    sd_model *m;
    if ((rc = open_model(cmd, &o, &ctx, &m)))
        return rc;
    float *img = NULL, *lat = NULL, *noise = NULL;
    int H, W, Z, f;
    float sf;
    sd_error err = {0};
    if ((rc = read_image(cmd, ctx, o.in, &img, &H, &W)) ||
        (rc = latent_geometry(cmd, m, o.taesd, &Z, &f, &sf)))
        goto out;
    if (H % f || W % f) {
        rc = sd_cli_fail(cmd, "%s: %dx%d is not a multiple of %d pixels: crop or resize it",
                         o.in, W, H, f);
        goto out;
    }
    size_t n = (size_t)Z * (size_t)(H / f) * (size_t)(W / f);
    lat = malloc(n * sizeof(float));
    if (!lat) {
        rc = sd_cli_fail(cmd, "out of memory");
        goto out;
    }
    sd_status st;
    if (o.taesd) {
        st = sd_taesd_encode(ctx, m, img, H, W, lat, &err);
    } else {
        if (o.sample) {
            /* diffusers: latent_dist.sample(generator) draws randn of the latent's shape */
            sd_rng rng;
            sd_rng_seed(&rng, o.seed);
            noise = malloc(n * sizeof(float));
            if (!noise) {
                rc = sd_cli_fail(cmd, "out of memory");
                goto out;
            }
            sd_rng_randn(&rng, noise, n);
        }
        sd_vae_opts vo = vae_opts(&o);
        st = sd_vae_image_to_latents(ctx, m, img, H, W, noise, &vo, lat, &err);
    }
    if (st != SD_OK) {
        rc = sd_cli_fail_err(cmd, &err);
        goto out;
    }
    char meta[256];
    snprintf(meta, sizeof meta, "{\"what\": \"%s latents (UNet space)\", \"scaling_factor\": "
             "\"%.9g\", \"mode\": \"%s\"}", o.taesd ? "TAESD" : "VAE", (double)sf,
             o.taesd ? "taesd" : o.sample ? "sample" : "mean");
    rc = write_chw(cmd, o.out, "latents", lat, Z, H / f, W / f, meta);
out:
    free(img), free(lat), free(noise);
    sd_model_free(m);
    sd_ctx_free(ctx);
    return rc;
}

const sd_cli_cmd sd_cli_cmd_vae_encode = {
    "vae-encode",
    "-m MODEL -i IMAGE.png|IMAGE.safetensors -o LATENT.safetensors [--taesd] "
    "[--sample [--seed N]] [--tile N] [--overlap N] [--fast] [-t THREADS]",
    "encode an image (PNG, or tensor 'image' [1,3,H,W] in 0..1) to UNet-space latents "
    "(tensor 'latents'): posterior mean * scaling_factor, or with --sample a draw with "
    "torch's CPU generator seeded N (default 0), as diffusers' latent_dist.sample",
    cmd_vae_encode};

/* ============================================================================================
 * sd vae --case
 * ========================================================================================== */

/* Compare n values with the golden tolerance |c - ref| <= 1e-4 max|ref| + 1e-5; print one
 * line; true when within. */
static bool report(const char *what, const float *got, const float *ref, size_t n)
{
    double maxref = 0, maxerr = 0;
    bool nan = false;
    for (size_t i = 0; i < n; i++) {
        maxref = fmax(maxref, fabs(ref[i]));
        double d = fabs((double)got[i] - ref[i]);
        if (isnan(d))
            nan = true;
        else
            maxerr = fmax(maxerr, d);
    }
    double tol = 1e-4 * maxref + 1e-5;
    bool ok = !nan && maxerr <= tol;
    printf("%-16s max|err| %.3e  max|ref| %.3e  rel %.3e  tol %.3e  %s%s\n", what, maxerr,
           maxref, maxref > 0 ? maxerr / maxref : maxerr, tol, ok ? "ok" : "FAIL",
           nan ? " (NaN)" : "");
    return ok;
}

/* The case tensor `name` as float32 [numel]; *n receives the count. */
static int case_tensor(const char *cmd, sd_ctx *ctx, sd_st_file *f, const char *name,
                       float **out, size_t *n, int64_t shape[4])
{
    sd_error err = {0};
    const sd_tensor *t;
    *out = NULL;
    if (sd_st_get(f, name, &t, &err) != SD_OK)
        return sd_cli_fail_err(cmd, &err);
    if (t->ndim != 4 || t->shape[0] != 1)
        return sd_cli_fail(cmd, "case tensor '%s' is not [1, C, H, W]", name);
    *n = (size_t)sd_tensor_numel(t);
    memcpy(shape, t->shape, 4 * sizeof(int64_t));
    *out = malloc(*n * sizeof(float));
    if (!*out)
        return sd_cli_fail(cmd, "out of memory");
    if (sd_tensor_to_f32(ctx, t, *out, (int64_t)*n, &err) != SD_OK) {
        free(*out);
        *out = NULL;
        return sd_cli_fail(cmd, "case tensor '%s': %s", name, err.msg);
    }
    return 0;
}

/* Encode `image`, compare with `enc_refs`; decode each of `dec_in`, compare with `dec_refs`. */
static int run_case(const char *cmd, sd_ctx *ctx, const sd_model *m, sd_st_file *f, bool taesd,
                    const sd_vae_opts *vo)
{
    int rc = 0;
    bool all_ok = true;
    float *img = NULL, *a = NULL, *b = NULL, *ra = NULL, *rb = NULL;
    size_t ni, na, nb;
    int64_t si[4], sa[4], sb[4];
    sd_error err = {0};
    sd_status st;
    int z, factor;
    float sf;
    if ((rc = latent_geometry(cmd, m, taesd, &z, &factor, &sf)))
        return rc;
    /* encoder */
    if ((rc = case_tensor(cmd, ctx, f, "image", &img, &ni, si)) ||
        (rc = case_tensor(cmd, ctx, f, taesd ? "latents" : "posterior_mean", &ra, &na, sa)))
        goto out;
    if (!taesd && (rc = case_tensor(cmd, ctx, f, "posterior_logvar", &rb, &nb, sb)))
        goto out;
    a = malloc(na * sizeof(float)), b = malloc(na * sizeof(float));
    if (!a || !b) {
        rc = sd_cli_fail(cmd, "out of memory");
        goto out;
    }
    if (taesd)
        st = sd_taesd_encode(ctx, m, img, (int)si[2], (int)si[3], a, &err);
    else
        st = sd_vae_encode(ctx, m, img, (int)si[2], (int)si[3], vo, a, b, &err);
    if (st != SD_OK) {
        rc = sd_cli_fail_err(cmd, &err);
        goto out;
    }
    all_ok &= report(taesd ? "latents" : "posterior_mean", a, ra, na);
    if (!taesd)
        all_ok &= report("posterior_logvar", b, rb, na);
    free(ra), free(rb), free(a), free(b);
    ra = rb = a = b = NULL;
    /* decoder, on the case's latent and on its random latent */
    static const char *const vae_io[2][2] = {{"latent", "decoded"}, {"latent_rand",
                                                                     "decoded_rand"}};
    static const char *const taesd_io[2][2] = {{"latents", "decoded"}, {"latents_rand",
                                                                        "decoded_rand"}};
    for (int k = 0; k < 2; k++) {
        const char *const *io = taesd ? taesd_io[k] : vae_io[k];
        if ((rc = case_tensor(cmd, ctx, f, io[0], &a, &na, sa)) ||
            (rc = case_tensor(cmd, ctx, f, io[1], &rb, &nb, sb)))
            goto out;
        b = malloc(nb * sizeof(float));
        if (!b) {
            rc = sd_cli_fail(cmd, "out of memory");
            goto out;
        }
        if (taesd) {
            st = sd_taesd_decode(ctx, m, a, (int)sa[2], (int)sa[3], b, &err);
        } else {
            for (size_t i = 0; i < na; i++)
                a[i] /= sf;
            st = sd_vae_decode(ctx, m, a, (int)sa[2], (int)sa[3], vo, b, &err);
        }
        if (st != SD_OK) {
            rc = sd_cli_fail_err(cmd, &err);
            goto out;
        }
        all_ok &= report(io[1], b, rb, nb);
        free(a), free(b), free(rb);
        a = b = rb = NULL;
    }
    if (!all_ok)
        rc = sd_cli_fail(cmd, "outside the golden tolerance");
out:
    free(img), free(a), free(b), free(ra), free(rb);
    return rc;
}

static int cmd_vae(int argc, char **argv)
{
    const char *cmd = "vae";
    opts o;
    int rc = parse(cmd, argc, argv, &o);
    if (rc)
        return rc;
    if (!o.casefile)
        return sd_cli_fail(cmd, "need --case CASE.safetensors");
    if (o.in || o.out || o.sample || o.seed || o.sixteen)
        return sd_cli_fail(cmd, "-i/-o/--sample/--seed/--16bit do not apply to --case");
    sd_error err = {0};
    sd_st_file *f = NULL;
    if (sd_st_open(o.casefile, &f, &err) != SD_OK)
        return sd_cli_fail_err(cmd, &err);
    bool vae_case = sd_st_find(f, "posterior_mean") != NULL;
    bool taesd_case = !vae_case && sd_st_find(f, "latents_rand") != NULL;
    if (!vae_case && !taesd_case) {
        sd_st_close(f);
        return sd_cli_fail(cmd, "%s: neither a VAE case (posterior_mean) nor a TAESD case "
                           "(latents_rand)", o.casefile);
    }
    if (o.taesd != taesd_case) {
        sd_st_close(f);
        return sd_cli_fail(cmd, "%s is a %s case: %s --taesd", o.casefile,
                           taesd_case ? "TAESD" : "VAE", taesd_case ? "add" : "drop");
    }
    sd_ctx *ctx;
    sd_model *m;
    if ((rc = open_model(cmd, &o, &ctx, &m)) == 0) {
        sd_vae_opts vo = vae_opts(&o);
        rc = run_case(cmd, ctx, m, f, taesd_case, &vo);
        sd_model_free(m);
        sd_ctx_free(ctx);
    }
    sd_st_close(f);
    return rc;
}

const sd_cli_cmd sd_cli_cmd_vae = {
    "vae",
    "--case CASE.safetensors -m MODEL [--taesd] [--tile N] [--overlap N] [--fast] "
    "[-t THREADS]",
    "run a golden VAE (tiny-sd15/vae.safetensors) or TAESD case and print the errors; exit 1 "
    "outside |err| <= 1e-4 max|ref| + 1e-5",
    cmd_vae};
