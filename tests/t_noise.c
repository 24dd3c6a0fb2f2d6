/* tests/t_noise.c - the noise estimator of the denoise filter: it must recover the sigma
 * of synthetic Gaussian noise (5, 10, 25 on the 0..255 scale) added to a smooth gradient,
 * a piecewise-constant shapes picture, a sinusoid texture and a dense grid of hard-edged
 * discs within +-15 % (and without bias on average), report about 0 on clean smooth
 * pictures, skip transparent pixels; and the sigma -> strength map must be monotone,
 * clamped and overridable. */
#include "imgutil.h"
#include "internal/imgproc.h"

static const double SIGMAS[] = {5.0, 10.0, 25.0};
static const double REL_TOL = 0.15;      /* the acceptance bound of the issue */
static const double MEAN_REL_TOL = 0.03;  /* averaged over all cases: catches a biased scale */

static void check_recovery(void)
{
    printf("%-10s %8s %8s %8s %8s %7s\n", "picture", "sigma", "est", "est(grey)", "est(rgba)",
           "rel");
    double rel_sum = 0;
    int n_rel = 0;
    for (int pic = 0; pic < T_NPICS; pic++)
        for (size_t s = 0; s < SD_ARRAY_LEN(SIGMAS); s++) {
            uint64_t seed = 1000 + 10 * (uint64_t)pic + s;
            sd_img im = t_pic(pic, 256, 256, 3), grey = t_pic(pic, 256, 256, 1);
            sd_img rgba = t_pic(pic, 192, 160, 4);
            t_add_noise(&im, SIGMAS[s], seed);
            t_add_noise(&grey, SIGMAS[s], seed + 7);
            t_add_noise(&rgba, SIGMAS[s], seed + 13);
            sd_noise_estimate e, eg, ea;
            sd_error err = {0};
            CHECK(sd_noise_estimate_img(&im, &e, &err) == SD_OK, "%s", err.msg);
            CHECK(sd_noise_estimate_img(&grey, &eg, &err) == SD_OK, "%s", err.msg);
            CHECK(sd_noise_estimate_img(&rgba, &ea, &err) == SD_OK, "%s", err.msg);
            double rel = (e.sigma - SIGMAS[s]) / SIGMAS[s];
            rel_sum += rel + (eg.sigma - SIGMAS[s]) / SIGMAS[s];
            rel_sum += (ea.sigma - SIGMAS[s]) / SIGMAS[s];
            n_rel += 3;
            printf("%-10s %8.1f %8.3f %8.3f %8.3f %+6.1f%%   (seed %llu)\n", t_pic_name[pic],
                   SIGMAS[s], e.sigma, eg.sigma, ea.sigma, 100.0 * rel,
                   (unsigned long long)seed);
            CHECK(fabs(rel) <= REL_TOL, "%s sigma %.0f: estimated %.3f", t_pic_name[pic],
                  SIGMAS[s], e.sigma);
            CHECK(fabs(eg.sigma - SIGMAS[s]) <= REL_TOL * SIGMAS[s],
                  "%s grey sigma %.0f: estimated %.3f", t_pic_name[pic], SIGMAS[s], eg.sigma);
            CHECK(fabs(ea.sigma - SIGMAS[s]) <= REL_TOL * SIGMAS[s],
                  "%s rgba sigma %.0f: estimated %.3f", t_pic_name[pic], SIGMAS[s], ea.sigma);
            CHECK(e.n_ch == 3 && eg.n_ch == 1 && ea.n_ch == 3, "channels %d %d %d", e.n_ch,
                  eg.n_ch, ea.n_ch);
            for (int k = 0; k < 3; k++)
                CHECK(fabs(e.sigma_ch[k] - SIGMAS[s]) <= REL_TOL * SIGMAS[s],
                      "%s sigma %.0f channel %d: %.3f", t_pic_name[pic], SIGMAS[s], k,
                      e.sigma_ch[k]);
            sd_img_free(&im);
            sd_img_free(&grey);
            sd_img_free(&rgba);
        }
    printf("mean relative error over %d estimates: %+.2f%%\n", n_rel, 100.0 * rel_sum / n_rel);
    CHECK(fabs(rel_sum / n_rel) < MEAN_REL_TOL, "biased: mean relative error %+.3f",
          rel_sum / n_rel);
}

static void check_clean(void)
{
    double est[T_NPICS];
    for (int pic = 0; pic < T_NPICS; pic++) {
        sd_img im = t_pic(pic, 256, 256, 3);
        sd_noise_estimate e;
        CHECK(sd_noise_estimate_img(&im, &e, NULL) == SD_OK, "clean %s", t_pic_name[pic]);
        est[pic] = e.sigma;
        printf("clean %-10s est %.3f\n", t_pic_name[pic], e.sigma);
        sd_img_free(&im);
    }
    CHECK(est[T_GRADIENT] < 0.05, "clean gradient: %.3f", est[T_GRADIENT]);
    CHECK(est[T_SHAPES] < 0.05, "clean shapes: %.3f", est[T_SHAPES]);
    CHECK(est[T_TEXTURE] < 2.0, "clean texture: %.3f", est[T_TEXTURE]);
    CHECK(est[T_DOTS] < 0.05, "clean dots: %.3f", est[T_DOTS]);

    /* a sharp-edged picture made only of axis-aligned stripes is invisible to the operator */
    sd_img st;
    sd_img_new(64, 64, 1, &st, NULL);
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++)
            *sd_img_px(&st, x, y) = (x / 3) % 2 ? 0.9f : 0.1f;
    sd_noise_estimate e;
    CHECK(sd_noise_estimate_img(&st, &e, NULL) == SD_OK && e.sigma < 0.05, "stripes: %.3f",
          e.sigma);
    sd_img_free(&st);
}

static void check_alpha_and_errors(void)
{
    /* noise only where alpha >= 0.5: the transparent half is flat and must not pull the
     * estimate down */
    sd_img im = t_pic(T_GRADIENT, 128, 128, 4);
    t_add_noise(&im, 10.0, 77);
    for (int y = 0; y < 128; y++)
        for (int x = 64; x < 128; x++) {
            float *p = sd_img_px(&im, x, y);
            p[0] = p[1] = p[2] = 0.5f, p[3] = 0.0f;
        }
    sd_noise_estimate e;
    CHECK(sd_noise_estimate_img(&im, &e, NULL) == SD_OK && fabs(e.sigma - 10.0) < 1.5,
          "half transparent: %.3f", e.sigma);
    CHECK(e.n_used < 64 * 126, "transparent pixels skipped: %zu used", e.n_used);
    for (int y = 0; y < 128; y++)
        for (int x = 0; x < 64; x++)
            sd_img_px(&im, x, y)[3] = 0.2f;
    sd_error err = {0};
    CHECK(sd_noise_estimate_img(&im, &e, &err) == SD_ERR_INVALID_ARG && e.sigma == 0.0f,
          "all transparent: %s", err.msg);
    sd_img_free(&im);

    float tiny[2 * 2 * 3] = {0};
    sd_img t = sd_img_view(tiny, 2, 2, 3, 6);
    CHECK(sd_noise_estimate_img(&t, &e, &err) == SD_ERR_INVALID_ARG, "2x2 accepted");
    t = sd_img_view(tiny, 2, 2, 2, 4);
    CHECK(sd_noise_estimate_img(&t, &e, &err) == SD_ERR_INVALID_ARG, "2 channels accepted");

    /* an image viewed with a padded stride gives the same estimate */
    sd_img big = t_pic(T_SHAPES, 100, 90, 3);
    t_add_noise(&big, 25.0, 5);
    sd_img view = sd_img_sub(&big, sd_rect_make(10, 10, 80, 70));
    sd_img packed;
    sd_img_clone(&view, &packed, NULL);
    sd_noise_estimate e1, e2;
    sd_noise_estimate_img(&view, &e1, NULL);
    sd_noise_estimate_img(&packed, &e2, NULL);
    CHECK(e1.sigma == e2.sigma && e1.n_used == e2.n_used, "stride: %g vs %g", e1.sigma,
          e2.sigma);
    sd_img_free(&packed);

    /* allocation failures */
    size_t live = sd_alloc_live_bytes();
    sd_alloc_fail_after(1, false);
    sd_status s = sd_noise_estimate_img(&big, &e, NULL);
    sd_alloc_fail_after(0, false);
    CHECK(s == SD_ERR_NOMEM && e.sigma == 0.0f, "allocation failure: %d", s);
    CHECK(sd_alloc_live_bytes() == live, "no leaks");
    sd_img_free(&big);
}

static void check_strength_map(void)
{
    sd_denoise_map m = sd_denoise_map_default();
    CHECK(m.sigma_lo == 5.0f && m.strength_lo == 0.15f && m.sigma_hi == 50.0f &&
              m.strength_hi == 0.5f,
          "defaults");
    CHECK(fabs(sd_denoise_strength(5.0f, NULL) - 0.15) < 1e-6, "at 5");
    CHECK(fabs(sd_denoise_strength(50.0f, NULL) - 0.5) < 1e-6, "at 50");
    CHECK(fabs(sd_denoise_strength(10.0f, NULL) - 0.2554) < 1e-3, "at 10: %g",
          sd_denoise_strength(10.0f, NULL));
    CHECK(fabs(sd_denoise_strength(25.0f, NULL) - 0.3946) < 1e-3, "at 25: %g",
          sd_denoise_strength(25.0f, NULL));
    CHECK(sd_denoise_strength(0.0f, NULL) == 0.15f && sd_denoise_strength(1e6f, NULL) == 0.5f,
          "clamped");
    CHECK(sd_denoise_strength(NAN, NULL) == 0.15f, "NaN");
    float prev = -1.0f;
    int mono = 1;
    for (float s = 0.0f; s <= 80.0f; s += 0.25f) {
        float v = sd_denoise_strength(s, NULL);
        mono &= v >= prev;
        prev = v;
    }
    CHECK(mono, "monotone");
    sd_denoise_map custom = {.sigma_lo = 2, .strength_lo = 0.1f, .sigma_hi = 8,
                             .strength_hi = 0.3f};
    CHECK(fabs(sd_denoise_strength(4.0f, &custom) - 0.2) < 1e-6, "custom midpoint: %g",
          sd_denoise_strength(4.0f, &custom));
    sd_denoise_map bad = {.sigma_lo = 10, .strength_lo = 0.1f, .sigma_hi = 10,
                          .strength_hi = 0.3f};
    CHECK(sd_denoise_strength(9.0f, &bad) == 0.1f && sd_denoise_strength(10.0f, &bad) == 0.3f,
          "degenerate map is a step");
}

int main(void)
{
    check_recovery();
    check_clean();
    check_alpha_and_errors();
    check_strength_map();
    return t_summary("t_noise");
}
