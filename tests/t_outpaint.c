/* tests/t_outpaint.c - canvas extension (original pixels exact at their new offsets, the new
 * area completely filled with plausible colour and matched noise, the mask and its
 * overlap band), model-resolution windows (cover every masked pixel, sizes multiples of 8,
 * each sees content when its turn comes) and the per-window masks, driven through a
 * simulated outpaint loop. */
#include "imgutil.h"
#include "internal/imgproc.h"

static sd_outpaint_params params(int l, int t, int r, int b)
{
    sd_outpaint_params p = sd_outpaint_params_default();
    p.left = l, p.top = t, p.right = r, p.bottom = b;
    p.seed = 1234;
    return p;
}

static bool in_old(int x, int y, const sd_outpaint_params *p, int w, int h)
{
    return x >= p->left && x < p->left + w && y >= p->top && y < p->top + h;
}

/* ==== extension ======================================================================== */

static void check_extend(int c)
{
    const int w = 60, h = 40;
    sd_img src = t_pic(T_TEXTURE, w, h, c);
    if (c == 4)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                sd_img_px(&src, x, y)[3] = 0.2f + 0.01f * x;
    t_add_noise(&src, 6.0, 3);
    sd_outpaint_params p = params(24, 0, 40, 16);
    p.overlap = 16;                    /* the 60 px wide source keeps the bands apart */
    sd_img img, mask;
    sd_error err = {0};
    CHECK(sd_outpaint_extend(&src, &p, &img, &mask, &err) == SD_OK, "%s", err.msg);
    CHECK(img.w == 124 && img.h == 56 && img.c == c && mask.w == 124 && mask.h == 56 &&
              mask.c == 1,
          "sizes %dx%dx%d", img.w, img.h, img.c);
    long moved = 0, unfilled = 0, bad_mask_new = 0, bad_alpha = 0;
    for (int y = 0; y < img.h; y++)
        for (int x = 0; x < img.w; x++) {
            const float *q = sd_img_px(&img, x, y);
            float m = *sd_img_px(&mask, x, y);
            if (in_old(x, y, &p, w, h)) {
                moved += memcmp(q, sd_img_px(&src, x - p.left, y - p.top),
                                (size_t)c * sizeof(float)) != 0;
                continue;
            }
            bad_mask_new += m != 1.0f;
            bool zero = true;
            for (int k = 0; k < SD_MIN(c, 3); k++) {
                unfilled += !(q[k] >= 0.0f && q[k] <= 1.0f);   /* NaN too */
                zero &= q[k] == 0.0f;
            }
            unfilled += zero;
            bad_alpha += c == 4 && q[3] != 1.0f;
        }
    CHECK(moved == 0, "c=%d: %ld original pixels not at their new offset", c, moved);
    CHECK(unfilled == 0, "c=%d: %ld new samples unfilled or out of range", c, unfilled);
    CHECK(bad_mask_new == 0 && bad_alpha == 0, "new area: mask %ld, alpha %ld", bad_mask_new,
          bad_alpha);

    /* the mask inside the old image: 0 beyond the overlap band, falling across it, and
     * nothing along the top (not extended) */
    float m_edge = *sd_img_px(&mask, p.left, 20), m_mid = *sd_img_px(&mask, p.left + 7, 20);
    float m_far = *sd_img_px(&mask, p.left + 16, 20), m_top = *sd_img_px(&mask, p.left + 30, 0);
    CHECK(m_edge > 0.99f && m_mid > 0.45f && m_mid < 0.6f && m_far == 0.0f && m_top == 0.0f,
          "band: %g %g %g top %g", m_edge, m_mid, m_far, m_top);
    long nonmono = 0;
    for (int x = p.left; x + 1 < p.left + w / 2; x++)
        nonmono += *sd_img_px(&mask, x + 1, 20) > *sd_img_px(&mask, x, 20);
    CHECK(nonmono == 0, "band falls monotonically");
    CHECK(*sd_img_px(&mask, p.left + w - 1, 20) > 0.99f, "right band");
    CHECK(*sd_img_px(&mask, p.left + 30, p.top + h - 1) > 0.99f, "bottom band");

    /* continuity: the first new column next to the old image is close to its border */
    double d_near = 0;
    for (int y = 0; y < h; y++)
        for (int k = 0; k < 3; k++)
            d_near += fabs(sd_img_px(&img, p.left - 1, y)[k] - sd_img_px(&src, 0, y)[k]);
    d_near /= 3.0 * h;
    CHECK(d_near < 0.06, "continuity at the left border: %.4f", d_near);

    /* same seed, same canvas; another seed, other noise */
    sd_img img2, mask2;
    sd_outpaint_extend(&src, &p, &img2, &mask2, NULL);
    CHECK(t_img_maxdiff(&img, &img2) == 0.0 && t_img_maxdiff(&mask, &mask2) == 0.0,
          "deterministic");
    sd_img_free(&img2);
    sd_img_free(&mask2);
    p.seed = 99;
    sd_outpaint_extend(&src, &p, &img2, &mask2, NULL);
    CHECK(t_img_maxdiff(&img, &img2) > 0.0, "seeded");
    sd_img_free(&img2);
    sd_img_free(&mask2);
    sd_img_free(&img);
    sd_img_free(&mask);
    sd_img_free(&src);
}

static void check_prefill_statistics(void)
{
    /* a flat picture extends flat (no noise where there is no detail) */
    sd_img src;
    sd_img_new(50, 30, 3, &src, NULL);
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < 50; x++) {
            float *q = sd_img_px(&src, x, y);
            q[0] = 0.2f, q[1] = 0.5f, q[2] = 0.7f;
        }
    sd_outpaint_params p = params(20, 20, 20, 20);
    sd_img img, mask;
    sd_outpaint_extend(&src, &p, &img, &mask, NULL);
    double worst = 0;
    for (int y = 0; y < img.h; y++)
        for (int x = 0; x < img.w; x++) {
            const float *q = sd_img_px(&img, x, y);
            worst = fmax(worst, fabs(q[0] - 0.2) + fabs(q[1] - 0.5) + fabs(q[2] - 0.7));
        }
    CHECK(worst < 1e-5, "flat extends flat: %g", worst);
    sd_img_free(&img);
    sd_img_free(&mask);
    sd_img_free(&src);

    /* a noisy picture extends with noise of a similar amplitude: the noise estimator on a
     * block of the new area finds roughly the source's sigma (the detail band measured
     * keeps ~0.87 of white noise) */
    const double sigmas[] = {8.0, 20.0};
    for (size_t s = 0; s < SD_ARRAY_LEN(sigmas); s++) {
        src = t_pic(T_GRADIENT, 120, 100, 3);
        t_add_noise(&src, sigmas[s], 11 + s);
        p = params(0, 0, 96, 0);
        sd_outpaint_extend(&src, &p, &img, &mask, NULL);
        sd_img block = sd_img_sub(&img, sd_rect_make(120 + 40, 10, 48, 80));
        sd_noise_estimate e;
        sd_noise_estimate_img(&block, &e, NULL);
        printf("pre-fill noise: source sigma %.0f, new area %.2f\n", sigmas[s], e.sigma);
        CHECK(e.sigma > 0.6 * sigmas[s] && e.sigma < 1.2 * sigmas[s],
              "pre-fill noise %.2f for sigma %.0f", e.sigma, sigmas[s]);
        p.noise = 0.0f;
        sd_img img0, mask0;
        sd_outpaint_extend(&src, &p, &img0, &mask0, NULL);
        block = sd_img_sub(&img0, sd_rect_make(120 + 40, 10, 48, 80));
        sd_noise_estimate_img(&block, &e, NULL);
        CHECK(e.sigma < 0.1 * sigmas[s], "noise 0: %.2f", e.sigma);
        sd_img_free(&img0);
        sd_img_free(&mask0);
        sd_img_free(&img);
        sd_img_free(&mask);
        sd_img_free(&src);
    }
}

static void check_extend_errors(void)
{
    sd_img src = t_pic(T_SHAPES, 20, 10, 3), img, mask;
    sd_error err = {0};
    sd_outpaint_params p = params(0, 0, 0, 0);
    CHECK(sd_outpaint_extend(&src, &p, &img, &mask, &err) == SD_ERR_INVALID_ARG && !img.data &&
              !mask.data,
          "nothing to extend: %s", err.msg);
    p = params(-1, 5, 0, 0);
    CHECK(sd_outpaint_extend(&src, &p, &img, &mask, &err) == SD_ERR_INVALID_ARG, "negative");
    p = params(SD_IMG_MAX_DIM, 0, 0, 0);
    CHECK(sd_outpaint_extend(&src, &p, &img, &mask, &err) == SD_ERR_TOO_LARGE, "too large");
    p = params(4, 0, 0, 0);
    p.fill_blur = NAN;
    CHECK(sd_outpaint_extend(&src, &p, &img, &mask, &err) == SD_ERR_INVALID_ARG, "NaN blur");
    /* a tiny source and a huge blur still work */
    sd_img one = sd_img_sub(&src, sd_rect_make(3, 3, 1, 1));
    p = params(9, 9, 9, 9);
    p.fill_blur = 30.0f;
    p.overlap = 100;
    CHECK(sd_outpaint_extend(&one, &p, &img, &mask, &err) == SD_OK && img.w == 19 &&
              *sd_img_px(&mask, 9, 9) > 0.99f,
          "1x1 source: %s", err.msg);
    CHECK(memcmp(sd_img_px(&img, 9, 9), sd_img_px(&src, 3, 3), 3 * sizeof(float)) == 0,
          "1x1 kept");
    sd_img_free(&img);
    sd_img_free(&mask);

    size_t live = sd_alloc_live_bytes();
    int nomem = 0;
    p = params(5, 6, 7, 8);
    for (long n = 1;; n++) {
        sd_alloc_fail_after(n, false);
        sd_status st = sd_outpaint_extend(&src, &p, &img, &mask, NULL);
        sd_alloc_fail_after(0, false);
        if (st == SD_OK)
            break;
        nomem++;
        CHECK(st == SD_ERR_NOMEM && !img.data && !mask.data, "allocation %ld: %d", n, st);
    }
    CHECK(nomem > 10, "failure points: %d", nomem);
    sd_img_free(&img);
    sd_img_free(&mask);
    CHECK(sd_alloc_live_bytes() == live, "no leaks");
    sd_img_free(&src);
}

/* ==== windows and the loop ============================================================= */

/* Plan windows for `mask`, check them, then run the outpaint loop with a fake generator
 * that paints everything in `colour`, and check the result. */
static void check_windows_on(const sd_img *canvas0, const sd_img *mask, int win, int ov,
                             const char *what)
{
    sd_rect *wins = NULL;
    int n = 0;
    sd_error err = {0};
    CHECK(sd_outpaint_windows(mask, win, win, ov, &wins, &n, &err) == SD_OK && n > 0, "%s: %s",
          what, err.msg);
    const int W = mask->w, H = mask->h;
    uint8_t *cover = calloc((size_t)W * H, 1), *content = calloc((size_t)W * H, 1);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            content[y * W + x] = *sd_img_px(mask, x, y) < 0.5f;
    int bad_size = 0, no_context = 0, useless = 0;
    double min_context = 1.0;
    for (int k = 0; k < n; k++) {
        sd_rect r = wins[k];
        bad_size += r.w % 8 || r.h % 8 || !sd_rect_inside(r, W, H) || r.w > win || r.h > win;
        long ctx = 0, fresh = 0;
        for (int y = r.y; y < r.y + r.h; y++)
            for (int x = r.x; x < r.x + r.w; x++) {
                ctx += content[y * W + x];
                fresh += *sd_img_px(mask, x, y) > 0.0f && !cover[y * W + x];
            }
        double frac = (double)ctx / ((double)r.w * r.h);
        min_context = fmin(min_context, frac);
        no_context += ctx == 0;
        useless += fresh == 0;
        for (int y = r.y; y < r.y + r.h; y++)
            for (int x = r.x; x < r.x + r.w; x++)
                cover[y * W + x] = content[y * W + x] = 1;
    }
    long uncovered = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            uncovered += *sd_img_px(mask, x, y) > 0.0f && !cover[y * W + x];
    printf("%s: %d windows of %dx%d, least context when processed %.0f%%\n", what, n, wins[0].w,
           wins[0].h, 100.0 * min_context);
    CHECK(bad_size == 0, "%s: %d windows of a bad size", what, bad_size);
    CHECK(uncovered == 0, "%s: %ld masked pixels uncovered", what, uncovered);
    CHECK(no_context == 0 && min_context >= 0.2, "%s: a window without enough context (%.2f)",
          what, min_context);
    CHECK(useless == 0, "%s: %d windows with nothing new to do", what, useless);

    /* the loop, once with feather 0 and once with 16: window masks regenerate every
     * masked pixel at least once and never touch a pixel outside the mask; with feather 0
     * nothing is regenerated twice, with a feather only strips along the inner edges of
     * earlier windows are; and a fake generator's colour ends up everywhere under the
     * mask */
    sd_img canvas = {0};
    for (int feather = 0; feather <= 16; feather += 16) {
        sd_img_free(&canvas);
        sd_img_clone(canvas0, &canvas, NULL);
        long zero_first = 0, outside = 0, redone = 0, strip_bound = 0;
        memset(cover, 0, (size_t)W * H);
        for (int k = 0; k < n; k++) {
            sd_img wm, gen;
            CHECK(sd_outpaint_window_mask(mask, wins, k, feather, &wm, &err) == SD_OK, "%s",
                  err.msg);
            for (int y = 0; y < wm.h; y++)
                for (int x = 0; x < wm.w; x++) {
                    int cx = wins[k].x + x, cy = wins[k].y + y;
                    float m = *sd_img_px(&wm, x, y), g = *sd_img_px(mask, cx, cy);
                    outside += m > 0.0f && !(g > 0.0f);
                    outside += m > g;
                    if (g > 0.0f && !cover[cy * W + cx]) {
                        zero_first += m != g;   /* first visit: the full mask value */
                        cover[cy * W + cx] = 1;
                    } else if (m > 0.0f) {
                        redone++;
                    }
                }
            strip_bound += 2L * (wins[k].w + wins[k].h) * feather;
            sd_img_new(wins[k].w, wins[k].h, canvas.c, &gen, NULL);
            for (int y = 0; y < gen.h; y++)
                for (int x = 0; x < gen.w; x++) {
                    float *q = sd_img_px(&gen, x, y);
                    q[0] = 0.25f, q[1] = 0.5f, q[2] = 0.75f;
                }
            CHECK(sd_img_composite(&canvas, wins[k].x, wins[k].y, &gen, &wm, &err) == SD_OK,
                  "%s", err.msg);
            sd_img_free(&gen);
            sd_img_free(&wm);
        }
        CHECK(zero_first == 0 && outside == 0,
              "%s: window masks: first visit %ld, outside %ld", what, zero_first, outside);
        CHECK(feather ? redone <= strip_bound && (n == 1 || redone > 0) : redone == 0,
              "%s, feather %d: %ld pixels regenerated twice (bound %ld)", what, feather,
              redone, strip_bound);
        long wrong = 0, changed = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const float *q = sd_img_px(&canvas, x, y);
                float g = *sd_img_px(mask, x, y);
                if (g >= 1.0f)
                    wrong += fabsf(q[0] - 0.25f) > 1e-6f || fabsf(q[1] - 0.5f) > 1e-6f ||
                             fabsf(q[2] - 0.75f) > 1e-6f;
                else if (g <= 0.0f)
                    changed +=
                        memcmp(q, sd_img_px(canvas0, x, y), sizeof(float) * canvas.c) != 0;
            }
        CHECK(wrong == 0 && changed == 0,
              "%s: %ld new pixels not generated, %ld kept ones changed", what, wrong, changed);
    }
    sd_img_free(&canvas);
    free(cover);
    free(content);
    sd_free(wins);
}

static void check_windows(void)
{
    static const struct {
        int w, h, l, t, r, b, win, ov;
    } cases[] = {
        {300, 200, 200, 100, 0, 0, 256, 64},   /* two sides and their corner */
        {512, 512, 128, 128, 128, 128, 256, 64},/* all round */
        {200, 150, 700, 0, 0, 0, 256, 64},      /* a long way out to the left */
        {64, 48, 30, 7, 3, 0, 512, 64},         /* canvas smaller than a window */
        {400, 300, 0, 0, 0, 36, 128, 32},       /* a thin strip along the bottom */
    };
    for (size_t i = 0; i < SD_ARRAY_LEN(cases); i++) {
        sd_img src = t_pic(T_SHAPES, cases[i].w, cases[i].h, 3), img, mask;
        sd_outpaint_params p = params(cases[i].l, cases[i].t, cases[i].r, cases[i].b);
        p.fill_blur = 0.0f;
        p.noise = 0.0f;
        sd_outpaint_extend(&src, &p, &img, &mask, NULL);
        char what[64];
        snprintf(what, sizeof what, "case %zu (%dx%d)", i, img.w, img.h);
        check_windows_on(&img, &mask, cases[i].win, cases[i].ov, what);
        sd_img_free(&img);
        sd_img_free(&mask);
        sd_img_free(&src);
    }

    /* the first window of a one-sided extension straddles the old border */
    sd_img src = t_pic(T_SHAPES, 600, 400, 3), img, mask;
    sd_outpaint_params p = params(0, 0, 128, 0);
    sd_outpaint_extend(&src, &p, &img, &mask, NULL);
    sd_rect *wins = NULL;
    int n = 0;
    sd_outpaint_windows(&mask, 512, 512, 64, &wins, &n, NULL);
    CHECK(n == 1 && wins[0].x == 728 - 512 && wins[0].w == 512 && wins[0].h == 400,
          "single window: %d, %d,%d %dx%d", n, n ? wins[0].x : 0, n ? wins[0].y : 0,
          n ? wins[0].w : 0, n ? wins[0].h : 0);
    sd_free(wins);
    sd_img_free(&img);
    sd_img_free(&src);

    sd_error err = {0};
    CHECK(sd_outpaint_windows(&mask, 500, 512, 64, &wins, &n, &err) == SD_ERR_INVALID_ARG &&
              !wins && n == 0,
          "window not a multiple of 8");
    sd_img small = sd_img_sub(&mask, sd_rect_make(0, 0, 7, 20));
    CHECK(sd_outpaint_windows(&small, 512, 512, 64, &wins, &n, &err) == SD_ERR_INVALID_ARG,
          "canvas narrower than 8");
    /* an absurd overlap is limited to half a window (and stays fast) */
    CHECK(sd_outpaint_windows(&mask, 256, 256, 248, &wins, &n, &err) == SD_OK && n >= 1,
          "huge overlap: %s", err.msg);
    sd_rect *half = NULL;
    int nh = 0;
    sd_outpaint_windows(&mask, 256, 256, 128, &half, &nh, NULL);
    CHECK(n == nh && memcmp(wins, half, (size_t)n * sizeof *wins) == 0,
          "overlap clamped to half a window: %d vs %d windows", n, nh);
    sd_free(half);
    sd_free(wins);
    sd_img empty;
    sd_img_new(64, 64, 1, &empty, NULL);
    CHECK(sd_outpaint_windows(&empty, 64, 64, 0, &wins, &n, &err) == SD_OK && n == 0,
          "nothing to do: no windows");
    sd_free(wins);
    sd_img_free(&empty);
    size_t live = sd_alloc_live_bytes();
    for (long k = 1; k <= 9; k++) {
        sd_alloc_fail_after(k, false);
        sd_status st = sd_outpaint_windows(&mask, 256, 256, 64, &wins, &n, NULL);
        sd_alloc_fail_after(0, false);
        CHECK(st == SD_ERR_NOMEM && !wins, "allocation %ld: %d", k, st);
    }
    CHECK(sd_alloc_live_bytes() == live, "no leaks");
    sd_img_free(&mask);
}

int main(void)
{
    check_extend(3);
    check_extend(4);
    check_prefill_statistics();
    check_extend_errors();
    check_windows();
    return t_summary("t_outpaint");
}
