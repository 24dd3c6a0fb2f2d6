/* image_crop.c - the geometry of inpainting and masked img2img: which part of the image
 * the model works on, cutting it out at the model's resolution, and pasting the result
 * back through a soft mask so that nothing outside the mask changes.  It follows A1111's
 * "only masked" procedure (modules/masking.py and processing.py) step by step, because
 * that is what users of every SD front end know:
 *   1. blur the mask by `mask_blur` (Gaussian, sigma = mask_blur, radius int(2.5 s + .5));
 *   2. region = bounding box of the blurred mask > 0, plus `padding`, clamped;
 *   3. widen the region to the processing aspect, shifted back inside the image;
 *   4. cut region out of image and blurred mask, resize both to the processing size;
 *   5. after sampling, resize the result to the region and composite it over the original
 *      through the blurred mask (A1111 alpha-composites the original with the inverted
 *      blurred mask as alpha over the result: the same formula). */
#include "internal/imgproc.h"

#include <math.h>
#include <string.h>

/* ==== region geometry ================================================================== */

bool sd_crop_region(const sd_img *mask, int pad, sd_rect *out)
{
    if (!sd_mask_bbox(mask, 0.0f, out))
        return false;
    pad = SD_MAX(pad, 0);
    int x0 = SD_MAX(out->x - pad, 0), y0 = SD_MAX(out->y - pad, 0);
    int x1 = (int)SD_MIN((long)out->x + out->w + pad, (long)mask->w);
    int y1 = (int)SD_MIN((long)out->y + out->h + pad, (long)mask->h);
    *out = sd_rect_make(x0, y0, x1 - x0, y1 - y0);
    return true;
}

/* Python's a // 2 (floor division). */
static long half_floor(long a)
{
    return a >= 0 ? a / 2 : -((-a + 1) / 2);
}

/* Grow [*lo, *hi) by diff (split as A1111 does), shift it back inside [0, size), clamp. */
static void expand_span(long *lo, long *hi, long diff, long size)
{
    *lo -= half_floor(diff);
    *hi += diff - half_floor(diff);
    if (*hi >= size) {
        long d = *hi - size;
        *hi -= d;
        *lo -= d;
    }
    if (*lo < 0) {
        *hi -= *lo;
        *lo = 0;
    }
    if (*hi >= size)
        *hi = size;
}

sd_rect sd_crop_expand(sd_rect r, int proc_w, int proc_h, int img_w, int img_h)
{
    long x1 = r.x, y1 = r.y, x2 = (long)r.x + r.w, y2 = (long)r.y + r.h;
    if (r.w <= 0 || r.h <= 0 || proc_w <= 0 || proc_h <= 0)
        return r;
    double ratio_crop = (double)(x2 - x1) / (double)(y2 - y1);
    double ratio_proc = (double)proc_w / (double)proc_h;
    if (ratio_crop > ratio_proc) {
        double desired_h = (double)(x2 - x1) / ratio_proc;
        expand_span(&y1, &y2, (long)(desired_h - (double)(y2 - y1)), img_h);
    } else {
        double desired_w = (double)(y2 - y1) * ratio_proc;
        expand_span(&x1, &x2, (long)(desired_w - (double)(x2 - x1)), img_w);
    }
    return sd_rect_make((int)x1, (int)y1, (int)(x2 - x1), (int)(y2 - y1));
}

static int round8(double v)
{
    long n = (long)floor(v / 8.0 + 0.5) * 8;
    return n < 8 ? 8 : n > SD_IMG_MAX_DIM ? SD_IMG_MAX_DIM : (int)n;
}

void sd_fit_size(int w, int h, int native, int *out_w, int *out_h)
{
    double s = (double)native / sqrt((double)w * (double)h);
    *out_w = round8(w * s);
    *out_h = round8(h * s);
}

/* ==== crop ============================================================================= */

sd_inpaint_crop_params sd_inpaint_crop_params_default(void)
{
    return (sd_inpaint_crop_params){
        .only_masked = true, .padding = 32, .mask_blur = 4.0f, .proc_w = 512, .proc_h = 512,
        .native = 512};
}

sd_paste_params sd_paste_params_default(void)
{
    return (sd_paste_params){.color_match = false, .cm = sd_colormatch_params_default()};
}

void sd_inpaint_crop_free(sd_inpaint_crop *c)
{
    if (!c)
        return;
    sd_img_free(&c->paste_mask);
    sd_img_free(&c->image);
    sd_img_free(&c->mask);
    memset(c, 0, sizeof *c);
}

/* Resize the colour channels of src (c >= 3) to w x h into a new RGB image. */
static sd_status resize_rgb(const sd_img *src, int w, int h, sd_img *out, sd_error *err)
{
    if (src->c == 3)
        return sd_img_resize(src, w, h, SD_RESIZE_LANCZOS3, out, err);
    sd_img rgb;
    sd_status st = sd_img_new(src->w, src->h, 3, &rgb, err);
    if (st != SD_OK)
        return st;
    for (int y = 0; y < src->h; y++)
        for (int x = 0; x < src->w; x++)
            memcpy(sd_img_px(&rgb, x, y), sd_img_px(src, x, y), 3 * sizeof(float));
    st = sd_img_resize(&rgb, w, h, SD_RESIZE_LANCZOS3, out, err);
    sd_img_free(&rgb);
    return st;
}

static sd_status check_params(const sd_inpaint_crop_params *p, sd_error *err)
{
    if (p->padding < 0 || p->padding > SD_IMG_MAX_DIM)
        return sd_fail(err, SD_ERR_INVALID_ARG, "inpaint: padding %d out of range", p->padding);
    if (!(p->mask_blur >= 0.0f) || !isfinite(p->mask_blur))
        return sd_fail(err, SD_ERR_INVALID_ARG, "inpaint: mask blur %g out of range",
                       (double)p->mask_blur);
    bool fixed = p->proc_w > 0 && p->proc_h > 0;
    if (fixed && (p->proc_w % 8 || p->proc_h % 8 || p->proc_w > SD_IMG_MAX_DIM ||
                  p->proc_h > SD_IMG_MAX_DIM))
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "inpaint: processing size %dx%d is not a multiple of 8", p->proc_w,
                       p->proc_h);
    if (!fixed && (p->proc_w != 0 || p->proc_h != 0))
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "inpaint: processing size %dx%d (give both, or 0x0 for automatic)",
                       p->proc_w, p->proc_h);
    if (!fixed && (p->native < 64 || p->native % 8 || p->native > 4096))
        return sd_fail(err, SD_ERR_INVALID_ARG, "inpaint: native resolution %d out of range",
                       p->native);
    return SD_OK;
}

sd_status sd_inpaint_crop_make(const sd_img *image, const sd_img *mask,
                               const sd_inpaint_crop_params *p, sd_inpaint_crop *out,
                               sd_error *err)
{
    memset(out, 0, sizeof *out);
    sd_status st = sd_img_check(image, SD_CH_COLOR, "inpaint image", err);
    if (st == SD_OK)
        st = sd_img_check(mask, SD_CH_MASK, "inpaint mask", err);
    if (st == SD_OK)
        st = check_params(p, err);
    if (st != SD_OK)
        return st;
    if (image->w != mask->w || image->h != mask->h)
        return sd_fail(err, SD_ERR_INVALID_ARG, "inpaint: image %dx%d but mask %dx%d",
                       image->w, image->h, mask->w, mask->h);

    /* 1. the paste mask: blurred, kept within 0..1 */
    st = sd_img_new(mask->w, mask->h, 1, &out->paste_mask, err);
    if (st == SD_OK)
        st = sd_img_blur(mask, p->mask_blur, p->mask_blur, &out->paste_mask, err);
    if (st != SD_OK)
        goto fail;
    for (int y = 0; y < mask->h; y++) {
        float *m = sd_img_px(&out->paste_mask, 0, y);
        for (int x = 0; x < mask->w; x++)
            m[x] = m[x] < 0.0f ? 0.0f : m[x] > 1.0f ? 1.0f : m[x];
    }

    /* 2-3. the region */
    sd_rect r;
    if (!sd_crop_region(&out->paste_mask, p->only_masked ? p->padding : 0, &r)) {
        st = sd_fail(err, SD_ERR_INVALID_ARG,
                     "inpaint: the mask is empty, nothing to regenerate (select an area)");
        goto fail;
    }
    bool fixed = p->proc_w > 0;
    if (!p->only_masked)
        r = sd_rect_make(0, 0, image->w, image->h);
    else if (fixed)
        r = sd_crop_expand(r, p->proc_w, p->proc_h, image->w, image->h);
    if (SD_NEVER(!sd_rect_inside(r, image->w, image->h))) {
        st = sd_fail(err, SD_ERR_INTERNAL, "inpaint: region outside the image");
        goto fail;
    }
    out->region = r;
    if (fixed) {
        out->proc_w = p->proc_w;
        out->proc_h = p->proc_h;
    } else {
        sd_fit_size(r.w, r.h, p->native, &out->proc_w, &out->proc_h);
    }

    /* 4. cut and resize */
    sd_img isub = sd_img_sub(image, r), msub = sd_img_sub(&out->paste_mask, r);
    st = resize_rgb(&isub, out->proc_w, out->proc_h, &out->image, err);
    if (st == SD_OK)
        st = sd_img_resize(&msub, out->proc_w, out->proc_h, SD_RESIZE_LANCZOS3, &out->mask,
                           err);
    if (st == SD_OK)
        return SD_OK;
fail:
    sd_inpaint_crop_free(out);
    return st;
}

/* ==== paste ============================================================================ */

sd_status sd_inpaint_paste(const sd_img *orig, const sd_inpaint_crop *crop, const sd_img *gen,
                           const sd_paste_params *p, sd_img *out, sd_error *err)
{
    memset(out, 0, sizeof *out);
    sd_status st = sd_img_check(orig, SD_CH_COLOR, "paste original", err);
    if (st == SD_OK)
        st = sd_img_check(gen, SD_CH_COLOR, "paste result", err);
    if (st != SD_OK)
        return st;
    const sd_rect r = crop->region;
    if (gen->w != crop->proc_w || gen->h != crop->proc_h || orig->w != crop->paste_mask.w ||
        orig->h != crop->paste_mask.h || !sd_rect_inside(r, orig->w, orig->h))
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "paste: result %dx%d, original %dx%d do not fit the crop (%dx%d from "
                       "%dx%d)",
                       gen->w, gen->h, orig->w, orig->h, crop->proc_w, crop->proc_h,
                       crop->paste_mask.w, crop->paste_mask.h);
    sd_img back = {0};
    st = sd_img_clone(orig, out, err);
    if (st == SD_OK)
        st = resize_rgb(gen, r.w, r.h, &back, err);
    if (st != SD_OK)
        goto out;
    sd_img osub = sd_img_sub(orig, r), msub = sd_img_sub(&crop->paste_mask, r);
    if (p->color_match) {
        st = sd_colormatch(&osub, &back, &msub, &p->cm, NULL, err);
        if (st != SD_OK)
            goto out;
    }
    st = sd_img_composite(out, r.x, r.y, &back, &msub, err);
out:
    sd_img_free(&back);
    if (st != SD_OK)
        sd_img_free(out);
    return st;
}
