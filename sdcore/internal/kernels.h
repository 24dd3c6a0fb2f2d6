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

typedef enum sd_isa { SD_ISA_SCALAR, SD_ISA_AVX2, SD_ISA_AVX512, SD_ISA_COUNT } sd_isa;

typedef struct sd_kernels {
    sd_isa isa;
    /* storage conversions: dst[i] = (float)src[i] */
    void (*cvt_f16_f32)(const uint16_t *src, float *dst, size_t n);
    void (*cvt_bf16_f32)(const uint16_t *src, float *dst, size_t n);
} sd_kernels;

/* The process-wide table (best variant allowed by CPU, OS and SD_SIMD). Thread-safe. */
const sd_kernels *sd_kernels_get(void);
/* The scalar reference table. */
const sd_kernels *sd_kernels_ref(void);
/* The table for one ISA if this CPU/OS can run it, else NULL (tests compare each). */
const sd_kernels *sd_kernels_for(sd_isa isa);
/* "scalar", "avx2", "avx512". */
const char *sd_isa_name(sd_isa isa);

/* Per-ISA fillers, each defined in its own file compiled with that ISA's flags.  They
 * override the slots they implement and leave the others as they found them. */
void sd_kernels_fill_ref(sd_kernels *k);
void sd_kernels_fill_avx2(sd_kernels *k);
void sd_kernels_fill_avx512(sd_kernels *k);

#endif
