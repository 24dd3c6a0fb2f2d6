/* resident.c - the resident process that keeps a Stable Diffusion model loaded between filter
 * calls, and the forwarding of the five filters to it.
 *
 * Why: loading a checkpoint (2-4 GB mapped, converted on first use) costs seconds; a GIMP
 * plug-in process lives for one call.  GIMP 2.10 keeps a plug-in process alive only as an
 * extension, so:
 *
 *   extension-sd-resident   GIMP_EXTENSION with no arguments, installed in the user's
 *                           plug-ins folder: GIMP starts it at every start (GUI and batch) and
 *                           waits for its acknowledgement, so start-up only installs the
 *                           temporary procedures below; the model is loaded on first use.
 *   plug-in-sd-resident-run      (run-mode, image, drawable, procedure, params-text,
 *                                caller-pid) -> (image, layer, seed): runs a filter here, with
 *                                   the engine and model this process keeps (sdp_engine).
 *   plug-in-sd-resident-status   -> (loads, calls, loaded, model, pid): counters, so a test
 *                                   can show that a second call did not load the model again.
 *   plug-in-sd-resident-release  frees the model now (memory back; next call reloads).
 *   plug-in-sd-resident-stop     ends the resident process.
 *
 * The five filter procedures stay ordinary plug-in procedures (their signatures, menus and
 * last values live in their own short process).  Each checks and unpacks its arguments, then
 * hands the call to plug-in-sd-resident-run with the parameters as the key=value text of
 * sd_params.def (the same text as the parasite, parsed back with the same range checks).
 * The model is kept while the same file is asked for, replaced when another one is chosen,
 * and released after $SD_RESIDENT_IDLE seconds without a call (default 600; 0 = never).
 *
 * When the resident process is not there (SD_RESIDENT=0 in GIMP's environment, stopped,
 * crashed), the filter runs in its own process instead: load, generate, exit.  Restarting
 * the extension is not possible from a filter: GIMP runs a PDB call of an extension
 * synchronously and waits for return values an extension never sends, so the caller would
 * block for good (observed with GIMP 2.10.34).  Running in-process is always correct and
 * only slower; the resident comes back with the next GIMP start.  A call that fails because
 * the resident died during it is run again in-process once, unless it came back cancelled:
 * GIMP answers CANCEL when it ended the resident for a progress-bar Cancel.
 *
 * One generation at a time: a call that arrives while another runs (two images filtered at
 * once in the GUI) is refused with a clear message rather than loading a second model.
 *
 * The caller may end during the call: it may crash, or GIMP may end it (GIMP kills a plug-in
 * whose progress-bar Cancel is pressed).  GIMP then reports the call as failed, so the image must stay
 * as it was; but the resident would go on and commit its layer.  The filter therefore passes
 * its process ID, and the resident checks at every progress callback and just before the
 * commit that the caller still exists (and is not a zombie): if not, the run is cancelled
 * and nothing is committed.  (A PID reused within that time would go unnoticed: a remote
 * chance this check accepts.) */
#include "sdp.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sdp_engine *engine;       /* the resident's engine (NULL in other processes) */
static gboolean busy;            /* a filter is running */
static guint idle_source;        /* pending release of the model, 0 none */
static guint idle_ms;            /* release after this long without a call; 0 never */
static GMainLoop *loop;
static pid_t caller;             /* the filter process of the running call */

/* ---------------------------------------------------------------------------------------
 * The resident side
 * ------------------------------------------------------------------------------------- */

static gboolean on_idle(gpointer data)
{
    (void)data;
    idle_source = 0;
    if (engine && !busy)
        sdp_engine_release(engine);
    return G_SOURCE_REMOVE;
}

static void restart_idle_timer(void)
{
    if (idle_source)
        g_source_remove(idle_source);
    idle_source = idle_ms ? g_timeout_add(idle_ms, on_idle, NULL) : 0;
}

static gboolean on_stop(gpointer data)
{
    (void)data;
    g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

/* Return values of the temporary procedures; the message must outlive the call.  A call can
 * arrive nested inside another one's PDB traffic (refused as busy), so a handler fills
 * `values` only after its own work is done. */
static GimpParam values[6];
static gchar *message;

static void return_error(GimpParam **ret, gint *nret, GError *err)
{
    g_free(message);
    message = g_strdup(err->message);
    values[0].type = GIMP_PDB_STATUS;
    values[0].data.d_status = err->domain == SDP_ERROR && err->code == SDP_ERROR_CALLING
                                  ? GIMP_PDB_CALLING_ERROR
                                  : GIMP_PDB_EXECUTION_ERROR;
    values[1].type = GIMP_PDB_STRING;
    values[1].data.d_string = message;
    *nret = 2;
    *ret = values;
}

static void return_success(GimpParam **ret, gint *nret, int n)
{
    values[0].type = GIMP_PDB_STATUS;
    values[0].data.d_status = GIMP_PDB_SUCCESS;
    *nret = n;
    *ret = values;
}

static void set_int(int k, gint32 x)
{
    values[k].type = GIMP_PDB_INT32;
    values[k].data.d_int32 = x;
}

/* sdp_alive_fn: the calling filter process still exists and has not ended (a zombie waiting
 * for GIMP to reap it has ended). */
static gboolean caller_alive(void)
{
    if (kill(caller, 0) != 0 && errno == ESRCH)
        return FALSE;
    gchar *path = g_strdup_printf("/proc/%d/stat", (int)caller);
    gchar *stat = NULL;
    gboolean alive = TRUE;
    if (g_file_get_contents(path, &stat, NULL, NULL)) {
        const char *end = strrchr(stat, ')');   /* "pid (name) S ..."; the name may hold ')' */
        alive = !(end && (end[1] == ' ') && (end[2] == 'Z' || end[2] == 'X'));
    }
    g_free(stat);
    g_free(path);
    return alive;
}

static void serve_run(gint n, const GimpParam *param, gint *nret, GimpParam **ret)
{
    GError *err = NULL;
    sdp_vals v;
    sdp_result res = {-1, -1, 0};
    const sdp_proc *proc = n == 6 ? sdp_proc_find(param[3].data.d_string) : NULL;
    if (!proc || param[5].data.d_int32 <= 0) {
        g_set_error(&err, SDP_ERROR, SDP_ERROR_CALLING,
                    "%s: expected (run-mode, image, drawable, filter procedure, parameters, "
                    "caller-pid)",
                    SDP_PROC_RESIDENT_RUN);
        goto out;
    }
    if (busy) {
        g_set_error(&err, SDP_ERROR, SDP_ERROR_FAILED,
                    "another Stable Diffusion filter is still running; try again when it has "
                    "finished");
        goto out;
    }
    sdp_vals_default(&v);
    if (!sdp_vals_parse(proc->filter, param[4].data.d_string, TRUE, &v, &err))
        goto out;
    busy = TRUE;
    caller = (pid_t)param[5].data.d_int32;
    if (idle_source)
        g_source_remove(idle_source), idle_source = 0;
    gboolean ok = sdp_run_filter(engine, proc->filter, proc->new_image,
                                 (GimpRunMode)param[0].data.d_int32, param[1].data.d_int32,
                                 param[2].data.d_int32, &v, caller_alive, &res, &err);
    busy = FALSE;
    restart_idle_timer();
    if (!ok)
        goto out;
    set_int(1, res.image);
    set_int(2, res.layer);
    set_int(3, res.seed);
    return_success(ret, nret, 4);
out:
    if (err) {
        return_error(ret, nret, err);
        g_error_free(err);
    }
}

static void temp_run(const gchar *name, gint n, const GimpParam *param, gint *nret,
                     GimpParam **ret)
{
    gimp_plugin_set_pdb_error_handler(GIMP_PDB_ERROR_HANDLER_PLUGIN);
    if (strcmp(name, SDP_PROC_RESIDENT_RUN) == 0) {
        serve_run(n, param, nret, ret);
    } else if (strcmp(name, SDP_PROC_RESIDENT_STATUS) == 0) {
        const char *path = sdp_engine_model_path(engine);
        set_int(1, sdp_engine_loads(engine));
        set_int(2, sdp_engine_calls(engine));
        set_int(3, path != NULL);
        values[4].type = GIMP_PDB_STRING;
        values[4].data.d_string = (gchar *)(path ? path : "");
        set_int(5, (gint32)getpid());
        return_success(ret, nret, 6);
    } else if (strcmp(name, SDP_PROC_RESIDENT_RELEASE) == 0) {
        if (!busy)
            sdp_engine_release(engine);
        return_success(ret, nret, 1);
    } else if (strcmp(name, SDP_PROC_RESIDENT_STOP) == 0) {
        g_idle_add(on_stop, NULL);
        return_success(ret, nret, 1);
    } else {
        GError *err = g_error_new(SDP_ERROR, SDP_ERROR_CALLING, "unknown procedure %s", name);
        return_error(ret, nret, err);
        g_error_free(err);
    }
}

static const GimpParamDef run_mode_arg = {GIMP_PDB_INT32, "run-mode", "The run mode"};

static void install_temp_procs(void)
{
    static const GimpParamDef run_args[] = {
        {GIMP_PDB_INT32, "run-mode", "The run mode of the filter call"},
        {GIMP_PDB_INT32, "image", "Image ID (-1 for txt2img-new-image)"},
        {GIMP_PDB_INT32, "drawable", "Drawable ID (-1 for txt2img-new-image)"},
        {GIMP_PDB_STRING, "procedure", "The filter procedure, e.g. plug-in-sd-inpaint"},
        {GIMP_PDB_STRING, "parameters",
         "The filter's parameters as key=value lines (the keys are the procedure's argument "
         "names)"},
        {GIMP_PDB_INT32, "caller-pid",
         "Process ID of the calling filter: the run is cancelled when it ends"},
    };
    static const GimpParamDef run_rets[] = {
        {GIMP_PDB_INT32, "image", "The image holding the result"},
        {GIMP_PDB_INT32, "layer", "The new layer"},
        {GIMP_PDB_INT32, "seed", "The seed used"},
    };
    static const GimpParamDef status_rets[] = {
        {GIMP_PDB_INT32, "loads", "Models loaded since the resident process started"},
        {GIMP_PDB_INT32, "calls", "Filter calls served since it started"},
        {GIMP_PDB_INT32, "loaded", "1 when a model is loaded now"},
        {GIMP_PDB_STRING, "model", "The loaded model's file (empty when none)"},
        {GIMP_PDB_INT32, "pid", "Process ID of the resident process"},
    };
    gimp_install_temp_proc(SDP_PROC_RESIDENT_RUN,
                           "Run a Stable Diffusion filter in the resident process",
                           "Used by the plug-in-sd-* filters; call those instead.", SDP_AUTHOR,
                           SDP_AUTHOR, SDP_DATE, NULL, "", GIMP_TEMPORARY,
                           G_N_ELEMENTS(run_args), G_N_ELEMENTS(run_rets), run_args, run_rets,
                           temp_run);
    gimp_install_temp_proc(SDP_PROC_RESIDENT_STATUS,
                           "State of the resident Stable Diffusion process",
                           "How many times a model was loaded, how many filter calls were "
                           "served, and which model is loaded now.",
                           SDP_AUTHOR, SDP_AUTHOR, SDP_DATE, NULL, "", GIMP_TEMPORARY, 1,
                           G_N_ELEMENTS(status_rets), &run_mode_arg, status_rets, temp_run);
    gimp_install_temp_proc(SDP_PROC_RESIDENT_RELEASE,
                           "Free the model the resident Stable Diffusion process holds",
                           "Gives the memory back now; the next filter call loads the model "
                           "again.",
                           SDP_AUTHOR, SDP_AUTHOR, SDP_DATE, NULL, "", GIMP_TEMPORARY, 1, 0,
                           &run_mode_arg, NULL, temp_run);
    gimp_install_temp_proc(SDP_PROC_RESIDENT_STOP,
                           "End the resident Stable Diffusion process",
                           "Until GIMP is restarted, the filters then run in their own "
                           "process and load the model at every call.",
                           SDP_AUTHOR, SDP_AUTHOR, SDP_DATE, NULL, "", GIMP_TEMPORARY, 1, 0,
                           &run_mode_arg, NULL, temp_run);
}

void sdp_resident_query(void)
{
    gimp_install_procedure(SDP_PROC_RESIDENT,
                           "Keeps a Stable Diffusion model loaded between filter calls",
                           "Started by GIMP at every start; loads a model only when a filter "
                           "first needs it.  Set SD_RESIDENT=0 in GIMP's environment to run "
                           "every filter in its own process instead, SD_RESIDENT_IDLE to the "
                           "seconds after which an unused model is freed (default 600, 0 = "
                           "never).",
                           SDP_AUTHOR, SDP_AUTHOR, SDP_DATE, NULL, NULL, GIMP_EXTENSION, 0, 0,
                           NULL, NULL);
}

/* $SD_RESIDENT_IDLE in seconds (fractions allowed), default 600, 0 = never. */
static guint idle_from_env(void)
{
    const char *s = g_getenv("SD_RESIDENT_IDLE");
    if (!s)
        return 600 * 1000;
    char *end;
    double sec = g_ascii_strtod(s, &end);
    if (end == s || *end || !(sec >= 0) || sec > 86400.0 * 30)
        return 600 * 1000;
    return (guint)(sec * 1000.0 + 0.5);
}

void sdp_resident_main(void)
{
    if (g_strcmp0(g_getenv("SD_RESIDENT"), "0") == 0) {
        gimp_extension_ack();
        return;
    }
    engine = sdp_engine_new();
    idle_ms = idle_from_env();
    install_temp_procs();
    gimp_extension_ack();        /* GIMP's start-up waits for this: everything else after */
    gegl_init(NULL, NULL);
    gimp_extension_enable();
    loop = g_main_loop_new(NULL, FALSE);
    g_main_loop_run(loop);
    g_main_loop_unref(loop);
    loop = NULL;
    sdp_engine_free(engine);
    engine = NULL;
}

void sdp_resident_quit(void)
{
    sdp_engine_free(engine);
    engine = NULL;
}

/* ---------------------------------------------------------------------------------------
 * The filter side
 * ------------------------------------------------------------------------------------- */

void sdp_resident_release(void)
{
    if (!gimp_procedural_db_proc_exists(SDP_PROC_RESIDENT_RELEASE))
        return;
    GimpParam arg = {.type = GIMP_PDB_INT32, .data.d_int32 = GIMP_RUN_NONINTERACTIVE};
    gint n = 0;
    gimp_plugin_set_pdb_error_handler(GIMP_PDB_ERROR_HANDLER_PLUGIN);
    GimpParam *ret = gimp_run_procedure2(SDP_PROC_RESIDENT_RELEASE, &n, 1, &arg);
    gimp_plugin_set_pdb_error_handler(GIMP_PDB_ERROR_HANDLER_INTERNAL);
    gimp_destroy_params(ret, n);
}

static const char *proc_name(sdp_filter f, gboolean new_image)
{
    for (int i = 0; i < sdp_n_procs; i++)
        if (sdp_procs[i].filter == f && sdp_procs[i].new_image == new_image)
            return sdp_procs[i].name;
    return NULL;
}

gboolean sdp_resident_forward(sdp_filter f, gboolean new_image, GimpRunMode run_mode,
                              gint32 image, gint32 drawable, const sdp_vals *v,
                              gboolean *forwarded, sdp_result *res, GError **error)
{
    *forwarded = FALSE;
    if (!gimp_procedural_db_proc_exists(SDP_PROC_RESIDENT_RUN))
        return TRUE;
    gchar *text = sdp_vals_serialise(f, v);
    GimpParam args[6];
    args[0].type = GIMP_PDB_INT32;
    args[0].data.d_int32 = run_mode;
    args[1].type = GIMP_PDB_INT32;
    args[1].data.d_int32 = new_image ? -1 : image;
    args[2].type = GIMP_PDB_INT32;
    args[2].data.d_int32 = new_image ? -1 : drawable;
    args[3].type = GIMP_PDB_STRING;
    args[3].data.d_string = (gchar *)proc_name(f, new_image);
    args[4].type = GIMP_PDB_STRING;
    args[4].data.d_string = text;
    args[5].type = GIMP_PDB_INT32;
    args[5].data.d_int32 = (gint32)getpid();

    /* Errors are reported by this plug-in itself, not by GIMP on the resident call. */
    gimp_plugin_set_pdb_error_handler(GIMP_PDB_ERROR_HANDLER_PLUGIN);
    gint n = 0;
    GimpParam *ret = gimp_run_procedure2(SDP_PROC_RESIDENT_RUN, &n, 6, args);
    gimp_plugin_set_pdb_error_handler(GIMP_PDB_ERROR_HANDLER_INTERNAL);
    g_free(text);

    GimpPDBStatusType status = n >= 1 ? ret[0].data.d_status : GIMP_PDB_EXECUTION_ERROR;
    gboolean ok = FALSE;
    if (status == GIMP_PDB_SUCCESS && n >= 4) {
        res->image = ret[1].data.d_int32;
        res->layer = ret[2].data.d_int32;
        res->seed = ret[3].data.d_int32;
        *forwarded = TRUE;
        ok = TRUE;
    } else if (status == GIMP_PDB_CANCEL) {
        /* Cancel on the progress bar the resident drew: GIMP ends the plug-in that owns a
         * cancelled progress (the resident) and returns CANCEL.  The user asked to stop:
         * do not run again in this process. */
        *forwarded = TRUE;
        g_set_error_literal(error, SDP_ERROR, SDP_ERROR_CANCELLED, "cancelled");
    } else if (!gimp_procedural_db_proc_exists(SDP_PROC_RESIDENT_RUN)) {
        /* the resident ended during the call (a crash): run in this process instead */
        ok = TRUE;
    } else {
        *forwarded = TRUE;
        if (n >= 2 && ret[1].type == GIMP_PDB_STRING && ret[1].data.d_string)
            g_set_error_literal(error, SDP_ERROR,
                                status == GIMP_PDB_CALLING_ERROR ? SDP_ERROR_CALLING
                                                                 : SDP_ERROR_FAILED,
                                ret[1].data.d_string);
        else
            g_set_error(error, SDP_ERROR, SDP_ERROR_FAILED,
                        "the resident Stable Diffusion process failed without a message "
                        "(status %d)",
                        (int)status);
    }
    gimp_destroy_params(ret, n);
    return ok;
}
