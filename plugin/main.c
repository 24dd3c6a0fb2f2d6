/* main.c - the GIMP entry points of gimp-sd: query() registers the five Stable Diffusion
 * filters (plus txt2img into a new image and the resident extension) with argument tables
 * generated from sd_params.def, and the help pages; run() unpacks a call, checks it, and runs
 * the filter in the resident process when it serves, else in this process, then returns the
 * new layer and the seed or a message a user can act on.  An interactive call opens the
 * filter's dialog (ui/), which generates in this process (see plugin/README.md). */
#include "sdp.h"

#include <string.h>

#include "sdui.h"

static const char help_common[] =
    "The result is a new layer above the active layer, named after the filter and the "
    "prompt, made in one undo step; the active layer is not changed.  The generation "
    "parameters (and the seed used) are stored on the new layer as the parasite "
    "\"" SDP_PARASITE "\".  Models are looked up by name in the sd-models folder of the GIMP "
    "profile, then in the folders of $SD_MODEL_PATH.  RGB and grayscale images of any "
    "precision are supported; indexed images are not.";

const sdp_proc sdp_procs[] = {
    {SDP_PROC_TXT2IMG, SDP_TXT2IMG, FALSE, N_("_Text to Image..."),
     "<Image>/Filters/Generative/Stable Diffusion",
     "Generate a picture from a prompt as a new layer",
     "Generates a picture from the prompt over the selection's bounds (without a selection: "
     "the canvas), masked by the selection.",
     N_("Stable Diffusion: Text to Image")},
    {SDP_PROC_IMG2IMG, SDP_IMG2IMG, FALSE, N_("_Image to Image..."),
     "<Image>/Filters/Generative/Stable Diffusion",
     "Re-imagine the selected part of a layer from a prompt",
     "Re-imagines the selected part of the active layer (without a selection: all of it) "
     "guided by the prompt; strength chooses how far the result may move away from it.",
     N_("Stable Diffusion: Image to Image")},
    {SDP_PROC_INPAINT, SDP_INPAINT, FALSE, N_("In_paint..."),
     "<Image>/Filters/Generative/Stable Diffusion",
     "Regenerate the selected area of a layer from a prompt",
     "Regenerates what the selection covers so that it fits its surroundings; a selection is "
     "required.  Works with inpainting checkpoints and with standard ones.",
     N_("Stable Diffusion: Inpaint")},
    {SDP_PROC_OUTPAINT, SDP_OUTPAINT, FALSE, N_("_Outpaint..."),
     "<Image>/Filters/Generative/Stable Diffusion",
     "Extend a layer beyond its borders",
     "Grows the canvas by extend-left/top/right/bottom and fills the new area so that it "
     "continues the picture (all four 0: fills what the layer leaves uncovered of the "
     "canvas).  The selection is not used.",
     N_("Stable Diffusion: Outpaint")},
    {SDP_PROC_DENOISE, SDP_DENOISE, FALSE, N_("_Denoise..."),
     "<Image>/Filters/Generative/Stable Diffusion",
     "Restore a noisy photo with diffusion",
     "Measures the noise of the selected part of the active layer (without a selection: all "
     "of it), chooses a strength from it unless one is given, and restores it at its own "
     "resolution in overlapping tiles.",
     N_("Stable Diffusion: Denoise")},
    {SDP_PROC_TXT2IMG_NEW, SDP_TXT2IMG, TRUE, N_("Stable _Diffusion (Text to Image)..."),
     "<Image>/File/Create", "Generate a new image from a prompt",
     "Creates a new RGB image generated from the prompt (width and height 0: the model's "
     "native size).",
     N_("Stable Diffusion: New Image")},
};
const int sdp_n_procs = G_N_ELEMENTS(sdp_procs);

const sdp_proc *sdp_proc_find(const char *name)
{
    for (int i = 0; name && i < sdp_n_procs; i++)
        if (strcmp(sdp_procs[i].name, name) == 0)
            return &sdp_procs[i];
    return NULL;
}

/* The help pages live next to the installed binary: <plug-ins>/gimp-sd/help/<lang>/. */
static void register_help(void)
{
    gchar *dir = g_path_get_dirname(gimp_get_progname());
    gchar *help = g_build_filename(dir, "help", NULL);
    gchar *uri = g_filename_to_uri(help, NULL, NULL);
    if (uri)
        gimp_plugin_help_register(SDP_HELP_DOMAIN, uri);
    g_free(uri);
    g_free(help);
    g_free(dir);
}

static void query(void)
{
    static const GimpParamDef layer_rets[] = {
        {GIMP_PDB_LAYER, "new-layer", "The layer holding the result"},
        {GIMP_PDB_INT32, "seed", "The seed used (the random one when seed was -1)"},
    };
    static const GimpParamDef image_rets[] = {
        {GIMP_PDB_IMAGE, "new-image", "The new image"},
        {GIMP_PDB_LAYER, "new-layer", "Its layer"},
        {GIMP_PDB_INT32, "seed", "The seed used (the random one when seed was -1)"},
    };
    register_help();
    for (int i = 0; i < sdp_n_procs; i++) {
        const sdp_proc *p = &sdp_procs[i];
        int n;
        GimpParamDef *args = sdp_param_defs_new(p->filter, p->new_image, &n);
        gchar *help = g_strconcat(p->help, "  ", help_common, NULL);
        gimp_install_procedure(p->name, p->blurb, help, SDP_AUTHOR, SDP_AUTHOR, SDP_DATE,
                               p->menu_label, p->new_image ? "" : "RGB*, GRAY*", GIMP_PLUGIN, n,
                               p->new_image ? G_N_ELEMENTS(image_rets)
                                            : G_N_ELEMENTS(layer_rets),
                               args, p->new_image ? image_rets : layer_rets);
        gimp_plugin_menu_register(p->name, p->menu_path);
        g_free(help);
        sdp_param_defs_free(args, n);
    }
    sdp_resident_query();
}

/* The values of a non-interactive call or a repeat with the last values. */
static gboolean get_vals(const sdp_proc *p, gint n, const GimpParam *param, sdp_vals *v,
                         GError **error)
{
    GimpRunMode mode = (GimpRunMode)param[0].data.d_int32;
    int first = p->new_image ? 1 : 3;
    switch (mode) {
    case GIMP_RUN_INTERACTIVE:
        break;
    case GIMP_RUN_NONINTERACTIVE:
        return sdp_vals_unpack(p->filter, n, param, first, v, error);
    case GIMP_RUN_WITH_LAST_VALS:
        if (n < first) {
            g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING, "expected at least %d arguments",
                        first);
            return FALSE;
        }
        sdp_vals_load_last(p->name, v);
        return sdp_vals_check(p->filter, v, error);
    }
    g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING, "unknown run mode %d", (int)mode);
    return FALSE;
}

/* An interactive call: the dialog, in this process, starting from the last values.  It needs
 * GIMP's display (gimp-console has none). */
static gboolean run_dialog(const sdp_proc *p, gint n, const GimpParam *param, sdp_result *res,
                           GError **error)
{
    int first = p->new_image ? 1 : 3;
    if (n < first) {
        g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING, "expected at least %d arguments",
                    first);
        return FALSE;
    }
    const gchar *display = gimp_display_name();
    if (!display || !display[0]) {
        g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING,
                    "the dialog of %s needs GIMP's user interface (there is no display): "
                    "call it with RUN-NONINTERACTIVE, or repeat it with its last values",
                    p->name);
        return FALSE;
    }
    sdp_vals v;
    gboolean stored = sdp_vals_load_last(p->name, &v);
    gegl_init(NULL, NULL);
    sdp_resident_release();
    return sdui_run(p, p->new_image ? -1 : param[1].data.d_image,
                    p->new_image ? -1 : param[2].data.d_drawable, &v, stored, res, error);
}

static gboolean run_filter(const sdp_proc *p, gint n, const GimpParam *param, sdp_result *res,
                           GError **error)
{
    sdp_vals v;
    if (n < 1 || param[0].type != GIMP_PDB_INT32) {
        g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING, "the first argument must be run-mode");
        return FALSE;
    }
    if ((GimpRunMode)param[0].data.d_int32 == GIMP_RUN_INTERACTIVE)
        return run_dialog(p, n, param, res, error);
    if (!get_vals(p, n, param, &v, error))
        return FALSE;
    GimpRunMode mode = (GimpRunMode)param[0].data.d_int32;
    gint32 image = p->new_image ? -1 : param[1].data.d_image;
    gint32 drawable = p->new_image ? -1 : param[2].data.d_drawable;
    gboolean forwarded;
    if (!sdp_resident_forward(p->filter, p->new_image, mode, image, drawable, &v, &forwarded,
                              res, error))
        return FALSE;
    if (!forwarded) {
        gegl_init(NULL, NULL);
        sdp_engine *e = sdp_engine_new();
        gboolean ok = sdp_run_filter(e, p->filter, p->new_image, mode, image, drawable, &v, NULL,
                                     res, error);
        sdp_engine_free(e);
        if (!ok)
            return FALSE;
    }
    sdp_vals_store_last(p->name, &v);
    return TRUE;
}

static void run(const gchar *name, gint n, const GimpParam *param, gint *nret,
                GimpParam **ret)
{
    static GimpParam values[4];
    static gchar *message;
    *ret = values;
    *nret = 1;
    values[0].type = GIMP_PDB_STATUS;
    values[0].data.d_status = GIMP_PDB_SUCCESS;

    if (strcmp(name, SDP_PROC_RESIDENT) == 0) {
        sdp_resident_main();
        return;
    }
    const sdp_proc *p = sdp_proc_find(name);
    if (!p) {
        values[0].data.d_status = GIMP_PDB_CALLING_ERROR;
        return;
    }
    GError *err = NULL;
    sdp_result res = {-1, -1, 0};
    if (!run_filter(p, n, param, &res, &err)) {
        if (err->domain == SDP_ERROR && err->code == SDP_ERROR_CANCELLED) {
            values[0].data.d_status = GIMP_PDB_CANCEL;
            g_error_free(err);
            return;
        }
        g_free(message);
        message = g_strdup(err->message);
        values[0].data.d_status = err->domain == SDP_ERROR && err->code == SDP_ERROR_CALLING
                                      ? GIMP_PDB_CALLING_ERROR
                                      : GIMP_PDB_EXECUTION_ERROR;
        values[1].type = GIMP_PDB_STRING;
        values[1].data.d_string = message;
        *nret = 2;
        g_error_free(err);
        return;
    }
    int k = 1;
    if (p->new_image) {
        values[k].type = GIMP_PDB_IMAGE;
        values[k++].data.d_image = res.image;
    }
    values[k].type = GIMP_PDB_LAYER;
    values[k++].data.d_layer = res.layer;
    values[k].type = GIMP_PDB_INT32;
    values[k++].data.d_int32 = res.seed;
    *nret = k;
}

const GimpPlugInInfo PLUG_IN_INFO = {
    NULL,                        /* init_proc */
    sdp_resident_quit,           /* quit_proc */
    query,
    run,
};

MAIN()
