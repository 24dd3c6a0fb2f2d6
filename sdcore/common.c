/* common.c - allocation hooks with fault injection, error and name formatting and the small
 * public helpers (status and dtype names, tensors).  Kept together because every other
 * file depends on them and they depend on nothing. */
#include "internal/common.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== allocation ======================================================================= */

/* Each block carries a header recording its size so live bytes can be counted; the header
 * is 64 bytes so the user pointer keeps 64-byte alignment. */
enum { HDR = 64 };

static atomic_size_t live_bytes;
static atomic_size_t peak_bytes;
static atomic_long alloc_count;
static atomic_long fail_at;       /* 0 = never */
static atomic_bool fail_repeat;

static bool should_fail(void)
{
    long n = atomic_fetch_add(&alloc_count, 1) + 1;
    long at = atomic_load(&fail_at);
    if (at == 0)
        return false;
    return n == at || (atomic_load(&fail_repeat) && n > at);
}

long sd_alloc_fail_after(long nth, bool repeat)
{
    long counted = atomic_exchange(&alloc_count, 0);
    atomic_store(&fail_at, nth);
    atomic_store(&fail_repeat, repeat);
    return counted;
}

size_t sd_alloc_live_bytes(void)
{
    return atomic_load(&live_bytes);
}

size_t sd_alloc_peak_bytes(void)
{
    return atomic_load(&peak_bytes);
}

void sd_alloc_peak_reset(void)
{
    atomic_store(&peak_bytes, atomic_load(&live_bytes));
}

void *sd_malloc(size_t n)
{
    size_t total;
    if (!sd_add_ok(n, HDR, &total) || should_fail())
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, total ? total : HDR) != 0)
        return NULL;
    *(size_t *)p = n;
    size_t live = atomic_fetch_add(&live_bytes, n) + n;
    size_t peak = atomic_load(&peak_bytes);
    while (live > peak && !atomic_compare_exchange_weak(&peak_bytes, &peak, live))
        ;
    return (char *)p + HDR;
}

void *sd_calloc(size_t count, size_t size)
{
    size_t n;
    if (!sd_mul_ok(count, size, &n))
        return NULL;
    void *p = sd_malloc(n);
    if (p)
        memset(p, 0, n);
    return p;
}

void sd_free(void *p)
{
    if (!p)
        return;
    char *base = (char *)p - HDR;
    atomic_fetch_sub(&live_bytes, *(size_t *)base);
    free(base);
}

void *sd_realloc(void *p, size_t n)
{
    if (!p)
        return sd_malloc(n);
    size_t old = *(size_t *)((char *)p - HDR);
    void *q = sd_malloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, old < n ? old : n);
    sd_free(p);
    return q;
}

char *sd_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = sd_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* ==== errors =========================================================================== */

sd_status sd_fail(sd_error *err, sd_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

sd_status sd_fail_prefix(sd_error *err, sd_status code, const char *fmt, ...)
{
    if (!err)
        return code;
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    char pre[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    if (err->code == SD_OK)
        err->code = code;
    char joined[2 * sizeof err->msg + 4];
    snprintf(joined, sizeof joined, "%s: %s", pre, old);
    memcpy(err->msg, joined, sizeof err->msg - 1);
    err->msg[sizeof err->msg - 1] = 0;
    return err->code;
}

sd_status sd_fail_nomem(sd_error *err, const char *what)
{
    return sd_fail(err, SD_ERR_NOMEM, "out of memory (%s)", what);
}

const char *sd_status_str(sd_status s)
{
    switch (s) {
    case SD_OK: return "SD_OK";
    case SD_CANCELLED: return "SD_CANCELLED";
    case SD_ERR_INVALID_ARG: return "SD_ERR_INVALID_ARG";
    case SD_ERR_NOMEM: return "SD_ERR_NOMEM";
    case SD_ERR_IO: return "SD_ERR_IO";
    case SD_ERR_FORMAT: return "SD_ERR_FORMAT";
    case SD_ERR_UNSUPPORTED: return "SD_ERR_UNSUPPORTED";
    case SD_ERR_TOO_LARGE: return "SD_ERR_TOO_LARGE";
    case SD_ERR_INTERNAL: return "SD_ERR_INTERNAL";
    }
    return "SD_ERR_UNKNOWN";
}

void sd_name(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

/* ==== dtypes and tensors =============================================================== */

const char *sd_dtype_name(sd_dtype t)
{
    static const char *const names[SD_DTYPE_COUNT] = {
        [SD_DTYPE_F32] = "F32", [SD_DTYPE_F16] = "F16", [SD_DTYPE_BF16] = "BF16",
        [SD_DTYPE_I64] = "I64", [SD_DTYPE_I32] = "I32", [SD_DTYPE_U8] = "U8",
    };
    return (unsigned)t < SD_DTYPE_COUNT ? names[t] : "?";
}

size_t sd_dtype_size(sd_dtype t)
{
    static const size_t sizes[SD_DTYPE_COUNT] = {
        [SD_DTYPE_F32] = 4, [SD_DTYPE_F16] = 2, [SD_DTYPE_BF16] = 2,
        [SD_DTYPE_I64] = 8, [SD_DTYPE_I32] = 4, [SD_DTYPE_U8] = 1,
    };
    return (unsigned)t < SD_DTYPE_COUNT ? sizes[t] : 0;
}

int64_t sd_tensor_numel(const sd_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

sd_status sd_tensor_new(sd_dtype dtype, int ndim, const int64_t *shape, sd_tensor *out,
                        sd_error *err)
{
    memset(out, 0, sizeof *out);
    if (ndim < 0 || ndim > SD_MAX_DIMS || (unsigned)dtype >= SD_DTYPE_COUNT)
        return sd_fail(err, SD_ERR_INVALID_ARG, "tensor: bad ndim %d or dtype", ndim);
    size_t bytes = sd_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return sd_fail(err, SD_ERR_INVALID_ARG, "tensor: negative extent");
        if (!sd_mul_ok(bytes, (size_t)shape[i], &bytes))
            return sd_fail(err, SD_ERR_TOO_LARGE, "tensor: size overflows");
    }
    void *data = sd_calloc(1, bytes ? bytes : 1);
    if (!data)
        return sd_fail_nomem(err, "tensor");
    out->dtype = dtype;
    out->ndim = ndim;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        out->shape[i] = shape[i];
        out->stride[i] = s;
        s *= shape[i];
    }
    out->data = data;
    out->owned = true;
    return SD_OK;
}

void sd_tensor_free(sd_tensor *t)
{
    if (!t)
        return;
    if (t->owned)
        sd_free(t->data);
    memset(t, 0, sizeof *t);
}
