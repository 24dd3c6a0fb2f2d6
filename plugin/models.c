/* models.c - finding a Stable Diffusion checkpoint from the "model" argument: an absolute
 * path, a name searched in the profile's sd-models folder and in $SD_MODEL_PATH, or "" for
 * the first model found; the list of all candidates for the dialog's model chooser; and the
 * TAESD decoder for live previews found next to the models.  Kept apart from the engine
 * because it is GIMP policy (where a user's models live), not engine behaviour.
 *
 * Files named taesd*.safetensors are preview decoders by convention (the TAESD weights are
 * published under those names): they are never "the first model" nor listed as models, but
 * an explicit name still reaches them (and the engine then says what they are). */
#include "sdp.h"

#include <string.h>

gchar **sdp_model_dirs(void)
{
    GPtrArray *dirs = g_ptr_array_new();
    g_ptr_array_add(dirs, g_build_filename(gimp_directory(), SDP_MODELS_DIR, NULL));
    const char *env = g_getenv("SD_MODEL_PATH");
    if (env) {
        gchar **parts = g_strsplit(env, G_SEARCHPATH_SEPARATOR_S, -1);
        for (int i = 0; parts[i]; i++)
            if (parts[i][0])
                g_ptr_array_add(dirs, g_strdup(parts[i]));
        g_strfreev(parts);
    }
    g_ptr_array_add(dirs, NULL);
    return (gchar **)g_ptr_array_free(dirs, FALSE);
}

/* A model candidate: a regular *.safetensors file or a diffusers folder. */
static gboolean is_model(const char *path)
{
    if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
        gchar *index = g_build_filename(path, "model_index.json", NULL);
        gboolean ok = g_file_test(index, G_FILE_TEST_IS_REGULAR);
        g_free(index);
        return ok;
    }
    return g_str_has_suffix(path, ".safetensors") &&
           g_file_test(path, G_FILE_TEST_IS_REGULAR);
}

static gboolean is_taesd_name(const char *name)
{
    return g_str_has_prefix(name, "taesd") && g_str_has_suffix(name, ".safetensors");
}

static gint cmp_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names in a folder (no dot files), sorted byte-wise; NULL when it cannot be read. */
static GPtrArray *sorted_names(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    if (!d)
        return NULL;
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    const char *n;
    while ((n = g_dir_read_name(d)))
        if (n[0] != '.')
            g_ptr_array_add(names, g_strdup(n));
    g_dir_close(d);
    g_ptr_array_sort(names, cmp_names);
    return names;
}

/* The first candidate of a folder in name order, or NULL. */
static gchar *first_in(const char *dir)
{
    GPtrArray *names = sorted_names(dir);
    if (!names)
        return NULL;
    gchar *found = NULL;
    for (guint i = 0; i < names->len && !found; i++) {
        if (is_taesd_name(names->pdata[i]))
            continue;
        gchar *path = g_build_filename(dir, names->pdata[i], NULL);
        if (is_model(path))
            found = path;
        else
            g_free(path);
    }
    g_ptr_array_free(names, TRUE);
    return found;
}

static gboolean has_dotdot(const char *name)
{
    gchar **parts = g_strsplit(name, G_DIR_SEPARATOR_S, -1);
    gboolean bad = FALSE;
    for (int i = 0; parts[i]; i++)
        bad |= strcmp(parts[i], "..") == 0;
    g_strfreev(parts);
    return bad;
}

static gchar *joined_dirs(gchar **dirs)
{
    return g_strjoinv(", ", dirs);
}

gchar *sdp_model_resolve(const char *name, GError **error)
{
    if (g_path_is_absolute(name)) {
        if (g_file_test(name, G_FILE_TEST_EXISTS))
            return g_strdup(name);
        g_set_error(error, SDP_ERROR, SDP_ERROR_MODEL, "model file %s does not exist", name);
        return NULL;
    }
    if (has_dotdot(name)) {
        g_set_error(error, SDP_ERROR, SDP_ERROR_CALLING,
                    "model \"%s\": a model name may not contain \"..\"", name);
        return NULL;
    }
    gchar **dirs = sdp_model_dirs();
    gchar *found = NULL;
    for (int i = 0; dirs[i] && !found; i++) {
        if (!name[0]) {
            found = first_in(dirs[i]);
            continue;
        }
        gchar *path = g_build_filename(dirs[i], name, NULL);
        if (is_model(path)) {
            found = path;
            continue;
        }
        g_free(path);
        if (!g_str_has_suffix(name, ".safetensors")) {
            gchar *file = g_strconcat(name, ".safetensors", NULL);
            path = g_build_filename(dirs[i], file, NULL);
            g_free(file);
            if (is_model(path))
                found = path;
            else
                g_free(path);
        }
    }
    if (!found) {
        gchar *where = joined_dirs(dirs);
        if (!name[0])
            g_set_error(error, SDP_ERROR, SDP_ERROR_MODEL,
                        "no Stable Diffusion model found: put a .safetensors checkpoint into "
                        "one of these folders (the first one is in the GIMP profile, the "
                        "others come from $SD_MODEL_PATH): %s",
                        where);
        else if (g_str_has_suffix(name, ".safetensors"))
            g_set_error(error, SDP_ERROR, SDP_ERROR_MODEL,
                        "model \"%s\" not found; looked in: %s", name, where);
        else
            g_set_error(error, SDP_ERROR, SDP_ERROR_MODEL,
                        "model \"%s\" not found; looked for %s and %s.safetensors in: %s", name,
                        name, name, where);
        g_free(where);
    }
    g_strfreev(dirs);
    return found;
}

/* ---------------------------------------------------------------------------------------
 * The dialog's model list and preview decoder
 * ------------------------------------------------------------------------------------- */

static void entry_free(gpointer p)
{
    sdp_model_entry *e = p;
    g_free(e->name);
    g_free(e->path);
    g_free(e->value);
    g_free(e);
}

GPtrArray *sdp_model_list(void)
{
    GPtrArray *list = g_ptr_array_new_with_free_func(entry_free);
    GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);
    gchar **dirs = sdp_model_dirs();
    for (int i = 0; dirs[i]; i++) {
        GPtrArray *names = sorted_names(dirs[i]);
        for (guint k = 0; names && k < names->len; k++) {
            const char *n = names->pdata[k];
            gchar *path = g_build_filename(dirs[i], n, NULL);
            if (is_taesd_name(n) || !is_model(path)) {
                g_free(path);
                continue;
            }
            sdp_model_entry *e = g_new0(sdp_model_entry, 1);
            e->name = g_strdup(n);
            e->path = path;
            /* a name an earlier folder also has would resolve there: use the path */
            e->value = g_hash_table_contains(seen, n) ? g_strdup(path) : g_strdup(n);
            g_hash_table_add(seen, e->name);
            g_ptr_array_add(list, e);
        }
        if (names)
            g_ptr_array_free(names, TRUE);
    }
    g_strfreev(dirs);
    g_hash_table_destroy(seen);
    return list;
}

static gchar *taesd_in(const char *dir)
{
    GPtrArray *names = sorted_names(dir);
    gchar *found = NULL;
    for (guint i = 0; names && i < names->len && !found; i++) {
        gchar *path = g_build_filename(dir, names->pdata[i], NULL);
        if (is_taesd_name(names->pdata[i]) && g_file_test(path, G_FILE_TEST_IS_REGULAR))
            found = path;
        else
            g_free(path);
    }
    if (names)
        g_ptr_array_free(names, TRUE);
    return found;
}

gchar *sdp_taesd_find(const char *model_path)
{
    gchar *dir = g_path_get_dirname(model_path);
    gchar *found = taesd_in(dir);
    g_free(dir);
    gchar **dirs = sdp_model_dirs();
    for (int i = 0; dirs[i] && !found; i++)
        found = taesd_in(dirs[i]);
    g_strfreev(dirs);
    return found;
}
