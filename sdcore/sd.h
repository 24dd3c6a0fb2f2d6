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
 *   By default every product is float32.  sd_ctx_params.precision = SD_PRECISION_BF16 runs
 *   the convolutions, linear layers and attention products of the UNet and the VAE on
 *   bfloat16-rounded operands with float32 accumulation when the CPU has a bf16 dot product
 *   (AVX512_BF16; otherwise it changes nothing); norms, softmax, residual sums and the text
 *   encoder stay float32.  About twice as fast where available; a UNet output moves by up
 *   to ~7e-3 relative (L2) on the test models.
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
    bool has_unet, has_vae, has_text_encoder, has_taesd_encoder, has_taesd_decoder;
    int unet_in_channels;        /* 4, or 9 for inpainting models */
    int64_t params_unet, params_vae, params_text, params_taesd;
    int64_t n_tensors;
    float vae_scaling_factor;    /* 0.18215 for SD 1.x/2.x unless a config says otherwise */
} sd_model_info;

/* Fill *out with what was detected.  Never fails for a loaded model. */
void sd_model_get_info(const sd_model *m, sd_model_info *out);

#ifdef __cplusplus
}
#endif
#endif /* SD_H */
