/*
 * http.c: the HTTP server wrapper over libmicrohttpd (see http.h for the contract).
 *
 * Design notes
 * - One `conn` per connection (MHD_OPTION_NOTIFY_CONNECTION), holding the request being
 *   read and a body buffer reused by the connection's later requests. With
 *   MHD_USE_THREAD_PER_CONNECTION exactly one thread touches a conn, so it has no lock.
 * - libmicrohttpd calls the access handler several times per request:
 *     first call (headers in)  -> route, check Content-Length, run the early hook;
 *                                 a reply made here is queued at once (body never read)
 *     calls with data          -> append to the body, or discard once over the limit
 *     last call (no data)      -> run the handler, queue its reply
 *   A response can only be queued on the first or the last call (libmicrohttpd refuses it
 *   while the body is being read), which is why an oversized chunked body is discarded
 *   and answered at its end.
 * - Replies are built by the handler into req->resp and queued by the access handler, so
 *   handlers never see libmicrohttpd's calling rules.
 * - Listening sockets are created here (TCP or unix) with SOCK_CLOEXEC and handed to
 *   libmicrohttpd with MHD_OPTION_LISTEN_SOCKET, so a handed-over descriptor, a TCP port
 *   and a unix path are one code path.
 */
#include "http.h"
#include "codec.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#define DEFAULT_MAX_BODY (1u << 20)
#define DEFAULT_MAX_HEADER 8192u
#define DEFAULT_TIMEOUT_S 10u
#define DEFAULT_MAX_CONNS 1024u
#define MAX_EXTRA_HEADERS 8
#define HDR_SPACE 512
#define KEEP_BUF_MAX (256u << 10) /* a connection keeps a body buffer up to this size */

struct msi_http {
    struct MHD_Daemon *d;
    int fd;       /* listening socket */
    int quiesced; /* fd was taken back from libmicrohttpd: we close it */
    char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char addr[128];
    uint16_t port;
    const msi_http_route *routes;
    size_t nroutes;
    size_t max_body;
    size_t max_header;
    _Atomic long active; /* requests between their first call and on_completed */
    char name[32];
};

struct msi_http_req {
    struct MHD_Connection *c;
    struct conn *conn;
    const char *method;
    const char *path;
    const char *rest;
    const msi_http_route *route;
    size_t limit; /* body limit of this request */
    size_t len;   /* body bytes kept */
    int too_big;  /* body passed the limit: discarded */
    int started;  /* first call done */
    int64_t arrival_ms;
    /* the reply */
    struct MHD_Response *resp;
    int status;
    int replied;
    int nhdr;
    size_t hdr_used;
    char hdr[HDR_SPACE]; /* "name\0value\0" pairs */
};

struct conn {
    msi_http_req req;
    char *buf;
    size_t cap;
};

/* ---- listening sockets ---------------------------------------------------------------- */

static ms_status
split_host_port(const char *hp, char *host, size_t hsize, char *port, size_t psize, msi_err *err)
{
    const char *colon;
    const char *h = hp;
    size_t hlen;
    if (hp[0] == '[') {
        const char *end = strchr(hp, ']');
        if (!end || end[1] != ':')
            return msi_errf(err, MS_EINVAL, "bad address '%s' (want [v6]:port)", hp);
        h = hp + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(hp, ':');
        if (!colon)
            return msi_errf(err, MS_EINVAL, "bad address '%s' (want host:port)", hp);
        hlen = (size_t)(colon - hp);
    }
    if (hlen == 0 || hlen >= hsize || strlen(colon + 1) == 0 || strlen(colon + 1) >= psize)
        return msi_errf(err, MS_EINVAL, "bad address '%s' (want host:port)", hp);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memcpy(port, colon + 1, strlen(colon + 1) + 1);
    return MS_OK;
}

static ms_status
listen_tcp(const char *hp, int *fdp, msi_err *err)
{
    char host[256], port[16];
    ms_status st = split_host_port(hp, host, sizeof host, port, sizeof port, err);
    if (st != MS_OK)
        return st;
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0)
        return msi_errf(err, MS_EINVAL, "cannot resolve '%s': %s", hp, gai_strerror(rc));
    int fd = -1;
    st = MS_EIO;
    for (struct addrinfo *p = ai; p; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, p->ai_addr, p->ai_addrlen) == 0 && listen(fd, 512) == 0) {
            st = MS_OK;
            break;
        }
        msi_errf(err, MS_EIO, "cannot listen on %s: %s", hp, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (st == MS_OK)
        *fdp = fd;
    else if (!err || !err->msg[0])
        msi_errf(err, MS_EIO, "cannot listen on %s", hp);
    return st;
}

static ms_status
listen_unix(const char *path, int *fdp, msi_err *err)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path)
        return msi_errf(err, MS_EINVAL, "unix socket path too long: %s", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (!S_ISSOCK(sb.st_mode))
            return msi_errf(err, MS_EINVAL, "%s exists and is not a socket", path);
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return msi_errf(err, MS_EIO, "socket: %s", strerror(errno));
    /* No connection is possible before listen(), so chmod after bind leaves no window. */
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || chmod(path, 0600) != 0 ||
        listen(fd, 128) != 0) {
        msi_errf(err, MS_EIO, "cannot listen on %s: %s", path, strerror(errno));
        close(fd);
        return MS_EIO;
    }
    *fdp = fd;
    return MS_OK;
}

static void
describe_fd(msi_http *h)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    if (getsockname(h->fd, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        h->port = ntohs(in->sin_port);
        snprintf(h->addr, sizeof h->addr, "%s:%u", ip, (unsigned)h->port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        h->port = ntohs(in6->sin6_port);
        snprintf(h->addr, sizeof h->addr, "[%s]:%u", ip, (unsigned)h->port);
    } else if (ss.ss_family == AF_UNIX) {
        struct sockaddr_un *un = (struct sockaddr_un *)&ss;
        snprintf(h->addr, sizeof h->addr, "%s", un->sun_path);
    }
}

/* ---- requests ------------------------------------------------------------------------- */

static const msi_http_route *
match_route(msi_http *h, const char *method, const char *path, const char **rest,
            int *method_mismatch)
{
    *method_mismatch = 0;
    for (size_t i = 0; i < h->nroutes; i++) {
        const msi_http_route *rt = &h->routes[i];
        size_t n = strlen(rt->prefix);
        int hit;
        if (n && rt->prefix[n - 1] == '/') /* a prefix; "/" alone also matches "/" itself */
            hit = strncmp(path, rt->prefix, n) == 0 && (path[n] != '\0' || n == 1);
        else
            hit = strcmp(path, rt->prefix) == 0;
        if (!hit)
            continue;
        if (rt->method && strcmp(rt->method, method) != 0) {
            *method_mismatch = 1;
            continue;
        }
        *rest = n && rt->prefix[n - 1] == '/' ? path + n : path + strlen(path);
        return rt;
    }
    return NULL;
}

static int
reserve(struct conn *cs, size_t need)
{
    if (need <= cs->cap)
        return 0;
    size_t cap = cs->cap ? cs->cap : 1024;
    while (cap < need)
        cap *= 2;
    char *b = realloc(cs->buf, cap);
    if (!b)
        return -1;
    cs->buf = b;
    cs->cap = cap;
    return 0;
}

static enum MHD_Result
queue(msi_http_req *r)
{
    enum MHD_Result ok = MHD_NO;
    if (r->resp) {
        ok = MHD_queue_response(r->c, (unsigned)r->status, r->resp);
        MHD_destroy_response(r->resp);
        r->resp = NULL;
    }
    return ok;
}

static void
request_done(struct conn *cs)
{
    msi_http_req *r = &cs->req;
    if (r->resp) {
        MHD_destroy_response(r->resp);
        r->resp = NULL;
    }
    r->started = 0;
    if (cs->cap > KEEP_BUF_MAX) {
        free(cs->buf);
        cs->buf = NULL;
        cs->cap = 0;
    }
}

static enum MHD_Result
add_header_size(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
    return MHD_YES;
}

/* Size of the request line and headers as sent (near enough: the version is not kept). */
static size_t
header_size(struct MHD_Connection *c, const char *method, const char *url)
{
    size_t n = strlen(method) + strlen(url) + 12;
    MHD_get_connection_values(c, MHD_HEADER_KIND, add_header_size, &n);
    return n;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    msi_http *h = cls;
    (void)version;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn *cs = ci ? ci->socket_context : NULL;
    if (!cs)
        return MHD_NO;
    msi_http_req *r = &cs->req;

    if (!*con_cls) {
        /* First call: the headers are in. */
        if (r->resp)
            MHD_destroy_response(r->resp);
        memset(r, 0, offsetof(msi_http_req, hdr));
        r->c = c;
        r->conn = cs;
        r->method = method;
        r->path = url;
        r->started = 1;
        r->arrival_ms = msi_now_ms();
        *con_cls = r;
        h->active++;
        if (header_size(c, method, url) > h->max_header) {
            r->rest = "";
            msi_http_reply_error_ex(r, 431, MS_ETOOBIG, NULL, "headers over the limit of %zu bytes",
                                    h->max_header);
            return queue(r);
        }
        int wrong_method;
        r->route = match_route(h, method, url, &r->rest, &wrong_method);
        if (!r->route) {
            r->rest = "";
            if (wrong_method)
                msi_http_reply_error_ex(r, 405, MS_EINVAL, NULL, "method %s not allowed on %s",
                                        method, url);
            else
                msi_http_reply_error(r, MS_ENOTFOUND, "no such endpoint: %s", url);
            return queue(r);
        }
        r->limit = r->route->max_body ? r->route->max_body : h->max_body;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || end == cl || *end || n > r->limit) {
                msi_http_reply_error(r, MS_ETOOBIG, "body of %s bytes is over the limit of %zu", cl,
                                     r->limit);
                return queue(r);
            }
            if (reserve(cs, (size_t)n + 1) != 0) {
                msi_http_reply_error(r, MS_ENOMEM, "out of memory");
                return queue(r);
            }
        }
        if (r->route->early) {
            if (cs->cap || reserve(cs, 1) == 0)
                cs->buf[0] = '\0';
            r->route->early(r, r->route->arg);
            if (r->replied)
                return queue(r);
        }
        return MHD_YES;
    }

    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_big || r->replied)
            return MHD_YES;
        if (n > r->limit - r->len) {
            r->too_big = 1; /* discard the rest as it arrives */
            return MHD_YES;
        }
        if (reserve(cs, r->len + n + 1) != 0) {
            r->too_big = 1;
            return MHD_YES;
        }
        memcpy(cs->buf + r->len, upload, n);
        r->len += n;
        return MHD_YES;
    }

    /* Last call: the whole request is in. */
    if (r->replied && !r->resp)
        return MHD_YES; /* queued on the first call already */
    if (r->too_big) {
        msi_http_reply_error(r, MS_ETOOBIG, "body over the limit of %zu bytes", r->limit);
    } else if (!r->replied) {
        if (reserve(cs, r->len + 1) != 0) {
            msi_http_reply_error(r, MS_ENOMEM, "out of memory");
        } else {
            cs->buf[r->len] = '\0';
            r->route->fn(r, r->route->arg);
            if (!r->replied)
                msi_http_reply_error(r, MS_EIO, "handler for %s gave no reply", url);
        }
    }
    return queue(r);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    msi_http *h = cls;
    (void)toe;
    (void)c;
    msi_http_req *r = *con_cls;
    if (!r)
        return;
    request_done(r->conn);
    h->active--;
    *con_cls = NULL;
}

static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
              enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)c;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = calloc(1, sizeof(struct conn));
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct conn *cs = *socket_context;
        if (cs) {
            if (cs->req.resp)
                MHD_destroy_response(cs->req.resp);
            free(cs->buf);
            free(cs);
        }
        *socket_context = NULL;
    }
}

static void
on_log(void *cls, const char *fmt, va_list ap)
{
    msi_http *h = cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    msi_log(3, "%s http: %s", h->name, line);
}

/* ---- server lifecycle ----------------------------------------------------------------- */

ms_status
msi_http_start(const msi_http_config *cfg, msi_http **out, msi_err *err)
{
    ms_status st = MS_OK;
    int fd = cfg->listen_fd;
    msi_http *h = calloc(1, sizeof *h);
    *out = NULL;
    if (!h) {
        st = msi_errf(err, MS_ENOMEM, "out of memory");
        goto fail;
    }
    h->fd = -1;
    snprintf(h->name, sizeof h->name, "%s", cfg->name ? cfg->name : "server");
    h->routes = cfg->routes;
    h->nroutes = cfg->nroutes;
    h->max_body = cfg->max_body ? cfg->max_body : DEFAULT_MAX_BODY;

    if (fd < 0 && cfg->host_port)
        st = listen_tcp(cfg->host_port, &fd, err);
    else if (fd < 0 && cfg->unix_path) {
        st = listen_unix(cfg->unix_path, &fd, err);
        if (st == MS_OK)
            snprintf(h->unix_path, sizeof h->unix_path, "%s", cfg->unix_path);
    } else if (fd < 0)
        st = msi_errf(err, MS_EINVAL, "no address to listen on");
    else
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (st != MS_OK)
        goto fail;
    h->fd = fd;
    fd = -1;
    describe_fd(h);

    size_t max_header = cfg->max_header ? cfg->max_header : DEFAULT_MAX_HEADER;
    h->max_header = max_header;
    /* libmicrohttpd reads the request line and headers into the connection's memory pool,
     * which also holds the read buffer for the body and the reply's headers. Bounding the
     * pool bounds what a client can make it hold (it answers 431 past it); the exact
     * header limit is checked on the first call (header_size). */
    size_t pool = 2 * max_header + 4096;
    h->d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC |
            MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)h->fd,
        MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s ? cfg->timeout_s : DEFAULT_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, cfg->max_conns ? cfg->max_conns : DEFAULT_MAX_CONNS,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        (void *)h, MHD_OPTION_NOTIFY_CONNECTION, on_connection, (void *)h,
        MHD_OPTION_EXTERNAL_LOGGER, on_log, (void *)h, MHD_OPTION_END);
    if (!h->d) {
        st = msi_errf(err, MS_EIO, "cannot start the HTTP server on %s", h->addr);
        goto fail;
    }
    *out = h;
    return MS_OK;

fail:
    if (fd >= 0)
        close(fd);
    if (h) {
        if (h->fd >= 0)
            close(h->fd);
        if (h->unix_path[0])
            unlink(h->unix_path);
        free(h);
    }
    return st;
}

const char *
msi_http_addr(const msi_http *h)
{
    return h->addr;
}

uint16_t
msi_http_port(const msi_http *h)
{
    return h->port;
}

long
msi_http_active(const msi_http *h)
{
    return h->active;
}

void
msi_http_quiesce(msi_http *h)
{
    if (!h || h->quiesced)
        return;
    if (MHD_quiesce_daemon(h->d) != MHD_INVALID_SOCKET) {
        h->quiesced = 1;
        /* The descriptor stays open until msi_http_stop (libmicrohttpd's threads may still
         * hold its number), but it stops listening now: a new connection is refused at
         * once, so a client tries elsewhere rather than waiting in the backlog. */
        shutdown(h->fd, SHUT_RDWR);
    }
}

void
msi_http_stop(msi_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    /* libmicrohttpd closes the listening socket unless it was quiesced. */
    if (h->quiesced)
        close(h->fd);
    if (h->unix_path[0])
        unlink(h->unix_path);
    free(h);
}

/* ---- request accessors ---------------------------------------------------------------- */

const char *
msi_http_method(const msi_http_req *r)
{
    return r->method;
}

const char *
msi_http_path(const msi_http_req *r)
{
    return r->path;
}

const char *
msi_http_rest(const msi_http_req *r)
{
    return r->rest ? r->rest : "";
}

const char *
msi_http_header(const msi_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, name);
}

const char *
msi_http_query(const msi_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, name);
}

int64_t
msi_http_arrival_ms(const msi_http_req *r)
{
    return r->arrival_ms;
}

const char *
msi_http_body(const msi_http_req *r, size_t *len)
{
    if (len)
        *len = r->len;
    return r->conn->buf ? r->conn->buf : "";
}

int
msi_http_peer_uid(const msi_http_req *r, uid_t *uid)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return -1;
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred)
        return -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(ci->connect_fd, (struct sockaddr *)&ss, &sl) != 0 || ss.ss_family != AF_UNIX)
        return -1;
    *uid = cred.uid;
    return 0;
}

int
msi_http_replied(const msi_http_req *r)
{
    return r->replied;
}

int
msi_http_token_eq(const char *presented, size_t plen, const char *expected)
{
    size_t elen = strlen(expected);
    if (elen == 0)
        return 0;
    /* The time taken depends on plen only (which the presenter knows), never on where the
     * first difference is or on the expected token's content. */
    unsigned char diff = (unsigned char)(plen != elen);
    for (size_t i = 0; i < plen; i++)
        diff |= (unsigned char)(presented[i] ^ expected[i % elen]);
    return diff == 0;
}

int
msi_http_bearer_ok(const msi_http_req *r, const char *const *tokens, size_t n)
{
    const char *a = msi_http_header(r, "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7) != 0)
        return 0;
    a += 7;
    while (*a == ' ')
        a++;
    size_t plen = strlen(a);
    while (plen && (a[plen - 1] == ' ' || a[plen - 1] == '\t'))
        plen--;
    int ok = 0;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] && tokens[i][0])
            ok |= msi_http_token_eq(a, plen, tokens[i]);
    return ok;
}

/* ---- replies -------------------------------------------------------------------------- */

void
msi_http_add_header(msi_http_req *r, const char *name, const char *value)
{
    size_t n = strlen(name) + 1, v = strlen(value) + 1;
    if (r->nhdr >= MAX_EXTRA_HEADERS || r->hdr_used + n + v > sizeof r->hdr) {
        msi_log(1, "http: too many reply headers, dropping %s", name);
        return;
    }
    memcpy(r->hdr + r->hdr_used, name, n);
    memcpy(r->hdr + r->hdr_used + n, value, v);
    r->hdr_used += n + v;
    r->nhdr++;
}

void
msi_http_reply(msi_http_req *r, int status, const char *content_type, const void *body, size_t len)
{
    if (r->replied) {
        msi_log(1, "http: second reply to %s ignored", r->path);
        return;
    }
    r->replied = 1;
    r->status = status;
    r->resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    if (!r->resp)
        return; /* out of memory: libmicrohttpd closes the connection */
    if (content_type)
        MHD_add_response_header(r->resp, "Content-Type", content_type);
    const char *p = r->hdr;
    for (int i = 0; i < r->nhdr; i++) {
        const char *v = p + strlen(p) + 1;
        MHD_add_response_header(r->resp, p, v);
        p = v + strlen(v) + 1;
    }
}

void
msi_http_reply_json(msi_http_req *r, int status, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (text) {
        msi_http_reply(r, status, "application/json", text, strlen(text));
        free(text);
    } else if (j) {
        static const char oom[] =
            "{\"error\":{\"code\":\"MS_ENOMEM\",\"message\":\"out of memory\"}}";
        msi_http_reply(r, 500, "application/json", oom, sizeof oom - 1);
    } else {
        msi_http_reply(r, status, "application/json", "{}", 2);
    }
    json_decref(j);
}

static void
reply_error_v(msi_http_req *r, int http_status, ms_status st, json_t *extra, const char *fmt,
              va_list ap)
{
    char msg[MSI_ERR_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msi_utf8_scrub(msg); /* messages may quote request bytes; JSON strings must be UTF-8 */
    json_t *e = json_pack("{s:s,s:s}", "code", ms_status_name(st), "message", msg);
    if (e && extra)
        json_object_update(e, extra);
    json_decref(extra);
    if ((http_status == 429 || http_status == 503) && r->nhdr < MAX_EXTRA_HEADERS)
        msi_http_add_header(r, "Retry-After", "1");
    msi_http_reply_json(r, http_status, e ? json_pack("{s:o}", "error", e) : NULL);
}

void
msi_http_reply_error(msi_http_req *r, ms_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(r, msi_status_http(st), st, NULL, fmt, ap);
    va_end(ap);
}

void
msi_http_reply_error_ex(msi_http_req *r, int http_status, ms_status st, json_t *extra,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(r, http_status, st, extra, fmt, ap);
    va_end(ap);
}
