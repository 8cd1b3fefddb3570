/*
 * httpc.c: the HTTP/1.1 client of libms, over plain sockets (see httpc.h for the contract).
 *
 * Design notes
 * - Why not libcurl (used here until issue 5, and still used by msd and msctl for their own
 *   needs): a callgrind profile of one call through local mode put ~100,000 instructions per
 *   request in libcurl, 30,000 of them formatting our seven custom headers one byte at a
 *   time, and libcurl sent the body (from its read callback) in a second send(), so the
 *   instance woke up twice per call. Linking libcurl also cost every program linking libms
 *   ~13 ms at start-up (35 shared libraries), most of an instance's spawn-to-ready time.
 *   libms needs little of HTTP: requests to msd and to instances, all plain HTTP/1.1 over
 *   TCP or a unix socket, to servers we wrote (libmicrohttpd underneath). That is this file.
 * - One `client` per thread behind a pthread key: its kept-alive connections (up to
 *   MAX_CONNS, keyed by "unix-path" or "host:port", least recently used closed first), a
 *   buffer for the request head, one for the response and one for the request body
 *   (msi_httpc_buf, msi_httpc_dump). Nothing is
 *   shared between threads, so no lock is taken; once the buffers have grown a request
 *   allocates nothing. A forked child closes its copies of the parent's connections
 *   (fork counter, pthread_atfork) and starts afresh.
 * - A request: the head is formatted into the thread's buffer (memcpy, no printf), and head
 *   and body leave in one sendmsg(MSG_NOSIGNAL), so the server reads the whole request in
 *   one go. A body over EXPECT_MIN bytes is announced with "Expect: 100-continue" and sent
 *   only after "100 Continue" (or EXPECT_WAIT_MS of silence), so that a server refusing it
 *   early (413, 401) never has to swallow it.
 * - Sent or not (DESIGN section 4): `sent` is set once the kernel has accepted a byte of
 *   the body. Before a request with no_resend, a kept connection is checked (poll, no wait):
 *   one the server has closed is dropped and a new one made, and nothing was sent on it.
 *   Other requests skip the check (a syscall per request) and rely on the resend. If a reused
 *   connection dies after the request left but before any byte of the response came, the
 *   request is sent once more on a new connection (as libcurl did), unless the request said
 *   no_resend and body bytes had left: then `resend_refused`, MS_EINDOUBT.
 * - A response: this file only reads; the parsing is http_parse.c's (pure and fuzzed, shared
 *   with the server): msi_http_parse_response for the status line and headers
 *   (Content-Length, Transfer-Encoding: chunked, Connection, Retry-After), parsed again
 *   after each read until the head is complete; msi_http_response_framing for how the body
 *   ends (by length, by chunks, or when the server closes); msi_http_dechunk decodes a
 *   chunked body in place. 1xx answers are skipped; HEAD, 204 and 304 have no body. The
 *   connection is kept when the framing allows it and neither side said "close". If the
 *   server answers while the body is still being sent, sending stops and the answer is read.
 * - Time: every wait is bounded by the request's deadline; a connect also by
 *   CONNECT_TIMEOUT_MS. Connected sockets are blocking and every send and recv passes
 *   MSG_DONTWAIT, except the wait for an answer: one blocking recv bounded by SO_RCVTIMEO,
 *   which is set only when the value in place would overshoot the deadline by more than
 *   2 ms + 1/32 of the time left (so the wait for an answer is one syscall, not a poll and a
 *   recv, and a run of calls with similar deadlines sets it once). A wait may therefore end
 *   that much after the deadline, never before it. Should setting SO_RCVTIMEO fail (logged
 *   once per process), that wait is a poll for the time left and a recv that does not wait,
 *   so it stays bounded. Kept connections idle for more than
 * IDLE_REUSE_MS are not reused, well inside the servers' 10 s idle timeout, so a connection the
 * server is about to close is not picked.
 */
#include "httpc.h"

#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_HEADERS 16
#define MAX_CONNS 32
#define IDLE_REUSE_MS 5000
#define CONNECT_TIMEOUT_MS 3000
#define KEEP_BUF_MAX (256u << 10) /* a thread keeps buffers up to this size */
#define HEAD_MAX (64u << 10)      /* a response head longer than this is refused */
#define BODY_MAX ((size_t)1 << 30)
#define EXPECT_MIN (1u << 20) /* bodies above this wait for "100 Continue" ... */
#define EXPECT_WAIT_MS 1000   /* ... at most this long */
#define KEY_MAX 300

typedef struct conn {
    int fd;
    int rcvto_ms;      /* its SO_RCVTIMEO (0: none) */
    int64_t last_used; /* msi_now_ms */
    char key[KEY_MAX];
} conn;

typedef struct client {
    unsigned long fork_gen;
    conn conns[MAX_CONNS];
    int nconns;
    char *hbuf; /* request head */
    size_t hcap;
    char *rbuf; /* response */
    size_t rcap;
    msi_buf body; /* msi_httpc_buf, msi_httpc_dump */
} client;

/* The target of a request, from its URL (and unix_path). */
typedef struct target {
    char host[256]; /* without brackets */
    char port[8];
    const char *hostport; /* the URL's authority, for Host: */
    size_t hostport_len;
    const char *path; /* path and query; "/" when the URL has none */
    char key[KEY_MAX];
} target;

/* One response being read. */
typedef struct reader {
    client *c;
    int fd;
    int *rcvto_ms; /* the connection's SO_RCVTIMEO, shared by copies of the reader */
    int64_t deadline;
    size_t body_max; /* the request's body_max, or BODY_MAX */
    size_t len;      /* bytes in c->rbuf */
    int got_any;     /* some byte of a response came */
    int eof;         /* the server closed its side */
    int err;         /* errno of a failed recv */
} reader;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t key;
static int key_ok;
static _Atomic unsigned long fork_gen;

/* ---- the thread's client -------------------------------------------------------------- */

static void
close_all(client *c)
{
    for (int i = 0; i < c->nconns; i++)
        close(c->conns[i].fd);
    c->nconns = 0;
}

static void
client_free(client *c)
{
    if (!c)
        return;
    close_all(c);
    free(c->hbuf);
    free(c->rbuf);
    msi_buf_free(&c->body);
    free(c);
}

static void
key_destroy(void *p)
{
    client_free(p);
}

static void
after_fork_child(void)
{
    fork_gen++;
}

static void
global_init(void)
{
    if (pthread_key_create(&key, key_destroy) != 0)
        return;
    pthread_atfork(NULL, NULL, after_fork_child);
    key_ok = 1;
}

static client *
get_client(msi_err *err)
{
    pthread_once(&once, global_init);
    if (!key_ok) {
        msi_errf(err, MS_ENOMEM, "out of memory (no thread key for the HTTP client)");
        return NULL;
    }
    client *c = pthread_getspecific(key);
    if (c && c->fork_gen != fork_gen) {
        close_all(c); /* the parent's connections: our copies go, theirs stay */
        c->fork_gen = fork_gen;
    }
    if (c)
        return c;
    c = calloc(1, sizeof *c);
    if (!c || pthread_setspecific(key, c) != 0) {
        free(c);
        msi_errf(err, MS_ENOMEM, "out of memory");
        return NULL;
    }
    c->fork_gen = fork_gen;
    return c;
}

unsigned long
msi_fork_generation(void)
{
    pthread_once(&once, global_init);
    return fork_gen;
}

void
msi_httpc_thread_release(void)
{
    pthread_once(&once, global_init);
    if (!key_ok)
        return;
    client *c = pthread_getspecific(key);
    pthread_setspecific(key, NULL);
    client_free(c);
}

/* Frees a buffer that grew past KEEP_BUF_MAX (one huge response must not stay per thread). */
static void
trim(char **buf, size_t *cap)
{
    if (*cap > KEEP_BUF_MAX) {
        free(*buf);
        *buf = NULL;
        *cap = 0;
    }
}

msi_buf *
msi_httpc_buf(void)
{
    msi_err err;
    client *c = get_client(&err);
    if (!c)
        return NULL;
    msi_buf_reset(&c->body, KEEP_BUF_MAX);
    return &c->body;
}

const char *
msi_httpc_dump(const json_t *j, size_t *len)
{
    msi_buf *b = msi_httpc_buf();
    if (!b)
        return NULL;
    size_t n = json_dumpb(j, b->p, b->cap, JSON_COMPACT | JSON_ENCODE_ANY);
    if (n == 0)
        return NULL;
    if (n >= b->cap) { /* did not fit (or no room for a NUL): grow and redo */
        if (msi_buf_reserve(b, n) != 0)
            return NULL;
        n = json_dumpb(j, b->p, b->cap, JSON_COMPACT | JSON_ENCODE_ANY);
        if (n == 0 || n >= b->cap)
            return NULL;
    }
    b->len = n;
    b->p[n] = '\0';
    *len = n;
    return b->p;
}

/* ---- connections ---------------------------------------------------------------------- */

static ms_status
parse_url(const msi_httpc_req *req, target *t, msi_err *err)
{
    const char *u = req->url;
    if (!u || strncasecmp(u, "http://", 7) != 0)
        return msi_errf(err, MS_EIO, "%s: only http:// URLs are supported", u ? u : "(no URL)");
    const char *a = u + 7;
    size_t alen = strcspn(a, "/?#");
    t->hostport = a;
    t->hostport_len = alen;
    t->path = a[alen] == '/' ? a + alen : a[alen] == '?' ? a + alen : "/";
    if (alen == 0)
        return msi_errf(err, MS_EIO, "%s: no host in the URL", u);
    const char *h = a, *colon;
    size_t hlen;
    if (a[0] == '[') {
        const char *end = memchr(a, ']', alen);
        if (!end)
            return msi_errf(err, MS_EIO, "%s: bad IPv6 address in the URL", u);
        h = a + 1;
        hlen = (size_t)(end - h);
        colon = end + 1 < a + alen && end[1] == ':' ? end + 1 : NULL;
    } else {
        colon = memchr(a, ':', alen);
        hlen = colon ? (size_t)(colon - a) : alen;
    }
    size_t plen = colon ? (size_t)(a + alen - colon - 1) : 0;
    if (hlen == 0 || hlen >= sizeof t->host || plen >= sizeof t->port || (colon && plen == 0))
        return msi_errf(err, MS_EIO, "%s: bad host or port in the URL", u);
    memcpy(t->host, h, hlen);
    t->host[hlen] = '\0';
    if (colon) {
        memcpy(t->port, colon + 1, plen);
        t->port[plen] = '\0';
        if (strspn(t->port, "0123456789") != plen)
            return msi_errf(err, MS_EIO, "%s: bad port in the URL", u);
    } else {
        memcpy(t->port, "80", 3);
    }
    /* The connection key: "unix:<path>" or "tcp:<host>:<port>" (no printf: hot path). */
    const char *a1 = req->unix_path ? "unix:" : "tcp:";
    const char *a2 = req->unix_path ? req->unix_path : t->host;
    const char *a3 = req->unix_path ? "" : ":";
    const char *a4 = req->unix_path ? "" : t->port;
    size_t l1 = strlen(a1), l2 = strlen(a2), l3 = strlen(a3), l4 = strlen(a4);
    if (l1 + l2 + l3 + l4 >= sizeof t->key)
        return msi_errf(err, MS_EIO, "%s: address too long", u);
    char *k = t->key;
    memcpy(k, a1, l1);
    memcpy(k + l1, a2, l2);
    memcpy(k + l1 + l2, a3, l3);
    memcpy(k + l1 + l2 + l3, a4, l4);
    k[l1 + l2 + l3 + l4] = '\0';
    return MS_OK;
}

static void
drop_conn(client *c, int i)
{
    close(c->conns[i].fd);
    c->conns[i] = c->conns[--c->nconns];
}

/* A kept connection to t that still looks alive (removed from the list: the caller owns
 * it now), or -1. `check`: look first (a poll without waiting) whether the server closed
 * it, for a request that must not be resent; any other request goes out on it at once and
 * is sent again on a new connection if the old one turns out dead (one syscall less per
 * request on the hot path of idempotent calls and lookups). */
static int
take_conn(client *c, const target *t, int64_t now, int check, int *rcvto_ms)
{
    for (int i = 0; i < c->nconns; i++) {
        if (strcmp(c->conns[i].key, t->key) != 0)
            continue;
        int fd = c->conns[i].fd;
        if (now - c->conns[i].last_used > IDLE_REUSE_MS) {
            drop_conn(c, i--);
            continue;
        }
        /* Nothing is outstanding on it: anything readable (data, EOF, an error) means the
         * server is done with it. */
        struct pollfd p = {fd, POLLIN, 0};
        if (check && poll(&p, 1, 0) != 0) {
            drop_conn(c, i--);
            continue;
        }
        *rcvto_ms = c->conns[i].rcvto_ms;
        c->conns[i] = c->conns[--c->nconns];
        return fd;
    }
    return -1;
}

static void
keep_conn(client *c, int fd, const target *t, int rcvto_ms)
{
    if (c->nconns == MAX_CONNS) { /* close the least recently used */
        int old = 0;
        for (int i = 1; i < c->nconns; i++)
            if (c->conns[i].last_used < c->conns[old].last_used)
                old = i;
        drop_conn(c, old);
    }
    conn *k = &c->conns[c->nconns++];
    k->fd = fd;
    k->rcvto_ms = rcvto_ms;
    k->last_used = msi_now_ms();
    memcpy(k->key, t->key, strlen(t->key) + 1);
}

/* Milliseconds to wait until deadline (INT64_MAX: forever, -1 for poll); 0 when past. */
static int
wait_ms(int64_t deadline)
{
    if (deadline == INT64_MAX)
        return -1;
    int64_t left = deadline - msi_now_ms();
    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

/* Connects fd to sa within deadline: 0, or an errno (ETIMEDOUT). */
static int
connect_within(int fd, const struct sockaddr *sa, socklen_t sl, int64_t deadline)
{
    if (connect(fd, sa, sl) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EAGAIN)
        return errno;
    for (;;) {
        struct pollfd p = {fd, POLLOUT, 0};
        int w = wait_ms(deadline);
        if (w == 0)
            return ETIMEDOUT;
        int n = poll(&p, 1, w);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            return ETIMEDOUT;
        int e = 0;
        socklen_t el = sizeof e;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
            return errno;
        return e;
    }
}

/* A connected socket becomes blocking: the wait for an answer is then one blocking recv
 * bounded by SO_RCVTIMEO (fill), not a poll and a recv. Every other send and recv passes
 * MSG_DONTWAIT. */
static void
set_blocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

/* A new connection to t: MS_OK with *fdp, MS_ETIMEDOUT, MS_EUNAVAILABLE. */
static ms_status
open_conn(const msi_httpc_req *req, const target *t, int64_t deadline, int *fdp, msi_err *err)
{
    int64_t cdl = msi_now_ms() + CONNECT_TIMEOUT_MS;
    if (deadline < cdl)
        cdl = deadline;
    int e = 0;
    if (req->unix_path) {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        if (strlen(req->unix_path) >= sizeof sa.sun_path)
            return msi_errf(err, MS_EUNAVAILABLE, "%s: unix socket path too long: %s", req->url,
                            req->unix_path);
        memcpy(sa.sun_path, req->unix_path, strlen(req->unix_path) + 1);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return msi_errf(err, MS_EUNAVAILABLE, "%s: socket: %s", req->url, strerror(errno));
        e = connect_within(fd, (struct sockaddr *)&sa, sizeof sa, cdl);
        if (e == 0) {
            set_blocking(fd);
            *fdp = fd;
            return MS_OK;
        }
        close(fd);
        if (e == ETIMEDOUT && cdl == deadline)
            return msi_errf(err, MS_ETIMEDOUT, "%s: deadline passed while connecting to %s",
                            req->url, req->unix_path);
        return msi_errf(err, e == ETIMEDOUT ? MS_ETIMEDOUT : MS_EUNAVAILABLE,
                        "%s: cannot connect to %s: %s", req->url, req->unix_path, strerror(e));
    }
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(t->host, t->port, &hints, &ai);
    if (rc != 0)
        return msi_errf(err, MS_EUNAVAILABLE, "%s: cannot resolve %s: %s", req->url, t->host,
                        gai_strerror(rc));
    e = ECONNREFUSED;
    for (struct addrinfo *p = ai; p; p = p->ai_next) {
        int fd =
            socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, p->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        e = connect_within(fd, p->ai_addr, p->ai_addrlen, cdl);
        if (e == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            set_blocking(fd);
            freeaddrinfo(ai);
            *fdp = fd;
            return MS_OK;
        }
        close(fd);
        if (e == ETIMEDOUT)
            break;
    }
    freeaddrinfo(ai);
    if (e == ETIMEDOUT && cdl == deadline)
        return msi_errf(err, MS_ETIMEDOUT, "%s: deadline passed while connecting to %s port %s",
                        req->url, t->host, t->port);
    return msi_errf(err, e == ETIMEDOUT ? MS_ETIMEDOUT : MS_EUNAVAILABLE,
                    "%s: cannot connect to %s port %s: %s", req->url, t->host, t->port,
                    strerror(e));
}

/* ---- the request ---------------------------------------------------------------------- */

/* Appends s (n bytes) to the head being built; -1 when out of memory. */
static int
put(client *c, size_t *len, const char *s, size_t n)
{
    if (msi_grow(&c->hbuf, &c->hcap, *len + n + 1) != 0)
        return -1;
    memcpy(c->hbuf + *len, s, n);
    *len += n;
    return 0;
}

#define PUTS(s) put(c, &n, (s), strlen(s))
#define PUTL(lit) put(c, &n, (lit), sizeof(lit) - 1)

/* Whether a caller header names `name` (then ours is not sent). */
static int
has_header(const msi_httpc_req *req, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; req->headers && req->headers[i] && i < MAX_HEADERS; i++)
        if (strncasecmp(req->headers[i], name, nl) == 0 && req->headers[i][nl] == ':')
            return 1;
    return 0;
}

/* The request head in c->hbuf; its length, or 0 when out of memory. */
static size_t
build_head(client *c, const msi_httpc_req *req, const target *t, const char *method, int expect)
{
    size_t n = 0;
    int bad = PUTS(method) || PUTL(" ") || PUTS(t->path) || PUTL(" HTTP/1.1\r\nHost: ") ||
              put(c, &n, t->hostport, t->hostport_len) ||
              PUTL("\r\nUser-Agent: libms/" MS_VERSION_STRING "\r\n");
    if (!bad && req->bearer)
        bad = PUTL("Authorization: Bearer ") || PUTS(req->bearer) || PUTL("\r\n");
    for (size_t i = 0; !bad && req->headers && req->headers[i] && i < MAX_HEADERS; i++) {
        const char *h = req->headers[i];
        const char *colon = strchr(h, ':');
        if (colon && colon[1 + strspn(colon + 1, " \t")] == '\0')
            continue; /* "Name:" with no value: send nothing (as libcurl does) */
        bad = PUTS(h) || PUTL("\r\n");
    }
    int with_len = req->body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                   strcmp(method, "PATCH") == 0;
    if (!bad && req->body && !has_header(req, "Content-Type"))
        bad = PUTL("Content-Type: application/json\r\n");
    if (!bad && with_len) {
        char num[24];
        char *e = msi_u64_text(num, req->body ? req->body_len : 0);
        bad = PUTL("Content-Length: ") || put(c, &n, num, (size_t)(e - num)) || PUTL("\r\n");
    }
    if (!bad && expect)
        bad = PUTL("Expect: 100-continue\r\n");
    if (!bad)
        bad = PUTL("\r\n");
    return bad ? 0 : n;
}

#undef PUTS
#undef PUTL

/* ---- reading the response ------------------------------------------------------------- */

/* Logs, once per process, that SO_RCVTIMEO could not be set (fill then waits with poll). */
static void
rcvtimeo_failed(int e)
{
    static _Atomic int logged;
    if (!atomic_exchange(&logged, 1))
        msi_log(1, "setsockopt(SO_RCVTIMEO) failed (%s): waiting for answers with poll instead",
                strerror(e));
}

/* Reads more into c->rbuf (at least `room` bytes of space made): >0 bytes, 0 EOF (r->eof),
 * -1 error (r->err; ETIMEDOUT when the deadline passed), -2 out of memory. `wait_first`:
 * wait in the first recv (right after a request, the answer cannot be there yet); else it
 * first takes what is there and waits only if nothing is. */
static ssize_t
fill(reader *r, int wait_first)
{
    client *c = r->c;
    if (r->len + 4096 + 1 > r->body_max + HEAD_MAX)
        return -2;
    if (msi_grow(&c->rbuf, &c->rcap, r->len + 4096 + 1) != 0)
        return -2;
    int wait = wait_first;
    for (;;) {
        int flags = MSG_DONTWAIT;
        if (wait) {
            /* One blocking recv, bounded by SO_RCVTIMEO: set only when the one in place
             * would overshoot the deadline by more than 2 ms + 1/32 of the time left (so a
             * run of calls with similar deadlines sets it once). One set too short ends
             * early with EAGAIN and is set again to the time left. */
            int w = wait_ms(r->deadline);
            if (w == 0) {
                r->err = ETIMEDOUT;
                return -1;
            }
            int cur = *r->rcvto_ms;
            int want = w < 0 ? 0 : w;
            int slack = w < 0 ? 0 : 2 + w / 32;
            flags = 0;
            if (cur < 0 || (want == 0) != (cur == 0) || (want && cur > want + slack)) {
                struct timeval tv = {want / 1000, (want % 1000) * 1000};
                if (setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0) {
                    *r->rcvto_ms = want;
                } else {
                    /* The timeout in place is unknown (maybe none): a blocking recv could
                     * wait past the deadline, for ever. Wait with poll for the time left
                     * instead, then take what came without waiting. */
                    *r->rcvto_ms = -1; /* try setting it again next time */
                    rcvtimeo_failed(errno);
                    struct pollfd p = {r->fd, POLLIN, 0};
                    if (poll(&p, 1, w) < 0 && errno != EINTR) {
                        r->err = errno;
                        return -1;
                    }
                    flags = MSG_DONTWAIT; /* nothing yet: EAGAIN, and the deadline is checked */
                }
            }
        }
        ssize_t got = recv(r->fd, c->rbuf + r->len, c->rcap - r->len - 1, flags);
        if (got > 0) {
            r->len += (size_t)got;
            r->got_any = 1;
            return got;
        }
        if (got == 0) {
            r->eof = 1;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait && wait_ms(r->deadline) > 0)
                *r->rcvto_ms = -1; /* ended early: set it to the time left */
            wait = 1;
            continue;
        }
        r->err = errno;
        return -1;
    }
}

/* What reading (a head, a body) or a whole exchange came to. */
typedef enum outcome {
    XF_OK,        /* a response (or the part asked for) */
    XF_TIMEOUT,   /* the deadline passed */
    XF_LOST,      /* the connection failed or ended; see got_any, and err (ETIMEDOUT when a
                     read ran out of time) */
    XF_NOMEM,     /* out of memory, or a response too large */
    XF_MALFORMED, /* not an HTTP response */
} outcome;

/* A read that ended without data (fill: 0 or -1) or -2 (out of memory), as an outcome. */
static outcome
fill_failed(ssize_t got)
{
    return got == -2 ? XF_NOMEM : XF_LOST;
}

/* Reads until a head (final or 1xx) is complete at the start of c->rbuf and parses it
 * (msi_http_parse_response): XF_OK with *h, XF_LOST (see r), XF_NOMEM, XF_MALFORMED (not a
 * response head, or none within HEAD_MAX bytes). */
static outcome
read_head(reader *r, msi_http_resp_head *h, int wait_first)
{
    for (;;) {
        switch (msi_http_parse_response(r->c->rbuf ? r->c->rbuf : "", r->len, HEAD_MAX, h)) {
        case MSI_HTTP_RESP_DONE:
            return XF_OK;
        case MSI_HTTP_RESP_MALFORMED:
        case MSI_HTTP_RESP_TOO_LONG:
            return XF_MALFORMED;
        case MSI_HTTP_RESP_MORE:
            break;
        }
        ssize_t got = fill(r, wait_first);
        wait_first = 0;
        if (got <= 0)
            return fill_failed(got);
    }
}

/* Drops the first n bytes of the buffer (a head consumed). */
static void
consume(reader *r, size_t n)
{
    memmove(r->c->rbuf, r->c->rbuf + n, r->len - n);
    r->len -= n;
}

/* Reads the body after head h (msi_http_response_framing); on XF_OK the body is at
 * c->rbuf + h->head_len, *blen bytes, NUL-terminated, and *reusable says whether the
 * connection can serve another request (the framing allows it, neither side said close,
 * and no byte came after the response). Else XF_LOST (see r), XF_NOMEM (also a body over
 * the request's body_max), XF_MALFORMED (bad chunked framing). */
static outcome
read_body(reader *r, const msi_http_resp_head *h, int no_body, size_t *blen, int *reusable)
{
    size_t off = h->head_len;
    *reusable = h->keep_alive;
    switch (msi_http_response_framing(h, no_body)) {
    case MSI_HTTP_BODY_NONE:
        *blen = 0;
        r->c->rbuf[off] = '\0';
        *reusable = *reusable && r->len == off;
        return XF_OK;
    case MSI_HTTP_BODY_CHUNKED: {
        /* Decoded in place (msi_http_dechunk): the data is copied down to `out` as it comes,
         * and the raw bytes consumed are dropped before each read, so the buffer holds the
         * body and one read's worth of framing. */
        msi_http_chunked st = {0};
        size_t in = off, out = off;
        for (;;) {
            int status = 0;
            int rc = msi_http_dechunk(&st, r->c->rbuf, &in, r->len, &out, UINT64_MAX, &status);
            if (rc == MSI_HTTP_PARSE_DONE && st.total > r->body_max)
                return XF_NOMEM;
            if (rc == MSI_HTTP_PARSE_DONE)
                break;
            if (rc == MSI_HTTP_PARSE_ERROR)
                return status == 413 ? XF_NOMEM : XF_MALFORMED;
            if (st.total + st.left > r->body_max)
                return XF_NOMEM;
            r->len = in = out; /* MORE: every byte up to r->len was consumed */
            ssize_t got = fill(r, 0);
            if (got <= 0)
                return fill_failed(got);
        }
        *reusable = *reusable && r->len == in;
        *blen = out - off;
        r->c->rbuf[out] = '\0';
        return XF_OK;
    }
    case MSI_HTTP_BODY_LENGTH: {
        if ((uint64_t)h->content_length > r->body_max)
            return XF_NOMEM;
        size_t want = off + (size_t)h->content_length;
        if (msi_grow(&r->c->rbuf, &r->c->rcap, want + 1) != 0)
            return XF_NOMEM;
        while (r->len < want) {
            ssize_t got = fill(r, 0);
            if (got <= 0)
                return fill_failed(got);
        }
        *reusable = *reusable && r->len == want;
        *blen = (size_t)h->content_length;
        r->c->rbuf[want] = '\0';
        return XF_OK;
    }
    case MSI_HTTP_BODY_UNTIL_CLOSE:
        break;
    }
    /* No framing: the body ends when the server closes. */
    *reusable = 0;
    for (;;) {
        ssize_t got = fill(r, 0);
        if (got == 0)
            break;
        if (got < 0)
            return fill_failed(got);
    }
    *blen = r->len - off;
    r->c->rbuf[r->len] = '\0';
    return XF_OK;
}

/* ---- one exchange --------------------------------------------------------------------- */

/* Sends iov[0..n) on fd; stops early (returning 1) when the server starts answering.
 * 0 when all was sent, -1 error (*e), -2 deadline. *sent_bytes counts what the kernel took. */
static int
send_all(int fd, struct iovec *iov, int n, int64_t deadline, size_t *sent_bytes, int *e)
{
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    while (n > 0 && iov[0].iov_len == 0)
        iov++, n--;
    while (n > 0) {
        mh.msg_iov = iov;
        mh.msg_iovlen = (size_t)n;
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                *e = errno;
                return -1;
            }
            struct pollfd p = {fd, POLLOUT | POLLIN, 0};
            int wt = wait_ms(deadline);
            int k = wt == 0 ? 0 : poll(&p, 1, wt);
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0) {
                *e = errno;
                return -1;
            }
            if (k == 0)
                return -2;
            if (p.revents & POLLIN)
                return 1; /* an early answer (or EOF): read it */
            continue;
        }
        *sent_bytes += (size_t)w;
        size_t left = (size_t)w;
        while (n > 0 && left >= iov[0].iov_len) {
            left -= iov[0].iov_len;
            iov++, n--;
        }
        if (n > 0) {
            iov[0].iov_base = (char *)iov[0].iov_base + left;
            iov[0].iov_len -= left;
        }
    }
    return 0;
}

/* One request on fd and its response. *body_sent: whether a body byte left; *reusable:
 * whether fd can be kept. */
static outcome
exchange(client *c, int fd, int *rcvto_ms, const msi_httpc_req *req, size_t hlen, int expect,
         int no_body, int64_t deadline, reader *r, msi_http_resp_head *h, size_t *blen,
         int *body_sent, int *reusable, int *send_err)
{
    memset(r, 0, sizeof *r);
    r->c = c;
    r->fd = fd;
    r->rcvto_ms = rcvto_ms;
    r->deadline = deadline;
    r->body_max = req->body_max && req->body_max < BODY_MAX ? req->body_max : BODY_MAX;
    *reusable = 0;
    size_t blen_req = req->body ? req->body_len : 0;
    struct iovec iov[2] = {{c->hbuf, hlen}, {(void *)(uintptr_t)req->body, blen_req}};
    size_t sent_bytes = 0;
    int early = 0;
    int rc = send_all(fd, iov, expect ? 1 : 2, deadline, &sent_bytes, send_err);
    if (!expect && sent_bytes > hlen)
        *body_sent = 1;
    if (rc == -2)
        return XF_TIMEOUT;
    if (rc == 1)
        early = 1;
    int wait_first = 1;
    if (expect && rc == 0) {
        /* Wait for "100 Continue" (or an early final answer) before the body. */
        int64_t until = msi_now_ms() + EXPECT_WAIT_MS;
        reader w = *r;
        w.deadline = until < deadline ? until : deadline;
        outcome k = read_head(&w, h, 1);
        r->len = w.len;
        r->got_any = w.got_any;
        r->eof = w.eof;
        r->err = w.err;
        if (k == XF_NOMEM || k == XF_MALFORMED)
            return k;
        if (k == XF_LOST && !(w.err == ETIMEDOUT && msi_now_ms() < deadline))
            return w.err == ETIMEDOUT ? XF_TIMEOUT : XF_LOST;
        if (k == XF_OK && h->status >= 200) {
            early = 1; /* a final answer: the body is not sent */
        } else {
            if (k == XF_OK)
                consume(r, h->head_len); /* 100 Continue */
            size_t bsent = 0;
            rc = send_all(fd, iov + 1, 1, deadline, &bsent, send_err);
            if (bsent)
                *body_sent = 1;
            if (rc == -2)
                return XF_TIMEOUT;
            if (rc == 1)
                early = 1;
            wait_first = r->len == 0;
        }
    }
    if (rc == -1 && !r->got_any) {
        /* The send failed: an answer may still be waiting to be read (a refusal sent before
         * the server closed); if not, the connection is lost. */
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN))
            return XF_LOST;
        wait_first = 0;
    }
    for (;;) {
        outcome k = read_head(r, h, wait_first && !early);
        wait_first = 0;
        if (k == XF_LOST)
            return r->err == ETIMEDOUT ? XF_TIMEOUT : XF_LOST;
        if (k != XF_OK)
            return k;
        if (h->status >= 200 || h->status == 101)
            break;
        consume(r, h->head_len); /* 1xx: the final answer follows */
    }
    outcome k = read_body(r, h, no_body, blen, reusable);
    if (k == XF_LOST)
        return r->err == ETIMEDOUT ? XF_TIMEOUT : XF_LOST;
    if (k != XF_OK)
        return k;
    if (early || rc != 0)
        *reusable = 0; /* the request was not sent whole: the server closes */
    return XF_OK;
}

ms_status
msi_httpc_do(const msi_httpc_req *req, msi_httpc_resp *resp, msi_err *err)
{
    memset(resp, 0, sizeof *resp);
    resp->retry_after_s = -1;
    resp->body = "";
    client *c = get_client(err);
    if (!c)
        return MS_ENOMEM;
    int64_t deadline =
        req->deadline_ms && req->deadline_ms != INT64_MAX ? req->deadline_ms : INT64_MAX;
    int64_t now = msi_now_ms();
    if (deadline != INT64_MAX && deadline <= now)
        return msi_errf(err, MS_ETIMEDOUT, "%s: deadline passed before sending", req->url);
    target t;
    ms_status st = parse_url(req, &t, err);
    if (st != MS_OK)
        return st;
    const char *method = req->method ? req->method : req->body ? "POST" : "GET";
    int no_body = strcmp(method, "HEAD") == 0;
    int expect = req->body && req->body_len > EXPECT_MIN;
    trim(&c->rbuf, &c->rcap);
    trim(&c->hbuf, &c->hcap);
    size_t hlen = build_head(c, req, &t, method, expect);
    if (!hlen)
        return msi_errf(err, MS_ENOMEM, "%s: out of memory", req->url);

    for (int attempt = 0;; attempt++) {
        int rcvto_ms = 0; /* a new connection has no SO_RCVTIMEO */
        int fd = attempt == 0 ? take_conn(c, &t, now, req->no_resend, &rcvto_ms) : -1;
        int reused = fd >= 0;
        if (!reused) {
            st = open_conn(req, &t, deadline, &fd, err);
            if (st == MS_EUNAVAILABLE && resp->sent) {
                /* A resend found no server: the first copy may have been received. */
                char why[MSI_ERR_MAX];
                snprintf(why, sizeof why, "%s", err ? err->msg : "");
                return msi_errf(err, MS_EINDOUBT,
                                "%s: connection failed after the request was sent (%s)", req->url,
                                why);
            }
            if (st != MS_OK)
                return st;
        }
        reader r;
        msi_http_resp_head h;
        size_t blen = 0;
        int body_sent = 0, reusable = 0, send_err = 0;
        outcome x = exchange(c, fd, &rcvto_ms, req, hlen, expect, no_body, deadline, &r, &h, &blen,
                             &body_sent, &reusable, &send_err);
        if (body_sent)
            resp->sent = 1;
        if (x == XF_OK) {
            if (reusable)
                keep_conn(c, fd, &t, rcvto_ms);
            else
                close(fd);
            resp->status = h.status;
            resp->body = c->rbuf + h.head_len;
            resp->len = blen;
            resp->retry_after_s = h.retry_after_s;
            resp->head = c->rbuf;
            resp->head_len = h.head_len;
            return MS_OK;
        }
        close(fd);
        int e = r.err ? r.err : send_err;
        switch (x) {
        case XF_TIMEOUT:
            return msi_errf(err, MS_ETIMEDOUT, "%s: deadline passed (no answer in time)%s",
                            req->url, resp->sent ? "; the request was sent" : "");
        case XF_NOMEM:
            return msi_errf(err, MS_ENOMEM,
                            "%s: out of memory for the response (or it is "
                            "larger than %zu bytes)",
                            req->url,
                            req->body_max && req->body_max < BODY_MAX ? req->body_max
                                                                      : (size_t)BODY_MAX);
        case XF_MALFORMED:
            return msi_errf(err, resp->sent ? MS_EINDOUBT : MS_EUNAVAILABLE,
                            "%s: the server's answer is not HTTP/1.x", req->url);
        default:
            break;
        }
        /* XF_LOST. A kept connection that died before any byte of the answer: the server
         * closed it (idle, restart) just as we used it. Send again on a new one, unless the
         * request must not be resent and its body had left. */
        if (reused && !r.got_any && attempt == 0) {
            if (!(req->no_resend && resp->sent))
                continue;
            resp->resend_refused = 1;
            return msi_errf(err, MS_EINDOUBT,
                            "%s: connection lost after the request was sent; not resent (%s)",
                            req->url, e ? strerror(e) : "closed by the server");
        }
        if (resp->sent)
            return msi_errf(err, MS_EINDOUBT,
                            "%s: connection failed after the request was sent (%s)", req->url,
                            e ? strerror(e) : "closed by the server");
        return msi_errf(err, MS_EUNAVAILABLE, "%s: connection failed (%s)", req->url,
                        e ? strerror(e) : "closed by the server");
    }
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

int
msi_httpc_header(const msi_httpc_resp *resp, const char *name, char *out, size_t outlen)
{
    if (!resp->head || !outlen)
        return -1;
    size_t nlen = strlen(name);
    const char *p = resp->head, *end = resp->head + resp->head_len;
    const char *nl = memchr(p, '\n', (size_t)(end - p)); /* past the status line */
    while (nl && nl + 1 < end) {
        p = nl + 1;
        nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if ((size_t)(le - p) <= nlen || strncasecmp(p, name, nlen) != 0 || p[nlen] != ':')
            continue;
        const char *v = p + nlen + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        while (le > v && (le[-1] == '\r' || le[-1] == ' ' || le[-1] == '\t'))
            le--;
        size_t n = (size_t)(le - v);
        if (n >= outlen)
            return -1;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
                return -1;
        memcpy(out, v, n);
        out[n] = '\0';
        return 0;
    }
    return -1;
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

ms_status
msi_httpc_error_status(const msi_httpc_resp *resp, int *app_code)
{
    if (app_code)
        *app_code = 0;
    msi_err perr = {{0}};
    json_t *j = resp->len ? msi_json_parse(resp->body, resp->len, &perr) : NULL;
    json_t *e = json_object_get(j, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    ms_status st =
        msi_status_of_http(resp->status < 0 || resp->status > 999 ? 0 : (int)resp->status);
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
