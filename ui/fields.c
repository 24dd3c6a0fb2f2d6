/* fields.c - the dialog widgets of a filter's parameters, generated from sd_params.def: each
 * parameter's ui hint chooses its widget (text view, spin, GIMP scale entry, check button,
 * combo box, the seed row), its section and its place there; its label (with mnemonic) and
 * its tooltip (the blurb) come from the same line.  Values move between the widgets and an
 * sdp_vals through the descriptor table of params.c, so a new parameter needs no code here.
 *
 * Special values: a spin or scale whose hint names a `special` text shows it for the
 * parameter's minimum ("auto" for steps 0, guidance -1, ...) and accepts it typed; a hint's
 * `toggle` adds an "Automatic" check button that sets the minimum (denoise strength); the
 * seed's "Random" toggle sets -1, and typing a seed clears it. */
#include "sdui.h"

#include <math.h>
#include <string.h>

const sdui_hint sdui_hints[] = {
#define SDP_STR(id, key, label, blurb, def, size, filters, ui) ui,
#define SDP_INT(id, key, label, blurb, def, lo, hi, filters, ui) ui,
#define SDP_FLOAT(id, key, label, blurb, def, lo, hi, filters, ui) ui,
#define SDP_BOOL(id, key, label, blurb, def, filters, ui) ui,
#define SDP_ENUM(id, key, label, blurb, def, lo, hi, name_fn, filters, ui) ui,
#include "sd_params.def"
#undef SDP_STR
#undef SDP_INT
#undef SDP_FLOAT
#undef SDP_BOOL
#undef SDP_ENUM
};

typedef struct field {
    const sdp_param *d;
    const sdui_hint *h;
    GtkWidget *widget;           /* text view, spin button, combo box or check button */
    GtkAdjustment *adj;          /* SPIN, SCALE, SEED: the value's adjustment */
    GtkObject *scale;            /* SCALE: the GimpScaleEntry */
    GtkWidget *toggle;           /* "Random" / "Automatic", NULL when none */
    gboolean setting;            /* the code, not the user, is changing the widgets */
} field;

struct sdui_fields {
    sdp_filter f;
    GtkWidget *tables[SDP_UI_N_SECTIONS];
    int rows[SDP_UI_N_SECTIONS];
    GtkSizeGroup *labels;
    int n;
    field *fields;
};

/* ---------------------------------------------------------------------------------------
 * Layout helpers
 * ------------------------------------------------------------------------------------- */

static GtkWidget *table_of(sdui_fields *fs, sdui_section s)
{
    if (!fs->tables[s]) {
        fs->tables[s] = gtk_table_new(1, 3, FALSE);
        gtk_table_set_col_spacings(GTK_TABLE(fs->tables[s]), 6);
        gtk_table_set_row_spacings(GTK_TABLE(fs->tables[s]), 6);
    }
    return fs->tables[s];
}

/* Every label joins one size group, so that the widget columns of all sections line up;
 * labels under a section heading are indented (the section's table starts where the
 * heading does). */
static void label_column(sdui_fields *fs, GtkWidget *label, sdui_section s)
{
    gtk_misc_set_alignment(GTK_MISC(label), 0.0, 0.5);
    if (s != SDP_UI_TOP)
        gtk_misc_set_padding(GTK_MISC(label), SDUI_INDENT, 0);
    gtk_size_group_add_widget(fs->labels, label);
}

/* A label "text:" with its '_' mnemonic pointing at target. */
static GtkWidget *new_label(sdui_fields *fs, sdui_section s, const char *text, GtkWidget *target)
{
    gchar *with_colon = g_strconcat(text, ":", NULL);
    GtkWidget *label = gtk_label_new_with_mnemonic(with_colon);
    g_free(with_colon);
    if (target)
        gtk_label_set_mnemonic_widget(GTK_LABEL(label), target);
    label_column(fs, label, s);
    return label;
}

/* A label + widget row at the end of a section's table; the label may be NULL. */
static void add_row(sdui_fields *fs, sdui_section s, GtkWidget *label, GtkWidget *widget)
{
    GtkTable *t = GTK_TABLE(table_of(fs, s));
    int r = fs->rows[s]++;
    gtk_table_resize(t, r + 1, 3);
    if (label)
        gtk_table_attach(t, label, 0, 1, r, r + 1, GTK_FILL, GTK_FILL, 0, 0);
    gtk_table_attach(t, widget, 1, 3, r, r + 1, GTK_EXPAND | GTK_FILL, GTK_FILL, 0, 0);
}

/* A widget that keeps its natural width at the left of its cell. */
static GtkWidget *left(GtkWidget *w)
{
    GtkWidget *box = gtk_hbox_new(FALSE, 6);
    gtk_box_pack_start(GTK_BOX(box), w, FALSE, FALSE, 0);
    return box;
}

/* ---------------------------------------------------------------------------------------
 * Special values and toggles
 * ------------------------------------------------------------------------------------- */

static gboolean spin_output(GtkSpinButton *sb, gpointer data)
{
    const char *special = data;
    GtkAdjustment *adj = gtk_spin_button_get_adjustment(sb);
    if (gtk_adjustment_get_value(adj) > gtk_adjustment_get_lower(adj))
        return FALSE;
    if (strcmp(gtk_entry_get_text(GTK_ENTRY(sb)), special) != 0)
        gtk_entry_set_text(GTK_ENTRY(sb), special);
    return TRUE;
}

static gint spin_input(GtkSpinButton *sb, gdouble *value, gpointer data)
{
    const char *special = data;
    gchar *text = g_strstrip(g_strdup(gtk_entry_get_text(GTK_ENTRY(sb))));
    gboolean is_special = g_ascii_strcasecmp(text, special) == 0;
    g_free(text);
    if (!is_special)
        return FALSE;
    *value = gtk_adjustment_get_lower(gtk_spin_button_get_adjustment(sb));
    return TRUE;
}

static void show_special(GtkWidget *spin, const char *special)
{
    /* a numeric spin button would refuse the text; "input" has no accumulator, so the last
     * handler's answer counts: after GimpSpinButton's class handler, which declines */
    gtk_spin_button_set_numeric(GTK_SPIN_BUTTON(spin), FALSE);
    g_signal_connect(spin, "output", G_CALLBACK(spin_output), (gpointer)special);
    g_signal_connect_after(spin, "input", G_CALLBACK(spin_input), (gpointer)special);
}

static void value_sensitive(field *fd, gboolean on)
{
    if (fd->scale)
        gimp_scale_entry_set_sensitive(fd->scale, on);
    else
        gtk_widget_set_sensitive(fd->widget, on);
}

static void on_auto_toggled(GtkToggleButton *b, gpointer data)
{
    value_sensitive(data, !gtk_toggle_button_get_active(b));
}

/* Typing a seed means "this seed": the Random toggle goes off. */
static void on_seed_edited(GtkEditable *e, gpointer data)
{
    field *fd = data;
    (void)e;
    if (!fd->setting)
        gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(fd->toggle), FALSE);
}

/* ---------------------------------------------------------------------------------------
 * One row per kind
 * ------------------------------------------------------------------------------------- */

static void tooltip(GtkWidget *w, const field *fd)
{
    gimp_help_set_help_data(w, fd->d->blurb, NULL);
}

static void row_text(sdui_fields *fs, field *fd)
{
    GtkWidget *view = gtk_text_view_new();
    gtk_text_view_set_wrap_mode(GTK_TEXT_VIEW(view), GTK_WRAP_WORD_CHAR);
    gtk_text_view_set_accepts_tab(GTK_TEXT_VIEW(view), FALSE);
    gtk_text_view_set_left_margin(GTK_TEXT_VIEW(view), 3);
    gtk_text_view_set_right_margin(GTK_TEXT_VIEW(view), 3);
    GtkWidget *sw = gtk_scrolled_window_new(NULL, NULL);
    gtk_scrolled_window_set_policy(GTK_SCROLLED_WINDOW(sw), GTK_POLICY_NEVER,
                                   GTK_POLICY_AUTOMATIC);
    gtk_scrolled_window_set_shadow_type(GTK_SCROLLED_WINDOW(sw), GTK_SHADOW_IN);
    gtk_container_add(GTK_CONTAINER(sw), view);
    PangoLayout *layout = gtk_widget_create_pango_layout(view, "Xg");
    int lh;
    pango_layout_get_pixel_size(layout, NULL, &lh);
    g_object_unref(layout);
    gtk_widget_set_size_request(sw, SDUI_FIELD_WIDTH, fd->h->digits * lh + 8);
    fd->widget = view;
    tooltip(view, fd);
    GtkWidget *label = new_label(fs, fd->h->section, fd->d->label, view);
    gtk_misc_set_alignment(GTK_MISC(label), 0.0, 0.0);
    tooltip(label, fd);
    add_row(fs, fd->h->section, label, sw);
}

static GtkWidget *new_spin(field *fd, double lo, double hi)
{
    fd->adj = GTK_ADJUSTMENT(gtk_adjustment_new(MAX(lo, 0), lo, hi, fd->h->step, fd->h->page, 0));
    GtkWidget *spin = gtk_spin_button_new(fd->adj, 1.0, (guint)fd->h->digits);
    gtk_spin_button_set_numeric(GTK_SPIN_BUTTON(spin), TRUE);
    gtk_entry_set_width_chars(GTK_ENTRY(spin), 8);
    gtk_entry_set_activates_default(GTK_ENTRY(spin), TRUE);
    if (fd->h->special)
        show_special(spin, fd->h->special);
    fd->widget = spin;
    tooltip(spin, fd);
    return spin;
}

static GtkWidget *auto_toggle(field *fd, const char *text)
{
    fd->toggle = gtk_check_button_new_with_mnemonic(text);
    tooltip(fd->toggle, fd);
    return fd->toggle;
}

static void row_spin(sdui_fields *fs, field *fd)
{
    GtkWidget *spin = new_spin(fd, fd->d->lo, fd->d->hi);
    GtkWidget *box = left(spin);
    GtkWidget *label = new_label(fs, fd->h->section, fd->d->label, spin);
    tooltip(label, fd);
    add_row(fs, fd->h->section, label, box);
}

static void row_seed(sdui_fields *fs, field *fd)
{
    GtkWidget *spin = new_spin(fd, 0, fd->d->hi);
    gtk_entry_set_width_chars(GTK_ENTRY(spin), 11);
    GtkWidget *box = left(spin);
    gtk_box_pack_start(GTK_BOX(box), auto_toggle(fd, "Random"), FALSE, FALSE, 0);
    gimp_help_set_help_data(fd->toggle,
                            "A new seed for every generation; the spin then shows the seed the "
                            "last generation used (turn Random off to keep it)",
                            NULL);
    g_signal_connect(spin, "changed", G_CALLBACK(on_seed_edited), fd);
    GtkWidget *label = new_label(fs, fd->h->section, fd->d->label, spin);
    tooltip(label, fd);
    add_row(fs, fd->h->section, label, box);
}

static void row_scale(sdui_fields *fs, field *fd)
{
    GtkTable *t = GTK_TABLE(table_of(fs, fd->h->section));
    int r = fs->rows[fd->h->section]++;
    gtk_table_resize(t, r + 1, 3);
    gchar *text = g_strconcat(fd->d->label, ":", NULL);
    fd->scale = gimp_scale_entry_new(t, 0, r, text, 120, 7, MAX(fd->h->lo, fd->d->lo),
                                     fd->h->lo, fd->h->hi, fd->h->step, fd->h->page,
                                     (guint)fd->h->digits, FALSE, fd->d->lo, fd->d->hi,
                                     fd->d->blurb, NULL);
    g_free(text);
    fd->adj = GTK_ADJUSTMENT(fd->scale);
    fd->widget = GIMP_SCALE_ENTRY_SPINBUTTON(fd->scale);
    gtk_entry_set_activates_default(GTK_ENTRY(fd->widget), TRUE);
    label_column(fs, GIMP_SCALE_ENTRY_LABEL(fd->scale), fd->h->section);
    if (fd->h->special)
        show_special(fd->widget, fd->h->special);
    if (fd->h->toggle & (1u << fs->f)) {
        GtkWidget *b = auto_toggle(fd, "Automat_ic");
        g_signal_connect(b, "toggled", G_CALLBACK(on_auto_toggled), fd);
        add_row(fs, fd->h->section, NULL, b);
    }
}

static void row_check(sdui_fields *fs, field *fd)
{
    fd->widget = gtk_check_button_new_with_mnemonic(fd->d->label);
    tooltip(fd->widget, fd);
    add_row(fs, fd->h->section, NULL, fd->widget);
}

/* The model chooser and the note under it, made by the dialog (chooser.c). */
static void row_model(sdui_fields *fs, field *fd, const sdui_model_row *m)
{
    GtkWidget *label = new_label(fs, fd->h->section, fd->d->label, m->target);
    tooltip(label, fd);
    add_row(fs, fd->h->section, label, m->widget);
    if (m->note)
        add_row(fs, fd->h->section, NULL, m->note);
}

static void row_combo(sdui_fields *fs, field *fd)
{
    GtkWidget *combo = g_object_new(GIMP_TYPE_INT_COMBO_BOX, NULL);
    gchar **labels = g_strsplit(fd->h->labels ? fd->h->labels : "", "|", -1);
    int lo = (int)fd->d->lo;
    for (int k = lo; k <= (int)fd->d->hi; k++) {
        guint i = (guint)(k - lo);
        const char *text = i < g_strv_length(labels) ? labels[i] : fd->d->name_fn(k);
        gimp_int_combo_box_append(GIMP_INT_COMBO_BOX(combo), GIMP_INT_STORE_VALUE, k,
                                  GIMP_INT_STORE_LABEL, text, -1);
    }
    g_strfreev(labels);
    fd->widget = combo;
    tooltip(combo, fd);
    GtkWidget *label = new_label(fs, fd->h->section, fd->d->label, combo);
    tooltip(label, fd);
    add_row(fs, fd->h->section, label, combo);
}

/* ---------------------------------------------------------------------------------------
 * The whole set
 * ------------------------------------------------------------------------------------- */

static gint by_place(gconstpointer a, gconstpointer b, gpointer unused)
{
    (void)unused;
    const sdui_hint *x = &sdui_hints[*(const int *)a], *y = &sdui_hints[*(const int *)b];
    if (x->section != y->section)
        return (int)x->section - (int)y->section;
    return x->row - y->row;
}

sdui_fields *sdui_fields_new(sdp_filter f, const sdui_model_row *model)
{
    sdui_fields *fs = g_new0(sdui_fields, 1);
    fs->f = f;
    fs->labels = gtk_size_group_new(GTK_SIZE_GROUP_HORIZONTAL);
    int *order = g_new(int, sdp_n_params);
    int n = 0;
    for (int i = 0; i < sdp_n_params; i++)
        if (sdp_param_takes(&sdp_params[i], f))
            order[n++] = i;
    g_qsort_with_data(order, n, sizeof *order, by_place, NULL);
    fs->fields = g_new0(field, n);
    fs->n = n;
    for (int k = 0; k < n; k++) {
        field *fd = &fs->fields[k];
        fd->d = &sdp_params[order[k]];
        fd->h = &sdui_hints[order[k]];
        switch (fd->h->kind) {
        case SDUI_TEXT:
            row_text(fs, fd);
            break;
        case SDUI_SEED:
            row_seed(fs, fd);
            break;
        case SDUI_SPIN:
            row_spin(fs, fd);
            break;
        case SDUI_SCALE:
            row_scale(fs, fd);
            break;
        case SDUI_CHECK:
            row_check(fs, fd);
            break;
        case SDUI_COMBO:
            row_combo(fs, fd);
            break;
        case SDUI_MODEL:
            row_model(fs, fd, model);
            break;
        }
    }
    g_free(order);
    return fs;
}

void sdui_fields_free(sdui_fields *fs)
{
    if (!fs)
        return;
    g_object_unref(fs->labels);
    g_free(fs->fields);
    g_free(fs);
}

GtkWidget *sdui_fields_table(const sdui_fields *fs, sdui_section s)
{
    return fs->tables[s];
}

/* ---------------------------------------------------------------------------------------
 * Values
 * ------------------------------------------------------------------------------------- */

static double get_number(const sdp_vals *v, const sdp_param *d)
{
    return d->type == SDP_T_FLOAT ? sdp_field_double(v, d) : sdp_field_int(v, d);
}

static void set_number(sdp_vals *v, const sdp_param *d, double x)
{
    if (d->type == SDP_T_FLOAT)
        sdp_field_set_double(v, d, x);
    else
        sdp_field_set_int(v, d, (gint32)lround(x));
}

static void set_field(field *fd, const sdp_vals *v)
{
    const sdp_param *d = fd->d;
    fd->setting = TRUE;
    switch (fd->h->kind) {
    case SDUI_TEXT: {
        GtkTextBuffer *buf = gtk_text_view_get_buffer(GTK_TEXT_VIEW(fd->widget));
        gtk_text_buffer_set_text(buf, sdp_field_str((sdp_vals *)v, d), -1);
        break;
    }
    case SDUI_SEED:
    case SDUI_SPIN:
    case SDUI_SCALE: {
        double x = get_number(v, d);
        gboolean at_min = x <= d->lo;
        if (fd->toggle) {
            gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(fd->toggle), at_min);
            if (fd->h->kind != SDUI_SEED)
                value_sensitive(fd, !at_min);
        }
        /* under a toggle the spin keeps showing the last manual value */
        if (!(fd->toggle && at_min))
            gtk_adjustment_set_value(fd->adj, x);
        break;
    }
    case SDUI_CHECK:
        gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(fd->widget), sdp_field_int(v, d) != 0);
        break;
    case SDUI_COMBO:
        gimp_int_combo_box_set_active(GIMP_INT_COMBO_BOX(fd->widget), sdp_field_int(v, d));
        break;
    case SDUI_MODEL:
        break;
    }
    fd->setting = FALSE;
}

void sdui_fields_set(sdui_fields *fs, const sdp_vals *v)
{
    for (int k = 0; k < fs->n; k++)
        set_field(&fs->fields[k], v);
}

gboolean sdui_fields_get(const sdui_fields *fs, sdp_vals *v, GError **error)
{
    gboolean ok = TRUE;
    for (int k = 0; k < fs->n; k++) {
        const field *fd = &fs->fields[k];
        const sdp_param *d = fd->d;
        switch (fd->h->kind) {
        case SDUI_TEXT: {
            GtkTextBuffer *buf = gtk_text_view_get_buffer(GTK_TEXT_VIEW(fd->widget));
            GtkTextIter a, b;
            gtk_text_buffer_get_bounds(buf, &a, &b);
            gchar *text = gtk_text_buffer_get_text(buf, &a, &b, FALSE);
            gsize len = strlen(text);
            if (len >= d->size && ok) {
                g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING,
                            "the %s is %zu bytes long; at most %zu are allowed: shorten it",
                            d->key, len, d->size - 1);
                ok = FALSE;
            }
            gchar *dst = sdp_field_str(v, d);
            g_strlcpy(dst, text, d->size);
            const gchar *end;
            if (!g_utf8_validate(dst, -1, &end))
                dst[end - dst] = 0;
            g_free(text);
            break;
        }
        case SDUI_SEED:
        case SDUI_SPIN:
        case SDUI_SCALE:
            if (GTK_IS_SPIN_BUTTON(fd->widget))
                gtk_spin_button_update(GTK_SPIN_BUTTON(fd->widget));
            if (fd->toggle && gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(fd->toggle)))
                set_number(v, d, d->lo);
            else
                set_number(v, d, CLAMP(gtk_adjustment_get_value(fd->adj), d->lo, d->hi));
            break;
        case SDUI_CHECK:
            sdp_field_set_int(v, d,
                              gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(fd->widget)));
            break;
        case SDUI_COMBO: {
            gint x = (gint)d->def;
            gimp_int_combo_box_get_active(GIMP_INT_COMBO_BOX(fd->widget), &x);
            sdp_field_set_int(v, d, x);
            break;
        }
        case SDUI_MODEL:
            break;
        }
    }
    return ok;
}

void sdui_fields_set_under_toggle(sdui_fields *fs, const char *key, double x)
{
    for (int k = 0; k < fs->n; k++) {
        field *fd = &fs->fields[k];
        if (!fd->toggle || strcmp(fd->d->key, key) != 0 ||
            !gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(fd->toggle)))
            continue;
        fd->setting = TRUE;
        gtk_adjustment_set_value(fd->adj, x);
        fd->setting = FALSE;
    }
}

void sdui_fields_set_last_seed(sdui_fields *fs, gint32 seed)
{
    for (int k = 0; k < fs->n && seed >= 0; k++) {
        field *fd = &fs->fields[k];
        if (fd->h->kind != SDUI_SEED)
            continue;
        fd->setting = TRUE;
        gtk_adjustment_set_value(fd->adj, seed);
        fd->setting = FALSE;
    }
}
