/* image_outpaint.c - the image side of outpainting: growing the canvas with a plausible
 * pre-fill, the mask of what to generate, and the order of model-resolution windows that
 * generate it.  Diffusion extends an image well only when the area to fill starts close to
 * the right colours and texture and when every window sees finished content next to it;
 * this file provides exactly those three things so the outpaint pipeline is a loop of
 * inpaint calls.
 *
 * Pre-fill: each new pixel copies the nearest pixel of the old border (edge extension),
 * the extension is blurred (sigma fill_blur) so the streaks become soft colour fields, and
 * Gaussian noise is added with, per channel, the local amplitude of the image's fine
 * detail at that border point (std of image - blur(image, 1 px) over a 4 px
 * neighbourhood), so flat skies continue flat and foliage continues grainy. */
#include "internal/imgproc.h"

#include <math.h>
#include <string.h>

sd_outpaint_params sd_outpaint_params_default(void)
{
    return (sd_outpaint_params){.overlap = 32, .fill_blur = 8.0f, .noise = 1.0f, .seed = 0};
}

/* ==== deterministic noise ============================================================== */

/* splitmix64: a small, well-mixed generator; the pre-fill needs reproducibility from the
 * seed, not torch compatibility. */
static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A standard normal sample (Box-Muller, one of the pair). */
static float gauss(uint64_t *s)
{
    double u1 = ((splitmix(s) >> 11) + 1.0) * 0x1p-53; /* (0, 1] */
    double u2 = (splitmix(s) >> 11) * 0x1p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

/* ==== pre-fill helpers ================================================================= */

enum { DETAIL_R1 = 3, DETAIL_R2 = 10 };   /* sd_blur_radius(1), sd_blur_radius(4) */
static const float DETAIL_S1 = 1.0f, DETAIL_S2 = 4.0f;

/* Fine-detail amplitude along one edge of src: `strip` is the rectangle of src next to
 * that edge, at least DETAIL_R1 + DETAIL_R2 + 1 deep where the image allows (so the edge
 * line is computed exactly as on the whole image); `horizontal` edges are rows.  Writes,
 * for each pixel of the edge line (row `line` or column `line` of the strip), c values to
 * d. */
static sd_status edge_detail(const sd_img *src, sd_rect strip, bool horizontal, int line,
                             float *d, sd_error *err)
{
    sd_img sub = sd_img_sub(src, strip), hp = {0}, lo = {0};
    sd_status st = sd_img_clone(&sub, &hp, err);
    if (st == SD_OK)
        st = sd_img_new(sub.w, sub.h, sub.c, &lo, err);
    if (st == SD_OK)
        st = sd_img_blur(&sub, DETAIL_S1, DETAIL_S1, &lo, err);
    if (st != SD_OK)
        goto out;
    size_t n = (size_t)sub.w * (size_t)sub.c;
    for (int y = 0; y < sub.h; y++) {
        float *h = sd_img_px(&hp, 0, y);
        const float *l = sd_img_px(&lo, 0, y);
        for (size_t i = 0; i < n; i++)
            h[i] = (h[i] - l[i]) * (h[i] - l[i]);
    }
    st = sd_img_blur(&hp, DETAIL_S2, DETAIL_S2, &hp, err);
    if (st != SD_OK)
        goto out;
    int len = horizontal ? sub.w : sub.h;
    for (int i = 0; i < len; i++) {
        const float *p = horizontal ? sd_img_px(&hp, i, line) : sd_img_px(&hp, line, i);
        for (int k = 0; k < sub.c; k++)
            d[(size_t)i * (size_t)sub.c + (size_t)k] = p[k] > 0.0f ? sqrtf(p[k]) : 0.0f;
    }
out:
    sd_img_free(&hp);
    sd_img_free(&lo);
    return st;
}

/* Write the blurred strip `tmp` (the canvas rectangle r, blurred) back to the pixels of r
 * outside the old image `old`, i.e. to the new area only. */
static void put_new_area(sd_img *canvas, const sd_img *tmp, sd_rect r, sd_rect old)
{
    for (int y = 0; y < r.h; y++)
        for (int x = 0; x < r.w; x++) {
            int cx = r.x + x, cy = r.y + y;
            if (cx >= old.x && cx < old.x + old.w && cy >= old.y && cy < old.y + old.h)
                continue;
            memcpy(sd_img_px(canvas, cx, cy), sd_img_px(tmp, x, y),
                   (size_t)canvas->c * sizeof(float));
        }
}

static float smoothstep01(float t)
{
    t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
    return t * t * (3.0f - 2.0f * t);
}

/* ==== canvas extension ================================================================= */

static sd_status check_extend(const sd_img *src, const sd_outpaint_params *p, sd_error *err)
{
    sd_status st = sd_img_check(src, SD_CH_COLOR, "outpaint image", err);
    if (st != SD_OK)
        return st;
    if (p->left < 0 || p->top < 0 || p->right < 0 || p->bottom < 0 ||
        (p->left | p->top | p->right | p->bottom) == 0)
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "outpaint: extension left %d top %d right %d bottom %d (>= 0, not all 0)",
                       p->left, p->top, p->right, p->bottom);
    if ((long)src->w + p->left + p->right > SD_IMG_MAX_DIM ||
        (long)src->h + p->top + p->bottom > SD_IMG_MAX_DIM)
        return sd_fail(err, SD_ERR_TOO_LARGE, "outpaint: canvas larger than %d px",
                       SD_IMG_MAX_DIM);
    if (p->overlap < 0 || !(p->fill_blur >= 0.0f) || !isfinite(p->fill_blur) ||
        sd_blur_radius(p->fill_blur) > 4096 || !(p->noise >= 0.0f) || !isfinite(p->noise))
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "outpaint: overlap %d, fill blur %g, noise %g out of range", p->overlap,
                       (double)p->fill_blur, (double)p->noise);
    return SD_OK;
}

sd_status sd_outpaint_extend(const sd_img *src, const sd_outpaint_params *p, sd_img *out_img,
                             sd_img *out_mask, sd_error *err)
{
    memset(out_img, 0, sizeof *out_img);
    memset(out_mask, 0, sizeof *out_mask);
    sd_status st = check_extend(src, p, err);
    if (st != SD_OK)
        return st;
    const int w = src->w, h = src->h, c = src->c;
    const int W = w + p->left + p->right, H = h + p->top + p->bottom;
    const sd_rect old = sd_rect_make(p->left, p->top, w, h);
    /* per extended side (top, bottom, left, right): detail amplitude along the old edge,
     * and the blurred canvas strip */
    float *edge[4] = {NULL, NULL, NULL, NULL};
    sd_img blurred[4] = {{0}};

    st = sd_img_new(W, H, c, out_img, err);
    if (st == SD_OK)
        st = sd_img_new(W, H, 1, out_mask, err);
    if (st != SD_OK)
        goto out;

    /* edge extension (the old area is the exact copy) */
    for (int y = 0; y < H; y++) {
        int sy = SD_MIN(SD_MAX(y - p->top, 0), h - 1);
        for (int x = 0; x < W; x++) {
            int sx = SD_MIN(SD_MAX(x - p->left, 0), w - 1);
            memcpy(sd_img_px(out_img, x, y), sd_img_px(src, sx, sy), (size_t)c * sizeof(float));
        }
    }

    /* detail amplitude along every extended edge, before the canvas changes */
    const int depth = DETAIL_R1 + DETAIL_R2 + 1;
    const int dw = SD_MIN(depth, w), dh = SD_MIN(depth, h);
    const bool ext[4] = {p->top > 0, p->bottom > 0, p->left > 0, p->right > 0};
    for (int e = 0; e < 4; e++) {
        if (!ext[e] || p->noise == 0.0f)
            continue;
        bool horiz = e < 2;
        edge[e] = sd_malloc((size_t)(horiz ? w : h) * (size_t)c * sizeof(float));
        if (!edge[e]) {
            st = sd_fail_nomem(err, "outpaint edge detail");
            goto out;
        }
        sd_rect strip = e == 0   ? sd_rect_make(0, 0, w, dh)
                        : e == 1 ? sd_rect_make(0, h - dh, w, dh)
                        : e == 2 ? sd_rect_make(0, 0, dw, h)
                                 : sd_rect_make(w - dw, 0, dw, h);
        int line = e == 0 ? 0 : e == 1 ? dh - 1 : e == 2 ? 0 : dw - 1;
        st = edge_detail(src, strip, horiz, line, edge[e], err);
        if (st != SD_OK)
            goto out;
    }

    /* blur of the extension, strip by strip: each strip reaches the blur radius past the
     * new area, so its new pixels come out as in a blur of the whole canvas; all strips are
     * blurred from the unblurred extension before any is written back */
    if (p->fill_blur > 0.0f) {
        const int r = sd_blur_radius(p->fill_blur);
        const sd_rect strips[4] = {
            sd_rect_make(0, 0, W, SD_MIN(p->top + r, H)),
            sd_rect_make(0, SD_MAX(H - p->bottom - r, 0), W, SD_MIN(p->bottom + r, H)),
            sd_rect_make(0, 0, SD_MIN(p->left + r, W), H),
            sd_rect_make(SD_MAX(W - p->right - r, 0), 0, SD_MIN(p->right + r, W), H)};
        for (int e = 0; e < 4 && st == SD_OK; e++) {
            if (!ext[e])
                continue;
            sd_img sub = sd_img_sub(out_img, strips[e]);
            st = sd_img_clone(&sub, &blurred[e], err);
            if (st == SD_OK)
                st = sd_img_blur(&blurred[e], p->fill_blur, p->fill_blur, &blurred[e], err);
        }
        if (st != SD_OK)
            goto out;
        for (int e = 0; e < 4; e++)
            if (ext[e])
                put_new_area(out_img, &blurred[e], strips[e], old);
    }

    /* noise, alpha and the mask */
    uint64_t rng = p->seed;
    for (int y = 0; y < H; y++) {
        int sy = SD_MIN(SD_MAX(y - p->top, 0), h - 1);
        float *m = sd_img_px(out_mask, 0, y);
        for (int x = 0; x < W; x++) {
            int sx = SD_MIN(SD_MAX(x - p->left, 0), w - 1);
            bool above = y < p->top, below = y >= p->top + h;
            bool inside = !above && !below && x >= p->left && x < p->left + w;
            if (inside) {
                /* distance of the pixel centre to the nearest extended edge */
                float d = INFINITY;
                if (ext[0])
                    d = SD_MIN(d, sy + 0.5f);
                if (ext[1])
                    d = SD_MIN(d, h - sy - 0.5f);
                if (ext[2])
                    d = SD_MIN(d, sx + 0.5f);
                if (ext[3])
                    d = SD_MIN(d, w - sx - 0.5f);
                m[x] = p->overlap > 0 ? smoothstep01(1.0f - d / (float)p->overlap) : 0.0f;
                continue;
            }
            m[x] = 1.0f;
            float *px = sd_img_px(out_img, x, y);
            if (p->noise > 0.0f) {
                const float *amp = above   ? edge[0] + (size_t)sx * (size_t)c
                                   : below ? edge[1] + (size_t)sx * (size_t)c
                                   : x < p->left ? edge[2] + (size_t)sy * (size_t)c
                                                 : edge[3] + (size_t)sy * (size_t)c;
                for (int k = 0; k < SD_MIN(c, 3); k++)
                    px[k] += p->noise * amp[k] * gauss(&rng);
            }
            for (int k = 0; k < SD_MIN(c, 3); k++)
                px[k] = px[k] < 0.0f ? 0.0f : px[k] > 1.0f ? 1.0f : px[k];
            if (c == 4)
                px[3] = 1.0f;
        }
    }
out:
    for (int e = 0; e < 4; e++) {
        sd_free(edge[e]);
        sd_img_free(&blurred[e]);
    }
    if (st != SD_OK) {
        sd_img_free(out_img);
        sd_img_free(out_mask);
    }
    return st;
}

/* ==== windows ========================================================================== */

/* For each coordinate along one axis, the range [first, last] of grid spans containing
 * it (spans are sorted and of equal length, so the range is contiguous). */
static void span_ranges(int extent, const int *pos, int n, int len, int *first, int *last)
{
    int a = 0, b = -1;
    for (int x = 0; x < extent; x++) {
        while (b + 1 < n && pos[b + 1] <= x)
            b++;
        while (a <= b && pos[a] + len <= x)
            a++;
        first[x] = a;
        last[x] = b;
    }
}

sd_status sd_outpaint_windows(const sd_img *mask, int win_w, int win_h, int min_overlap,
                              sd_rect **out, int *n, sd_error *err)
{
    *out = NULL;
    *n = 0;
    sd_status st = sd_img_check(mask, SD_CH_MASK, "outpaint mask", err);
    if (st != SD_OK)
        return st;
    const int W = mask->w, H = mask->h;
    if (W < 8 || H < 8 || win_w < 8 || win_h < 8 || win_w % 8 || win_h % 8 || min_overlap < 0)
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "outpaint windows: canvas %dx%d, window %dx%d, overlap %d", W, H, win_w,
                       win_h, min_overlap);
    const int ww = SD_MIN(win_w, W & ~7), wh = SD_MIN(win_h, H & ~7);
    /* at most half a window: more buys nothing and makes every pixel lie in many windows */
    const int ovx = SD_MIN(min_overlap, ww / 2), ovy = SD_MIN(min_overlap, wh / 2);
    const int nx = sd_tile_positions(W, ww, ovx, NULL), ny = sd_tile_positions(H, wh, ovy, NULL);
    const int nc = nx * ny;
    const size_t npx = (size_t)W * (size_t)H;

    int *xs = sd_malloc((size_t)nx * sizeof(int)), *ys = sd_malloc((size_t)ny * sizeof(int));
    int *fx = sd_malloc((size_t)W * 2 * sizeof(int)), *fy = sd_malloc((size_t)H * 2 * sizeof(int));
    long *todo = sd_calloc((size_t)nc, sizeof(long)), *known = sd_calloc((size_t)nc, sizeof(long));
    bool *picked = sd_calloc((size_t)nc, sizeof(bool));
    uint8_t *state = sd_malloc(npx);   /* bit 0: still to cover, bit 1: content present */
    sd_rect *res = sd_malloc((size_t)nc * sizeof(sd_rect));
    if (!xs || !ys || !fx || !fy || !todo || !known || !picked || !state || !res) {
        st = sd_fail_nomem(err, "outpaint windows");
        goto out;
    }
    sd_tile_positions(W, ww, ovx, xs);
    sd_tile_positions(H, wh, ovy, ys);
    span_ranges(W, xs, nx, ww, fx, fx + W);
    span_ranges(H, ys, ny, wh, fy, fy + H);

    /* per-window counts of pixels still to cover and of pixels with content */
    for (int y = 0; y < H; y++) {
        const float *m = sd_img_px(mask, 0, y);
        for (int x = 0; x < W; x++) {
            uint8_t s = (uint8_t)((m[x] > 0.0f ? 1 : 0) | (m[x] < 0.5f ? 2 : 0));
            state[(size_t)y * (size_t)W + (size_t)x] = s;
            for (int j = fy[y]; j <= fy[H + y]; j++)
                for (int i = fx[x]; i <= fx[W + x]; i++) {
                    todo[j * nx + i] += s & 1;
                    known[j * nx + i] += s >> 1;
                }
        }
    }

    /* greedy order: most context times most left to do */
    int count = 0;
    for (;;) {
        int best = -1;
        double best_score = 0.0;
        for (int k = 0; k < nc; k++) {
            if (picked[k] || todo[k] == 0)
                continue;
            double score = ((double)known[k] + 1.0) * (double)todo[k];
            if (score > best_score) {
                best = k;
                best_score = score;
            }
        }
        if (best < 0)
            break;
        picked[best] = true;
        sd_rect r = sd_rect_make(xs[best % nx], ys[best / nx], ww, wh);
        res[count++] = r;
        for (int y = r.y; y < r.y + r.h; y++)
            for (int x = r.x; x < r.x + r.w; x++) {
                uint8_t *s = &state[(size_t)y * (size_t)W + (size_t)x];
                int was_todo = *s & 1, was_unknown = !(*s & 2);
                if (!was_todo && !was_unknown)
                    continue;
                *s = 2;
                for (int j = fy[y]; j <= fy[H + y]; j++)
                    for (int i = fx[x]; i <= fx[W + x]; i++) {
                        todo[j * nx + i] -= was_todo;
                        known[j * nx + i] += was_unknown;
                    }
            }
    }
    *out = res;
    *n = count;
    res = NULL;
out:
    sd_free(xs);
    sd_free(ys);
    sd_free(fx);
    sd_free(fy);
    sd_free(todo);
    sd_free(known);
    sd_free(picked);
    sd_free(state);
    sd_free(res);
    return st;
}

sd_status sd_outpaint_window_mask(const sd_img *mask, const sd_rect *wins, int k, int feather,
                                  sd_img *out, sd_error *err)
{
    memset(out, 0, sizeof *out);
    sd_status st = sd_img_check(mask, SD_CH_MASK, "outpaint mask", err);
    if (st != SD_OK)
        return st;
    if (k < 0 || feather < 0 || !sd_rect_inside(wins[k], mask->w, mask->h))
        return sd_fail(err, SD_ERR_INVALID_ARG, "outpaint window %d (feather %d) outside %dx%d",
                       k, feather, mask->w, mask->h);
    const sd_rect r = wins[k];
    st = sd_img_new(r.w, r.h, 1, out, err);
    if (st != SD_OK)
        return st;
    const int W = mask->w, H = mask->h;
    const float fe = (float)SD_MAX(feather, 1);
    for (int y = 0; y < r.h; y++) {
        const float *m = sd_img_px(mask, r.x, r.y + y);
        float *o = sd_img_px(out, 0, y);
        int cy = r.y + y;
        for (int x = 0; x < r.w; x++) {
            int cx = r.x + x;
            float f = 0.0f;            /* how finished the pixel is after windows 0..k-1 */
            for (int j = 0; j < k && f < 1.0f; j++) {
                sd_rect q = wins[j];
                if (cx < q.x || cx >= q.x + q.w || cy < q.y || cy >= q.y + q.h)
                    continue;
                float t = 1.0f;
                if (feather > 0) {
                    if (q.x > 0)
                        t = SD_MIN(t, (cx - q.x + 0.5f) / fe);
                    if (q.x + q.w < W)
                        t = SD_MIN(t, (q.x + q.w - cx - 0.5f) / fe);
                    if (q.y > 0)
                        t = SD_MIN(t, (cy - q.y + 0.5f) / fe);
                    if (q.y + q.h < H)
                        t = SD_MIN(t, (q.y + q.h - cy - 0.5f) / fe);
                }
                f = SD_MAX(f, t);
            }
            o[x] = m[x] > 0.0f ? m[x] * (1.0f - f) : 0.0f;
        }
    }
    return SD_OK;
}
