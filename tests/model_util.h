/* tests/model_util.h - models in tests: the 2-thread context and the checked model load the
 * tests share, and the files they write around models: copies of a safetensors model
 * with its floats in another dtype, a tensor left out or cut (the golden f16 files hold
 * fp16-representable values, so an f32 copy is exact), the .json sidecar copied along; the
 * TAESD pair under diffusers' AutoencoderTiny names; header-only files with the layout of a
 * full-size checkpoint (tests/data/full-size-layouts.json); plain file copies and
 * comparisons; tensor elements read back whatever their dtype and strides. */
#ifndef SD_TEST_MODEL_UTIL_H
#define SD_TEST_MODEL_UTIL_H

#include "harness.h"
#include "internal/half.h"
#include "internal/json.h"
#include "internal/model.h"
#include "internal/ops.h"
#include "internal/safetensors.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* A context with 2 threads (the machine is shared) and, if use_ref, the scalar reference
 * kernels; NULL after saying why on stderr.  Free with sd_ctx_free. */
static inline sd_ctx *t_ctx_new(bool use_ref)
{
    sd_ctx_params cp = sd_ctx_params_default();
    cp.n_threads = 2;
    cp.use_ref = use_ref;
    sd_ctx *ctx = NULL;
    sd_error err = {0};
    if (sd_ctx_new(&cp, &ctx, &err) != SD_OK)
        fprintf(stderr, "context: %s\n", err.msg);
    return ctx;
}

/* The model at `path` loaded on ctx, or NULL.  One check, failing (with the loader's message
 * on stderr) when it does not load.  Free with sd_model_free. */
static inline sd_model *t_load_model(sd_ctx *ctx, const char *path)
{
    sd_error err = {0};
    sd_model *m = NULL;
    if (sd_model_load(ctx, path, &m, &err) != SD_OK)
        fprintf(stderr, "loading %s: %s\n", path, err.msg);
    CHECK(m != NULL, "load %s", path);
    return m;
}

/* Copy the file src to dst.  Returns 1 on success. */
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

/* 1 when both files can be read and hold the same bytes. */
static inline int t_same_file(const char *p1, const char *p2)
{
    FILE *a = fopen(p1, "rb"), *b = fopen(p2, "rb");
    int same = a && b;
    static char x[65536], y[65536];
    while (same) {
        size_t n = fread(x, 1, sizeof x, a), m = fread(y, 1, sizeof y, b);
        same = n == m && !memcmp(x, y, n);
        if (n == 0)
            break;
    }
    if (a)
        fclose(a);
    if (b)
        fclose(b);
    return same;
}

/* Element i (row-major over the shape, any strides) of t, as raw bytes. */
static inline const void *t_tensor_elem(const sd_tensor *t, int64_t i)
{
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (i % t->shape[d]) * t->stride[d];
        i /= t->shape[d];
    }
    return (const char *)t->data + off * (int64_t)sd_dtype_size(t->dtype);
}

/* Element i (as t_tensor_elem) of a F32/F16/BF16 tensor as a float; NAN for other dtypes. */
static inline float t_tensor_value(const sd_tensor *t, int64_t i)
{
    const void *p = t_tensor_elem(t, i);
    uint16_t h;
    float f;
    switch (t->dtype) {
    case SD_DTYPE_F16: memcpy(&h, p, 2); return sd_f16_to_f32(h);
    case SD_DTYPE_BF16: memcpy(&h, p, 2); return sd_bf16_to_f32(h);
    case SD_DTYPE_F32: memcpy(&f, p, 4); return f;
    default: return NAN;
    }
}

/* The sidecar of a model file: `path` with ".safetensors" replaced by ".json". */
static inline const char *t_sidecar(const char *path)
{
    static char buf[4][1024];
    static int slot;
    char *b = buf[slot++ % 4];
    size_t n = strlen(path);
    n = n >= 12 && !strcmp(path + n - 12, ".safetensors") ? n - 12 : n;
    snprintf(b, sizeof buf[0], "%.*s.json", (int)n, path);
    return b;
}

/* Remove a model file and its sidecar. */
static inline void t_remove_model(const char *path)
{
    remove(t_sidecar(path));
    remove(path);
}

/* Convert one float tensor (any strides) to a new owned contiguous tensor of `dtype` (F32,
 * F16 or BF16).  Returns 1 on success. */
static inline int t_convert_tensor(const sd_tensor *src, sd_dtype dtype, sd_tensor *dst)
{
    int64_t n = sd_tensor_numel(src);
    sd_tensor f;
    if (sd_tensor_new(SD_DTYPE_F32, src->ndim, src->shape, &f, NULL) != SD_OK)
        return 0;
    if (sd_tensor_to_f32(NULL, src, f.data, n, NULL) != SD_OK) {
        sd_tensor_free(&f);
        return 0;
    }
    if (dtype == SD_DTYPE_F32) {
        *dst = f;
        return 1;
    }
    int ok = (dtype == SD_DTYPE_F16 || dtype == SD_DTYPE_BF16) &&
             sd_tensor_new(dtype, src->ndim, src->shape, dst, NULL) == SD_OK;
    for (int64_t i = 0; ok && i < n; i++) {
        float v = ((const float *)f.data)[i];
        ((uint16_t *)dst->data)[i] = dtype == SD_DTYPE_F16 ? sd_f32_to_f16(v) : sd_f32_to_bf16(v);
    }
    sd_tensor_free(&f);
    return ok;
}

/* How t_write_model_variant changes the model: all fields zero = an identical copy. */
typedef struct t_variant {
    bool convert;        /* store every F32/F16/BF16 tensor as `dtype` */
    sd_dtype dtype;
    const char *drop;    /* leave this tensor out */
    const char *halve;   /* keep only the first half of this tensor's last dimension */
    bool no_sidecar;     /* do not copy the .json sidecar */
} t_variant;

/* Write `dst` (.safetensors) = `src` changed as `v` says: tensors the loader cannot use are
 * left out, the others (int64 position ids included) copied, the file's metadata kept.  The
 * sidecar (src's name with .json) is copied to dst's, if it exists, unless v->no_sidecar.
 * Returns 1 on success; says why on stderr otherwise. */
static inline int t_write_model_variant(const char *src, const char *dst, const t_variant *v)
{
    sd_st_file *f = NULL;
    sd_error err = {0};
    if (sd_st_open(src, &f, &err) != SD_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 0;
    }
    const char **names = calloc(f->n, sizeof *names);
    sd_tensor *ts = calloc(f->n, sizeof *ts);
    size_t n = 0;
    int ok = names && ts;
    for (size_t i = 0; ok && i < f->n; i++) {
        const sd_st_entry *e = &f->entries[i];
        if (!e->usable || (v->drop && !strcmp(e->name, v->drop)))
            continue;
        sd_tensor t = e->t;
        if (v->halve && !strcmp(e->name, v->halve))
            t.shape[t.ndim - 1] /= 2;   /* a strided view: the writer gathers it */
        if (v->convert && (t.dtype == SD_DTYPE_F32 || t.dtype == SD_DTYPE_F16 ||
                           t.dtype == SD_DTYPE_BF16)) {
            sd_tensor c = {0};
            ok = t_convert_tensor(&t, v->dtype, &c);
            t = c;
        }
        names[n] = e->name;
        ts[n++] = t;
    }
    ok = ok && sd_st_write(dst, names, ts, n, f->metadata_json, &err) == SD_OK;
    if (!ok)
        fprintf(stderr, "writing %s from %s: %s\n", dst, src, err.msg[0] ? err.msg : "failed");
    for (size_t i = 0; ts && i < n; i++)
        sd_tensor_free(&ts[i]);
    free(names);
    free(ts);
    sd_st_close(f);
    struct stat sb;
    if (ok && !v->no_sidecar && stat(t_sidecar(src), &sb) == 0)
        ok = t_copy_file(t_sidecar(src), t_sidecar(dst));
    return ok;
}

/* Write `dst` = `src` with every float tensor stored as `dtype`, sidecar copied along. */
static inline int t_write_model_copy(const char *src, const char *dst, sd_dtype dtype)
{
    t_variant v = {.convert = true, .dtype = dtype};
    return t_write_model_variant(src, dst, &v);
}

/* Write the golden taesd.py pair (tests/data/taesd/taesd_{encoder,decoder}.safetensors) as
 * one file with diffusers' AutoencoderTiny names: encoder.layers.N (same index) and
 * decoder.layers.N-1 (the original decoder's index 0 is the weightless clamp).  Returns 1 on
 * success. */
static inline int t_write_taesd_autoencodertiny(const char *path)
{
    sd_st_file *fe = NULL, *fd = NULL;
    sd_error err = {0};
    if (sd_st_open(t_data("taesd/taesd_encoder.safetensors"), &fe, &err) != SD_OK ||
        sd_st_open(t_data("taesd/taesd_decoder.safetensors"), &fd, &err) != SD_OK) {
        fprintf(stderr, "%s\n", err.msg);
        sd_st_close(fe);
        return 0;
    }
    size_t n = fe->n + fd->n;
    char **names = calloc(n, sizeof *names);
    sd_tensor *ts = calloc(n, sizeof *ts);
    int ok = names && ts;
    for (size_t i = 0; ok && i < n; i++) {
        bool enc = i < fe->n;
        const sd_st_entry *e = enc ? &fe->entries[i] : &fd->entries[i - fe->n];
        char *dot;
        long idx = strtol(e->name, &dot, 10);
        ok = (names[i] = malloc(256)) != NULL;
        if (ok)
            snprintf(names[i], 256, "%s.layers.%ld%s", enc ? "encoder" : "decoder",
                     enc ? idx : idx - 1, dot);
        ts[i] = e->t;
    }
    ok = ok && sd_st_write(path, (const char *const *)names, ts, n, NULL, &err) == SD_OK;
    if (!ok)
        fprintf(stderr, "writing %s: %s\n", path, err.msg[0] ? err.msg : "failed");
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    free(ts);
    sd_st_close(fe);
    sd_st_close(fd);
    return ok;
}

/* tests/data/full-size-layouts.json parsed (per checkpoint kind: tensor name -> [dtype,
 * shape]), or NULL: a failed check then says why.  Free with sd_json_free. */
static inline sd_json *t_full_size_layouts(void)
{
    sd_json *root = NULL;
    sd_error err = {0};
    if (sd_json_parse_file(t_data("full-size-layouts.json"), 1 << 20, &root, &err) != SD_OK)
        CHECK(0, "full-size-layouts.json: %s", err.msg);
    return root;
}

/* Write `path` with the header of a full-size checkpoint (`layout`: one kind of
 * t_full_size_layouts(); NULL fails) and a hole for the data: loading a model reads no tensor
 * data, so this checks naming, detection, defaults and sizes at real scale without gigabytes
 * of weights.  Returns 1 on success. */
static inline int t_write_header_only(const sd_json *layout, const char *path)
{
    char *hdr = NULL;
    size_t len = 0;
    FILE *ms = layout ? open_memstream(&hdr, &len) : NULL;
    if (!ms)
        return 0;
    uint64_t off = 0;
    fputc('{', ms);
    for (size_t i = 0; i < layout->n; i++) {
        const char *dtype = sd_json_str(sd_json_at(&layout->items[i], 0), "F16");
        const sd_json *shape = sd_json_at(&layout->items[i], 1);
        uint64_t size = strcmp(dtype, "F32") ? 2 : 4;
        fprintf(ms, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "",
                layout->keys[i].str, dtype);
        for (size_t d = 0; shape && d < shape->n; d++) {
            size *= (uint64_t)shape->items[d].integer;
            fprintf(ms, "%s%lld", d ? "," : "", (long long)shape->items[d].integer);
        }
        fprintf(ms, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                (unsigned long long)(off + size));
        off += size;
    }
    fputc('}', ms);
    while (ftell(ms) % 8)
        fputc(' ', ms);
    fclose(ms);
    unsigned char n8[8];
    for (int i = 0; i < 8; i++)
        n8[i] = (unsigned char)((uint64_t)len >> (8 * i));
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    int ok = fd >= 0 && write(fd, n8, 8) == 8 && write(fd, hdr, len) == (ssize_t)len &&
             ftruncate(fd, (off_t)(8 + len + off)) == 0;
    if (fd >= 0)
        close(fd);
    free(hdr);
    return ok;
}

#endif
