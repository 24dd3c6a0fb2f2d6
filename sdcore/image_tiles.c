/* image_tiles.c - overlapping tiles and their seamless reassembly.  The denoise filter
 * runs img2img at the photo's own resolution, which does not fit the model (or memory) in
 * one piece, so the image is cut into overlapping tiles that are processed one by one and
 * blended back with weights that ramp across the overlaps (a partition of unity after
 * normalising, so an identity process returns the image).  The same layout serves tiled
 * VAE passes and, through sd_tile_positions, the outpaint window grid. */
#include "internal/imgproc.h"

#include <string.h>

int sd_tile_positions(int extent, int tile, int overlap, int *pos)
{
    if (tile >= extent) {
        if (pos)
            pos[0] = 0;
        return 1;
    }
    assert(tile >= 1 && overlap >= 0 && overlap < tile);
    int step = tile - overlap, span = extent - tile;
    int n = 1 + (span + step - 1) / step;
    if (pos)
        for (int i = 0; i < n; i++)    /* rounded even spacing: every gap <= step */
            pos[i] = (int)(((long)i * span * 2 + (n - 1)) / (2L * (n - 1)));
    return n;
}

sd_status sd_tiles_plan(int w, int h, int tile_w, int tile_h, int overlap, sd_rect **out,
                        int *n, sd_error *err)
{
    *out = NULL;
    *n = 0;
    if (w < 8 || h < 8 || w > SD_IMG_MAX_DIM || h > SD_IMG_MAX_DIM)
        return sd_fail(err, SD_ERR_INVALID_ARG, "tiles: image %dx%d (at least 8x8 needed)", w,
                       h);
    if (tile_w < 8 || tile_h < 8 || tile_w % 8 || tile_h % 8 || overlap < 0 || overlap % 8 ||
        overlap >= SD_MIN(tile_w, tile_h))
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "tiles: tile %dx%d with overlap %d (multiples of 8, overlap < tile)",
                       tile_w, tile_h, overlap);
    int tw = SD_MIN(tile_w, w & ~7), th = SD_MIN(tile_h, h & ~7);
    int ov = SD_MIN(overlap, SD_MIN(tw, th) - 8);
    int nx = sd_tile_positions(w, tw, ov, NULL), ny = sd_tile_positions(h, th, ov, NULL);
    int *xs = sd_malloc((size_t)nx * sizeof(int)), *ys = sd_malloc((size_t)ny * sizeof(int));
    sd_rect *r = sd_malloc((size_t)nx * (size_t)ny * sizeof(sd_rect));
    if (!xs || !ys || !r) {
        sd_free(xs);
        sd_free(ys);
        sd_free(r);
        return sd_fail_nomem(err, "tile plan");
    }
    sd_tile_positions(w, tw, ov, xs);
    sd_tile_positions(h, th, ov, ys);
    for (int j = 0; j < ny; j++)
        for (int i = 0; i < nx; i++)
            r[j * nx + i] = sd_rect_make(xs[i], ys[j], tw, th);
    sd_free(xs);
    sd_free(ys);
    *out = r;
    *n = nx * ny;
    return SD_OK;
}

/* ==== accumulator ====================================================================== */

struct sd_tile_acc {
    int w, h, c, ramp;
    float *sum;   /* [h][w][c] weighted sums */
    float *wsum;  /* [h][w] sums of weights */
};

sd_status sd_tile_acc_new(int w, int h, int c, int ramp, sd_tile_acc **out, sd_error *err)
{
    *out = NULL;
    if (w < 1 || h < 1 || w > SD_IMG_MAX_DIM || h > SD_IMG_MAX_DIM || c < 1 || c > 4 ||
        ramp < 1)
        return sd_fail(err, SD_ERR_INVALID_ARG, "tile accumulator %dx%dx%d, ramp %d", w, h, c,
                       ramp);
    sd_tile_acc *a = sd_calloc(1, sizeof *a);
    size_t npx = (size_t)w * (size_t)h;
    if (a) {
        a->sum = sd_calloc(npx * (size_t)c, sizeof(float));
        a->wsum = sd_calloc(npx, sizeof(float));
    }
    if (!a || !a->sum || !a->wsum) {
        sd_tile_acc_free(a);
        return sd_fail_nomem(err, "tile accumulator");
    }
    a->w = w, a->h = h, a->c = c, a->ramp = ramp;
    *out = a;
    return SD_OK;
}

void sd_tile_acc_free(sd_tile_acc *a)
{
    if (!a)
        return;
    sd_free(a->sum);
    sd_free(a->wsum);
    sd_free(a);
}

/* Weight of position i (0 .. len-1) of a span starting at `at` in 0 .. extent-1: rises
 * from each end that lies inside the image over `ramp` pixels, never reaching 0. */
static float ramp_weight(int i, int len, int at, int extent, int ramp)
{
    float wgt = 1.0f;
    if (at > 0)
        wgt = SD_MIN(wgt, (i + 0.5f) / (float)ramp);
    if (at + len < extent)
        wgt = SD_MIN(wgt, (len - i - 0.5f) / (float)ramp);
    return wgt;
}

sd_status sd_tile_acc_add(sd_tile_acc *a, sd_rect r, const sd_img *tile, sd_error *err)
{
    if (!sd_rect_inside(r, a->w, a->h) || tile->w != r.w || tile->h != r.h || tile->c != a->c)
        return sd_fail(err, SD_ERR_INVALID_ARG,
                       "tile %dx%dx%d at (%d,%d) size %dx%d does not fit %dx%dx%d", tile->w,
                       tile->h, tile->c, r.x, r.y, r.w, r.h, a->w, a->h, a->c);
    const size_t c = (size_t)a->c;
    for (int j = 0; j < r.h; j++) {
        float wy = ramp_weight(j, r.h, r.y, a->h, a->ramp);
        size_t row = (size_t)(r.y + j) * (size_t)a->w + (size_t)r.x;
        const float *s = sd_img_px(tile, 0, j);
        float *sum = a->sum + row * c, *ws = a->wsum + row;
        for (int i = 0; i < r.w; i++) {
            float wgt = wy * ramp_weight(i, r.w, r.x, a->w, a->ramp);
            ws[i] += wgt;
            for (size_t k = 0; k < c; k++)
                sum[(size_t)i * c + k] += wgt * s[(size_t)i * c + k];
        }
    }
    return SD_OK;
}

sd_status sd_tile_acc_finish(const sd_tile_acc *a, sd_img *dst, sd_error *err)
{
    if (dst->w != a->w || dst->h != a->h || dst->c != a->c)
        return sd_fail(err, SD_ERR_INVALID_ARG, "tile result %dx%dx%d for %dx%dx%d", dst->w,
                       dst->h, dst->c, a->w, a->h, a->c);
    const size_t c = (size_t)a->c;
    for (int y = 0; y < a->h; y++) {
        size_t row = (size_t)y * (size_t)a->w;
        float *d = sd_img_px(dst, 0, y);
        for (int x = 0; x < a->w; x++) {
            float ws = a->wsum[row + (size_t)x];
            if (!(ws > 0.0f))
                return sd_fail(err, SD_ERR_INVALID_ARG, "tiles: pixel (%d,%d) not covered", x,
                               y);
            const float *s = a->sum + (row + (size_t)x) * c;
            for (size_t k = 0; k < c; k++)
                d[(size_t)x * c + k] = s[k] / ws;
        }
    }
    return SD_OK;
}
