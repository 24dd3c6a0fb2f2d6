/* cli/cmd_tokenize.c - `sd tokenize`: show the token ids the text encoder gets for a prompt,
 * either as diffusers builds them (one 77-id window, comparable with the golden
 * sd1_input_ids / sd2_input_ids) or, with --weights, as A1111-syntax chunks with the weight
 * of every token.  For checking prompts and the tokenizer by hand. */
#include "cli/cli.h"
#include "internal/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char NAME[] = "tokenize";

static void print_ids(const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
}

/* The shortest decimal form that reads back as the same float. */
static void print_weights(const float *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char buf[32];
        for (int prec = 1; prec <= 9; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, (double)w[i]);
            if (strtof(buf, NULL) == w[i])
                break;
        }
        printf(i ? " %s" : "%s", buf);
    }
    putchar('\n');
}

static int cmd_tokenize(int argc, char **argv)
{
    bool sd2 = false, weights = false;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--sd2")) {
            sd2 = true;
        } else if (!strcmp(argv[i], "--weights")) {
            weights = true;
        } else if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else {
            return sd_cli_fail(NAME, "unknown option '%s'", argv[i]);
        }
    }
    if (i != argc - 1)
        return sd_cli_fail(NAME, "expected one TEXT argument (quote the prompt)");
    const char *text = argv[i];
    sd_tok_mode mode = sd2 ? SD_TOK_SD2 : SD_TOK_SD1;

    sd_error err = {0};
    sd_tokenizer *tok = NULL;
    if (sd_tokenizer_new(&tok, &err) != SD_OK)
        return sd_cli_fail_err(NAME, &err);
    int rc = 0;
    if (weights) {
        sd_prompt_tokens pt;
        if (sd_prompt_tokenize(tok, mode, text, &pt, &err) != SD_OK) {
            rc = sd_cli_fail_err(NAME, &err);
        } else {
            for (size_t c = 0; c < pt.n_chunks; c++) {
                print_ids(pt.ids + c * SD_TOK_WINDOW, SD_TOK_WINDOW);
                print_weights(pt.weights + c * SD_TOK_WINDOW, SD_TOK_WINDOW);
            }
            sd_prompt_tokens_free(&pt);
        }
    } else {
        sd_tok_window w;
        if (sd_tokenizer_window(tok, mode, text, &w, &err) != SD_OK) {
            rc = sd_cli_fail_err(NAME, &err);
        } else {
            print_ids(w.ids, SD_TOK_WINDOW);
            if (w.n_untruncated > w.n_tokens)
                fprintf(stderr, "sd %s: %zu of %zu tokens cut (the window holds 75)\n", NAME,
                        w.n_untruncated - w.n_tokens, w.n_untruncated - 2);
        }
    }
    sd_tokenizer_free(tok);
    return rc;
}

const sd_cli_cmd sd_cli_cmd_tokenize = {
    NAME, "[--sd2] [--weights] [--] TEXT",
    "token ids of TEXT: one 77-id window as diffusers makes it (--sd2: pad 0, '!' = 0); "
    "--weights: A1111 syntax, a line of 77 ids and a line of weights per chunk",
    cmd_tokenize};
