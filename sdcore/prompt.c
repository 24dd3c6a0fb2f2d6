/* prompt.c - the A1111 prompt syntax: emphasis weights in brackets, BREAK, and the cutting of
 * a long prompt into 77-token windows, because users write their prompts for (and copy them
 * from) stable-diffusion-webui and expect the same weighting.  The parser reproduces the
 * behaviour of A1111's prompt_parser.parse_prompt_attention (its regular expression read as
 * a scanner), the chunker that of FrozenCLIPEmbedderWithCustomWords.tokenize_line; the
 * semantics and the deliberate differences are listed in internal/tokenizer.h. */
#include "internal/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

enum {
    COMMA_BACKTRACK = 20,        /* A1111 opts.comma_padding_backtrack (default) */
};

static const double ROUND_MULT = 1.1;

/* ==== parsing ============================================================================ */

/* A run of text with one weight, or a BREAK. */
typedef struct segment {
    size_t off, len;             /* bytes in parse.text; consecutive segments are adjacent */
    double weight;               /* products in double, in A1111's order */
    bool brk;
} segment;

typedef struct parse {
    char *text;                  /* the segments' text, in order */
    size_t text_n;
    segment *seg;
    size_t n, cap;
    size_t *round, *square;      /* open brackets: index of the first segment inside */
    size_t n_round, n_square;
} parse;

static void parse_free(parse *p)
{
    sd_free(p->text);
    sd_free(p->seg);
    sd_free(p->round);
    sd_free(p->square);
}

static bool add_segment(parse *p, const char *s, size_t len, bool brk)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        segment *v = sd_realloc(p->seg, cap * sizeof *v);
        if (!v)
            return false;
        p->seg = v;
        p->cap = cap;
    }
    p->seg[p->n++] = (segment){p->text_n, len, 1.0, brk};
    memcpy(p->text + p->text_n, s, len);
    p->text_n += len;
    return true;
}

static void multiply_range(parse *p, size_t start, double mult)
{
    for (size_t i = start; i < p->n; i++)
        if (!p->seg[i].brk)
            p->seg[i].weight *= mult;
}

/* Python's \s (str.isspace) and \w (str.isalnum or '_'), for the BREAK pattern. */
static bool py_space(int32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

static bool py_word(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    return c == '_' || (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* The code point starting at s[i] (valid UTF-8); *size = its bytes. */
static int32_t cp_next(const char *s, size_t len, size_t i, size_t *size)
{
    utf8proc_int32_t c = -1;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                          (utf8proc_ssize_t)(len - i), &c);
    *size = k > 0 ? (size_t)k : 1;
    return c;
}

static int32_t cp_at(const char *s, size_t len, size_t i)
{
    size_t size;
    return cp_next(s, len, i, &size);
}

static size_t cp_start_before(const char *s, size_t i)
{
    do
        i--;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80);
    return i;
}

/* Plain text: split at A1111's BREAK pattern \s*\bBREAK\b\s* (re.split), each piece a segment
 * of weight 1.0 and a BREAK marker between two pieces. */
static bool add_plain(parse *p, const char *s, size_t len)
{
    size_t piece = 0; /* start of the current piece */
    for (size_t i = 0; i + 5 <= len; i++) {
        if (memcmp(s + i, "BREAK", 5) != 0)
            continue;
        if (i > 0 && py_word(cp_at(s, len, cp_start_before(s, i))))
            continue;
        if (i + 5 < len && py_word(cp_at(s, len, i + 5)))
            continue;
        /* the match reaches back over the white space before BREAK (not before the piece
         * start) and forward over the white space after it */
        size_t start = i;
        while (start > piece) {
            size_t b = cp_start_before(s, start);
            if (!py_space(cp_at(s, len, b)))
                break;
            start = b;
        }
        size_t end = i + 5, size;
        while (end < len && py_space(cp_next(s, len, end, &size)))
            end += size;
        if (!add_segment(p, s + piece, start - piece, false) || !add_segment(p, "", 0, true))
            return false;
        piece = end;
        i = end - 1;
    }
    return add_segment(p, s + piece, len - piece, false);
}

/* Decimal value of a Unicode decimal digit (category Nd): such digits come in runs of ten,
 * 0 to 9, and adjacent runs start at multiples of ten from the first. */
static int digit_value(int32_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    int32_t first = c;
    while (utf8proc_category(first - 1) == UTF8PROC_CATEGORY_ND)
        first--;
    return (c - first) % 10;
}

/* A1111's weight token at s[i] == ':': ":" [+-]? [.\d]+ ")".  Returns its length (0 if
 * none) and sets *num_start and *num_len to the number inside. */
static size_t weight_token(const char *s, size_t len, size_t i, size_t *num_start,
                           size_t *num_len)
{
    size_t j = i + 1;
    if (j < len && (s[j] == '+' || s[j] == '-'))
        j++;
    size_t digits = j, size;
    for (int32_t c; j < len && ((c = cp_next(s, len, j, &size)) == '.' ||
                                utf8proc_category(c) == UTF8PROC_CATEGORY_ND);)
        j += size;
    if (j == digits || j >= len || s[j] != ')')
        return 0;
    *num_start = i + 1;
    *num_len = j - i - 1;
    return j + 1 - i;
}

/* Python's float() of the number text (sign, digits and dots): at most one '.', at least
 * one digit.  Converted through "<significant digits>e<exponent>", which strtod reads the
 * same in every locale. */
static sd_status parse_weight(const char *s, size_t len, double *out, sd_error *err)
{
    char buf[64];
    size_t n = 0, kept = 0, digits = 0, dots = 0, size;
    long exp10 = 0; /* value = buf digits * 10^exp10 */
    size_t i = 0;
    if (s[0] == '+' || s[0] == '-') {
        if (s[0] == '-')
            buf[n++] = '-';
        i++;
    }
    for (; i < len; i += size) {
        int32_t c = cp_next(s, len, i, &size);
        if (c == '.') {
            dots++;
            continue;
        }
        digits++;
        int d = digit_value(c);
        if (kept == 0 && d == 0) { /* a leading zero */
            exp10 -= dots > 0;
            continue;
        }
        if (kept < 40) { /* more significant digits than a double holds */
            buf[n++] = (char)('0' + d);
            kept++;
            exp10 -= dots > 0;
        } else if (!dots) {
            exp10++;
        }
    }
    if (dots > 1 || digits == 0)
        return sd_fail(err, SD_ERR_INVALID_ARG, "prompt: '(...:%.*s)': the weight is not a number",
                       (int)SD_MIN(len, (size_t)40), s);
    if (!kept)
        buf[n++] = '0';
    snprintf(buf + n, sizeof buf - n, "e%ld", exp10);
    *out = strtod(buf, NULL);
    return SD_OK;
}

/* parse_prompt_attention: fill p with the weighted segments of `s`, runs of equal weight
 * merged. */
static sd_status parse_prompt(const char *s, size_t len, parse *p, sd_error *err)
{
    /* no segment holds more text than the prompt; brackets nest at most len deep */
    p->text = sd_malloc(len + 1);
    p->round = sd_malloc((len + 1) * sizeof *p->round);
    p->square = sd_malloc((len + 1) * sizeof *p->square);
    if (!p->text || !p->round || !p->square)
        return sd_fail_nomem(err, "prompt");
    const double square_mult = 1 / 1.1;
    for (size_t i = 0; i < len;) {
        char c = s[i];
        bool ok = true;
        size_t num_start, num_len, k;
        if (c == '\\') {
            /* \( \) \[ \] \\ are the character; a lone backslash is dropped */
            bool esc = i + 1 < len && strchr("()[]\\", s[i + 1]);
            ok = add_segment(p, s + i + 1, esc, false);
            i += 1 + esc;
        } else if (c == '(') {
            p->round[p->n_round++] = p->n;
            i++;
        } else if (c == '[') {
            p->square[p->n_square++] = p->n;
            i++;
        } else if (c == ':' && (k = weight_token(s, len, i, &num_start, &num_len)) != 0) {
            if (p->n_round) {
                double w = 1.0;
                sd_status st = parse_weight(s + num_start, num_len, &w, err);
                if (st != SD_OK)
                    return st;
                multiply_range(p, p->round[--p->n_round], w);
            } else {
                ok = add_segment(p, s + i, k, false); /* the whole token is text */
            }
            i += k;
        } else if (c == ')' && p->n_round) {
            multiply_range(p, p->round[--p->n_round], ROUND_MULT);
            i++;
        } else if (c == ']' && p->n_square) {
            multiply_range(p, p->square[--p->n_square], square_mult);
            i++;
        } else if (c == ')' || c == ']' || c == ':') {
            ok = add_segment(p, s + i, 1, false);
            i++;
        } else {
            size_t j = i;
            while (j < len && !strchr("\\()[]:", s[j]))
                j++;
            ok = add_plain(p, s + i, j - i);
            i = j;
        }
        if (!ok)
            return sd_fail_nomem(err, "prompt");
    }
    for (size_t i = 0; i < p->n_round; i++)
        multiply_range(p, p->round[i], ROUND_MULT);
    for (size_t i = 0; i < p->n_square; i++)
        multiply_range(p, p->square[i], square_mult);

    size_t o = 0;
    for (size_t i = 0; i < p->n; i++) {
        segment *g = &p->seg[i];
        if (o > 0 && !g->brk && !p->seg[o - 1].brk && p->seg[o - 1].weight == g->weight)
            p->seg[o - 1].len += g->len;
        else
            p->seg[o++] = *g;
    }
    p->n = o;
    for (size_t i = 0; i < p->n; i++) {
        const segment *g = &p->seg[i];
        if (!g->brk && g->len && !isfinite((float)g->weight))
            return sd_fail(err, SD_ERR_INVALID_ARG, "prompt: the weight of '%.*s' is out of range",
                           (int)SD_MIN(g->len, (size_t)40), p->text + g->off);
    }
    return SD_OK;
}

/* ==== windows ============================================================================= */

typedef struct chunker {
    sd_tok_mode mode;
    int32_t ids[SD_TOK_CHUNK];   /* the window being filled */
    float w[SD_TOK_CHUNK];
    size_t n;
    long last_comma;             /* index in ids of the last ",</w>", -1 none */
    sd_prompt_tokens *out;
    size_t cap;                  /* windows allocated in out */
} chunker;

/* Close the current window: bos, its tokens, eos, padding. */
static bool next_chunk(chunker *c)
{
    sd_prompt_tokens *o = c->out;
    if (o->n_chunks == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1, n;
        if (!sd_mul_ok(cap, SD_TOK_WINDOW * sizeof(int32_t), &n))
            return false;
        int32_t *ids = sd_realloc(o->ids, n);
        if (!ids)
            return false;
        o->ids = ids;
        float *w = sd_realloc(o->weights, n);
        if (!w)
            return false;
        o->weights = w;
        c->cap = cap;
    }
    int32_t *ids = o->ids + o->n_chunks * SD_TOK_WINDOW;
    float *w = o->weights + o->n_chunks * SD_TOK_WINDOW;
    ids[0] = SD_TOK_BOS;
    memcpy(ids + 1, c->ids, c->n * sizeof *ids);
    memcpy(w + 1, c->w, c->n * sizeof *w);
    ids[c->n + 1] = SD_TOK_EOS;
    for (size_t i = c->n + 2; i < SD_TOK_WINDOW; i++)
        ids[i] = c->mode == SD_TOK_SD2 ? 0 : SD_TOK_EOS;
    w[0] = 1.0f;
    for (size_t i = c->n + 1; i < SD_TOK_WINDOW; i++)
        w[i] = 1.0f;
    o->n_chunks++;
    c->n = 0;
    c->last_comma = -1;
    return true;
}

/* Append one token; a full window moves on, at the last comma when there is one among its
 * last COMMA_BACKTRACK tokens. */
static bool add_token(chunker *c, int32_t id, float weight)
{
    if (id == SD_TOK_COMMA) {
        c->last_comma = (long)c->n;
    } else if (c->n == SD_TOK_CHUNK && c->last_comma >= 0 &&
               SD_TOK_CHUNK - c->last_comma <= COMMA_BACKTRACK) {
        size_t cut = (size_t)c->last_comma + 1, moved = SD_TOK_CHUNK - cut;
        int32_t ids[SD_TOK_CHUNK];
        float w[SD_TOK_CHUNK];
        memcpy(ids, c->ids + cut, moved * sizeof *ids);
        memcpy(w, c->w + cut, moved * sizeof *w);
        c->n = cut;
        if (!next_chunk(c))
            return false;
        memcpy(c->ids, ids, moved * sizeof *ids);
        memcpy(c->w, w, moved * sizeof *w);
        c->n = moved;
    }
    if (c->n == SD_TOK_CHUNK && !next_chunk(c))
        return false;
    c->ids[c->n] = id;
    c->w[c->n] = weight;
    c->n++;
    c->out->n_tokens++;
    return true;
}

sd_status sd_prompt_tokenize(const sd_tokenizer *tok, sd_tok_mode mode, const char *prompt,
                             sd_prompt_tokens *out, sd_error *err)
{
    memset(out, 0, sizeof *out);
    size_t len = strlen(prompt);
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)prompt;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(u + i, (utf8proc_ssize_t)(len - i), &c);
        if (k <= 0)
            return sd_fail(err, SD_ERR_INVALID_ARG, "prompt is not valid UTF-8 (byte %zu)", i);
        i += (size_t)k;
    }
    parse p = {0};
    sd_status st = parse_prompt(prompt, len, &p, err);
    chunker c = {.mode = mode, .last_comma = -1, .out = out};
    for (size_t i = 0; i < p.n && st == SD_OK; i++) {
        const segment *g = &p.seg[i];
        if (g->brk) {
            if (!next_chunk(&c))
                st = sd_fail_nomem(err, "prompt");
            continue;
        }
        int32_t *ids;
        size_t n;
        st = sd_tokenizer_encode(tok, mode, p.text + g->off, g->len, &ids, &n, err);
        for (size_t t = 0; t < n && st == SD_OK; t++)
            if (!add_token(&c, ids[t], (float)g->weight))
                st = sd_fail_nomem(err, "prompt");
        sd_free(ids);
    }
    if (st == SD_OK && (c.n || !out->n_chunks) && !next_chunk(&c))
        st = sd_fail_nomem(err, "prompt");
    parse_free(&p);
    if (st != SD_OK)
        sd_prompt_tokens_free(out);
    return st;
}

void sd_prompt_tokens_free(sd_prompt_tokens *p)
{
    if (!p)
        return;
    sd_free(p->ids);
    sd_free(p->weights);
    memset(p, 0, sizeof *p);
}
