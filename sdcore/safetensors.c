/* safetensors.c - the .safetensors reader and writer declared in internal/safetensors.h.
 * Reading maps the file and validates the whole untrusted header (caps, JSON, dtypes, shape
 * products with overflow checks, offsets, overlap) before any tensor data is touched; the
 * tensors are then views into the mapping.  Writing produces the canonical layout (name
 * order, packed data, header padded to 8 bytes) that the Python and Rust writers produce. */
#include "internal/safetensors.h"

#include "internal/json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ==== dtypes =========================================================================== */

typedef struct dtype_info {
    const char *name;
    int dtype;      /* an sd_dtype, or -1: known to the format but not usable here */
    size_t size;    /* bytes per element */
} dtype_info;

static const dtype_info dtypes[] = {
    {"F32", SD_DTYPE_F32, 4},   {"F16", SD_DTYPE_F16, 2},  {"BF16", SD_DTYPE_BF16, 2},
    {"I64", SD_DTYPE_I64, 8},   {"I32", SD_DTYPE_I32, 4},  {"U8", SD_DTYPE_U8, 1},
    {"F64", -1, 8},             {"I8", -1, 1},             {"I16", -1, 2},
    {"U16", -1, 2},             {"U32", -1, 4},            {"U64", -1, 8},
    {"BOOL", -1, 1},            {"F8_E4M3", -1, 1},        {"F8_E5M2", -1, 1},
    {"F8_E8M0", -1, 1},
};

static const dtype_info *dtype_lookup(const char *name)
{
    for (size_t i = 0; i < SD_ARRAY_LEN(dtypes); i++)
        if (!strcmp(dtypes[i].name, name))
            return &dtypes[i];
    return NULL;
}

/* ==== JSON string output ==================================================================
 * A tiny emitter used twice: once with p == NULL to measure, once to write. */

typedef struct emitter {
    char *p;
    size_t n;
} emitter;

static void emit_bytes(emitter *e, const char *s, size_t len)
{
    if (e->p)
        memcpy(e->p + e->n, s, len);
    e->n += len;
}

static void emit(emitter *e, const char *s)
{
    emit_bytes(e, s, strlen(s));
}

static void emit_u64(emitter *e, uint64_t v)
{
    char buf[24];
    int k = snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    emit_bytes(e, buf, (size_t)k);
}

/* A JSON string literal: quotes, backslashes and control bytes escaped, UTF-8 as is. */
static void emit_str(emitter *e, const char *s, size_t len)
{
    emit_bytes(e, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            emit_bytes(e, esc, 2);
        } else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            emit_bytes(e, esc, 6);
        } else {
            emit_bytes(e, (const char *)&c, 1);
        }
    }
    emit_bytes(e, "\"", 1);
}

/* A __metadata__ object (already checked: all values strings), compact, document order. */
static void emit_meta(emitter *e, const sd_json *meta)
{
    emit(e, "{");
    for (size_t i = 0; i < meta->n; i++) {
        if (i)
            emit(e, ",");
        emit_str(e, meta->keys[i].str, meta->keys[i].len);
        emit(e, ":");
        emit_str(e, meta->items[i].str, meta->items[i].len);
    }
    emit(e, "}");
}

/* An object of string values whose keys hold no NUL: sd_st_meta looks keys up as C strings,
 * so "a\u0000x" and "a\u0000y" would both be "a". */
static bool check_meta(const sd_json *meta)
{
    if (meta->type != SD_JSON_OBJECT)
        return false;
    for (size_t i = 0; i < meta->n; i++)
        if (meta->items[i].type != SD_JSON_STRING ||
            strlen(meta->keys[i].str) != meta->keys[i].len)
            return false;
    return true;
}

/* ==== reading ========================================================================== */

static int cmp_offset(const void *a, const void *b)
{
    const sd_st_entry *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes)
        return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const sd_st_entry *)a)->name, ((const sd_st_entry *)b)->name);
}

static int cmp_key_entry(const void *key, const void *e)
{
    return strcmp(key, ((const sd_st_entry *)e)->name);
}

/* Validate one header entry `v` named `name` and fill *e (name not yet set). */
static sd_status parse_entry(const char *what, const char *name, const sd_json *v,
                             size_t data_size, sd_st_entry *e, sd_error *err)
{
#define BAD(fmt, ...) \
    sd_fail(err, SD_ERR_FORMAT, "%s: tensor '%.80s': " fmt, what, name, ##__VA_ARGS__)
    if (v->type != SD_JSON_OBJECT)
        return BAD("header entry is not an object");
    const sd_json *dt = sd_json_get(v, "dtype");
    const sd_json *shape = sd_json_get(v, "shape");
    const sd_json *offs = sd_json_get(v, "data_offsets");
    if (!dt || dt->type != SD_JSON_STRING)
        return BAD("missing or non-string \"dtype\"");
    if (!shape || shape->type != SD_JSON_ARRAY)
        return BAD("missing or non-array \"shape\"");
    if (!offs || offs->type != SD_JSON_ARRAY)
        return BAD("missing or non-array \"data_offsets\"");
    const dtype_info *di = dtype_lookup(dt->str);
    if (!di || strlen(dt->str) != dt->len)
        return BAD("unknown dtype \"%.20s\"", dt->str);
    if (shape->n > SD_ST_MAX_NDIM)
        return BAD("%zu dimensions (at most %d allowed)", shape->n, SD_ST_MAX_NDIM);
    size_t bytes = di->size;
    for (size_t i = 0; i < shape->n; i++) {
        const sd_json *d = &shape->items[i];
        if (d->type != SD_JSON_NUMBER || !d->is_int || d->integer < 0)
            return BAD("shape[%zu] is not a non-negative integer", i);
        if ((uint64_t)d->integer > SIZE_MAX || !sd_mul_ok(bytes, (size_t)d->integer, &bytes))
            return BAD("shape is too large (byte size overflows)");
    }
    if (offs->n != 2)
        return BAD("\"data_offsets\" must hold 2 numbers, not %zu", offs->n);
    int64_t be[2];
    for (int i = 0; i < 2; i++) {
        const sd_json *o = &offs->items[i];
        if (o->type != SD_JSON_NUMBER || !o->is_int || o->integer < 0)
            return BAD("data_offsets[%d] is not a non-negative integer", i);
        be[i] = o->integer;
    }
    if (be[0] > be[1])
        return BAD("data_offsets begin %lld > end %lld", (long long)be[0], (long long)be[1]);
    if ((uint64_t)be[1] > data_size)
        return BAD("data_offsets end %lld is past the data section (%zu bytes; truncated?)",
                   (long long)be[1], data_size);
    if ((uint64_t)(be[1] - be[0]) != bytes)
        return BAD("shape needs %zu bytes but data_offsets cover %lld", bytes,
                   (long long)(be[1] - be[0]));
#undef BAD
    e->dtype_name = di->name;
    e->ndim = (int)shape->n;
    e->offset = (size_t)be[0];
    e->nbytes = bytes;
    e->usable = di->dtype >= 0 && shape->n <= SD_MAX_DIMS;
    if (e->usable) {
        e->t.dtype = (sd_dtype)di->dtype;
        e->t.ndim = (int)shape->n;
        int64_t stride = 1;
        for (int i = e->t.ndim - 1; i >= 0; i--) {
            e->t.shape[i] = shape->items[i].integer;
            e->t.stride[i] = stride;
            stride *= shape->items[i].integer ? shape->items[i].integer : 1;
        }
    }
    return SD_OK;
}

/* Point every entry's raw bytes and every usable view at its data; copy misaligned tensors
 * into aligned buffers for the views. */
static sd_status attach_data(sd_st_file *f, const uint8_t *data, sd_error *err)
{
    size_t misaligned = 0;
    for (size_t i = 0; i < f->n; i++) {
        sd_st_entry *e = &f->entries[i];
        if (e->usable && (uintptr_t)(data + e->offset) % sd_dtype_size(e->t.dtype))
            misaligned++;
    }
    if (misaligned) {
        f->copies = sd_calloc(misaligned, sizeof *f->copies);
        if (!f->copies)
            return sd_fail_nomem(err, "safetensors");
    }
    for (size_t i = 0; i < f->n; i++) {
        sd_st_entry *e = &f->entries[i];
        const uint8_t *p = data + e->offset;
        e->raw = p;
        if (!e->usable)
            continue;
        if ((uintptr_t)p % sd_dtype_size(e->t.dtype)) {
            void *c = sd_malloc(e->nbytes ? e->nbytes : 1);
            if (!c)
                return sd_fail_nomem(err, "safetensors aligned copy");
            memcpy(c, p, e->nbytes);
            f->copies[f->n_copies++] = c;
            p = c;
        }
        e->t.data = (void *)p; /* read-only by contract; the mapping is PROT_READ */
    }
    return SD_OK;
}

static sd_status parse_into(sd_st_file *f, const uint8_t *buf, size_t size, const char *what,
                            sd_error *err)
{
    if (size == 0)
        return sd_fail(err, SD_ERR_FORMAT, "%s: empty file", what);
    if (size < 8)
        return sd_fail(err, SD_ERR_FORMAT,
                       "%s: %zu bytes is too short for a safetensors file (truncated?)", what,
                       size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    if (hlen > SD_ST_MAX_HEADER)
        return sd_fail(err, SD_ERR_FORMAT,
                       "%s: header length %llu exceeds the %zu MiB cap (not a safetensors "
                       "file?)", what, (unsigned long long)hlen, SD_ST_MAX_HEADER >> 20);
    if (hlen > size - 8)
        return sd_fail(err, SD_ERR_FORMAT,
                       "%s: header length %llu runs past the end of the file (%zu bytes; "
                       "truncated?)", what, (unsigned long long)hlen, size);
    const uint8_t *data = buf + 8 + hlen;
    size_t data_size = size - 8 - (size_t)hlen;

    sd_json *root = NULL;
    sd_status st = sd_json_parse((const char *)buf + 8, (size_t)hlen, &root, err);
    if (st == SD_ERR_FORMAT)
        return sd_fail_prefix(err, st, "%s: safetensors header", what);
    if (st != SD_OK)
        return st;
    if (root->type != SD_JSON_OBJECT) {
        st = sd_fail(err, SD_ERR_FORMAT, "%s: safetensors header is not a JSON object", what);
        goto out;
    }

    /* Sizes of everything, then one arena for all strings. */
    const sd_json *meta = NULL;
    size_t arena = 0;
    for (size_t i = 0; i < root->n; i++) {
        const sd_json *k = &root->keys[i];
        for (size_t c = 0; c < k->len; c++) {
            if ((unsigned char)k->str[c] < 0x20 || k->str[c] == 0x7F) {
                st = sd_fail(err, SD_ERR_FORMAT,
                             "%s: tensor name with a control character (byte %zu)", what, c);
                goto out;
            }
        }
        if (!strcmp(k->str, "__metadata__")) {
            meta = &root->items[i];
            continue;
        }
        f->n++;
        arena += k->len + 1;
    }
    if (meta) {
        if (!check_meta(meta)) {
            st = sd_fail(err, SD_ERR_FORMAT,
                         "%s: __metadata__ is not an object of string values (keys without "
                         "NUL)", what);
            goto out;
        }
        emitter m = {0};
        emit_meta(&m, meta);
        arena += m.n + 1;
        for (size_t i = 0; i < meta->n; i++)
            arena += meta->keys[i].len + 1 + meta->items[i].len + 1;
    }

    f->entries = sd_calloc(f->n ? f->n : 1, sizeof *f->entries);
    f->arena = sd_malloc(arena ? arena : 1);
    if (meta && meta->n)
        f->meta_keys = sd_calloc(2 * meta->n, sizeof *f->meta_keys);
    if (!f->entries || !f->arena || (meta && meta->n && !f->meta_keys)) {
        st = sd_fail_nomem(err, "safetensors header");
        goto out;
    }
    char *a = f->arena;
    size_t j = 0;
    for (size_t i = 0; i < root->n; i++) {
        const sd_json *k = &root->keys[i];
        if (&root->items[i] == meta)
            continue;
        st = parse_entry(what, k->str, &root->items[i], data_size, &f->entries[j], err);
        if (st != SD_OK)
            goto out;
        memcpy(a, k->str, k->len + 1);
        f->entries[j++].name = a;
        a += k->len + 1;
    }
    if (meta) {
        /* keys in sorted order (meta->sorted) so sd_st_meta can bsearch */
        f->n_meta = meta->n;
        f->meta_values = f->meta_keys + meta->n;
        for (size_t i = 0; i < meta->n; i++) {
            uint32_t s = meta->sorted[i];
            memcpy(a, meta->keys[s].str, meta->keys[s].len + 1);
            f->meta_keys[i] = a;
            a += meta->keys[s].len + 1;
            memcpy(a, meta->items[s].str, meta->items[s].len + 1);
            f->meta_values[i] = a;
            a += meta->items[s].len + 1;
        }
        emitter m = {a, 0};
        emit_meta(&m, meta);
        a[m.n] = 0;
        f->metadata_json = a;
    }

    /* Byte ranges must not overlap: sort by (begin, size) and sweep. */
    qsort(f->entries, f->n, sizeof *f->entries, cmp_offset);
    size_t reach = 0;
    const char *reach_name = NULL;
    for (size_t i = 0; i < f->n; i++) {
        const sd_st_entry *e = &f->entries[i];
        if (e->offset < reach) {
            st = sd_fail(err, SD_ERR_FORMAT,
                         "%s: tensors '%.60s' and '%.60s' overlap in the data section", what,
                         reach_name, e->name);
            goto out;
        }
        if (e->offset + e->nbytes > reach || !reach_name) {
            reach = e->offset + e->nbytes;
            reach_name = e->name;
        }
    }
    qsort(f->entries, f->n, sizeof *f->entries, cmp_name);
    st = attach_data(f, data, err);
out:
    sd_json_free(root);
    return st;
}

static void free_file(sd_st_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_copies; i++)
        sd_free(f->copies[i]);
    sd_free(f->copies);
    sd_free(f->entries);
    sd_free(f->arena);
    sd_free(f->meta_keys);
    if (f->map)
        munmap(f->map, f->map_size);
    sd_free(f);
}

sd_status sd_st_parse(const void *buf, size_t size, const char *what, sd_st_file **out,
                      sd_error *err)
{
    *out = NULL;
    sd_st_file *f = sd_calloc(1, sizeof *f);
    if (!f)
        return sd_fail_nomem(err, "safetensors");
    sd_status st = parse_into(f, buf, size, what ? what : "buffer", err);
    if (st != SD_OK) {
        free_file(f);
        return st;
    }
    *out = f;
    return SD_OK;
}

sd_status sd_st_open(const char *path, sd_st_file **out, sd_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sd_fail(err, SD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return sd_fail(err, SD_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return sd_fail(err, SD_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return sd_fail(err, SD_ERR_IO, "%s: cannot map: %s", path, strerror(e));
        }
    }
    close(fd);
    sd_st_file *f = sd_calloc(1, sizeof *f);
    if (!f) {
        if (map)
            munmap(map, size);
        return sd_fail_nomem(err, "safetensors");
    }
    f->map = map;
    f->map_size = size;
    sd_status st = parse_into(f, map, size, path, err);
    if (st != SD_OK) {
        free_file(f);
        return st;
    }
    *out = f;
    return SD_OK;
}

void sd_st_close(sd_st_file *f)
{
    free_file(f);
}

const sd_st_entry *sd_st_find(const sd_st_file *f, const char *name)
{
    if (!f || !f->n)
        return NULL;
    return bsearch(name, f->entries, f->n, sizeof *f->entries, cmp_key_entry);
}

const sd_tensor *sd_st_tensor(const sd_st_file *f, const char *name)
{
    const sd_st_entry *e = sd_st_find(f, name);
    return e && e->usable ? &e->t : NULL;
}

sd_status sd_st_get(const sd_st_file *f, const char *name, const sd_tensor **out,
                    sd_error *err)
{
    *out = NULL;
    const sd_st_entry *e = sd_st_find(f, name);
    if (!e)
        return sd_fail(err, SD_ERR_FORMAT, "no tensor '%.160s'", name);
    if (!e->usable)
        return sd_fail(err, SD_ERR_UNSUPPORTED,
                       "tensor '%.120s' has dtype %s and %d dims (usable: F32 F16 BF16 I64 "
                       "I32 U8, at most %d dims)", name, e->dtype_name, e->ndim, SD_MAX_DIMS);
    *out = &e->t;
    return SD_OK;
}

static int cmp_key_str(const void *key, const void *item)
{
    return strcmp(key, *(const char *const *)item);
}

const char *sd_st_meta(const sd_st_file *f, const char *key)
{
    if (!f || !f->n_meta)
        return NULL;
    const char **k = bsearch(key, f->meta_keys, f->n_meta, sizeof *f->meta_keys, cmp_key_str);
    return k ? f->meta_values[k - f->meta_keys] : NULL;
}

/* ==== writing ==========================================================================
 * A streaming writer: the header (names, dtypes, shapes, offsets) is written first, then the
 * data of each tensor in name order, so a caller never needs all tensors in memory at once.
 * sd_st_write is the all-in-memory convenience on top of it. */

typedef struct write_item {
    const char *name;     /* the caller's string while checking, then the writer's copy */
    size_t index;         /* position in the caller's arrays */
    sd_dtype dtype;
    int ndim;
    int64_t shape[SD_MAX_DIMS];
    size_t nbytes;
} write_item;

struct sd_st_writer {
    FILE *fp;
    char *path, *tmp;
    write_item *items;    /* sorted by name */
    char *names;          /* copies of the names (for messages) */
    size_t n;
    size_t cur, done;     /* tensor being written and its bytes written so far */
    int io_errno;         /* a failed write: every later call fails */
};

static int cmp_item(const void *a, const void *b)
{
    return strcmp(((const write_item *)a)->name, ((const write_item *)b)->name);
}

static bool is_contiguous(const sd_tensor *t)
{
    int64_t want = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != want)
            return false;
        want *= t->shape[i];
    }
    return true;
}

/* Write the elements of t in row-major order, following its strides. */
static bool write_data(FILE *fp, const sd_tensor *t, size_t nbytes)
{
    if (nbytes == 0)
        return true;
    if (is_contiguous(t))
        return fwrite(t->data, 1, nbytes, fp) == nbytes;
    size_t es = sd_dtype_size(t->dtype);
    int64_t sh[SD_MAX_DIMS] = {1, 1, 1, 1}, sr[SD_MAX_DIMS] = {0, 0, 0, 0};
    int off = SD_MAX_DIMS - t->ndim;
    for (int i = 0; i < t->ndim; i++)
        sh[off + i] = t->shape[i], sr[off + i] = t->stride[i];
    const char *base = t->data;
    for (int64_t a = 0; a < sh[0]; a++)
        for (int64_t b = 0; b < sh[1]; b++)
            for (int64_t c = 0; c < sh[2]; c++)
                for (int64_t d = 0; d < sh[3]; d++) {
                    int64_t el = a * sr[0] + b * sr[1] + c * sr[2] + d * sr[3];
                    if (fwrite(base + el * (int64_t)es, 1, es, fp) != es)
                        return false;
                }
    return true;
}

static void emit_header(emitter *e, const write_item *items, size_t n, const sd_json *meta)
{
    emit(e, "{");
    if (meta) {
        emit(e, "\"__metadata__\":");
        emit_meta(e, meta);
        if (n)
            emit(e, ",");
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (i)
            emit(e, ",");
        emit_str(e, items[i].name, strlen(items[i].name));
        emit(e, ":{\"dtype\":\"");
        emit(e, sd_dtype_name(items[i].dtype));
        emit(e, "\",\"shape\":[");
        for (int d = 0; d < items[i].ndim; d++) {
            if (d)
                emit(e, ",");
            emit_u64(e, (uint64_t)items[i].shape[d]);
        }
        emit(e, "],\"data_offsets\":[");
        emit_u64(e, off);
        emit(e, ",");
        off += items[i].nbytes;
        emit_u64(e, off);
        emit(e, "]}");
    }
    emit(e, "}");
}

/* Check the declared tensors and fill items (sorted by name). */
static sd_status check_write_args(const char *const *names, const sd_tensor *tensors, size_t n,
                                  write_item *items, sd_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const sd_tensor *t = &tensors[i];
        if (!names[i] || !strcmp(names[i], "__metadata__"))
            return sd_fail(err, SD_ERR_INVALID_ARG, "safetensors write: bad tensor name");
        if ((unsigned)t->dtype >= SD_DTYPE_COUNT || t->ndim < 0 || t->ndim > SD_MAX_DIMS)
            return sd_fail(err, SD_ERR_INVALID_ARG,
                           "safetensors write: tensor '%.80s' has a bad dtype or ndim", names[i]);
        size_t bytes = sd_dtype_size(t->dtype);
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] < 0 || !sd_mul_ok(bytes, (size_t)t->shape[d], &bytes))
                return sd_fail(err, SD_ERR_INVALID_ARG,
                               "safetensors write: tensor '%.80s' has a bad shape", names[i]);
        if (!sd_add_ok(total, bytes, &total))
            return sd_fail(err, SD_ERR_INVALID_ARG, "safetensors write: data size overflows");
        items[i] = (write_item){.name = names[i], .index = i, .dtype = t->dtype,
                                .ndim = t->ndim, .nbytes = bytes};
        memcpy(items[i].shape, t->shape, sizeof items[i].shape);
    }
    qsort(items, n, sizeof *items, cmp_item);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(items[i - 1].name, items[i].name))
            return sd_fail(err, SD_ERR_INVALID_ARG, "safetensors write: duplicate name '%.80s'",
                           items[i].name);
    return SD_OK;
}

/* The header bytes (length prefix, JSON padded with spaces to a multiple of 8). */
static sd_status build_header(const write_item *items, size_t n, const char *metadata_json,
                              char **out, size_t *len, sd_error *err)
{
    sd_json *meta = NULL;
    *out = NULL;
    if (metadata_json) {
        sd_status st = sd_json_parse(metadata_json, strlen(metadata_json), &meta, err);
        if (st == SD_ERR_FORMAT) {
            sd_fail_prefix(err, st, "safetensors write: metadata");
            if (err)
                err->code = SD_ERR_INVALID_ARG;
            return SD_ERR_INVALID_ARG;
        }
        if (st != SD_OK)
            return st;
        if (!check_meta(meta)) {
            sd_json_free(meta);
            return sd_fail(err, SD_ERR_INVALID_ARG,
                           "safetensors write: metadata is not an object of string values "
                           "(keys without NUL)");
        }
    }
    emitter e = {0};
    emit_header(&e, items, n, meta);
    size_t hlen = (e.n + 7) / 8 * 8;
    char *header = sd_malloc(8 + hlen);
    if (!header) {
        sd_json_free(meta);
        return sd_fail_nomem(err, "safetensors write");
    }
    for (int i = 0; i < 8; i++)
        header[i] = (char)(((uint64_t)hlen >> (8 * i)) & 0xFF);
    e = (emitter){header + 8, 0};
    emit_header(&e, items, n, meta);
    memset(header + 8 + e.n, ' ', hlen - e.n);
    sd_json_free(meta);
    *out = header;
    *len = 8 + hlen;
    return SD_OK;
}

static void free_writer(sd_st_writer *w)
{
    if (w->fp) {
        fclose(w->fp);
        remove(w->tmp);
    }
    sd_free(w->items);
    sd_free(w->names);
    sd_free(w->path);
    sd_free(w->tmp);
    sd_free(w);
}

/* Skip past finished (and empty) tensors. */
static void advance(sd_st_writer *w)
{
    while (w->cur < w->n && w->done == w->items[w->cur].nbytes) {
        w->cur++;
        w->done = 0;
    }
}

static sd_status io_fail(sd_st_writer *w, sd_error *err)
{
    if (!w->io_errno)
        w->io_errno = errno ? errno : EIO;
    return sd_fail(err, SD_ERR_IO, "%s: cannot write: %s", w->tmp, strerror(w->io_errno));
}

sd_status sd_st_writer_begin(const char *path, const char *const *names,
                             const sd_tensor *tensors, size_t n, const char *metadata_json,
                             sd_st_writer **out, sd_error *err)
{
    *out = NULL;
    char *header = NULL;
    size_t hlen = 0, plen = strlen(path);
    sd_st_writer *w = sd_calloc(1, sizeof *w);
    if (!w)
        return sd_fail_nomem(err, "safetensors write");
    w->n = n;
    w->items = sd_calloc(n ? n : 1, sizeof *w->items);
    w->path = sd_malloc(plen + 1);
    w->tmp = sd_malloc(plen + 5);
    sd_status st;
    if (!w->items || !w->path || !w->tmp) {
        st = sd_fail_nomem(err, "safetensors write");
        goto fail;
    }
    memcpy(w->path, path, plen + 1);
    memcpy(w->tmp, path, plen);
    memcpy(w->tmp + plen, ".tmp", 5);
    if ((st = check_write_args(names, tensors, n, w->items, err)) != SD_OK ||
        (st = build_header(w->items, n, metadata_json, &header, &hlen, err)) != SD_OK)
        goto fail;
    size_t names_len = 1;
    for (size_t i = 0; i < n; i++)
        names_len += strlen(w->items[i].name) + 1;
    if (!(w->names = sd_malloc(names_len))) {
        st = sd_fail_nomem(err, "safetensors write");
        goto fail;
    }
    char *a = w->names;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(w->items[i].name) + 1;
        memcpy(a, w->items[i].name, k);
        w->items[i].name = a;
        a += k;
    }
    w->fp = fopen(w->tmp, "wb");
    if (!w->fp) {
        st = sd_fail(err, SD_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
        goto fail;
    }
    setvbuf(w->fp, NULL, _IOFBF, (size_t)1 << 20);
    if (fwrite(header, 1, hlen, w->fp) != hlen) {
        st = io_fail(w, err);
        goto fail;
    }
    sd_free(header);
    advance(w);
    *out = w;
    return SD_OK;
fail:
    sd_free(header);
    free_writer(w);
    return st;
}

size_t sd_st_writer_next(const sd_st_writer *w)
{
    return w->cur < w->n ? w->items[w->cur].index : SIZE_MAX;
}

sd_status sd_st_writer_put(sd_st_writer *w, const sd_tensor *t, sd_error *err)
{
    if (w->io_errno)
        return io_fail(w, err);
    if (w->cur >= w->n)
        return sd_fail(err, SD_ERR_INVALID_ARG, "safetensors write: every tensor is written");
    const write_item *it = &w->items[w->cur];
    bool same = t->dtype == it->dtype && t->ndim == it->ndim;
    for (int d = 0; same && d < t->ndim; d++)
        same = t->shape[d] == it->shape[d];
    if (!same || w->done)
        return sd_fail(err, SD_ERR_INVALID_ARG, "safetensors write: tensor '%.80s' %s",
                       it->name, w->done ? "is partly written already"
                                         : "is put with another dtype or shape than declared");
    if (it->nbytes && !t->data)
        return sd_fail(err, SD_ERR_INVALID_ARG, "safetensors write: tensor '%.80s' has no data",
                       it->name);
    if (!write_data(w->fp, t, it->nbytes))
        return io_fail(w, err);
    w->done = it->nbytes;
    advance(w);
    return SD_OK;
}

sd_status sd_st_writer_bytes(sd_st_writer *w, const void *data, size_t n, sd_error *err)
{
    if (w->io_errno)
        return io_fail(w, err);
    const char *p = data;
    while (n > 0) {
        if (w->cur >= w->n)
            return sd_fail(err, SD_ERR_INVALID_ARG,
                           "safetensors write: more data than the tensors declared");
        size_t k = SD_MIN(n, w->items[w->cur].nbytes - w->done);
        if (fwrite(p, 1, k, w->fp) != k)
            return io_fail(w, err);
        w->done += k;
        p += k;
        n -= k;
        advance(w);
    }
    return SD_OK;
}

sd_status sd_st_writer_finish(sd_st_writer *w, sd_error *err)
{
    sd_status st = SD_OK;
    if (w->io_errno) {
        st = io_fail(w, err);
    } else if (w->cur < w->n) {
        st = sd_fail(err, SD_ERR_INVALID_ARG,
                     "safetensors write: %s: finished before the data of '%.80s' (%zu of %zu "
                     "tensors complete)", w->path, w->items[w->cur].name, w->cur, w->n);
    } else {
        FILE *fp = w->fp;
        w->fp = NULL;
        errno = 0;
        if (fclose(fp) != 0 || rename(w->tmp, w->path) != 0) {
            int e = errno ? errno : EIO;
            remove(w->tmp);
            st = sd_fail(err, SD_ERR_IO, "%s: cannot write: %s", w->path, strerror(e));
        }
    }
    free_writer(w);
    return st;
}

void sd_st_writer_abort(sd_st_writer *w)
{
    if (w)
        free_writer(w);
}

sd_status sd_st_write(const char *path, const char *const *names, const sd_tensor *tensors,
                      size_t n, const char *metadata_json, sd_error *err)
{
    sd_st_writer *w = NULL;
    sd_status st = sd_st_writer_begin(path, names, tensors, n, metadata_json, &w, err);
    if (st != SD_OK)
        return st;
    size_t i;
    while ((i = sd_st_writer_next(w)) != SIZE_MAX) {
        if ((st = sd_st_writer_put(w, &tensors[i], err)) != SD_OK) {
            sd_st_writer_abort(w);
            return st;
        }
    }
    return sd_st_writer_finish(w, err);
}
