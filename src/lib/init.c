/*
 * init.c: ms_init and ms_shutdown, the mode, the settings, logging.
 *
 * Design notes
 * - Settings come from the environment and from --ms-* options, the options winning; the
 *   options are removed from argv so the program's own parsing never sees them.
 * - MS_MODE defaults to zero when MS_ORCHESTRATOR is unset, local when it is set.
 * - The settings (the orchestrator list, the call token) are this file's, freed by
 *   ms_shutdown, and are handed to the parts as an msi_settings (msi.h): to the client
 *   through msi_remote->configure, which copies them, to the host as msi_host_main's
 *   argument. No part reads them from a global of this file.
 * - An instance is the program re-run with MS_SERVE=<service>: ms_init hands over to the
 *   host (msi_host_main) and exits with its status, never returning to main().
 *   MS_DESCRIBE=1 prints the services as JSON and exits 0 (msd's deploy runs that). In both
 *   cases an error in the settings or the registry exits 2 instead of returning.
 * - State machine of the process: UNINIT --ms_init--> READY --ms_shutdown--> DOWN. Both
 *   transitions happen once; later calls are no-ops.
 */
#include "msi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

ms_mode msi_mode = MS_MODE_ZERO;
int msi_initialized;
_Atomic int msi_shutting_down;
const msi_transport *msi_remote = &msi_client_transport;

/* The settings (msi.h), from the environment and --ms-* options; owned here, freed by
 * ms_shutdown. */
static char *orchestrators; /* NULL when unset or empty */
static char *token;         /* NULL when unset */

static int shut_down;

static const char *const mode_names[] = {"zero", "zero-checked", "local", "docker"};

const char *
ms_mode_name(ms_mode m)
{
    return (unsigned)m < sizeof mode_names / sizeof *mode_names ? mode_names[m] : "?";
}

ms_mode
ms_current_mode(void)
{
    return msi_mode;
}

static int
parse_mode(const char *s, ms_mode *m)
{
    for (unsigned i = 0; i < sizeof mode_names / sizeof *mode_names; i++) {
        if (strcmp(s, mode_names[i]) == 0) {
            *m = (ms_mode)i;
            return 0;
        }
    }
    return -1;
}

static int
parse_log(const char *s)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* Takes "--ms-NAME=VALUE" out of argv; returns VALUE (pointer into argv) or NULL. */
static const char *
take_option(int *argc, char ***argv, const char *name)
{
    if (!argc || !argv || !*argv)
        return NULL;
    size_t n = strlen(name);
    const char *val = NULL;
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        char *a = (*argv)[i];
        if (i > 0 && strncmp(a, "--ms-", 5) == 0 && strncmp(a + 5, name, n) == 0 &&
            a[5 + n] == '=') {
            val = a + 6 + n;
            continue;
        }
        (*argv)[out++] = a;
    }
    if (out < *argc)
        (*argv)[out] = NULL;
    *argc = out;
    return val;
}

ms_status
ms_init(int *argc, char ***argv)
{
    if (msi_initialized)
        return MS_OK;

    /* An instance (MS_SERVE) or a description (MS_DESCRIBE) never returns to main(), not
     * even on an error: main() would then run where nobody expects it to. */
    const char *serve = getenv("MS_SERVE");
    const char *describe = getenv("MS_DESCRIBE");
    int describing = describe && *describe && strcmp(describe, "0") != 0;
    int special = (serve && *serve) || describing;
    ms_status st = MS_OK;

    const char *mode = take_option(argc, argv, "mode");
    const char *orch = take_option(argc, argv, "orchestrator");
    const char *log = take_option(argc, argv, "log");
    if (!mode)
        mode = getenv("MS_MODE");
    if (!orch)
        orch = getenv("MS_ORCHESTRATOR");
    if (!log)
        log = getenv("MS_LOG");

    if (log && *log) {
        int l = parse_log(log);
        if (l < 0) {
            st = msi_set_error(MS_EINVAL, "MS_LOG: unknown level '%s' (error, warn, info, debug)",
                               log);
            goto fail;
        }
        msi_log_level = l;
    }
    if (orch && *orch)
        orchestrators = strdup(orch);

    ms_mode m = orchestrators ? MS_MODE_LOCAL : MS_MODE_ZERO;
    if (mode && *mode && parse_mode(mode, &m) < 0) {
        st = msi_set_error(
            MS_EINVAL, "MS_MODE: unknown mode '%s' (zero, zero-checked, local; docker is planned)",
            mode);
        goto fail;
    }

    const char *tok = getenv("MS_TOKEN");
    if (tok && *tok)
        token = strdup(tok);
    else if ((tok = getenv("MS_TOKEN_FILE")) && *tok)
        token = msi_read_first_line(tok);
    const msi_settings settings = {orchestrators, token};
    st = msi_remote->configure(&settings);
    if (st != MS_OK)
        goto fail;

    msi_initialized = 1;
    st = msi_registry_check();
    if (st != MS_OK)
        goto fail;
    if (describing)
        exit(msi_describe_main());
    if (serve && *serve) {
        msi_mode = m == MS_MODE_ZERO || m == MS_MODE_ZERO_CHECKED ? MS_MODE_LOCAL : m;
        exit(msi_host_main(serve, &settings));
    }

    msi_mode = m;
    if (m == MS_MODE_LOCAL || m == MS_MODE_DOCKER)
        return msi_remote->start();
    return MS_OK;

fail:
    if (special) {
        fprintf(stderr, "ms: %s\n", ms_last_error());
        exit(2);
    }
    return st;
}

void
ms_shutdown(void)
{
    if (!msi_initialized || shut_down)
        return;
    shut_down = 1;
    msi_shutting_down = 1;
    if (msi_mode == MS_MODE_LOCAL || msi_mode == MS_MODE_DOCKER)
        msi_remote->stop();
    free(orchestrators);
    orchestrators = NULL;
    free(token);
    token = NULL;
}
