/* worker.c - one generation on a worker thread, so that the dialog stays responsive.
 *
 * libgimp has one pipe to GIMP and no lock, and GTK 2 belongs to the main thread, so the
 * worker touches neither: it runs sdp_job_generate (the engine; the job's pixels were read
 * by the main thread) and publishes what the engine's callbacks report (they fire on the
 * worker thread) under a mutex: the latest progress and the latest preview, already turned
 * into a pixbuf (gdk-pixbuf is not GTK and is safe on its own objects).  The dialog's
 * g_timeout on the main thread polls them and updates the widgets; when the thread has ended
 * the main thread joins it and commits the result to the image.  Cancel sets an atomic flag
 * that the next progress callback (the engine calls it between UNet blocks) turns into
 * "stop". */
#include "sdui.h"

#include <string.h>

struct sdui_worker {
    GThread *thread;
    sdp_job *job;
    sdp_engine *engine;
    gchar *taesd_path;
    gint cancel;                 /* atomic: the user pressed Cancel */
    gint done;                   /* atomic: the thread has finished its work */
    GMutex lock;                 /* guards the fields below */
    sd_progress progress;
    gboolean have_progress;
    GdkPixbuf *preview;          /* newest preview not yet taken by a poll */
    /* written by the thread before `done`, read after the join */
    gboolean ok, taesd_used;
    GError *error;
};

GdkPixbuf *sdui_pixbuf_from_image(const sd_image *img, int size)
{
    if (!img || !img->data || img->width <= 0 || img->height <= 0 ||
        (img->channels != 3 && img->channels != 4))
        return NULL;
    gboolean alpha = img->channels == 4;
    GdkPixbuf *full = gdk_pixbuf_new(GDK_COLORSPACE_RGB, alpha, 8, img->width, img->height);
    if (!full)
        return NULL;
    guchar *pixels = gdk_pixbuf_get_pixels(full);
    int rowstride = gdk_pixbuf_get_rowstride(full);
    for (int y = 0; y < img->height; y++) {
        const float *src = img->data + (size_t)y * img->stride;
        guchar *dst = pixels + (size_t)y * (size_t)rowstride;
        for (int x = 0; x < img->width * img->channels; x++)
            dst[x] = (guchar)(CLAMP(src[x], 0.0f, 1.0f) * 255.0f + 0.5f);
    }
    double s = MIN((double)size / img->width, (double)size / img->height);
    int w = MAX(1, (int)(img->width * s + 0.5)), h = MAX(1, (int)(img->height * s + 0.5));
    GdkPixbuf *scaled = gdk_pixbuf_scale_simple(full, w, h, GDK_INTERP_BILINEAR);
    g_object_unref(full);
    return scaled;
}

/* ---------------------------------------------------------------------------------------
 * The thread and the engine's callbacks (worker thread)
 * ------------------------------------------------------------------------------------- */

static bool on_progress(const sd_progress *p, void *user)
{
    sdui_worker *w = user;
    g_mutex_lock(&w->lock);
    w->progress = *p;
    w->have_progress = TRUE;
    g_mutex_unlock(&w->lock);
    return !g_atomic_int_get(&w->cancel);
}

static void on_preview(const sd_image *img, const sd_progress *p, void *user)
{
    sdui_worker *w = user;
    GdkPixbuf *pb = sdui_pixbuf_from_image(img, SDUI_PREVIEW_SIZE);
    g_mutex_lock(&w->lock);
    if (pb) {
        if (w->preview)
            g_object_unref(w->preview);
        w->preview = pb;
    }
    w->progress = *p;
    w->have_progress = TRUE;
    g_mutex_unlock(&w->lock);
}

static gpointer thread_main(gpointer data)
{
    sdui_worker *w = data;
    const sd_model *taesd = NULL;
    if (w->taesd_path)
        w->taesd_used = sdp_engine_taesd(w->engine, w->taesd_path, &taesd, NULL);
    sdp_hooks h = {.progress = on_progress, .preview = on_preview, .user = w, .taesd = taesd};
    w->ok = sdp_job_generate(w->job, w->engine, &h, &w->error);
    g_atomic_int_set(&w->done, 1);
    return NULL;
}

/* ---------------------------------------------------------------------------------------
 * The main thread's side
 * ------------------------------------------------------------------------------------- */

sdui_worker *sdui_worker_start(sdp_job *j, sdp_engine *e, const char *taesd_path)
{
    sdui_worker *w = g_new0(sdui_worker, 1);
    w->job = j;
    w->engine = e;
    w->taesd_path = g_strdup(taesd_path);
    g_mutex_init(&w->lock);
    w->thread = g_thread_new("sd-generate", thread_main, w);
    return w;
}

gboolean sdui_worker_poll(sdui_worker *w, sd_progress *p, gboolean *have, GdkPixbuf **preview)
{
    gboolean running = !g_atomic_int_get(&w->done);
    g_mutex_lock(&w->lock);
    *p = w->progress;
    *have = w->have_progress;
    *preview = w->preview;
    w->preview = NULL;
    g_mutex_unlock(&w->lock);
    return running;
}

void sdui_worker_cancel(sdui_worker *w)
{
    g_atomic_int_set(&w->cancel, 1);
}

gboolean sdui_worker_cancelled(sdui_worker *w)
{
    return g_atomic_int_get(&w->cancel) != 0;
}

gboolean sdui_worker_finish(sdui_worker *w, gboolean *taesd_used, GError **error)
{
    g_thread_join(w->thread);
    gboolean ok = w->ok;
    *taesd_used = w->taesd_used;
    if (!ok)
        g_propagate_error(error, w->error);
    if (w->preview)
        g_object_unref(w->preview);
    g_mutex_clear(&w->lock);
    g_free(w->taesd_path);
    g_free(w);
    return ok;
}
