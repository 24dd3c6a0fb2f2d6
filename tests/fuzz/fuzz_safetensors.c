/* tests/fuzz/fuzz_safetensors.c - libFuzzer target: arbitrary bytes as a .safetensors file.
 * sd_st_parse must either refuse them with SD_ERR_FORMAT/SD_ERR_NOMEM and a message, or
 * accept them; an accepted file is then walked completely (every entry found by name, every
 * usable tensor's bytes read, every metadata key looked up, the re-serialised metadata
 * parsed back) and its invariants checked, so a view that points outside the input or a
 * header that validates but lies is caught by ASan or by the trap below. */
#include "internal/json.h"
#include "internal/safetensors.h"

#include <string.h>

#define REQUIRE(c) ((c) ? (void)0 : __builtin_trap())

static volatile uint8_t sink;

static void walk(const sd_st_file *f, const uint8_t *buf, size_t size)
{
    for (size_t i = 0; i < f->n; i++) {
        const sd_st_entry *e = &f->entries[i];
        REQUIRE(i == 0 || strcmp(f->entries[i - 1].name, e->name) < 0);
        REQUIRE(sd_st_find(f, e->name) == e);
        REQUIRE(e->ndim >= 0 && e->ndim <= SD_ST_MAX_NDIM);
        REQUIRE(e->nbytes <= size);
        const sd_tensor *t = NULL;
        sd_status st = sd_st_get(f, e->name, &t, NULL);
        if (!e->usable) {
            REQUIRE(st == SD_ERR_UNSUPPORTED && t == NULL);
            continue;
        }
        REQUIRE(st == SD_OK && t == &e->t);
        REQUIRE((size_t)sd_tensor_numel(t) * sd_dtype_size(t->dtype) == e->nbytes);
        const uint8_t *p = t->data;
        /* a view into the input, or an aligned copy owned by the file */
        if (p >= buf && p < buf + size)
            REQUIRE(e->nbytes <= (size_t)(buf + size - p));
        REQUIRE((uintptr_t)p % sd_dtype_size(t->dtype) == 0);
        uint8_t acc = 0;
        for (size_t k = 0; k < e->nbytes; k++)
            acc ^= p[k];
        sink = acc;
    }
    for (size_t i = 0; i < f->n_meta; i++)
        REQUIRE(sd_st_meta(f, f->meta_keys[i]) == f->meta_values[i]);
    if (f->metadata_json) {
        sd_json *m = NULL;
        REQUIRE(sd_json_parse(f->metadata_json, strlen(f->metadata_json), &m, NULL) == SD_OK);
        REQUIRE(m->type == SD_JSON_OBJECT && m->n == f->n_meta);
        sd_json_free(m);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sd_st_file *f = NULL;
    sd_error err = {0};
    sd_status st = sd_st_parse(data, size, "fuzz", &f, &err);
    if (st != SD_OK) {
        REQUIRE(f == NULL && err.code == st && err.msg[0]);
        REQUIRE(st == SD_ERR_FORMAT || st == SD_ERR_NOMEM);
        return 0;
    }
    walk(f, data, size);
    sd_st_close(f);
    REQUIRE(sd_alloc_live_bytes() == 0);
    return 0;
}
