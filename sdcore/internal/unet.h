/* internal/unet.h - the denoising UNet of Stable Diffusion 1.x / 2.x (LDM's UNetModel,
 * diffusers' UNet2DConditionModel): built from the tensors of a loaded model, run on
 * float32 latents.  One code path serves SD 1.x (4 input channels), the 9-channel
 * inpainting variants and SD 2.x (linear proj_in/proj_out, per-level head counts): the
 * network description (levels, channels, where the transformers are, context width,
 * transformer depth) is read off the tensor names and shapes, never hard-coded. */
#ifndef SD_INTERNAL_UNET_H
#define SD_INTERNAL_UNET_H

#include "internal/common.h"

typedef struct sd_unet sd_unet;

/* What the tensors said. */
typedef struct sd_unet_info {
    int in_channels;     /* 4, or 9 for inpainting models */
    int out_channels;    /* 4 */
    int model_channels;  /* width of the first level (320 for SD 1.x/2.x) */
    int context_dim;     /* width of the text-encoder states (768 SD 1.x, 1024 SD 2.x) */
    int levels;          /* resolution levels (4) */
    int n_transformers;  /* spatial transformers in the whole network (16 for SD) */
    bool linear_proj;    /* proj_in/proj_out are Linear (SD 2.x) rather than 1x1 convs */
} sd_unet_info;

/* Build the UNet of model m ("model.diffusion_model.*" tensors; attention head counts from
 * sd_model_get_hparams).  Every tensor's presence, dtype and shape is checked here, so a
 * forward pass cannot meet a malformed weight.  The result points into m (no copies): m
 * must outlive it.  On success *out owns the UNet; free it with sd_unet_free.
 * Errors: SD_ERR_FORMAT (missing tensor, wrong shape, inconsistent channels, heads that do
 * not divide the width; the message names the tensor), SD_ERR_UNSUPPORTED (more levels or
 * layers than SD has), SD_ERR_NOMEM.  On error *out is NULL.  Any thread. */
sd_status sd_unet_new(const sd_model *m, sd_unet **out, sd_error *err);
void sd_unet_free(sd_unet *u);

/* Fill *out.  Never fails. */
void sd_unet_get_info(const sd_unet *u, sd_unet_info *out);

/* Called on the caller's thread between UNet blocks; return false to cancel. */
typedef bool (*sd_unet_hook)(void *user);

typedef struct sd_unet_args {
    int batch;               /* B >= 1 */
    int height, width;       /* latent size, any H, W >= 1 (odd sizes as diffusers does) */
    const float *x;          /* [B, in_channels, H, W] */
    const float *timesteps;  /* [B] diffusion time per batch item; fractional is fine */
    const float *context;    /* [B, ctx_len, context_dim] text-encoder hidden states */
    int ctx_len;             /* L >= 1 (77 per prompt chunk; long prompts: 77 * k) */
    sd_unet_hook hook;       /* optional */
    void *hook_user;
} sd_unet_args;

/* One UNet evaluation: out [B, out_channels, H, W] = eps (or v) prediction.  Activations
 * are float32 whatever the weights' dtype.  Memory: the skip activations plus a working set
 * bounded by a few activation-sized buffers; attention is tiled (no score matrix).  Weights
 * are read in place.  out may alias x.  On SD_CANCELLED out is untouched; on other errors
 * its contents are unspecified.
 * Errors: SD_ERR_INVALID_ARG (NULL pointers, sizes < 1), SD_ERR_TOO_LARGE (sizes whose
 * buffers overflow size_t), SD_ERR_NOMEM, errors of the ops; SD_CANCELLED when the hook
 * returned false (out untouched).  Runs the ctx's pool; one call per ctx at a time. */
sd_status sd_unet_forward(sd_ctx *ctx, const sd_unet *u, const sd_unet_args *a, float *out,
                          sd_error *err);

/* Bytes sd_unet_forward allocates itself for a request of this size (the skip activations,
 * all alive at the middle block, plus the working set; the ops' own scratch, which they
 * bound, is not included), so a caller can check a size against the memory it has before
 * running.  *bytes is 0 on error.  Errors: SD_ERR_INVALID_ARG (sizes < 1),
 * SD_ERR_TOO_LARGE (overflows size_t), SD_ERR_NOMEM.  Any thread. */
sd_status sd_unet_memory(const sd_unet *u, int batch, int height, int width, int ctx_len,
                         size_t *bytes, sd_error *err);

#endif
