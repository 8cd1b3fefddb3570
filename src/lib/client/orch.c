/*
 * orch.c: talking to msd: requests go to the orchestrators of MS_ORCHESTRATOR in turn, with
 * failover. Also the client's set-up and stop (msi_client_start, msi_client_stop): the
 * orchestrator list, the token, a private msd when none is configured, and the registration
 * of this program's executable as a deployment. Part of src/lib/client (client_int.h).
 *
 * Design notes
 * - Orchestrators: requests go to the one that answered last, failing over along the
 *   MS_ORCHESTRATOR list. While none answers, calls go on with the instances already known
 *   (skipped ones included when nothing else is left); with none known, a client that has
 *   reached an orchestrator before waits for one (a restart) within the call's deadline,
 *   and one that never has fails at once (MS_EUNAVAILABLE: most likely a wrong address).
 * - A private msd (local mode, MS_ORCHESTRATOR unset) is a child process with its state in
 *   a temporary directory; it is stopped and the directory removed by msi_client_stop or,
 *   if the program never calls ms_shutdown, at exit. `--parent-pid` makes it go away if
 *   this process dies without either.
 * - The build hash (SHA-256 of /proc/self/exe) is computed once, on first need, not at
 *   start: an instance's start-up does not pay for it.
 */
#include "client_int.h"
#include "sha256.h"
#include "statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct client msi_client;

/* ---- talking to msd ------------------------------------------------------------------- */

/* Sends a request to the orchestrators in turn, starting with the one that answered last,
 * until one answers. MS_OK with *out (the parsed body, may be NULL) and resp->status. */
ms_status
msi_cl_orch_request(const char *method, const char *path, const char *const *headers, json_t *body,
                    int64_t deadline, msi_httpc_resp *resp, json_t **out, msi_err *err)
{
    ms_status st = msi_errf(err, MS_EUNAVAILABLE, "no orchestrator configured");
    int start = msi_client.orch_cur;
    for (int k = 0; k < msi_client.norch; k++) {
        int i = (start + k) % msi_client.norch;
        char url[1024];
        snprintf(url, sizeof url, "http://%s%s", msi_client.orch[i], path);
        msi_httpc_req rq = {0};
        rq.method = method;
        rq.url = url;
        rq.bearer = msi_client.token;
        rq.headers = headers;
        rq.deadline_ms = deadline;
        st = msi_httpc_json(&rq, body, resp, out, err);
        if (st == MS_OK) {
            msi_client.orch_cur = i;
            msi_client.orch_seen = 1;
            return MS_OK;
        }
        if (st == MS_ETIMEDOUT)
            break;
    }
    return st;
}

pthread_once_t msi_cl_build_once = PTHREAD_ONCE_INIT;

/* Our build (the SHA-256 of our executable), computed on first use: an instance that makes
 * no nested call, or a client before its first call, does not pay for hashing. */
void
msi_cl_hash_build(void)
{
    msi_err err = {{0}};
    if (msi_sha256_file("/proc/self/exe", msi_client.build, &err) != MS_OK) {
        msi_log(1, "cannot hash this program (%s): locating by signature only", err.msg);
        msi_client.build[0] = '\0';
    }
}

/* ---- set-up: orchestrators, token, private msd, deployment ---------------------------- */

static void
default_state_dir(char *out, size_t size)
{
    const char *s = getenv("MS_STATE_DIR");
    const char *x = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    if (s && *s)
        snprintf(out, size, "%s", s);
    else if (x && *x)
        snprintf(out, size, "%s/ms", x);
    else if (home && *home)
        snprintf(out, size, "%s/.local/state/ms", home);
    else
        out[0] = '\0';
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void
stop_private_msd(void)
{
    if (msi_client.msd_pid > 0 && getpid() == msi_client.owner) {
        kill(msi_client.msd_pid, SIGTERM);
        int64_t end = msi_now_ms() + MSD_STOP_MS;
        int status;
        while (waitpid(msi_client.msd_pid, &status, WNOHANG) == 0) {
            if (msi_now_ms() >= end) {
                msi_log(1, "private msd (pid %ld) did not stop in time: killed",
                        (long)msi_client.msd_pid);
                kill(msi_client.msd_pid, SIGKILL);
                waitpid(msi_client.msd_pid, &status, 0);
                break;
            }
            msi_cl_sleep_ms(10);
        }
        msi_client.msd_pid = 0;
    }
    if (msi_client.tmpdir[0] && getpid() == msi_client.owner) {
        nftw(msi_client.tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        msi_client.tmpdir[0] = '\0';
    }
}

static void
at_exit(void)
{
    stop_private_msd();
}

/* The msd to run: MS_MSD, else "msd" next to our executable, else "msd" from PATH. */
static void
find_msd(char *out, size_t size)
{
    const char *env = getenv("MS_MSD");
    if (env && *env) {
        snprintf(out, size, "%s", env);
        return;
    }
    if (msi_client.exe[0]) {
        const char *slash = strrchr(msi_client.exe, '/');
        if (slash) {
            snprintf(out, size, "%.*s/msd", (int)(slash - msi_client.exe), msi_client.exe);
            if (access(out, X_OK) == 0)
                return;
        }
    }
    snprintf(out, size, "msd");
}

static void
log_tail(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    char buf[2048];
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, sz > (long)sizeof buf - 1 ? sz - (long)sizeof buf + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    if (n)
        msi_log(0, "private msd's log ends with:\n%s", buf);
}

static ms_status
start_private_msd(msi_err *err)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(msi_client.tmpdir, sizeof msi_client.tmpdir, "%s/ms-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(msi_client.tmpdir)) {
        ms_status st = msi_errf(err, MS_EIO, "cannot make a state directory %s: %s",
                                msi_client.tmpdir, strerror(errno));
        msi_client.tmpdir[0] = '\0';
        return st;
    }
    if (!msi_client.atexit_set) {
        atexit(at_exit);
        msi_client.atexit_set = 1;
    }
    char msd[PATH_MAX], pid[32], logpath[PATH_MAX + 16], addrpath[PATH_MAX + 16];
    find_msd(msd, sizeof msd);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    snprintf(logpath, sizeof logpath, "%s/msd.log", msi_client.tmpdir);
    snprintf(addrpath, sizeof addrpath, "%s/" MSI_STATE_ADDR, msi_client.tmpdir);
    char *argv[] = {msd,
                    (char *)"--listen",
                    (char *)"127.0.0.1:0",
                    (char *)"--state",
                    msi_client.tmpdir,
                    (char *)"--parent-pid",
                    pid,
                    NULL};
    int verbose = msi_log_level >= 2;
    int logfd = verbose ? -1 : open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    pid_t child = fork();
    if (child == 0) {
        /* Only async-signal-safe calls from here to exec. */
        if (nullfd >= 0)
            dup2(nullfd, 0);
        if (logfd >= 0) {
            dup2(logfd, 1);
            dup2(logfd, 2);
        }
        if (strchr(msd, '/'))
            execv(msd, argv);
        else
            execvp(msd, argv);
        _exit(127);
    }
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    if (child < 0)
        return msi_errf(err, MS_EIO, "cannot start msd: fork: %s", strerror(errno));
    msi_client.msd_pid = child;

    int64_t end = msi_now_ms() + MSD_START_MS;
    while (msi_now_ms() < end) {
        int status;
        if (waitpid(child, &status, WNOHANG) == child) {
            msi_client.msd_pid = 0;
            if (!verbose)
                log_tail(logpath);
            return msi_errf(err, MS_EUNAVAILABLE,
                            "private msd (%s) exited at start (status %d); set MS_MSD to the "
                            "msd program or MS_ORCHESTRATOR to a running one",
                            msd, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
        char *addr = msi_read_first_line(addrpath);
        if (addr && strchr(addr, ':')) {
            free(msi_client.orch_buf);
            msi_client.orch_buf = addr;
            msi_client.orch[0] = addr;
            msi_client.norch = 1;
            snprintf(msi_client.state, sizeof msi_client.state, "%s", msi_client.tmpdir);
            msi_log(2, "private msd (pid %ld) at %s, state %s", (long)child, addr,
                    msi_client.tmpdir);
            return MS_OK;
        }
        free(addr);
        msi_cl_sleep_ms(10);
    }
    stop_private_msd();
    return msi_errf(err, MS_EUNAVAILABLE, "private msd (%s) did not come up within %d ms", msd,
                    MSD_START_MS);
}

static void
count_provider(ms__service *svc, void *arg)
{
    if (svc->invoke)
        ++*(int *)arg;
}

/* Registers our executable with msd over its trusted unix socket, if there is one. */
static void
register_deployment(void)
{
    int providers = 0;
    msi_registry_each(count_provider, &providers);
    if (!providers || !msi_client.exe[0] || !msi_client.state[0])
        return;
    char sock[PATH_MAX + 16];
    snprintf(sock, sizeof sock, "%s/" MSI_STATE_SOCK, msi_client.state);
    struct stat sb;
    if (stat(sock, &sb) != 0 || !S_ISSOCK(sb.st_mode)) {
        msi_log(3, "no msd unix socket at %s: not registering this program (msctl deploy)", sock);
        return;
    }
    json_t *body = json_pack("{s:s,s:[]}", "path", msi_client.exe, "argv");
    msi_httpc_req rq = {0};
    rq.url = "http://localhost/v1/deployments";
    rq.unix_path = sock;
    rq.deadline_ms = msi_now_ms() + DEPLOY_TIMEOUT_MS;
    msi_httpc_resp rs;
    json_t *ans = NULL;
    msi_err err = {{0}};
    ms_status st = body ? msi_httpc_json(&rq, body, &rs, &ans, &err) : MS_ENOMEM;
    if (st != MS_OK) {
        msi_log(3, "registering %s with msd at %s failed: %s", msi_client.exe, sock, err.msg);
    } else if (rs.status != 200 && rs.status != 201) {
        char text[256];
        msi_log(rs.status == 401 || rs.status == 403 ? 3 : 1,
                "msd at %s refused to register %s: %s", sock, msi_client.exe,
                msi_httpc_error_text(&rs, text, sizeof text));
    } else {
        const char *b = json_string_value(json_object_get(ans, "build"));
        pthread_once(&msi_cl_build_once, msi_cl_hash_build);
        if (b && msi_client.build[0] && strcmp(b, msi_client.build) != 0)
            msi_log(1, "msd registered build %s but this program is %s", b, msi_client.build);
        else
            msi_log(3, "registered %s with msd as build %s", msi_client.exe, b ? b : "?");
    }
    json_decref(ans);
    json_decref(body);
}

/* Copies of the settings, kept until the next configure (calls racing with ms_shutdown may
 * still read what start made of them). */
ms_status
msi_client_configure(const msi_settings *s)
{
    char *orch = s->orchestrators && *s->orchestrators ? strdup(s->orchestrators) : NULL;
    char *token = s->token ? strdup(s->token) : NULL;
    if ((s->orchestrators && *s->orchestrators && !orch) || (s->token && !token)) {
        free(orch);
        free(token);
        return msi_set_error(MS_ENOMEM, "out of memory");
    }
    free(msi_client.conf_orch);
    free(msi_client.conf_token);
    msi_client.conf_orch = orch;
    msi_client.conf_token = token;
    return MS_OK;
}

ms_status
msi_client_start(void)
{
    if (msi_client.started)
        return MS_OK;
    msi_err err = {{0}};
    ms_status st = MS_OK;
    msi_client.owner = getpid();
    msi_client.stopped = 0;

    ssize_t n = readlink("/proc/self/exe", msi_client.exe, sizeof msi_client.exe - 1);
    msi_client.exe[n > 0 ? n : 0] = '\0';
    if (strstr(msi_client.exe, " (deleted)"))
        msi_client.exe[0] = '\0'; /* replaced on disk: our build cannot be deployed from there */

    free(msi_client.orch_buf);
    msi_client.orch_buf = NULL;
    msi_client.norch = 0;
    free(msi_client.token);
    msi_client.token = NULL;
    if (msi_client.conf_orch) {
        msi_client.orch_buf = strdup(msi_client.conf_orch);
        if (!msi_client.orch_buf)
            return msi_set_error(MS_ENOMEM, "out of memory");
        for (char *p = msi_client.orch_buf; p && *p && msi_client.norch < ORCH_MAX;) {
            char *comma = strchr(p, ',');
            if (comma)
                *comma = '\0';
            if (*p)
                msi_client.orch[msi_client.norch++] = p;
            p = comma ? comma + 1 : NULL;
        }
        default_state_dir(msi_client.state, sizeof msi_client.state);
    } else if (msi_serving) {
        return msi_set_error(MS_EUNAVAILABLE, "instance without an orchestrator: no nested "
                                              "calls");
    } else if (msi_mode == MS_MODE_LOCAL) {
        st = start_private_msd(&err);
        if (st != MS_OK)
            return msi_set_error(st, "local mode: %s", err.msg);
    } else {
        return msi_set_error(MS_EUNAVAILABLE, "mode %s needs MS_ORCHESTRATOR",
                             ms_mode_name(msi_mode));
    }

    /* Token: MS_TOKEN, MS_TOKEN_FILE (read by ms_init), <state>/call-token, <state>/token. */
    if (msi_client.conf_token) {
        msi_client.token = strdup(msi_client.conf_token);
    } else if (msi_client.state[0]) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/" MSI_STATE_CALL_TOKEN, msi_client.state);
        msi_client.token = msi_read_first_line(path);
        if (!msi_client.token) {
            snprintf(path, sizeof path, "%s/" MSI_STATE_TOKEN, msi_client.state);
            msi_client.token = msi_read_first_line(path);
        }
    }
    msi_client.started = 1;
    if (!msi_serving)
        register_deployment();
    return MS_OK;
}

void
msi_client_stop(void)
{
    if (!msi_client.started)
        return;
    /* Calls racing with ms_shutdown fail (msi_client.stopped) but may still read the orchestrator
     * list and token: those are freed only by the next msi_client_start. */
    msi_client.stopped = 1;
    msi_httpc_thread_release();
    msi_tbuf_release(&msi_cl_call_tbuf); /* the main thread's */
    stop_private_msd();
    msi_client.started = 0;
}
