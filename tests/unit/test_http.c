/*
 * test_http.c: the HTTP server (http.c), its parser (http_parse.c) and the client
 * (httpc.c).
 * - The parser as pure functions: good requests, each malformed form with its status,
 *   prefixes, pipelined requests, chunked bodies, limits, keep-alive by version; response
 *   heads (fields, framing, prefixes, limits, malformed forms) and the client over raw
 *   answers (chunked bodies split anywhere, 1xx, a body up to the close, malformed ones).
 * - Server and client against each other: routing, 404/405, the body limit (413 by
 *   Content-Length and for a chunked body), the early hook, bearer tokens, query and
 *   headers, unix sockets with SO_PEERCRED, the "sent" flag.
 * - The server over raw sockets (bytes exactly as written): pipelining, 100-continue,
 *   keep-alive and close for HTTP/1.0 and 1.1, HEAD, framing errors, percent-decoding,
 *   timeouts (idle and a trickled request), max_conns, thread names, and the lifecycle:
 *   quiesce, stop with connections open, stop while a handler runs.
 * Every wait polls for its outcome with a bound; nothing sleeps to wait for readiness.
 */
#include "sha256.h"
#include "http.h"
#include "httpc.h"
#include "codec.h"

#include <jansson.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static const char *const tokens[] = {"tok-admin", NULL, "tok-call"};

static void
h_ping(msi_http_req *r, void *arg)
{
    (void)arg;
    const char *x = msi_http_header(r, "X-Test");
    const char *q = msi_http_query(r, "q");
    msi_http_reply_json(r, 200, json_pack("{s:b,s:s?,s:s?}", "pong", 1, "x", x, "q", q));
}

static void
h_echo(msi_http_req *r, void *arg)
{
    (void)arg;
    size_t len;
    const char *b = msi_http_body(r, &len);
    msi_http_reply_json(r, 200,
                        json_pack("{s:s,s:s%,s:i}", "rest", msi_http_rest(r), "body", b, len, "len",
                                  (json_int_t)len));
}

static void
h_secret(msi_http_req *r, void *arg)
{
    (void)arg;
    msi_http_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
}

static void
early_auth(msi_http_req *r, void *arg)
{
    (void)arg;
    if (!msi_http_bearer_ok(r, tokens, 3))
        msi_http_reply_error(r, MS_EAUTH, "token required");
}

/* Accepts the token whose SHA-256 is hashed_tok (set in setup): "tok-hashed". */
static char hashed_tok[65];

static void
early_hashed(msi_http_req *r, void *arg)
{
    (void)arg;
    if (!msi_http_bearer_sha256_ok(r, hashed_tok))
        msi_http_reply_error(r, MS_EAUTH, "token required");
}

static void
h_busy(msi_http_req *r, void *arg)
{
    (void)arg;
    msi_http_reply_error(r, MS_EOVERLOADED, "queue full");
}

static void
h_silent(msi_http_req *r, void *arg)
{
    (void)r;
    (void)arg;
}

static void
h_uid(msi_http_req *r, void *arg)
{
    (void)arg;
    uid_t uid;
    if (msi_http_peer_uid(r, &uid) != 0)
        msi_http_reply_error(r, MS_EFORBIDDEN, "no peer uid");
    else
        msi_http_reply_json(r, 200, json_pack("{s:i}", "uid", (json_int_t)uid));
}

/* GET /block: waits until the test releases it (blk_*), then answers 200. */
static pthread_mutex_t blk_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t blk_cv = PTHREAD_COND_INITIALIZER;
static int blk_entered, blk_release;

static void
h_block(msi_http_req *r, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&blk_mu);
    blk_entered++;
    pthread_cond_broadcast(&blk_cv);
    while (!blk_release)
        pthread_cond_wait(&blk_cv, &blk_mu);
    pthread_mutex_unlock(&blk_mu);
    msi_http_reply_json(r, 200, json_pack("{s:b}", "released", 1));
}

static void
h_len(msi_http_req *r, void *arg)
{
    (void)arg;
    size_t len;
    const char *b = msi_http_body(r, &len);
    size_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += (unsigned char)b[i];
    msi_http_reply_json(r, 200,
                        json_pack("{s:I,s:I}", "len", (json_int_t)len, "sum", (json_int_t)sum));
}

static const msi_http_route routes[] = {
    {"GET", "/ping", h_ping, NULL, 0, NULL},
    {"HEAD", "/ping", h_ping, NULL, 0, NULL},
    {"GET", "/block", h_block, NULL, 0, NULL},
    {"POST", "/big/", h_len, NULL, 8u << 20, NULL},
    {"POST", "/echo/", h_echo, NULL, 0, NULL},
    {"POST", "/small/", h_echo, NULL, 1024, NULL},
    {"POST", "/secret", h_secret, NULL, 0, early_auth},
    {"POST", "/hashed", h_secret, NULL, 0, early_hashed},
    {"GET", "/busy", h_busy, NULL, 0, NULL},
    {"GET", "/silent", h_silent, NULL, 0, NULL},
    {"GET", "/uid", h_uid, NULL, 0, NULL},
};

typedef struct fixture {
    msi_http *srv;
    char base[160];
} fixture;

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    msi_sha256_hex_of("tok-hashed", 10, hashed_tok);
    msi_http_config cfg = MSI_HTTP_CONFIG_INIT;
    cfg.host_port = "127.0.0.1:0";
    cfg.routes = routes;
    cfg.nroutes = sizeof routes / sizeof *routes;
    cfg.max_body = 64 * 1024;
    cfg.name = "test";
    msi_err err = {{0}};
    if (msi_http_start(&cfg, &f->srv, &err) != MS_OK) {
        fprintf(stderr, "start: %s\n", err.msg);
        free(f);
        return -1;
    }
    snprintf(f->base, sizeof f->base, "http://%s", msi_http_addr(f->srv));
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    msi_http_stop(f->srv);
    msi_httpc_thread_release();
    free(f);
    return 0;
}

/* GET/POST base+path; returns the status; *out gets the parsed body. */
static long
request(fixture *f, const char *method, const char *path, const char *body, size_t len,
        const char *bearer, json_t **out)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", f->base, path);
    const char *hdrs[] = {"X-Test: hello", NULL};
    msi_httpc_req rq = {0};
    rq.method = method;
    rq.url = url;
    rq.bearer = bearer;
    rq.headers = hdrs;
    rq.body = body;
    rq.body_len = len;
    rq.deadline_ms = msi_now_ms() + 5000;
    msi_httpc_resp rs;
    msi_err err = {{0}};
    ms_status st = msi_httpc_do(&rq, &rs, &err);
    assert_int_equal(st, MS_OK);
    if (out) {
        msi_err perr;
        *out = rs.len ? msi_json_parse(rs.body, rs.len, &perr) : NULL;
    }
    return rs.status;
}

static void
test_http_routing(void **state)
{
    fixture *f = *state;
    json_t *j = NULL;
    assert_int_equal(request(f, "GET", "/ping?q=42", NULL, 0, NULL, &j), 200);
    assert_true(json_is_true(json_object_get(j, "pong")));
    assert_string_equal(json_string_value(json_object_get(j, "x")), "hello");
    assert_string_equal(json_string_value(json_object_get(j, "q")), "42");
    json_decref(j);

    assert_int_equal(request(f, "POST", "/echo/add", "{\"a\":1}", 7, NULL, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "rest")), "add");
    assert_string_equal(json_string_value(json_object_get(j, "body")), "{\"a\":1}");
    json_decref(j);

    /* Unknown path: 404 with a JSON error; the prefix alone is not a match. */
    assert_int_equal(request(f, "GET", "/nope", NULL, 0, NULL, &j), 404);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "MS_ENOTFOUND");
    json_decref(j);
    assert_int_equal(request(f, "POST", "/echo/", "x", 1, NULL, NULL), 404);
    /* Known path, wrong method: 405. */
    assert_int_equal(request(f, "POST", "/ping", "{}", 2, NULL, NULL), 405);
    /* A handler that forgets to reply: 500. */
    assert_int_equal(request(f, "GET", "/silent", NULL, 0, NULL, NULL), 500);
}

static void
test_http_body_limit(void **state)
{
    fixture *f = *state;
    char *big = malloc(200 * 1024);
    memset(big, 'x', 200 * 1024);
    json_t *j = NULL;
    /* Per-route limit (1024) and server limit (64 KiB), both by Content-Length. */
    assert_int_equal(request(f, "POST", "/small/a", big, 1024, NULL, NULL), 200);
    assert_int_equal(request(f, "POST", "/small/a", big, 1025, NULL, &j), 413);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "MS_ETOOBIG");
    json_decref(j);
    assert_int_equal(request(f, "POST", "/echo/a", big, 64 * 1024, NULL, NULL), 200);
    assert_int_equal(request(f, "POST", "/echo/a", big, 200 * 1024, NULL, NULL), 413);
    /* The connection still serves after a refusal. */
    assert_int_equal(request(f, "GET", "/ping", NULL, 0, NULL, NULL), 200);
    free(big);
}

/* POSTs body to path through libcurl; expect=0 sends "Expect:" (libcurl then sends the
 * body at once, without asking). Returns the status; *ms the time it took. */
static long
post_timed(fixture *f, const char *path, const char *body, size_t len, int expect, int64_t *ms,
           json_t **out)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", f->base, path);
    const char *hdrs[] = {expect ? "X-Test: expect" : "Expect:", NULL};
    msi_httpc_req rq = {0};
    rq.method = "POST";
    rq.url = url;
    rq.headers = hdrs;
    rq.body = body;
    rq.body_len = len;
    rq.deadline_ms = msi_now_ms() + 30000;
    msi_httpc_resp rs;
    msi_err err = {{0}};
    int64_t t0 = msi_now_ms();
    assert_int_equal(msi_httpc_do(&rq, &rs, &err), MS_OK);
    *ms = msi_now_ms() - t0;
    if (out)
        *out = rs.len ? msi_json_parse(rs.body, rs.len, &err) : NULL;
    return rs.status;
}

/* Large bodies through libcurl, which sends "Expect: 100-continue" past 1 MiB and then
 * waits up to a second for "100 Continue": the server sends it at once (granted) or
 * refuses at once (413), so neither costs that second. The same body sent without the
 * expectation is the yardstick (the sanitizer builds are much slower than a second). */
static void
test_http_large_bodies(void **state)
{
    fixture *f = *state;
    size_t n = 3u << 20;
    char *big = malloc(n);
    size_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        big[i] = (char)('a' + i % 26);
        sum += (unsigned char)big[i];
    }
    json_t *j = NULL;
    int64_t plain_ms, granted_ms, refused_ms;
    assert_int_equal(post_timed(f, "/big/x", big, n, 0, &plain_ms, NULL), 200);
    assert_int_equal(post_timed(f, "/big/x", big, n, 1, &granted_ms, &j), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "len")), (json_int_t)n);
    assert_int_equal(json_integer_value(json_object_get(j, "sum")), (json_int_t)sum);
    json_decref(j);
    assert_int_equal(post_timed(f, "/echo/x", big, n, 1, &refused_ms, NULL), 413);
    printf("3 MiB body: %lld ms without Expect, %lld ms granted after 100-continue, refused in "
           "%lld ms\n",
           (long long)plain_ms, (long long)granted_ms, (long long)refused_ms);
    assert_true(granted_ms < plain_ms + 700);
    assert_true(refused_ms < 700);
    /* The connection still serves (and the connection's big buffer was given back). */
    assert_int_equal(request(f, "GET", "/ping", NULL, 0, NULL, NULL), 200);
    free(big);
}

/* A chunked body (no Content-Length) that grows past the limit: discarded, then 413. */
static void
test_http_body_limit_chunked(void **state)
{
    fixture *f = *state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(msi_http_port(f->srv));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char *head = "POST /small/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_true(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
    char chunk[600];
    memset(chunk, 'y', sizeof chunk);
    for (int i = 0; i < 4; i++) {
        char sz[16];
        int n = snprintf(sz, sizeof sz, "%zx\r\n", sizeof chunk);
        assert_true(write(fd, sz, (size_t)n) == n);
        assert_true(write(fd, chunk, sizeof chunk) == (ssize_t)sizeof chunk);
        assert_true(write(fd, "\r\n", 2) == 2);
    }
    assert_true(write(fd, "0\r\n\r\n", 5) == 5);
    char resp[2048];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof resp - 1 && (n = read(fd, resp + got, sizeof resp - 1 - got)) > 0) {
        got += (size_t)n;
        resp[got] = '\0';
        if (strstr(resp, "MS_ETOOBIG"))
            break;
    }
    resp[got] = '\0';
    close(fd);
    assert_non_null(strstr(resp, "HTTP/1.1 413"));
}

/* Headers over the limit (8 KiB by default) are refused with 431, before routing. */
static void
test_http_header_limit(void **state)
{
    fixture *f = *state;
    char *big = malloc(12000);
    memcpy(big, "X-Big: ", 7);
    memset(big + 7, 'h', 12000 - 8);
    big[12000 - 1] = '\0';
    const char *hdrs[] = {big, NULL};
    char url[256];
    snprintf(url, sizeof url, "%s/ping", f->base);
    msi_httpc_req rq = {0};
    rq.url = url;
    rq.headers = hdrs;
    rq.deadline_ms = msi_now_ms() + 5000;
    msi_httpc_resp rs;
    msi_err err = {{0}};
    assert_int_equal(msi_httpc_do(&rq, &rs, &err), MS_OK);
    assert_int_equal(rs.status, 431);
    free(big);
    assert_int_equal(request(f, "GET", "/ping", NULL, 0, NULL, NULL), 200);
}

static void
test_http_bearer(void **state)
{
    fixture *f = *state;
    json_t *j = NULL;
    assert_int_equal(request(f, "POST", "/secret", "{}", 2, NULL, &j), 401);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "MS_EAUTH");
    json_decref(j);
    assert_int_equal(request(f, "POST", "/secret", "{}", 2, "wrong", NULL), 401);
    assert_int_equal(request(f, "POST", "/secret", "{}", 2, "tok-cal", NULL), 401);
    assert_int_equal(request(f, "POST", "/secret", "{}", 2, "tok-calll", NULL), 401);
    assert_int_equal(request(f, "POST", "/secret", "{}", 2, "tok-call", NULL), 200);
    assert_int_equal(request(f, "POST", "/secret", "{}", 2, "tok-admin", NULL), 200);
    /* The early hook refuses before a large body is read. */
    char *big = calloc(1, 32 * 1024);
    memset(big, ' ', 32 * 1024 - 1);
    assert_int_equal(request(f, "POST", "/secret", big, 32 * 1024 - 1, "nope", NULL), 401);
    free(big);

    /* A token recognised by its hash: the token itself passes, its hash or a neighbour
     * does not. */
    assert_int_equal(request(f, "POST", "/hashed", "{}", 2, "tok-hashed", NULL), 200);
    assert_int_equal(request(f, "POST", "/hashed", "{}", 2, " tok-hashed ", NULL), 200);
    assert_int_equal(request(f, "POST", "/hashed", "{}", 2, NULL, NULL), 401);
    assert_int_equal(request(f, "POST", "/hashed", "{}", 2, "tok-hashe", NULL), 401);
    assert_int_equal(request(f, "POST", "/hashed", "{}", 2, "tok-hashedd", NULL), 401);
    assert_int_equal(request(f, "POST", "/hashed", "{}", 2, hashed_tok, NULL), 401);

    assert_true(msi_http_token_eq("abc", 3, "abc"));
    assert_false(msi_http_token_eq("abd", 3, "abc"));
    assert_false(msi_http_token_eq("ab", 2, "abc"));
    assert_false(msi_http_token_eq("abcabc", 6, "abc"));
    assert_false(msi_http_token_eq("", 0, ""));
}

static void
test_http_retry_after(void **state)
{
    fixture *f = *state;
    char url[256];
    snprintf(url, sizeof url, "%s/busy", f->base);
    msi_httpc_req rq = {0};
    rq.url = url;
    msi_httpc_resp rs;
    msi_err err = {{0}};
    assert_int_equal(msi_httpc_do(&rq, &rs, &err), MS_OK);
    assert_int_equal(rs.status, 429);
    assert_int_equal(rs.retry_after_s, 1);
    assert_int_equal(msi_httpc_error_status(&rs, NULL), MS_EOVERLOADED);
    char buf[128];
    assert_string_equal(msi_httpc_error_text(&rs, buf, sizeof buf), "queue full");
    assert_int_equal(rs.sent, 0);
}

static void
test_http_client_errors(void **state)
{
    (void)state;
    /* A port nobody listens on: unavailable, nothing sent. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof sa;
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/x", (unsigned)ntohs(sa.sin_port));
    close(fd);
    msi_httpc_req rq = {0};
    rq.url = url;
    rq.body = "{}";
    rq.body_len = 2;
    rq.no_resend = 1;
    msi_httpc_resp rs;
    msi_err err = {{0}};
    assert_int_equal(msi_httpc_do(&rq, &rs, &err), MS_EUNAVAILABLE);
    assert_int_equal(rs.sent, 0);
    /* A deadline already past: not sent at all. */
    rq.deadline_ms = msi_now_ms() - 1;
    assert_int_equal(msi_httpc_do(&rq, &rs, &err), MS_ETIMEDOUT);
    assert_int_equal(rs.sent, 0);
}

/* The HTTP status of an answer without an error body, as the client maps it to an
 * ms_status (msi_httpc_error_status). Pinned for every code the client has ever mapped
 * explicitly, and for every other code (which is MS_EPROTO), so that deriving the mapping
 * from MS_STATUS_LIST changes no result. */
static void
test_http_client_status_map(void **state)
{
    (void)state;
    static const struct {
        long http;
        ms_status st;
    } pinned[] = {
        {200, MS_OK},           {400, MS_EBADARGS},    {401, MS_EAUTH},
        {403, MS_EFORBIDDEN},   {404, MS_ENOTFOUND},   {409, MS_ETXN_LOST},
        {412, MS_ESIGNATURE},   {413, MS_ETOOBIG},     {421, MS_EWRONGINSTANCE},
        {422, MS_EREUSED},      {429, MS_EOVERLOADED}, {502, MS_EPROTO},
        {503, MS_EUNAVAILABLE}, {504, MS_ETIMEDOUT},
    };
    for (long http = 0; http < 1000; http++) {
        ms_status want = MS_EPROTO;
        for (size_t i = 0; i < sizeof pinned / sizeof pinned[0]; i++)
            if (pinned[i].http == http)
                want = pinned[i].st;
        msi_httpc_resp rs = {0};
        rs.status = http;
        rs.body = "";
        int app = -1;
        ms_status got = msi_httpc_error_status(&rs, &app);
        if (got != want)
            fail_msg("HTTP %ld: %s, wanted %s", http, ms_status_name(got), ms_status_name(want));
        assert_int_equal(app, 0);
    }
    /* An error body's code wins over the HTTP status. */
    msi_httpc_resp rs = {0};
    rs.status = 503;
    rs.body = "{\"error\":{\"code\":\"MS_EDRAINING\",\"message\":\"x\",\"app_code\":7}}";
    rs.len = strlen(rs.body);
    int app = 0;
    assert_int_equal(msi_httpc_error_status(&rs, &app), MS_EDRAINING);
    assert_int_equal(app, 7);
}

/* A server that reads the request and closes without answering: the call is in doubt. */
static void
test_http_client_sent_then_lost(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof sa;
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 4), 0);
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int c = accept(lfd, NULL, NULL);
        char buf[4096];
        ssize_t n = read(c, buf, sizeof buf);
        (void)n;
        usleep(50 * 1000);
        close(c);
        _exit(0);
    }
    close(lfd);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/call/x", (unsigned)ntohs(sa.sin_port));
    msi_httpc_req rq = {0};
    rq.url = url;
    rq.body = "{\"a\":1}";
    rq.body_len = 7;
    rq.no_resend = 1;
    rq.deadline_ms = msi_now_ms() + 5000;
    msi_httpc_resp rs;
    msi_err err = {{0}};
    assert_int_equal(msi_httpc_do(&rq, &rs, &err), MS_EINDOUBT);
    assert_int_equal(rs.sent, 1);
    int status;
    waitpid(pid, &status, 0);
}

static void
test_http_unix_peer_uid(void **state)
{
    (void)state;
    char dir[] = "/tmp/ms-test-http-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/s.sock", dir);
    msi_http_config cfg = MSI_HTTP_CONFIG_INIT;
    cfg.unix_path = path;
    cfg.routes = routes;
    cfg.nroutes = sizeof routes / sizeof *routes;
    msi_http *srv = NULL;
    msi_err err = {{0}};
    assert_int_equal(msi_http_start(&cfg, &srv, &err), MS_OK);
    assert_string_equal(msi_http_addr(srv), path);
    msi_httpc_req rq = {0};
    rq.url = "http://localhost/uid";
    rq.unix_path = path;
    msi_httpc_resp rs;
    json_t *j = NULL;
    assert_int_equal(msi_httpc_json(&rq, NULL, &rs, &j, &err), MS_OK);
    assert_int_equal(rs.status, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "uid")), (json_int_t)getuid());
    json_decref(j);
    msi_http_stop(srv);
    assert_int_not_equal(access(path, F_OK), 0); /* the socket file is removed */
    rmdir(dir);
}

static void
test_http_peer_uid_tcp(void **state)
{
    fixture *f = *state;
    assert_int_equal(request(f, "GET", "/uid", NULL, 0, NULL, NULL), 403);
}

/* After msi_http_quiesce new connections are refused at once; a kept-alive one still
 * works. */
static void
test_http_quiesce_refuses(void **state)
{
    (void)state;
    msi_http_config cfg = MSI_HTTP_CONFIG_INIT;
    cfg.host_port = "127.0.0.1:0";
    cfg.routes = routes;
    cfg.nroutes = sizeof routes / sizeof *routes;
    msi_http *srv = NULL;
    msi_err err = {{0}};
    assert_int_equal(msi_http_start(&cfg, &srv, &err), MS_OK);
    char url[128];
    snprintf(url, sizeof url, "http://%s/ping", msi_http_addr(srv));
    msi_httpc_req rq = {0};
    rq.url = url;
    rq.deadline_ms = msi_now_ms() + 2000;
    msi_httpc_resp rs;
    assert_int_equal(msi_httpc_do(&rq, &rs, &err), MS_OK); /* opens a kept-alive connection */
    assert_int_equal(rs.status, 200);
    msi_http_quiesce(srv);
    assert_int_equal(msi_httpc_do(&rq, &rs, &err), MS_OK);
    assert_int_equal(rs.status, 200);
    msi_httpc_thread_release(); /* drop the kept-alive connection */
    assert_int_equal(msi_httpc_do(&rq, &rs, &err), MS_EUNAVAILABLE);
    assert_int_equal(rs.sent, 0);
    msi_http_stop(srv);
}

/* ==========================================================================================
 * The parser (http_parse.c), as pure functions.
 * ======================================================================================== */

static int
parse_n(const char *text, size_t len, size_t max, msi_http_head *h)
{
    return msi_http_parse_head(text, len, max ? max : 8192, h);
}

/* The status a head parses to: 0 incomplete, 200 complete, else the error status. */
static int
head_status(const char *text)
{
    msi_http_head h;
    int rc = parse_n(text, strlen(text), 0, &h);
    if (rc == MSI_HTTP_PARSE_ERROR) {
        assert_non_null(h.error);
        return h.status;
    }
    return rc == MSI_HTTP_PARSE_DONE ? 200 : 0;
}

/* The value of a field of a parsed head (copied to out), or NULL. */
static const char *
field(const char *buf, const msi_http_head *h, const char *name, char *out, size_t size)
{
    for (int i = 0; i < h->nfields; i++) {
        const msi_http_field *f = &h->fields[i];
        if (f->name_len == strlen(name) && strncasecmp(buf + f->name, name, f->name_len) == 0) {
            snprintf(out, size, "%.*s", (int)f->value_len, buf + f->value);
            return out;
        }
    }
    return NULL;
}

static void
test_http_parse_good(void **state)
{
    (void)state;
    const char *req = "GET /a/b?x=1 HTTP/1.1\r\nHost: example\r\nX-Pad:  two words \t\r\n"
                      "Empty:\r\n\r\nBODY";
    msi_http_head h;
    char v[64];
    assert_int_equal(parse_n(req, strlen(req), 0, &h), MSI_HTTP_PARSE_DONE);
    assert_int_equal(h.head_len, strlen(req) - 4);
    assert_int_equal(h.method_len, 3);
    assert_memory_equal(req + h.method, "GET", 3);
    assert_int_equal(h.target_len, strlen("/a/b?x=1"));
    assert_memory_equal(req + h.target, "/a/b?x=1", h.target_len);
    assert_int_equal(h.minor, 1);
    assert_int_equal(h.nfields, 3);
    assert_string_equal(field(req, &h, "host", v, sizeof v), "example");
    assert_string_equal(field(req, &h, "X-PAD", v, sizeof v), "two words"); /* OWS trimmed */
    assert_string_equal(field(req, &h, "Empty", v, sizeof v), "");
    assert_true(h.keep_alive);
    assert_false(h.has_length);
    assert_false(h.chunked);
    assert_false(h.expect_continue);

    /* Every shorter prefix is incomplete, never an error. */
    for (size_t k = 0; k < h.head_len; k++) {
        msi_http_head p;
        assert_int_equal(parse_n(req, k, 0, &p), MSI_HTTP_PARSE_MORE);
    }

    /* Bare LF line ends; empty lines before the request line; any token as a method. */
    assert_int_equal(head_status("GET / HTTP/1.1\nHost: x\n\n"), 200);
    assert_int_equal(head_status("\r\n\r\nGET / HTTP/1.1\r\n\r\n"), 200);
    assert_int_equal(head_status("BREW /pot HTTP/1.1\r\n\r\n"), 200);
    assert_int_equal(head_status("get / HTTP/1.1\r\n\r\n"), 200);
    assert_int_equal(head_status("OPTIONS * HTTP/1.1\r\n\r\n"), 200);
    assert_int_equal(head_status("GET http://host:1/p?q HTTP/1.1\r\n\r\n"), 200);
    /* HTTP/1.2 is served as 1.1 (RFC 9110 section 2.5). */
    assert_int_equal(parse_n("GET / HTTP/1.2\r\n\r\n", 18, 0, &h), MSI_HTTP_PARSE_DONE);
    assert_int_equal(h.minor, 1);
    /* obs-text in a value is allowed (the application decides). */
    assert_int_equal(head_status("GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n"), 200);
}

static void
test_http_parse_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {"GET  / HTTP/1.1\r\n\r\n", 400},              /* two spaces */
        {"GET / HTTP/1.1 \r\n\r\n", 400},              /* trailing space */
        {"GE(T / HTTP/1.1\r\n\r\n", 400},              /* not a token */
        {" GET / HTTP/1.1\r\n\r\n", 400},              /* leading space */
        {"GET /a\x01 HTTP/1.1\r\n\r\n", 400},          /* control character */
        {"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", 400},    /* non-ASCII target */
        {"GET a/b HTTP/1.1\r\n\r\n", 400},             /* target form */
        {"GET /\r\n\r\n", 400},                        /* HTTP/0.9 */
        {"GET / http/1.1\r\n\r\n", 400},               /* version case */
        {"GET / HTTP/1.10\r\n\r\n", 400},              /* version form */
        {"GET / HTTP/2.0\r\n\r\n", 505},               /* version */
        {"GET / HTTP/9.9\r\n\r\n", 505},               /* version */
        {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},   /* space before the colon */
        {"GET / HTTP/1.1\r\nHost\r\n\r\n", 400},       /* no colon */
        {"GET / HTTP/1.1\r\n: x\r\n\r\n", 400},        /* empty name */
        {"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400}, /* obs-fold */
        {"GET / HTTP/1.1\r\nX: a\x01 b\r\n\r\n", 400}, /* control character */
        {"GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400},   /* DEL */
        {"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400},    /* bare CR */
        {"GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
        {"GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
        {"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
        {"GET / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 417},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int got = head_status(cases[i].req);
        if (got != cases[i].status)
            fail_msg("case %zu (%s): %d, wanted %d", i, cases[i].req, got, cases[i].status);
    }
    /* A NUL anywhere: 400 (the length is given, so a NUL is just a byte to the parser). */
    static const char nul_value[] = "GET / HTTP/1.1\r\nAuthorization: Bearer a\0b\r\n\r\n";
    static const char nul_target[] = "GET /a\0b HTTP/1.1\r\n\r\n";
    msi_http_head h;
    assert_int_equal(parse_n(nul_value, sizeof nul_value - 1, 0, &h), MSI_HTTP_PARSE_ERROR);
    assert_int_equal(h.status, 400);
    assert_int_equal(parse_n(nul_target, sizeof nul_target - 1, 0, &h), MSI_HTTP_PARSE_ERROR);
    assert_int_equal(h.status, 400);
    /* An error found on a line stays the same error as more bytes come. */
    const char *bad = "GET / HTTP/1.1\r\nBad line\r\nHost: x\r\n\r\n";
    for (size_t k = strlen("GET / HTTP/1.1\r\nBad line\r\n"); k <= strlen(bad); k++) {
        assert_int_equal(parse_n(bad, k, 0, &h), MSI_HTTP_PARSE_ERROR);
        assert_int_equal(h.status, 400);
    }
}

static void
test_http_parse_limits(void **state)
{
    (void)state;
    msi_http_head h;
    char buf[16384];
    /* 64 fields pass, 65 are 431. */
    size_t n = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "X-%d: v\r\n", i);
    memcpy(buf + n, "\r\n", 3);
    assert_int_equal(parse_n(buf, n + 2, 0, &h), MSI_HTTP_PARSE_DONE);
    assert_int_equal(h.nfields, 64);
    n += (size_t)snprintf(buf + n, sizeof buf - n, "X-64: v\r\n\r\n");
    assert_int_equal(parse_n(buf, n, 0, &h), MSI_HTTP_PARSE_ERROR);
    assert_int_equal(h.status, 431);
    /* The head limit: a head of exactly max bytes passes, one more byte is 431; a request
     * line alone past the limit is 414. Nothing past max_header is needed to decide. */
    const char *req = "GET /x HTTP/1.1\r\nHost: abc\r\n\r\n";
    size_t len = strlen(req);
    assert_int_equal(parse_n(req, len, len, &h), MSI_HTTP_PARSE_DONE);
    assert_int_equal(parse_n(req, len, len - 1, &h), MSI_HTTP_PARSE_ERROR);
    assert_int_equal(h.status, 431);
    assert_int_equal(parse_n(req, len, 10, &h), MSI_HTTP_PARSE_ERROR);
    assert_int_equal(h.status, 414);
    assert_int_equal(parse_n(req, 9, 10, &h), MSI_HTTP_PARSE_MORE);
    /* Content-Length: exact, agreeing duplicates, saturation past 2^64. */
    const char *cl = "POST / HTTP/1.1\r\nContent-Length: 12\r\ncontent-length: 12\r\n\r\n";
    assert_int_equal(parse_n(cl, strlen(cl), 0, &h), MSI_HTTP_PARSE_DONE);
    assert_true(h.has_length);
    assert_int_equal(h.length, 12);
    const char *big = "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n";
    assert_int_equal(parse_n(big, strlen(big), 0, &h), MSI_HTTP_PARSE_DONE);
    assert_true(h.length == UINT64_MAX);
}

static void
test_http_parse_keep_alive(void **state)
{
    (void)state;
    static const struct {
        const char *req;
        int keep, minor, cont;
    } cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", 1, 1, 0},
        {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 0, 1, 0},
        {"GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n", 0, 1, 0},
        {"GET / HTTP/1.0\r\n\r\n", 0, 0, 0},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1, 0, 0},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive, x\r\n\r\n", 1, 0, 0},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0, 0, 0},
        {"POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", 1, 1, 1},
        /* An HTTP/1.0 expectation is ignored (RFC 9110 section 10.1.1). */
        {"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", 0, 0, 0},
        {"POST / HTTP/1.0\r\nExpect: other\r\n\r\n", 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        msi_http_head h;
        assert_int_equal(parse_n(cases[i].req, strlen(cases[i].req), 0, &h), MSI_HTTP_PARSE_DONE);
        if (h.keep_alive != cases[i].keep || h.minor != cases[i].minor ||
            h.expect_continue != cases[i].cont)
            fail_msg("case %zu (%s): keep %d minor %d continue %d", i, cases[i].req, h.keep_alive,
                     h.minor, h.expect_continue);
    }
}

/* Several requests in one buffer parse one after the other. */
static void
test_http_parse_pipelined(void **state)
{
    (void)state;
    const char *all = "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                      "GET /b HTTP/1.1\r\n\r\n"
                      "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n"
                      "GET /d HTTP/1.0\r\n\r\n";
    size_t len = strlen(all), off = 0;
    const char *want[] = {"/a", "/b", "/c", "/d"};
    char *copy = strdup(all);
    for (int i = 0; i < 4; i++) {
        msi_http_head h;
        assert_int_equal(parse_n(copy + off, len - off, 0, &h), MSI_HTTP_PARSE_DONE);
        assert_int_equal(h.target_len, 2);
        assert_memory_equal(copy + off + h.target, want[i], 2);
        off += h.head_len;
        if (h.has_length)
            off += (size_t)h.length;
        if (h.chunked) {
            msi_http_chunked st = {0};
            size_t in = off, out = off;
            int status = 0;
            assert_int_equal(msi_http_dechunk(&st, copy, &in, len, &out, 100, &status),
                             MSI_HTTP_PARSE_DONE);
            assert_int_equal(out - off, 1);
            assert_int_equal(copy[off], 'z');
            off = in;
        }
    }
    assert_int_equal(off, len);
    free(copy);
}

/* Decodes a chunked body given `step` bytes at a time; returns the final rc. */
static int
dechunk_steps(const char *raw, size_t len, size_t step, uint64_t keep, char *out_buf,
              size_t *out_len, size_t *consumed, uint64_t *total, int *status)
{
    char *b = malloc(len + 1);
    memcpy(b, raw, len);
    msi_http_chunked st = {0};
    size_t in = 0, out = 0, lim = 0;
    int rc = MSI_HTTP_PARSE_MORE;
    *status = 0;
    while (rc == MSI_HTTP_PARSE_MORE && lim < len) {
        lim = lim + step < len ? lim + step : len;
        rc = msi_http_dechunk(&st, b, &in, lim, &out, keep, status);
        assert_true(out <= in);
        if (rc == MSI_HTTP_PARSE_MORE)
            assert_int_equal(in, lim); /* everything given is consumed */
    }
    memcpy(out_buf, b, out);
    *out_len = out;
    *consumed = in;
    *total = st.total;
    free(b);
    return rc;
}

static void
test_http_parse_chunked(void **state)
{
    (void)state;
    const char *raw = "5\r\nhello\r\n6;name=value;x\r\n world\r\n00A \t; ext\r\n, 10 more\r\n"
                      "0\r\nTrailer: x\r\nOther: y\r\n\r\nNEXT";
    size_t len = strlen(raw);
    char out[128];
    size_t olen, used;
    uint64_t total;
    int status;
    /* Any split gives the same result. */
    for (size_t step = 1; step <= len; step++) {
        assert_int_equal(dechunk_steps(raw, len, step, 1000, out, &olen, &used, &total, &status),
                         MSI_HTTP_PARSE_DONE);
        assert_int_equal(olen, 21);
        assert_memory_equal(out, "hello world, 10 more", 20);
        assert_int_equal(total, 21);
        assert_int_equal(used, len - 4); /* "NEXT" is the next request's */
    }
    /* Bare LF line ends. */
    const char *lf = "3\nabc\n0\n\n";
    assert_int_equal(dechunk_steps(lf, strlen(lf), 1, 100, out, &olen, &used, &total, &status),
                     MSI_HTTP_PARSE_DONE);
    assert_int_equal(olen, 3);
    /* Past the limit: counted, not kept. */
    assert_int_equal(dechunk_steps(raw, len, 7, 4, out, &olen, &used, &total, &status),
                     MSI_HTTP_PARSE_DONE);
    assert_int_equal(olen, 4);
    assert_int_equal(total, 21);
    assert_memory_equal(out, "hell", 4);
    /* Malformed. */
    static const struct {
        const char *raw;
        int status;
    } bad[] = {
        {"zz\r\nhello\r\n", 400},            /* not hex */
        {"\r\n", 400},                       /* no size */
        {"5x\r\nhello\r\n", 400},            /* junk after the size */
        {"5 x\r\nhello\r\n", 400},           /* junk after whitespace */
        {"5\r\nhelloX\r\n", 400},            /* no CRLF after the data */
        {"5\r\nhello\rX", 400},              /* CR without LF */
        {"5\rX", 400},                       /* CR without LF */
        {"5;a\x01\r\n", 400},                /* control character in an extension */
        {"ffffffffffffffffffff\r\n", 413},   /* size overflow */
        {"1000000000000000\r\n", 413},       /* 2^60 */
        {"0\r\nTrailer: a\0b\r\n\r\n", 400}, /* NUL in a trailer */
        {"0\r\n\rX", 400},                   /* CR without LF at the end */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t blen = strlen(bad[i].raw);
        if (i == 10)
            blen = 20; /* the NUL case: its length, past the NUL */
        int rc = dechunk_steps(bad[i].raw, blen, 1, 100, out, &olen, &used, &total, &status);
        if (rc != MSI_HTTP_PARSE_ERROR || status != bad[i].status)
            fail_msg("bad chunked case %zu: rc %d status %d, wanted %d", i, rc, status,
                     bad[i].status);
    }
    /* Trailers are bounded (8 KiB): 431. */
    size_t tl = 20000;
    char *tr = malloc(tl + 16);
    memcpy(tr, "0\r\nX: ", 6);
    memset(tr + 6, 'a', tl);
    memcpy(tr + 6 + tl, "\r\n\r\n", 4);
    assert_int_equal(dechunk_steps(tr, tl + 10, 4096, 100, out, &olen, &used, &total, &status),
                     MSI_HTTP_PARSE_ERROR);
    assert_int_equal(status, 431);
    free(tr);
    /* A long extension is bounded too (400). */
    char ext[6000];
    memset(ext, 'e', sizeof ext);
    memcpy(ext, "1;", 2);
    assert_int_equal(dechunk_steps(ext, sizeof ext, 512, 100, out, &olen, &used, &total, &status),
                     MSI_HTTP_PARSE_ERROR);
    assert_int_equal(status, 400);
}

/* The response parser (msi_http_parse_response, msi_http_response_framing): what the client
 * reads of a response head. */
static void
test_http_parse_response(void **state)
{
    (void)state;
    msi_http_resp_head h;
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "content-length:  13 \r\nX-No-Colon\r\n\r\n{\"a\":2,\"b\":3}";
    size_t hl = strstr(ok, "\r\n\r\n") + 4 - ok;
    assert_int_equal(msi_http_parse_response(ok, strlen(ok), 65536, &h), MSI_HTTP_RESP_DONE);
    assert_int_equal(h.head_len, hl);
    assert_int_equal(h.status, 200);
    assert_int_equal(h.minor, 1);
    assert_int_equal(h.content_length, 13);
    assert_false(h.chunked);
    assert_true(h.keep_alive);
    assert_int_equal(h.retry_after_s, -1);
    assert_int_equal(msi_http_response_framing(&h, 0), MSI_HTTP_BODY_LENGTH);
    assert_int_equal(msi_http_response_framing(&h, 1), MSI_HTTP_BODY_NONE);
    /* Every shorter prefix is incomplete; a head longer than max_head is refused. */
    for (size_t k = 0; k < hl; k++)
        assert_int_equal(msi_http_parse_response(ok, k, 65536, &h), MSI_HTTP_RESP_MORE);
    assert_int_equal(msi_http_parse_response(ok, hl, hl, &h), MSI_HTTP_RESP_DONE);
    assert_int_equal(msi_http_parse_response(ok, strlen(ok), hl - 1, &h), MSI_HTTP_RESP_TOO_LONG);
    assert_int_equal(msi_http_parse_response(ok, hl - 1, hl - 1, &h), MSI_HTTP_RESP_TOO_LONG);
    assert_int_equal(msi_http_parse_response(ok, hl - 2, hl - 1, &h), MSI_HTTP_RESP_MORE);

    static const struct {
        const char *text;
        int rc, status, minor;
        long long length;
        int chunked, keep_alive, retry_after;
        msi_http_body_framing framing;
    } cases[] = {
        {"HTTP/1.1 204 No Content\n\n", 1, 204, 1, -1, 0, 1, -1, MSI_HTTP_BODY_NONE},
        {"HTTP/1.1 304 x\r\nContent-Length: 5\r\n\r\n", 1, 304, 1, 5, 0, 1, -1, MSI_HTTP_BODY_NONE},
        {"HTTP/1.0 200 OK\r\n\r\n", 1, 200, 0, -1, 0, 0, -1, MSI_HTTP_BODY_UNTIL_CLOSE},
        {"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", 1, 200, 0, 0, 0,
         1, -1, MSI_HTTP_BODY_LENGTH},
        {"HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\n\r\n", 1, 200, 0, -1, 0, 0, -1,
         MSI_HTTP_BODY_UNTIL_CLOSE},
        {"HTTP/1.1 200 OK\r\nConnection: te, CLOSE\r\n\r\n", 1, 200, 1, -1, 0, 0, -1,
         MSI_HTTP_BODY_UNTIL_CLOSE},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n", 1, 200,
         1, 3, 1, 1, -1, MSI_HTTP_BODY_CHUNKED},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 1, 200,
         1, -1, 0, 1, -1, MSI_HTTP_BODY_UNTIL_CLOSE},
        {"HTTP/1.1 429 Busy\r\nRetry-After: 1\r\n\r\n", 1, 429, 1, -1, 0, 1, 1,
         MSI_HTTP_BODY_UNTIL_CLOSE},
        {"HTTP/1.1 503 x\r\nRetry-After: 86399\r\n\r\n", 1, 503, 1, -1, 0, 1, 86399,
         MSI_HTTP_BODY_UNTIL_CLOSE},
        {"HTTP/1.1 503 x\r\nRetry-After: 86400\r\n\r\n", 1, 503, 1, -1, 0, 1, -1,
         MSI_HTTP_BODY_UNTIL_CLOSE},
        {"HTTP/1.1 503 x\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n", 1, 503, 1, -1, 0,
         1, -1, MSI_HTTP_BODY_UNTIL_CLOSE},
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 1, 100, 1, -1, 0, 1, -1,
         MSI_HTTP_BODY_UNTIL_CLOSE},
        {"HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\n", 1, 200, 1,
         999999999999999999LL, 0, 1, -1, MSI_HTTP_BODY_LENGTH},
        /* Malformed. */
        {"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000000\r\n\r\n", -1, 0, 0, 0, 0, 0, 0,
         MSI_HTTP_BODY_NONE},
        {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", -1, 0, 0, 0, 0, 0, 0, MSI_HTTP_BODY_NONE},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n", -1, 0, 0, 0, 0, 0, 0,
         MSI_HTTP_BODY_NONE},
        {"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", -1, 0, 0, 0, 0, 0, 0, MSI_HTTP_BODY_NONE},
        {"HTTP/2.0 200 OK\r\n\r\n", -1, 0, 0, 0, 0, 0, 0, MSI_HTTP_BODY_NONE},
        {"HTTP/1.1 099 x\r\n\r\n", -1, 0, 0, 0, 0, 0, 0, MSI_HTTP_BODY_NONE},
        {"HTTP/1.1 20 OK\r\n\r\n", -1, 0, 0, 0, 0, 0, 0, MSI_HTTP_BODY_NONE},
        {"HTTP/1.1\r\n\r\n", -1, 0, 0, 0, 0, 0, 0, MSI_HTTP_BODY_NONE},
        {"SSH-2.0-OpenSSH\r\n\r\n", -1, 0, 0, 0, 0, 0, 0, MSI_HTTP_BODY_NONE},
        {"\r\nHTTP/1.1 200 OK\r\n\r\n", -1, 0, 0, 0, 0, 0, 0, MSI_HTTP_BODY_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *t = cases[i].text;
        int rc = msi_http_parse_response(t, strlen(t), 65536, &h);
        if (rc != cases[i].rc)
            fail_msg("response case %zu: rc %d, wanted %d", i, rc, cases[i].rc);
        if (rc != MSI_HTTP_RESP_DONE)
            continue;
        if (h.status != cases[i].status || h.minor != cases[i].minor ||
            h.content_length != cases[i].length || h.chunked != cases[i].chunked ||
            h.keep_alive != cases[i].keep_alive || h.retry_after_s != cases[i].retry_after ||
            msi_http_response_framing(&h, 0) != cases[i].framing)
            fail_msg("response case %zu: status %d minor %d length %lld chunked %d keep %d "
                     "retry %d framing %d",
                     i, h.status, h.minor, (long long)h.content_length, h.chunked, h.keep_alive,
                     h.retry_after_s, (int)msi_http_response_framing(&h, 0));
    }
}

/* A server that answers one connection with the given bytes, written in pieces (split at
 * each '|'; a short pause between pieces) and then closes. Returns its pid; *url set. */
static pid_t
raw_answer(const char *answer, char *url, size_t size)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof sa;
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 4), 0);
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    snprintf(url, size, "http://127.0.0.1:%u/x", (unsigned)ntohs(sa.sin_port));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int c = accept(lfd, NULL, NULL);
        char buf[4096];
        ssize_t n = read(c, buf, sizeof buf);
        (void)n;
        for (const char *p = answer; *p;) {
            size_t k = strcspn(p, "|");
            if (write(c, p, k) != (ssize_t)k)
                _exit(1);
            p += k;
            if (*p == '|') {
                p++;
                usleep(20 * 1000);
            }
        }
        usleep(20 * 1000);
        close(c);
        _exit(0);
    }
    close(lfd);
    return pid;
}

/* The client over raw answers: chunked bodies split anywhere, 1xx skipped, a body up to the
 * close, malformed answers, a body over the request's body_max. */
static void
test_http_client_responses(void **state)
{
    (void)state;
    static const struct {
        const char *answer;
        ms_status st;
        long status;
        const char *body;
        size_t body_max;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe|llo\r\n6;x=y\r|\n "
         "world\r\n0\r\nT|railer: v\r\n\r|\n",
         MS_OK, 200, "hello world", 0},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", MS_OK, 200, "", 0},
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-|Length: 2\r\n\r\nab", MS_OK,
         201, "ab", 0},
        {"HTTP/1.0 200 OK\r\n\r\nuntil| close", MS_OK, 200, "until close", 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef", MS_OK, 200, "abc", 0},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", MS_EUNAVAILABLE, 0, NULL,
         0},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", MS_EUNAVAILABLE, 0, NULL,
         0},
        {"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", MS_EUNAVAILABLE, 0, NULL, 0},
        {"SSH-2.0-OpenSSH_9.2\r\n\r\n", MS_EUNAVAILABLE, 0, NULL, 0},
        /* body_max: a body over the request's bound is refused, chunked or not. */
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n "
         "world\r\n0\r\n\r\n",
         MS_ENOMEM, 0, NULL, 8},
        {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", MS_ENOMEM, 0, NULL, 2},
        {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", MS_OK, 200, "abc", 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char url[128];
        pid_t pid = raw_answer(cases[i].answer, url, sizeof url);
        msi_httpc_req rq = {0};
        rq.url = url;
        rq.deadline_ms = msi_now_ms() + 5000;
        rq.body_max = cases[i].body_max;
        msi_httpc_resp rs;
        msi_err err = {{0}};
        ms_status st = msi_httpc_do(&rq, &rs, &err);
        if (st != cases[i].st)
            fail_msg("answer %zu: %s (%s), wanted %s", i, ms_status_name(st), err.msg,
                     ms_status_name(cases[i].st));
        if (st == MS_OK) {
            assert_int_equal(rs.status, cases[i].status);
            assert_int_equal(rs.len, strlen(cases[i].body));
            assert_string_equal(rs.body, cases[i].body);
        }
        assert_int_equal(rs.sent, 0);
        msi_httpc_thread_release(); /* no connection kept for the next case */
        int wst;
        waitpid(pid, &wst, 0);
    }
}

static void
test_http_parse_unescape(void **state)
{
    (void)state;
    char s[64];
    int nul = 0;
    snprintf(s, sizeof s, "%%41%%2fb+c%%zz%%4");
    size_t n = msi_http_unescape(s, strlen(s), 1, &nul);
    assert_int_equal(n, strlen("A/b c%zz%4"));
    assert_memory_equal(s, "A/b c%zz%4", n);
    assert_false(nul);
    snprintf(s, sizeof s, "a+b%%20");
    n = msi_http_unescape(s, strlen(s), 0, &nul);
    assert_memory_equal(s, "a+b ", n);
    snprintf(s, sizeof s, "x%%00y");
    n = msi_http_unescape(s, strlen(s), 0, &nul);
    assert_int_equal(n, 3);
    assert_true(nul);
}

/* ==========================================================================================
 * The server over raw sockets.
 * ======================================================================================== */

static int
raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void
raw_write(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        assert_true(k > 0);
        s += k;
        n -= (size_t)k;
    }
}

/* A client connection that reads replies one at a time (pipelined ones stay buffered). */
typedef struct rawc {
    int fd;
    int closed; /* the server closed (EOF or reset) */
    size_t len;
    char buf[1 << 16];
    /* the last reply */
    char head[4096];
    char body[1 << 15];
    size_t blen;
} rawc;

static rawc *
rawc_open(uint16_t port)
{
    rawc *c = calloc(1, sizeof *c);
    c->fd = raw_connect(port);
    assert_true(c->fd >= 0);
    return c;
}

static void
rawc_send(rawc *c, const char *s)
{
    raw_write(c->fd, s, strlen(s));
}

static void
rawc_free(rawc *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

/* Reads the next reply within timeout_ms; returns its status, or 0 (none: c->closed says
 * whether the server closed). no_body: the reply to a HEAD request. */
static int
rawc_reply(rawc *c, int timeout_ms, int no_body)
{
    int64_t end = msi_now_ms() + timeout_ms;
    for (;;) {
        c->buf[c->len] = '\0';
        char *eoh = strstr(c->buf, "\r\n\r\n");
        if (eoh) {
            size_t hl = (size_t)(eoh - c->buf) + 4, cl = 0;
            for (char *p = strchr(c->buf, '\n'); p && p < eoh; p = strchr(p + 1, '\n'))
                if (strncasecmp(p + 1, "Content-Length:", 15) == 0)
                    cl = strtoull(p + 16, NULL, 10);
            if (no_body)
                cl = 0;
            if (c->len >= hl + cl) {
                snprintf(c->head, sizeof c->head, "%.*s", (int)hl, c->buf);
                assert_true(cl < sizeof c->body);
                memcpy(c->body, c->buf + hl, cl);
                c->body[cl] = '\0';
                c->blen = cl;
                memmove(c->buf, c->buf + hl + cl, c->len - hl - cl);
                c->len -= hl + cl;
                int st = 0;
                sscanf(c->head, "HTTP/1.1 %d", &st);
                return st;
            }
        }
        int64_t left = end - msi_now_ms();
        if (left <= 0 || c->closed)
            return 0;
        struct pollfd p = {c->fd, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t k = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
        if (k <= 0)
            c->closed = 1;
        else
            c->len += (size_t)k;
    }
}

/* Whether the server closes c within timeout_ms (reading and dropping what comes). */
static int
rawc_wait_closed(rawc *c, int timeout_ms)
{
    int64_t end = msi_now_ms() + timeout_ms;
    while (!c->closed) {
        int64_t left = end - msi_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {c->fd, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t k = recv(c->fd, c->buf, sizeof c->buf - 1, 0);
        if (k <= 0)
            c->closed = 1;
    }
    return 1;
}

static const char *
json_code(const char *body)
{
    static char code[64];
    json_t *j = json_loads(body, 0, NULL);
    snprintf(code, sizeof code, "%s",
             json_string_value(json_object_get(json_object_get(j, "error"), "code"))
                 ? json_string_value(json_object_get(json_object_get(j, "error"), "code"))
                 : "");
    json_decref(j);
    return code;
}

static msi_http *
start_server(unsigned timeout_s, unsigned max_conns)
{
    msi_http_config cfg = MSI_HTTP_CONFIG_INIT;
    cfg.host_port = "127.0.0.1:0";
    cfg.routes = routes;
    cfg.nroutes = sizeof routes / sizeof *routes;
    cfg.timeout_s = timeout_s;
    cfg.max_conns = max_conns;
    cfg.name = "test2";
    msi_http *srv = NULL;
    msi_err err = {{0}};
    assert_int_equal(msi_http_start(&cfg, &srv, &err), MS_OK);
    return srv;
}

/* Three requests in one write are answered in order on the one connection. */
static void
test_http_server_pipelining(void **state)
{
    fixture *f = *state;
    rawc *c = rawc_open(msi_http_port(f->srv));
    rawc_send(c, "GET /ping?q=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /echo/p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                 "GET /ping?q=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 200);
    assert_non_null(strstr(c->body, "\"q\":\"1\""));
    assert_null(strcasestr(c->head, "Connection:"));
    assert_int_equal(rawc_reply(c, 5000, 0), 200);
    assert_non_null(strstr(c->body, "\"body\":\"abc\""));
    assert_int_equal(rawc_reply(c, 5000, 0), 200);
    assert_non_null(strstr(c->body, "\"q\":\"3\""));
    assert_non_null(strstr(c->head, "\r\nConnection: close\r\n"));
    assert_true(rawc_wait_closed(c, 5000));
    rawc_free(c);
}

/* Keep-alive by version and Connection; HEAD gets the head only. */
static void
test_http_server_keep_alive(void **state)
{
    fixture *f = *state;
    uint16_t port = msi_http_port(f->srv);
    /* HTTP/1.0: closed after the reply unless it asks for keep-alive. */
    rawc *c = rawc_open(port);
    rawc_send(c, "GET /ping HTTP/1.0\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 200);
    assert_non_null(strstr(c->head, "\r\nConnection: close\r\n"));
    assert_true(rawc_wait_closed(c, 5000));
    rawc_free(c);
    c = rawc_open(port);
    for (int i = 0; i < 2; i++) {
        rawc_send(c, "GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_int_equal(rawc_reply(c, 5000, 0), 200);
        assert_non_null(strstr(c->head, "\r\nConnection: keep-alive\r\n"));
    }
    rawc_free(c);
    /* HTTP/1.1: kept; HEAD: Content-Length of the body that was not sent; the next reply on
     * the connection is intact. */
    c = rawc_open(port);
    rawc_send(c, "HEAD /ping HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 1), 200);
    assert_non_null(strstr(c->head, "Content-Length: "));
    assert_null(strstr(c->head, "Content-Length: 0\r\n"));
    assert_non_null(strstr(c->head, "\r\nDate: "));
    rawc_send(c, "GET /ping?q=after-head HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 200);
    assert_non_null(strstr(c->body, "after-head"));
    rawc_free(c);
}

/* Expect: 100-continue: "100 Continue" only once the request is let through; a refusal
 * comes instead of it, and the body is never read. */
static void
test_http_server_continue(void **state)
{
    fixture *f = *state;
    uint16_t port = msi_http_port(f->srv);
    rawc *c = rawc_open(port);
    rawc_send(c, "POST /echo/e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                 "Content-Length: 5\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 100);
    rawc_send(c, "hello");
    assert_int_equal(rawc_reply(c, 5000, 0), 200);
    assert_non_null(strstr(c->body, "\"body\":\"hello\""));
    /* chunked too */
    rawc_send(c, "POST /echo/e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 100);
    rawc_send(c, "2\r\nhi\r\n0\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 200);
    assert_non_null(strstr(c->body, "\"body\":\"hi\""));
    rawc_free(c);
    /* The early hook refuses: 401 instead of 100, then the connection closes. */
    c = rawc_open(port);
    rawc_send(c, "POST /secret HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                 "Content-Length: 5000\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 401);
    assert_string_equal(json_code(c->body), "MS_EAUTH");
    assert_true(rawc_wait_closed(c, 5000));
    rawc_free(c);
    /* Over the route's limit: 413 instead of 100. */
    c = rawc_open(port);
    rawc_send(c, "POST /small/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                 "Content-Length: 5000\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 413);
    assert_true(rawc_wait_closed(c, 5000));
    rawc_free(c);
    /* The early hook lets it through: 100, then the handler. */
    c = rawc_open(port);
    rawc_send(c, "POST /secret HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                 "Authorization: Bearer tok-call\r\nContent-Length: 2\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 100);
    rawc_send(c, "{}");
    assert_int_equal(rawc_reply(c, 5000, 0), 200);
    rawc_free(c);
}

/* Chunked bodies, decoded paths and queries, refusals that keep the connection, framing
 * errors that close it, a peer leaving mid-request. */
static void
test_http_server_requests(void **state)
{
    fixture *f = *state;
    uint16_t port = msi_http_port(f->srv);
    rawc *c = rawc_open(port);
    rawc_send(c, "POST /echo/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nT: v\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 200);
    assert_non_null(strstr(c->body, "\"body\":\"abcdefg\""));
    assert_non_null(strstr(c->body, "\"len\":7"));
    /* %xx in the path, %xx and '+' in the query. */
    rawc_send(c, "GET /p%69ng?q=a+b%21&other HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 200);
    assert_non_null(strstr(c->body, "\"q\":\"a b!\""));
    /* absolute-form */
    rawc_send(c, "GET http://localhost/ping?q=abs HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 200);
    assert_non_null(strstr(c->body, "\"q\":\"abs\""));
    /* A decoded NUL, 404 and 405 with a small body in: refused, the connection goes on. */
    rawc_send(c, "GET /ping%00 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 400);
    rawc_send(c, "GET /ping?q=%00 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 400);
    rawc_send(c, "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
    assert_int_equal(rawc_reply(c, 5000, 0), 404);
    assert_string_equal(json_code(c->body), "MS_ENOTFOUND");
    rawc_send(c, "DELETE /ping HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 405);
    /* A chunked body past the limit: 413 at its end, and the framing still holds. */
    rawc_send(c, "POST /small/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[700];
    memset(chunk, 'y', sizeof chunk);
    for (int i = 0; i < 3; i++) {
        rawc_send(c, "2bc\r\n");
        raw_write(c->fd, chunk, sizeof chunk);
        rawc_send(c, "\r\n");
    }
    rawc_send(c, "0\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 413);
    rawc_send(c, "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 200);
    /* Broken framing: a JSON error, then the close. */
    rawc_send(c, "GET /ping HTTP/1.1\r\nBroken header\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 400);
    assert_string_equal(json_code(c->body), "MS_EPROTO");
    assert_non_null(strstr(c->head, "\r\nConnection: close\r\n"));
    assert_true(rawc_wait_closed(c, 5000));
    rawc_free(c);
    static const struct {
        const char *req;
        int status;
    } closing[] = {
        {"GET /ping HTTP/2.0\r\n\r\n", 505},
        {"POST /echo/x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
        {"POST /echo/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
        {"POST /echo/x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400},
        {"GET /ping HTTP/1.1\r\nExpect: everything\r\n\r\n", 417},
    };
    for (size_t i = 0; i < sizeof closing / sizeof *closing; i++) {
        c = rawc_open(port);
        rawc_send(c, closing[i].req);
        assert_int_equal(rawc_reply(c, 5000, 0), closing[i].status);
        assert_true(strstr(c->head, "application/json") != NULL);
        assert_true(rawc_wait_closed(c, 5000));
        rawc_free(c);
    }
    /* A peer that leaves mid-request, and one that resets: nothing else is disturbed. */
    c = rawc_open(port);
    rawc_send(c, "POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\"");
    rawc_free(c);
    c = rawc_open(port);
    rawc_send(c, "POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\"");
    struct linger l = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    rawc_free(c);
    assert_int_equal(request(f, "GET", "/ping", NULL, 0, NULL, NULL), 200);
}

/* The names of this process's threads, joined by ','. */
static void
thread_names(char *out, size_t size)
{
    out[0] = '\0';
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], name[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *fp = fopen(path, "r");
        if (fp) {
            if (fgets(name, sizeof name, fp))
                name[strcspn(name, "\n")] = '\0';
            fclose(fp);
        }
        size_t n = strlen(out);
        snprintf(out + n, size - n, "%s,", name);
    }
    closedir(d);
}

/* timeout_s bounds an idle connection and a whole request (a trickle gets 408). */
static void
test_http_server_timeouts(void **state)
{
    (void)state;
    msi_http *srv = start_server(1, 0);
    uint16_t port = msi_http_port(srv);
    /* Idle: closed after about a second. */
    int64_t t0 = msi_now_ms();
    rawc *idle = rawc_open(port);
    assert_true(rawc_wait_closed(idle, 5000));
    int64_t idle_ms = msi_now_ms() - t0;
    rawc_free(idle);
    /* A byte every 100 ms never lets the connection idle, but the request must be complete
     * within a second of its first byte. */
    rawc *c = rawc_open(port);
    rawc_send(c, "GET /ping HTTP/1.1\r\nX-Slow: ");
    t0 = msi_now_ms();
    int status = 0;
    while (msi_now_ms() - t0 < 5000 && !status && !c->closed) {
        if (send(c->fd, "a", 1, MSG_NOSIGNAL) != 1)
            break;
        status = rawc_reply(c, 100, 0);
    }
    if (!status)
        status = rawc_reply(c, 2000, 0);
    int64_t slow_ms = msi_now_ms() - t0;
    printf("timeouts: idle closed after %lld ms, trickle answered %d after %lld ms\n",
           (long long)idle_ms, status, (long long)slow_ms);
    assert_int_equal(status, 408);
    assert_string_equal(json_code(c->body), "MS_ETIMEDOUT");
    assert_true(rawc_wait_closed(c, 3000));
    assert_true(idle_ms >= 900 && idle_ms < 3000);
    assert_true(slow_ms >= 900 && slow_ms < 3000);
    rawc_free(c);
    msi_http_stop(srv);
}

/* max_conns: past it a connection is refused at once (503 or a close); the count frees as
 * connections end. Threads are named. */
static void
test_http_server_max_conns(void **state)
{
    (void)state;
    msi_http *srv = start_server(0, 2);
    uint16_t port = msi_http_port(srv);
    rawc *a = rawc_open(port), *b = rawc_open(port);
    rawc_send(a, "GET /ping HTTP/1.1\r\n\r\n");
    assert_int_equal(rawc_reply(a, 5000, 0), 200);
    rawc_send(b, "GET /ping HTTP/1.1\r\n\r\n");
    assert_int_equal(rawc_reply(b, 5000, 0), 200);
    char names[4096];
    thread_names(names, sizeof names);
    assert_non_null(strstr(names, "ms-accept,"));
    assert_non_null(strstr(names, "ms-http,"));
    rawc *x = rawc_open(port);
    int st = rawc_reply(x, 5000, 0);
    assert_true(st == 503 || (st == 0 && x->closed));
    if (st == 503)
        assert_string_equal(json_code(x->body), "MS_EUNAVAILABLE");
    rawc_free(x);
    /* One ends: a new connection is served again (polled: its thread ends on its own). */
    rawc_free(a);
    int served = 0;
    for (int64_t end = msi_now_ms() + 5000; !served && msi_now_ms() < end;) {
        rawc *y = rawc_open(port);
        rawc_send(y, "GET /ping HTTP/1.1\r\n\r\n");
        served = rawc_reply(y, 1000, 0) == 200;
        rawc_free(y);
    }
    assert_true(served);
    rawc_free(b);
    msi_http_stop(srv);
}

/* Quiesce: new connections are refused (ECONNREFUSED), open ones are still served. */
static void
test_http_server_quiesce(void **state)
{
    (void)state;
    msi_http *srv = start_server(0, 0);
    uint16_t port = msi_http_port(srv);
    rawc *c = rawc_open(port);
    msi_http_quiesce(srv);
    msi_http_quiesce(srv); /* idempotent */
    assert_int_equal(raw_connect(port), -1);
    assert_int_equal(errno, ECONNREFUSED);
    rawc_send(c, "GET /ping HTTP/1.1\r\n\r\n");
    assert_int_equal(rawc_reply(c, 5000, 0), 200);
    rawc_free(c);
    msi_http_stop(srv);
}

/* Stop right after start, and stop with connections in every state: idle, a half head, a
 * half body, nothing sent yet. It must not wait for their timeouts (10 s). */
static void
test_http_server_stop_open(void **state)
{
    (void)state;
    msi_http_stop(start_server(0, 0));
    msi_http *srv = start_server(0, 0);
    uint16_t port = msi_http_port(srv);
    rawc *c[4];
    for (int i = 0; i < 4; i++)
        c[i] = rawc_open(port);
    rawc_send(c[0], "GET /ping HTTP/1.1\r\n\r\n");
    assert_int_equal(rawc_reply(c[0], 5000, 0), 200);
    rawc_send(c[1], "GET /pi");
    rawc_send(c[2], "POST /echo/x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    /* Wait until the server holds the half requests (its active count is one for c[2]). */
    for (int64_t end = msi_now_ms() + 5000; msi_http_active(srv) < 1 && msi_now_ms() < end;) {
        struct pollfd p = {-1, 0, 0};
        poll(&p, 0, 5);
    }
    assert_int_equal(msi_http_active(srv), 1);
    int64_t t0 = msi_now_ms();
    msi_http_stop(srv);
    int64_t ms = msi_now_ms() - t0;
    printf("stop with 4 open connections: %lld ms\n", (long long)ms);
    assert_true(ms < 2000);
    for (int i = 0; i < 4; i++) {
        assert_true(rawc_wait_closed(c[i], 2000));
        rawc_free(c[i]);
    }
}

static void *
stopper(void *arg)
{
    msi_http_stop(arg);
    return NULL;
}

/* Stop while a handler runs: no new connection, idle ones closed, the handler finishes and
 * its reply is sent (with Connection: close), then stop returns. */
static void
test_http_server_stop_in_handler(void **state)
{
    (void)state;
    msi_http *srv = start_server(0, 0);
    uint16_t port = msi_http_port(srv);
    pthread_mutex_lock(&blk_mu);
    blk_entered = blk_release = 0;
    pthread_mutex_unlock(&blk_mu);
    rawc *idle = rawc_open(port);
    rawc_send(idle, "GET /ping HTTP/1.1\r\n\r\n");
    assert_int_equal(rawc_reply(idle, 5000, 0), 200);
    rawc *busy = rawc_open(port);
    rawc_send(busy, "GET /block HTTP/1.1\r\n\r\n");
    pthread_mutex_lock(&blk_mu);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    while (!blk_entered && pthread_cond_timedwait(&blk_cv, &blk_mu, &ts) == 0) {
    }
    pthread_mutex_unlock(&blk_mu);
    assert_int_equal(blk_entered, 1);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stopper, srv), 0);
    /* The stop has begun once new connections are refused and the idle one is closed. */
    int refused = 0;
    for (int64_t end = msi_now_ms() + 5000; !refused && msi_now_ms() < end;) {
        int fd = raw_connect(port);
        if (fd < 0)
            refused = 1;
        else
            close(fd);
    }
    assert_true(refused);
    assert_true(rawc_wait_closed(idle, 5000));
    /* The handler still holds the reply (no answer yet), then is released. */
    assert_int_equal(rawc_reply(busy, 200, 0), 0);
    assert_false(busy->closed);
    pthread_mutex_lock(&blk_mu);
    blk_release = 1;
    pthread_cond_broadcast(&blk_cv);
    pthread_mutex_unlock(&blk_mu);
    assert_int_equal(rawc_reply(busy, 5000, 0), 200);
    assert_non_null(strstr(busy->body, "released"));
    assert_non_null(strstr(busy->head, "\r\nConnection: close\r\n"));
    assert_true(rawc_wait_closed(busy, 5000));
    pthread_join(t, NULL);
    rawc_free(idle);
    rawc_free(busy);
}

/* Clients hammering a server while it is stopped: each request ends in a whole reply or a
 * closed connection (never a cut or garbled one), and stop returns promptly. */
typedef struct hammer {
    uint16_t port;
    _Atomic int *go;
    _Atomic long *done;
    int bad; /* replies that were neither whole nor absent */
} hammer;

static void *
hammer_main(void *arg)
{
    hammer *hm = arg;
    while (*hm->go) {
        int fd = raw_connect(hm->port);
        if (fd < 0)
            break; /* refused: the server stopped accepting */
        rawc *c = calloc(1, sizeof *c);
        c->fd = fd;
        for (int i = 0; i < 50 && *hm->go && !c->closed; i++) {
            const char *req = i % 2 ? "GET /ping?q=h HTTP/1.1\r\n\r\n"
                                    : "POST /echo/h HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
            if (send(c->fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
                break;
            int st = rawc_reply(c, 5000, 0);
            if (st == 200) {
                (*hm->done)++;
                continue;
            }
            if (st != 0 || !c->closed)
                hm->bad++;
            break;
        }
        rawc_free(c);
    }
    return NULL;
}

static void
test_http_server_stop_under_load(void **state)
{
    (void)state;
    for (int round = 0; round < 10; round++) {
        msi_http *srv = start_server(0, 0);
        _Atomic int go = 1;
        _Atomic long done = 0;
        hammer hm[4];
        pthread_t t[4];
        for (int i = 0; i < 4; i++) {
            hm[i] = (hammer){msi_http_port(srv), &go, &done, 0};
            assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &hm[i]), 0);
        }
        /* Stop once the clients are well under way (a count, not a time). */
        for (int64_t end = msi_now_ms() + 10000; done < 200 && msi_now_ms() < end;) {
            struct pollfd p = {-1, 0, 0};
            poll(&p, 0, 1);
        }
        assert_true(done >= 200);
        int64_t t0 = msi_now_ms();
        msi_http_stop(srv);
        int64_t ms = msi_now_ms() - t0;
        go = 0;
        for (int i = 0; i < 4; i++) {
            pthread_join(t[i], NULL);
            assert_int_equal(hm[i].bad, 0);
        }
        assert_true(ms < 2000);
    }
}

/* msi_httpc_header: fields of an answer's head by name, trimmed, bounded. */
static void
test_httpc_header_fields(void **state)
{
    (void)state;
    static const char head[] = "HTTP/1.1 201 Created\r\n"
                               "Content-Type: application/json\r\n"
                               "etag:   \"17\"  \r\n"
                               "Location: /v1/objects/a/b/c\r\n"
                               "X-Ctl: a\tb\r\n"
                               "Location: /second\r\n"
                               "\r\n";
    msi_httpc_resp r = {0};
    char out[64];
    assert_int_equal(msi_httpc_header(&r, "ETag", out, sizeof out), -1); /* no answer */
    r.head = head;
    r.head_len = strlen(head);
    assert_int_equal(msi_httpc_header(&r, "ETag", out, sizeof out), 0);
    assert_string_equal(out, "\"17\"");
    assert_int_equal(msi_httpc_header(&r, "location", out, sizeof out), 0);
    assert_string_equal(out, "/v1/objects/a/b/c"); /* the first of two */
    assert_int_equal(msi_httpc_header(&r, "Locatio", out, sizeof out), -1);
    assert_int_equal(msi_httpc_header(&r, "HTTP/1.1 201 Created", out, sizeof out), -1);
    assert_int_equal(msi_httpc_header(&r, "X-Ctl", out, sizeof out), -1); /* a control char */
    assert_int_equal(msi_httpc_header(&r, "ETag", out, 4), -1);           /* does not fit */
    assert_int_equal(msi_httpc_header(&r, "ETag", out, 5), 0);
    r.head_len = strlen("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n");
    assert_int_equal(msi_httpc_header(&r, "ETag", out, sizeof out), -1); /* past head_len */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_routing),
        cmocka_unit_test(test_http_body_limit),
        cmocka_unit_test(test_http_body_limit_chunked),
        cmocka_unit_test(test_http_large_bodies),
        cmocka_unit_test(test_http_header_limit),
        cmocka_unit_test(test_http_bearer),
        cmocka_unit_test(test_http_retry_after),
        cmocka_unit_test(test_http_client_errors),
        cmocka_unit_test(test_http_client_sent_then_lost),
        cmocka_unit_test(test_http_client_status_map),
        cmocka_unit_test(test_http_unix_peer_uid),
        cmocka_unit_test(test_http_peer_uid_tcp),
        cmocka_unit_test(test_http_quiesce_refuses),
        cmocka_unit_test(test_http_parse_good),
        cmocka_unit_test(test_http_parse_malformed),
        cmocka_unit_test(test_http_parse_limits),
        cmocka_unit_test(test_http_parse_keep_alive),
        cmocka_unit_test(test_http_parse_pipelined),
        cmocka_unit_test(test_http_parse_chunked),
        cmocka_unit_test(test_http_parse_unescape),
        cmocka_unit_test(test_http_parse_response),
        cmocka_unit_test(test_http_client_responses),
        cmocka_unit_test(test_http_server_pipelining),
        cmocka_unit_test(test_http_server_keep_alive),
        cmocka_unit_test(test_http_server_continue),
        cmocka_unit_test(test_http_server_requests),
        cmocka_unit_test(test_http_server_timeouts),
        cmocka_unit_test(test_http_server_max_conns),
        cmocka_unit_test(test_http_server_quiesce),
        cmocka_unit_test(test_http_server_stop_open),
        cmocka_unit_test(test_http_server_stop_in_handler),
        cmocka_unit_test(test_http_server_stop_under_load),
        cmocka_unit_test(test_httpc_header_fields),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
