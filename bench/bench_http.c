/*
 * bench_http.c: the transport ms uses, without ms. A libmicrohttpd server that answers
 * POST /echo with the request's body, and a libcurl client with one reused easy handle per
 * connection (keep-alive, TCP_NODELAY) that posts {"n":N,"s":"..."} as JSON and checks
 * that the same bytes come back. No JSON parsing on either side: this row is the HTTP
 * transport alone, what ms's call path is built on.
 *
 *   bench_http server --port-file F [--mhd tpc|epoll] [--max-seconds S]
 *       tpc:   a thread per connection (what src/net/http.c uses)
 *       epoll: an epoll thread pool of nproc threads (libmicrohttpd's other mode)
 *   bench_http client --target 127.0.0.1:PORT [--latency|--throughput] [bench options]
 */
#include "bench.h"

#include <curl/curl.h>
#include <microhttpd.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BODY_MAX 1024

#if MHD_VERSION < 0x00097002
typedef int mhd_result;
#else
typedef enum MHD_Result mhd_result;
#endif

/* ------------------------------------------------------------------------------------------
 * Server.
 * ---------------------------------------------------------------------------------------- */
typedef struct req {
    size_t len;
    int too_big;
    char body[BODY_MAX];
} req;

static mhd_result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_size, void **ctx)
{
    (void)cls;
    (void)version;
    req *r = *ctx;
    if (!r) {
        if (!(r = malloc(sizeof *r)))
            return MHD_NO;
        r->len = 0;
        r->too_big = 0;
        *ctx = r;
        return MHD_YES;
    }
    if (*upload_size) {
        if (r->len + *upload_size > BODY_MAX)
            r->too_big = 1;
        else
            memcpy(r->body + r->len, upload, *upload_size);
        r->len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    unsigned status = MHD_HTTP_OK;
    if (strcmp(method, "POST") != 0 || strcmp(url, "/echo") != 0)
        status = MHD_HTTP_NOT_FOUND;
    else if (r->too_big)
        status = 413;
    struct MHD_Response *resp = MHD_create_response_from_buffer(status == MHD_HTTP_OK ? r->len : 0,
                                                                r->body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    mhd_result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_RequestTerminationCode t)
{
    (void)cls;
    (void)c;
    (void)t;
    free(*ctx);
    *ctx = NULL;
}

static const char *mhd_mode = "tpc"; /* --mhd */

static int
http_server_opt(const char *opt, const char *val)
{
    if (strcmp(opt, "--mhd") != 0)
        return 0;
    if (strcmp(val, "tpc") != 0 && strcmp(val, "epoll") != 0)
        return -1;
    mhd_mode = val;
    return 1;
}

static int
http_serve(const bench_server *s)
{
    struct MHD_Daemon *d;
    if (strcmp(mhd_mode, "tpc") == 0) {
        d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD |
                                 MHD_USE_ITC | MHD_USE_ERROR_LOG,
                             0, NULL, NULL, on_request, NULL, MHD_OPTION_LISTEN_SOCKET,
                             (MHD_socket)s->fd, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                             MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    } else {
        long np = sysconf(_SC_NPROCESSORS_ONLN);
        d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0,
                             NULL, NULL, on_request, NULL, MHD_OPTION_LISTEN_SOCKET,
                             (MHD_socket)s->fd, MHD_OPTION_THREAD_POOL_SIZE,
                             (unsigned)(np > 0 ? np : 1), MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                             MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    }
    if (!d) {
        fprintf(stderr, "bench_http: cannot start libmicrohttpd (%s)\n", mhd_mode);
        return 1;
    }
    if (bench_write_port_file(s->port_file, s->port) != 0)
        return 1;
    for (;;) /* until SIGTERM or the lifetime alarm */
        pause();
}

/* ------------------------------------------------------------------------------------------
 * Client.
 * ---------------------------------------------------------------------------------------- */
typedef struct conn {
    CURL *h;
    struct curl_slist *headers;
    char url[128];
    char body[BODY_MAX];
    char reply[BODY_MAX];
    size_t reply_len;
    int overflow;
} conn;

static size_t
on_write(char *data, size_t size, size_t n, void *p)
{
    conn *c = p;
    size_t len = size * n;
    if (c->reply_len + len > sizeof c->reply) {
        c->overflow = 1;
        return len;
    }
    memcpy(c->reply + c->reply_len, data, len);
    c->reply_len += len;
    return len;
}

static int http_call(void *p, int64_t n, const char *s, char *err, size_t errlen);
static void http_close(void *p);

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void
curl_global(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void *
http_open(const char *target, char *err, size_t errlen)
{
    pthread_once(&curl_once, curl_global);
    conn *c = calloc(1, sizeof *c);
    if (!c || !(c->h = curl_easy_init())) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(c->url, sizeof c->url, "http://%s/echo", target);
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    c->headers = curl_slist_append(c->headers, "Expect:");
    curl_easy_setopt(c->h, CURLOPT_URL, c->url);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->h, CURLOPT_POST, 1L);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c->h, CURLOPT_PROTOCOLS_STR, "http");
    /* Connect now, so that throughput runs start with every connection open. */
    char s[BENCH_STR_LEN + 1];
    bench_payload(0, s);
    if (http_call(c, 0, s, err, errlen) != 0) {
        http_close(c);
        return NULL;
    }
    return c;
}

static int
http_call(void *p, int64_t n, const char *s, char *err, size_t errlen)
{
    conn *c = p;
    int len = snprintf(c->body, sizeof c->body, "{\"n\":%" PRId64 ",\"s\":\"%s\"}", n, s);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE, (long)len);
    c->reply_len = 0;
    c->overflow = 0;
    CURLcode rc = curl_easy_perform(c->h);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "curl: %s", curl_easy_strerror(rc));
        return -1;
    }
    long code = 0;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200 || c->overflow || c->reply_len != (size_t)len ||
        memcmp(c->reply, c->body, (size_t)len) != 0) {
        snprintf(err, errlen, "echo mismatch (HTTP %ld, %zu bytes)", code, c->reply_len);
        return -1;
    }
    return 0;
}

static void
http_close(void *p)
{
    conn *c = p;
    if (!c)
        return;
    curl_easy_cleanup(c->h);
    curl_slist_free_all(c->headers);
    free(c);
}

int
main(int argc, char **argv)
{
    static const bench_ops ops = {http_open, http_call, http_close};
    static const bench_program prog = {.name = "bench_http",
                                       .label = "http",
                                       .ops = &ops,
                                       .serve = http_serve,
                                       .server_opt = http_server_opt,
                                       .server_usage = "[--mhd tpc|epoll]"};
    return bench_main(argc, argv, &prog);
}
