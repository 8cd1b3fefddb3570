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
server_main(int argc, char **argv)
{
    const char *port_file = NULL;
    double max_s = 900;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port-file") == 0)
            port_file = argv[i + 1];
        else if (strcmp(argv[i], "--max-seconds") == 0)
            max_s = atof(argv[i + 1]);
    }
    if (!port_file) {
        fprintf(stderr, "bench_mst server: --port-file F [--max-seconds S]\n");
        return 2;
    }
    bench_server_lifetime(max_s);
    int port;
    int fd = bench_listen_loopback(128, &port);
    if (fd < 0)
        return 1;
    msi_http_config cfg = MSI_HTTP_CONFIG_INIT;
    cfg.listen_fd = fd;
    cfg.routes = routes;
    cfg.nroutes = sizeof routes / sizeof *routes;
    cfg.name = "bench";
    msi_http *h;
    msi_err err = {{0}};
    if (msi_http_start(&cfg, &h, &err) != MS_OK) {
        fprintf(stderr, "bench_mst: cannot start the server: %s\n", err.msg);
        return 1;
    }
    if (bench_write_port_file(port_file, port) != 0)
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
    if (argc >= 2 && strcmp(argv[1], "server") == 0)
        return server_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "client") == 0) {
        static const bench_ops ops = {mst_open, mst_call, mst_close};
        bench_opts o;
        bench_opts_init(&o);
        o.label = "mst";
        if (bench_parse_opts(argc, argv, 2, &o, NULL, NULL) != 0)
            return 2;
        int rc = bench_run_client(&ops, &o);
        msi_httpc_thread_release();
        return rc;
    }
    fprintf(stderr, "usage: bench_mst server --port-file F | client --target HOST:PORT ...\n");
    return 2;
}
