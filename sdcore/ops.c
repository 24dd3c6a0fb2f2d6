/* ops.c - the neural-network operations of internal/ops.h (linear, conv2d, norms, attention,
 * element-wise ops), built on the kernel table and OpenBLAS sgemm.  They live together
 * because they share one way of splitting work over the ctx pool and one way of reading
 * weights, and the networks should see none of it.
 *
 * Where the kernel table has packed micro-kernels that beat sgemm (AVX-512), or the ctx
 * multiplies in bf16, linear, conv2d and attention check their arguments here and then run
 * in ops_packed.c on weights packed once per model; what follows about sgemm, converted
 * weight blocks and attention tiles describes the path of the other tables (scalar
 * reference, AVX2); 3x3 stride-1 convolutions there may run as Winograd F(4x4, 3x3) in
 * float32 (ops_packed.c explains where it pays and by how much).  Every matrix product adds
 * its FLOPs to ctx->flops, counted as the direct computation (Winograd included), so rates
 * stay comparable.
 *
 * THREADING.  OpenBLAS is told once per process to run single-threaded
 * (openblas_set_num_threads(1)): its worker threads spin and fight the ctx pool on a shared
 * 2-core machine.  Every op instead cuts its work into independent items (GEMM blocks,
 * convolution output tiles, (batch, head, query tile) triples, groups, rows, chunks) and
 * sd_par_run() hands them to the ctx pool: one task per pool thread, each pulling items from an
 * atomic counter (so uneven items balance) and owning one slot of scratch.  Measured here
 * (AMD EPYC, AVX-512, 2 cores, idle) on [4096 x 320] x [320 x 2880]: threaded OpenBLAS 169
 * GFLOP/s, single-threaded OpenBLAS on two of our threads 200 GFLOP/s; on two squarer
 * shapes both ~205.  The setting is process-wide: a host that calls OpenBLAS itself gets
 * it single-threaded too.
 *
 * WEIGHTS.  Weights are read in their stored dtype.  F32 weights are used in place; F16 and
 * BF16 weights are converted by the table's conversion kernels, block by block, into the
 * item's scratch slot right before the sgemm that uses the block: linear converts rows of
 * W (at most WBLOCK_BYTES of float32), conv2d converts [channel block x reduction chunk]
 * pieces of W (CONV_KC columns, so the piece is still in cache when sgemm packs it).  A
 * block is converted once per work item, about 1 / (2 x item columns) of the item's GEMM
 * work; measured on one core the F16 convolutions run as fast as the F32 ones (~90-100
 * GFLOP/s for 3x3 C320 at 64x64 and C1280 at 16x16).  Bias, gamma and beta vectors are
 * converted whole per call (on both paths).
 *
 * CONVOLUTION is implicit GEMM per (image, output-position tile, output-channel block):
 * y tile = sum over reduction chunks of W[block, chunk] x im2col[chunk, tile], where the
 * im2col rows of a chunk are built into scratch just before use (1x1 stride-1 unpadded
 * convolutions read x in place instead).  Positions are tiled by COL_BYTES, channels split
 * first when the pool needs more items (batch 1 at low resolution), positions after.
 *
 * SCRATCH per pool thread, never proportional to a whole layer: linear WBLOCK_BYTES (F16/BF16
 * weights only); conv2d COL_BYTES of im2col chunk + WBLOCK_BYTES of weight piece (F16/BF16);
 * attention ATT_TQ x ATT_TK scores + 2 x ATT_TQ floats (the Lq x Lk score matrix is never
 * formed); norms and element-wise ops none.
 *
 * STATISTICS (GroupNorm, LayerNorm) are two-pass in float32: the sum kernel over chunks of
 * STAT_CHUNK floats, partial sums added in double, then the centred sum of squares likewise;
 * rstd = 1 / sqrt(var + eps) with the biased variance, as PyTorch computes it. */
#include "internal/kernels.h"
#include "internal/ops.h"
#include "internal/ops_packed.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

enum {
    WBLOCK_BYTES = 4 << 20, /* converted weight block per slot */
    COL_BYTES = 2 << 20,    /* im2col tile per slot */
    CONV_KC = 512,          /* convolution reduction chunk (C*kh*kw rows per sgemm) */
    ATT_TQ = 128,           /* attention query rows per item */
    ATT_TK = 256,           /* attention keys per block */
    STAT_CHUNK = 4096,      /* floats per reduction-kernel call */
    EW_CHUNK = 16384,       /* floats per element-wise work item */
    BLOCK_QUANTUM = 16,     /* GEMM blocks are multiples of this (unless whole) */
    ROW_QUANTUM = 64,       /* linear splits its rows no finer (sgemm is slow on thin ones) */
    ITEMS_PER_THREAD = 4,   /* work items aimed for per pool thread, for balance */
};

/* ==== work splitting ======================================================================= */

/* sd_par_run / sd_par_slots (internal/ops_packed.h) hand the items to the pool. */

/* Work items to aim for so that par_run can balance. */
static int64_t target_items(const sd_ctx *ctx)
{
    int t = sd_pool_size(ctx->pool);
    return t > 1 ? (int64_t)ITEMS_PER_THREAD * t : 1;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* A block size for cutting `total` into pieces: at most `cap`, small enough to give `parts`
 * pieces, a multiple of `quantum` (unless it is the whole), at least `quantum`. */
static int64_t split_block(int64_t total, int64_t cap, int64_t parts, int64_t quantum)
{
    int64_t b = SD_MIN(total, cap);
    if (parts > 1)
        b = SD_MIN(b, ceil_div(total, parts));
    if (b < total)
        b = SD_MAX(quantum, b / quantum * quantum);
    return SD_MAX(SD_MIN(b, total), 1);
}

/* ==== weights ================================================================================ */

static bool is_float(sd_dtype t)
{
    return t == SD_DTYPE_F32 || t == SD_DTYPE_F16 || t == SD_DTYPE_BF16;
}

static bool is_contiguous(const sd_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s)
            return false;
        s *= t->shape[i];
    }
    return true;
}

/* A weight the ops can read in blocks: float dtype, contiguous, `numel` elements. */
static sd_status check_weight(const sd_tensor *t, int64_t numel, const char *op,
                              const char *what, sd_error *err)
{
    if (!is_float(t->dtype))
        return sd_fail(err, SD_ERR_FORMAT, "%s: %s has dtype %s, expected a float type", op,
                       what, sd_dtype_name(t->dtype));
    if (sd_tensor_numel(t) != numel)
        return sd_fail(err, SD_ERR_FORMAT, "%s: %s has %lld elements, expected %lld", op, what,
                       (long long)sd_tensor_numel(t), (long long)numel);
    if (!is_contiguous(t))
        return sd_fail(err, SD_ERR_UNSUPPORTED, "%s: %s is not contiguous", op, what);
    return SD_OK;
}

/* Elements [off, off + n) of a checked weight as float32: in place for F32, else converted
 * into buf (n floats). */
static const float *weight_f32(const sd_kernels *k, const sd_tensor *t, int64_t off, int64_t n,
                               float *buf)
{
    switch (t->dtype) {
    case SD_DTYPE_F16:
        k->cvt_f16_f32((const uint16_t *)t->data + off, buf, (size_t)n);
        return buf;
    case SD_DTYPE_BF16:
        k->cvt_bf16_f32((const uint16_t *)t->data + off, buf, (size_t)n);
        return buf;
    default:
        return (const float *)t->data + off;
    }
}

/* A parameter vector (bias, gamma, beta) of n floats: `p` points into the tensor or into
 * `owned`, which vec_free releases. */
typedef struct fvec {
    const float *p;
    float *owned;
} fvec;

static sd_status load_vec(const sd_ctx *ctx, const sd_tensor *t, int64_t n, const char *op,
                          const char *what, fvec *out, sd_error *err)
{
    out->p = NULL;
    out->owned = NULL;
    if (!t)
        return SD_OK;
    sd_status st = check_weight(t, n, op, what, err);
    if (st != SD_OK)
        return st;
    if (t->dtype != SD_DTYPE_F32) {
        out->owned = sd_malloc((size_t)SD_MAX(n, 1) * sizeof(float));
        if (!out->owned)
            return sd_fail_nomem(err, op);
    }
    out->p = weight_f32(ctx->kern, t, 0, n, out->owned);
    return SD_OK;
}

static void vec_free(fvec *v)
{
    sd_free(v->owned);
    v->owned = NULL;
}

/* Per-slot scratch: `slots` blocks of `floats` each (none if floats == 0). */
static sd_status slot_scratch(int slots, size_t floats, float **out, const char *op,
                              sd_error *err)
{
    *out = NULL;
    if (floats == 0)
        return SD_OK;
    size_t bytes;
    if (!sd_mul_ok(floats, (size_t)slots * sizeof(float), &bytes))
        return sd_fail(err, SD_ERR_TOO_LARGE, "%s: scratch size overflows", op);
    *out = sd_malloc(bytes);
    return *out ? SD_OK : sd_fail_nomem(err, op);
}

/* ==== GEMM =================================================================================== */

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_init(void)
{
    openblas_set_num_threads(1);
}

/* C[M,N] = alpha A[M,K] B[N,K]^T + beta C (row-major, leading dimensions given) */
static void gemm_nt(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                    const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, alpha, A,
                (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* C[M,N] = alpha A[M,K] B[K,N] + beta C */
static void gemm_nn(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                    const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, alpha, A,
                (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* sgemm takes int dimensions: every extent and leading dimension must fit */
static bool fits_int(int64_t v)
{
    return v >= 0 && v <= INT32_MAX;
}

/* ==== linear ================================================================================= */

typedef struct linear_job {
    const sd_kernels *k;
    const float *x;
    const sd_tensor *w;
    const float *bias;
    float *y;
    int64_t M, K, N;
    int64_t mb, nb, n_mb;
    float *scratch;
    size_t slot_floats;
} linear_job;

static void linear_item(void *arg, int64_t item, int slot)
{
    const linear_job *j = arg;
    int64_t m0 = (item % j->n_mb) * j->mb, n0 = (item / j->n_mb) * j->nb;
    int64_t mm = SD_MIN(j->mb, j->M - m0), nn = SD_MIN(j->nb, j->N - n0);
    float *buf = j->scratch ? j->scratch + (size_t)slot * j->slot_floats : NULL;
    const float *wb = weight_f32(j->k, j->w, n0 * j->K, nn * j->K, buf);
    float *y = j->y + m0 * j->N + n0;
    gemm_nt(mm, nn, j->K, 1.0f, j->x + m0 * j->K, j->K, wb, j->K, 0.0f, y, j->N);
    if (j->bias)
        for (int64_t r = 0; r < mm; r++)
            j->k->add_f32(y + r * j->N, j->bias + n0, (size_t)nn);
}

sd_status sd_op_linear(sd_ctx *ctx, const float *x, int64_t M, int64_t K, const sd_tensor *w,
                       const sd_tensor *b, float *y, sd_error *err)
{
    static const char op[] = "linear";
    if (M < 0 || K < 1 || !fits_int(K))
        return sd_fail(err, SD_ERR_INVALID_ARG, "linear: bad shape M=%lld K=%lld",
                       (long long)M, (long long)K);
    bool shape_ok = (w->ndim == 2 || (w->ndim == 4 && w->shape[2] == 1 && w->shape[3] == 1)) &&
                    w->shape[1] == K;
    if (!shape_ok)
        return sd_fail(err, SD_ERR_FORMAT, "linear: weight of %d dims [%lld, %lld, ...] does "
                       "not match input features %lld", w->ndim, (long long)w->shape[0],
                       (long long)(w->ndim > 1 ? w->shape[1] : 0), (long long)K);
    int64_t N = w->shape[0];
    if (!fits_int(N) || !fits_int(N * K))
        return sd_fail(err, SD_ERR_TOO_LARGE, "linear: weight too large");
    sd_status st = check_weight(w, N * K, op, "weight", err);
    if (st != SD_OK)
        return st;
    if (x == y && M > 0)
        return sd_fail(err, SD_ERR_INVALID_ARG, "linear: output aliases input");
    if (M == 0 || N == 0)
        return SD_OK;
    fvec bias;
    st = load_vec(ctx, b, N, op, "bias", &bias, err);
    if (st != SD_OK)
        return st;
    ctx->flops += 2 * (uint64_t)M * (uint64_t)N * (uint64_t)K;
    if (ctx->packed) {
        st = sd_packed_linear(ctx, x, M, K, w, N, bias.p, y, err);
        vec_free(&bias);
        return st;
    }
    pthread_once(&blas_once, blas_init);

    int64_t target = target_items(ctx);
    bool convert = w->dtype != SD_DTYPE_F32;
    int64_t nb = convert ? split_block(N, SD_MAX(BLOCK_QUANTUM, WBLOCK_BYTES / (4 * K)), 1,
                                       BLOCK_QUANTUM)
                         : N;
    int64_t mb = split_block(M, M, ceil_div(target, ceil_div(N, nb)), ROW_QUANTUM);
    mb = SD_MIN(mb, INT32_MAX);
    int64_t n_mb = ceil_div(M, mb);
    if (n_mb * ceil_div(N, nb) < target) /* too few rows to split: split the columns */
        nb = split_block(N, nb, ceil_div(target, n_mb), BLOCK_QUANTUM);
    int64_t items = n_mb * ceil_div(N, nb);

    linear_job j = {.k = ctx->kern, .x = x, .w = w, .bias = bias.p, .y = y, .M = M, .K = K,
                    .N = N, .mb = mb, .nb = nb, .n_mb = n_mb,
                    .slot_floats = convert ? (size_t)(nb * K) : 0};
    st = slot_scratch(sd_par_slots(ctx, items), j.slot_floats, &j.scratch, op, err);
    if (st == SD_OK)
        sd_par_run(ctx, items, linear_item, &j);
    sd_free(j.scratch);
    vec_free(&bias);
    return st;
}

/* ==== conv2d ================================================================================= */

typedef struct conv_job {
    const sd_kernels *k;
    const float *x;
    const sd_tensor *w;
    const float *bias;
    float *y;
    int C, H, W, O, kh, kw, Wo;
    sd_conv2d_params p;
    int64_t CK, P;
    bool direct;          /* 1x1, stride 1, no padding: x is the GEMM operand as is */
    bool convert;         /* F16/BF16 weight */
    int64_t kc;           /* reduction chunk (rows of the im2col matrix per sgemm) */
    int64_t pt, ob;       /* tile sizes: output positions, output channels */
    int64_t n_pt, n_ob;
    float *col, *wbuf;    /* per-slot scratch */
    size_t col_floats, wbuf_floats;
} conv_job;

/* sd_im2col_rows (internal/ops_packed.h): shared with the packed path. */
void sd_im2col_rows(const float *x, int H, int W, int kh, int kw, int Wo,
                    const sd_conv2d_params *p, int64_t k0, int64_t nk, int64_t p0, int64_t np,
                    float *col, int64_t ld)
{
    const int s = p->stride;
    for (int64_t r = k0; r < k0 + nk; r++) {
        int kx = (int)(r % kw), ky = (int)(r / kw % kh), c = (int)(r / kw / kh);
        const float *xc = x + (int64_t)c * H * W;
        float *row = col + (r - k0) * ld;
        for (int64_t q = 0; q < np;) {
            int64_t pp = p0 + q;
            int oy = (int)(pp / Wo), ox = (int)(pp % Wo);
            int run = (int)SD_MIN(Wo - ox, np - q);
            int iy = oy * s - p->pad_top + ky;
            float *dst = row + q;
            q += run;
            if (iy < 0 || iy >= H) {
                memset(dst, 0, (size_t)run * sizeof(float));
                continue;
            }
            const float *src = xc + (int64_t)iy * W;
            int ix0 = ox * s - p->pad_left + kx;
            /* run positions i with 0 <= ix0 + i*s < W are [lo, hi) */
            int lo = ix0 >= 0 ? 0 : (-ix0 + s - 1) / s;
            int hi = ix0 > W - 1 ? 0 : (W - 1 - ix0) / s + 1;
            lo = SD_MIN(lo, run);
            hi = SD_MAX(SD_MIN(hi, run), lo);
            memset(dst, 0, (size_t)lo * sizeof(float));
            if (s == 1)
                memcpy(dst + lo, src + ix0 + lo, (size_t)(hi - lo) * sizeof(float));
            else
                for (int i = lo; i < hi; i++)
                    dst[i] = src[ix0 + i * s];
            memset(dst + hi, 0, (size_t)(run - hi) * sizeof(float));
        }
    }
}

/* One (image, position tile, channel block): y tile = sum over reduction chunks of
 * W[o-block, chunk] x col[chunk, tile], then the bias. */
static void conv_item(void *arg, int64_t item, int slot)
{
    const conv_job *j = arg;
    int64_t o0 = (item % j->n_ob) * j->ob;
    int64_t rest = item / j->n_ob;
    int64_t p0 = (rest % j->n_pt) * j->pt;
    int64_t n = rest / j->n_pt;
    int64_t no = SD_MIN(j->ob, j->O - o0), np = SD_MIN(j->pt, j->P - p0);
    const float *xn = j->x + n * j->C * (int64_t)j->H * j->W;
    float *yo = j->y + (n * j->O + o0) * j->P + p0;
    float *colbuf = j->col ? j->col + (size_t)slot * j->col_floats : NULL;
    float *wbuf = j->wbuf ? j->wbuf + (size_t)slot * j->wbuf_floats : NULL;
    for (int64_t k0 = 0; k0 < j->CK; k0 += j->kc) {
        int64_t nk = SD_MIN(j->kc, j->CK - k0);
        const float *col = xn + k0 * j->P + p0; /* direct: row k of x is channel k */
        int64_t ldb = j->P;
        if (!j->direct) {
            sd_im2col_rows(xn, j->H, j->W, j->kh, j->kw, j->Wo, &j->p, k0, nk, p0, np, colbuf,
                           np);
            col = colbuf;
            ldb = np;
        }
        const float *wb = (const float *)j->w->data + o0 * j->CK + k0;
        int64_t lda = j->CK;
        if (j->convert) {
            for (int64_t o = 0; o < no; o++)
                weight_f32(j->k, j->w, (o0 + o) * j->CK + k0, nk, wbuf + o * nk);
            wb = wbuf;
            lda = nk;
        }
        gemm_nn(no, np, nk, 1.0f, wb, lda, col, ldb, k0 > 0 ? 1.0f : 0.0f, yo, j->P);
    }
    if (j->bias)
        for (int64_t o = 0; o < no; o++)
            j->k->scale_shift_f32(yo + o * j->P, yo + o * j->P, (size_t)np, 0.0f, 1.0f,
                                  j->bias[o0 + o]);
}

sd_status sd_op_conv2d(sd_ctx *ctx, const float *x, int N, int C, int H, int W,
                       const sd_tensor *w, const sd_tensor *b, const sd_conv2d_params *p,
                       float *y, sd_error *err)
{
    static const char op[] = "conv2d";
    if (N < 0 || C < 1 || H < 1 || W < 1 || p->stride < 1 || p->pad_top < 0 ||
        p->pad_left < 0 || p->pad_bottom < 0 || p->pad_right < 0)
        return sd_fail(err, SD_ERR_INVALID_ARG, "conv2d: bad arguments N=%d C=%d H=%d W=%d "
                       "stride=%d", N, C, H, W, p->stride);
    if (w->ndim != 4 || w->shape[1] != C || w->shape[0] < 1 || w->shape[2] < 1 ||
        w->shape[3] < 1)
        return sd_fail(err, SD_ERR_FORMAT, "conv2d: weight must be [O, %d, kh, kw], has %d "
                       "dims with %lld input channels", C, w->ndim,
                       (long long)(w->ndim > 1 ? w->shape[1] : 0));
    if (w->shape[0] > INT32_MAX || w->shape[2] > H + p->pad_top + p->pad_bottom ||
        w->shape[3] > W + p->pad_left + p->pad_right)
        return sd_fail(err, SD_ERR_INVALID_ARG, "conv2d: kernel %lldx%lld larger than the "
                       "padded %dx%d input", (long long)w->shape[2], (long long)w->shape[3],
                       H, W);
    conv_job j = {.k = ctx->kern, .x = x, .w = w, .y = y, .C = C, .H = H, .W = W,
                  .O = (int)w->shape[0], .kh = (int)w->shape[2], .kw = (int)w->shape[3],
                  .p = *p};
    int Ho = (H + p->pad_top + p->pad_bottom - j.kh) / p->stride + 1;
    j.Wo = (W + p->pad_left + p->pad_right - j.kw) / p->stride + 1;
    j.CK = (int64_t)C * j.kh * j.kw;
    j.P = (int64_t)Ho * j.Wo;
    if (!fits_int(j.CK) || !fits_int(j.P) || !fits_int(j.O * j.CK))
        return sd_fail(err, SD_ERR_TOO_LARGE, "conv2d: layer too large");
    sd_status st = check_weight(w, j.O * j.CK, op, "weight", err);
    if (st != SD_OK)
        return st;
    if (x == y && N > 0)
        return sd_fail(err, SD_ERR_INVALID_ARG, "conv2d: output aliases input");
    if (N == 0)
        return SD_OK;
    fvec bias;
    st = load_vec(ctx, b, j.O, op, "bias", &bias, err);
    if (st != SD_OK)
        return st;
    j.bias = bias.p;
    ctx->flops += 2 * (uint64_t)N * (uint64_t)j.O * (uint64_t)j.CK * (uint64_t)j.P;
    if (ctx->packed) {
        st = sd_packed_conv2d(ctx, x, N, C, H, W, w, j.O, j.kh, j.kw, p, Ho, j.Wo, bias.p, y,
                              err);
        vec_free(&bias);
        return st;
    }
    pthread_once(&blas_once, blas_init);

    /* Blocking: the reduction in balanced chunks of about CONV_KC; positions bounded by the
     * im2col tile, channels by the converted weight block; then channels are split further
     * (batch 1 at low resolution has few position tiles), and positions last, until there
     * are enough items for the pool. */
    j.direct = j.kh == 1 && j.kw == 1 && p->stride == 1 && p->pad_top == 0 &&
               p->pad_left == 0 && p->pad_bottom == 0 && p->pad_right == 0;
    j.convert = w->dtype != SD_DTYPE_F32;
    j.kc = ceil_div(j.CK, ceil_div(j.CK, CONV_KC));
    int64_t target = target_items(ctx);
    int64_t pt_cap = j.direct ? j.P : SD_MAX(BLOCK_QUANTUM, COL_BYTES / (4 * j.kc));
    int64_t ob_cap = j.convert ? SD_MAX(BLOCK_QUANTUM, WBLOCK_BYTES / (4 * j.kc)) : j.O;
    j.pt = split_block(j.P, pt_cap, 1, BLOCK_QUANTUM);
    j.n_pt = ceil_div(j.P, j.pt);
    j.ob = split_block(j.O, ob_cap, ceil_div(target, N * j.n_pt), 2 * BLOCK_QUANTUM);
    j.n_ob = ceil_div(j.O, j.ob);
    if (N * j.n_pt * j.n_ob < target) {
        j.pt = split_block(j.P, j.pt, ceil_div(target, N * j.n_ob), BLOCK_QUANTUM);
        j.n_pt = ceil_div(j.P, j.pt);
    }
    int64_t items = N * j.n_pt * j.n_ob;
    int slots = sd_par_slots(ctx, items);
    j.col_floats = j.direct ? 0 : (size_t)(j.kc * j.pt);
    j.wbuf_floats = j.convert ? (size_t)(j.ob * j.kc) : 0;
    st = slot_scratch(slots, j.col_floats, &j.col, op, err);
    if (st == SD_OK)
        st = slot_scratch(slots, j.wbuf_floats, &j.wbuf, op, err);
    if (st == SD_OK)
        sd_par_run(ctx, items, conv_item, &j);
    sd_free(j.col);
    sd_free(j.wbuf);
    vec_free(&bias);
    return st;
}

/* ==== normalisation ========================================================================== */

/* Mean and 1/sqrt(var + eps) of x[n], n >= 1: two passes, float32 kernels on chunks. */
static void stats(const sd_kernels *k, const float *x, int64_t n, float eps, float *mean,
                  float *rstd)
{
    double s = 0;
    for (int64_t i = 0; i < n; i += STAT_CHUNK)
        s += k->sum_f32(x + i, (size_t)SD_MIN(STAT_CHUNK, n - i));
    float m = (float)(s / (double)n);
    double ss = 0;
    for (int64_t i = 0; i < n; i += STAT_CHUNK)
        ss += k->sumsq_dev_f32(x + i, (size_t)SD_MIN(STAT_CHUNK, n - i), m);
    *mean = m;
    *rstd = (float)(1.0 / sqrt(ss / (double)n + eps));
}

typedef struct gn_job {
    const sd_kernels *k;
    const float *x;
    float *y;
    int C, groups;
    int64_t HW;
    const float *gamma, *beta;
    float eps;
    bool silu;
} gn_job;

static void gn_item(void *arg, int64_t item, int slot)
{
    (void)slot;
    const gn_job *j = arg;
    int cpg = j->C / j->groups;
    int64_t n = item / j->groups;
    int g = (int)(item % j->groups);
    int64_t off = (n * j->C + (int64_t)g * cpg) * j->HW;
    float mean, rstd;
    stats(j->k, j->x + off, cpg * j->HW, j->eps, &mean, &rstd);
    for (int c = 0; c < cpg; c++) {
        int ch = g * cpg + c;
        const float *xc = j->x + off + c * j->HW;
        float *yc = j->y + off + c * j->HW;
        float a = j->gamma[ch] * rstd;
        if (j->silu)
            j->k->scale_shift_silu_f32(xc, yc, (size_t)j->HW, mean, a, j->beta[ch]);
        else
            j->k->scale_shift_f32(xc, yc, (size_t)j->HW, mean, a, j->beta[ch]);
    }
}

sd_status sd_op_groupnorm(sd_ctx *ctx, const float *x, float *y, int N, int C, int64_t HW,
                          int groups, const sd_tensor *gamma, const sd_tensor *beta, float eps,
                          bool silu, sd_error *err)
{
    static const char op[] = "groupnorm";
    if (N < 0 || C < 1 || HW < 1 || groups < 1 || C % groups != 0 || !(eps >= 0))
        return sd_fail(err, SD_ERR_INVALID_ARG, "groupnorm: bad arguments C=%d groups=%d "
                       "HW=%lld", C, groups, (long long)HW);
    if (!gamma || !beta)
        return sd_fail(err, SD_ERR_INVALID_ARG, "groupnorm: gamma and beta are required");
    if (N == 0)
        return SD_OK;
    fvec g, b;
    sd_status st = load_vec(ctx, gamma, C, op, "gamma", &g, err);
    if (st != SD_OK)
        return st;
    st = load_vec(ctx, beta, C, op, "beta", &b, err);
    if (st == SD_OK) {
        gn_job j = {.k = ctx->kern, .x = x, .y = y, .C = C, .groups = groups, .HW = HW,
                    .gamma = g.p, .beta = b.p, .eps = eps, .silu = silu};
        sd_par_run(ctx, (int64_t)N * groups, gn_item, &j);
    }
    vec_free(&g);
    vec_free(&b);
    return st;
}

typedef struct ln_job {
    const sd_kernels *k;
    const float *x;
    float *y;
    int64_t rows, D, rows_per_item;
    const float *gamma, *beta;
    float eps;
} ln_job;

static void ln_item(void *arg, int64_t item, int slot)
{
    (void)slot;
    const ln_job *j = arg;
    int64_t r1 = SD_MIN(j->rows, (item + 1) * j->rows_per_item);
    for (int64_t r = item * j->rows_per_item; r < r1; r++) {
        float mean, rstd;
        stats(j->k, j->x + r * j->D, j->D, j->eps, &mean, &rstd);
        j->k->layernorm_apply_f32(j->x + r * j->D, j->y + r * j->D, (size_t)j->D, mean, rstd,
                                  j->gamma, j->beta);
    }
}

sd_status sd_op_layernorm(sd_ctx *ctx, const float *x, float *y, int64_t rows, int64_t D,
                          const sd_tensor *gamma, const sd_tensor *beta, float eps,
                          sd_error *err)
{
    static const char op[] = "layernorm";
    if (rows < 0 || D < 1 || !(eps >= 0))
        return sd_fail(err, SD_ERR_INVALID_ARG, "layernorm: bad arguments rows=%lld D=%lld",
                       (long long)rows, (long long)D);
    if (!gamma || !beta)
        return sd_fail(err, SD_ERR_INVALID_ARG, "layernorm: gamma and beta are required");
    if (rows == 0)
        return SD_OK;
    fvec g, b;
    sd_status st = load_vec(ctx, gamma, D, op, "gamma", &g, err);
    if (st != SD_OK)
        return st;
    st = load_vec(ctx, beta, D, op, "beta", &b, err);
    if (st == SD_OK) {
        ln_job j = {.k = ctx->kern, .x = x, .y = y, .rows = rows, .D = D,
                    .rows_per_item = SD_MAX(1, EW_CHUNK / D), .gamma = g.p, .beta = b.p,
                    .eps = eps};
        sd_par_run(ctx, ceil_div(rows, j.rows_per_item), ln_item, &j);
    }
    vec_free(&g);
    vec_free(&b);
    return st;
}

/* ==== attention ============================================================================== */

typedef struct attn_job {
    const sd_kernels *k;
    const float *q, *kk, *v;
    float *out;
    sd_attn_params p;
    int64_t n_qt;        /* query tiles per (batch, head) */
    float *scratch;      /* per slot: scores [ATT_TQ][ATT_TK], max [ATT_TQ], sum [ATT_TQ] */
} attn_job;

enum { ATT_SLOT_FLOATS = ATT_TQ * ATT_TK + 2 * ATT_TQ };

/* One (batch, head, query tile): stream the key blocks through an online softmax.  The
 * output rows accumulate un-normalised in `out` itself (rescaled when a row's maximum
 * grows) and are divided by their normaliser at the end. */
static void attn_item(void *arg, int64_t item, int slot)
{
    const attn_job *j = arg;
    const sd_attn_params *p = &j->p;
    int64_t qt = item % j->n_qt, bh = item / j->n_qt;
    int64_t h = bh % p->heads, b = bh / p->heads;
    int64_t i0 = qt * ATT_TQ, nq = SD_MIN(ATT_TQ, p->lq - i0);
    const float *Q = j->q + (b * p->lq + i0) * p->q_rs + h * p->dh;
    float *O = j->out + (b * p->lq + i0) * p->o_rs + h * p->dh;
    float *S = j->scratch + (size_t)slot * ATT_SLOT_FLOATS;
    float *rmax = S + ATT_TQ * ATT_TK, *rsum = rmax + ATT_TQ;
    for (int64_t r = 0; r < nq; r++) {
        rmax[r] = -INFINITY;
        rsum[r] = 0;
    }
    /* causal: row i sees keys j <= i, so the tile needs keys below i0 + nq */
    int64_t kend = p->causal ? SD_MIN(p->lk, i0 + nq) : p->lk;
    for (int64_t j0 = 0; j0 < kend; j0 += ATT_TK) {
        int64_t nk = SD_MIN(ATT_TK, kend - j0);
        const float *K = j->kk + (b * p->lk + j0) * p->k_rs + h * p->dh;
        const float *V = j->v + (b * p->lk + j0) * p->v_rs + h * p->dh;
        gemm_nt(nq, nk, p->dh, p->scale, Q, p->q_rs, K, p->k_rs, 0.0f, S, nk);
        for (int64_t r = 0; r < nq; r++) {
            float *row = S + r * nk;
            int64_t valid = p->causal ? SD_MAX(0, SD_MIN(nk, i0 + r - j0 + 1)) : nk;
            float alpha = j->k->softmax_step_f32(row, (size_t)valid, &rmax[r], &rsum[r]);
            memset(row + valid, 0, (size_t)(nk - valid) * sizeof(float));
            if (j0 > 0 && alpha != 1.0f)
                j->k->scale_shift_f32(O + r * p->o_rs, O + r * p->o_rs, (size_t)p->dh, 0.0f,
                                      alpha, 0.0f);
        }
        gemm_nn(nq, p->dh, nk, 1.0f, S, nk, V, p->v_rs, j0 > 0 ? 1.0f : 0.0f, O, p->o_rs);
    }
    for (int64_t r = 0; r < nq; r++)
        j->k->scale_shift_f32(O + r * p->o_rs, O + r * p->o_rs, (size_t)p->dh, 0.0f,
                              1.0f / rsum[r], 0.0f);
}

/* Byte range [lo, hi) a strided [rows, width] float view spans (rows >= 1). */
static void span(const float *base, int64_t rows, int64_t rs, int64_t width, uintptr_t *lo,
                 uintptr_t *hi)
{
    *lo = (uintptr_t)base;
    *hi = (uintptr_t)(base + (rows - 1) * rs + width);
}

/* Whether two strided [rows, width] float views share an element.  Views whose spans meet
 * are still disjoint when they have the same row stride and sit in different columns (q, k,
 * v and out as column slices of one wide buffer). */
static bool overlaps(const float *a, int64_t a_rows, int64_t a_rs, const float *b,
                     int64_t b_rows, int64_t b_rs, int64_t width)
{
    uintptr_t alo, ahi, blo, bhi;
    span(a, a_rows, a_rs, width, &alo, &ahi);
    span(b, b_rows, b_rs, width, &blo, &bhi);
    if (alo >= bhi || blo >= ahi)
        return false;
    uintptr_t d = alo > blo ? alo - blo : blo - alo;
    if (a_rs != b_rs || d % sizeof(float) != 0)
        return true;
    int64_t col = (int64_t)(d / sizeof(float)) % a_rs; /* column offset between the views */
    return col < width || col > a_rs - width;
}

sd_status sd_op_attention(sd_ctx *ctx, const float *q, const float *k, const float *v,
                          float *out, const sd_attn_params *p, sd_error *err)
{
    int64_t width = (int64_t)p->heads * p->dh;
    if (p->batch < 0 || p->heads < 1 || p->dh < 1 || p->lq < 0 || p->lk < 0 ||
        p->q_rs < width || p->k_rs < width || p->v_rs < width || p->o_rs < width ||
        !fits_int(p->q_rs) || !fits_int(p->k_rs) || !fits_int(p->v_rs) || !fits_int(p->o_rs))
        return sd_fail(err, SD_ERR_INVALID_ARG, "attention: bad shape batch=%d heads=%d dh=%d "
                       "lq=%lld lk=%lld or row strides below heads*dh", p->batch, p->heads,
                       p->dh, (long long)p->lq, (long long)p->lk);
    if (p->batch == 0 || p->lq == 0)
        return SD_OK;
    if (p->lk == 0)
        return sd_fail(err, SD_ERR_INVALID_ARG, "attention: no keys (lk = 0)");
    int64_t qrows = (int64_t)p->batch * p->lq, krows = (int64_t)p->batch * p->lk;
    if (overlaps(out, qrows, p->o_rs, q, qrows, p->q_rs, width) ||
        overlaps(out, qrows, p->o_rs, k, krows, p->k_rs, width) ||
        overlaps(out, qrows, p->o_rs, v, krows, p->v_rs, width))
        return sd_fail(err, SD_ERR_INVALID_ARG, "attention: output overlaps q, k or v");
    ctx->flops += 4 * (uint64_t)p->batch * (uint64_t)p->heads * (uint64_t)p->lq *
                  (uint64_t)p->lk * (uint64_t)p->dh;
    if (ctx->packed)
        return sd_packed_attention(ctx, q, k, v, out, p, err);
    pthread_once(&blas_once, blas_init);
    attn_job j = {.k = ctx->kern, .q = q, .kk = k, .v = v, .out = out, .p = *p,
                  .n_qt = ceil_div(p->lq, ATT_TQ)};
    int64_t items = (int64_t)p->batch * p->heads * j.n_qt;
    sd_status st = slot_scratch(sd_par_slots(ctx, items), ATT_SLOT_FLOATS, &j.scratch,
                                "attention", err);
    if (st == SD_OK)
        sd_par_run(ctx, items, attn_item, &j);
    sd_free(j.scratch);
    return st;
}

/* ==== element-wise =========================================================================== */

typedef struct ew_job {
    const sd_kernels *k;
    void (*unary)(const float *x, float *y, size_t n);
    float *y;
    const float *x;
    float s;
    int64_t n;
} ew_job;

static void unary_item(void *arg, int64_t item, int slot)
{
    (void)slot;
    const ew_job *j = arg;
    int64_t i0 = item * EW_CHUNK, n = SD_MIN(EW_CHUNK, j->n - i0);
    j->unary(j->y + i0, j->y + i0, (size_t)n);
}

static void run_unary(sd_ctx *ctx, void (*fn)(const float *, float *, size_t), float *x,
                      int64_t n)
{
    ew_job j = {.unary = fn, .y = x, .n = n};
    sd_par_run(ctx, ceil_div(SD_MAX(n, 0), EW_CHUNK), unary_item, &j);
}

void sd_op_silu(sd_ctx *ctx, float *x, int64_t n)
{
    run_unary(ctx, ctx->kern->silu_f32, x, n);
}

void sd_op_gelu(sd_ctx *ctx, float *x, int64_t n)
{
    run_unary(ctx, ctx->kern->gelu_f32, x, n);
}

void sd_op_quick_gelu(sd_ctx *ctx, float *x, int64_t n)
{
    run_unary(ctx, ctx->kern->quick_gelu_f32, x, n);
}

static void add_item(void *arg, int64_t item, int slot)
{
    (void)slot;
    const ew_job *j = arg;
    int64_t i0 = item * EW_CHUNK;
    j->k->add_f32(j->y + i0, j->x + i0, (size_t)SD_MIN(EW_CHUNK, j->n - i0));
}

void sd_op_add(sd_ctx *ctx, float *y, const float *x, int64_t n)
{
    ew_job j = {.k = ctx->kern, .y = y, .x = x, .n = n};
    sd_par_run(ctx, ceil_div(SD_MAX(n, 0), EW_CHUNK), add_item, &j);
}

static void scale_item(void *arg, int64_t item, int slot)
{
    (void)slot;
    const ew_job *j = arg;
    int64_t i0 = item * EW_CHUNK;
    j->k->scale_shift_f32(j->y + i0, j->y + i0, (size_t)SD_MIN(EW_CHUNK, j->n - i0), 0.0f,
                          j->s, 0.0f);
}

void sd_op_scale(sd_ctx *ctx, float *y, float s, int64_t n)
{
    ew_job j = {.k = ctx->kern, .y = y, .s = s, .n = n};
    sd_par_run(ctx, ceil_div(SD_MAX(n, 0), EW_CHUNK), scale_item, &j);
}

/* Row-blocked jobs: `rows` rows of `len` floats, items of about EW_CHUNK floats. */
typedef struct rows_job {
    const sd_kernels *k;
    const float *x;
    float *y;
    const float *v;
    int64_t rows, per_item, len;
    int W;
} rows_job;

static int64_t rows_per_item(int64_t len)
{
    return SD_MAX(1, EW_CHUNK / SD_MAX(len, 1));
}

static void geglu_item(void *arg, int64_t item, int slot)
{
    (void)slot;
    const rows_job *j = arg;
    int64_t D = j->len, r1 = SD_MIN(j->rows, (item + 1) * j->per_item);
    for (int64_t r = item * j->per_item; r < r1; r++)
        j->k->geglu_f32(j->x + r * 2 * D, j->x + r * 2 * D + D, j->y + r * D, (size_t)D);
}

void sd_op_geglu(sd_ctx *ctx, const float *x, float *y, int64_t rows, int64_t D)
{
    if (rows <= 0 || D <= 0)
        return;
    rows_job j = {.k = ctx->kern, .x = x, .y = y, .rows = rows, .len = D,
                  .per_item = rows_per_item(D)};
    sd_par_run(ctx, ceil_div(rows, j.per_item), geglu_item, &j);
}

static void add_channel_item(void *arg, int64_t item, int slot)
{
    (void)slot;
    const rows_job *j = arg;
    int64_t r1 = SD_MIN(j->rows, (item + 1) * j->per_item);
    for (int64_t r = item * j->per_item; r < r1; r++) {
        float *row = j->y + r * j->len;
        j->k->scale_shift_f32(row, row, (size_t)j->len, 0.0f, 1.0f, j->v[r]);
    }
}

void sd_op_add_channel(sd_ctx *ctx, float *x, const float *v, int N, int C, int64_t HW)
{
    if (N <= 0 || C <= 0 || HW <= 0)
        return;
    rows_job j = {.k = ctx->kern, .y = x, .v = v, .rows = (int64_t)N * C, .len = HW,
                  .per_item = rows_per_item(HW)};
    sd_par_run(ctx, ceil_div(j.rows, j.per_item), add_channel_item, &j);
}

static void upsample_item(void *arg, int64_t item, int slot)
{
    (void)slot;
    const rows_job *j = arg;
    const int64_t W = j->W;
    int64_t r1 = SD_MIN(j->rows, (item + 1) * j->per_item);
    for (int64_t r = item * j->per_item; r < r1; r++) {
        /* input row r (plane r / H, row r % H) becomes output rows 2r and 2r + 1 */
        const float *src = j->x + r * W;
        float *dst = j->y + 2 * r * 2 * W;
        for (int64_t i = 0; i < W; i++)
            dst[2 * i] = dst[2 * i + 1] = src[i];
        memcpy(dst + 2 * W, dst, (size_t)(2 * W) * sizeof(float));
    }
}

void sd_op_upsample2x(sd_ctx *ctx, const float *x, float *y, int64_t NC, int H, int W)
{
    if (NC <= 0 || H <= 0 || W <= 0)
        return;
    rows_job j = {.x = x, .y = y, .rows = NC * H, .W = W, .per_item = rows_per_item(4 * W)};
    sd_par_run(ctx, ceil_div(j.rows, j.per_item), upsample_item, &j);
}

enum { TR_TILE = 32 };

typedef struct transpose_job {
    const float *x;
    float *y;
    int64_t rows, cols, n_rt;
} transpose_job;

static void transpose_item(void *arg, int64_t item, int slot)
{
    (void)slot;
    const transpose_job *j = arg;
    int64_t b = item / j->n_rt, r0 = (item % j->n_rt) * TR_TILE;
    int64_t r1 = SD_MIN(j->rows, r0 + TR_TILE);
    const float *x = j->x + b * j->rows * j->cols;
    float *y = j->y + b * j->rows * j->cols;
    for (int64_t c0 = 0; c0 < j->cols; c0 += TR_TILE) {
        int64_t c1 = SD_MIN(j->cols, c0 + TR_TILE);
        for (int64_t c = c0; c < c1; c++)
            for (int64_t r = r0; r < r1; r++)
                y[c * j->rows + r] = x[r * j->cols + c];
    }
}

void sd_op_transpose(sd_ctx *ctx, const float *x, float *y, int batch, int64_t rows,
                     int64_t cols)
{
    if (batch <= 0 || rows <= 0 || cols <= 0)
        return;
    transpose_job j = {.x = x, .y = y, .rows = rows, .cols = cols,
                       .n_rt = ceil_div(rows, TR_TILE)};
    sd_par_run(ctx, batch * j.n_rt, transpose_item, &j);
}

/* ==== small helpers ========================================================================== */

void sd_timestep_embedding(float t, int dim, bool flip_sin_to_cos, float shift, float *out)
{
    /* diffusers computes every step in float32 (exponent, exp, t * freq); sin and cos are
     * then evaluated exactly on that float32 argument */
    int half = dim / 2;
    const float c = (float)-log(10000.0);
    const float denom = (float)half - shift;
    for (int i = 0; i < half; i++) {
        float e = c * (float)i / denom;
        float f = (float)exp((double)e);
        float a = t * f;
        float s = (float)sin((double)a), co = (float)cos((double)a);
        out[flip_sin_to_cos ? half + i : i] = s;
        out[flip_sin_to_cos ? i : half + i] = co;
    }
    if (dim % 2)
        out[dim - 1] = 0;
}

sd_status sd_tensor_to_f32(const sd_ctx *ctx, const sd_tensor *t, float *dst, int64_t n,
                           sd_error *err)
{
    if (!is_float(t->dtype))
        return sd_fail(err, SD_ERR_FORMAT, "tensor of dtype %s is not a float tensor",
                       sd_dtype_name(t->dtype));
    if (sd_tensor_numel(t) != n)
        return sd_fail(err, SD_ERR_FORMAT, "tensor has %lld elements, expected %lld",
                       (long long)sd_tensor_numel(t), (long long)n);
    const sd_kernels *k = ctx ? ctx->kern : sd_kernels_get();
    if (n == 0)
        return SD_OK;
    if (is_contiguous(t)) {
        if (t->dtype == SD_DTYPE_F32)
            memcpy(dst, t->data, (size_t)n * sizeof(float));
        else
            weight_f32(k, t, 0, n, dst);
        return SD_OK;
    }
    /* strided: walk the index space in row-major order, one element at a time */
    int64_t idx[SD_MAX_DIMS] = {0};
    size_t esz = sd_dtype_size(t->dtype);
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int d = 0; d < t->ndim; d++)
            off += idx[d] * t->stride[d];
        const char *src = (const char *)t->data + off * (int64_t)esz;
        uint16_t h;
        switch (t->dtype) {
        case SD_DTYPE_F16:
            memcpy(&h, src, 2);
            k->cvt_f16_f32(&h, dst + i, 1);
            break;
        case SD_DTYPE_BF16:
            memcpy(&h, src, 2);
            k->cvt_bf16_f32(&h, dst + i, 1);
            break;
        default:
            memcpy(dst + i, src, sizeof(float));
            break;
        }
        for (int d = t->ndim - 1; d >= 0 && ++idx[d] == t->shape[d]; d--)
            idx[d] = 0;
    }
    return SD_OK;
}
