/* cli/cmd_make_random_model.c - `sd make-random-model`: write a full-size SD checkpoint
 * (original single-file naming, real names and shapes) with deterministic random weights, so
 * that speed can be measured on realistic shapes without real downloads (`make bench`).
 * The layouts and values come from the engine's internal/model_random.h. */
#include "cli/cli.h"
#include "internal/model_random.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CMD "make-random-model"
#define USAGE "usage: sd " CMD " --arch sd15|sd15-inpaint|sd21 [--dtype f16|bf16|f32] " \
              "[--seed N] [--threads N] -o FILE"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool parse_dtype(const char *s, sd_dtype *out)
{
    static const struct {
        const char *name;
        sd_dtype dtype;
    } known[] = {{"f16", SD_DTYPE_F16}, {"bf16", SD_DTYPE_BF16}, {"f32", SD_DTYPE_F32}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (!strcmp(s, known[i].name)) {
            *out = known[i].dtype;
            return true;
        }
    }
    return false;
}

static int run(int argc, char **argv)
{
    const char *arch_name = NULL, *out = NULL;
    sd_dtype dtype = SD_DTYPE_F16;
    long seed = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return sd_cli_fail(CMD, "%s needs a value\n%s", a, USAGE);
        if (!strcmp(a, "--arch"))
            arch_name = v;
        else if (!strcmp(a, "-o"))
            out = v;
        else if (!strcmp(a, "--dtype") && !parse_dtype(v, &dtype))
            return sd_cli_fail(CMD, "--dtype must be f16, bf16 or f32, not '%s'", v);
        else if (!strcmp(a, "--seed") && !sd_cli_parse_int(v, 0, LONG_MAX, &seed))
            return sd_cli_fail(CMD, "--seed must be a non-negative integer, not '%s'", v);
        else if (!strcmp(a, "--threads") && !sd_cli_parse_int(v, 1, 1024, &threads))
            return sd_cli_fail(CMD, "--threads must be 1..1024, not '%s'", v);
        else if (strcmp(a, "--dtype") && strcmp(a, "--seed") && strcmp(a, "--threads"))
            return sd_cli_fail(CMD, "unknown argument '%s'\n%s", a, USAGE);
        i++;
    }
    if (!arch_name || !out)
        return sd_cli_fail(CMD, "--arch and -o are required\n%s", USAGE);
    const sd_model_random_arch *arch = sd_model_random_preset(arch_name);
    if (!arch)
        return sd_cli_fail(CMD, "unknown --arch '%s' (sd15, sd15-inpaint, sd21)", arch_name);

    sd_error err = {0};
    sd_pool *pool = NULL;
    if (sd_pool_new(threads ? (int)threads : sd_cpu_count(), &pool, &err) != SD_OK)
        return sd_cli_fail_err(CMD, &err);
    sd_model_random_stats s;
    double t0 = now();
    sd_status st = sd_model_random_write(out, arch, dtype, (uint64_t)seed, pool, &s, &err);
    double dt = now() - t0;
    sd_pool_free(pool);
    if (st != SD_OK)
        return sd_cli_fail_err(CMD, &err);
    struct stat sb;
    long long size = stat(out, &sb) == 0 ? (long long)sb.st_size : -1;
    printf("%s: %s, %s, seed %ld: %zu tensors, %lld parameters, %lld bytes, %.2f s\n", out,
           arch->name, sd_dtype_name(dtype), seed, s.n_tensors, (long long)s.n_params, size, dt);
    return 0;
}

const sd_cli_cmd sd_cli_cmd_make_random_model = {
    CMD, "--arch sd15|sd15-inpaint|sd21 [--dtype f16|bf16|f32] [--seed N] [--threads N] -o FILE",
    "write a full-size checkpoint with deterministic random weights (for benchmarks)", run};
