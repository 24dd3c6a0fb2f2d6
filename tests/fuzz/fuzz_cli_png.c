/* tests/fuzz/fuzz_cli_png.c - libFuzzer target: arbitrary bytes as the PNG file the `sd`
 * tool reads (sdcore/cli/image_png.c: sd_cli_png_read through libpng, errors by longjmp).
 * The bytes go into a memfd opened by its /proc path.  libpng refuses a chunk whose CRC is
 * wrong before looking at it, so a mutated file would almost never get past IHDR: when the
 * input starts with the PNG signature, the CRC of every complete chunk is recomputed first
 * (only the CRCs; lengths, types and data stay as the fuzzer made them).  A refused file
 * must give -1, a message naming the file and no pixels; an accepted one a size within the
 * documented limits and every sample in [0, 1]; nothing leaks (LeakSanitizer). */
#include "cli/image_png.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#define REQUIRE(c) ((c) ? (void)0 : __builtin_trap())

static int fd = -1;
static char path[64];
static uint8_t *buf;
static size_t cap;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Recompute the CRC of every chunk that fits in the data, in place. */
static void fix_crcs(uint8_t *d, size_t n)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (n < 8 || memcmp(d, sig, 8))
        return;
    for (size_t i = 8; n - i >= 12;) {
        uint32_t len = be32(d + i);
        if (len > n - i - 12)
            break;
        uint32_t crc = (uint32_t)crc32(0L, d + i + 4, len + 4);
        uint8_t *c = d + i + 8 + len;
        c[0] = (uint8_t)(crc >> 24), c[1] = (uint8_t)(crc >> 16);
        c[2] = (uint8_t)(crc >> 8), c[3] = (uint8_t)crc;
        i += 12 + (size_t)len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0) {
        fd = memfd_create("fuzz_png", MFD_CLOEXEC);
        REQUIRE(fd >= 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (size > cap) {
        free(buf);
        buf = malloc(size);
        REQUIRE(buf);
        cap = size;
    }
    if (size)
        memcpy(buf, data, size);
    fix_crcs(buf, size);
    REQUIRE(ftruncate(fd, 0) == 0);
    REQUIRE(pwrite(fd, buf, size, 0) == (ssize_t)size);

    float *px = (float *)buf;
    int w = -1, h = -1;
    char msg[256] = "";
    int rc = sd_cli_png_read(path, &px, &w, &h, msg, sizeof msg);
    if (rc != 0) {
        REQUIRE(rc == -1 && px == NULL && !strncmp(msg, path, strlen(path)) &&
                strlen(msg) > strlen(path) + 2);
        return 0;
    }
    REQUIRE(px && w >= 1 && h >= 1 && w <= 65535 && h <= 65535 && msg[0] == 0);
    REQUIRE((size_t)w * (size_t)h <= SD_CLI_PNG_MAX_PIXELS);
    const size_t n = (size_t)w * (size_t)h * 4;
    for (size_t i = 0; i < n; i++)
        REQUIRE(px[i] >= 0.0f && px[i] <= 1.0f);
    free(px);
    return 0;
}
