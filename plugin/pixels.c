/* pixels.c - pixels between GIMP and the engine: drawables read through GEGL as
 * "R'G'B'A float" (non-linear sRGB, what the models were trained on) whatever the image's
 * precision or base type, the selection as a soft "Y float" mask, and results written back
 * through GEGL, which converts to the layer's own format (gray, 8/16/32-bit); and the
 * drawable thumbnail the dialog shows before its first generation.  Kept apart so the filter
 * logic in filter.c deals in sd_image only. */
#include "sdp.h"

#include <libgimp/gimpui.h>

#include <string.h>

gboolean sdp_image_alloc(int w, int h, int channels, sd_image *out, GError **error)
{
    memset(out, 0, sizeof *out);
    gsize n = (gsize)w * (gsize)h * (gsize)channels;
    if (w <= 0 || h <= 0 || n / (gsize)h / (gsize)channels != (gsize)w ||
        n > G_MAXSIZE / sizeof(float)) {
        g_set_error(error, SDP_ERROR, SDP_ERROR_FAILED, "image of %d x %d px is too large", w,
                    h);
        return FALSE;
    }
    float *data = g_try_malloc0(n * sizeof(float));
    if (!data) {
        g_set_error(error, SDP_ERROR, SDP_ERROR_FAILED,
                    "not enough memory for a %d x %d px working copy (%.0f MB)", w, h,
                    (double)(n * sizeof(float)) / 1e6);
        return FALSE;
    }
    out->width = w;
    out->height = h;
    out->channels = channels;
    out->stride = (size_t)w * (size_t)channels;
    out->data = data;
    return TRUE;
}

void sdp_image_free(sd_image *img)
{
    if (!img)
        return;
    g_free(img->data);
    memset(img, 0, sizeof *img);
}

gboolean sdp_read_rgba(gint32 drawable, sdp_rect r, sd_image *out, GError **error)
{
    if (!sdp_image_alloc(r.w, r.h, 4, out, error))
        return FALSE;
    GeglBuffer *buf = gimp_drawable_get_buffer(drawable);
    gegl_buffer_get(buf, GEGL_RECTANGLE(r.x, r.y, r.w, r.h), 1.0, babl_format("R'G'B'A float"),
                    out->data, (gint)(out->stride * sizeof(float)), GEGL_ABYSS_NONE);
    g_object_unref(buf);
    return TRUE;
}

gboolean sdp_read_selection(gint32 image, sdp_rect r, sd_image *out, GError **error)
{
    if (!sdp_image_alloc(r.w, r.h, 1, out, error))
        return FALSE;
    GeglBuffer *buf = gimp_drawable_get_buffer(gimp_image_get_selection(image));
    gegl_buffer_get(buf, GEGL_RECTANGLE(r.x, r.y, r.w, r.h), 1.0, babl_format("Y float"),
                    out->data, (gint)(out->stride * sizeof(float)), GEGL_ABYSS_NONE);
    g_object_unref(buf);
    return TRUE;
}

void sdp_write_layer(gint32 layer, const sd_image *img)
{
    GeglBuffer *buf = gimp_drawable_get_buffer(layer);
    gegl_buffer_set(buf, GEGL_RECTANGLE(0, 0, img->width, img->height), 0,
                    babl_format("R'G'B'A float"), img->data,
                    (gint)(img->stride * sizeof(float)));
    gegl_buffer_flush(buf);
    g_object_unref(buf);
    gimp_drawable_update(layer, 0, 0, img->width, img->height);
}

GdkPixbuf *sdp_drawable_thumbnail(gint32 drawable, int size)
{
    if (!gimp_item_is_valid(drawable))
        return NULL;
    return gimp_drawable_get_thumbnail(drawable, size, size, GIMP_PIXBUF_KEEP_ALPHA);
}
