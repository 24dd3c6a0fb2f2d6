/* internal/vae.h - the Stable Diffusion VAE (LDM AutoencoderKL, "first_stage_model"): the
 * encoder that turns an image into the posterior over latents and the decoder that turns
 * latents back into an image, plus tiled variants for images too large to run at once.
 *
 * The architecture is read from the model's tensors (number of resolution levels, channels
 * per level, ResNet blocks per level, down/up-samplers, mid-block attention), so any LDM VAE
 * with the SD topology runs, whatever its widths.  Fixed by the topology, not the tensors:
 * GroupNorm with 32 groups and eps 1e-6, SiLU, nearest-neighbour 2x upsampling, the
 * downsampler's (0,1,0,1) zero padding before its stride-2 3x3 convolution, and a single-head
 * mid-block self-attention over C channels with scale 1/sqrt(C).
 *
 * Two layers of API:
 *   - the network as diffusers' `vae.encode(...).latent_dist` / `vae.decode(...)` compute it
 *     (sd_vae_encode, sd_vae_decode): image in [-1,1], latents in the VAE's own space;
 *   - the pipeline conversions (sd_vae_image_to_latents, sd_vae_latents_to_image): image in
 *     [0,1], latents in the UNet's space, i.e. multiplied by the model's vae_scaling_factor
 *     (0.18215 for SD 1.x/2.x).  Use these unless you need the raw network.
 *
 * Layout: images are planar float32 [3, H, W] (NCHW with N = 1), latents [Z, H/f, W/f] with
 * Z latent channels (4 for SD) and f the downscale factor (8 for SD); see sd_vae_get_info.
 *
 * Tiling: above SD_VAE_AUTO_TILE_ABOVE latent pixels on a side, or when asked, the
 * full-resolution part of the network (encoder: conv_in and the down levels; decoder: the
 * up levels) runs on overlapping tiles whose results are blended with linear ramps across
 * the overlap, which bounds memory and leaves no seam.  The latent-resolution part around the
 * mid-block attention runs on the whole latent (its attention is global, as untiled) when
 * the latent has at most SD_VAE_GLOBAL_MID_MAX pixels, else inside each tile.  Every
 * GroupNorm of a tiled run uses statistics of the whole image, not of its tile: estimated
 * on a downscaled copy, then (unless `fast`) re-measured over all tiles, so a tiled run is
 * about two untiled runs' work.  The result still differs from the untiled one (padding at
 * tile borders, the estimate); tests/t_vae.c measures and bounds the difference.
 *
 * Threads: every call runs on the caller's thread and splits its work over the ctx's pool;
 * calls on one ctx must be serialised (see sd.h).  The model is only read. */
#ifndef SD_INTERNAL_VAE_H
#define SD_INTERNAL_VAE_H

#include "internal/common.h"

/* Tile side in latent pixels used when tiling is automatic (512 image pixels for SD). */
#define SD_VAE_TILE_DEFAULT 64
/* Overlap between neighbouring tiles in latent pixels when not given (128 image pixels). */
#define SD_VAE_OVERLAP_DEFAULT 16
/* Automatic tiling starts when a latent side exceeds this (768 image pixels for SD). */
#define SD_VAE_AUTO_TILE_ABOVE 96
/* Smallest tile side accepted. */
#define SD_VAE_TILE_MIN 8
/* Tiled runs keep the mid block global up to this many latent pixels (128 x 256); its
 * attention costs O(pixels^2). */
#define SD_VAE_GLOBAL_MID_MAX 32768

typedef struct sd_vae_opts {
    int tile;      /* tile side in latent pixels: -1 = automatic (SD_VAE_TILE_DEFAULT when a
                      side exceeds SD_VAE_AUTO_TILE_ABOVE, else untiled), 0 = never tile,
                      >= SD_VAE_TILE_MIN = tile whenever a side exceeds this */
    int overlap;   /* overlap of neighbouring tiles in latent pixels, -1 = default
                      (SD_VAE_OVERLAP_DEFAULT, at most tile/2); must be < tile */
    bool fast;     /* tiled only: GroupNorm statistics from the downscaled estimate alone
                      (one pass over the tiles instead of two; less faithful) */
    /* Optional, called on the caller's thread after each tile with (tiles done, total:
     * twice the tile count unless fast; 1 of 1 untiled);
     * returning false stops the call with SD_CANCELLED (outputs then hold no result). */
    bool (*progress)(int done, int total, void *user);
    void *user;
} sd_vae_opts;

/* Automatic tiling, default overlap, not fast, no progress callback. */
sd_vae_opts sd_vae_opts_default(void);

typedef struct sd_vae_info {
    bool has_encoder, has_decoder;
    int image_channels;     /* 3 */
    int latent_channels;    /* Z: 4 for SD 1.x/2.x */
    int factor;             /* image pixels per latent pixel along a side: 8 for SD */
    float scaling_factor;   /* the model's vae_scaling_factor (0.18215 for SD 1.x/2.x) */
} sd_vae_info;

/* Describe the model's VAE, checking every tensor's presence and shape.  Errors:
 * SD_ERR_FORMAT when the model has no VAE or a tensor is missing or misshapen (the message
 * names it), SD_ERR_NOMEM.  Thread: any (reads the model only). */
sd_status sd_vae_get_info(const sd_model *m, sd_vae_info *out, sd_error *err);

/* ---- the network ------------------------------------------------------------------------
 * Encoder: image [3, H, W] in [-1, 1] (H, W multiples of the factor) -> the diagonal Gaussian
 * posterior: mean and logvar [Z, H/f, W/f], logvar clamped to [-30, 20]
 * (diffusers AutoencoderKL.encode(x).latent_dist.mean / .logvar; quant_conv applied).
 * mean and logvar are caller-allocated and must not overlap image or each other.
 * opts may be NULL (defaults).  Errors: SD_ERR_INVALID_ARG (sizes, tiling), SD_ERR_FORMAT
 * (no encoder / bad tensors), SD_ERR_NOMEM, SD_ERR_TOO_LARGE, SD_CANCELLED. */
sd_status sd_vae_encode(sd_ctx *ctx, const sd_model *m, const float *image, int H, int W,
                        const sd_vae_opts *opts, float *mean, float *logvar, sd_error *err);

/* Decoder: z [Z, h, w] in the VAE's own latent space (UNet latents / scaling_factor) ->
 * image [3, f*h, f*w], raw (about [-1, 1], not clamped), as diffusers
 * AutoencoderKL.decode(z).sample (post_quant_conv applied first).  image is
 * caller-allocated and must not overlap z.  opts may be NULL.  Errors as sd_vae_encode
 * (SD_ERR_FORMAT: no decoder). */
sd_status sd_vae_decode(sd_ctx *ctx, const sd_model *m, const float *z, int h, int w,
                        const sd_vae_opts *opts, float *image, sd_error *err);

/* ---- pipeline conversions ----------------------------------------------------------------
 * Image [3, H, W] in [0, 1] -> UNet-space latents [Z, H/f, W/f]:
 *   latents = scaling_factor * (mean + exp(0.5 * logvar) * noise)
 * with noise [Z, H/f, W/f] standard-normal draws (the caller's RNG: diffusers draws them
 * with randn_tensor on the latent shape), or noise == NULL for the posterior mean
 * (deterministic; what img2img uses with `sample_mode="argmax"`).  latents is
 * caller-allocated.  Errors as sd_vae_encode. */
sd_status sd_vae_image_to_latents(sd_ctx *ctx, const sd_model *m, const float *image, int H,
                                  int W, const float *noise, const sd_vae_opts *opts,
                                  float *latents, sd_error *err);

/* UNet-space latents [Z, h, w] -> image [3, f*h, f*w] in [0, 1]:
 *   image = clamp(decode(latents / scaling_factor) / 2 + 0.5, 0, 1)
 * (what the SD pipelines' image processor does before quantising).  latents is not
 * modified.  Errors as sd_vae_decode. */
sd_status sd_vae_latents_to_image(sd_ctx *ctx, const sd_model *m, const float *latents, int h,
                                  int w, const sd_vae_opts *opts, float *image, sd_error *err);

#endif
