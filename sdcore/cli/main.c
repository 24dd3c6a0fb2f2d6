/* cli/main.c - the `sd` command-line tool: a second host for sdcore next to the GIMP
 * plug-in, and the engine's test and benchmark driver.  This file holds the subcommand
 * table, the dispatch and the helpers of cli.h. */
#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmd_sysinfo(int argc, char **argv)
{
    (void)argc, (void)argv;
    fputs(sd_system_info(), stdout);
    return 0;
}

static const sd_cli_cmd cmd_sysinfo_entry = {
    "sysinfo", "", "CPU features found and the kernel variant in use", cmd_sysinfo};

extern const sd_cli_cmd sd_cli_cmd_info;
extern const sd_cli_cmd sd_cli_cmd_tokenize;
extern const sd_cli_cmd sd_cli_cmd_encode_text;
extern const sd_cli_cmd sd_cli_cmd_txt2img;
extern const sd_cli_cmd sd_cli_cmd_img2img;
extern const sd_cli_cmd sd_cli_cmd_inpaint;
extern const sd_cli_cmd sd_cli_cmd_outpaint;
extern const sd_cli_cmd sd_cli_cmd_denoise;
extern const sd_cli_cmd sd_cli_cmd_unet;
extern const sd_cli_cmd sd_cli_cmd_make_random_model;
extern const sd_cli_cmd sd_cli_cmd_bench;
extern const sd_cli_cmd sd_cli_cmd_vae_decode, sd_cli_cmd_vae_encode, sd_cli_cmd_vae;
extern const sd_cli_cmd sd_cli_cmd_make_random_model;

static const sd_cli_cmd *const commands[] = {
    &cmd_sysinfo_entry,
    &sd_cli_cmd_info,
    &sd_cli_cmd_tokenize,
    &sd_cli_cmd_encode_text,
    &sd_cli_cmd_txt2img,
    &sd_cli_cmd_img2img,
    &sd_cli_cmd_inpaint,
    &sd_cli_cmd_outpaint,
    &sd_cli_cmd_denoise,
    &sd_cli_cmd_unet,
    &sd_cli_cmd_make_random_model,
    &sd_cli_cmd_bench,
    &sd_cli_cmd_vae_decode,
    &sd_cli_cmd_vae_encode,
    &sd_cli_cmd_vae,
    &sd_cli_cmd_make_random_model,
};

int sd_cli_fail(const char *cmd, const char *fmt, ...)
{
    fprintf(stderr, "sd %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int sd_cli_fail_err(const char *cmd, const sd_error *err)
{
    return sd_cli_fail(cmd, "%s", err->msg[0] ? err->msg : sd_status_str(err->code));
}

bool sd_cli_parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool sd_cli_parse_float(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

int sd_cli_parse_threads(const char *cmd, const char *opt, const char *s, long *out)
{
    if (sd_cli_parse_int(s, 0, 1024, out))
        return 0;
    return sd_cli_fail(cmd, "%s takes a thread count 0..1024 (0: every core), not '%s'", opt, s);
}

int sd_cli_open_model(const char *cmd, const char *path, long threads, bool use_ref,
                      sd_precision precision, sd_ctx **ctx, sd_model **m)
{
    sd_error err = {0};
    sd_ctx_params cp = sd_ctx_params_default();
    cp.n_threads = (int)threads;
    cp.use_ref = use_ref;
    cp.precision = precision;
    *ctx = NULL, *m = NULL;
    if (sd_ctx_new(&cp, ctx, &err) == SD_OK && sd_model_load(*ctx, path, m, &err) == SD_OK)
        return 0;
    sd_ctx_free(*ctx);
    *ctx = NULL;
    return sd_cli_fail_err(cmd, &err);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sd <command> [arguments]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-14s %s\n      %s\n", commands[i]->name, commands[i]->usage,
                commands[i]->help);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i]->name))
            return commands[i]->run(argc - 1, argv + 1);
    fprintf(stderr, "sd: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
