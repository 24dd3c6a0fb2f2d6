/* tests/t_random_model.c - the random checkpoints of internal/model_random.h: the generated
 * full-size layouts equal tests/data/full-size-layouts.json name for name and shape for shape
 * (sd15, sd15-inpaint, sd21; nothing is written), and small architectures written to disk
 * load as the right family with the right parameter counts, hold the promised values
 * (bounded uniform weights, unit norms, the real noise schedule, position ids), are the same
 * bytes for any thread count and agree with the reference half/bfloat16 conversions.  The
 * full-size 2 GB files belong to `make bench`, not here. */
#include "harness.h"
#include "model_util.h"
#include "internal/half.h"
#include "internal/json.h"
#include "internal/model.h"
#include "internal/model_random.h"
#include "internal/safetensors.h"

#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int64_t numel(const sd_model_random_tensor *t)
{
    int64_t k = 1;
    for (int i = 0; i < t->ndim; i++)
        k *= t->shape[i];
    return k;
}

static bool starts(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const sd_model_random_tensor *)a)->name,
                  ((const sd_model_random_tensor *)b)->name);
}

/* ---- full-size layouts against the golden list ------------------------------------------- */

static void test_full_size_layouts(void)
{
    sd_json *root = t_full_size_layouts();
    if (!root)
        return;
    sd_error err = {0};
    static const struct {
        const char *arch;
        int64_t unet, vae, text; /* parameters per component, from the file's description */
        bool clip;
    } cases[] = {
        {"sd15", 859520964, 83653863, 123060480, true},
        {"sd15-inpaint", 859535364, 83653863, 123060480, true},
        {"sd21", 865910724, 83653863, 354032641, false},
    };
    for (size_t c = 0; c < SD_ARRAY_LEN(cases); c++) {
        const char *arch = cases[c].arch;
        const sd_json *want = sd_json_get(root, arch);
        const sd_model_random_arch *a = sd_model_random_preset(arch);
        sd_model_random_tensor *ts = NULL;
        size_t n = 0;
        CHECK(a && want && want->type == SD_JSON_OBJECT, "%s: preset and golden list", arch);
        if (!a || !want ||
            sd_model_random_layout(a, SD_DTYPE_F16, &ts, &n, &err) != SD_OK) {
            CHECK(0, "%s: layout: %s", arch, err.msg);
            continue;
        }
        qsort(ts, n, sizeof *ts, cmp_name);
        size_t weights = 0, extras = 0, bad = 0, dups = 0;
        int64_t unet = 0, vae = 0, text = 0;
        for (size_t i = 0; i < n; i++) {
            const sd_model_random_tensor *t = &ts[i];
            dups += i && !strcmp(ts[i - 1].name, t->name);
            if (t->extra) {
                extras++;
                bool known = !strcmp(t->name, "betas") || !strcmp(t->name, "alphas_cumprod") ||
                             !strcmp(t->name, "alphas_cumprod_prev") ||
                             (cases[c].clip &&
                              !strcmp(t->name, "cond_stage_model.transformer.text_model."
                                               "embeddings.position_ids"));
                CHECK(known, "%s: unexpected extra tensor %s", arch, t->name);
                continue;
            }
            weights++;
            const sd_json *e = sd_json_get(want, t->name);
            const sd_json *shape = sd_json_at(e, 1);
            bool same = e && !strcmp(sd_json_str(sd_json_at(e, 0), ""), "F16") &&
                        t->dtype == SD_DTYPE_F16 && shape && shape->type == SD_JSON_ARRAY &&
                        shape->n == (size_t)t->ndim;
            for (int d = 0; same && d < t->ndim; d++)
                same = sd_json_int(&shape->items[d], -1) == t->shape[d];
            if (!same && bad++ < 5)
                CHECK(0, "%s: %s: not in the golden list with this shape", arch, t->name);
            if (starts(t->name, "model.diffusion_model."))
                unet += numel(t);
            else if (starts(t->name, "first_stage_model."))
                vae += numel(t);
            else if (starts(t->name, "cond_stage_model."))
                text += numel(t);
        }
        CHECK(bad == 0 && dups == 0, "%s: %zu tensors differ, %zu duplicates", arch, bad, dups);
        /* as many weights as the golden list, all found there: the same set */
        CHECK(weights == want->n, "%s: %zu weights, golden list has %zu", arch, weights,
              want->n);
        CHECK(extras == (cases[c].clip ? 4u : 3u), "%s: %zu extra tensors", arch, extras);
        CHECK(unet == cases[c].unet && vae == cases[c].vae && text == cases[c].text,
              "%s: parameters %lld %lld %lld", arch, (long long)unet, (long long)vae,
              (long long)text);
        sd_free(ts);
    }
    sd_json_free(root);

    /* other dtypes change only the weights' dtype */
    sd_model_random_tensor *ts = NULL;
    size_t n = 0;
    CHECK(sd_model_random_layout(sd_model_random_preset("sd21"), SD_DTYPE_BF16, &ts, &n,
                                 &err) == SD_OK, "bf16 layout");
    size_t odd = 0;
    for (size_t i = 0; i < n; i++)
        odd += ts[i].extra ? ts[i].dtype == SD_DTYPE_BF16 : ts[i].dtype != SD_DTYPE_BF16;
    CHECK(n == 1231 && odd == 0, "bf16 layout: %zu tensors, %zu with an unexpected dtype", n,
          odd);
    sd_free(ts);

    /* refusals */
    CHECK(sd_model_random_preset("sdxl") == NULL, "unknown preset");
    CHECK(sd_model_random_layout(sd_model_random_preset("sd15"), SD_DTYPE_I64, &ts, &n, &err) ==
              SD_ERR_INVALID_ARG && ts == NULL, "integer weights refused: %s", err.msg);
    sd_model_random_arch bad = *sd_model_random_preset("sd21");
    bad.text_layers = 1;
    CHECK(sd_model_random_layout(&bad, SD_DTYPE_F16, &ts, &n, &err) == SD_ERR_INVALID_ARG,
          "OpenCLIP with one block refused: %s", err.msg);
    bad = *sd_model_random_preset("sd15");
    bad.unet_ch = 0;
    CHECK(sd_model_random_layout(&bad, SD_DTYPE_F16, &ts, &n, &err) == SD_ERR_INVALID_ARG,
          "zero width refused");
}

/* ---- small architectures on disk --------------------------------------------------------- */

static const sd_model_random_arch small_sd1 = {"small-sd1", 4, 16, 8, 64, 2, 1000, false};
static const sd_model_random_arch small_inpaint = {"small-inpaint", 9, 16, 8, 64, 2, 1000, false};
static const sd_model_random_arch small_sd2 = {"small-sd2", 4, 16, 8, 64, 3, 1000, true};

/* Expected parameter counts as the loader sees them: the OpenCLIP tower loses its last
 * block, text_projection and logit_scale. */
static void expected_params(const sd_model_random_arch *a, int64_t *unet, int64_t *vae,
                            int64_t *text)
{
    sd_model_random_tensor *ts = NULL;
    size_t n = 0;
    *unet = *vae = *text = 0;
    if (sd_model_random_layout(a, SD_DTYPE_F16, &ts, &n, NULL) != SD_OK)
        return;
    char last[64];
    snprintf(last, sizeof last, "resblocks.%d.", a->text_layers - 1);
    for (size_t i = 0; i < n; i++) {
        const char *name = ts[i].name;
        if (ts[i].extra)
            continue;
        if (starts(name, "model.diffusion_model."))
            *unet += numel(&ts[i]);
        else if (starts(name, "first_stage_model."))
            *vae += numel(&ts[i]);
        else if (!strstr(name, last) && !strstr(name, "text_projection") &&
                 !strstr(name, "logit_scale"))
            *text += numel(&ts[i]);
    }
    sd_free(ts);
}

static void check_loads(const char *path, const sd_model_random_arch *a, sd_family family,
                        sd_dtype dtype)
{
    sd_model *m = NULL;
    sd_error err = {0};
    sd_status st = sd_model_load(NULL, path, &m, &err);
    CHECK(st == SD_OK, "%s loads: %s", a->name, err.msg);
    if (st != SD_OK)
        return;
    sd_model_info in;
    sd_model_get_info(m, &in);
    int64_t unet, vae, text;
    expected_params(a, &unet, &vae, &text);
    CHECK(in.family == family && in.dtype == dtype && in.unet_in_channels == a->unet_in,
          "%s: family %s, dtype %s, %d input channels", a->name, sd_family_name(in.family),
          sd_dtype_name(in.dtype), in.unet_in_channels);
    CHECK(in.params_unet == unet && in.params_vae == vae && in.params_text == text,
          "%s: parameters %lld %lld %lld, want %lld %lld %lld", a->name,
          (long long)in.params_unet, (long long)in.params_vae, (long long)in.params_text,
          (long long)unet, (long long)vae, (long long)text);
    CHECK(in.prediction == SD_PREDICT_UNKNOWN, "%s: no prediction type stated", a->name);
    const sd_model_hparams *hp = sd_model_get_hparams(m);
    CHECK(hp->text_heads == a->text_width / 64, "%s: text heads %d", a->name, hp->text_heads);
    sd_model_free(m);
}

/* The "alphas_cumprod_f64" array of tiny-sd15/schedulers.json.  The file as a whole is
 * Python's JSON dialect (-Infinity in a scheduler config), which the strict reader rightly
 * refuses, so only the array is cut out and parsed. */
static sd_json *alphas_cumprod_f64(void)
{
    FILE *fp = fopen(t_data("tiny-sd15/schedulers.json"), "rb");
    static char text[1 << 20];
    size_t n = fp ? fread(text, 1, sizeof text - 1, fp) : 0;
    if (fp)
        fclose(fp);
    text[n] = 0;
    char *key = strstr(text, "\"alphas_cumprod_f64\"");
    char *open = key ? strchr(key, '[') : NULL;
    char *close = open ? strchr(open, ']') : NULL;
    sd_json *arr = NULL;
    if (!close || sd_json_parse(open, (size_t)(close + 1 - open), &arr, NULL) != SD_OK)
        return NULL;
    if (arr->type != SD_JSON_ARRAY || arr->n != 1000) {
        sd_json_free(arr);
        return NULL;
    }
    return arr;
}

/* Every value of the small SD1 file as promised. */
static void check_values(const char *path, const sd_model_random_arch *a)
{
    sd_st_file *f = NULL;
    sd_error err = {0};
    if (sd_st_open(path, &f, &err) != SD_OK) {
        CHECK(0, "reopen: %s", err.msg);
        return;
    }
    sd_model_random_tensor *ts = NULL;
    size_t n = 0;
    sd_model_random_layout(a, SD_DTYPE_F16, &ts, &n, &err);
    CHECK(f->n == n, "%zu tensors in the file, %zu in the layout", f->n, n);
    CHECK(sd_st_meta(f, "sd_random_model") && strstr(sd_st_meta(f, "sd_random_model"),
                                                        "not a trained model"),
          "metadata says random");
    size_t out_of_bound = 0, flat = 0, not_const = 0, uniform = 0, consts = 0;
    for (size_t i = 0; i < n; i++) {
        const sd_model_random_tensor *d = &ts[i];
        const sd_tensor *t = sd_st_tensor(f, d->name);
        if (!t) {
            CHECK(0, "missing %s", d->name);
            continue;
        }
        int64_t k = numel(d);
        if (d->init == SD_MODEL_RANDOM_UNIFORM) {
            uniform++;
            /* values are drawn in [-bound, bound), then rounded to half */
            float bound = sd_f16_to_f32(sd_f32_to_f16(d->value));
            double sum_abs = 0;
            for (int64_t e = 0; e < k; e++) {
                float v = t_tensor_value(t, e);
                out_of_bound += !(fabsf(v) <= bound);
                sum_abs += fabsf(v);
            }
            /* E|v| = bound / 2 */
            if (k >= 1000 && fabs(sum_abs / (double)k / d->value - 0.5) > 0.05 && flat++ < 3)
                CHECK(0, "%s: mean |v| / bound = %g", d->name, sum_abs / (double)k / d->value);
        } else if (d->init == SD_MODEL_RANDOM_CONST) {
            consts++;
            for (int64_t e = 0; e < k; e++)
                not_const += t_tensor_value(t, e) != d->value;
        }
    }
    CHECK(out_of_bound == 0 && flat == 0, "%zu uniform tensors: %zu values out of bounds",
          uniform, out_of_bound);
    CHECK(not_const == 0 && consts > 50, "%zu norm tensors: %zu values not 1 / 0", consts,
          not_const);
    const sd_tensor *w = sd_st_tensor(f, "model.diffusion_model.out.0.weight");
    const sd_tensor *bias = sd_st_tensor(f, "model.diffusion_model.out.0.bias");
    CHECK(w && bias && t_tensor_value(w, 0) == 1.0f && t_tensor_value(bias, 3) == 0.0f,
          "GroupNorm weight 1, bias 0");

    /* position ids 0..76 */
    const sd_tensor *ids =
        sd_st_tensor(f, "cond_stage_model.transformer.text_model.embeddings.position_ids");
    bool ok = ids && ids->dtype == SD_DTYPE_I64 && ids->ndim == 2 && ids->shape[1] == 77;
    for (int i = 0; ok && i < 77; i++)
        ok = ((const int64_t *)ids->data)[i] == i;
    CHECK(ok, "position_ids 0..76");

    /* the schedule against diffusers' (float64) alphas_cumprod */
    const sd_tensor *ac = sd_st_tensor(f, "alphas_cumprod");
    const sd_tensor *prev = sd_st_tensor(f, "alphas_cumprod_prev");
    const sd_tensor *betas = sd_st_tensor(f, "betas");
    sd_json *ref = alphas_cumprod_f64();
    if (ac && prev && betas && ac->dtype == SD_DTYPE_F32 && ref) {
        float want[1000];
        for (int i = 0; i < 1000; i++)
            want[i] = (float)sd_json_num(sd_json_at(ref, (size_t)i), NAN);
        t_close("alphas_cumprod vs diffusers", ac->data, want, 1000, 0, 1e-6);
        const float *p = prev->data, *c = ac->data, *b = betas->data;
        bool chain = p[0] == 1.0f;
        for (int i = 1; chain && i < 1000; i++)
            chain = p[i] == c[i - 1];
        CHECK(chain, "alphas_cumprod_prev is alphas_cumprod shifted by one");
        CHECK(fabsf(b[0] - 0.00085f) < 1e-9f && fabsf(b[999] - 0.012f) < 1e-8f &&
                  fabsf((1 - b[500]) * 1 - (c[500] / c[499])) < 1e-6f,
              "betas 0.00085 .. 0.012: %g %g", b[0], b[999]);
    } else {
        CHECK(0, "schedule tensors or schedulers.json's alphas_cumprod_f64");
    }
    sd_json_free(ref);
    sd_free(ts);
    sd_st_close(f);
}

/* The same seed in F32 and F16/BF16: every stored half/bfloat16 is the reference rounding
 * of the F32 value (the generator's own conversion against internal/half.h). */
static void check_conversions(const char *p32, const char *p16, const char *pbf)
{
    sd_st_file *a = NULL, *b = NULL, *c = NULL;
    sd_error err = {0};
    if (sd_st_open(p32, &a, &err) != SD_OK || sd_st_open(p16, &b, &err) != SD_OK ||
        sd_st_open(pbf, &c, &err) != SD_OK) {
        CHECK(0, "open: %s", err.msg);
    } else {
        size_t bad16 = 0, badbf = 0, checked = 0, subnormal = 0;
        for (size_t i = 0; i < a->n; i++) {
            const sd_tensor *x = &a->entries[i].t;
            const sd_tensor *h = sd_st_tensor(b, a->entries[i].name);
            const sd_tensor *g = sd_st_tensor(c, a->entries[i].name);
            if (x->dtype != SD_DTYPE_F32 || !h || !g || h->dtype != SD_DTYPE_F16)
                continue;
            int64_t k = sd_tensor_numel(x);
            for (int64_t e = 0; e < k; e++) {
                float v = ((const float *)x->data)[e];
                uint16_t hv = ((const uint16_t *)h->data)[e];
                bad16 += hv != sd_f32_to_f16(v);
                badbf += ((const uint16_t *)g->data)[e] != sd_f32_to_bf16(v);
                subnormal += (hv & 0x7C00) == 0 && (hv & 0x3FF);
                checked++;
            }
        }
        CHECK(bad16 == 0 && badbf == 0 && checked > 1000000 && subnormal > 100,
              "%zu values (%zu subnormal halves): %zu f16 and %zu bf16 differ from the "
              "reference conversion", checked, subnormal, bad16, badbf);
    }
    sd_st_close(a);
    sd_st_close(b);
    sd_st_close(c);
}

static void test_small_models(void)
{
    sd_error err = {0};
    sd_pool *pool = NULL;
    CHECK(sd_pool_new(3, &pool, &err) == SD_OK, "pool");
    const char *p1 = t_tmp("sd1.safetensors"), *p2 = t_tmp("sd1-inline.safetensors");
    sd_model_random_stats s;
    double t0 = now();
    sd_status st = sd_model_random_write(p1, &small_sd1, SD_DTYPE_F16, 7, pool, &s, &err);
    double dt = now() - t0;
    CHECK(st == SD_OK, "write small SD1: %s", err.msg);
    struct stat sb;
    CHECK(stat(p1, &sb) == 0 && (uint64_t)sb.st_size > s.data_bytes &&
              (uint64_t)sb.st_size < s.data_bytes + 200000,
          "file size %lld, data %llu", (long long)sb.st_size, (unsigned long long)s.data_bytes);
    printf("small SD1: %zu tensors, %lld parameters, %llu data bytes in %.3f s\n",
           s.n_tensors, (long long)s.n_params, (unsigned long long)s.data_bytes, dt);
    CHECK(dt < 10, "a %llu-byte model took %.1f s", (unsigned long long)s.data_bytes, dt);
    check_loads(p1, &small_sd1, SD_FAMILY_SD1, SD_DTYPE_F16);
    check_values(p1, &small_sd1);

    /* the same bytes without a pool; another seed changes the data, not the header */
    CHECK(sd_model_random_write(p2, &small_sd1, SD_DTYPE_F16, 7, NULL, NULL, &err) == SD_OK,
          "inline write: %s", err.msg);
    CHECK(t_same_file(p1, p2), "same bytes for 1 and 3 threads");
    CHECK(sd_model_random_write(p2, &small_sd1, SD_DTYPE_F16, 8, pool, NULL, &err) == SD_OK,
          "seed 8");
    CHECK(!t_same_file(p1, p2), "another seed, other bytes");
    remove(p2);

    /* dtypes */
    const char *p32 = t_tmp("sd1-f32.safetensors"), *pbf = t_tmp("sd1-bf16.safetensors");
    CHECK(sd_model_random_write(p32, &small_sd1, SD_DTYPE_F32, 7, pool, NULL, &err) == SD_OK &&
              sd_model_random_write(pbf, &small_sd1, SD_DTYPE_BF16, 7, pool, NULL, &err) ==
                  SD_OK, "f32 and bf16 writes: %s", err.msg);
    check_loads(p32, &small_sd1, SD_FAMILY_SD1, SD_DTYPE_F32);
    check_loads(pbf, &small_sd1, SD_FAMILY_SD1, SD_DTYPE_BF16);
    check_conversions(p32, p1, pbf);
    remove(p32);
    remove(pbf);
    remove(p1);

    /* inpainting */
    const char *pi = t_tmp("inpaint.safetensors");
    CHECK(sd_model_random_write(pi, &small_inpaint, SD_DTYPE_F16, 1, pool, NULL, &err) == SD_OK,
          "inpaint write: %s", err.msg);
    check_loads(pi, &small_inpaint, SD_FAMILY_SD1_INPAINT, SD_DTYPE_F16);
    remove(pi);

    /* SD2: the family default of 64-wide heads cannot split a 16-wide UNet: a clear error
     * naming the fix; with a sidecar stating the head counts it loads */
    const char *ps = t_tmp("sd2.safetensors"), *pj = t_tmp("sd2.json");
    CHECK(sd_model_random_write(ps, &small_sd2, SD_DTYPE_F16, 1, pool, NULL, &err) == SD_OK,
          "sd2 write: %s", err.msg);
    sd_model *m = NULL;
    CHECK(sd_model_load(NULL, ps, &m, &err) == SD_ERR_FORMAT &&
              strstr(err.msg, "attention_head_dim"), "SD2 defaults: %s", err.msg);
    FILE *fp = fopen(pj, "w");
    if (fp) {
        fputs("{\"unet\": {\"attention_head_dim\": [2, 4, 8, 8]}}\n", fp);
        fclose(fp);
    }
    check_loads(ps, &small_sd2, SD_FAMILY_SD2, SD_DTYPE_F16);
    remove(pj);
    remove(ps);

    /* errors */
    CHECK(sd_model_random_write(t_tmp("no/dir/x.safetensors"), &small_sd1, SD_DTYPE_F16, 1,
                                pool, NULL, &err) == SD_ERR_IO, "unwritable: %s", err.msg);
    size_t live = sd_alloc_live_bytes();
    int nomem = 0;
    for (long k = 1;; k++) {
        sd_alloc_fail_after(k, false);
        st = sd_model_random_write(p1, &small_sd1, SD_DTYPE_F16, 1, NULL, NULL, NULL);
        sd_alloc_fail_after(0, false);
        if (st == SD_OK)
            break;
        nomem++;
        CHECK(st == SD_ERR_NOMEM && access(p1, F_OK) != 0, "allocation %ld: %d", k, st);
    }
    CHECK(nomem >= 5, "allocation failure points: %d", nomem);
    CHECK(sd_alloc_live_bytes() == live, "no leaks under allocation failure");
    remove(p1);
    sd_pool_free(pool);
}

int main(void)
{
    t_tmp_fresh("t_random_model");
    test_full_size_layouts();
    test_small_models();
    return t_summary("t_random_model");
}
