/* tests/t_prompt.c - the A1111 prompt syntax and the 77-token windows: emphasis parsing
 * against the results of A1111's parse_prompt_attention (its docstring examples and more),
 * BREAK, the comma rule at the window edge, windows of 75/76/150 tokens, the empty prompt,
 * plain prompts against the golden diffusers ids, errors and allocation failure.  The file
 * includes prompt.c to reach the parser. */
#include "harness.h"
#include "internal/json.h"

#include "prompt.c"

typedef struct want_seg {
    const char *text;            /* NULL: a BREAK */
    double weight;
} want_seg;

#define BRK {NULL, 0}
#define SEGS(...) ((const want_seg[]){__VA_ARGS__}), SD_ARRAY_LEN(((const want_seg[]){__VA_ARGS__}))

/* The parse of `prompt` is exactly `want` (texts, and weights compared as doubles). */
static void check_parse(const char *prompt, const want_seg *want, size_t n)
{
    parse p = {0};
    sd_error err = {0};
    sd_status st = parse_prompt(prompt, strlen(prompt), &p, &err);
    bool ok = st == SD_OK && p.n == n;
    for (size_t i = 0; ok && i < n; i++) {
        const segment *g = &p.seg[i];
        if (!want[i].text)
            ok = g->brk;
        else
            ok = !g->brk && g->len == strlen(want[i].text) &&
                 !memcmp(p.text + g->off, want[i].text, g->len) && g->weight == want[i].weight;
    }
    CHECK(ok, "parse '%s' (status %d %s)", prompt, st, err.msg);
    if (!ok && st == SD_OK)
        for (size_t i = 0; i < p.n; i++)
            fprintf(stderr, "    got %s'%.*s' %.17g\n", p.seg[i].brk ? "BREAK " : "",
                    (int)p.seg[i].len, p.text + p.seg[i].off, p.seg[i].weight);
    parse_free(&p);
}

static void check_parse_error(const char *prompt)
{
    parse p = {0};
    sd_error err = {0};
    sd_status st = parse_prompt(prompt, strlen(prompt), &p, &err);
    CHECK(st == SD_ERR_INVALID_ARG && strstr(err.msg, "prompt"), "'%.40s' must be rejected "
          "(status %d)", prompt, st);
    parse_free(&p);
}

static void test_parse(void)
{
    /* A1111's docstring examples */
    check_parse("normal text", SEGS({"normal text", 1.0}));
    check_parse("an (important) word", SEGS({"an ", 1.0}, {"important", 1.1}, {" word", 1.0}));
    check_parse("(unbalanced", SEGS({"unbalanced", 1.1}));
    check_parse("\\(literal\\]", SEGS({"(literal]", 1.0}));
    check_parse("(unnecessary)(parens)", SEGS({"unnecessaryparens", 1.1}));
    check_parse("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
                SEGS({"a ", 1.0}, {"house", 1.5730000000000004}, {" ", 1.1}, {"on", 1.0},
                     {" a ", 1.1}, {"hill", 0.55}, {", sun, ", 1.1}, {"sky", 1.4641000000000006},
                     {".", 1.1}));
    /* nesting, in A1111's order of double multiplications */
    check_parse("[(a)]", SEGS({"a", 1.0}));
    check_parse("((a)b)[c", SEGS({"a", 1.2100000000000002}, {"b", 1.1}, {"c", 0.9090909090909091}));
    check_parse("[[a]:1.5)", SEGS({"a", 0.8264462809917354}, {":1.5)", 0.9090909090909091}));
    check_parse("(a)(b:1.1)", SEGS({"ab", 1.1}));
    /* unmatched closers and weights without '(' are text; escapes; a lone backslash is dropped */
    check_parse("x) y] z", SEGS({"x) y] z", 1.0}));
    check_parse(":1.2) (a:b) \\(\\)\\[\\]\\\\ \\x \\",
                SEGS({":1.2) ", 1.0}, {"a:b", 1.1}, {" ()[]\\ x ", 1.0}));
    check_parse("(x\\y)", SEGS({"xy", 1.1}));
    check_parse("[a:b:0.5]", SEGS({"a:b:0.5", 0.9090909090909091}));
    check_parse("[a:1.2.3)", SEGS({"a:1.2.3)", 0.9090909090909091}));
    /* numbers as Python's float() reads them, Unicode digits included */
    check_parse("(a:+.5) (b:-1) (c:2.)",
                SEGS({"a", 0.5}, {" ", 1.0}, {"b", -1.0}, {" ", 1.0}, {"c", 2.0}));
    check_parse("(a:0.1)(b:1.3)(c:000.30)", SEGS({"a", 0.1}, {"b", 1.3}, {"c", 0.3}));
    check_parse("(a:\xd9\xa1.\xd9\xa5)", SEGS({"a", 1.5}));
    check_parse("(a:1.234567890123456789012345678901234567890123456789012345)",
                SEGS({"a", 1.234567890123456789012345678901234567890123456789012345}));
    check_parse("(a:340000000000000000000000000000000000000)",
                SEGS({"a", 340000000000000000000000000000000000000.0}));
    /* BREAK: upper case, a word of its own, surrounding white space taken along */
    check_parse("a BREAK b", SEGS({"a", 1.0}, BRK, {"b", 1.0}));
    check_parse("a\t BREAK\xe3\x80\x80" "b", SEGS({"a", 1.0}, BRK, {"b", 1.0}));
    check_parse("aBREAK b, a break b, BREAK_, \xc3\xa9" "BREAK",
                SEGS({"aBREAK b, a break b, BREAK_, \xc3\xa9" "BREAK", 1.0}));
    check_parse("BREAK", SEGS({"", 1.0}, BRK, {"", 1.0}));
    check_parse("BREAK BREAK", SEGS({"", 1.0}, BRK, {"", 1.0}, BRK, {"", 1.0}));
    check_parse("x:BREAK y", SEGS({"x:", 1.0}, BRK, {"y", 1.0}));
    check_parse("x,BREAK.", SEGS({"x,", 1.0}, BRK, {".", 1.0}));
    /* differs from A1111 on purpose: BREAK inside brackets still breaks */
    check_parse("(a BREAK b)", SEGS({"a", 1.1}, BRK, {"b", 1.1}));
    /* errors: weights that float() rejects (A1111 raises), or that no float holds */
    check_parse_error("(a:1.2.3)");
    check_parse_error("(a:.)");
    check_parse_error("(a:1e5:+.)");
    check_parse_error("(a:99999999999999999999999999999999999999999)");
    check_parse_error("((a:10000000000000000000000000):10000000000000000000000000)");
}

/* ---- windows ----------------------------------------------------------------------------- */

static const sd_tokenizer *tok;

static int32_t id_of(const char *word)
{
    int32_t *ids;
    size_t n;
    sd_error err = {0};
    int32_t id = -1;
    if (sd_tokenizer_encode(tok, SD_TOK_SD1, word, strlen(word), &ids, &n, &err) == SD_OK) {
        if (n == 1)
            id = ids[0];
        sd_free(ids);
    }
    return id;
}

static sd_prompt_tokens run(sd_tok_mode mode, const char *prompt)
{
    sd_prompt_tokens pt;
    sd_error err = {0};
    sd_status st = sd_prompt_tokenize(tok, mode, prompt, &pt, &err);
    CHECK(st == SD_OK, "'%.60s': %s", prompt, err.msg);
    return pt;
}

/* Window c holds bos, the `n` ids of `want` (weights `w`), eos and padding of the mode. */
static bool window_is(const sd_prompt_tokens *pt, size_t c, sd_tok_mode mode, const int32_t *want,
                      const float *w, size_t n)
{
    if (c >= pt->n_chunks)
        return false;
    const int32_t *ids = pt->ids + c * SD_TOK_WINDOW;
    const float *ws = pt->weights + c * SD_TOK_WINDOW;
    bool ok = ids[0] == SD_TOK_BOS && ws[0] == 1.0f && ids[n + 1] == SD_TOK_EOS &&
              ws[n + 1] == 1.0f;
    for (size_t i = 0; i < n; i++)
        ok = ok && ids[i + 1] == want[i] && ws[i + 1] == w[i];
    for (size_t i = n + 2; i < SD_TOK_WINDOW; i++)
        ok = ok && ids[i] == (mode == SD_TOK_SD2 ? 0 : SD_TOK_EOS) && ws[i] == 1.0f;
    return ok;
}

/* A prompt of `n` repetitions of `word` (one token each), separated by spaces. */
static char *repeat(const char *word, size_t n, char *dst)
{
    char *p = dst;
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s ", word);
    return p;
}

static void fill(int32_t *ids, float *w, size_t n, int32_t id, float weight)
{
    for (size_t i = 0; i < n; i++)
        ids[i] = id, w[i] = weight;
}

static void test_windows(void)
{
    int32_t cat = id_of("cat"), dog = id_of("dog"), red = id_of("red");
    CHECK(cat > 0 && dog > 0 && red > 0 && id_of(",") == SD_TOK_COMMA, "one-token words");
    int32_t ids[160];
    float w[160];
    char buf[4096];

    /* the empty prompt is one window */
    for (int m = 0; m < 2; m++) {
        sd_prompt_tokens pt = run(m ? SD_TOK_SD2 : SD_TOK_SD1, "");
        CHECK(pt.n_chunks == 1 && pt.n_tokens == 0 &&
                  window_is(&pt, 0, m ? SD_TOK_SD2 : SD_TOK_SD1, NULL, NULL, 0),
              "empty prompt, mode %d", m);
        sd_prompt_tokens_free(&pt);
    }

    /* 75, 76, 150, 151 tokens */
    static const size_t counts[] = {75, 76, 150, 151};
    static const size_t chunks[] = {1, 2, 2, 3};
    for (size_t k = 0; k < SD_ARRAY_LEN(counts); k++) {
        repeat("cat", counts[k], buf);
        sd_prompt_tokens pt = run(SD_TOK_SD2, buf);
        fill(ids, w, 75, cat, 1.0f);
        bool ok = pt.n_chunks == chunks[k] && pt.n_tokens == counts[k];
        for (size_t c = 0; ok && c < pt.n_chunks; c++)
            ok = window_is(&pt, c, SD_TOK_SD2, ids, w, SD_MIN(75, counts[k] - 75 * c));
        CHECK(ok, "%zu tokens: %zu windows", counts[k], pt.n_chunks);
        sd_prompt_tokens_free(&pt);
    }

    /* the comma rule: a full window is cut after a comma among its last 20 tokens */
    char *p = repeat("cat", 55, buf);
    p += sprintf(p, ", ");
    repeat("dog", 30, p);
    sd_prompt_tokens pt = run(SD_TOK_SD1, buf);
    fill(ids, w, 55, cat, 1.0f);
    ids[55] = SD_TOK_COMMA;
    bool ok = pt.n_chunks == 2 && window_is(&pt, 0, SD_TOK_SD1, ids, w, 56);
    fill(ids, w, 30, dog, 1.0f);
    ok = ok && window_is(&pt, 1, SD_TOK_SD1, ids, w, 30) && pt.n_tokens == 86;
    CHECK(ok, "comma 20 tokens back: cut after it");
    sd_prompt_tokens_free(&pt);

    p = repeat("cat", 54, buf);
    p += sprintf(p, ", ");
    repeat("dog", 30, p);
    pt = run(SD_TOK_SD1, buf);
    fill(ids, w, 54, cat, 1.0f);
    ids[54] = SD_TOK_COMMA;
    fill(ids + 55, w + 55, 20, dog, 1.0f);
    ok = pt.n_chunks == 2 && window_is(&pt, 0, SD_TOK_SD1, ids, w, 75) &&
         window_is(&pt, 1, SD_TOK_SD1, ids + 55, w, 10);
    CHECK(ok, "comma 21 tokens back: plain cut at 75");
    sd_prompt_tokens_free(&pt);

    /* the weights travel with the moved tokens */
    p = repeat("cat", 70, buf);
    p += sprintf(p, ", (dog dog dog dog dog dog:1.5)");
    pt = run(SD_TOK_SD1, buf);
    fill(ids, w, 6, dog, 1.5f);
    ok = pt.n_chunks == 2 && pt.ids[71] == SD_TOK_COMMA && pt.ids[72] == SD_TOK_EOS &&
         window_is(&pt, 1, SD_TOK_SD1, ids, w, 6);
    CHECK(ok, "comma rule keeps the weights");
    sd_prompt_tokens_free(&pt);

    /* BREAK: windows given as words of one token each */
    static const struct {
        const char *prompt;
        const char *windows[4];
    } brk[] = {
        {"cat BREAK dog", {"cat", "dog"}},
        {"BREAK", {""}},
        {"cat BREAK", {"cat"}},
        {"BREAK cat", {"", "cat"}},
        {"cat BREAK BREAK dog", {"cat", "", "dog"}},
        {"(cat BREAK dog:1.5)", {"cat", "dog"}},
    };
    for (size_t k = 0; k < SD_ARRAY_LEN(brk); k++) {
        pt = run(SD_TOK_SD1, brk[k].prompt);
        size_t n = 0;
        while (n < 4 && brk[k].windows[n])
            n++;
        ok = pt.n_chunks == n;
        float wt = strchr(brk[k].prompt, '(') ? 1.5f : 1.0f;
        for (size_t c = 0; ok && c < n; c++) {
            const char *word = brk[k].windows[c];
            fill(ids, w, 1, *word ? id_of(word) : 0, wt);
            ok = window_is(&pt, c, SD_TOK_SD1, ids, w, *word ? 1 : 0);
        }
        CHECK(ok, "'%s': %zu windows", brk[k].prompt, pt.n_chunks);
        sd_prompt_tokens_free(&pt);
    }
    pt = run(SD_TOK_SD1, "cat BREAKdog");
    CHECK(pt.n_chunks == 1 && pt.n_tokens > 2, "'BREAKdog' is a word");
    sd_prompt_tokens_free(&pt);
    /* a BREAK right at a full window gives no empty window in between */
    p = repeat("cat", 75, buf);
    sprintf(p, "BREAK dog");
    pt = run(SD_TOK_SD1, buf);
    fill(ids, w, 1, dog, 1.0f);
    CHECK(pt.n_chunks == 2 && window_is(&pt, 1, SD_TOK_SD1, ids, w, 1), "75 tokens + BREAK");
    sd_prompt_tokens_free(&pt);

    /* weights: of every token of a multi-token word or phrase; runs are tokenized apart */
    pt = run(SD_TOK_SD1, "(supercalifragilisticexpialidocious:0.5) [red] (red car, blue sky:1.3)");
    int32_t *word;
    size_t nword;
    sd_error err = {0};
    const char *longword = "supercalifragilisticexpialidocious";
    CHECK(sd_tokenizer_encode(tok, SD_TOK_SD1, longword, strlen(longword), &word, &nword, &err) ==
              SD_OK && nword > 3, "long word: %zu tokens", nword);
    ok = pt.n_chunks == 1 && pt.n_tokens == nword + 1 + 5;
    for (size_t i = 0; ok && i < nword; i++)
        ok = pt.ids[1 + i] == word[i] && pt.weights[1 + i] == 0.5f;
    ok = ok && pt.ids[1 + nword] == red && pt.weights[1 + nword] == (float)(1 / 1.1);
    for (size_t i = 0; ok && i < 5; i++)
        ok = pt.weights[2 + nword + i] == 1.3f;
    ok = ok && pt.ids[4 + nword] == SD_TOK_COMMA && pt.weights[7 + nword] == 1.0f;
    CHECK(ok, "weights of multi-token words and phrases");
    sd_free(word);
    sd_prompt_tokens_free(&pt);

    pt = run(SD_TOK_SD1, "(red)dish");
    sd_prompt_tokens whole = run(SD_TOK_SD1, "reddish");
    ok = pt.n_tokens == 2 && pt.ids[1] == red && pt.weights[1] == 1.1f && pt.weights[2] == 1.0f &&
         pt.ids[2] == id_of("dish") && (whole.n_tokens != 2 || whole.ids[1] != red);
    CHECK(ok, "'(red)dish' is red + dish, not the BPE of 'reddish'");
    sd_prompt_tokens_free(&pt);
    sd_prompt_tokens_free(&whole);

    /* errors leave *out zeroed */
    static const char *const bad[] = {"(a:1.2.3)", "a \xff b"};
    for (size_t k = 0; k < SD_ARRAY_LEN(bad); k++) {
        sd_prompt_tokens e = {(size_t)1, 2, (int32_t *)8, (float *)8};
        sd_status st = sd_prompt_tokenize(tok, SD_TOK_SD1, bad[k], &e, &err);
        CHECK(st == SD_ERR_INVALID_ARG && !e.n_chunks && !e.ids && !e.weights,
              "'%s' rejected: %d %s", bad[k], st, err.msg);
    }
    sd_prompt_tokens_free(NULL);
}

/* Plain prompts (no syntax, at most 75 tokens) give exactly the diffusers window. */
static void test_golden(void)
{
    sd_json *root = NULL;
    sd_error err = {0};
    CHECK(sd_json_parse_file(t_data("tokenizer/cases.json"), 1 << 24, &root, &err) == SD_OK,
          "cases.json: %s", err.msg);
    const sd_json *cases = sd_json_get(root, "cases");
    int compared = 0;
    for (size_t i = 0; cases && i < cases->n; i++) {
        const sd_json *c = sd_json_at(cases, i);
        const char *prompt = sd_json_str(sd_json_get(c, "prompt"), "");
        int64_t id = sd_json_int(sd_json_get(c, "id"), -1);
        if (strpbrk(prompt, "()[]:\\") || strstr(prompt, "BREAK") ||
            sd_json_bool(sd_json_get(c, "truncated"), true) || id == 12 /* see t_tokenizer */)
            continue;
        for (int m = 0; m < 2; m++) {
            sd_prompt_tokens pt = run(m ? SD_TOK_SD2 : SD_TOK_SD1, prompt);
            const sd_json *want = sd_json_get(c, m ? "sd2_input_ids" : "sd1_input_ids");
            bool ok = pt.n_chunks == 1 && want && want->n == SD_TOK_WINDOW;
            for (size_t k = 0; ok && k < SD_TOK_WINDOW; k++)
                ok = pt.ids[k] == sd_json_int(sd_json_at(want, k), -1) && pt.weights[k] == 1.0f;
            CHECK(ok, "case %lld mode %d: windows differ from the golden ids", (long long)id, m);
            sd_prompt_tokens_free(&pt);
        }
        compared++;
    }
    fprintf(stderr, "golden: %d plain prompts compared\n", compared);
    CHECK(compared >= 25, "compared %d", compared);
    sd_json_free(root);
}

static void test_nomem(void)
{
    const char *prompt = "a (b:1.2) [c], BREAK d e f, g";
    size_t live = sd_alloc_live_bytes();
    int nomem = 0;
    for (long nth = 1;; nth++) {
        sd_alloc_fail_after(nth, false);
        sd_prompt_tokens pt;
        sd_error err = {0};
        sd_status st = sd_prompt_tokenize(tok, SD_TOK_SD1, prompt, &pt, &err);
        sd_alloc_fail_after(0, false);
        if (st == SD_OK) {
            CHECK(pt.n_chunks == 2, "windows: %zu", pt.n_chunks);
            sd_prompt_tokens_free(&pt);
            break;
        }
        nomem += st == SD_ERR_NOMEM;
        CHECK(st == SD_ERR_NOMEM && !pt.ids && !pt.n_chunks, "allocation %ld: status %d", nth, st);
        if (st != SD_ERR_NOMEM)
            break;
    }
    fprintf(stderr, "nomem: %d failure points\n", nomem);
    CHECK(nomem >= 10, "failure points exercised: %d", nomem);
    CHECK(sd_alloc_live_bytes() == live, "no leaks under allocation failure");
}

int main(void)
{
    test_parse();
    sd_tokenizer *t = NULL;
    sd_error err = {0};
    CHECK(sd_tokenizer_new(&t, &err) == SD_OK, "tokenizer: %s", err.msg);
    if (!t)
        return t_summary("t_prompt");
    tok = t;
    test_windows();
    test_golden();
    test_nomem();
    sd_tokenizer_free(t);
    return t_summary("t_prompt");
}
