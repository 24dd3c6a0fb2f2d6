/* internal/kernels.h - the kernel table: one function pointer per hot inner loop, filled
 * once per process from the scalar reference (kernels/ref.c) and then overridden by the
 * best ISA variant the CPU and OS support (kernels/x86_avx2.c, kernels/x86_avx512.c).
 * Kernels work on plain contiguous arrays and know nothing of tensors, threads or errors;
 * ops.c builds the network operations on top of them.  Naming: sd_k_<op>_<dtype>__<isa>. */
#ifndef SD_INTERNAL_KERNELS_H
#define SD_INTERNAL_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum sd_isa { SD_ISA_SCALAR, SD_ISA_AVX2, SD_ISA_AVX512, SD_ISA_COUNT } sd_isa;

/* Every slot takes plain arrays of n elements (n may be 0) with no alignment requirement and
 * never writes outside them.  "y may equal x" means exact in-place use is allowed; partial
 * overlap never is.  Accuracy of the SIMD variants against the reference (tests/t_kernels.c
 * holds the binding constants): conversions exact; sums and affine maps within a few ulp of
 * the magnitude of their terms; exp/erf-based slots within ~1e-6 relative (results below
 * FLT_MIN may flush to zero). */
typedef struct sd_kernels {
    sd_isa isa;
    /* storage conversions: dst[i] = (float)src[i] */
    void (*cvt_f16_f32)(const uint16_t *src, float *dst, size_t n);
    void (*cvt_bf16_f32)(const uint16_t *src, float *dst, size_t n);

    /* reductions (statistics of GroupNorm/LayerNorm): sum x[i], and sum (x[i] - mean)^2.
     * Accumulated in float32 lanes by the SIMD variants: callers keep n modest (a few
     * thousand) and add the partial sums in double. */
    float (*sum_f32)(const float *x, size_t n);
    float (*sumsq_dev_f32)(const float *x, size_t n, float mean);

    /* y[i] = (x[i] - m) * a + b; the _silu variant then applies SiLU.  y may equal x.
     * (GroupNorm apply, scaling, per-channel and bias additions) */
    void (*scale_shift_f32)(const float *x, float *y, size_t n, float m, float a, float b);
    void (*scale_shift_silu_f32)(const float *x, float *y, size_t n, float m, float a,
                                 float b);
    /* y[i] = (x[i] - mean) * rstd * gamma[i] + beta[i].  y may equal x.  (LayerNorm apply) */
    void (*layernorm_apply_f32)(const float *x, float *y, size_t n, float mean, float rstd,
                                const float *gamma, const float *beta);
    /* y[i] += x[i] */
    void (*add_f32)(float *y, const float *x, size_t n);

    /* activations, y may equal x: x*sigmoid(x); exact GELU x*Phi(x) (erf based);
     * x*sigmoid(1.702x) with 1.702x rounded to float first, as PyTorch does */
    void (*silu_f32)(const float *x, float *y, size_t n);
    void (*gelu_f32)(const float *x, float *y, size_t n);
    void (*quick_gelu_f32)(const float *x, float *y, size_t n);
    /* GEGLU: y[i] = a[i] * gelu(g[i]).  y may equal a (not g). */
    void (*geglu_f32)(const float *a, const float *g, float *y, size_t n);

    /* One step of an online softmax over a row of attention scores, one key block at a
     * time.  In: s[n] scores, *max and *sum the running maximum and normaliser of the keys
     * seen so far (-inf and 0 before the first block).  Out: m' = max(*max, s[*]);
     * s[j] = exp(s[j] - m'); *sum = *sum * alpha + sum_j s[j]; *max = m'.  Returns alpha =
     * exp(old max - m') (1 when the maximum did not change, including n == 0), the factor
     * the caller scales its output accumulator by.  Scores of -inf give 0. */
    float (*softmax_step_f32)(float *s, size_t n, float *max, float *sum);
} sd_kernels;

/* The process-wide table (best variant allowed by CPU, OS and SD_SIMD). Thread-safe. */
const sd_kernels *sd_kernels_get(void);
/* The scalar reference table. */
const sd_kernels *sd_kernels_ref(void);
/* The table for one ISA if this CPU/OS can run it, else NULL (tests compare each). */
const sd_kernels *sd_kernels_for(sd_isa isa);
/* "scalar", "avx2", "avx512". */
const char *sd_isa_name(sd_isa isa);

/* Per-ISA fillers, each defined in its own file compiled with that ISA's flags.  They
 * override the slots they implement and leave the others as they found them. */
void sd_kernels_fill_ref(sd_kernels *k);
void sd_kernels_fill_avx2(sd_kernels *k);
void sd_kernels_fill_avx512(sd_kernels *k);

#endif
