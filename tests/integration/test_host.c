/* test_host.c: the instance host as a real process, without msd.
 *
 * This executable is both the test driver and the instance: the driver binds a listening
 * socket, forks and execs itself with MS_SERVE and LISTEN_FDS=1 (the socket on fd 3, as
 * msd hands it over), MS_ORCHESTRATOR pointing at a small heartbeat listener that runs in
 * the driver, and checks what the instance answers: calls, 400 naming the argument, 401,
 * 404, 412, 413, 421, 429, 500 with app_code, 504, health while every slot is busy,
 * heartbeats, 410 and orphan exit, drain by SIGTERM and by POST /v1/drain (admin token
 * only), calls with the call token or the admin token (known by its hash), MS_DESCRIBE;
 * the duplicate-request cache (a retry answered without running, 422 for another body, a
 * duplicate waiting for the first attempt, 503 when full, expiry, none for idempotent
 * services), the trace context and deadline a body sees.
 *
 * Clean-up: every instance gets PR_SET_PDEATHSIG=SIGKILL (it dies with the driver), is
 * recorded, and is killed and reaped by the teardown of its test, also when an assertion
 * failed.
 */
#include "sha256.h"
#include "codec.h"
#include "http.h"
#include "httpc.h"
#include "msi.h"
#include "statedir.h"

#include <jansson.h>
#include <ms/ms.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- the services the instance serves ---- */

MS_SERVICE(int64_t, add, (int64_t, a), (int64_t, b))
{
    return a + b;
}
MS_OPTIONS(add, .idempotent = true)

MS_SERVICE(int, slow, (int, ms))
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    return ms;
}
MS_OPTIONS(slow, .concurrency = 1, .timeout_ms = 3000)

MS_SERVICE(int, slow4, (int, ms))
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    return ms;
}
MS_OPTIONS(slow4, .concurrency = 4, .timeout_ms = 3000)

MS_SERVICE(int, fails, (int, code))
{
    ms_fail(code, "boom %d", code);
    return 0;
}

MS_SERVICE(char *, env_of, (const char *, name))
{
    const char *v = getenv(name);
    return strdup(v ? v : "");
}

/* Not idempotent: counts its executions (per instance process), after sleeping `ms`. */
static _Atomic long bumps;
MS_SERVICE(int64_t, bump, (int, ms))
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    if (ms > 0)
        nanosleep(&ts, NULL);
    return ++bumps;
}

/* What a body sees of its call: the trace id and the deadline. */
MS_SERVICE(char *, call_info)
{
    char buf[96];
    snprintf(buf, sizeof buf, "%s %lld",
             msi_cur_ctx && msi_cur_ctx->trace ? msi_cur_ctx->trace->id : "-",
             (long long)ms_deadline_left_ms());
    return strdup(buf);
}
MS_OPTIONS(call_info, .idempotent = true)

/* ---- the heartbeat listener (a stand-in for msd's heartbeat endpoint) ---- */

static struct {
    pthread_mutex_t mu;
    int count;
    int answer; /* HTTP status to answer */
    double max_busy;
    json_t *last;
    char auth[256];
    char path[256];
    int64_t at[64]; /* arrival (msi_now_ms) and busy of heartbeat k at [k % 64] */
    double busy[64];
} hb = {PTHREAD_MUTEX_INITIALIZER, 0, 200, 0, NULL, "", "", {0}, {0}};

static void
hb_handler(msi_http_req *r, void *arg)
{
    (void)arg;
    size_t len;
    const char *body = msi_http_body(r, &len);
    msi_err err;
    json_t *j = msi_json_parse(body, len, &err);
    const char *auth = msi_http_header(r, "Authorization");
    pthread_mutex_lock(&hb.mu);
    double busy = json_number_value(json_object_get(j, "busy"));
    hb.at[hb.count % 64] = msi_now_ms();
    hb.busy[hb.count % 64] = busy;
    hb.count++;
    if (busy > hb.max_busy)
        hb.max_busy = busy;
    json_decref(hb.last);
    hb.last = j;
    snprintf(hb.auth, sizeof hb.auth, "%s", auth ? auth : "");
    snprintf(hb.path, sizeof hb.path, "%s", msi_http_path(r));
    int answer = hb.answer;
    pthread_mutex_unlock(&hb.mu);
    if (answer == 200)
        msi_http_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
    else
        msi_http_reply_error_ex(r, answer, MS_ENOTFOUND, NULL, "answer %d", answer);
}

static const msi_http_route hb_routes[] = {
    {"POST", "/v1/instances/", hb_handler, NULL, 0, NULL},
};

/* ---- fixture: one instance process per test ---- */

#define CALL_TOKEN "call-secret-123"
#define INST_TOKEN "inst-secret-456"
#define ADMIN_TOKEN "admin-secret-789" /* the instance gets only its SHA-256 */

static char admin_sha256[65];

typedef struct fixture {
    msi_http *orch;
    char dir[64];
    char call_tok[128], inst_tok[128];
    pid_t pid;
    char addr[64];
    char base[96];
} fixture;

static char self_exe[4096];

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ms-test-host-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->call_tok, sizeof f->call_tok, "%s/" MSI_STATE_CALL_TOKEN, f->dir);
    snprintf(f->inst_tok, sizeof f->inst_tok, "%s/inst-token", f->dir);
    write_file(f->call_tok, CALL_TOKEN "\n");
    write_file(f->inst_tok, INST_TOKEN "\n");
    msi_http_config cfg = MSI_HTTP_CONFIG_INIT;
    cfg.host_port = "127.0.0.1:0";
    cfg.routes = hb_routes;
    cfg.nroutes = 1;
    cfg.name = "fake-msd";
    msi_err err = {{0}};
    if (msi_http_start(&cfg, &f->orch, &err) != MS_OK)
        return -1;
    pthread_mutex_lock(&hb.mu);
    hb.count = 0;
    hb.answer = 200;
    hb.max_busy = 0;
    json_decref(hb.last);
    hb.last = NULL;
    pthread_mutex_unlock(&hb.mu);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    if (f->pid > 0) {
        kill(f->pid, SIGKILL);
        waitpid(f->pid, NULL, 0);
    }
    msi_http_stop(f->orch);
    unlink(f->call_tok);
    unlink(f->inst_tok);
    rmdir(f->dir);
    pthread_mutex_lock(&hb.mu);
    json_decref(hb.last);
    hb.last = NULL;
    pthread_mutex_unlock(&hb.mu);
    msi_httpc_thread_release();
    free(f);
    return 0;
}

/* Writes n in decimal into buf (async-signal-safe). */
static void
put_num(char *buf, long n)
{
    char tmp[24];
    int i = 0;
    do {
        tmp[i++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    while (i)
        *buf++ = tmp[--i];
    *buf = '\0';
}

static char env_buf[32][512];

static void add_env(char **envp, int *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
add_env(char **envp, int *n, const char *fmt, ...)
{
    assert_true(*n < 30);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(env_buf[*n], sizeof env_buf[*n], fmt, ap);
    va_end(ap);
    envp[*n] = env_buf[*n];
    ++*n;
}

/* Starts this executable as an instance of `service` on a fresh socket handed over as fd 3.
 * extra: NULL-terminated "NAME=value" additions. */
static void
spawn(fixture *f, const char *service, const char *const *extra)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof sa;
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 64), 0);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    snprintf(f->base, sizeof f->base, "http://%s", f->addr);

    /* Everything exec needs is prepared before fork: the driver has threads. */
    static char listen_pid[32];
    char *envp[40];
    int n = 0;
    const char *log = getenv("MS_TEST_LOG");
    add_env(envp, &n, "MS_SERVE=%s", service);
    add_env(envp, &n, "MS_INSTANCE_ID=i-1");
    add_env(envp, &n, "MS_INSTANCE_EPOCH=1");
    add_env(envp, &n, "MS_INSTANCE_TOKEN_FILE=%s", f->inst_tok);
    add_env(envp, &n, "MS_TOKEN_FILE=%s", f->call_tok);
    add_env(envp, &n, "MS_ORCHESTRATOR=%s", msi_http_addr(f->orch));
    int own_admin = 0; /* extra names MS_ADMIN_TOKEN_SHA256 itself */
    for (int i = 0; extra && extra[i]; i++)
        own_admin |= strncmp(extra[i], "MS_ADMIN_TOKEN_SHA256=", 22) == 0;
    if (!own_admin)
        add_env(envp, &n, "MS_ADMIN_TOKEN_SHA256=%s", admin_sha256);
    add_env(envp, &n, "LISTEN_FDS=1");
    add_env(envp, &n, "MS_LOG=%s", log ? log : "warn");
    const char *keep[] = {"PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", NULL};
    for (int i = 0; keep[i]; i++)
        if (getenv(keep[i]))
            add_env(envp, &n, "%s=%s", keep[i], getenv(keep[i]));
    for (int i = 0; extra && extra[i]; i++)
        add_env(envp, &n, "%s", extra[i]);
    memcpy(listen_pid, "LISTEN_PID=", 12);
    envp[n++] = listen_pid;
    envp[n] = NULL;
    char *argv[] = {self_exe, NULL};
    pid_t parent = getpid();

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(3);
        if (fd != 3) {
            dup2(fd, 3); /* dup2 clears FD_CLOEXEC on the copy */
            close(fd);
        } else {
            fcntl(3, F_SETFD, 0);
        }
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        put_num(listen_pid + 11, (long)getpid());
        execve(self_exe, argv, envp);
        _exit(127);
    }
    close(fd);
    f->pid = pid;
}

/* One request to the instance; returns the status and *out the parsed body. */
static long
req(fixture *f, const char *method, const char *path, const char *body, size_t len,
    const char *const *headers, json_t **out)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", f->base, path);
    msi_httpc_req rq = {0};
    rq.method = method;
    rq.url = url;
    rq.headers = headers;
    rq.body = body;
    rq.body_len = len;
    rq.deadline_ms = msi_now_ms() + 10000;
    msi_httpc_resp rs;
    msi_err err = {{0}};
    ms_status st = msi_httpc_do(&rq, &rs, &err);
    if (st != MS_OK)
        fprintf(stderr, "request %s %s: %s\n", method, path, err.msg);
    assert_int_equal(st, MS_OK);
    if (out) {
        msi_err perr;
        *out = rs.len ? msi_json_parse(rs.body, rs.len, &perr) : NULL;
    }
    return rs.status;
}

static const char *
err_code(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

static const char *
err_msg(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "message"));
}

static void
wait_ready(fixture *f)
{
    for (int i = 0; i < 1000; i++) {
        char url[256];
        snprintf(url, sizeof url, "%s/v1/ready", f->base);
        msi_httpc_req rq = {0};
        rq.url = url;
        rq.deadline_ms = msi_now_ms() + 2000;
        msi_httpc_resp rs;
        msi_err err;
        if (msi_httpc_do(&rq, &rs, &err) == MS_OK && rs.status == 200)
            return;
        int status;
        assert_int_equal(waitpid(f->pid, &status, WNOHANG), 0); /* still running */
        usleep(10 * 1000);
    }
    fail_msg("instance not ready");
}

/* Waits for the instance to exit; returns its exit status (-1: killed by a signal). */
static int
wait_exit(fixture *f, int timeout_ms)
{
    int64_t end = msi_now_ms() + timeout_ms;
    int status;
    while (msi_now_ms() < end) {
        pid_t p = waitpid(f->pid, &status, WNOHANG);
        if (p == f->pid) {
            f->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        usleep(10 * 1000);
    }
    fail_msg("instance did not exit within %d ms", timeout_ms);
    return -2;
}

static const char *
sig_of(const char *name)
{
    ms__service *s = msi_registry_find(name, NULL);
    assert_non_null(s);
    return msi_svc_of(s)->sig;
}

/* Headers of a well-formed call to `name`, with a request id of its own. */
typedef struct call_hdrs {
    char sig[64];
    char rid[64];
    char *list[8];
} call_hdrs;

static const char *const *
good_headers(call_hdrs *h, const char *name)
{
    static _Atomic unsigned long seq;
    snprintf(h->sig, sizeof h->sig, "Ms-Signature: %s", sig_of(name));
    snprintf(h->rid, sizeof h->rid, "Ms-Request-Id: test-%ld-%lu", (long)getpid(), ++seq);
    h->list[0] = (char *)"Authorization: Bearer " CALL_TOKEN;
    h->list[1] = h->sig;
    h->list[2] = (char *)"Ms-Instance: i-1.1";
    h->list[3] = h->rid;
    h->list[4] = NULL;
    return (const char *const *)h->list;
}

/* ---- tests ---- */

static void
test_host_call(void **state)
{
    fixture *f = *state;
    spawn(f, "add", NULL);
    wait_ready(f);
    call_hdrs h;
    json_t *j = NULL;
    const char *body = "{\"a\":2,\"b\":3}";
    assert_int_equal(
        req(f, "POST", "/v1/call/add", body, strlen(body), good_headers(&h, "add"), &j), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "result")), 5);
    json_decref(j);
    /* Large values survive. */
    body = "{\"a\":9223372036854775806,\"b\":1}";
    assert_int_equal(
        req(f, "POST", "/v1/call/add", body, strlen(body), good_headers(&h, "add"), &j), 200);
    assert_true(json_integer_value(json_object_get(j, "result")) == INT64_MAX);
    json_decref(j);
    /* Health names the instance. */
    assert_int_equal(req(f, "GET", "/v1/health", NULL, 0, NULL, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "i-1");
    assert_int_equal(json_integer_value(json_object_get(j, "epoch")), 1);
    json_decref(j);
}

static void
test_host_refusals(void **state)
{
    fixture *f = *state;
    spawn(f, "add", NULL);
    wait_ready(f);
    call_hdrs h;
    json_t *j = NULL;
    const char *body = "{\"a\":2,\"b\":3}";
    size_t len = strlen(body);

    /* 412: another signature. */
    const char *bad_sig[] = {"Authorization: Bearer " CALL_TOKEN, "Ms-Signature: 0123456789abcdef",
                             NULL};
    assert_int_equal(req(f, "POST", "/v1/call/add", body, len, bad_sig, &j), 412);
    assert_string_equal(err_code(j), "MS_ESIGNATURE");
    json_decref(j);

    /* 404: a service this instance does not serve. */
    assert_int_equal(req(f, "POST", "/v1/call/nope", body, len, good_headers(&h, "add"), &j), 404);
    assert_string_equal(err_code(j), "MS_ENOTFOUND");
    json_decref(j);

    /* 400 naming the argument: missing b, mistyped a. */
    assert_int_equal(req(f, "POST", "/v1/call/add", "{\"a\":2}", 7, good_headers(&h, "add"), &j),
                     400);
    assert_string_equal(err_code(j), "MS_EBADARGS");
    assert_non_null(strstr(err_msg(j), "'b'"));
    json_decref(j);
    body = "{\"a\":\"two\",\"b\":3}";
    assert_int_equal(
        req(f, "POST", "/v1/call/add", body, strlen(body), good_headers(&h, "add"), &j), 400);
    assert_non_null(strstr(err_msg(j), "'a'"));
    json_decref(j);
    assert_int_equal(req(f, "POST", "/v1/call/add", "{\"a\":", 5, good_headers(&h, "add"), &j),
                     400);
    json_decref(j);
    body = "{\"a\":2,\"b\":3}";

    /* 401: no token, a wrong token. */
    const char *no_tok[] = {"Ms-Signature: 0000000000000000", NULL};
    assert_int_equal(req(f, "POST", "/v1/call/add", body, len, no_tok, &j), 401);
    assert_string_equal(err_code(j), "MS_EAUTH");
    json_decref(j);
    const char *bad_tok[] = {"Authorization: Bearer call-secret-12", NULL};
    assert_int_equal(req(f, "POST", "/v1/call/add", body, len, bad_tok, NULL), 401);

    /* 421: meant for another instance or epoch. */
    const char *other[] = {"Authorization: Bearer " CALL_TOKEN, "Ms-Instance: i-1.2", NULL};
    assert_int_equal(req(f, "POST", "/v1/call/add", body, len, other, &j), 421);
    assert_string_equal(err_code(j), "MS_EWRONGINSTANCE");
    json_decref(j);

    /* 504: the deadline has passed already. */
    const char *late[] = {"Authorization: Bearer " CALL_TOKEN, "Ms-Deadline-Ms: 0", NULL};
    assert_int_equal(req(f, "POST", "/v1/call/add", body, len, late, &j), 504);
    assert_string_equal(err_code(j), "MS_ETIMEDOUT");
    json_decref(j);

    /* 413: over 16 MiB, refused before the body is read. */
    size_t big = (16u << 20) + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    assert_int_equal(req(f, "POST", "/v1/call/add", huge, big, good_headers(&h, "add"), &j), 413);
    assert_string_equal(err_code(j), "MS_ETOOBIG");
    json_decref(j);
    free(huge);

    /* Still serving after all that. */
    assert_int_equal(req(f, "POST", "/v1/call/add", body, len, good_headers(&h, "add"), NULL), 200);
}

static void
test_host_app_error(void **state)
{
    fixture *f = *state;
    spawn(f, "fails", NULL);
    wait_ready(f);
    call_hdrs h;
    json_t *j = NULL;
    assert_int_equal(
        req(f, "POST", "/v1/call/fails", "{\"code\":42}", 11, good_headers(&h, "fails"), &j), 500);
    assert_string_equal(err_code(j), "MS_EAPP");
    assert_string_equal(err_msg(j), "boom 42");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "error"), "app_code")),
                     42);
    json_decref(j);
}

static void
test_host_env_unset(void **state)
{
    fixture *f = *state;
    spawn(f, "env_of", NULL);
    wait_ready(f);
    const char *vars[] = {"MS_SERVE",        "MS_TOKEN_FILE",        "MS_INSTANCE_TOKEN_FILE",
                          "LISTEN_FDS",      "LISTEN_PID",           "MS_INSTANCE_ID",
                          "MS_ORCHESTRATOR", "MS_ADMIN_TOKEN_SHA256"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        call_hdrs h;
        char body[128];
        snprintf(body, sizeof body, "{\"name\":\"%s\"}", vars[i]);
        json_t *j = NULL;
        assert_int_equal(
            req(f, "POST", "/v1/call/env_of", body, strlen(body), good_headers(&h, "env_of"), &j),
            200);
        assert_string_equal(json_string_value(json_object_get(j, "result")), "");
        json_decref(j);
    }
}

typedef struct bg_call {
    fixture *f;
    const char *service;
    int ms;
    long status;
    pthread_t t;
} bg_call;

static void *
bg_main(void *arg)
{
    bg_call *c = arg;
    char url[256], body[64];
    snprintf(url, sizeof url, "%s/v1/call/%s", c->f->base, c->service);
    snprintf(body, sizeof body, "{\"ms\":%d}", c->ms);
    const char *hdrs[] = {"Authorization: Bearer " CALL_TOKEN, NULL};
    msi_httpc_req rq = {0};
    rq.url = url;
    rq.headers = hdrs;
    rq.body = body;
    rq.body_len = strlen(body);
    rq.deadline_ms = msi_now_ms() + 10000;
    msi_httpc_resp rs;
    msi_err err;
    c->status = msi_httpc_do(&rq, &rs, &err) == MS_OK ? rs.status : -1;
    msi_httpc_thread_release();
    return NULL;
}

static void
bg_start(bg_call *c, fixture *f, int ms)
{
    c->f = f;
    c->service = c->service ? c->service : "slow";
    c->ms = ms;
    c->status = 0;
    assert_int_equal(pthread_create(&c->t, NULL, bg_main, c), 0);
}

/* Polls /metrics until `line` appears. */
static void
wait_metric(fixture *f, const char *line)
{
    for (int i = 0; i < 500; i++) {
        char url[256];
        snprintf(url, sizeof url, "%s/metrics", f->base);
        msi_httpc_req rq = {0};
        rq.url = url;
        rq.deadline_ms = msi_now_ms() + 2000;
        msi_httpc_resp rs;
        msi_err err;
        if (msi_httpc_do(&rq, &rs, &err) == MS_OK && strstr(rs.body, line))
            return;
        usleep(5000);
    }
    fail_msg("metric '%s' never seen", line);
}

/* The busy fractions of the heartbeat windows that fell wholly within [from, to]: how many
 * (up to max into out). A window runs from one heartbeat's arrival to the next's. */
static int
windows_within(int64_t from, int64_t to, double *out, int max)
{
    int n = 0;
    pthread_mutex_lock(&hb.mu);
    for (int k = hb.count > 63 ? hb.count - 63 : 1; k < hb.count; k++)
        if (hb.at[(k - 1) % 64] >= from && hb.at[k % 64] <= to && n < max)
            out[n++] = hb.busy[k % 64];
    pthread_mutex_unlock(&hb.mu);
    return n;
}

static void
test_host_health_while_busy(void **state)
{
    fixture *f = *state;
    spawn(f, "slow", NULL);
    wait_ready(f);
    /* A call holds the only slot; it lasts until a whole heartbeat window (about 1 s) fell
     * inside it: 2.5 s, and longer when a loaded machine delayed the heartbeats. */
    int inside = 0;
    for (int ms = 2500; ms <= 10000 && !inside; ms *= 2) {
        bg_call c = {0};
        bg_start(&c, f, ms);
        wait_metric(f, "ms_inflight{service=\"slow\"} 1");
        int64_t t_in = msi_now_ms();
        /* The only slot is busy; probes are answered at once anyway. */
        json_t *j = NULL;
        assert_int_equal(req(f, "GET", "/v1/health", NULL, 0, NULL, &j), 200);
        json_decref(j);
        assert_int_equal(req(f, "GET", "/v1/ready", NULL, 0, NULL, &j), 200);
        assert_true(json_is_true(json_object_get(j, "ready")));
        json_decref(j);
        assert_true(msi_now_ms() - t_in < 1500); /* not after the 2.5 s call */
        pthread_join(c.t, NULL);
        assert_int_equal(c.status, 200);
        /* A heartbeat window spent entirely inside the call reports the slot fully busy (its
         * end well before the reply came, so the call was surely still running). */
        double busy[16];
        inside = windows_within(t_in, msi_now_ms() - 100, busy, 16);
        for (int i = 0; i < inside; i++) {
            if (busy[i] < 0.9 || busy[i] > 1.1)
                fprintf(stderr, "window %d of %d inside a %d ms call: busy %.3f\n", i, inside, ms,
                        busy[i]);
            assert_true(busy[i] >= 0.9 && busy[i] <= 1.1);
        }
    }
    assert_true(inside > 0);
}

/* concurrency = 4: four calls run at once, a fifth waits. */
static void
test_host_concurrency(void **state)
{
    fixture *f = *state;
    spawn(f, "slow4", NULL);
    wait_ready(f);
    bg_call c[5];
    memset(c, 0, sizeof c);
    int64_t t0 = msi_now_ms();
    for (int i = 0; i < 4; i++) {
        c[i].service = "slow4";
        bg_start(&c[i], f, 600);
    }
    wait_metric(f, "ms_inflight{service=\"slow4\"} 4");
    c[4].service = "slow4";
    bg_start(&c[4], f, 10);
    wait_metric(f, "ms_queued{service=\"slow4\"} 1");
    for (int i = 0; i < 5; i++) {
        pthread_join(c[i].t, NULL);
        assert_int_equal(c[i].status, 200);
    }
    /* In parallel (~610 ms), not one after the other (>= 2400 ms); the margin is for a
     * loaded machine. */
    assert_true(msi_now_ms() - t0 < 2000);
}

static void
test_host_queue_full(void **state)
{
    fixture *f = *state;
    const char *env[] = {"MS_QUEUE_MAX=1", NULL};
    spawn(f, "slow", env);
    wait_ready(f);
    bg_call a = {0}, b = {0};
    bg_start(&a, f, 800);
    wait_metric(f, "ms_inflight{service=\"slow\"} 1");
    bg_start(&b, f, 10);
    wait_metric(f, "ms_queued{service=\"slow\"} 1");
    /* One running, one queued, the queue holds one: the next is refused with Retry-After. */
    char url[256];
    snprintf(url, sizeof url, "%s/v1/call/slow", f->base);
    const char *hdrs[] = {"Authorization: Bearer " CALL_TOKEN, NULL};
    msi_httpc_req rq = {0};
    rq.url = url;
    rq.headers = hdrs;
    rq.body = "{\"ms\":1}";
    rq.body_len = 8;
    msi_httpc_resp rs;
    msi_err err;
    assert_int_equal(msi_httpc_do(&rq, &rs, &err), MS_OK);
    assert_int_equal(rs.status, 429);
    assert_int_equal(rs.retry_after_s, 1);
    pthread_join(a.t, NULL);
    pthread_join(b.t, NULL);
    assert_int_equal(a.status, 200);
    assert_int_equal(b.status, 200);
}

static void
test_host_heartbeat(void **state)
{
    fixture *f = *state;
    spawn(f, "add", NULL);
    wait_ready(f);
    int64_t end = msi_now_ms() + 5000;
    int count = 0;
    while (msi_now_ms() < end) {
        pthread_mutex_lock(&hb.mu);
        count = hb.count;
        pthread_mutex_unlock(&hb.mu);
        if (count >= 2)
            break;
        usleep(20 * 1000);
    }
    assert_true(count >= 2);
    pthread_mutex_lock(&hb.mu);
    json_t *j = json_incref(hb.last);
    char auth[256], path[256];
    snprintf(auth, sizeof auth, "%s", hb.auth);
    snprintf(path, sizeof path, "%s", hb.path);
    pthread_mutex_unlock(&hb.mu);
    assert_string_equal(path, "/v1/instances/i-1/heartbeat");
    assert_string_equal(auth, "Bearer " INST_TOKEN);
    assert_string_equal(json_string_value(json_object_get(j, "addr")), f->addr);
    assert_string_equal(json_string_value(json_object_get(j, "service")), "add");
    assert_string_equal(json_string_value(json_object_get(j, "signature")), sig_of("add"));
    assert_int_equal(json_integer_value(json_object_get(j, "epoch")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "pid")), f->pid);
    assert_true(json_is_number(json_object_get(j, "busy")));
    assert_true(json_is_number(json_object_get(j, "cpu")));
    assert_true(json_is_integer(json_object_get(j, "inflight")));
    assert_true(json_is_integer(json_object_get(j, "queued")));
    assert_true(json_is_integer(json_object_get(j, "calls")));
    assert_true(json_is_false(json_object_get(j, "draining")));
    json_decref(j);
}

static void
test_host_heartbeat_410_exits(void **state)
{
    fixture *f = *state;
    pthread_mutex_lock(&hb.mu);
    hb.answer = 410;
    pthread_mutex_unlock(&hb.mu);
    spawn(f, "add", NULL);
    assert_int_equal(wait_exit(f, 5000), 0);
}

static void
test_host_orphan_exits(void **state)
{
    fixture *f = *state;
    pthread_mutex_lock(&hb.mu);
    hb.answer = 500;
    pthread_mutex_unlock(&hb.mu);
    const char *env[] = {"MS_ORPHAN_TIMEOUT_MS=600", NULL};
    spawn(f, "add", env);
    wait_ready(f);
    int64_t t0 = msi_now_ms();
    /* Its 600 ms, not the default 30 s: the bound leaves room for a loaded machine (3 s was
     * seen at load 7). */
    assert_int_equal(wait_exit(f, 15000), 0);
    assert_true(msi_now_ms() - t0 < 15000);
}

static void
test_host_sigterm_drains(void **state)
{
    fixture *f = *state;
    spawn(f, "slow", NULL);
    wait_ready(f);
    bg_call c = {0};
    bg_start(&c, f, 700);
    wait_metric(f, "ms_inflight{service=\"slow\"} 1");
    kill(f->pid, SIGTERM);
    /* The call in flight finishes and is answered; then the process exits 0. */
    pthread_join(c.t, NULL);
    assert_int_equal(c.status, 200);
    assert_int_equal(wait_exit(f, 5000), 0);
}

static void
test_host_drain_endpoint(void **state)
{
    fixture *f = *state;
    spawn(f, "add", NULL);
    wait_ready(f);
    json_t *j = NULL;
    assert_int_equal(req(f, "POST", "/v1/drain", NULL, 0, NULL, &j), 401);
    assert_string_equal(err_code(j), "MS_EAUTH");
    json_decref(j);
    /* A drain retires the instance: the call token does not allow it. */
    const char *call[] = {"Authorization: Bearer " CALL_TOKEN, NULL};
    assert_int_equal(req(f, "POST", "/v1/drain", "", 0, call, &j), 403);
    assert_string_equal(err_code(j), "MS_EFORBIDDEN");
    assert_non_null(strstr(err_msg(j), "admin token"));
    json_decref(j);
    char hash_hdr[128];
    snprintf(hash_hdr, sizeof hash_hdr, "Authorization: Bearer %s", admin_sha256);
    const char *hash[] = {hash_hdr, NULL}; /* what the instance holds is no token */
    assert_int_equal(req(f, "POST", "/v1/drain", "", 0, hash, NULL), 401);
    assert_int_equal(req(f, "GET", "/v1/ready", NULL, 0, NULL, NULL), 200);
    const char *tok[] = {"Authorization: Bearer " ADMIN_TOKEN, NULL};
    assert_int_equal(req(f, "POST", "/v1/drain", "", 0, tok, &j), 200);
    assert_true(json_is_true(json_object_get(j, "draining")));
    assert_int_equal(json_integer_value(json_object_get(j, "inflight")), 0);
    json_decref(j);
    assert_int_equal(wait_exit(f, 5000), 0);
}

/* Calls: the call token or the admin token (which the instance knows only by its hash). */
static void
test_host_admin_token(void **state)
{
    fixture *f = *state;
    spawn(f, "add", NULL);
    wait_ready(f);
    const char *body = "{\"a\":2,\"b\":3}";
    size_t len = strlen(body);
    call_hdrs h;
    json_t *j = NULL;
    const char *const *hd = good_headers(&h, "add");
    assert_int_equal(req(f, "POST", "/v1/call/add", body, len, hd, &j), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "result")), 5);
    json_decref(j);
    static const char *const tokens[] = {"Authorization: Bearer " ADMIN_TOKEN,
                                         "Authorization: Bearer wrong-token",
                                         "Authorization: Bearer " ADMIN_TOKEN "x", NULL};
    static const long want[] = {200, 401, 401, 401};
    char hash_hdr[128];
    snprintf(hash_hdr, sizeof hash_hdr, "Authorization: Bearer %s", admin_sha256);
    for (int i = 0; i < 4; i++) {
        hd = good_headers(&h, "add");
        h.list[0] = (char *)(i < 3 ? tokens[i] : hash_hdr); /* the hash is no token */
        assert_int_equal(req(f, "POST", "/v1/call/add", body, len, hd, &j), want[i]);
        if (want[i] == 200) {
            assert_int_equal(json_integer_value(json_object_get(j, "result")), 5);
        } else {
            assert_string_equal(err_code(j), "MS_EAUTH");
            assert_non_null(strstr(err_msg(j), "admin token"));
        }
        json_decref(j);
    }
    kill(f->pid, SIGKILL);
    waitpid(f->pid, NULL, 0);
    f->pid = 0;

    /* Without the admin hash (an instance not started by msd): calls need the call token,
     * and no token drains it over HTTP (SIGTERM does). */
    const char *none[] = {"MS_ADMIN_TOKEN_SHA256=", NULL};
    spawn(f, "add", none);
    wait_ready(f);
    hd = good_headers(&h, "add");
    h.list[0] = (char *)"Authorization: Bearer " ADMIN_TOKEN;
    assert_int_equal(req(f, "POST", "/v1/call/add", body, len, hd, NULL), 401);
    const char *admin[] = {"Authorization: Bearer " ADMIN_TOKEN, NULL};
    const char *call[] = {"Authorization: Bearer " CALL_TOKEN, NULL};
    assert_int_equal(req(f, "POST", "/v1/drain", "", 0, admin, NULL), 401);
    assert_int_equal(req(f, "POST", "/v1/drain", "", 0, call, NULL), 403);
    kill(f->pid, SIGTERM);
    assert_int_equal(wait_exit(f, 5000), 0);

    /* A malformed hash: the instance refuses to serve. */
    const char *bad[] = {"MS_ADMIN_TOKEN_SHA256=not-a-hash", NULL};
    spawn(f, "add", bad);
    assert_int_equal(wait_exit(f, 5000), 2);
}

static void
test_host_describe(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    char *argv[] = {self_exe, NULL};
    char *envp[] = {(char *)"MS_DESCRIBE=1", NULL};
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(p[1], 1);
        close(p[0]);
        execve(self_exe, argv, envp);
        _exit(127);
    }
    close(p[1]);
    char buf[8192];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof buf - 1 && (n = read(p[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    msi_err err;
    json_t *j = msi_json_parse(buf, got, &err);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "ms")), 1);
    json_t *list = json_object_get(j, "services");
    assert_int_equal(json_array_size(list), 7);
    int seen = 0;
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *s = json_array_get(list, i);
        const char *name = json_string_value(json_object_get(s, "name"));
        if (strcmp(name, "add") == 0) {
            seen++;
            assert_string_equal(json_string_value(json_object_get(s, "signature")), sig_of("add"));
            assert_string_equal(json_string_value(json_object_get(s, "sigtext")),
                                "add(a:i64,b:i64)->i64");
            json_t *o = json_object_get(s, "options");
            assert_true(json_is_true(json_object_get(o, "idempotent")));
            assert_int_equal(json_integer_value(json_object_get(o, "concurrency")), 1);
            assert_int_equal(json_integer_value(json_object_get(o, "timeout_ms")), 10000);
            assert_string_equal(json_string_value(json_object_get(o, "lb")), "default");
        }
    }
    assert_int_equal(seen, 1);
    json_decref(j);
}

/* ---- the duplicate-request cache, trace context, deadlines ---- */

/* POST /v1/call/<service> with a given request id and extra headers; the status, *out the
 * parsed body, *retry_after the Retry-After seconds (-1: none). */
static long
call_rid(fixture *f, const char *service, const char *body, const char *rid, const char *extra,
         json_t **out, int *retry_after)
{
    char url[256], rid_h[160];
    snprintf(url, sizeof url, "%s/v1/call/%s", f->base, service);
    snprintf(rid_h, sizeof rid_h, "Ms-Request-Id: %s", rid);
    const char *hdrs[] = {"Authorization: Bearer " CALL_TOKEN, rid_h, extra, NULL};
    msi_httpc_req rq = {0};
    rq.url = url;
    rq.headers = hdrs;
    rq.body = body;
    rq.body_len = strlen(body);
    rq.deadline_ms = msi_now_ms() + 10000;
    msi_httpc_resp rs;
    msi_err err = {{0}};
    ms_status st = msi_httpc_do(&rq, &rs, &err);
    if (st != MS_OK)
        fprintf(stderr, "call %s: %s\n", service, err.msg);
    assert_int_equal(st, MS_OK);
    if (out) {
        msi_err perr;
        *out = rs.len ? msi_json_parse(rs.body, rs.len, &perr) : NULL;
    }
    if (retry_after)
        *retry_after = rs.retry_after_s;
    return rs.status;
}

static long long
result_of(json_t *j)
{
    long long v = json_integer_value(json_object_get(j, "result"));
    json_decref(j);
    return v;
}

/* A retry (same id, same body) gets the first reply; the function ran once. */
static void
test_host_dedupe_same_id(void **state)
{
    fixture *f = *state;
    spawn(f, "bump", NULL);
    wait_ready(f);
    json_t *j;
    assert_int_equal(call_rid(f, "bump", "{\"ms\":0}", "r-1", NULL, &j, NULL), 200);
    assert_int_equal(result_of(j), 1);
    assert_int_equal(call_rid(f, "bump", "{\"ms\":0}", "r-1", NULL, &j, NULL), 200);
    assert_int_equal(result_of(j), 1);
    assert_int_equal(call_rid(f, "bump", "{\"ms\":0}", "r-2", NULL, &j, NULL), 200);
    assert_int_equal(result_of(j), 2);
    wait_metric(f, "ms_dedupe_hits_total{service=\"bump\"} 1");
    wait_metric(f, "ms_calls_total{service=\"bump\"} 2");
    wait_metric(f, "ms_dedupe_entries{service=\"bump\"} 2");
    /* Same id, another body: 422, and nothing ran. */
    assert_int_equal(call_rid(f, "bump", "{\"ms\":1}", "r-1", NULL, &j, NULL), 422);
    assert_string_equal(err_code(j), "MS_EREUSED");
    json_decref(j);
    /* A malformed request id is refused before anything. */
    assert_int_equal(call_rid(f, "bump", "{\"ms\":0}", "bad id!", NULL, &j, NULL), 400);
    json_decref(j);
    wait_metric(f, "ms_calls_total{service=\"bump\"} 2");
}

/* An application error is a reply like any other: kept, and not run again. */
static void
test_host_dedupe_app_error(void **state)
{
    fixture *f = *state;
    spawn(f, "fails", NULL);
    wait_ready(f);
    for (int i = 0; i < 2; i++) {
        json_t *j;
        assert_int_equal(call_rid(f, "fails", "{\"code\":7}", "e-1", NULL, &j, NULL), 500);
        assert_string_equal(err_code(j), "MS_EAPP");
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(j, "error"), "app_code")), 7);
        json_decref(j);
    }
    wait_metric(f, "ms_calls_total{service=\"fails\"} 1");
    wait_metric(f, "ms_dedupe_hits_total{service=\"fails\"} 1");
}

typedef struct dup_call {
    fixture *f;
    const char *rid;
    long status;
    long long result;
    pthread_t t;
} dup_call;

static void *
dup_main(void *arg)
{
    dup_call *c = arg;
    json_t *j = NULL;
    c->status = call_rid(c->f, "bump", "{\"ms\":600}", c->rid, NULL, &j, NULL);
    c->result = result_of(j);
    msi_httpc_thread_release();
    return NULL;
}

/* A duplicate that arrives while the first attempt runs waits for it and gets its reply. */
static void
test_host_dedupe_waits_for_first(void **state)
{
    fixture *f = *state;
    spawn(f, "bump", NULL);
    wait_ready(f);
    dup_call a = {f, "same", 0, 0, 0}, b = {f, "same", 0, 0, 0};
    assert_int_equal(pthread_create(&a.t, NULL, dup_main, &a), 0);
    wait_metric(f, "ms_inflight{service=\"bump\"} 1");
    assert_int_equal(pthread_create(&b.t, NULL, dup_main, &b), 0);
    pthread_join(a.t, NULL);
    pthread_join(b.t, NULL);
    assert_int_equal(a.status, 200);
    assert_int_equal(b.status, 200);
    assert_int_equal(a.result, 1);
    assert_int_equal(b.result, 1);
    wait_metric(f, "ms_calls_total{service=\"bump\"} 1");
    /* The duplicate waited on the cache, not in the slot queue. */
    wait_metric(f, "ms_dedupe_hits_total{service=\"bump\"} 1");
}

/* Bounded: when full, new calls get 503 with Retry-After while live entries still answer;
 * an entry goes once its call's deadline + 1 s has passed. */
static void
test_host_dedupe_full(void **state)
{
    fixture *f = *state;
    const char *env[] = {"MS_DEDUPE_MAX_ENTRIES=2", NULL};
    spawn(f, "bump", env);
    wait_ready(f);
    json_t *j;
    int ra = -1;
    const char *short_dl = "Ms-Deadline-Ms: 300";
    int64_t t0 = msi_now_ms();
    assert_int_equal(call_rid(f, "bump", "{\"ms\":0}", "a", short_dl, &j, NULL), 200);
    assert_int_equal(result_of(j), 1);
    assert_int_equal(call_rid(f, "bump", "{\"ms\":0}", "b", short_dl, &j, NULL), 200);
    assert_int_equal(result_of(j), 2);
    assert_int_equal(call_rid(f, "bump", "{\"ms\":0}", "c", short_dl, &j, &ra), 503);
    assert_string_equal(err_code(j), "MS_EOVERLOADED");
    json_decref(j);
    assert_int_equal(ra, 1);
    /* A retry of a kept call is still answered. */
    assert_int_equal(call_rid(f, "bump", "{\"ms\":0}", "a", short_dl, &j, NULL), 200);
    assert_int_equal(result_of(j), 1);
    /* Room again once the first entries are over (300 ms + 1 s after they arrived). */
    long st;
    while ((st = call_rid(f, "bump", "{\"ms\":0}", "c", short_dl, &j, NULL)) == 503) {
        json_decref(j);
        assert_true(msi_now_ms() - t0 < 5000);
        usleep(20 * 1000);
    }
    assert_int_equal(st, 200);
    assert_int_equal(result_of(j), 3);
    assert_true(msi_now_ms() - t0 >= 1250);
    /* "a" is forgotten by now: the same id runs again. */
    while ((st = call_rid(f, "bump", "{\"ms\":0}", "a", short_dl, &j, NULL)) == 503) {
        json_decref(j);
        assert_true(msi_now_ms() - t0 < 5000);
        usleep(20 * 1000);
    }
    assert_int_equal(st, 200);
    assert_int_equal(result_of(j), 4);
}

/* The status of a call with request id `rid` and "Ms-Acked-Below: ack" (ack NULL: none). */
static long
call_acked(fixture *f, const char *rid, const char *ack, json_t **out)
{
    char h[64];
    snprintf(h, sizeof h, "Ms-Acked-Below: %s", ack ? ack : "");
    return call_rid(f, "bump", "{\"ms\":0}", rid, ack ? h : NULL, out, NULL);
}

/* Ms-Acked-Below (RIFL): a caller's acknowledgement drops its older entries at once and
 * makes a late copy of a finished call a refusal, never a second run; malformed headers are
 * refused before anything runs; and in a full cache a caller's own acknowledgement makes
 * room for its next call while a new caller is refused. */
static void
test_host_dedupe_acked(void **state)
{
    fixture *f = *state;
    const char *env[] = {"MS_DEDUPE_MAX_ENTRIES=2", NULL};
    spawn(f, "bump", env);
    wait_ready(f);
    json_t *j;
    assert_int_equal(call_acked(f, "k-1", "1", &j), 200);
    assert_int_equal(result_of(j), 1);
    assert_int_equal(call_acked(f, "k-2", "2", &j), 200);
    assert_int_equal(result_of(j), 2);
    wait_metric(f, "ms_dedupe_entries{service=\"bump\"} 1");
    wait_metric(f, "ms_dedupe_acked_total{service=\"bump\"} 1");
    wait_metric(f, "ms_dedupe_callers{service=\"bump\"} 1");
    /* A late copy of k-1: refused, not run, whatever header it carries. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(call_acked(f, "k-1", i ? NULL : "1", &j), 422);
        assert_string_equal(err_code(j), "MS_EREUSED");
        assert_non_null(strstr(err_msg(j), "Ms-Acked-Below"));
        json_decref(j);
    }
    wait_metric(f, "ms_dedupe_stale_total{service=\"bump\"} 2");
    /* Its own retry is still answered from the cache. */
    assert_int_equal(call_acked(f, "k-2", "2", &j), 200);
    assert_int_equal(result_of(j), 2);
    wait_metric(f, "ms_dedupe_hits_total{service=\"bump\"} 1");
    /* Malformed: not digits, too long, no <caller>-<seq> id, above the request's own seq. */
    const char *bad[][2] = {
        {"k-3", "x"}, {"k-3", "12345678901234567890"}, {"k-3", "-1"}, {"plain", "1"}, {"k-3", "4"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long st = call_acked(f, bad[i][0], bad[i][1], &j);
        if (st != 400)
            fprintf(stderr, "Ms-Acked-Below \"%s\" with %s: %ld\n", bad[i][1], bad[i][0], st);
        assert_int_equal(st, 400);
        assert_string_equal(err_code(j), "MS_EBADARGS");
        assert_non_null(strstr(err_msg(j), "Ms-Acked-Below"));
        json_decref(j);
    }
    /* Full (2 entries): k-2 and m-1; a new caller is refused, k's next call is not. */
    assert_int_equal(call_acked(f, "m-1", "1", &j), 200);
    assert_int_equal(result_of(j), 3);
    assert_int_equal(call_acked(f, "n-1", "1", &j), 503);
    assert_string_equal(err_code(j), "MS_EOVERLOADED");
    json_decref(j);
    assert_int_equal(call_acked(f, "k-3", "3", &j), 200);
    assert_int_equal(result_of(j), 4);
    wait_metric(f, "ms_calls_total{service=\"bump\"} 4");
    wait_metric(f, "ms_dedupe_full_total{service=\"bump\"} 1");
    wait_metric(f, "ms_dedupe_entries_peak{service=\"bump\"} 2");
}

/* An idempotent service keeps no cache: the same id with another body just runs. */
static void
test_host_idempotent_not_cached(void **state)
{
    fixture *f = *state;
    spawn(f, "add", NULL);
    wait_ready(f);
    json_t *j;
    assert_int_equal(call_rid(f, "add", "{\"a\":1,\"b\":2}", "x", NULL, &j, NULL), 200);
    assert_int_equal(result_of(j), 3);
    assert_int_equal(call_rid(f, "add", "{\"a\":2,\"b\":2}", "x", NULL, &j, NULL), 200);
    assert_int_equal(result_of(j), 4);
}

/* The body sees the caller's trace id (a valid traceparent) and its deadline budget. */
static void
test_host_trace_and_deadline(void **state)
{
    fixture *f = *state;
    spawn(f, "call_info", NULL);
    wait_ready(f);
    static const char tid[] = "4bf92f3577b34da6a3ce929d0e0e4736";
    const char *cases[][2] = {
        {"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tid},
        {"traceparent: 01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later", tid},
        {"traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "-"},
        {"traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01", "-"},
        {"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "-"},
        {"traceparent: ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "-"},
        {"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", "-"},
        {"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e47", "-"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *j;
        char rid[32];
        snprintf(rid, sizeof rid, "t%zu", i);
        assert_int_equal(call_rid(f, "call_info", "{}", rid, cases[i][0], &j, NULL), 200);
        char id[64];
        long long left = -1;
        assert_int_equal(
            sscanf(json_string_value(json_object_get(j, "result")), "%63s %lld", id, &left), 2);
        json_decref(j);
        assert_string_equal(id, cases[i][1]);
        assert_true(left > 9000 && left <= 10000); /* no Ms-Deadline-Ms: timeout_ms */
    }
    /* Ms-Deadline-Ms is the budget the body sees; an absurd one is clamped to a day. */
    const char *dls[][2] = {{"Ms-Deadline-Ms: 2500", "2500"},
                            {"Ms-Deadline-Ms: 9223372036854775807", "86400000"}};
    for (size_t i = 0; i < 2; i++) {
        json_t *j;
        assert_int_equal(call_rid(f, "call_info", "{}", "d", dls[i][0], &j, NULL), 200);
        long long left = -1, want = atoll(dls[i][1]);
        assert_int_equal(sscanf(json_string_value(json_object_get(j, "result")), "%*s %lld", &left),
                         1);
        json_decref(j);
        assert_true(left > want - 1000 && left <= want);
    }
}

int
main(int argc, char **argv)
{
    /* As an instance (MS_SERVE) or a description (MS_DESCRIBE) this never returns. */
    if (ms_init(&argc, &argv) != MS_OK) {
        fprintf(stderr, "ms_init: %s\n", ms_last_error());
        return 1;
    }
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (n <= 0)
        return 1;
    self_exe[n] = '\0';
    msi_sha256_hex_of(ADMIN_TOKEN, strlen(ADMIN_TOKEN), admin_sha256);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_host_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_app_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_env_unset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_health_while_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_concurrency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_heartbeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_heartbeat_410_exits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_orphan_exits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_sigterm_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_drain_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_admin_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_describe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_dedupe_same_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_dedupe_app_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_dedupe_waits_for_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_dedupe_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_dedupe_acked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_idempotent_not_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_trace_and_deadline, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ms_shutdown();
    return rc;
}
