/* cli/bench.h - the pieces of `sd bench` shared by its two files: the figure table entry,
 * the result one figure sends back from its child process, and the runners
 * (cli/bench_figures.c) that time one network or pipeline in that child. */
#ifndef SD_CLI_BENCH_H
#define SD_CLI_BENCH_H

#include "sd.h"

#include <stdbool.h>

enum { BENCH_MAX_RUNS = 16 };

typedef enum bench_kind {
    BENCH_TEXT,        /* text encoder on `batch` 77-token windows */
    BENCH_UNET,        /* one UNet evaluation, batch x (size/8)^2 latents */
    BENCH_VAE_DECODE,  /* VAE decoder, latents -> size x size */
    BENCH_VAE_ENCODE,  /* VAE encoder, size x size -> latents */
    BENCH_TAESD_DECODE,
    BENCH_TXT2IMG,     /* a whole txt2img generation (load, text, steps, decode) */
    BENCH_UNET_ERROR,  /* one UNet evaluation in bf16 against the same in float32 */
} bench_kind;

/* The bf16 precision mode's bound on a UNet output's relative L2 error (issue 7). */
#define BENCH_BF16_REL_L2_MAX 1e-2

typedef struct bench_fig {
    const char *key;        /* the bench.json name */
    bench_kind kind;
    const char *model;      /* model file stem under the models folder: "sd15", "sd21",
                               "sd21-novae" (made by sd bench: decodes with TAESD), "taesd" */
    int batch, size, steps; /* size in pixels; steps for txt2img */
    bool fp32;              /* float32 products even where bf16 ones are available */
    bool taesd;             /* txt2img decodes with TAESD */
    int repeats;            /* timed runs after the warm-up one (0: the --repeats value) */
} bench_fig;

typedef struct bench_env {
    const char *models;     /* folder of the random checkpoints */
    const char *taesd;      /* a TAESD decoder file (the real one is small: the tests' copy) */
    int threads;            /* 0 = all cores */
    int repeats;
} bench_env;

/* What one figure reports (sent through a pipe from the child that ran it). */
typedef struct bench_result {
    int status;             /* 0 ran; 1 failed; 2 cannot run in this build (missing) */
    char msg[256];          /* why not, for status 1 and 2; txt2img: the phase times */
    int runs;
    double wall[BENCH_MAX_RUNS], cpu[BENCH_MAX_RUNS]; /* seconds, timed runs */
    double first_wall;      /* the warm-up run, which also packs the weights */
    double gflop;           /* floating-point work of one run, 1e9 operations */
    double pack_mb;         /* packed weights held after the runs */
    double rel_l2;          /* BENCH_UNET_ERROR: bf16 vs float32 output; wall[0] / wall[1]
                               are the float32 / bf16 evaluation times */
    char kernel[64];
} bench_result;

/* Path of the model of `stem` into buf: the random checkpoint under env->models, or
 * env->taesd for "taesd". */
void bench_model_path(const bench_env *env, const char *stem, char *buf, size_t cap);

/* Write <models>/sd21-novae-random-f16.safetensors, the SD 2.1 checkpoint without its VAE
 * (so a generation decodes with TAESD), unless it exists.  Returns false with a message in
 * msg on failure; true also when there is no SD 2.1 checkpoint to start from. */
bool bench_make_novae(const bench_env *env, char *msg, size_t cap);

/* Run figure f in this (child) process and fill *r; never exits. */
void bench_run(const bench_fig *f, const bench_env *env, bench_result *r);

#endif
