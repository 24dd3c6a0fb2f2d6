/* internal/taesd.h - TAESD, the tiny autoencoder for Stable Diffusion latents
 * (madebyollin/taesd; diffusers AutoencoderTiny): a cheap stand-in for the VAE, used for
 * previews during sampling and for fast encode/decode.
 *
 * Unlike the SD VAE, TAESD works directly in the UNet's latent space and on images in
 * [0, 1]: no scaling factor, no [-1, 1] mapping, no posterior.  The decoder first squashes
 * its input with tanh(x / 3) * 3 (taesd.py's Clamp); its output is raw and may leave [0, 1]
 * slightly: callers clamp.  The layer sequence (convolutions, Blocks, stride-2 convolutions,
 * upsamplers) and the widths are read from the canonical tensors
 * taesd.{encoder,decoder}.layers.N.* (internal/model.h).
 *
 * Layout: images planar float32 [3, H, W], latents [Z, H/f, W/f] (Z = 4, f = 8 for SD).
 * Threads: calls run on the caller's thread and use the ctx's pool; the model is only read. */
#ifndef SD_INTERNAL_TAESD_H
#define SD_INTERNAL_TAESD_H

#include "internal/common.h"

typedef struct sd_taesd_info {
    bool has_encoder, has_decoder;
    int latent_channels;    /* Z: 4 for SD 1.x/2.x */
    int factor;             /* image pixels per latent pixel along a side: 8 */
} sd_taesd_info;

/* Describe the model's TAESD networks, checking their tensors.  Errors: SD_ERR_FORMAT when
 * the model has neither a TAESD encoder nor decoder or a tensor is misshapen, SD_ERR_NOMEM.
 * Thread: any. */
sd_status sd_taesd_get_info(const sd_model *m, sd_taesd_info *out, sd_error *err);

/* Encoder: image [3, H, W] in [0, 1] (H, W multiples of the factor) -> latents
 * [Z, H/f, W/f] in the UNet's latent space (comparable to scaling_factor * VAE mean).
 * Buffers are caller-allocated and must not overlap.  Errors: SD_ERR_INVALID_ARG (sizes,
 * NULL), SD_ERR_FORMAT (no TAESD encoder in the model), SD_ERR_NOMEM, SD_ERR_TOO_LARGE. */
sd_status sd_taesd_encode(sd_ctx *ctx, const sd_model *m, const float *image, int H, int W,
                          float *latents, sd_error *err);

/* Decoder: UNet-space latents [Z, h, w] -> image [3, f h, f w], raw (about [0, 1]; clamp
 * before display).  latents is not modified.  Errors as sd_taesd_encode (SD_ERR_FORMAT: no
 * TAESD decoder). */
sd_status sd_taesd_decode(sd_ctx *ctx, const sd_model *m, const float *latents, int h, int w,
                          float *image, sd_error *err);

#endif
