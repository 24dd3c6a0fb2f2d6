/* pool.c - the blocking thread pool of internal/pool.h.  One job at a time: the caller
 * publishes (fn, arg, n_tasks) under a mutex, bumps a generation counter and wakes the
 * workers; everyone, the caller included, claims task indices from an atomic counter; the
 * last one to finish signals the caller. */
#include "internal/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

struct sd_pool {
    int n_threads;
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t wake;     /* workers wait here for a new generation */
    pthread_cond_t done;     /* the caller waits here for the job to finish */
    unsigned long generation;
    bool stop;
    /* the current job */
    sd_pool_fn fn;
    void *arg;
    int n_tasks;
    atomic_int next_task;
    int active;              /* workers still inside the current job */
};

int sd_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

static void run_tasks(sd_pool *p, sd_pool_fn fn, void *arg, int n_tasks)
{
    for (;;) {
        int t = atomic_fetch_add(&p->next_task, 1);
        if (t >= n_tasks)
            break;
        fn(arg, t, n_tasks);
    }
}

static void *worker_main(void *vp)
{
    sd_pool *p = vp;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop)
            break;
        seen = p->generation;
        sd_pool_fn fn = p->fn;
        void *arg = p->arg;
        int n = p->n_tasks;
        pthread_mutex_unlock(&p->mu);
        run_tasks(p, fn, arg, n);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

sd_status sd_pool_new(int n_threads, sd_pool **out, sd_error *err)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return sd_fail(err, SD_ERR_INVALID_ARG, "thread count %d out of range 1..1024",
                       n_threads);
    sd_pool *p = sd_calloc(1, sizeof *p);
    if (!p)
        return sd_fail_nomem(err, "thread pool");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (n_threads > 1) {
        p->workers = sd_calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            sd_pool_free(p);
            return sd_fail_nomem(err, "thread pool");
        }
        for (int i = 0; i < n_threads - 1; i++) {
            if (pthread_create(&p->workers[i], NULL, worker_main, p) != 0) {
                p->n_threads = i + 1; /* the ones started, plus the caller */
                sd_pool_free(p);
                return sd_fail(err, SD_ERR_NOMEM, "cannot start thread %d of %d", i + 2,
                               n_threads);
            }
        }
    }
    *out = p;
    return SD_OK;
}

void sd_pool_free(sd_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; p->workers && i < p->n_threads - 1; i++)
        pthread_join(p->workers[i], NULL);
    sd_free(p->workers);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    sd_free(p);
}

int sd_pool_size(const sd_pool *p)
{
    return p ? p->n_threads : 1;
}

void sd_pool_run(sd_pool *p, sd_pool_fn fn, void *arg, int n_tasks)
{
    if (n_tasks <= 0)
        return;
    if (!p || p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++)
            fn(arg, t, n_tasks);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store(&p->next_task, 0);
    p->active = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    run_tasks(p, fn, arg, n_tasks);

    pthread_mutex_lock(&p->mu);
    while (p->active > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
