/* tests/t_tiles.c - the overlapping tile layout (covers everything, sizes multiples of 8,
 * overlaps at least as asked, even spacing) and the blending accumulator: an identity
 * "process" reproduces the image within 1e-6, and tiles that disagree blend without a
 * seam. */
#include "imgutil.h"
#include "internal/imgproc.h"

static void check_positions(void)
{
    int pos[16];
    CHECK(sd_tile_positions(100, 128, 32, pos) == 1 && pos[0] == 0, "tile larger than extent");
    CHECK(sd_tile_positions(128, 128, 32, pos) == 1, "exact fit");
    CHECK(sd_tile_positions(129, 128, 32, pos) == 2 && pos[0] == 0 && pos[1] == 1, "one more");
    int n = sd_tile_positions(1000, 256, 64, pos);
    CHECK(n == 5 && pos[0] == 0 && pos[4] == 744, "1000 / 256 / 64: %d tiles", n);
    int worst_gap = 0, best_gap = 1 << 30;
    for (int i = 1; i < n; i++) {
        worst_gap = SD_MAX(worst_gap, pos[i] - pos[i - 1]);
        best_gap = SD_MIN(best_gap, pos[i] - pos[i - 1]);
    }
    CHECK(worst_gap <= 192 && worst_gap - best_gap <= 1, "even spacing: %d..%d", best_gap,
          worst_gap);
    CHECK(sd_tile_positions(1000, 256, 64, NULL) == 5, "count only");
}

static void check_plan(void)
{
    static const int sizes[][2] = {{8, 8},     {13, 9},    {100, 60},  {256, 256},
                                   {257, 255}, {777, 333}, {1000, 64}, {33, 1200}};
    static const int tiles[][2] = {{256, 64}, {64, 16}, {128, 0}, {512, 128}};
    int bad = 0, uncovered = 0, thin = 0;
    for (size_t s = 0; s < SD_ARRAY_LEN(sizes); s++)
        for (size_t t = 0; t < SD_ARRAY_LEN(tiles); t++) {
            int W = sizes[s][0], H = sizes[s][1], tile = tiles[t][0], ov = tiles[t][1];
            sd_rect *r = NULL;
            int n = 0;
            sd_error err = {0};
            if (sd_tiles_plan(W, H, tile, tile, ov, &r, &n, &err) != SD_OK) {
                bad++;
                fprintf(stderr, "%dx%d: %s\n", W, H, err.msg);
                continue;
            }
            unsigned char *cov = calloc((size_t)W * H, 1);
            int tw = SD_MIN(tile, W & ~7), th = SD_MIN(tile, H & ~7);
            int want_ov = SD_MIN(ov, SD_MIN(tw, th) - 8);
            for (int i = 0; i < n; i++) {
                bad += r[i].w != tw || r[i].h != th || r[i].w % 8 || r[i].h % 8 ||
                       !sd_rect_inside(r[i], W, H);
                for (int y = r[i].y; y < r[i].y + r[i].h; y++)
                    memset(cov + (size_t)y * W + r[i].x, 1, (size_t)r[i].w);
                /* neighbours overlap by at least the asked amount: along a row, and
                 * between the last tile of a row and the first of the next */
                if (i + 1 < n && r[i + 1].y == r[i].y)
                    thin += r[i].x + r[i].w - r[i + 1].x < want_ov;
                if (i >= 1 && r[i - 1].y != r[i].y)
                    thin += r[i - 1].y + r[i - 1].h - r[i].y < want_ov;
            }
            for (size_t i = 0; i < (size_t)W * H; i++)
                uncovered += !cov[i];
            free(cov);
            sd_free(r);
        }
    CHECK(bad == 0 && uncovered == 0 && thin == 0, "plans: %d bad, %d uncovered, %d thin", bad,
          uncovered, thin);
    sd_rect *r = NULL;
    int n = 0;
    sd_error err = {0};
    CHECK(sd_tiles_plan(7, 100, 64, 64, 16, &r, &n, &err) == SD_ERR_INVALID_ARG && !r && !n,
          "narrower than 8");
    CHECK(sd_tiles_plan(100, 100, 60, 60, 16, &r, &n, &err) == SD_ERR_INVALID_ARG,
          "tile not a multiple of 8");
    CHECK(sd_tiles_plan(100, 100, 64, 64, 12, &r, &n, &err) == SD_ERR_INVALID_ARG,
          "overlap not a multiple of 8");
    CHECK(sd_tiles_plan(100, 100, 64, 64, 64, &r, &n, &err) == SD_ERR_INVALID_ARG,
          "overlap = tile");
    CHECK(sd_tiles_plan(100, 60, 64, 32, 16, &r, &n, &err) == SD_OK && n == 2 * 3 &&
              r[5].w == 64 && r[5].h == 32,
          "rectangular tiles: %d", n);
    sd_free(r);
}

static void run_identity(int W, int H, int c, int tile, int ov)
{
    sd_img im;
    sd_img_new(W, H, c, &im, NULL);
    t_rng rng = {(uint64_t)W * 31 + H};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W * c; x++)
            sd_img_px(&im, 0, y)[x] = (float)t_rng_unit(&rng);
    sd_rect *r = NULL;
    int n = 0;
    sd_tile_acc *acc = NULL;
    sd_error err = {0};
    CHECK(sd_tiles_plan(W, H, tile, tile, ov, &r, &n, &err) == SD_OK, "%s", err.msg);
    CHECK(sd_tile_acc_new(W, H, c, SD_MAX(ov, 1), &acc, &err) == SD_OK, "%s", err.msg);
    for (int i = 0; i < n; i++) {
        sd_img t;
        sd_img sub = sd_img_sub(&im, r[i]);
        sd_img_clone(&sub, &t, NULL);                /* the "process": identity */
        CHECK(sd_tile_acc_add(acc, r[i], &t, &err) == SD_OK, "%s", err.msg);
        sd_img_free(&t);
    }
    sd_img out;
    sd_img_new(W, H, c, &out, NULL);
    CHECK(sd_tile_acc_finish(acc, &out, &err) == SD_OK, "%s", err.msg);
    double d = t_img_maxdiff(&im, &out);
    CHECK(d <= 1e-6, "identity %dx%dx%d tile %d overlap %d (%d tiles): %g", W, H, c, tile, ov, n,
          d);
    sd_img_free(&out);
    sd_tile_acc_free(acc);
    sd_free(r);
    sd_img_free(&im);
}

static void check_seams(void)
{
    /* each tile returns a constant of its own: the blend must ramp between them, never
     * jump by more than the difference spread over the ramp */
    const int W = 400, H = 300, tile = 128, ov = 48;
    sd_rect *r = NULL;
    int n = 0;
    sd_tile_acc *acc = NULL;
    sd_tiles_plan(W, H, tile, tile, ov, &r, &n, NULL);
    sd_tile_acc_new(W, H, 1, ov, &acc, NULL);
    float lo = 1, hi = 0;
    for (int i = 0; i < n; i++) {
        sd_img t;
        sd_img_new(r[i].w, r[i].h, 1, &t, NULL);
        float v = 0.2f + 0.6f * (float)((i * 7) % n) / (float)n;
        lo = fminf(lo, v), hi = fmaxf(hi, v);
        sd_img_fill(&t, v);
        sd_tile_acc_add(acc, r[i], &t, NULL);
        sd_img_free(&t);
    }
    sd_img out;
    sd_img_new(W, H, 1, &out, NULL);
    sd_tile_acc_finish(acc, &out, NULL);
    double jump = 0;
    float omin = 1, omax = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float v = *sd_img_px(&out, x, y);
            omin = fminf(omin, v), omax = fmaxf(omax, v);
            if (x + 1 < W)
                jump = fmax(jump, fabs(*sd_img_px(&out, x + 1, y) - v));
            if (y + 1 < H)
                jump = fmax(jump, fabs(*sd_img_px(&out, x, y + 1) - v));
        }
    double limit = 2.0 * (hi - lo) / ov;
    printf("seams: largest step between neighbours %.4f (tile values %.2f..%.2f, ramp %d)\n",
           jump, lo, hi, ov);
    CHECK(jump <= limit, "seam: step %.4f > %.4f", jump, limit);
    CHECK(omin >= lo - 1e-6f && omax <= hi + 1e-6f, "blend stays within the tile values");
    sd_img_free(&out);
    sd_tile_acc_free(acc);
    sd_free(r);
}

static void check_acc_errors(void)
{
    sd_tile_acc *acc = NULL;
    sd_error err = {0};
    CHECK(sd_tile_acc_new(10, 10, 3, 0, &acc, &err) == SD_ERR_INVALID_ARG && !acc, "ramp 0");
    CHECK(sd_tile_acc_new(10, 10, 3, 4, &acc, &err) == SD_OK, "%s", err.msg);
    sd_img t, out;
    sd_img_new(8, 8, 3, &t, NULL);
    sd_img_new(10, 10, 3, &out, NULL);
    CHECK(sd_tile_acc_add(acc, sd_rect_make(4, 0, 8, 8), &t, &err) == SD_ERR_INVALID_ARG,
          "outside");
    CHECK(sd_tile_acc_add(acc, sd_rect_make(0, 0, 8, 7), &t, &err) == SD_ERR_INVALID_ARG,
          "size mismatch");
    CHECK(sd_tile_acc_add(acc, sd_rect_make(0, 0, 8, 8), &t, &err) == SD_OK, "%s", err.msg);
    CHECK(sd_tile_acc_finish(acc, &out, &err) == SD_ERR_INVALID_ARG &&
              strstr(err.msg, "not covered"),
          "uncovered pixel: %s", err.msg);
    sd_tile_acc_free(acc);
    sd_tile_acc_free(NULL);
    size_t live = sd_alloc_live_bytes();
    for (long n = 1; n <= 3; n++) {
        sd_alloc_fail_after(n, false);
        sd_status st = sd_tile_acc_new(100, 100, 3, 8, &acc, NULL);
        sd_alloc_fail_after(0, false);
        CHECK(st == SD_ERR_NOMEM && !acc, "allocation %ld", n);
    }
    sd_rect *r = NULL;
    int n = 0;
    sd_alloc_fail_after(1, true);
    CHECK(sd_tiles_plan(300, 300, 64, 64, 16, &r, &n, NULL) == SD_ERR_NOMEM && !r, "plan");
    sd_alloc_fail_after(0, false);
    CHECK(sd_alloc_live_bytes() == live, "no leaks");
    sd_img_free(&t);
    sd_img_free(&out);
}

int main(void)
{
    check_positions();
    check_plan();
    run_identity(333, 257, 3, 128, 32);
    run_identity(100, 100, 4, 64, 16);
    run_identity(64, 64, 1, 64, 0);
    run_identity(515, 130, 3, 256, 64);
    run_identity(9, 40, 3, 512, 128);
    check_seams();
    check_acc_errors();
    return t_summary("t_tiles");
}
