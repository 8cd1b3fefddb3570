/*
 * http.c: the HTTP/1.1 server (see http.h for the contract): plain sockets, one thread per
 * connection, blocking I/O. The request parser is http_parse.c.
 *
 * Design notes
 * - Threads. msi_http_start creates the listening socket (or takes the handed-over one)
 *   and one accept thread, "ms-accept", which gives each connection a detached thread,
 *   "ms-http" (conn_main). Connections are counted and listed under h->mu; h->gone is
 *   signalled as each one ends, so msi_http_stop can wait for all of them. Past
 *   `max_conns` a connection gets a canned 503 (best effort, never blocking the accept
 *   thread) and is closed.
 * - Decision: the accept thread waits in poll() on the listening socket (non-blocking) and
 *   an eventfd, then accept4(SOCK_CLOEXEC), rather than blocking in accept4. One syscall
 *   more per connection (never per request), for a clean quiesce: woken through the
 *   eventfd, the thread first accepts what is already queued in the backlog, and only
 *   then is the socket shut down. Shutting a listening socket down resets the connections
 *   still queued, whose clients may have sent a request already (with libmicrohttpd, a
 *   call arriving just as an instance began to drain could end in doubt).
 * - Ownership. A `conn` and everything in it (socket, input buffer, reply buffer, the
 *   request being served) belong to its thread; the thread closes the socket and frees the
 *   conn itself. Other threads touch a conn only under h->mu and only to read `in_user`
 *   and shut its socket down (msi_http_stop); they never close it, so a descriptor number
 *   is never reused under a thread that still uses it.
 * - The hot path is two syscalls per request: one recv that normally holds the whole
 *   request (no poll first: the socket is blocking, with SO_RCVTIMEO as the idle timeout),
 *   and one sendmsg (MSG_NOSIGNAL) of the head and body together. The head is formatted by
 *   hand (memcpy and a small integer formatter). The input buffer is reused by the
 *   connection's next requests and shrunk back once a request made it grow past 256 KiB;
 *   likewise the reply buffer. Parsing is in place: header names, values, the method and
 *   the decoded path are NUL-terminated inside the input buffer; the request keeps
 *   offsets (the buffer may move while a body is read), and a Content-Length body is used
 *   where it landed. Bytes after a request stay in the buffer for the next one
 *   (pipelining, served in order).
 * - Time. The idle wait for a request uses the socket's SO_RCVTIMEO (timeout_s). Once a
 *   request's first byte is in, its head and body must be complete within timeout_s of it:
 *   each further recv gets SO_RCVTIMEO set to what is left (slow path only), so a client
 *   trickling bytes cannot hold a thread longer; it gets 408 and the connection closes.
 *   SO_SNDTIMEO (timeout_s) bounds a reply to a client that does not read.
 * - Closing. A reply that follows broken framing or a refusal made before the body was
 *   read closes the connection ("Connection: close"); if unread input may remain, the
 *   close lingers (shutdown(SHUT_WR), then reading and dropping input for up to 1 s or
 *   1 MiB) so that the reply is not destroyed by a reset before the client reads it.
 *
 * The life of a connection (conn_main, serve_one):
 *
 *   IDLE --first byte (recv, SO_RCVTIMEO = timeout_s)--> HEAD        idle timeout: closed
 *   HEAD --head parsed (msi_http_parse_head)--> ROUTED (active++)   bad head: 400/414/431/
 *                                                                   417/501/505, close;
 *                                                                   408 past timeout_s
 *   ROUTED --route, Content-Length <= limit, early hook passes--> BODY
 *          (404/405/413 or the hook's reply: refused, close unless the body is already in)
 *   BODY --send "100 Continue" if expected, read Content-Length or dechunk--> HANDLER
 *   HANDLER --route's fn, then one sendmsg of the reply (active--)--> IDLE (keep-alive)
 *                                                                 or closed
 *
 *   The early hook and HANDLER (with its reply's send) run "in user code" (in_user):
 *   msi_http_stop never shuts such a connection down, so a running handler finishes and
 *   its reply is sent; every other state is woken by shutdown(SHUT_RDWR) and ends.
 *   Entering user code checks h->stopping under h->mu, and so does leaving it, so no
 *   connection slips back to IDLE after msi_http_stop looked at it.
 *
 * Lifecycle of the server: RUNNING --msi_http_quiesce--> QUIESCED (queued connections
 * taken, accept thread joined, listening socket shut down and closed) --msi_http_stop-->
 * STOPPING (idle connections shut, handlers finish, their replies say "Connection: close")
 * --> every connection thread gone --> freed.
 */
#include "http.h"
#include "sha256.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_BODY (1u << 20)
#define DEFAULT_MAX_HEADER 8192u
#define MAX_HEADER_LIMIT (1u << 20) /* max_header is capped here (offsets are 32-bit) */
#define DEFAULT_TIMEOUT_S 10u
#define DEFAULT_MAX_CONNS 1024u
#define MAX_EXTRA_HEADERS 8
#define HDR_SPACE 512
#define CTYPE_MAX 128
#define MAX_QUERY 32
#define KEEP_BUF_MAX (256u << 10) /* a connection keeps buffers up to this size */
#define DISCARD_MAX (64ull << 20) /* chunked data dropped past the limit, then 413 at once */
#define LINGER_MS 1000
#define LINGER_BYTES (1u << 20)
#define REPLY_HEAD_MAX 1280

struct conn;

/* What becomes of a connection after a request (serve_request). */
enum { S_CLOSE = 0, S_KEEP = 1, S_LINGER = 2 /* close, lingering: unread input may follow */ };

struct msi_http {
    int fd; /* listening socket; -1 once quiesced */
    int is_unix;
    char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char addr[128];
    uint16_t port;
    const msi_http_route *routes;
    size_t nroutes;
    size_t max_body;
    size_t max_header;
    size_t buf_init; /* initial input buffer: room for a whole head and some body */
    int timeout_ms;
    unsigned max_conns;
    char name[32];
    _Atomic long active; /* requests between head parsed and reply sent */
    pthread_t acceptor;
    int acceptor_started;
    int wake; /* eventfd: tells the accept thread to take what is queued and end */
    pthread_attr_t detached;
    _Atomic int stopping; /* msi_http_stop has begun (written under mu) */

    pthread_mutex_t mu;  /* guards what follows, and every conn's in_user and links */
    pthread_cond_t gone; /* a connection thread ended */
    struct conn *conns;  /* open connections */
    unsigned nconns;
    int quiesced;
};

struct msi_http_req {
    struct conn *conn;
    /* Pointers valid during a call into user code (rebound from offsets before each). */
    const char *method;
    const char *path;
    const char *rest;
    const msi_http_route *route;
    uint32_t path_off, rest_off;
    int nquery;
    uint32_t query[MAX_QUERY][2]; /* offsets of decoded, NUL-terminated key and value */
    size_t body_off;              /* 0: no body */
    size_t len;                   /* body bytes */
    size_t limit;                 /* body limit of this request */
    int64_t arrival_ms;
    int head_only; /* HEAD: the reply goes without its body */
    int parsed;    /* the head parsed: fields and query may be looked up */
    /* the reply */
    int status;
    int replied;
    int close; /* "Connection: close" asked by the handler, or forced by the server */
    size_t out_len;
    char ctype[CTYPE_MAX];
    int nhdr;
    size_t hdr_used;
    char hdr[HDR_SPACE]; /* "name\0value\0" pairs */
};

struct conn {
    msi_http *h;
    int fd;
    struct conn *prev, *next; /* h->conns, under h->mu */
    int in_user;              /* in an early hook or a handler (and its reply): under h->mu */
    int rcvtimeo_ms;          /* SO_RCVTIMEO now set on fd */
    char *buf;                /* input: the request being served starts at buf[0] */
    size_t cap, len;
    char *out; /* the reply body */
    size_t out_cap;
    msi_http_head hd;
    msi_http_req req;
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
        h->is_unix = 1;
        snprintf(h->addr, sizeof h->addr, "%s", un->sun_path);
    }
}

/* ---- buffers and socket I/O ----------------------------------------------------------- */

static void
set_rcvtimeo(struct conn *c, int ms)
{
    if (ms < 1)
        ms = 1; /* 0 would mean no timeout at all */
    if (ms == c->rcvtimeo_ms)
        return;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    c->rcvtimeo_ms = ms;
}

/*
 * Receives more input (growing the buffer when it is full). deadline: 0 for the wait for a
 * new request (the idle timeout), else the msi_now_ms time the request must be complete
 * by. Returns the bytes received, 0 at end of input, -1 on error (errno ETIMEDOUT when
 * the time is up).
 */
static ssize_t
fill(struct conn *c, int64_t deadline)
{
    if (c->len == c->cap && msi_grow(&c->buf, &c->cap, c->cap + 1) != 0) {
        errno = ENOMEM;
        return -1;
    }
    for (;;) {
        if (deadline) {
            int64_t left = deadline - msi_now_ms();
            if (left <= 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            set_rcvtimeo(c, (int)left);
        } else {
            set_rcvtimeo(c, c->h->timeout_ms);
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            return n;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            errno = ETIMEDOUT;
        return -1;
    }
}

/*
 * Sends every byte of iov[0..n) (modified). 0, or -1 when the peer is gone or too slow:
 * SO_SNDTIMEO bounds each wait, and the whole send is bounded by timeout_ms too, so a
 * client reading a byte now and then cannot hold the thread.
 */
static int
send_all(int fd, struct iovec *iov, int n, int timeout_ms)
{
    int64_t deadline = 0;
    while (n > 0) {
        if (deadline && msi_now_ms() > deadline)
            return -1;
        struct msghdr m = {0};
        m.msg_iov = iov;
        m.msg_iovlen = (size_t)n;
        ssize_t k = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        size_t done = (size_t)k;
        while (n > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
            if (!deadline)
                deadline = msi_now_ms() + timeout_ms; /* partial: the clock starts */
        }
    }
    return 0;
}

/* Closes after a reply when unread input may follow: the peer gets the reply, not a
 * reset. Bounded by LINGER_MS and LINGER_BYTES. */
static void
linger_close(struct conn *c)
{
    shutdown(c->fd, SHUT_WR);
    int64_t end = msi_now_ms() + LINGER_MS;
    size_t dropped = 0;
    char sink[4096];
    while (dropped < LINGER_BYTES) {
        int64_t left = end - msi_now_ms();
        if (left <= 0)
            break;
        set_rcvtimeo(c, (int)left);
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        dropped += (size_t)n;
    }
}

/* ---- user code: the stop protocol ----------------------------------------------------- */

/* Enters an early hook or a handler; 0 when the server is stopping (do not run it). */
static int
enter_user(struct conn *c)
{
    msi_http *h = c->h;
    pthread_mutex_lock(&h->mu);
    int ok = !h->stopping;
    c->in_user = ok;
    pthread_mutex_unlock(&h->mu);
    return ok;
}

/* Leaves user code (its reply sent); 0 when the server is stopping (close now). */
static int
leave_user(struct conn *c)
{
    msi_http *h = c->h;
    pthread_mutex_lock(&h->mu);
    c->in_user = 0;
    int ok = !h->stopping;
    pthread_mutex_unlock(&h->mu);
    return ok;
}

/* ---- replies -------------------------------------------------------------------------- */

static const char *
reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Status";
    }
}

static char *
put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put(p, lit, sizeof lit - 1)

static char *
put_str(char *p, const char *s)
{
    return put(p, s, strlen(s));
}

/* Two digits of v (0..99). */
static char *
put2(char *p, int v)
{
    *p++ = (char)('0' + v / 10 % 10);
    *p++ = (char)('0' + v % 10);
    return p;
}

/* "Date: ..." value (RFC 9110 IMF-fixdate), formatted once per second per thread; by hand,
 * so that the user's locale cannot change it. */
static const char *
http_date(void)
{
    static _Thread_local time_t last = -1;
    static _Thread_local char text[32];
    time_t now = time(NULL);
    if (now != last) {
        static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        struct tm tm;
        gmtime_r(&now, &tm);
        char *p = text;
        p = put(p, days[tm.tm_wday % 7], 3);
        p = PUT_LIT(p, ", ");
        p = put2(p, tm.tm_mday);
        *p++ = ' ';
        p = put(p, months[tm.tm_mon % 12], 3);
        *p++ = ' ';
        p = put2(p, (tm.tm_year + 1900) / 100 % 100);
        p = put2(p, (tm.tm_year + 1900) % 100);
        *p++ = ' ';
        p = put2(p, tm.tm_hour);
        *p++ = ':';
        p = put2(p, tm.tm_min);
        *p++ = ':';
        p = put2(p, tm.tm_sec);
        p = PUT_LIT(p, " GMT");
        *p = '\0';
        last = now;
    }
    return text;
}

/* Sends the reply of c's request: head and body in one sendmsg. 0, or -1 (peer gone). */
static int
send_reply(struct conn *c, int keep_alive, int minor)
{
    msi_http_req *r = &c->req;
    char head[REPLY_HEAD_MAX];
    char *p = head;
    int status = r->status >= 100 && r->status <= 999 ? r->status : 500;
    int bodyless = status == 204 || status == 304 || status < 200;
    p = PUT_LIT(p, "HTTP/1.1 ");
    p = msi_u64_text(p, (unsigned)status);
    *p++ = ' ';
    p = put_str(p, reason(status));
    p = PUT_LIT(p, "\r\nDate: ");
    p = put_str(p, http_date());
    p = PUT_LIT(p, "\r\n");
    if (r->ctype[0] && !bodyless) {
        p = PUT_LIT(p, "Content-Type: ");
        p = put_str(p, r->ctype);
        p = PUT_LIT(p, "\r\n");
    }
    if (!bodyless) {
        p = PUT_LIT(p, "Content-Length: ");
        p = msi_u64_text(p, r->out_len);
        p = PUT_LIT(p, "\r\n");
    }
    const char *x = r->hdr;
    for (int i = 0; i < r->nhdr; i++) {
        size_t nl = strlen(x);
        const char *v = x + nl + 1;
        size_t vl = strlen(v);
        p = put(p, x, nl);
        p = PUT_LIT(p, ": ");
        p = put(p, v, vl);
        p = PUT_LIT(p, "\r\n");
        x = v + vl + 1;
    }
    if (!keep_alive)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (minor == 0)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    p = PUT_LIT(p, "\r\n");
    struct iovec iov[2] = {{head, (size_t)(p - head)}, {c->out, r->out_len}};
    int n = r->head_only || bodyless || r->out_len == 0 ? 1 : 2;
    return send_all(c->fd, iov, n, c->h->timeout_ms);
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

/* A new request on c: no reply yet, nothing parsed. */
static void
req_reset(struct conn *c)
{
    msi_http_req *r = &c->req;
    r->conn = c;
    r->method = "";
    r->path = "";
    r->rest = "";
    r->route = NULL;
    r->path_off = r->rest_off = 0;
    r->nquery = 0;
    r->body_off = 0;
    r->len = 0;
    r->limit = 0;
    r->arrival_ms = 0;
    r->head_only = 0;
    r->parsed = 0;
    r->status = 0;
    r->replied = 0;
    r->close = 0;
    r->out_len = 0;
    r->ctype[0] = '\0';
    r->nhdr = 0;
    r->hdr_used = 0;
}

/* Points method, path and rest into the buffer where it is now. */
static void
rebind(struct conn *c)
{
    msi_http_req *r = &c->req;
    if (!r->parsed)
        return;
    r->method = c->buf + c->hd.method;
    r->path = c->buf + r->path_off;
    r->rest = c->buf + r->rest_off;
}

/*
 * Makes the parsed head usable in place: NUL-terminates the method and the fields,
 * percent-decodes the path and the query arguments. Returns 0, or -1 with an error reply
 * made (a decoded NUL, too many arguments).
 */
static int
prepare(struct conn *c)
{
    msi_http_req *r = &c->req;
    msi_http_head *hd = &c->hd;
    char *b = c->buf;
    b[hd->method + hd->method_len] = '\0';
    for (int i = 0; i < hd->nfields; i++) {
        b[hd->fields[i].name + hd->fields[i].name_len] = '\0';
        b[hd->fields[i].value + hd->fields[i].value_len] = '\0';
    }
    size_t t = hd->target, tend = hd->target + hd->target_len;
    b[tend] = '\0';
    /* absolute-form: http://authority/path -> /path */
    if (b[t] != '/' && b[t] != '*') {
        size_t s = t + (b[t + 4] == ':' ? 7 : 8);
        while (s < tend && b[s] != '/' && b[s] != '?')
            s++;
        if (s == tend || b[s] == '?') {
            /* no path: "/" in front of the query (room: the authority's last byte) */
            b[--s] = '/';
        }
        t = s;
    }
    char *q = memchr(b + t, '?', tend - t);
    size_t pend = q ? (size_t)(q - b) : tend;
    int nul = 0;
    size_t plen = msi_http_unescape(b + t, pend - t, 0, &nul);
    b[t + plen] = '\0';
    r->path_off = (uint32_t)t;
    r->parsed = 1;
    rebind(c);
    if (nul) {
        msi_http_reply_error(r, MS_EBADARGS, "a NUL (%%00) in the path");
        return -1;
    }
    if (q) {
        size_t i = pend + 1;
        while (i < tend) {
            size_t e = i;
            while (e < tend && b[e] != '&')
                e++;
            if (e > i) {
                if (r->nquery == MAX_QUERY) {
                    msi_http_reply_error(r, MS_EBADARGS, "more than %d query arguments", MAX_QUERY);
                    return -1;
                }
                char *eq = memchr(b + i, '=', e - i);
                size_t kend = eq ? (size_t)(eq - b) : e;
                size_t kl = msi_http_unescape(b + i, kend - i, 1, &nul);
                b[i + kl] = '\0';
                size_t v = eq ? kend + 1 : kend; /* no '=': the value is "" (at the NUL) */
                if (eq) {
                    size_t vl = msi_http_unescape(b + v, e - v, 1, &nul);
                    b[v + vl] = '\0';
                } else {
                    v = i + kl;
                }
                r->query[r->nquery][0] = (uint32_t)i;
                r->query[r->nquery][1] = (uint32_t)v;
                r->nquery++;
            }
            i = e + 1;
        }
        if (nul) {
            msi_http_reply_error(r, MS_EBADARGS, "a NUL (%%00) in a query argument");
            return -1;
        }
    }
    return 0;
}

/* An error reply made by the server itself (framing, limits, time): the connection
 * closes after it. */
static void
server_error(struct conn *c, int status, ms_status st, const char *msg)
{
    msi_http_req *r = &c->req;
    msi_log(3, "%s http: %d: %s", c->h->name, status, msg);
    r->close = 1;
    msi_http_reply_error_ex(r, status, st, NULL, "%s", msg);
}

static ms_status
status_code_of(int http)
{
    switch (http) {
    case 408:
        return MS_ETIMEDOUT;
    case 413:
    case 414:
    case 431:
        return MS_ETOOBIG;
    default:
        return MS_EPROTO;
    }
}

/* Drops the first n bytes of input (the request served); the rest is the next request. */
static void
consume(struct conn *c, size_t n)
{
    size_t rest = c->len - n;
    if (rest && n)
        memmove(c->buf, c->buf + n, rest);
    c->len = rest;
    if (c->cap > KEEP_BUF_MAX && rest <= c->h->buf_init) {
        char *b = realloc(c->buf, c->h->buf_init);
        if (b) {
            c->buf = b;
            c->cap = c->h->buf_init;
        }
    }
    if (c->out_cap > KEEP_BUF_MAX) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
}

/* Whether the body of c's request is already in the buffer (or there is none). */
static int
body_in(const struct conn *c)
{
    const msi_http_head *hd = &c->hd;
    return !hd->chunked && (!hd->has_length || hd->length <= c->len - hd->head_len);
}

/*
 * The end of a request refused before its body was read (404, 405, 413, the early hook's
 * reply), once its reply went out with `sent` (send_reply's result) and `keep`. The
 * connection goes on only if the body was already in the buffer (or there was none).
 * Returns an S_ outcome.
 */
static int
after_refusal(struct conn *c, int sent, int keep)
{
    if (sent != 0)
        return S_CLOSE;
    if (!keep)
        return body_in(c) ? S_CLOSE : S_LINGER;
    consume(c, c->hd.head_len + (c->hd.has_length ? (size_t)c->hd.length : 0));
    return S_KEEP;
}

static int
keep_after_refusal(const struct conn *c)
{
    return body_in(c) && c->hd.keep_alive && !c->req.close;
}

/* Sends the reply of a refusal made before the body; returns an S_ outcome. */
static int
refuse(struct conn *c)
{
    int keep = keep_after_refusal(c);
    return after_refusal(c, send_reply(c, keep, c->hd.minor), keep);
}

/* Reads the rest of a Content-Length body; 1 done, 0 close (a reply made if one is due). */
static int
read_length_body(struct conn *c, int64_t deadline)
{
    msi_http_head *hd = &c->hd;
    size_t need = hd->head_len + (size_t)hd->length;
    if (msi_grow(&c->buf, &c->cap, need + 1) != 0) {
        server_error(c, 500, MS_ENOMEM, "out of memory for the body");
        return 0;
    }
    while (c->len < need) {
        ssize_t n = fill(c, deadline);
        if (n > 0)
            continue;
        if (n < 0 && errno == ETIMEDOUT)
            server_error(c, 408, MS_ETIMEDOUT, "request not complete in time");
        return 0;
    }
    c->req.body_off = hd->head_len;
    c->req.len = (size_t)hd->length;
    return 1;
}

/* Reads and decodes a chunked body: 1 done (*end: where the request ends); -1 the body is
 * over the limit, a 413 made, the framing intact (*end set); 0 close (a reply made if one
 * is due). */
static int
read_chunked_body(struct conn *c, int64_t deadline, size_t *end)
{
    msi_http_req *r = &c->req;
    msi_http_chunked st = {0};
    size_t in = c->hd.head_len, out = in;
    for (;;) {
        int status = 0;
        int rc = msi_http_dechunk(&st, c->buf, &in, c->len, &out, r->limit, &status);
        if (rc == MSI_HTTP_PARSE_DONE)
            break;
        if (rc == MSI_HTTP_PARSE_ERROR) {
            server_error(c, status, status_code_of(status),
                         status == 413 ? "chunk size too large" : "malformed chunked body");
            return 0;
        }
        /* Everything was consumed: keep the decoded data, drop the raw framing. */
        c->len = out;
        in = out;
        if (st.total > r->limit + DISCARD_MAX) {
            r->close = 1;
            msi_http_reply_error(r, MS_ETOOBIG, "body over the limit of %zu bytes", r->limit);
            return 0;
        }
        if (c->cap - c->len < 4096 && msi_grow(&c->buf, &c->cap, c->len + 16384) != 0) {
            server_error(c, 500, MS_ENOMEM, "out of memory for the body");
            return 0;
        }
        ssize_t n = fill(c, deadline);
        if (n > 0)
            continue;
        if (n < 0 && errno == ETIMEDOUT)
            server_error(c, 408, MS_ETIMEDOUT, "request not complete in time");
        return 0;
    }
    *end = in;
    if (st.total > r->limit) {
        /* Discarded as it came; the framing is intact, so the connection may go on. */
        msi_http_reply_error(r, MS_ETOOBIG, "body over the limit of %zu bytes", r->limit);
        return -1;
    }
    r->body_off = c->hd.head_len;
    r->len = out - c->hd.head_len;
    return 1;
}

/*
 * Serves the request whose head c->hd describes (serve_one parsed it). Returns S_KEEP to go
 * on with the connection, S_CLOSE or S_LINGER to close it.
 */
static int
serve_request(struct conn *c, int64_t deadline)
{
    msi_http *h = c->h;
    msi_http_head *hd = &c->hd;
    msi_http_req *r = &c->req;
    r->arrival_ms = msi_now_ms();
    if (prepare(c) != 0)
        return refuse(c);
    r->head_only = strcmp(r->method, "HEAD") == 0;
    int wrong_method;
    const char *rest = "";
    r->route = match_route(h, r->method, r->path, &rest, &wrong_method);
    if (!r->route) {
        if (wrong_method)
            msi_http_reply_error_ex(r, 405, MS_EINVAL, NULL, "method %s not allowed on %s",
                                    r->method, r->path);
        else
            msi_http_reply_error(r, MS_ENOTFOUND, "no such endpoint: %s", r->path);
        return refuse(c);
    }
    r->rest_off = (uint32_t)(rest - c->buf);
    r->rest = rest;
    r->limit = r->route->max_body ? r->route->max_body : h->max_body;
    if (hd->has_length && hd->length > r->limit) {
        r->close = 1;
        if (hd->length == UINT64_MAX)
            msi_http_reply_error(r, MS_ETOOBIG, "body over the limit of %zu bytes", r->limit);
        else
            msi_http_reply_error(r, MS_ETOOBIG, "body of %llu bytes is over the limit of %zu",
                                 (unsigned long long)hd->length, r->limit);
        return refuse(c);
    }
    if (r->route->early) {
        if (!enter_user(c))
            return S_CLOSE;
        r->route->early(r, r->route->arg);
        if (r->replied) {
            int keep = keep_after_refusal(c) && !h->stopping;
            int sent = send_reply(c, keep, hd->minor);
            if (!leave_user(c))
                return S_CLOSE;
            return after_refusal(c, sent, keep);
        }
        if (!leave_user(c))
            return S_CLOSE;
    }
    int has_body = hd->chunked || (hd->has_length && hd->length > 0);
    if (has_body && hd->expect_continue && c->len == hd->head_len) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        struct iovec iov = {(void *)cont, sizeof cont - 1};
        if (send_all(c->fd, &iov, 1, h->timeout_ms) != 0)
            return S_CLOSE;
    }
    size_t end = hd->head_len;
    if (hd->chunked) {
        int rc = read_chunked_body(c, deadline, &end);
        if (rc <= 0) {
            /* a reply (413 at the end of the body, or an error), or nothing */
            if (!r->replied)
                return S_CLOSE;
            rebind(c);
            int keep = rc < 0 && hd->keep_alive;
            if (send_reply(c, keep, hd->minor) != 0)
                return S_CLOSE;
            if (!keep)
                return rc == 0 ? S_LINGER : S_CLOSE;
            consume(c, end);
            return S_KEEP;
        }
    } else if (hd->has_length && hd->length > 0) {
        if (!read_length_body(c, deadline)) {
            if (r->replied && send_reply(c, 0, hd->minor) == 0)
                return S_LINGER;
            return S_CLOSE;
        }
        end += (size_t)hd->length;
    }
    rebind(c);

    /* The handler, and its reply. */
    if (!enter_user(c))
        return S_CLOSE;
    char *nulp = r->body_off ? c->buf + r->body_off + r->len : NULL;
    char saved = nulp ? *nulp : 0; /* may be the first byte of a pipelined request */
    if (nulp)
        *nulp = '\0';
    r->route->fn(r, r->route->arg);
    if (!r->replied)
        msi_http_reply_error(r, MS_EIO, "handler for %s gave no reply", r->path);
    if (nulp)
        *nulp = saved;
    int keep = hd->keep_alive && !r->close && !h->stopping;
    int sent = send_reply(c, keep, hd->minor);
    int more = leave_user(c);
    if (sent != 0 || !more)
        return S_CLOSE; /* (stopping: no lingering either) */
    if (!keep)          /* lingering only if the client sent more (pipelined) */
        return c->len > end ? S_LINGER : S_CLOSE;
    consume(c, end);
    return S_KEEP;
}

/* Reads, parses and serves one request of c; 1 to go on with the connection, 0 to close. */
static int
serve_one(struct conn *c)
{
    msi_http *h = c->h;
    msi_http_head *hd = &c->hd;
    int64_t deadline = 0;
    size_t scanned = 0;
    int rc = MSI_HTTP_PARSE_MORE;
    req_reset(c);
    if (c->len > 0)
        deadline = msi_now_ms() + h->timeout_ms; /* pipelined: its first bytes are in */
    for (;;) {
        if (c->len > scanned &&
            (c->len >= h->max_header || memchr(c->buf + scanned, '\n', c->len - scanned))) {
            rc = msi_http_parse_head(c->buf, c->len, h->max_header, hd);
            if (rc != MSI_HTTP_PARSE_MORE)
                break;
        }
        scanned = c->len;
        ssize_t n = fill(c, deadline);
        if (n <= 0) {
            if (n < 0 && errno == ETIMEDOUT && deadline) {
                server_error(c, 408, MS_ETIMEDOUT, "request not complete in time");
                send_reply(c, 0, 1);
            }
            return 0; /* idle timeout, end of input, or error: close */
        }
        if (!deadline)
            deadline = msi_now_ms() + h->timeout_ms;
    }
    if (rc == MSI_HTTP_PARSE_ERROR) {
        server_error(c, hd->status, status_code_of(hd->status), hd->error);
        if (send_reply(c, 0, 1) == 0)
            linger_close(c);
        return 0;
    }
    h->active++;
    int next = serve_request(c, deadline);
    h->active--; /* the reply is out (or never will be) */
    if (next == S_LINGER)
        linger_close(c);
    return next == S_KEEP;
}

/* Takes c off the server's list of open connections and wakes msi_http_stop; h->mu held. */
static void
conn_forget(msi_http *h, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->nconns--;
    pthread_cond_broadcast(&h->gone);
}

static void *
conn_main(void *arg)
{
    struct conn *c = arg;
    msi_http *h = c->h;
    pthread_setname_np(pthread_self(), "ms-http");
    struct timeval tv = {(time_t)(h->timeout_ms / 1000), 0};
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (!h->is_unix) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    c->rcvtimeo_ms = -1;
    if (msi_grow(&c->buf, &c->cap, h->buf_init) == 0) {
        while (serve_one(c)) {
        }
    }
    free(c->buf);
    free(c->out);
    pthread_mutex_lock(&h->mu);
    close(c->fd); /* under mu: msi_http_stop never shuts a number down once reused */
    conn_forget(h, c);
    pthread_mutex_unlock(&h->mu); /* h may be freed from here on */
    free(c);
    return NULL;
}

/* ---- accepting ------------------------------------------------------------------------ */

/* Past max_conns: a canned 503, never blocking, then the close (best effort: a client
 * whose request is already in may see a reset instead). */
static void
reject_busy(int fd)
{
    static const char body[] =
        "{\"error\":{\"code\":\"MS_EUNAVAILABLE\",\"message\":\"too many connections\"}}";
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nRetry-After: 1\r\nConnection: close\r\n\r\n",
                     sizeof body - 1);
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, sizeof body - 1}};
    struct msghdr m = {0};
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    ssize_t k = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)k;
    shutdown(fd, SHUT_WR);
    close(fd);
}

static void
admit(msi_http *h, int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->h = h;
    c->fd = fd;
    pthread_mutex_lock(&h->mu);
    if (h->stopping) {
        pthread_mutex_unlock(&h->mu);
        close(fd);
        free(c);
        return;
    }
    if (h->nconns >= h->max_conns) {
        pthread_mutex_unlock(&h->mu);
        msi_log(1, "%s http: %u connections open: refusing one", h->name, h->max_conns);
        reject_busy(fd);
        free(c);
        return;
    }
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    pthread_mutex_unlock(&h->mu);
    pthread_t t;
    int rc = pthread_create(&t, &h->detached, conn_main, c);
    if (rc != 0) {
        msi_log(0, "%s http: cannot start a connection thread: %s", h->name, strerror(rc));
        pthread_mutex_lock(&h->mu);
        conn_forget(h, c);
        pthread_mutex_unlock(&h->mu);
        close(fd);
        free(c);
    }
}

/* Accepts one connection if one is queued: 1 done (admitted or refused), 0 none queued,
 * -1 the socket is broken. */
static int
accept_one(msi_http *h)
{
    int fd = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        admit(h, fd);
        return 1;
    }
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK)
        return 0;
    if (e == EINTR || e == ECONNABORTED || e == EPROTO || e == EPERM)
        return 1;
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        /* Out of descriptors or memory: the connection waits in the backlog. */
        msi_log(1, "%s http: accept: %s", h->name, strerror(e));
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        return 1;
    }
    msi_log(0, "%s http: accept: %s: no more connections", h->name, strerror(e));
    return -1;
}

/*
 * The accept thread. It waits in poll for the (non-blocking) listening socket or the wake
 * descriptor, so that msi_http_quiesce can have it take over the connections already
 * queued in the backlog before the socket is shut down (which would reset them: their
 * clients may have sent a request already).
 */
static void *
accept_main(void *arg)
{
    msi_http *h = arg;
    pthread_setname_np(pthread_self(), "ms-accept");
    for (;;) {
        struct pollfd p[2] = {{h->fd, POLLIN, 0}, {h->wake, POLLIN, 0}};
        int n = poll(p, 2, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            msi_log(0, "%s http: poll: %s: no more connections", h->name, strerror(errno));
            break;
        }
        if (p[1].revents) {
            /* Quiesce: what is queued is served. Bounded (max_conns accepts, 100 ms), as
             * clients may keep connecting meanwhile. */
            int64_t end = msi_now_ms() + 100;
            for (unsigned i = 0; i < h->max_conns && accept_one(h) > 0 && msi_now_ms() < end; i++) {
            }
            break;
        }
        if (p[0].revents && accept_one(h) < 0)
            break;
    }
    return NULL;
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
    h->wake = -1;
    snprintf(h->name, sizeof h->name, "%s", cfg->name ? cfg->name : "server");
    h->routes = cfg->routes;
    h->nroutes = cfg->nroutes;
    h->max_body = cfg->max_body ? cfg->max_body : DEFAULT_MAX_BODY;
    h->max_header = cfg->max_header ? cfg->max_header : DEFAULT_MAX_HEADER;
    if (h->max_header > MAX_HEADER_LIMIT)
        h->max_header = MAX_HEADER_LIMIT;
    h->buf_init = h->max_header + 8192;
    h->timeout_ms = (int)(cfg->timeout_s ? cfg->timeout_s : DEFAULT_TIMEOUT_S) * 1000;
    h->max_conns = cfg->max_conns ? cfg->max_conns : DEFAULT_MAX_CONNS;

    if (fd < 0 && cfg->host_port)
        st = listen_tcp(cfg->host_port, &fd, err);
    else if (fd < 0 && cfg->unix_path) {
        st = listen_unix(cfg->unix_path, &fd, err);
        if (st == MS_OK)
            snprintf(h->unix_path, sizeof h->unix_path, "%s", cfg->unix_path);
    } else if (fd < 0) {
        st = msi_errf(err, MS_EINVAL, "no address to listen on");
    } else {
        int on = 0;
        socklen_t ol = sizeof on;
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol) != 0 || !on)
            st = msi_errf(err, MS_EINVAL, "descriptor %d is not a listening socket", fd);
    }
    if (st != MS_OK)
        goto fail;
    h->fd = fd;
    fd = -1;
    describe_fd(h);
    int fl = fcntl(h->fd, F_GETFL);
    if (fl < 0 || fcntl(h->fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
        (h->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        st = msi_errf(err, MS_EIO, "cannot start the HTTP server on %s: %s", h->addr,
                      strerror(errno));
        goto fail;
    }

    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->gone, NULL);
    pthread_attr_init(&h->detached);
    pthread_attr_setdetachstate(&h->detached, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&h->acceptor, NULL, accept_main, h);
    if (rc != 0) {
        st = msi_errf(err, MS_EIO, "cannot start the HTTP server on %s: %s", h->addr, strerror(rc));
        pthread_attr_destroy(&h->detached);
        pthread_cond_destroy(&h->gone);
        pthread_mutex_destroy(&h->mu);
        goto fail;
    }
    h->acceptor_started = 1;
    *out = h;
    return MS_OK;

fail:
    if (fd >= 0)
        close(fd);
    if (h) {
        if (h->fd >= 0)
            close(h->fd);
        if (h->wake >= 0)
            close(h->wake);
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
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    int first = !h->quiesced;
    h->quiesced = 1;
    pthread_mutex_unlock(&h->mu);
    if (!first)
        return;
    /* The accept thread takes what is queued and ends; then the socket is shut down, which
     * refuses new connections at once, also when another process holds a copy of it. */
    uint64_t one = 1;
    ssize_t n = write(h->wake, &one, sizeof one);
    (void)n;
    if (h->acceptor_started)
        pthread_join(h->acceptor, NULL);
    shutdown(h->fd, SHUT_RDWR);
    close(h->fd);
    h->fd = -1;
}

void
msi_http_stop(msi_http *h)
{
    if (!h)
        return;
    msi_http_quiesce(h);
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    for (struct conn *c = h->conns; c; c = c->next)
        if (!c->in_user)
            shutdown(c->fd, SHUT_RDWR);
    while (h->nconns > 0)
        pthread_cond_wait(&h->gone, &h->mu);
    pthread_mutex_unlock(&h->mu);
    if (h->unix_path[0])
        unlink(h->unix_path);
    close(h->wake);
    pthread_attr_destroy(&h->detached);
    pthread_cond_destroy(&h->gone);
    pthread_mutex_destroy(&h->mu);
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
    const struct conn *c = r->conn;
    if (!r->parsed)
        return NULL;
    size_t n = strlen(name);
    for (int i = 0; i < c->hd.nfields; i++) {
        const msi_http_field *f = &c->hd.fields[i];
        if (f->name_len == n && strcasecmp(c->buf + f->name, name) == 0)
            return c->buf + f->value;
    }
    return NULL;
}

const char *
msi_http_query(const msi_http_req *r, const char *name)
{
    const struct conn *c = r->conn;
    for (int i = 0; i < r->nquery; i++)
        if (strcmp(c->buf + r->query[i][0], name) == 0)
            return c->buf + r->query[i][1];
    return NULL;
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
    return r->body_off ? r->conn->buf + r->body_off : "";
}

int
msi_http_peer_uid(const msi_http_req *r, uid_t *uid)
{
    if (!r->conn->h->is_unix)
        return -1;
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(r->conn->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred)
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

/* The token of "Authorization: Bearer <token>" without surrounding blanks (plen bytes), or
 * NULL when the request has none. */
static const char *
bearer_of(const msi_http_req *r, size_t *plen)
{
    const char *a = msi_http_header(r, "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7) != 0)
        return NULL;
    a += 7;
    while (*a == ' ')
        a++;
    size_t n = strlen(a);
    while (n && (a[n - 1] == ' ' || a[n - 1] == '\t'))
        n--;
    *plen = n;
    return a;
}

int
msi_http_bearer_ok(const msi_http_req *r, const char *const *tokens, size_t n)
{
    size_t plen;
    const char *a = bearer_of(r, &plen);
    if (!a)
        return 0;
    int ok = 0;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] && tokens[i][0])
            ok |= msi_http_token_eq(a, plen, tokens[i]);
    return ok;
}

int
msi_http_bearer_sha256_ok(const msi_http_req *r, const char *sha256_hex)
{
    size_t plen;
    const char *a = bearer_of(r, &plen);
    if (!a || !plen || !sha256_hex || strlen(sha256_hex) != 64)
        return 0;
    char hex[65];
    msi_sha256_hex_of(a, plen, hex);
    return msi_http_token_eq(hex, 64, sha256_hex);
}

/* ---- replies -------------------------------------------------------------------------- */

/* Whether s may go into a reply head (no CR, LF or other control character). */
static int
head_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 && *s != '\t')
            return 0;
    return 1;
}

void
msi_http_add_header(msi_http_req *r, const char *name, const char *value)
{
    if (strcasecmp(name, "Connection") == 0) {
        /* The server writes Connection itself; "close" is remembered. */
        if (strcasestr(value, "close"))
            r->close = 1;
        return;
    }
    size_t n = strlen(name) + 1, v = strlen(value) + 1;
    if (!head_safe(name) || !head_safe(value)) {
        msi_log(1, "http: reply header %s with a control character dropped", name);
        return;
    }
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
    struct conn *c = r->conn;
    if (r->replied) {
        msi_log(1, "http: second reply to %s ignored", r->path);
        return;
    }
    r->replied = 1;
    r->status = status;
    r->ctype[0] = '\0';
    if (content_type) {
        if (strlen(content_type) < sizeof r->ctype && head_safe(content_type))
            memcpy(r->ctype, content_type, strlen(content_type) + 1);
        else
            msi_log(1, "http: Content-Type of the reply to %s dropped", r->path);
    }
    if (msi_grow(&c->out, &c->out_cap, len ? len : 1) != 0) {
        static const char oom[] =
            "{\"error\":{\"code\":\"MS_ENOMEM\",\"message\":\"out of memory\"}}";
        r->status = 500;
        r->close = 1;
        snprintf(r->ctype, sizeof r->ctype, "application/json");
        len = 0;
        if (msi_grow(&c->out, &c->out_cap, sizeof oom) == 0) {
            memcpy(c->out, oom, sizeof oom - 1);
            len = sizeof oom - 1;
        }
        r->out_len = len;
        return;
    }
    if (len)
        memcpy(c->out, body, len);
    r->out_len = len;
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
