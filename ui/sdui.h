/* sdui.h - the dialogs of the five Stable Diffusion filters (libgimpui, GTK 2): the entry point
 * the plug-in's run() calls for RUN-INTERACTIVE, the ui hints of sd_params.def, and the
 * contracts shared by the files of ui/: the widgets generated from the parameter list
 * (fields.c), the model chooser (chooser.c), the generation thread (worker.c) and the dialog
 * itself (dialog.c).
 *
 * The dialog edits an sdp_vals and hands it to the plug-in's job functions (sdp_job_prepare,
 * sdp_job_generate, sdp_job_commit), the code the non-interactive path runs; it makes no PDB
 * calls of its own.  Threads: everything runs on the main thread except the generation,
 * which runs on one worker thread (worker.c) that touches neither libgimp nor GTK. */
#ifndef SDUI_H
#define SDUI_H

#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "sdp.h"

/* Show the dialog of procedure p on (image, drawable) (both -1 for the new-image
 * procedure), starting from *v: the stored last values (`stored`), or the defaults, which
 * the selected model's presets then complete.  Generate as often as the user asks; each
 * generation is committed to the image as the non-interactive call would.  The values a
 * committed generation was made with (and the seed it used) are stored as the last values
 * at once; a cancelled or failed generation and closing the dialog store nothing, so the
 * last values are always those of the last result (what Repeat runs).  When the dialog
 * closes *v holds what it shows.  Returns TRUE when at least one generation was committed
 * (*res is the last one), FALSE with SDP_ERROR_CANCELLED when the dialog was closed without
 * one.  Main thread; needs a display (the caller checks gimp_display_name). */
gboolean sdui_run(const sdp_proc *p, gint32 image, gint32 drawable, sdp_vals *v,
                  gboolean stored, sdp_result *res, GError **error);

/* ---------------------------------------------------------------------------------------
 * The ui column of sd_params.def
 * ------------------------------------------------------------------------------------- */

typedef enum sdui_section {
    SDP_UI_TOP,                  /* model and prompts, above everything */
    SDP_UI_SAMPLING,
    SDP_UI_FILTER,               /* the filter's own options */
    SDP_UI_ADVANCED,             /* in a collapsed expander */
    SDP_UI_N_SECTIONS
} sdui_section;

typedef enum sdui_kind {
    SDUI_TEXT,                   /* multi-line text view (digits = lines) */
    SDUI_MODEL,                  /* the model chooser (chooser.c) */
    SDUI_SEED,                   /* spin, "Random" toggle, last seed used */
    SDUI_SPIN,
    SDUI_SCALE,                  /* GimpScaleEntry: slider over lo..hi, spin over the range */
    SDUI_CHECK,
    SDUI_COMBO,                  /* GimpIntComboBox over the enum's range */
} sdui_kind;

typedef struct sdui_hint {
    sdui_section section;
    int row;                     /* order within the section */
    sdui_kind kind;
    double lo, hi;               /* SCALE: the slider's range */
    double step, page;
    int digits;                  /* TEXT: lines shown */
    const char *special;         /* SPIN/SCALE: text shown for the minimum, NULL none */
    unsigned toggle;             /* SCALE: filters with an "Automatic" toggle */
    const char *labels;          /* COMBO: value labels of min..max, '|'-separated */
} sdui_hint;

#define SDP_UI_TEXT(sec_, row_, lines_)                                                      \
    {.section = sec_, .row = row_, .kind = SDUI_TEXT, .digits = lines_}
#define SDP_UI_MODEL(sec_, row_) {.section = sec_, .row = row_, .kind = SDUI_MODEL}
#define SDP_UI_SEED(sec_, row_) {.section = sec_, .row = row_, .kind = SDUI_SEED, .step = 1,   \
                                 .page = 100}
#define SDP_UI_SPIN(sec_, row_, step_, page_, digits_, special_)                              \
    {.section = sec_, .row = row_, .kind = SDUI_SPIN, .step = step_, .page = page_,           \
     .digits = digits_, .special = special_}
#define SDP_UI_SCALE(sec_, row_, lo_, hi_, step_, page_, digits_, special_, toggle_)          \
    {.section = sec_, .row = row_, .kind = SDUI_SCALE, .lo = lo_, .hi = hi_, .step = step_,   \
     .page = page_, .digits = digits_, .special = special_, .toggle = toggle_}
#define SDP_UI_CHECK(sec_, row_) {.section = sec_, .row = row_, .kind = SDUI_CHECK}
#define SDP_UI_COMBO(sec_, row_, labels_)                                                    \
    {.section = sec_, .row = row_, .kind = SDUI_COMBO, .labels = labels_}

/* The hints in list order, parallel to sdp_params (fields.c expands sd_params.def). */
extern const sdui_hint sdui_hints[];

/* ---------------------------------------------------------------------------------------
 * fields.c: the widgets of one filter's parameters
 * ------------------------------------------------------------------------------------- */

typedef struct sdui_fields sdui_fields;

/* What the dialog puts in the model's row: the chooser (widget, with `target` the combo its
 * label's mnemonic focuses) and a note shown under it (may be NULL). */
typedef struct sdui_model_row {
    GtkWidget *widget, *target, *note;
} sdui_model_row;

/* Widgets for every parameter filter f takes, laid out in one GtkTable per section with
 * aligned label columns and tooltips from the blurbs; the model's row holds *model.  Free
 * with sdui_fields_free (the widgets belong to the tables). */
sdui_fields *sdui_fields_new(sdp_filter f, const sdui_model_row *model);
void sdui_fields_free(sdui_fields *fs);

/* The table of a section, NULL when the filter has nothing there. */
GtkWidget *sdui_fields_table(const sdui_fields *fs, sdui_section s);

/* Indentation in px of a section's labels under its heading; width in px of the widget
 * column (the text views, the model chooser). */
#define SDUI_INDENT 12
#define SDUI_FIELD_WIDTH 360

/* Show *v in the widgets / read the widgets into *v (fields of other filters and the model,
 * which is the chooser's, are left alone).  sdui_fields_get reads every field; it fails with
 * SDP_ERROR_CALLING when a text is longer than its parameter allows (*v then holds it cut at
 * a character). */
void sdui_fields_set(sdui_fields *fs, const sdp_vals *v);
gboolean sdui_fields_get(const sdui_fields *fs, sdp_vals *v, GError **error);

/* The value parameter `key` shows under its active "Automatic" toggle (what automatic
 * means now, e.g. the denoise strength the noise level gives), so that turning the toggle
 * off starts from it.  Nothing happens when the toggle is off. */
void sdui_fields_set_under_toggle(sdui_fields *fs, const char *key, double x);

/* The seed row: show the seed the last generation used (-1: none yet, nothing changes);
 * Random stays as it is. */
void sdui_fields_set_last_seed(sdui_fields *fs, gint32 seed);

/* ---------------------------------------------------------------------------------------
 * chooser.c: the model chooser
 * ------------------------------------------------------------------------------------- */

typedef struct sdui_chooser sdui_chooser;

/* A combo box of the models found (sdp_model_list) with their family from a header-only
 * probe (models filter f cannot use are shown but not selectable), and an "Other…" button
 * opening a file chooser.  value: the "model" parameter to select (a name, a path or "" =
 * the first usable model).  changed(user) is called when the user picks another model.
 * Free with sdui_chooser_free. */
sdui_chooser *sdui_chooser_new(sdp_filter f, const char *value, void (*changed)(gpointer),
                               gpointer user);
void sdui_chooser_free(sdui_chooser *c);

/* The row's widget (combo + button) and the combo (the label's mnemonic target). */
GtkWidget *sdui_chooser_widget(const sdui_chooser *c);
GtkWidget *sdui_chooser_combo(const sdui_chooser *c);

/* How many models are listed. */
int sdui_chooser_count(const sdui_chooser *c);

/* The selection: the "model" parameter's value ("" when there is none), and its probe (FALSE
 * when nothing is selected or it cannot be read: *problem then says why, or is NULL). */
const char *sdui_chooser_value(const sdui_chooser *c);
gboolean sdui_chooser_info(const sdui_chooser *c, sd_model_info *info, sd_gen_params *defaults,
                           const char **problem);

/* ---------------------------------------------------------------------------------------
 * worker.c: one generation on a worker thread
 * ------------------------------------------------------------------------------------- */

typedef struct sdui_worker sdui_worker;

/* Side in px of the square the dialog's preview fits in. */
#define SDUI_PREVIEW_SIZE 256

/* Start generating job j with engine e on a new thread; taesd_path (may be NULL) is a
 * preview decoder to load first.  j and e are the worker's until sdui_worker_finish. */
sdui_worker *sdui_worker_start(sdp_job *j, sdp_engine *e, const char *taesd_path);

/* What the worker published since the last poll: the latest progress (*have FALSE before the
 * first), and a new preview as a pixbuf (*preview NULL when none came; else g_object_unref
 * it).  Returns FALSE once the generation has ended (then call sdui_worker_finish).  Main
 * thread. */
gboolean sdui_worker_poll(sdui_worker *w, sd_progress *p, gboolean *have, GdkPixbuf **preview);

/* Ask the engine to stop: the next progress callback (between UNet blocks) returns false.
 * sdui_worker_cancelled says whether that was asked. */
void sdui_worker_cancel(sdui_worker *w);
gboolean sdui_worker_cancelled(sdui_worker *w);

/* Wait for the thread (it has ended when poll returned FALSE), free the worker and return
 * the generation's outcome; *taesd_used says whether the previews came from TAESD.  Errors:
 * those of sdp_job_generate (SDP_ERROR_CANCELLED after a cancel). */
gboolean sdui_worker_finish(sdui_worker *w, gboolean *taesd_used, GError **error);

/* An RGB(A) float image (0..1, non-linear) as an 8-bit pixbuf scaled to fit size x size.
 * Main thread or worker (gdk-pixbuf only). */
GdkPixbuf *sdui_pixbuf_from_image(const sd_image *img, int size);

#endif /* SDUI_H */
