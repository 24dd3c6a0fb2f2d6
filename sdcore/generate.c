/* generate.c - the public face of the five filters (sd.h "Generation"): parameter defaults,
 * the model-family presets that fill "model default" fields, validation with messages a
 * user can act on, and sd_generate, which builds a run and hands it to the filter's
 * pipeline file.  The filters themselves live in pipeline_<task>.c. */
#include "internal/pipeline.h"

#include "internal/text_encoder.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *sd_task_name(sd_task t)
{
    static const char *const names[SD_TASK_COUNT] = {"txt2img", "img2img", "inpaint",
                                                     "outpaint", "denoise"};
    return (unsigned)t < SD_TASK_COUNT ? names[t] : "?";
}

const char *sd_fill_name(sd_fill f)
{
    static const char *const names[SD_FILL_COUNT] = {"original", "fill", "latent-noise",
                                                     "latent-nothing"};
    return (unsigned)f < SD_FILL_COUNT ? names[f] : "?";
}

sd_gen_params sd_gen_params_default(sd_task task)
{
    return (sd_gen_params){
        .task = task,
        .sampler = SD_SAMPLER_AUTO,
        .spacing = SD_SPACING_AUTO,
        .steps = 0,
        .cfg = -1.0f,
        .seed = -1,
        .strength = -1.0f,
        .mask_blur = 4.0f,
        .padding = 32,
        .fill = SD_FILL_ORIGINAL,
        .color_match = true,
    };
}

/* ---- presets ------------------------------------------------------------------------------
 * What a model is best run with when the caller leaves a field to the model:
 *   SD 1.x / 2.x base   DPM++ 2M Karras, 20 steps, guidance 7.5; 512 px (768 for SD 2.x
 *                       v-prediction models, which were trained at 768)
 *   SD-Turbo            Euler ancestral, trailing spacing, 1 step, no guidance, 512 px
 *   LCM                 LCM sampler, 4 steps, no guidance (cfg 1)
 * The spacing otherwise is each sampler's diffusers default: leading for DDIM and LCM,
 * linspace for Euler, Euler ancestral and DPM++. */

/* Prediction when no config states it: SD 2.x single files are overwhelmingly the 768-px
 * v-prediction 2.1 release; SD-Turbo and every other family predict epsilon. */
static sd_prediction default_prediction(const sd_model_info *mi)
{
    if (mi->prediction != SD_PREDICT_UNKNOWN)
        return mi->prediction;
    if (mi->family == SD_FAMILY_SD2 && mi->variant == SD_VARIANT_BASE)
        return SD_PREDICT_V;
    return SD_PREDICT_EPSILON;
}

void sd_gen_params_resolve(const sd_model *m, sd_gen_params *p)
{
    sd_model_info mi;
    sd_model_get_info(m, &mi);
    if (p->prediction == SD_PREDICT_UNKNOWN)
        p->prediction = default_prediction(&mi);
    const bool turbo = mi.variant == SD_VARIANT_TURBO, lcm = mi.variant == SD_VARIANT_LCM;
    if (p->sampler == SD_SAMPLER_AUTO) {
        p->sampler = turbo ? SD_SAMPLER_EULER_A : lcm ? SD_SAMPLER_LCM : SD_SAMPLER_DPMPP_2M;
        p->karras = !turbo && !lcm;
    }
    if (p->spacing == SD_SPACING_AUTO) {
        if (turbo)
            p->spacing = SD_SPACING_TRAILING;
        else if (p->sampler == SD_SAMPLER_DDIM || p->sampler == SD_SAMPLER_LCM)
            p->spacing = SD_SPACING_LEADING;
        else
            p->spacing = SD_SPACING_LINSPACE;
    }
    if (p->steps <= 0)
        p->steps = turbo ? 1 : lcm ? 4 : 20;
    if (p->cfg < 0)
        p->cfg = turbo ? 0.0f : lcm ? 1.0f : 7.5f;
    if (p->resolution <= 0)
        p->resolution = p->prediction == SD_PREDICT_V && mi.family == SD_FAMILY_SD2 ? 768 : 512;
    if (p->strength < 0 && p->task != SD_TASK_DENOISE)
        p->strength = p->task == SD_TASK_IMG2IMG ? 0.75f : 1.0f;
    if (p->karras && p->sampler != SD_SAMPLER_EULER && p->sampler != SD_SAMPLER_DPMPP_2M)
        p->karras = false;
}

/* ---- validation --------------------------------------------------------------------------- */

static sd_status check_image(const sd_image *im, int channels_ok, const char *what,
                             sd_error *err)
{
    if (!im || !im->data)
        return sd_fail(err, SD_ERR_INVALID_ARG, "%s is missing", what);
    sd_img v = sd_img_view(im->data, im->width, im->height, im->channels, im->stride);
    sd_status st = sd_img_check(&v, (unsigned)channels_ok, what, err);
    if (st)
        return st;
    /* one NaN or infinity (float layers can hold them) would spread through the VAE and
     * turn the whole result black: refuse it where it can still be named */
    for (int y = 0; y < im->height; y++) {
        const float *row = im->data + (size_t)y * im->stride;
        for (size_t k = 0; k < (size_t)im->width * (size_t)im->channels; k++)
            if (!isfinite(row[k]))
                return sd_fail(err, SD_ERR_INVALID_ARG,
                               "%s has a sample that is not a number (NaN or infinity) at "
                               "pixel (%zu, %d)", what, k / (size_t)im->channels, y);
    }
    return SD_OK;
}

static sd_status validate(const sd_model *m, const sd_gen_params *p, sd_error *err)
{
    sd_model_info mi;
    sd_model_get_info(m, &mi);
    if ((unsigned)p->task >= SD_TASK_COUNT)
        return sd_fail(err, SD_ERR_INVALID_ARG, "unknown task %d", (int)p->task);
    if (mi.family == SD_FAMILY_TAESD || !mi.has_unet)
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "%s is not a generation model (it has no UNet): choose a Stable "
                       "Diffusion checkpoint",
                       sd_family_name(mi.family));
    if (!mi.has_text_encoder)
        return sd_fail(err, SD_ERR_INVALID_ARG, "the model has no text encoder");
    if (!mi.has_vae && p->task != SD_TASK_TXT2IMG)
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "the model has no VAE: %s needs it to encode the picture (a TAESD model "
                       "only decodes here)", sd_task_name(p->task));
    if (!mi.has_vae && !p->taesd)
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "the model has no VAE: give a TAESD model to decode with");
    if (p->taesd) {
        sd_model_info ti;
        sd_model_get_info(p->taesd, &ti);
        if (ti.family != SD_FAMILY_TAESD)
            return sd_fail(err, SD_ERR_INVALID_ARG, "the preview decoder is not a TAESD model");
    }
    const bool inpaint_model = mi.unet_in_channels == 9;
    if (inpaint_model && p->task != SD_TASK_INPAINT && p->task != SD_TASK_OUTPAINT)
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "%s is an inpainting model: it serves inpaint and outpaint only; choose "
                       "a regular checkpoint for %s",
                       sd_family_name(mi.family), sd_task_name(p->task));
    if ((unsigned)p->sampler >= SD_SAMPLER_COUNT || (unsigned)p->spacing >= SD_SPACING_COUNT)
        return sd_fail(err, SD_ERR_INVALID_ARG, "unknown sampler or spacing");
    if (p->steps < 1 || p->steps > 1000)
        return sd_fail(err, SD_ERR_INVALID_ARG, "steps %d out of range 1..1000", p->steps);
    if (!isfinite(p->cfg) || p->cfg > 100)
        return sd_fail(err, SD_ERR_INVALID_ARG, "guidance %g out of range 0..100", p->cfg);
    if (p->seed < -1)
        return sd_fail(err, SD_ERR_INVALID_ARG, "seed %lld: use -1 (random) or >= 0",
                       (long long)p->seed);
    if (p->clip_skip < 0 || p->clip_skip > 12)
        return sd_fail(err, SD_ERR_INVALID_ARG, "clip skip %d out of range 0..12", p->clip_skip);
    if (p->resolution < 64 || p->resolution > 4096 || p->resolution % 8)
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "resolution %d out of range 64..4096 or not a multiple of 8",
                       p->resolution);
    if (p->task != SD_TASK_DENOISE && !(p->strength > 0 && p->strength <= 1))
        return sd_fail(err, SD_ERR_INVALID_ARG, "strength %g out of range (0, 1]", p->strength);
    if (p->task == SD_TASK_DENOISE && (isnan(p->strength) || p->strength > 1))
        return sd_fail(err, SD_ERR_INVALID_ARG, "strength %g out of range (0, 1]", p->strength);
    if (p->task == SD_TASK_DENOISE && (p->tile < 0 || (p->tile > 0 && p->tile < 64)))
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "denoise tile %d px: use 0 (the model's resolution) or at least 64",
                       p->tile);
    if (!(p->mask_blur >= 0 && p->mask_blur <= 256) || p->padding < 0 || p->padding > 4096)
        return sd_fail(err, SD_ERR_INVALID_ARG, "mask blur or padding out of range");
    if ((unsigned)p->fill >= SD_FILL_COUNT)
        return sd_fail(err, SD_ERR_INVALID_ARG, "unknown masked-content mode");
    if (p->memory_limit_mb < 0)
        return sd_fail(err, SD_ERR_INVALID_ARG, "memory limit must be >= 0 (0 = automatic)");
    if (p->n_noise_draws < 0 || (p->n_noise_draws > 0 && (!p->noise_draws || !p->noise_sizes)))
        return sd_fail(err, SD_ERR_INVALID_ARG, "replayed noise: arrays missing");
    sd_status st;
    switch (p->task) {
    case SD_TASK_TXT2IMG:
        if (p->width < 0 || p->height < 0 || p->width > SD_IMG_MAX_DIM ||
            p->height > SD_IMG_MAX_DIM)
            return sd_fail(err, SD_ERR_INVALID_ARG, "size %dx%d out of range", p->width,
                           p->height);
        if (p->reference && ((p->width && p->width % 8) || (p->height && p->height % 8)))
            return sd_fail(err, SD_ERR_INVALID_ARG,
                           "reference mode: width and height must be multiples of 8");
        return SD_OK;
    case SD_TASK_IMG2IMG:
    case SD_TASK_DENOISE:
    case SD_TASK_INPAINT:
    case SD_TASK_OUTPAINT:
        if ((st = check_image(p->init, (1 << 3) | (1 << 4), "the input image", err)))
            return st;
        if (p->reference && (p->init->width % 8 || p->init->height % 8))
            return sd_fail(err, SD_ERR_INVALID_ARG,
                           "reference mode: the image size must be a multiple of 8");
        break;
    case SD_TASK_COUNT:
        break;
    }
    if (p->task == SD_TASK_INPAINT && !p->mask)
        return sd_fail(err, SD_ERR_INVALID_ARG, "inpaint needs a mask (the selection)");
    if (p->mask) {
        if ((st = check_image(p->mask, 1 << 1, "the mask", err)))
            return st;
        if (p->mask->width != p->init->width || p->mask->height != p->init->height)
            return sd_fail(err, SD_ERR_INVALID_ARG, "the mask (%dx%d) and the image (%dx%d) "
                           "differ in size", p->mask->width, p->mask->height,
                           p->init->width, p->init->height);
        sd_img mv = sd_img_view(p->mask->data, p->mask->width, p->mask->height, 1,
                                p->mask->stride);
        if (p->task == SD_TASK_INPAINT && sd_mask_is_empty(&mv, 0.0f))
            return sd_fail(err, SD_ERR_INVALID_ARG,
                           "the selection is empty: select the area to inpaint first");
    }
    if (p->task == SD_TASK_OUTPAINT) {
        const int e[4] = {p->extend_left, p->extend_top, p->extend_right, p->extend_bottom};
        int sum = 0;
        for (int k = 0; k < 4; k++) {
            if (e[k] < 0 || e[k] > 8192)
                return sd_fail(err, SD_ERR_INVALID_ARG, "outpaint extension %d out of range "
                               "0..8192", e[k]);
            sum += e[k];
        }
        if (sum == 0)
            return sd_fail(err, SD_ERR_INVALID_ARG,
                           "outpaint: give at least one side to extend");
    }
    return SD_OK;
}

/* A random seed when the caller asked for one: time and pid through splitmix64, kept
 * within 0..2^32-1 like A1111's seeds so it can be typed back in. */
static int64_t random_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t z = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid() << 40;
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (int64_t)(z & 0xFFFFFFFFull);
}

/* ---- the entry point ----------------------------------------------------------------------- */

sd_status sd_generate(sd_ctx *ctx, const sd_model *m, const sd_gen_params *params,
                      sd_gen_result *out, sd_error *err)
{
    if (!out)
        return sd_fail(err, SD_ERR_INVALID_ARG, "sd_generate: out is NULL");
    memset(out, 0, sizeof *out);
    if (!ctx || !m || !params)
        return sd_fail(err, SD_ERR_INVALID_ARG, "sd_generate: ctx, model and params needed");
    sd_gen_params p = *params;
    sd_gen_params_resolve(m, &p);
    sd_status st = validate(m, &p, err);
    if (st)
        return st;
    if (p.seed < 0)
        p.seed = random_seed();

    sd_run r;
    if ((st = sd_run_init(&r, ctx, m, &p, err)))
        return st;
    if ((st = sd_run_check_memory(&r, err))) {
        sd_run_free(&r);
        return st;
    }
    sd_img img = {0};
    float sigma = -1;
    switch (p.task) {
    case SD_TASK_TXT2IMG:
        st = sd_pipeline_txt2img(&r, &img, err);
        break;
    case SD_TASK_IMG2IMG:
        st = sd_pipeline_img2img(&r, &img, err);
        break;
    case SD_TASK_INPAINT:
        st = sd_pipeline_inpaint(&r, &img, err);
        break;
    case SD_TASK_OUTPAINT:
        st = sd_pipeline_outpaint(&r, &img, err);
        break;
    case SD_TASK_DENOISE:
        st = sd_pipeline_denoise(&r, &img, &sigma, err);
        break;
    case SD_TASK_COUNT:
        st = sd_fail(err, SD_ERR_INTERNAL, "unknown task");
        break;
    }
    if (st == SD_OK && r.cancelled)
        st = SD_CANCELLED;
    if (st == SD_CANCELLED)
        sd_fail(err, SD_CANCELLED, "cancelled");
    if (st != SD_OK) {
        sd_img_free(&img);
        sd_run_free(&r);
        return st;
    }
    out->image = (sd_image){img.w, img.h, img.c, img.stride, img.data};
    out->seed = p.seed;
    out->strength = r.p.strength;
    out->noise_sigma = sigma;
    sd_run_free(&r);
    return SD_OK;
}

void sd_image_free(sd_image *img)
{
    if (!img)
        return;
    sd_free(img->data);
    memset(img, 0, sizeof *img);
}

void sd_gen_result_free(sd_gen_result *r)
{
    if (!r)
        return;
    sd_image_free(&r->image);
    memset(r, 0, sizeof *r);
}
