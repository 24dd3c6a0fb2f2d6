/* internal/safetensors.h - reading and writing .safetensors files: an 8-byte little-endian
 * header length, a JSON header naming every tensor (dtype, shape, byte range) and the raw
 * little-endian data.  Files come from the internet, so the whole header is validated (caps,
 * types, sizes, overlap) before any tensor byte is looked at; afterwards every tensor is a
 * read-only view into the mapped file.  Used by the model loader, the tests (golden case
 * files) and the CLI (writing embeddings, converting models). */
#ifndef SD_INTERNAL_SAFETENSORS_H
#define SD_INTERNAL_SAFETENSORS_H

#include "internal/common.h"

/* Hard caps on untrusted headers. */
#define SD_ST_MAX_HEADER ((size_t)100 << 20) /* bytes of JSON header */
#define SD_ST_MAX_NDIM 8                     /* dims a tensor may declare at all */

/* One tensor of a file.  Every field is read-only and lives as long as the file.
 *
 * Dtypes: F32 F16 BF16 I64 I32 U8 with at most SD_MAX_DIMS dims are "usable": `t` is a view
 * (t.owned false) of the data.  The other dtypes of the safetensors format (F64, I8, I16,
 * U16, U32, U64, BOOL, F8_E4M3, F8_E5M2) and tensors of 5..SD_ST_MAX_NDIM dims are accepted
 * and fully validated but "not usable": `t` is all zero and sd_st_get reports
 * SD_ERR_UNSUPPORTED; their bytes are still there, as stored, at `raw` (e.g. a golden case's
 * 5-D reference output or F64 values).  Any other dtype string is SD_ERR_FORMAT. */
typedef struct sd_st_entry {
    const char *name;
    const char *dtype_name;   /* as spelled in the file, e.g. "F16", "F64" */
    bool usable;
    int ndim;                 /* as declared (may exceed SD_MAX_DIMS when !usable) */
    sd_tensor t;              /* usable: contiguous view; otherwise zeroed */
    size_t offset, nbytes;    /* byte range relative to the start of the data section */
    const void *raw;          /* those nbytes bytes as stored (little-endian, any alignment) */
} sd_st_entry;

/* An open file.  Fields are read-only for users. */
typedef struct sd_st_file {
    size_t n;                 /* tensors (the __metadata__ entry is not one) */
    sd_st_entry *entries;     /* sorted by name (strcmp) */
    size_t n_meta;            /* __metadata__ members, sorted by key */
    const char **meta_keys;
    const char **meta_values; /* NUL-terminated (a value with an escaped \u0000 is cut there) */
    const char *metadata_json;/* the __metadata__ object re-serialised as compact JSON, or NULL */
    /* private */
    void *map;
    size_t map_size;
    char *arena;
    void **copies;            /* aligned copies of tensors whose data was misaligned */
    size_t n_copies;
} sd_st_file;

/* Open `path`, mmap it read-only (MAP_PRIVATE) and validate its header: the header length
 * (<= SD_ST_MAX_HEADER and within the file), well-formed JSON, every entry an object with a
 * known dtype, a shape of non-negative integers (<= SD_ST_MAX_NDIM dims) whose byte size
 * (checked for overflow) equals its data_offsets [begin, end] range, ranges inside the data
 * section and not overlapping, and an optional __metadata__ object of string values.  Holes
 * between ranges are allowed.  A tensor whose data is not aligned to its element size is
 * copied into an aligned buffer owned by the file (never the case for files written by the
 * usual tools).  On success *out owns the mapping; close with sd_st_close.
 * Errors: SD_ERR_IO (cannot open/stat/map; not a regular file), SD_ERR_FORMAT (the message
 * names the file and what is wrong), SD_ERR_NOMEM.  On error *out is NULL.  Thread: any. */
sd_status sd_st_open(const char *path, sd_st_file **out, sd_error *err);

/* The same validation on `size` bytes at `buf` (e.g. a fuzzer's input).  The file keeps
 * pointers into buf, which must stay valid and unchanged until sd_st_close.  `what` names
 * the source in error messages (may be NULL: "buffer").  Errors as sd_st_open minus IO. */
sd_status sd_st_parse(const void *buf, size_t size, const char *what, sd_st_file **out,
                      sd_error *err);

/* Unmap and free.  NULL is a no-op.  Views obtained from the file become invalid. */
void sd_st_close(sd_st_file *f);

/* The entry named `name` (binary search), or NULL. */
const sd_st_entry *sd_st_find(const sd_st_file *f, const char *name);

/* The usable tensor named `name`, or NULL when it is absent or not usable. */
const sd_tensor *sd_st_tensor(const sd_st_file *f, const char *name);

/* Required tensor: *out is set, or SD_ERR_FORMAT "no tensor 'name'" or SD_ERR_UNSUPPORTED
 * "tensor 'name' has dtype F64 ..." (err may be NULL). */
sd_status sd_st_get(const sd_st_file *f, const char *name, const sd_tensor **out,
                    sd_error *err);

/* The __metadata__ value for `key`, or NULL. */
const char *sd_st_meta(const sd_st_file *f, const char *key);

/* Write a safetensors file: tensors[i] under names[i] (i < n), in name order, data
 * contiguous and packed (tensors with any strides are gathered), header padded with spaces
 * to a multiple of 8.  metadata_json, if non-NULL, must be a JSON object of string values;
 * it becomes __metadata__.  The file is written to "<path>.tmp" and renamed over path on
 * success, so a failure leaves no partial file at path.
 * names/tensors may be NULL when n is 0.  Errors: SD_ERR_INVALID_ARG (a NULL, duplicate or
 * "__metadata__" name, a bad dtype/ndim/shape, missing data, metadata that is not an object
 * of strings), SD_ERR_IO, SD_ERR_NOMEM.  Thread: any. */
sd_status sd_st_write(const char *path, const char *const *names, const sd_tensor *tensors,
                      size_t n, const char *metadata_json, sd_error *err);

/* Streaming writer: the same file as sd_st_write, but the data is handed over tensor by
 * tensor after the header is written, so the tensors never need to be in memory together
 * (e.g. generated full-size checkpoints).  Usage:
 *
 *     sd_st_writer_begin(path, names, decls, n, meta, &w, err);   // header written
 *     while ((i = sd_st_writer_next(w)) != SIZE_MAX)
 *         sd_st_writer_put(w, &tensor_i, err);    // or sd_st_writer_bytes in chunks
 *     sd_st_writer_finish(w, err);                // closes and renames onto path
 *
 * One writer is used by one thread at a time. */
typedef struct sd_st_writer sd_st_writer;

/* Check the declarations (dtype, ndim, shape of tensors[i] under names[i]; data ignored and
 * may be NULL), build the header and write it to "<path>.tmp".  Names are copied.  Errors as
 * sd_st_write (SD_ERR_INVALID_ARG, SD_ERR_IO, SD_ERR_NOMEM); on error *out is NULL and no
 * file is left. */
sd_status sd_st_writer_begin(const char *path, const char *const *names,
                             const sd_tensor *tensors, size_t n, const char *metadata_json,
                             sd_st_writer **out, sd_error *err);

/* The index (into begin's arrays) of the tensor whose data is due next, or SIZE_MAX when
 * every tensor is complete.  Tensors come in name order; empty ones are skipped. */
size_t sd_st_writer_next(const sd_st_writer *w);

/* Write the whole data of the tensor due next from t (any strides), which must have its
 * declared dtype and shape.  Errors: SD_ERR_INVALID_ARG (no tensor due, another dtype/shape,
 * no data, the tensor already partly written by sd_st_writer_bytes), SD_ERR_IO. */
sd_status sd_st_writer_put(sd_st_writer *w, const sd_tensor *t, sd_error *err);

/* Append n bytes of packed little-endian data; they fill the due tensor and run on into the
 * following ones.  Errors: SD_ERR_INVALID_ARG (more bytes than declared), SD_ERR_IO. */
sd_status sd_st_writer_bytes(sd_st_writer *w, const void *data, size_t n, sd_error *err);

/* Close the file and rename it onto path.  Always frees w.  Errors: SD_ERR_INVALID_ARG
 * (data missing: the file is removed), SD_ERR_IO (an earlier or final write failed: the file
 * is removed). */
sd_status sd_st_writer_finish(sd_st_writer *w, sd_error *err);

/* Stop writing: remove "<path>.tmp" and free w.  NULL is a no-op. */
void sd_st_writer_abort(sd_st_writer *w);

#endif
