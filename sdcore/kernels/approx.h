/* kernels/approx.h - the constants of the float32 exp and erfc approximations shared by the
 * SIMD kernel files, so every ISA evaluates the same formulas.  The polynomials were fitted
 * for this project (Chebyshev fits with mpmath at 40 digits); the scalar reference in ref.c
 * uses libm in double instead and is what they are tested against.
 *
 * exp(x): n = round(x / ln 2), r = x - n ln 2 (two-part ln 2, fused multiply-adds),
 *   exp(r) ~ P(r) of degree 6 on [-ln2/2, ln2/2] (fit error 2e-9), result P(r) * 2^n.
 *   Measured: 1.5 ulp over the normal range.
 * erfc(z), z >= 0: t = 2 / (2 + z), erfc(z) = t * exp(Q(u) - z^2) with u = 2.4 t - 1.4
 *   mapping z in [0, 10] onto u in [-1, 1]; Q of degree 10 fits log(erfc(z) / t) + z^2 to
 *   1e-8 absolute.  z^2 and Q - z^2 are carried as double-float pairs so the exp argument
 *   loses nothing; GELU = x * Phi(x) built on it is within 4e-7 relative for |x| <= 14. */
#ifndef SD_KERNELS_APPROX_H
#define SD_KERNELS_APPROX_H

#define SD_LOG2E 1.44269504088896341f
#define SD_LN2_HI 0.693147182464599609f      /* float(ln 2) */
#define SD_LN2_LO -1.90465421e-9f             /* ln 2 - SD_LN2_HI */
/* exp clamps its argument here: below, the result is 0 even as a subnormal; above, inf */
#define SD_EXP_ARG_MIN -104.0f
#define SD_EXP_ARG_MAX 89.0f

#define SD_EXP_P0 1.0f
#define SD_EXP_P1 1.000000038f
#define SD_EXP_P2 0.5000000047f
#define SD_EXP_P3 0.1666641551f
#define SD_EXP_P4 0.0416663529f
#define SD_EXP_P5 0.008375126398f
#define SD_EXP_P6 0.001394110843f

#define SD_ERFC_Z_MAX 10.0f
#define SD_ERFC_U_SCALE 2.4f
#define SD_ERFC_U_SHIFT -1.4f
#define SD_ERFC_Q0 -0.5585953511f
#define SD_ERFC_Q1 0.570307104f
#define SD_ERFC_Q2 0.01574494621f
#define SD_ERFC_Q3 -0.02947034941f
#define SD_ERFC_Q4 -0.001044538672f
#define SD_ERFC_Q5 0.003707520304f
#define SD_ERFC_Q6 -0.000278778761f
#define SD_ERFC_Q7 -0.0005343771748f
#define SD_ERFC_Q8 0.0001330719282f
#define SD_ERFC_Q9 0.00005488488717f
#define SD_ERFC_Q10 -0.00002413217427f

/* GELU evaluates Phi on x clamped here (Phi is 0 or 1 to float precision beyond) */
#define SD_GELU_X_CLAMP 20.0f
#define SD_QUICK_GELU_K 1.702f

#endif
