/* kernels/ref.c - the scalar reference of every kernel slot.  Compiled with
 * -ffp-contract=off and no ISA flags: this file is the numerical truth the SIMD variants
 * are tested against.  Never delete a reference when adding a faster variant.
 *
 * Transcendentals and sums are evaluated in double and rounded once, so the reference is as
 * close to the exact result as float32 output allows; the element-wise affine maps use the
 * float32 operation order their contract states. */
#include "internal/half.h"
#include "internal/kernels.h"

#include <math.h>

static void sd_k_cvt_f16_f32__ref(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = sd_f16_to_f32(src[i]);
}

static void sd_k_cvt_bf16_f32__ref(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = sd_bf16_to_f32(src[i]);
}

/* ---- reductions ---------------------------------------------------------------------- */

static float sd_k_sum_f32__ref(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return (float)s;
}

static float sd_k_sumsq_dev_f32__ref(const float *x, size_t n, float mean)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - mean;
        s += d * d;
    }
    return (float)s;
}

/* ---- affine maps ------------------------------------------------------------------------ */

static float silu1(float x)
{
    return (float)(x / (1.0 + exp(-(double)x)));
}

static void sd_k_scale_shift_f32__ref(const float *x, float *y, size_t n, float m, float a,
                                      float b)
{
    for (size_t i = 0; i < n; i++)
        y[i] = (x[i] - m) * a + b;
}

static void sd_k_scale_shift_silu_f32__ref(const float *x, float *y, size_t n, float m,
                                           float a, float b)
{
    for (size_t i = 0; i < n; i++)
        y[i] = silu1((x[i] - m) * a + b);
}

static void sd_k_layernorm_apply_f32__ref(const float *x, float *y, size_t n, float mean,
                                          float rstd, const float *gamma, const float *beta)
{
    for (size_t i = 0; i < n; i++)
        y[i] = (x[i] - mean) * rstd * gamma[i] + beta[i];
}

static void sd_k_add_f32__ref(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

/* ---- activations ------------------------------------------------------------------------ */

static float gelu1(float x)
{
    /* x * Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2: no cancellation for negative x */
    return (float)(0.5 * x * erfc(-(double)x * M_SQRT1_2));
}

static void sd_k_silu_f32__ref(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = silu1(x[i]);
}

static void sd_k_gelu_f32__ref(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = gelu1(x[i]);
}

static void sd_k_quick_gelu_f32__ref(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float t = 1.702f * x[i];
        y[i] = (float)(x[i] / (1.0 + exp(-(double)t)));
    }
}

static void sd_k_geglu_f32__ref(const float *a, const float *g, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] * gelu1(g[i]);
}

/* ---- online softmax ------------------------------------------------------------------------ */

static float sd_k_softmax_step_f32__ref(float *s, size_t n, float *max, float *sum)
{
    float m = *max;
    for (size_t j = 0; j < n; j++)
        if (s[j] > m)
            m = s[j];
    if (m == -INFINITY) {
        for (size_t j = 0; j < n; j++)
            s[j] = 0;
        return 1;
    }
    double l = 0;
    for (size_t j = 0; j < n; j++) {
        s[j] = (float)exp((double)(s[j] - m)); /* the difference in float, as PyTorch */
        l += s[j];
    }
    float alpha = m == *max ? 1.0f : (float)exp((double)(*max - m));
    *sum = (float)((double)*sum * alpha + l);
    *max = m;
    return alpha;
}

/* ---- packed matrix products ------------------------------------------------------------- */

/* Store an accumulated tile: rows r < m, columns j < n of acc [MR][NR] into C. */
static void store_tile(const double acc[SD_GEMM_MR][SD_GEMM_NR], float *c, int64_t ldc, int m,
                       int n, bool add)
{
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) {
            float *p = c + r * ldc + j;
            *p = add ? (float)((double)*p + acc[r][j]) : (float)acc[r][j];
        }
}

static void sd_k_gemm_f32__ref(int64_t kc, const float *a, const float *b, int64_t ldb,
                               float *c, int64_t ldc, int m, int n, bool acc)
{
    double t[SD_GEMM_MR][SD_GEMM_NR] = {{0}};
    for (int64_t k = 0; k < kc; k++)
        for (int r = 0; r < m; r++)
            for (int j = 0; j < n; j++)
                t[r][j] += (double)a[k * SD_GEMM_MR + r] * b[k * ldb + j];
    store_tile(t, c, ldc, m, n, acc);
}

static void sd_k_gemm_bf16__ref(int64_t kp, const uint16_t *a, const uint16_t *b,
                                int64_t ldb, float *c, int64_t ldc, int m, int n, bool acc)
{
    double t[SD_GEMM_MR][SD_GEMM_NR] = {{0}};
    for (int64_t p = 0; p < kp; p++)
        for (int r = 0; r < m; r++)
            for (int j = 0; j < n; j++)
                for (int h = 0; h < 2; h++)
                    t[r][j] += (double)sd_bf16_to_f32(a[(p * SD_GEMM_MR + r) * 2 + h]) *
                               sd_bf16_to_f32(b[p * ldb + 2 * j + h]);
    store_tile(t, c, ldc, m, n, acc);
}

/* ---- Winograd F(4x4, 3x3) transforms --------------------------------------------------- */

static const double WINO_BT[6][6] = {
    {4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
    {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1},
};
static const double WINO_AT[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1},
};

static void sd_k_wino_in_f32__ref(const float *d, int64_t ld, int nt, float *v, int64_t vs)
{
    for (int t = 0; t < nt; t++)
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 6; j++) {
                double s = 0;
                for (int r = 0; r < 6; r++)
                    for (int c = 0; c < 6; c++)
                        s += WINO_BT[i][r] * WINO_BT[j][c] * d[r * ld + 4 * t + c];
                v[(6 * i + j) * vs + t] = (float)s;
            }
}

static void sd_k_wino_out_f32__ref(const float *m, int64_t ms, int nt, float bias, float *y,
                                   int64_t ldy)
{
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++) {
                double s = bias;
                for (int i = 0; i < 6; i++)
                    for (int j = 0; j < 6; j++)
                        s += WINO_AT[r][i] * WINO_AT[c][j] * m[(6 * i + j) * ms + t];
                y[r * ldy + 4 * t + c] = (float)s;
            }
}

static void sd_k_cvt_f32_bf16__ref(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = sd_f32_to_bf16(src[i]);
}

static void sd_k_pack_bf16_pairs__ref(const float *r0, const float *r1, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = sd_f32_to_bf16(r0[i]);
        dst[2 * i + 1] = r1 ? sd_f32_to_bf16(r1[i]) : 0;
    }
}

static void sd_k_pack_bf16_pairs_span__ref(const float *r0, int lo0, int hi0, const float *r1,
                                           int lo1, int hi1, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int k = (int)i;
        dst[2 * i] = k >= lo0 && k < hi0 ? sd_f32_to_bf16(r0[k - lo0]) : 0;
        dst[2 * i + 1] = k >= lo1 && k < hi1 ? sd_f32_to_bf16(r1[k - lo1]) : 0;
    }
}

/* ---- flash attention ------------------------------------------------------------------------ */

/* The online-softmax step of lane q of a key block: the scores s[j*NQ + q] become
 * exp(score - m) (m: the new running maximum, m_old the previous one), *l their sum; returns
 * the factor exp(m_old - m) that rescales the lane's running output and sum. */
static float softmax_lane(float *s, int nk, int q, float m_old, float m, double *l)
{
    enum { NQ = SD_ATT_NQ };
    *l = 0;
    for (int j = 0; j < nk; j++) {
        float p = (float)exp((double)(s[j * NQ + q] - m));
        s[j * NQ + q] = p;
        *l += p;
    }
    return m_old == -INFINITY ? 0.0f : (float)exp((double)(m_old - m));
}

static void sd_k_attn_block_f32__ref(const float *qt, int dh, const float *k, int64_t k_rs,
                                     const float *v, int64_t v_rs, int nk, int causal,
                                     float *ot, float *mx, float *sum, float *s)
{
    enum { NQ = SD_ATT_NQ };
    for (int q = 0; q < NQ; q++) {
        /* scores of this lane, the new maximum */
        float m = mx[q];
        for (int j = 0; j < nk; j++) {
            double d = 0;
            for (int e = 0; e < dh; e++)
                d += (double)qt[e * NQ + q] * k[j * k_rs + e];
            float sc = (int64_t)j > (int64_t)q + causal ? -INFINITY : (float)d;
            s[j * NQ + q] = sc;
            if (sc > m)
                m = sc;
        }
        if (m == -INFINITY)
            continue; /* nothing visible yet: the state stays (-inf, 0, 0) */
        double l;
        float alpha = softmax_lane(s, nk, q, mx[q], m, &l);
        for (int e = 0; e < dh; e++) {
            double o = (double)ot[e * NQ + q] * alpha;
            for (int j = 0; j < nk; j++)
                o += (double)s[j * NQ + q] * v[j * v_rs + e];
            ot[e * NQ + q] = (float)o;
        }
        sum[q] = (float)((double)sum[q] * alpha + l);
        mx[q] = m;
    }
}

static void sd_k_attn_block_bf16__ref(const uint16_t *qp, int dh, const uint16_t *kb,
                                      int64_t kb_rs, const uint16_t *vp, int nk, int causal,
                                      float *ot, float *mx, float *sum, float *s, uint16_t *pp)
{
    enum { NQ = SD_ATT_NQ };
    (void)pp;
    for (int q = 0; q < NQ; q++) {
        float m = mx[q];
        for (int j = 0; j < nk; j++) {
            double d = 0;
            for (int e = 0; e < dh; e++)
                d += (double)sd_bf16_to_f32(qp[((e / 2) * NQ + q) * 2 + e % 2]) *
                     sd_bf16_to_f32(kb[j * kb_rs + e]);
            float sc = (int64_t)j > (int64_t)q + causal ? -INFINITY : (float)d;
            s[j * NQ + q] = sc;
            if (sc > m)
                m = sc;
        }
        if (m == -INFINITY)
            continue;
        double l;
        float alpha = softmax_lane(s, nk, q, mx[q], m, &l);
        for (int e = 0; e < dh; e++) {
            double o = (double)ot[e * NQ + q] * alpha;
            for (int j = 0; j < nk; j++)
                o += (double)sd_bf16_to_f32(sd_f32_to_bf16(s[j * NQ + q])) *
                     sd_bf16_to_f32(vp[((j / 2) * dh + e) * 2 + j % 2]);
            ot[e * NQ + q] = (float)o;
        }
        sum[q] = (float)((double)sum[q] * alpha + l);
        mx[q] = m;
    }
}

/* ---- machine peak ------------------------------------------------------------------------ */

static double sd_k_peak_fma_f32__ref(long iters)
{
    float a[8] = {0}, x = 0.999999f, y = 1e-6f;
    for (long i = 0; i < iters; i++) {
        for (int j = 0; j < 8; j++)
            a[j] = a[j] * x + y;
        __asm__ volatile("" : "+m"(a));
    }
    return (double)iters * 8 * 2;
}

static double sd_k_peak_dot_bf16__ref(long iters)
{
    (void)iters;
    return 0;
}

void sd_kernels_fill_ref(sd_kernels *k)
{
    k->cvt_f16_f32 = sd_k_cvt_f16_f32__ref;
    k->cvt_bf16_f32 = sd_k_cvt_bf16_f32__ref;
    k->sum_f32 = sd_k_sum_f32__ref;
    k->sumsq_dev_f32 = sd_k_sumsq_dev_f32__ref;
    k->scale_shift_f32 = sd_k_scale_shift_f32__ref;
    k->scale_shift_silu_f32 = sd_k_scale_shift_silu_f32__ref;
    k->layernorm_apply_f32 = sd_k_layernorm_apply_f32__ref;
    k->add_f32 = sd_k_add_f32__ref;
    k->silu_f32 = sd_k_silu_f32__ref;
    k->gelu_f32 = sd_k_gelu_f32__ref;
    k->quick_gelu_f32 = sd_k_quick_gelu_f32__ref;
    k->geglu_f32 = sd_k_geglu_f32__ref;
    k->softmax_step_f32 = sd_k_softmax_step_f32__ref;
    k->gemm_f32 = sd_k_gemm_f32__ref;
    k->gemm_bf16 = sd_k_gemm_bf16__ref;
    k->cvt_f32_bf16 = sd_k_cvt_f32_bf16__ref;
    k->pack_bf16_pairs = sd_k_pack_bf16_pairs__ref;
    k->pack_bf16_pairs_span = sd_k_pack_bf16_pairs_span__ref;
    k->wino_in_f32 = sd_k_wino_in_f32__ref;
    k->wino_out_f32 = sd_k_wino_out_f32__ref;
    k->attn_block_f32 = sd_k_attn_block_f32__ref;
    k->attn_block_bf16 = sd_k_attn_block_bf16__ref;
    k->peak_fma_f32 = sd_k_peak_fma_f32__ref;
    k->peak_dot_bf16 = sd_k_peak_dot_bf16__ref;
    k->packed_f32 = false;
    k->native_bf16 = false;
}
