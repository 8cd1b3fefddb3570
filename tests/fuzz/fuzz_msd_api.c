/*
 * fuzz_msd_api.c: msd's API request handling (src/msd/api.c), through the real server.
 *
 * Design notes
 * - api.c's handlers are static and take a server request (msi_http_req), so they cannot
 *   be called without a server. This target therefore runs msd's API in-process on an in-memory
 *   model (no store, no runner, no reconcile loop: handlers only change desired state) and
 *   sends each input as one request over msd's unix socket, then reads the answer to the
 *   end. That covers routing, the early (credential) hooks, body limits, body parsing and
 *   the handlers as msd runs them. A pure parser per endpoint would be faster to fuzz
 *   (tests/fuzz/README.md says which).
 * - Well-formed requests share one keep-alive connection (a connection costs the server
 *   a thread); a raw request gets a connection of its own, whose write side
 *   is shut after it, and is read until msd closes it.
 * - The unix socket trusts a peer with msd's uid; the model's uid is set to another one so
 *   that credentials are checked as on TCP: requests carry the admin token, an instance
 *   token or none, as the input says.
 * - msd_deploy would run the named executable (with MS_DESCRIBE=1): a fuzzer must not
 *   choose what runs. The link wraps it (-Wl,--wrap=msd_deploy): __wrap_msd_deploy below
 *   answers like msd_deploy does for a file it refuses, naming the path.
 * - The model is rebuilt before every input (so an input's effect does not depend on the
 *   ones before it) from a describe document parsed by the real msd_parse_describe:
 *   two builds of "add", one of "slow", instances in every state. msd.stopping is set, so
 *   that a lookup with no ready instance answers 503 at once instead of waiting for an
 *   instance nobody will start.
 * - The object store (docs/objects.md) is a real SQLite one in the state directory, reached
 *   through raw requests (kind 4). Objects are not reset between inputs (an input may find
 *   what an earlier one wrote); the properties below hold whatever the store holds.
 *
 * Input: byte 0 picks the kind, byte 1 a name or method, the rest is the body or text:
 *   0 POST /v1/deployments            body
 *   1 PUT /v1/services/{name}/scale   body      (name from byte 1)
 *   2 POST /v1/services/{name}/failures body
 *   3 POST /v1/instances/{id}/heartbeat body    (id and token from byte 1)
 *   4 a raw request (bytes 1.. sent as they are, then the write side is shut)
 *   5 a describe document for msd_parse_describe and msd_service_apply_options (no server)
 *   6 METHOD PATH with no body (method from byte 1, path = the rest up to a space or CR/LF)
 *
 * Properties: every request is answered (or, for broken framing in kind 4, the connection
 * closed) within 15 s; no answer is a 5xx other than 503 (documented: msd stopping, crash
 * loop) or one of the server's own framing answers (kind 4 only); unless MS_FUZZ_STRICT=0,
 * every 4xx/5xx body is also a JSON error {"error":{"code","message"}} (docs/protocol.md).
 */
#include "fuzz_common.h"

#include "msd.h"
#include "objstore.h"
#include "statedir.h"

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_TOKEN "adadadadadadadadadadadadadadadadadadadadadadadadadadadadadadadad"
#define CALL_TOKEN "cacacacacacacacacacacacacacacacacacacacacacacacacacacacacacacaca"
#define INST_TOKEN "1111111111111111111111111111111111111111111111111111111111111111"
#define BUILD_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define BUILD_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define ANSWER_TIMEOUT_MS 15000

static const char DESCRIBE_A[] =
    "{\"ms\":1,\"services\":["
    "{\"name\":\"add\",\"signature\":\"0123456789abcdef\",\"sigtext\":\"add(a:i64,b:i64)->i64\","
    "\"options\":{\"idempotent\":true,\"stateful\":false,\"concurrency\":1,\"min_instances\":1,"
    "\"max_instances\":8,\"scale_up_at\":0.5,\"scale_down_at\":0.3,\"timeout_ms\":3000,"
    "\"lb\":\"default\"}},"
    "{\"name\":\"slow\",\"signature\":\"fedcba9876543210\",\"sigtext\":\"slow(ms:i32)->i32\","
    "\"options\":{\"max_instances\":4,\"lb\":\"orchestrator\"}}]}";
static const char DESCRIBE_B[] =
    "{\"ms\":1,\"services\":["
    "{\"name\":\"add\",\"signature\":\"00000000ffffffff\",\"sigtext\":\"add(a:i32,b:i32)->i32\","
    "\"options\":{\"lb\":\"none\"}}]}";

static msd M;
static msd_api *api;
static char state_dir[80];
static char sock_path[128];
static int strict;

/* ------------------------------------------------------------------------------------------
 * msd_deploy, wrapped: never runs anything.
 * ---------------------------------------------------------------------------------------- */

ms_status __wrap_msd_deploy(msd *m, const char *path, const json_t *argv, json_t **out,
                            int *created, msi_err *err);

ms_status
__wrap_msd_deploy(msd *m, const char *path, const json_t *argv, json_t **out, int *created,
                  msi_err *err)
{
    (void)m;
    *out = NULL;
    *created = 0;
    /* What the handler promises msd_deploy. */
    FZ_CHECK(path && *path, "deploy without a path");
    FZ_CHECK(!argv || json_is_array(argv), "deploy with a non-array argv");
    /* msd_deploy's own wording for a file it cannot use: the path, then the cause. */
    return msi_errf(err, MS_EBADARGS, "%s: No such file or directory (fuzzing: nothing is run)",
                    path);
}

/* ------------------------------------------------------------------------------------------
 * The model.
 * ---------------------------------------------------------------------------------------- */

static void
free_model(void)
{
    for (msd_instance *in = M.instances, *nx; in; in = nx) {
        nx = in->next;
        msd_instance_free(in);
    }
    for (msd_service *s = M.services, *nx; s; s = nx) {
        nx = s->next;
        msd_service_free(s);
    }
    for (msd_deployment *d = M.deployments, *nx; d; d = nx) {
        nx = d->next;
        msd_deployment_free(d);
    }
    M.instances = NULL;
    M.services = NULL;
    M.deployments = NULL;
}

static msd_deployment *
add_deployment(const char *build, int64_t seq, const char *describe)
{
    msi_err err = {{0}};
    json_t *services = NULL;
    ms_status st = msd_parse_describe(describe, strlen(describe), &services, &err);
    FZ_CHECK(st == MS_OK, "the built-in describe document is refused: %s", err.msg);
    msd_deployment *d = calloc(1, sizeof *d);
    FZ_CHECK(d != NULL, "out of memory");
    snprintf(d->build, sizeof d->build, "%s", build);
    d->seq = seq;
    d->path = strdup("/fuzz/app");
    d->exe = strdup("/nonexistent/bin/app");
    d->argv = json_array();
    d->services = services;
    d->next = M.deployments;
    M.deployments = d;
    size_t i;
    json_t *s;
    json_array_foreach(services, i, s)
    {
        msd_service *svc = calloc(1, sizeof *svc);
        FZ_CHECK(svc != NULL, "out of memory");
        snprintf(svc->name, sizeof svc->name, "%s", json_string_value(json_object_get(s, "name")));
        snprintf(svc->build, sizeof svc->build, "%s", build);
        snprintf(svc->sig, sizeof svc->sig, "%s",
                 json_string_value(json_object_get(s, "signature")));
        svc->sigtext = strdup(json_string_value(json_object_get(s, "sigtext")));
        svc->options = json_deep_copy(json_object_get(s, "options"));
        svc->dep = d;
        msd_service_apply_options(svc);
        svc->desired = 1;
        svc->next = M.services;
        M.services = svc;
    }
    return d;
}

static void
add_instance(const char *id, const char *service, const char *build, msd_istate state,
             int probed_ok)
{
    msd_service *svc = msd_service_find(&M, service, build);
    FZ_CHECK(svc != NULL, "no service %s", service);
    msd_instance *in = calloc(1, sizeof *in);
    FZ_CHECK(in != NULL, "out of memory");
    snprintf(in->id, sizeof in->id, "%s", id);
    in->epoch = 1;
    in->svc = svc;
    in->state = state;
    in->proc.pid = 0;
    in->proc.exit_fd = -1;
    in->proc.status = -1;
    snprintf(in->addr, sizeof in->addr, "127.0.0.1:%d", 40000 + (int)strlen(id));
    snprintf(in->token, sizeof in->token, "%s", INST_TOKEN);
    in->registered = state != MSD_I_STARTING;
    in->probed_ok = probed_ok;
    in->next_probe_mono = INT64_MAX;
    in->next = M.instances;
    M.instances = in;
}

/* Rebuilds the model: the same for every input. Caller holds M.mu. */
static void
reset_model(void)
{
    free_model();
    M.next_instance = 10;
    M.next_deploy_seq = 3;
    M.event_seq = 0;
    add_deployment(BUILD_A, 1, DESCRIBE_A);
    add_deployment(BUILD_B, 2, DESCRIBE_B);
    add_instance("i-1", "add", BUILD_A, MSD_I_READY, 1);
    add_instance("i-2", "add", BUILD_B, MSD_I_STARTING, 0);
    add_instance("i-3", "slow", BUILD_A, MSD_I_SUSPECT, 1);
    add_instance("i-4", "slow", BUILD_A, MSD_I_READY, 1);
    add_instance("i-5", "add", BUILD_A, MSD_I_DEAD, 0);
    add_instance("i-6", "add", BUILD_A, MSD_I_DRAINING, 1);
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static int ka_fd = -1; /* keep-alive connection of the well-formed requests */

static void
remove_state(void)
{
    if (state_dir[0])
        nftw(state_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void
stop_all(void)
{
    if (ka_fd >= 0)
        close(ka_fd);
    ka_fd = -1;
    msd_api_stop(api);
    api = NULL;
    if (M.objects)
        M.objects->ops->close(M.objects);
    M.objects = NULL;
    pthread_mutex_lock(&M.mu);
    free_model();
    pthread_mutex_unlock(&M.mu);
    remove_state();
}

static void
start_once(void)
{
    if (api)
        return;
    signal(SIGPIPE, SIG_IGN);
    const char *s = getenv("MS_FUZZ_STRICT");
    strict = !s || *s != '0'; /* strict unless MS_FUZZ_STRICT=0 */
    /* Under TMPDIR (run.sh points it into the build directory) unless the socket's path
     * would not fit a sockaddr_un there. */
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp || strlen(tmp) > 60)
        tmp = "/tmp";
    snprintf(state_dir, sizeof state_dir, "%s/msfz-XXXXXX", tmp);
    FZ_CHECK(mkdtemp(state_dir) != NULL, "mkdtemp %s: %s", state_dir, strerror(errno));
    fz_cleanup = remove_state;
    snprintf(sock_path, sizeof sock_path, "%s/" MSI_STATE_SOCK, state_dir);
    snprintf(M.cfg.listen, sizeof M.cfg.listen, "127.0.0.1:0");
    M.cfg.state_dir = state_dir;
    M.cfg.lb = MS_LB_CLIENT;
    M.cfg.probe_interval_ms = 1000;
    M.cfg.probe_timeout_ms = 250;
    M.cfg.probe_failures_dead = 3;
    M.cfg.start_deadline_ms = 10000;
    M.uid = getuid() + 1; /* nobody on the socket is trusted: tokens decide */
    M.start_ms = msd_wall_ms();
    M.stopping = 1;
    snprintf(M.admin_token, sizeof M.admin_token, "%s", ADMIN_TOKEN);
    snprintf(M.call_token, sizeof M.call_token, "%s", CALL_TOKEN);
    pthread_mutex_init(&M.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&M.changed, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_lock(&M.mu);
    reset_model();
    pthread_mutex_unlock(&M.mu);
    char objpath[160], msg[256];
    snprintf(objpath, sizeof objpath, "%s/objects.db", state_dir);
    FZ_CHECK(msd_objstore_sqlite_open(objpath, &M.objects, msg, sizeof msg) == 0,
             "cannot open the object store: %s", msg);
    FZ_CHECK(msd_api_start(&M, &api) == 0 && api, "cannot start msd's API in %s", state_dir);
    atexit(stop_all);
}

/* ------------------------------------------------------------------------------------------
 * One exchange over the unix socket.
 * ---------------------------------------------------------------------------------------- */

typedef struct answer {
    int status; /* of the first answer; 0: none (connection closed without an answer) */
    char *text; /* everything read, NUL-terminated */
    size_t len;
    int closed; /* the server closed the connection (or said it would) */
} answer;

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
connect_msd(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1); /* < 40 bytes: mkdtemp in /tmp */
    FZ_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect %s: %s", sock_path,
             strerror(errno));
    return fd;
}

/* Case-insensitive search of a header line "name: value" in the head (up to head_len). */
static const char *
find_header(const char *text, size_t head_len, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && (size_t)(p - text) < head_len; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':')
            return p + n + 1;
    }
    return NULL;
}

/* Whether a has one complete answer: its head and Content-Length bytes of body (none for a
 * HEAD request). */
static int
complete(answer *a, int head_request)
{
    a->text[a->len] = '\0';
    const char *end = strstr(a->text, "\r\n\r\n");
    if (!end)
        return 0;
    size_t head = (size_t)(end - a->text) + 4;
    const char *cl = find_header(a->text, head, "Content-Length");
    const char *conn = find_header(a->text, head, "Connection");
    if (conn && strncasecmp(conn + strspn(conn, " "), "close", 5) == 0)
        a->closed = 1;
    if (head_request)
        return 1;
    if (!cl)
        return 0; /* no length: the end is the close */
    return a->len >= head + strtoull(cl, NULL, 10);
}

/*
 * Sends req (len bytes) on fd and reads the answer. With `shut`, shuts the write side
 * once all is sent and reads until the server closes (a raw request may hold several
 * requests, or a broken one); otherwise reads one answer (keep-alive). Reads while sending,
 * so an early answer (401, 413) is seen. Returns 0, or -1 when the connection failed
 * before any answer byte came (a keep-alive connection the server had closed).
 */
static int
transact(int fd, const char *req, size_t len, int shut, int head_request, answer *a)
{
    memset(a, 0, sizeof *a);
    size_t cap = 4096, off = 0;
    a->text = malloc(cap);
    FZ_CHECK(a->text != NULL, "out of memory");
    a->text[0] = '\0';
    int64_t end = now_ms() + ANSWER_TIMEOUT_MS;
    int wr_open = 1;
    for (;;) {
        if (wr_open && off == len) {
            if (shut)
                shutdown(fd, SHUT_WR);
            wr_open = 0;
        }
        int64_t left = end - now_ms();
        FZ_CHECK(left > 0, "msd neither answered nor closed within %d ms", ANSWER_TIMEOUT_MS);
        struct pollfd p = {fd, (short)(POLLIN | (wr_open ? POLLOUT : 0)), 0};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        FZ_CHECK(n >= 0, "poll: %s", strerror(errno));
        if (wr_open && (p.revents & POLLOUT) && !(p.revents & POLLIN)) {
            ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR)
                wr_open = 0; /* the server closed: it answered early or gave up */
            continue;
        }
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        if (a->len + 1024 > cap) {
            cap *= 2;
            a->text = realloc(a->text, cap);
            FZ_CHECK(a->text != NULL, "out of memory");
        }
        ssize_t r = recv(fd, a->text + a->len, cap - a->len - 1, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0) {
            a->closed = 1; /* EOF or reset: the exchange is over */
            break;
        }
        a->len += (size_t)r;
        if (!shut && complete(a, head_request))
            break;
    }
    a->text[a->len] = '\0';
    int st;
    if (sscanf(a->text, "HTTP/1.%*[01] %3d", &st) == 1)
        a->status = st;
    return a->len == 0 && a->closed ? -1 : 0;
}

/* The body of an answer (after the blank line), or "". */
static const char *
answer_body(const char *text)
{
    const char *b = strstr(text, "\r\n\r\n");
    return b ? b + 4 : "";
}

/* Checks one answer (its status line at text). */
static void
check_one(const char *text, int raw)
{
    int status = 0;
    if (sscanf(text, "HTTP/1.%*[01] %3d", &status) != 1)
        return;
    FZ_CHECK(status >= 100 && status < 600, "bad status %d", status);
    /* 503: msd stopping or a crash loop (documented). In raw requests the server (http.c)
     * answers broken framing itself: 501 (unknown transfer coding), 505 (HTTP version). */
    int allowed_5xx = status == 503 || (raw && (status == 501 || status == 505));
    FZ_CHECK(status < 500 || allowed_5xx, "answered %d: %.300s", status, text);
    const char *body = answer_body(text);
    size_t head = (size_t)(body - text);
    const char *ct = find_header(text, head, "Content-Type");
    /* No body to check after a HEAD request: its answer has the head alone, so in a raw
     * stream of several requests the next answer's status line follows the blank line. */
    int no_body = strncmp(body, "HTTP/1.", 7) == 0;
    if (strict && status >= 400 && ct && strstr(ct, "application/json") && *body && !no_body) {
        /* The body is Content-Length bytes (a raw request's next answer may follow). */
        const char *cl = find_header(text, head, "Content-Length");
        size_t blen = strlen(body), want = cl ? (size_t)strtoull(cl, NULL, 10) : blen;
        json_t *j = json_loadb(body, want < blen ? want : blen, 0, NULL);
        json_t *e = json_object_get(j, "error");
        FZ_CHECK(json_is_string(json_object_get(e, "code")) &&
                     json_is_string(json_object_get(e, "message")),
                 "error answer without {\"error\":{\"code\",\"message\"}}: %.300s", text);
        json_decref(j);
    }
}

static void
check_answer(const answer *a, int raw)
{
    if (!raw)
        FZ_CHECK(a->status >= 100, "no answer to a well-formed request: %.200s", a->text);
    /* Every answer in the stream: a raw input may hold several requests. */
    for (const char *p = a->text; p;) {
        check_one(p, raw);
        const char *next = strstr(p, "\r\nHTTP/1.");
        p = next ? next + 2 : NULL;
    }
}

/* Builds "METHOD PATH HTTP/1.1" + headers + body and exchanges it on the keep-alive
 * connection (reconnecting once if the server had closed it). */
static void
request(const char *method, const char *path, const char *token, const uint8_t *body, size_t blen)
{
    size_t cap = strlen(method) + strlen(path) + 300 + blen;
    char *req = malloc(cap);
    FZ_CHECK(req != NULL, "out of memory");
    int n = snprintf(req, cap,
                     "%s %s HTTP/1.1\r\nHost: localhost\r\n"
                     "%s%s%s"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     method, path, token ? "Authorization: Bearer " : "", token ? token : "",
                     token ? "\r\n" : "", blen);
    FZ_CHECK(n > 0 && (size_t)n + blen <= cap, "request too long");
    if (blen)
        memcpy(req + n, body, blen);
    answer a;
    for (int attempt = 0;; attempt++) {
        int fresh = ka_fd < 0;
        if (fresh)
            ka_fd = connect_msd();
        int rc = transact(ka_fd, req, (size_t)n + blen, 0, strcmp(method, "HEAD") == 0, &a);
        if (rc < 0 || a.closed) {
            close(ka_fd);
            ka_fd = -1;
        }
        if (rc == 0 || fresh || attempt > 0)
            break;
        free(a.text); /* the server had closed the idle connection: once more */
    }
    check_answer(&a, 0);
    free(a.text);
    free(req);
}

/* ------------------------------------------------------------------------------------------
 * The describe document (no server).
 * ---------------------------------------------------------------------------------------- */

static void
fuzz_describe(const uint8_t *data, size_t size)
{
    msi_err err = {{0}};
    json_t *services = NULL;
    ms_status st = msd_parse_describe((const char *)data, size, &services, &err);
    if (st != MS_OK) {
        FZ_CHECK(!services, "services set on failure");
        FZ_CHECK(err.msg[0], "failure without a message");
        return;
    }
    FZ_CHECK(json_is_array(services) && json_array_size(services) > 0, "no services");
    size_t i;
    json_t *s;
    json_array_foreach(services, i, s)
    {
        /* What deploy.c's record() relies on. */
        const char *name = json_string_value(json_object_get(s, "name"));
        const char *sig = json_string_value(json_object_get(s, "signature"));
        FZ_CHECK(name && msd_valid_name(name), "bad name accepted");
        FZ_CHECK(sig && strlen(sig) == 16, "bad signature accepted");
        FZ_CHECK(json_is_string(json_object_get(s, "sigtext")), "no sigtext");
        FZ_CHECK(json_is_object(json_object_get(s, "options")), "no options");
        msd_service svc;
        memset(&svc, 0, sizeof svc);
        svc.options = json_object_get(s, "options");
        msd_service_apply_options(&svc);
        FZ_CHECK(svc.concurrency >= 1 && svc.min_instances >= 0 && svc.max_instances >= 1 &&
                     svc.max_instances >= svc.min_instances && svc.timeout_ms >= 1 &&
                     svc.scale_up_at > 0 && svc.scale_down_at > 0,
                 "options out of range after apply_options");
    }
    json_decref(services);
}

/* ------------------------------------------------------------------------------------------
 * The entry point.
 * ---------------------------------------------------------------------------------------- */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned kind = data[0] % 7, sel = data[1];
    const uint8_t *rest = data + 2;
    size_t rlen = size - 2;
    if (kind == 5) {
        fuzz_describe(data + 1, size - 1);
        return 0;
    }
    start_once();
    pthread_mutex_lock(&M.mu);
    reset_model();
    pthread_mutex_unlock(&M.mu);

    static const char *const names[] = {"add", "slow", "nope", "ns.add", "a..b", "x%2Fy"};
    static const char *const ids[] = {"i-1", "i-2", "i-3", "i-4", "i-5", "i-6", "i-99", "..%2Fi-1"};
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"};
    char path[512];
    switch (kind) {
    case 0:
        request("POST", "/v1/deployments", sel & 1 ? ADMIN_TOKEN : CALL_TOKEN, rest, rlen);
        break;
    case 1:
        snprintf(path, sizeof path, "/v1/services/%s/scale", names[sel % 6]);
        request("PUT", path, sel & 0x80 ? CALL_TOKEN : ADMIN_TOKEN, rest, rlen);
        break;
    case 2:
        snprintf(path, sizeof path, "/v1/services/%s/failures", names[sel % 6]);
        request("POST", path, sel & 0x80 ? NULL : CALL_TOKEN, rest, rlen);
        break;
    case 3: {
        snprintf(path, sizeof path, "/v1/instances/%s/heartbeat", ids[sel % 8]);
        static const char *const toks[] = {INST_TOKEN, ADMIN_TOKEN, CALL_TOKEN, NULL};
        request("POST", path, toks[(sel >> 3) % 4], rest, rlen);
        break;
    }
    case 4: {
        answer a;
        int fd = connect_msd();
        transact(fd, (const char *)data + 1, size - 1, 1, 0, &a);
        close(fd);
        check_answer(&a, 1);
        free(a.text);
        break;
    }
    case 6: {
        size_t n = 0;
        path[n++] = '/';
        for (size_t i = 0; i < rlen && n < sizeof path - 1; i++) {
            char c = (char)rest[i];
            if (c == ' ' || c == '\r' || c == '\n' || c == '\0')
                break;
            if (i == 0 && c == '/')
                continue;
            path[n++] = c;
        }
        path[n] = '\0';
        request(methods[sel % 6], path, sel & 0x80 ? CALL_TOKEN : ADMIN_TOKEN, NULL, 0);
        break;
    }
    default:
        break;
    }
    return 0;
}
