/* ops_packed.c - linear, conv2d and attention on the kernel table's packed micro-kernels
 * (internal/ops_packed.h).  Used when the table's micro-kernels beat OpenBLAS (AVX-512) or
 * the ctx asks for bf16 products; ops.c keeps the sgemm versions for the other tables.
 *
 * PACKED WEIGHTS.  A weight is packed once into one of four layouts and cached with its
 * model (internal/pack.h); a weight no cache covers is packed per call into scratch.
 *   A layouts (convolution weights W[O][CK], CK = C*kh*kw; the broadcast operand): panel
 *     i = o / MR holds rows 8i..8i+7, k-major: F32  [CK][MR] at i*MR*CK,
 *                                            BF16 [CKp/2][MR][2] at i*MR*CKp (CKp even).
 *   B layouts (linear weights W[N][K] read as B[k][n]; the vector operand): panel j = n / NR
 *     holds columns 32j..32j+31: F32 [K][NR] at j*NR*K, BF16 [Kp/2][NR][2] at j*NR*Kp.
 *   Rows or columns beyond the tensor are zero.  A reduction block [k0, k0 + kc) of a panel
 *   is contiguous: it starts k0*MR (A) or k0*NR (B) elements into the panel (k0 even).
 *
 * CONVOLUTION is implicit GEMM per (image, tile of output positions, block of output
 * channels): for each reduction block, the B block of the position tile is built in the
 * slot's scratch - fp32 im2col rows, or in bf16 the pair rows (straight from x for stride 1,
 * zero padding included, by pack_bf16_pairs_span) - and every 8 x 32 tile of the output
 * block accumulates W-panel x B-panel.  1x1 stride-1 unpadded convolutions read x in place
 * (fp32).  Small images, where several channel blocks share a position tile, build each B
 * block once per reduction block in a pass of their own instead.  Nothing proportional to
 * the whole layer is ever built.  In bf16 precision, convolutions with fewer than
 * BF16_MIN_CHANNELS channels in or out (first and last layers) stay fp32.
 *
 * WINOGRAD.  3x3 stride-1 padding-1 convolutions with enough channels and positions run as
 * Winograd F(4x4, 3x3) in float32 arithmetic, in both precisions: each 6x6 input tile d is
 * transformed to V = BT d BT^T, each weight to U = G g G^T (packed once per model as 36
 * planes of A panels, kind PK_WINO_F32), and per tile M = U * V element-wise summed over the
 * input channels, i.e. 36 GEMMs [O x C] x [C x tiles] on the fp32 micro-kernel, then
 * y = AT M AT per 4x4 output tile: 2.25 instead of 9 multiply-adds per output and input
 * channel.  Per (image, block of ~WINO_TILES tiles, block of up to WINO_OB output channels)
 * the slot's scratch holds V for WINO_KC input channels and M for the whole channel block:
 * keeping all output channels in one block (the V block then serves all of them, the 36 x
 * O x tiles sums wait in L2/L3) measured faster than smaller blocks kept in L2 with V
 * transformed again per block.  The transforms are kernel slots (wino_in_f32 / wino_out_f32:
 * 16 tiles per vector, permutes for the stride-4 columns); inner tiles read x in place, edge
 * tiles through a zero-padded patch.  Rounding: the transforms' terms reach ~100x the
 * inputs, so the result is ~1e-6 .. 1e-5 of the largest output off (tests/t_ops.c holds it
 * to 1e-5), still far closer than bf16 products (~1e-3).  Measured on one 3x3 layer (2
 * threads on Zen 4 sharing one core, CPU-time GFLOP/s counted as the direct convolution's
 * work): C512 at 128x128 ~300 vs ~100 fp32 direct and ~180 bf16 direct; C256 at 256x256
 * ~265 vs 100 / 190; C128 at 512x512 ~245 vs 95 / 175; C512 at 64x64 ~215-250 vs 100 / 200;
 * C320 at 64x64 170 vs 105 / 200; C640 at 32x32 140 vs 100 / 180; C1280 at 16x16 85 vs 80
 * / 205; C1280 at 8x8 27 vs 97 / 144 (the 36 x O x C weights are streamed for a handful of
 * tiles).  Hence: float32 from WINO_MIN_CHANNELS channels and WINO_MIN_TILES tiles per call
 * (256, not the 64 where it starts to pay: the UNet's C640 and C1280 levels at 32x32 and
 * below would gain 1.4x at most on a sixth of its work for 0.9 GB more packed weights);
 * bf16 precision only from WINO_BF16_MIN_CHANNELS and WINO_BF16_MIN_TILES (128x128 pixels
 * at batch 1: the VAE's upper levels, not the UNet at 512x512).  The packs are 4x the
 * float32 weights (8x the bf16 ones).
 *
 * LINEAR packs its activations per (row block, reduction block) into A panels (once, shared,
 * when few rows leave several column blocks per row block) and runs them against the cached
 * B panels of W.
 *
 * ATTENTION is flash attention with the queries on the vector lanes: per (batch, head, 128
 * queries) four query tiles of 32 are transposed and scaled once, then the key blocks
 * stream through the table's attn_block_f32 / attn_block_bf16 (scores, online softmax,
 * output update; in bf16 each key block is converted once for the four tiles), each block
 * applied to the four tiles while it is in cache; the score matrix never exists beyond one
 * block of one tile.
 *
 * Blocking, measured on AMD Zen 4 (32 KiB L1d, 1 MiB L2 per core): long reduction blocks
 * (512 fp32 / 1024 bf16) pay because every block reloads and stores the C tile; output
 * tiles of 128 positions.  Single-thread convolutions 3x3 at SD sizes then run at ~100
 * GFLOP/s fp32 (OpenBLAS sgemm with im2col: ~90) and ~185 bf16, of peaks 117 and 235. */
#include "internal/kernels.h"
#include "internal/ops_packed.h"
#include "internal/pack.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

enum {
    MR = SD_GEMM_MR,
    NR = SD_GEMM_NR,
    KC_F32 = 512,       /* reduction block, fp32 */
    KC_BF16 = 1024,     /* reduction block, bf16 (even) */
    POS_TILE = 128,     /* conv output positions per item (multiple of NR) */
    ROW_TILE = 128,     /* linear rows per item (multiple of MR) */
    ATT_KB = 128,       /* attention keys per block */
    ATT_TILES = 4,      /* query tiles (of SD_ATT_NQ) per attention item, sharing key blocks */
    BF16_MIN_CHANNELS = 16, /* convolutions with fewer in/out channels stay float32 */
    WINO_TILES = 128,   /* Winograd: 4x4 output tiles per block (about; whole NR panels) */
    WINO_OB = 512,      /* ... output channels per block at most */
    WINO_KC = 256,      /* ... input channels per transform + GEMM round */
    WINO_MIN_CHANNELS = 32,       /* ... used in float32 from this many channels in and out */
    WINO_MIN_TILES = 256,         /* ... and this many tiles per call (64x64 pixels) */
    WINO_BF16_MIN_CHANNELS = 64,  /* ... in bf16 precision instead of bf16 products */
    WINO_BF16_MIN_TILES = 1024,   /* ... (128x128 pixels) */
    ITEMS_PER_THREAD = 4,
};

/* the pack layouts (internal/pack.h kinds) */
enum { PK_A_F32, PK_A_BF16, PK_B_F32, PK_B_BF16, PK_WINO_F32 };

/* ==== work splitting ======================================================================= */

typedef struct par_job {
    sd_par_fn fn;
    void *arg;
    int64_t n_items;
    _Atomic int64_t next;
} par_job;

static void par_task(void *vp, int task, int n_tasks)
{
    (void)n_tasks;
    par_job *j = vp;
    for (;;) {
        int64_t it = atomic_fetch_add(&j->next, 1);
        if (it >= j->n_items)
            return;
        j->fn(j->arg, it, task);
    }
}

int sd_par_slots(const sd_ctx *ctx, int64_t n_items)
{
    int t = sd_pool_size(ctx->pool);
    return n_items < t ? (int)SD_MAX(n_items, 1) : t;
}

void sd_par_run(sd_ctx *ctx, int64_t n_items, sd_par_fn fn, void *arg)
{
    if (n_items <= 0)
        return;
    par_job j = {.fn = fn, .arg = arg, .n_items = n_items};
    atomic_init(&j.next, 0);
    sd_pool_run(ctx->pool, par_task, &j, sd_par_slots(ctx, n_items));
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

static int64_t round_up(int64_t a, int64_t b)
{
    return ceil_div(a, b) * b;
}

static int64_t target_items(const sd_ctx *ctx)
{
    int t = sd_pool_size(ctx->pool);
    return t > 1 ? (int64_t)ITEMS_PER_THREAD * t : 1;
}

/* Per-slot scratch of `bytes` each (zeroed), or NULL for 0 bytes. */
static sd_status slot_scratch(int slots, size_t bytes, void **out, sd_error *err)
{
    *out = NULL;
    if (bytes == 0)
        return SD_OK;
    size_t total;
    if (!sd_mul_ok(bytes, (size_t)slots, &total))
        return sd_fail(err, SD_ERR_TOO_LARGE, "packed op: scratch size overflows");
    *out = sd_calloc(total, 1);
    return *out ? SD_OK : sd_fail_nomem(err, "packed op scratch");
}

/* ==== weight packing ========================================================================= */

/* Rows [r0, r0 + n) of a contiguous [rows][cols] float weight as float32 into dst [n][cols]. */
static void weight_rows(const sd_kernels *k, const sd_tensor *w, int64_t cols, int64_t r0,
                        int64_t n, float *dst)
{
    int64_t off = r0 * cols, cnt = n * cols;
    switch (w->dtype) {
    case SD_DTYPE_F16:
        k->cvt_f16_f32((const uint16_t *)w->data + off, dst, (size_t)cnt);
        break;
    case SD_DTYPE_BF16:
        k->cvt_bf16_f32((const uint16_t *)w->data + off, dst, (size_t)cnt);
        break;
    default:
        memcpy(dst, (const float *)w->data + off, (size_t)cnt * sizeof(float));
        break;
    }
}

typedef struct pack_job {
    const sd_kernels *k;
    const sd_tensor *w;
    int kind;
    int64_t rows, cols, colsp; /* weight [rows][cols]; colsp: cols rounded up to even */
    int64_t panel_rows;        /* MR (A layouts) or NR (B layouts) */
    void *dst;
    float *tmp;                /* per slot: panel_rows x cols floats, panel_rows x colsp
                                  uint16 */
} pack_job;

static size_t pack_bytes(int kind, int64_t rows, int64_t cols)
{
    if (kind == PK_WINO_F32) /* 36 planes of A panels [C][MR], cols = C * 9 */
        return (size_t)(36 * round_up(rows, MR) * (cols / 9)) * sizeof(float);
    bool a = kind == PK_A_F32 || kind == PK_A_BF16, bf = kind == PK_A_BF16 || kind == PK_B_BF16;
    int64_t pr = a ? MR : NR;
    int64_t c = bf ? round_up(cols, 2) : cols;
    return (size_t)(round_up(rows, pr) * c) * (bf ? sizeof(uint16_t) : sizeof(float));
}

/* Winograd weights of output-channel panel `item` from its rows t [MR][C*9]: plane q of
 * U = G g G^T (g one 3x3 kernel), evaluated in double, at dst + q * plane as the A panel
 * layout of an [O][C] matrix. */
static void wino_pack_panel(const pack_job *j, int64_t item, const float *t)
{
    static const double G[6][3] = {
        {1.0 / 4, 0, 0},          {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
        {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1},
    };
    const int64_t C = j->cols / 9, plane = round_up(j->rows, MR) * C;
    float *d = (float *)j->dst + item * MR * C;
    for (int64_t r = 0; r < MR; r++)
        for (int64_t c = 0; c < C; c++) {
            const float *g = t + r * j->cols + c * 9;
            double gg[6][3];
            for (int a = 0; a < 6; a++)
                for (int b = 0; b < 3; b++)
                    gg[a][b] = G[a][0] * g[b] + G[a][1] * g[3 + b] + G[a][2] * g[6 + b];
            for (int a = 0; a < 6; a++)
                for (int b = 0; b < 6; b++)
                    d[(6 * a + b) * plane + c * MR + r] =
                        (float)(gg[a][0] * G[b][0] + gg[a][1] * G[b][1] + gg[a][2] * G[b][2]);
        }
}

/* Panel `item` of the layout: convert its rows, then write them k-major. */
static void pack_item(void *arg, int64_t item, int slot)
{
    const pack_job *j = arg;
    const int64_t pr = j->panel_rows, K = j->cols;
    size_t tmp_bytes = (size_t)(pr * K) * sizeof(float) + (size_t)(pr * j->colsp) * 2;
    float *t = (float *)((char *)j->tmp + (size_t)slot * ((tmp_bytes + 63) / 64 * 64));
    int64_t r0 = item * pr, n = SD_MIN(pr, j->rows - r0);
    weight_rows(j->k, j->w, K, r0, n, t);
    memset(t + n * K, 0, (size_t)((pr - n) * K) * sizeof(float));
    if (j->kind == PK_WINO_F32) {
        wino_pack_panel(j, item, t);
        return;
    }
    if (j->kind == PK_A_F32 || j->kind == PK_B_F32) {
        float *d = (float *)j->dst + item * pr * K;
        for (int64_t kk = 0; kk < K; kk++)
            for (int64_t r = 0; r < pr; r++)
                d[kk * pr + r] = t[r * K + kk];
        return;
    }
    /* bf16: each row rounded whole (its pair (k, k+1) is then one 32-bit unit), then the
     * units of the panel's rows interleaved */
    uint16_t *rb = (uint16_t *)(t + pr * K), *d = (uint16_t *)j->dst + item * pr * j->colsp;
    const int64_t kp = j->colsp / 2;
    for (int64_t r = 0; r < pr; r++) {
        j->k->cvt_f32_bf16(t + r * K, rb + r * j->colsp, (size_t)K);
        if (j->colsp > K)
            rb[r * j->colsp + K] = 0;
    }
    for (int64_t p = 0; p < kp; p++)
        for (int64_t r = 0; r < pr; r++)
            memcpy(d + (p * pr + r) * 2, rb + r * j->colsp + 2 * p, 2 * sizeof(uint16_t));
}

/* A packed weight, from the model's cache or packed now into owned scratch. */
typedef struct packed_w {
    const void *data;
    void *owned;
} packed_w;

static sd_status get_packed(sd_ctx *ctx, const sd_tensor *w, int kind, int64_t rows,
                            int64_t cols, packed_w *out, sd_error *err)
{
    out->data = NULL;
    out->owned = NULL;
    size_t bytes = pack_bytes(kind, rows, cols);
    size_t src_bytes = (size_t)(rows * cols) * sd_dtype_size(w->dtype);
    sd_pack_slot slot;
    sd_status st = sd_pack_get(w->data, src_bytes, kind, bytes, &slot, err);
    if (st != SD_OK)
        return st;
    if (slot.data && !slot.fill) {
        out->data = slot.data;
        return SD_OK;
    }
    void *dst = slot.data;
    if (!dst) {
        dst = out->owned = sd_malloc(bytes);
        if (!dst)
            return sd_fail_nomem(err, "packed weights");
    }
    bool a = kind == PK_A_F32 || kind == PK_A_BF16 || kind == PK_WINO_F32;
    pack_job j = {.k = ctx->kern, .w = w, .kind = kind, .rows = rows, .cols = cols,
                  .colsp = round_up(cols, 2), .panel_rows = a ? MR : NR, .dst = dst};
    int64_t panels = ceil_div(rows, j.panel_rows);
    /* per slot: the panel's rows as float32, then (bf16) as bf16 rows of colsp */
    size_t tmp_bytes = (size_t)(j.panel_rows * cols) * sizeof(float) +
                       (size_t)(j.panel_rows * j.colsp) * sizeof(uint16_t);
    st = slot_scratch(sd_par_slots(ctx, panels), (tmp_bytes + 63) / 64 * 64, (void **)&j.tmp,
                      err);
    if (st == SD_OK)
        sd_par_run(ctx, panels, pack_item, &j);
    sd_free(j.tmp);
    if (slot.fill)
        sd_pack_done(&slot, st == SD_OK);
    if (st != SD_OK) {
        sd_free(out->owned);
        out->owned = NULL;
        return st;
    }
    out->data = dst;
    return SD_OK;
}

/* ==== linear ================================================================================== */

typedef struct lin_job {
    const sd_kernels *k;
    bool bf16;
    const float *x;
    const void *wp;   /* B panels */
    const float *bias;
    float *y;
    int64_t M, K, Kp, N;
    int64_t mb, nb, n_mb, kc;
    void *scratch;    /* per slot: A panels of one (row block, reduction block) */
    char *apack;      /* or, when several column blocks share a row block, all of them
                         packed once: region (row block, reduction block) */
    size_t slot_bytes;
    int64_t n_kb;
} lin_job;

/* Pack rows [m0, m0 + mm) x columns [k0, k0 + nk) of x into A panels at dst. */
static void pack_x_f32(const float *x, int64_t K, int64_t m0, int64_t mm, int64_t k0,
                       int64_t nk, float *dst)
{
    for (int64_t i = 0; i < mm; i += MR) {
        float *d = dst + i * nk;
        int64_t rows = SD_MIN(MR, mm - i);
        for (int64_t r = 0; r < MR; r++) {
            const float *src = x + (m0 + i + SD_MIN(r, rows - 1)) * K + k0;
            for (int64_t kk = 0; kk < nk; kk++)
                d[kk * MR + r] = src[kk];
        }
    }
}

static void pack_x_bf16(const sd_kernels *k, const float *x, int64_t K, int64_t m0,
                        int64_t mm, int64_t k0, int64_t nk, uint16_t *dst)
{
    int64_t np = ceil_div(nk, 2);
    uint16_t row[KC_BF16 + 2];
    row[nk] = 0; /* the partner of an odd last k */
    for (int64_t i = 0; i < mm; i += MR) {
        uint16_t *d = dst + i * np * 2;
        int64_t rows = SD_MIN(MR, mm - i);
        for (int64_t r = 0; r < MR; r++) {
            k->cvt_f32_bf16(x + (m0 + i + SD_MIN(r, rows - 1)) * K + k0, row, (size_t)nk);
            for (int64_t p = 0; p < np; p++)
                memcpy(d + (p * MR + r) * 2, row + 2 * p, 2 * sizeof(uint16_t));
        }
    }
}

/* A panels of rows [m0, m0 + mm) x reduction block [k0, k0 + nk) into dst. */
static void lin_pack_a(const lin_job *j, int64_t m0, int64_t mm, int64_t k0, int64_t nk,
                       void *dst)
{
    if (j->bf16)
        pack_x_bf16(j->k, j->x, j->K, m0, mm, k0, nk, dst);
    else
        pack_x_f32(j->x, j->K, m0, mm, k0, nk, dst);
}

/* pre-pack item: (row block, reduction block) */
static void lin_prepack_item(void *arg, int64_t item, int slot)
{
    (void)slot;
    const lin_job *j = arg;
    int64_t m0 = (item / j->n_kb) * j->mb, k0 = (item % j->n_kb) * j->kc;
    lin_pack_a(j, m0, SD_MIN(j->mb, j->M - m0), k0, SD_MIN(j->kc, j->K - k0),
               j->apack + (size_t)item * j->slot_bytes);
}

static void lin_item(void *arg, int64_t item, int slot)
{
    const lin_job *j = arg;
    int64_t mbi = item % j->n_mb;
    int64_t m0 = mbi * j->mb, n0 = (item / j->n_mb) * j->nb;
    int64_t mm = SD_MIN(j->mb, j->M - m0), nn = SD_MIN(j->nb, j->N - n0);
    for (int64_t k0 = 0; k0 < j->K; k0 += j->kc) {
        int64_t nk = SD_MIN(j->kc, j->K - k0);
        bool acc = k0 > 0;
        void *ap;
        if (j->apack) {
            ap = j->apack + (size_t)(mbi * j->n_kb + k0 / j->kc) * j->slot_bytes;
        } else {
            ap = (char *)j->scratch + (size_t)slot * j->slot_bytes;
            lin_pack_a(j, m0, mm, k0, nk, ap);
        }
        if (j->bf16) {
            int64_t np = ceil_div(nk, 2);
            for (int64_t n = 0; n < nn; n += NR) {
                const uint16_t *b = (const uint16_t *)j->wp + (n0 + n) * j->Kp + k0 * NR;
                for (int64_t i = 0; i < mm; i += MR)
                    j->k->gemm_bf16(np, (const uint16_t *)ap + i * np * 2, b, 2 * NR,
                                    j->y + (m0 + i) * j->N + n0 + n, j->N,
                                    (int)SD_MIN(MR, mm - i), (int)SD_MIN(NR, nn - n), acc);
            }
        } else {
            for (int64_t n = 0; n < nn; n += NR) {
                const float *b = (const float *)j->wp + (n0 + n) * j->K + k0 * NR;
                for (int64_t i = 0; i < mm; i += MR)
                    j->k->gemm_f32(nk, (const float *)ap + i * nk, b, NR,
                                   j->y + (m0 + i) * j->N + n0 + n, j->N,
                                   (int)SD_MIN(MR, mm - i), (int)SD_MIN(NR, nn - n), acc);
            }
        }
    }
    if (j->bias)
        for (int64_t r = 0; r < mm; r++)
            j->k->add_f32(j->y + (m0 + r) * j->N + n0, j->bias + n0, (size_t)nn);
}

sd_status sd_packed_linear(sd_ctx *ctx, const float *x, int64_t M, int64_t K,
                           const sd_tensor *w, int64_t N, const float *bias, float *y,
                           sd_error *err)
{
    lin_job j = {.k = ctx->kern, .bf16 = ctx->bf16, .x = x, .bias = bias, .y = y, .M = M,
                 .K = K, .Kp = round_up(K, 2), .N = N, .kc = ctx->bf16 ? KC_BF16 : KC_F32};
    packed_w pw;
    sd_status st = get_packed(ctx, w, j.bf16 ? PK_B_BF16 : PK_B_F32, N, K, &pw, err);
    if (st != SD_OK)
        return st;
    j.wp = pw.data;
    /* rows in blocks of ROW_TILE, columns whole; split columns (in panels) when the rows
     * alone give the pool too few items */
    int64_t target = target_items(ctx);
    j.mb = SD_MIN(round_up(M, MR), ROW_TILE);
    j.n_mb = ceil_div(M, j.mb);
    int64_t n_panels = ceil_div(N, NR);
    int64_t n_nb = SD_MIN(n_panels, ceil_div(target, j.n_mb));
    j.nb = ceil_div(n_panels, n_nb) * NR;
    int64_t items = j.n_mb * ceil_div(N, j.nb);
    int64_t kc = SD_MIN(j.kc, K);
    j.n_kb = ceil_div(K, j.kc);
    j.slot_bytes = (size_t)(j.mb * round_up(kc, 2)) * (j.bf16 ? 2 : 4);
    if (n_nb > 1) {
        /* several column blocks per row block (few rows, e.g. the text encoder's 77):
         * pack each row block once, not once per column block */
        st = slot_scratch((int)(j.n_mb * j.n_kb), j.slot_bytes, (void **)&j.apack, err);
        if (st == SD_OK)
            sd_par_run(ctx, j.n_mb * j.n_kb, lin_prepack_item, &j);
    } else {
        st = slot_scratch(sd_par_slots(ctx, items), j.slot_bytes, &j.scratch, err);
    }
    if (st == SD_OK)
        sd_par_run(ctx, items, lin_item, &j);
    sd_free(j.scratch);
    sd_free(j.apack);
    sd_free(pw.owned);
    return st;
}

/* ==== conv2d ================================================================================== */

typedef struct conv_job {
    const sd_kernels *k;
    bool bf16;
    const float *x;
    const void *wp;     /* A panels */
    const float *bias;
    float *y;
    int C, H, W, O, kh, kw, Wo;
    sd_conv2d_params p;
    int64_t CK, CKp, P;
    bool direct;        /* 1x1, stride 1, no padding: rows of x are the B rows */
    int64_t kc;
    int64_t pt, ob, n_pt, n_ob;
    void *scratch;      /* per slot: im2col rows (float) [+ bf16 pairs] */
    char *bpack;        /* or, with several channel blocks per position tile, the B blocks
                           of one reduction block built once per pass: region (image,
                           position tile), laid out as a slot */
    size_t col_floats, slot_bytes;
    int64_t k_begin, k_end; /* the reduction rows this pass covers */
} conv_job;

/* The valid source span of im2col row r over an output-row run: positions [*lo, *hi) of
 * the run (ox0 .. ox0 + run) read x[c][iy][ix0 + i] (stride 1); *src points at i = *lo. */
static void row_span(const conv_job *j, const float *x, int64_t r, int oy, int ox0, int run,
                     const float **src, int *lo, int *hi)
{
    int kx = (int)(r % j->kw), ky = (int)(r / j->kw % j->kh), c = (int)(r / j->kw / j->kh);
    int iy = oy - j->p.pad_top + ky, ix0 = ox0 - j->p.pad_left + kx;
    if (iy < 0 || iy >= j->H) {
        *lo = *hi = 0;
        *src = x;
        return;
    }
    *lo = SD_MIN(run, SD_MAX(0, -ix0));
    *hi = SD_MAX(*lo, SD_MIN(run, j->W - ix0));
    *src = *hi > *lo ? x + ((int64_t)c * j->H + iy) * j->W + ix0 + *lo : x;
}

/* bf16 pair rows of the im2col matrix straight from x, for stride-1 convolutions: pair-row
 * p of dst (row stride 2 * ld uint16) holds rows k0 + 2p and k0 + 2p + 1 (the second zero
 * past nk) for positions [p0, p0 + np), padding zeros included. */
static void im2col_pairs(const conv_job *j, const float *x, int64_t k0, int64_t nk,
                         int64_t p0, int64_t np, uint16_t *dst, int64_t ld)
{
    for (int64_t p = 0; 2 * p < nk; p++) {
        uint16_t *row = dst + p * 2 * ld;
        for (int64_t q = 0; q < np;) {
            int oy = (int)((p0 + q) / j->Wo), ox = (int)((p0 + q) % j->Wo);
            int run = (int)SD_MIN(j->Wo - ox, np - q);
            const float *sa, *sb = x;
            int la, ha, lb = 0, hb = 0;
            row_span(j, x, k0 + 2 * p, oy, ox, run, &sa, &la, &ha);
            if (2 * p + 1 < nk)
                row_span(j, x, k0 + 2 * p + 1, oy, ox, run, &sb, &lb, &hb);
            j->k->pack_bf16_pairs_span(sa, la, ha, sb, lb, hb, row + q * 2, (size_t)run);
            q += run;
        }
    }
}

/* The B block of reduction rows [k0, k0 + nk) for positions [p0, p0 + np) of image xn:
 * fp32 im2col rows into col (row stride np) unless x serves in place, and in bf16 the pair
 * rows into colb (row stride 2 * round_up(np, NR)).  *b, *ldb: the fp32 rows to use. */
static void conv_build_b(const conv_job *j, const float *xn, int64_t k0, int64_t nk,
                         int64_t p0, int64_t np, float *col, uint16_t *colb, const float **b,
                         int64_t *ldb)
{
    *b = xn + k0 * j->P + p0; /* direct: row k of x is channel k */
    *ldb = j->P;
    bool pairs_from_x = j->bf16 && !j->direct && j->p.stride == 1;
    if (!j->direct && !pairs_from_x) {
        sd_im2col_rows(xn, j->H, j->W, j->kh, j->kw, j->Wo, &j->p, k0, nk, p0, np, col, np);
        *b = col;
        *ldb = np;
    }
    if (!j->bf16)
        return;
    const int64_t ldb16 = round_up(np, NR);
    if (pairs_from_x) {
        im2col_pairs(j, xn, k0, nk, p0, np, colb, ldb16);
        return;
    }
    for (int64_t pr = 0; 2 * pr < nk; pr++)
        j->k->pack_bf16_pairs(*b + 2 * pr * *ldb,
                              2 * pr + 1 < nk ? *b + (2 * pr + 1) * *ldb : NULL,
                              colb + pr * 2 * ldb16, (size_t)np);
}

/* pre-pack item: (image, position tile) for the pass's reduction block */
static void conv_prepack_item(void *arg, int64_t item, int slot)
{
    (void)slot;
    const conv_job *j = arg;
    int64_t p0 = (item % j->n_pt) * j->pt, n = item / j->n_pt;
    float *col = (float *)(j->bpack + (size_t)item * j->slot_bytes);
    const float *b;
    int64_t ldb;
    conv_build_b(j, j->x + n * j->C * (int64_t)j->H * j->W, j->k_begin, j->k_end - j->k_begin,
                 p0, SD_MIN(j->pt, j->P - p0), col, (uint16_t *)(col + j->col_floats), &b,
                 &ldb);
}

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
    const int64_t ldb16 = round_up(np, NR); /* bf16 pair rows: every column readable */
    for (int64_t k0 = j->k_begin; k0 < j->k_end; k0 += j->kc) {
        int64_t nk = SD_MIN(j->kc, j->k_end - k0);
        bool acc = k0 > 0;
        float *col;
        const float *b = xn + k0 * j->P + p0;
        int64_t ldb = j->P;
        if (j->bpack) {
            col = (float *)(j->bpack + (size_t)rest * j->slot_bytes);
            if (!j->direct) {
                b = col;
                ldb = np;
            }
        } else {
            col = (float *)((char *)j->scratch + (size_t)slot * j->slot_bytes);
            conv_build_b(j, xn, k0, nk, p0, np, col, (uint16_t *)(col + j->col_floats), &b,
                         &ldb);
        }
        if (j->bf16) {
            const uint16_t *colb = (const uint16_t *)(col + j->col_floats);
            const uint16_t *wa = (const uint16_t *)j->wp + o0 * j->CKp + k0 * MR;
            for (int64_t q = 0; q < np; q += NR)
                for (int64_t i = 0; i < no; i += MR)
                    j->k->gemm_bf16(ceil_div(nk, 2), wa + i * j->CKp, colb + 2 * q, 2 * ldb16,
                                    yo + i * j->P + q, j->P, (int)SD_MIN(MR, no - i),
                                    (int)SD_MIN(NR, np - q), acc);
        } else {
            const float *wa = (const float *)j->wp + o0 * j->CK + k0 * MR;
            for (int64_t q = 0; q < np; q += NR)
                for (int64_t i = 0; i < no; i += MR)
                    j->k->gemm_f32(nk, wa + i * j->CK, b + q, ldb, yo + i * j->P + q, j->P,
                                   (int)SD_MIN(MR, no - i), (int)SD_MIN(NR, np - q), acc);
        }
    }
    if (j->bias && j->k_end == j->CK)
        for (int64_t o = 0; o < no; o++)
            j->k->scale_shift_f32(yo + o * j->P, yo + o * j->P, (size_t)np, 0.0f, 1.0f,
                                  j->bias[o0 + o]);
}

/* ---- Winograd F(4x4, 3x3) ---- */

typedef struct wino_job {
    const sd_kernels *k;
    const float *x, *u, *bias; /* u: the transformed weights, 36 planes of A panels */
    float *y;
    int C, H, W, O;
    int tx;                    /* tiles per tile row (tiles per column: ceil(H / 4)) */
    int64_t n_tiles;           /* per image */
    int64_t tb, n_tb;          /* tiles per block, blocks per image */
    int64_t ob, n_ob;          /* output channels per block (multiple of MR), blocks */
    int64_t kc;                /* input channels per transform + GEMM round */
    int64_t tc;                /* row stride of the V and M blocks (tb rounded up) */
    int64_t plane_u;           /* floats per weight plane: round_up(O, MR) * C */
    float *scratch;
    size_t slot_floats;
} wino_job;

/* Slot layout: V [36][kc][tc], M [36][ob][tc], then a patch: the input patch [6][4*tb + 2]
 * of edge tiles, or the output patch [4][4*tb] (the larger is the input's).  At the block
 * limits ~14 MiB per slot. */
static size_t wino_slot_floats(const wino_job *j)
{
    size_t f = (size_t)(36 * (j->kc + j->ob) * j->tc) + (size_t)(6 * (4 * j->tb + 2));
    return (f + 15) / 16 * 16;
}

/* Tiles [t0, t0 + nt) of one tile row: a run of the block. */
static int64_t wino_run(const wino_job *j, int64_t t, int64_t t_end)
{
    return SD_MIN(t_end - t, j->tx - t % j->tx);
}

/* The input transform of channel c of image xn for the block's tiles [t_begin, t_end) into
 * row (c - k0) of the V planes (plane stride vs). */
static void wino_input(const wino_job *j, const float *xc, int64_t t_begin, int64_t t_end,
                       float *v, int64_t vs, float *patch)
{
    const int H = j->H, W = j->W;
    for (int64_t t = t_begin; t < t_end;) {
        int64_t nt = wino_run(j, t, t_end);
        int ty = (int)(t / j->tx), tx0 = (int)(t % j->tx);
        /* tiles [1, in_end) of an inner tile row read only pixels of the image (tile t
         * reads columns 4t - 1 .. 4t + 4): straight from x */
        int64_t in_end = W >= 5 ? (W - 5) / 4 + 1 : 0;
        if (ty >= 1 && 4 * ty + 4 < H && tx0 >= 1 && tx0 < in_end) {
            nt = SD_MIN(nt, in_end - tx0);
            j->k->wino_in_f32(xc + (int64_t)(4 * ty - 1) * W + 4 * tx0 - 1, W, (int)nt,
                              v + (t - t_begin), vs);
            t += nt;
            continue;
        }
        if (tx0 == 0 && ty >= 1 && 4 * ty + 4 < H && in_end > 1)
            nt = 1; /* the first tile through the patch, the rest straight from x */
        int64_t pw = 4 * nt + 2;
        int ix0 = 4 * tx0 - 1;
        /* columns [lo, hi) of the patch lie inside the image */
        int lo = ix0 < 0 ? -ix0 : 0, hi = (int)SD_MIN(pw, (int64_t)W - ix0);
        for (int r = 0; r < 6; r++) {
            float *pr = patch + r * pw;
            int iy = 4 * ty - 1 + r;
            if (iy < 0 || iy >= H || hi <= lo) {
                memset(pr, 0, (size_t)pw * sizeof(float));
                continue;
            }
            memset(pr, 0, (size_t)lo * sizeof(float));
            memcpy(pr + lo, xc + (int64_t)iy * W + ix0 + lo, (size_t)(hi - lo) * sizeof(float));
            memset(pr + hi, 0, (size_t)(pw - hi) * sizeof(float));
        }
        j->k->wino_in_f32(patch, pw, (int)nt, v + (t - t_begin), vs);
        t += nt;
    }
}

/* The output transform of channel o (its M row m, plane stride ms) into y_o [H][W]. */
static void wino_output(const wino_job *j, const float *m, int64_t ms, float bias,
                        int64_t t_begin, int64_t t_end, float *yo, float *patch)
{
    const int H = j->H, W = j->W;
    for (int64_t t = t_begin; t < t_end;) {
        int64_t nt = wino_run(j, t, t_end);
        int ty = (int)(t / j->tx), tx0 = (int)(t % j->tx);
        float *dst = yo + (int64_t)4 * ty * W + 4 * tx0;
        int rows = SD_MIN(4, H - 4 * ty);
        int64_t cols = SD_MIN(4 * nt, (int64_t)W - 4 * tx0);
        if (rows == 4 && cols == 4 * nt) {
            j->k->wino_out_f32(m + (t - t_begin), ms, (int)nt, bias, dst, W);
        } else {
            j->k->wino_out_f32(m + (t - t_begin), ms, (int)nt, bias, patch, 4 * nt);
            for (int r = 0; r < rows; r++)
                memcpy(dst + (int64_t)r * W, patch + r * 4 * nt, (size_t)cols * sizeof(float));
        }
        t += nt;
    }
}

/* item: (image, tile block, output-channel block) */
static void wino_item(void *arg, int64_t item, int slot)
{
    const wino_job *j = arg;
    int64_t o0 = (item % j->n_ob) * j->ob, rest = item / j->n_ob;
    int64_t t_begin = (rest % j->n_tb) * j->tb, n = rest / j->n_tb;
    int64_t t_end = SD_MIN(t_begin + j->tb, j->n_tiles), nb = t_end - t_begin;
    int64_t no = SD_MIN(j->ob, j->O - o0);
    const int64_t HW = (int64_t)j->H * j->W, tc = j->tc;
    float *v = j->scratch + (size_t)slot * j->slot_floats;
    float *mm = v + 36 * j->kc * tc;
    float *patch = mm + 36 * j->ob * tc;
    const float *xn = j->x + n * j->C * HW;
    for (int64_t k0 = 0; k0 < j->C; k0 += j->kc) {
        int64_t nk = SD_MIN(j->kc, j->C - k0);
        for (int64_t c = 0; c < nk; c++)
            wino_input(j, xn + (k0 + c) * HW, t_begin, t_end, v + c * tc, j->kc * tc, patch);
        for (int64_t q = 0; q < 36; q++) {
            const float *uq = j->u + q * j->plane_u + o0 * j->C + k0 * MR;
            const float *vq = v + q * j->kc * tc;
            float *mq = mm + q * j->ob * tc;
            for (int64_t t = 0; t < nb; t += NR)
                for (int64_t i = 0; i < no; i += MR)
                    j->k->gemm_f32(nk, uq + i * j->C, vq + t, tc, mq + i * tc + t, tc,
                                   (int)SD_MIN(MR, no - i), (int)SD_MIN(NR, nb - t), k0 > 0);
        }
    }
    float *yn = j->y + (n * j->O + o0) * HW;
    for (int64_t o = 0; o < no; o++)
        wino_output(j, mm + o * tc, j->ob * tc, j->bias ? j->bias[o0 + o] : 0.0f, t_begin,
                    t_end, yn + o * HW, patch);
}

/* The 3x3 stride-1 padding-1 convolution as Winograd F(4x4, 3x3) (the caller checked the
 * shape). */
static sd_status wino_conv2d(sd_ctx *ctx, const float *x, int N, int C, int H, int W,
                             const sd_tensor *w, int O, const float *bias, float *y,
                             sd_error *err)
{
    wino_job j = {.k = ctx->kern, .x = x, .bias = bias, .y = y, .C = C, .H = H, .W = W,
                  .O = O};
    packed_w pw;
    sd_status st = get_packed(ctx, w, PK_WINO_F32, O, (int64_t)C * 9, &pw, err);
    if (st != SD_OK)
        return st;
    j.u = pw.data;
    j.plane_u = round_up(O, MR) * C;
    j.tx = (W + 3) / 4;
    j.n_tiles = (int64_t)j.tx * ((H + 3) / 4);
    int64_t target = target_items(ctx);
    /* tile blocks of about WINO_TILES (whole GEMM panels), output channels whole up to
     * WINO_OB, split further only when the pool needs more items */
    j.kc = SD_MIN(C, WINO_KC);
    j.n_tb = ceil_div(j.n_tiles, WINO_TILES);
    j.tb = SD_MIN(j.n_tiles, round_up(ceil_div(j.n_tiles, j.n_tb), NR));
    j.n_tb = ceil_div(j.n_tiles, j.tb);
    int64_t o_panels = ceil_div(O, MR);
    int64_t n_ob = SD_MAX(ceil_div(O, WINO_OB), SD_MIN(o_panels, ceil_div(target, N * j.n_tb)));
    j.ob = ceil_div(o_panels, n_ob) * MR;
    j.n_ob = ceil_div(O, j.ob);
    j.tc = round_up(j.tb, 16);
    j.slot_floats = wino_slot_floats(&j);
    int64_t items = (int64_t)N * j.n_tb * j.n_ob;
    st = slot_scratch(sd_par_slots(ctx, items), j.slot_floats * sizeof(float),
                      (void **)&j.scratch, err);
    if (st == SD_OK)
        sd_par_run(ctx, items, wino_item, &j);
    sd_free(j.scratch);
    sd_free(pw.owned);
    return st;
}

/* Whether a convolution runs as Winograd: 3x3, stride 1, padding 1 all round, with enough
 * channels and tiles (measured per shape, see the header); in bf16 precision only where it
 * beats the bf16 direct convolution too (large images, the VAE's upper levels). */
static bool use_winograd(const sd_ctx *ctx, bool bf16, int N, int C, int H, int W, int O,
                         int kh, int kw, const sd_conv2d_params *p)
{
    if (ctx->winograd == SD_WINOGRAD_OFF || kh != 3 || kw != 3 || p->stride != 1 ||
        p->pad_top != 1 || p->pad_left != 1 || p->pad_bottom != 1 || p->pad_right != 1)
        return false;
    if (ctx->winograd == SD_WINOGRAD_ALWAYS)
        return true;
    int64_t tiles = (int64_t)N * ((H + 3) / 4) * ((W + 3) / 4);
    if (bf16)
        return C >= WINO_BF16_MIN_CHANNELS && O >= WINO_BF16_MIN_CHANNELS &&
               tiles >= WINO_BF16_MIN_TILES;
    return C >= WINO_MIN_CHANNELS && O >= WINO_MIN_CHANNELS && tiles >= WINO_MIN_TILES;
}

sd_status sd_packed_conv2d(sd_ctx *ctx, const float *x, int N, int C, int H, int W,
                           const sd_tensor *w, int O, int kh, int kw,
                           const sd_conv2d_params *p, int Ho, int Wo, const float *bias,
                           float *y, sd_error *err)
{
    /* convolutions into or out of a few channels stay float32 even in bf16 precision: the
     * networks' first and last layers, ~0.1 % of their work; the last one's weight rounding
     * would land on the output directly (on a full-size SD 1.5 UNet: 9.6e-3 relative L2
     * bf16 vs fp32 with them in bf16, 8.1e-3 without) */
    bool bf16 = ctx->bf16 && O >= BF16_MIN_CHANNELS && C >= BF16_MIN_CHANNELS;
    if (use_winograd(ctx, bf16, N, C, H, W, O, kh, kw, p))
        return wino_conv2d(ctx, x, N, C, H, W, w, O, bias, y, err);
    conv_job j = {.k = ctx->kern, .bf16 = bf16, .x = x, .bias = bias, .y = y, .C = C,
                  .H = H, .W = W, .O = O, .kh = kh, .kw = kw, .Wo = Wo, .p = *p};
    j.CK = (int64_t)C * kh * kw;
    j.CKp = round_up(j.CK, 2);
    j.P = (int64_t)Ho * Wo;
    packed_w pw;
    sd_status st = get_packed(ctx, w, j.bf16 ? PK_A_BF16 : PK_A_F32, O, j.CK, &pw, err);
    if (st != SD_OK)
        return st;
    j.wp = pw.data;
    j.direct = kh == 1 && kw == 1 && p->stride == 1 && p->pad_top == 0 && p->pad_left == 0 &&
               p->pad_bottom == 0 && p->pad_right == 0;
    int64_t kcap = j.bf16 ? KC_BF16 : KC_F32;
    j.kc = SD_MIN(j.CK, kcap);
    /* positions in tiles of POS_TILE; then channel blocks (multiples of MR) until the pool
     * has enough items, then smaller position tiles */
    int64_t target = target_items(ctx);
    j.pt = SD_MIN(j.P, POS_TILE);
    j.n_pt = ceil_div(j.P, j.pt);
    int64_t o_panels = ceil_div(O, MR);
    int64_t n_ob = SD_MIN(o_panels, SD_MAX(1, ceil_div(target, N * j.n_pt)));
    j.ob = ceil_div(o_panels, n_ob) * MR;
    j.n_ob = ceil_div(O, j.ob);
    if (N * j.n_pt * j.n_ob < target && j.P > NR) {
        j.pt = SD_MAX(NR, round_up(ceil_div(j.P, ceil_div(target, N * j.n_ob)), NR));
        j.pt = SD_MIN(j.pt, j.P);
        j.n_pt = ceil_div(j.P, j.pt);
    }
    int64_t items = (int64_t)N * j.n_pt * j.n_ob;
    /* fp32 im2col rows, unless x is read in place or straight into bf16 pairs */
    j.col_floats = j.direct || (j.bf16 && p->stride == 1) ? 0 : (size_t)(j.kc * j.pt);
    size_t colb = j.bf16 ? (size_t)(ceil_div(j.kc, 2) * 2 * round_up(j.pt, NR)) : 0;
    j.slot_bytes = (size_t)round_up((int64_t)(j.col_floats * sizeof(float) +
                                              colb * sizeof(uint16_t)), 64);
    if (j.n_ob > 1 && j.slot_bytes > 0) {
        /* several channel blocks per position tile (small images): build each B block once,
         * not once per channel block, one reduction block per pass (the tiles are few: the
         * blocks of a pass take about as much as the per-slot scratch otherwise) */
        int64_t regions = (int64_t)N * j.n_pt;
        st = slot_scratch((int)regions, j.slot_bytes, (void **)&j.bpack, err);
        for (int64_t k0 = 0; st == SD_OK && k0 < j.CK; k0 += j.kc) {
            j.k_begin = k0;
            j.k_end = SD_MIN(k0 + j.kc, j.CK);
            sd_par_run(ctx, regions, conv_prepack_item, &j);
            sd_par_run(ctx, items, conv_item, &j);
        }
    } else {
        j.k_begin = 0;
        j.k_end = j.CK;
        st = slot_scratch(sd_par_slots(ctx, items), j.slot_bytes, &j.scratch, err);
        if (st == SD_OK)
            sd_par_run(ctx, items, conv_item, &j);
    }
    sd_free(j.scratch);
    sd_free(j.bpack);
    sd_free(pw.owned);
    return st;
}

/* ==== attention =============================================================================== */

typedef struct att_job {
    const sd_kernels *k;
    bool bf16;
    const float *q, *kk, *v;
    float *out;
    sd_attn_params p;
    int64_t n_grp;      /* query groups (of ATT_TILES tiles) per (batch, head) */
    float *scratch;
    size_t tile_floats, slot_floats;
} att_job;

/* The per-tile state inside a slot: qt [dh][NQ] (scaled queries), ot [dh][NQ], mx [NQ],
 * sum [NQ], then (bf16) qp [dh2/2][NQ][2]. */
typedef struct att_tile {
    float *qt, *ot, *mx, *sum;
    uint16_t *qp;
} att_tile;

static att_tile tile_at(const att_job *j, float *base, int t)
{
    enum { NQ = SD_ATT_NQ };
    att_tile a;
    a.qt = base + (size_t)t * j->tile_floats;
    a.ot = a.qt + (size_t)j->p.dh * NQ;
    a.mx = a.ot + (size_t)j->p.dh * NQ;
    a.sum = a.mx + NQ;
    a.qp = (uint16_t *)(a.sum + NQ);
    return a;
}

/* bf16 copies of one key block: kb [nk][dh2] and vp [nk2/2][dh][2] */
static void att_block_bf16_copy(const att_job *j, const float *K, const float *V, int nk,
                                uint16_t *kb, uint16_t *vp)
{
    const int dh = j->p.dh, dh2 = dh + dh % 2;
    for (int r = 0; r < nk; r++) {
        j->k->cvt_f32_bf16(K + r * j->p.k_rs, kb + (int64_t)r * dh2, (size_t)dh);
        if (dh2 > dh)
            kb[(int64_t)r * dh2 + dh] = 0;
    }
    for (int r = 0; r < nk; r += 2)
        j->k->pack_bf16_pairs(V + r * j->p.v_rs, r + 1 < nk ? V + (r + 1) * j->p.v_rs : NULL,
                              vp + (int64_t)r * dh, (size_t)dh);
}

/* One (batch, head, group of up to ATT_TILES query tiles): each key block is applied to
 * every tile of the group while it is in cache. */
static void att_item(void *arg, int64_t item, int slot)
{
    enum { NQ = SD_ATT_NQ };
    const att_job *j = arg;
    const sd_attn_params *p = &j->p;
    const int dh = p->dh, dh2 = dh + dh % 2;
    int64_t g = item % j->n_grp, bh = item / j->n_grp;
    int64_t h = bh % p->heads, b = bh / p->heads;
    int64_t i0 = g * ATT_TILES * NQ;
    int tiles = (int)SD_MIN(ATT_TILES, ceil_div(p->lq - i0, NQ));
    float *base = j->scratch + (size_t)slot * j->slot_floats;
    float *s = base + (size_t)ATT_TILES * j->tile_floats;
    uint16_t *pp = (uint16_t *)(s + (size_t)ATT_KB * NQ);
    uint16_t *kb = pp + (size_t)ATT_KB * NQ, *vp = kb + (size_t)ATT_KB * dh2;
    for (int t = 0; t < tiles; t++) {
        att_tile a = tile_at(j, base, t);
        int64_t ti = i0 + t * NQ, nq = SD_MIN(NQ, p->lq - ti);
        const float *Q = j->q + (b * p->lq + ti) * p->q_rs + h * dh;
        for (int e = 0; e < dh; e++)
            for (int64_t qq = 0; qq < NQ; qq++)
                a.qt[e * NQ + qq] = qq < nq ? Q[qq * p->q_rs + e] * p->scale : 0.0f;
        if (j->bf16)
            for (int e = 0; e < dh; e += 2)
                j->k->pack_bf16_pairs(a.qt + e * NQ, e + 1 < dh ? a.qt + (e + 1) * NQ : NULL,
                                      a.qp + e * NQ, NQ);
        memset(a.ot, 0, (size_t)dh * NQ * sizeof(float));
        for (int qq = 0; qq < NQ; qq++) {
            a.mx[qq] = -INFINITY;
            a.sum[qq] = 0;
        }
    }
    /* causal: the group's last query sees keys up to its own index */
    int64_t kend = p->causal ? SD_MIN(p->lk, SD_MIN(p->lq, i0 + tiles * NQ)) : p->lk;
    for (int64_t j0 = 0; j0 < kend; j0 += ATT_KB) {
        const float *K = j->kk + (b * p->lk + j0) * p->k_rs + h * dh;
        const float *V = j->v + (b * p->lk + j0) * p->v_rs + h * dh;
        if (j->bf16)
            att_block_bf16_copy(j, K, V, (int)SD_MIN(ATT_KB, kend - j0), kb, vp);
        for (int t = 0; t < tiles; t++) {
            att_tile a = tile_at(j, base, t);
            int64_t ti = i0 + t * NQ;
            int64_t tend = p->causal ? SD_MIN(kend, ti + NQ) : kend;
            if (j0 >= tend)
                continue;
            int nk = (int)SD_MIN(ATT_KB, tend - j0);
            int causal = p->causal ? (int)(ti - j0) : INT32_MAX;
            if (j->bf16)
                j->k->attn_block_bf16(a.qp, dh, kb, dh2, vp, nk, causal, a.ot, a.mx, a.sum, s,
                                      pp);
            else
                j->k->attn_block_f32(a.qt, dh, K, p->k_rs, V, p->v_rs, nk, causal, a.ot, a.mx,
                                     a.sum, s);
        }
    }
    for (int t = 0; t < tiles; t++) {
        att_tile a = tile_at(j, base, t);
        int64_t ti = i0 + t * NQ, nq = SD_MIN(NQ, p->lq - ti);
        float *O = j->out + (b * p->lq + ti) * p->o_rs + h * dh;
        for (int64_t qq = 0; qq < nq; qq++) {
            float inv = 1.0f / a.sum[qq];
            for (int e = 0; e < dh; e++)
                O[qq * p->o_rs + e] = a.ot[e * NQ + qq] * inv;
        }
    }
}

sd_status sd_packed_attention(sd_ctx *ctx, const float *q, const float *k, const float *v,
                              float *out, const sd_attn_params *p, sd_error *err)
{
    enum { NQ = SD_ATT_NQ };
    att_job j = {.k = ctx->kern, .bf16 = ctx->bf16, .q = q, .kk = k, .v = v, .out = out,
                 .p = *p};
    size_t dh = (size_t)p->dh, dh2 = dh + dh % 2;
    j.n_grp = ceil_div(p->lq, (int64_t)ATT_TILES * NQ);
    /* qt, ot, mx, sum (+ qp: dh2 * NQ uint16 = dh2 * NQ / 2 floats) */
    j.tile_floats = (2 * dh + 2) * NQ + (j.bf16 ? dh2 * NQ / 2 : 0);
    /* + s, and (bf16) pp, kb, vp as uint16 */
    size_t u16 = j.bf16 ? (size_t)ATT_KB * (NQ + dh2 + dh) : 0;
    j.slot_floats = ATT_TILES * j.tile_floats + (size_t)ATT_KB * NQ + (u16 + 1) / 2;
    int64_t items = (int64_t)p->batch * p->heads * j.n_grp;
    sd_status st = slot_scratch(sd_par_slots(ctx, items), j.slot_floats * sizeof(float),
                                (void **)&j.scratch, err);
    if (st == SD_OK)
        sd_par_run(ctx, items, att_item, &j);
    sd_free(j.scratch);
    return st;
}
