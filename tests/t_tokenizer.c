/* tests/t_tokenizer.c - the CLIP tokenizer against the golden ids of transformers'
 * CLIPTokenizer + ftfy (tests/data/tokenizer/cases.json, both the SD1 and the SD2
 * convention), the text clean-up steps the golden prompts do not reach, the heap-ordered BPE
 * against the textbook merge loop, concurrent use, and allocation failure.  The file includes
 * tokenizer.c to reach its static functions. */
#include "harness.h"
#include "internal/json.h"

#include "tokenizer.c"

#include <pthread.h>
#include <time.h>

/* cases.json "id" of the prompts this tokenizer deliberately does not reproduce, and why. */
static const struct {
    int64_t id;
    const char *why;
} skipped[] = {
    {12, "mojibake repair: ftfy re-decodes 'cafÃ©' as 'café' by its encoding heuristics, "
         "which are out of scope (internal/tokenizer.h)"},
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static bool ids_equal(const int32_t *got, const sd_json *want, size_t n, const char *what,
                      int64_t id)
{
    if (!want || want->type != SD_JSON_ARRAY || want->n != n) {
        fprintf(stderr, "case %lld: %s: missing or not %zu ids\n", (long long)id, what, n);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (got[i] != sd_json_int(sd_json_at(want, i), -1)) {
            fprintf(stderr, "case %lld: %s differs at %zu:", (long long)id, what, i);
            for (size_t j = 0; j < n; j++)
                fprintf(stderr, " %d/%lld", got[j],
                        (long long)sd_json_int(sd_json_at(want, j), -1));
            fputc('\n', stderr);
            return false;
        }
    }
    return true;
}

/* Token ids of a string, for comparisons (NULL-safe on failure: returns 0 ids). */
static size_t enc(const sd_tokenizer *tok, sd_tok_mode mode, const char *s, size_t len,
                  int32_t *out, size_t cap)
{
    int32_t *ids = NULL;
    size_t n = 0;
    sd_error err = {0};
    sd_status st = sd_tokenizer_encode(tok, mode, s, len, &ids, &n, &err);
    CHECK(st == SD_OK, "encode '%s': %s", s, err.msg);
    size_t k = SD_MIN(n, cap);
    if (k)
        memcpy(out, ids, k * sizeof *ids);
    sd_free(ids);
    return n;
}

/* The ids of a and b are the same (a is cleaned up into b). */
static void same(const sd_tokenizer *tok, const char *a, const char *b)
{
    int32_t x[64], y[64];
    size_t na = enc(tok, SD_TOK_SD1, a, strlen(a), x, 64);
    size_t nb = enc(tok, SD_TOK_SD1, b, strlen(b), y, 64);
    bool eq = na == nb && na <= 64 && !memcmp(x, y, na * sizeof *x);
    CHECK(eq, "'%s' (%zu ids) should tokenize as '%s' (%zu ids)", a, na, b, nb);
}

static void differ(const sd_tokenizer *tok, const char *a, const char *b)
{
    int32_t x[64], y[64];
    size_t na = enc(tok, SD_TOK_SD1, a, strlen(a), x, 64);
    size_t nb = enc(tok, SD_TOK_SD1, b, strlen(b), y, 64);
    bool eq = na == nb && na <= 64 && !memcmp(x, y, na * sizeof *x);
    CHECK(!eq, "'%s' should not tokenize as '%s'", a, b);
}

/* ---- golden cases ---------------------------------------------------------------------- */

typedef struct golden {
    sd_json *root;
    const sd_json *cases;
} golden;

static const char *skip_reason(int64_t id)
{
    for (size_t i = 0; i < SD_ARRAY_LEN(skipped); i++)
        if (skipped[i].id == id)
            return skipped[i].why;
    return NULL;
}

/* Compare every case; returns the number that matched in both conventions. */
static int check_cases(const sd_tokenizer *tok, const golden *g, bool verbose)
{
    int equal = 0;
    for (size_t i = 0; i < g->cases->n; i++) {
        const sd_json *c = sd_json_at(g->cases, i);
        int64_t id = sd_json_int(sd_json_get(c, "id"), -1);
        const char *prompt = sd_json_str(sd_json_get(c, "prompt"), NULL);
        const char *why = skip_reason(id);
        if (why) {
            if (verbose)
                fprintf(stderr, "skip case %lld: %s\n", (long long)id, why);
            continue;
        }
        sd_tok_window w1, w2;
        sd_error err = {0};
        bool ok = prompt && sd_tokenizer_window(tok, SD_TOK_SD1, prompt, &w1, &err) == SD_OK &&
                  sd_tokenizer_window(tok, SD_TOK_SD2, prompt, &w2, &err) == SD_OK;
        if (verbose) /* CHECK counts are not thread-safe */
            CHECK(ok, "case %lld: %s", (long long)id, err.msg);
        if (!ok)
            continue;
        bool e1 = ids_equal(w1.ids, sd_json_get(c, "sd1_input_ids"), SD_TOK_WINDOW, "sd1", id);
        bool e2 = ids_equal(w2.ids, sd_json_get(c, "sd2_input_ids"), SD_TOK_WINDOW, "sd2", id);
        int64_t n_tokens = sd_json_int(sd_json_get(c, "n_tokens"), -1);
        int64_t untrunc = sd_json_int(sd_json_get(c, "untruncated_n_tokens"), -1);
        bool trunc = sd_json_bool(sd_json_get(c, "truncated"), false);
        bool counts = (int64_t)w1.n_tokens == n_tokens && (int64_t)w1.n_untruncated == untrunc &&
                      (w1.n_untruncated > w1.n_tokens) == trunc;
        if (verbose) {
            CHECK(e1, "case %lld sd1 ids", (long long)id);
            CHECK(e2, "case %lld sd2 ids", (long long)id);
            CHECK(counts, "case %lld: n_tokens %zu/%lld untruncated %zu/%lld truncated %d",
                  (long long)id, w1.n_tokens, (long long)n_tokens, w1.n_untruncated,
                  (long long)untrunc, trunc);
        }
        equal += e1 && e2 && counts;
    }
    return equal;
}

typedef struct thread_arg {
    const sd_tokenizer *tok;
    const golden *g;
    int equal;
} thread_arg;

static void *thread_main(void *p)
{
    thread_arg *a = p;
    for (int rep = 0; rep < 3; rep++)
        a->equal = check_cases(a->tok, a->g, false);
    return NULL;
}

/* ---- BPE against the textbook loop ----------------------------------------------------- */

/* The merge loop as CLIP's simple_tokenizer.py describes it: find the pair of lowest rank,
 * merge all its occurrences left to right, repeat.  Quadratic; for checking only. */
static size_t bpe_reference(const sd_tokenizer *tok, const uint8_t *b, size_t n, int32_t *sym)
{
    for (size_t i = 0; i < n; i++)
        sym[i] = tok->byte_id[b[i]] + (i + 1 == n ? 256 : 0);
    for (;;) {
        int32_t best = NO_RANK;
        for (size_t i = 0; i + 1 < n; i++) {
            int32_t r = pair_rank(tok, sym[i], sym[i + 1]);
            if (r != NO_RANK && (best == NO_RANK || r < best))
                best = r;
        }
        if (best == NO_RANK)
            return n;
        size_t o = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && pair_rank(tok, sym[i], sym[i + 1]) == best) {
                sym[o++] = FIRST_MERGE_ID + best;
                i += 2;
            } else {
                sym[o++] = sym[i++];
            }
        }
        n = o;
    }
}

static void check_bpe(const sd_tokenizer *tok)
{
    /* words from a small alphabet merge a lot and repeat pairs ("aaaa", "abab") */
    static const char alpha[] = "aeinrst</>!.\xc3\xa9";
    uint32_t seed = 12345;
    int bad = 0;
    fprintf(stderr, "bpe: random words, seed %u\n", seed);
    for (int t = 0; t < 3000 && bad < 5; t++) {
        uint8_t word[40];
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 39;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            word[i] = (uint8_t)alpha[(seed >> 16) % (sizeof alpha - 1)];
        }
        int32_t ref[40];
        size_t nr = bpe_reference(tok, word, n, ref);
        work w = {0};
        bool ok = bpe_word(tok, &w, word, n);
        bool eq = ok && w.n_ids == nr && !memcmp(w.ids, ref, nr * sizeof *ref);
        if (!eq) {
            bad++;
            fprintf(stderr, "bpe mismatch for '%.*s'\n", (int)n, (const char *)word);
        }
        work_free(&w);
    }
    CHECK(bad == 0, "heap BPE differs from the reference loop on %d words", bad);

    /* a long word stays fast (n log n) */
    size_t n = 200000;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = "abcdefghij"[i * 7 % 10];
    double t0 = now_ms();
    int32_t first[4];
    size_t k = enc(tok, SD_TOK_SD1, big, n, first, 4);
    double dt = now_ms() - t0;
    fprintf(stderr, "bpe: %zu-letter word -> %zu ids in %.0f ms\n", n, k, dt);
    CHECK(k > 1000 && k < n, "long word: %zu ids", k);
    free(big);
}

/* ---- clean-up steps the golden prompts do not reach ------------------------------------ */

static void check_cleanup(const sd_tokenizer *tok)
{
    /* HTML entities (ftfy rules: ';' required, repeated until stable, off after a '<') */
    same(tok, "&amp;lt;3", "<3");
    same(tok, "caf&eacute; caf&EACUTE; caf&#233; caf&#xE9; caf&#XE9;",
         "caf\xc3\xa9 caf\xc3\xa9 caf\xc3\xa9 caf\xc3\xa9 caf\xc3\xa9");
    same(tok, "&nbsp;x&nbsp;", "x");
    same(tok, "a &#59; b", "a &#59 ; b");      /* would decode to ';': ftfy keeps it */
    differ(tok, "a &#59; b", "a ; b");
    same(tok, "&#65abc;", "&#65 abc ;");       /* partial reference: kept */
    same(tok, "&#128;", "\xe2\x82\xac");         /* C1 number -> Windows-1252: euro */
    same(tok, "a&#1;b", "ab");                   /* invalid code point: dropped */
    same(tok, "&#99999999; &#0;", "\xef\xbf\xbd \xef\xbf\xbd");
    same(tok, "&nbsp &amp", "& nbsp & amp");     /* no ';': not an entity for ftfy */
    same(tok, "&aaaaaaaaaaaaaaaaaaaaaaaaa;", "& aaaaaaaaaaaaaaaaaaaaaaaaa ;");
    same(tok, "x<y\n&amp;", "x<y\n& amp ;");
    same(tok, "&amp;\nx<y", "&\nx<y");
    same(tok, "&lt;|endoftext|&gt;", "<|endoftext|>");
    /* C1 controls as Windows-1252, curly quotes, ligatures, widths */
    same(tok, "\xc2\x93quoted\xc2\x94 it\xc2\x92s", "\"quoted\" it's");
    same(tok, "\xe2\x80\x9cquoted\xe2\x80\x9d it\xe2\x80\x99s \xe2\x80\x98x\xe2\x80\x99",
         "\"quoted\" it's 'x'");
    same(tok, "\xef\xac\x82uffy \xef\xac\x83x \xc4\xb3", "fluffy ffix ij");
    same(tok, "\xef\xbd\xb6\xef\xbe\x9e\xe3\x80\x80\xef\xbc\xa1", "\xe3\x82\xac a");
    /* control characters and terminal escapes */
    same(tok, "a\x01" "b\x7f" "c\xef\xbb\xbf" "d", "abcd");
    same(tok, "\x1b[1;31mred\x1b[0m text", "red text");
    {
        int32_t x[8], y[8];
        size_t nx = enc(tok, SD_TOK_SD1, "a\0b", 3, x, 8);
        size_t ny = enc(tok, SD_TOK_SD1, "ab", 2, y, 8);
        CHECK(nx == ny && nx == 1 && x[0] == y[0], "NUL inside the text is removed");
    }
    /* white space incl. U+3000 and NBSP, line breaks */
    same(tok, "\t a\xe3\x80\x80\xc2\xa0 b\r\n\xe2\x80\xa8" "c ", "a b c");
    differ(tok, "a\xe2\x80\x8b" "b", "a b");     /* U+200B is not white space */
    /* NFC, lower-casing incl. the special cases */
    same(tok, "Cafe\xcc\x81", "caf\xc3\xa9");
    same(tok, "\xc4\xb0stanbul", "i\xcc\x87stanbul");
    same(tok, "\xce\x9f\xce\x94\xce\x9f\xce\xa3 \xce\xa3\xce\x91", /* final sigma */
         "\xce\xbf\xce\xb4\xce\xbf\xcf\x82 \xcf\x83\xce\xb1");
    differ(tok, "\xce\x9f\xce\x94\xce\x9f\xce\xa3", "\xce\xbf\xce\xb4\xce\xbf\xcf\x83");
    /* the split pattern */
    same(tok, "IT'S WE'LL", "it 's we 'll");
    differ(tok, "it'\xc5\xbf", "it ' \xc5\xbf"); /* 'ſ matches 's case-insensitively */
    differ(tok, "it'\xc5\xbf", "it's");
    same(tok, "a<|ENDOFTEXT|>b", "a <|endoftext|> b");
    differ(tok, "x!<|ENDOFTEXT|>", "x ! <|endoftext|>"); /* not at the start of a match */

    /* the SD2 convention: every '!' is token 0, also inside a word */
    int32_t ids[16];
    size_t n = enc(tok, SD_TOK_SD2, "?!?", 3, ids, 16);
    int32_t q = tok->byte_id['?'] + 256;
    CHECK(n == 3 && ids[0] == q && ids[1] == 0 && ids[2] == q, "SD2 '?!?' -> ?</w> 0 ?</w>");
    n = enc(tok, SD_TOK_SD1, "?!?", 3, ids, 16);
    CHECK(n == 1, "SD1 '?!?' is one BPE word (%zu ids)", n);

    /* invalid UTF-8 */
    static const char *const bad[] = {"\xff", "a\xc3", "\xed\xa0\x80", "\xc0\x80",
                                      "\xf4\x90\x80\x80"};
    for (size_t i = 0; i < SD_ARRAY_LEN(bad); i++) {
        int32_t *v = (int32_t *)1;
        size_t nv = 9;
        sd_error err = {0};
        sd_status st = sd_tokenizer_encode(tok, SD_TOK_SD1, bad[i], strlen(bad[i]), &v, &nv, &err);
        CHECK(st == SD_ERR_INVALID_ARG && !v && !nv && strstr(err.msg, "UTF-8"),
              "invalid UTF-8 %zu: status %d '%s'", i, st, err.msg);
    }
}

/* ---- allocation failure ---------------------------------------------------------------- */

static void check_nomem(void)
{
    const char *text = "A &amp; b, (Caf\xc3\xa9) \xef\xac\x81ne!! <|endoftext|> really!!!";
    size_t live = sd_alloc_live_bytes();
    int nomem = 0;
    for (long nth = 1;; nth++) {
        sd_alloc_fail_after(nth, false);
        sd_tokenizer *tok = NULL;
        sd_tok_window w;
        sd_error err = {0};
        sd_status st = sd_tokenizer_new(&tok, &err);
        if (st == SD_OK) {
            st = sd_tokenizer_window(tok, SD_TOK_SD2, text, &w, &err);
            sd_tokenizer_free(tok);
        } else {
            CHECK(tok == NULL, "failed creation leaves *out NULL");
        }
        sd_alloc_fail_after(0, false);
        if (st == SD_OK)
            break;
        nomem += st == SD_ERR_NOMEM;
        CHECK(st == SD_ERR_NOMEM && err.msg[0], "allocation %ld: status %d", nth, st);
        if (st != SD_ERR_NOMEM)
            break;
    }
    fprintf(stderr, "nomem: %d failure points\n", nomem);
    CHECK(nomem >= 10, "failure points exercised: %d", nomem);
    CHECK(sd_alloc_live_bytes() == live, "no leaks under allocation failure");
}

int main(void)
{
    double t0 = now_ms();
    sd_tokenizer *tok = NULL;
    sd_error err = {0};
    CHECK(sd_tokenizer_new(&tok, &err) == SD_OK, "sd_tokenizer_new: %s", err.msg);
    double dt = now_ms() - t0;
    fprintf(stderr, "sd_tokenizer_new: %.1f ms\n", dt);
    if (!tok)
        return t_summary("t_tokenizer");
    CHECK(dt < 2000, "creation took %.0f ms", dt);

    golden g = {0};
    CHECK(sd_json_parse_file(t_data("tokenizer/cases.json"), 1 << 24, &g.root, &err) == SD_OK,
          "cases.json: %s", err.msg);
    g.cases = sd_json_get(g.root, "cases");
    if (g.cases && g.cases->type == SD_JSON_ARRAY) {
        size_t n = g.cases->n;
        CHECK(n == 41, "41 cases, found %zu", n);
        int equal = check_cases(tok, &g, true);
        fprintf(stderr, "golden: %d of %zu cases equal (SD1 and SD2 ids, counts), %zu skipped\n",
                equal, n, SD_ARRAY_LEN(skipped));
        CHECK((size_t)equal + SD_ARRAY_LEN(skipped) == n, "%d equal", equal);

        thread_arg a[2] = {{tok, &g, 0}, {tok, &g, 0}};
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&th[i], NULL, thread_main, &a[i]);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        CHECK(a[0].equal == equal && a[1].equal == equal, "concurrent use: %d and %d equal",
              a[0].equal, a[1].equal);
    }
    sd_json_free(g.root);

    check_cleanup(tok);
    check_bpe(tok);
    sd_tokenizer_free(tok);
    check_nomem();
    return t_summary("t_tokenizer");
}
