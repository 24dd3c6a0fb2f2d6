/* tests/t_pipeline.c - every golden pipeline case replayed through the `sd` command line in
 * reference mode, both from the seed alone and from the recorded noise (--noise): the final
 * latents within 1e-4 * max|ref| and the image within 1e-4 of diffusers' (golden README).
 * Then each case once more with `--precision bf16` (the default precision of the plug-in on
 * a CPU with bf16 dot products): whole tiny pipelines whose final latents must stay within
 * BF16_REL_L2 (relative L2) of the golden ones and whose images must stay within
 * BF16_IMAGE_MEAN_ABS, and which must differ from the golden ones where the CPU has the
 * bf16 path (else the run was float32 and proved nothing). */
#include "harness.h"
#include "internal/kernels.h"
#include "internal/safetensors.h"

#include <math.h>

/* Measured on this machine (AVX512-BF16): final latents 0.024-0.074, image mean abs
 * 0.0037-0.0084 (about 2/255).  Each UNet evaluation moves by ~6.5e-3 (t_precision); the
 * guidance scale 7.5 multiplies the error of (cond - uncond) and the steps compound it.  A
 * wrong bf16 kernel gives ~1. */
#define BF16_REL_L2 0.1
#define BF16_IMAGE_MEAN_ABS 0.015

typedef struct gcase {
    const char *dir, *name;     /* tests/data/<dir>/pipeline_<name>.safetensors */
    const char *cmd;            /* sd subcommand */
    const char *flags;          /* sampler, steps, ... as the sidecar's diffusers call */
    bool image, mask;           /* pass init_image / mask */
} gcase;

static const char PROMPT[] = "a photograph of an astronaut riding a horse on the moon, "
                             "highly detailed";
static const char NEGATIVE[] = "blurry, low quality";

static const gcase cases[] = {
    {"tiny-sd15", "txt2img_euler", "txt2img",
     "--sampler euler --spacing linspace --steps 4 --seed 100", false, false},
    {"tiny-sd15", "txt2img_ddim", "txt2img",
     "--sampler ddim --spacing leading --steps 4 --seed 101", false, false},
    {"tiny-sd15", "txt2img_dpmpp2m", "txt2img",
     "--sampler dpmpp_2m --spacing linspace --steps 4 --seed 102", false, false},
    {"tiny-sd15", "txt2img_dpmpp2m_karras", "txt2img",
     "--sampler dpmpp_2m --karras --spacing linspace --steps 6 --seed 103", false, false},
    {"tiny-sd15", "txt2img_euler_a", "txt2img",
     "--sampler euler_a --spacing linspace --steps 5 --seed 104", false, false},
    {"tiny-sd15", "img2img", "img2img",
     "--sampler euler --spacing linspace --steps 10 --strength 0.6 --seed 105", true, false},
    {"tiny-sd15", "inpaint_legacy", "inpaint",
     "--sampler euler --spacing linspace --steps 8 --strength 0.75 --seed 106", true, true},
    {"tiny-sd15-inpaint", "inpaint", "inpaint",
     "--sampler ddim --spacing leading --steps 8 --strength 1 --seed 107", true, true},
    {"tiny-sd2v", "txt2img_euler", "txt2img",
     "--sampler euler --spacing linspace --steps 4 --seed 108", false, false},
};

/* Write tensor `src_name` of the case as a one-tensor file holding `dst_name`. */
static bool extract(const sd_st_file *f, const char *src_name, const char *dst_name,
                    const char *path)
{
    const sd_tensor *t = sd_st_tensor(f, src_name);
    if (!t)
        return false;
    const char *names[] = {dst_name};
    return sd_st_write(path, names, t, 1, NULL, NULL) == SD_OK;
}

static void compare_file(const char *what, const char *path, const char *tensor,
                         const sd_tensor *want, double atol, double rtol)
{
    sd_st_file *f = NULL;
    sd_error err = {0};
    if (sd_st_open(path, &f, &err) != SD_OK) {
        CHECK(0, "%s: %s", what, err.msg);
        return;
    }
    const sd_tensor *got = sd_st_tensor(f, tensor);
    CHECK(got && sd_tensor_numel(got) == sd_tensor_numel(want), "%s: %s shape", what, tensor);
    if (got && sd_tensor_numel(got) == sd_tensor_numel(want))
        t_close(what, got->data, want->data, (size_t)sd_tensor_numel(want), atol, rtol);
    sd_st_close(f);
}

/* Relative L2 distance of tensor `name` in `path` from `want` (mean_abs: the mean absolute
 * difference instead), or -1 if unreadable. */
static double diff_file(const char *path, const char *name, const sd_tensor *want,
                        bool mean_abs)
{
    sd_st_file *f = NULL;
    sd_error err = {0};
    if (sd_st_open(path, &f, &err) != SD_OK)
        return -1;
    const sd_tensor *got = sd_st_tensor(f, name);
    size_t n = (size_t)sd_tensor_numel(want);
    double r = -1;
    if (got && (size_t)sd_tensor_numel(got) == n) {
        const float *g = got->data, *w = want->data;
        if (mean_abs) {
            double a = 0;
            for (size_t i = 0; i < n; i++)
                a += fabs((double)g[i] - w[i]);
            r = a / (double)(n ? n : 1);
        } else {
            r = t_rel_l2(g, w, n);
        }
    }
    sd_st_close(f);
    return r;
}

/* One case: replay = --noise from the case file; bf16 = --precision bf16 (compared by
 * relative L2 instead of the reference tolerance). */
static void run_case(const gcase *c, bool replay, bool bf16)
{
    char casefile[512], model[512], args[4096], out[4096], errs[4096];
    snprintf(casefile, sizeof casefile, "%s", t_data(c->dir));
    snprintf(casefile + strlen(casefile), sizeof casefile - strlen(casefile),
             "/pipeline_%s.safetensors", c->name);
    snprintf(model, sizeof model, "%s/model-f16.safetensors", t_data(c->dir));
    sd_st_file *f = NULL;
    sd_error err = {0};
    if (sd_st_open(casefile, &f, &err) != SD_OK) {
        CHECK(0, "%s", err.msg);
        return;
    }
    char img[512] = "", mask[512] = "", lat[512], res[512];
    snprintf(lat, sizeof lat, "%s", t_tmp("pipe-latents.safetensors"));
    snprintf(res, sizeof res, "%s", t_tmp("pipe-image.safetensors"));
    remove(lat);
    remove(res);
    if (c->image) {
        snprintf(img, sizeof img, "%s", t_tmp("pipe-init.safetensors"));
        CHECK(extract(f, "init_image", "image", img), "%s: init_image", c->name);
    }
    if (c->mask) {
        snprintf(mask, sizeof mask, "%s", t_tmp("pipe-mask.safetensors"));
        CHECK(extract(f, "mask", "mask", mask), "%s: mask", c->name);
    }
    int n = snprintf(args, sizeof args,
                     "%s --reference -m '%s' -p '%s' -n '%s' --cfg 7.5 -W 128 -H 128 %s "
                     "--save-latents '%s' -o '%s'",
                     c->cmd, model, PROMPT, NEGATIVE, c->flags, lat, res);
    if (c->image)
        n += snprintf(args + n, sizeof args - n, " -i '%s'", img);
    if (c->mask)
        n += snprintf(args + n, sizeof args - n, " --mask '%s'", mask);
    if (replay)
        n += snprintf(args + n, sizeof args - n, " --noise '%s'", casefile);
    if (bf16)
        snprintf(args + n, sizeof args - n, " --precision bf16");
    int rc = t_run_sd(args, out, sizeof out, errs, sizeof errs);
    CHECK(rc == 0, "%s %s: rc %d: %s", c->dir, c->name, rc, errs);
    char what[256];
    snprintf(what, sizeof what, "%s/%s final_latents (%s)", c->dir, c->name,
             replay ? "--noise" : "--seed");
    const sd_tensor *fl = sd_st_tensor(f, "final_latents"), *im = sd_st_tensor(f, "image");
    if (rc == 0 && fl && im && bf16) {
        double e = diff_file(lat, "latents", fl, false), ei = diff_file(res, "image", im, true);
        bool native = sd_kernels_get()->native_bf16;
        CHECK(e >= 0 && e <= BF16_REL_L2 && (!native || e > 0),
              "%s/%s bf16 final_latents rel L2 %.3g vs golden (bound %g%s)", c->dir, c->name,
              e, BF16_REL_L2, native ? ", > 0 on this CPU" : "");
        CHECK(ei >= 0 && ei <= BF16_IMAGE_MEAN_ABS, "%s/%s bf16 image mean abs difference %.3g "
              "(bound %g)", c->dir, c->name, ei, BF16_IMAGE_MEAN_ABS);
        printf("ok   %s/%s bf16: final latents rel L2 %.3g, image mean abs %.3g\n", c->dir,
               c->name, e, ei);
    } else if (rc == 0 && fl && im) {
        compare_file(what, lat, "latents", fl, 0, 1e-4);
        snprintf(what, sizeof what, "%s/%s image (%s)", c->dir, c->name,
                 replay ? "--noise" : "--seed");
        compare_file(what, res, "image", im, 1e-4, 0);
    }
    sd_st_close(f);
}

int main(void)
{
    for (size_t i = 0; i < SD_ARRAY_LEN(cases); i++) {
        run_case(&cases[i], false, false);
        run_case(&cases[i], true, false);
        run_case(&cases[i], true, true);
    }
    char out[256], errs[512];
    int rc = t_run_sd("txt2img --precision half -m x -p x -o x.png", out, sizeof out, errs,
                      sizeof errs);
    CHECK(rc == 1 && strstr(errs, "--precision takes auto, fp32 or bf16"),
          "--precision half: exit %d, '%s'", rc, errs);
    return t_summary("t_pipeline");
}
