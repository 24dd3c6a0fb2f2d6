/* json.c - the strict JSON reader declared in internal/json.h.  Recursive descent over a
 * byte range with an explicit depth cap; every value is a node allocated with sd_malloc so
 * the allocation-failure tests cover it.  Written for untrusted input: safetensors headers
 * come from files of unknown origin. */
#include "internal/json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const unsigned char *p, *end, *start;
    sd_error *err;
    sd_status st;
} parser;

static sd_status fail(parser *ps, const char *what)
{
    if (ps->st == SD_OK)
        ps->st = sd_fail(ps->err, SD_ERR_FORMAT, "JSON: %s at byte %zu", what,
                         (size_t)(ps->p - ps->start));
    return ps->st;
}

static sd_status nomem(parser *ps)
{
    if (ps->st == SD_OK)
        ps->st = sd_fail_nomem(ps->err, "JSON");
    return ps->st;
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static void free_node(sd_json *v)
{
    if (v->type == SD_JSON_STRING) {
        sd_free(v->str);
    } else if (v->type == SD_JSON_ARRAY || v->type == SD_JSON_OBJECT) {
        for (size_t i = 0; i < v->n; i++) {
            free_node(&v->items[i]);
            if (v->keys)
                free_node(&v->keys[i]);
        }
        sd_free(v->items);
        sd_free(v->keys);
        sd_free(v->sorted);
    }
    memset(v, 0, sizeof *v);
}

/* Append a UTF-8 encoding of code point c. */
static size_t put_utf8(unsigned char *o, uint32_t c)
{
    if (c < 0x80) {
        o[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (unsigned char)(0xC0 | (c >> 6));
        o[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (c >> 12));
        o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (c >> 18));
    o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

/* Length of a valid UTF-8 sequence starting at p (< end), or 0 if invalid. */
static size_t utf8_valid(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) {
        n = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static int hex4(const unsigned char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return 0;
    }
    *out = v;
    return 1;
}

static sd_status parse_string(parser *ps, sd_json *v)
{
    ps->p++; /* opening quote */
    /* Output is never longer than the input span: escapes shrink or keep length. */
    const unsigned char *q = ps->p;
    while (q < ps->end && *q != '"') {
        if (*q == '\\')
            q++;
        q++;
    }
    if (q >= ps->end)
        return fail(ps, "unterminated string");
    size_t cap = (size_t)(q - ps->p) + 1;
    unsigned char *o = sd_malloc(cap);
    if (!o)
        return nomem(ps);
    size_t n = 0;
    while (*ps->p != '"') {
        unsigned c = *ps->p;
        if (c < 0x20) {
            sd_free(o);
            return fail(ps, "control character in string");
        }
        if (c != '\\') {
            size_t k = utf8_valid(ps->p, ps->end);
            if (!k) {
                sd_free(o);
                return fail(ps, "invalid UTF-8 in string");
            }
            memcpy(o + n, ps->p, k);
            n += k;
            ps->p += k;
            continue;
        }
        ps->p++;
        c = *ps->p++;
        switch (c) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (ps->end - ps->p < 4 || !hex4(ps->p, &cp)) {
                sd_free(o);
                return fail(ps, "bad \\u escape");
            }
            ps->p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
                    !hex4(ps->p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    sd_free(o);
                    return fail(ps, "unpaired surrogate");
                }
                ps->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                sd_free(o);
                return fail(ps, "unpaired surrogate");
            }
            /* \uXXXX (6 bytes) -> at most 3 bytes; a pair (12) -> 4: always fits. */
            n += put_utf8(o + n, cp);
            break;
        }
        default:
            sd_free(o);
            return fail(ps, "bad escape");
        }
    }
    ps->p++; /* closing quote */
    o[n] = 0;
    v->type = SD_JSON_STRING;
    v->str = (char *)o;
    v->len = n;
    return SD_OK;
}

static sd_status parse_number(parser *ps, sd_json *v)
{
    const unsigned char *s = ps->p;
    bool integral = true;
    if (ps->p < ps->end && *ps->p == '-')
        ps->p++;
    if (ps->p >= ps->end)
        return fail(ps, "bad number");
    if (*ps->p == '0') {
        ps->p++;
    } else if (*ps->p >= '1' && *ps->p <= '9') {
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    } else {
        return fail(ps, "bad number");
    }
    if (ps->p < ps->end && *ps->p == '.') {
        integral = false;
        ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return fail(ps, "bad number");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        integral = false;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return fail(ps, "bad number");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    char buf[64];
    size_t n = (size_t)(ps->p - s);
    if (n >= sizeof buf) {
        /* Very long literals: only their double value matters, and only integers that fit
         * int64 (<= 20 chars) are exact anyway. */
        char *tmp = sd_malloc(n + 1);
        if (!tmp)
            return nomem(ps);
        memcpy(tmp, s, n);
        tmp[n] = 0;
        v->number = strtod(tmp, NULL);
        sd_free(tmp);
        v->type = SD_JSON_NUMBER;
        return SD_OK;
    }
    memcpy(buf, s, n);
    buf[n] = 0;
    v->type = SD_JSON_NUMBER;
    v->number = strtod(buf, NULL);
    if (integral) {
        errno = 0;
        long long ll = strtoll(buf, NULL, 10);
        if (errno == 0) {
            v->is_int = true;
            v->integer = ll;
        }
    }
    return SD_OK;
}

static sd_status parse_value(parser *ps, sd_json *v, int depth);

static const sd_json *key_of(const sd_json *obj, uint32_t i)
{
    return &obj->keys[i];
}

static int key_cmp(const sd_json *a, const sd_json *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->str, b->str, n);
    if (c)
        return c;
    return (a->len > b->len) - (a->len < b->len);
}

/* Insertion into a sorted index would be O(n^2); sort once with a merge sort instead. */
static void sort_members(const sd_json *obj, uint32_t *idx, uint32_t *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    sort_members(obj, idx, tmp, h);
    sort_members(obj, idx + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = key_cmp(key_of(obj, idx[i]), key_of(obj, idx[j])) <= 0 ? idx[i++] : idx[j++];
    while (i < h)
        tmp[k++] = idx[i++];
    while (j < n)
        tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

static sd_status grow(parser *ps, sd_json **arr, size_t n, size_t *cap)
{
    if (n < *cap)
        return SD_OK;
    size_t nc = *cap ? *cap * 2 : 8, bytes;
    if (!sd_mul_ok(nc, sizeof **arr, &bytes) || nc > UINT32_MAX)
        return fail(ps, "too many members");
    sd_json *na = sd_realloc(*arr, bytes);
    if (!na)
        return nomem(ps);
    memset(na + *cap, 0, (nc - *cap) * sizeof *na);
    *arr = na;
    *cap = nc;
    return SD_OK;
}

static sd_status parse_container(parser *ps, sd_json *v, int depth, bool is_obj)
{
    char close = is_obj ? '}' : ']';
    size_t cap = 0, kcap = 0;
    v->type = is_obj ? SD_JSON_OBJECT : SD_JSON_ARRAY;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return SD_OK;
    }
    for (;;) {
        if (grow(ps, &v->items, v->n, &cap))
            return ps->st;
        if (is_obj) {
            if (grow(ps, &v->keys, v->n, &kcap))
                return ps->st;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != '"')
                return fail(ps, "expected a key");
            if (parse_string(ps, &v->keys[v->n]))
                return ps->st;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                v->n++; /* so the key is freed */
                return fail(ps, "expected ':'");
            }
            ps->p++;
        }
        sd_status st = parse_value(ps, &v->items[v->n], depth + 1);
        v->n++;
        if (st)
            return st;
        skip_ws(ps);
        if (ps->p >= ps->end)
            return fail(ps, "unterminated container");
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == close) {
            ps->p++;
            break;
        }
        return fail(ps, "expected ',' or end of container");
    }
    if (is_obj) {
        v->sorted = sd_malloc(v->n * sizeof *v->sorted);
        uint32_t *tmp = sd_malloc(v->n * sizeof *tmp);
        if (!v->sorted || !tmp) {
            sd_free(tmp);
            return nomem(ps);
        }
        for (size_t i = 0; i < v->n; i++)
            v->sorted[i] = (uint32_t)i;
        sort_members(v, v->sorted, tmp, v->n);
        sd_free(tmp);
        for (size_t i = 1; i < v->n; i++)
            if (key_cmp(key_of(v, v->sorted[i - 1]), key_of(v, v->sorted[i])) == 0)
                return fail(ps, "duplicate key");
    }
    return SD_OK;
}

static bool literal(parser *ps, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0)
        return false;
    ps->p += n;
    return true;
}

static sd_status parse_value(parser *ps, sd_json *v, int depth)
{
    if (depth > SD_JSON_MAX_DEPTH)
        return fail(ps, "nesting too deep");
    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail(ps, "unexpected end");
    switch (*ps->p) {
    case '{': return parse_container(ps, v, depth, true);
    case '[': return parse_container(ps, v, depth, false);
    case '"': return parse_string(ps, v);
    case 't':
        if (!literal(ps, "true"))
            return fail(ps, "bad literal");
        v->type = SD_JSON_BOOL;
        v->boolean = true;
        return SD_OK;
    case 'f':
        if (!literal(ps, "false"))
            return fail(ps, "bad literal");
        v->type = SD_JSON_BOOL;
        return SD_OK;
    case 'n':
        if (!literal(ps, "null"))
            return fail(ps, "bad literal");
        v->type = SD_JSON_NULL;
        return SD_OK;
    default:
        return parse_number(ps, v);
    }
}

sd_status sd_json_parse(const char *text, size_t len, sd_json **out, sd_error *err)
{
    *out = NULL;
    parser ps = {(const unsigned char *)text, (const unsigned char *)text + len,
                 (const unsigned char *)text, err, SD_OK};
    sd_json *root = sd_calloc(1, sizeof *root);
    if (!root)
        return sd_fail_nomem(err, "JSON");
    if (parse_value(&ps, root, 0) == SD_OK) {
        skip_ws(&ps);
        if (ps.p != ps.end)
            fail(&ps, "trailing characters");
    }
    if (ps.st != SD_OK) {
        sd_json_free(root);
        return ps.st;
    }
    *out = root;
    return SD_OK;
}

void sd_json_free(sd_json *root)
{
    if (!root)
        return;
    free_node(root);
    sd_free(root);
}

sd_status sd_json_parse_file(const char *path, size_t max_bytes, sd_json **out, sd_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sd_fail(err, SD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    sd_status st = SD_OK;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        st = sd_fail(err, SD_ERR_IO, "%s: cannot seek", path);
        goto out;
    }
    long size = ftell(f);
    if (size < 0 || (size_t)size > max_bytes) {
        st = sd_fail(err, SD_ERR_FORMAT, "%s: JSON file larger than %zu bytes", path, max_bytes);
        goto out;
    }
    rewind(f);
    buf = sd_malloc((size_t)size + 1);
    if (!buf) {
        st = sd_fail_nomem(err, "JSON file");
        goto out;
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        st = sd_fail(err, SD_ERR_IO, "%s: read error", path);
        goto out;
    }
    st = sd_json_parse(buf, (size_t)size, out, err);
    if (st != SD_OK)
        sd_fail_prefix(err, st, "%s", path);
out:
    sd_free(buf);
    fclose(f);
    return st;
}

const sd_json *sd_json_get(const sd_json *obj, const char *key)
{
    if (!obj || obj->type != SD_JSON_OBJECT)
        return NULL;
    sd_json k = {.type = SD_JSON_STRING, .str = (char *)key, .len = strlen(key)};
    size_t lo = 0, hi = obj->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = key_cmp(key_of(obj, obj->sorted[mid]), &k);
        if (c == 0)
            return &obj->items[obj->sorted[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const sd_json *sd_json_at(const sd_json *arr, size_t i)
{
    if (!arr || arr->type != SD_JSON_ARRAY || i >= arr->n)
        return NULL;
    return &arr->items[i];
}

double sd_json_num(const sd_json *v, double def)
{
    return v && v->type == SD_JSON_NUMBER ? v->number : def;
}

int64_t sd_json_int(const sd_json *v, int64_t def)
{
    return v && v->type == SD_JSON_NUMBER && v->is_int ? v->integer : def;
}

bool sd_json_bool(const sd_json *v, bool def)
{
    return v && v->type == SD_JSON_BOOL ? v->boolean : def;
}

const char *sd_json_str(const sd_json *v, const char *def)
{
    return v && v->type == SD_JSON_STRING ? v->str : def;
}
