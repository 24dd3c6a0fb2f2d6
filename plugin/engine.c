/* engine.c - the plug-in's hold on sdcore: one engine ctx and the one model it keeps loaded,
 * reused while the same file is asked for, plus the TAESD decoder the dialog's previews use.
 * In the resident process this object lives as long as GIMP does, which is what makes the
 * second filter call skip the model load; in a dialog it lives while the dialog is open; in a
 * filter's own process it lives for one call.  Counters feed plug-in-sd-resident-status.
 * Nothing here calls libgimp, so the dialog's worker thread may use an engine (one thread at
 * a time). */
#include "sdp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct sdp_engine {
    sd_ctx *ctx;
    sd_model *model;
    gchar *path;                 /* real path of the loaded model, NULL when none */
    struct stat st;              /* identity of the loaded file when it was loaded */
    sd_model *taesd;             /* preview decoder, NULL when none */
    gchar *taesd_path;           /* the path it was asked for */
    int loads, calls;
};

sdp_engine *sdp_engine_new(void)
{
    return g_new0(sdp_engine, 1);
}

void sdp_engine_release(sdp_engine *e)
{
    sd_model_free(e->model);
    e->model = NULL;
    g_free(e->path);
    e->path = NULL;
}

void sdp_engine_free(sdp_engine *e)
{
    if (!e)
        return;
    sdp_engine_release(e);
    sd_model_free(e->taesd);
    g_free(e->taesd_path);
    sd_ctx_free(e->ctx);
    g_free(e);
}

/* Threads: $SD_THREADS when set (1..1024), else all cores. */
static int n_threads(void)
{
    const char *s = g_getenv("SD_THREADS");
    int n = s ? atoi(s) : 0;
    return n >= 1 && n <= 1024 ? n : 0;
}

gboolean sdp_engine_ctx(sdp_engine *e, sd_ctx **ctx, GError **error)
{
    if (!e->ctx) {
        sd_error err = {0};
        sd_ctx_params cp = sd_ctx_params_default();
        cp.n_threads = n_threads();
        cp.precision = SD_PRECISION_AUTO; /* bf16 products where fast; $SD_PRECISION=fp32 */
        if (sd_ctx_new(&cp, &e->ctx, &err) != SD_OK) {
            g_set_error(error, SDP_ERROR, SDP_ERROR_FAILED,
                        "the Stable Diffusion engine could not start: %s", err.msg);
            return FALSE;
        }
    }
    *ctx = e->ctx;
    return TRUE;
}

static gboolean same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* What the model lacks to generate, or NULL when it can. */
static const char *cannot_generate(const sd_model_info *info)
{
    if (info->family == SD_FAMILY_TAESD)
        return "is a TAESD autoencoder on its own, not a Stable Diffusion checkpoint (it "
               "can only serve previews)";
    if (!info->has_unet)
        return "has no UNet";
    if (!info->has_text_encoder)
        return "has no text encoder";
    if (!info->has_vae)
        return "has no VAE";
    return NULL;
}

gboolean sdp_engine_model(sdp_engine *e, const char *path, const sd_model **model,
                          GError **error)
{
    sd_ctx *ctx;
    if (!sdp_engine_ctx(e, &ctx, error))
        return FALSE;
    gchar *real = realpath(path, NULL);
    struct stat st;
    if (!real || stat(real, &st) != 0) {
        g_set_error(error, SDP_ERROR, SDP_ERROR_MODEL, "model %s cannot be opened: %s", path,
                    g_strerror(errno));
        free(real);
        return FALSE;
    }
    if (e->model && g_strcmp0(e->path, real) == 0 && same_file(&e->st, &st)) {
        free(real);
        *model = e->model;
        return TRUE;
    }
    sdp_engine_release(e);
    sd_error err = {0};
    sd_model *m = NULL;
    if (sd_model_load(ctx, real, &m, &err) != SD_OK) {
        if (strstr(err.msg, real) || strstr(err.msg, path))
            g_set_error(error, SDP_ERROR, SDP_ERROR_MODEL, "the model could not be loaded: %s",
                        err.msg);
        else
            g_set_error(error, SDP_ERROR, SDP_ERROR_MODEL, "model %s could not be loaded: %s",
                        path, err.msg);
        free(real);
        return FALSE;
    }
    sd_model_info info;
    sd_model_get_info(m, &info);
    const char *why = cannot_generate(&info);
    if (why) {
        if (info.family == SD_FAMILY_TAESD)
            g_set_error(error, SDP_ERROR, SDP_ERROR_MODEL, "model %s %s", path, why);
        else
            g_set_error(error, SDP_ERROR, SDP_ERROR_MODEL, "model %s (%s) %s", path,
                        sd_family_name(info.family), why);
        sd_model_free(m);
        free(real);
        return FALSE;
    }
    e->model = m;
    e->path = g_strdup(real);
    e->st = st;
    e->loads++;
    free(real);
    *model = m;
    return TRUE;
}

gboolean sdp_engine_taesd(sdp_engine *e, const char *path, const sd_model **taesd,
                          GError **error)
{
    if (!e->taesd || g_strcmp0(e->taesd_path, path) != 0) {
        sd_model_free(e->taesd);
        e->taesd = NULL;
        g_free(e->taesd_path);
        e->taesd_path = NULL;
        sd_error err = {0};
        sd_model *m = NULL;
        if (sd_model_load(NULL, path, &m, &err) != SD_OK) {
            g_set_error(error, SDP_ERROR, SDP_ERROR_MODEL, "preview decoder: %s", err.msg);
            return FALSE;
        }
        sd_model_info info;
        sd_model_get_info(m, &info);
        if (info.family != SD_FAMILY_TAESD || !info.has_taesd_decoder) {
            g_set_error(error, SDP_ERROR, SDP_ERROR_MODEL,
                        "preview decoder %s is not a TAESD decoder", path);
            sd_model_free(m);
            return FALSE;
        }
        e->taesd = m;
        e->taesd_path = g_strdup(path);
    }
    *taesd = e->taesd;
    return TRUE;
}

gboolean sdp_model_probe(const char *path, sd_task task, sd_model_info *info,
                         sd_gen_params *defaults, GError **error)
{
    sd_error err = {0};
    sd_model *m = NULL;
    if (sd_model_load(NULL, path, &m, &err) != SD_OK) {
        g_set_error_literal(error, SDP_ERROR, SDP_ERROR_MODEL, err.msg);
        return FALSE;
    }
    sd_model_get_info(m, info);
    if (defaults) {
        *defaults = sd_gen_params_default(task);
        sd_gen_params_resolve(m, defaults);
    }
    sd_model_free(m);
    return TRUE;
}

int sdp_engine_loads(const sdp_engine *e)
{
    return e->loads;
}

int sdp_engine_calls(const sdp_engine *e)
{
    return e->calls;
}

void sdp_engine_count_call(sdp_engine *e)
{
    e->calls++;
}

const char *sdp_engine_model_path(const sdp_engine *e)
{
    return e->path;
}
