/* kernels/dispatch.c - choosing the kernel table once per process: CPUID says what the CPU
 * has, XGETBV says whether the OS saves the wide registers (a CPU flag alone is not enough),
 * and SD_SIMD=scalar|avx2|avx512|avx512bf16 may force a lower variant.  Also
 * sd_system_info(). */
#include "internal/common.h"
#include "internal/kernels.h"

#include <cpuid.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cpu_features {
    bool avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512dq, avx512_bf16, amx_bf16;
    bool os_avx, os_avx512, os_amx;
} cpu_features;

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static cpu_features detect(void)
{
    cpu_features f = {0};
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return f;
    bool osxsave = c & (1u << 27);
    f.fma = c & (1u << 12);
    f.f16c = c & (1u << 29);
    bool avx = c & (1u << 28);
    if (osxsave && avx) {
        uint64_t xcr0 = xgetbv0();
        f.os_avx = (xcr0 & 0x6) == 0x6;                 /* XMM + YMM state */
        f.os_avx512 = f.os_avx && (xcr0 & 0xE0) == 0xE0; /* opmask + ZMM state */
        f.os_amx = (xcr0 & 0x60000) == 0x60000;         /* XTILECFG + XTILEDATA */
    }
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        f.avx2 = b & (1u << 5);
        f.avx512f = b & (1u << 16);
        f.avx512dq = b & (1u << 17);
        f.avx512bw = b & (1u << 30);
        f.avx512vl = b & (1u << 31);
        f.amx_bf16 = d & (1u << 22);
        __cpuid_count(7, 1, a, b, c, d);
        f.avx512_bf16 = a & (1u << 5);
    }
    return f;
}

static bool can_run(const cpu_features *f, sd_isa isa)
{
    switch (isa) {
    case SD_ISA_SCALAR:
        return true;
    case SD_ISA_AVX2:
        return f->os_avx && f->avx2 && f->fma && f->f16c;
    case SD_ISA_AVX512:
        return f->os_avx512 && f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq &&
               f->fma && f->f16c;
    case SD_ISA_AVX512BF16:
        return can_run(f, SD_ISA_AVX512) && f->avx512_bf16;
    case SD_ISA_COUNT:
        break;
    }
    return false;
}

static cpu_features features;
static sd_kernels tables[SD_ISA_COUNT];
static bool available[SD_ISA_COUNT];
static sd_isa chosen;
static char info[1024];

const char *sd_isa_name(sd_isa isa)
{
    static const char *const names[SD_ISA_COUNT] = {"scalar", "avx2", "avx512", "avx512bf16"};
    return (unsigned)isa < SD_ISA_COUNT ? names[isa] : "?";
}

static void init_tables(void)
{
    features = detect();
    for (int i = 0; i < SD_ISA_COUNT; i++) {
        available[i] = can_run(&features, (sd_isa)i);
        sd_kernels *k = &tables[i];
        sd_kernels_fill_ref(k);
        if (i >= SD_ISA_AVX2 && available[i])
            sd_kernels_fill_avx2(k);
        if (i >= SD_ISA_AVX512 && available[i])
            sd_kernels_fill_avx512(k);
        if (i >= SD_ISA_AVX512BF16 && available[i])
            sd_kernels_fill_avx512bf16(k);
        k->isa = (sd_isa)i;
    }
    chosen = SD_ISA_SCALAR;
    for (int i = SD_ISA_COUNT - 1; i >= 0; i--)
        if (available[i]) {
            chosen = (sd_isa)i;
            break;
        }
    const char *force = getenv("SD_SIMD");
    const char *note = "";
    if (force && *force) {
        int want = -1;
        for (int i = 0; i < SD_ISA_COUNT; i++)
            if (strcmp(force, sd_isa_name((sd_isa)i)) == 0)
                want = i;
        if (strcmp(force, "none") == 0 || strcmp(force, "ref") == 0)
            want = SD_ISA_SCALAR;
        if (want < 0)
            note = " (SD_SIMD value not recognised; ignored)";
        else if (!available[want])
            note = " (SD_SIMD asks for a variant this CPU/OS cannot run; ignored)";
        else {
            chosen = (sd_isa)want;
            note = " (forced by SD_SIMD)";
        }
    }
    snprintf(info, sizeof info,
             "cpu: avx2=%d fma=%d f16c=%d avx512f=%d avx512bw=%d avx512vl=%d avx512dq=%d "
             "avx512_bf16=%d amx_bf16=%d\n"
             "os:  avx=%d avx512=%d amx=%d\n"
             "kernels: %s%s (available:%s%s%s%s)\n",
             features.avx2, features.fma, features.f16c, features.avx512f, features.avx512bw,
             features.avx512vl, features.avx512dq, features.avx512_bf16, features.amx_bf16,
             features.os_avx, features.os_avx512, features.os_amx, sd_isa_name(chosen), note,
             " scalar", available[SD_ISA_AVX2] ? " avx2" : "",
             available[SD_ISA_AVX512] ? " avx512" : "",
             available[SD_ISA_AVX512BF16] ? " avx512bf16" : "");
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

const sd_kernels *sd_kernels_get(void)
{
    pthread_once(&once, init_tables);
    return &tables[chosen];
}

const sd_kernels *sd_kernels_ref(void)
{
    pthread_once(&once, init_tables);
    return &tables[SD_ISA_SCALAR];
}

const sd_kernels *sd_kernels_for(sd_isa isa)
{
    pthread_once(&once, init_tables);
    return (unsigned)isa < SD_ISA_COUNT && available[isa] ? &tables[isa] : NULL;
}

const char *sd_system_info(void)
{
    pthread_once(&once, init_tables);
    return info;
}

const char *sd_kernel_variant(void)
{
    return sd_isa_name(sd_kernels_get()->isa);
}
