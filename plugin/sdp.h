/* sdp.h - what the files of the GIMP plug-in in plugin/ (and the dialogs in ui/) share: the
 * procedure names, the filters, the last-values struct and the parameter descriptors
 * generated from sd_params.def, and the contracts of the parameter code (params.c), the model
 * search (models.c), the engine cache (engine.c), the pixel I/O (pixels.c), the filter runner
 * (filter.c) and the resident process (resident.c).  plugin/ and ui/ are the only layers of
 * gimp-sd that include libgimp; sdcore stays GIMP-free.
 *
 * Threads: everything here runs on the plug-in's main thread (libgimp has one pipe and no
 * lock), except where a contract says "any thread": sdp_job_generate and the engine and
 * model-probing calls it makes, which touch no libgimp, so that the dialog can generate on a
 * worker thread.  The engine's callbacks fire on the thread that called sdp_job_generate. */
#ifndef SDP_H
#define SDP_H

#include <libgimp/gimp.h>

#include "sd.h"

/* Marks a string for translation by the dialogs (no catalogue is installed yet). */
#define N_(s) (s)

/* The help domain of the plug-in (gimp_plugin_help_register): the pages are installed with the
 * plug-in in help/<lang>/, and help/<lang>/gimp-help.xml maps each procedure name (the
 * dialogs' help id) to its page. */
#define SDP_HELP_DOMAIN "https://gimp-sd.invalid/help"

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
#define SDP_STR(id, key, label, blurb, def, size, filters, ui) gchar id[size];
#define SDP_INT(id, key, label, blurb, def, lo, hi, filters, ui) gint32 id;
#define SDP_FLOAT(id, key, label, blurb, def, lo, hi, filters, ui) gdouble id;
#define SDP_BOOL(id, key, label, blurb, def, filters, ui) gint32 id;
#define SDP_ENUM(id, key, label, blurb, def, lo, hi, name_fn, filters, ui) gint32 id;
#include "sd_params.def"
#undef SDP_STR
#undef SDP_INT
#undef SDP_FLOAT
#undef SDP_BOOL
#undef SDP_ENUM
} sdp_vals;

/* One parameter of sd_params.def as the code iterates it (params.c holds the table). */
typedef enum sdp_ptype { SDP_T_STR, SDP_T_INT, SDP_T_FLOAT, SDP_T_BOOL, SDP_T_ENUM } sdp_ptype;

typedef struct sdp_param {
    sdp_ptype type;
    const char *key;             /* PDB argument name, key=value key */
    const char *label;           /* dialog label with its '_' mnemonic */
    const char *blurb;           /* meaning and special values (PDB description, tooltip) */
    const char *def_str;         /* SDP_T_STR */
    double def, lo, hi;          /* numbers (SDP_T_BOOL: 0..1) */
    size_t size;                 /* SDP_T_STR: array size incl. NUL */
    size_t offset;               /* of the field in sdp_vals */
    const char *(*name_fn)(int); /* SDP_T_ENUM */
    unsigned filters;            /* SDP_F_* bits */
} sdp_param;

/* The parameters in list order (sdp_n_params entries). */
extern const sdp_param sdp_params[];
extern const int sdp_n_params;

/* One registered filter procedure. */
typedef struct sdp_proc {
    const char *name;            /* PDB name */
    sdp_filter filter;
    gboolean new_image;          /* File > Create: no image/drawable arguments, returns one */
    const char *menu_label;
    const char *menu_path;
    const char *blurb;
    const char *help;
    const char *title;           /* the dialog's title */
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
    SDP_ERROR_FAILED,            /* the filter could not run (image, engine) */
    SDP_ERROR_MODEL,             /* no model found, or the model cannot be loaded or used */
    SDP_ERROR_MEMORY,            /* the generation would not fit in memory */
    SDP_ERROR_CANCELLED,         /* the user cancelled (run() returns GIMP_PDB_CANCEL) */
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

/* Whether filter f takes parameter d. */
gboolean sdp_param_takes(const sdp_param *d, sdp_filter f);

/* The field of *v that d describes, without range checks (the dialog reads and writes its
 * widgets' values with these; sdp_vals_check then judges the whole).  sdp_field_str returns
 * the array itself (d->size bytes). */
gchar *sdp_field_str(sdp_vals *v, const sdp_param *d);
gint32 sdp_field_int(const sdp_vals *v, const sdp_param *d);
void sdp_field_set_int(sdp_vals *v, const sdp_param *d, gint32 x);
gdouble sdp_field_double(const sdp_vals *v, const sdp_param *d);
void sdp_field_set_double(sdp_vals *v, const sdp_param *d, gdouble x);

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

/* The seed a procedure's last generation actually used (the dialog shows it next to the
 * "Random" toggle); -1 when none is stored. */
gint32 sdp_seed_load_last(const char *proc);
void sdp_seed_store_last(const char *proc, gint32 seed);

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

/* One model candidate of the search folders (sdp_model_list). */
typedef struct sdp_model_entry {
    gchar *name;                 /* file or folder name, shown in the dialog */
    gchar *path;                 /* absolute path */
    gchar *value;                /* what the "model" parameter should hold to get this one:
                                    the name, or the path when an earlier folder has the name */
} sdp_model_entry;

/* Every candidate of every folder of sdp_model_dirs, folder by folder, names sorted, except
 * files named taesd*.safetensors (preview decoders, see sdp_taesd_find).  Returns a new
 * array of sdp_model_entry * that frees its entries (g_ptr_array_unref). */
GPtrArray *sdp_model_list(void);

/* A TAESD decoder for live previews: the first taesd*.safetensors (names sorted) in the
 * folder of model_path, else in the folders of sdp_model_dirs.  Returns a new path (g_free)
 * or NULL when there is none. */
gchar *sdp_taesd_find(const char *model_path);

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
 * text encoder, VAE).  Any thread (no libgimp); one call at a time per engine.
 * Errors: SDP_ERROR_MODEL with the engine's message and the path. */
gboolean sdp_engine_model(sdp_engine *e, const char *path, const sd_model **model,
                          GError **error);

/* The TAESD decoder at `path` for previews, loaded once and kept (another path replaces it).
 * Any thread (no libgimp), serialised with the engine's other calls.  Errors:
 * SDP_ERROR_MODEL when it cannot be loaded or is not a TAESD model with a decoder. */
gboolean sdp_engine_taesd(sdp_engine *e, const char *path, const sd_model **taesd,
                          GError **error);

/* What a model file is, from its header only (sd_model_load maps the file and reads no tensor
 * data), for the dialog's model list: *info, and in *defaults (unless NULL) the parameters of
 * `task` the engine would use with it (sd_gen_params_resolve: the model family's presets).
 * Any thread.  Errors: SDP_ERROR_MODEL with the engine's message. */
gboolean sdp_model_probe(const char *path, sd_task task, sd_model_info *info,
                         sd_gen_params *defaults, GError **error);

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

/* A thumbnail of a drawable at most size x size px (RGB or RGBA), for the dialog's preview
 * before the first generation; NULL when GIMP gives none.  Free with g_object_unref. */
GdkPixbuf *sdp_drawable_thumbnail(gint32 drawable, int size);

/* ---------------------------------------------------------------------------------------
 * filter.c: one filter run from the GIMP side
 * ------------------------------------------------------------------------------------- */

typedef struct sdp_result {
    gint32 image;                /* the image the layer is in (new for txt2img-new-image) */
    gint32 layer;                /* the new layer */
    gint32 seed;                 /* the seed used */
} sdp_result;

/* A filter run in three steps, so that the dialog can generate on a worker thread while the
 * steps that talk to GIMP stay on the main thread:
 *   sdp_job_prepare   main thread: checks the image and the layer, plans the geometry,
 *                     resolves the model, reads the pixels and the selection, draws the seed;
 *   sdp_job_generate  any thread: loads (or reuses) the model, runs the engine;
 *   sdp_job_commit    main thread: changes the image in one undo group.
 * Until the commit the image is untouched; a job that is freed without a commit (failed,
 * cancelled) leaves it as it was.  sdp_run_filter is the three steps in a row. */
typedef struct sdp_job sdp_job;

/* Callbacks and extras of one generation (all optional). */
typedef struct sdp_hooks {
    sd_progress_fn progress;     /* return false to cancel; fires on the generating thread */
    sd_preview_fn preview;
    void *user;                  /* passed to both */
    const sd_model *taesd;       /* TAESD decoder for the previews (sdp_engine_taesd) */
} sdp_hooks;

/* Prepare a run of filter f on (image, drawable) (both -1 for new_image) with values v
 * (copied; checked with sdp_vals_check).  *out owns the inputs until sdp_job_free.  Errors:
 * SDP_ERROR_CALLING (bad values or target), SDP_ERROR_MODEL (no such model), SDP_ERROR_FAILED
 * (image kind, selection, memory), each with a message for the user. */
gboolean sdp_job_prepare(sdp_filter f, gboolean new_image, gint32 image, gint32 drawable,
                         const sdp_vals *v, sdp_job **out, GError **error);

/* The resolved model path of a prepared job (owned by the job). */
const char *sdp_job_model_path(const sdp_job *j);

/* Generate: the model through e (loaded unless it is the one e keeps), then sd_generate with
 * h's callbacks, then the result layer's pixels.  Any thread (no libgimp); e must not be used
 * by another thread meanwhile.  Errors: SDP_ERROR_MODEL, SDP_ERROR_MEMORY (the request does
 * not fit; the message says what to lower), SDP_ERROR_CANCELLED, SDP_ERROR_FAILED. */
gboolean sdp_job_generate(sdp_job *j, sdp_engine *e, const sdp_hooks *h, GError **error);

/* What the engine returned (seed, strength and noise level used) and the result layer's
 * pixels (RGBA, straight alpha) of a generated job; owned by the job. */
const sd_gen_result *sdp_job_gen_result(const sdp_job *j);
const sd_image *sdp_job_layer_pixels(const sdp_job *j);

/* Put the generated result into the image: one new layer above the drawable (or a new image
 * for new_image, shown unless run_mode is NONINTERACTIVE), made in one undo group with the
 * parameters as a parasite; outpaint may also grow the canvas in that group.  The image or
 * the drawable may have been closed or deleted since the prepare (the dialog stays open):
 * that is an SDP_ERROR_FAILED and nothing changes.  Main thread. */
gboolean sdp_job_commit(sdp_job *j, GimpRunMode run_mode, sdp_result *res, GError **error);

/* Free a job (NULL is a no-op).  Main thread. */
void sdp_job_free(sdp_job *j);

/* Whether whoever asked for a run still waits for it (the resident's caller); see
 * sdp_run_filter. */
typedef gboolean (*sdp_alive_fn)(void);

/* Run one filter on (image, drawable) (both -1 for new_image) with the checked values v,
 * using (and keeping) e's model, with progress in GIMP's progress bar: sdp_job_prepare,
 * sdp_job_generate and sdp_job_commit in a row, on the main thread.  When alive is not NULL
 * it is asked at every progress callback and once more just before the commit: FALSE
 * cancels the run (SDP_ERROR_CANCELLED) and nothing is committed.  On failure the image is
 * as before.  Errors: as those three, with a message for the user. */
gboolean sdp_run_filter(sdp_engine *e, sdp_filter f, gboolean new_image, GimpRunMode run_mode,
                        gint32 image, gint32 drawable, const sdp_vals *v, sdp_alive_fn alive,
                        sdp_result *res, GError **error);

/* The noise level (0..255 scale, sd_estimate_noise) of what denoise would read from
 * (image, drawable): the selected part of the layer, or all of it.  Main thread.  Errors: as
 * sdp_job_prepare for the target and the selection, SDP_ERROR_FAILED from the estimate. */
gboolean sdp_estimate_noise(gint32 image, gint32 drawable, float *sigma, GError **error);

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

/* Ask the resident process to free its model now, when it serves and is idle (the dialog
 * loads its own copy: two would double the memory). */
void sdp_resident_release(void);

/* Run a filter in the resident process when it is serving (*forwarded = TRUE), otherwise
 * leave everything to the caller (*forwarded = FALSE, returns TRUE).  Errors: the resident's
 * message, or a note that it ended unexpectedly. */
gboolean sdp_resident_forward(sdp_filter f, gboolean new_image, GimpRunMode run_mode,
                              gint32 image, gint32 drawable, const sdp_vals *v,
                              gboolean *forwarded, sdp_result *res, GError **error);

#endif /* SDP_H */
