/* internal/json.h - a small strict JSON reader (RFC 8259) for untrusted input: safetensors
 * headers, diffusers config.json files and the golden test sidecars.  It builds a read-only
 * tree; objects with duplicate keys, nesting deeper than SD_JSON_MAX_DEPTH, invalid UTF-8,
 * trailing commas, comments and trailing garbage are all errors. */
#ifndef SD_INTERNAL_JSON_H
#define SD_INTERNAL_JSON_H

#include "internal/common.h"

#define SD_JSON_MAX_DEPTH 64

typedef enum sd_json_type {
    SD_JSON_NULL,
    SD_JSON_BOOL,
    SD_JSON_NUMBER,
    SD_JSON_STRING,
    SD_JSON_ARRAY,
    SD_JSON_OBJECT,
} sd_json_type;

typedef struct sd_json sd_json;
struct sd_json {
    sd_json_type type;
    bool boolean;
    double number;       /* every number */
    bool is_int;         /* the literal had no fraction/exponent and fits int64 */
    int64_t integer;     /* exact value when is_int */
    char *str;           /* STRING: UTF-8, NUL-terminated (may contain \0 if escaped) */
    size_t len;          /* STRING: bytes, without the terminator */
    size_t n;            /* ARRAY/OBJECT: members */
    sd_json *items;      /* ARRAY/OBJECT: the n values, in document order */
    sd_json *keys;       /* OBJECT: the n keys (STRING nodes), parallel to items */
    uint32_t *sorted;    /* OBJECT: member indices sorted by key, for lookup */
};

/* Parse `len` bytes of `text` (need not be NUL-terminated).  On success *out is the root;
 * free it with sd_json_free.  Errors: SD_ERR_FORMAT with the byte offset, SD_ERR_NOMEM. */
sd_status sd_json_parse(const char *text, size_t len, sd_json **out, sd_error *err);
void sd_json_free(sd_json *root);

/* Parse a whole file (at most max_bytes). Errors as above plus SD_ERR_IO. */
sd_status sd_json_parse_file(const char *path, size_t max_bytes, sd_json **out, sd_error *err);

/* Member `key` of an object, or NULL (also when obj is NULL or not an object). */
const sd_json *sd_json_get(const sd_json *obj, const char *key);
/* Item i of an array, or NULL. */
const sd_json *sd_json_at(const sd_json *arr, size_t i);

/* Convenience readers: return `def` when the node is missing or of another type. */
double sd_json_num(const sd_json *v, double def);
int64_t sd_json_int(const sd_json *v, int64_t def);
bool sd_json_bool(const sd_json *v, bool def);
const char *sd_json_str(const sd_json *v, const char *def);

#endif
