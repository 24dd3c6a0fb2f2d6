/* tests/pyjson.h - read a golden JSON file written by Python's json module, which spells
 * float infinities as the non-standard tokens Infinity / -Infinity (e.g. diffusers'
 * lambda_min_clipped).  The engine's reader is strict RFC 8259, so the tests blank those
 * tokens to null (outside strings) before parsing. */
#ifndef SD_TEST_PYJSON_H
#define SD_TEST_PYJSON_H

#include "internal/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse `path` with Infinity/-Infinity/NaN values read as null.  Returns NULL (and prints the
 * reason) on failure; free with sd_json_free. */
static inline sd_json *t_pyjson_load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = size > 0 ? malloc((size_t)size) : NULL;
    size_t got = buf ? fread(buf, 1, (size_t)size, f) : 0;
    fclose(f);
    if (!buf || got != (size_t)size) {
        free(buf);
        fprintf(stderr, "cannot read %s\n", path);
        return NULL;
    }
    static const char *const tokens[] = {"-Infinity", "Infinity", "NaN"};
    bool in_string = false;
    for (size_t i = 0; i < got; i++) {
        if (in_string) {
            if (buf[i] == '\\')
                i++;
            else if (buf[i] == '"')
                in_string = false;
            continue;
        }
        if (buf[i] == '"') {
            in_string = true;
            continue;
        }
        for (size_t k = 0; k < sizeof tokens / sizeof tokens[0]; k++) {
            size_t len = strlen(tokens[k]);
            if (got - i >= len && memcmp(buf + i, tokens[k], len) == 0) {
                memset(buf + i, ' ', len);
                memcpy(buf + i, "null", 4);
                i += len - 1;
                break;
            }
        }
    }
    sd_json *root = NULL;
    sd_error err = {0};
    if (sd_json_parse(buf, got, &root, &err) != SD_OK)
        fprintf(stderr, "%s: %s\n", path, err.msg);
    free(buf);
    return root;
}

#endif
