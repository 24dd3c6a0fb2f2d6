/* models.c - finding a Stable Diffusion checkpoint from the "model" argument: an absolute
 * path, a name searched in the profile's sd-models folder and in $SD_MODEL_PATH, or "" for
 * the first model found.  Kept apart from the engine because it is GIMP policy (where a
 * user's models live), not engine behaviour. */
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

static gint cmp_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first candidate of a folder in name order, or NULL. */
static gchar *first_in(const char *dir)
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
    gchar *found = NULL;
    for (guint i = 0; i < names->len && !found; i++) {
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
        g_set_error(error, SDP_ERROR, SDP_ERROR_FAILED, "model file %s does not exist", name);
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
            g_set_error(error, SDP_ERROR, SDP_ERROR_FAILED,
                        "no Stable Diffusion model found: put a .safetensors checkpoint into "
                        "one of these folders (the first one is in the GIMP profile, the "
                        "others come from $SD_MODEL_PATH): %s",
                        where);
        else if (g_str_has_suffix(name, ".safetensors"))
            g_set_error(error, SDP_ERROR, SDP_ERROR_FAILED,
                        "model \"%s\" not found; looked in: %s", name, where);
        else
            g_set_error(error, SDP_ERROR, SDP_ERROR_FAILED,
                        "model \"%s\" not found; looked for %s and %s.safetensors in: %s", name,
                        name, name, where);
        g_free(where);
    }
    g_strfreev(dirs);
    return found;
}
