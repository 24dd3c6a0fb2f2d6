/* tests/fuzz/fuzz_model_config.c - libFuzzer target: arbitrary bytes as the hyper-parameter
 * configs a model comes with (model_config.c): first as a sidecar JSON next to a single file,
 * then as each diffusers/transformers component config (unet/config.json, ...).  The model is
 * a tensor table with the shapes of a full-size SD1 or SD2 checkpoint (no data: configs only
 * read shapes); the first input byte picks the family.  Whatever the JSON holds, the result
 * must be an error with a message, or hyper-parameters that sd_model_check_hparams accepts
 * only when every head count divides its width. */
#include "internal/model_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(c) ((c) ? (void)0 : __builtin_trap())

enum { MAX_T = 16 };

static char names[MAX_T][128];
static sd_model_entry table[MAX_T];

static void add(sd_model *m, const char *name, int ndim, int64_t d0, int64_t d1)
{
    sd_model_entry *e = &table[m->n];
    snprintf(names[m->n], sizeof names[0], "%s", name);
    e->name = names[m->n];
    memset(&e->t, 0, sizeof e->t);
    e->t.dtype = SD_DTYPE_F16;
    e->t.ndim = ndim;
    e->t.shape[0] = d0;
    for (int i = 1; i < ndim; i++)
        e->t.shape[i] = i == 1 ? d1 : 1;
    m->n++;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const sd_model_entry *)a)->name, ((const sd_model_entry *)b)->name);
}

/* A table of the tensors model_config.c looks at, shaped like a real SD1/SD2 checkpoint. */
static void build(sd_model *m, unsigned pick)
{
    static const int64_t width[4] = {320, 640, 1280, 1280};
    static const sd_family fam[4] = {SD_FAMILY_SD1, SD_FAMILY_SD1_INPAINT, SD_FAMILY_SD2,
                                     SD_FAMILY_SD2_INPAINT};
    bool sd2 = (pick & 3) >= 2;
    char name[128];
    memset(m, 0, sizeof *m);
    m->info.family = fam[pick & 3];
    m->info.has_unet = true;
    m->info.has_text_encoder = !(pick & 4);
    for (int l = 0; l < 4; l++) {
        snprintf(name, sizeof name, "model.diffusion_model.input_blocks.%d.0.out_layers.3.weight",
                 3 * l + 1);
        add(m, name, 4, width[l], width[l]);
        if (l < 3) {
            snprintf(name, sizeof name, "model.diffusion_model.input_blocks.%d.1.proj_in.weight",
                     3 * l + 1);
            add(m, name, sd2 ? 2 : 4, width[l], width[l]);
        }
    }
    add(m, "model.diffusion_model.middle_block.1.proj_in.weight", sd2 ? 2 : 4, 1280, 1280);
    if (m->info.has_text_encoder)
        add(m, "text_model.embeddings.token_embedding.weight", 2, 49408, sd2 ? 1024 : 768);
    qsort(table, m->n, sizeof *table, cmp_entry);
    m->tensors = table;
}

/* Accepted hyper-parameters must be consistent with the tensors. */
static void check_accepted(const sd_model *m)
{
    const sd_model_hparams *hp = &m->hp;
    static const int64_t width[4] = {320, 640, 1280, 1280};
    for (int l = 0; l < 4; l++)
        REQUIRE(hp->unet_heads[l] > 0 && width[l] % hp->unet_heads[l] == 0);
    if (m->info.has_text_encoder) {
        int64_t w = m->info.family >= SD_FAMILY_SD2 ? 1024 : 768;
        REQUIRE(hp->text_heads > 0 && w % hp->text_heads == 0);
    }
    REQUIRE(hp->text_act == SD_ACT_GELU || hp->text_act == SD_ACT_QUICK_GELU);
    REQUIRE(hp->text_eps > 0 && hp->text_eps < 1);
    REQUIRE(hp->vae_scaling_factor > 0);
    REQUIRE(hp->prediction == SD_PREDICT_UNKNOWN || hp->prediction == SD_PREDICT_EPSILON ||
            hp->prediction == SD_PREDICT_V);
}

static void expect(sd_status st, const sd_error *err)
{
    if (st != SD_OK)
        REQUIRE((st == SD_ERR_FORMAT || st == SD_ERR_UNSUPPORTED) && err->code == st &&
                err->msg[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    sd_json *root = NULL;
    sd_error err = {0};
    if (sd_json_parse((const char *)data + 1, size - 1, &root, &err) != SD_OK)
        return 0;
    static const char *const which[] = {"unet", "text_encoder", "vae", "scheduler",
                                        "tokenizer", "bogus"};
    sd_model m;
    build(&m, data[0]);
    sd_model_default_hparams(&m);
    REQUIRE(sd_model_check_hparams(&m, "fuzz", &err) == SD_OK);
    sd_status st = sd_model_apply_sidecar_json(&m, root, "fuzz", &err);
    expect(st, &err);
    if (st == SD_OK) {
        st = sd_model_check_hparams(&m, "fuzz", &err);
        expect(st, &err);
        if (st == SD_OK)
            check_accepted(&m);
    }
    for (size_t i = 0; i < sizeof which / sizeof which[0]; i++) {
        build(&m, data[0]);
        sd_model_default_hparams(&m);
        err = (sd_error){0};
        st = sd_model_apply_config(&m, which[i], root, "fuzz", &err);
        expect(st, &err);
        REQUIRE(i < 5 || st == SD_ERR_FORMAT);
        if (st == SD_OK && (st = sd_model_check_hparams(&m, "fuzz", &err)) == SD_OK)
            check_accepted(&m);
        expect(st, &err);
    }
    sd_json_free(root);
    REQUIRE(sd_alloc_live_bytes() == 0);
    return 0;
}
