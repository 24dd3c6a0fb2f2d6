/* tests/fuzz/fuzz_json.c - libFuzzer target: arbitrary bytes through the strict JSON reader
 * (sd_json_parse).  A refused input must come back as SD_ERR_FORMAT with a message; an
 * accepted tree is walked to its leaves and its invariants checked: nesting within
 * SD_JSON_MAX_DEPTH, strings NUL-terminated at their length, object members reachable by
 * key through sd_json_get, the sorted index a permutation in key order. */
#include "internal/json.h"

#include <string.h>

#define REQUIRE(c) ((c) ? (void)0 : __builtin_trap())

static int cmp_key(const sd_json *a, const sd_json *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->str, b->str, n);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

static void walk(const sd_json *v, int depth)
{
    REQUIRE(depth <= SD_JSON_MAX_DEPTH + 1);
    switch (v->type) {
    case SD_JSON_NULL:
    case SD_JSON_BOOL:
        break;
    case SD_JSON_NUMBER:
        if (v->is_int)
            REQUIRE((double)v->integer == v->number || v->integer > (1LL << 53) ||
                    v->integer < -(1LL << 53));
        break;
    case SD_JSON_STRING:
        REQUIRE(v->str && v->str[v->len] == 0);
        break;
    case SD_JSON_ARRAY:
        for (size_t i = 0; i < v->n; i++) {
            REQUIRE(sd_json_at(v, i) == &v->items[i]);
            walk(&v->items[i], depth + 1);
        }
        REQUIRE(sd_json_at(v, v->n) == NULL);
        break;
    case SD_JSON_OBJECT:
        for (size_t i = 0; i < v->n; i++) {
            const sd_json *k = &v->keys[i];
            REQUIRE(k->type == SD_JSON_STRING && k->str[k->len] == 0);
            if (strlen(k->str) == k->len)
                REQUIRE(sd_json_get(v, k->str) == &v->items[i]);
            walk(&v->items[i], depth + 1);
        }
        for (size_t i = 0; i < v->n; i++) {
            REQUIRE(v->sorted[i] < v->n);
            if (i)
                REQUIRE(cmp_key(&v->keys[v->sorted[i - 1]], &v->keys[v->sorted[i]]) < 0);
        }
        break;
    }
    /* the typed readers never crash on any node */
    (void)sd_json_num(v, 0);
    (void)sd_json_int(v, 0);
    (void)sd_json_bool(v, false);
    (void)sd_json_str(v, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sd_json *root = NULL;
    sd_error err = {0};
    sd_status st = sd_json_parse((const char *)data, size, &root, &err);
    if (st != SD_OK) {
        REQUIRE(root == NULL && err.code == st && err.msg[0]);
        REQUIRE(st == SD_ERR_FORMAT || st == SD_ERR_NOMEM);
        return 0;
    }
    walk(root, 0);
    sd_json_free(root);
    REQUIRE(sd_alloc_live_bytes() == 0);
    return 0;
}
