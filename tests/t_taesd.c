/* tests/t_taesd.c - TAESD against the golden case taesd/taesd_cases.safetensors (encoder on
 * the case image; decoder on the case latents and on a random latent) from the original
 * taesd.py file pair and from an AutoencoderTiny-named single file written here; an
 * encoder-only model; argument errors and allocation failures. */
#include "harness.h"
#include "case_util.h"
#include "model_util.h"
#include "internal/model.h"
#include "internal/ops.h"
#include "internal/safetensors.h"
#include "internal/taesd.h"

/* Golden tolerance for one network call (golden README). */
#define GOLD_RTOL 1e-4
#define GOLD_ATOL 1e-5

static sd_ctx *ctx;

static void golden(const char *what, const sd_model *m, const sd_st_file *c)
{
    char label[128];
    sd_error err = {0};
    sd_taesd_info info;
    CHECK(sd_taesd_get_info(m, &info, &err) == SD_OK, "%s", err.msg);
    CHECK(info.has_encoder && info.has_decoder && info.latent_channels == 4 && info.factor == 8,
          "%s info: enc %d dec %d z %d f %d", what, info.has_encoder, info.has_decoder,
          info.latent_channels, info.factor);
    float *img = t_case_f32(c, "image", NULL), *ref = t_case_f32(c, "latents", NULL);
    float lat[4 * 16 * 16];
    CHECK(sd_taesd_encode(ctx, m, img, 128, 128, lat, &err) == SD_OK, "%s", err.msg);
    snprintf(label, sizeof label, "%s latents", what);
    t_close(label, lat, ref, 1024, GOLD_ATOL, GOLD_RTOL);
    free(img), free(ref);
    static const char *const io[2][2] = {{"latents", "decoded"}, {"latents_rand",
                                                                  "decoded_rand"}};
    float *out = malloc(3 * 128 * 128 * sizeof(float));
    for (int k = 0; k < 2; k++) {
        float *z = t_case_f32(c, io[k][0], NULL), *want = t_case_f32(c, io[k][1], NULL);
        CHECK(sd_taesd_decode(ctx, m, z, 16, 16, out, &err) == SD_OK, "%s", err.msg);
        snprintf(label, sizeof label, "%s %s", what, io[k][1]);
        t_close(label, out, want, 3 * 128 * 128, GOLD_ATOL, GOLD_RTOL);
        free(z), free(want);
    }
    free(out);
}

static void test_errors(const sd_model *m)
{
    sd_error err = {0};
    float z[4 * 8 * 8] = {0}, img[3 * 64 * 64] = {0};
    CHECK(sd_taesd_encode(ctx, m, img, 64, 60, z, &err) == SD_ERR_INVALID_ARG &&
              strstr(err.msg, "multiple of 8"),
          "odd size: %s", err.msg);
    CHECK(sd_taesd_decode(ctx, m, z, 8, 0, img, &err) == SD_ERR_INVALID_ARG, "empty latent");
    CHECK(sd_taesd_decode(ctx, m, NULL, 8, 8, img, &err) == SD_ERR_INVALID_ARG, "NULL");
    sd_model *v = t_load_model(ctx, t_data("tiny-sd15/model-f16.safetensors"));
    if (v) {
        sd_taesd_info info;
        CHECK(sd_taesd_get_info(v, &info, &err) == SD_ERR_FORMAT && strstr(err.msg, "TAESD"),
              "SD model has no TAESD: %s", err.msg);
        CHECK(sd_taesd_decode(ctx, v, z, 8, 8, img, &err) == SD_ERR_FORMAT, "decode SD model");
    }
    sd_model_free(v);
    /* an encoder on its own (no sibling decoder file next to it) */
    t_copy_file(t_data("taesd/taesd_encoder.safetensors"), t_tmp("taesd_encoder.safetensors"));
    sd_model *e = t_load_model(ctx, t_tmp("taesd_encoder.safetensors"));
    if (e) {
        sd_taesd_info info;
        CHECK(sd_taesd_get_info(e, &info, &err) == SD_OK && info.has_encoder &&
                  !info.has_decoder && info.latent_channels == 4 && info.factor == 8,
              "encoder only: %s", err.msg);
        CHECK(sd_taesd_encode(ctx, e, img, 64, 64, z, &err) == SD_OK, "%s", err.msg);
        CHECK(sd_taesd_decode(ctx, e, z, 8, 8, img, &err) == SD_ERR_FORMAT &&
                  strstr(err.msg, "no TAESD decoder"),
              "decode without decoder: %s", err.msg);
    }
    sd_model_free(e);
    remove(t_tmp("taesd_encoder.safetensors"));
}

static void test_nomem(const sd_model *m)
{
    float *img = calloc(3 * 64 * 64, sizeof(float)), z[4 * 8 * 8];
    for (int pass = 0; pass < 2; pass++) {
        /* one run first: weights packed on first use stay with the model */
        CHECK((pass ? sd_taesd_decode(ctx, m, z, 8, 8, img, NULL)
                    : sd_taesd_encode(ctx, m, img, 64, 64, z, NULL)) == SD_OK,
              "nomem warm-up run");
        size_t live = sd_alloc_live_bytes();
        int fails = 0, n;
        for (n = 1; n < 2000; n++) {
            sd_alloc_fail_after(n, false);
            sd_status st = pass ? sd_taesd_decode(ctx, m, z, 8, 8, img, NULL)
                                : sd_taesd_encode(ctx, m, img, 64, 64, z, NULL);
            sd_alloc_fail_after(0, false);
            if (st == SD_OK)
                break;
            if (st != SD_ERR_NOMEM || sd_alloc_live_bytes() != live)
                fails++;
        }
        CHECK(fails == 0 && n > 1 && n < 2000, "%s: %d of %d allocation failures mishandled",
              pass ? "decode" : "encode", fails, n);
    }
    free(img);
}

int main(void)
{
    t_tmp_fresh("t_taesd");
    if (!(ctx = t_ctx_new(false)))
        return 1;
    sd_error err = {0};
    sd_st_file *c = NULL;
    CHECK(sd_st_open(t_data("taesd/taesd_cases.safetensors"), &c, &err) == SD_OK, "%s",
          err.msg);
    if (c) {
        sd_model *m = t_load_model(ctx, t_data("taesd/taesd_decoder.safetensors"));
        if (m) {
            golden("taesd.py pair", m, c);
            test_errors(m);
            test_nomem(m);
        }
        sd_model_free(m);
        const char *d = t_tmp("taesd_autoencodertiny.safetensors");
        CHECK(t_write_taesd_autoencodertiny(d), "writing the AutoencoderTiny copy");
        m = t_load_model(ctx, d);
        if (m)
            golden("AutoencoderTiny names", m, c);
        sd_model_free(m);
        remove(d);
        sd_st_close(c);
    }
    sd_ctx_free(ctx);
    return t_summary("t_taesd");
}
