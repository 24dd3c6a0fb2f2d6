/* internal/text_encoder.h - the CLIP text transformer that turns 77-token windows into the
 * hidden states the UNet attends to: CLIP ViT-L/14 (SD 1.x, quick-GELU) and OpenCLIP ViT-H
 * (SD 2.x, GELU; mapped by the loader onto the same names with its last block dropped), both
 * read through the canonical "text_model.*" names of internal/model.h. */
#ifndef SD_INTERNAL_TEXT_ENCODER_H
#define SD_INTERNAL_TEXT_ENCODER_H

#include "internal/common.h"

#define SD_TEXT_WINDOW 77

/* Width of the hidden states (768 for CLIP-L, 1024 for OpenCLIP-H), or 0 when the model has
 * no text encoder. */
int sd_text_hidden_size(const sd_model *m);

/* Encode n_chunks windows of SD_TEXT_WINDOW token ids each (bos ... eos pad, as the
 * tokenizer makes them).
 *   clip_skip: 0 = the last layer (what SD 1.x and 2.x use), k > 0 = stop k layers early
 *              (A1111's "CLIP skip k+1"); the final LayerNorm is applied either way.
 *   weights:   NULL, or one emphasis weight per token: each token's hidden state is scaled
 *              by it and the chunk is then rescaled to its original mean (A1111's rule).
 *   out:       caller-owned [n_chunks * 77, hidden] floats.
 * Runs on the calling thread with ctx's pool.  Errors: SD_ERR_INVALID_ARG (no text encoder,
 * bad ids or clip_skip), SD_ERR_FORMAT (missing/ill-shaped tensors), SD_ERR_NOMEM. */
sd_status sd_text_encode(sd_ctx *ctx, const sd_model *m, const int32_t *ids, const float *weights,
                         int n_chunks, int clip_skip, float *out, sd_error *err);

/* Tokenise and encode a whole prompt for model m (prompt_encode.c): with raw = false the
 * A1111 syntax ((word:1.3), (word), [word], \(, BREAK) and 75-token chunks, each chunk one
 * window, emphasis weights applied; with raw = true exactly what diffusers does (the text as
 * it is, one window, truncated).  The tokenizer convention (SD 1.x end-token padding, SD 2.x
 * zero padding) follows the model.  On success *hidden is an sd_malloc'ed
 * [*n_windows * 77, hidden] array owned by the caller (sd_free).  Errors as sd_text_encode,
 * plus SD_ERR_INVALID_ARG for a prompt that is not valid UTF-8 or has a bad weight. */
struct sd_tokenizer;
sd_status sd_text_encode_prompt(sd_ctx *ctx, const sd_model *m, const struct sd_tokenizer *tok,
                                const char *prompt, bool raw, int clip_skip, float **hidden,
                                int *n_windows, sd_error *err);

#endif
