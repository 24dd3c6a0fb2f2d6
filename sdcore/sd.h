/* sd.h - the public interface of sdcore, a CPU Stable Diffusion engine in C.
 *
 * This header is the manual.  Read it top to bottom once; everything a host (the GIMP
 * plug-in, the `sd` command-line tool) may call is declared here.  Internal headers in
 * sdcore/internal/ are for the engine's own files and its tests.
 *
 * OVERVIEW
 *   sdcore loads Stable Diffusion checkpoints (single-file safetensors in the original
 *   CompVis naming that users download, or diffusers folders; f32, f16 or bf16 storage)
 *   by mmap and runs them on the CPU.  Weights stay mapped read-only in their stored dtype.
 *
 * USAGE
 *       sd_error err = {0};
 *       sd_ctx_params cp = sd_ctx_params_default();
 *       cp.n_threads = 0;                         // 0 = all cores
 *       sd_ctx *ctx = NULL;
 *       sd_model *model = NULL;
 *       if (sd_ctx_new(&cp, &ctx, &err) != SD_OK ||
 *           sd_model_load(ctx, "v1-5-pruned-emaonly.safetensors", &model, &err) != SD_OK) {
 *           fprintf(stderr, "%s\n", err.msg);     // one line a user can read
 *           ...
 *       }
 *       sd_model_info info;
 *       sd_model_get_info(model, &info);          // family, dtype, parameter counts
 *       ...
 *       sd_model_free(model);                     // free(NULL) is a no-op everywhere
 *       sd_ctx_free(ctx);
 *
 * ERRORS
 *   Every fallible call returns an sd_status: SD_OK (0), SD_CANCELLED (a caller's progress
 *   callback asked to stop; not an error), or a negative SD_ERR_*.  When the caller passes
 *   an sd_error, it receives the same code and a one-line message saying what went wrong
 *   and, where it helps, what to do ("SDXL checkpoint: not supported yet").  The engine
 *   keeps no global or thread-local "last error".  sdcore never prints, never calls exit()
 *   or abort(); a log callback in sd_ctx_params receives diagnostics if the host wants them.
 *   On error every output pointer is left NULL and nothing is leaked.
 *
 * OWNERSHIP
 *   Objects come in sd_X_new / sd_X_free pairs (sd_model_load / sd_model_free).  Freeing
 *   NULL is a no-op.  A model keeps a reference to nothing but its own file mappings; it must
 *   be freed before the ctx that loaded it.  Buffers passed in are caller-owned and never
 *   written unless documented as outputs; buffers returned are owned by the caller and freed
 *   with the function named in the comment (sd_tensor_free, ...).
 *
 * THREADS
 *   A ctx owns a thread pool (n_threads; 0 = all online cores).  One ctx runs one call at a
 *   time: calls on the same ctx must be serialised by the caller; different ctxs are
 *   independent.  A loaded model is read-only and may be shared by several ctxs.
 *   Callbacks (log, progress, preview) fire only on the thread that made the call, never on
 *   pool workers, so a host may call its UI toolkit from them.
 *
 * TENSOR CONVENTION
 *   sd_tensor.shape[] lists extents outermost first, as PyTorch and safetensors do
 *   (an NCHW image batch is shape = {N, C, H, W}); stride[] is the matching distance in
 *   elements between neighbours along each axis (contiguous: stride[ndim-1] = 1).
 *
 * KERNELS
 *   Compute kernels are chosen once per process by CPU detection (scalar reference always;
 *   AVX2, AVX-512 and AVX-512 with the bf16 dot product where both the CPU and the OS
 *   support them).  The environment variable SD_SIMD=scalar|avx2|avx512|avx512bf16 forces
 *   a variant (lower than detected only), and sd_ctx_params.use_ref forces the scalar
 *   reference for one ctx.  sd_system_info() tells what was chosen.
 *   Weights are packed into the kernels' layout on first use and kept with the model
 *   (freed by sd_model_free): the first call of a network is slower than the next ones.
 *
 * PRECISION
 *   sd_ctx_params.precision = SD_PRECISION_FP32 (the default of sd_ctx_params_default) makes
 *   every product float32.  SD_PRECISION_BF16 runs the convolutions, linear layers and
 *   attention products of the UNet and the VAE on bfloat16-rounded operands with float32
 *   accumulation when the CPU has a bf16 dot product (AVX512_BF16; otherwise it changes
 *   nothing); norms, softmax, residual sums, the text encoder, the first and last layers
 *   and the 3x3 convolutions of large images (float32 Winograd, faster there) stay float32.
 *   About twice as fast where available; a UNet output moves by up to ~1e-2 relative (L2).
 *   SD_PRECISION_AUTO, what applications should pass, is BF16 unless the environment
 *   variable SD_PRECISION says fp32 (SD_PRECISION=fp32|bf16|auto), so a user can ask for
 *   exact float32 without the application knowing.
 */
#ifndef SD_H
#define SD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------
 * Status and errors
 * ------------------------------------------------------------------------------------- */

typedef enum sd_status {
    SD_OK = 0,
    SD_CANCELLED = 1,            /* a progress callback returned false; nothing was output */
    SD_ERR_INVALID_ARG = -1,     /* the caller passed something out of range */
    SD_ERR_NOMEM = -2,           /* an allocation failed */
    SD_ERR_IO = -3,              /* a file could not be opened, read, mapped or written */
    SD_ERR_FORMAT = -4,          /* a file is corrupt or not what it claims to be */
    SD_ERR_UNSUPPORTED = -5,     /* a valid file or request this engine cannot handle (yet) */
    SD_ERR_TOO_LARGE = -6,       /* the request would need more memory than allowed */
    SD_ERR_INTERNAL = -7,        /* a bug: an invariant of the engine did not hold */
} sd_status;

/* The enum name of a status, e.g. "SD_ERR_FORMAT".  Never NULL; static storage. */
const char *sd_status_str(sd_status s);

/* Caller-owned detail for a failed call.  msg is always NUL-terminated. */
typedef struct sd_error {
    sd_status code;
    char msg[256];
} sd_error;

typedef enum sd_log_level { SD_LOG_DEBUG, SD_LOG_INFO, SD_LOG_WARN, SD_LOG_ERROR } sd_log_level;
typedef void (*sd_log_fn)(sd_log_level level, const char *msg, void *user);

/* ---------------------------------------------------------------------------------------
 * Context
 * ------------------------------------------------------------------------------------- */

typedef struct sd_ctx sd_ctx;

typedef enum sd_precision {
    SD_PRECISION_FP32 = 0,       /* float32 products (the default) */
    SD_PRECISION_BF16,           /* bf16 products, float32 accumulation (see PRECISION) */
    SD_PRECISION_AUTO,           /* BF16 unless $SD_PRECISION=fp32 (see PRECISION) */
} sd_precision;

typedef struct sd_ctx_params {
    int n_threads;               /* worker threads incl. the caller; 0 = all online cores */
    bool use_ref;                /* force the scalar reference kernels (tests, debugging) */
    sd_precision precision;      /* SD_PRECISION_FP32 unless asked */
    sd_log_fn log;               /* optional diagnostics sink, called on the caller's thread */
    void *log_user;
} sd_ctx_params;

/* Defaults: n_threads 0, use_ref false, precision FP32, no log. */
sd_ctx_params sd_ctx_params_default(void);

/* Create a ctx (and its thread pool).  p may be NULL for defaults.  On success *out owns the
 * ctx; free it with sd_ctx_free.  Errors: SD_ERR_INVALID_ARG, SD_ERR_NOMEM. */
sd_status sd_ctx_new(const sd_ctx_params *p, sd_ctx **out, sd_error *err);
void sd_ctx_free(sd_ctx *ctx);

/* Threads the ctx computes with (after resolving 0 = auto). */
int sd_ctx_n_threads(const sd_ctx *ctx);

/* A human-readable, multi-line report of the CPU features found and the kernel variant chosen
 * for each kernel slot.  Static storage, valid for the life of the process. */
const char *sd_system_info(void);

/* Name of the kernel variant in use process-wide: "scalar", "avx2", "avx512" or
 * "avx512bf16". */
const char *sd_kernel_variant(void);

/* What the ctx's matrix products run on, e.g. "avx512bf16 packed bf16" or "avx2 openblas
 * fp32".  Static storage. */
const char *sd_ctx_matmul_name(const sd_ctx *ctx);

/* ---------------------------------------------------------------------------------------
 * Tensors
 * ------------------------------------------------------------------------------------- */

#define SD_MAX_DIMS 4

typedef enum sd_dtype {
    SD_DTYPE_F32,
    SD_DTYPE_F16,
    SD_DTYPE_BF16,
    SD_DTYPE_I64,
    SD_DTYPE_I32,
    SD_DTYPE_U8,
    SD_DTYPE_COUNT
} sd_dtype;

/* Name as safetensors spells it ("F32", "F16", "BF16", "I64", "I32", "U8"). */
const char *sd_dtype_name(sd_dtype t);
/* Bytes per element. */
size_t sd_dtype_size(sd_dtype t);

typedef struct sd_tensor {
    sd_dtype dtype;
    int ndim;                    /* 0..SD_MAX_DIMS; 0 = scalar */
    int64_t shape[SD_MAX_DIMS];  /* extents, outermost first */
    int64_t stride[SD_MAX_DIMS]; /* in elements */
    void *data;
    bool owned;                  /* true: data is freed by sd_tensor_free */
} sd_tensor;

/* Allocate a contiguous, zero-filled tensor.  Errors: SD_ERR_INVALID_ARG (bad ndim/shape),
 * SD_ERR_NOMEM, SD_ERR_TOO_LARGE (size overflows). Free with sd_tensor_free. */
sd_status sd_tensor_new(sd_dtype dtype, int ndim, const int64_t *shape, sd_tensor *out,
                        sd_error *err);
/* Free an owned tensor's data and reset it; a non-owned view is only reset. NULL is a no-op. */
void sd_tensor_free(sd_tensor *t);
/* Number of elements (product of shape; 1 for a scalar). */
int64_t sd_tensor_numel(const sd_tensor *t);

/* ---------------------------------------------------------------------------------------
 * Models
 * ------------------------------------------------------------------------------------- */

typedef enum sd_family {
    SD_FAMILY_UNKNOWN = 0,
    SD_FAMILY_SD1,               /* SD 1.x: CLIP ViT-L/14, 4-channel UNet */
    SD_FAMILY_SD1_INPAINT,       /* SD 1.x inpainting: 9-channel UNet */
    SD_FAMILY_SD2,               /* SD 2.x (and SD-Turbo): OpenCLIP ViT-H, linear projections */
    SD_FAMILY_SD2_INPAINT,       /* SD 2.x inpainting: 9-channel UNet */
    SD_FAMILY_TAESD,             /* a TAESD encoder and/or decoder on its own */
    SD_FAMILY_COUNT
} sd_family;

/* "SD1", "SD1-inpaint", "SD2", "SD2-inpaint", "TAESD", "unknown". */
const char *sd_family_name(sd_family f);

typedef enum sd_prediction {
    SD_PREDICT_UNKNOWN = 0,      /* not stated by the files: the family default applies */
    SD_PREDICT_EPSILON,
    SD_PREDICT_V,
} sd_prediction;

/* Distilled variants share the architecture of their base family but want other sampling
 * defaults.  Told by a config (diffusers scheduler_config.json: an LCMScheduler, or
 * "trailing" spacing as the SD-Turbo repository ships), or else by the file name
 * ("turbo", "lcm" anywhere in it, any case). */
typedef enum sd_variant {
    SD_VARIANT_BASE = 0,
    SD_VARIANT_TURBO,            /* SD-Turbo: 1-4 steps, no guidance, trailing spacing */
    SD_VARIANT_LCM,              /* latent consistency: LCM sampler, 2-8 steps, no guidance */
} sd_variant;

typedef struct sd_model sd_model;

/* Load a model from `path`: a .safetensors single file (original naming), a diffusers
 * folder (model_index.json + unet/, vae/, text_encoder/), or a TAESD file.  The file is
 * mmapped read-only and its header fully validated before any tensor data is read.  A
 * sidecar `<name>.json` next to a single file (or the diffusers configs) may state what the
 * tensors cannot (attention heads, activation, prediction type; see docs in model.c).
 * Errors: SD_ERR_IO (cannot open/map), SD_ERR_FORMAT (corrupt or missing tensors),
 * SD_ERR_UNSUPPORTED (recognised but unsupported family, e.g. SDXL), SD_ERR_NOMEM.
 * ctx may be NULL (loading uses no threads).  Free with sd_model_free. */
sd_status sd_model_load(sd_ctx *ctx, const char *path, sd_model **out, sd_error *err);
void sd_model_free(sd_model *m);

typedef struct sd_model_info {
    sd_family family;
    sd_dtype dtype;              /* dtype of most of the floating-point weights */
    sd_prediction prediction;    /* as stated by a config, else SD_PREDICT_UNKNOWN */
    sd_variant variant;
    bool has_unet, has_vae, has_text_encoder, has_taesd_encoder, has_taesd_decoder;
    int unet_in_channels;        /* 4, or 9 for inpainting models */
    int64_t params_unet, params_vae, params_text, params_taesd;
    int64_t n_tensors;
    float vae_scaling_factor;    /* 0.18215 for SD 1.x/2.x unless a config says otherwise */
} sd_model_info;

/* Fill *out with what was detected.  Never fails for a loaded model. */
void sd_model_get_info(const sd_model *m, sd_model_info *out);

/* ---------------------------------------------------------------------------------------
 * Images
 * ------------------------------------------------------------------------------------- */

/* Pixels cross the API as float samples in NON-LINEAR sRGB, 0..1 (GEGL "R'G'B'A float"):
 * the models were trained on sRGB values.  Pixel (x, y) channel k is
 * data[y * stride + x * channels + k].  Masks are images with channels = 1, 0..1,
 * 1 = regenerate; a feathered selection is a soft mask.  Input images are caller-owned and
 * never written. */
typedef struct sd_image {
    int width, height;
    int channels;                /* 1 (mask), 3 (RGB) or 4 (RGBA, straight alpha) */
    size_t stride;               /* floats from one row's start to the next, >= width*channels */
    float *data;
} sd_image;

/* Free the data of an image the engine returned (sd_gen_result.image) and zero it.
 * NULL is a no-op. */
void sd_image_free(sd_image *img);

/* Noise level of a photo on the 0..255 scale: a robust estimate (median absolute deviation
 * of the finest wavelet detail band of the luminance).  Used by the denoise filter to pick
 * its strength; exposed so a dialog can show it.  Errors: SD_ERR_INVALID_ARG, SD_ERR_NOMEM. */
sd_status sd_estimate_noise(const sd_image *img, float *sigma, sd_error *err);

/* The img2img strength the denoise filter uses for a noise level sigma (0..255 scale):
 * monotone, documented in the implementation. */
float sd_denoise_strength_for_sigma(float sigma);

/* ---------------------------------------------------------------------------------------
 * Generation: the five filters
 * ------------------------------------------------------------------------------------- */

typedef enum sd_task {
    SD_TASK_TXT2IMG,             /* prompt -> new image of the requested size */
    SD_TASK_IMG2IMG,             /* re-imagine init (through mask, if any) at a strength */
    SD_TASK_INPAINT,             /* regenerate what mask covers */
    SD_TASK_OUTPAINT,            /* grow the canvas and fill the new border */
    SD_TASK_DENOISE,             /* diffusion-based restoration of a noisy photo */
    SD_TASK_COUNT
} sd_task;

/* "txt2img", "img2img", "inpaint", "outpaint", "denoise". */
const char *sd_task_name(sd_task t);

typedef enum sd_sampler_kind {
    SD_SAMPLER_AUTO = -1,        /* the model's default */
    SD_SAMPLER_EULER,            /* diffusers EulerDiscreteScheduler */
    SD_SAMPLER_EULER_A,          /* EulerAncestralDiscreteScheduler (draws noise every step) */
    SD_SAMPLER_DDIM,             /* DDIMScheduler, eta 0 */
    SD_SAMPLER_DPMPP_2M,         /* DPMSolverMultistepScheduler, dpmsolver++ order 2 */
    SD_SAMPLER_LCM,              /* LCMScheduler (LCM-distilled models) */
    SD_SAMPLER_COUNT
} sd_sampler_kind;

/* diffusers' timestep_spacing.  LCM has its own schedule and ignores it. */
typedef enum sd_spacing {
    SD_SPACING_AUTO = -1,        /* the sampler's diffusers default (trailing for SD-Turbo) */
    SD_SPACING_LEADING,
    SD_SPACING_TRAILING,
    SD_SPACING_LINSPACE,
    SD_SPACING_COUNT
} sd_spacing;

/* "euler", "euler_a", "ddim", "dpmpp_2m", "lcm" / "leading", "trailing", "linspace"
 * ("auto" for the AUTO values, "?" out of range).  Static storage. */
const char *sd_sampler_kind_name(sd_sampler_kind k);
const char *sd_spacing_name(sd_spacing s);

/* What fills the masked area before sampling (A1111's "masked content"). */
typedef enum sd_fill {
    SD_FILL_ORIGINAL,            /* the original pixels, noised to the strength */
    SD_FILL_FILL,                /* the surrounding colours smeared in, then noised */
    SD_FILL_LATENT_NOISE,        /* pure noise */
    SD_FILL_LATENT_NOTHING,      /* zero latents, noised */
    SD_FILL_COUNT
} sd_fill;

const char *sd_fill_name(sd_fill f);  /* "original", "fill", "latent-noise", "latent-nothing" */

typedef enum sd_phase {
    SD_PHASE_TEXT,               /* encoding the prompts */
    SD_PHASE_ENCODE,             /* VAE-encoding the input image */
    SD_PHASE_SAMPLE,             /* denoising steps */
    SD_PHASE_DECODE,             /* VAE-decoding the result */
} sd_phase;

typedef struct sd_progress {
    sd_phase phase;
    int step, n_steps;           /* UNet evaluations done / planned over the whole call
                                    (all windows and tiles) */
    double elapsed;              /* seconds since sd_generate started */
    double eta;                  /* estimated seconds left, < 0 while unknown */
} sd_progress;

/* Called on the caller's thread between steps and between UNet blocks; return false to
 * cancel: sd_generate then returns SD_CANCELLED promptly (within one UNet block) and
 * outputs nothing. */
typedef bool (*sd_progress_fn)(const sd_progress *p, void *user);
/* Optional live preview after each step: a cheap decode (TAESD when given, else a linear
 * latent-to-RGB approximation) of the current estimate of the region being generated, at
 * model resolution.  The image is valid only during the call. */
typedef void (*sd_preview_fn)(const sd_image *img, const sd_progress *p, void *user);
/* Optional: the final latents [channels, h, w] of each generated region, just before they
 * are decoded (for tests and tools).  Valid only during the call. */
typedef void (*sd_latents_fn)(const float *latents, int channels, int h, int w, void *user);

typedef struct sd_gen_params {
    sd_task task;
    const char *prompt;          /* UTF-8, A1111 syntax: (word:1.3) (word) [word] \( BREAK;
                                    NULL = "" */
    const char *negative_prompt; /* NULL or "" = the unconditional embedding */
    sd_sampler_kind sampler;     /* SD_SAMPLER_AUTO: the model's default */
    sd_spacing spacing;          /* SD_SPACING_AUTO */
    bool karras;                 /* Karras sigmas (Euler, DPM++ 2M) */
    int steps;                   /* 0 = model default; 1..1000 (the full schedule: img2img
                                    runs about strength * steps of them) */
    float cfg;                   /* guidance scale; < 0 = model default; <= 1 skips the
                                    unconditional pass */
    int64_t seed;                /* -1 = random (reported in the result); else >= 0 */
    int clip_skip;               /* 0 = last text-encoder layer; k = stop k layers early */
    sd_prediction prediction;    /* UNKNOWN = what the model's config or family says */
    int width, height;           /* txt2img output size; 0 = model native.  The engine works at
                                    the model's resolution (same aspect, multiples of 8) and
                                    resizes to this, unless `reference` */
    int resolution;              /* side of the square whose area the model works at;
                                    0 = native (512 SD 1.x/Turbo, 768 SD 2.x v) */
    float strength;              /* img2img / inpaint: 0..1, < 0 = default (0.75 / 1.0);
                                    denoise: < 0 = from the estimated noise level */
    const sd_image *init;        /* img2img, inpaint, outpaint, denoise: RGB or RGBA */
    const sd_image *mask;        /* 1 channel, init's size.  inpaint: required (non-empty);
                                    img2img: optional (result composited through it) */
    float mask_blur;             /* px of Gaussian blur of the paste-back mask (default 4) */
    int padding;                 /* inpaint "only masked": context px around the mask (32) */
    sd_fill fill;                /* inpaint masked content (default ORIGINAL) */
    bool whole_image;            /* inpaint at the whole picture, not only the masked region */
    bool color_match;            /* pull the regenerated colours toward the surroundings
                                    (default true) */
    int extend_left, extend_top, extend_right, extend_bottom; /* outpaint, px >= 0 */
    int tile;                    /* denoise: tile side in px, 0 = model resolution, else >= 64 */
    const sd_model *taesd;       /* optional TAESD model: previews (and no VAE needed) */
    bool reference;              /* do exactly what the diffusers pipeline does: no resize, no
                                    crop, no blur, no paste-back, no colour matching (tests) */
    /* Replay of recorded random draws instead of the seed: draw k of the run (in the
     * reference pipeline's order) is noise_draws[k] with noise_sizes[k] floats. */
    const float *const *noise_draws;
    const size_t *noise_sizes;
    int n_noise_draws;
    sd_progress_fn progress;
    void *progress_user;
    sd_preview_fn preview;
    void *preview_user;
    sd_latents_fn final_latents;
    void *final_latents_user;
    int64_t memory_limit_mb;     /* refuse requests estimated above this; 0 = 90 % of the
                                    memory the system has available */
} sd_gen_params;

/* Defaults for a task: everything AUTO / model default, strength default, mask_blur 4,
 * padding 32, fill ORIGINAL, color_match true, seed -1. */
sd_gen_params sd_gen_params_default(sd_task task);

/* Replace the AUTO / "model default" fields of *p with what the model would use (sampler,
 * spacing, steps, cfg, resolution, prediction), as a dialog shows them.  Never fails. */
void sd_gen_params_resolve(const sd_model *m, sd_gen_params *p);

typedef struct sd_gen_result {
    sd_image image;              /* owned: free with sd_gen_result_free.  RGBA.
                                    txt2img: width x height, alpha 1.
                                    img2img, inpaint, denoise: init's size; pixels the mask
                                    leaves alone are bit-identical to init; alpha is init's.
                                    outpaint: the grown canvas, init at
                                    (extend_left, extend_top). */
    int64_t seed;                /* the seed used */
    float strength;              /* the strength used */
    float noise_sigma;           /* denoise: the estimated noise level (0..255); else -1 */
} sd_gen_result;

/* Run one filter.  Before any work the peak memory of the request is estimated and the
 * request refused (SD_ERR_TOO_LARGE) when it would not fit.  m must have a UNet, text encoder
 * and VAE (txt2img may decode with p->taesd instead);
 * inpainting models (9 input channels) serve inpaint and outpaint only.
 * Errors: SD_ERR_INVALID_ARG (a parameter out of range, a missing or empty mask, a NaN or
 * infinite sample in the image or mask, the wrong model kind for the task; the message says
 * which), SD_ERR_TOO_LARGE (the request would not
 * fit in memory: the message gives the estimate and the limit), SD_ERR_NOMEM, errors of the
 * networks; SD_CANCELLED when the progress callback asked.  On any non-OK status *out is
 * zeroed and nothing was allocated.  Runs on the calling thread with ctx's pool. */
sd_status sd_generate(sd_ctx *ctx, const sd_model *m, const sd_gen_params *p,
                      sd_gen_result *out, sd_error *err);
void sd_gen_result_free(sd_gen_result *r);

#ifdef __cplusplus
}
#endif
#endif /* SD_H */
