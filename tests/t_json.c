/* tests/t_json.c - the strict JSON reader: values, escapes, lookup, and every class of
 * malformed input rejected with SD_ERR_FORMAT (never a crash). */
#include "harness.h"
#include "internal/json.h"

static sd_status parse(const char *s, sd_json **out)
{
    sd_error err = {0};
    return sd_json_parse(s, strlen(s), out, &err);
}

int main(void)
{
    sd_json *j = NULL;
    CHECK(parse("{\"a\": [1, -2.5e1, true, false, null, \"x\\u00e9\\ud83d\\ude00\"],"
                " \"b\": {\"c\": 18446744073709551615, \"d\": 9007199254740993}}",
                &j) == SD_OK,
          "valid document");
    const sd_json *a = sd_json_get(j, "a");
    CHECK(a && a->type == SD_JSON_ARRAY && a->n == 6, "array");
    CHECK(sd_json_int(sd_json_at(a, 0), 0) == 1, "int");
    CHECK(sd_json_num(sd_json_at(a, 1), 0) == -25.0, "exp");
    CHECK(sd_json_at(a, 1)->is_int == false, "float is not int");
    CHECK(sd_json_bool(sd_json_at(a, 2), false) == true, "true");
    CHECK(sd_json_at(a, 4)->type == SD_JSON_NULL, "null");
    CHECK(strcmp(sd_json_str(sd_json_at(a, 5), ""), "x\xc3\xa9\xf0\x9f\x98\x80") == 0,
          "escapes and surrogate pair");
    const sd_json *b = sd_json_get(j, "b");
    CHECK(sd_json_get(b, "c")->is_int == false, "uint64 max does not fit int64");
    CHECK(sd_json_int(sd_json_get(b, "d"), 0) == 9007199254740993LL, "exact int64");
    CHECK(sd_json_get(j, "zz") == NULL && sd_json_at(a, 6) == NULL, "missing");
    sd_json_free(j);

    static const char *const bad[] = {
        "",          "{",           "{\"a\":1,}",  "[1,]",       "{\"a\" 1}",    "{a:1}",
        "[01]",      "[1.]",        "[.5]",        "[1e]",       "[-]",          "tru",
        "nul",       "\"abc",       "\"\\x\"",     "\"\\u12\"",  "\"\\ud800\"",  "\"\\udc00x\"",
        "\"\x01\"",  "\"\xff\"",    "\"\xc0\x80\"", "\"\xed\xa0\x80\"", "[1] x", "{\"a\":1,\"a\":2}",
        "// c\n1",   "[1 2]",       "{\"a\":}",    "\"\\",
    };
    for (size_t i = 0; i < SD_ARRAY_LEN(bad); i++) {
        j = NULL;
        sd_error err = {0};
        sd_status st = sd_json_parse(bad[i], strlen(bad[i]), &j, &err);
        CHECK(st == SD_ERR_FORMAT && j == NULL && err.msg[0], "bad[%zu] '%s' accepted", i,
              bad[i]);
    }
    /* depth cap */
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    CHECK(sd_json_parse(deep, 200, &j, NULL) == SD_ERR_FORMAT, "nesting cap");
    memset(deep, '[', 60);
    memset(deep + 60, ']', 60);
    CHECK(sd_json_parse(deep, 120, &j, NULL) == SD_OK, "nesting within cap");
    sd_json_free(j);

    /* every allocation failure is reported as NOMEM and leaks nothing */
    const char *doc = "{\"k\": [1, \"two\", {\"x\": null}], \"z\": \"s\"}";
    size_t live = sd_alloc_live_bytes();
    int nomem = 0;
    for (long n = 1;; n++) {
        sd_alloc_fail_after(n, false);
        j = NULL;
        sd_status st = sd_json_parse(doc, strlen(doc), &j, NULL);
        sd_alloc_fail_after(0, false);
        if (st == SD_OK) {
            sd_json_free(j);
            break;
        }
        nomem += st == SD_ERR_NOMEM;
        CHECK(st == SD_ERR_NOMEM && j == NULL, "allocation %ld: status %d", n, st);
    }
    CHECK(nomem > 5, "failure points exercised: %d", nomem);
    CHECK(sd_alloc_live_bytes() == live, "no leaks under allocation failure");
    return t_summary("t_json");
}
