/* sdp.h - what the files of the GIMP plug-in in plugin/ share: the procedure names, the
 * filters, the last-values struct generated from sd_params.def, and the contracts of the
 * parameter code (params.c), the model search (models.c), the engine cache (engine.c), the
 * pixel I/O (pixels.c), the filter runner (filter.c) and the resident process (resident.c).
 * This is the only layer of gimp-sd that includes libgimp; sdcore stays GIMP-free.
 *
 * Threads: everything here runs on the plug-in's main thread (libgimp has one pipe and no
 * lock); the engine's callbacks fire on that thread too. */
#ifndef SDP_H
#define SDP_H

#include <libgimp/gimp.h>

#include "sd.h"

/* Marks a string for translation by the dialogs (no catalogue is installed yet). */
#define N_(s) (s)

#define SDP_BINARY "gimp-sd"
#define SDP_AUTHOR "gimp-sd authors"
#define SDP_DATE "2025"

#define SDP_PROC_TXT2IMG "plug-in-sd-txt2img"
#define SDP_PROC_TXT2IMG_NEW "plug-in-sd-txt2img-new-image"
#define SDP_PROC_IMG2IMG "plug-in-sd-img2img"
#define SDP_PROC_INPAINT "plug-in-sd-inpaint"
#define SDP_PROC_OUTPAINT "plug-in-sd-outpaint"
#define SDP_PROC_DENOISE "plug-in-sd-denoise"

/* The resident process: an extension GIMP starts with itself, and its temporary procedures
 * (see resident.c for the design). */
#define SDP_PROC_RESIDENT "extension-sd-resident"
#define SDP_PROC_RESIDENT_RUN "plug-in-sd-resident-run"
#define SDP_PROC_RESIDENT_STATUS "plug-in-sd-resident-status"
#define SDP_PROC_RESIDENT_RELEASE "plug-in-sd-resident-release"
#define SDP_PROC_RESIDENT_STOP "plug-in-sd-resident-stop"

/* Name of the parasite holding the generation parameters on a result layer. */
#define SDP_PARASITE "gimp-sd-parameters"

/* Folder of the GIMP profile searched for models first. */
#define SDP_MODELS_DIR "sd-models"

typedef enum sdp_filter {
    SDP_TXT2IMG,
    SDP_IMG2IMG,
    SDP_INPAINT,
    SDP_OUTPAINT,
    SDP_DENOISE,
    SDP_N_FILTERS
} sdp_filter;

/* Bits of the `filters` column of sd_params.def. */
enum {
    SDP_F_TXT2IMG = 1 << SDP_TXT2IMG,
    SDP_F_IMG2IMG = 1 << SDP_IMG2IMG,
    SDP_F_INPAINT = 1 << SDP_INPAINT,
    SDP_F_OUTPAINT = 1 << SDP_OUTPAINT,
    SDP_F_DENOISE = 1 << SDP_DENOISE,
    SDP_F_ALL = (1 << SDP_N_FILTERS) - 1,
};

/* Bump when sd_params.def changes: stored last values of another version are ignored. */
#define SDP_VALS_VERSION 1u

/* The last-values struct: plain old data, version first, strings in fixed arrays, so that
 * gimp_set_data/gimp_get_data can store it as bytes.  One field per line of sd_params.def. */
typedef struct sdp_vals {
    guint32 version;
#define SDP_STR(id, key, label, blurb, def, size, filters) gchar id[size];
#define SDP_INT(id, key, label, blurb, def, lo, hi, filters) gint32 id;
#define SDP_FLOAT(id, key, label, blurb, def, lo, hi, filters) gdouble id;
#define SDP_BOOL(id, key, label, blurb, def, filters) gint32 id;
#define SDP_ENUM(id, key, label, blurb, def, lo, hi, name_fn, filters) gint32 id;
#include "sd_params.def"
#undef SDP_STR
#undef SDP_INT
#undef SDP_FLOAT
#undef SDP_BOOL
#undef SDP_ENUM
} sdp_vals;

/* One registered filter procedure. */
typedef struct sdp_proc {
    const char *name;            /* PDB name */
    sdp_filter filter;
    gboolean new_image;          /* File > Create: no image/drawable arguments, returns one */
    const char *menu_label;
    const char *menu_path;
    const char *blurb;
    const char *help;
} sdp_proc;

/* The procedures, in registration order, and a lookup by PDB name (NULL when unknown). */
extern const sdp_proc sdp_procs[];
extern const int sdp_n_procs;
const sdp_proc *sdp_proc_find(const char *name);

/* ---------------------------------------------------------------------------------------
 * Errors: workers return gboolean and fill a GError in this domain.  run() turns
 * SDP_ERROR_CALLING into GIMP_PDB_CALLING_ERROR and everything else into
 * GIMP_PDB_EXECUTION_ERROR, with the message as the second return value.
 * ------------------------------------------------------------------------------------- */

#define SDP_ERROR (sdp_error_quark())
typedef enum sdp_error_code {
    SDP_ERROR_CALLING,           /* the caller passed a bad argument */
    SDP_ERROR_FAILED,            /* the filter could not run (model, image, engine) */
} sdp_error_code;
GQuark sdp_error_quark(void);

/* ---------------------------------------------------------------------------------------
 * params.c: the parameter list of sd_params.def at work
 * ------------------------------------------------------------------------------------- */

/* The name of a filter as the engine spells it ("txt2img", "inpaint", ...) and its task. */
const char *sdp_filter_name(sdp_filter f);
sd_task sdp_filter_task(sdp_filter f);

/* Value names of the ENUM parameters ("auto" for -1 where that means "default"; NULL out of
 * range).  Static storage. */
const char *sdp_sampler_name(int v);
const char *sdp_spacing_name(int v);
const char *sdp_prediction_name(int v);
const char *sdp_fill_name(int v);

/* Fill *v with the defaults of sd_params.def and the current version. */
void sdp_vals_default(sdp_vals *v);

/* The PDB argument table of a procedure: run-mode, then image and drawable unless new_image,
 * then every parameter of the filter in list order, each described with its range and
 * default.  Returns a new array of *n entries; free it with sdp_param_defs_free. */
GimpParamDef *sdp_param_defs_new(sdp_filter f, gboolean new_image, int *n);
void sdp_param_defs_free(GimpParamDef *defs, int n);

/* Unpack a NONINTERACTIVE call: param[first..] must be exactly the filter's parameters in
 * list order with the PDB types of sd_params.def.  *v is filled (parameters the filter does
 * not take keep their defaults).  Every value is range-checked, then sdp_vals_check runs.
 * Errors: SDP_ERROR_CALLING naming the argument, its value and the allowed range. */
gboolean sdp_vals_unpack(sdp_filter f, int n_params, const GimpParam *param, int first,
                         sdp_vals *v, GError **error);

/* Constraints between or beyond single ranges (resolution a multiple of 8, ...).
 * Errors: SDP_ERROR_CALLING. */
gboolean sdp_vals_check(sdp_filter f, const sdp_vals *v, GError **error);

/* The filter's parameters as "key=value\n" lines in list order (strings with \\, \n and \r
 * escaped; numbers locale-independent, doubles exact).  Returns a new string (g_free). */
gchar *sdp_vals_serialise(sdp_filter f, const sdp_vals *v);

/* Parse key=value lines into *v (which keeps its values for keys not present).  strict:
 * every key must be a parameter of the filter (the resident protocol); otherwise unknown keys
 * are skipped (a parasite also holds the filter, the model file, ...).  Values are
 * range-checked as in sdp_vals_unpack.  Errors: SDP_ERROR_CALLING. */
gboolean sdp_vals_parse(sdp_filter f, const char *text, gboolean strict, sdp_vals *v,
                        GError **error);

/* Last values of a procedure: load gives the defaults when nothing of this exact size and
 * version is stored (returns whether stored values were used). */
gboolean sdp_vals_load_last(const char *proc, sdp_vals *v);
void sdp_vals_store_last(const char *proc, const sdp_vals *v);

/* ---------------------------------------------------------------------------------------
 * models.c: finding a checkpoint by name
 * ------------------------------------------------------------------------------------- */

/* The folders searched for models, in order: <gimp_directory()>/sd-models, then every
 * non-empty entry of $SD_MODEL_PATH (colon-separated).  Returns a new NULL-terminated
 * vector (g_strfreev); folders that do not exist are included. */
gchar **sdp_model_dirs(void);

/* Resolve a model argument to an existing file or folder: an absolute path as is; "" = the
 * first candidate of the first folder that has one (candidates: *.safetensors files and
 * folders holding model_index.json, sorted by name); a name = <folder>/<name> or
 * <folder>/<name>.safetensors in folder order.  Returns a new string (g_free).
 * Errors: SDP_ERROR_FAILED saying what was looked for and where; SDP_ERROR_CALLING for a
 * relative name with a ".." component. */
gchar *sdp_model_resolve(const char *name, GError **error);

/* ---------------------------------------------------------------------------------------
 * engine.c: one engine context and the model it keeps loaded
 * ------------------------------------------------------------------------------------- */

typedef struct sdp_engine sdp_engine;

/* A new engine with no ctx and no model (both created on first use).  Free with
 * sdp_engine_free (NULL is a no-op). */
sdp_engine *sdp_engine_new(void);
void sdp_engine_free(sdp_engine *e);

/* The engine ctx, created on first use.  Errors: the engine's message (SDP_ERROR_FAILED). */
gboolean sdp_engine_ctx(sdp_engine *e, sd_ctx **ctx, GError **error);

/* The model at `path` (as sdp_model_resolve returns it), loading it unless the same file
 * (same real path, device, inode, size and mtime) is already loaded; another loaded model
 * is freed first.  The model stays owned by the engine.  Checks that it can generate (UNet,
 * text encoder, VAE).  Errors: SDP_ERROR_FAILED with the engine's message and the path. */
gboolean sdp_engine_model(sdp_engine *e, const char *path, const sd_model **model,
                          GError **error);

/* Free the loaded model now (the ctx stays).  Counters are kept. */
void sdp_engine_release(sdp_engine *e);

/* Counters for the resident status: models loaded and filter calls served since start, and
 * the loaded model's path (NULL when none; owned by the engine). */
int sdp_engine_loads(const sdp_engine *e);
int sdp_engine_calls(const sdp_engine *e);
void sdp_engine_count_call(sdp_engine *e);
const char *sdp_engine_model_path(const sdp_engine *e);

/* ---------------------------------------------------------------------------------------
 * pixels.c: GEGL buffers <-> sd_image
 * ------------------------------------------------------------------------------------- */

/* A rectangle in the coordinates named where it is used. */
typedef struct sdp_rect {
    int x, y, w, h;
} sdp_rect;

/* Read rectangle r (drawable coordinates, inside the drawable) of a drawable as
 * "R'G'B'A float" whatever the image's precision and base type (gray becomes R = G = B).
 * *out gets 4 channels and owns its data (sdp_image_free).  Errors: SDP_ERROR_FAILED when
 * the memory is not available. */
gboolean sdp_read_rgba(gint32 drawable, sdp_rect r, sd_image *out, GError **error);

/* The selection of `image` over rectangle r (image coordinates; may reach beyond the
 * canvas, which reads as unselected) as a soft 1-channel mask ("Y float": feathering kept).
 * *out owns its data.  Errors: SDP_ERROR_FAILED (memory). */
gboolean sdp_read_selection(gint32 image, sdp_rect r, sd_image *out, GError **error);

/* Allocate a zeroed image.  Errors: SDP_ERROR_FAILED (memory or absurd size). */
gboolean sdp_image_alloc(int w, int h, int channels, sd_image *out, GError **error);
/* Free data allocated by the functions above and zero *img.  NULL is a no-op. */
void sdp_image_free(sd_image *img);

/* Write a 4-channel R'G'B'A float image into a layer (same size) through GEGL, which
 * converts to the layer's format (gray, 8/16/32-bit), then update the layer. */
void sdp_write_layer(gint32 layer, const sd_image *img);

/* ---------------------------------------------------------------------------------------
 * filter.c: one filter run from the GIMP side
 * ------------------------------------------------------------------------------------- */

typedef struct sdp_result {
    gint32 image;                /* the image the layer is in (new for txt2img-new-image) */
    gint32 layer;                /* the new layer */
    gint32 seed;                 /* the seed used */
} sdp_result;

/* Run one filter on (image, drawable) (both -1 for new_image) with the checked values v,
 * using (and keeping) e's model.  On success the image has one new layer above the
 * drawable (or is new), made in one undo group, with the parameters as a parasite; outpaint
 * may also have grown the canvas in that group.  On failure the image is as before.
 * run_mode decides whether displays are flushed.  Errors: SDP_ERROR_* with a message for
 * the user. */
gboolean sdp_run_filter(sdp_engine *e, sdp_filter f, gboolean new_image, GimpRunMode run_mode,
                        gint32 image, gint32 drawable, const sdp_vals *v, sdp_result *res,
                        GError **error);

/* ---------------------------------------------------------------------------------------
 * resident.c: the resident process and the forwarding to it
 * ------------------------------------------------------------------------------------- */

/* Register the extension (query time).  */
void sdp_resident_query(void);

/* run() of the extension: install the temporary procedures, acknowledge, serve until GIMP
 * quits (or plug-in-sd-resident-stop).  With SD_RESIDENT=0 in the environment it only
 * acknowledges and returns, so the filters run in their own process. */
void sdp_resident_main(void);

/* quit_proc: free the resident's engine (called when GIMP exits). */
void sdp_resident_quit(void);

/* Run a filter in the resident process when it is serving (*forwarded = TRUE), otherwise
 * leave everything to the caller (*forwarded = FALSE, returns TRUE).  Errors: the resident's
 * message, or a note that it ended unexpectedly. */
gboolean sdp_resident_forward(sdp_filter f, gboolean new_image, GimpRunMode run_mode,
                              gint32 image, gint32 drawable, const sdp_vals *v,
                              gboolean *forwarded, sdp_result *res, GError **error);

#endif /* SDP_H */
