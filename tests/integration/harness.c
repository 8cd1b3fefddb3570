/*
 * harness.c: the msd integration tests' shared helper (contract: harness.h).
 */
#include "harness.h"

#include "httpc.h"
#include "msi.h"
#include "statedir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#define MAX_MSD 8
#define MAX_PIDS 64

static h_msd *msds[MAX_MSD];
static int nmsd;
static pid_t pids[MAX_PIDS]; /* other children (msctl runs) still running */
static int registered;
static void (*after_cleanup)(void);

const char *
h_bin(const char *env)
{
    const char *p = getenv(env);
    if (!p || !*p) {
        fprintf(stderr, "harness: %s is not set (run the test through ctest)\n", env);
        exit(1);
    }
    return p;
}

int64_t
h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
h_nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------------------------------------
 * Processes and clean-up.
 * ---------------------------------------------------------------------------------------- */

static uint64_t
start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return 0;
    p += 2;
    if (*p == 'Z' || *p == 'X')
        return 0;
    for (int f = 3; f < 22; f++) {
        p = strchr(p, ' ');
        if (!p)
            return 0;
        p++;
    }
    return strtoull(p, NULL, 10);
}

int
h_alive(pid_t pid)
{
    return pid > 0 && start_time(pid) != 0;
}

int
h_wait_gone(pid_t pid, int timeout_ms)
{
    int64_t end = h_now_ms() + timeout_ms;
    while (h_alive(pid)) {
        waitpid(pid, NULL, WNOHANG); /* reap it if it is ours */
        if (h_now_ms() > end)
            return -1;
        h_nap(10);
    }
    return 0;
}

static void
track_pid(pid_t pid)
{
    for (int i = 0; i < MAX_PIDS; i++) {
        if (!pids[i]) {
            pids[i] = pid;
            return;
        }
    }
}

static void
untrack_pid(pid_t pid)
{
    for (int i = 0; i < MAX_PIDS; i++)
        if (pids[i] == pid)
            pids[i] = 0;
}

/* Kills every instance recorded in a state directory's database whose process is still
 * the one recorded (same start time). */
static void
kill_instances(const char *state)
{
    char db[400];
    snprintf(db, sizeof db, "%s/msd.db", state);
    sqlite3 *h = NULL;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(h);
        return;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h, "SELECT pid, start_time FROM instances", -1, &st, NULL) ==
        SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            pid_t pid = (pid_t)sqlite3_column_int64(st, 0);
            uint64_t t = (uint64_t)sqlite3_column_int64(st, 1);
            if (pid > 0 && t && start_time(pid) == t)
                kill(pid, SIGKILL);
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
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

void
h_rm_tree(const char *dir, int same_fs)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | (same_fs ? FTW_MOUNT : 0));
}

pid_t
h_spawn_logged(const char *const *argv, const char *log, const char *const *unset)
{
    pid_t me = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != me)
        _exit(1);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
        dup2(devnull, 0);
    for (int i = 0; unset && unset[i]; i++)
        unsetenv(unset[i]);
    execv(argv[0], (char *const *)(uintptr_t)argv);
    _exit(127);
}

static void dump_log(h_msd *m);
static void register_cleanup(void);

static void
cleanup(void)
{
    for (int i = 0; i < MAX_PIDS; i++) {
        if (pids[i]) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
            pids[i] = 0;
        }
    }
    int bad = 0;
    for (int i = 0; i < nmsd; i++) {
        h_msd *m = msds[i];
        if (m->pid > 0) {
            /* The orderly way first: msd must drain, stop its instances and exit 0 (under
             * the sanitizers a leak or an error makes that exit status non-zero). */
            int st = h_msd_signal(m, SIGTERM, 20000);
            if (st < 0) {
                fprintf(stderr, "harness: msd %ld did not stop on SIGTERM\n", (long)m->pid);
                kill(m->pid, SIGKILL);
                waitpid(m->pid, NULL, 0);
                bad = 1;
            } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                fprintf(stderr, "harness: msd stopped with status %d\n", st);
                bad = 1;
            }
            if (bad)
                dump_log(m);
            m->pid = 0;
        }
        kill_instances(m->state);
        if (!getenv("MS_TEST_KEEP"))
            h_rm_tree(m->state, 0);
        else
            fprintf(stderr, "harness: kept %s\n", m->state);
        free(m);
    }
    nmsd = 0;
    if (after_cleanup)
        after_cleanup();
    if (bad)
        _exit(1);
}

void
h_after_cleanup(void (*fn)(void))
{
    register_cleanup();
    after_cleanup = fn;
}

static void
register_cleanup(void)
{
    if (!registered) {
        registered = 1;
        atexit(cleanup);
        signal(SIGPIPE, SIG_IGN);
    }
}

/* ------------------------------------------------------------------------------------------
 * Running programs.
 * ---------------------------------------------------------------------------------------- */

static void
append(char **buf, size_t *len, const char *data, size_t n)
{
    char *nb = realloc(*buf, *len + n + 1);
    if (!nb)
        return;
    memcpy(nb + *len, data, n);
    *len += n;
    nb[*len] = '\0';
    *buf = nb;
}

int
h_run(const char *const *argv, const char *const *env, char **out, char **err, int timeout_ms)
{
    register_cleanup();
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(pe, O_CLOEXEC) < 0) {
        close(po[0]);
        close(po[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        unsetenv("MS_ORCHESTRATOR");
        unsetenv("MS_TOKEN");
        unsetenv("MS_TOKEN_FILE");
        unsetenv("MS_STATE_DIR");
        for (int i = 0; env && env[i]; i++)
            putenv((char *)(uintptr_t)env[i]);
        execv(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    track_pid(pid);
    close(po[1]);
    close(pe[1]);
    char *ob = calloc(1, 1), *eb = calloc(1, 1);
    size_t ol = 0, el = 0;
    int64_t end = h_now_ms() + timeout_ms;
    int open_o = 1, open_e = 1, killed = 0;
    while (open_o || open_e) {
        int64_t left = end - h_now_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            killed = 1;
            break;
        }
        struct pollfd p[2] = {{open_o ? po[0] : -1, POLLIN, 0}, {open_e ? pe[0] : -1, POLLIN, 0}};
        if (poll(p, 2, (int)left) < 0 && errno != EINTR)
            break;
        char tmp[4096];
        if (open_o && p[0].revents) {
            ssize_t n = read(po[0], tmp, sizeof tmp);
            if (n <= 0)
                open_o = 0;
            else
                append(&ob, &ol, tmp, (size_t)n);
        }
        if (open_e && p[1].revents) {
            ssize_t n = read(pe[0], tmp, sizeof tmp);
            if (n <= 0)
                open_e = 0;
            else
                append(&eb, &el, tmp, (size_t)n);
        }
    }
    close(po[0]);
    close(pe[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    untrack_pid(pid);
    if (out)
        *out = ob;
    else
        free(ob);
    if (err)
        *err = eb;
    else
        free(eb);
    if (killed || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

int
h_msctl_list(h_msd *m, char **out, char **err, ...)
{
    const char *args[32];
    int n = 0;
    va_list ap;
    va_start(ap, err);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 31)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return h_msctl(m, out, err, 60000, args);
}

int
h_msctl(h_msd *m, char **out, char **err, int timeout_ms, const char *const *args)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = h_bin("MS_TEST_MSCTL");
    argv[n++] = "--state";
    argv[n++] = m->state;
    for (int i = 0; args && args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return h_run(argv, NULL, out, err, timeout_ms);
}

/* ------------------------------------------------------------------------------------------
 * msd.
 * ---------------------------------------------------------------------------------------- */

/* The first line of a state file (msi_read_first_line) into buf: 0, or -1 when unreadable,
 * empty or too long. */
static int
read_line(const char *path, char *buf, size_t len)
{
    char *s = msi_read_first_line(path);
    int ok = s && strlen(s) < len;
    if (ok)
        memcpy(buf, s, strlen(s) + 1);
    free(s);
    return ok ? 0 : -1;
}

static void
dump_log(h_msd *m)
{
    char *log = NULL;
    const char *argv[] = {"/usr/bin/tail", "-n", "40", m->log, NULL};
    h_run(argv, NULL, &log, NULL, 5000);
    fprintf(stderr, "---- msd log (%s) ----\n%s----\n", m->log, log ? log : "");
    free(log);
}

static int
spawn_msd(h_msd *m)
{
    char addrfile[300];
    snprintf(addrfile, sizeof addrfile, "%s/" MSI_STATE_ADDR, m->state);
    unlink(addrfile); /* a stale one from a killed msd would mislead the wait */
    char parent[32];
    snprintf(parent, sizeof parent, "%ld", (long)getpid());
    const char *argv[48];
    int n = 0;
    argv[n++] = h_bin("MS_TEST_MSD");
    argv[n++] = "--state";
    argv[n++] = m->state;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--parent-pid";
    argv[n++] = parent;
    for (int i = 0; m->args[i] && n < 46; i++)
        argv[n++] = m->args[i];
    argv[n] = NULL;
    static const char *const unset[] = {"MS_ORCHESTRATOR", "MS_STATE_DIR", NULL};
    pid_t pid = h_spawn_logged(argv, m->log, unset);
    if (pid < 0)
        return -1;
    m->pid = pid;
    /* Wait for <state>/addr, then for GET /v1/health. */
    int64_t end = h_now_ms() + 15000;
    while (h_now_ms() < end) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            m->pid = 0;
            fprintf(stderr, "harness: msd exited at start (status %d)\n", st);
            dump_log(m);
            return -1;
        }
        if (read_line(addrfile, m->addr, sizeof m->addr) == 0) {
            h_resp r;
            if (h_http(m, "GET", "/v1/health", NULL, NULL, 0, NULL, &r) == 0 && r.status == 200) {
                h_resp_free(&r);
                char p[300];
                snprintf(p, sizeof p, "%s/" MSI_STATE_TOKEN, m->state);
                read_line(p, m->admin, sizeof m->admin);
                snprintf(p, sizeof p, "%s/" MSI_STATE_CALL_TOKEN, m->state);
                read_line(p, m->call, sizeof m->call);
                return 0;
            }
            h_resp_free(&r);
        }
        h_nap(20);
    }
    fprintf(stderr, "harness: msd did not answer within 15 s\n");
    dump_log(m);
    return -1;
}

h_msd *
h_msd_start(const char *const *args)
{
    register_cleanup();
    if (nmsd >= MAX_MSD)
        return NULL;
    h_msd *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    snprintf(m->state, sizeof m->state, "/tmp/ms-it-XXXXXX");
    if (!mkdtemp(m->state)) {
        free(m);
        return NULL;
    }
    for (int i = 0; args && args[i] && i < 23; i++)
        m->args[i] = args[i];
    msds[nmsd++] = m;
    /* msd's log lives in its state directory: removed with the rest at exit */
    snprintf(m->log, sizeof m->log, "%s/msd-test.log", m->state);
    if (spawn_msd(m) < 0)
        return NULL;
    return m;
}

int
h_msd_restart(h_msd *m)
{
    if (m->pid > 0)
        return -1;
    return spawn_msd(m);
}

int
h_msd_signal(h_msd *m, int sig, int timeout_ms)
{
    if (m->pid <= 0)
        return -1;
    kill(m->pid, sig);
    int64_t end = h_now_ms() + timeout_ms;
    int st;
    while (h_now_ms() < end) {
        if (waitpid(m->pid, &st, WNOHANG) == m->pid) {
            m->pid = 0;
            return st;
        }
        h_nap(10);
    }
    return -1;
}

/* ------------------------------------------------------------------------------------------
 * HTTP.
 * ---------------------------------------------------------------------------------------- */

static int
do_http(const char *method, const char *url, const char *unix_path, const char *token,
        const char *body, size_t len, const char *const *headers, h_resp *r)
{
    memset(r, 0, sizeof *r);
    msi_httpc_req req = {0};
    req.method = method;
    req.url = url;
    req.unix_path = unix_path;
    req.bearer = token;
    req.headers = headers;
    req.body = body;
    req.body_len = len;
    req.deadline_ms = msi_now_ms() + 30000;
    msi_httpc_resp resp;
    msi_err err = {{0}};
    ms_status st = msi_httpc_do(&req, &resp, &err);
    r->transport = (int)st;
    if (st != MS_OK)
        return -1;
    r->status = resp.status;
    r->body = malloc(resp.len + 1);
    if (r->body) {
        memcpy(r->body, resp.body, resp.len);
        r->body[resp.len] = '\0';
        r->len = resp.len;
        r->json = json_loadb(r->body, r->len, 0, NULL);
    }
    return 0;
}

int
h_http_url(const char *method, const char *url, const char *token, const char *body, size_t len,
           const char *const *headers, h_resp *r)
{
    return do_http(method, url, NULL, token, body, len, headers, r);
}

int
h_http(h_msd *m, const char *method, const char *path, const char *token, const char *body,
       size_t len, const char *const *headers, h_resp *r)
{
    char url[4096];
    snprintf(url, sizeof url, "http://%s%s", m->addr, path);
    return do_http(method, url, NULL, token, body, len, headers, r);
}

int
h_http_sock(const char *sock, const char *method, const char *path, const char *body, size_t len,
            const char *const *headers, h_resp *r)
{
    char url[4096];
    snprintf(url, sizeof url, "http://localhost%s", path);
    return do_http(method, url, sock, NULL, body, len, headers, r);
}

int
h_http_unix(h_msd *m, const char *method, const char *path, const char *token, const char *body,
            size_t len, h_resp *r)
{
    char url[4096], sock[400];
    snprintf(url, sizeof url, "http://localhost%s", path);
    snprintf(sock, sizeof sock, "%s/" MSI_STATE_SOCK, m->state);
    return do_http(method, url, sock, token, body, len, NULL, r);
}

void
h_resp_free(h_resp *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

const char *
h_err_code(const h_resp *r)
{
    const char *c = json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
    return c ? c : "";
}

json_t *
h_services(h_msd *m)
{
    h_resp r;
    if (h_http(m, "GET", "/v1/services", m->call, NULL, 0, NULL, &r) < 0 || r.status != 200) {
        h_resp_free(&r);
        return NULL;
    }
    json_t *s = json_incref(json_object_get(r.json, "services"));
    h_resp_free(&r);
    return s;
}

int
h_count(h_msd *m, const char *service, const char *state)
{
    json_t *list = h_services(m);
    if (!list)
        return -1;
    int n = 0;
    size_t i, k;
    json_t *s, *in;
    json_array_foreach(list, i, s)
    {
        const char *name = json_string_value(json_object_get(s, "name"));
        if (!name || strcmp(name, service) != 0)
            continue;
        json_array_foreach(json_object_get(s, "instances"), k, in)
        {
            const char *st = json_string_value(json_object_get(in, "state"));
            if (!state || (st && strcmp(st, state) == 0))
                n++;
        }
    }
    json_decref(list);
    return n;
}

int
h_wait_count(h_msd *m, const char *service, const char *state, int n, int timeout_ms)
{
    int64_t end = h_now_ms() + timeout_ms;
    int last = -1;
    while (h_now_ms() < end) {
        last = h_count(m, service, state);
        if (last == n)
            return 0;
        h_nap(20);
    }
    fprintf(stderr, "harness: %s %s: %d instances, wanted %d\n", service, state ? state : "(any)",
            last, n);
    return -1;
}

json_t *
h_events(h_msd *m)
{
    h_resp r;
    if (h_http(m, "GET", "/v1/events?since=0&limit=10000", m->call, NULL, 0, NULL, &r) < 0 ||
        r.status != 200) {
        h_resp_free(&r);
        return NULL;
    }
    json_t *e = json_incref(json_object_get(r.json, "events"));
    h_resp_free(&r);
    return e;
}

int
h_count_events(h_msd *m, const char *type, const char *service)
{
    json_t *evs = h_events(m);
    if (!evs)
        return -1;
    int n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(evs, i, e)
    {
        const char *t = json_string_value(json_object_get(e, "type"));
        const char *s = json_string_value(json_object_get(e, "service"));
        if (t && strcmp(t, type) == 0 && (!service || (s && strcmp(s, service) == 0)))
            n++;
    }
    json_decref(evs);
    return n;
}

int
h_wait_events(h_msd *m, const char *type, const char *service, int n, int timeout_ms)
{
    int64_t end = h_now_ms() + timeout_ms;
    int last = -1;
    while (h_now_ms() < end) {
        last = h_count_events(m, type, service);
        if (last >= n)
            return 0;
        h_nap(20);
    }
    fprintf(stderr, "harness: %d '%s' events, wanted %d\n", last, type, n);
    return -1;
}

pid_t
h_instance_pid(h_msd *m, const char *id)
{
    json_t *list = h_services(m);
    pid_t pid = 0;
    size_t i, k;
    json_t *s, *in;
    json_array_foreach(list, i, s)
    {
        json_array_foreach(json_object_get(s, "instances"), k, in)
        {
            const char *iid = json_string_value(json_object_get(in, "id"));
            if (iid && strcmp(iid, id) == 0)
                pid = (pid_t)json_integer_value(json_object_get(in, "pid"));
        }
    }
    json_decref(list);
    return pid;
}

long
h_deploy(h_msd *m, const char *path, json_t **reply)
{
    json_t *b = json_pack("{s:s, s:[]}", "path", path, "argv");
    char *text = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    h_resp r;
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    int rc = h_http(m, "POST", "/v1/deployments", m->admin, text, strlen(text), hdrs, &r);
    free(text);
    long status = rc < 0 ? 0 : r.status;
    if (reply)
        *reply = json_incref(r.json);
    h_resp_free(&r);
    return status;
}

int
h_instance_procs(h_msd *m, pid_t *pids, int max)
{
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s/bin/", m->state);
    size_t plen = strlen(prefix);
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char link[64], exe[512];
        snprintf(link, sizeof link, "/proc/%ld/exe", pid);
        ssize_t k = readlink(link, exe, sizeof exe - 1);
        if (k <= 0)
            continue; /* gone, a zombie, or not ours to look at */
        exe[k] = '\0';
        if (strncmp(exe, prefix, plen) != 0 || !h_alive((pid_t)pid))
            continue;
        if (pids && n < max)
            pids[n] = (pid_t)pid;
        n++;
    }
    closedir(d);
    return n;
}
