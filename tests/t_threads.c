/* tests/t_threads.c - the engine under threads, written to be run under ThreadSanitizer
 * (`make tsan`) as well as in `make check`: cancelling a txt2img from the progress callback
 * at every kind of point (prompt encoding, between UNet blocks of the first and the last
 * step, the VAE) with a 2-thread pool, again and again, and two ctxs generating at the same
 * time from two threads with one shared model.  Cancelled runs must return SD_CANCELLED
 * promptly (the callback is not called again once it said stop), leave the result zero,
 * leak nothing and call back only on the calling thread; concurrent runs (the first of them
 * on a model nobody has used yet, so both threads pack its weights at once) must give
 * exactly the pictures the same requests give one after the other. */
#include "harness.h"

#include "internal/common.h"
#include "sd.h"

#include <pthread.h>

static sd_model *sd15;

static sd_gen_params request(int64_t seed)
{
    sd_gen_params p = sd_gen_params_default(SD_TASK_TXT2IMG);
    p.prompt = "a (red:1.2) apple on a table";
    p.negative_prompt = "blurry";
    p.steps = 2;
    p.cfg = 5.0f;
    p.seed = seed;
    p.resolution = 64;
    return p;
}

/* ---- cancellation ------------------------------------------------------------------------ */

typedef struct cancel_log {
    int calls;                  /* progress calls so far */
    int stop_at;                /* the call that answers "stop" */
    int after;                  /* calls after that one */
    sd_phase phase_at_stop;
    pthread_t caller;
    int wrong_thread;
} cancel_log;

static bool cancel_cb(const sd_progress *pr, void *user)
{
    cancel_log *l = user;
    l->wrong_thread += !pthread_equal(pthread_self(), l->caller);
    if (l->calls++ >= l->stop_at) {
        if (l->calls - 1 == l->stop_at)
            l->phase_at_stop = pr->phase;
        else
            l->after++;
        return false;
    }
    return true;
}

static void preview_cb(const sd_image *img, const sd_progress *pr, void *user)
{
    (void)img, (void)pr;
    cancel_log *l = user;
    l->wrong_thread += !pthread_equal(pthread_self(), l->caller);
}

static void test_cancel(sd_ctx *ctx)
{
    /* how many times a whole run calls back (with previews: they too come on this thread) */
    cancel_log full = {.stop_at = 1 << 30, .caller = pthread_self()};
    sd_gen_params p = request(3);
    p.progress = cancel_cb;
    p.progress_user = &full;
    p.preview = preview_cb;
    p.preview_user = &full;
    sd_gen_result r = {0};
    sd_error err = {0};
    CHECK(sd_generate(ctx, sd15, &p, &r, &err) == SD_OK, "%s", err.msg);
    sd_gen_result_free(&r);
    CHECK(full.calls > 20, "only %d progress calls in a whole run", full.calls);
    CHECK(full.wrong_thread == 0, "%d callbacks on another thread", full.wrong_thread);
    p.preview = NULL;

    /* stop at every call in turn, then again at every 4th (the pool's workers must be idle
     * and reusable after each cancelled job) */
    int phases[4] = {0}, bad = 0, late = 0, runs = 0;
    for (int rep = 0; rep < 2; rep++)
        for (int k = rep; k < full.calls; k += rep ? 4 : 1) {
            cancel_log l = {.stop_at = k, .caller = pthread_self()};
            p.progress_user = &l;
            const size_t live = sd_alloc_live_bytes();
            memset(&r, 0x5A, sizeof r);
            sd_status st = sd_generate(ctx, sd15, &p, &r, &err);
            static const sd_gen_result zero;
            bad += st != SD_CANCELLED || memcmp(&r, &zero, sizeof r) ||
                   sd_alloc_live_bytes() != live || l.wrong_thread;
            late += l.after;
            phases[l.phase_at_stop & 3]++;
            runs++;
            if (st == SD_OK)
                sd_gen_result_free(&r);
        }
    CHECK(bad == 0, "%d of %d cancelled runs did not end cleanly", bad, runs);
    CHECK(late == 0, "%d progress calls after the callback said stop", late);
    CHECK(phases[SD_PHASE_TEXT] && phases[SD_PHASE_SAMPLE] && phases[SD_PHASE_DECODE],
          "cancelled in every phase: text %d, sample %d, decode %d", phases[SD_PHASE_TEXT],
          phases[SD_PHASE_SAMPLE], phases[SD_PHASE_DECODE]);
    fprintf(stderr, "cancel: %d runs, %d progress calls in a whole run\n", runs, full.calls);
}

/* ---- two ctxs, one model, two threads ------------------------------------------------------ */

typedef struct worker {
    sd_ctx *ctx;
    const sd_model *m;
    int64_t seed;
    int reps;
    sd_gen_result out[4];
    sd_status st;
    sd_error err;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    sd_gen_params p = request(w->seed);
    w->st = SD_OK;
    for (int i = 0; i < w->reps && w->st == SD_OK; i++)
        w->st = sd_generate(w->ctx, w->m, &p, &w->out[i], &w->err);
    return NULL;
}

static void test_two_ctxs(sd_ctx *a, sd_ctx *b)
{
    /* references, one after the other */
    worker ref[2] = {{.ctx = a, .m = sd15, .seed = 5, .reps = 1},
                     {.ctx = b, .m = sd15, .seed = 6, .reps = 1}};
    worker_main(&ref[0]);
    worker_main(&ref[1]);
    CHECK(ref[0].st == SD_OK && ref[1].st == SD_OK, "references: %s %s", ref[0].err.msg,
          ref[1].err.msg);
    /* the same at the same time, a few times each, on a freshly loaded copy of the model:
     * both threads pack its weights into the kernels' layout at once on the first run */
    sd_model *fresh = NULL;
    sd_error err = {0};
    CHECK(sd_model_load(a, t_data("tiny-sd15/model-f16.safetensors"), &fresh, &err) == SD_OK,
          "%s", err.msg);
    worker w[2] = {{.ctx = a, .m = fresh, .seed = 5, .reps = 3},
                   {.ctx = b, .m = fresh, .seed = 6, .reps = 3}};
    pthread_t th[2];
    for (int k = 0; k < 2; k++)
        CHECK(pthread_create(&th[k], NULL, worker_main, &w[k]) == 0, "pthread_create");
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < 2; k++) {
        CHECK(w[k].st == SD_OK, "thread %d: %s", k, w[k].err.msg);
        const sd_image *want = &ref[k].out[0].image;
        for (int i = 0; i < w[k].reps && w[k].st == SD_OK; i++) {
            const sd_image *got = &w[k].out[i].image;
            CHECK(got->data && want->data && got->width == want->width &&
                      got->height == want->height &&
                      !memcmp(got->data, want->data,
                              sizeof(float) * want->stride * (size_t)want->height),
                  "thread %d run %d differs from the run alone", k, i);
            sd_gen_result_free(&w[k].out[i]);
        }
        sd_gen_result_free(&ref[k].out[0]);
    }
    sd_model_free(fresh);
}

int main(void)
{
    sd_error err = {0};
    sd_ctx *a = NULL, *b = NULL;
    sd_ctx_params cp = sd_ctx_params_default();
    cp.n_threads = 2;
    /* measured around the model's whole life: its weight packs are freed with it */
    const size_t live = sd_alloc_live_bytes();
    if (sd_ctx_new(&cp, &a, &err) || sd_ctx_new(&cp, &b, &err) ||
        sd_model_load(a, t_data("tiny-sd15/model-f16.safetensors"), &sd15, &err)) {
        CHECK(0, "setup: %s", err.msg);
        return t_summary("t_threads");
    }
    test_cancel(a);
    test_two_ctxs(a, b);
    sd_model_free(sd15);
    sd_ctx_free(a);
    sd_ctx_free(b);
    CHECK(sd_alloc_live_bytes() == live, "%zd bytes left live",
          (ssize_t)(sd_alloc_live_bytes() - live));
    return t_summary("t_threads");
}
