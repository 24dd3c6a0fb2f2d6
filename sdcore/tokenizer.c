/* tokenizer.c - the CLIP byte-level BPE tokenizer with the text clean-up of transformers'
 * CLIPTokenizer + ftfy, because the text encoders were trained on exactly these ids and the
 * golden references were made with that tokenizer.  The contract and the list of steps are
 * in internal/tokenizer.h; this file has four parts: the vocabulary (built from the embedded
 * merges file at creation), the text clean-up (ftfy's fixes), the pre-tokenizer (CLIP's
 * split pattern) and the BPE merge loop. */
#include "internal/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* The decompressed bpe_simple_vocab_16e6.txt, assembled in by data/vocab_blob.S. */
extern const char sd_vocab_blob[];
extern const char sd_vocab_blob_end[];

enum {
    N_MERGES = 48894,            /* lines 1 .. 48894 of the merges file, as CLIP reads it */
    FIRST_MERGE_ID = 512,        /* ids 0..255 bytes, 256..511 bytes + "</w>", then merges */
    PAIR_BITS = 17,              /* merge-rank hash: 2^17 slots for 48894 pairs */
    MAX_SEGMENT = 1000000,       /* ftfy's max_decode_length */
    NO_RANK = -1,
};

static const char BOS_TEXT[] = "<|startoftext|>";
static const char EOS_TEXT[] = "<|endoftext|>";

typedef struct pair_slot {
    uint32_t key;                /* left id << 16 | right id; UINT32_MAX = empty */
    int32_t rank;
} pair_slot;

struct sd_tokenizer {
    uint16_t byte_id[256];       /* byte -> its token id; + 256 for the "</w>" variant */
    pair_slot *pairs;            /* [1 << PAIR_BITS] (left, right) -> merge rank */
};

/* ==== growable buffers ================================================================= */

typedef struct cpbuf {
    int32_t *v;                  /* code points */
    size_t n, cap;
} cpbuf;

static bool cp_reserve(cpbuf *b, size_t extra)
{
    size_t need;
    if (!sd_add_ok(b->n, extra, &need))
        return false;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        if (!sd_mul_ok(cap, 2, &cap))
            return false;
    size_t bytes;
    if (!sd_mul_ok(cap, sizeof *b->v, &bytes))
        return false;
    int32_t *v = sd_realloc(b->v, bytes);
    if (!v)
        return false;
    b->v = v;
    b->cap = cap;
    return true;
}

static bool cp_push(cpbuf *b, int32_t c)
{
    if (b->n == b->cap && !cp_reserve(b, 1))
        return false;
    b->v[b->n++] = c;
    return true;
}

static bool cp_append(cpbuf *b, const int32_t *v, size_t n)
{
    if (!cp_reserve(b, n))
        return false;
    if (n)
        memcpy(b->v + b->n, v, n * sizeof *v);
    b->n += n;
    return true;
}

/* Append the code points of valid UTF-8. */
static bool cp_append_utf8(cpbuf *b, const char *s, size_t len)
{
    if (!cp_reserve(b, len))
        return false;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
        if (SD_NEVER(k <= 0)) /* validated by the caller */
            return false;
        b->v[b->n++] = c;
        i += (size_t)k;
    }
    return true;
}

static void cp_swap(cpbuf *a, cpbuf *b)
{
    cpbuf t = *a;
    *a = *b;
    *b = t;
}

/* ==== the vocabulary ==================================================================== */

/* GPT-2/CLIP's byte <-> character table: the printable bytes ('!'..'~', 0xA1..0xAC,
 * 0xAE..0xFF) stand for themselves and come first in id order; the other 68 bytes follow in
 * byte order and are shown as U+0100, U+0101, ...  Fills the token id and the character of
 * every byte. */
static void byte_table(uint16_t id_of[256], int32_t char_of[256])
{
    int n = 0, shifted = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        if (printable) {
            id_of[b] = (uint16_t)n++;
            char_of[b] = b;
        }
    }
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        if (!printable) {
            id_of[b] = (uint16_t)n++;
            char_of[b] = 256 + shifted++;
        }
    }
}

static inline uint32_t pair_key(int32_t a, int32_t b)
{
    return (uint32_t)a << 16 | (uint32_t)b;
}

static inline size_t pair_slot_of(uint32_t key)
{
    return (size_t)((key * 0x9E3779B1u) >> (32 - PAIR_BITS));
}

static int32_t pair_rank(const sd_tokenizer *tok, int32_t a, int32_t b)
{
    uint32_t key = pair_key(a, b);
    size_t mask = ((size_t)1 << PAIR_BITS) - 1;
    for (size_t s = pair_slot_of(key);; s = (s + 1) & mask) {
        if (tok->pairs[s].key == key)
            return tok->pairs[s].rank;
        if (tok->pairs[s].key == UINT32_MAX)
            return NO_RANK;
    }
}

/* Construction-time map from a token's text (as the merges file spells it) to its id.  The
 * texts live in one arena, token i at arena[off[i] .. off[i + 1]). */
typedef struct vocab_map {
    char *arena;
    size_t arena_len, arena_cap;
    uint32_t *off;               /* [FIRST_MERGE_ID + N_MERGES + 1] */
    uint32_t *slots;             /* [1 << PAIR_BITS] token ids, UINT32_MAX = empty */
    uint32_t n;                  /* tokens so far */
} vocab_map;

static uint32_t text_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* Slot holding `s`, or the empty slot where it belongs. */
static size_t vocab_find(const vocab_map *m, const char *s, size_t len)
{
    size_t mask = ((size_t)1 << PAIR_BITS) - 1;
    for (size_t i = text_hash(s, len) & mask;; i = (i + 1) & mask) {
        uint32_t id = m->slots[i];
        if (id == UINT32_MAX)
            return i;
        if (m->off[id + 1] - m->off[id] == len && !memcmp(m->arena + m->off[id], s, len))
            return i;
    }
}

/* Add the token whose text is a + b (b may be empty) as id m->n.  False if it exists. */
static bool vocab_add(vocab_map *m, const char *a, size_t la, const char *b, size_t lb)
{
    if (SD_NEVER(m->arena_len + la + lb > m->arena_cap))
        return false;
    char *dst = m->arena + m->arena_len;
    memcpy(dst, a, la);
    memcpy(dst + la, b, lb);
    size_t slot = vocab_find(m, dst, la + lb);
    if (m->slots[slot] != UINT32_MAX)
        return false;
    m->slots[slot] = m->n;
    m->off[m->n] = (uint32_t)m->arena_len;
    m->arena_len += la + lb;
    m->off[++m->n] = (uint32_t)m->arena_len;
    return true;
}

static int32_t vocab_lookup(const vocab_map *m, const char *s, size_t len)
{
    uint32_t id = m->slots[vocab_find(m, s, len)];
    return id == UINT32_MAX ? -1 : (int32_t)id;
}

/* Read the merges from the embedded file: for merge r ("a b" on line r + 1) record
 * rank(id(a), id(b)) = r; the merged token a+b gets id 512 + r.  Every part must name a token
 * made before it, which also guarantees that a merge result only ever takes part in merges
 * of a higher rank (the BPE loop relies on that). */
static sd_status build_vocab(sd_tokenizer *tok, sd_error *err)
{
    const char *p = sd_vocab_blob, *end = sd_vocab_blob_end;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
        return sd_fail(err, SD_ERR_INTERNAL, "embedded CLIP vocabulary: no header line");
    const char *merges = nl + 1, *q = merges;
    for (int i = 0; i < N_MERGES; i++) {
        nl = memchr(q, '\n', (size_t)(end - q));
        if (!nl)
            return sd_fail(err, SD_ERR_INTERNAL, "embedded CLIP vocabulary: %d merges, need %d",
                           i, N_MERGES);
        q = nl + 1;
    }

    int32_t char_of[256];
    byte_table(tok->byte_id, char_of);

    vocab_map m = {0};
    sd_status st = SD_OK;
    m.arena_cap = (size_t)(q - merges) + 256 * 2 * (2 + 4);
    m.arena = sd_malloc(m.arena_cap);
    m.off = sd_malloc((FIRST_MERGE_ID + N_MERGES + 1) * sizeof *m.off);
    m.slots = sd_malloc(((size_t)1 << PAIR_BITS) * sizeof *m.slots);
    tok->pairs = sd_malloc(((size_t)1 << PAIR_BITS) * sizeof *tok->pairs);
    if (!m.arena || !m.off || !m.slots || !tok->pairs) {
        st = sd_fail_nomem(err, "tokenizer vocabulary");
        goto out;
    }
    memset(m.slots, 0xff, ((size_t)1 << PAIR_BITS) * sizeof *m.slots);
    for (size_t i = 0; i < ((size_t)1 << PAIR_BITS); i++)
        tok->pairs[i] = (pair_slot){UINT32_MAX, NO_RANK};
    m.off[0] = 0;

    /* ids 0..255: the byte characters in id order; 256..511: the same + "</w>" */
    char chars[256][4];
    size_t char_len[256];
    for (int b = 0; b < 256; b++) {
        int id = tok->byte_id[b];
        char_len[id] = (size_t)utf8proc_encode_char(char_of[b], (utf8proc_uint8_t *)chars[id]);
    }
    bool ok = true;
    for (int id = 0; id < 256; id++)
        ok = ok && vocab_add(&m, chars[id], char_len[id], "", 0);
    for (int id = 0; id < 256; id++)
        ok = ok && vocab_add(&m, chars[id], char_len[id], "</w>", 4);
    if (!ok) {
        st = sd_fail(err, SD_ERR_INTERNAL, "tokenizer: byte table is not one-to-one");
        goto out;
    }

    size_t mask = ((size_t)1 << PAIR_BITS) - 1;
    q = merges;
    for (int32_t r = 0; r < N_MERGES; r++) {
        nl = memchr(q, '\n', (size_t)(end - q));
        const char *sp = memchr(q, ' ', (size_t)(nl - q));
        int32_t a = -1, b = -1;
        if (sp && sp > q && sp + 1 < nl && !memchr(sp + 1, ' ', (size_t)(nl - sp - 1))) {
            a = vocab_lookup(&m, q, (size_t)(sp - q));
            b = vocab_lookup(&m, sp + 1, (size_t)(nl - sp - 1));
        }
        if (a < 0 || b < 0 || !vocab_add(&m, q, (size_t)(sp - q), sp + 1, (size_t)(nl - sp - 1))) {
            st = sd_fail(err, SD_ERR_INTERNAL,
                         "embedded CLIP vocabulary: merge %d ('%.*s') is not a pair of known "
                         "tokens making a new one", (int)r, (int)SD_MIN(nl - q, 40), q);
            goto out;
        }
        uint32_t key = pair_key(a, b);
        size_t s = pair_slot_of(key);
        while (tok->pairs[s].key != UINT32_MAX)
            s = (s + 1) & mask;
        tok->pairs[s] = (pair_slot){key, r};
        q = nl + 1;
    }
out:
    sd_free(m.arena);
    sd_free(m.off);
    sd_free(m.slots);
    return st;
}

sd_status sd_tokenizer_new(sd_tokenizer **out, sd_error *err)
{
    *out = NULL;
    sd_tokenizer *tok = sd_calloc(1, sizeof *tok);
    if (!tok)
        return sd_fail_nomem(err, "tokenizer");
    sd_status st = build_vocab(tok, err);
    if (st != SD_OK) {
        sd_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return SD_OK;
}

void sd_tokenizer_free(sd_tokenizer *tok)
{
    if (!tok)
        return;
    sd_free(tok->pairs);
    sd_free(tok);
}

/* ==== text clean-up: ftfy.fix_text ====================================================== */

/* Windows-1252 for the C1 range 0x80..0x9F, "sloppy": the five unassigned bytes keep their
 * code point.  Used by ftfy's fix_c1_controls and by html.unescape's numeric references. */
static const uint16_t cp1252_c1[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
    0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

typedef struct html_entity {
    const char *name;
    const char *text;
} html_entity;

static const html_entity html_entities[] = {
#include "data/html_entities.inc"
};

static int entity_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const html_entity *)elem)->name);
}

static bool is_ascii_alnum(int32_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex(int32_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* What Python's html.unescape makes of the numeric reference `num` (saturated at
 * 0x110000): -1 for "nothing" (invalid code points are dropped), else one code point. */
static int32_t charref_value(uint32_t num)
{
    if (num == 0)
        return 0xFFFD;
    if (num == 0x0D)
        return '\r';
    if (num >= 0x80 && num <= 0x9F)
        return cp1252_c1[num - 0x80];
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF)
        return 0xFFFD;
    if ((num >= 0x01 && num <= 0x08) || num == 0x0B || (num >= 0x0E && num <= 0x1F) ||
        (num >= 0x7F && num <= 0x9F) || (num >= 0xFDD0 && num <= 0xFDEF) ||
        (num & 0xFFFE) == 0xFFFE)
        return -1;
    return (int32_t)num;
}

/* The replacement of the reference `&name;` (numeric: `&#name;`), name being 1..24 ASCII
 * letters and digits: *v gets up to 4 code points, *nv their count.  False if ftfy leaves the
 * text as it is. */
static bool entity_value(const char *name, bool numeric, int32_t v[4], size_t *nv)
{
    *nv = 0;
    if (!numeric) {
        const html_entity *e = bsearch(name, html_entities, SD_ARRAY_LEN(html_entities),
                                       sizeof html_entities[0], entity_cmp);
        if (!e)
            return false;
        const utf8proc_uint8_t *t = (const utf8proc_uint8_t *)e->text;
        for (utf8proc_ssize_t k; *t && *nv < 4; t += k)
            k = utf8proc_iterate(t, (utf8proc_ssize_t)strlen((const char *)t), &v[(*nv)++]);
        return true;
    }
    /* html.unescape must consume the whole reference: all decimal digits, or 'x'/'X' and
     * all hex digits; a partial decode keeps the ';' and ftfy then leaves the text alone */
    size_t len = strlen(name);
    bool hex = (name[0] == 'x' || name[0] == 'X') && len > 1;
    uint32_t num = 0;
    for (size_t t = hex; t < len; t++) {
        int32_t c = name[t];
        if (hex ? !is_hex(c) : !(c >= '0' && c <= '9'))
            return false;
        uint32_t d = c <= '9' ? (uint32_t)(c - '0') : (uint32_t)((c | 0x20) - 'a' + 10);
        num = num > 0x10FFFF ? 0x110000 : num * (hex ? 16 : 10) + d;
    }
    int32_t c = charref_value(num > 0x10FFFF ? 0x110000 : num);
    if (c == ';')
        return false;
    if (c >= 0)
        v[(*nv)++] = c;
    return true;
}

/* ftfy's unescape_html: every `&name;` / `&#digits;` / `&#xhex;` with 1..24 letters or digits
 * between '&' (or "&#") and ';' that names a character is replaced; anything else stays. */
static bool fix_html(const int32_t *in, size_t n, cpbuf *out)
{
    out->n = 0;
    for (size_t i = 0; i < n;) {
        if (in[i] == '&') {
            size_t j = i + 1;
            bool numeric = j < n && in[j] == '#';
            j += numeric;
            size_t k = j;
            while (k < n && k - j < 25 && is_ascii_alnum(in[k]))
                k++;
            int32_t v[4];
            size_t nv;
            char name[25];
            if (k > j && k - j <= 24 && k < n && in[k] == ';') {
                for (size_t t = j; t < k; t++)
                    name[t - j] = (char)in[t];
                name[k - j] = 0;
                if (entity_value(name, numeric, v, &nv)) {
                    if (!cp_append(out, v, nv))
                        return false;
                    i = k + 1;
                    continue;
                }
            }
        }
        if (!cp_push(out, in[i++]))
            return false;
    }
    return true;
}

/* One code point to the text ftfy substitutes for it (ligatures, widths, quotes, C1
 * controls), or n = 0 for "unchanged".  Writes at most 4 code points. */
static size_t fix_char(int32_t c, int32_t rep[4])
{
    switch (c) { /* fix_latin_ligatures */
    case 0x0132: rep[0] = 'I', rep[1] = 'J'; return 2;
    case 0x0133: rep[0] = 'i', rep[1] = 'j'; return 2;
    case 0x0149: rep[0] = 0x02BC, rep[1] = 'n'; return 2;
    case 0x01F1: rep[0] = 'D', rep[1] = 'Z'; return 2;
    case 0x01F2: rep[0] = 'D', rep[1] = 'z'; return 2;
    case 0x01F3: rep[0] = 'd', rep[1] = 'z'; return 2;
    case 0x01C4: rep[0] = 'D', rep[1] = 0x017D; return 2;
    case 0x01C5: rep[0] = 'D', rep[1] = 0x017E; return 2;
    case 0x01C6: rep[0] = 'd', rep[1] = 0x017E; return 2;
    case 0x01C7: rep[0] = 'L', rep[1] = 'J'; return 2;
    case 0x01C8: rep[0] = 'L', rep[1] = 'j'; return 2;
    case 0x01C9: rep[0] = 'l', rep[1] = 'j'; return 2;
    case 0x01CA: rep[0] = 'N', rep[1] = 'J'; return 2;
    case 0x01CB: rep[0] = 'N', rep[1] = 'j'; return 2;
    case 0x01CC: rep[0] = 'n', rep[1] = 'j'; return 2;
    case 0xFB00: rep[0] = 'f', rep[1] = 'f'; return 2;
    case 0xFB01: rep[0] = 'f', rep[1] = 'i'; return 2;
    case 0xFB02: rep[0] = 'f', rep[1] = 'l'; return 2;
    case 0xFB03: rep[0] = 'f', rep[1] = 'f', rep[2] = 'i'; return 3;
    case 0xFB04: rep[0] = 'f', rep[1] = 'f', rep[2] = 'l'; return 3;
    case 0xFB05: rep[0] = 0x017F, rep[1] = 't'; return 2;
    case 0xFB06: rep[0] = 's', rep[1] = 't'; return 2;
    case 0x3000: rep[0] = ' '; return 1; /* fix_character_width */
    default: break;
    }
    if (c >= 0xFF01 && c <= 0xFFEF) {
        /* fix_character_width: the NFKC form of the character on its own, if different */
        utf8proc_int32_t buf[8];
        utf8proc_ssize_t k = utf8proc_decompose_char(c, buf, 8, UTF8PROC_DECOMPOSE |
                                                     UTF8PROC_COMPAT, NULL);
        if (k <= 0 || k > 4)
            return 0;
        k = utf8proc_normalize_utf32(buf, k, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (k <= 0 || (k == 1 && buf[0] == c))
            return 0;
        memcpy(rep, buf, (size_t)k * sizeof *rep);
        return (size_t)k;
    }
    return 0;
}

static bool is_control_removed(int32_t c)
{
    return (c >= 0x00 && c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
           (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

/* ftfy's fixers after unescape_html, in its order: fix_c1_controls, fix_latin_ligatures,
 * fix_character_width, uncurl_quotes, fix_line_breaks (fix_surrogates has nothing to do on
 * valid UTF-8), remove_terminal_escapes, remove_control_chars.  Each works on the output of
 * the one before, so they run as separate passes. */
static bool fix_chars(cpbuf *a, cpbuf *b)
{
    /* c1 controls, then ligatures and widths */
    b->n = 0;
    for (size_t i = 0; i < a->n; i++) {
        int32_t c = a->v[i], rep[4];
        if (c >= 0x80 && c <= 0x9F)
            c = cp1252_c1[c - 0x80];
        size_t k = fix_char(c, rep);
        if (!(k ? cp_append(b, rep, k) : cp_push(b, c)))
            return false;
    }
    /* quotes and line breaks */
    a->n = 0;
    for (size_t i = 0; i < b->n; i++) {
        int32_t c = b->v[i];
        if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B))
            c = '\'';
        else if (c >= 0x201C && c <= 0x201F)
            c = '"';
        else if (c == '\r') {
            c = '\n';
            i += i + 1 < b->n && b->v[i + 1] == '\n';
        } else if (c == 0x2028 || c == 0x2029) { /* U+0085 became U+2026 as a C1 control */
            c = '\n';
        }
        if (!cp_push(a, c))
            return false;
    }
    /* terminal escapes ESC [ (digits | ;)* letter, then control characters */
    b->n = 0;
    for (size_t i = 0; i < a->n; i++) {
        int32_t c = a->v[i];
        if (c == 0x1B && i + 1 < a->n && a->v[i + 1] == '[') {
            size_t j = i + 2;
            while (j < a->n && (a->v[j] == ';' ||
                                utf8proc_category(a->v[j]) == UTF8PROC_CATEGORY_ND))
                j++;
            if (j < a->n && a->v[j] < 128 && ((a->v[j] | 0x20) >= 'a' && (a->v[j] | 0x20) <= 'z')) {
                i = j;
                continue;
            }
        }
        if (!is_control_removed(c) && !cp_push(b, c))
            return false;
    }
    cp_swap(a, b);
    return true;
}

/* NFC of a->v into b (a is left unchanged).  bytes is scratch space. */
static bool nfc(const cpbuf *a, cpbuf *b, cpbuf *bytes)
{
    /* utf8proc composes code point arrays but decomposes (with canonical reordering) only
     * UTF-8, so go through UTF-8 */
    b->n = 0;
    if (!a->n)
        return true;
    size_t nbytes;
    if (!sd_mul_ok(a->n, 4, &nbytes) || !cp_reserve(bytes, nbytes / 4 + 1))
        return false;
    utf8proc_uint8_t *u = (utf8proc_uint8_t *)bytes->v;
    size_t len = 0;
    for (size_t i = 0; i < a->n; i++)
        len += (size_t)utf8proc_encode_char(a->v[i], u + len);
    for (;;) {
        utf8proc_ssize_t k = utf8proc_decompose(u, (utf8proc_ssize_t)len, b->v,
                                                (utf8proc_ssize_t)b->cap,
                                                UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (SD_NEVER(k < 0))
            return false;
        if ((size_t)k <= b->cap) {
            k = utf8proc_normalize_utf32(b->v, k, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (SD_NEVER(k < 0))
                return false;
            b->n = (size_t)k;
            return true;
        }
        if (!cp_reserve(b, (size_t)k))
            return false;
    }
}

static bool cp_equal(const cpbuf *a, const cpbuf *b)
{
    return a->n == b->n && (a->n == 0 || !memcmp(a->v, b->v, a->n * sizeof *a->v));
}

/* Scratch buffers of one encode call. */
typedef struct work {
    cpbuf text;                  /* the piece being cleaned / the cleaned text */
    cpbuf seg, t1, t2, t3;       /* clean-up scratch */
    cpbuf bpe;                   /* BPE scratch (sym/prev/next), as int32 */
    uint64_t *heap;
    size_t heap_cap;
    int32_t *ids;                /* the result */
    size_t n_ids, ids_cap;
} work;

static void work_free(work *w)
{
    sd_free(w->text.v);
    sd_free(w->seg.v);
    sd_free(w->t1.v);
    sd_free(w->t2.v);
    sd_free(w->t3.v);
    sd_free(w->bpe.v);
    sd_free(w->heap);
    sd_free(w->ids);
}

/* ftfy.fix_and_explain on one segment (w->seg): the fixes, repeated until the text stops
 * changing.  Every fix either shortens the text or maps it to a fixed point, so this ends
 * after a few rounds; the bound only guards against a Unicode-table surprise. */
static sd_status fix_segment(work *w, bool html, sd_error *err)
{
    for (int round = 0; round < 100; round++) {
        w->t1.n = 0;
        bool ok = html ? fix_html(w->seg.v, w->seg.n, &w->t1)
                       : cp_append(&w->t1, w->seg.v, w->seg.n);
        /* fix_chars leaves its result in t1, nfc puts it into t2 */
        if (!ok || !fix_chars(&w->t1, &w->t2) || !nfc(&w->t1, &w->t2, &w->t3))
            return sd_fail_nomem(err, "prompt clean-up");
        if (cp_equal(&w->t2, &w->seg))
            return SD_OK;
        cp_swap(&w->seg, &w->t2);
    }
    return sd_fail(err, SD_ERR_INTERNAL, "prompt clean-up did not converge");
}

/* ftfy.fix_text on w->text, in place: line by line (each with its '\n', and at most
 * MAX_SEGMENT code points); HTML entities are decoded until the first line containing '<'. */
static sd_status fix_text(work *w, sd_error *err)
{
    cpbuf in = w->text; /* the input moves out; the result is built in w->text */
    w->text = (cpbuf){0};
    bool html = true;
    sd_status st = SD_OK;
    for (size_t pos = 0; pos < in.n && st == SD_OK;) {
        size_t end = pos;
        while (end < in.n && in.v[end] != '\n' && end - pos < MAX_SEGMENT)
            end++;
        end += end < in.n && in.v[end] == '\n' && end - pos < MAX_SEGMENT;
        for (size_t i = pos; i < end && html; i++)
            html = in.v[i] != '<';
        w->seg.n = 0;
        if (!cp_append(&w->seg, in.v + pos, end - pos))
            st = sd_fail_nomem(err, "prompt clean-up");
        else
            st = fix_segment(w, html, err);
        if (st == SD_OK && !cp_append(&w->text, w->seg.v, w->seg.n))
            st = sd_fail_nomem(err, "prompt clean-up");
        pos = end;
    }
    sd_free(in.v);
    return st;
}

/* ==== white space, case, pre-tokenizer ================================================= */

/* The Unicode White_Space property (what the `regex` module's \s matches). */
static bool is_space(int32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static bool is_letter(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

static bool is_number(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

/* Unicode "Cased" and "Case_Ignorable", as far as the final-sigma rule needs them. */
static bool is_cased(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
           utf8proc_islower(c) || utf8proc_isupper(c);
}

static bool is_case_ignorable(int32_t c)
{
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK:
        return true;
    default:
        break;
    }
    return c == '\'' || c == '.' || c == ':' || c == 0xB7 || c == 0x387 || c == 0x55F ||
           c == 0x5F4 || c == 0x2018 || c == 0x2019 || c == 0x2024 || c == 0x2027 ||
           c == 0xFE13 || c == 0xFE52 || c == 0xFE55 || c == 0xFF07 || c == 0xFF0E || c == 0xFF1A;
}

/* Python's str.lower of capital sigma at i: final form when a cased letter comes before it
 * and none after it (case-ignorable characters skipped on both sides). */
static int32_t lower_sigma(const int32_t *s, size_t n, size_t i)
{
    size_t j = i;
    while (j > 0 && is_case_ignorable(s[j - 1]))
        j--;
    if (j == 0 || !is_cased(s[j - 1]))
        return 0x3C3;
    j = i + 1;
    while (j < n && is_case_ignorable(s[j]))
        j++;
    return j < n && is_cased(s[j]) ? 0x3C3 : 0x3C2;
}

/* whitespace_clean (runs of white space -> one space, trimmed) then str.lower, from w->text
 * into w->t1. */
static bool clean_and_lower(work *w)
{
    cpbuf *s = &w->t2, *o = &w->t1;
    s->n = 0;
    const int32_t *v = w->text.v;
    size_t n = w->text.n;
    for (size_t i = 0; i < n;) {
        if (is_space(v[i])) {
            while (i < n && is_space(v[i]))
                i++;
            if (s->n && i < n && !cp_push(s, ' '))
                return false;
        } else if (!cp_push(s, v[i++])) {
            return false;
        }
    }
    o->n = 0;
    for (size_t i = 0; i < s->n; i++) {
        int32_t c = s->v[i];
        bool ok;
        if (c == 0x130) /* the one unconditional multi-character lower-case mapping */
            ok = cp_push(o, 'i') && cp_push(o, 0x307);
        else if (c == 0x3A3)
            ok = cp_push(o, lower_sigma(s->v, s->n, i));
        else
            ok = cp_push(o, utf8proc_tolower(c));
        if (!ok)
            return false;
    }
    return true;
}

/* The split pattern is applied case-insensitively (the `regex` module, simple case folding).
 * Of the characters left after lower-casing, only U+017F (long s) folds onto one of the ASCII
 * letters of its literals; and U+0345 (combining ypogegrammeni, a mark that folds to a
 * letter) is then matched by neither [\p{L}] nor [^\s\p{L}\p{N}], so it is skipped like
 * white space. */
static inline int32_t fold(int32_t c)
{
    return c == 0x17F ? 's' : c;
}

static inline bool is_skipped(int32_t c)
{
    return is_space(c) || c == 0x345;
}

static bool starts_with(const int32_t *s, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    if (k > n)
        return false;
    for (size_t i = 0; i < k; i++)
        if (fold(s[i]) != (unsigned char)lit[i])
            return false;
    return true;
}

/* Length of the match of CLIP's pattern at s[0] (s[0] is not skipped):
 * <|startoftext|> | <|endoftext|> | 's | 't | 're | 've | 'm | 'll | 'd | \p{L}+ | \p{N} |
 * [^\s\p{L}\p{N}]+.  *special is set to the id for the two special tokens, else -1. */
static size_t match_len(const int32_t *s, size_t n, int32_t *special)
{
    *special = -1;
    if (starts_with(s, n, BOS_TEXT)) {
        *special = SD_TOK_BOS;
        return sizeof BOS_TEXT - 1;
    }
    if (starts_with(s, n, EOS_TEXT)) {
        *special = SD_TOK_EOS;
        return sizeof EOS_TEXT - 1;
    }
    if (s[0] == '\'' && n > 1) {
        int32_t c = fold(s[1]);
        if (c == 's' || c == 't' || c == 'm' || c == 'd')
            return 2;
        if (n > 2 && ((c == 'r' && fold(s[2]) == 'e') || (c == 'v' && fold(s[2]) == 'e') ||
                      (c == 'l' && fold(s[2]) == 'l')))
            return 3;
    }
    size_t k = 1;
    if (is_letter(s[0])) {
        while (k < n && is_letter(s[k]))
            k++;
    } else if (!is_number(s[0])) {
        while (k < n && !is_skipped(s[k]) && !is_letter(s[k]) && !is_number(s[k]))
            k++;
    }
    return k;
}

/* ==== byte-level BPE ===================================================================== */

static bool push_id(work *w, int32_t id)
{
    if (w->n_ids == w->ids_cap) {
        size_t cap = w->ids_cap ? w->ids_cap * 2 : 64;
        int32_t *v = sd_realloc(w->ids, cap * sizeof *v);
        if (!v)
            return false;
        w->ids = v;
        w->ids_cap = cap;
    }
    w->ids[w->n_ids++] = id;
    return true;
}

static void heap_push(uint64_t *h, size_t *n, uint64_t x)
{
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > x) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = x;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && h[c + 1] < h[c])
            c++;
        if (h[c] >= x)
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = x;
    return top;
}

/* Queue the pair starting at symbol p (if it has a merge): key rank << 32 | position, so the
 * heap yields the lowest rank first and, within a rank, the leftmost pair. */
static void queue_pair(const sd_tokenizer *tok, const int32_t *sym, const int32_t *next,
                       int32_t p, uint64_t *heap, size_t *hn)
{
    if (p < 0 || next[p] < 0)
        return;
    int32_t r = pair_rank(tok, sym[p], sym[next[p]]);
    if (r != NO_RANK)
        heap_push(heap, hn, (uint64_t)r << 32 | (uint32_t)p);
}

/* BPE of one word (its UTF-8 bytes): start from one symbol per byte, the last one with
 * "</w>", and repeatedly merge the pair of lowest rank, all its occurrences from left to right
 * - which is what the heap order gives, because a merge's result only takes part in merges
 * of higher rank - until no pair has a rank.  Appends the ids. */
static bool bpe_word(const sd_tokenizer *tok, work *w, const uint8_t *b, size_t n)
{
    if (n == 1)
        return push_id(w, tok->byte_id[b[0]] + 256);
    size_t need, heap_need;
    if (!sd_mul_ok(n, 3, &need) || need > INT32_MAX)
        return false;
    heap_need = need;
    w->bpe.n = 0;
    if (!cp_reserve(&w->bpe, need))
        return false;
    if (w->heap_cap < heap_need) {
        uint64_t *h = sd_realloc(w->heap, heap_need * sizeof *h);
        if (!h)
            return false;
        w->heap = h;
        w->heap_cap = heap_need;
    }
    int32_t *sym = w->bpe.v, *prev = sym + n, *next = prev + n;
    for (size_t i = 0; i < n; i++) {
        sym[i] = tok->byte_id[b[i]] + (i + 1 == n ? 256 : 0);
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++)
        queue_pair(tok, sym, next, (int32_t)i, w->heap, &hn);
    while (hn) {
        uint64_t e = heap_pop(w->heap, &hn);
        int32_t r = (int32_t)(e >> 32), p = (int32_t)(uint32_t)e;
        if (sym[p] < 0 || next[p] < 0 || pair_rank(tok, sym[p], sym[next[p]]) != r)
            continue; /* stale: a neighbour was merged since */
        int32_t q = next[p];
        sym[p] = FIRST_MERGE_ID + r;
        sym[q] = -1;
        next[p] = next[q];
        if (next[q] >= 0)
            prev[next[q]] = p;
        queue_pair(tok, sym, next, prev[p], w->heap, &hn);
        queue_pair(tok, sym, next, p, w->heap, &hn);
    }
    for (int32_t p = 0; p >= 0; p = next[p])
        if (!push_id(w, sym[p]))
            return false;
    return true;
}

/* ==== encoding ============================================================================ */

/* _tokenize of one piece of text between special tokens: clean, split, BPE. */
static sd_status encode_piece(const sd_tokenizer *tok, work *w, const char *s, size_t len,
                              sd_error *err)
{
    w->text.n = 0;
    if (!cp_append_utf8(&w->text, s, len))
        return sd_fail_nomem(err, "prompt");
    sd_status st = fix_text(w, err);
    if (st != SD_OK)
        return st;
    if (!clean_and_lower(w))
        return sd_fail_nomem(err, "prompt");
    const int32_t *v = w->t1.v;
    size_t n = w->t1.n;
    for (size_t i = 0; i < n;) {
        if (is_skipped(v[i])) {
            i++;
            continue;
        }
        int32_t special;
        size_t k = match_len(v + i, n - i, &special);
        if (special >= 0) {
            if (!push_id(w, special))
                return sd_fail_nomem(err, "prompt");
        } else {
            /* the word's UTF-8 bytes, in the scratch buffer t3 */
            w->t3.n = 0;
            if (!cp_reserve(&w->t3, k + 1))
                return sd_fail_nomem(err, "prompt");
            uint8_t *bytes = (uint8_t *)w->t3.v;
            size_t nb = 0;
            for (size_t j = 0; j < k; j++)
                nb += (size_t)utf8proc_encode_char(v[i + j], bytes + nb);
            if (!bpe_word(tok, w, bytes, nb))
                return sd_fail_nomem(err, "prompt");
        }
        i += k;
    }
    return SD_OK;
}

static sd_status check_utf8(const char *text, size_t len, sd_error *err)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)text;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
        if (k <= 0)
            return sd_fail(err, SD_ERR_INVALID_ARG, "prompt is not valid UTF-8 (byte %zu)", i);
        i += (size_t)k;
    }
    return SD_OK;
}

sd_status sd_tokenizer_encode(const sd_tokenizer *tok, sd_tok_mode mode, const char *text,
                              size_t len, int32_t **ids, size_t *n_ids, sd_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    sd_status st = check_utf8(text, len, err);
    if (st != SD_OK)
        return st;
    work w = {0};
    /* the special tokens are split off as written, before any clean-up (transformers'
     * added-token trie); the SD2 tokenizer's pad token '!' is one of them */
    size_t start = 0;
    for (size_t i = 0; i < len && st == SD_OK;) {
        size_t k = 0;
        int32_t id = -1;
        if (text[i] == '<' && len - i >= sizeof BOS_TEXT - 1 &&
            !memcmp(text + i, BOS_TEXT, sizeof BOS_TEXT - 1))
            k = sizeof BOS_TEXT - 1, id = SD_TOK_BOS;
        else if (text[i] == '<' && len - i >= sizeof EOS_TEXT - 1 &&
                 !memcmp(text + i, EOS_TEXT, sizeof EOS_TEXT - 1))
            k = sizeof EOS_TEXT - 1, id = SD_TOK_EOS;
        else if (text[i] == '!' && mode == SD_TOK_SD2)
            k = 1, id = 0;
        if (!k) {
            i++;
            continue;
        }
        if (i > start)
            st = encode_piece(tok, &w, text + start, i - start, err);
        if (st == SD_OK && !push_id(&w, id))
            st = sd_fail_nomem(err, "prompt");
        i += k;
        start = i;
    }
    if (st == SD_OK && len > start)
        st = encode_piece(tok, &w, text + start, len - start, err);
    if (st == SD_OK) {
        *ids = w.ids;
        *n_ids = w.n_ids;
        w.ids = NULL;
    }
    work_free(&w);
    return st;
}

sd_status sd_tokenizer_window(const sd_tokenizer *tok, sd_tok_mode mode, const char *text,
                              sd_tok_window *out, sd_error *err)
{
    memset(out, 0, sizeof *out);
    int32_t *ids;
    size_t n;
    sd_status st = sd_tokenizer_encode(tok, mode, text, strlen(text), &ids, &n, err);
    if (st != SD_OK)
        return st;
    size_t kept = SD_MIN(n, (size_t)SD_TOK_CHUNK);
    out->ids[0] = SD_TOK_BOS;
    if (kept)
        memcpy(out->ids + 1, ids, kept * sizeof *ids);
    out->ids[kept + 1] = SD_TOK_EOS;
    for (size_t i = kept + 2; i < SD_TOK_WINDOW; i++)
        out->ids[i] = mode == SD_TOK_SD2 ? 0 : SD_TOK_EOS;
    out->n_tokens = kept + 2;
    out->n_untruncated = n + 2;
    sd_free(ids);
    return SD_OK;
}
