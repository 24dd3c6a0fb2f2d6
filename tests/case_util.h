/* tests/case_util.h - reading the golden case files (tests/data/<model>/<case>.safetensors):
 * a float32 tensor of known size as a checked view, and any float tensor of a case as a new
 * float32 array, including the ones with more dimensions than an sd_tensor holds (a UNet
 * case's [T, B, C, H, W] output), which the loader validates but leaves unusable. */
#ifndef SD_TEST_CASE_UTIL_H
#define SD_TEST_CASE_UTIL_H

#include "harness.h"
#include "internal/ops.h"
#include "internal/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The float32 tensor `name` of n elements of the open case file f (called `what` in the
 * message) as a view valid while f is open, or NULL.  One check, failing when the case has
 * no such tensor. */
static inline const float *t_case_view(const sd_st_file *f, const char *what, const char *name,
                                       size_t n)
{
    const sd_tensor *t = sd_st_tensor(f, name);
    bool ok = t && t->dtype == SD_DTYPE_F32 && (size_t)sd_tensor_numel(t) == n;
    CHECK(ok, "%s: tensor %s missing or not F32[%zu]", what, name, n);
    return ok ? t->data : NULL;
}

/* Tensor `name` of the open case file f as a new malloc'd float32 array; *n (if n is not
 * NULL) receives its element count.  Usable F32/F16/BF16 tensors are converted; unusable F32
 * entries are copied from their stored bytes.  A case without such a tensor is broken test
 * data: the helper says so and exits 1 (no summary line: the runner reports a crash). */
static inline float *t_case_f32(const sd_st_file *f, const char *name, size_t *n)
{
    const sd_st_entry *e = sd_st_find(f, name);
    float *p = NULL;
    size_t k = 0;
    if (e && e->usable) {
        k = (size_t)sd_tensor_numel(&e->t);
        p = malloc(k * sizeof *p + 1);
        if (p && sd_tensor_to_f32(NULL, &e->t, p, (int64_t)k, NULL) != SD_OK) {
            free(p);
            p = NULL;
        }
    } else if (e && !strcmp(e->dtype_name, "F32")) {
        k = e->nbytes / sizeof *p;
        p = malloc(e->nbytes + 1);
        if (p)
            memcpy(p, e->raw, e->nbytes);
    }
    if (!p) {
        fprintf(stderr, "case tensor %s: missing, not a float tensor, or out of memory\n",
                name);
        exit(1);
    }
    if (n)
        *n = k;
    return p;
}

#endif
