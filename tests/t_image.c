/* tests/t_image.c - the sd_img primitives: allocation, views and validation, masked
 * compositing, planar conversion, Lanczos and nearest resampling (constants stay constant,
 * round trips, symmetry, no colour bleeding from transparent pixels, torch's nearest
 * indices), Gaussian blur (A1111's radius, identity, constants, impulse response, edges),
 * mask bounding boxes, binarisation, latent masks (against diffusers' mask_latents of the
 * golden inpaint runs) and the distance transform. */
#include "imgutil.h"
#include "internal/safetensors.h"

/* ==== basics =========================================================================== */

static void check_basics(void)
{
    sd_img im;
    sd_error err = {0};
    CHECK(sd_img_new(0, 5, 3, &im, &err) == SD_ERR_INVALID_ARG && !im.data, "0 width");
    CHECK(sd_img_new(5, 5, 5, &im, &err) == SD_ERR_INVALID_ARG, "5 channels");
    CHECK(sd_img_new(SD_IMG_MAX_DIM + 1, 1, 1, &im, &err) == SD_ERR_INVALID_ARG, "too wide");
    CHECK(sd_img_new(7, 5, 3, &im, &err) == SD_OK && im.owned && im.stride == 21, "new");
    CHECK(im.data[0] == 0.0f && im.data[7 * 5 * 3 - 1] == 0.0f, "zeroed");
    sd_img_fill(&im, 0.25f);
    sd_img sub = sd_img_sub(&im, sd_rect_make(2, 1, 3, 2));
    CHECK(!sub.owned && sub.stride == 21 && sub.data == im.data + 21 + 6, "sub view");
    sd_img_fill(&sub, 1.0f);
    CHECK(sd_img_px(&im, 2, 1)[0] == 1.0f && sd_img_px(&im, 4, 2)[2] == 1.0f &&
              sd_img_px(&im, 5, 2)[0] == 0.25f && sd_img_px(&im, 1, 1)[2] == 0.25f,
          "fill through view");
    sd_img cl;
    CHECK(sd_img_clone(&sub, &cl, &err) == SD_OK && cl.stride == 9 && cl.data[8] == 1.0f,
          "clone packs");
    CHECK(sd_img_copy(&cl, &im, &err) == SD_ERR_INVALID_ARG, "copy size mismatch");
    sd_img_free(&cl);
    sd_img_free(&sub);
    CHECK(sub.data == NULL && im.data != NULL, "freeing a view leaves the owner");
    sd_img_free(&im);
    sd_img_free(NULL);

    float buf[4 * 3 * 2] = {0};
    sd_img v = sd_img_view(buf, 3, 2, 4, 12);
    CHECK(sd_img_check(&v, 1u << 4, "v", &err) == SD_OK, "valid view");
    CHECK(sd_img_check(&v, 1u << 3, "v", &err) == SD_ERR_INVALID_ARG &&
              strstr(err.msg, "4 channels"),
          "channel filter: %s", err.msg);
    v.stride = 11;
    CHECK(sd_img_check(&v, 1u << 4, "v", &err) == SD_ERR_INVALID_ARG, "short stride");
    v = sd_img_view(NULL, 3, 2, 4, 12);
    CHECK(sd_img_check(&v, 1u << 4, "v", &err) == SD_ERR_INVALID_ARG, "no data");

    sd_rect a = sd_rect_make(0, 0, 10, 10), b = sd_rect_make(5, 8, 10, 10);
    sd_rect i = sd_rect_intersect(a, b);
    CHECK(i.x == 5 && i.y == 8 && i.w == 5 && i.h == 2, "intersect");
    i = sd_rect_intersect(a, sd_rect_make(10, 0, 3, 3));
    CHECK(i.w == 0 && i.h == 0, "touching rectangles do not intersect");
    CHECK(sd_rect_inside(sd_rect_make(2, 3, 8, 7), 10, 10) &&
              !sd_rect_inside(sd_rect_make(2, 3, 9, 7), 10, 10) &&
              !sd_rect_inside(sd_rect_make(-1, 0, 2, 2), 10, 10),
          "inside");
}

static void check_composite_planar(void)
{
    sd_img dst = t_pic(T_TEXTURE, 20, 16, 4), src = t_pic(T_SHAPES, 8, 6, 3), m, ref;
    sd_img_new(8, 6, 1, &m, NULL);
    sd_img_clone(&dst, &ref, NULL);
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 8; x++)
            *sd_img_px(&m, x, y) = x == 0 ? 0.0f : x == 1 ? 1.0f : x == 2 ? NAN : 0.25f * (y % 4);
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 20; x++)
            sd_img_px(&dst, x, y)[3] = sd_img_px(&ref, x, y)[3] = 0.5f + 0.01f * x;
    sd_error err = {0};
    CHECK(sd_img_composite(&dst, 5, 7, &src, &m, &err) == SD_OK, "%s", err.msg);
    int bad = 0;
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 20; x++) {
            const float *d = sd_img_px(&dst, x, y), *o = sd_img_px(&ref, x, y);
            bool in = x >= 5 && x < 13 && y >= 7 && y < 13;
            float a = in ? *sd_img_px(&m, x - 5, y - 7) : 0.0f;
            const float *s = in ? sd_img_px(&src, x - 5, y - 7) : o;
            bad += d[3] != o[3];                                 /* alpha carried */
            for (int k = 0; k < 3; k++) {
                if (!in || !(a > 0.0f))
                    bad += memcmp(&d[k], &o[k], sizeof(float)) != 0; /* bit-identical */
                else if (a >= 1.0f)
                    bad += d[k] != s[k];
                else
                    bad += fabsf(d[k] - (o[k] * (1 - a) + s[k] * a)) > 1e-6f;
            }
        }
    CHECK(bad == 0, "composite: %d wrong samples", bad);
    CHECK(sd_img_composite(&dst, 13, 7, &src, &m, &err) == SD_ERR_INVALID_ARG,
          "placement outside");

    /* planar round trip through the VAE's -1..1 range */
    float *pl = malloc(sizeof(float) * 3 * 20 * 16);
    sd_img back;
    sd_img_new(20, 16, 4, &back, NULL);
    sd_img_to_planar(&dst, 3, 2.0f, -1.0f, pl);
    CHECK(fabsf(pl[2 * 320 + 3 * 20 + 4] - (2.0f * sd_img_px(&dst, 4, 3)[2] - 1.0f)) < 1e-7f,
          "planar layout");
    sd_img_from_planar(pl, 3, 0.5f, 0.5f, &back);
    double worst = 0;
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 20; x++)
            for (int k = 0; k < 3; k++)
                worst = fmax(worst, fabs(sd_img_px(&back, x, y)[k] - sd_img_px(&dst, x, y)[k]));
    CHECK(worst < 1e-6 && sd_img_px(&back, 3, 3)[3] == 0.0f, "planar round trip %g", worst);
    pl[0] = 5.0f;
    sd_img_from_planar(pl, 3, 0.5f, 0.5f, &back);
    CHECK(sd_img_px(&back, 0, 0)[0] == 1.0f, "clamped");
    free(pl);
    sd_img_free(&back);
    sd_img_free(&dst);
    sd_img_free(&src);
    sd_img_free(&m);
    sd_img_free(&ref);
}

/* ==== resize =========================================================================== */

static void check_resize_constant(void)
{
    static const int sizes[][2] = {{1, 1}, {1, 5}, {5, 1}, {2, 3}, {7, 3}, {13, 17}, {64, 48},
                                   {31, 129}};
    int bad = 0, n = 0;
    for (size_t a = 0; a < SD_ARRAY_LEN(sizes); a++)
        for (size_t b = 0; b < SD_ARRAY_LEN(sizes); b++)
            for (int c = 1; c <= 4; c++) {
                if (c == 2)
                    continue;
                sd_img src, dst;
                sd_img_new(sizes[a][0], sizes[a][1], c, &src, NULL);
                for (int y = 0; y < src.h; y++)
                    for (int x = 0; x < src.w; x++)
                        for (int k = 0; k < c; k++)
                            sd_img_px(&src, x, y)[k] = k == 3 ? 0.6f : 0.37f + 0.1f * k;
                for (int f = 0; f < 2; f++) {
                    sd_status st = sd_img_resize(&src, sizes[b][0], sizes[b][1],
                                                 (sd_resize_filter)f, &dst, NULL);
                    n++;
                    if (st != SD_OK) {
                        bad++;
                        continue;
                    }
                    for (int y = 0; y < dst.h; y++)
                        for (int x = 0; x < dst.w; x++)
                            for (int k = 0; k < c; k++) {
                                float want = k == 3 ? 0.6f : 0.37f + 0.1f * k;
                                bad += fabsf(sd_img_px(&dst, x, y)[k] - want) > 2e-6f;
                            }
                    sd_img_free(&dst);
                }
                sd_img_free(&src);
            }
    CHECK(bad == 0, "constant images stay constant: %d bad samples in %d resizes", bad, n);
}

static double smooth(int x, int y, int w, int h, int k)
{
    double u = (x + 0.5) / w, v = (y + 0.5) / h;
    return 0.5 + 0.2 * sin(2.0 * u + 1.3 * v + k) * cos(1.5 * v - 0.7 * u);
}

static void check_resize_roundtrip(void)
{
    sd_img big, small, back;
    sd_img_new(160, 120, 3, &big, NULL);
    for (int y = 0; y < 120; y++)
        for (int x = 0; x < 160; x++)
            for (int k = 0; k < 3; k++)
                sd_img_px(&big, x, y)[k] = (float)smooth(x, y, 160, 120, k);
    sd_error err = {0};
    CHECK(sd_img_resize(&big, 67, 51, SD_RESIZE_LANCZOS3, &small, &err) == SD_OK, "%s",
          err.msg);
    /* the small image samples the same smooth function at its own pixel centres */
    double wdown = 0;
    for (int y = 0; y < 51; y++)
        for (int x = 0; x < 67; x++)
            for (int k = 0; k < 3; k++)
                wdown = fmax(wdown, fabs(sd_img_px(&small, x, y)[k] - smooth(x, y, 67, 51, k)));
    CHECK(sd_img_resize(&small, 160, 120, SD_RESIZE_LANCZOS3, &back, &err) == SD_OK, "%s",
          err.msg);
    double wback = t_img_maxdiff(&big, &back);
    printf("smooth 160x120 -> 67x51: max err %.2e; and back: %.2e\n", wdown, wback);
    CHECK(wdown < 3e-3, "downscale of a smooth image: %g", wdown);
    CHECK(wback < 5e-3, "down and up again: %g", wback);
    sd_img_free(&back);
    sd_img_free(&small);

    /* upscale by 3 then downscale by 3 */
    sd_img up;
    sd_img_resize(&big, 480, 360, SD_RESIZE_LANCZOS3, &up, NULL);
    sd_img_resize(&up, 160, 120, SD_RESIZE_LANCZOS3, &back, NULL);
    double wup = t_img_maxdiff(&big, &back);
    CHECK(wup < 2e-3, "up and down again: %g", wup);
    sd_img_free(&up);
    sd_img_free(&back);
    sd_img_free(&big);
}

static void check_resize_antialias(void)
{
    /* a 1-pixel checkerboard shrunk by 4 (and by a non-integer 3.3) must average out to
     * grey: a filter not widened for shrinking aliases it into a pattern */
    sd_img cb, out;
    sd_img_new(132, 99, 1, &cb, NULL);
    for (int y = 0; y < 99; y++)
        for (int x = 0; x < 132; x++)
            *sd_img_px(&cb, x, y) = (x + y) % 2 ? 0.9f : 0.1f;
    static const int to[][2] = {{33, 25}, {40, 30}};
    for (size_t t = 0; t < SD_ARRAY_LEN(to); t++) {
        sd_img_resize(&cb, to[t][0], to[t][1], SD_RESIZE_LANCZOS3, &out, NULL);
        double worst = 0;
        for (int y = 2; y < out.h - 2; y++)
            for (int x = 2; x < out.w - 2; x++)
                worst = fmax(worst, fabs(*sd_img_px(&out, x, y) - 0.5));
        CHECK(worst < 0.02, "checkerboard to %dx%d: deviation from grey %.3f", to[t][0],
              to[t][1], worst);
        sd_img_free(&out);
    }
    sd_img_free(&cb);
}

static void check_resize_symmetry_and_range(void)
{
    /* mirroring commutes with resizing iff the sample grid is centred correctly */
    sd_img im = t_pic(T_SHAPES, 37, 23, 3), mir, a, b;
    sd_img_new(37, 23, 3, &mir, NULL);
    for (int y = 0; y < 23; y++)
        for (int x = 0; x < 37; x++)
            memcpy(sd_img_px(&mir, 36 - x, y), sd_img_px(&im, x, y), 3 * sizeof(float));
    static const int to[][2] = {{16, 10}, {80, 51}, {37, 9}, {5, 23}};
    for (size_t t = 0; t < SD_ARRAY_LEN(to); t++) {
        sd_img_resize(&im, to[t][0], to[t][1], SD_RESIZE_LANCZOS3, &a, NULL);
        sd_img_resize(&mir, to[t][0], to[t][1], SD_RESIZE_LANCZOS3, &b, NULL);
        double worst = 0, lo = 1, hi = 0;
        for (int y = 0; y < a.h; y++)
            for (int x = 0; x < a.w; x++)
                for (int k = 0; k < 3; k++) {
                    float va = sd_img_px(&a, x, y)[k];
                    worst = fmax(worst, fabs(va - sd_img_px(&b, a.w - 1 - x, y)[k]));
                    lo = fmin(lo, va), hi = fmax(hi, va);
                }
        CHECK(worst < 1e-5, "mirror symmetry %dx%d: %g", to[t][0], to[t][1], worst);
        CHECK(lo >= 0.0 && hi <= 1.0, "range");
        sd_img_free(&a);
        sd_img_free(&b);
    }
    /* a hard 0/1 edge rings under Lanczos; the result stays within 0..1 */
    sd_img edge;
    sd_img_new(20, 4, 1, &edge, NULL);
    for (int y = 0; y < 4; y++)
        for (int x = 10; x < 20; x++)
            *sd_img_px(&edge, x, y) = 1.0f;
    sd_img_resize(&edge, 57, 4, SD_RESIZE_LANCZOS3, &a, NULL);
    float lo = 1, hi = 0;
    for (int x = 0; x < 57; x++)
        lo = fminf(lo, *sd_img_px(&a, x, 0)), hi = fmaxf(hi, *sd_img_px(&a, x, 0));
    CHECK(lo == 0.0f && hi == 1.0f, "ringing clamped: %g..%g", lo, hi);
    sd_img_free(&a);
    sd_img_free(&edge);

    /* same size: an exact copy */
    sd_img_resize(&im, 37, 23, SD_RESIZE_LANCZOS3, &a, NULL);
    CHECK(memcmp(a.data, im.data, sizeof(float) * 37 * 23 * 3) == 0, "same size copies");
    sd_img_free(&a);
    sd_img_free(&mir);
    sd_img_free(&im);
}

static void check_resize_alpha(void)
{
    /* left: opaque red; right: fully transparent green.  Premultiplied resampling must not
     * let the hidden green into any visible pixel. */
    sd_img im, out;
    sd_img_new(24, 10, 4, &im, NULL);
    for (int y = 0; y < 10; y++)
        for (int x = 0; x < 24; x++) {
            float *p = sd_img_px(&im, x, y);
            if (x < 12)
                p[0] = 1, p[1] = 0, p[2] = 0, p[3] = 1;
            else
                p[0] = 0, p[1] = 1, p[2] = 0, p[3] = 0;
        }
    static const int to[][2] = {{7, 3}, {50, 21}, {23, 5}, {13, 10}};
    for (size_t t = 0; t < SD_ARRAY_LEN(to); t++) {
        sd_img_resize(&im, to[t][0], to[t][1], SD_RESIZE_LANCZOS3, &out, NULL);
        int bleed = 0, partial = 0;
        for (int y = 0; y < out.h; y++)
            for (int x = 0; x < out.w; x++) {
                const float *p = sd_img_px(&out, x, y);
                bleed += p[1] != 0.0f;
                bleed += p[3] > 0.0f && fabsf(p[0] - 1.0f) > 1e-5f;
                bleed += p[3] == 0.0f && p[0] != 0.0f;
                partial += p[3] > 0.0f && p[3] < 1.0f;
            }
        CHECK(bleed == 0, "%dx%d: %d pixels with bled colour", to[t][0], to[t][1], bleed);
        CHECK(partial > 0, "%dx%d: the edge is soft", to[t][0], to[t][1]);
        sd_img_free(&out);
    }
    sd_img_free(&im);
}

static void check_resize_nearest(void)
{
    sd_img im, out;
    sd_img_new(40, 24, 1, &im, NULL);
    for (int y = 0; y < 24; y++)
        for (int x = 0; x < 40; x++)
            *sd_img_px(&im, x, y) = (float)(y * 40 + x) / 960.0f;
    sd_img_resize(&im, 5, 3, SD_RESIZE_NEAREST, &out, NULL);
    int bad = 0;
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 5; x++)
            bad += *sd_img_px(&out, x, y) != *sd_img_px(&im, 8 * x, 8 * y);
    CHECK(bad == 0, "1/8 picks the top-left pixel of each block");
    sd_img_free(&out);
    /* torch: src = min(floor(i * (float)in/out), in - 1), and out = 2 in uses i >> 1 */
    static const int to[][2] = {{80, 48}, {17, 9}, {41, 25}, {3, 100}};
    for (size_t t = 0; t < SD_ARRAY_LEN(to); t++) {
        sd_img_resize(&im, to[t][0], to[t][1], SD_RESIZE_NEAREST, &out, NULL);
        bad = 0;
        for (int y = 0; y < out.h; y++)
            for (int x = 0; x < out.w; x++) {
                int sx = SD_MIN((int)floorf(x * (40.0f / out.w)), 39);
                int sy = SD_MIN((int)floorf(y * (24.0f / out.h)), 23);
                bad += *sd_img_px(&out, x, y) != *sd_img_px(&im, sx, sy);
            }
        CHECK(bad == 0, "nearest to %dx%d: %d wrong", to[t][0], to[t][1], bad);
        sd_img_free(&out);
    }
    sd_img_free(&im);
}

static void check_resize_errors(void)
{
    sd_img a = t_pic(T_GRADIENT, 30, 20, 3), b, out;
    sd_img_new(10, 10, 4, &b, NULL);
    sd_error err = {0};
    CHECK(sd_img_resize_into(&a, &b, SD_RESIZE_LANCZOS3, &err) == SD_ERR_INVALID_ARG,
          "channel mismatch");
    CHECK(sd_img_resize(&a, 0, 10, SD_RESIZE_LANCZOS3, &out, &err) == SD_ERR_INVALID_ARG &&
              !out.data,
          "zero size");
    CHECK(sd_img_resize(&a, 10, 10, (sd_resize_filter)7, &out, &err) == SD_ERR_INVALID_ARG &&
              !out.data,
          "unknown filter");
    size_t live = sd_alloc_live_bytes();
    int nomem = 0;
    for (long n = 1;; n++) {
        sd_alloc_fail_after(n, false);
        sd_status st = sd_img_resize(&a, 17, 41, SD_RESIZE_LANCZOS3, &out, NULL);
        sd_alloc_fail_after(0, false);
        if (st == SD_OK) {
            sd_img_free(&out);
            break;
        }
        nomem++;
        CHECK(st == SD_ERR_NOMEM && !out.data, "allocation %ld: %d", n, st);
    }
    CHECK(nomem >= 5 && sd_alloc_live_bytes() == live, "%d failure points, no leaks", nomem);
    sd_img_free(&a);
    sd_img_free(&b);
}

/* ==== blur and masks =================================================================== */

static void check_blur(void)
{
    CHECK(sd_blur_radius(4.0f) == 10 && sd_blur_radius(1.0f) == 3 && sd_blur_radius(0.0f) == 0 &&
              sd_blur_radius(0.1f) == 0 && sd_blur_radius(0.2f) == 1 &&
              sd_blur_radius(-1.0f) == 0,
          "radius = int(2.5 sigma + 0.5)");
    sd_img im = t_pic(T_TEXTURE, 33, 21, 3), out, out2;
    sd_img_new(33, 21, 3, &out, NULL);
    sd_img_new(33, 21, 3, &out2, NULL);
    sd_error err = {0};
    CHECK(sd_img_blur(&im, 0.0f, 0.0f, &out, &err) == SD_OK &&
              memcmp(out.data, im.data, sizeof(float) * 33 * 21 * 3) == 0,
          "sigma 0 is the identity");
    /* a constant mask stays constant */
    sd_img m;
    sd_img_new(40, 30, 1, &m, NULL);
    sd_img_fill(&m, 0.8f);
    CHECK(sd_img_blur(&m, 4.0f, 2.5f, &m, &err) == SD_OK, "in place");
    float lo = 1, hi = 0;
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < 40; x++)
            lo = fminf(lo, *sd_img_px(&m, x, y)), hi = fmaxf(hi, *sd_img_px(&m, x, y));
    CHECK(hi - lo < 1e-6f && fabsf(hi - 0.8f) < 1e-6f, "constant: %g..%g", lo, hi);
    /* impulse response: Gaussian of sigma 2 across only, radius 5 */
    sd_img_fill(&m, 0.0f);
    *sd_img_px(&m, 20, 15) = 1.0f;
    sd_img_blur(&m, 2.0f, 0.0f, &m, NULL);
    double sum = 0, worst = 0, norm = 0;
    for (int i = -5; i <= 5; i++)
        norm += exp(-i * i / 8.0);
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < 40; x++) {
            double v = *sd_img_px(&m, x, y), want = 0;
            if (y == 15 && abs(x - 20) <= 5)
                want = exp(-(x - 20) * (x - 20) / 8.0) / norm;
            worst = fmax(worst, fabs(v - want));
            sum += v;
        }
    CHECK(worst < 1e-7 && fabs(sum - 1.0) < 1e-6, "impulse response: err %g, mass %g", worst,
          sum);
    /* separable and symmetric: transposing commutes with swapping the sigmas */
    sd_img_blur(&im, 3.0f, 1.5f, &out, NULL);
    sd_img t, tb;
    sd_img_new(21, 33, 3, &t, NULL);
    sd_img_new(21, 33, 3, &tb, NULL);
    for (int y = 0; y < 21; y++)
        for (int x = 0; x < 33; x++)
            memcpy(sd_img_px(&t, y, x), sd_img_px(&im, x, y), 3 * sizeof(float));
    sd_img_blur(&t, 1.5f, 3.0f, &tb, NULL);
    worst = 0;
    for (int y = 0; y < 21; y++)
        for (int x = 0; x < 33; x++)
            for (int k = 0; k < 3; k++)
                worst = fmax(worst, fabs(sd_img_px(&out, x, y)[k] - sd_img_px(&tb, y, x)[k]));
    CHECK(worst < 1e-6, "transpose symmetry %g", worst);
    /* in place equals out of place */
    sd_img_copy(&im, &out2, NULL);
    sd_img_blur(&out2, 3.0f, 1.5f, &out2, NULL);
    CHECK(t_img_maxdiff(&out, &out2) == 0.0, "in place");
    /* clamp-to-edge: a mask filling the left half keeps full strength on the border */
    sd_img_fill(&m, 0.0f);
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < 20; x++)
            *sd_img_px(&m, x, y) = 1.0f;
    sd_img_blur(&m, 4.0f, 4.0f, &m, NULL);
    CHECK(*sd_img_px(&m, 0, 0) == 1.0f && *sd_img_px(&m, 9, 29) == 1.0f &&
              *sd_img_px(&m, 30, 5) == 0.0f && fabsf(*sd_img_px(&m, 19, 7) - 0.5f) < 0.1f &&
              *sd_img_px(&m, 19, 7) > 0.5f,
          "edges: %g %g %g %g", *sd_img_px(&m, 0, 0), *sd_img_px(&m, 9, 29),
          *sd_img_px(&m, 30, 5), *sd_img_px(&m, 19, 7));
    CHECK(sd_img_blur(&im, -1.0f, 0.0f, &out, &err) == SD_ERR_INVALID_ARG, "negative sigma");
    CHECK(sd_img_blur(&im, NAN, 0.0f, &out, &err) == SD_ERR_INVALID_ARG, "NaN sigma");
    CHECK(sd_img_blur(&im, 1e6f, 0.0f, &out, &err) == SD_ERR_INVALID_ARG, "huge sigma");
    CHECK(sd_img_blur(&im, 1.0f, 1.0f, &m, &err) == SD_ERR_INVALID_ARG, "size mismatch");
    size_t live = sd_alloc_live_bytes();
    for (long n = 1; n <= 5; n++) {
        sd_alloc_fail_after(n, false);
        sd_status st = sd_img_blur(&im, 2.0f, 2.0f, &out, NULL);
        sd_alloc_fail_after(0, false);
        CHECK(st == SD_ERR_NOMEM, "allocation %ld", n);
    }
    CHECK(sd_alloc_live_bytes() == live, "no leaks");
    sd_img_free(&t);
    sd_img_free(&tb);
    sd_img_free(&m);
    sd_img_free(&im);
    sd_img_free(&out);
    sd_img_free(&out2);
}

static void check_bbox_binarize(void)
{
    sd_img m;
    sd_img_new(50, 40, 1, &m, NULL);
    sd_rect r;
    CHECK(!sd_mask_bbox(&m, 0.0f, &r) && r.w == 0 && sd_mask_is_empty(&m, 0.0f), "empty");
    for (int y = 12; y < 30; y++)
        for (int x = 7; x < 21; x++)
            *sd_img_px(&m, x, y) = 1.0f;
    CHECK(sd_mask_bbox(&m, 0.0f, &r) && r.x == 7 && r.y == 12 && r.w == 14 && r.h == 18,
          "rectangle: %d,%d %dx%d", r.x, r.y, r.w, r.h);
    CHECK(!sd_mask_is_empty(&m, 0.5f) && sd_mask_is_empty(&m, 1.0f), "is_empty threshold");
    /* feathered: the blur spreads the support by the radius (10 for sigma 4) */
    sd_img_blur(&m, 4.0f, 4.0f, &m, NULL);
    CHECK(sd_mask_bbox(&m, 0.0f, &r) && r.x == 0 && r.y == 2 && r.w == 31 && r.h == 38,
          "feathered, > 0: %d,%d %dx%d", r.x, r.y, r.w, r.h);
    CHECK(sd_mask_bbox(&m, 0.5f, &r) && r.x == 7 && r.y == 12 && r.w == 14 && r.h == 18,
          "feathered, > 0.5: %d,%d %dx%d", r.x, r.y, r.w, r.h);
    sd_img_free(&m);

    sd_img e = t_ellipse(64, 48, 30.0, 20.0, 10.0, 6.0);
    CHECK(sd_mask_bbox(&e, 0.0f, &r) && r.x == 20 && r.y == 14 && r.w == 20 && r.h == 12,
          "ellipse: %d,%d %dx%d", r.x, r.y, r.w, r.h);
    /* a single pixel in the corner */
    sd_img_fill(&e, 0.0f);
    *sd_img_px(&e, 63, 47) = 0.01f;
    CHECK(sd_mask_bbox(&e, 0.0f, &r) && r.x == 63 && r.y == 47 && r.w == 1 && r.h == 1,
          "corner pixel");
    CHECK(!sd_mask_bbox(&e, 0.01f, &r), "threshold is strict");

    float v[6] = {0.0f, 0.4999f, 0.5f, 0.75f, 1.0f, NAN};
    sd_img b = sd_img_view(v, 6, 1, 1, 6);
    CHECK(sd_mask_binarize(&b, &b, NULL) == SD_OK && v[0] == 0 && v[1] == 0 && v[2] == 1 &&
              v[3] == 1 && v[4] == 1 && v[5] == 0,
          "binarize >= 0.5");
    sd_img_free(&e);
}

static void check_latent_mask(void)
{
    sd_img m, lat;
    sd_img_new(24, 16, 1, &m, NULL);
    t_rng rng = {42};
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 24; x++)
            *sd_img_px(&m, x, y) = (float)t_rng_unit(&rng);
    sd_error err = {0};
    CHECK(sd_mask_to_latent(&m, &lat, &err) == SD_OK && lat.w == 3 && lat.h == 2, "%s",
          err.msg);
    int bad = 0;
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++)
            bad += *sd_img_px(&lat, x, y) != (*sd_img_px(&m, 8 * x, 8 * y) >= 0.5f ? 1.0f : 0.0f);
    CHECK(bad == 0, "top-left pixel of each block, binarised");
    sd_img_free(&lat);
    sd_img sub = sd_img_sub(&m, sd_rect_make(0, 0, 20, 16));
    CHECK(sd_mask_to_latent(&sub, &lat, &err) == SD_ERR_INVALID_ARG && !lat.data,
          "width 20: %s", err.msg);
    sd_img_free(&m);
}

/* diffusers' mask_latents from the recorded inpaint runs, bit for bit */
static void check_latent_mask_golden(void)
{
    static const char *const cases[] = {"tiny-sd15/pipeline_inpaint_legacy.safetensors",
                                        "tiny-sd15-inpaint/pipeline_inpaint.safetensors"};
    for (size_t i = 0; i < SD_ARRAY_LEN(cases); i++) {
        sd_st_file *f = NULL;
        sd_error err = {0};
        const sd_tensor *mask = NULL, *want = NULL;
        if (sd_st_open(t_data(cases[i]), &f, &err) != SD_OK ||
            sd_st_get(f, "mask", &mask, &err) != SD_OK ||
            sd_st_get(f, "mask_latents", &want, &err) != SD_OK) {
            CHECK(0, "%s: %s", cases[i], err.msg);
            sd_st_close(f);
            continue;
        }
        CHECK(mask->dtype == SD_DTYPE_F32 && mask->ndim == 4 && mask->shape[2] == 128 &&
                  mask->shape[3] == 128 && want->dtype == SD_DTYPE_F32 && want->shape[2] == 16 &&
                  want->shape[3] == 16,
              "%s: shapes", cases[i]);
        const float *m = mask->data;
        long soft = 0;
        for (int k = 0; k < 128 * 128; k++)
            soft += m[k] > 0.0f && m[k] < 1.0f;
        sd_img mv = sd_img_view(m, 128, 128, 1, 128), lat;
        CHECK(sd_mask_to_latent(&mv, &lat, &err) == SD_OK, "%s", err.msg);
        CHECK(memcmp(lat.data, want->data, 16 * 16 * sizeof(float)) == 0,
              "%s: latent mask differs from diffusers'", cases[i]);
        printf("%s: mask with %ld soft pixels -> latent mask identical\n", cases[i], soft);
        sd_img_free(&lat);
        sd_st_close(f);
    }
}

static void check_distance(void)
{
    /* brute force on a random blobby mask */
    const int w = 37, h = 23;
    sd_img m, d;
    sd_img_new(w, h, 1, &m, NULL);
    sd_img_new(w, h, 1, &d, NULL);
    t_rng rng = {7};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            *sd_img_px(&m, x, y) = (t_rng_unit(&rng) < 0.15 || (x > 10 && x < 20 && y > 5))
                                       ? 0.9f : 0.1f;
    sd_error err = {0};
    CHECK(sd_mask_distance(&m, &d, &err) == SD_OK, "%s", err.msg);
    double worst = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            bool in = *sd_img_px(&m, x, y) >= 0.5f;
            double best = INFINITY;
            for (int v = 0; v < h; v++)
                for (int u = 0; u < w; u++)
                    if ((*sd_img_px(&m, u, v) >= 0.5f) != in)
                        best = fmin(best, sqrt((double)(u - x) * (u - x) + (v - y) * (v - y)));
            worst = fmax(worst, fabs(best - *sd_img_px(&d, x, y)));
        }
    CHECK(worst < 1e-5, "distance transform vs brute force: %g", worst);
    /* one class absent: infinite */
    sd_img_fill(&m, 1.0f);
    sd_mask_distance(&m, &d, NULL);
    CHECK(isinf(*sd_img_px(&d, 5, 5)), "no outside pixel");
    sd_img_free(&m);
    sd_img_free(&d);
}

int main(void)
{
    check_basics();
    check_composite_planar();
    check_resize_constant();
    check_resize_roundtrip();
    check_resize_antialias();
    check_resize_symmetry_and_range();
    check_resize_alpha();
    check_resize_nearest();
    check_resize_errors();
    check_blur();
    check_bbox_binarize();
    check_latent_mask();
    check_latent_mask_golden();
    check_distance();
    return t_summary("t_image");
}
