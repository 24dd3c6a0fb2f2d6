/* tests/harness.h - the test harness every tests/t_*.c includes: named checks that count
 * failures, float comparisons that report where and by how much, access to the golden data
 * and a closing summary line ("N passed, N failed") that CI reads. */
#ifndef SD_TEST_HARNESS_H
#define SD_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* Relative L2 distance of a from b: ||a - b|| / ||b|| (||a - b|| when b is all zero). */
static inline double t_rel_l2(const float *a, const float *b, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return s > 0 ? sqrt(d / s) : sqrt(d);
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

/* The folder below $SD_TEST_TMP (set by tests/run-unit-tests.sh to <build>/tmp; build/tmp
 * when unset) that t_tmp() names files in: the base itself, or the test's own subfolder
 * once t_tmp_fresh() made one. */
static char t_tmp_dir[512];

/* Path of a scratch file for this test run: t_tmp_dir/name, the folder created if missing.
 * The result lives in one of 16 rotating buffers: copy it to keep it longer. */
static inline const char *t_tmp(const char *name)
{
    static char buf[16][1024];
    static int slot;
    char *b = buf[slot++ % 16];
    if (!t_tmp_dir[0]) {
        const char *base = getenv("SD_TEST_TMP");
        snprintf(t_tmp_dir, sizeof t_tmp_dir, "%s", base && *base ? base : "build/tmp");
    }
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", t_tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot create %s\n", t_tmp_dir);
    snprintf(b, sizeof buf[0], "%s/%s", t_tmp_dir, name);
    return b;
}

/* Give this test a scratch folder of its own, t_tmp(name), removed with everything in it and
 * created empty, so that files an earlier (crashed) run left behind cannot change the
 * outcome; t_tmp() names files inside it from then on.  Returns the folder's path (valid
 * for the whole run). */
static inline const char *t_tmp_fresh(const char *name)
{
    char dir[sizeof t_tmp_dir], cmd[1100];
    snprintf(dir, sizeof dir, "%s", t_tmp(name));
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot create %s\n", dir);
    snprintf(t_tmp_dir, sizeof t_tmp_dir, "%s", dir);
    return t_tmp_dir;
}

/* Path of the `sd` tool: $SD_BIN, else ../sd next to this test binary (build/tests/t_x ->
 * build/sd). */
static inline const char *t_sd_bin(void)
{
    static char path[1024];
    const char *bin = getenv("SD_BIN");
    if (bin && *bin)
        return bin;
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 8);
    if (n <= 0)
        return "build/sd";
    path[n] = 0;
    char *slash = strrchr(path, '/');
    if (slash)
        strcpy(slash, "/../sd");
    return path;
}

/* Run the `sd` tool (t_sd_bin()) with `args`
 * (shell-quoted by the caller), capturing stdout and stderr into the buffers (NUL-terminated,
 * truncated to their size).  Returns the exit status, 128 for a crash, -1 if it could not
 * run. */
static inline int t_run_sd(const char *args, char *out, size_t cap, char *errs, size_t ecap)
{
    char cmd[8192], o[1024], e[1024];
    snprintf(o, sizeof o, "%s", t_tmp("sd-stdout.txt"));
    snprintf(e, sizeof e, "%s", t_tmp("sd-stderr.txt"));
    if ((size_t)snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s'", t_sd_bin(), args, o, e) >=
        sizeof cmd)
        return -1;
    int rc = system(cmd);
    char *bufs[2] = {out, errs};
    size_t caps[2] = {cap, ecap};
    const char *paths[2] = {o, e};
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(paths[k], "rb");
        size_t n = f && caps[k] ? fread(bufs[k], 1, caps[k] - 1, f) : 0;
        if (caps[k])
            bufs[k][n] = 0;
        if (f)
            fclose(f);
        remove(paths[k]);
    }
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* The closing line CI reads. Returns the process exit status. */
static inline int t_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, t_passed, t_failed);
    return t_failed ? 1 : 0;
}

#endif
