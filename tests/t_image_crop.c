/* tests/t_image_crop.c - inpaint geometry and paste-back, and colour matching: A1111's
 * region expansion on hand-worked cases and random regions near borders and corners
 * (inside the image, aspect kept, multiples of 8), paste-back leaving every pixel where
 * the blurred mask is 0 bit-identical and carrying alpha, whole-image and empty masks,
 * and a colour-shifted fill pulled back toward its surroundings. */
#include "imgutil.h"
#include "internal/imgproc.h"

static bool rect_eq(sd_rect r, int x, int y, int w, int h)
{
    return r.x == x && r.y == y && r.w == w && r.h == h;
}

/* ==== geometry ========================================================================= */

static void check_expand_cases(void)
{
    /* worked by hand from A1111's expand_crop_region */
    sd_rect r = sd_crop_expand(sd_rect_make(100, 50, 128, 32), 512, 512, 512, 512);
    CHECK(rect_eq(r, 100, 2, 128, 128), "wide: %d,%d %dx%d", r.x, r.y, r.w, r.h);
    r = sd_crop_expand(sd_rect_make(10, 490, 64, 16), 512, 512, 512, 512);
    CHECK(rect_eq(r, 10, 448, 64, 64), "bottom edge: %d,%d %dx%d", r.x, r.y, r.w, r.h);
    r = sd_crop_expand(sd_rect_make(0, 0, 20, 60), 512, 512, 512, 512);
    CHECK(rect_eq(r, 0, 0, 60, 60), "top-left corner: %d,%d %dx%d", r.x, r.y, r.w, r.h);
    r = sd_crop_expand(sd_rect_make(40, 100, 20, 400), 512, 512, 100, 600);
    CHECK(rect_eq(r, 0, 100, 100, 400), "image too narrow: %d,%d %dx%d", r.x, r.y, r.w, r.h);
    r = sd_crop_expand(sd_rect_make(200, 100, 90, 90), 768, 512, 1000, 800);
    CHECK(rect_eq(r, 178, 100, 135, 90), "3:2: %d,%d %dx%d", r.x, r.y, r.w, r.h);
    r = sd_crop_expand(sd_rect_make(5, 7, 33, 33), 512, 512, 64, 64);
    CHECK(rect_eq(r, 5, 7, 33, 33), "already square");

    sd_rect c;
    sd_img m;
    sd_img_new(100, 80, 1, &m, NULL);
    *sd_img_px(&m, 3, 75) = 0.2f;
    *sd_img_px(&m, 10, 70) = 1.0f;
    CHECK(sd_crop_region(&m, 32, &c) && rect_eq(c, 0, 38, 43, 42), "pad clamped: %d,%d %dx%d",
          c.x, c.y, c.w, c.h);
    CHECK(sd_crop_region(&m, 0, &c) && rect_eq(c, 3, 70, 8, 6), "pad 0");
    sd_img_fill(&m, 0.0f);
    CHECK(!sd_crop_region(&m, 32, &c), "empty");
    sd_img_free(&m);

    int w, h;
    sd_fit_size(512, 512, 512, &w, &h);
    CHECK(w == 512 && h == 512, "fit square");
    sd_fit_size(1024, 512, 512, &w, &h);
    CHECK(w == 728 && h == 360, "fit 2:1: %dx%d", w, h);
    sd_fit_size(300, 200, 768, &w, &h);
    CHECK(w == 944 && h == 624, "fit 3:2 at 768: %dx%d", w, h);
    sd_fit_size(10, 7000, 512, &w, &h);
    CHECK(w == 16 && h == 13544, "fit extreme: %dx%d", w, h);
    sd_fit_size(1, 1, 64, &w, &h);
    CHECK(w == 64 && h == 64, "fit 1x1: %dx%d", w, h);
}

/* Uniform in 0 .. n-1. */
static int rnd(t_rng *rng, int n)
{
    return (int)(t_rng_u64(rng) % (uint64_t)n);
}

static void check_expand_random(void)
{
    t_rng rng = {99};
    int bad_inside = 0, bad_contain = 0, bad_aspect = 0, n_aspect = 0;
    for (int i = 0; i < 4000; i++) {
        int W = 16 + rnd(&rng, 900), H = 16 + rnd(&rng, 900);
        int rw = 1 + rnd(&rng, W), rh = 1 + rnd(&rng, H);
        int rx = rnd(&rng, W - rw + 1), ry = rnd(&rng, H - rh + 1);
        if (i % 4 == 0)
            rx = 0;                     /* hug the borders and corners */
        if (i % 4 == 1)
            ry = H - rh;
        if (i % 8 == 2)
            rx = W - rw, ry = 0;
        int pw = 8 * (1 + rnd(&rng, 128)), ph = 8 * (1 + rnd(&rng, 128));
        sd_rect r = sd_crop_expand(sd_rect_make(rx, ry, rw, rh), pw, ph, W, H);
        bad_inside += !sd_rect_inside(r, W, H);
        bad_contain += r.x > rx || r.y > ry || r.x + r.w < rx + rw || r.y + r.h < ry + rh;
        /* where the image is large enough, the aspect is the processing aspect (to the
         * pixel A1111's truncation allows) */
        double want_w = r.h * (double)pw / ph, want_h = r.w * (double)ph / pw;
        if (r.w < W && r.h < H) {
            n_aspect++;
            bad_aspect += fabs(r.w - want_w) > 1.0 + 1e-9 && fabs(r.h - want_h) > 1.0 + 1e-9;
        }
    }
    CHECK(bad_inside == 0 && bad_contain == 0, "inside %d, contains %d", bad_inside, bad_contain);
    CHECK(bad_aspect == 0 && n_aspect > 1000, "aspect kept: %d bad of %d", bad_aspect, n_aspect);
}

/* ==== crop and paste =================================================================== */

static void check_crop_paste(int corner)
{
    const int W = 300, H = 200;
    sd_img image = t_pic(T_TEXTURE, W, H, 4);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            sd_img_px(&image, x, y)[3] = 0.3f + 0.7f * (float)((x * 7 + y * 3) % 11) / 10.0f;
    /* a feathered ellipse; in a corner or in the middle */
    sd_img mask = corner ? t_ellipse(W, H, W - 12.0, 10.0, 30.0, 18.0)
                         : t_ellipse(W, H, 140.0, 90.0, 40.0, 22.0);
    sd_img_blur(&mask, 2.0f, 2.0f, &mask, NULL);
    sd_inpaint_crop_params cp = sd_inpaint_crop_params_default();
    cp.proc_w = 512;
    cp.proc_h = 384;
    sd_inpaint_crop crop;
    sd_error err = {0};
    CHECK(sd_inpaint_crop_make(&image, &mask, &cp, &crop, &err) == SD_OK, "%s", err.msg);
    sd_rect r = crop.region;
    CHECK(sd_rect_inside(r, W, H), "region inside");
    CHECK(crop.proc_w == 512 && crop.proc_h == 384 && crop.image.w == 512 &&
              crop.image.h == 384 && crop.image.c == 3 && crop.mask.w == 512 &&
              crop.mask.c == 1 && crop.paste_mask.w == W,
          "sizes");
    CHECK(fabs(r.w * 384.0 - r.h * 512.0) <= 512.0, "aspect 4:3: %dx%d", r.w, r.h);
    sd_rect bb;
    sd_mask_bbox(&crop.paste_mask, 0.0f, &bb);
    CHECK(r.x <= bb.x && r.y <= bb.y && r.x + r.w >= bb.x + bb.w && r.y + r.h >= bb.y + bb.h,
          "region holds the blurred mask");
    if (corner)
        CHECK(r.x + r.w == W && r.y == 0, "clamped into the corner: %d,%d %dx%d", r.x, r.y,
              r.w, r.h);
    /* the processing image is the region's colour channels resized (straight, not
     * premultiplied: the model sees the stored colours) */
    sd_img rgb, want;
    sd_img_new(r.w, r.h, 3, &rgb, NULL);
    for (int y = 0; y < r.h; y++)
        for (int x = 0; x < r.w; x++)
            memcpy(sd_img_px(&rgb, x, y), sd_img_px(&image, r.x + x, r.y + y), 3 * sizeof(float));
    sd_img_resize(&rgb, 512, 384, SD_RESIZE_LANCZOS3, &want, NULL);
    sd_img_free(&rgb);
    double worst = 0;
    for (int y = 0; y < 384; y += 7)
        for (int x = 0; x < 512; x += 5)
            for (int k = 0; k < 3; k++)
                worst = fmax(worst,
                             fabs(sd_img_px(&crop.image, x, y)[k] - sd_img_px(&want, x, y)[k]));
    CHECK(worst < 1e-5, "processing image: %g", worst);
    sd_img_free(&want);

    /* a "generated" result: another picture */
    sd_img gen = t_pic(T_SHAPES, 512, 384, 3), out;
    sd_paste_params pp = sd_paste_params_default();
    CHECK(sd_inpaint_paste(&image, &crop, &gen, &pp, &out, &err) == SD_OK, "%s", err.msg);
    sd_img back;
    sd_img_resize(&gen, r.w, r.h, SD_RESIZE_LANCZOS3, &back, NULL);
    long zero = 0, zero_in_region = 0, one = 0, bad0 = 0, bad1 = 0, badmix = 0, bada = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float m = *sd_img_px(&crop.paste_mask, x, y);
            const float *o = sd_img_px(&out, x, y), *i = sd_img_px(&image, x, y);
            bada += memcmp(&o[3], &i[3], sizeof(float)) != 0;
            if (m == 0.0f) {
                zero++;
                zero_in_region += x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h;
                bad0 += memcmp(o, i, 3 * sizeof(float)) != 0;
                continue;
            }
            const float *g = sd_img_px(&back, x - r.x, y - r.y);
            if (m == 1.0f) {
                one++;
                bad1 += memcmp(o, g, 3 * sizeof(float)) != 0;
                continue;
            }
            for (int k = 0; k < 3; k++)
                badmix += fabsf(o[k] - (i[k] * (1 - m) + g[k] * m)) > 1e-6f;
        }
    CHECK(bad0 == 0 && zero > 1000 && zero_in_region > 100,
          "mask 0: %ld of %ld pixels changed (%ld inside the region)", bad0, zero,
          zero_in_region);
    CHECK(bad1 == 0 && one > 100, "mask 1: %ld of %ld differ from the result", bad1, one);
    CHECK(badmix == 0, "soft edge blend: %ld wrong", badmix);
    CHECK(bada == 0, "alpha carried through: %ld changed", bada);
    sd_img_free(&back);
    sd_img_free(&out);
    sd_img_free(&gen);
    sd_inpaint_crop_free(&crop);
    sd_img_free(&mask);
    sd_img_free(&image);
}

static void check_whole_and_empty(void)
{
    const int W = 120, H = 90;
    sd_img image = t_pic(T_GRADIENT, W, H, 3), mask;
    sd_img_new(W, H, 1, &mask, NULL);
    sd_inpaint_crop_params cp = sd_inpaint_crop_params_default();
    sd_inpaint_crop crop;
    sd_error err = {0};
    CHECK(sd_inpaint_crop_make(&image, &mask, &cp, &crop, &err) == SD_ERR_INVALID_ARG &&
              strstr(err.msg, "empty") && !crop.image.data && !crop.paste_mask.data,
          "empty mask: %s", err.msg);
    cp.only_masked = false;
    CHECK(sd_inpaint_crop_make(&image, &mask, &cp, &crop, &err) == SD_ERR_INVALID_ARG,
          "empty mask, whole picture");

    /* whole-image mask: the region is the image and the result replaces it */
    sd_img_fill(&mask, 1.0f);
    cp.only_masked = true;
    cp.proc_w = 128;
    cp.proc_h = 96;
    CHECK(sd_inpaint_crop_make(&image, &mask, &cp, &crop, &err) == SD_OK, "%s", err.msg);
    CHECK(rect_eq(crop.region, 0, 0, W, H), "whole image region");
    sd_img gen = t_pic(T_TEXTURE, 128, 96, 3), out, back;
    sd_paste_params pp = sd_paste_params_default();
    pp.color_match = true;              /* no outside band: must leave the result alone */
    CHECK(sd_inpaint_paste(&image, &crop, &gen, &pp, &out, &err) == SD_OK, "%s", err.msg);
    sd_img_resize(&gen, W, H, SD_RESIZE_LANCZOS3, &back, NULL);
    CHECK(t_img_maxdiff(&out, &back) == 0.0, "whole image replaced by the result");
    sd_img_free(&out);
    sd_img_free(&back);
    sd_img_free(&gen);
    sd_inpaint_crop_free(&crop);

    /* automatic processing size keeps the padded bounding box as it is */
    sd_img_fill(&mask, 0.0f);
    for (int y = 40; y < 60; y++)
        for (int x = 50; x < 100; x++)
            *sd_img_px(&mask, x, y) = 1.0f;
    cp.proc_w = cp.proc_h = 0;
    cp.padding = 8;
    cp.mask_blur = 0.0f;
    CHECK(sd_inpaint_crop_make(&image, &mask, &cp, &crop, &err) == SD_OK, "%s", err.msg);
    int fw, fh;
    sd_fit_size(66, 36, 512, &fw, &fh);
    CHECK(rect_eq(crop.region, 42, 32, 66, 36) && crop.proc_w == fw && crop.proc_h == fh,
          "auto: %d,%d %dx%d at %dx%d", crop.region.x, crop.region.y, crop.region.w,
          crop.region.h, crop.proc_w, crop.proc_h);
    sd_img wrong = t_pic(T_TEXTURE, 64, 64, 3), out2;
    CHECK(sd_inpaint_paste(&image, &crop, &wrong, &pp, &out2, &err) == SD_ERR_INVALID_ARG &&
              !out2.data,
          "result of the wrong size");
    sd_img_free(&wrong);
    sd_inpaint_crop_free(&crop);

    cp.proc_w = 100;
    cp.proc_h = 96;
    CHECK(sd_inpaint_crop_make(&image, &mask, &cp, &crop, &err) == SD_ERR_INVALID_ARG,
          "processing size not a multiple of 8");
    cp.proc_w = 0;
    CHECK(sd_inpaint_crop_make(&image, &mask, &cp, &crop, &err) == SD_ERR_INVALID_ARG,
          "only one processing side");

    /* allocation failures leave nothing behind */
    cp = sd_inpaint_crop_params_default();
    size_t live = sd_alloc_live_bytes();
    int nomem = 0;
    for (long n = 1;; n++) {
        sd_alloc_fail_after(n, false);
        sd_status st = sd_inpaint_crop_make(&image, &mask, &cp, &crop, NULL);
        sd_img res = {0};
        if (st == SD_OK) {
            sd_img g = {0};
            sd_alloc_fail_after(0, false);
            g = t_pic(T_SHAPES, crop.proc_w, crop.proc_h, 3);
            sd_alloc_fail_after(n, false);
            st = sd_inpaint_paste(&image, &crop, &g, &pp, &res, NULL);
            sd_alloc_fail_after(0, false);
            sd_img_free(&g);
            sd_inpaint_crop_free(&crop);
            sd_img_free(&res);
            if (st == SD_OK)
                break;
        }
        sd_alloc_fail_after(0, false);
        nomem++;
        CHECK(st == SD_ERR_NOMEM && !crop.image.data && !res.data, "allocation %ld: %d", n,
              st);
    }
    CHECK(nomem > 5 && sd_alloc_live_bytes() == live, "%d failure points, no leaks", nomem);
    sd_img_free(&mask);
    sd_img_free(&image);
}

/* ==== colour matching ================================================================== */

/* Mean |a - b| over the colour channels of the pixels where mask >= 0.5. */
static double masked_err(const sd_img *a, const sd_img *b, const sd_img *mask)
{
    double sum = 0;
    long n = 0;
    for (int y = 0; y < a->h; y++)
        for (int x = 0; x < a->w; x++)
            if (*sd_img_px(mask, x, y) >= 0.5f)
                for (int k = 0; k < 3; k++, n++)
                    sum += fabs(sd_img_px(a, x, y)[k] - sd_img_px(b, x, y)[k]);
    return sum / (double)n;
}

/* The "generated" fill: the original under the mask made warmer, brighter and flatter. */
static void shift_fill(sd_img *im, const sd_img *mask)
{
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            if (*sd_img_px(mask, x, y) > 0.0f) {
                float *p = sd_img_px(im, x, y);
                p[0] = 0.5f + 0.7f * (p[0] - 0.5f) + 0.14f;
                p[1] = 0.5f + 0.7f * (p[1] - 0.5f) + 0.04f;
                p[2] = 0.5f + 0.7f * (p[2] - 0.5f) - 0.10f;
            }
}

static void check_colormatch(void)
{
    const int W = 128, H = 112;
    sd_colormatch_params p = sd_colormatch_params_default();
    CHECK(p.band == 8 && p.strength == 1.0f && p.max_gain == 1.0f, "defaults");
    sd_img mask = t_ellipse(W, H, 60, 58, 34, 28);
    sd_img_blur(&mask, 3.0f, 3.0f, &mask, NULL);
    sd_error err = {0};
    /* (not on the dots picture: its contrast, flattened by the fill, is not restored by the
     * default mean-only transfer) */
    for (int pic = 0; pic <= T_TEXTURE; pic++) {
        sd_img orig = t_pic(pic, W, H, 3), gen, same, before;
        sd_img_clone(&orig, &gen, NULL);
        sd_img_clone(&orig, &same, NULL);
        shift_fill(&gen, &mask);
        sd_img_clone(&gen, &before, NULL);
        double e0 = masked_err(&gen, &orig, &mask);
        bool applied = false;
        CHECK(sd_colormatch(&orig, &gen, &mask, &p, &applied, &err) == SD_OK && applied, "%s",
              err.msg);
        double e1 = masked_err(&gen, &orig, &mask);
        /* the price of band statistics: a fill that already matched moves a little */
        sd_colormatch(&orig, &same, &mask, &p, NULL, NULL);
        double drift = masked_err(&same, &orig, &mask);
        printf("colour match %-8s: mean |error| under the mask %.4f -> %.4f; "
               "unshifted fill moved %.4f\n", t_pic_name[pic], e0, e1, drift);
        CHECK(e1 < 0.3 * e0, "%s: colour shift pulled back: %.4f -> %.4f", t_pic_name[pic],
              e0, e1);
        CHECK(drift < 0.3 * e0, "%s: matching fill moved %.4f", t_pic_name[pic], drift);
        long changed_outside = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                if (!(*sd_img_px(&mask, x, y) > 0.0f))
                    changed_outside += memcmp(sd_img_px(&gen, x, y), sd_img_px(&before, x, y),
                                              3 * sizeof(float)) != 0;
        CHECK(changed_outside == 0, "outside the mask untouched: %ld", changed_outside);
        if (pic == T_SHAPES) {
            /* matching the spread as well restores the flattened contrast */
            sd_colormatch_params ps = p;
            ps.max_gain = 2.0f;
            sd_img_copy(&before, &gen, NULL);
            sd_colormatch(&orig, &gen, &mask, &ps, NULL, NULL);
            double e2 = masked_err(&gen, &orig, &mask);
            CHECK(e2 < 0.7 * e1, "spread matching: %.4f -> %.4f", e1, e2);
            /* half strength: in between */
            ps = p;
            ps.strength = 0.5f;
            sd_img_copy(&before, &gen, NULL);
            sd_colormatch(&orig, &gen, &mask, &ps, NULL, NULL);
            double eh = masked_err(&gen, &orig, &mask);
            CHECK(eh < e0 && eh > e1, "half strength in between: %.4f", eh);
            /* strength 0 changes nothing */
            sd_img_copy(&before, &gen, NULL);
            ps.strength = 0.0f;
            sd_colormatch(&orig, &gen, &mask, &ps, &applied, NULL);
            CHECK(!applied && t_img_maxdiff(&gen, &before) == 0.0, "strength 0");
            /* whole-image mask: no outside band, nothing done */
            sd_img full;
            sd_img_new(W, H, 1, &full, NULL);
            sd_img_fill(&full, 1.0f);
            sd_colormatch(&orig, &gen, &full, &p, &applied, NULL);
            CHECK(!applied && t_img_maxdiff(&gen, &before) == 0.0, "whole image mask");
            sd_img_free(&full);
            ps = p;
            ps.band = 0;
            CHECK(sd_colormatch(&orig, &gen, &mask, &ps, NULL, &err) == SD_ERR_INVALID_ARG,
                  "band 0");
        }
        sd_img_free(&orig);
        sd_img_free(&gen);
        sd_img_free(&same);
        sd_img_free(&before);
    }

    sd_img orig = t_pic(T_GRADIENT, W, H, 3);
    /* through the paste: colour matching brings the pasted area closer to the original */
    sd_inpaint_crop_params cp = sd_inpaint_crop_params_default();
    cp.proc_w = cp.proc_h = 128;
    cp.mask_blur = 0.0f;
    sd_img hard = t_ellipse(W, H, 60, 58, 34, 28);
    sd_inpaint_crop crop;
    CHECK(sd_inpaint_crop_make(&orig, &hard, &cp, &crop, &err) == SD_OK, "%s", err.msg);
    sd_img g;
    sd_img_clone(&crop.image, &g, NULL);
    for (int y = 0; y < g.h; y++)
        for (int x = 0; x < g.w; x++)
            sd_img_px(&g, x, y)[0] = fminf(1.0f, sd_img_px(&g, x, y)[0] + 0.15f);
    sd_paste_params pp = sd_paste_params_default();
    sd_img plain, matched;
    sd_inpaint_paste(&orig, &crop, &g, &pp, &plain, NULL);
    pp.color_match = true;
    sd_inpaint_paste(&orig, &crop, &g, &pp, &matched, NULL);
    double ep = masked_err(&plain, &orig, &hard), em = masked_err(&matched, &orig, &hard);
    printf("paste: mean |error| under the mask %.4f, with colour match %.4f\n", ep, em);
    CHECK(em < 0.5 * ep, "paste with colour match: %.4f -> %.4f", ep, em);
    sd_img_free(&plain);
    sd_img_free(&matched);
    sd_img_free(&g);
    sd_inpaint_crop_free(&crop);
    sd_img_free(&hard);
    sd_img_free(&mask);
    sd_img_free(&orig);
}

int main(void)
{
    check_expand_cases();
    check_expand_random();
    check_crop_paste(0);
    check_crop_paste(1);
    check_whole_and_empty();
    check_colormatch();
    return t_summary("t_image_crop");
}
