/* tests/t_text_encoder.c - the CLIP (SD 1.x) and OpenCLIP (SD 2.x) text encoders against the
 * golden text_encoder cases, from single files (f16 and an f32 copy) and diffusers folders,
 * with clip skip, with the reference kernels, and the emphasis-weight rescaling rule. */
#include "harness.h"
#include "model_util.h"

#include "internal/model.h"
#include "internal/text_encoder.h"
#include "internal/tokenizer.h"

static sd_ctx *ctx, *ref_ctx;

/* Run one golden case file against one model; returns 1 if everything matched. */
static void check_case(const char *model_path, const char *case_path, sd_ctx *c, bool skip_too)
{
    sd_error err = {0};
    sd_st_file *cf = NULL;
    float *got = NULL;
    int32_t ids[2 * 77];
    sd_model *m = t_load_model(c, model_path);
    if (!m)
        return;
    CHECK(sd_st_open(case_path, &cf, &err) == SD_OK, "%s", err.msg);
    const sd_tensor *tid = sd_st_tensor(cf, "input_ids");
    const sd_tensor *last = sd_st_tensor(cf, "last_hidden_state");
    const sd_tensor *pen = sd_st_tensor(cf, "penultimate_hidden_state_final_ln");
    if (!tid || !last || !pen || tid->dtype != SD_DTYPE_I64) {
        CHECK(0, "case file %s lacks tensors", case_path);
        goto out;
    }
    for (int i = 0; i < 2 * 77; i++)
        ids[i] = (int32_t)((const int64_t *)tid->data)[i];
    const int D = sd_text_hidden_size(m);
    CHECK(D == last->shape[2], "hidden size %d", D);
    got = malloc(sizeof(float) * 2 * 77 * (size_t)D);
    char what[512];
    CHECK(sd_text_encode(c, m, ids, NULL, 2, 0, got, &err) == SD_OK, "%s", err.msg);
    snprintf(what, sizeof what, "%s last_hidden_state (%s)", model_path,
             c == ref_ctx ? "ref" : "default");
    t_close(what, got, last->data, 2 * 77 * (size_t)D, 1e-5, 1e-4);
    if (skip_too) {
        CHECK(sd_text_encode(c, m, ids, NULL, 2, 1, got, &err) == SD_OK, "%s", err.msg);
        snprintf(what, sizeof what, "%s clip skip 1", model_path);
        t_close(what, got, pen->data, 2 * 77 * (size_t)D, 1e-5, 1e-4);
    }
out:
    free(got);
    sd_st_close(cf);
    sd_model_free(m);
}

/* The emphasis rule: weights scale token states, then the window's mean is restored. */
static void check_weights(const char *model_path)
{
    sd_error err = {0};
    sd_model *m = t_load_model(ctx, model_path);
    if (!m)
        return;
    const int D = sd_text_hidden_size(m);
    int32_t ids[77];
    float w[77];
    for (int i = 0; i < 77; i++) {
        ids[i] = i == 0 ? 49406 : i < 5 ? 320 + i : 49407;
        w[i] = 1.0f;
    }
    w[2] = 1.5f;
    w[3] = 0.5f;
    float *plain = malloc(sizeof(float) * 77 * D), *weighted = malloc(sizeof(float) * 77 * D);
    CHECK(sd_text_encode(ctx, m, ids, NULL, 1, 0, plain, &err) == SD_OK, "%s", err.msg);
    CHECK(sd_text_encode(ctx, m, ids, w, 1, 0, weighted, &err) == SD_OK, "%s", err.msg);
    double sp = 0, sw = 0;
    for (int i = 0; i < 77 * D; i++)
        sp += plain[i], sw += weighted[i];
    CHECK(fabs(sp - sw) <= 1e-3 * (fabs(sp) + 1), "mean restored: %g vs %g", sp, sw);
    /* every token's state is its plain state times w[t] times one common factor */
    double k = 0;
    for (int i = 0; i < D; i++)
        if (fabs(plain[5 * D + i]) > 1e-3) {
            k = weighted[5 * D + i] / plain[5 * D + i];
            break;
        }
    int bad = 0;
    for (int t = 0; t < 77; t++)
        for (int i = 0; i < D; i++)
            bad += fabs(weighted[t * D + i] - k * w[t] * plain[t * D + i]) >
                   1e-5 * (1 + fabs(plain[t * D + i]));
    CHECK(bad == 0, "%d states not scaled by weight x common factor", bad);
    CHECK(fabs(k - 1) > 1e-6, "rescale factor differs from 1 (%g)", k);
    /* errors */
    CHECK(sd_text_encode(ctx, m, ids, NULL, 1, 99, plain, &err) == SD_ERR_INVALID_ARG,
          "clip skip out of range");
    ids[4] = 1 << 20;
    CHECK(sd_text_encode(ctx, m, ids, NULL, 1, 0, plain, &err) == SD_ERR_INVALID_ARG,
          "bad token id");
    free(plain);
    free(weighted);
    sd_model_free(m);
}

/* sd_text_encode_prompt (raw, as diffusers tokenises) and `sd encode-text` reproduce the
 * golden rows: row 0 is the prompt, row 1 the empty prompt. */
static void check_prompt_path(void)
{
    static const char prompt[] = "a photograph of an astronaut riding a horse";
    sd_error err = {0};
    sd_model *m = NULL;
    sd_tokenizer *tok = NULL;
    sd_st_file *cf = NULL;
    float *h = NULL;
    int n = 0;
    if (sd_model_load(ctx, t_data("tiny-sd15/model-f16.safetensors"), &m, &err) ||
        sd_tokenizer_new(&tok, &err) ||
        sd_st_open(t_data("tiny-sd15/text_encoder.safetensors"), &cf, &err)) {
        CHECK(0, "%s", err.msg);
        goto out;
    }
    const float *want = sd_st_tensor(cf, "last_hidden_state")->data;
    const size_t row = 77 * 32;
    CHECK(sd_text_encode_prompt(ctx, m, tok, prompt, true, 0, &h, &n, &err) == SD_OK && n == 1,
          "%s", err.msg);
    t_close("encode_prompt raw", h, want, row, 1e-5, 1e-4);
    sd_free(h);
    CHECK(sd_text_encode_prompt(ctx, m, tok, "", false, 0, &h, &n, &err) == SD_OK && n == 1,
          "%s", err.msg);
    t_close("encode_prompt empty (A1111 path)", h, want + row, row, 1e-5, 1e-4);
    sd_free(h);
    h = NULL;
    /* a 100-token prompt makes two windows */
    char longp[1024] = "";
    for (int i = 0; i < 100; i++)
        strcat(longp, "cat ");
    CHECK(sd_text_encode_prompt(ctx, m, tok, longp, false, 0, &h, &n, &err) == SD_OK && n == 2,
          "long prompt: %d windows", n);

    char args[2048], out[4096], errs[4096];
    snprintf(args, sizeof args, "encode-text --raw -m '%s' -p '%s' -o '%s'",
             t_data("tiny-sd15/model-f16.safetensors"), prompt, t_tmp("enc.safetensors"));
    int rc = t_run_sd(args, out, sizeof out, errs, sizeof errs);
    CHECK(rc == 0, "sd encode-text: rc %d: %s", rc, errs);
    sd_st_file *ef = NULL;
    if (rc == 0 && sd_st_open(t_tmp("enc.safetensors"), &ef, &err) == SD_OK) {
        const sd_tensor *t = sd_st_tensor(ef, "hidden_states");
        CHECK(t && t->ndim == 3 && t->shape[0] == 1 && t->shape[1] == 77 && t->shape[2] == 32,
              "hidden_states shape");
        if (t)
            t_close("sd encode-text", t->data, want, row, 1e-5, 1e-4);
        sd_st_close(ef);
    }
    snprintf(args, sizeof args, "encode-text -m /nonexistent.safetensors -p x -o '%s'",
             t_tmp("x.safetensors"));
    rc = t_run_sd(args, out, sizeof out, errs, sizeof errs);
    CHECK(rc != 0 && strchr(errs, '\n') == errs + strlen(errs) - 1, "one error line: %s", errs);
out:
    sd_free(h);
    sd_st_close(cf);
    sd_tokenizer_free(tok);
    sd_model_free(m);
}

int main(void)
{
    t_tmp_fresh("t_text_encoder");
    CHECK((ctx = t_ctx_new(false)) != NULL, "context");
    CHECK((ref_ctx = t_ctx_new(true)) != NULL, "reference context");

    const char *sd15_case = t_data("tiny-sd15/text_encoder.safetensors");
    const char *sd2_case = t_data("tiny-sd2v/text_encoder.safetensors");
    check_case(t_data("tiny-sd15/model-f16.safetensors"), sd15_case, ctx, true);
    check_case(t_data("tiny-sd15/model-f16.safetensors"), sd15_case, ref_ctx, false);
    check_case(t_data("tiny-sd15/diffusers"), sd15_case, ctx, true);
    check_case(t_data("tiny-sd2v/model-f16.safetensors"), sd2_case, ctx, true);
    check_case(t_data("tiny-sd2v/diffusers"), sd2_case, ctx, true);

    const char *f32 = t_tmp("sd15-f32.safetensors");
    CHECK(t_write_model_copy(t_data("tiny-sd15/model-f16.safetensors"), f32, SD_DTYPE_F32),
          "write f32 copy");
    check_case(f32, sd15_case, ctx, true);
    const char *sd2f32 = t_tmp("sd2v-f32.safetensors");
    CHECK(t_write_model_copy(t_data("tiny-sd2v/model-f16.safetensors"), sd2f32, SD_DTYPE_F32),
          "write f32 copy");
    check_case(sd2f32, sd2_case, ctx, true);
    t_remove_model(f32);
    t_remove_model(sd2f32);

    check_weights(t_data("tiny-sd15/model-f16.safetensors"));
    check_prompt_path();

    sd_ctx_free(ctx);
    sd_ctx_free(ref_ctx);
    return t_summary("t_text_encoder");
}
