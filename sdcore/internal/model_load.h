/* internal/model_load.h - what the model loader's files share: the sd_model struct, the file
 * layouts the loader understands, and the three jobs split over small files:
 *   model_names.c   maps each layout's tensor names onto the canonical names of model.h
 *   model_detect.c  tells what a file is (or which unsupported thing it is) and the family
 *   model_config.c  hyper-parameters: family defaults, then diffusers configs or a sidecar
 * model.c ties them together (sd_model_load) and holds the accessors.  Nothing outside the
 * loader includes this header. */
#ifndef SD_INTERNAL_MODEL_LOAD_H
#define SD_INTERNAL_MODEL_LOAD_H

#include "internal/json.h"
#include "internal/model.h"
#include "internal/safetensors.h"

/* How the tensor names of one safetensors file are spelled. */
typedef enum sd_layout {
    SD_LAYOUT_LDM,             /* original single file: model.diffusion_model.*,
                                  first_stage_model.*, cond_stage_model.{transformer,model}.* */
    SD_LAYOUT_DIFFUSERS_UNET,  /* diffusers UNet2DConditionModel (unet/) */
    SD_LAYOUT_DIFFUSERS_VAE,   /* diffusers AutoencoderKL (vae/) */
    SD_LAYOUT_HF_CLIP_TEXT,    /* transformers CLIPTextModel (text_encoder/): text_model.* */
    SD_LAYOUT_TAESD_ENCODER,   /* taesd.py Encoder(): 0.weight, 1.conv.0.weight, ... */
    SD_LAYOUT_TAESD_DECODER,   /* taesd.py Decoder(): 1.weight (index 0 is a Clamp) ... */
    SD_LAYOUT_TAESD_DIFFUSERS, /* diffusers AutoencoderTiny: {en,de}coder.layers.N.* */
} sd_layout;

#define SD_MODEL_MAX_FILES 4

typedef struct sd_model_entry {
    const char *name;          /* canonical, in sd_model.names */
    sd_tensor t;               /* view into a mapped file (never owned) */
} sd_model_entry;

struct sd_model {
    sd_st_file *files[SD_MODEL_MAX_FILES];
    int n_files;
    sd_model_entry *tensors;  /* sorted by name */
    size_t n;
    char *names;               /* arena holding every canonical name */
    bool openclip;             /* the text encoder came from an OpenCLIP (SD 2.x) file */
    sd_model_hparams hp;
    sd_model_info info;
    struct sd_pack_cache *packs; /* packed weights made by the ops (internal/pack.h) */
};

/* Called once per canonical tensor produced by a mapping. */
typedef void (*sd_model_emit_fn)(void *user, const char *name, const sd_tensor *view);

/* Map every tensor of `f` (spelled as `layout`) onto canonical names and call emit for each;
 * tensors with no canonical counterpart (EMA copies, schedule buffers, position_ids, logit
 * scale, text projection, the unused last OpenCLIP block) are skipped.  SD 2.x fused
 * in_proj tensors become three row views; diffusers VAE attention [C,C] matrices become
 * [C,C,1,1] views.  `what` names the file in messages.  Errors: SD_ERR_UNSUPPORTED (a mapped
 * tensor has a dtype or rank that cannot be used), SD_ERR_FORMAT (a fused tensor of the
 * wrong shape).  Deterministic: calling it twice emits the same sequence.  Thread: any. */
sd_status sd_model_map_names(const sd_st_file *f, sd_layout layout, const char *what,
                             sd_model_emit_fn emit, void *user, sd_error *err);

/* Tell what a standalone safetensors file at `what` is: an SD single file (LDM) or one of
 * the TAESD layouts.  Anything else is SD_ERR_UNSUPPORTED naming what was recognised (SDXL,
 * SD3, Flux, Stable Cascade, a LoRA, a ControlNet, an embedding, a lone VAE/UNet/text
 * encoder, ...) or SD_ERR_FORMAT "not a Stable Diffusion checkpoint (N tensors, first: X)".
 * Thread: any. */
sd_status sd_model_classify(const sd_st_file *f, const char *what, sd_layout *out,
                            sd_error *err);

/* The first half of sd_model_classify: SD_ERR_UNSUPPORTED naming what `f` is when it is one
 * of the recognised unsupported kinds (applied to diffusers component files too). */
sd_status sd_model_reject_others(const sd_st_file *f, const char *what, sd_error *err);

/* After the canonical tensors are in place: set m->info.family, unet_in_channels and the
 * has_* flags, and check the tensors each present component cannot do without.  Errors:
 * SD_ERR_FORMAT ("SD1 checkpoint without a UNet", "UNet is missing tensor X"),
 * SD_ERR_UNSUPPORTED (a UNet with 8 input channels, ...).  `what` names the model. */
sd_status sd_model_detect_family(sd_model *m, const char *what, sd_error *err);

/* The hyper-parameters of m's family, derived from its tensors (head counts from channel
 * widths).  Needs m->info.family set. */
void sd_model_default_hparams(sd_model *m);

/* Apply one config object (the diffusers/transformers keys) of component `which`
 * ("unet", "text_encoder", "vae", "scheduler", "tokenizer") to m->hp.  `what` names the file
 * in messages.  Errors: SD_ERR_FORMAT (wrong types/values), SD_ERR_UNSUPPORTED (an
 * activation, prediction type or pad token this engine does not implement). */
sd_status sd_model_apply_config(sd_model *m, const char *which, const sd_json *cfg,
                                const char *what, sd_error *err);

/* Apply a sidecar file {"unet": {...}, "text_encoder": {...}, "vae": {...},
 * "scheduler": {...}, "tokenizer": {"pad_token": ...}}.  Errors as above plus SD_ERR_IO,
 * SD_ERR_NOMEM; unknown top-level keys are SD_ERR_FORMAT (a typo must not pass silently). */
sd_status sd_model_apply_sidecar(sd_model *m, const char *path, sd_error *err);

/* The same on an already parsed sidecar object `root` (e.g. a fuzzer's input); `what` names
 * it in messages.  Errors as sd_model_apply_config, plus SD_ERR_FORMAT when root is not an
 * object.  m->hp may be partly updated on error.  Thread: any (m is not shared). */
sd_status sd_model_apply_sidecar_json(sd_model *m, const sd_json *root, const char *what,
                                      sd_error *err);

/* Check the final hyper-parameters against the tensors (channels divisible by head counts,
 * ...).  Errors: SD_ERR_FORMAT naming the mismatch and the fix (a sidecar/config). */
sd_status sd_model_check_hparams(const sd_model *m, const char *what, sd_error *err);

#endif
