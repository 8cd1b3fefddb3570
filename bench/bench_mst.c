/*
 * bench_mst.c: ms's own HTTP transport, without ms. The server is libms's HTTP server
 * (src/net/http.c) answering POST /echo with the request's body; the client is libms's
 * HTTP client (src/net/httpc.c: the calling thread's kept connection) posting
 * {"n":N,"s":"..."} as JSON and checking that the same bytes come back. No JSON parsing on
 * either side, no discovery, no deadlines, no dedupe: this row is what ms's call path is
 * built on, so "ms local mode / this row" is the cost of ms itself.
 *
 *   bench_mst server --port-file F [--max-seconds S]
 *   bench_mst client --target 127.0.0.1:PORT [--latency|--throughput] [bench options]
 *
 * In-tree only: it uses libms's internal headers (http.h, httpc.h).
 */
#include "bench.h"

#include "http.h"
#include "httpc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BODY_MAX 1024

/* ------------------------------------------------------------------------------------------
 * Server.
 * ---------------------------------------------------------------------------------------- */
static void
on_echo(msi_http_req *r, void *arg)
{
    (void)arg;
    size_t len;
    const char *body = msi_http_body(r, &len);
    msi_http_reply(r, 200, "application/json", body, len);
}

static const msi_http_route routes[] = {
    {"POST", "/echo", on_echo, NULL, BODY_MAX, NULL},
};

static int
mst_serve(const bench_server *s)
{
    msi_http_config cfg = MSI_HTTP_CONFIG_INIT;
    cfg.listen_fd = s->fd;
    cfg.routes = routes;
    cfg.nroutes = sizeof routes / sizeof *routes;
    cfg.name = "bench";
    msi_http *h;
    msi_err err = {{0}};
    if (msi_http_start(&cfg, &h, &err) != MS_OK) {
        fprintf(stderr, "bench_mst: cannot start the server: %s\n", err.msg);
        return 1;
    }
    if (bench_write_port_file(s->port_file, s->port) != 0)
        return 1;
    for (;;) /* until SIGTERM or the lifetime alarm */
        pause();
}

/* ------------------------------------------------------------------------------------------
 * Client. The connection itself belongs to the calling thread's msi_httpc client; a
 * `conn` only holds the URL and the body.
 * ---------------------------------------------------------------------------------------- */
typedef struct conn {
    char url[128];
    char body[BODY_MAX];
} conn;

static int mst_call(void *p, int64_t n, const char *s, char *err, size_t errlen);

static void *
mst_open(const char *target, char *err, size_t errlen)
{
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(c->url, sizeof c->url, "http://%s/echo", target);
    char s[BENCH_STR_LEN + 1];
    bench_payload(0, s);
    if (mst_call(c, 0, s, err, errlen) != 0) { /* the server answers */
        free(c);
        return NULL;
    }
    return c;
}

static int
mst_call(void *p, int64_t n, const char *s, char *err, size_t errlen)
{
    conn *c = p;
    int len = snprintf(c->body, sizeof c->body, "{\"n\":%" PRId64 ",\"s\":\"%s\"}", n, s);
    static const char *const hdrs[] = {"Content-Type: application/json", NULL};
    msi_httpc_req rq = {0};
    rq.method = "POST";
    rq.url = c->url;
    rq.headers = hdrs;
    rq.body = c->body;
    rq.body_len = (size_t)len;
    rq.deadline_ms = msi_now_ms() + 10000;
    msi_httpc_resp rs;
    msi_err e = {{0}};
    if (msi_httpc_do(&rq, &rs, &e) != MS_OK) {
        snprintf(err, errlen, "http: %s", e.msg);
        return -1;
    }
    if (rs.status != 200 || rs.len != (size_t)len || memcmp(rs.body, c->body, rs.len) != 0) {
        snprintf(err, errlen, "echo mismatch (HTTP %ld, %zu bytes)", rs.status, rs.len);
        return -1;
    }
    return 0;
}

static void
mst_close(void *p)
{
    free(p);
}

int
main(int argc, char **argv)
{
    static const bench_ops ops = {mst_open, mst_call, mst_close};
    static const bench_program prog = {.name = "bench_mst",
                                       .label = "mst",
                                       .ops = &ops,
                                       .serve = mst_serve,
                                       .client_done = msi_httpc_thread_release};
    return bench_main(argc, argv, &prog);
}
