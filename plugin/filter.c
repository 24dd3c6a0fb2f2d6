/* filter.c - one run of a filter on the GIMP side: check the image and the layer, plan the
 * geometry (which pixels go in, where the new layer goes), find and load the model, read the
 * pixels and the selection, call sd_generate with progress, and only when it succeeded change
 * the image, inside one undo group: grow the canvas (outpaint), add the result layer above
 * the source layer, attach the parameters as a parasite.  The source layer's pixels are never
 * written, and a failure before the commit leaves the image untouched.
 *
 * The run is split into sdp_job_prepare (main thread), sdp_job_generate (any thread: no
 * libgimp) and sdp_job_commit (main thread), so that the dialog generates on a worker thread
 * with exactly the code the non-interactive path runs in a row (sdp_run_filter).
 *
 * Geometry (drawable coordinates unless said otherwise; `sel` is the selection's soft mask):
 *   txt2img   the selection's bounds (image coordinates), else the canvas; width/height
 *             override the size; the layer's alpha is the selection.
 *   img2img   init = the selection/layer intersection plus `padding`, clipped to the layer;
 *             the engine composites through the selection; the layer covers the
 *             intersection with alpha = result alpha * sel.
 *   inpaint   init = the whole layer (context for the engine's "only masked" crop), mask = the
 *             selection (required); the layer covers the intersection, alpha as img2img.
 *   denoise   init = the intersection; the layer covers it, alpha as img2img.
 *   outpaint  init = the whole layer; extend-* grow the canvas by those amounts (all 0: fill
 *             what the layer leaves uncovered of the canvas, no resize); the layer covers the
 *             grown area with the engine's alpha.  The selection is not used.
 * Alpha through the selection keeps every pixel outside it exactly as it was in the
 * composite, whatever the layer's own alpha. */
#include "sdp.h"

#include <string.h>

struct sdp_job {
    sdp_filter f;
    gboolean new_image;
    gint32 image, drawable;
    sdp_vals vals;               /* the values of this run (a copy) */
    const sdp_vals *v;           /* = &vals */
    gchar *model_path;           /* resolved by the prepare */
    gchar *model_file;           /* the real path the engine loaded (parasite) */
    gint32 seed;                 /* drawn by the prepare when vals.seed is -1 */
    gboolean has_sel;            /* the image has a non-empty selection */
    sdp_rect init_r;             /* init rectangle, drawable coordinates */
    sdp_rect layer_r;            /* result layer, image coordinates after the commit */
    sdp_rect crop;               /* the part of the engine's result that becomes the layer */
    int gen_w, gen_h;            /* txt2img: size asked of the engine (0 = native) */
    int ext[4];                  /* outpaint: left, top, right, bottom */
    gboolean resize;             /* outpaint grows the canvas by ext */
    int seen[6];                 /* layer x, y, w, h and canvas w, h when planned */
    sd_image init, mask, sel;    /* sel covers layer_r; empty without a selection */
    sd_gen_result r;             /* the engine's result, after the generation */
    sd_image px;                 /* the result layer's pixels, after the generation */
};
typedef struct sdp_job job;

static gboolean fail(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static gboolean fail(GError **error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gchar *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(error, SDP_ERROR, SDP_ERROR_FAILED, msg);
    g_free(msg);
    return FALSE;
}

/* ---------------------------------------------------------------------------------------
 * Checks and geometry
 * ------------------------------------------------------------------------------------- */

static gboolean check_target(gint32 image, gint32 drawable, GError **error)
{
    if (!gimp_image_is_valid(image)) {
        g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING, "image %d does not exist", (int)image);
        return FALSE;
    }
    if (!gimp_item_is_valid(drawable) || gimp_item_get_image(drawable) != image) {
        g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING, "drawable %d is not an item of image %d",
                    (int)drawable, (int)image);
        return FALSE;
    }
    if (gimp_image_base_type(image) == GIMP_INDEXED)
        return fail(error, "indexed images are not supported: convert the image to RGB or "
                           "grayscale first (Image > Mode)");
    if (!gimp_item_is_layer(drawable))
        return fail(error, "the active drawable is not a layer (a channel or a layer mask?): "
                           "select a layer");
    if (gimp_item_is_group(drawable))
        return fail(error, "the active layer is a layer group: select a layer inside it");
    return TRUE;
}

static sdp_rect clip(sdp_rect r, int w, int h)
{
    int x0 = MAX(r.x, 0), y0 = MAX(r.y, 0);
    int x1 = MIN(r.x + r.w, w), y1 = MIN(r.y + r.h, h);
    return (sdp_rect){x0, y0, MAX(x1 - x0, 0), MAX(y1 - y0, 0)};
}

static gboolean plan(job *j, GError **error)
{
    const sdp_vals *v = j->v;
    if (j->new_image) {
        j->gen_w = v->width;
        j->gen_h = v->height;
        return TRUE;
    }
    j->has_sel = !gimp_selection_is_empty(j->image);
    int ox, oy;
    gimp_drawable_offsets(j->drawable, &ox, &oy);
    int dw = gimp_drawable_width(j->drawable), dh = gimp_drawable_height(j->drawable);
    int cw = gimp_image_width(j->image), ch = gimp_image_height(j->image);
    const int seen[6] = {ox, oy, dw, dh, cw, ch};
    memcpy(j->seen, seen, sizeof seen);

    if (j->f == SDP_TXT2IMG) {
        sdp_rect t = {0, 0, cw, ch};
        if (j->has_sel) {
            gboolean non_empty;
            gint x1, y1, x2, y2;
            gimp_selection_bounds(j->image, &non_empty, &x1, &y1, &x2, &y2);
            t = (sdp_rect){x1, y1, x2 - x1, y2 - y1};
        }
        j->gen_w = v->width ? v->width : t.w;
        j->gen_h = v->height ? v->height : t.h;
        j->layer_r = (sdp_rect){t.x, t.y, j->gen_w, j->gen_h};
        j->crop = (sdp_rect){0, 0, j->gen_w, j->gen_h};
        return TRUE;
    }

    if (j->f == SDP_OUTPAINT) {
        int l = v->extend_left, t = v->extend_top, r = v->extend_right, b = v->extend_bottom;
        j->resize = l || t || r || b;
        if (!j->resize) {
            l = MAX(ox, 0);
            t = MAX(oy, 0);
            r = MAX(cw - (ox + dw), 0);
            b = MAX(ch - (oy + dh), 0);
            if (!(l || t || r || b))
                return fail(error, "nothing to outpaint: the layer covers the canvas; set "
                                   "extend-left/top/right/bottom to grow it");
        }
        j->ext[0] = l, j->ext[1] = t, j->ext[2] = r, j->ext[3] = b;
        j->init_r = (sdp_rect){0, 0, dw, dh};
        j->crop = (sdp_rect){0, 0, dw + l + r, dh + t + b};
        /* gimp_image_resize moves every layer by (l, t): the source then sits at
         * (ox + l, oy + t) and the grown area starts l, t px before it. */
        j->layer_r = j->resize ? (sdp_rect){ox, oy, j->crop.w, j->crop.h}
                               : (sdp_rect){ox - l, oy - t, j->crop.w, j->crop.h};
        return TRUE;
    }

    if (j->f == SDP_INPAINT && !j->has_sel)
        return fail(error, "inpaint needs a selection: select the area to regenerate first");
    gint x, y, w, h;
    if (!gimp_drawable_mask_intersect(j->drawable, &x, &y, &w, &h) || w <= 0 || h <= 0)
        return fail(error, "the selection does not overlap the active layer");
    sdp_rect in = {x, y, w, h};
    switch (j->f) {
    case SDP_IMG2IMG:
        j->init_r = clip((sdp_rect){x - v->padding, y - v->padding, w + 2 * v->padding,
                                    h + 2 * v->padding},
                         dw, dh);
        break;
    case SDP_INPAINT:
        j->init_r = (sdp_rect){0, 0, dw, dh};
        break;
    case SDP_DENOISE:
        j->init_r = in;
        break;
    case SDP_TXT2IMG:
    case SDP_OUTPAINT:
    case SDP_N_FILTERS:
        break;
    }
    j->crop = (sdp_rect){x - j->init_r.x, y - j->init_r.y, w, h};
    j->layer_r = (sdp_rect){ox + x, oy + y, w, h};
    return TRUE;
}

static gboolean read_inputs(job *j, GError **error)
{
    if (j->new_image)
        return TRUE;
    if (j->f != SDP_TXT2IMG && !sdp_read_rgba(j->drawable, j->init_r, &j->init, error))
        return FALSE;
    if (!j->has_sel || j->f == SDP_OUTPAINT)
        return TRUE;
    if (!sdp_read_selection(j->image, j->layer_r, &j->sel, error))
        return FALSE;
    if (j->f == SDP_IMG2IMG || j->f == SDP_INPAINT) {
        int ox, oy;
        gimp_drawable_offsets(j->drawable, &ox, &oy);
        sdp_rect r = {ox + j->init_r.x, oy + j->init_r.y, j->init_r.w, j->init_r.h};
        if (!sdp_read_selection(j->image, r, &j->mask, error))
            return FALSE;
    }
    return TRUE;
}

/* ---------------------------------------------------------------------------------------
 * The engine call
 * ------------------------------------------------------------------------------------- */

typedef struct progress {
    gint64 last;                 /* monotonic time of the last PDB progress call */
    int shown;                   /* phase whose text is shown, -1 none */
    const char *what;            /* "SD inpaint" */
    sdp_alive_fn alive;          /* FALSE: stop (the caller has gone); NULL: never stop */
} progress;

static const char *phase_text(sd_phase p)
{
    switch (p) {
    case SD_PHASE_TEXT:
        return "encoding the prompt";
    case SD_PHASE_ENCODE:
        return "encoding the image";
    case SD_PHASE_SAMPLE:
        return "sampling";
    case SD_PHASE_DECODE:
        return "decoding";
    }
    return "working";
}

/* Every gimp_progress_* call is a round trip to the core: at most one per 100 ms. */
static bool on_progress(const sd_progress *p, void *user)
{
    progress *pr = user;
    if (pr->alive && !pr->alive())
        return false;
    gint64 now = g_get_monotonic_time();
    if (now - pr->last < 100000)
        return true;
    pr->last = now;
    if ((int)p->phase != pr->shown) {
        pr->shown = (int)p->phase;
        gimp_progress_set_text_printf("%s: %s", pr->what, phase_text(p->phase));
    }
    if (p->n_steps > 0)
        gimp_progress_update(CLAMP((double)p->step / p->n_steps, 0.0, 1.0));
    return true;
}

/* $SD_MEMORY_LIMIT_MB caps what one generation may use (the engine refuses a request it
 * estimates above it); unset or 0: 90 % of the memory the system has available. */
static int64_t memory_limit_mb(void)
{
    const char *s = g_getenv("SD_MEMORY_LIMIT_MB");
    gint64 mb = s ? g_ascii_strtoll(s, NULL, 10) : 0;
    return mb > 0 ? mb : 0;
}

static sd_gen_params gen_params(const job *j, gint32 seed)
{
    const sdp_vals *v = j->v;
    sd_gen_params p = sd_gen_params_default(sdp_filter_task(j->f));
    p.prompt = v->prompt;
    p.negative_prompt = v->negative[0] ? v->negative : NULL;
    p.sampler = (sd_sampler_kind)v->sampler;
    p.spacing = (sd_spacing)v->spacing;
    p.karras = v->karras != 0;
    p.steps = v->steps;
    p.cfg = (float)v->cfg;
    p.seed = seed;
    p.clip_skip = v->clip_skip;
    p.prediction = (sd_prediction)v->prediction;
    p.resolution = v->resolution;
    p.memory_limit_mb = memory_limit_mb();
    switch (j->f) {
    case SDP_TXT2IMG:
        p.width = j->gen_w;
        p.height = j->gen_h;
        break;
    case SDP_IMG2IMG:
        p.strength = (float)v->strength;
        p.mask_blur = (float)v->mask_blur;
        break;
    case SDP_INPAINT:
        p.strength = (float)v->strength;
        p.mask_blur = (float)v->mask_blur;
        p.padding = v->padding;
        p.fill = (sd_fill)v->fill;
        p.whole_image = v->whole_image != 0;
        p.color_match = v->color_match != 0;
        break;
    case SDP_OUTPAINT:
        p.mask_blur = (float)v->mask_blur;
        p.color_match = v->color_match != 0;
        p.extend_left = j->ext[0];
        p.extend_top = j->ext[1];
        p.extend_right = j->ext[2];
        p.extend_bottom = j->ext[3];
        break;
    case SDP_DENOISE:
        p.strength = (float)v->strength;
        p.tile = v->tile;
        break;
    case SDP_N_FILTERS:
        break;
    }
    if (j->init.data)
        p.init = &j->init;
    if (j->mask.data)
        p.mask = &j->mask;
    return p;
}

/* The engine's status as a GError a user can act on. */
static gboolean engine_failed(sd_status st, const sd_error *err, GError **error)
{
    const char *msg = err->msg[0] ? err->msg : sd_status_str(st);
    switch (st) {
    case SD_CANCELLED:
        g_set_error_literal(error, SDP_ERROR, SDP_ERROR_CANCELLED, "cancelled");
        break;
    case SD_ERR_TOO_LARGE:
    case SD_ERR_NOMEM:
        if (st == SD_ERR_TOO_LARGE && memory_limit_mb() > 0)
            g_set_error(error, SDP_ERROR, SDP_ERROR_MEMORY,
                        "%s; the limit comes from $SD_MEMORY_LIMIT_MB", msg);
        else
            g_set_error_literal(error, SDP_ERROR, SDP_ERROR_MEMORY, msg);
        break;
    default:
        g_set_error_literal(error, SDP_ERROR, SDP_ERROR_FAILED, msg);
        break;
    }
    return FALSE;
}

/* The size the engine's result must have for this job. */
static void expected_size(const job *j, const sd_image *res, int *w, int *h)
{
    *w = j->crop.x + j->crop.w, *h = j->crop.y + j->crop.h;
    if (j->f == SDP_TXT2IMG && j->new_image)
        *w = j->gen_w ? j->gen_w : res->width, *h = j->gen_h ? j->gen_h : res->height;
    else if (j->f != SDP_TXT2IMG && j->f != SDP_OUTPAINT)
        *w = j->init_r.w, *h = j->init_r.h;
}

/* The layer's pixels: the crop of the result, alpha multiplied by the selection. */
static gboolean layer_pixels(const job *j, const sd_image *res, sd_image *out, GError **error)
{
    sdp_rect c = j->crop;
    if (j->new_image)
        c = (sdp_rect){0, 0, res->width, res->height};
    if (!sdp_image_alloc(c.w, c.h, 4, out, error))
        return FALSE;
    for (int y = 0; y < c.h; y++) {
        const float *src = res->data + (size_t)(c.y + y) * res->stride + (size_t)c.x * 4;
        float *dst = out->data + (size_t)y * out->stride;
        memcpy(dst, src, (size_t)c.w * 4 * sizeof(float));
        if (!j->sel.data)
            continue;
        const float *m = j->sel.data + (size_t)y * j->sel.stride;
        for (int x = 0; x < c.w; x++)
            dst[4 * x + 3] *= m[x];
    }
    return TRUE;
}

/* ---------------------------------------------------------------------------------------
 * Commit
 * ------------------------------------------------------------------------------------- */

static gchar *layer_name(const job *j)
{
    gchar *p = g_strstrip(g_strdup(j->v->prompt));
    for (gchar *c = p; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
    gchar *name;
    if (!p[0]) {
        name = g_strdup_printf("SD %s", sdp_filter_name(j->f));
    } else if (g_utf8_strlen(p, -1) > 60) {
        gchar *s = g_utf8_substring(p, 0, 60);
        name = g_strdup_printf("SD %s: %s...", sdp_filter_name(j->f), s);
        g_free(s);
    } else {
        name = g_strdup_printf("SD %s: %s", sdp_filter_name(j->f), p);
    }
    g_free(p);
    return name;
}

static void attach_parasite(gint32 layer, const job *j)
{
    const sd_gen_result *r = &j->r;
    const char *model_path = j->model_file;
    sdp_vals used = *j->v;
    used.seed = (gint32)r->seed;
    gchar *params = sdp_vals_serialise(j->f, &used);
    char s[G_ASCII_DTOSTR_BUF_SIZE], n[G_ASCII_DTOSTR_BUF_SIZE];
    GString *text = g_string_new(NULL);
    g_string_append_printf(text, "filter=%s\n%smodel-file=%s\n", sdp_filter_name(j->f), params,
                           model_path);
    if (j->f == SDP_IMG2IMG || j->f == SDP_INPAINT || j->f == SDP_DENOISE)
        g_string_append_printf(text, "strength-used=%s\n",
                               g_ascii_formatd(s, sizeof s, "%.7g", r->strength));
    if (j->f == SDP_DENOISE)
        g_string_append_printf(text, "noise-sigma=%s\n",
                               g_ascii_formatd(n, sizeof n, "%.7g", r->noise_sigma));
    GimpParasite *par =
        gimp_parasite_new(SDP_PARASITE, GIMP_PARASITE_PERSISTENT | GIMP_PARASITE_UNDOABLE,
                          (guint32)text->len + 1, text->str);
    gimp_item_attach_parasite(layer, par);
    gimp_parasite_free(par);
    g_string_free(text, TRUE);
    g_free(params);
}

static gboolean commit_new_image(const job *j, GimpRunMode run_mode, sdp_result *out,
                                 GError **error)
{
    const sd_image *px = &j->px;
    gint32 img = gimp_image_new_with_precision(px->width, px->height, GIMP_RGB,
                                               GIMP_PRECISION_U8_GAMMA);
    if (img < 0)
        return fail(error, "GIMP could not create a %d x %d image", px->width, px->height);
    gimp_image_undo_disable(img);
    gchar *name = layer_name(j);
    gint32 layer = gimp_layer_new(img, name, px->width, px->height, GIMP_RGB_IMAGE, 100.0,
                                  GIMP_LAYER_MODE_NORMAL);
    g_free(name);
    if (layer < 0 || !gimp_image_insert_layer(img, layer, 0, 0)) {
        gimp_image_delete(img);
        return fail(error, "GIMP could not add the result layer");
    }
    sdp_write_layer(layer, px);
    attach_parasite(layer, j);
    gimp_image_undo_enable(img);
    if (run_mode != GIMP_RUN_NONINTERACTIVE)
        gimp_display_new(img);
    out->image = img;
    out->layer = layer;
    out->seed = (gint32)j->r.seed;
    return TRUE;
}

/* The target as the prepare saw it: the dialog stays open while the user edits the image, so
 * by the commit the layer may be gone or moved, or the canvas resized. */
static gboolean target_unchanged(const job *j, GError **error)
{
    if (!gimp_image_is_valid(j->image) || !gimp_item_is_valid(j->drawable) ||
        gimp_item_get_image(j->drawable) != j->image)
        return fail(error, "the image or the layer was closed or deleted while generating; "
                           "the result was discarded");
    int ox, oy;
    gimp_drawable_offsets(j->drawable, &ox, &oy);
    if (ox != j->seen[0] || oy != j->seen[1] || gimp_drawable_width(j->drawable) != j->seen[2] ||
        gimp_drawable_height(j->drawable) != j->seen[3] ||
        gimp_image_width(j->image) != j->seen[4] || gimp_image_height(j->image) != j->seen[5])
        return fail(error, "the layer or the canvas was moved or resized while generating; "
                           "the result was discarded: generate again");
    return TRUE;
}

gboolean sdp_job_commit(job *j, GimpRunMode run_mode, sdp_result *out, GError **error)
{
    if (!j->px.data)
        return fail(error, "internal error: commit without a generated result");
    if (j->new_image)
        return commit_new_image(j, run_mode, out, error);
    if (!target_unchanged(j, error))
        return FALSE;
    const sd_image *px = &j->px;
    gint32 image = j->image;
    int cw = gimp_image_width(image), ch = gimp_image_height(image);
    gboolean resized = FALSE;
    gint32 layer = -1;
    gchar *name = layer_name(j);
    gboolean ok = FALSE;

    gimp_image_undo_group_start(image);
    if (j->resize) {
        if (!gimp_image_resize(image, cw + j->ext[0] + j->ext[2], ch + j->ext[1] + j->ext[3],
                               j->ext[0], j->ext[1])) {
            fail(error, "GIMP could not grow the canvas");
            goto out;
        }
        resized = TRUE;
    }
    GimpImageType type =
        gimp_image_base_type(image) == GIMP_GRAY ? GIMP_GRAYA_IMAGE : GIMP_RGBA_IMAGE;
    layer = gimp_layer_new(image, name, px->width, px->height, type, 100.0,
                           GIMP_LAYER_MODE_NORMAL);
    if (layer < 0) {
        fail(error, "GIMP could not create the result layer");
        goto out;
    }
    gint32 parent = gimp_item_get_parent(j->drawable);
    gint position = gimp_image_get_item_position(image, j->drawable);
    if (!gimp_image_insert_layer(image, layer, parent > 0 ? parent : 0, position)) {
        gimp_item_delete(layer);
        layer = -1;
        fail(error, "GIMP could not add the result layer to the image");
        goto out;
    }
    gimp_layer_set_offsets(layer, j->layer_r.x, j->layer_r.y);
    sdp_write_layer(layer, px);
    attach_parasite(layer, j);
    ok = TRUE;
out:
    if (!ok && resized)
        gimp_image_resize(image, cw, ch, -j->ext[0], -j->ext[1]);
    gimp_image_undo_group_end(image);
    g_free(name);
    if (ok) {
        if (run_mode != GIMP_RUN_NONINTERACTIVE)
            gimp_displays_flush();
        out->image = image;
        out->layer = layer;
        out->seed = (gint32)j->r.seed;
    }
    return ok;
}

/* ---------------------------------------------------------------------------------------
 * The job
 * ------------------------------------------------------------------------------------- */

gboolean sdp_job_prepare(sdp_filter f, gboolean new_image, gint32 image, gint32 drawable,
                         const sdp_vals *v, sdp_job **out, GError **error)
{
    job *j = g_new0(job, 1);
    j->f = f;
    j->new_image = new_image;
    j->image = image;
    j->drawable = drawable;
    j->vals = *v;
    j->v = &j->vals;
    *out = NULL;
    if (!sdp_vals_check(f, v, error))
        goto fail;
    if (!new_image && !check_target(image, drawable, error))
        goto fail;
    if (!plan(j, error))
        goto fail;
    if (!(j->model_path = sdp_model_resolve(v->model, error)))
        goto fail;
    if (!read_inputs(j, error))
        goto fail;
    j->seed = v->seed >= 0 ? v->seed : g_random_int_range(0, G_MAXINT32);
    *out = j;
    return TRUE;
fail:
    sdp_job_free(j);
    return FALSE;
}

const char *sdp_job_model_path(const sdp_job *j)
{
    return j->model_path;
}

gboolean sdp_job_generate(sdp_job *j, sdp_engine *e, const sdp_hooks *h, GError **error)
{
    const sd_model *m;
    sd_ctx *ctx;
    if (!sdp_engine_model(e, j->model_path, &m, error) || !sdp_engine_ctx(e, &ctx, error))
        return FALSE;
    sd_gen_result_free(&j->r);
    sdp_image_free(&j->px);
    sd_gen_params p = gen_params(j, j->seed);
    if (h) {
        p.progress = h->progress;
        p.preview = h->preview;
        p.progress_user = p.preview_user = h->user;
        p.taesd = h->taesd;
    }
    sd_error err = {0};
    sd_status st = sd_generate(ctx, m, &p, &j->r, &err);
    if (st != SD_OK)
        return engine_failed(st, &err, error);
    int want_w, want_h;
    expected_size(j, &j->r.image, &want_w, &want_h);
    if (j->r.image.channels != 4 || j->r.image.width != want_w ||
        j->r.image.height != want_h)
        return fail(error,
                    "internal error: the engine returned a %d x %d x %d image where %d x %d x 4 "
                    "was expected",
                    j->r.image.width, j->r.image.height, j->r.image.channels, want_w, want_h);
    if (!layer_pixels(j, &j->r.image, &j->px, error))
        return FALSE;
    g_free(j->model_file);
    j->model_file = g_strdup(sdp_engine_model_path(e));
    return TRUE;
}

const sd_gen_result *sdp_job_gen_result(const sdp_job *j)
{
    return &j->r;
}

const sd_image *sdp_job_layer_pixels(const sdp_job *j)
{
    return &j->px;
}

void sdp_job_free(sdp_job *j)
{
    if (!j)
        return;
    sdp_image_free(&j->px);
    sd_gen_result_free(&j->r);
    sdp_image_free(&j->init);
    sdp_image_free(&j->mask);
    sdp_image_free(&j->sel);
    g_free(j->model_path);
    g_free(j->model_file);
    g_free(j);
}

/* ---------------------------------------------------------------------------------------
 * The whole run, and the noise level for the denoise dialog
 * ------------------------------------------------------------------------------------- */

gboolean sdp_run_filter(sdp_engine *e, sdp_filter f, gboolean new_image, GimpRunMode run_mode,
                        gint32 image, gint32 drawable, const sdp_vals *v, sdp_alive_fn alive,
                        sdp_result *res, GError **error)
{
    sdp_job *j = NULL;
    sdp_engine_count_call(e);
    if (!sdp_job_prepare(f, new_image, image, drawable, v, &j, error))
        return FALSE;
    gchar *what = g_strdup_printf("SD %s", sdp_filter_name(f));
    progress pr = {0, -1, what, alive};
    sdp_hooks h = {.progress = on_progress, .user = &pr};
    gimp_progress_init(what);
    gboolean ok = sdp_job_generate(j, e, &h, error);
    gimp_progress_update(1.0);
    gimp_progress_end();
    g_free(what);
    if (ok && alive && !alive()) {
        g_set_error_literal(error, SDP_ERROR, SDP_ERROR_CANCELLED, "cancelled");
        ok = FALSE;
    }
    ok = ok && sdp_job_commit(j, run_mode, res, error);
    sdp_job_free(j);
    return ok;
}

gboolean sdp_estimate_noise(gint32 image, gint32 drawable, float *sigma, GError **error)
{
    job j = {.f = SDP_DENOISE, .image = image, .drawable = drawable};
    sdp_vals_default(&j.vals);
    j.v = &j.vals;
    gboolean ok = FALSE;
    if (!check_target(image, drawable, error) || !plan(&j, error))
        goto out;
    if (!sdp_read_rgba(drawable, j.init_r, &j.init, error))
        goto out;
    sd_error err = {0};
    if (sd_estimate_noise(&j.init, sigma, &err) != SD_OK) {
        fail(error, "the noise level could not be measured: %s", err.msg);
        goto out;
    }
    ok = TRUE;
out:
    sdp_image_free(&j.init);
    return ok;
}
