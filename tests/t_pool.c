/* tests/t_pool.c - the thread pool: every task runs exactly once, jobs run back to back,
 * sizes 1..8 threads, and the allocation hooks count and fail as documented. */
#include "harness.h"
#include "internal/pool.h"

#include <stdatomic.h>

typedef struct job {
    atomic_int hits[1000];
} job;

static void body(void *arg, int task, int n)
{
    (void)n;
    job *j = arg;
    atomic_fetch_add(&j->hits[task], 1);
}

int main(void)
{
    for (int threads = 1; threads <= 8; threads++) {
        sd_pool *p = NULL;
        sd_error err = {0};
        CHECK(sd_pool_new(threads, &p, &err) == SD_OK, "%s", err.msg);
        CHECK(sd_pool_size(p) == threads, "size");
        for (int rep = 0; rep < 50; rep++) {
            static job j;
            memset(&j, 0, sizeof j);
            int n = 1 + (rep * 37) % 1000;
            sd_pool_run(p, body, &j, n);
            int bad = 0;
            for (int i = 0; i < 1000; i++)
                bad += atomic_load(&j.hits[i]) != (i < n);
            CHECK(bad == 0, "threads=%d rep=%d n=%d: %d tasks ran != once", threads, rep, n,
                  bad);
        }
        sd_pool_free(p);
    }
    sd_pool_free(NULL);

    sd_error err = {0};
    sd_pool *p = NULL;
    CHECK(sd_pool_new(0, &p, &err) == SD_ERR_INVALID_ARG && p == NULL, "0 threads rejected");

    /* allocation hooks: fail the first allocation, then none */
    size_t live = sd_alloc_live_bytes();
    sd_alloc_fail_after(1, false);
    CHECK(sd_pool_new(2, &p, &err) == SD_ERR_NOMEM && p == NULL, "injected failure");
    sd_alloc_fail_after(0, false);
    CHECK(sd_alloc_live_bytes() == live, "no leak after injected failure");
    return t_summary("t_pool");
}
