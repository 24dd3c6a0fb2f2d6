/* tests/harness.h - the test harness every tests/t_*.c includes: named checks that count
 * failures, float comparisons that report where and by how much, access to the golden data
 * and a closing summary line ("N passed, N failed") that CI reads. */
#ifndef SD_TEST_HARNESS_H
#define SD_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_passed, t_failed;

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (cond) {                                                                          \
            t_passed++;                                                                      \
        } else {                                                                             \
            t_failed++;                                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                  \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
        }                                                                                    \
    } while (0)

/* Compare n floats: |got - want| <= atol + rtol * max|want| everywhere.  Prints the worst
 * element.  Returns 1 when within tolerance. */
static inline int t_close(const char *what, const float *got, const float *want, size_t n,
                          double atol, double rtol)
{
    double maxref = 0, worst = -1, worst_excess = -INFINITY;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(want[i]) > maxref)
            maxref = fabs(want[i]);
    double tol = atol + rtol * maxref;
    int nan = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (isnan(got[i]) != isnan(want[i]))
            nan = 1, d = INFINITY;
        if (d - tol > worst_excess)
            worst_excess = d - tol, worst = d, wi = i;
    }
    int ok = !nan && worst <= tol;
    if (ok)
        t_passed++;
    else
        t_failed++;
    fprintf(stderr, "%s %s: n=%zu max|err|=%.3g at %zu (got %.7g want %.7g) tol=%.3g%s\n",
            ok ? "ok  " : "FAIL", what, n, worst, wi, n ? got[wi] : 0.0, n ? want[wi] : 0.0,
            tol, nan ? " (NaN mismatch)" : "");
    return ok;
}

/* Path of a file in the project's copy of the golden data (tests/data/...), found relative
 * to the working directory `make check` runs in, or $SD_TEST_DATA. */
static inline const char *t_data(const char *rel)
{
    static char buf[8][1024];
    static int slot;
    const char *base = getenv("SD_TEST_DATA");
    char *b = buf[slot++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", base && *base ? base : "tests/data", rel);
    return b;
}

/* Path of a scratch file for this test run: $SD_TEST_TMP (set by tests/run-unit-tests.sh to
 * <build>/tmp) or build/tmp, created if missing. */
static inline const char *t_tmp(const char *name)
{
    static char buf[8][1024];
    static int slot;
    const char *base = getenv("SD_TEST_TMP");
    char *b = buf[slot++ % 8];
    if (!base || !*base)
        base = "build/tmp";
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot create %s\n", base);
    snprintf(b, sizeof buf[0], "%s/%s", base, name);
    return b;
}

/* The closing line CI reads. Returns the process exit status. */
static inline int t_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, t_passed, t_failed);
    return t_failed ? 1 : 0;
}

#endif
