/* test_calls.c: the client's call rules (DESIGN section 4, docs/calls.md) against instances
 * that misbehave exactly as asked.
 *
 * Design notes
 * - This process is a client in local mode whose MS_ORCHESTRATOR list is a dead address
 *   followed by a fake msd (an msi_http server in this process), so every lookup also
 *   exercises the fail-over. The fake msd answers lookups from a table the tests fill
 *   (lb "none": the first usable instance is always tried first, so the order of attempts
 *   is known) and records failure reports.
 * - The instances are raw TCP servers in this process, one thread per connection, each
 *   told how to behave: answer, reset the connection after reading the request (the
 *   instance died mid-call), reset it at accept (death during set-up), stop listening and
 *   reset (the instance is gone), hang, answer as a duplicate-request cache would (a live
 *   instance whose connection broke), refuse (503), fail (500 ms_fail). Each records the
 *   requests it read: request id, Ms-Deadline-Ms, traceparent.
 * - Every test uses a service name of its own, so the client's per-service state (instance
 *   list, skipped instances, retry budget) of one test never leaks into another.
 * - Services are MS_CLIENT stubs: nothing here is deployed; MS_OPTIONS next to a stub gives
 *   the client its view of the service (idempotent, timeout).
 * - Threads and sockets are stopped and closed by each test's teardown, also after a failed
 *   assertion.
 */
#include "http.h"
#include "httpc.h"
#include "msi.h"

#include <jansson.h>
#include <ms/ms.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- the services, as this client sees them ---- */

MS_CLIENT(int64_t, unsent, (int64_t, x))
MS_CLIENT(int64_t, rst_idem, (int64_t, x))
MS_OPTIONS(rst_idem, .idempotent = true)
MS_CLIENT(int64_t, rst_gone, (int64_t, x))
MS_CLIENT(int64_t, rst_same, (int64_t, x))
MS_CLIENT(int64_t, accept_rst_idem, (int64_t, x))
MS_OPTIONS(accept_rst_idem, .idempotent = true)
MS_CLIENT(int64_t, accept_rst, (int64_t, x))
MS_CLIENT(int64_t, hang_idem, (int64_t, x))
MS_OPTIONS(hang_idem, .idempotent = true, .timeout_ms = 1000)
MS_CLIENT(int64_t, hang, (int64_t, x))
MS_OPTIONS(hang, .timeout_ms = 600)
MS_CLIENT(int64_t, app_err, (int64_t, x))
MS_OPTIONS(app_err, .idempotent = true)
MS_CLIENT(int64_t, refused, (int64_t, x))
MS_CLIENT(int64_t, five, (int64_t, x))
MS_OPTIONS(five, .idempotent = true)
MS_CLIENT(int64_t, stale_list, (int64_t, x))
MS_CLIENT(int64_t, waits, (int64_t, x))
MS_OPTIONS(waits, .timeout_ms = 3000)
MS_CLIENT(int64_t, never_ready, (int64_t, x))
MS_OPTIONS(never_ready, .timeout_ms = 400)
MS_CLIENT(int64_t, headers, (int64_t, x))
MS_OPTIONS(headers, .timeout_ms = 4000)
MS_CLIENT(int64_t, budget, (int64_t, x))
MS_OPTIONS(budget, .idempotent = true)
MS_CLIENT(int64_t, msd_down, (int64_t, x))
MS_OPTIONS(msd_down, .idempotent = true)
MS_CLIENT(int64_t, msd_back, (int64_t, x))
MS_OPTIONS(msd_back, .timeout_ms = 5000)
/* No MS_OPTIONS: msd's answers say what the service declared. */
MS_CLIENT(int64_t, remote_idem, (int64_t, x))
MS_CLIENT(int64_t, remote_timeout, (int64_t, x))

/* ---- fake instances ---- */

typedef enum behaviour {
    B_OK,              /* 200 {"result": index} */
    B_RST_AFTER_READ,  /* reads the request, resets the connection (died mid-call) */
    B_RST_ON_ACCEPT,   /* resets the connection as soon as it is accepted */
    B_GONE_AFTER_READ, /* reads the request, stops listening, resets (the instance is gone) */
    B_HANG,            /* reads the request, never answers */
    B_DEDUPE,          /* first time an id is seen: reset after reading; then the first reply */
    B_503,             /* refuses before running: draining */
    B_429,             /* refuses before running: queue full */
    B_APP_ERR,         /* 500 MS_EAPP app_code 7 */
} behaviour;

#define MAX_SRV 8
#define MAX_REQ 64

typedef struct fsrv {
    int idx;
    int lfd;
    char addr[32];
    behaviour beh;
    pthread_t accept_thr;
    pthread_mutex_t mu; /* guards the records and counters below */
    int accepts, requests, executions;
    char rid[MAX_REQ][64];
    char ack[MAX_REQ][32]; /* Ms-Acked-Below */
    char tp[MAX_REQ][96];
    long long dl[MAX_REQ];
    int conns; /* connection threads running */
} fsrv;

static fsrv srvs[MAX_SRV];
static int nsrv;
static _Atomic int stopping;

typedef struct conn_arg {
    fsrv *s;
    int fd;
} conn_arg;

static void
rst_close(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

/* Reads into buf until `want` bytes or a full header block; polls so that it notices a stop.
 * Returns bytes read, 0 on EOF, -1 on error or stop. */
static ssize_t
read_some(int fd, char *buf, size_t size)
{
    for (;;) {
        if (stopping)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        int n = poll(&p, 1, 50);
        if (n < 0 && errno != EINTR)
            return -1;
        if (n <= 0)
            continue;
        ssize_t r = read(fd, buf, size);
        if (r < 0 && errno == EINTR)
            continue;
        return r;
    }
}

static void
header_value(const char *head, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    char pat[64];
    snprintf(pat, sizeof pat, "\r\n%s:", name);
    const char *p = strcasestr(head, pat);
    if (!p)
        return;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, "\r\n");
    snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), p);
}

/* Reads one request (headers and Content-Length body); 0 when one came, -1 on EOF/error. */
static int
read_request(int fd, char *buf, size_t size, char *rid, char *ack, char *tp, long long *dl)
{
    size_t got = 0;
    char *end = NULL;
    while (!(end = strstr(buf, "\r\n\r\n"))) {
        if (got + 1 >= size)
            return -1;
        ssize_t r = read_some(fd, buf + got, size - 1 - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
        buf[got] = '\0';
    }
    char cl[32];
    header_value(buf, "Content-Length", cl, sizeof cl);
    size_t body = (size_t)atol(cl);
    size_t have = got - (size_t)(end + 4 - buf);
    while (have < body) {
        char tmp[1024];
        ssize_t r = read_some(fd, tmp, sizeof tmp);
        if (r <= 0)
            return -1;
        have += (size_t)r;
    }
    header_value(buf, "Ms-Request-Id", rid, 64);
    header_value(buf, "Ms-Acked-Below", ack, 32);
    header_value(buf, "traceparent", tp, 96);
    char d[32];
    header_value(buf, "Ms-Deadline-Ms", d, sizeof d);
    *dl = d[0] ? atoll(d) : -1;
    return 0;
}

static void
reply(int fd, int status, const char *reason, const char *extra, const char *body)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n%sContent-Length: "
                     "%zu\r\n\r\n%s",
                     status, reason, extra, strlen(body), body);
    ssize_t w = write(fd, buf, (size_t)n);
    (void)w;
}

static void *
conn_main(void *arg)
{
    conn_arg *ca = arg;
    fsrv *s = ca->s;
    int fd = ca->fd;
    free(ca);
    if (s->beh == B_RST_ON_ACCEPT) {
        rst_close(fd);
        fd = -1;
    }
    while (fd >= 0) {
        char buf[8192] = "", rid[64], ack[32], tp[96];
        long long dl;
        if (read_request(fd, buf, sizeof buf, rid, ack, tp, &dl) != 0)
            break;
        int first = 1;
        pthread_mutex_lock(&s->mu);
        int k = s->requests++;
        if (k < MAX_REQ) {
            snprintf(s->rid[k], sizeof s->rid[k], "%s", rid);
            snprintf(s->ack[k], sizeof s->ack[k], "%s", ack);
            snprintf(s->tp[k], sizeof s->tp[k], "%s", tp);
            s->dl[k] = dl;
        }
        for (int i = 0; i < k && i < MAX_REQ; i++)
            if (strcmp(s->rid[i], rid) == 0)
                first = 0;
        if (first)
            s->executions++;
        pthread_mutex_unlock(&s->mu);
        char ok[64];
        snprintf(ok, sizeof ok, "{\"result\":%d}", s->idx);
        switch (s->beh) {
        case B_OK:
            reply(fd, 200, "OK", "", ok);
            continue;
        case B_DEDUPE:
            if (!first) {
                reply(fd, 200, "OK", "", ok);
                continue;
            }
            rst_close(fd);
            fd = -1;
            break;
        case B_RST_AFTER_READ:
        case B_RST_ON_ACCEPT:
            rst_close(fd);
            fd = -1;
            break;
        case B_GONE_AFTER_READ:
            shutdown(s->lfd, SHUT_RDWR); /* stops listening: new connections are refused */
            rst_close(fd);
            fd = -1;
            break;
        case B_HANG:
            while (!stopping)
                usleep(20 * 1000);
            break;
        case B_503:
            reply(fd, 503, "Service Unavailable", "Retry-After: 1\r\n",
                  "{\"error\":{\"code\":\"MS_EDRAINING\",\"message\":\"draining\"}}");
            continue;
        case B_429:
            reply(fd, 429, "Too Many Requests", "Retry-After: 1\r\n",
                  "{\"error\":{\"code\":\"MS_EOVERLOADED\",\"message\":\"queue full\"}}");
            continue;
        case B_APP_ERR:
            reply(fd, 500, "Internal Server Error", "",
                  "{\"error\":{\"code\":\"MS_EAPP\",\"message\":\"boom\",\"app_code\":7}}");
            continue;
        }
        break;
    }
    if (fd >= 0)
        close(fd);
    pthread_mutex_lock(&s->mu);
    s->conns--;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void *
accept_main(void *arg)
{
    fsrv *s = arg;
    while (!stopping) {
        struct pollfd p = {s->lfd, POLLIN, 0};
        int n = poll(&p, 1, 50);
        if (n <= 0)
            continue;
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINVAL) /* shut down: gone */
                break;
            continue;
        }
        conn_arg *ca = malloc(sizeof *ca);
        ca->s = s;
        ca->fd = fd;
        pthread_mutex_lock(&s->mu);
        s->accepts++;
        s->conns++;
        pthread_mutex_unlock(&s->mu);
        pthread_t t;
        if (pthread_create(&t, NULL, conn_main, ca) == 0) {
            pthread_detach(t);
        } else {
            close(fd);
            free(ca);
            pthread_mutex_lock(&s->mu);
            s->conns--;
            pthread_mutex_unlock(&s->mu);
        }
    }
    return NULL;
}

/* A fake instance; B_* < 0 (-1): a dead address (nothing listens there). */
static fsrv *
srv_start(int beh)
{
    assert_true(nsrv < MAX_SRV);
    fsrv *s = &srvs[nsrv];
    memset(s, 0, sizeof *s);
    s->idx = nsrv++;
    pthread_mutex_init(&s->mu, NULL);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof sa;
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    snprintf(s->addr, sizeof s->addr, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    if (beh < 0) {
        close(fd); /* a port that was just free: connections are refused */
        s->lfd = -1;
        return s;
    }
    assert_int_equal(listen(fd, 64), 0);
    s->lfd = fd;
    s->beh = (behaviour)beh;
    assert_int_equal(pthread_create(&s->accept_thr, NULL, accept_main, s), 0);
    return s;
}

static int
srv_requests(fsrv *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->requests;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* What a fake instance recorded of its k-th request (read under its lock: its threads
 * write them). The strings stay valid: a record is written once. */
static long long
srv_dl(fsrv *s, int k)
{
    pthread_mutex_lock(&s->mu);
    long long v = s->dl[k];
    pthread_mutex_unlock(&s->mu);
    return v;
}

static const char *
srv_rid(fsrv *s, int k)
{
    pthread_mutex_lock(&s->mu);
    const char *v = s->rid[k];
    pthread_mutex_unlock(&s->mu);
    return v;
}

static const char *
srv_ack(fsrv *s, int k)
{
    pthread_mutex_lock(&s->mu);
    const char *v = s->ack[k];
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* A request id as the client makes it: 16 hex digits of the thread's caller id, '-', the
 * sequence number (returned; 0 when the id has another form). */
static unsigned long long
rid_seq(const char *rid)
{
    if (strlen(rid) < 18 || strspn(rid, "0123456789abcdef") != 16 || rid[16] != '-' ||
        strspn(rid + 17, "0123456789") != strlen(rid + 17))
        return 0;
    return strtoull(rid + 17, NULL, 10);
}

static const char *
srv_tp(fsrv *s, int k)
{
    pthread_mutex_lock(&s->mu);
    const char *v = s->tp[k];
    pthread_mutex_unlock(&s->mu);
    return v;
}

static int
srv_executions(fsrv *s)
{
    pthread_mutex_lock(&s->mu);
    int v = s->executions;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* ---- the fake msd ---- */

typedef struct svc_entry {
    char name[64];
    int srv[MAX_SRV]; /* indices into srvs */
    int n;
    int empty_lookups; /* answer this many lookups with an empty list first */
    int hold;          /* hold lookups until the deadline (504) */
    int remote;        /* answers carry the service's options: */
    int remote_idem, remote_timeout_ms;
} svc_entry;

static struct {
    pthread_mutex_t mu;
    svc_entry svc[32];
    int nsvc;
    int lookups;
    char reports[64][160]; /* "service instance epoch" */
    int nreports;
} fm = {PTHREAD_MUTEX_INITIALIZER, {{{0}, {0}, 0, 0, 0, 0, 0, 0}}, 0, 0, {{0}}, 0};

static msi_http *msd_srv;
static char msd_addr[64];

static void
lookup_handler(msi_http_req *r, void *arg)
{
    (void)arg;
    const char *name = msi_http_rest(r);
    pthread_mutex_lock(&fm.mu);
    fm.lookups++;
    svc_entry *e = NULL;
    for (int i = 0; i < fm.nsvc; i++)
        if (strcmp(fm.svc[i].name, name) == 0)
            e = &fm.svc[i];
    if (!e) {
        pthread_mutex_unlock(&fm.mu);
        msi_http_reply_error(r, MS_ENOTFOUND, "%s: unknown service", name);
        return;
    }
    if (e->hold) {
        pthread_mutex_unlock(&fm.mu);
        const char *d = msi_http_header(r, "Ms-Deadline-Ms");
        usleep((useconds_t)(d ? atoll(d) : 1000) * 1000);
        msi_http_reply_error(r, MS_ETIMEDOUT, "%s: no instance became ready", name);
        return;
    }
    json_t *list = json_array();
    if (e->empty_lookups > 0) {
        e->empty_lookups--;
    } else {
        for (int i = 0; i < e->n; i++) {
            fsrv *s = &srvs[e->srv[i]];
            char id[16];
            snprintf(id, sizeof id, "i-%d", s->idx);
            json_array_append_new(
                list, json_pack("{s:s,s:i,s:s}", "id", id, "epoch", 1, "addr", s->addr));
        }
    }
    json_t *ans = json_pack("{s:s,s:s,s:i,s:o}", "service", name, "lb", "none", "ttl_ms", 200,
                            "instances", list);
    if (e->remote) {
        json_object_set_new(ans, "idempotent", json_boolean(e->remote_idem));
        json_object_set_new(ans, "timeout_ms", json_integer(e->remote_timeout_ms));
    }
    pthread_mutex_unlock(&fm.mu);
    msi_http_reply_json(r, 200, ans);
}

static void
report_handler(msi_http_req *r, void *arg)
{
    (void)arg;
    size_t len;
    const char *body = msi_http_body(r, &len);
    json_t *j = json_loadb(body, len, 0, NULL);
    pthread_mutex_lock(&fm.mu);
    if (fm.nreports < 64) {
        char svc[64];
        snprintf(svc, sizeof svc, "%.*s", (int)strcspn(msi_http_rest(r), "/"), msi_http_rest(r));
        snprintf(fm.reports[fm.nreports++], sizeof fm.reports[0], "%s %s %lld", svc,
                 json_string_value(json_object_get(j, "instance")),
                 (long long)json_integer_value(json_object_get(j, "epoch")));
    }
    pthread_mutex_unlock(&fm.mu);
    json_decref(j);
    msi_http_reply_json(r, 202, json_pack("{s:b}", "accepted", 1));
}

static const msi_http_route msd_routes[] = {
    {"GET", "/v1/services/", lookup_handler, NULL, 0, NULL},
    {"POST", "/v1/services/", report_handler, NULL, 0, NULL},
};

static int
msd_start(const char *at)
{
    msi_http_config cfg = MSI_HTTP_CONFIG_INIT;
    cfg.host_port = at;
    cfg.routes = msd_routes;
    cfg.nroutes = 2;
    cfg.name = "fake-msd";
    msi_err err = {{0}};
    if (msi_http_start(&cfg, &msd_srv, &err) != MS_OK) {
        fprintf(stderr, "fake msd: %s\n", err.msg);
        return -1;
    }
    snprintf(msd_addr, sizeof msd_addr, "%s", msi_http_addr(msd_srv));
    return 0;
}

/* Declares service `name` with instances srv[0..n-1]. */
static svc_entry *
declare(const char *name, fsrv *const *list, int n)
{
    pthread_mutex_lock(&fm.mu);
    svc_entry *e = &fm.svc[fm.nsvc++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    for (int i = 0; i < n; i++)
        e->srv[e->n++] = list[i]->idx;
    pthread_mutex_unlock(&fm.mu);
    return e;
}

static int
reported(const char *service, const fsrv *s)
{
    char want[160];
    snprintf(want, sizeof want, "%s i-%d 1", service, s->idx);
    int n = 0;
    pthread_mutex_lock(&fm.mu);
    for (int i = 0; i < fm.nreports; i++)
        if (strcmp(fm.reports[i], want) == 0)
            n++;
    pthread_mutex_unlock(&fm.mu);
    return n;
}

/* ---- fixture ---- */

static int
setup(void **state)
{
    (void)state;
    stopping = 0;
    nsrv = 0;
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    stopping = 1;
    for (int i = 0; i < nsrv; i++) {
        fsrv *s = &srvs[i];
        if (s->lfd >= 0) {
            pthread_join(s->accept_thr, NULL);
            close(s->lfd);
        }
        for (int k = 0; k < 200; k++) { /* connection threads notice `stopping` within 50 ms */
            pthread_mutex_lock(&s->mu);
            int c = s->conns;
            pthread_mutex_unlock(&s->mu);
            if (!c)
                break;
            usleep(10 * 1000);
        }
        pthread_mutex_destroy(&s->mu);
    }
    nsrv = 0;
    /* Drop this thread's kept-alive connections to the servers just closed. */
    msi_httpc_thread_release();
    return 0;
}

/* ---- tests ---- */

/* Nothing was sent (connection refused): at once on another instance; the dead one is
 * reported to msd. */
static void
test_calls_unsent_goes_elsewhere(void **state)
{
    (void)state;
    fsrv *dead = srv_start(-1), *ok = srv_start(B_OK);
    fsrv *l[] = {dead, ok};
    declare("unsent", l, 2);
    int64_t r = -1, t0 = msi_now_ms();
    assert_int_equal(unsent_try(&r, 1), MS_OK);
    assert_int_equal(r, ok->idx);
    /* At once: no connect timeout (3 s) and no relocation wait; the bound leaves room for
     * a loaded machine (it failed at 500 ms under ASan at load 10). */
    assert_true(msi_now_ms() - t0 < 2500);
    assert_int_equal(reported("unsent", dead), 1);
    assert_int_equal(reported("unsent", ok), 0);
}

/* Sent, then the connection was reset (the instance died mid-call): an idempotent call
 * goes to another instance with the same request id. */
static void
test_calls_sent_idempotent_elsewhere(void **state)
{
    (void)state;
    fsrv *bad = srv_start(B_RST_AFTER_READ), *ok = srv_start(B_OK);
    fsrv *l[] = {bad, ok};
    declare("rst_idem", l, 2);
    int64_t r = -1;
    assert_int_equal(rst_idem_try(&r, 1), MS_OK);
    assert_int_equal(r, ok->idx);
    assert_int_equal(srv_requests(bad), 1);
    assert_int_equal(srv_requests(ok), 1);
    assert_string_equal(srv_rid(bad, 0), srv_rid(ok, 0));
    assert_true(rid_seq(srv_rid(bad, 0)) > 0);
    assert_int_equal(reported("rst_idem", bad), 1);
}

/* An MS_CLIENT stub declares no options: msd's answer says the service is idempotent, so
 * a call reset after it was sent goes to another instance, even on the stub's first call. */
static void
test_calls_client_stub_takes_idempotent_from_msd(void **state)
{
    (void)state;
    fsrv *bad = srv_start(B_RST_AFTER_READ), *ok = srv_start(B_OK);
    fsrv *l[] = {bad, ok};
    svc_entry *e = declare("remote_idem", l, 2);
    pthread_mutex_lock(&fm.mu);
    e->remote = 1;
    e->remote_idem = 1;
    e->remote_timeout_ms = 5000;
    pthread_mutex_unlock(&fm.mu);
    int64_t r = -1;
    assert_int_equal(remote_idem_try(&r, 1), MS_OK);
    assert_int_equal(r, ok->idx);
    assert_int_equal(srv_requests(bad), 1);
    assert_int_equal(srv_requests(ok), 1);
    assert_string_equal(srv_rid(bad, 0), srv_rid(ok, 0));
}

/* ... and its timeout: a call to an instance that never answers ends after the service's
 * 300 ms, not the stub's default 10 s. */
static void
test_calls_client_stub_takes_timeout_from_msd(void **state)
{
    (void)state;
    fsrv *h = srv_start(B_HANG);
    fsrv *l[] = {h};
    svc_entry *e = declare("remote_timeout", l, 1);
    pthread_mutex_lock(&fm.mu);
    e->remote = 1;
    e->remote_idem = 0;
    e->remote_timeout_ms = 300;
    pthread_mutex_unlock(&fm.mu);
    int64_t r = -1, t0 = msi_now_ms();
    assert_int_equal(remote_timeout_try(&r, 1), MS_ETIMEDOUT);
    int64_t took = msi_now_ms() - t0;
    assert_true(took >= 250);
    assert_true(took < 3000);
    assert_int_equal(srv_requests(h), 1);
}

/* Sent, reset, and the instance is gone: a call that is not idempotent is never re-run
 * elsewhere: MS_EINDOUBT. */
static void
test_calls_sent_not_idempotent_gone_in_doubt(void **state)
{
    (void)state;
    fsrv *bad = srv_start(B_GONE_AFTER_READ), *ok = srv_start(B_OK);
    fsrv *l[] = {bad, ok};
    declare("rst_gone", l, 2);
    int64_t r = -1;
    assert_int_equal(rst_gone_try(&r, 1), MS_EINDOUBT);
    assert_int_equal(r, 0);
    assert_non_null(strstr(ms_last_error(), "may or may not have run"));
    assert_non_null(strstr(ms_last_error(), "i-0"));
    assert_int_equal(srv_requests(bad), 1);
    assert_int_equal(srv_requests(ok), 0);
    assert_int_equal(reported("rst_gone", bad), 1);
}

/* Sent, reset, the instance still there: retried on the same instance with the same request
 * id, and its duplicate-request cache answers (here: the fake's stand-in for it). */
static void
test_calls_sent_not_idempotent_same_instance(void **state)
{
    (void)state;
    fsrv *flaky = srv_start(B_DEDUPE), *ok = srv_start(B_OK);
    fsrv *l[] = {flaky, ok};
    declare("rst_same", l, 2);
    int64_t r = -1;
    assert_int_equal(rst_same_try(&r, 1), MS_OK);
    assert_int_equal(r, flaky->idx);
    assert_int_equal(srv_requests(flaky), 2);
    assert_int_equal(srv_executions(flaky), 1);
    assert_string_equal(srv_rid(flaky, 0), srv_rid(flaky, 1));
    assert_int_equal(srv_requests(ok), 0);
}

/* Reset at accept (death during set-up): idempotent, so another instance. */
static void
test_calls_reset_at_accept_idempotent(void **state)
{
    (void)state;
    fsrv *bad = srv_start(B_RST_ON_ACCEPT), *ok = srv_start(B_OK);
    fsrv *l[] = {bad, ok};
    declare("accept_rst_idem", l, 2);
    int64_t r = -1;
    assert_int_equal(accept_rst_idem_try(&r, 1), MS_OK);
    assert_int_equal(r, ok->idx);
    assert_int_equal(reported("accept_rst_idem", bad), 1);
}

/* Reset at accept, not idempotent: whether the body had left decides. If libcurl had not
 * taken the body yet, nothing was sent and the call goes elsewhere; if it had, the call is
 * tried on that instance only and ends in doubt. Never both. */
static void
test_calls_reset_at_accept_not_idempotent(void **state)
{
    (void)state;
    fsrv *bad = srv_start(B_RST_ON_ACCEPT), *ok = srv_start(B_OK);
    fsrv *l[] = {bad, ok};
    declare("accept_rst", l, 2);
    int64_t r = -1;
    ms_status st = accept_rst_try(&r, 1);
    if (st == MS_OK) {
        assert_int_equal(r, ok->idx);
    } else {
        assert_int_equal(st, MS_EINDOUBT);
        assert_int_equal(srv_requests(ok), 0);
    }
    assert_true(reported("accept_rst", bad) >= 1);
}

/* An instance that hangs after accepting: an idempotent attempt may use half the time
 * left, then another instance answers. */
static void
test_calls_hang_idempotent(void **state)
{
    (void)state;
    fsrv *bad = srv_start(B_HANG), *ok = srv_start(B_OK);
    fsrv *l[] = {bad, ok};
    declare("hang_idem", l, 2);
    int64_t r = -1, t0 = msi_now_ms();
    assert_int_equal(hang_idem_try(&r, 1), MS_OK);
    int64_t took = msi_now_ms() - t0;
    assert_int_equal(r, ok->idx);
    assert_true(took >= 450 && took < 900);
    assert_int_equal(srv_requests(bad), 1);
    assert_true(srv_dl(bad, 0) > 400 && srv_dl(bad, 0) <= 500); /* told its share */
    assert_true(srv_dl(ok, 0) > 0 && srv_dl(ok, 0) <= 500);
    assert_int_equal(reported("hang_idem", bad), 1);
}

/* Hangs, not idempotent: the whole deadline, then MS_ETIMEDOUT; never re-run elsewhere. */
static void
test_calls_hang_not_idempotent(void **state)
{
    (void)state;
    fsrv *bad = srv_start(B_HANG), *ok = srv_start(B_OK);
    fsrv *l[] = {bad, ok};
    declare("hang", l, 2);
    int64_t r = -1, t0 = msi_now_ms();
    assert_int_equal(hang_try(&r, 1), MS_ETIMEDOUT);
    int64_t took = msi_now_ms() - t0;
    assert_true(took >= 580 && took < 1000);
    assert_non_null(strstr(ms_last_error(), "may have run"));
    assert_int_equal(srv_requests(ok), 0);
    assert_true(srv_dl(bad, 0) > 500 && srv_dl(bad, 0) <= 600);
}

/* An application error is the call's outcome: never retried, even when idempotent. */
static void
test_calls_app_error_not_retried(void **state)
{
    (void)state;
    fsrv *bad = srv_start(B_APP_ERR), *ok = srv_start(B_OK);
    fsrv *l[] = {bad, ok};
    declare("app_err", l, 2);
    int64_t r = -1;
    assert_int_equal(app_err_try(&r, 1), MS_EAPP);
    assert_int_equal(ms_last_app_code(), 7);
    assert_int_equal(srv_requests(ok), 0);
    assert_int_equal(reported("app_err", bad), 0);
}

/* Refused before running (503 draining): another instance at once, even not idempotent. */
static void
test_calls_refused_goes_elsewhere(void **state)
{
    (void)state;
    fsrv *bad = srv_start(B_503), *ok = srv_start(B_OK);
    fsrv *l[] = {bad, ok};
    declare("refused", l, 2);
    int64_t r = -1;
    assert_int_equal(refused_try(&r, 1), MS_OK);
    assert_int_equal(r, ok->idx);
    assert_int_equal(srv_requests(bad), 1);
}

/* At most 5 attempts, all with the same request id. */
static void
test_calls_five_attempts_at_most(void **state)
{
    (void)state;
    fsrv *l[6];
    for (int i = 0; i < 6; i++)
        l[i] = srv_start(B_RST_AFTER_READ);
    declare("five", l, 6);
    int64_t r = -1;
    assert_int_equal(five_try(&r, 1), MS_EINDOUBT);
    int total = 0;
    for (int i = 0; i < 6; i++) {
        total += srv_requests(l[i]);
        if (srv_requests(l[i]))
            assert_string_equal(srv_rid(l[i], 0), srv_rid(l[0], 0));
    }
    assert_int_equal(total, 5);
    assert_non_null(strstr(ms_last_error(), "after 5 attempts"));
}

/* A connection refused is not one of the 5 attempts: the instance is gone (a stale entry of
 * the list, as when instances die faster than clients re-locate). Six dead entries before
 * the live one, a service that is not idempotent: it runs, once. */
static void
test_calls_refused_connections_are_not_attempts(void **state)
{
    (void)state;
    fsrv *l[7];
    for (int i = 0; i < 6; i++)
        l[i] = srv_start(-1);
    l[6] = srv_start(B_OK);
    declare("stale_list", l, 7);
    int64_t r = -1;
    assert_int_equal(stale_list_try(&r, 1), MS_OK);
    assert_int_equal(r, l[6]->idx);
    assert_int_equal(srv_requests(l[6]), 1);
}

/* No ready instance is not a failed attempt: the client waits on msd, within the deadline. */
static void
test_calls_waits_for_an_instance(void **state)
{
    (void)state;
    fsrv *ok = srv_start(B_OK);
    fsrv *l[] = {ok};
    svc_entry *e = declare("waits", l, 1);
    pthread_mutex_lock(&fm.mu);
    e->empty_lookups = 4;
    pthread_mutex_unlock(&fm.mu);
    int64_t r = -1;
    assert_int_equal(waits_try(&r, 1), MS_OK);
    assert_int_equal(r, ok->idx);

    /* msd holds the lookup until the deadline: MS_ETIMEDOUT, in about the deadline. */
    svc_entry *h = declare("never_ready", NULL, 0);
    pthread_mutex_lock(&fm.mu);
    h->hold = 1;
    pthread_mutex_unlock(&fm.mu);
    int64_t t0 = msi_now_ms();
    assert_int_equal(never_ready_try(&r, 1), MS_ETIMEDOUT);
    assert_true(msi_now_ms() - t0 < 3000); /* its 400 ms, not the default 10 s */
}

/* Ms-Deadline-Ms, the per-call override, the request id and the trace context sent. */
static void
test_calls_headers(void **state)
{
    (void)state;
    fsrv *ok = srv_start(B_OK);
    fsrv *l[] = {ok};
    declare("headers", l, 1);
    int64_t r;
    assert_int_equal(headers_try(&r, 1), MS_OK); /* timeout_ms 4000 */
    assert_int_equal(ms_next_call_timeout_ms(1234), MS_OK);
    assert_int_equal(headers_try(&r, 1), MS_OK); /* 1234 */
    assert_int_equal(headers_try(&r, 1), MS_OK); /* the override is gone */
    assert_int_equal(ms_next_call_timeout_ms(-1), MS_EINVAL);
    assert_int_equal(srv_requests(ok), 3);
    assert_true(srv_dl(ok, 0) > 3800 && srv_dl(ok, 0) <= 4000);
    assert_true(srv_dl(ok, 1) > 1100 && srv_dl(ok, 1) <= 1234);
    assert_true(srv_dl(ok, 2) > 3800 && srv_dl(ok, 2) <= 4000);
    for (int i = 0; i < 3; i++) {
        /* 00-<32 hex trace>-<16 hex span>-00; every outermost call starts a trace */
        const char *tp = srv_tp(ok, i);
        assert_int_equal((int)strlen(tp), 55);
        msi_trace t;
        assert_int_equal(msi_trace_parse(tp, &t), 0);
        assert_int_equal(strncmp(tp, "00-", 3), 0);
        for (int k = 0; k < i; k++) {
            assert_true(strncmp(srv_tp(ok, k) + 3, tp + 3, 32) != 0);
            assert_string_not_equal(srv_rid(ok, k), srv_rid(ok, i));
        }
        /* <caller>-<seq>: one caller (this thread), one more each call, and each call
         * acknowledges everything before it (Ms-Acked-Below = its own seq). */
        unsigned long long seq = rid_seq(srv_rid(ok, i));
        assert_true(seq > 0);
        assert_int_equal(strtoull(srv_ack(ok, i), NULL, 10), seq);
        if (i > 0) {
            assert_int_equal(strncmp(srv_rid(ok, i), srv_rid(ok, 0), 17), 0);
            assert_int_equal(seq, rid_seq(srv_rid(ok, i - 1)) + 1);
        }
    }
    /* A forked child is a caller of its own: it must not reuse its parent's ids. */
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(headers_try(&r, 1) == MS_OK ? 0 : 1);
    int ws;
    assert_int_equal(waitpid(child, &ws, 0), child);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    assert_int_equal(srv_requests(ok), 4);
    assert_true(strncmp(srv_rid(ok, 3), srv_rid(ok, 0), 17) != 0);
    assert_int_equal(rid_seq(srv_rid(ok, 3)), 1);
    assert_int_equal(strtoull(srv_ack(ok, 3), NULL, 10), 1);
    /* And the parent goes on with its own. */
    assert_int_equal(headers_try(&r, 1), MS_OK);
    assert_int_equal(strncmp(srv_rid(ok, 4), srv_rid(ok, 0), 17), 0);
    assert_int_equal(rid_seq(srv_rid(ok, 4)), rid_seq(srv_rid(ok, 2)) + 1);
}

/* The retry budget: with every instance refusing (429, retried at once elsewhere), retries
 * stop at 10 in a second plus 20% of the calls, and the detail says why. */
static void
test_calls_retry_budget(void **state)
{
    (void)state;
    fsrv *l[6];
    for (int i = 0; i < 6; i++)
        l[i] = srv_start(B_429);
    declare("budget", l, 6);
    int calls = 40, spent = 0;
    int64_t t0 = msi_now_ms();
    for (int i = 0; i < calls; i++) {
        int64_t r;
        assert_int_equal(budget_try(&r, 1), MS_EOVERLOADED);
        if (strstr(ms_last_error(), "retry budget"))
            spent++;
    }
    int total = 0;
    for (int i = 0; i < 6; i++)
        total += srv_requests(l[i]);
    int64_t secs = (msi_now_ms() - t0) / 1000 + 1;
    int retries = total - calls;
    fprintf(stderr, "budget: %d calls, %d retries in %lld s, %d calls stopped by the budget\n",
            calls, retries, (long long)secs, spent);
    assert_true(retries <= 10 * (secs + 1) + calls / 5);
    assert_true(spent > 0);
}

typedef struct restart_arg {
    int delay_ms;
    char at[64];
    int ok;
} restart_arg;

static void *
restart_main(void *arg)
{
    restart_arg *a = arg;
    usleep((useconds_t)a->delay_ms * 1000);
    a->ok = msd_start(a->at) == 0;
    return NULL;
}

/* msd down: known instances keep being called; a lookup with nothing known waits for msd
 * to come back (it answered before) instead of failing. */
static void
test_calls_orchestrator_down(void **state)
{
    (void)state;
    fsrv *ok = srv_start(B_OK);
    fsrv *l[] = {ok};
    declare("msd_down", l, 1);
    declare("msd_back", l, 1);
    int64_t r = -1;
    assert_int_equal(msd_down_try(&r, 1), MS_OK);
    char at[64];
    snprintf(at, sizeof at, "%s", msd_addr);
    msi_http_stop(msd_srv);
    msd_srv = NULL;
    /* The list's ttl (200 ms) runs out several times: re-locates fail, calls go on. */
    int64_t end = msi_now_ms() + 700;
    int n = 0;
    while (msi_now_ms() < end) {
        assert_int_equal(msd_down_try(&r, 1), MS_OK);
        n++;
        usleep(5000);
    }
    assert_true(n > 10);
    /* A service never located: waits (within its deadline) for msd's return. */
    pthread_t t;
    restart_arg a = {600, "", 0};
    snprintf(a.at, sizeof a.at, "%s", at);
    assert_int_equal(pthread_create(&t, NULL, restart_main, &a), 0);
    int64_t t0 = msi_now_ms();
    ms_status st = msd_back_try(&r, 1);
    pthread_join(t, NULL);
    assert_true(a.ok);
    assert_int_equal(st, MS_OK);
    assert_true(msi_now_ms() - t0 >= 550);
}

int
main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (msd_start("127.0.0.1:0") != 0)
        return 1;
    /* A dead orchestrator first: every lookup fails over to the fake msd. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof sa;
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    char orch[160], state_dir[] = "/tmp/ms-test-calls-XXXXXX";
    snprintf(orch, sizeof orch, "127.0.0.1:%u,%s", (unsigned)ntohs(sa.sin_port), msd_addr);
    if (!mkdtemp(state_dir))
        return 1;
    setenv("MS_ORCHESTRATOR", orch, 1);
    setenv("MS_MODE", "local", 1);
    setenv("MS_TOKEN", "test-token", 1);
    setenv("MS_STATE_DIR", state_dir, 1); /* empty: nothing to register with */
    if (!getenv("MS_LOG"))
        setenv("MS_LOG", "error", 1);
    if (ms_init(&argc, &argv) != MS_OK) {
        fprintf(stderr, "ms_init: %s\n", ms_last_error());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_calls_unsent_goes_elsewhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_sent_idempotent_elsewhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_client_stub_takes_idempotent_from_msd, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_calls_client_stub_takes_timeout_from_msd, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_calls_sent_not_idempotent_gone_in_doubt, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_calls_sent_not_idempotent_same_instance, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_calls_reset_at_accept_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_reset_at_accept_not_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_hang_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_hang_not_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_app_error_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_refused_goes_elsewhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_five_attempts_at_most, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_refused_connections_are_not_attempts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_calls_waits_for_an_instance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_retry_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_orchestrator_down, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ms_shutdown();
    msi_http_stop(msd_srv);
    rmdir(state_dir);
    return rc;
}
