/* test_http.c: the HTTP server wrapper (http.c) and client (httpc.c) against each other:
 * routing, 404/405, the body limit (413 by Content-Length and for a chunked body), the
 * early hook, bearer tokens, query and headers, unix sockets with SO_PEERCRED, the
 * "sent" flag. */
#include "http.h"
#include "httpc.h"
#include "codec.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static const msi_http_route routes[] = {
    {"GET", "/ping", h_ping, NULL, 0, NULL},
    {"POST", "/echo/", h_echo, NULL, 0, NULL},
    {"POST", "/small/", h_echo, NULL, 1024, NULL},
    {"POST", "/secret", h_secret, NULL, 0, early_auth},
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

/* Headers over the limit (8 KiB by default) are refused by libmicrohttpd. */
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_routing),
        cmocka_unit_test(test_http_body_limit),
        cmocka_unit_test(test_http_body_limit_chunked),
        cmocka_unit_test(test_http_header_limit),
        cmocka_unit_test(test_http_bearer),
        cmocka_unit_test(test_http_retry_after),
        cmocka_unit_test(test_http_client_errors),
        cmocka_unit_test(test_http_client_sent_then_lost),
        cmocka_unit_test(test_http_unix_peer_uid),
        cmocka_unit_test(test_http_peer_uid_tcp),
        cmocka_unit_test(test_http_quiesce_refuses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
