/* tests/t_pipeline.c - every golden pipeline case replayed through the `sd` command line in
 * reference mode, both from the seed alone and from the recorded noise (--noise): the final
 * latents within 1e-4 * max|ref| and the image within 1e-4 of diffusers' (golden README). */
#include "harness.h"
#include "internal/safetensors.h"

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

static void run_case(const gcase *c, bool replay)
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
        snprintf(args + n, sizeof args - n, " --noise '%s'", casefile);
    int rc = t_run_sd(args, out, sizeof out, errs, sizeof errs);
    CHECK(rc == 0, "%s %s: rc %d: %s", c->dir, c->name, rc, errs);
    char what[256];
    snprintf(what, sizeof what, "%s/%s final_latents (%s)", c->dir, c->name,
             replay ? "--noise" : "--seed");
    const sd_tensor *fl = sd_st_tensor(f, "final_latents"), *im = sd_st_tensor(f, "image");
    if (rc == 0 && fl && im) {
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
        run_case(&cases[i], false);
        run_case(&cases[i], true);
    }
    return t_summary("t_pipeline");
}
