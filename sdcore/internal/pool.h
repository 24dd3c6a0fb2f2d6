/* internal/pool.h - the ctx's thread pool: a fixed set of workers that block (never spin)
 * between jobs, and a static split of each job into tasks.  Spinning pools lose badly on a
 * shared 2-core machine, so waits use condition variables. */
#ifndef SD_INTERNAL_POOL_H
#define SD_INTERNAL_POOL_H

#include "internal/common.h"

typedef struct sd_pool sd_pool;

/* A job body: called once for each task index in [0, n_tasks), from any pool thread or the
 * caller.  Tasks of one job may run concurrently; they must not depend on each other. */
typedef void (*sd_pool_fn)(void *arg, int task, int n_tasks);

/* n_threads >= 1 counts the calling thread, so n_threads - 1 workers are started. */
sd_status sd_pool_new(int n_threads, sd_pool **out, sd_error *err);
void sd_pool_free(sd_pool *pool);
int sd_pool_size(const sd_pool *pool);

/* Run fn for every task and return when all are done.  The caller runs tasks too.  Tasks
 * are handed out dynamically (an atomic counter), so uneven tasks balance.  Not reentrant:
 * a task must not call sd_pool_run on the same pool.  pool may be NULL (runs inline). */
void sd_pool_run(sd_pool *pool, sd_pool_fn fn, void *arg, int n_tasks);

/* Online CPUs (at least 1). */
int sd_cpu_count(void);

#endif
