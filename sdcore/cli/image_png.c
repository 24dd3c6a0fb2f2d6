/* cli/image_png.c - PNG reading and writing for the `sd` tool with libpng's classic API
 * (the simplified png_image API would linearise 16-bit data, which the models must not see).
 * libpng reports errors by longjmp; everything that must be released afterwards lives in a
 * struct outside the setjmp frame, so the recovery path can free it. */
#include "cli/image_png.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* State shared with libpng's error callback and the recovery path. */
typedef struct png_job {
    const char *path;
    char *errbuf;
    size_t errlen;
    FILE *f;
    png_structp png;
    png_infop info;
    unsigned char *rows;     /* read: the whole decoded image; write: one row */
    png_bytep *row_ptrs;
    float *pix;
} png_job;

static void on_error(png_structp png, png_const_charp msg)
{
    png_job *j = png_get_error_ptr(png);
    if (j->f && feof(j->f)) /* libpng's "Read Error" and the like: it read past the end */
        snprintf(j->errbuf, j->errlen, "%s: the file ends too early (truncated?): %s", j->path,
                 msg);
    else
        snprintf(j->errbuf, j->errlen, "%s: %s", j->path, msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png, (void)msg; /* warnings (e.g. unknown chunks) do not concern the pixels */
}

static int fail(png_job *j, const char *what)
{
    snprintf(j->errbuf, j->errlen, "%s: %s", j->path, what);
    return -1;
}

/* ---- reading ----------------------------------------------------------------------------- */

/* The part of reading that libpng may longjmp out of; 0 or -1. */
static int read_body(png_job *j, int *w_out, int *h_out)
{
    if (setjmp(png_jmpbuf(j->png)))
        return -1;
    png_init_io(j->png, j->f);
    png_set_sig_bytes(j->png, 8);
    png_set_user_limits(j->png, 65535, 65535);
    /* Only IHDR, PLTE, tRNS, IDAT and IEND matter to the pixels.  Every other chunk is
     * skipped unread: libpng would otherwise allocate (and clear) a text or profile chunk's
     * declared length, up to 2 GB, before finding that a 50-byte file ends there. */
    png_set_keep_unknown_chunks(j->png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_read_info(j->png, j->info);
    png_uint_32 w = png_get_image_width(j->png, j->info);
    png_uint_32 h = png_get_image_height(j->png, j->info);
    int depth = png_get_bit_depth(j->png, j->info);
    int type = png_get_color_type(j->png, j->info);
    if ((size_t)w * h > SD_CLI_PNG_MAX_PIXELS)
        return fail(j, "image too large");
    /* everything becomes RGBA at 8 or 16 bits */
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(j->png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(j->png);
    if (png_get_valid(j->png, j->info, PNG_INFO_tRNS))
        png_set_tRNS_to_alpha(j->png);
    if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(j->png);
    if (!(type & PNG_COLOR_MASK_ALPHA) && !png_get_valid(j->png, j->info, PNG_INFO_tRNS))
        png_set_filler(j->png, 0xffff, PNG_FILLER_AFTER);
    png_set_interlace_handling(j->png);
    png_read_update_info(j->png, j->info);
    int out_depth = png_get_bit_depth(j->png, j->info);
    size_t rowbytes = png_get_rowbytes(j->png, j->info);
    if (png_get_channels(j->png, j->info) != 4 || rowbytes != (size_t)w * 4 * (out_depth / 8))
        return fail(j, "unexpected pixel layout after conversion");
    j->rows = malloc(rowbytes * h);
    j->row_ptrs = malloc(sizeof *j->row_ptrs * h);
    if (!j->rows || !j->row_ptrs)
        return fail(j, "out of memory");
    for (png_uint_32 y = 0; y < h; y++)
        j->row_ptrs[y] = j->rows + rowbytes * y;
    png_read_image(j->png, j->row_ptrs);
    png_read_end(j->png, NULL);
    /* the float copy (4 times the 8-bit rows) only once the file has proven to hold them:
     * a corrupt header declaring 16384 x 16384 fails above without asking for 4 GB */
    j->pix = malloc(sizeof *j->pix * 4 * (size_t)w * h);
    if (!j->pix)
        return fail(j, "out of memory");
    size_t n = (size_t)w * h * 4;
    if (out_depth == 16) {
        for (size_t i = 0; i < n; i++)
            j->pix[i] = (float)((j->rows[2 * i] << 8) | j->rows[2 * i + 1]) / 65535.0f;
    } else {
        for (size_t i = 0; i < n; i++)
            j->pix[i] = (float)j->rows[i] / 255.0f;
    }
    *w_out = (int)w, *h_out = (int)h;
    return 0;
}

int sd_cli_png_read(const char *path, float **rgba, int *w, int *h, char *errbuf, size_t errlen)
{
    png_job j = {.path = path, .errbuf = errbuf, .errlen = errlen};
    *rgba = NULL;
    int rc = -1;
    unsigned char sig[8];
    j.f = fopen(path, "rb");
    if (!j.f) {
        snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fread(sig, 1, 8, j.f) != 8 || png_sig_cmp(sig, 0, 8)) {
        fail(&j, "not a PNG file");
        goto out;
    }
    j.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &j, on_error, on_warning);
    j.info = j.png ? png_create_info_struct(j.png) : NULL;
    if (!j.info) {
        fail(&j, "out of memory");
        goto out;
    }
    rc = read_body(&j, w, h);
    if (rc == 0) {
        *rgba = j.pix;
        j.pix = NULL;
    }
out:
    if (j.png)
        png_destroy_read_struct(&j.png, j.info ? &j.info : NULL, NULL);
    free(j.rows), free(j.row_ptrs), free(j.pix);
    fclose(j.f);
    return rc;
}

/* ---- writing ----------------------------------------------------------------------------- */

static int write_body(png_job *j, const float *pix, int w, int h, int channels, int bits)
{
    if (setjmp(png_jmpbuf(j->png)))
        return -1;
    png_init_io(j->png, j->f);
    png_set_IHDR(j->png, j->info, (png_uint_32)w, (png_uint_32)h, bits,
                 channels == 4 ? PNG_COLOR_TYPE_RGBA : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(j->png, j->info);
    size_t n = (size_t)w * channels;
    j->rows = malloc(n * (size_t)(bits / 8));
    if (!j->rows)
        return fail(j, "out of memory");
    float maxv = bits == 16 ? 65535.0f : 255.0f;
    for (int y = 0; y < h; y++) {
        const float *src = pix + (size_t)y * n;
        for (size_t i = 0; i < n; i++) {
            float v = src[i];
            v = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f;   /* NaN becomes 0 */
            unsigned q = (unsigned)lrintf(v * maxv);
            if (bits == 16) {
                j->rows[2 * i] = (unsigned char)(q >> 8);
                j->rows[2 * i + 1] = (unsigned char)(q & 0xff);
            } else {
                j->rows[i] = (unsigned char)q;
            }
        }
        png_write_row(j->png, j->rows);
    }
    png_write_end(j->png, NULL);
    return 0;
}

int sd_cli_png_write(const char *path, const float *pix, int w, int h, int channels, int bits,
                     char *errbuf, size_t errlen)
{
    png_job j = {.path = path, .errbuf = errbuf, .errlen = errlen};
    if (w < 1 || h < 1 || w > 65535 || h > 65535 || (channels != 3 && channels != 4) ||
        (bits != 8 && bits != 16))
        return fail(&j, "cannot write: need 1..65535 pixels a side, 3 or 4 channels, 8 or 16 "
                        "bits");
    j.f = fopen(path, "wb");
    if (!j.f) {
        snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    j.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &j, on_error, on_warning);
    j.info = j.png ? png_create_info_struct(j.png) : NULL;
    if (!j.info)
        fail(&j, "out of memory");
    else
        rc = write_body(&j, pix, w, h, channels, bits);
    if (j.png)
        png_destroy_write_struct(&j.png, j.info ? &j.info : NULL);
    free(j.rows);
    if (fclose(j.f) != 0 && rc == 0) {
        snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        rc = -1;
    }
    return rc;
}
