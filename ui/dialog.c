/* dialog.c - the dialog every Stable Diffusion filter shares: the model chooser, the widgets
 * of the filter's parameters (fields.c), a live preview, a progress bar with a Cancel button
 * and a message area, with Help, Close and Generate buttons.
 *
 * Generate reads the widgets into an sdp_vals and runs the plug-in's job: sdp_job_prepare on
 * the main thread (checks, reads the pixels and the selection as they are now), then
 * sdp_job_generate on a worker thread (worker.c) while a 50 ms timeout shows its progress and
 * previews, then sdp_job_commit on the main thread: the same code and the same single undo
 * step as a non-interactive call.  The dialog stays open for more generations; the model
 * stays loaded in this process's engine until it closes (see plugin/README.md for why the
 * dialog does not use the resident process).  Cancel makes the engine stop at its next
 * progress callback; nothing was committed, so the image is unchanged. */
#include "sdui.h"

#include <string.h>

enum { RESPONSE_GENERATE = 1 };

typedef struct dialog {
    const sdp_proc *proc;
    gint32 image, drawable;
    sdp_vals vals;
    GtkWidget *window, *generate, *cancel, *model_note, *noise;
    GtkWidget *preview, *preview_frame, *progress;
    GtkWidget *info_bar, *info_icon, *info_label;
    sdui_fields *fields;
    sdui_chooser *chooser;
    sdp_engine *engine;
    sdp_job *job;                /* the running generation's job, NULL when idle */
    sdui_worker *worker;
    guint poll;
    gint64 started;
    gboolean closing;            /* close as soon as the running generation has stopped */
    gboolean generated;          /* at least one result was committed */
    sdp_result result;           /* the last one */
} dialog;

/* ---------------------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------------------- */

/* A message: its first part (up to the first ": ", "not enough memory: ...") in bold, the
 * rest under it, then what the user can do (todo, may be NULL). */
static void show_message(dialog *d, GtkMessageType type, const char *text, const char *todo)
{
    gchar *what = g_strdup(text);
    if (what[0])
        what[0] = g_ascii_toupper(what[0]);
    char *detail = strstr(what, ": ");
    if (detail && detail > what && detail[2]) {
        *detail = 0;
        detail += 2;
        detail[0] = g_ascii_toupper(detail[0]);
    } else {
        detail = NULL;
    }
    gchar *markup = g_markup_printf_escaped("<b>%s</b>%s%s%s%s", what, detail ? "\n" : "",
                                            detail ? detail : "", todo ? "\n" : "",
                                            todo ? todo : "");
    g_free(what);
    gtk_label_set_markup(GTK_LABEL(d->info_label), markup);
    g_free(markup);
    gtk_info_bar_set_message_type(GTK_INFO_BAR(d->info_bar), type);
    gtk_image_set_from_stock(GTK_IMAGE(d->info_icon),
                             type == GTK_MESSAGE_ERROR     ? GTK_STOCK_DIALOG_ERROR
                             : type == GTK_MESSAGE_WARNING ? GTK_STOCK_DIALOG_WARNING
                                                           : GTK_STOCK_DIALOG_INFO,
                             GTK_ICON_SIZE_LARGE_TOOLBAR);
    gtk_widget_show(d->info_bar);
}

static void hide_message(dialog *d)
{
    gtk_widget_hide(d->info_bar);
}

/* What the user can do about an error, by its kind. */
static const char *what_to_do(const GError *e)
{
    if (e->domain != SDP_ERROR)
        return NULL;
    switch ((sdp_error_code)e->code) {
    case SDP_ERROR_MODEL:
        return "Choose another model above, or put a Stable Diffusion 1.x or 2.x checkpoint "
               "(.safetensors) into the sd-models folder of your GIMP profile.";
    case SDP_ERROR_MEMORY:
        return "Lower the model resolution (under Advanced) or select a smaller area; closing "
               "other programs frees memory too.";
    case SDP_ERROR_CALLING:
    case SDP_ERROR_FAILED:
    case SDP_ERROR_CANCELLED:
        break;
    }
    return NULL;
}

static void show_error(dialog *d, const GError *e)
{
    const char *todo = what_to_do(e);
    if (e->domain == SDP_ERROR && e->code == SDP_ERROR_MODEL &&
        sdui_chooser_count(d->chooser) == 0)
        todo = "Or choose a checkpoint elsewhere with \"Other…\".";
    show_message(d, GTK_MESSAGE_ERROR, e->message, todo);
}

/* ---------------------------------------------------------------------------------------
 * Model and presets
 * ------------------------------------------------------------------------------------- */

static const char *sampler_label(sd_sampler_kind k)
{
    static const char *const names[] = {"Euler", "Euler ancestral", "DDIM", "DPM++ 2M", "LCM"};
    return (unsigned)k < G_N_ELEMENTS(names) ? names[k] : "?";
}

/* The note under the chooser: what the model is and what its presets are. */
static void show_model(dialog *d)
{
    sd_model_info info;
    sd_gen_params def;
    const char *problem;
    if (!sdui_chooser_info(d->chooser, &info, &def, &problem)) {
        gtk_label_set_text(GTK_LABEL(d->model_note), "");
        if (problem)
            show_message(d, GTK_MESSAGE_WARNING, problem,
                         "Choose another model, or a file with \"Other…\".");
        return;
    }
    gchar *note = g_strdup_printf("%d px · %s%s · %d step%s · guidance %g", def.resolution,
                                  sampler_label(def.sampler), def.karras ? " Karras" : "",
                                  def.steps, def.steps == 1 ? "" : "s", def.cfg);
    gtk_label_set_text(GTK_LABEL(d->model_note), note);
    g_free(note);
    if (problem)
        show_message(d, GTK_MESSAGE_WARNING, problem,
                     "Choose another model, or a file with \"Other…\".");
    else
        hide_message(d);
}

/* The model family's presets (sd_gen_params_resolve): Turbo 1 step without guidance, LCM
 * 4 steps, others DPM++ 2M Karras 20 steps at 7.5.  Resolution and prediction go back to
 * "from the model". */
static void apply_presets(dialog *d)
{
    sd_model_info info;
    sd_gen_params def;
    const char *problem;
    if (!sdui_chooser_info(d->chooser, &info, &def, &problem))
        return;
    sdp_vals v = d->vals;
    sdui_fields_get(d->fields, &v, NULL);
    v.sampler = def.sampler;
    v.karras = def.karras;
    v.spacing = def.spacing;
    v.steps = def.steps;
    v.cfg = def.cfg;
    v.resolution = 0;
    v.prediction = 0;
    if (d->proc->filter == SDP_IMG2IMG || d->proc->filter == SDP_INPAINT)
        v.strength = def.strength;
    sdui_fields_set(d->fields, &v);
}

static void on_model_changed(gpointer data)
{
    dialog *d = data;
    apply_presets(d);
    show_model(d);
}

/* ---------------------------------------------------------------------------------------
 * Denoise: the noise level
 * ------------------------------------------------------------------------------------- */

static void show_noise(dialog *d, float sigma, const char *problem)
{
    gchar *text;
    if (problem)
        text = g_strdup_printf("Noise level: not measured (%s)", problem);
    else
        text = g_strdup_printf("Estimated noise level: %.1f (of 255) · automatic strength %.2f",
                               sigma, sd_denoise_strength_for_sigma(sigma));
    if (!problem)
        sdui_fields_set_under_toggle(d->fields, "strength", sd_denoise_strength_for_sigma(sigma));
    gtk_label_set_text(GTK_LABEL(d->noise), text);
    g_free(text);
}

static void measure_noise(dialog *d)
{
    GError *err = NULL;
    float sigma = 0;
    if (sdp_estimate_noise(d->image, d->drawable, &sigma, &err)) {
        show_noise(d, sigma, NULL);
    } else {
        show_noise(d, 0, err->message);
        g_error_free(err);
    }
}

/* ---------------------------------------------------------------------------------------
 * Generation
 * ------------------------------------------------------------------------------------- */

static void set_running(dialog *d, gboolean running)
{
    gtk_widget_set_sensitive(d->generate, !running);
    gtk_widget_set_sensitive(sdui_chooser_widget(d->chooser), !running);
    gtk_widget_set_sensitive(d->cancel, running);
    gchar *title = running ? g_strdup_printf("%s (generating)", d->proc->title)
                           : g_strdup(d->proc->title);
    gtk_window_set_title(GTK_WINDOW(d->window), title);
    g_free(title);
}

static void show_progress(dialog *d, const sd_progress *p, gboolean have)
{
    GtkProgressBar *bar = GTK_PROGRESS_BAR(d->progress);
    if (!have) {
        gtk_progress_bar_set_text(bar, "Loading the model…");
        gtk_progress_bar_pulse(bar);
        return;
    }
    gchar *text = NULL;
    switch (p->phase) {
    case SD_PHASE_TEXT:
        text = g_strdup("Encoding the prompt…");
        break;
    case SD_PHASE_ENCODE:
        text = g_strdup("Encoding the image…");
        break;
    case SD_PHASE_SAMPLE:
        if (p->eta >= 0)
            text = g_strdup_printf("Step %d of %d · %.0f s left", p->step, p->n_steps,
                                   p->eta + 0.5);
        else
            text = g_strdup_printf("Step %d of %d", p->step, p->n_steps);
        break;
    case SD_PHASE_DECODE:
        text = g_strdup("Decoding…");
        break;
    }
    gtk_progress_bar_set_text(bar, text);
    g_free(text);
    if (p->n_steps > 0)
        gtk_progress_bar_set_fraction(bar, CLAMP((double)p->step / p->n_steps, 0.0, 1.0));
}

static void set_preview(dialog *d, GdkPixbuf *pb)
{
    gtk_image_set_from_pixbuf(GTK_IMAGE(d->preview), pb);
}

/* The generation has ended: commit its result (main thread), or say why there is none. */
static void finished(dialog *d)
{
    GError *err = NULL;
    gboolean taesd = FALSE;
    gboolean ok = sdui_worker_finish(d->worker, &taesd, &err);
    d->worker = NULL;
    double secs = (g_get_monotonic_time() - d->started) / 1e6;
    GtkProgressBar *bar = GTK_PROGRESS_BAR(d->progress);
    gtk_frame_set_label(GTK_FRAME(d->preview_frame),
                        taesd ? "Preview (TAESD)" : "Preview (approximate colours)");
    sdp_result res = {-1, -1, 0};
    if (ok && !d->closing)
        ok = sdp_job_commit(d->job, GIMP_RUN_INTERACTIVE, &res, &err);
    else if (ok)
        g_set_error_literal(&err, SDP_ERROR, SDP_ERROR_CANCELLED, "cancelled");
    if (ok) {
        const sd_gen_result *r = sdp_job_gen_result(d->job);
        GdkPixbuf *pb = sdui_pixbuf_from_image(sdp_job_layer_pixels(d->job), SDUI_PREVIEW_SIZE);
        if (pb) {
            set_preview(d, pb);
            g_object_unref(pb);
        }
        gchar *text = g_strdup_printf("Done in %.1f s · seed %d", secs, (int)res.seed);
        gtk_progress_bar_set_text(bar, text);
        gtk_progress_bar_set_fraction(bar, 1.0);
        g_free(text);
        d->generated = TRUE;
        d->result = res;
        sdui_fields_set_last_seed(d->fields, res.seed);
        sdp_seed_store_last(d->proc->name, res.seed);
        sdp_vals_store_last(d->proc->name, &d->vals);
        if (d->proc->filter == SDP_DENOISE && r->noise_sigma >= 0)
            show_noise(d, r->noise_sigma, NULL);
        hide_message(d);
    } else if (err->domain == SDP_ERROR && err->code == SDP_ERROR_CANCELLED) {
        gtk_progress_bar_set_text(bar, "Cancelled: the image was not changed");
        gtk_progress_bar_set_fraction(bar, 0.0);
    } else {
        gtk_progress_bar_set_text(bar, "Failed: the image was not changed");
        gtk_progress_bar_set_fraction(bar, 0.0);
        show_error(d, err);
    }
    if (err)
        g_error_free(err);
    sdp_job_free(d->job);
    d->job = NULL;
    set_running(d, FALSE);
    if (d->closing)
        gtk_main_quit();
}

static gboolean on_poll(gpointer data)
{
    dialog *d = data;
    sd_progress p;
    gboolean have;
    GdkPixbuf *pb;
    gboolean running = sdui_worker_poll(d->worker, &p, &have, &pb);
    if (pb) {
        set_preview(d, pb);
        g_object_unref(pb);
    }
    if (!d->closing && !sdui_worker_cancelled(d->worker))
        show_progress(d, &p, have);
    if (running)
        return G_SOURCE_CONTINUE;
    d->poll = 0;
    finished(d);
    return G_SOURCE_REMOVE;
}

/* The widgets' values with the chosen model. */
static gboolean read_vals(dialog *d, sdp_vals *v, GError **error)
{
    *v = d->vals;
    g_strlcpy(v->model, sdui_chooser_value(d->chooser), sizeof v->model);
    return sdui_fields_get(d->fields, v, error);
}

static void generate(dialog *d)
{
    if (d->worker)
        return;
    GError *err = NULL;
    sdp_vals v;
    if (!read_vals(d, &v, &err) || !sdp_vals_check(d->proc->filter, &v, &err) ||
        !sdp_job_prepare(d->proc->filter, d->proc->new_image, d->image, d->drawable, &v, &d->job,
                         &err)) {
        show_error(d, err);
        g_error_free(err);
        return;
    }
    d->vals = v;
    hide_message(d);
    gchar *taesd = sdp_taesd_find(sdp_job_model_path(d->job));
    d->started = g_get_monotonic_time();
    d->worker = sdui_worker_start(d->job, d->engine, taesd);
    g_free(taesd);
    set_running(d, TRUE);
    gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(d->progress), 0.0);
    show_progress(d, NULL, FALSE);
    d->poll = g_timeout_add(50, on_poll, d);
}

static void on_cancel(GtkButton *b, gpointer data)
{
    dialog *d = data;
    (void)b;
    if (!d->worker)
        return;
    sdui_worker_cancel(d->worker);
    gtk_progress_bar_set_text(GTK_PROGRESS_BAR(d->progress), "Cancelling…");
}

static void on_response(GtkDialog *w, gint response, gpointer data)
{
    dialog *d = data;
    (void)w;
    if (response == RESPONSE_GENERATE) {
        generate(d);
        return;
    }
    /* Close, Escape or the window closed: stop a running generation first */
    if (d->worker) {
        d->closing = TRUE;
        sdui_worker_cancel(d->worker);
        gtk_widget_set_sensitive(d->window, FALSE);
        gtk_progress_bar_set_text(GTK_PROGRESS_BAR(d->progress), "Cancelling…");
        return;
    }
    gtk_main_quit();
}

/* ---------------------------------------------------------------------------------------
 * Layout
 * ------------------------------------------------------------------------------------- */

static const char *options_title(sdp_filter f)
{
    switch (f) {
    case SDP_TXT2IMG:
        return "Size";
    case SDP_IMG2IMG:
        return "Image to Image";
    case SDP_INPAINT:
        return "Inpainting";
    case SDP_OUTPAINT:
        return "Canvas extension";
    case SDP_DENOISE:
        return "Denoising";
    case SDP_N_FILTERS:
        break;
    }
    return "Options";
}

static GtkWidget *frame(const char *title, GtkWidget *child)
{
    GtkWidget *f = gimp_frame_new(title);
    gtk_container_add(GTK_CONTAINER(f), child);
    return f;
}

/* A bold heading over a section's table, both starting at the left edge (the labels in the
 * table are indented), so that the widget columns of all sections line up. */
static GtkWidget *section(const char *title, GtkWidget *content)
{
    GtkWidget *box = gtk_vbox_new(FALSE, 6);
    GtkWidget *heading = gtk_label_new(title);
    gimp_label_set_attributes(GTK_LABEL(heading), PANGO_ATTR_WEIGHT, PANGO_WEIGHT_BOLD, -1);
    gtk_misc_set_alignment(GTK_MISC(heading), 0.0, 0.5);
    gtk_box_pack_start(GTK_BOX(box), heading, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(box), content, FALSE, FALSE, 0);
    return box;
}

static GtkWidget *left_column(dialog *d)
{
    sdp_filter f = d->proc->filter;
    GtkWidget *col = gtk_vbox_new(FALSE, 12);
    gtk_box_pack_start(GTK_BOX(col), sdui_fields_table(d->fields, SDP_UI_TOP), FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(col),
                       section("Sampling", sdui_fields_table(d->fields, SDP_UI_SAMPLING)),
                       FALSE, FALSE, 0);
    GtkWidget *opts = sdui_fields_table(d->fields, SDP_UI_FILTER);
    if (f == SDP_DENOISE) {
        GtkWidget *box = gtk_vbox_new(FALSE, 6);
        d->noise = gtk_label_new(NULL);
        gtk_misc_set_alignment(GTK_MISC(d->noise), 0.0, 0.5);
        gtk_misc_set_padding(GTK_MISC(d->noise), SDUI_INDENT, 0);
        gimp_help_set_help_data(d->noise,
                                "Measured on what Denoise reads (the selected part of the layer, "
                                "or all of it); with Automatic the strength follows it",
                                NULL);
        gtk_box_pack_start(GTK_BOX(box), d->noise, FALSE, FALSE, 0);
        gtk_box_pack_start(GTK_BOX(box), opts, FALSE, FALSE, 0);
        opts = box;
    }
    if (opts)
        gtk_box_pack_start(GTK_BOX(col), section(options_title(f), opts), FALSE, FALSE, 0);

    GtkWidget *adv = gtk_expander_new_with_mnemonic("<b>_Advanced</b>");
    gtk_expander_set_use_markup(GTK_EXPANDER(adv), TRUE);
    gtk_expander_set_spacing(GTK_EXPANDER(adv), 6);
    gtk_container_add(GTK_CONTAINER(adv), sdui_fields_table(d->fields, SDP_UI_ADVANCED));
    gtk_box_pack_start(GTK_BOX(col), adv, FALSE, FALSE, 0);
    return col;
}

static GtkWidget *right_column(dialog *d)
{
    GtkWidget *col = gtk_vbox_new(FALSE, 6);
    d->preview = gtk_image_new();
    gtk_widget_set_size_request(d->preview, SDUI_PREVIEW_SIZE, SDUI_PREVIEW_SIZE);
    GtkWidget *inner = gtk_frame_new(NULL);
    gtk_frame_set_shadow_type(GTK_FRAME(inner), GTK_SHADOW_IN);
    gtk_container_add(GTK_CONTAINER(inner), d->preview);
    d->preview_frame = frame("Preview", inner);
    gimp_help_set_help_data(inner,
                            "Before a generation: the layer.  While generating: the current "
                            "estimate of the region being generated (TAESD when a "
                            "taesd*.safetensors is next to the models, else approximate "
                            "colours).  After it: the new layer.",
                            NULL);
    gtk_box_pack_start(GTK_BOX(col), d->preview_frame, FALSE, FALSE, 0);

    d->progress = gtk_progress_bar_new();
    gtk_progress_bar_set_text(GTK_PROGRESS_BAR(d->progress), "Ready");
    gtk_progress_bar_set_ellipsize(GTK_PROGRESS_BAR(d->progress), PANGO_ELLIPSIZE_END);
    gtk_box_pack_start(GTK_BOX(col), d->progress, FALSE, FALSE, 0);

    d->cancel = gtk_button_new_with_mnemonic("Ca_ncel");
    gtk_button_set_image(GTK_BUTTON(d->cancel),
                         gtk_image_new_from_stock(GTK_STOCK_STOP, GTK_ICON_SIZE_BUTTON));
    gimp_help_set_help_data(d->cancel,
                            "Stop the generation; the image is left as it was", NULL);
    gtk_widget_set_sensitive(d->cancel, FALSE);
    g_signal_connect(d->cancel, "clicked", G_CALLBACK(on_cancel), d);
    GtkWidget *row = gtk_hbox_new(FALSE, 6);
    gtk_box_pack_end(GTK_BOX(row), d->cancel, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(col), row, FALSE, FALSE, 0);

    if (!d->proc->new_image) {
        GdkPixbuf *thumb = sdp_drawable_thumbnail(d->drawable, SDUI_PREVIEW_SIZE);
        if (thumb) {
            set_preview(d, thumb);
            g_object_unref(thumb);
        }
    }
    return col;
}

static void build(dialog *d)
{
    d->window = gimp_dialog_new(d->proc->title, SDP_BINARY, NULL, 0, gimp_standard_help_func,
                                d->proc->name, GTK_STOCK_CLOSE, GTK_RESPONSE_CLOSE, "_Generate",
                                RESPONSE_GENERATE, NULL);
    gtk_dialog_set_alternative_button_order(GTK_DIALOG(d->window), RESPONSE_GENERATE,
                                            GTK_RESPONSE_CLOSE, -1);
    gtk_dialog_set_default_response(GTK_DIALOG(d->window), RESPONSE_GENERATE);
    gimp_window_set_transient(GTK_WINDOW(d->window));
    d->generate = gtk_dialog_get_widget_for_response(GTK_DIALOG(d->window), RESPONSE_GENERATE);
    gtk_button_set_image(GTK_BUTTON(d->generate),
                         gtk_image_new_from_stock(GTK_STOCK_EXECUTE, GTK_ICON_SIZE_BUTTON));
    gimp_help_set_help_data(d->generate,
                            "Generate with these settings; the result becomes a new layer (one "
                            "undo step) and the dialog stays open for another try",
                            NULL);
    g_signal_connect(d->window, "response", G_CALLBACK(on_response), d);

    GtkWidget *main_box = gtk_vbox_new(FALSE, 12);
    gtk_container_set_border_width(GTK_CONTAINER(main_box), 12);
    gtk_box_pack_start(GTK_BOX(gtk_dialog_get_content_area(GTK_DIALOG(d->window))), main_box,
                       TRUE, TRUE, 0);
    GtkWidget *cols = gtk_hbox_new(FALSE, 18);
    gtk_box_pack_start(GTK_BOX(cols), left_column(d), TRUE, TRUE, 0);
    gtk_box_pack_start(GTK_BOX(cols), right_column(d), FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(main_box), cols, TRUE, TRUE, 0);

    d->info_bar = gtk_info_bar_new();
    GtkWidget *msg = gtk_hbox_new(FALSE, 12);
    d->info_icon = gtk_image_new();
    gtk_misc_set_alignment(GTK_MISC(d->info_icon), 0.5, 0.0);
    d->info_label = gtk_label_new(NULL);
    gtk_label_set_line_wrap(GTK_LABEL(d->info_label), TRUE);
    gtk_label_set_selectable(GTK_LABEL(d->info_label), TRUE);
    gtk_misc_set_alignment(GTK_MISC(d->info_label), 0.0, 0.0);
    gtk_widget_set_size_request(d->info_label, 640, -1);
    gtk_box_pack_start(GTK_BOX(msg), d->info_icon, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(msg), d->info_label, TRUE, TRUE, 0);
    gtk_container_add(GTK_CONTAINER(gtk_info_bar_get_content_area(GTK_INFO_BAR(d->info_bar))),
                      msg);
    gtk_box_pack_start(GTK_BOX(main_box), d->info_bar, FALSE, FALSE, 0);

    gtk_widget_show_all(main_box);
    gtk_widget_hide(d->info_bar);
}

/* ---------------------------------------------------------------------------------------
 * The entry point
 * ------------------------------------------------------------------------------------- */

gboolean sdui_run(const sdp_proc *p, gint32 image, gint32 drawable, sdp_vals *v,
                  gboolean stored, sdp_result *res, GError **error)
{
    gimp_ui_init(SDP_BINARY, FALSE);
    dialog dd = {.proc = p, .image = image, .drawable = drawable, .vals = *v};
    dialog *d = &dd;
    d->engine = sdp_engine_new();
    d->chooser = sdui_chooser_new(p->filter, d->vals.model, on_model_changed, d);
    d->model_note = gtk_label_new(NULL);
    gimp_help_set_help_data(d->model_note,
                            "The model's native resolution and its default sampler, steps and "
                            "guidance, filled in when you choose it",
                            NULL);
    gtk_misc_set_alignment(GTK_MISC(d->model_note), 0.0, 0.5);
    gtk_label_set_ellipsize(GTK_LABEL(d->model_note), PANGO_ELLIPSIZE_END);
    gimp_label_set_attributes(GTK_LABEL(d->model_note), PANGO_ATTR_SCALE, PANGO_SCALE_SMALL,
                              -1);
    sdui_model_row model = {sdui_chooser_widget(d->chooser), sdui_chooser_combo(d->chooser),
                            d->model_note};
    d->fields = sdui_fields_new(p->filter, &model);
    build(d);
    sdui_fields_set(d->fields, &d->vals);
    sdui_fields_set_last_seed(d->fields, sdp_seed_load_last(p->name));
    if (!stored)
        apply_presets(d);
    show_model(d);
    if (sdui_chooser_count(d->chooser) == 0) {
        gchar **dirs = sdp_model_dirs();
        gchar *where = g_strjoinv(", ", dirs);
        gchar *todo = g_strdup_printf("Put a checkpoint (.safetensors) or a diffusers folder "
                                      "into one of these folders: %s; or choose one with "
                                      "\"Other…\".",
                                      where);
        show_message(d, GTK_MESSAGE_ERROR, "No Stable Diffusion model found.", todo);
        g_free(todo);
        g_free(where);
        g_strfreev(dirs);
    }
    if (p->filter == SDP_DENOISE)
        measure_noise(d);
    gtk_widget_show(d->window);
    gtk_main();

    /* the stored last values are those of the last committed generation (finished()):
     * what is typed and not generated with, or cancelled, is not remembered */
    read_vals(d, v, NULL);
    gtk_widget_destroy(d->window);
    sdui_chooser_free(d->chooser);
    sdui_fields_free(d->fields);
    sdp_engine_free(d->engine);
    if (!d->generated) {
        g_set_error_literal(error, SDP_ERROR, SDP_ERROR_CANCELLED,
                            "the dialog was closed without generating");
        return FALSE;
    }
    *res = d->result;
    return TRUE;
}
