/* tests/t_safetensors.c - the safetensors reader and writer: a write/read round trip (dtypes,
 * scalars, empty and strided tensors, metadata, misaligned data), the golden files, every
 * class of malformed header rejected with SD_ERR_FORMAT and a message, allocation failures
 * during parsing and writing reported as SD_ERR_NOMEM without leaks, and the streaming
 * writer (tensor order, chunked data, misuse). */
#include "harness.h"
#include "model_util.h"
#include "internal/safetensors.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* A safetensors image in memory: 8-byte length, header, `data_len` bytes of 0xAB. */
static unsigned char *mk(const char *header, size_t data_len, size_t *size)
{
    size_t h = strlen(header);
    *size = 8 + h + data_len;
    unsigned char *b = malloc(*size + 1);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    memset(b + 8 + h, 0xAB, data_len);
    return b;
}

static sd_status parse_mem(const char *header, size_t data_len, sd_st_file **out,
                           sd_error *err)
{
    size_t size;
    unsigned char *b = mk(header, data_len, &size);
    sd_st_file *f = NULL;
    sd_status st = sd_st_parse(b, size, "mem", &f, err);
    if (out && st == SD_OK) {
        *out = f; /* caller only inspects metadata/shapes; data pointers die with b */
    } else {
        sd_st_close(f);
    }
    free(b);
    return st;
}

static void test_roundtrip(void)
{
    float m[2][3] = {{1, 2, 3}, {4, 5, 6}};
    uint16_t h[4] = {0x3C00, 0x4000, 0xC000, 0x7BFF};
    int64_t ids[2] = {49406, -7};
    uint8_t u[5] = {1, 2, 3, 4, 255};
    float scalar = 0.18215f;
    sd_tensor t[6];
    memset(t, 0, sizeof t);
    t[0] = (sd_tensor){SD_DTYPE_F32, 2, {2, 3}, {3, 1}, m, false};
    /* the transpose of m: a strided view the writer has to gather */
    t[1] = (sd_tensor){SD_DTYPE_F32, 2, {3, 2}, {1, 3}, m, false};
    t[2] = (sd_tensor){SD_DTYPE_F16, 1, {4}, {1}, h, false};
    t[3] = (sd_tensor){SD_DTYPE_I64, 1, {2}, {1}, ids, false};
    t[4] = (sd_tensor){SD_DTYPE_U8, 1, {5}, {1}, u, false};
    t[5] = (sd_tensor){SD_DTYPE_F32, 0, {0}, {0}, &scalar, false};
    sd_tensor empty = {SD_DTYPE_BF16, 2, {0, 3}, {3, 1}, NULL, false};
    /* "a.u8" (5 bytes) sorts first, so "b.scalar" lands at offset 5: misaligned */
    const char *names[7] = {"c.m", "c.mt", "d.h", "e.ids", "a.u8", "b.scalar", "f.empty"};
    sd_tensor all[7];
    memcpy(all, t, sizeof t);
    all[6] = empty;
    const char *meta = "{\"format\": \"pt\", \"golden\": \"{\\\"x\\\": [1, \\\"\\u00e9\\\"]}\"}";
    sd_error err = {0};
    const char *path = t_tmp("rt.safetensors");
    sd_status st = sd_st_write(path, names, all, 7, meta, &err);
    CHECK(st == SD_OK, "write: %s", err.msg);
    CHECK(access(t_tmp("rt.safetensors.tmp"), F_OK) != 0, "temporary file renamed");

    /* raw layout: header length a multiple of 8, padded with spaces */
    FILE *fp = fopen(path, "rb");
    unsigned char raw[8];
    CHECK(fp && fread(raw, 1, 8, fp) == 8, "read raw");
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | raw[i];
    CHECK(hl % 8 == 0, "header length %llu padded to 8", (unsigned long long)hl);
    char *hdr = calloc(1, hl + 1);
    CHECK(fread(hdr, 1, hl, fp) == hl, "read header");
    CHECK(hdr[0] == '{', "header starts with {");
    fclose(fp);
    free(hdr);

    sd_st_file *f = NULL;
    st = sd_st_open(path, &f, &err);
    CHECK(st == SD_OK && f, "reopen: %s", err.msg);
    if (!f)
        return;
    CHECK(f->n == 7, "7 tensors, got %zu", f->n);
    for (size_t i = 1; i < f->n; i++)
        CHECK(strcmp(f->entries[i - 1].name, f->entries[i].name) < 0, "entries sorted");
    const sd_tensor *g = sd_st_tensor(f, "c.m");
    CHECK(g && g->dtype == SD_DTYPE_F32 && g->ndim == 2 && g->shape[0] == 2 &&
              g->shape[1] == 3 && g->stride[0] == 3 && g->stride[1] == 1 && !g->owned,
          "c.m shape");
    CHECK(g && !memcmp(g->data, m, sizeof m), "c.m data");
    g = sd_st_tensor(f, "c.mt");
    float mt[6] = {1, 4, 2, 5, 3, 6};
    CHECK(g && g->shape[0] == 3 && g->shape[1] == 2 && !memcmp(g->data, mt, sizeof mt),
          "strided tensor gathered");
    g = sd_st_tensor(f, "d.h");
    CHECK(g && g->dtype == SD_DTYPE_F16 && !memcmp(g->data, h, sizeof h), "f16 data");
    g = sd_st_tensor(f, "e.ids");
    CHECK(g && g->dtype == SD_DTYPE_I64 && !memcmp(g->data, ids, sizeof ids), "i64 data");
    g = sd_st_tensor(f, "a.u8");
    CHECK(g && g->dtype == SD_DTYPE_U8 && !memcmp(g->data, u, sizeof u), "u8 data");
    g = sd_st_tensor(f, "b.scalar");
    CHECK(g && g->ndim == 0 && sd_tensor_numel(g) == 1 && *(const float *)g->data == scalar,
          "scalar");
    CHECK(g && (uintptr_t)g->data % 4 == 0, "misaligned tensor copied to an aligned buffer");
    CHECK(sd_st_find(f, "b.scalar")->offset == 5, "scalar stored at offset 5");
    g = sd_st_tensor(f, "f.empty");
    CHECK(g && g->dtype == SD_DTYPE_BF16 && g->shape[0] == 0 && sd_tensor_numel(g) == 0,
          "empty tensor");
    CHECK(sd_st_tensor(f, "zz") == NULL && sd_st_find(f, "c") == NULL, "missing names");
    const sd_tensor *need = NULL;
    sd_error e2 = {0};
    CHECK(sd_st_get(f, "nope", &need, &e2) == SD_ERR_FORMAT && !need &&
              strstr(e2.msg, "nope"), "sd_st_get missing: %s", e2.msg);
    CHECK(sd_st_get(f, "d.h", &need, NULL) == SD_OK && need == sd_st_tensor(f, "d.h"),
          "sd_st_get present");
    CHECK(sd_st_meta(f, "format") && !strcmp(sd_st_meta(f, "format"), "pt"), "meta format");
    CHECK(sd_st_meta(f, "golden") && !strcmp(sd_st_meta(f, "golden"), "{\"x\": [1, \"\xc3\xa9\"]}"),
          "meta golden: %s", sd_st_meta(f, "golden") ? sd_st_meta(f, "golden") : "(null)");
    CHECK(sd_st_meta(f, "nope") == NULL, "meta missing");
    CHECK(f->metadata_json &&
              !strcmp(f->metadata_json,
                      "{\"format\":\"pt\",\"golden\":\"{\\\"x\\\": [1, \\\"\xc3\xa9\\\"]}\"}"),
          "metadata_json: %s", f->metadata_json ? f->metadata_json : "(null)");
    sd_st_close(f);

    /* a second write of the same tensors gives the same bytes (deterministic) */
    const char *path2 = t_tmp("rt2.safetensors");
    CHECK(sd_st_write(path2, names, all, 7, meta, &err) == SD_OK, "write 2");
    FILE *a = fopen(path, "rb"), *b = fopen(path2, "rb");
    int same = a && b;
    for (int ca = 0, cb = 0; same && (ca = fgetc(a)) != EOF;)
        same = (cb = fgetc(b)) == ca;
    same = same && fgetc(b) == EOF;
    CHECK(same, "deterministic output");
    if (a)
        fclose(a);
    if (b)
        fclose(b);
    remove(path2);

    /* writer argument errors */
    const char *dup[2] = {"x", "x"};
    sd_tensor two[2] = {t[4], t[4]};
    CHECK(sd_st_write(path2, dup, two, 2, NULL, &err) == SD_ERR_INVALID_ARG &&
              strstr(err.msg, "duplicate"), "duplicate names: %s", err.msg);
    const char *md[1] = {"__metadata__"};
    CHECK(sd_st_write(path2, md, two, 1, NULL, &err) == SD_ERR_INVALID_ARG, "reserved name");
    const char *one[1] = {"x"};
    CHECK(sd_st_write(path2, one, two, 1, "{\"a\": 1}", &err) == SD_ERR_INVALID_ARG,
          "non-string metadata: %s", err.msg);
    CHECK(sd_st_write(path2, one, two, 1, "{\"a\": ", &err) == SD_ERR_INVALID_ARG,
          "bad metadata JSON: %s", err.msg);
    CHECK(sd_st_write(path2, one, two, 1, "{\"a\\u0000b\": \"v\"}", &err) ==
              SD_ERR_INVALID_ARG && strstr(err.msg, "NUL"), "NUL in a metadata key: %s",
          err.msg);
    sd_tensor bad = t[0];
    bad.ndim = 5;
    CHECK(sd_st_write(path2, one, &bad, 1, NULL, &err) == SD_ERR_INVALID_ARG, "bad ndim");
    CHECK(sd_st_write(t_tmp("no/such/dir.safetensors"), one, two, 1, NULL, &err) ==
              SD_ERR_IO, "unwritable path: %s", err.msg);
    CHECK(access(path2, F_OK) != 0, "nothing written on errors");
    remove(path);

    /* a file with no tensors at all is valid */
    CHECK(sd_st_write(path2, NULL, NULL, 0, NULL, &err) == SD_OK, "empty write");
    CHECK(sd_st_open(path2, &f, &err) == SD_OK && f->n == 0 && !f->metadata_json &&
              !sd_st_find(f, "x"), "empty reopen");
    sd_st_close(f);
    remove(path2);
}

static void test_golden(void)
{
    sd_error err = {0};
    sd_st_file *f = NULL;
    CHECK(sd_st_open(t_data("tiny-sd15/unet.safetensors"), &f, &err) == SD_OK, "%s", err.msg);
    CHECK(f && sd_st_meta(f, "golden") != NULL, "golden metadata present");
    const sd_tensor *s = sd_st_tensor(f, "sample");
    CHECK(s && s->dtype == SD_DTYPE_F32 && s->ndim == 4 && s->shape[0] == 2 &&
              s->shape[1] == 4 && s->shape[2] == 16 && s->shape[3] == 16,
          "unet case 'sample' [2,4,16,16]");
    sd_st_close(f);
    f = NULL;
    CHECK(sd_st_open(t_data("tiny-sd15/model-f16.safetensors"), &f, &err) == SD_OK, "%s",
          err.msg);
    const sd_tensor *w = sd_st_tensor(f, "model.diffusion_model.input_blocks.0.0.weight");
    CHECK(w && w->dtype == SD_DTYPE_F16 && w->ndim == 4 && w->shape[0] == 32 &&
              w->shape[1] == 4, "tiny-sd15 conv_in [32,4,3,3]");
    const sd_tensor *pid = sd_st_tensor(
        f, "cond_stage_model.transformer.text_model.embeddings.position_ids");
    CHECK(pid && pid->dtype == SD_DTYPE_I64 && ((const int64_t *)pid->data)[76] == 76,
          "position_ids int64");
    sd_st_close(f);
}

typedef struct bad_case {
    const char *header;
    size_t data_len;
    const char *expect; /* substring of the message */
} bad_case;

static void test_malformed(void)
{
    static const bad_case cases[] = {
        {"{\"a\":", 0, "JSON"},
        {"[1,2]", 0, "not a JSON object"},
        {"", 0, "JSON"},
        {"{\"a\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, "needs 8 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "needs 4 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "past the data"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]}}", 8, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8, "begin 8 > end 4"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
         "\"data_offsets\":[0,0]}}", 0, "overflows"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1e30],\"data_offsets\":[0,4]}}", 4, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", 4,
         "shape[0]"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
         "9 dimensions"},
        {"{\"a\":5}", 0, "not an object"},
        {"{\"a\":[]}", 0, "not an object"},
        {"{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, "shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, "2 numbers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}}", 4,
         "data_offsets[1]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
         "data_offsets[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"b\":0}}}", 4,
         "data_offsets"},
        {"{\"__metadata__\":{\"a\":1}}", 0, "__metadata__"},
        {"{\"__metadata__\":[\"a\"]}", 0, "__metadata__"},
        /* keys that are one C string: sd_st_meta could not tell them apart (caught by
         * fuzz_safetensors' lookup invariant) */
        {"{\"__metadata__\":{\"a\\u0000x\":\"1\",\"a\\u0000y\":\"2\"}}", 0, "NUL"},
        {"{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
         "control character"},
        {"{\"a\\nb\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
         "control character"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
         "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "JSON"},
        {"{\"a\":{\"dtype\":\"F16\\u0000\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2, "dtype"},
    };
    for (size_t i = 0; i < SD_ARRAY_LEN(cases); i++) {
        sd_error err = {0};
        sd_status st = parse_mem(cases[i].header, cases[i].data_len, NULL, &err);
        CHECK(st == SD_ERR_FORMAT && strstr(err.msg, cases[i].expect) &&
                  strncmp(err.msg, "mem: ", 5) == 0,
              "case %zu: status %s, message '%s' (want '%s')", i, sd_status_str(st), err.msg,
              cases[i].expect);
    }

    /* framing: short buffers and lying header lengths */
    unsigned char small[8] = {0};
    sd_st_file *f = NULL;
    sd_error err = {0};
    CHECK(sd_st_parse(small, 0, "x", &f, &err) == SD_ERR_FORMAT && strstr(err.msg, "empty"),
          "empty: %s", err.msg);
    CHECK(sd_st_parse(small, 5, "x", &f, &err) == SD_ERR_FORMAT && strstr(err.msg, "short"),
          "5 bytes: %s", err.msg);
    size_t size;
    unsigned char *b = mk("{}", 0, &size);
    b[0] = 3; /* claims 3 header bytes; the file holds 2 */
    CHECK(sd_st_parse(b, size, "x", &f, &err) == SD_ERR_FORMAT && strstr(err.msg, "past the end"),
          "header length > file: %s", err.msg);
    b[0] = 0, b[5] = 1; /* 2^40 */
    CHECK(sd_st_parse(b, size, "x", &f, &err) == SD_ERR_FORMAT && strstr(err.msg, "cap"),
          "giant header length: %s", err.msg);
    memset(b, 0xFF, 8);
    CHECK(sd_st_parse(b, size, "x", &f, &err) == SD_ERR_FORMAT && strstr(err.msg, "cap"),
          "header length 2^64-1: %s", err.msg);
    free(b);
    CHECK(f == NULL, "no file on errors");

    /* truncation of a real file at many points: always a clean FORMAT error */
    FILE *fp = fopen(t_data("tiny-sd15/unet.safetensors"), "rb");
    unsigned char *whole = malloc(1 << 20);
    size_t n = fp ? fread(whole, 1, 1 << 20, fp) : 0;
    if (fp)
        fclose(fp);
    CHECK(n > 1000 && n < (1 << 20), "read unet case file (%zu bytes)", n);
    int ok = 0, total = 0;
    for (size_t cut = 0; cut < n; cut += 1 + cut / 3) {
        total++;
        sd_status st = sd_st_parse(whole, cut, "cut", &f, &err);
        ok += st == SD_ERR_FORMAT && f == NULL;
    }
    CHECK(ok == total, "truncated copies rejected: %d of %d", ok, total);
    CHECK(sd_st_parse(whole, n, "whole", &f, &err) == SD_OK, "untruncated parses");
    sd_st_close(f);
    /* flipped header bytes: never a crash, FORMAT or OK */
    int fine = 0;
    for (size_t i = 8; i < 400; i += 3) {
        unsigned char keep = whole[i];
        whole[i] ^= 0x5A;
        f = NULL;
        sd_status st = sd_st_parse(whole, n, "flip", &f, &err);
        fine += (st == SD_OK || st == SD_ERR_FORMAT) && (st == SD_OK) == (f != NULL);
        sd_st_close(f);
        whole[i] = keep;
    }
    CHECK(fine == 131, "bit flips handled: %d", fine);
    free(whole);

    /* known-but-unusable dtypes and ranks are accepted, then refused on access */
    f = NULL;
    CHECK(parse_mem("{\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                    "\"r\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,2],\"data_offsets\":[16,18]},"
                    "\"z1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[18,18]},"
                    "\"z2\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[18,18]}}",
                    20, &f, &err) == SD_OK, "unusable entries parse: %s", err.msg);
    if (f) {
        const sd_tensor *t = NULL;
        CHECK(sd_st_find(f, "d") && !sd_st_find(f, "d")->usable &&
                  !strcmp(sd_st_find(f, "d")->dtype_name, "F64") && !sd_st_tensor(f, "d"),
              "F64 not usable");
        CHECK(sd_st_get(f, "d", &t, &err) == SD_ERR_UNSUPPORTED && strstr(err.msg, "F64"),
              "F64 refused: %s", err.msg);
        CHECK(sd_st_get(f, "r", &t, &err) == SD_ERR_UNSUPPORTED && strstr(err.msg, "5 dims"),
              "5 dims refused: %s", err.msg);
        CHECK(sd_st_tensor(f, "z1") && sd_st_tensor(f, "z2"), "zero-size tensors share offsets");
    }
    sd_st_close(f);
    /* ... and their bytes are there as stored */
    size_t rsize;
    unsigned char *rb = mk("{\"r\":{\"dtype\":\"F64\",\"shape\":[1,1,1,1,2],"
                           "\"data_offsets\":[8,24]}}", 24, &rsize);
    for (int i = 0; i < 24; i++)
        rb[rsize - 24 + i] = (unsigned char)(i * 7);
    f = NULL;
    CHECK(sd_st_parse(rb, rsize, "raw", &f, &err) == SD_OK && !f->entries[0].usable &&
              f->entries[0].nbytes == 16 && f->entries[0].raw == rb + rsize - 16,
          "raw bytes of an unusable entry: %s", err.msg);
    sd_st_close(f);
    free(rb);

    /* files on disk */
    CHECK(sd_st_open(t_tmp("missing.safetensors"), &f, &err) == SD_ERR_IO && !f,
          "missing file: %s", err.msg);
    CHECK(sd_st_open(t_tmp_dir, &f, &err) == SD_ERR_IO && strstr(err.msg, "regular"),
          "directory: %s", err.msg);
    const char *ep = t_tmp("empty.safetensors");
    fp = fopen(ep, "wb");
    if (fp)
        fclose(fp);
    CHECK(sd_st_open(ep, &f, &err) == SD_ERR_FORMAT && strstr(err.msg, "empty") &&
              strstr(err.msg, ep), "empty file: %s", err.msg);
    remove(ep);
}

static void test_nomem(void)
{
    /* parse: a small file with metadata and a misaligned tensor (aligned copy) */
    size_t size;
    unsigned char *b = mk("{\"__metadata__\":{\"k\":\"v\",\"q\":\"w\"},"
                          "\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[3,11]}}",
                          11, &size);
    size_t live = sd_alloc_live_bytes();
    int nomem = 0;
    for (long n = 1;; n++) {
        sd_st_file *f = NULL;
        sd_error err = {0};
        sd_alloc_fail_after(n, false);
        sd_status st = sd_st_parse(b, size, "mem", &f, &err);
        sd_alloc_fail_after(0, false);
        if (st == SD_OK) {
            CHECK(sd_st_tensor(f, "b") && f->n_copies == 1 && !strcmp(sd_st_meta(f, "q"), "w"),
                  "parsed after %ld failures", n - 1);
            sd_st_close(f);
            break;
        }
        nomem++;
        CHECK(st == SD_ERR_NOMEM && f == NULL && err.code == SD_ERR_NOMEM,
              "parse allocation %ld: %s", n, err.msg);
    }
    CHECK(nomem > 10, "parse failure points exercised: %d", nomem);
    CHECK(sd_alloc_live_bytes() == live, "no leaks under parse allocation failure");
    free(b);

    /* write */
    float v[3] = {1, 2, 3};
    sd_tensor t = {SD_DTYPE_F32, 1, {3}, {1}, v, false};
    const char *names[1] = {"v"};
    const char *path = t_tmp("nomem.safetensors");
    nomem = 0;
    for (long n = 1;; n++) {
        sd_alloc_fail_after(n, false);
        sd_status st = sd_st_write(path, names, &t, 1, "{\"k\":\"v\"}", NULL);
        sd_alloc_fail_after(0, false);
        if (st == SD_OK)
            break;
        nomem++;
        CHECK(st == SD_ERR_NOMEM && access(path, F_OK) != 0, "write allocation %ld", n);
    }
    CHECK(nomem > 3, "write failure points exercised: %d", nomem);
    CHECK(sd_alloc_live_bytes() == live, "no leaks under write allocation failure");
    remove(path);
}

/* The streaming writer: tensor order, chunked bytes, equality with sd_st_write, misuse. */
static void test_streaming(void)
{
    float fb[2][3] = {{1, 2, 3}, {4, 5, 6}};
    uint16_t ha[4] = {0x3C00, 0x4000, 0xC000, 0x7BFF};
    int64_t sc = -42;
    const char *names[4] = {"b", "a", "e", "c"};
    sd_tensor t[4] = {
        {SD_DTYPE_F32, 2, {2, 3}, {3, 1}, fb, false},
        {SD_DTYPE_F16, 1, {4}, {1}, ha, false},
        {SD_DTYPE_U8, 2, {0, 3}, {3, 1}, NULL, false},
        {SD_DTYPE_I64, 0, {0}, {0}, &sc, false},
    };
    const char *ref = t_tmp("stream-ref.safetensors"), *path = t_tmp("stream.safetensors");
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    sd_error err = {0};
    CHECK(sd_st_write(ref, names, t, 4, "{\"k\":\"v\"}", &err) == SD_OK, "ref: %s", err.msg);

    /* declarations without data; tensors due in name order, the empty one skipped */
    sd_tensor decl[4];
    memcpy(decl, t, sizeof decl);
    for (int i = 0; i < 4; i++)
        decl[i].data = NULL;
    sd_st_writer *w = NULL;
    CHECK(sd_st_writer_begin(path, names, decl, 4, "{\"k\":\"v\"}", &w, &err) == SD_OK,
          "begin: %s", err.msg);
    CHECK(access(tmp, F_OK) == 0 && access(path, F_OK) != 0, "header goes to .tmp");
    CHECK(sd_st_writer_next(w) == 1, "a first");
    CHECK(sd_st_writer_put(w, &t[0], &err) == SD_ERR_INVALID_ARG && strstr(err.msg, "'a'"),
          "put of the wrong tensor: %s", err.msg);
    CHECK(sd_st_writer_put(w, &t[1], &err) == SD_OK, "put a");
    CHECK(sd_st_writer_next(w) == 0, "b next");
    CHECK(sd_st_writer_bytes(w, fb, 5, &err) == SD_OK && sd_st_writer_next(w) == 0,
          "b in part");
    CHECK(sd_st_writer_put(w, &t[0], &err) == SD_ERR_INVALID_ARG && strstr(err.msg, "partly"),
          "put after bytes: %s", err.msg);
    CHECK(sd_st_writer_bytes(w, (char *)fb + 5, 19, &err) == SD_OK, "rest of b");
    CHECK(sd_st_writer_next(w) == 3, "c next (e is empty)");
    sd_tensor nodata = t[3];
    nodata.data = NULL;
    CHECK(sd_st_writer_put(w, &nodata, &err) == SD_ERR_INVALID_ARG &&
              strstr(err.msg, "no data"), "put without data: %s", err.msg);
    CHECK(sd_st_writer_put(w, &t[3], &err) == SD_OK, "put c");
    CHECK(sd_st_writer_next(w) == SIZE_MAX, "all due written");
    CHECK(sd_st_writer_bytes(w, &sc, 1, &err) == SD_ERR_INVALID_ARG, "bytes past the end: %s",
          err.msg);
    CHECK(sd_st_writer_put(w, &t[3], &err) == SD_ERR_INVALID_ARG, "put past the end");
    CHECK(sd_st_writer_finish(w, &err) == SD_OK, "finish: %s", err.msg);
    CHECK(t_same_file(ref, path), "streamed file equals sd_st_write's");
    CHECK(access(tmp, F_OK) != 0, "no .tmp left");
    remove(path);

    /* all the data in one call spanning every tensor */
    unsigned char all[8 + 24 + 8];
    memcpy(all, ha, 8);
    memcpy(all + 8, fb, 24);
    memcpy(all + 32, &sc, 8);
    CHECK(sd_st_writer_begin(path, names, decl, 4, "{\"k\":\"v\"}", &w, &err) == SD_OK,
          "begin 2");
    CHECK(sd_st_writer_bytes(w, all, sizeof all, &err) == SD_OK, "one chunk: %s", err.msg);
    CHECK(sd_st_writer_finish(w, &err) == SD_OK && t_same_file(ref, path), "one chunk file");
    remove(path);

    /* finishing early or aborting leaves no file */
    CHECK(sd_st_writer_begin(path, names, decl, 4, NULL, &w, &err) == SD_OK, "begin 3");
    CHECK(sd_st_writer_bytes(w, all, 12, &err) == SD_OK, "part");
    CHECK(sd_st_writer_finish(w, &err) == SD_ERR_INVALID_ARG && strstr(err.msg, "'b'"),
          "early finish: %s", err.msg);
    CHECK(access(path, F_OK) != 0 && access(tmp, F_OK) != 0, "no file after early finish");
    CHECK(sd_st_writer_begin(path, names, decl, 4, NULL, &w, &err) == SD_OK, "begin 4");
    sd_st_writer_abort(w);
    sd_st_writer_abort(NULL);
    CHECK(access(path, F_OK) != 0 && access(tmp, F_OK) != 0, "no file after abort");

    /* declaration errors: nothing created */
    const char *dup[2] = {"x", "x"};
    CHECK(sd_st_writer_begin(path, dup, decl, 2, NULL, &w, &err) == SD_ERR_INVALID_ARG &&
              w == NULL, "duplicate: %s", err.msg);
    CHECK(sd_st_writer_begin(t_tmp("no/dir.safetensors"), names, decl, 4, NULL, &w, &err) ==
              SD_ERR_IO && w == NULL, "unwritable: %s", err.msg);
    CHECK(access(tmp, F_OK) != 0, "nothing created on errors");

    /* allocation failures in begin */
    size_t live = sd_alloc_live_bytes();
    int nomem = 0;
    for (long n = 1;; n++) {
        sd_alloc_fail_after(n, false);
        sd_status st = sd_st_writer_begin(path, names, decl, 4, "{\"k\":\"v\"}", &w, NULL);
        sd_alloc_fail_after(0, false);
        if (st == SD_OK)
            break;
        nomem++;
        CHECK(st == SD_ERR_NOMEM && !w && access(tmp, F_OK) != 0, "begin allocation %ld", n);
    }
    sd_st_writer_abort(w);
    CHECK(nomem >= 5, "begin failure points exercised: %d", nomem);
    CHECK(sd_alloc_live_bytes() == live, "no leaks under begin allocation failure");
    remove(ref);
}

int main(void)
{
    t_tmp_fresh("t_safetensors");
    test_roundtrip();
    test_golden();
    test_malformed();
    test_nomem();
    test_streaming();
    return t_summary("t_safetensors");
}
