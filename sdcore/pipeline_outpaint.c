/* pipeline_outpaint.c - grow the canvas and fill the new border: the new area is pre-filled
 * from the border (edge extension, blur, noise matched to the image's detail), masked
 * together with an overlap band reaching into the old image, and inpainted in
 * model-resolution windows placed along the border, each seeing the content filled before
 * it, so large extensions and large images work and no seam shows.  The original pixels
 * outside the overlap band are kept exactly. */
#include "internal/imgproc.h"
#include "internal/pipeline.h"

#include <string.h>

enum {
    OVERLAP_BAND = 32,   /* px of the old image regenerated along each extended side */
    WINDOW_FEATHER = 32, /* px of an earlier window's edge redone by the next one */
};

sd_status sd_pipeline_outpaint(sd_run *r, sd_img *out, sd_error *err)
{
    const sd_gen_params *p = &r->p;
    const sd_image *pi = p->init;
    sd_img init = sd_img_view(pi->data, pi->width, pi->height, pi->channels, pi->stride);
    sd_outpaint_params op = sd_outpaint_params_default();
    op.left = p->extend_left;
    op.top = p->extend_top;
    op.right = p->extend_right;
    op.bottom = p->extend_bottom;
    op.overlap = OVERLAP_BAND;
    op.seed = r->seed;
    sd_img canvas = {0}, omask = {0};
    sd_rect *wins = NULL;
    int n_win = 0;
    sd_status st;
    if ((st = sd_outpaint_extend(&init, &op, &canvas, &omask, err)) ||
        (st = sd_outpaint_windows(&omask, p->resolution, p->resolution, p->resolution / 4,
                                  &wins, &n_win, err)))
        goto out;
    r->steps_total = n_win * sd_run_steps_for(r, p->strength);
    if ((st = sd_run_encode_prompts(r, err)))
        goto out;
    for (int k = 0; k < n_win; k++) {
        sd_img wmask = {0}, region = {0}, gen = {0};
        sd_img sub = sd_img_sub(&canvas, wins[k]);
        if ((st = sd_outpaint_window_mask(&omask, wins, k, WINDOW_FEATHER, &wmask, err)) ||
            (st = sd_img_clone(&sub, &region, err)) ||
            (st = sd_run_inpaint(r, &region, &wmask, p->strength, &gen, err)))
            goto next;
        if (p->color_match) {
            sd_colormatch_params cm = sd_colormatch_params_default();
            if ((st = sd_colormatch(&region, &gen, &wmask, &cm, NULL, err)))
                goto next;
        }
        st = sd_img_composite(&canvas, wins[k].x, wins[k].y, &gen, &wmask, err);
    next:
        sd_img_free(&wmask);
        sd_img_free(&region);
        sd_img_free(&gen);
        if (st)
            goto out;
    }
    st = canvas.c == 4 ? sd_img_clone(&canvas, out, err)
                       : sd_run_to_rgba(&canvas, NULL, out, err);
out:
    sd_free(wins);
    sd_img_free(&canvas);
    sd_img_free(&omask);
    return st;
}
