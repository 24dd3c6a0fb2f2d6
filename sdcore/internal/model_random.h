/* internal/model_random.h - full-size Stable Diffusion checkpoints with random weights, for
 * benchmarks and loader tests at real scale without real downloads.  The layout (every tensor
 * name and shape of an original single-file checkpoint: UNet, VAE, text encoder, the schedule
 * buffers) is generated from a few architecture numbers, and the file is streamed to disk
 * tensor by tensor.  Values are deterministic in the seed and keep activations finite and of
 * sane size: PyTorch-style uniform(+-1/sqrt(fan_in)) weights and biases, norms with weight 1
 * and bias 0, CLIP-style small embeddings, the real SD noise schedule.  Used by
 * `sd make-random-model` and the tests; nothing here is a trained model. */
#ifndef SD_INTERNAL_MODEL_RANDOM_H
#define SD_INTERNAL_MODEL_RANDOM_H

#include "internal/common.h"
#include "internal/pool.h"

/* The numbers that fix a checkpoint's layout.  The rest is the SD 1.x/2.x topology: UNet
 * levels of width unet_ch x1 x2 x4 x4 with 2 ResBlocks each, transformers at levels 0-2 and
 * in the middle, time embedding 4 x unet_ch; VAE levels vae_ch x1 x2 x4 x4 (2 ResBlocks down,
 * 3 up), 4 latent channels; a text transformer with 77 positions and a 4x MLP. */
typedef struct sd_model_random_arch {
    const char *name;   /* "sd15", "sd15-inpaint", "sd21", or a test's own */
    int unet_in;        /* UNet input channels: 4, or 9 for inpainting */
    int unet_ch;        /* UNet base width (model_channels): 320 */
    int vae_ch;         /* VAE base width: 128 */
    int text_width;     /* 768 (CLIP ViT-L/14) or 1024 (OpenCLIP ViT-H/14); also the width
                           of the UNet's cross-attention context */
    int text_layers;    /* 12 (CLIP-L) or 24 (OpenCLIP-H) */
    int text_vocab;     /* 49408 */
    bool openclip;      /* SD 2.x: OpenCLIP text tower (fused in_proj, text_projection,
                           logit_scale) and linear UNet attention projections */
} sd_model_random_arch;

/* The full-size preset called `name` ("sd15", "sd15-inpaint", "sd21"), or NULL. */
const sd_model_random_arch *sd_model_random_preset(const char *name);

/* The preset names, NULL-terminated (for usage messages). */
extern const char *const sd_model_random_preset_names[];

typedef enum sd_model_random_init {
    SD_MODEL_RANDOM_UNIFORM,     /* uniform in [-value, value) */
    SD_MODEL_RANDOM_CONST,       /* every element = value */
    SD_MODEL_RANDOM_BETAS,       /* SD's scaled-linear betas, 0.00085 .. 0.012, 1000 steps */
    SD_MODEL_RANDOM_ALPHAS_CUMPROD,
    SD_MODEL_RANDOM_ALPHAS_CUMPROD_PREV,
    SD_MODEL_RANDOM_ARANGE,      /* 0, 1, 2, ... (CLIP position ids) */
} sd_model_random_init;

enum { SD_MODEL_RANDOM_NAME_CAP = 128 };

/* One tensor of a layout. */
typedef struct sd_model_random_tensor {
    char name[SD_MODEL_RANDOM_NAME_CAP];
    sd_dtype dtype;      /* the requested weight dtype; F32 schedule buffers, I64 ids */
    int ndim;
    int64_t shape[SD_MAX_DIMS];
    sd_model_random_init init;
    float value;         /* UNIFORM: the bound; CONST: the value */
    bool extra;          /* not a network parameter: schedule buffers and position ids (real
                            checkpoints carry them; the networks do not use them) */
} sd_model_random_tensor;

/* The layout of arch `a` with weights in `dtype` (F32, F16 or BF16): an sd_malloc'ed array
 * of *n tensors (free with sd_free), in no particular order.  Errors: SD_ERR_INVALID_ARG (a
 * non-float dtype, a width/count below 1 or an OpenCLIP tower of fewer than 2 blocks),
 * SD_ERR_NOMEM.  Thread: any. */
sd_status sd_model_random_layout(const sd_model_random_arch *a, sd_dtype dtype,
                                 sd_model_random_tensor **out, size_t *n, sd_error *err);

typedef struct sd_model_random_stats {
    size_t n_tensors;
    int64_t n_params;    /* elements of the non-extra tensors */
    uint64_t data_bytes; /* the data section (the file adds the header) */
} sd_model_random_stats;

/* Write the checkpoint of arch `a` to `path` (streamed; through "<path>.tmp", renamed on
 * success).  Element i of a tensor depends only on (seed, tensor name, i), so the bytes are
 * the same for any pool size.  Values are generated in parallel on `pool` (may be NULL).
 * The __metadata__ says the weights are random.  stats may be NULL.  Errors: as
 * sd_model_random_layout, SD_ERR_IO, SD_ERR_NOMEM.  Thread: any (pool not shared). */
sd_status sd_model_random_write(const char *path, const sd_model_random_arch *a,
                                sd_dtype dtype, uint64_t seed, sd_pool *pool,
                                sd_model_random_stats *stats, sd_error *err);

#endif
