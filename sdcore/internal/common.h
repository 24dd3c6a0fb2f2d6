/* internal/common.h - what every sdcore file needs: the allocation hooks (so tests can fail
 * allocation N), error reporting into a caller-owned sd_error, name formatting, the float
 * dtype test, checked size arithmetic and the defensive-branch macros.  Included by every .c
 * file of the engine. */
#ifndef SD_INTERNAL_COMMON_H
#define SD_INTERNAL_COMMON_H

#include "sd.h"

#include <assert.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- allocation ------------------------------------------------------------------------
 * Every engine allocation goes through these, so that a test can inject failures.  Memory
 * is 64-byte aligned (whole cache lines; AVX-512 loads).  sd_free(NULL) is a no-op. */
void *sd_malloc(size_t n);
void *sd_calloc(size_t count, size_t size);   /* zeroed; NULL on overflow */
void *sd_realloc(void *p, size_t n);          /* not aligned beyond malloc's guarantee */
void sd_free(void *p);
char *sd_strdup(const char *s);

/* Fault injection for tests: allocation number `nth` (1-based, counted from this call) and,
 * if `repeat`, every one after it fails.  nth = 0 disables.  Returns allocations counted
 * since the last call.  Not thread-safe against concurrent allocation: use from tests. */
long sd_alloc_fail_after(long nth, bool repeat);
/* Bytes currently allocated through sd_malloc & co. (for leak checks in tests). */
size_t sd_alloc_live_bytes(void);
/* High-water mark of sd_alloc_live_bytes() since the last sd_alloc_peak_reset() (or the
 * start of the process): tests check with it that an op's scratch stays bounded.  The reset
 * sets the mark to the current live bytes.  Thread-safe; meaningful when one op runs. */
size_t sd_alloc_peak_bytes(void);
void sd_alloc_peak_reset(void);

/* ---- errors ----------------------------------------------------------------------------
 * sd_fail formats a message into err (if non-NULL) and returns code, so call sites read
 *     return sd_fail(err, SD_ERR_FORMAT, "%s: header length %llu too large", path, n);  */
sd_status sd_fail(sd_error *err, sd_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix an existing message: "loading X: <old message>".  Returns err->code (or code). */
sd_status sd_fail_prefix(sd_error *err, sd_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* sd_fail(err, SD_ERR_NOMEM, "out of memory (%what)") */
sd_status sd_fail_nomem(sd_error *err, const char *what);

/* ---- names and dtypes ------------------------------------------------------------------ */
/* snprintf for names built from parts (tensor names): a result longer than the n bytes of
 * buf is cut, and a cut tensor name is then simply not found, so call sites need no
 * truncation check.  Thread: any. */
void sd_name(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* True for the floating-point dtypes F32, F16 and BF16. */
static inline bool sd_dtype_is_float(sd_dtype t)
{
    return t == SD_DTYPE_F32 || t == SD_DTYPE_F16 || t == SD_DTYPE_BF16;
}

/* ---- checked arithmetic ---------------------------------------------------------------- */
/* *out = a * b; false on overflow (then *out is unspecified). */
static inline bool sd_mul_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool sd_add_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

/* Defensive branches: true/false in release, assert in debug.  Use for "cannot happen"
 * conditions that the code nevertheless survives:  if (SD_NEVER(n < 0)) return ...; */
#ifdef NDEBUG
#define SD_ALWAYS(x) (x)
#define SD_NEVER(x) (x)
#else
#define SD_ALWAYS(x) ((x) ? 1 : (assert(0), 0))
#define SD_NEVER(x) ((x) ? (assert(0), 1) : 0)
#endif

#define SD_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SD_MAX(a, b) ((a) > (b) ? (a) : (b))
#define SD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
