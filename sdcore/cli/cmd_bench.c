/* cli/cmd_bench.c - `sd bench`: times the networks and pipelines on full-size checkpoints with
 * random weights (from `sd make-random-model`, made by `make bench`) and writes the figures
 * the speed work is judged by, as a table and as JSON.
 *
 * Each figure runs in its own forked child, so its peak RSS (wait4) is its own and one
 * figure's packed weights or heap do not flatter or burden the next; the child sends its
 * timings back through a pipe.  Before the figures, a micro-benchmark measures the machine's
 * float32 FMA and bf16 dot-product peaks on every thread at once (from registers, the
 * kernel table's peak slots), so each figure can be read as a fraction of peak.  Times are
 * medians of the repeats after one warm-up run (which packs the weights; reported as
 * "first"); CPU seconds are the process's user + system time, so a CPU/wall ratio below
 * the thread count shows the machine was shared.  GF/s is the work over the wall time;
 * GF/cpu the work over the CPU time, which a shared machine disturbs much less, and %peak
 * compares that with one core's peak for the kind of products the figure ran.  A figure whose network is not in this
 * build is reported MISSING and the command then exits 1: nothing is estimated. */
#include "cli/bench.h"
#include "cli/cli.h"
#include "internal/common.h"
#include "internal/kernels.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char NAME[] = "bench";

/* The figures, in the order they run.  Sizes are image pixels (latents are 1/8). */
static const bench_fig figures[] = {
    {"text_clip_l_b2", BENCH_TEXT, "sd15", 2, 0, 0, true, false, 0},
    {"unet_sd15_512_b2", BENCH_UNET, "sd15", 2, 512, 0, false, false, 0},
    {"unet_sd15_512_b1", BENCH_UNET, "sd15", 1, 512, 0, false, false, 0},
    {"unet_sd15_256_b2", BENCH_UNET, "sd15", 2, 256, 0, false, false, 0},
    {"unet_sd15_256_b1", BENCH_UNET, "sd15", 1, 256, 0, false, false, 0},
    {"unet_sd15_512_b2_fp32", BENCH_UNET, "sd15", 2, 512, 0, true, false, 0},
    {"vae_decode_512", BENCH_VAE_DECODE, "sd15", 1, 512, 0, false, false, 0},
    {"vae_decode_512_fp32", BENCH_VAE_DECODE, "sd15", 1, 512, 0, true, false, 0},
    {"vae_encode_512", BENCH_VAE_ENCODE, "sd15", 1, 512, 0, false, false, 0},
    {"taesd_decode_512", BENCH_TAESD_DECODE, "taesd", 1, 512, 0, false, false, 0},
    {"bf16_error_unet_sd15_256_b1", BENCH_UNET_ERROR, "sd15", 1, 256, 0, false, false, 1},
    {"txt2img_sd21_512_1step_taesd", BENCH_TXT2IMG, "sd21-novae", 1, 512, 1, false, true, 1},
    {"txt2img_sd15_512_20steps", BENCH_TXT2IMG, "sd15", 1, 512, 20, false, false, 1},
};
enum { N_FIGS = sizeof figures / sizeof figures[0] };

/* ---- machine peak -------------------------------------------------------------------------- */

typedef struct peak_thread {
    double (*fn)(long iters);
    long iters;
    double flop, cpu;
} peak_thread;

static double thread_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double wall_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *peak_main(void *vp)
{
    peak_thread *p = vp;
    double c = thread_cpu();
    p->flop = p->fn(p->iters);
    p->cpu = thread_cpu() - c;
    return NULL;
}

typedef struct peak {
    double core;   /* GFLOP/s per core from thread CPU time (best of the rounds) */
    double all;    /* GFLOP/s of all threads together by wall time (best of the rounds) */
} peak;

/* Run fn on n threads at once for about 0.1 s, a few rounds. */
static peak measure_peak(double (*fn)(long), int n)
{
    peak best = {0, 0};
    long iters = 1000;
    double t = wall_now();
    if (fn(iters) == 0)
        return best;
    iters = (long)(iters * 0.1 / SD_MAX(wall_now() - t, 1e-6));
    peak_thread th[64];
    pthread_t id[64];
    n = SD_MIN(n, 64);
    for (int round = 0; round < 5; round++) {
        double w = wall_now();
        for (int i = 0; i < n; i++) {
            th[i] = (peak_thread){.fn = fn, .iters = iters};
            if (pthread_create(&id[i], NULL, peak_main, &th[i]) != 0)
                return best;
        }
        double flop = 0, core = 0;
        for (int i = 0; i < n; i++) {
            pthread_join(id[i], NULL);
            flop += th[i].flop;
            core = SD_MAX(core, th[i].flop / SD_MAX(th[i].cpu, 1e-9));
        }
        w = wall_now() - w;
        best.core = SD_MAX(best.core, core * 1e-9);
        best.all = SD_MAX(best.all, flop / w * 1e-9);
    }
    return best;
}

/* ---- running one figure ---------------------------------------------------------------------- */

static bool file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Fork, run f in the child, read its result; *rss_mb from wait4. */
static void run_child(const bench_fig *f, const bench_env *env, bench_result *r, double *rss_mb)
{
    memset(r, 0, sizeof *r);
    *rss_mb = 0;
    int fd[2];
    fflush(NULL);
    if (pipe(fd) != 0) {
        r->status = 1;
        snprintf(r->msg, sizeof r->msg, "pipe: %s", strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        r->status = 1;
        snprintf(r->msg, sizeof r->msg, "fork: %s", strerror(errno));
        close(fd[0]);
        close(fd[1]);
        return;
    }
    if (pid == 0) {
        close(fd[0]);
        bench_result res;
        bench_run(f, env, &res);
        ssize_t w = write(fd[1], &res, sizeof res);
        _exit(w == (ssize_t)sizeof res ? 0 : 1);
    }
    close(fd[1]);
    size_t got = 0;
    while (got < sizeof *r) {
        ssize_t n = read(fd[0], (char *)r + got, sizeof *r - got);
        if (n <= 0 && !(n < 0 && errno == EINTR))
            break;
        if (n > 0)
            got += (size_t)n;
    }
    close(fd[0]);
    int ws = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &ws, 0, &ru) < 0 && errno == EINTR)
        ;
    *rss_mb = (double)ru.ru_maxrss / 1024.0;
    if (got != sizeof *r) {
        memset(r, 0, sizeof *r);
        r->status = 1;
        snprintf(r->msg, sizeof r->msg, "the figure's process died (wait status 0x%x)", ws);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double s[BENCH_MAX_RUNS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* ---- command -------------------------------------------------------------------------------- */

static bool selected(const char *key, const char *only)
{
    if (!only)
        return true;
    size_t n = strlen(key);
    for (const char *p = only; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, key, n))
            return true;
        p += len + (e ? 1 : 0);
    }
    return false;
}

static int usage_fail(const char *msg)
{
    return sd_cli_fail(NAME, "%s\nusage: sd bench [--models DIR] [--only KEY,...] [--repeats N] "
                       "[-t THREADS] [--json FILE] [--list]", msg);
}

static int run(int argc, char **argv)
{
    bench_env env = {.models = "build/models",
                     .taesd = "tests/data/taesd/taesd_decoder.safetensors",
                     .threads = 0, .repeats = 3};
    const char *only = NULL, *json = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (!strcmp(a, "--list")) {
            for (int f = 0; f < N_FIGS; f++)
                printf("%s\n", figures[f].key);
            return 0;
        }
        if (!v)
            return usage_fail("unknown or incomplete argument");
        if (!strcmp(a, "--models"))
            env.models = v;
        else if (!strcmp(a, "--taesd"))
            env.taesd = v;
        else if (!strcmp(a, "--only"))
            only = v;
        else if (!strcmp(a, "--json"))
            json = v;
        else if (!strcmp(a, "--repeats") && sd_cli_parse_int(v, 1, BENCH_MAX_RUNS, &n))
            env.repeats = (int)n;
        else if (!strcmp(a, "-t") && sd_cli_parse_int(v, 0, 1024, &n))
            env.threads = (int)n;
        else
            return usage_fail("unknown or incomplete argument");
        i++;
    }
    for (int f = 0; only && f <= N_FIGS; f++)
        if (f == N_FIGS)
            return usage_fail("--only names no known figure (see sd bench --list)");
        else if (selected(figures[f].key, only))
            break;

    int threads = env.threads ? env.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    const sd_kernels *k = sd_kernels_get();
    peak pf = measure_peak(k->peak_fma_f32, threads);
    peak pb = measure_peak(k->peak_dot_bf16, threads);
    printf("machine: %d threads, kernels %s\n", threads, sd_kernel_variant());
    printf("  peak fp32 FMA     %7.1f GFLOP/s per core, %7.1f on %d threads (all at once)\n",
           pf.core, pf.all, threads);
    if (pb.core > 0)
        printf("  peak bf16 dot     %7.1f GFLOP/s per core, %7.1f on %d threads (all at once)\n",
               pb.core, pb.all, threads);
    else
        printf("  peak bf16 dot     none (no AVX512_BF16 on this CPU or not selected)\n");
    printf("\n%-28s %7s %7s %7s %8s %6s %7s %6s %6s %7s  %s\n", "figure", "wall-s", "cpu-s",
           "first-s", "GFLOP", "GF/s", "GF/cpu", "%peak", "rss-MB", "pack-MB", "kernel");

    FILE *js = NULL;
    if (json && !(js = fopen(json, "w")))
        return sd_cli_fail(NAME, "cannot write %s: %s", json, strerror(errno));
    if (js)
        fprintf(js, "{\n  \"machine\": {\"threads\": %d, \"kernels\": \"%s\", "
                "\"peak_fp32_gflops_core\": %.1f, \"peak_fp32_gflops\": %.1f, "
                "\"peak_bf16_gflops_core\": %.1f, \"peak_bf16_gflops\": %.1f}",
                threads, sd_kernel_variant(), pf.core, pf.all, pb.core, pb.all);

    char msg[256];
    if (selected("txt2img_sd21_512_1step_taesd", only) && !bench_make_novae(&env, msg, sizeof msg))
        return sd_cli_fail(NAME, "cannot write the SD 2.1 checkpoint without VAE: %s", msg);

    int missing = 0, failed = 0;
    char missing_json[4096] = "";
    double rss_sd15 = 0;
    for (int fi = 0; fi < N_FIGS; fi++) {
        const bench_fig *f = &figures[fi];
        if (!selected(f->key, only))
            continue;
        bench_result r;
        double rss = 0;
        char path[1024];
        bench_model_path(&env, f->model, path, sizeof path);
        if (!file_exists(path)) {
            memset(&r, 0, sizeof r);
            r.status = 2;
            snprintf(r.msg, sizeof r.msg, "no model %.200s (make bench writes it)", path);
        } else {
            run_child(f, &env, &r, &rss);
        }
        if (r.status != 0) {
            printf("%-30s %s: %s\n", f->key, r.status == 2 ? "MISSING" : "FAILED", r.msg);
            fflush(stdout);
            if (r.status == 2) {
                missing++;
                size_t len = strlen(missing_json);
                snprintf(missing_json + len, sizeof missing_json - len, "%s\n    \"%s\": \"%s\"",
                         len ? "," : "", f->key, r.msg);
            } else {
                failed++;
            }
            continue;
        }
        if (f->kind == BENCH_UNET_ERROR) {
            bool ok = r.rel_l2 <= BENCH_BF16_REL_L2_MAX;
            printf("%-28s bf16 vs fp32 relative L2 %.2e (bound %.0e): %s   (fp32 %.2f s, "
                   "bf16 %.2f s, %.1f GFLOP each)\n", f->key, r.rel_l2, BENCH_BF16_REL_L2_MAX,
                   ok ? "ok" : "FAILED", r.wall[0], r.wall[1], r.gflop);
            failed += !ok;
            if (js)
                fprintf(js, ",\n  \"%s\": {\"rel_l2\": %.3e, \"bound\": %.0e, "
                        "\"fp32_seconds\": %.3f, \"bf16_seconds\": %.3f, \"kernel\": \"%s\"}",
                        f->key, r.rel_l2, BENCH_BF16_REL_L2_MAX, r.wall[0], r.wall[1], r.kernel);
            continue;
        }
        double wall = median(r.wall, r.runs), cpu = median(r.cpu, r.runs);
        double gfs = r.gflop / wall, gfc = r.gflop / cpu;
        bool bf = strstr(r.kernel, "bf16") != NULL;
        double core = bf ? pb.core : pf.core;
        printf("%-28s %7.3f %7.3f %7.3f %8.1f %6.1f %7.1f %5.1f%% %6.0f %7.0f  %s\n", f->key,
               wall, cpu, r.first_wall, r.gflop, gfs, gfc, core > 0 ? 100.0 * gfc / core : 0.0,
               rss, r.pack_mb, r.kernel);
        fflush(stdout);
        if (f->kind == BENCH_TXT2IMG) {
            printf("%-28s   (%s)\n", "", r.msg);
            if (!strcmp(f->model, "sd15"))
                rss_sd15 = rss;
        }
        if (js)
            fprintf(js, ",\n  \"%s\": {\"seconds\": %.4f, \"gflops\": %.1f, \"kernel\": \"%s\", "
                    "\"cpu_seconds\": %.4f, \"gflops_per_cpu_second\": %.1f, "
                    "\"first_seconds\": %.4f, \"gflop\": %.2f, \"runs\": %d, "
                    "\"peak_rss_mb\": %.0f}",
                    f->key, wall, gfs, r.kernel, cpu, gfc, r.first_wall, r.gflop, r.runs, rss);
    }
    if (js) {
        if (rss_sd15 > 0)
            fprintf(js, ",\n  \"peak_rss_sd15_512_mb\": %.0f", rss_sd15);
        fprintf(js, ",\n  \"missing\": {%s%s}\n}\n", missing_json, missing ? "\n  " : "");
        if (fclose(js) != 0)
            return sd_cli_fail(NAME, "cannot write %s", json);
    }
    if (missing || failed) {
        fprintf(stderr, "sd bench: %d figure(s) MISSING, %d FAILED (see above)\n", missing,
                failed);
        return 1;
    }
    return 0;
}

const sd_cli_cmd sd_cli_cmd_bench = {
    "bench",
    "[--models DIR] [--taesd FILE] [--only KEY,...] [--repeats N] [-t THREADS] [--json FILE] "
    "[--list]",
    "time the networks on full-size random checkpoints (make bench) against the machine peak",
    run};
