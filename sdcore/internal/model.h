/* internal/model.h - what the networks see of a loaded model: tensors by canonical name and
 * the hyper-parameters the tensors alone cannot tell.  The loader (model.c) maps every
 * supported file layout onto ONE canonical naming, so each network is written once:
 *
 *   UNet          "model.diffusion_model.*"  original CompVis/LDM names (input_blocks.N.M...,
 *                                            middle_block, output_blocks, time_embed, out)
 *   VAE           "first_stage_model.*"      original names (encoder.down.N.block.M...,
 *                                            mid.attn_1.q/k/v/proj_out as [C,C,1,1] views)
 *   text encoder  "text_model.*"             Hugging Face CLIPTextModel names
 *                                            (embeddings.token_embedding.weight,
 *                                            encoder.layers.N.self_attn.q_proj.weight, ...,
 *                                            final_layer_norm).  SD 2.x OpenCLIP files are
 *                                            mapped onto it: fused in_proj split into q/k/v
 *                                            row views, and the last resblock dropped (SD 2.x
 *                                            conditions on the penultimate block + ln_final),
 *                                            so every text encoder runs all its layers.
 *   TAESD         "taesd.encoder.layers.N.*", "taesd.decoder.layers.N.*"  (diffusers
 *                                            AutoencoderTiny numbering; the original
 *                                            taesd.py Sequential files are renumbered)
 *
 * Diffusers folders are renamed onto the same names.  Views never copy: they point into the
 * mapped files, in the stored dtype. */
#ifndef SD_INTERNAL_MODEL_H
#define SD_INTERNAL_MODEL_H

#include "internal/common.h"

typedef enum sd_activation { SD_ACT_QUICK_GELU, SD_ACT_GELU } sd_activation;

typedef struct sd_model_hparams {
    /* UNet */
    int unet_heads[4];           /* attention heads per resolution level (diffusers'
                                    attention_head_dim, which is a head COUNT); level 3 is
                                    also used for the mid block */
    bool unet_upcast_attention;  /* SD 2.1: attention scores in fp32 (always so here) */
    /* text encoder */
    int text_heads;
    sd_activation text_act;      /* SD 1.x quick-GELU, SD 2.x GELU */
    float text_eps;              /* LayerNorm eps, 1e-5 */
    int text_pad_id;             /* 49407 (SD 1.x end token) or 0 (SD 2.x '!') */
    /* sampling */
    sd_prediction prediction;    /* from a config, else SD_PREDICT_UNKNOWN */
    sd_variant variant;          /* from a scheduler config or the file name */
    float vae_scaling_factor;    /* 0.18215 unless a config says otherwise */
} sd_model_hparams;

const sd_model_hparams *sd_model_get_hparams(const sd_model *m);

/* The tensor with this canonical name, or NULL. */
const sd_tensor *sd_model_tensor(const sd_model *m, const char *name);
/* Same with a printf-style name. */
const sd_tensor *sd_model_tensorf(const sd_model *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Required tensor: *out is set, or SD_ERR_FORMAT "model is missing tensor <name>". */
sd_status sd_model_need(const sd_model *m, sd_error *err, const sd_tensor **out,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
