/* chooser.c - the dialog's model chooser: a combo box of the checkpoints found in the model
 * folders (sdp_model_list), each labelled with what a header-only probe says it is (family,
 * variant, dtype), plus an "Other…" button for a file or a diffusers folder elsewhere.
 * Models the filter cannot use (an inpainting checkpoint in txt2img, an unreadable file)
 * are listed, with the reason, but cannot be selected.  The probe also gives the presets the
 * engine would use with each model (sd_gen_params_resolve), which the dialog applies when
 * the user picks another model. */
#include "sdui.h"

#include <string.h>

enum { COL_LABEL, COL_INDEX, COL_USABLE, N_COLS };

typedef struct entry {
    gchar *name;                 /* shown */
    gchar *value;                /* the "model" parameter */
    gchar *path;
    gboolean ok;                 /* the probe succeeded */
    gboolean usable;             /* ... and this filter can use it */
    sd_model_info info;
    sd_gen_params defaults;
    gchar *problem;              /* why not usable, NULL when usable */
} entry;

struct sdui_chooser {
    sdp_filter f;
    GtkWidget *box, *combo, *other;
    GtkListStore *store;
    GPtrArray *entries;
    void (*changed)(gpointer);
    gpointer user;
    gboolean setting;            /* the code selects: no callback */
};

static void entry_free(gpointer p)
{
    entry *e = p;
    g_free(e->name);
    g_free(e->value);
    g_free(e->path);
    g_free(e->problem);
    g_free(e);
}

/* A short description of a model: "SD 1.x · F16", "SD 2.x Turbo · BF16". */
static gchar *summary_of(const sd_model_info *info)
{
    const char *family = "unknown family";
    switch (info->family) {
    case SD_FAMILY_SD1:
        family = "SD 1.x";
        break;
    case SD_FAMILY_SD1_INPAINT:
        family = "SD 1.x inpainting";
        break;
    case SD_FAMILY_SD2:
        family = "SD 2.x";
        break;
    case SD_FAMILY_SD2_INPAINT:
        family = "SD 2.x inpainting";
        break;
    case SD_FAMILY_TAESD:
        family = "TAESD";
        break;
    case SD_FAMILY_UNKNOWN:
    case SD_FAMILY_COUNT:
        break;
    }
    const char *variant = info->variant == SD_VARIANT_TURBO ? " Turbo"
                          : info->variant == SD_VARIANT_LCM ? " LCM"
                                                            : "";
    const char *pred = info->prediction == SD_PREDICT_V ? ", v-prediction" : "";
    return g_strdup_printf("%s%s%s · %s", family, variant, pred, sd_dtype_name(info->dtype));
}

/* Probe a model and decide whether filter f can use it. */
static entry *entry_new(sdp_filter f, const char *name, const char *value, const char *path)
{
    entry *e = g_new0(entry, 1);
    e->name = g_str_has_suffix(name, ".safetensors")
                  ? g_strndup(name, strlen(name) - strlen(".safetensors"))
                  : g_strdup(name);
    e->value = g_strdup(value);
    e->path = g_strdup(path);
    GError *err = NULL;
    e->ok = sdp_model_probe(path, sdp_filter_task(f), &e->info, &e->defaults, &err);
    if (!e->ok) {
        e->problem = g_strdup_printf("%s cannot be used: %s", e->name, err->message);
        g_error_free(err);
    } else if (e->info.family == SD_FAMILY_TAESD || !e->info.has_unet ||
               !e->info.has_text_encoder || !e->info.has_vae) {
        e->problem = g_strdup_printf("%s is not a complete Stable Diffusion checkpoint (it "
                                     "needs a UNet, a text encoder and a VAE)",
                                     e->name);
    } else if (e->info.unet_in_channels == 9 && f != SDP_INPAINT && f != SDP_OUTPAINT) {
        e->problem = g_strdup_printf("%s is an inpainting model: it serves Inpaint and "
                                     "Outpaint only",
                                     e->name);
    }
    e->usable = e->problem == NULL;
    return e;
}

static gchar *entry_label(const entry *e)
{
    if (!e->ok)
        return g_markup_printf_escaped("%s  <span size='smaller'>(cannot be read)</span>",
                                       e->name);
    gchar *summary = summary_of(&e->info);
    const char *note = e->usable ? "" : e->info.unet_in_channels == 9 ? ", inpaint/outpaint only"
                                                                      : ", incomplete";
    gchar *label = g_markup_printf_escaped("%s  <span size='smaller'>%s%s</span>", e->name,
                                           summary, note);
    g_free(summary);
    return label;
}

static int add_entry(sdui_chooser *c, entry *e)
{
    g_ptr_array_add(c->entries, e);
    int index = (int)c->entries->len - 1;
    gchar *label = entry_label(e);
    GtkTreeIter it;
    gtk_list_store_append(c->store, &it);
    gtk_list_store_set(c->store, &it, COL_LABEL, label, COL_INDEX, index, COL_USABLE, e->usable,
                       -1);
    g_free(label);
    return index;
}

static const entry *selected(const sdui_chooser *c)
{
    int k = gtk_combo_box_get_active(GTK_COMBO_BOX(c->combo));
    return k >= 0 && k < (int)c->entries->len ? c->entries->pdata[k] : NULL;
}

static void select_index(sdui_chooser *c, int k)
{
    c->setting = TRUE;
    gtk_combo_box_set_active(GTK_COMBO_BOX(c->combo), k);
    c->setting = FALSE;
}

static void on_combo_changed(GtkComboBox *combo, gpointer data)
{
    sdui_chooser *c = data;
    (void)combo;
    if (!c->setting && c->changed)
        c->changed(c->user);
}

/* ---------------------------------------------------------------------------------------
 * "Other…"
 * ------------------------------------------------------------------------------------- */

static void on_other(GtkButton *button, gpointer data)
{
    sdui_chooser *c = data;
    GtkWidget *top = gtk_widget_get_toplevel(GTK_WIDGET(button));
    GtkWidget *dlg = gtk_file_chooser_dialog_new(
        "Choose a Stable Diffusion model", GTK_IS_WINDOW(top) ? GTK_WINDOW(top) : NULL,
        GTK_FILE_CHOOSER_ACTION_OPEN, GTK_STOCK_CANCEL, GTK_RESPONSE_CANCEL, GTK_STOCK_OPEN,
        GTK_RESPONSE_ACCEPT, NULL);
    gtk_dialog_set_alternative_button_order(GTK_DIALOG(dlg), GTK_RESPONSE_ACCEPT,
                                            GTK_RESPONSE_CANCEL, -1);
    GtkFileFilter *models = gtk_file_filter_new();
    gtk_file_filter_set_name(models, "Checkpoints (*.safetensors) and diffusers folders "
                                     "(their model_index.json)");
    gtk_file_filter_add_pattern(models, "*.safetensors");
    gtk_file_filter_add_pattern(models, "model_index.json");
    gtk_file_chooser_add_filter(GTK_FILE_CHOOSER(dlg), models);
    GtkFileFilter *all = gtk_file_filter_new();
    gtk_file_filter_set_name(all, "All files");
    gtk_file_filter_add_pattern(all, "*");
    gtk_file_chooser_add_filter(GTK_FILE_CHOOSER(dlg), all);
    gchar **dirs = sdp_model_dirs();
    for (int i = 0; dirs[i]; i++)
        if (g_file_test(dirs[i], G_FILE_TEST_IS_DIR)) {
            gtk_file_chooser_set_current_folder(GTK_FILE_CHOOSER(dlg), dirs[i]);
            break;
        }
    g_strfreev(dirs);
    if (gtk_dialog_run(GTK_DIALOG(dlg)) == GTK_RESPONSE_ACCEPT) {
        gchar *file = gtk_file_chooser_get_filename(GTK_FILE_CHOOSER(dlg));
        gchar *base = file ? g_path_get_basename(file) : NULL;
        gchar *path = base && strcmp(base, "model_index.json") == 0 ? g_path_get_dirname(file)
                                                                    : g_strdup(file);
        if (path) {
            gchar *name = g_path_get_basename(path);
            int k = add_entry(c, entry_new(c->f, name, path, path));
            g_free(name);
            gtk_combo_box_set_active(GTK_COMBO_BOX(c->combo), k);
        }
        g_free(path);
        g_free(base);
        g_free(file);
    }
    gtk_widget_destroy(dlg);
}

/* ---------------------------------------------------------------------------------------
 * The chooser
 * ------------------------------------------------------------------------------------- */

/* The entry `value` names: its value, its path, or its name without ".safetensors". */
static int find(const sdui_chooser *c, const char *value)
{
    for (guint k = 0; k < c->entries->len; k++) {
        const entry *e = c->entries->pdata[k];
        if (strcmp(e->value, value) == 0 || strcmp(e->path, value) == 0 ||
            strcmp(e->name, value) == 0)
            return (int)k;
    }
    return -1;
}

sdui_chooser *sdui_chooser_new(sdp_filter f, const char *value, void (*changed)(gpointer),
                               gpointer user)
{
    sdui_chooser *c = g_new0(sdui_chooser, 1);
    c->f = f;
    c->changed = changed;
    c->user = user;
    c->entries = g_ptr_array_new_with_free_func(entry_free);
    c->store = gtk_list_store_new(N_COLS, G_TYPE_STRING, G_TYPE_INT, G_TYPE_BOOLEAN);
    c->combo = gtk_combo_box_new_with_model(GTK_TREE_MODEL(c->store));
    GtkCellRenderer *cell = gtk_cell_renderer_text_new();
    g_object_set(cell, "ellipsize", PANGO_ELLIPSIZE_END, NULL);
    gtk_cell_layout_pack_start(GTK_CELL_LAYOUT(c->combo), cell, TRUE);
    gtk_cell_layout_set_attributes(GTK_CELL_LAYOUT(c->combo), cell, "markup", COL_LABEL,
                                   "sensitive", COL_USABLE, NULL);
    gimp_help_set_help_data(c->combo,
                            "The checkpoints found in the sd-models folder of the GIMP profile "
                            "and in the folders of $SD_MODEL_PATH, with their family and "
                            "storage type",
                            NULL);

    GPtrArray *list = sdp_model_list();
    for (guint k = 0; k < list->len; k++) {
        const sdp_model_entry *m = list->pdata[k];
        add_entry(c, entry_new(f, m->name, m->value, m->path));
    }
    g_ptr_array_unref(list);
    int k = value[0] ? find(c, value) : -1;
    if (k < 0 && g_path_is_absolute(value) && g_file_test(value, G_FILE_TEST_EXISTS)) {
        gchar *name = g_path_get_basename(value);
        k = add_entry(c, entry_new(f, name, value, value));
        g_free(name);
    }
    for (guint i = 0; k < 0 && i < c->entries->len; i++)
        if (((const entry *)c->entries->pdata[i])->usable)
            k = (int)i;
    select_index(c, k);
    g_signal_connect(c->combo, "changed", G_CALLBACK(on_combo_changed), c);

    c->other = gtk_button_new_with_label("Other…");
    gtk_button_set_image(GTK_BUTTON(c->other),
                         gtk_image_new_from_stock(GTK_STOCK_OPEN, GTK_ICON_SIZE_BUTTON));
    gimp_help_set_help_data(c->other,
                            "Choose a checkpoint file (.safetensors) or a diffusers folder (its "
                            "model_index.json) that is not in the list",
                            NULL);
    g_signal_connect(c->other, "clicked", G_CALLBACK(on_other), c);
    gtk_widget_set_size_request(c->combo, 120, -1);
    c->box = gtk_hbox_new(FALSE, 6);
    gtk_box_pack_start(GTK_BOX(c->box), c->combo, TRUE, TRUE, 0);
    gtk_box_pack_start(GTK_BOX(c->box), c->other, FALSE, FALSE, 0);
    return c;
}

void sdui_chooser_free(sdui_chooser *c)
{
    if (!c)
        return;
    g_ptr_array_unref(c->entries);
    g_object_unref(c->store);
    g_free(c);
}

GtkWidget *sdui_chooser_widget(const sdui_chooser *c)
{
    return c->box;
}

GtkWidget *sdui_chooser_combo(const sdui_chooser *c)
{
    return c->combo;
}

int sdui_chooser_count(const sdui_chooser *c)
{
    return (int)c->entries->len;
}

const char *sdui_chooser_value(const sdui_chooser *c)
{
    const entry *e = selected(c);
    return e ? e->value : "";
}

gboolean sdui_chooser_info(const sdui_chooser *c, sd_model_info *info, sd_gen_params *defaults,
                           const char **problem)
{
    const entry *e = selected(c);
    *problem = e ? e->problem : NULL;
    if (!e || !e->ok)
        return FALSE;
    *info = e->info;
    *defaults = e->defaults;
    return TRUE;
}
