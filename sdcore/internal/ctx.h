/* internal/ctx.h - what an sd_ctx holds.  The ops and networks reach the pool, the kernel
 * table and the log through it. */
#ifndef SD_INTERNAL_CTX_H
#define SD_INTERNAL_CTX_H

#include "internal/common.h"
#include "internal/pool.h"

struct sd_kernels; /* internal/kernels.h */

/* When packed convolutions run as Winograd: AUTO where it was measured to pay (the
 * default), never, or for every 3x3 stride-1 padding-1 convolution (tests). */
typedef enum sd_winograd { SD_WINOGRAD_AUTO, SD_WINOGRAD_OFF, SD_WINOGRAD_ALWAYS } sd_winograd;

struct sd_ctx {
    sd_ctx_params params;
    int n_threads;                  /* resolved, >= 1 */
    sd_pool *pool;
    const struct sd_kernels *kern;  /* the process-wide table, or the reference table */
    bool packed;                    /* linear/conv on the packed micro-kernels (else sgemm) */
    bool bf16;                      /* ... in bf16 (precision BF16 and a native dot product) */
    sd_winograd winograd;           /* 3x3 stride-1 convolutions on the packed path as
                                       Winograd F(4x4, 3x3) in float32 (ops_packed.c) */
    uint64_t flops;                 /* floating-point operations of the matrix products run so
                                       far (multiply-add = 2), counted by the ops on the
                                       caller's thread; sd bench reads it */
};

/* Send a message to the ctx's log callback, if any (caller's thread only).  ctx may be NULL. */
void sd_log(const sd_ctx *ctx, sd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
