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

/* Each level includes the ones before it: AVX512BF16 is AVX-512 F/BW/VL/DQ plus the
 * AVX512_BF16 dot product (vdpbf16ps). */
typedef enum sd_isa {
    SD_ISA_SCALAR,
    SD_ISA_AVX2,
    SD_ISA_AVX512,
    SD_ISA_AVX512BF16,
    SD_ISA_COUNT
} sd_isa;

/* The register tile of the packed GEMM micro-kernels: SD_GEMM_MR rows of C (broadcast from
 * the A panel) by SD_GEMM_NR columns (vector loads from the B panel).  The packed weight
 * layouts of ops.c depend on these, every ISA uses the same ones. */
enum { SD_GEMM_MR = 8, SD_GEMM_NR = 32 };
/* Queries per flash-attention tile (they sit on the vector lanes). */
enum { SD_ATT_NQ = 32 };

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

    /* ---- packed matrix products ----
     * gemm_f32: the MR x NR tile  C[r][j] (+)= sum_k A[k][r] * B[k][j]  for r < m <= MR,
     * j < n <= NR, over kc >= 1 steps.  a: the packed A panel, kc rows of MR floats (rows
     * r >= m may hold anything, NaN included: they only feed rows that are not stored).
     * b: row k at b + k*ldb, NR floats of which only the first n are read.  c: row r at
     * c + r*ldc; with acc the products are added to C, else C is overwritten; only the
     * m x n tile is touched.  Accumulation in float32. */
    void (*gemm_f32)(int64_t kc, const float *a, const float *b, int64_t ldb, float *c,
                     int64_t ldc, int m, int n, bool acc);
    /* gemm_bf16: the same tile from bfloat16 operands in pairs along k:
     *   C[r][j] (+)= sum_p A[p][r][0] B[p][j][0] + A[p][r][1] B[p][j][1]
     * over kp >= 1 pairs, float32 accumulation.  a: kp rows of MR pairs (2*MR uint16);
     * b: pair-row p at b + p*ldb (uint16 units), NR pairs (2*NR uint16, all readable;
     * rows r >= m of a and columns j >= n of b may hold anything).
     * Subnormal bf16 inputs may count as zero (AVX512_BF16 does so). */
    void (*gemm_bf16)(int64_t kp, const uint16_t *a, const uint16_t *b, int64_t ldb, float *c,
                      int64_t ldc, int m, int n, bool acc);
    /* dst[i] = bf16(src[i]), rounded to nearest even (subnormal inputs may become zero) */
    void (*cvt_f32_bf16)(const float *src, uint16_t *dst, size_t n);
    /* Interleave two float32 rows into bfloat16 pairs, rounded to nearest even:
     * dst[2i] = bf16(r0[i]), dst[2i+1] = bf16(r1[i]) (0 when r1 is NULL), i < n.
     * Subnormal inputs may become zero. */
    void (*pack_bf16_pairs)(const float *r0, const float *r1, uint16_t *dst, size_t n);
    /* The same with the rows valid only on spans (an im2col row run with zero padding):
     * dst[2i] = bf16(r0[i - lo0]) for lo0 <= i < hi0, else 0; dst[2i+1] likewise from r1
     * on [lo1, hi1); i < n.  r0 and r1 point at the first valid element and only the valid
     * elements are read (an empty span reads nothing; its pointer may be anything). */
    void (*pack_bf16_pairs_span)(const float *r0, int lo0, int hi0, const float *r1, int lo1,
                                 int hi1, uint16_t *dst, size_t n);

    /* ---- Winograd F(4x4, 3x3) transforms (fp32 3x3 stride-1 convolutions) ----
     * With the 6x6 matrix BT and the 4x6 matrix AT of the F(4,3) algorithm on the points
     * 0, 1, -1, 2, -2, inf (rows BT: [4 0 -5 0 1 0], [0 -4 -4 1 1 0], [0 4 -4 -1 1 0],
     * [0 -2 -1 2 1 0], [0 2 -1 -2 1 0], [0 4 0 -5 0 1]; AT: [1 1 1 1 1 0], [0 1 -1 2 -2 0],
     * [0 1 1 4 4 0], [0 1 -1 8 -8 1]).
     * wino_in_f32: the input transform of nt tiles side by side.  d: 6 rows (row r at
     * d + r*ld) of 4*nt + 2 floats; tile t reads the 6x6 block at column 4t.  Writes
     * v[(6i + j)*vs + t] = (BT d_t BT^T)[i][j] for t < nt.
     * wino_out_f32: the output transform of nt tiles.  m[(6i + j)*ms + t] the 6x6 products
     * of tile t; writes y[r*ldy + 4t + c] = (AT m_t AT^T)[r][c] + bias for r, c < 4: four
     * rows of 4*nt floats.  Float32 arithmetic in the SIMD variants (within a few ulp of
     * the sum of the terms' magnitudes); the reference sums in double. */
    void (*wino_in_f32)(const float *d, int64_t ld, int nt, float *v, int64_t vs);
    void (*wino_out_f32)(const float *m, int64_t ms, int nt, float bias, float *y,
                         int64_t ldy);

    /* ---- flash attention ----
     * One key block of an online-softmax attention for SD_ATT_NQ queries held on the
     * lanes.  qt [dh][NQ]: the queries transposed and already multiplied by the scale.
     * Keys j < nk: k + j*k_rs and v + j*v_rs, dh floats each.  State per query lane q:
     * ot [dh][NQ] the un-normalised output, mx[q] the running maximum, sum[q] the running
     * normaliser (start: 0, -inf, 0).  Key j is masked out for lane q when j > q + causal
     * (INT32_MAX: no mask).  s: scratch of nk * NQ floats.  A lane whose keys are all masked
     * so far keeps mx = -inf, sum = 0 and ot = 0.  nk >= 1, dh >= 1. */
    void (*attn_block_f32)(const float *qt, int dh, const float *k, int64_t k_rs,
                           const float *v, int64_t v_rs, int nk, int causal, float *ot,
                           float *mx, float *sum, float *s);
    /* The same block with bf16 products (softmax, state and accumulation in float32).
     * With dh2 = dh and nk2 = nk rounded up to even: qp [dh2/2][NQ][2] the scaled queries
     * in bf16 pairs along the feature; kb + j*kb_rs the dh2 bf16 features of key j; vp
     * [nk2/2][dh][2] the values in bf16 pairs along the keys; the pad feature and the pad
     * key are zero.  pp: scratch of nk2 * NQ uint16.  The output update multiplies the
     * probabilities rounded to bf16; the normaliser adds them unrounded. */
    void (*attn_block_bf16)(const uint16_t *qp, int dh, const uint16_t *kb, int64_t kb_rs,
                            const uint16_t *vp, int nk, int causal, float *ot, float *mx,
                            float *sum, float *s, uint16_t *pp);

    /* ---- machine peak (sd bench) ----
     * Run `iters` rounds of independent multiply-adds from registers (no memory traffic)
     * and return the floating-point operations done (a multiply-add counts 2): float32 FMA
     * at this ISA's widest vectors, and the bf16 dot product (0 when the ISA has none). */
    double (*peak_fma_f32)(long iters);
    double (*peak_dot_bf16)(long iters);

    /* Whether the ops should run their matrix products on the packed micro-kernels above
     * (true where they beat OpenBLAS's sgemm) and whether gemm_bf16 is a native dot product
     * worth using (the bf16 precision mode). */
    bool packed_f32;
    bool native_bf16;
} sd_kernels;

/* The process-wide table (best variant allowed by CPU, OS and SD_SIMD). Thread-safe. */
const sd_kernels *sd_kernels_get(void);
/* The scalar reference table. */
const sd_kernels *sd_kernels_ref(void);
/* The table for one ISA if this CPU/OS can run it, else NULL (tests compare each). */
const sd_kernels *sd_kernels_for(sd_isa isa);
/* "scalar", "avx2", "avx512", "avx512bf16". */
const char *sd_isa_name(sd_isa isa);

/* Per-ISA fillers, each defined in its own file compiled with that ISA's flags.  They
 * override the slots they implement and leave the others as they found them. */
void sd_kernels_fill_ref(sd_kernels *k);
void sd_kernels_fill_avx2(sd_kernels *k);
void sd_kernels_fill_avx512(sd_kernels *k);
void sd_kernels_fill_avx512bf16(sd_kernels *k);

#endif
