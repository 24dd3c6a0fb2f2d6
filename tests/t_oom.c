/* tests/t_oom.c - allocation failure injected into whole generations: a tiny txt2img, a
 * masked img2img and an inpaint (the tiny SD 1.5 model, 64 px, 2 steps, guidance on) are
 * first run once to count their allocations, then run again failing allocation N
 * (sd_alloc_fail_after) for N = 1, 2, ... up to that count.  Every failing run must return
 * SD_ERR_NOMEM with an "out of memory" message, leave the result all zero (no partial
 * output), free everything it allocated (sd_alloc_live_bytes back to its value before the
 * call; LeakSanitizer under `make asan`) and leave the caller's image and mask untouched;
 * a run after the whole sweep must still give the same picture as the first one.
 *
 * Every allocation is one full generation, so by default the middle of each sweep is
 * sampled with a stride (the first and last HEAD_TAIL allocations always run: setup and
 * output assembly, where a partial result could escape).  SD_OOM_STRIDE=1 runs every
 * allocation of every case (about a minute of CPU at -O2), SD_OOM_STRIDE=k any other stride;
 * SD_OOM_ALL=1 adds outpaint, denoise and the inpainting model with each masked-content
 * mode. */
#include "harness.h"

#include "internal/common.h"
#include "sd.h"

#include <stdint.h>

enum {
    HEAD_TAIL = 40,        /* allocations at both ends that always run */
    W = 40, H = 32,        /* the input picture of img2img and inpaint */
};

static sd_ctx *ctx;
static sd_model *sd15, *sd15_inpaint;

typedef struct oom_case {
    const char *name;
    sd_gen_params p;
    int stride;            /* default stride in the middle of the sweep */
    const sd_model *m;     /* NULL: sd15 */
} oom_case;

static sd_image make_image(void)
{
    sd_image im = {W, H, 4, (size_t)W * 4, malloc(sizeof(float) * W * H * 4)};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float *px = im.data + (size_t)y * im.stride + (size_t)x * 4;
            px[0] = 0.1f + 0.8f * (float)x / W;
            px[1] = 0.2f + 0.6f * (float)y / H;
            px[2] = (x / 4 + y / 4) % 2 ? 0.7f : 0.3f;
            px[3] = x < 4 ? 0.5f : 1.0f;
        }
    return im;
}

static sd_image make_mask(void)
{
    sd_image m = {W, H, 1, W, calloc((size_t)W * H, sizeof(float))};
    for (int y = 8; y < 22; y++)
        for (int x = 12; x < 30; x++)
            m.data[(size_t)y * W + x] = (x == 12 || y == 8) ? 0.5f : 1.0f;
    return m;
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static size_t image_bytes(const sd_image *im)
{
    return im ? sizeof(float) * im->stride * (size_t)im->height : 0;
}

static int stride_from_env(int fallback)
{
    const char *s = getenv("SD_OOM_STRIDE");
    int v = s && *s ? atoi(s) : 0;
    return v > 0 ? v : fallback;
}

/* The sweep of one case.  init/mask copies are compared after every failing run. */
static void sweep(const oom_case *c)
{
    sd_error err = {0};
    sd_gen_result ref = {0}, r;
    const sd_model *m = c->m ? c->m : sd15;
    /* A first run packs the model's weights into the kernels' layout; the packs stay with
     * the model (freed with it) and are reused, so the sweep measures warm runs.  Failures
     * while packing are swept by t_pack. */
    sd_status st = sd_generate(ctx, m, &c->p, &ref, &err);
    sd_gen_result_free(&ref);
    const size_t live0 = sd_alloc_live_bytes();
    sd_alloc_fail_after(0, false);
    st = sd_generate(ctx, m, &c->p, &ref, &err);
    const long total = sd_alloc_fail_after(0, false);
    CHECK(st == SD_OK && ref.image.data, "%s: the counting run failed: %s", c->name, err.msg);
    if (st != SD_OK)
        return;
    CHECK(total > 100, "%s: only %ld allocations counted", c->name, total);

    const sd_image *init = c->p.init, *mask = c->p.mask;
    void *init_copy = init ? malloc(image_bytes(init)) : NULL;
    void *mask_copy = mask ? malloc(image_bytes(mask)) : NULL;
    if (init)
        memcpy(init_copy, init->data, image_bytes(init));
    if (mask)
        memcpy(mask_copy, mask->data, image_bytes(mask));

    const int stride = stride_from_env(c->stride);
    long runs = 0, bad_status = 0, bad_msg = 0, leaked = 0, partial = 0, not_reached = 0;
    long touched = 0, first_bad = 0;
    for (long n = 1; n <= total; n = n < HEAD_TAIL || n >= total - HEAD_TAIL ? n + 1
                                                                            : n + stride) {
        memset(&r, 0xA5, sizeof r); /* junk the engine must replace by zeros */
        err = (sd_error){0};
        const size_t live = sd_alloc_live_bytes();
        sd_alloc_fail_after(n, false);
        st = sd_generate(ctx, m, &c->p, &r, &err);
        const long counted = sd_alloc_fail_after(0, false);
        runs++;
        bool bad = false;
        if (st != SD_ERR_NOMEM || err.code != st)
            bad_status++, bad = true;
        else if (!strstr(err.msg, "out of memory"))
            bad_msg++, bad = true;
        if (sd_alloc_live_bytes() != live)
            leaked++, bad = true;
        if (!all_zero(&r, sizeof r))
            partial++, bad = true;
        if (counted < n)
            not_reached++, bad = true;
        if ((init && memcmp(init_copy, init->data, image_bytes(init))) ||
            (mask && memcmp(mask_copy, mask->data, image_bytes(mask))))
            touched++, bad = true;
        if (bad && !first_bad) {
            first_bad = n;
            fprintf(stderr, "%s: allocation %ld of %ld: %s (%s), %zd bytes left over\n",
                    c->name, n, total, sd_status_str(st), err.msg,
                    (ssize_t)(sd_alloc_live_bytes() - live));
        }
        if (st == SD_OK)
            sd_gen_result_free(&r);
    }
    CHECK(bad_status == 0, "%s: %ld runs did not return SD_ERR_NOMEM (first at %ld)", c->name,
          bad_status, first_bad);
    CHECK(bad_msg == 0, "%s: %ld runs without an out-of-memory message", c->name, bad_msg);
    CHECK(leaked == 0, "%s: %ld runs leaked", c->name, leaked);
    CHECK(partial == 0, "%s: %ld runs left a non-zero result", c->name, partial);
    CHECK(not_reached == 0, "%s: %ld runs ended before the failing allocation", c->name,
          not_reached);
    CHECK(touched == 0, "%s: %ld runs wrote into the caller's image or mask", c->name, touched);
    fprintf(stderr, "%s: %ld allocations, %ld failing runs (stride %d)\n", c->name, total, runs,
            stride);

    /* nothing that failed left state behind: the same request gives the same picture */
    memset(&r, 0, sizeof r);
    sd_alloc_fail_after(0, false);
    st = sd_generate(ctx, m, &c->p, &r, &err);
    CHECK(st == SD_OK && r.image.data && r.image.width == ref.image.width &&
              r.image.height == ref.image.height &&
              !memcmp(r.image.data, ref.image.data, image_bytes(&ref.image)),
          "%s: the run after the sweep differs from the first (%s)", c->name, err.msg);
    sd_gen_result_free(&r);
    sd_gen_result_free(&ref);
    CHECK(sd_alloc_live_bytes() == live0, "%s: %zd bytes live after the sweep", c->name,
          (ssize_t)(sd_alloc_live_bytes() - live0));
    free(init_copy);
    free(mask_copy);
}

/* Allocation N and every one after it fail: the error paths must not need memory to clean
 * up.  A coarser sweep over the same cases. */
static void sweep_repeat(const oom_case *c, int stride)
{
    sd_error err = {0};
    sd_gen_result r;
    sd_alloc_fail_after(0, false);
    sd_gen_result ref = {0};
    const sd_model *m = c->m ? c->m : sd15;
    CHECK(sd_generate(ctx, m, &c->p, &ref, &err) == SD_OK, "%s: %s", c->name, err.msg);
    const long total = sd_alloc_fail_after(0, false);
    sd_gen_result_free(&ref);
    long bad = 0, first_bad = 0;
    for (long n = 1; n <= total; n += stride) {
        memset(&r, 0xA5, sizeof r);
        const size_t live = sd_alloc_live_bytes();
        sd_alloc_fail_after(n, true);
        sd_status st = sd_generate(ctx, m, &c->p, &r, &err);
        sd_alloc_fail_after(0, false);
        if (st != SD_ERR_NOMEM || sd_alloc_live_bytes() != live || !all_zero(&r, sizeof r)) {
            if (!bad++)
                first_bad = n;
            if (st == SD_OK)
                sd_gen_result_free(&r);
        }
    }
    CHECK(bad == 0, "%s, failing from allocation N on: %ld bad runs (first at %ld)", c->name,
          bad, first_bad);
}

int main(void)
{
    sd_error err = {0};
    sd_ctx_params cp = sd_ctx_params_default();
    cp.n_threads = 1; /* one thread: the allocation order is the same in every run */
    if (sd_ctx_new(&cp, &ctx, &err) ||
        sd_model_load(ctx, t_data("tiny-sd15/model-f16.safetensors"), &sd15, &err) ||
        sd_model_load(ctx, t_data("tiny-sd15-inpaint/model-f16.safetensors"), &sd15_inpaint,
                      &err)) {
        CHECK(0, "setup: %s", err.msg);
        return t_summary("t_oom");
    }
    sd_image img = make_image(), mask = make_mask();

    sd_gen_params base = sd_gen_params_default(SD_TASK_TXT2IMG);
    base.prompt = "a (red:1.2) apple, [blurry] BREAK on a table";
    base.negative_prompt = "ugly";
    base.steps = 2;
    base.cfg = 5.0f;
    base.seed = 11;
    base.resolution = 64;

    enum { N_DEFAULT = 3, N_ALL = 9 };
    static const char *const names[N_ALL] = {
        "txt2img", "img2img", "inpaint", "outpaint", "denoise", "inpaint-9ch-original",
        "inpaint-9ch-fill", "inpaint-9ch-latent-noise", "inpaint-9ch-latent-nothing"};
    oom_case cases[N_ALL];
    for (int k = 0; k < N_ALL; k++)
        cases[k] = (oom_case){names[k], base, k == 0 ? 13 : 29, k >= 5 ? sd15_inpaint : NULL};
    cases[0].p.width = 72; /* not the model's size: the resize to the request runs too */
    cases[1].p.task = SD_TASK_IMG2IMG;
    cases[1].p.strength = 0.9f;
    cases[2].p.fill = SD_FILL_FILL;
    cases[3].p.task = SD_TASK_OUTPAINT;
    cases[3].p.extend_left = 16;
    cases[3].p.extend_bottom = 8;
    cases[4].p.task = SD_TASK_DENOISE;
    cases[4].p.strength = 0.6f;
    cases[4].p.tile = 64;
    for (int k = 5; k < N_ALL; k++)
        cases[k].p.fill = (sd_fill)(k - 5);
    for (int k = 1; k < N_ALL; k++) {
        cases[k].p.init = &img;
        if (k == 1 || k == 2 || k >= 5) {
            cases[k].p.mask = &mask;
            cases[k].p.task = k == 1 ? SD_TASK_IMG2IMG : SD_TASK_INPAINT;
        }
    }
    const char *all = getenv("SD_OOM_ALL");
    const int n = all && *all && strcmp(all, "0") ? N_ALL : N_DEFAULT;
    for (int k = 0; k < n; k++)
        sweep(&cases[k]);
    for (int k = 0; k < n; k++)
        sweep_repeat(&cases[k], stride_from_env(97));

    free(img.data);
    free(mask.data);
    sd_model_free(sd15);
    sd_model_free(sd15_inpaint);
    sd_ctx_free(ctx);
    CHECK(sd_alloc_live_bytes() == 0, "%zu bytes live at the end", sd_alloc_live_bytes());
    return t_summary("t_oom");
}
