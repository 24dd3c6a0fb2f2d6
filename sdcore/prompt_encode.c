/* prompt_encode.c - from prompt text to the hidden states the UNet attends to: the
 * tokenizer (raw diffusers window, or A1111 syntax in 75-token chunks with weights) followed
 * by the text encoder.  Shared by the pipelines and `sd encode-text`. */
#include "internal/model.h"
#include "internal/text_encoder.h"
#include "internal/tokenizer.h"

sd_status sd_text_encode_prompt(sd_ctx *ctx, const sd_model *m, const sd_tokenizer *tok,
                                const char *prompt, bool raw, int clip_skip, float **hidden,
                                int *n_windows, sd_error *err)
{
    *hidden = NULL;
    *n_windows = 0;
    const int D = sd_text_hidden_size(m);
    if (D == 0)
        return sd_fail(err, SD_ERR_INVALID_ARG, "the model has no text encoder");
    const sd_tok_mode mode = sd_model_get_hparams(m)->text_pad_id == 0 ? SD_TOK_SD2 : SD_TOK_SD1;
    sd_prompt_tokens pt = {0};
    sd_tok_window win;
    const int32_t *ids;
    const float *weights = NULL;
    size_t n;
    sd_status st;
    if (raw) {
        if ((st = sd_tokenizer_window(tok, mode, prompt, &win, err)))
            return st;
        ids = win.ids;
        n = 1;
    } else {
        if ((st = sd_prompt_tokenize(tok, mode, prompt, &pt, err)))
            return st;
        ids = pt.ids;
        weights = pt.weights;
        n = pt.n_chunks;
    }
    size_t bytes;
    float *h = NULL;
    if (!sd_mul_ok(n * SD_TEXT_WINDOW * sizeof(float), (size_t)D, &bytes) ||
        !(h = sd_malloc(bytes))) {
        st = sd_fail_nomem(err, "prompt embeddings");
    } else if ((st = sd_text_encode(ctx, m, ids, weights, (int)n, clip_skip, h, err))) {
        sd_free(h);
        h = NULL;
    }
    sd_prompt_tokens_free(&pt);
    *hidden = h;
    *n_windows = h ? (int)n : 0;
    return st;
}
