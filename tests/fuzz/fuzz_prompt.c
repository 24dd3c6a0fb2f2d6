/* tests/fuzz/fuzz_prompt.c - libFuzzer target: arbitrary bytes as a prompt, through the CLIP
 * tokenizer (sd_tokenizer_encode on the raw bytes, NULs included; sd_tokenizer_window) and
 * the A1111 prompt-weight parser and chunker (sd_prompt_tokenize).  The first byte picks the
 * SD1 or SD2 convention, the rest is the text.  Checked: a refusal is SD_ERR_INVALID_ARG
 * with a message and happens exactly when the bytes are not UTF-8 (by an independent
 * RFC 3629 check) or, for the parser, when a weight is not a number or not a finite float;
 * every id is in the vocabulary; windows are bos, tokens, eos, padding of the mode with
 * finite weights (1 outside the tokens); text without any prompt syntax tokenizes to the
 * same ids through the parser as through the tokenizer, all at weight 1; nothing leaks. */
#include "internal/tokenizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(c) ((c) ? (void)0 : __builtin_trap())

static sd_tokenizer *tok;
static size_t live_base;

/* Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_ok(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t b = s[i];
        size_t k;
        uint32_t c, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            k = 2, c = b & 0x1F, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            k = 3, c = b & 0x0F, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            k = 4, c = b & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < k)
            return false;
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            c = c << 6 | (s[i + j] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return false;
        i += k;
    }
    return true;
}

static void check_ids(const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        REQUIRE(ids[i] >= 0 && ids[i] < SD_TOK_VOCAB);
}

/* Parts of a window after its tokens: eos, then the mode's padding. */
static void check_tail(const int32_t *ids, size_t used, sd_tok_mode mode)
{
    REQUIRE(used >= 2 && used <= SD_TOK_WINDOW);
    REQUIRE(ids[0] == SD_TOK_BOS && ids[used - 1] == SD_TOK_EOS);
    for (size_t i = used; i < SD_TOK_WINDOW; i++)
        REQUIRE(ids[i] == (mode == SD_TOK_SD2 ? 0 : SD_TOK_EOS));
}

/* Does the text use any of the prompt syntax (brackets, weights, escapes, BREAK)? */
static bool has_syntax(const char *s)
{
    return strpbrk(s, "()[]:\\") || strstr(s, "BREAK");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!tok) {
        REQUIRE(sd_tokenizer_new(&tok, NULL) == SD_OK);
        live_base = sd_alloc_live_bytes();
    }
    if (size < 1)
        return 0;
    const sd_tok_mode mode = data[0] & 1 ? SD_TOK_SD2 : SD_TOK_SD1;
    const char *text = (const char *)data + 1;
    const size_t len = size - 1;
    const bool valid = utf8_ok(data + 1, len);
    sd_error err = {0};

    /* 1. the raw bytes, embedded NULs included */
    int32_t *ids = (int32_t *)&err;
    size_t n = 1;
    sd_status st = sd_tokenizer_encode(tok, mode, text, len, &ids, &n, &err);
    if (st != SD_OK) {
        REQUIRE(ids == NULL && n == 0 && err.code == st && err.msg[0]);
        REQUIRE(st == SD_ERR_INVALID_ARG && !valid);
    } else {
        REQUIRE(valid && (n == 0) == (ids == NULL));
        check_ids(ids, n);
    }
    sd_free(ids);

    /* 2. the same up to the first NUL, as the C-string APIs see it */
    char *z = malloc(len + 1);
    REQUIRE(z);
    memcpy(z, text, len);
    z[len] = 0;
    const size_t zlen = strlen(z);
    const bool zvalid = utf8_ok((const uint8_t *)z, zlen);
    sd_tok_window win;
    err = (sd_error){0};
    st = sd_tokenizer_window(tok, mode, z, &win, &err);
    ids = NULL;
    n = 0;
    if (st == SD_OK) {
        REQUIRE(zvalid);
        check_ids(win.ids, SD_TOK_WINDOW);
        check_tail(win.ids, win.n_tokens, mode);
        REQUIRE(win.n_untruncated >= win.n_tokens);
        REQUIRE(sd_tokenizer_encode(tok, mode, z, zlen, &ids, &n, NULL) == SD_OK);
        REQUIRE(win.n_untruncated == n + 2 && win.n_tokens == SD_MIN(n, 75) + 2);
        REQUIRE(n == 0 || !memcmp(win.ids + 1, ids, (win.n_tokens - 2) * sizeof *ids));
    } else {
        REQUIRE(st == SD_ERR_INVALID_ARG && !zvalid && err.msg[0]);
    }

    /* 3. the A1111 syntax and the windows */
    sd_prompt_tokens pt;
    memset(&pt, 0xA5, sizeof pt);
    err = (sd_error){0};
    st = sd_prompt_tokenize(tok, mode, z, &pt, &err);
    if (st != SD_OK) {
        REQUIRE(st == SD_ERR_INVALID_ARG && err.code == st && err.msg[0]);
        REQUIRE(!zvalid || strstr(err.msg, "weight"));
        REQUIRE(!pt.ids && !pt.weights && !pt.n_chunks && !pt.n_tokens);
    } else {
        REQUIRE(zvalid && pt.n_chunks >= 1 && pt.ids && pt.weights);
        REQUIRE(pt.n_tokens <= pt.n_chunks * SD_TOK_CHUNK);
        for (size_t c = 0; c < pt.n_chunks; c++) {
            const int32_t *wi = pt.ids + c * SD_TOK_WINDOW;
            const float *ww = pt.weights + c * SD_TOK_WINDOW;
            check_ids(wi, SD_TOK_WINDOW);
            REQUIRE(wi[0] == SD_TOK_BOS && ww[0] == 1.0f);
            REQUIRE(wi[SD_TOK_WINDOW - 1] == SD_TOK_EOS ||
                    (mode == SD_TOK_SD2 && wi[SD_TOK_WINDOW - 1] == 0));
            for (size_t i = 0; i < SD_TOK_WINDOW; i++)
                REQUIRE(isfinite(ww[i]));
        }
        /* plain text whose ids hold no eos or padding id: the windows split exactly those
         * ids (each window's tokens end at its eos), all at weight 1 */
        bool simple = !has_syntax(z);
        for (size_t i = 0; simple && i < n; i++)
            simple = ids[i] != SD_TOK_EOS && !(mode == SD_TOK_SD2 && ids[i] == 0);
        size_t pos = 0;
        for (size_t c = 0; simple && c < pt.n_chunks; c++) {
            const int32_t *wi = pt.ids + c * SD_TOK_WINDOW;
            const float *ww = pt.weights + c * SD_TOK_WINDOW;
            size_t k = 1;
            while (k < SD_TOK_WINDOW && wi[k] != SD_TOK_EOS)
                k++;
            REQUIRE(k < SD_TOK_WINDOW);
            check_tail(wi, k + 1, mode);
            REQUIRE(pos + k - 1 <= n &&
                    (k == 1 || !memcmp(wi + 1, ids + pos, (k - 1) * sizeof *ids)));
            for (size_t i = 0; i < SD_TOK_WINDOW; i++)
                REQUIRE(ww[i] == 1.0f);
            pos += k - 1;
        }
        REQUIRE(!simple || (pos == n && pt.n_tokens == n));
        sd_prompt_tokens_free(&pt);
    }
    sd_free(ids);
    free(z);
    REQUIRE(sd_alloc_live_bytes() == live_base);
    return 0;
}
