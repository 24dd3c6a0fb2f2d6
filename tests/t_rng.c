/* tests/t_rng.c - the torch-compatible generator: the Mersenne Twister against its published
 * reference outputs, and every torch.randn draw of the golden rng/torch_randn.safetensors
 * (4 seeds incl. 2^32-1; 16x16, 64x64 and the < 16 element path; three consecutive draws
 * from one generator; float64) reproduced bit for bit. */
#include "harness.h"
#include "case_util.h"
#include "internal/rng.h"
#include "internal/safetensors.h"

static const uint64_t seeds[] = {0, 1, 42, 4294967295u};

/* Count elements whose bits differ. */
static size_t bit_mismatches(const void *a, const void *b, size_t n, size_t elem)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += memcmp((const char *)a + i * elem, (const char *)b + i * elem, elem) != 0;
    return bad;
}

/* F64 is not a usable dtype for the loader: copy the entry's stored bytes. */
static int golden_f64(const sd_st_file *f, const char *name, double *out, size_t n)
{
    const sd_st_entry *e = sd_st_find(f, name);
    if (!e || strcmp(e->dtype_name, "F64") != 0 || e->nbytes != n * sizeof(double))
        return 0;
    memcpy(out, e->raw, e->nbytes);
    return 1;
}

static void check_draw(const sd_st_file *f, sd_rng *r, const char *name, size_t n)
{
    float *got = malloc(n * sizeof *got);
    sd_rng_randn(r, got, n);
    const float *want = t_case_view(f, "torch_randn", name, n);
    if (want) {
        size_t bad = bit_mismatches(got, want, n, sizeof(float));
        CHECK(bad == 0, "%s: %zu of %zu values differ (first: got %.9g want %.9g)", name, bad,
              n, got[0], want[0]);
    }
    free(got);
}

int main(void)
{
    /* Mersenne Twister reference: mt19937 seeded 5489 (the C++ default), 10000th output. */
    sd_rng r;
    sd_rng_seed(&r, 5489);
    CHECK(sd_rng_u32(&r) == 3499211612u, "mt19937(5489) first output");
    for (int i = 1; i < 9999; i++)
        sd_rng_u32(&r);
    CHECK(sd_rng_u32(&r) == 4123659995u, "mt19937(5489) 10000th output");
    sd_rng_seed(&r, 7);
    uint32_t a = sd_rng_u32(&r), b = sd_rng_u32(&r);
    sd_rng_seed(&r, 7);
    CHECK(sd_rng_u64(&r) == ((uint64_t)a << 32 | b), "u64 = first << 32 | second");
    /* torch seeds the engine from the low 32 bits only */
    sd_rng_seed(&r, ((uint64_t)1 << 32) + 42);
    uint32_t hi = sd_rng_u32(&r);
    sd_rng_seed(&r, 42);
    CHECK(hi == sd_rng_u32(&r), "seed 2^32 + 42 gives the stream of 42");
    CHECK(sd_rng_initial_seed(&r) == 42, "initial seed kept");

    /* The scalar path caches the second value of each pair in the generator. */
    float seven[7], eighth;
    sd_rng_seed(&r, 3);
    sd_rng_randn(&r, seven, 7);
    sd_rng_randn(&r, &eighth, 1);
    float eight[8];
    sd_rng_seed(&r, 3);
    sd_rng_randn(&r, eight, 8);
    CHECK(memcmp(seven, eight, sizeof seven) == 0 && memcmp(&eighth, &eight[7], 4) == 0,
          "7 + 1 scalar draws equal 8 (cached sin value)");
    sd_rng_seed(&r, 3);
    sd_rng_randn(&r, seven, 7);
    sd_rng_seed(&r, 3);
    sd_rng_randn(&r, &eighth, 1);
    CHECK(memcmp(&eighth, &seven[0], 4) == 0, "reseeding drops the cached value");

    const char *path = t_data("rng/torch_randn.safetensors");
    sd_st_file *f = NULL;
    sd_error err = {0};
    CHECK(sd_st_open(path, &f, &err) == SD_OK, "open %s: %s", path, err.msg);
    if (!f)
        return t_summary("t_rng");

    char name[96];
    for (size_t si = 0; si < SD_ARRAY_LEN(seeds); si++) {
        unsigned long long s = seeds[si];
        static const struct { const char *tag; size_t n; } shapes[] = {
            {"1x4x16x16", 1024}, {"1x4x64x64", 16384}, {"7", 7}};
        for (size_t k = 0; k < SD_ARRAY_LEN(shapes); k++) {
            sd_rng_seed(&r, s);
            snprintf(name, sizeof name, "seed%llu_%s", s, shapes[k].tag);
            check_draw(f, &r, name, shapes[k].n);
        }
        /* three consecutive draws from one generator */
        sd_rng_seed(&r, s);
        snprintf(name, sizeof name, "seed%llu_seq_first_1x4x16x16", s);
        check_draw(f, &r, name, 1024);
        snprintf(name, sizeof name, "seed%llu_seq_second_1x4x16x16", s);
        check_draw(f, &r, name, 1024);
        snprintf(name, sizeof name, "seed%llu_seq_third_7", s);
        check_draw(f, &r, name, 7);

        double got[1024], want[1024];
        snprintf(name, sizeof name, "seed%llu_1x4x16x16_f64", s);
        sd_rng_seed(&r, s);
        sd_rng_randn_f64(&r, got, 1024);
        int have = golden_f64(f, name, want, 1024);
        CHECK(have, "golden %s missing or unreadable", name);
        if (have) {
            size_t bad = bit_mismatches(got, want, 1024, sizeof(double));
            CHECK(bad == 0, "%s: %zu of 1024 values differ", name, bad);
        }
    }

    /* A tail that is not a multiple of 16 recomputes the last 16 from fresh uniforms: the
     * first floor(n/16)*16 values equal those of the multiple-of-16 draw. */
    float x1[40], x2[32];
    sd_rng_seed(&r, 9);
    sd_rng_randn(&r, x1, 40);
    sd_rng_seed(&r, 9);
    sd_rng_randn(&r, x2, 32);
    CHECK(memcmp(x1, x2, 24 * sizeof(float)) == 0 && memcmp(x1 + 24, x2 + 24, 32) != 0,
          "tail recomputation");
    double m = 0, v = 0;
    float big[4096];
    sd_rng_seed(&r, 11);
    sd_rng_randn(&r, big, 4096);
    for (int i = 0; i < 4096; i++)
        m += big[i], v += (double)big[i] * big[i];
    m /= 4096, v = v / 4096 - m * m;
    CHECK(fabs(m) < 0.05 && fabs(v - 1) < 0.06, "moments mean %g var %g", m, v);

    sd_st_close(f);
    return t_summary("t_rng");
}
