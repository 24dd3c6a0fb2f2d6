/* params.c - the parameter list of sd_params.def at work: defaults, PDB argument tables with
 * generated range/default descriptions, NONINTERACTIVE unpacking with range checks, key=value
 * serialisation and parsing, and the stored last values.  All of it iterates one descriptor
 * table expanded from the X-macro list, so a parameter is declared in exactly one place. */
#include "sdp.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

GQuark sdp_error_quark(void)
{
    return g_quark_from_static_string("gimp-sd-error-quark");
}

/* ---------------------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------------------- */

sd_task sdp_filter_task(sdp_filter f)
{
    switch (f) {
    case SDP_TXT2IMG:
        return SD_TASK_TXT2IMG;
    case SDP_IMG2IMG:
        return SD_TASK_IMG2IMG;
    case SDP_INPAINT:
        return SD_TASK_INPAINT;
    case SDP_OUTPAINT:
        return SD_TASK_OUTPAINT;
    case SDP_DENOISE:
        return SD_TASK_DENOISE;
    case SDP_N_FILTERS:
        break;
    }
    return SD_TASK_COUNT;
}

const char *sdp_filter_name(sdp_filter f)
{
    return sd_task_name(sdp_filter_task(f));
}

const char *sdp_sampler_name(int v)
{
    if (v == SD_SAMPLER_AUTO)
        return "auto";
    return v >= 0 && v < SD_SAMPLER_COUNT ? sd_sampler_kind_name(v) : NULL;
}

const char *sdp_spacing_name(int v)
{
    if (v == SD_SPACING_AUTO)
        return "auto";
    return v >= 0 && v < SD_SPACING_COUNT ? sd_spacing_name(v) : NULL;
}

const char *sdp_prediction_name(int v)
{
    static const char *const names[] = {"auto", "epsilon", "v"};
    return v >= 0 && v < (int)G_N_ELEMENTS(names) ? names[v] : NULL;
}

const char *sdp_fill_name(int v)
{
    return v >= 0 && v < SD_FILL_COUNT ? sd_fill_name(v) : NULL;
}

/* ---------------------------------------------------------------------------------------
 * The descriptor table
 * ------------------------------------------------------------------------------------- */

const sdp_param sdp_params[] = {
#define SDP_STR(id, key, label, blurb, def, size, filters, ui)                               \
    {SDP_T_STR, key, label, blurb, def, 0, 0, 0, size, offsetof(sdp_vals, id), NULL, filters},
#define SDP_INT(id, key, label, blurb, def, lo, hi, filters, ui)                             \
    {SDP_T_INT, key, label, blurb, NULL, def, lo, hi, 0, offsetof(sdp_vals, id), NULL, filters},
#define SDP_FLOAT(id, key, label, blurb, def, lo, hi, filters, ui)                           \
    {SDP_T_FLOAT, key, label, blurb, NULL, def, lo, hi, 0, offsetof(sdp_vals, id), NULL,     \
     filters},
#define SDP_BOOL(id, key, label, blurb, def, filters, ui)                                    \
    {SDP_T_BOOL, key, label, blurb, NULL, def, 0, 1, 0, offsetof(sdp_vals, id), NULL, filters},
#define SDP_ENUM(id, key, label, blurb, def, lo, hi, name_fn, filters, ui)                   \
    {SDP_T_ENUM, key, label, blurb, NULL, def, lo, hi, 0, offsetof(sdp_vals, id), name_fn,   \
     filters},
#include "sd_params.def"
#undef SDP_STR
#undef SDP_INT
#undef SDP_FLOAT
#undef SDP_BOOL
#undef SDP_ENUM
};
const int sdp_n_params = G_N_ELEMENTS(sdp_params);

#define N_PARAMS ((int)G_N_ELEMENTS(sdp_params))

gboolean sdp_param_takes(const sdp_param *d, sdp_filter f)
{
    return (d->filters & (1u << f)) != 0;
}

gchar *sdp_field_str(sdp_vals *v, const sdp_param *d)
{
    return (gchar *)v + d->offset;
}

static const gchar *cfield_str(const sdp_vals *v, const sdp_param *d)
{
    return (const gchar *)v + d->offset;
}

static gint32 *field_int(sdp_vals *v, const sdp_param *d)
{
    return (gint32 *)(void *)((char *)v + d->offset);
}

gint32 sdp_field_int(const sdp_vals *v, const sdp_param *d)
{
    gint32 x;
    memcpy(&x, (const char *)v + d->offset, sizeof x);
    return x;
}

void sdp_field_set_int(sdp_vals *v, const sdp_param *d, gint32 x)
{
    *field_int(v, d) = x;
}

static gdouble *field_double(sdp_vals *v, const sdp_param *d)
{
    return (gdouble *)(void *)((char *)v + d->offset);
}

gdouble sdp_field_double(const sdp_vals *v, const sdp_param *d)
{
    gdouble x;
    memcpy(&x, (const char *)v + d->offset, sizeof x);
    return x;
}

void sdp_field_set_double(sdp_vals *v, const sdp_param *d, gdouble x)
{
    *field_double(v, d) = x;
}

void sdp_vals_default(sdp_vals *v)
{
    memset(v, 0, sizeof *v);
    v->version = SDP_VALS_VERSION;
    for (int i = 0; i < N_PARAMS; i++) {
        const sdp_param *d = &sdp_params[i];
        switch (d->type) {
        case SDP_T_STR:
            g_strlcpy(sdp_field_str(v, d), d->def_str, d->size);
            break;
        case SDP_T_INT:
        case SDP_T_BOOL:
        case SDP_T_ENUM:
            *field_int(v, d) = (gint32)d->def;
            break;
        case SDP_T_FLOAT:
            *field_double(v, d) = d->def;
            break;
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * PDB argument table
 * ------------------------------------------------------------------------------------- */

static gchar *fmt_num(double x)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    return g_strdup(g_ascii_formatd(buf, sizeof buf, "%g", x));
}

/* The PDB description: the blurb, then the range and the default. */
static gchar *describe(const sdp_param *d)
{
    GString *s = g_string_new(d->blurb);
    switch (d->type) {
    case SDP_T_STR:
        g_string_append_printf(s, " At most %zu bytes; default: ", d->size - 1);
        if (d->def_str[0])
            g_string_append_printf(s, "\"%s\".", d->def_str);
        else
            g_string_append(s, "empty.");
        break;
    case SDP_T_INT:
        g_string_append_printf(s, " Range %.0f..%.0f, default %.0f.", d->lo, d->hi, d->def);
        break;
    case SDP_T_FLOAT: {
        gchar *lo = fmt_num(d->lo), *hi = fmt_num(d->hi), *def = fmt_num(d->def);
        g_string_append_printf(s, " Range %s..%s, default %s.", lo, hi, def);
        g_free(lo), g_free(hi), g_free(def);
        break;
    }
    case SDP_T_BOOL:
        g_string_append_printf(s, " 0 or 1, default %.0f.", d->def);
        break;
    case SDP_T_ENUM:
        g_string_append(s, " Values:");
        for (int k = (int)d->lo; k <= (int)d->hi; k++)
            g_string_append_printf(s, "%s %d = %s", k == (int)d->lo ? "" : ",", k,
                                   d->name_fn(k));
        g_string_append_printf(s, "; default %.0f.", d->def);
        break;
    }
    return g_string_free(s, FALSE);
}

static GimpPDBArgType pdb_type(const sdp_param *d)
{
    switch (d->type) {
    case SDP_T_STR:
        return GIMP_PDB_STRING;
    case SDP_T_FLOAT:
        return GIMP_PDB_FLOAT;
    case SDP_T_INT:
    case SDP_T_BOOL:
    case SDP_T_ENUM:
        break;
    }
    return GIMP_PDB_INT32;
}

static const char *pdb_type_name(GimpPDBArgType t)
{
    switch (t) {
    case GIMP_PDB_STRING:
        return "STRING";
    case GIMP_PDB_FLOAT:
        return "FLOAT";
    case GIMP_PDB_INT32:
        return "INT32";
    default:
        return "another type";
    }
}

GimpParamDef *sdp_param_defs_new(sdp_filter f, gboolean new_image, int *n)
{
    GimpParamDef *defs = g_new0(GimpParamDef, 3 + N_PARAMS);
    int k = 0;
    defs[k++] = (GimpParamDef){GIMP_PDB_INT32, g_strdup("run-mode"),
                               g_strdup("The run mode { RUN-INTERACTIVE (0), "
                                        "RUN-NONINTERACTIVE (1), RUN-WITH-LAST-VALS (2) }")};
    if (!new_image) {
        defs[k++] = (GimpParamDef){GIMP_PDB_IMAGE, g_strdup("image"),
                                   g_strdup("Input image (RGB or grayscale)")};
        defs[k++] = (GimpParamDef){GIMP_PDB_DRAWABLE, g_strdup("drawable"),
                                   g_strdup("The layer the result is placed above (and, "
                                            "except for txt2img, read from)")};
    }
    for (int i = 0; i < N_PARAMS; i++)
        if (sdp_param_takes(&sdp_params[i], f))
            defs[k++] = (GimpParamDef){pdb_type(&sdp_params[i]), g_strdup(sdp_params[i].key),
                                       describe(&sdp_params[i])};
    *n = k;
    return defs;
}

void sdp_param_defs_free(GimpParamDef *defs, int n)
{
    for (int i = 0; i < n; i++) {
        g_free(defs[i].name);
        g_free(defs[i].description);
    }
    g_free(defs);
}

/* ---------------------------------------------------------------------------------------
 * Setting one value with its range check (shared by unpacking and parsing)
 * ------------------------------------------------------------------------------------- */

static gboolean set_str(const sdp_param *d, sdp_vals *v, const char *s, GError **error)
{
    if (!s)
        s = "";
    if (strlen(s) >= d->size) {
        g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING,
                    "%s is %zu bytes long; at most %zu are allowed", d->key, strlen(s),
                    d->size - 1);
        return FALSE;
    }
    if (!g_utf8_validate(s, -1, NULL)) {
        g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING, "%s is not valid UTF-8", d->key);
        return FALSE;
    }
    g_strlcpy(sdp_field_str(v, d), s, d->size);
    return TRUE;
}

static gboolean set_int(const sdp_param *d, sdp_vals *v, gint32 x, GError **error)
{
    if (x < d->lo || x > d->hi) {
        if (d->type == SDP_T_BOOL)
            g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING, "%s = %d: must be 0 or 1", d->key,
                        (int)x);
        else
            g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING, "%s = %d is outside %.0f..%.0f",
                        d->key, (int)x, d->lo, d->hi);
        return FALSE;
    }
    *field_int(v, d) = x;
    return TRUE;
}

static gboolean set_double(const sdp_param *d, sdp_vals *v, gdouble x, GError **error)
{
    if (!isfinite(x) || x < d->lo || x > d->hi) {
        gchar *s = fmt_num(x), *lo = fmt_num(d->lo), *hi = fmt_num(d->hi);
        g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING, "%s = %s is outside %s..%s", d->key,
                    s, lo, hi);
        g_free(s), g_free(lo), g_free(hi);
        return FALSE;
    }
    *field_double(v, d) = x;
    return TRUE;
}

/* ---------------------------------------------------------------------------------------
 * NONINTERACTIVE unpacking
 * ------------------------------------------------------------------------------------- */

static int count_params(sdp_filter f)
{
    int n = 0;
    for (int i = 0; i < N_PARAMS; i++)
        n += sdp_param_takes(&sdp_params[i], f);
    return n;
}

gboolean sdp_vals_unpack(sdp_filter f, int n_params, const GimpParam *param, int first,
                         sdp_vals *v, GError **error)
{
    int want = first + count_params(f);
    if (n_params != want) {
        g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING, "expected %d arguments, got %d", want,
                    n_params);
        return FALSE;
    }
    sdp_vals_default(v);
    int k = first;
    for (int i = 0; i < N_PARAMS; i++) {
        const sdp_param *d = &sdp_params[i];
        if (!sdp_param_takes(d, f))
            continue;
        const GimpParam *p = &param[k++];
        if (p->type != pdb_type(d)) {
            g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING, "argument %d (%s) must be %s", k,
                        d->key, pdb_type_name(pdb_type(d)));
            return FALSE;
        }
        gboolean ok = FALSE;
        switch (d->type) {
        case SDP_T_STR:
            ok = set_str(d, v, p->data.d_string, error);
            break;
        case SDP_T_INT:
        case SDP_T_BOOL:
        case SDP_T_ENUM:
            ok = set_int(d, v, p->data.d_int32, error);
            break;
        case SDP_T_FLOAT:
            ok = set_double(d, v, p->data.d_float, error);
            break;
        }
        if (!ok)
            return FALSE;
    }
    return sdp_vals_check(f, v, error);
}

static gboolean check_grid(const char *key, int x, GError **error)
{
    if (x != 0 && (x < 64 || x % 8 != 0)) {
        g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING,
                    "%s = %d: must be 0 (the default) or a multiple of 8 of at least 64", key,
                    x);
        return FALSE;
    }
    return TRUE;
}

gboolean sdp_vals_check(sdp_filter f, const sdp_vals *v, GError **error)
{
    if (!check_grid("resolution", v->resolution, error))
        return FALSE;
    if (f == SDP_DENOISE && !check_grid("tile", v->tile, error))
        return FALSE;
    if (f == SDP_TXT2IMG) {
        if ((v->width != 0 && v->width < 8) || (v->height != 0 && v->height < 8)) {
            g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING,
                        "width and height must each be 0 (automatic) or at least 8 px");
            return FALSE;
        }
    }
    return TRUE;
}

/* ---------------------------------------------------------------------------------------
 * key=value text
 * ------------------------------------------------------------------------------------- */

static void append_escaped(GString *s, const char *v)
{
    for (; *v; v++) {
        switch (*v) {
        case '\\':
            g_string_append(s, "\\\\");
            break;
        case '\n':
            g_string_append(s, "\\n");
            break;
        case '\r':
            g_string_append(s, "\\r");
            break;
        default:
            g_string_append_c(s, *v);
        }
    }
}

gchar *sdp_vals_serialise(sdp_filter f, const sdp_vals *v)
{
    GString *s = g_string_new(NULL);
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    for (int i = 0; i < N_PARAMS; i++) {
        const sdp_param *d = &sdp_params[i];
        if (!sdp_param_takes(d, f))
            continue;
        g_string_append_printf(s, "%s=", d->key);
        switch (d->type) {
        case SDP_T_STR:
            append_escaped(s, cfield_str(v, d));
            break;
        case SDP_T_INT:
        case SDP_T_BOOL:
            g_string_append_printf(s, "%d", (int)sdp_field_int(v, d));
            break;
        case SDP_T_ENUM:
            g_string_append(s, d->name_fn(sdp_field_int(v, d)));
            break;
        case SDP_T_FLOAT:
            g_string_append(s, g_ascii_dtostr(buf, sizeof buf, sdp_field_double(v, d)));
            break;
        }
        g_string_append_c(s, '\n');
    }
    return g_string_free(s, FALSE);
}

/* Undo append_escaped in place; FALSE on a dangling or unknown escape. */
static gboolean unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r != '\\') {
            *w++ = *r;
            continue;
        }
        r++;
        if (*r == '\\')
            *w++ = '\\';
        else if (*r == 'n')
            *w++ = '\n';
        else if (*r == 'r')
            *w++ = '\r';
        else
            return FALSE;
    }
    *w = 0;
    return TRUE;
}

static gboolean parse_value(const sdp_param *d, sdp_vals *v, char *text, GError **error)
{
    char *end;
    switch (d->type) {
    case SDP_T_STR:
        if (!unescape(text)) {
            g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING, "%s: bad escape sequence", d->key);
            return FALSE;
        }
        return set_str(d, v, text, error);
    case SDP_T_INT:
    case SDP_T_BOOL: {
        errno = 0;
        gint64 x = g_ascii_strtoll(text, &end, 10);
        if (errno || end == text || *end || x < G_MININT32 || x > G_MAXINT32) {
            g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING, "%s = \"%s\" is not an integer",
                        d->key, text);
            return FALSE;
        }
        return set_int(d, v, (gint32)x, error);
    }
    case SDP_T_ENUM:
        for (int k = (int)d->lo; k <= (int)d->hi; k++)
            if (strcmp(text, d->name_fn(k)) == 0)
                return set_int(d, v, k, error);
        g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING, "%s = \"%s\" is not a known value",
                    d->key, text);
        return FALSE;
    case SDP_T_FLOAT: {
        errno = 0;
        double x = g_ascii_strtod(text, &end);
        if (errno || end == text || *end) {
            g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING, "%s = \"%s\" is not a number",
                        d->key, text);
            return FALSE;
        }
        return set_double(d, v, x, error);
    }
    }
    return FALSE;
}

gboolean sdp_vals_parse(sdp_filter f, const char *text, gboolean strict, sdp_vals *v,
                        GError **error)
{
    gchar **lines = g_strsplit(text ? text : "", "\n", -1);
    gboolean ok = TRUE;
    for (int l = 0; ok && lines[l]; l++) {
        char *line = lines[l];
        if (!line[0])
            continue;
        char *eq = strchr(line, '=');
        if (!eq) {
            g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING, "line \"%s\" has no '='", line);
            ok = FALSE;
            break;
        }
        *eq = 0;
        const sdp_param *d = NULL;
        for (int i = 0; i < N_PARAMS && !d; i++)
            if (strcmp(sdp_params[i].key, line) == 0 && sdp_param_takes(&sdp_params[i], f))
                d = &sdp_params[i];
        if (!d) {
            if (strict) {
                g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING,
                            "\"%s\" is not a parameter of %s", line, sdp_filter_name(f));
                ok = FALSE;
            }
            continue;
        }
        ok = parse_value(d, v, eq + 1, error);
    }
    g_strfreev(lines);
    return ok && sdp_vals_check(f, v, error);
}

/* ---------------------------------------------------------------------------------------
 * Last values
 * ------------------------------------------------------------------------------------- */

/* Stored bytes come from an earlier run of possibly another build with the same layout:
 * accept them only if every value is in range. */
static gboolean vals_valid(sdp_vals *v)
{
    if (v->version != SDP_VALS_VERSION)
        return FALSE;
    for (int i = 0; i < N_PARAMS; i++) {
        const sdp_param *d = &sdp_params[i];
        switch (d->type) {
        case SDP_T_STR: {
            gchar *s = sdp_field_str(v, d);
            s[d->size - 1] = 0;
            if (!g_utf8_validate(s, -1, NULL))
                return FALSE;
            break;
        }
        case SDP_T_INT:
        case SDP_T_BOOL:
        case SDP_T_ENUM: {
            gint32 x = sdp_field_int(v, d);
            if (x < d->lo || x > d->hi)
                return FALSE;
            break;
        }
        case SDP_T_FLOAT: {
            gdouble x = sdp_field_double(v, d);
            if (!isfinite(x) || x < d->lo || x > d->hi)
                return FALSE;
            break;
        }
        }
    }
    return TRUE;
}

gboolean sdp_vals_load_last(const char *proc, sdp_vals *v)
{
    sdp_vals stored;
    if (gimp_get_data_size(proc) == (gint)sizeof stored && gimp_get_data(proc, &stored) &&
        vals_valid(&stored)) {
        *v = stored;
        return TRUE;
    }
    sdp_vals_default(v);
    return FALSE;
}

void sdp_vals_store_last(const char *proc, const sdp_vals *v)
{
    gimp_set_data(proc, v, sizeof *v);
}

/* The last seed used is kept apart from the last values (whose seed stays -1 when the user
 * asked for a random one, so that "Repeat" draws a new one). */
static gchar *seed_key(const char *proc)
{
    return g_strconcat(proc, "-last-seed", NULL);
}

gint32 sdp_seed_load_last(const char *proc)
{
    gchar *key = seed_key(proc);
    gint32 seed = -1;
    if (gimp_get_data_size(key) != (gint)sizeof seed || !gimp_get_data(key, &seed) || seed < 0)
        seed = -1;
    g_free(key);
    return seed;
}

void sdp_seed_store_last(const char *proc, gint32 seed)
{
    gchar *key = seed_key(proc);
    gimp_set_data(key, &seed, sizeof seed);
    g_free(key);
}
