/* tests/t_ops.c - every op of internal/ops.h against a naive double-precision implementation
 * written here, under four contexts: the reference kernel table and the process table, each
 * with 1 and 2 threads.  Covers the convolution shapes SD uses (3x3 s1 p1, 3x3 s2 p1, 3x3 s2
 * pad (0,1,0,1), 1x1) and odd ones, F32/F16/BF16 weights, GroupNorm with 32 groups, fused
 * QKV strides, causal and cross attention with Lq != Lk, and long sequences that only fit
 * because attention is tiled (the allocation high-water mark is checked).  Two more contexts
 * run in bf16 precision (bf16 products where the CPU has them): their linear and conv
 * results are held to the bf16 rounding bound instead.  The Winograd F(4x4, 3x3)
 * convolution is checked on its own (packed contexts, odd sizes, held to TOL_WINO), the
 * other conv cases run with it off.  Also argument
 * errors and allocation failure (SD_ERR_NOMEM, nothing leaked).  The seed is printed;
 * $T_SEED overrides it. */
#include "harness.h"
#include "internal/common.h"
#include "internal/ctx.h"
#include "internal/half.h"
#include "internal/kernels.h"
#include "internal/ops.h"

#include <stdint.h>

/* GEMM-based ops: |got - want| <= TOL_DOT * (sum_k |x_k w_k| + |bias|) */
#define TOL_DOT 2e-6
/* ... in bf16 precision: x and w each rounded to 8 significant bits (relative error <= 2^-9
 * each, so <= 2^-8 + 2^-18 per product), then float32 accumulation */
#define TOL_DOT_BF16 4e-3
/* norms: |got - want| <= TOL_NORM * (|xhat gamma| + |beta|) + TOL_MEAN * |mean| rstd |gamma|
 * (the second term: the float32 mean is off by up to half an ulp, as in PyTorch) */
#define TOL_NORM 2e-6
#define TOL_MEAN 1.2e-7
/* attention: |got - want| <= TOL_ATT * max|v| (the output is a convex combination of v) */
#define TOL_ATT 1e-6
/* ... in bf16 precision (q, k, v and the probabilities rounded to 8 significant bits): each
 * score is off by <= 2^-8 of S = scale * sum_e |q_e k_e|, which moves a probability by up
 * to 2 * 2^-8 * S relative; the rounded probabilities and values add 2^-8 and 2^-9 */
#define TOL_ATT_BF16 7.9e-3
/* element-wise transcendental ops: relative, with an absolute floor for subnormals */
#define TOL_EW 1e-6
#define TOL_TINY 1e-37
/* timestep embedding: diffusers rounds the exponent e, exp(e) and t*f to float32; the
 * argument's error is then within TOL_TEMB_ARG * |t f| * (1 + |e|) (2 ulp per step) */
#define TOL_TEMB_ARG 1.2e-7

enum { N_CFG = 6 };

typedef struct cfg {
    const char *name;
    sd_ctx *ctx;
    bool bf16;
} cfg;

static cfg cfgs[N_CFG];

/* ---- deterministic data ---------------------------------------------------------------- */

static uint64_t rng;

static uint32_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545F4914F6CDD1DULL) >> 32);
}

static float uni(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rnd() >> 8) * (1.0f / 16777216.0f);
}

static float *randv(size_t n, float lo, float hi)
{
    float *v = malloc(n ? n * sizeof(float) : 1);
    for (size_t i = 0; i < n; i++)
        v[i] = uni(lo, hi);
    return v;
}

static void poison(float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = NAN;
}

/* A weight tensor of `dtype` holding vals (n of them); vals is rounded in place to what the
 * tensor stores, so the reference computes with the same numbers. */
static sd_tensor make_w(sd_dtype dtype, int ndim, const int64_t *shape, float *vals)
{
    sd_tensor t;
    sd_error err = {0};
    if (sd_tensor_new(dtype, ndim, shape, &t, &err) != SD_OK) {
        fprintf(stderr, "sd_tensor_new: %s\n", err.msg);
        exit(2);
    }
    int64_t n = sd_tensor_numel(&t);
    for (int64_t i = 0; i < n; i++) {
        if (dtype == SD_DTYPE_F16) {
            uint16_t h = sd_f32_to_f16(vals[i]);
            ((uint16_t *)t.data)[i] = h;
            vals[i] = sd_f16_to_f32(h);
        } else if (dtype == SD_DTYPE_BF16) {
            uint16_t h = sd_f32_to_bf16(vals[i]);
            ((uint16_t *)t.data)[i] = h;
            vals[i] = sd_bf16_to_f32(h);
        } else {
            ((float *)t.data)[i] = vals[i];
        }
    }
    return t;
}

static sd_tensor make_vec(sd_dtype dtype, int64_t n, float *vals)
{
    return make_w(dtype, 1, (int64_t[]){n}, vals);
}

/* got vs want elementwise within tol[i]; one CHECK, one line */
static void compare(const char *what, const char *cfgname, const float *got,
                    const double *want, const double *tol, size_t n)
{
    size_t bad = 0, wi = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        double r = got[i] == want[i] ? 0 : err / tol[i];
        if (isnan(r) || isnan(got[i]))
            r = INFINITY;
        if (r > 1)
            bad++;
        if (r > worst || (i == 0 && r == 0)) {
            worst = r;
            wi = i;
        }
    }
    CHECK(bad == 0, "%s [%s]: %zu of %zu out of tolerance; worst at %zu: got %.9g want %.9g "
          "tol %.3g", what, cfgname, bad, n, wi, n ? got[wi] : 0.0, n ? want[wi] : 0.0,
          n ? tol[wi] : 0.0);
    fprintf(stderr, "%s %-44s [%s] n=%zu worst %.3f of tolerance\n", bad ? "FAIL" : "ok  ",
            what, cfgname, n, worst);
}

static const char *dtname(sd_dtype t)
{
    return sd_dtype_name(t);
}

/* The GEMM tolerances of config c: tol as it is, or rescaled to the bf16 bound into buf. */
static const double *dot_tol(int c, const double *tol, double *buf, size_t n)
{
    if (!cfgs[c].bf16)
        return tol;
    for (size_t i = 0; i < n; i++)
        buf[i] = tol[i] * (TOL_DOT_BF16 / TOL_DOT);
    return buf;
}

/* ==== linear ================================================================================ */

static void test_linear(int64_t M, int64_t K, int64_t N, sd_dtype dt, bool bias, bool w4d)
{
    float *x = randv((size_t)(M * K), -1, 1), *wv = randv((size_t)(N * K), -1, 1);
    float *bv = randv((size_t)N, -1, 1);
    sd_tensor w = w4d ? make_w(dt, 4, (int64_t[]){N, K, 1, 1}, wv)
                      : make_w(dt, 2, (int64_t[]){N, K}, wv);
    sd_tensor b = make_vec(dt, N, bv);
    size_t ny = (size_t)(M * N);
    double *want = malloc((ny + 1) * sizeof(double)), *tol = malloc((ny + 1) * sizeof(double));
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = bias ? bv[n] : 0, mag = bias ? fabs(bv[n]) : 0;
            for (int64_t k = 0; k < K; k++) {
                double p = (double)x[m * K + k] * wv[n * K + k];
                s += p;
                mag += fabs(p);
            }
            want[m * N + n] = s;
            tol[m * N + n] = TOL_DOT * mag + 1e-30;
        }
    float *y = malloc((ny + 1) * sizeof(float));
    double *tolb = malloc((ny + 1) * sizeof(double));
    char what[100];
    snprintf(what, sizeof what, "linear M=%lld K=%lld N=%lld %s%s%s", (long long)M,
             (long long)K, (long long)N, dtname(dt), bias ? " bias" : "", w4d ? " 4d" : "");
    for (int c = 0; c < N_CFG; c++) {
        poison(y, ny);
        sd_error err = {0};
        sd_status st = sd_op_linear(cfgs[c].ctx, x, M, K, &w, bias ? &b : NULL, y, &err);
        CHECK(st == SD_OK, "%s: %s", what, err.msg);
        compare(what, cfgs[c].name, y, want, dot_tol(c, tol, tolb, ny), ny);
    }
    sd_tensor_free(&w);
    sd_tensor_free(&b);
    free(x), free(wv), free(bv), free(want), free(tol), free(tolb), free(y);
}

/* ==== conv2d ================================================================================ */

/* Winograd F(4x4, 3x3) in float32: |got - exact| <= TOL_WINO * max|exact| over the call (the
 * transforms round 6x6 tile sums whose terms reach ~100x the inputs) */
#define TOL_WINO 1e-5
/* outputs where Winograd and the direct convolution differ, over all Winograd cases */
static long wino_differs;

typedef struct conv_case {
    int N, C, H, W, O, kh, kw, stride, pt, pl, pb, pr;
    sd_dtype dt;
    bool bias;
} conv_case;

static void conv_ref(const conv_case *cc, const float *x, const float *w, const float *b,
                     int Ho, int Wo, int64_t idx, double *want, double *tol)
{
    /* output element idx of [N, O, Ho, Wo] */
    int ox = (int)(idx % Wo), oy = (int)(idx / Wo % Ho), o = (int)(idx / Wo / Ho % cc->O);
    int n = (int)(idx / Wo / Ho / cc->O);
    double s = cc->bias ? b[o] : 0, mag = cc->bias ? fabs(b[o]) : 0;
    for (int c = 0; c < cc->C; c++)
        for (int ky = 0; ky < cc->kh; ky++)
            for (int kx = 0; kx < cc->kw; kx++) {
                int iy = oy * cc->stride - cc->pt + ky, ix = ox * cc->stride - cc->pl + kx;
                if (iy < 0 || iy >= cc->H || ix < 0 || ix >= cc->W)
                    continue;
                double p = (double)x[(((int64_t)n * cc->C + c) * cc->H + iy) * cc->W + ix] *
                           w[(((int64_t)o * cc->C + c) * cc->kh + ky) * cc->kw + kx];
                s += p;
                mag += fabs(p);
            }
    *want = s;
    *tol = TOL_DOT * mag + 1e-30;
}

/* Full comparison (or `samples` sampled outputs when nonzero, for big layers) of the direct
 * convolution; with `wino`, of Winograd F(4x4, 3x3) on the packed contexts instead (the
 * reference contexts have no Winograd path), held to TOL_WINO of the largest output and
 * compared with the direct convolution (they must differ somewhere: the path really ran). */
static void test_conv(conv_case cc, int samples, bool check_peak, bool wino)
{
    int Ho = (cc.H + cc.pt + cc.pb - cc.kh) / cc.stride + 1;
    int Wo = (cc.W + cc.pl + cc.pr - cc.kw) / cc.stride + 1;
    size_t nx = (size_t)cc.N * cc.C * cc.H * cc.W, nw = (size_t)cc.O * cc.C * cc.kh * cc.kw;
    size_t ny = (size_t)cc.N * cc.O * Ho * Wo;
    float *x = randv(nx, -1, 1), *wv = randv(nw, -1, 1), *bv = randv((size_t)cc.O, -1, 1);
    sd_tensor w = make_w(cc.dt, 4, (int64_t[]){cc.O, cc.C, cc.kh, cc.kw}, wv);
    sd_tensor b = make_vec(cc.dt, cc.O, bv);
    size_t nchk = samples ? (size_t)samples : ny;
    int64_t *idx = malloc(nchk * sizeof(int64_t));
    double *want = malloc(nchk * sizeof(double)), *tol = malloc(nchk * sizeof(double));
    double *tolb = malloc(nchk * sizeof(double));
    for (size_t i = 0; i < nchk; i++) {
        idx[i] = samples ? (int64_t)(rnd() % ny) : (int64_t)i;
        if (samples && i < 2)
            idx[i] = i == 0 ? 0 : (int64_t)ny - 1;
        conv_ref(&cc, x, wv, bv, Ho, Wo, idx[i], &want[i], &tol[i]);
    }
    float *y = malloc(ny * sizeof(float)), *got = malloc(nchk * sizeof(float));
    char what[160];
    snprintf(what, sizeof what, "conv N%d C%d %dx%d O%d k%dx%d s%d p(%d,%d,%d,%d) %s%s", cc.N,
             cc.C, cc.H, cc.W, cc.O, cc.kh, cc.kw, cc.stride, cc.pt, cc.pl, cc.pb, cc.pr,
             dtname(cc.dt), cc.bias ? " bias" : "");
    sd_conv2d_params p = {.stride = cc.stride, .pad_top = cc.pt, .pad_left = cc.pl,
                          .pad_bottom = cc.pb, .pad_right = cc.pr};
    double peak_want = 0;
    for (size_t i = 0; i < nchk; i++)
        peak_want = fmax(peak_want, fabs(want[i]));
    for (int c = 0; c < N_CFG; c++) {
        if (check_peak && c != 3 && c != 5)
            continue; /* the big layer runs on the process table with 2 threads only */
        if (wino && (c < 2 || !cfgs[c].ctx->packed))
            continue;
        poison(y, ny);
        sd_error err = {0};
        size_t live = sd_alloc_live_bytes();
        sd_alloc_peak_reset();
        cfgs[c].ctx->winograd = wino ? SD_WINOGRAD_ALWAYS : SD_WINOGRAD_OFF;
        sd_status st = sd_op_conv2d(cfgs[c].ctx, x, cc.N, cc.C, cc.H, cc.W, &w,
                                    cc.bias ? &b : NULL, &p, y, &err);
        cfgs[c].ctx->winograd = SD_WINOGRAD_AUTO;
        CHECK(st == SD_OK, "%s: %s", what, err.msg);
        if (check_peak) {
            size_t used = sd_alloc_peak_bytes() - live;
            size_t whole = (size_t)cc.C * cc.kh * cc.kw * Ho * Wo * sizeof(float);
            CHECK(used < whole / 3 && used <= (size_t)20 << 20,
                  "conv scratch %zu bytes, whole-layer im2col %zu", used, whole);
            fprintf(stderr, "     conv scratch high-water %.2f MiB (whole im2col %.1f MiB)\n",
                    used / 1048576.0, whole / 1048576.0);
        }
        for (size_t i = 0; i < nchk; i++)
            got[i] = y[idx[i]];
        if (!wino) {
            compare(what, cfgs[c].name, got, want, dot_tol(c, tol, tolb, nchk), nchk);
            continue;
        }
        for (size_t i = 0; i < nchk; i++)
            tolb[i] = TOL_WINO * peak_want + 1e-30;
        compare(what, cfgs[c].name, got, want, tolb, nchk);
        if (c != 3)
            continue;
        cfgs[c].ctx->winograd = SD_WINOGRAD_OFF;
        st = sd_op_conv2d(cfgs[c].ctx, x, cc.N, cc.C, cc.H, cc.W, &w, cc.bias ? &b : NULL, &p,
                          y, &err);
        cfgs[c].ctx->winograd = SD_WINOGRAD_AUTO;
        CHECK(st == SD_OK, "%s direct: %s", what, err.msg);
        for (size_t i = 0; i < nchk; i++)
            wino_differs += y[idx[i]] != got[i];
    }
    sd_tensor_free(&w);
    sd_tensor_free(&b);
    free(x), free(wv), free(bv), free(idx), free(want), free(tol), free(tolb), free(y);
    free(got);
}

/* ==== normalisation ========================================================================= */

static void test_groupnorm(int N, int C, int64_t HW, int groups, bool silu, sd_dtype dt,
                           float offset, bool inplace)
{
    size_t n = (size_t)N * C * HW;
    float *x = randv(n, offset - 2, offset + 2), *gv = randv((size_t)C, 0.5f, 1.5f);
    float *bv = randv((size_t)C, -0.5f, 0.5f);
    sd_tensor g = make_vec(dt, C, gv), b = make_vec(dt, C, bv);
    double *want = malloc(n * sizeof(double)), *tol = malloc(n * sizeof(double));
    int cpg = C / groups;
    const float eps = 1e-5f;
    for (int i = 0; i < N; i++)
        for (int gr = 0; gr < groups; gr++) {
            const float *xs = x + ((int64_t)i * C + (int64_t)gr * cpg) * HW;
            int64_t cnt = cpg * HW;
            double s = 0, ss = 0;
            for (int64_t j = 0; j < cnt; j++)
                s += xs[j];
            double mean = s / cnt;
            for (int64_t j = 0; j < cnt; j++)
                ss += (xs[j] - mean) * (xs[j] - mean);
            double rstd = 1 / sqrt(ss / cnt + eps);
            for (int64_t j = 0; j < cnt; j++) {
                int ch = gr * cpg + (int)(j / HW);
                double xh = (xs[j] - mean) * rstd, v = xh * gv[ch] + bv[ch];
                size_t o = (size_t)(xs - x) + (size_t)j;
                want[o] = silu ? v / (1 + exp(-v)) : v;
                tol[o] = TOL_NORM * (fabs(xh * gv[ch]) + fabs(bv[ch])) +
                         TOL_MEAN * fabs(mean) * rstd * fabs(gv[ch]) + 1e-30;
            }
        }
    float *y = malloc(n * sizeof(float));
    char what[140];
    snprintf(what, sizeof what, "groupnorm N%d C%d HW%lld G%d%s %s off%g%s", N, C,
             (long long)HW, groups, silu ? " silu" : "", dtname(dt), offset,
             inplace ? " in place" : "");
    for (int c = 0; c < N_CFG; c++) {
        if (inplace)
            memcpy(y, x, n * sizeof(float));
        else
            poison(y, n);
        sd_error err = {0};
        sd_status st = sd_op_groupnorm(cfgs[c].ctx, inplace ? y : x, y, N, C, HW, groups, &g,
                                       &b, eps, silu, &err);
        CHECK(st == SD_OK, "%s: %s", what, err.msg);
        compare(what, cfgs[c].name, y, want, tol, n);
    }
    sd_tensor_free(&g);
    sd_tensor_free(&b);
    free(x), free(gv), free(bv), free(want), free(tol), free(y);
}

static void test_layernorm(int64_t rows, int64_t D, sd_dtype dt, float offset, bool inplace)
{
    size_t n = (size_t)(rows * D);
    float *x = randv(n, offset - 3, offset + 3), *gv = randv((size_t)D, 0.5f, 1.5f);
    float *bv = randv((size_t)D, -0.5f, 0.5f);
    sd_tensor g = make_vec(dt, D, gv), b = make_vec(dt, D, bv);
    double *want = malloc(n * sizeof(double)), *tol = malloc(n * sizeof(double));
    const float eps = 1e-5f;
    for (int64_t r = 0; r < rows; r++) {
        const float *xs = x + r * D;
        double s = 0, ss = 0;
        for (int64_t j = 0; j < D; j++)
            s += xs[j];
        double mean = s / D;
        for (int64_t j = 0; j < D; j++)
            ss += (xs[j] - mean) * (xs[j] - mean);
        double rstd = 1 / sqrt(ss / D + eps);
        for (int64_t j = 0; j < D; j++) {
            double xh = (xs[j] - mean) * rstd;
            want[r * D + j] = xh * gv[j] + bv[j];
            tol[r * D + j] = TOL_NORM * (fabs(xh * gv[j]) + fabs(bv[j])) +
                             TOL_MEAN * fabs(mean) * rstd * fabs(gv[j]) + 1e-30;
        }
    }
    float *y = malloc(n * sizeof(float));
    char what[120];
    snprintf(what, sizeof what, "layernorm rows%lld D%lld %s off%g%s", (long long)rows,
             (long long)D, dtname(dt), offset, inplace ? " in place" : "");
    for (int c = 0; c < N_CFG; c++) {
        if (inplace)
            memcpy(y, x, n * sizeof(float));
        else
            poison(y, n);
        sd_error err = {0};
        sd_status st = sd_op_layernorm(cfgs[c].ctx, inplace ? y : x, y, rows, D, &g, &b, eps,
                                       &err);
        CHECK(st == SD_OK, "%s: %s", what, err.msg);
        compare(what, cfgs[c].name, y, want, tol, n);
    }
    sd_tensor_free(&g);
    sd_tensor_free(&b);
    free(x), free(gv), free(bv), free(want), free(tol), free(y);
}

/* ==== attention ============================================================================= */

typedef struct att_case {
    int batch, heads, dh;
    int64_t lq, lk;
    bool causal, fused; /* fused: q, k, v are column slices of one [B*L, 3*heads*dh] buffer */
    int o_pad;          /* extra floats per output row (must stay untouched) */
} att_case;

/* reference output row (b, i, h) into want[dh]; *smag = the row's largest
 * scale * sum_e |q_e k_e| */
static void att_ref_row(const att_case *ac, const sd_attn_params *p, const float *q,
                        const float *k, const float *v, int b, int64_t i, int h, double *want,
                        double *smag)
{
    int64_t nk = ac->causal ? SD_MIN(p->lk, i + 1) : p->lk;
    double *s = malloc((size_t)nk * sizeof(double));
    const float *qi = q + (b * p->lq + i) * p->q_rs + h * p->dh;
    double mx = -INFINITY;
    *smag = 0;
    for (int64_t j = 0; j < nk; j++) {
        const float *kj = k + (b * p->lk + j) * p->k_rs + h * p->dh;
        double d = 0, a = 0;
        for (int t = 0; t < p->dh; t++) {
            d += (double)qi[t] * kj[t];
            a += fabs((double)qi[t] * kj[t]);
        }
        s[j] = d * p->scale;
        mx = SD_MAX(mx, s[j]);
        *smag = SD_MAX(*smag, a * p->scale);
    }
    double sum = 0;
    for (int64_t j = 0; j < nk; j++)
        sum += (s[j] = exp(s[j] - mx));
    for (int t = 0; t < p->dh; t++)
        want[t] = 0;
    for (int64_t j = 0; j < nk; j++) {
        const float *vj = v + (b * p->lk + j) * p->v_rs + h * p->dh;
        for (int t = 0; t < p->dh; t++)
            want[t] += s[j] / sum * vj[t];
    }
    free(s);
}

/* `sample_rows` > 0: check only that many (b, i) rows (for the longest sequences);
 * only_cfg >= 0: run on that configuration only; check_peak: the scratch must stay small. */
static void test_attention(att_case ac, int sample_rows, int only_cfg, bool check_peak)
{
    int64_t width = (int64_t)ac.heads * ac.dh;
    sd_attn_params p = {.batch = ac.batch, .heads = ac.heads, .dh = ac.dh, .lq = ac.lq,
                        .lk = ac.lk, .scale = 1.0f / sqrtf((float)ac.dh), .causal = ac.causal};
    float *qb, *kb, *vb, *fused = NULL;
    if (ac.fused) {
        p.q_rs = p.k_rs = p.v_rs = 3 * width;
        fused = randv((size_t)(ac.batch * ac.lq * 3 * width), -1, 1);
        qb = fused, kb = fused + width, vb = fused + 2 * width;
    } else {
        p.q_rs = width + 1, p.k_rs = width, p.v_rs = width + 2; /* odd strides */
        qb = randv((size_t)(ac.batch * ac.lq * p.q_rs), -1, 1);
        kb = randv((size_t)(ac.batch * ac.lk * p.k_rs), -1, 1);
        vb = randv((size_t)(ac.batch * ac.lk * p.v_rs), -1, 1);
    }
    p.o_rs = width + ac.o_pad;
    double vmax = 0;
    for (int64_t r = 0; r < ac.batch * ac.lk; r++)
        for (int64_t t = 0; t < width; t++)
            vmax = SD_MAX(vmax, fabs(vb[r * p.v_rs + t]));
    int64_t rows = ac.batch * ac.lq;
    int64_t nrows = sample_rows ? sample_rows : rows;
    int64_t *ri = malloc((size_t)nrows * sizeof(int64_t));
    double *want = malloc((size_t)(nrows * width) * sizeof(double));
    double *tol = malloc((size_t)(nrows * width) * sizeof(double));
    double *tolb = malloc((size_t)(nrows * width) * sizeof(double));
    for (int64_t r = 0; r < nrows; r++) {
        ri[r] = sample_rows ? (r == 0 ? 0 : r == 1 ? rows - 1 : (int64_t)(rnd() % rows)) : r;
        for (int h = 0; h < ac.heads; h++) {
            double smag;
            att_ref_row(&ac, &p, qb, kb, vb, (int)(ri[r] / ac.lq), ri[r] % ac.lq, h,
                        want + r * width + h * ac.dh, &smag);
            for (int t = 0; t < ac.dh; t++) {
                tol[r * width + h * ac.dh + t] = TOL_ATT * vmax + 1e-30;
                tolb[r * width + h * ac.dh + t] = TOL_ATT_BF16 * (1 + smag) * vmax;
            }
        }
    }
    size_t nout = (size_t)(rows * p.o_rs);
    float *out = malloc(nout * sizeof(float)), *got = malloc((size_t)(nrows * width) * 4);
    char what[160];
    snprintf(what, sizeof what, "attention B%d H%d dh%d %lldx%lld%s%s%s", ac.batch, ac.heads,
             ac.dh, (long long)ac.lq, (long long)ac.lk, ac.causal ? " causal" : "",
             ac.fused ? " fused-qkv" : "", ac.o_pad ? " padded-out" : "");
    for (int c = 0; c < N_CFG; c++) {
        if (only_cfg >= 0 && c != only_cfg)
            continue;
        poison(out, nout);
        sd_error err = {0};
        size_t live = sd_alloc_live_bytes();
        sd_alloc_peak_reset();
        sd_status st = sd_op_attention(cfgs[c].ctx, qb, kb, vb, out, &p, &err);
        CHECK(st == SD_OK, "%s: %s", what, err.msg);
        if (check_peak) {
            size_t used = sd_alloc_peak_bytes() - live;
            size_t scores = (size_t)(ac.lq * ac.lk) * sizeof(float);
            CHECK(used < scores / 64 && used < (size_t)1 << 20,
                  "attention scratch %zu bytes vs Lq*Lk floats %zu", used, scores);
            fprintf(stderr, "     attention scratch high-water %.0f KiB (Lq x Lk scores would "
                    "be %.0f MiB)\n", used / 1024.0, scores / 1048576.0);
        }
        for (int64_t r = 0; r < nrows; r++)
            memcpy(got + r * width, out + ri[r] * p.o_rs, (size_t)width * sizeof(float));
        compare(what, cfgs[c].name, got, want, cfgs[c].bf16 ? tolb : tol,
                (size_t)(nrows * width));
        if (ac.o_pad) {
            size_t touched = 0;
            for (int64_t r = 0; r < rows; r++)
                for (int t = 0; t < ac.o_pad; t++)
                    touched += !isnan(out[r * p.o_rs + width + t]);
            CHECK(touched == 0, "%s: %zu padding floats written", what, touched);
        }
    }
    if (fused) {
        free(fused);
    } else {
        free(qb), free(kb), free(vb);
    }
    free(ri), free(want), free(tol), free(tolb), free(out), free(got);
}

/* ==== element-wise ============================================================================ */

typedef enum { EW_SILU, EW_GELU, EW_QUICK_GELU } ew_kind;

static double ew_ref(ew_kind k, float x)
{
    switch (k) {
    case EW_SILU:
        return x / (1 + exp(-(double)x));
    case EW_GELU:
        return 0.5 * x * erfc(-(double)x / sqrt(2.0));
    case EW_QUICK_GELU:
        return x / (1 + exp(-(double)(1.702f * x)));
    }
    return 0;
}

static void test_elementwise(void)
{
    const int64_t n = 40000; /* several work items */
    float *x = randv((size_t)n, -10, 10), *y = malloc((size_t)n * 4);
    double *want = malloc((size_t)n * sizeof(double)), *tol = malloc((size_t)n * sizeof(double));
    static const char *const names[] = {"silu", "gelu", "quick_gelu"};
    for (int kind = 0; kind < 3; kind++) {
        for (int64_t i = 0; i < n; i++) {
            want[i] = ew_ref((ew_kind)kind, x[i]);
            tol[i] = TOL_EW * fabs(want[i]) + TOL_TINY;
        }
        for (int c = 0; c < N_CFG; c++) {
            memcpy(y, x, (size_t)n * 4);
            if (kind == EW_SILU)
                sd_op_silu(cfgs[c].ctx, y, n);
            else if (kind == EW_GELU)
                sd_op_gelu(cfgs[c].ctx, y, n);
            else
                sd_op_quick_gelu(cfgs[c].ctx, y, n);
            compare(names[kind], cfgs[c].name, y, want, tol, (size_t)n);
        }
    }
    /* add, scale: exact float32 results */
    float *x2 = randv((size_t)n, -10, 10);
    for (int c = 0; c < N_CFG; c++) {
        memcpy(y, x, (size_t)n * 4);
        sd_op_add(cfgs[c].ctx, y, x2, n);
        for (int64_t i = 0; i < n; i++)
            want[i] = x[i] + x2[i], tol[i] = 1e-30;
        compare("add", cfgs[c].name, y, want, tol, (size_t)n);
        memcpy(y, x, (size_t)n * 4);
        sd_op_scale(cfgs[c].ctx, y, 0.18215f, n);
        for (int64_t i = 0; i < n; i++)
            want[i] = x[i] * 0.18215f;
        compare("scale", cfgs[c].name, y, want, tol, (size_t)n);
        /* add_channel: [2, 4, 5000] += v[8] */
        memcpy(y, x, (size_t)n * 4);
        sd_op_add_channel(cfgs[c].ctx, y, x2, 2, 4, 5000);
        for (int64_t i = 0; i < n; i++)
            want[i] = x[i] + x2[i / 5000];
        compare("add_channel", cfgs[c].name, y, want, tol, (size_t)n);
    }
    /* geglu: [5, 2*4000] -> [5, 4000] */
    for (int64_t r = 0; r < 5; r++)
        for (int64_t i = 0; i < 4000; i++) {
            float a = x[r * 8000 + i], g = x[r * 8000 + 4000 + i];
            want[r * 4000 + i] = a * ew_ref(EW_GELU, g);
            tol[r * 4000 + i] = TOL_EW * fabs(want[r * 4000 + i]) + TOL_TINY;
        }
    for (int c = 0; c < N_CFG; c++) {
        poison(y, 20000);
        sd_op_geglu(cfgs[c].ctx, x, y, 5, 4000);
        compare("geglu", cfgs[c].name, y, want, tol, 20000);
    }
    free(x), free(x2), free(y), free(want), free(tol);
}

static void test_layout(void)
{
    /* upsample2x: [NC=20, 37, 29] -> [20, 74, 58]; transpose: [3, 300, 131] */
    const int NC = 20, H = 37, W = 29;
    const int B = 3, R = 300, C = 131;
    size_t nx = (size_t)NC * H * W, ny = 4 * nx, nt = (size_t)B * R * C;
    size_t nmax = SD_MAX(ny, nt);
    float *x = randv(nmax, -1, 1), *y = malloc(nmax * 4);
    double *want = malloc(nmax * sizeof(double)), *tol = malloc(nmax * sizeof(double));
    for (size_t i = 0; i < nmax; i++)
        tol[i] = 1e-30;
    for (int c = 0; c < NC; c++)
        for (int i = 0; i < 2 * H; i++)
            for (int j = 0; j < 2 * W; j++) {
                size_t o = ((size_t)c * 2 * H + i) * 2 * W + j;
                want[o] = x[((size_t)c * H + i / 2) * W + j / 2];
            }
    for (int c = 0; c < N_CFG; c++) {
        poison(y, ny);
        sd_op_upsample2x(cfgs[c].ctx, x, y, NC, H, W);
        compare("upsample2x", cfgs[c].name, y, want, tol, ny);
    }
    for (int b = 0; b < B; b++)
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++)
                want[((size_t)b * C + c) * R + r] = x[((size_t)b * R + r) * C + c];
    for (int c = 0; c < N_CFG; c++) {
        poison(y, nt);
        sd_op_transpose(cfgs[c].ctx, x, y, B, R, C);
        compare("transpose", cfgs[c].name, y, want, tol, nt);
    }
    free(x), free(y), free(want), free(tol);
}

static void test_timestep_embedding(void)
{
    static const float ts[] = {0.0f, 1.0f, 262.894737f, 999.0f};
    static const struct {
        int dim;
        bool flip;
        float shift;
    } cases[] = {{320, true, 0.0f}, {32, true, 0.0f}, {8, false, 1.0f}, {7, false, 1.0f}};
    for (size_t c = 0; c < SD_ARRAY_LEN(cases); c++)
        for (size_t ti = 0; ti < SD_ARRAY_LEN(ts); ti++) {
            int dim = cases[c].dim, half = dim / 2;
            float out[320 + 1];
            double want[320], tol[320];
            out[dim] = 12345.0f;
            sd_timestep_embedding(ts[ti], dim, cases[c].flip, cases[c].shift, out);
            for (int i = 0; i < half; i++) {
                double e = -log(10000.0) * i / (half - cases[c].shift), f = exp(e);
                double a = ts[ti] * f;
                int si = cases[c].flip ? half + i : i, ci = cases[c].flip ? i : half + i;
                want[si] = sin(a);
                want[ci] = cos(a);
                tol[si] = tol[ci] = TOL_TEMB_ARG * (fabs(a) * (1 + fabs(e)) + 1);
            }
            if (dim % 2)
                want[dim - 1] = 0, tol[dim - 1] = 1e-30;
            char what[80];
            snprintf(what, sizeof what, "timestep_embedding t=%g dim=%d flip=%d shift=%g",
                     ts[ti], dim, cases[c].flip, cases[c].shift);
            compare(what, "-", out, want, tol, (size_t)dim);
            CHECK(out[dim] == 12345.0f, "%s wrote past dim", what);
        }
}

static void test_to_f32(void)
{
    float v[24];
    for (int i = 0; i < 24; i++)
        v[i] = uni(-3, 3);
    for (int d = 0; d < 3; d++) {
        sd_dtype dt = d == 0 ? SD_DTYPE_F32 : d == 1 ? SD_DTYPE_F16 : SD_DTYPE_BF16;
        float vals[24];
        memcpy(vals, v, sizeof vals);
        sd_tensor t = make_w(dt, 3, (int64_t[]){2, 3, 4}, vals);
        float out[24];
        double want[24], tol[24];
        for (int i = 0; i < 24; i++)
            want[i] = vals[i], tol[i] = 1e-30;
        sd_error err = {0};
        CHECK(sd_tensor_to_f32(cfgs[3].ctx, &t, out, 24, &err) == SD_OK, "%s", err.msg);
        compare("tensor_to_f32 contiguous", dtname(dt), out, want, tol, 24);
        /* a strided view: the transpose of the last two dimensions, [2, 4, 3] */
        sd_tensor tv = t;
        tv.owned = false;
        tv.shape[1] = 4, tv.shape[2] = 3;
        tv.stride[1] = 1, tv.stride[2] = 4;
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 4; b++)
                for (int c = 0; c < 3; c++)
                    want[(a * 4 + b) * 3 + c] = vals[(a * 3 + c) * 4 + b];
        CHECK(sd_tensor_to_f32(NULL, &tv, out, 24, &err) == SD_OK, "%s", err.msg);
        compare("tensor_to_f32 strided", dtname(dt), out, want, tol, 24);
        CHECK(sd_tensor_to_f32(NULL, &t, out, 23, &err) == SD_ERR_FORMAT, "size mismatch");
        sd_tensor_free(&t);
    }
    sd_tensor ti;
    sd_error err = {0};
    sd_tensor_new(SD_DTYPE_I64, 1, (int64_t[]){4}, &ti, &err);
    float out[4];
    CHECK(sd_tensor_to_f32(NULL, &ti, out, 4, &err) == SD_ERR_FORMAT && err.msg[0],
          "integer tensor rejected");
    sd_tensor_free(&ti);
}

/* ==== concurrency ============================================================================= */

/* The same call on the same 2-thread ctx gives bit-identical results every time: the work
 * split is deterministic, so any difference would be a race (e.g. in concurrent sgemm). */
static void test_determinism(void)
{
    sd_ctx *ctx = cfgs[3].ctx;
    const int C = 32, H = 24, O = 48;
    size_t nx = (size_t)C * H * H, ny = (size_t)O * H * H;
    float *x = randv(nx, -1, 1), *wv = randv((size_t)O * C * 9, -1, 1);
    float *first = malloc(ny * 4), *y = malloc(ny * 4);
    sd_tensor w = make_w(SD_DTYPE_F16, 4, (int64_t[]){O, C, 3, 3}, wv);
    sd_conv2d_params p = {.stride = 1, .pad_top = 1, .pad_left = 1, .pad_bottom = 1,
                          .pad_right = 1};
    sd_error err = {0};
    sd_status st = sd_op_conv2d(ctx, x, 1, C, H, H, &w, NULL, &p, first, &err);
    int differing = 0;
    for (int rep = 0; rep < 30 && st == SD_OK; rep++) {
        st = sd_op_conv2d(ctx, x, 1, C, H, H, &w, NULL, &p, y, &err);
        differing += memcmp(first, y, ny * 4) != 0;
    }
    CHECK(st == SD_OK && differing == 0, "repeated conv: %d of 30 runs differ (%s)", differing,
          err.msg);
    sd_tensor_free(&w);
    free(x), free(wv), free(first), free(y);
}

/* ==== errors and allocation failure ========================================================== */

static void test_errors(void)
{
    sd_ctx *ctx = cfgs[3].ctx;
    sd_error err = {0};
    float *x = randv(4096, -1, 1), *y = malloc(4096 * 4);
    float wv[64];
    for (int i = 0; i < 64; i++)
        wv[i] = uni(-1, 1);
    sd_tensor w = make_w(SD_DTYPE_F32, 2, (int64_t[]){8, 8}, wv);
    CHECK(sd_op_linear(ctx, x, 4, 7, &w, NULL, y, &err) == SD_ERR_FORMAT && err.msg[0],
          "linear K mismatch");
    CHECK(sd_op_linear(ctx, x, 4, 8, &w, NULL, x, &err) == SD_ERR_INVALID_ARG,
          "linear aliasing");
    sd_tensor b3 = make_vec(SD_DTYPE_F32, 3, wv);
    CHECK(sd_op_linear(ctx, x, 4, 8, &w, &b3, y, &err) == SD_ERR_FORMAT, "linear bias size");
    sd_tensor wt = w;
    wt.owned = false;
    wt.stride[0] = 1, wt.stride[1] = 8; /* a transposed view */
    CHECK(sd_op_linear(ctx, x, 4, 8, &wt, NULL, y, &err) == SD_ERR_UNSUPPORTED,
          "linear non-contiguous weight: %s", err.msg);
    sd_tensor wi;
    sd_tensor_new(SD_DTYPE_I32, 2, (int64_t[]){8, 8}, &wi, &err);
    CHECK(sd_op_linear(ctx, x, 4, 8, &wi, NULL, y, &err) == SD_ERR_FORMAT, "integer weight");
    CHECK(sd_op_linear(ctx, x, 0, 8, &w, NULL, y, &err) == SD_OK, "M = 0 is a no-op");

    sd_tensor cw = make_w(SD_DTYPE_F32, 4, (int64_t[]){1, 2, 4, 4}, wv);
    sd_conv2d_params p1 = {.stride = 1};
    CHECK(sd_op_conv2d(ctx, x, 1, 2, 3, 3, &cw, NULL, &p1, y, &err) == SD_ERR_INVALID_ARG,
          "conv kernel larger than input");
    CHECK(sd_op_conv2d(ctx, x, 1, 3, 8, 8, &cw, NULL, &p1, y, &err) == SD_ERR_FORMAT,
          "conv channel mismatch");
    sd_conv2d_params p0 = {.stride = 0};
    CHECK(sd_op_conv2d(ctx, x, 1, 2, 8, 8, &cw, NULL, &p0, y, &err) == SD_ERR_INVALID_ARG,
          "conv stride 0");

    sd_tensor g = make_vec(SD_DTYPE_F32, 6, wv);
    CHECK(sd_op_groupnorm(ctx, x, y, 1, 6, 4, 4, &g, &g, 1e-5f, false, &err) ==
              SD_ERR_INVALID_ARG, "groupnorm C %% groups");
    CHECK(sd_op_groupnorm(ctx, x, y, 1, 6, 4, 3, &g, NULL, 1e-5f, false, &err) ==
              SD_ERR_INVALID_ARG, "groupnorm without beta");
    CHECK(sd_op_layernorm(ctx, x, y, 2, 5, &g, &g, 1e-5f, &err) == SD_ERR_FORMAT,
          "layernorm gamma size");

    sd_attn_params ap = {.batch = 1, .heads = 2, .dh = 4, .lq = 3, .lk = 0, .q_rs = 8,
                         .k_rs = 8, .v_rs = 8, .o_rs = 8, .scale = 0.5f};
    CHECK(sd_op_attention(ctx, x, x, x, y, &ap, &err) == SD_ERR_INVALID_ARG, "no keys");
    ap.lk = 3;
    ap.q_rs = 7;
    CHECK(sd_op_attention(ctx, x, x, x, y, &ap, &err) == SD_ERR_INVALID_ARG, "short stride");
    ap.q_rs = 8;
    CHECK(sd_op_attention(ctx, x, x + 100, x + 200, x + 16, &ap, &err) == SD_ERR_INVALID_ARG,
          "output overlapping q");
    CHECK(sd_op_attention(ctx, x, x + 100, x + 200, y, &ap, &err) == SD_OK, "valid attention");
    /* q, k, v and out as column slices of one [3, 32] buffer: disjoint, accepted */
    ap.q_rs = ap.k_rs = ap.v_rs = ap.o_rs = 32;
    CHECK(sd_op_attention(ctx, x, x + 8, x + 16, x + 24, &ap, &err) == SD_OK,
          "column slices of one buffer: %s", err.msg);
    CHECK(sd_op_attention(ctx, x, x + 8, x + 16, x + 20, &ap, &err) == SD_ERR_INVALID_ARG,
          "output columns overlapping v");
    sd_tensor_free(&w), sd_tensor_free(&b3), sd_tensor_free(&wi), sd_tensor_free(&cw);
    sd_tensor_free(&g);
    free(x), free(y);
}

/* Fail allocation 1, 2, ... of `run` until it succeeds: each failure must be SD_ERR_NOMEM
 * and leak nothing. */
typedef sd_status (*op_run)(sd_ctx *ctx, void *arg, sd_error *err);

static void test_nomem_one(const char *what, op_run run, void *arg)
{
    sd_ctx *ctx = cfgs[3].ctx;
    int fails = 0;
    bool ok_codes = true, no_leak = true;
    for (long nth = 1; nth < 50; nth++) {
        size_t live = sd_alloc_live_bytes();
        sd_error err = {0};
        sd_alloc_fail_after(nth, false);
        sd_status st = run(ctx, arg, &err);
        sd_alloc_fail_after(0, false);
        no_leak &= sd_alloc_live_bytes() == live;
        if (st == SD_OK)
            break;
        fails++;
        ok_codes &= st == SD_ERR_NOMEM && err.msg[0];
    }
    CHECK(fails > 0 && ok_codes && no_leak, "%s: %d injected failures, codes %s, leak %s",
          what, fails, ok_codes ? "ok" : "WRONG", no_leak ? "none" : "YES");
}

typedef struct nomem_data {
    float *x, *y;
    sd_tensor w, cw, b, g;
} nomem_data;

static sd_status run_linear(sd_ctx *ctx, void *a, sd_error *err)
{
    nomem_data *d = a;
    return sd_op_linear(ctx, d->x, 40, 16, &d->w, &d->b, d->y, err);
}

static sd_status run_conv(sd_ctx *ctx, void *a, sd_error *err)
{
    nomem_data *d = a;
    sd_conv2d_params p = {.stride = 2, .pad_bottom = 1, .pad_right = 1};
    return sd_op_conv2d(ctx, d->x, 1, 16, 8, 8, &d->cw, &d->b, &p, d->y, err);
}

static sd_status run_groupnorm(sd_ctx *ctx, void *a, sd_error *err)
{
    nomem_data *d = a;
    return sd_op_groupnorm(ctx, d->x, d->y, 1, 16, 9, 4, &d->g, &d->g, 1e-5f, true, err);
}

static sd_status run_layernorm(sd_ctx *ctx, void *a, sd_error *err)
{
    nomem_data *d = a;
    return sd_op_layernorm(ctx, d->x, d->y, 5, 16, &d->g, &d->g, 1e-5f, err);
}

static sd_status run_attention(sd_ctx *ctx, void *a, sd_error *err)
{
    nomem_data *d = a;
    sd_attn_params p = {.batch = 1, .heads = 2, .dh = 4, .lq = 20, .lk = 20, .q_rs = 8,
                        .k_rs = 8, .v_rs = 8, .o_rs = 8, .scale = 0.5f, .causal = true};
    return sd_op_attention(ctx, d->x, d->x + 200, d->x + 400, d->y, &p, err);
}

static void test_nomem(void)
{
    nomem_data d;
    d.x = randv(4096, -1, 1);
    d.y = malloc(4096 * 4);
    float *v = randv(16 * 16 * 9, -1, 1);
    d.w = make_w(SD_DTYPE_F16, 2, (int64_t[]){16, 16}, v);
    d.cw = make_w(SD_DTYPE_BF16, 4, (int64_t[]){16, 16, 3, 3}, v);
    d.b = make_vec(SD_DTYPE_F16, 16, v);
    d.g = make_vec(SD_DTYPE_BF16, 16, v);
    test_nomem_one("linear f16", run_linear, &d);
    test_nomem_one("conv2d bf16", run_conv, &d);
    test_nomem_one("groupnorm bf16", run_groupnorm, &d);
    test_nomem_one("layernorm bf16", run_layernorm, &d);
    test_nomem_one("attention", run_attention, &d);
    sd_tensor_free(&d.w), sd_tensor_free(&d.cw), sd_tensor_free(&d.b), sd_tensor_free(&d.g);
    free(d.x), free(d.y), free(v);
}

int main(void)
{
    const char *env = getenv("T_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 0) : 0x0b5eed42ULL;
    printf("t_ops: seed 0x%llx (set T_SEED to change); process kernels %s\n",
           (unsigned long long)seed, sd_kernel_variant());
    rng = seed;
    static const char *const names[N_CFG] = {"ref 1t",  "ref 2t",  "simd 1t",
                                             "simd 2t", "bf16 1t", "bf16 2t"};
    for (int c = 0; c < N_CFG; c++) {
        sd_ctx_params cp = sd_ctx_params_default();
        cp.use_ref = c < 2;
        cp.n_threads = 1 + c % 2;
        cp.precision = c >= 4 ? SD_PRECISION_BF16 : SD_PRECISION_FP32;
        cfgs[c].bf16 = c >= 4;
        sd_error err = {0};
        cfgs[c].name = names[c];
        if (sd_ctx_new(&cp, &cfgs[c].ctx, &err) != SD_OK) {
            fprintf(stderr, "sd_ctx_new: %s\n", err.msg);
            return 2;
        }
        printf("t_ops: config %s: %s\n", names[c], sd_ctx_matmul_name(cfgs[c].ctx));
        CHECK(!cfgs[c].bf16 || !sd_kernels_get()->native_bf16 ||
                  strstr(sd_ctx_matmul_name(cfgs[c].ctx), "bf16"),
              "config %s does not multiply in bf16 on a CPU that can", names[c]);
    }
    size_t live0 = sd_alloc_live_bytes();

    /* linear: tiny, text-encoder-like, odd, 4-D [N,K,1,1] weight, weight blocks (K large) */
    test_linear(1, 1, 1, SD_DTYPE_F32, true, false);
    test_linear(3, 7, 5, SD_DTYPE_F16, true, false);
    test_linear(77, 64, 96, SD_DTYPE_F32, true, false);
    test_linear(130, 33, 70, SD_DTYPE_F16, false, true);
    test_linear(200, 40, 1, SD_DTYPE_BF16, true, false);
    test_linear(6, 4100, 300, SD_DTYPE_BF16, true, false);
    test_linear(2, 1280, 320, SD_DTYPE_F16, true, false);

    /* conv2d: the SD shapes and odd ones */
    test_conv((conv_case){2, 5, 9, 7, 6, 3, 3, 1, 1, 1, 1, 1, SD_DTYPE_F32, true}, 0, false, false);
    test_conv((conv_case){1, 4, 9, 8, 5, 3, 3, 2, 1, 1, 1, 1, SD_DTYPE_F16, true}, 0, false, false);
    test_conv((conv_case){2, 3, 8, 8, 4, 3, 3, 2, 0, 0, 1, 1, SD_DTYPE_BF16, true},
              0, false, false);
    test_conv((conv_case){1, 3, 7, 9, 4, 3, 3, 2, 0, 0, 1, 1, SD_DTYPE_F32, false},
              0, false, false);
    test_conv((conv_case){2, 7, 5, 6, 9, 1, 1, 1, 0, 0, 0, 0, SD_DTYPE_F32, true}, 0, false, false);
    test_conv((conv_case){1, 7, 5, 6, 9, 1, 1, 1, 0, 0, 0, 0, SD_DTYPE_F16, false},
              0, false, false);
    test_conv((conv_case){1, 6, 9, 9, 3, 1, 1, 2, 0, 0, 0, 0, SD_DTYPE_F32, true}, 0, false, false);
    test_conv((conv_case){1, 2, 5, 6, 3, 1, 3, 1, 0, 1, 0, 1, SD_DTYPE_F32, true}, 0, false, false);
    test_conv((conv_case){1, 3, 6, 5, 2, 4, 2, 3, 2, 0, 1, 3, SD_DTYPE_F32, true}, 0, false, false);
    test_conv((conv_case){1, 1, 1, 1, 1, 3, 3, 1, 1, 1, 1, 1, SD_DTYPE_F32, true}, 0, false, false);
    test_conv((conv_case){1, 4, 16, 16, 64, 3, 3, 1, 1, 1, 1, 1, SD_DTYPE_F16, true},
              0, false, false);
    /* several im2col tiles (C*9 x 9216 > COL_BYTES); several reduction chunks (C*9 = 2304
     * > CONV_KC) with converted f16 weight pieces */
    test_conv((conv_case){1, 16, 96, 96, 8, 3, 3, 1, 1, 1, 1, 1, SD_DTYPE_F32, true},
              0, false, false);
    test_conv((conv_case){1, 256, 4, 4, 512, 3, 3, 1, 1, 1, 1, 1, SD_DTYPE_F16, true},
              0, false, false);
    test_conv((conv_case){2, 64, 9, 9, 40, 3, 3, 2, 0, 0, 1, 1, SD_DTYPE_F32, true},
              0, false, false);
    test_conv((conv_case){1, 600, 6, 5, 20, 1, 1, 1, 0, 0, 0, 0, SD_DTYPE_F32, true},
              0, false, false);
    test_conv((conv_case){2, 600, 6, 5, 20, 1, 1, 1, 0, 0, 0, 0, SD_DTYPE_BF16, true},
              0, false, false);
    /* at least 16 channels in and out, so the bf16 contexts multiply in bf16 (fewer stay
     * float32): padding edges of every kind, odd sizes, odd reduction lengths, kernels
     * wider than tall */
    test_conv((conv_case){1, 17, 9, 7, 19, 3, 3, 1, 1, 1, 1, 1, SD_DTYPE_F16, true},
              0, false, false);
    test_conv((conv_case){2, 16, 5, 6, 16, 1, 3, 1, 0, 1, 0, 1, SD_DTYPE_F32, true},
              0, false, false);
    test_conv((conv_case){1, 33, 11, 13, 24, 3, 3, 1, 0, 0, 0, 0, SD_DTYPE_BF16, true}, 0,
              false, false);
    test_conv((conv_case){1, 19, 6, 5, 17, 4, 2, 1, 2, 0, 1, 3, SD_DTYPE_F32, false},
              0, false, false);
    test_conv((conv_case){1, 16, 40, 3, 16, 3, 3, 1, 1, 1, 1, 1, SD_DTYPE_F16, true},
              0, false, false);
    /* a layer whose whole im2col would be 36 MiB: bounded scratch, sampled outputs */
    test_conv((conv_case){1, 64, 128, 128, 64, 3, 3, 1, 1, 1, 1, 1, SD_DTYPE_F16, true}, 300,
              true, false);

    /* Winograd: sizes not multiples of the 4x4 tiles (1x1 .. 67x67), channel counts not
     * multiples of the panels, batch 2, in float32 and bf16 contexts; and a large layer
     * whose scratch stays bounded */
    static const int wh[][2] = {{1, 1}, {2, 3}, {4, 4}, {5, 7}, {9, 13}, {17, 6}, {31, 33},
                                {67, 67}};
    for (size_t i = 0; i < SD_ARRAY_LEN(wh); i++) {
        int C = i % 3 == 0 ? 1 : i % 3 == 1 ? 13 : 37, O = i % 2 ? 45 : 19;
        test_conv((conv_case){2, C, wh[i][0], wh[i][1], O, 3, 3, 1, 1, 1, 1, 1,
                              i % 2 ? SD_DTYPE_F16 : SD_DTYPE_F32, i % 4 != 1},
                  0, false, true);
    }
    test_conv((conv_case){1, 64, 128, 128, 64, 3, 3, 1, 1, 1, 1, 1, SD_DTYPE_F16, true}, 300,
              true, true);
    CHECK(!sd_kernels_get()->packed_f32 || wino_differs > 1000,
          "Winograd results differ from the direct convolution in only %ld outputs: did it "
          "run?", wino_differs);

    /* groupnorm: 32 groups, C 32..320, silu, offsets, f16/bf16 affine, in place */
    test_groupnorm(1, 32, 64, 32, false, SD_DTYPE_F32, 0, false);
    test_groupnorm(2, 64, 49, 32, true, SD_DTYPE_F16, 0, false);
    test_groupnorm(1, 96, 7, 32, true, SD_DTYPE_BF16, 0, true);
    test_groupnorm(1, 320, 256, 32, true, SD_DTYPE_F16, 0, false);
    test_groupnorm(1, 128, 1100, 32, false, SD_DTYPE_F32, 30, false); /* > STAT_CHUNK */
    test_groupnorm(2, 6, 5, 3, false, SD_DTYPE_F32, 0, true);
    test_groupnorm(1, 32, 1, 32, false, SD_DTYPE_F32, 0, false);       /* one value a group */

    /* layernorm */
    test_layernorm(77, 32, SD_DTYPE_F32, 0, false);
    test_layernorm(154, 768, SD_DTYPE_F16, 0, true);
    test_layernorm(3, 5000, SD_DTYPE_BF16, 20, false);
    test_layernorm(4, 1, SD_DTYPE_F32, 0, false);

    /* attention */
    test_attention((att_case){1, 1, 1, 1, 1, false, false, 0}, 0, -1, false);
    test_attention((att_case){2, 3, 5, 7, 9, false, false, 0}, 0, -1, false);
    test_attention((att_case){2, 2, 16, 77, 77, true, true, 3}, 0, -1, false);
    test_attention((att_case){1, 2, 8, 50, 300, true, false, 0}, 0, -1, false);
    test_attention((att_case){1, 2, 8, 300, 50, true, false, 0}, 0, -1, false);
    test_attention((att_case){2, 8, 80, 20, 33, false, false, 2}, 0, -1, false);
    test_attention((att_case){1, 8, 40, 300, 77, false, false, 0}, 0, -1, false);
    test_attention((att_case){1, 1, 8, 600, 600, true, true, 0}, 0, -1, false);
    for (int h = 1; h <= 8; h += 3)
        for (int dh = 1; dh <= 80; dh += 26)
            test_attention((att_case){1, h, dh, 13, 21, (h + dh) % 2 == 0, false, 1}, 0, -1,
                           false);
    /* long sequences: tiled, sampled rows */
    test_attention((att_case){1, 2, 40, 4096, 77, false, false, 0}, 64, -1, false);
    test_attention((att_case){1, 2, 40, 1024, 1024, false, true, 0}, 128, -1, false);
    test_attention((att_case){1, 1, 8, 4096, 4096, false, false, 0}, 24, N_CFG - 1, true);

    test_elementwise();
    test_layout();
    test_timestep_embedding();
    test_to_f32();
    test_determinism();
    test_errors();
    test_nomem();

    CHECK(sd_alloc_live_bytes() == live0, "ops leaked %zu bytes",
          sd_alloc_live_bytes() - live0);
    for (int c = 0; c < N_CFG; c++)
        sd_ctx_free(cfgs[c].ctx);
    return t_summary("t_ops");
}
