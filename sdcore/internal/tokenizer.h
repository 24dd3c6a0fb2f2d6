/* internal/tokenizer.h - the CLIP BPE tokenizer (tokenizer.c) and the prompt syntax on top of
 * it (prompt.c): what turns the user's prompt into the token ids and per-token weights the
 * text encoder consumes.
 *
 * TOKENIZER (tokenizer.c)
 *   Reproduces transformers' CLIPTokenizer with ftfy installed, the tokenizer the diffusers
 *   pipelines use, on the vocabulary embedded in the library (openai/CLIP's
 *   bpe_simple_vocab_16e6.txt: 256 byte tokens, the same with "</w>", 48894 merges,
 *   <|startoftext|> 49406, <|endoftext|> 49407).  For every text it
 *     1. splits off the literal special tokens "<|startoftext|>" and "<|endoftext|>" (and, in
 *        SD2 mode, every "!": see below) exactly as written, before any clean-up;
 *     2. cleans each remaining piece as ftfy.fix_text (6.3) does, line by line and repeated
 *        until nothing changes: HTML entities decoded (`&amp;`, `&eacute;`, `&#233;`,
 *        `&#xE9;`, all-caps `&EACUTE;`; only with the ';', and not in a piece from the first
 *        line containing a '<' on, which ftfy takes for real HTML), C1 controls read as
 *        Windows-1252, Latin ligatures split, full-width/half-width forms to their normal
 *        width, curly quotes straightened, line breaks unified, terminal colour escapes and
 *        control characters removed, NFC.  ftfy's repair of mojibake (text decoded with the
 *        wrong codec, e.g. "cafÃ©") is not done: it rests on statistical heuristics, and a
 *        prompt typed into GIMP is not mojibake;
 *     3. collapses white space to single spaces, trims, lower-cases (Python's str.lower);
 *     4. splits with CLIP's pattern (special tokens, 's 't 're 've 'm 'll 'd, runs of
 *        letters, single digits, runs of other non-space characters) and encodes each part's
 *        UTF-8 bytes with byte-level BPE, the last byte carrying "</w>".
 *   Two conventions:
 *     SD_TOK_SD1  pads with <|endoftext|> (49407): SD 1.x (openai/clip-vit-large-patch14).
 *     SD_TOK_SD2  pads with 0, and - as the diffusers SD 2.x tokenizer config does, whose pad
 *                 token is "!" - every literal "!" of the text becomes the special token 0
 *                 instead of being BPE-merged ("really!!!" -> really</w>, 0, 0, 0).
 *
 * PROMPTS (prompt.c)
 *   A1111 (stable-diffusion-webui) prompt syntax, parsed like its
 *   prompt_parser.parse_prompt_attention, then cut into 77-token windows like its
 *   FrozenCLIPEmbedderWithCustomWords.tokenize_line:
 *     (text)        weight x 1.1          [text]        weight / 1.1
 *     (text:1.3)    weight x 1.3          nesting multiplies; \( \) \[ \] \\ are literals;
 *     an unmatched ')' or ']' is literal text, an unclosed '(' or '[' applies to the end of
 *     the prompt; BREAK (upper case, as a word of its own) starts a new window.
 *   Each run of text with one weight is tokenized on its own (so "(red)dish" is "red" +
 *   "dish"), every token gets its run's weight, and the tokens fill windows of 75: bos,
 *   75 tokens, eos.  When a window is full and a comma (",</w>") occurred among its last 20
 *   tokens, the tokens after that comma move to the next window (A1111's default
 *   "comma_padding_backtrack" of 20), so that a phrase is not cut in two.  bos, eos and
 *   padding have weight 1.0.  The text encoder encodes each window, multiplies each token's
 *   hidden state by its weight and rescales to the original mean (A1111 "Original"
 *   emphasis).
 *   Deliberate differences from A1111: BREAK also splits inside brackets (A1111 then turns it
 *   into the word "break" with a negated weight, a bug); a weight that is not a number, such as
 *   "(a:1.2.3)", is an SD_ERR_INVALID_ARG instead of a Python exception; a weight must fit a
 *   float; the prompt-editing syntax [from:to:when] and [a|b] is not interpreted (it is read
 *   as emphasis, i.e. as text in brackets); textual-inversion embeddings do not exist here.
 *
 * THREADS
 *   A tokenizer is immutable once created: any number of threads may encode with it at
 *   once.  Every call allocates its own buffers.
 */
#ifndef SD_INTERNAL_TOKENIZER_H
#define SD_INTERNAL_TOKENIZER_H

#include "internal/common.h"

enum {
    SD_TOK_VOCAB = 49408,        /* ids 0 .. 49407 */
    SD_TOK_BOS = 49406,          /* <|startoftext|> */
    SD_TOK_EOS = 49407,          /* <|endoftext|> */
    SD_TOK_COMMA = 267,          /* ",</w>": where A1111 prefers to cut a long prompt */
    SD_TOK_WINDOW = 77,          /* ids per text-encoder call: bos + 75 + eos */
    SD_TOK_CHUNK = 75,           /* prompt tokens per window */
};

typedef enum sd_tok_mode {
    SD_TOK_SD1,                  /* pad with 49407 */
    SD_TOK_SD2,                  /* pad with 0; a literal '!' is token 0 (diffusers SD 2.x) */
} sd_tok_mode;

typedef struct sd_tokenizer sd_tokenizer;

/* Build the tokenizer from the embedded vocabulary (a few ms).  On success *out owns it; free
 * with sd_tokenizer_free.  Errors: SD_ERR_NOMEM; SD_ERR_INTERNAL if the embedded vocabulary
 * is not what it must be (a build problem).  Any thread. */
sd_status sd_tokenizer_new(sd_tokenizer **out, sd_error *err);
void sd_tokenizer_free(sd_tokenizer *tok);

/* Token ids of `len` bytes of UTF-8 `text` (need not be NUL-terminated), without bos/eos and
 * without any limit on the count.  On success *ids is an sd_malloc'ed array of *n_ids ids
 * (NULL when there are none), owned by the caller (sd_free).  Errors: SD_ERR_INVALID_ARG
 * (text is not valid UTF-8; the message gives the byte offset), SD_ERR_NOMEM.  On error
 * *ids = NULL, *n_ids = 0.  Any thread, concurrently. */
sd_status sd_tokenizer_encode(const sd_tokenizer *tok, sd_tok_mode mode, const char *text,
                              size_t len, int32_t **ids, size_t *n_ids, sd_error *err);

/* One text-encoder window, as diffusers builds it (padding="max_length", max_length=77,
 * truncation=True): bos, the first 75 tokens, eos, padding. */
typedef struct sd_tok_window {
    int32_t ids[SD_TOK_WINDOW];
    size_t n_tokens;             /* ids before the padding, bos and eos included (2..77) */
    size_t n_untruncated;        /* what n_tokens would be without the limit */
} sd_tok_window;

/* Fill *out for the NUL-terminated UTF-8 `text`; out->n_untruncated > out->n_tokens says
 * that tokens were cut.  Errors as sd_tokenizer_encode.  Any thread, concurrently. */
sd_status sd_tokenizer_window(const sd_tokenizer *tok, sd_tok_mode mode, const char *text,
                              sd_tok_window *out, sd_error *err);

/* A prompt in the A1111 syntax, cut into windows (see PROMPTS above). */
typedef struct sd_prompt_tokens {
    size_t n_chunks;             /* >= 1; the empty prompt is one window: bos, eos, padding */
    size_t n_tokens;             /* prompt tokens over all windows (no bos/eos/padding) */
    int32_t *ids;                /* [n_chunks * SD_TOK_WINDOW] */
    float *weights;              /* [n_chunks * SD_TOK_WINDOW] */
} sd_prompt_tokens;

/* Parse and tokenize the NUL-terminated UTF-8 `prompt`.  On success *out holds arrays owned
 * by the caller: release them with sd_prompt_tokens_free.  Errors: SD_ERR_INVALID_ARG (not
 * UTF-8; a bracket weight that is not a number or does not fit a float), SD_ERR_NOMEM; on
 * error *out is all zero.  Any thread, concurrently. */
sd_status sd_prompt_tokenize(const sd_tokenizer *tok, sd_tok_mode mode, const char *prompt,
                             sd_prompt_tokens *out, sd_error *err);
/* Free the arrays of *p and zero it.  NULL or an all-zero struct is a no-op. */
void sd_prompt_tokens_free(sd_prompt_tokens *p);

#endif
