/* memory_guard.c - refusing a request that would not fit in memory before any work is done:
 * an estimate of the run's peak (UNet activations at the processing size, the VAE's working
 * set for its tile, the full-size image buffers the filter keeps) against a limit taken from
 * the memory the system has available (MemAvailable), or from the caller.  The weights are
 * not counted: they are mapped from the model file and the kernel can page them out. */
#include "internal/imgproc.h"
#include "internal/pipeline.h"
#include "internal/text_encoder.h"
#include "internal/vae.h"

#include <stdio.h>
#include <string.h>

enum {
    IMAGE_COPIES = 5,           /* full-size float RGBA buffers a filter holds at once */
    VAE_BUFFERS = 6,            /* activation buffers of the decoder at its widest stage */
    VAE_WIDEST = 128,           /* channels of the SD VAE at full image resolution */
    OPS_SCRATCH_MB = 64,        /* the ops' own bounded scratch (im2col tiles, conversions) */
};

/* Bytes the system can still give us, from /proc/meminfo; 0 when unknown. */
static uint64_t available_bytes(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            break;
    fclose(f);
    return (uint64_t)kb * 1024;
}

/* The latent size (h, w) the sampler runs at and the output image size of the request. */
static void request_sizes(const sd_run *r, int *lh, int *lw, int *ow, int *oh)
{
    const sd_gen_params *p = &r->p;
    int pw, ph, iw = p->init ? p->init->width : 0, ih = p->init ? p->init->height : 0;
    switch (p->task) {
    case SD_TASK_TXT2IMG:
        *ow = p->width ? p->width : p->resolution;
        *oh = p->height ? p->height : p->resolution;
        pw = *ow, ph = *oh;
        if (!p->reference)
            sd_fit_size(*ow, *oh, p->resolution, &pw, &ph);
        break;
    case SD_TASK_OUTPAINT:
        *ow = iw + p->extend_left + p->extend_right;
        *oh = ih + p->extend_top + p->extend_bottom;
        pw = ph = p->resolution;
        break;
    case SD_TASK_DENOISE: {
        int t = p->tile > 0 ? p->tile : p->resolution;
        *ow = iw, *oh = ih;
        pw = t < iw ? t : iw, ph = t < ih ? t : ih;
        break;
    }
    default:
        *ow = iw, *oh = ih;
        pw = iw, ph = ih;
        if (!p->reference)
            sd_fit_size(iw, ih, p->resolution, &pw, &ph);
        break;
    }
    *lh = ph / 8 > 0 ? ph / 8 : 1;
    *lw = pw / 8 > 0 ? pw / 8 : 1;
}

sd_status sd_run_check_memory(const sd_run *r, sd_error *err)
{
    int lh, lw, ow, oh;
    request_sizes(r, &lh, &lw, &ow, &oh);
    const int batch = r->p.cfg > 1.0f ? 2 : 1;
    size_t unet = 0;
    sd_status st = sd_unet_memory(r->unet, batch, lh, lw, SD_TEXT_WINDOW, &unet, err);
    if (st == SD_ERR_TOO_LARGE)
        return sd_fail(err, SD_ERR_TOO_LARGE,
                       "not enough memory: a %dx%d processing size is far too large", lw * 8,
                       lh * 8);
    if (st)
        return st;
    /* the decoder works on tiles of at most SD_VAE_TILE_DEFAULT latent pixels a side
     * beyond SD_VAE_AUTO_TILE_ABOVE */
    int th = lh > SD_VAE_AUTO_TILE_ABOVE ? SD_VAE_TILE_DEFAULT : lh;
    int tw = lw > SD_VAE_AUTO_TILE_ABOVE ? SD_VAE_TILE_DEFAULT : lw;
    double need = (double)unet + (double)OPS_SCRATCH_MB * (1 << 20) +
                  (double)VAE_BUFFERS * VAE_WIDEST * 64.0 * th * tw * sizeof(float) +
                  (double)IMAGE_COPIES * ow * oh * 4 * sizeof(float);
    double limit = r->p.memory_limit_mb > 0 ? (double)r->p.memory_limit_mb * (1 << 20)
                                            : 0.9 * (double)available_bytes();
    if (limit > 0 && need > limit)
        return sd_fail(err, SD_ERR_TOO_LARGE,
                       "not enough memory: this %s needs about %.0f MB, the limit is %.0f MB%s; "
                       "choose a smaller size",
                       sd_task_name(r->p.task), need / (1 << 20), limit / (1 << 20),
                       r->p.memory_limit_mb > 0 ? "" : " (90 % of the memory available)");
    return SD_OK;
}
