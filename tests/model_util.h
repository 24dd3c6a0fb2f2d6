/* tests/model_util.h - helpers tests share for model files: write a copy of a safetensors
 * model with every floating tensor converted to another dtype (the golden f16 files hold
 * fp16-representable values, so an f32 copy is exact), and copy its JSON sidecar along. */
#ifndef SD_TEST_MODEL_UTIL_H
#define SD_TEST_MODEL_UTIL_H

#include "internal/half.h"
#include "internal/safetensors.h"

#include <sys/stat.h>

/* Convert one float tensor to `dtype` into a new owned tensor. */
static inline int t_convert_tensor(const sd_tensor *src, sd_dtype dtype, sd_tensor *dst)
{
    if (sd_tensor_new(dtype, src->ndim, src->shape, dst, NULL) != SD_OK)
        return 0;
    int64_t n = sd_tensor_numel(src);
    for (int64_t i = 0; i < n; i++) {
        float v;
        switch (src->dtype) {
        case SD_DTYPE_F32: v = ((const float *)src->data)[i]; break;
        case SD_DTYPE_F16: v = sd_f16_to_f32(((const uint16_t *)src->data)[i]); break;
        case SD_DTYPE_BF16: v = sd_bf16_to_f32(((const uint16_t *)src->data)[i]); break;
        default: return 0;
        }
        switch (dtype) {
        case SD_DTYPE_F32: ((float *)dst->data)[i] = v; break;
        case SD_DTYPE_F16: ((uint16_t *)dst->data)[i] = sd_f32_to_f16(v); break;
        case SD_DTYPE_BF16: ((uint16_t *)dst->data)[i] = sd_f32_to_bf16(v); break;
        default: return 0;
        }
    }
    return 1;
}

static inline int t_copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wb") : NULL;
    char buf[65536];
    size_t n;
    int ok = in && out;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0)
        ok = fwrite(buf, 1, n, out) == n;
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        ok = 0;
    return ok;
}

/* Write `dst` (.safetensors) = `src` with all F16/BF16/F32 tensors stored as `dtype`; other
 * tensors (int64 position ids) are copied as they are.  The sidecar src-minus-extension
 * ".json" is copied to dst's, if it exists.  Returns 1 on success. */
static inline int t_write_model_copy(const char *src, const char *dst, sd_dtype dtype)
{
    sd_st_file *f = NULL;
    if (sd_st_open(src, &f, NULL) != SD_OK)
        return 0;
    const char **names = calloc(f->n, sizeof *names);
    sd_tensor *ts = calloc(f->n, sizeof *ts);
    size_t n = 0;
    int ok = names && ts;
    for (size_t i = 0; ok && i < f->n; i++) {
        const sd_st_entry *e = &f->entries[i];
        if (!e->usable)
            continue;
        names[n] = e->name;
        if (e->t.dtype == SD_DTYPE_F32 || e->t.dtype == SD_DTYPE_F16 ||
            e->t.dtype == SD_DTYPE_BF16)
            ok = t_convert_tensor(&e->t, dtype, &ts[n]);
        else
            ts[n] = e->t;
        n++;
    }
    ok = ok && sd_st_write(dst, names, ts, n, NULL, NULL) == SD_OK;
    for (size_t i = 0; i < n; i++)
        sd_tensor_free(&ts[i]);
    free(names);
    free(ts);
    sd_st_close(f);
    /* sidecar */
    char sj[1024], dj[1024];
    snprintf(sj, sizeof sj, "%.*s.json", (int)(strlen(src) - 12), src);
    snprintf(dj, sizeof dj, "%.*s.json", (int)(strlen(dst) - 12), dst);
    struct stat sb;
    if (ok && stat(sj, &sb) == 0)
        ok = t_copy_file(sj, dj);
    return ok;
}

#endif
