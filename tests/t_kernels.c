/* tests/t_kernels.c - every slot of every kernel table this machine can run, against the
 * scalar reference: sizes 1..257 (never only multiples of a vector width) and a few larger,
 * misaligned starts, in place where the contract allows it, outputs poisoned with NaN and
 * guard zones checked for stray writes, special values (0, -0, +-inf, NaN, overflow and
 * underflow edges).  Data is deterministic; the seed is printed and $T_SEED overrides it.
 * Tolerances are the named constants below; reductions use an error normalised by the sum
 * of the magnitudes of their terms. */
#include "harness.h"
#include "internal/common.h"
#include "internal/half.h"
#include "internal/kernels.h"

#include <float.h>
#include <stdint.h>

/* affine maps: fused vs separately rounded multiply-add, relative to the terms' size */
#define TOL_AFFINE 2.5e-7
/* sums: |got - ref| <= TOL_REDUCE * sum|terms| (float32 lanes vs double) */
#define TOL_REDUCE 1e-6
/* exp/erf based slots: |got - ref| <= TOL_TRANS * |ref| + TOL_TINY */
#define TOL_TRANS 1e-6
/* below this, results are subnormal and may be flushed or rounded differently */
#define TOL_TINY 1e-37
/* softmax normaliser: a float32 sum of up to 257 terms vs a double one, relative */
#define TOL_SOFTMAX_SUM 2e-6
/* GEMM tiles: float32 accumulation of up to a few hundred exact products vs double,
 * relative to the sum of the magnitudes of the terms (and of the C being added to) */
#define TOL_GEMM 4e-6
/* flash attention: the normalised output against the reference's, relative to max|v| = 1,
 * plus TOL_ATT_SCORE times the largest sum |q_e k_e| of the lane (a float32 score is off by
 * a few ulp of that, and the output moves with the score) */
#define TOL_ATT 2e-6
#define TOL_ATT_SCORE 1e-6
/* the bf16 block: both sides round the probabilities to bf16, but from exps that differ in
 * the last float bits, so a rounding may go the other way: 2^-8 of one probability */
#define TOL_ATT_BF16 4e-3

enum { GUARD = 16, MAXN = 4099 };

static const size_t extra_sizes[] = {1000, 4096, 4099};

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

static const float specials[] = {0.0f,     -0.0f,     1e-30f,   -1e-30f,  1.0f,    -1.0f,
                                 87.3f,    -87.3f,    88.7f,    -88.7f,   89.5f,   -89.5f,
                                 100.0f,   -100.0f,   -103.9f,  -104.5f,  14.0f,   -14.0f,
                                 INFINITY, -INFINITY, NAN,      3e38f,    -3e38f,  5.5f};

/* n values uniform in [lo, hi]; with `spec`, the special values come first */
static void fill(float *x, size_t n, float lo, float hi, bool spec)
{
    for (size_t i = 0; i < n; i++)
        x[i] = spec && i < SD_ARRAY_LEN(specials) ? specials[i] : uni(lo, hi);
}

/* ---- buffers with guard zones ------------------------------------------------------------ */

static const uint32_t POISON = 0x7fc0dead; /* a quiet NaN */

static float poison_f(void)
{
    return sd_f32_from_bits(POISON);
}

/* buf holds GUARD + off + n + GUARD floats; everything poisoned */
static float *guarded(float *buf, size_t off, size_t n)
{
    for (size_t i = 0; i < GUARD + off + n + GUARD; i++)
        buf[i] = poison_f();
    return buf + GUARD + off;
}

static bool guards_intact(const float *buf, size_t off, size_t n)
{
    for (size_t i = 0; i < GUARD + off; i++)
        if (sd_f32_bits(buf[i]) != POISON)
            return false;
    for (size_t i = GUARD + off + n; i < GUARD + off + n + GUARD; i++)
        if (sd_f32_bits(buf[i]) != POISON)
            return false;
    return true;
}

/* ---- per-slot bookkeeping ------------------------------------------------------------------ */

typedef struct verdict {
    long bad;          /* elements out of tolerance */
    long calls;
    double worst;      /* largest error / tolerance seen */
    bool guard_broken;
    char first[200];   /* the first failure */
} verdict;

static void note(verdict *v, double err, double tol, const char *fmt, size_t n, size_t i,
                 double got, double want)
{
    bool same = got == want || (isnan(got) && isnan(want)); /* also equal infinities */
    double ratio = same ? 0 : (tol > 0 ? err / tol : (err > 0 ? INFINITY : 0));
    if (isnan(ratio) || isnan(got) != isnan(want))
        ratio = INFINITY;
    if (ratio > v->worst)
        v->worst = ratio;
    if (ratio > 1) {
        if (v->bad++ == 0)
            snprintf(v->first, sizeof v->first, "%s n=%zu i=%zu got %.9g want %.9g", fmt, n, i,
                     got, want);
    }
}

static void report(const char *slot, const sd_kernels *k, const verdict *v)
{
    bool ok = v->bad == 0 && !v->guard_broken && v->calls > 0;
    CHECK(ok, "%s/%s: %ld bad elements%s; first: %s", sd_isa_name(k->isa), slot, v->bad,
          v->guard_broken ? ", wrote outside its output" : "", v->first);
    fprintf(stderr, "%s %-7s %-22s %ld calls, worst error %.3f of tolerance\n",
            ok ? "ok  " : "FAIL", sd_isa_name(k->isa), slot, v->calls, v->worst);
}

/* all sizes: 1..257 and the extra ones */
static size_t size_at(size_t i)
{
    return i < 257 ? i + 1 : extra_sizes[i - 257];
}
#define N_SIZES (257 + SD_ARRAY_LEN(extra_sizes))

/* ---- conversions ------------------------------------------------------------------------- */

static void test_cvt(const sd_kernels *k, const sd_kernels *r, bool bf16)
{
    static uint16_t src[65536 + 7];
    static float got[GUARD * 2 + 65536 + 7], want[65536];
    verdict v = {0};
    for (size_t off = 0; off < 4; off += 3) {
        for (uint32_t i = 0; i < 65536; i++)
            src[off + i] = (uint16_t)i;
        (bf16 ? r->cvt_bf16_f32 : r->cvt_f16_f32)(src + off, want, 65536);
        float *out = guarded(got, off, 65536);
        (bf16 ? k->cvt_bf16_f32 : k->cvt_f16_f32)(src + off, out, 65536);
        v.calls++;
        v.guard_broken |= !guards_intact(got, off, 65536);
        for (size_t i = 0; i < 65536; i++) {
            bool same = sd_f32_bits(out[i]) == sd_f32_bits(want[i]) ||
                        (isnan(out[i]) && isnan(want[i]));
            note(&v, same ? 0 : 1, 0, "all patterns", 65536, i, out[i], want[i]);
        }
    }
    /* and every short length, for the tails */
    for (size_t n = 1; n <= 40; n++) {
        for (size_t i = 0; i < n; i++)
            src[i] = (uint16_t)rnd();
        (bf16 ? r->cvt_bf16_f32 : r->cvt_f16_f32)(src, want, n);
        float *out = guarded(got, 1, n);
        (bf16 ? k->cvt_bf16_f32 : k->cvt_f16_f32)(src, out, n);
        v.calls++;
        v.guard_broken |= !guards_intact(got, 1, n);
        for (size_t i = 0; i < n; i++) {
            bool same = sd_f32_bits(out[i]) == sd_f32_bits(want[i]) ||
                        (isnan(out[i]) && isnan(want[i]));
            note(&v, same ? 0 : 1, 0, "short", n, i, out[i], want[i]);
        }
    }
    report(bf16 ? "cvt_bf16_f32" : "cvt_f16_f32", k, &v);
}

/* ---- reductions -------------------------------------------------------------------------- */

static void test_reductions(const sd_kernels *k, const sd_kernels *r)
{
    static float x[MAXN + 4];
    verdict vs = {0}, vq = {0};
    for (size_t si = 0; si < N_SIZES; si++) {
        size_t n = size_at(si), off = si % 4;
        float base = si % 3 == 0 ? 50.0f : 0.0f; /* an offset mean makes the centring matter */
        fill(x + off, n, base - 3.0f, base + 3.0f, false);
        const float *xs = x + off;
        double mag = 0;
        for (size_t i = 0; i < n; i++)
            mag += fabs(xs[i]);
        float got = k->sum_f32(xs, n), want = r->sum_f32(xs, n);
        vs.calls++;
        note(&vs, fabs((double)got - want), TOL_REDUCE * mag, "sum", n, 0, got, want);

        float mean = want / (float)n;
        double magq = 0;
        for (size_t i = 0; i < n; i++)
            magq += ((double)xs[i] - mean) * ((double)xs[i] - mean);
        got = k->sumsq_dev_f32(xs, n, mean);
        want = r->sumsq_dev_f32(xs, n, mean);
        vq.calls++;
        note(&vq, fabs((double)got - want), TOL_REDUCE * magq + 1e-30, "sumsq_dev", n, 0, got,
             want);
    }
    CHECK(k->sum_f32(x, 0) == 0 && k->sumsq_dev_f32(x, 0, 1.0f) == 0, "empty sums");
    report("sum_f32", k, &vs);
    report("sumsq_dev_f32", k, &vq);
}

/* ---- affine maps ----------------------------------------------------------------------------- */

typedef enum { AFF_PLAIN, AFF_SILU } aff_kind;

static void test_scale_shift(const sd_kernels *k, const sd_kernels *r, aff_kind kind)
{
    static float x[MAXN + 4], want[MAXN], buf[2 * GUARD + MAXN + 4];
    verdict v = {0};
    for (size_t si = 0; si < N_SIZES; si++) {
        size_t n = size_at(si), off = si % 4;
        float m = uni(-2, 2), a = uni(-3, 3), b = uni(-2, 2);
        fill(x, n, -5, 5, false);
        (kind == AFF_SILU ? r->scale_shift_silu_f32 : r->scale_shift_f32)(x, want, n, m, a, b);
        for (int inplace = 0; inplace < 2; inplace++) {
            float *out = guarded(buf, off, n);
            if (inplace)
                memcpy(out, x, n * sizeof(float));
            (kind == AFF_SILU ? k->scale_shift_silu_f32 : k->scale_shift_f32)(
                inplace ? out : x, out, n, m, a, b);
            v.calls++;
            v.guard_broken |= !guards_intact(buf, off, n);
            for (size_t i = 0; i < n; i++) {
                double mag = fabs(((double)x[i] - m) * a) + fabs(b);
                double tol = TOL_AFFINE * mag * (kind == AFF_SILU ? 1.1 : 1.0) +
                             (kind == AFF_SILU ? TOL_TRANS * fabs(want[i]) + TOL_TINY : 0);
                note(&v, fabs((double)out[i] - want[i]), tol, inplace ? "in place" : "", n, i,
                     out[i], want[i]);
            }
        }
    }
    report(kind == AFF_SILU ? "scale_shift_silu_f32" : "scale_shift_f32", k, &v);
}

static void test_layernorm_apply(const sd_kernels *k, const sd_kernels *r)
{
    static float x[MAXN], g[MAXN], b[MAXN], want[MAXN], buf[2 * GUARD + MAXN + 4];
    verdict v = {0};
    for (size_t si = 0; si < N_SIZES; si++) {
        size_t n = size_at(si), off = si % 4;
        fill(x, n, -4, 4, false);
        fill(g, n, -2, 2, false);
        fill(b, n, -1, 1, false);
        float mean = uni(-1, 1), rstd = uni(0.1f, 3);
        r->layernorm_apply_f32(x, want, n, mean, rstd, g, b);
        for (int inplace = 0; inplace < 2; inplace++) {
            float *out = guarded(buf, off, n);
            if (inplace)
                memcpy(out, x, n * sizeof(float));
            k->layernorm_apply_f32(inplace ? out : x, out, n, mean, rstd, g, b);
            v.calls++;
            v.guard_broken |= !guards_intact(buf, off, n);
            for (size_t i = 0; i < n; i++) {
                double mag = fabs(((double)x[i] - mean) * rstd * g[i]) + fabs(b[i]);
                note(&v, fabs((double)out[i] - want[i]), 1.5 * TOL_AFFINE * mag, "", n, i,
                     out[i], want[i]);
            }
        }
    }
    report("layernorm_apply_f32", k, &v);
}

static void test_add(const sd_kernels *k, const sd_kernels *r)
{
    static float x[MAXN], y0[MAXN], want[MAXN], buf[2 * GUARD + MAXN + 4];
    verdict v = {0};
    for (size_t si = 0; si < N_SIZES; si++) {
        size_t n = size_at(si), off = si % 4;
        fill(x, n, -10, 10, si == 30);
        fill(y0, n, -10, 10, false);
        memcpy(want, y0, n * sizeof(float));
        r->add_f32(want, x, n);
        float *out = guarded(buf, off, n);
        memcpy(out, y0, n * sizeof(float));
        k->add_f32(out, x, n);
        v.calls++;
        v.guard_broken |= !guards_intact(buf, off, n);
        for (size_t i = 0; i < n; i++) {
            bool same = out[i] == want[i] || (isnan(out[i]) && isnan(want[i]));
            note(&v, same ? 0 : 1, 0, "", n, i, out[i], want[i]);
        }
    }
    report("add_f32", k, &v);
}

/* ---- activations ----------------------------------------------------------------------------- */

typedef void (*unary_fn)(const float *x, float *y, size_t n);

static void test_unary(const char *slot, const sd_kernels *k, unary_fn got_fn, unary_fn ref_fn,
                       float lo, float hi)
{
    static float x[MAXN], want[MAXN], buf[2 * GUARD + MAXN + 4];
    verdict v = {0};
    for (size_t si = 0; si < N_SIZES; si++) {
        size_t n = size_at(si), off = si % 4;
        fill(x, n, lo, hi, si >= 40 && si % 5 == 0);
        ref_fn(x, want, n);
        for (int inplace = 0; inplace < 2; inplace++) {
            float *out = guarded(buf, off, n);
            if (inplace)
                memcpy(out, x, n * sizeof(float));
            got_fn(inplace ? out : x, out, n);
            v.calls++;
            v.guard_broken |= !guards_intact(buf, off, n);
            for (size_t i = 0; i < n; i++)
                note(&v, fabs((double)out[i] - want[i]), TOL_TRANS * fabs(want[i]) + TOL_TINY,
                     inplace ? "in place" : "", n, i, out[i], want[i]);
        }
    }
    report(slot, k, &v);
}

static void test_geglu(const sd_kernels *k, const sd_kernels *r)
{
    static float a[MAXN], g[MAXN], want[MAXN], buf[2 * GUARD + MAXN + 4];
    verdict v = {0};
    for (size_t si = 0; si < N_SIZES; si++) {
        size_t n = size_at(si), off = si % 4;
        fill(a, n, -3, 3, false);
        fill(g, n, -8, 8, si >= 40 && si % 5 == 0);
        r->geglu_f32(a, g, want, n);
        for (int inplace = 0; inplace < 2; inplace++) {
            float *out = guarded(buf, off, n);
            if (inplace)
                memcpy(out, a, n * sizeof(float));
            k->geglu_f32(inplace ? out : a, g, out, n);
            v.calls++;
            v.guard_broken |= !guards_intact(buf, off, n);
            for (size_t i = 0; i < n; i++)
                note(&v, fabs((double)out[i] - want[i]), TOL_TRANS * fabs(want[i]) + TOL_TINY,
                     inplace ? "in place" : "", n, i, out[i], want[i]);
        }
    }
    report("geglu_f32", k, &v);
}

/* ---- online softmax ---------------------------------------------------------------------- */

static void test_softmax(const sd_kernels *k, const sd_kernels *r)
{
    static float s[MAXN], sr[MAXN], buf[2 * GUARD + MAXN + 4];
    verdict v = {0};
    for (size_t si = 0; si < N_SIZES; si++) {
        size_t n = size_at(si), off = si % 4;
        /* two blocks, as attention streams them; scores spread over exp's whole range */
        size_t n1 = n / 3, n2 = n - n1;
        fill(s, n, -60, 30, false);
        if (si % 7 == 3)
            s[n / 2] = -INFINITY; /* a masked key */
        if (si % 11 == 5 && n > 2)
            s[n - 1] = -200.0f;   /* underflows to 0 */
        memcpy(sr, s, n * sizeof(float));
        float mg = -INFINITY, lg = 0, mr = -INFINITY, lr = 0;
        float *out = guarded(buf, off, n);
        memcpy(out, s, n * sizeof(float));
        float ag1 = k->softmax_step_f32(out, n1, &mg, &lg);
        float ar1 = r->softmax_step_f32(sr, n1, &mr, &lr);
        float ag2 = k->softmax_step_f32(out + n1, n2, &mg, &lg);
        float ar2 = r->softmax_step_f32(sr + n1, n2, &mr, &lr);
        v.calls++;
        v.guard_broken |= !guards_intact(buf, off, n);
        note(&v, mg == mr ? 0 : 1, 0, "max", n, 0, mg, mr);
        note(&v, fabs((double)ag1 - ar1), TOL_TRANS * fabs(ar1), "alpha1", n, 0, ag1, ar1);
        note(&v, fabs((double)ag2 - ar2), TOL_TRANS * fabs(ar2) + TOL_TINY, "alpha2", n, 0, ag2,
             ar2);
        note(&v, fabs((double)lg - lr), TOL_SOFTMAX_SUM * lr, "sum", n, 0, lg, lr);
        for (size_t i = 0; i < n; i++)
            note(&v, fabs((double)out[i] - sr[i]), TOL_TRANS * fabs(sr[i]) + TOL_TINY, "p", n, i,
                 out[i], sr[i]);
    }
    /* edge cases: an empty block keeps everything; an all-masked block gives zeros */
    float m = 2.0f, l = 3.0f, z[5];
    v.calls++;
    note(&v, k->softmax_step_f32(z, 0, &m, &l) == 1.0f && m == 2.0f && l == 3.0f ? 0 : 1, 0,
         "empty block", 0, 0, m, 2.0);
    for (int i = 0; i < 5; i++)
        z[i] = -INFINITY;
    m = -INFINITY;
    l = 0;
    float a = k->softmax_step_f32(z, 5, &m, &l);
    bool zeros = true;
    for (int i = 0; i < 5; i++)
        zeros &= z[i] == 0.0f;
    note(&v, a == 1.0f && zeros && l == 0.0f && m == -INFINITY ? 0 : 1, 0, "all masked", 5, 0, a,
         1.0);
    report("softmax_step_f32", k, &v);
}

/* ---- packed GEMM tiles --------------------------------------------------------------------- */

enum { MR = SD_GEMM_MR, NR = SD_GEMM_NR, LDC = NR + 5, KMAX = 300 };

/* The C buffer: MR rows of LDC floats.  Outside the m x n tile everything must stay the
 * poison; inside, acc tiles start from c0. */
static void check_tile(verdict *v, const char *what, const float *got, const float *want,
                       const double *mag, int m, int n, int kc)
{
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < LDC; j++) {
            size_t i = (size_t)(r * LDC + j);
            if (r < m && j < n)
                note(v, fabs((double)got[i] - want[i]), TOL_GEMM * mag[i] + TOL_TINY, what,
                     (size_t)kc, i, got[i], want[i]);
            else if (sd_f32_bits(got[i]) != POISON)
                v->guard_broken = true;
        }
}

static void test_gemm_f32(const sd_kernels *k, const sd_kernels *r)
{
    static float a[KMAX * MR], b[KMAX * 40 + NR], c[MR * LDC], want[MR * LDC];
    static double mag[MR * LDC];
    static const int kcs[] = {1, 2, 3, 7, 16, 17, 64, 129, KMAX};
    verdict v = {0};
    for (size_t ki = 0; ki < SD_ARRAY_LEN(kcs); ki++)
        for (int m = 1; m <= MR; m++)
            for (int n = 1; n <= NR; n += (n < 3 || n > 29 || n == 16 || n == 17) ? 1 : 5)
                for (int acc = 0; acc < 2; acc++) {
                    int kc = kcs[ki];
                    int64_t ldb = (n + ki + (size_t)acc) % 3 == 0 ? NR : 40;
                    /* rows of A beyond m and columns of B beyond n are NaN: they must not
                     * reach the stored tile */
                    for (int kk = 0; kk < kc; kk++) {
                        for (int q = 0; q < MR; q++)
                            a[kk * MR + q] = q < m ? uni(-1, 1) : NAN;
                        for (int j = 0; j < ldb; j++)
                            b[kk * ldb + j] = j < n ? uni(-1, 1) : NAN;
                    }
                    for (int q = 0; q < MR * LDC; q++) {
                        int row = q / LDC, col = q % LDC;
                        bool in = row < m && col < n;
                        c[q] = want[q] = in && acc ? uni(-2, 2) : poison_f();
                        double s = in && acc ? fabs(c[q]) : 0;
                        for (int kk = 0; in && kk < kc; kk++)
                            s += fabs((double)a[kk * MR + row] * b[kk * ldb + col]);
                        mag[q] = s;
                    }
                    r->gemm_f32(kc, a, b, ldb, want, LDC, m, n, acc);
                    k->gemm_f32(kc, a, b, ldb, c, LDC, m, n, acc);
                    v.calls++;
                    check_tile(&v, acc ? "gemm acc" : "gemm", c, want, mag, m, n, kc);
                }
    report("gemm_f32", k, &v);
}

/* ---- Winograd transforms --------------------------------------------------------------------
 * Every tile count 1..40 (groups of 16 and every tail): the input columns past 4*nt + 2 and
 * the planes' gaps are NaN and must neither be read nor written; |got - ref| <= TOL_REDUCE
 * times the sum of the terms' magnitudes. */

static const double W_BT[6][6] = {
    {4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
    {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1},
};
static const double W_AT[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1},
};

enum { WN = 40, WLD = 4 * WN + 7, WVS = WN + 3 };

static void test_wino(const sd_kernels *k, const sd_kernels *r)
{
    static float d[6 * WLD], v[36 * WVS], vw[36 * WVS], y[4 * WLD], yw[4 * WLD];
    verdict vi = {0}, vo = {0};
    for (int nt = 1; nt <= WN; nt++) {
        int64_t ld = 4 * nt + 2 + nt % 3, vs = nt + nt % 4, ldy = 4 * nt + nt % 3;
        /* input transform */
        for (int64_t q = 0; q < 6 * WLD; q++)
            d[q] = q % ld < 4 * nt + 2 && q < 6 * ld ? uni(-3, 3) : NAN;
        for (int q = 0; q < 36 * WVS; q++)
            v[q] = vw[q] = poison_f();
        r->wino_in_f32(d, ld, nt, vw, vs);
        k->wino_in_f32(d, ld, nt, v, vs);
        vi.calls++;
        for (int64_t q = 0; q < 36 * WVS; q++) {
            int64_t pl = q / vs, t = q % vs;
            if (pl >= 36 || t >= nt) {
                if (sd_f32_bits(v[q]) != POISON)
                    vi.guard_broken = true;
                continue;
            }
            double mag = 0;
            for (int a = 0; a < 6; a++)
                for (int b = 0; b < 6; b++)
                    mag += fabs(W_BT[pl / 6][a] * W_BT[pl % 6][b] * d[a * ld + 4 * t + b]);
            note(&vi, fabs((double)v[q] - vw[q]), TOL_REDUCE * mag, "wino_in", (size_t)nt,
                 (size_t)q, v[q], vw[q]);
        }
        /* output transform */
        float bias = uni(-1, 1);
        for (int64_t q = 0; q < 36 * WVS; q++)
            v[q] = q % vs < nt && q < 36 * vs ? uni(-3, 3) : NAN;
        for (int q = 0; q < 4 * WLD; q++)
            y[q] = yw[q] = poison_f();
        r->wino_out_f32(v, vs, nt, bias, yw, ldy);
        k->wino_out_f32(v, vs, nt, bias, y, ldy);
        vo.calls++;
        for (int64_t q = 0; q < 4 * WLD; q++) {
            int64_t row = q / ldy, col = q % ldy;
            if (row >= 4 || col >= 4 * nt) {
                if (sd_f32_bits(y[q]) != POISON)
                    vo.guard_broken = true;
                continue;
            }
            double mag = fabs(bias);
            for (int a = 0; a < 6; a++)
                for (int b = 0; b < 6; b++)
                    mag += fabs(W_AT[row][a] * W_AT[col % 4][b] * v[(6 * a + b) * vs + col / 4]);
            note(&vo, fabs((double)y[q] - yw[q]), TOL_REDUCE * mag, "wino_out", (size_t)nt,
                 (size_t)q, y[q], yw[q]);
        }
    }
    report("wino_in_f32", k, &vi);
    report("wino_out_f32", k, &vo);
}

static void test_gemm_bf16(const sd_kernels *k, const sd_kernels *r)
{
    static uint16_t a[KMAX * MR * 2], b[KMAX * 80 + 2 * NR];
    static float c[MR * LDC], want[MR * LDC];
    static double mag[MR * LDC];
    static const int kps[] = {1, 2, 3, 8, 31, 128, KMAX};
    verdict v = {0};
    for (size_t ki = 0; ki < SD_ARRAY_LEN(kps); ki++)
        for (int m = 1; m <= MR; m++)
            for (int n = 1; n <= NR; n += (n < 3 || n > 29 || n == 16 || n == 17) ? 1 : 5)
                for (int acc = 0; acc < 2; acc++) {
                    int kp = kps[ki];
                    int64_t ldb = (n + ki + (size_t)acc) % 2 ? 2 * NR : 80;
                    for (int p = 0; p < kp; p++) {
                        for (int q = 0; q < 2 * MR; q++)
                            a[p * 2 * MR + q] = q / 2 < m ? sd_f32_to_bf16(uni(-1, 1)) : 0x7fc1;
                        for (int j = 0; j < ldb; j++)
                            b[p * ldb + j] = j / 2 < n ? sd_f32_to_bf16(uni(-1, 1)) : 0xffc1;
                    }
                    for (int q = 0; q < MR * LDC; q++) {
                        int row = q / LDC, col = q % LDC;
                        bool in = row < m && col < n;
                        c[q] = want[q] = in && acc ? uni(-2, 2) : poison_f();
                        double s = in && acc ? fabs(c[q]) : 0;
                        for (int p = 0; in && p < kp; p++)
                            for (int h = 0; h < 2; h++)
                                s += fabs((double)sd_bf16_to_f32(a[(p * MR + row) * 2 + h]) *
                                          sd_bf16_to_f32(b[p * ldb + 2 * col + h]));
                        mag[q] = s;
                    }
                    r->gemm_bf16(kp, a, b, ldb, want, LDC, m, n, acc);
                    k->gemm_bf16(kp, a, b, ldb, c, LDC, m, n, acc);
                    v.calls++;
                    check_tile(&v, acc ? "gemm acc" : "gemm", c, want, mag, m, n, kp);
                }
    report("gemm_bf16", k, &v);
}

/* bf16 rounding: exact, except that a subnormal input may become a zero of its sign */
static void note_bf16(verdict *v, const char *what, size_t n, size_t i, float x, uint16_t got,
                      uint16_t want)
{
    bool sub = x != 0 && fabsf(x) < FLT_MIN;
    bool ok = got == want || (isnan(x) && (got & 0x7fc0) == 0x7fc0) ||
              (sub && (got & 0x7fff) == 0 && (got >> 15) == (sd_f32_bits(x) >> 31));
    note(v, ok ? 0 : 1, 0, what, n, i, sd_bf16_to_f32(got), sd_bf16_to_f32(want));
}

static void test_bf16_pack(const sd_kernels *k, const sd_kernels *r)
{
    static float x0[MAXN], x1[MAXN];
    static uint16_t got[2 * MAXN + 2 * GUARD], want[2 * MAXN];
    /* ties of every kind, the largest finite values, subnormals */
    static const uint32_t bits[] = {0x3f808000u, 0x3f818000u, 0xbf808000u, 0x7f7fffffu,
                                    0x7f7f8000u, 0x00000001u, 0x80400000u, 0x007fffffu,
                                    0x3f80ffffu, 0x7fc00001u, 0xff800000u};
    verdict vc = {0}, vp = {0};
    for (size_t si = 0; si < N_SIZES; si++) {
        size_t n = size_at(si);
        fill(x0, n, -5, 5, si % 2 == 0);
        fill(x1, n, -1e6f, 1e6f, false);
        for (size_t i = 0; i < SD_ARRAY_LEN(bits) && si % 3 == 1; i++)
            x1[(i * 7) % n] = sd_f32_from_bits(bits[i]);
        for (size_t i = 0; i < 2 * n + 2 * GUARD; i++)
            got[i] = 0xdead;
        r->cvt_f32_bf16(x1, want, n);
        k->cvt_f32_bf16(x1, got + GUARD, n);
        vc.calls++;
        for (size_t i = 0; i < n; i++)
            note_bf16(&vc, "cvt", n, i, x1[i], got[GUARD + i], want[i]);
        vc.guard_broken |= got[GUARD - 1] != 0xdead || got[GUARD + n] != 0xdead;

        bool second = si % 4 != 3;
        for (size_t i = 0; i < 2 * n + 2 * GUARD; i++)
            got[i] = 0xdead;
        r->pack_bf16_pairs(x0, second ? x1 : NULL, want, n);
        k->pack_bf16_pairs(x0, second ? x1 : NULL, got + GUARD, n);
        vp.calls++;
        for (size_t i = 0; i < 2 * n; i++)
            note_bf16(&vp, second ? "pairs" : "pairs, no second row", n, i,
                      i % 2 ? (second ? x1[i / 2] : 0.0f) : x0[i / 2], got[GUARD + i], want[i]);
        vp.guard_broken |= got[GUARD - 1] != 0xdead || got[GUARD + 2 * n] != 0xdead;
    }
    report("cvt_f32_bf16", k, &vc);
    report("pack_bf16_pairs", k, &vp);

    /* spans: every placement of the valid part, including empty and whole; the elements
     * outside the spans are NaN, so reading one shows */
    verdict vs = {0};
    static float row0[MAXN], row1[MAXN];
    for (size_t si = 0; si < 80; si++) {
        size_t n = size_at(si);
        for (int t = 0; t < 12; t++) {
            int lo0 = (int)(rnd() % (n + 1)), hi0 = lo0 + (int)(rnd() % (n - lo0 + 1));
            int lo1 = t % 3 ? (int)(rnd() % (n + 1)) : 0;
            int hi1 = t % 3 ? lo1 + (int)(rnd() % (n - lo1 + 1)) : (int)n;
            fill(row0, n, -3, 3, false);
            fill(row1, n, -3, 3, false);
            for (size_t i = 0; i < n; i++) {
                if ((int)i < lo0 || (int)i >= hi0)
                    row0[i] = NAN;
                if ((int)i < lo1 || (int)i >= hi1)
                    row1[i] = NAN;
            }
            for (size_t i = 0; i < 2 * n + 2 * GUARD; i++)
                got[i] = 0xdead;
            r->pack_bf16_pairs_span(row0 + lo0, lo0, hi0, row1 + lo1, lo1, hi1, want, n);
            k->pack_bf16_pairs_span(row0 + lo0, lo0, hi0, row1 + lo1, lo1, hi1, got + GUARD,
                                    n);
            vs.calls++;
            for (size_t i = 0; i < 2 * n; i++)
                note(&vs, got[GUARD + i] == want[i] && !isnan(sd_bf16_to_f32(want[i])) ? 0 : 1,
                     0, "span pairs", n, i, sd_bf16_to_f32(got[GUARD + i]),
                     sd_bf16_to_f32(want[i]));
            vs.guard_broken |= got[GUARD - 1] != 0xdead || got[GUARD + 2 * n] != 0xdead;
        }
    }
    report("pack_bf16_pairs_span", k, &vs);
}

/* ---- flash attention block ------------------------------------------------------------------ */

enum { NQ = SD_ATT_NQ, DHMAX = 80, NKMAX = 130 };

typedef struct att_state {
    float ot[DHMAX * NQ], mx[NQ], sum[NQ], s[NKMAX * NQ];
} att_state;

static void att_init(att_state *st, int dh)
{
    for (int i = 0; i < dh * NQ; i++)
        st->ot[i] = 0;
    for (int q = 0; q < NQ; q++) {
        st->mx[q] = -INFINITY;
        st->sum[q] = 0;
    }
}

static void test_attn_block(const sd_kernels *k, const sd_kernels *r)
{
    static const int dhs[] = {1, 5, 8, 16, 40, 79, 80};
    static const int nks[] = {1, 7, 8, 9, 33, 128, 130};
    static const int causals[] = {INT32_MAX, 0, -5, 3, 40};
    static float qt[DHMAX * NQ], kk[2 * NKMAX * (DHMAX + 3)], vv[2 * NKMAX * (DHMAX + 3)];
    static att_state g, w;
    verdict v = {0};
    for (size_t di = 0; di < SD_ARRAY_LEN(dhs); di++)
        for (size_t ni = 0; ni < SD_ARRAY_LEN(nks); ni++)
            for (size_t ci = 0; ci < SD_ARRAY_LEN(causals); ci++) {
                int dh = dhs[di], nk = nks[ni], causal = causals[ci];
                int64_t rs = dh + (int)(ni % 3); /* rows of a wider q/k/v buffer */
                float scale = (di + ni) % 2 ? 3.0f : 0.3f; /* peaky and flat softmaxes */
                fill(qt, (size_t)dh * NQ, -scale, scale, false);
                fill(kk, (size_t)(2 * nk * rs), -1, 1, false);
                fill(vv, (size_t)(2 * nk * rs), -1, 1, false);
                att_init(&g, dh);
                att_init(&w, dh);
                /* two key blocks in a row, the second one nk keys later */
                for (int blk = 0; blk < 2; blk++) {
                    const float *kb = kk + blk * nk * rs, *vb = vv + blk * nk * rs;
                    int cz = causal == INT32_MAX ? causal : causal - blk * nk;
                    r->attn_block_f32(qt, dh, kb, rs, vb, rs, nk, cz, w.ot, w.mx, w.sum, w.s);
                    k->attn_block_f32(qt, dh, kb, rs, vb, rs, nk, cz, g.ot, g.mx, g.sum, g.s);
                }
                v.calls++;
                for (int q = 0; q < NQ; q++) {
                    double smag = 0;
                    for (int j = 0; j < 2 * nk; j++) {
                        double t = 0;
                        for (int e = 0; e < dh; e++)
                            t += fabs((double)qt[e * NQ + q] * kk[j * rs + e]);
                        smag = fmax(smag, t);
                    }
                    bool none = w.sum[q] == 0;
                    note(&v, none != (g.sum[q] == 0) || (none && g.mx[q] != -INFINITY), 0,
                         "lane with no visible key", (size_t)nk, (size_t)q, g.sum[q], w.sum[q]);
                    for (int e = 0; e < dh; e++) {
                        double gw = none ? g.ot[e * NQ + q] : g.ot[e * NQ + q] / g.sum[q];
                        double ww = none ? 0 : w.ot[e * NQ + q] / w.sum[q];
                        note(&v, fabs(gw - ww), TOL_ATT + TOL_ATT_SCORE * smag, "output",
                             (size_t)nk, (size_t)(e * NQ + q), gw, ww);
                    }
                }
            }
    report("attn_block_f32", k, &v);
}

static void test_attn_block_bf16(const sd_kernels *k, const sd_kernels *r)
{
    static const int dhs[] = {1, 5, 8, 40, 79, 80};
    static const int nks[] = {1, 7, 8, 9, 33, 128, 129};
    static const int causals[] = {INT32_MAX, 0, -5, 3, 40};
    static float qt[DHMAX * NQ], kk[2 * NKMAX * DHMAX], vv[2 * NKMAX * DHMAX];
    static uint16_t qp[(DHMAX + 1) * NQ], kb[2 * NKMAX * (DHMAX + 2)],
        vp[2 * (NKMAX + 1) * DHMAX], pp[(NKMAX + 1) * NQ];
    static att_state g, w;
    verdict v = {0};
    for (size_t di = 0; di < SD_ARRAY_LEN(dhs); di++)
        for (size_t ni = 0; ni < SD_ARRAY_LEN(nks); ni++)
            for (size_t ci = 0; ci < SD_ARRAY_LEN(causals); ci++) {
                int dh = dhs[di], nk = nks[ni], causal = causals[ci];
                int dh2 = dh + dh % 2, nk2 = nk + nk % 2;
                int64_t kb_rs = dh2 + 2 * (int)(ni % 2);
                float scale = (di + ni) % 2 ? 3.0f : 0.3f;
                fill(qt, (size_t)dh * NQ, -scale, scale, false);
                fill(kk, (size_t)(2 * nk * dh), -1, 1, false);
                fill(vv, (size_t)(2 * nk * dh), -1, 1, false);
                /* the bf16 operands, and their exact values back in qt/kk/vv */
                for (int i = 0; i < dh * NQ; i++)
                    qt[i] = sd_bf16_to_f32(sd_f32_to_bf16(qt[i]));
                for (int i = 0; i < 2 * nk * dh; i++) {
                    kk[i] = sd_bf16_to_f32(sd_f32_to_bf16(kk[i]));
                    vv[i] = sd_bf16_to_f32(sd_f32_to_bf16(vv[i]));
                }
                for (int e = 0; e < dh2; e++)
                    for (int q = 0; q < NQ; q++)
                        qp[((e / 2) * NQ + q) * 2 + e % 2] =
                            e < dh ? sd_f32_to_bf16(qt[e * NQ + q]) : 0;
                att_init(&g, dh);
                att_init(&w, dh);
                for (int blk = 0; blk < 2; blk++) {
                    const float *kf = kk + blk * nk * dh, *vf = vv + blk * nk * dh;
                    for (int j = 0; j < nk; j++)
                        for (int e = 0; e < kb_rs; e++)
                            kb[j * kb_rs + e] = e < dh ? sd_f32_to_bf16(kf[j * dh + e]) : 0;
                    for (int j = 0; j < nk2; j++)
                        for (int e = 0; e < dh; e++)
                            vp[((j / 2) * dh + e) * 2 + j % 2] =
                                j < nk ? sd_f32_to_bf16(vf[j * dh + e]) : 0;
                    int cz = causal == INT32_MAX ? causal : causal - blk * nk;
                    r->attn_block_bf16(qp, dh, kb, kb_rs, vp, nk, cz, w.ot, w.mx, w.sum, w.s,
                                       pp);
                    k->attn_block_bf16(qp, dh, kb, kb_rs, vp, nk, cz, g.ot, g.mx, g.sum, g.s,
                                       pp);
                }
                v.calls++;
                for (int q = 0; q < NQ; q++) {
                    double smag = 0;
                    for (int j = 0; j < 2 * nk; j++) {
                        double t = 0;
                        for (int e = 0; e < dh; e++)
                            t += fabs((double)qt[e * NQ + q] * kk[j * dh + e]);
                        smag = fmax(smag, t);
                    }
                    bool none = w.sum[q] == 0;
                    note(&v, none != (g.sum[q] == 0) || (none && g.mx[q] != -INFINITY), 0,
                         "lane with no visible key", (size_t)nk, (size_t)q, g.sum[q], w.sum[q]);
                    for (int e = 0; e < dh; e++) {
                        double gw = none ? g.ot[e * NQ + q] : g.ot[e * NQ + q] / g.sum[q];
                        double ww = none ? 0 : w.ot[e * NQ + q] / w.sum[q];
                        note(&v, fabs(gw - ww), TOL_ATT_BF16 + TOL_ATT_SCORE * smag,
                             "output", (size_t)nk, (size_t)(e * NQ + q), gw, ww);
                    }
                }
            }
    report("attn_block_bf16", k, &v);
}

static void test_peaks(const sd_kernels *k)
{
    CHECK(k->peak_fma_f32(10) > 0, "%s: peak_fma_f32 counts no work", sd_isa_name(k->isa));
    CHECK((k->peak_dot_bf16(10) > 0) == k->native_bf16, "%s: peak_dot_bf16 vs native_bf16",
          sd_isa_name(k->isa));
}

int main(void)
{
    const char *env = getenv("T_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 0) : 0x5eed2024ULL;
    printf("t_kernels: seed 0x%llx (set T_SEED to change)\n", (unsigned long long)seed);
    const sd_kernels *r = sd_kernels_ref();
    CHECK(r && r->isa == SD_ISA_SCALAR, "reference table");
    int tested = 0;
    for (int isa = SD_ISA_AVX2; isa < SD_ISA_COUNT; isa++) {
        const sd_kernels *k = sd_kernels_for((sd_isa)isa);
        if (!k) {
            printf("t_kernels: %s not available on this CPU/OS: skipped\n",
                   sd_isa_name((sd_isa)isa));
            continue;
        }
        tested++;
        rng = seed + (uint64_t)isa;
        test_cvt(k, r, false);
        test_cvt(k, r, true);
        test_reductions(k, r);
        test_scale_shift(k, r, AFF_PLAIN);
        test_scale_shift(k, r, AFF_SILU);
        test_layernorm_apply(k, r);
        test_add(k, r);
        test_unary("silu_f32", k, k->silu_f32, r->silu_f32, -20, 20);
        test_unary("gelu_f32", k, k->gelu_f32, r->gelu_f32, -14, 14);
        test_unary("quick_gelu_f32", k, k->quick_gelu_f32, r->quick_gelu_f32, -20, 20);
        test_geglu(k, r);
        test_softmax(k, r);
        test_gemm_f32(k, r);
        test_gemm_bf16(k, r);
        test_wino(k, r);
        test_bf16_pack(k, r);
        test_attn_block(k, r);
        test_attn_block_bf16(k, r);
        test_peaks(k);
    }
    test_peaks(r);
    printf("t_kernels: %d SIMD table(s) tested against the reference\n", tested);
    /* the chosen table is one of the tested ones (or the reference) */
    const sd_kernels *chosen = sd_kernels_get();
    CHECK(chosen == r || chosen == sd_kernels_for(chosen->isa), "process table is a known one");
    return t_summary("t_kernels");
}
