/*
 * httpc.c: the HTTP client over libcurl (see httpc.h for the contract).
 *
 * Design notes
 * - One `handle` per thread behind a pthread key: a curl easy handle (its connection cache
 *   is the keep-alive pool), a response buffer and a request-text buffer. The options that
 *   never change are set once when the handle is made; a request sets only its own.
 * - Header lists are built on the stack from struct curl_slist nodes: libcurl only reads
 *   the list during the transfer, so no node is allocated per request.
 * - The body is served by read_cb from memory; read_cb marks `sent`. seek_cb rewinds for
 *   libcurl's resend, unless the request said no_resend: then it refuses, libcurl fails
 *   with CURLE_SEND_FAIL_REWIND, and the caller learns the call is in doubt.
 * - After fork() the child's inherited handle holds the parent's sockets: a fork counter
 *   (pthread_atfork) makes the next request in the child drop it and start afresh.
 */
#include "httpc.h"
#include "codec.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define MAX_HEADERS 16
#define MAX_CONNS 32
#define IDLE_REUSE_S 5
#define CONNECT_TIMEOUT_MS 3000
#define KEEP_BUF_MAX (256u << 10)

typedef struct handle {
    CURL *easy;
    unsigned long fork_gen;
    char *rbuf; /* response body */
    size_t rlen, rcap;
    int rfail;  /* response buffer could not grow */
    char *wbuf; /* request text (msi_httpc_dump) */
    size_t wcap;
    /* the body being sent */
    const char *body;
    size_t body_len, body_pos;
    int sent, no_resend, resend_refused;
    char errbuf[CURL_ERROR_SIZE];
} handle;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t key;
static int global_ok;
static _Atomic unsigned long fork_gen;

static void
handle_free(handle *h)
{
    if (!h)
        return;
    if (h->easy)
        curl_easy_cleanup(h->easy);
    free(h->rbuf);
    free(h->wbuf);
    free(h);
}

static void
key_destroy(void *p)
{
    handle_free(p);
}

static void
after_fork_child(void)
{
    fork_gen++;
}

static void
global_init(void)
{
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
        return;
    if (pthread_key_create(&key, key_destroy) != 0)
        return;
    pthread_atfork(NULL, NULL, after_fork_child);
    global_ok = 1;
}

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    handle *h = userdata;
    size_t n = size * nmemb;
    if (h->rlen + n + 1 > h->rcap) {
        size_t cap = h->rcap ? h->rcap : 4096;
        while (cap < h->rlen + n + 1)
            cap *= 2;
        char *b = realloc(h->rbuf, cap);
        if (!b) {
            h->rfail = 1;
            return 0; /* aborts the transfer */
        }
        h->rbuf = b;
        h->rcap = cap;
    }
    memcpy(h->rbuf + h->rlen, ptr, n);
    h->rlen += n;
    return n;
}

static size_t
read_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
    handle *h = userdata;
    size_t n = size * nitems;
    size_t left = h->body_len - h->body_pos;
    if (n > left)
        n = left;
    if (n) {
        memcpy(buf, h->body + h->body_pos, n);
        h->body_pos += n;
        h->sent = 1;
    }
    return n;
}

static int
seek_cb(void *userdata, curl_off_t offset, int origin)
{
    handle *h = userdata;
    if (h->no_resend && h->sent) {
        h->resend_refused = 1;
        return CURL_SEEKFUNC_FAIL;
    }
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > h->body_len)
        return CURL_SEEKFUNC_CANTSEEK;
    h->body_pos = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static handle *
get_handle(msi_err *err)
{
    pthread_once(&once, global_init);
    if (!global_ok) {
        msi_errf(err, MS_EIO, "libcurl failed to initialise");
        return NULL;
    }
    handle *h = pthread_getspecific(key);
    if (h && h->fork_gen != fork_gen) {
        handle_free(h);
        h = NULL;
        pthread_setspecific(key, NULL);
    }
    if (h)
        return h;
    h = calloc(1, sizeof *h);
    if (!h || !(h->easy = curl_easy_init())) {
        free(h);
        msi_errf(err, MS_ENOMEM, "out of memory");
        return NULL;
    }
    h->fork_gen = fork_gen;
    CURL *e = h->easy;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_MAXCONNECTS, (long)MAX_CONNS);
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, (long)IDLE_REUSE_S);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(e, CURLOPT_READDATA, h);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_cb);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, h);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "libms/" MS_VERSION_STRING);
    if (pthread_setspecific(key, h) != 0) {
        handle_free(h);
        msi_errf(err, MS_ENOMEM, "out of memory");
        return NULL;
    }
    return h;
}

void
msi_httpc_thread_release(void)
{
    pthread_once(&once, global_init);
    if (!global_ok)
        return;
    handle *h = pthread_getspecific(key);
    pthread_setspecific(key, NULL);
    handle_free(h);
}

const char *
msi_httpc_dump(const json_t *j, size_t *len)
{
    msi_err err;
    handle *h = get_handle(&err);
    if (!h)
        return NULL;
    size_t n = json_dumpb(j, h->wbuf, h->wcap, JSON_COMPACT | JSON_ENCODE_ANY);
    if (n == 0)
        return NULL;
    if (n >= h->wcap) { /* did not fit (or no room for a NUL): grow and redo */
        size_t cap = n + 1 < 1024 ? 1024 : n + 1;
        char *b = realloc(h->wbuf, cap);
        if (!b)
            return NULL;
        h->wbuf = b;
        h->wcap = cap;
        n = json_dumpb(j, h->wbuf, h->wcap, JSON_COMPACT | JSON_ENCODE_ANY);
        if (n == 0 || n >= h->wcap)
            return NULL;
    }
    h->wbuf[n] = '\0';
    *len = n;
    return h->wbuf;
}

static ms_status
classify(CURLcode cc, const handle *h, const msi_httpc_req *req, msi_err *err)
{
    const char *what = h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc);
    switch (cc) {
    case CURLE_OK:
        return MS_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return msi_errf(err, MS_ETIMEDOUT, "%s: deadline passed (%s)", req->url, what);
    case CURLE_OUT_OF_MEMORY:
        return msi_errf(err, MS_ENOMEM, "%s: out of memory", req->url);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return msi_errf(err, MS_EIO, "%s: %s", req->url, what);
    case CURLE_WRITE_ERROR:
        if (h->rfail)
            return msi_errf(err, MS_ENOMEM, "%s: out of memory for the response", req->url);
        break;
    default:
        break;
    }
    /* Once a body byte has left, whatever libcurl did next (it retries a request whose
     * reused connection died, on a new connection, which may then be refused) the request
     * may have been received. */
    if (h->sent && cc == CURLE_SEND_FAIL_REWIND)
        return msi_errf(err, MS_EINDOUBT,
                        "%s: connection lost after the request was sent; not resent (%s)", req->url,
                        what);
    if (h->sent)
        return msi_errf(err, MS_EINDOUBT, "%s: connection failed after the request was sent (%s)",
                        req->url, what);
    /* Nothing left: no connection (refused, unreachable), or it failed before the body. */
    return msi_errf(err, MS_EUNAVAILABLE, "%s: %s", req->url, what);
}

ms_status
msi_httpc_do(const msi_httpc_req *req, msi_httpc_resp *resp, msi_err *err)
{
    memset(resp, 0, sizeof *resp);
    resp->retry_after_s = -1;
    resp->body = "";
    handle *h = get_handle(err);
    if (!h)
        return MS_ENOMEM;

    long timeout = 0;
    if (req->deadline_ms && req->deadline_ms != INT64_MAX) {
        int64_t left = req->deadline_ms - msi_now_ms();
        if (left <= 0)
            return msi_errf(err, MS_ETIMEDOUT, "%s: deadline passed before sending", req->url);
        timeout = left > LONG_MAX ? LONG_MAX : (long)left;
    }

    /* Header list on the stack: libcurl reads it during the transfer only. */
    struct curl_slist nodes[MAX_HEADERS + 3];
    char auth[320];
    size_t nn = 0;
    if (req->bearer) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", req->bearer);
        nodes[nn++].data = auth;
    }
    if (req->body) {
        nodes[nn++].data = (char *)"Content-Type: application/json";
    }
    for (size_t i = 0; req->headers && req->headers[i] && i < MAX_HEADERS; i++)
        nodes[nn++].data = (char *)(uintptr_t)req->headers[i];
    for (size_t i = 0; i < nn; i++)
        nodes[i].next = i + 1 < nn ? &nodes[i + 1] : NULL;

    CURL *e = h->easy;
    if (h->rcap > KEEP_BUF_MAX) { /* do not keep a huge response buffer per thread */
        free(h->rbuf);
        h->rbuf = NULL;
        h->rcap = 0;
    }
    h->rlen = 0;
    h->rfail = 0;
    h->errbuf[0] = '\0';
    h->body = req->body;
    h->body_len = req->body ? req->body_len : 0;
    h->body_pos = 0;
    h->sent = 0;
    h->no_resend = req->no_resend;
    h->resend_refused = 0;

    const char *method = req->method ? req->method : req->body ? "POST" : "GET";
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, req->unix_path);
    if (req->body) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
                     strcmp(method, req->body ? "POST" : "GET") == 0 ? NULL : method);
    curl_easy_setopt(e, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, nn ? nodes : NULL);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout && timeout < CONNECT_TIMEOUT_MS ? timeout : (long)CONNECT_TIMEOUT_MS);

    CURLcode cc = curl_easy_perform(e);
    /* Nothing of this request may outlive the call. */
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    h->body = NULL;

    resp->sent = h->sent;
    resp->resend_refused = h->resend_refused;
    resp->curl_code = (int)cc;
    ms_status st = classify(cc, h, req, err);
    if (h->resend_refused && st != MS_OK)
        st = msi_errf(err, MS_EINDOUBT,
                      "%s: connection lost after the request was sent; not resent", req->url);
    if (st == MS_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->status);
        if (h->rbuf) {
            h->rbuf[h->rlen] = '\0';
            resp->body = h->rbuf;
        }
        resp->len = h->rlen;
        struct curl_header *ra = NULL;
        if (curl_easy_header(e, "Retry-After", 0, CURLH_HEADER, -1, &ra) == CURLHE_OK && ra) {
            char *end;
            long s = strtol(ra->value, &end, 10);
            if (end != ra->value && s >= 0 && s < 86400)
                resp->retry_after_s = (int)s;
        }
    }
    return st;
}

ms_status
msi_httpc_json(const msi_httpc_req *req, json_t *body, msi_httpc_resp *resp, json_t **out,
               msi_err *err)
{
    msi_httpc_req r = *req;
    *out = NULL;
    r.body = NULL;
    r.body_len = 0;
    if (body) {
        r.body = msi_httpc_dump(body, &r.body_len);
        if (!r.body) {
            memset(resp, 0, sizeof *resp);
            resp->body = "";
            resp->retry_after_s = -1;
            return msi_errf(err, MS_ENOMEM, "%s: cannot serialise the request", req->url);
        }
    }
    ms_status st = msi_httpc_do(&r, resp, err);
    if (st == MS_OK && resp->len) {
        msi_err perr = {{0}};
        *out = msi_json_parse(resp->body, resp->len, &perr);
    }
    return st;
}

const char *
msi_httpc_error_text(const msi_httpc_resp *resp, char *buf, size_t size)
{
    msi_err perr = {{0}};
    json_t *j = resp->len ? msi_json_parse(resp->body, resp->len, &perr) : NULL;
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    if (m)
        snprintf(buf, size, "%s", m);
    else if (resp->len)
        snprintf(buf, size, "HTTP %ld: %.*s", resp->status,
                 (int)(resp->len > 200 ? 200 : resp->len), resp->body);
    else
        snprintf(buf, size, "HTTP %ld", resp->status);
    json_decref(j);
    return buf;
}

static ms_status
status_of_http(long http)
{
    switch (http) {
    case 200:
        return MS_OK;
    case 400:
        return MS_EBADARGS;
    case 401:
        return MS_EAUTH;
    case 403:
        return MS_EFORBIDDEN;
    case 404:
        return MS_ENOTFOUND;
    case 409:
        return MS_ETXN_LOST;
    case 412:
        return MS_ESIGNATURE;
    case 413:
        return MS_ETOOBIG;
    case 421:
        return MS_EWRONGINSTANCE;
    case 422:
        return MS_EREUSED;
    case 429:
        return MS_EOVERLOADED;
    case 502:
        return MS_EPROTO;
    case 503:
        return MS_EUNAVAILABLE;
    case 504:
        return MS_ETIMEDOUT;
    default:
        return MS_EPROTO;
    }
}

ms_status
msi_httpc_error_status(const msi_httpc_resp *resp, int *app_code)
{
    if (app_code)
        *app_code = 0;
    msi_err perr = {{0}};
    json_t *j = resp->len ? msi_json_parse(resp->body, resp->len, &perr) : NULL;
    json_t *e = json_object_get(j, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    ms_status st = status_of_http(resp->status);
    if (code) {
#define X(name, num, http, text)                                                                   \
    if (strcmp(code, #name) == 0)                                                                  \
        st = name;
        MS_STATUS_LIST(X)
#undef X
    }
    json_t *ac = json_object_get(e, "app_code");
    if (app_code && json_is_integer(ac))
        *app_code = (int)json_integer_value(ac);
    json_decref(j);
    return st;
}
