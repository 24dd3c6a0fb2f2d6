/* cli/cmd_encode_text.c - `sd encode-text`: the text encoder's output for a prompt, written
 * as a safetensors tensor, so the conditioning can be inspected or compared with another
 * implementation. */
#include "cli/cli.h"
#include "internal/safetensors.h"
#include "internal/text_encoder.h"
#include "internal/tokenizer.h"

#include <stdio.h>
#include <string.h>

static const char NAME[] = "encode-text";

static int cmd_encode_text(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *out = NULL;
    long clip_skip = 0, threads = 0;
    bool raw = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "-m") && has)
            model = argv[++i];
        else if (!strcmp(a, "-p") && has)
            prompt = argv[++i];
        else if (!strcmp(a, "-o") && has)
            out = argv[++i];
        else if (!strcmp(a, "--raw"))
            raw = true;
        else if (!strcmp(a, "--clip-skip") && has) {
            if (!sd_cli_parse_int(argv[++i], 0, 64, &clip_skip))
                return sd_cli_fail(NAME, "--clip-skip takes a number 0..64");
        } else if (!strcmp(a, "--threads") && has) {
            if (sd_cli_parse_threads(NAME, a, argv[++i], &threads))
                return 1;
        } else
            return sd_cli_fail(NAME, "unknown or incomplete option '%s'", a);
    }
    if (!model || !prompt || !out)
        return sd_cli_fail(NAME, "need -m MODEL -p TEXT -o OUT.safetensors");

    int rc = 1;
    sd_error err = {0};
    sd_ctx *ctx;
    sd_model *m;
    sd_tokenizer *tok = NULL;
    float *hidden = NULL;
    int n_windows = 0;
    if (sd_cli_open_model(NAME, model, threads, false, SD_PRECISION_FP32, &ctx, &m))
        return 1;
    if (sd_tokenizer_new(&tok, &err) ||
        sd_text_encode_prompt(ctx, m, tok, prompt, raw, (int)clip_skip, &hidden, &n_windows,
                              &err)) {
        rc = sd_cli_fail_err(NAME, &err);
        goto done;
    }
    sd_tensor t = {
        .dtype = SD_DTYPE_F32,
        .ndim = 3,
        .shape = {n_windows, SD_TEXT_WINDOW, sd_text_hidden_size(m)},
        .data = hidden,
    };
    t.stride[2] = 1;
    t.stride[1] = t.shape[2];
    t.stride[0] = t.shape[1] * t.shape[2];
    const char *names[] = {"hidden_states"};
    if (sd_st_write(out, names, &t, 1, NULL, &err)) {
        rc = sd_cli_fail_err(NAME, &err);
        goto done;
    }
    printf("%s: hidden_states [%d, %d, %lld]\n", out, n_windows, SD_TEXT_WINDOW,
           (long long)t.shape[2]);
    rc = 0;
done:
    sd_free(hidden);
    sd_tokenizer_free(tok);
    sd_model_free(m);
    sd_ctx_free(ctx);
    return rc;
}

const sd_cli_cmd sd_cli_cmd_encode_text = {
    "encode-text", "-m MODEL -p TEXT -o OUT.safetensors [--raw] [--clip-skip N] [--threads N]",
    "the text encoder's hidden states for a prompt (A1111 syntax; --raw: as diffusers)",
    cmd_encode_text};
