/*
 * src/net: the second layer, over src/base only (docs/design.md, "Layers"). It owns HTTP/1.1:
 * the parser of requests and responses (http_parse.c, pure and fuzzed), the server (http.c)
 * and the client (httpc.c, httpc.h). It knows nothing of services, calls or msd: the library
 * (src/lib) and msd build on it. Threading: the server's threads are its own (below); the client
 * keeps one state per thread and takes no lock on the request path (httpc.h).
 *
 * http.h: a small HTTP/1.1 server of our own over plain sockets, shared by the instance host
 * (src/lib/host/) and msd. Not installed. The server is http.c; the parser of requests (the
 * server's) and of responses (the client's, httpc.c) is http_parse.c: pure functions over a
 * byte buffer, declared at the end of this file so that unit tests and the fuzzers reach them.
 *
 * Design notes
 * - Threading: one accept thread per server and one detached thread per connection, which
 *   reads its requests and runs their handlers, so a handler may block (run a service call,
 *   hold a lookup until an instance is ready) without stalling any other connection: a
 *   health probe arriving while every call slot is busy gets its own thread and is
 *   answered at once. Keep-alive clients reuse their connection, so a thread is created
 *   once per connection, not per request, and a call runs on the thread that read it (no
 *   hand-off, no extra context switch). Connections (hence threads) are bounded by
 *   `max_conns`: past it a new connection is answered 503 and closed at once. Concurrency
 *   limits (an instance's `concurrency`) are the user's business: the host takes a
 *   semaphore in its call handler and nowhere else. Threads are named "ms-accept" and
 *   "ms-http".
 * - Routing: a route matches on method and path. A `prefix` ending in '/' matches every
 *   path below it ("/v1/call/" matches "/v1/call/add"; msi_http_rest() gives "add"); any
 *   other prefix matches the path exactly. The first matching route wins. A path matched by
 *   no route gets 404; a path matched with another method gets 405. The path is
 *   percent-decoded (a decoded NUL is a 400) and the query string is split off it. Errors
 *   are JSON `{"error":{"code":"MS_E...","message":"..."}}` (docs/protocol.md).
 * - Bodies are accumulated up to the route's `max_body` (else the server's). A request whose
 *   Content-Length is larger is answered 413 at once, before the body is read (the
 *   connection is then closed); a chunked body that grows past the limit is discarded as
 *   it arrives (never buffered) and answered 413 when it ends. The body buffer belongs to
 *   the connection and is reused by its next requests (no allocation per request).
 * - A route may have an `early` hook, run when the headers are in and before the body is
 *   read: it may reply (e.g. 401, 503) so a large body is never read for a refused request.
 *   `Expect: 100-continue` is answered only once routing, the body limit and the hook have
 *   let the request through.
 * - Limits: the head (request line and headers) up to `max_header` bytes (431 past it, 414
 *   when the request line alone is longer, before routing) and 64 header fields (431); a
 *   connection idle for `timeout_s` seconds is closed, and so is one whose request (head and
 *   body) is not complete within `timeout_s` of its first byte (408).
 *
 * Ownership: msi_http_req and everything it points to belongs to the server and is valid
 * only during the handler call. Replies copy their body.
 */
#ifndef MSI_HTTP_H
#define MSI_HTTP_H

#include "base.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct msi_http msi_http;
typedef struct msi_http_req msi_http_req;

/* Runs on the connection's thread with the full request; must reply (msi_http_reply*) at
 * most once. If it returns without replying the server answers 500. */
typedef void (*msi_http_handler)(msi_http_req *req, void *arg);
/* Runs when the headers are in, before the body; replies to refuse the request, or
 * returns without replying to let it proceed. */
typedef void (*msi_http_early)(msi_http_req *req, void *arg);

typedef struct msi_http_route {
    const char *method; /* "GET", "POST", ...; NULL: any method */
    const char *prefix; /* "/v1/call/" (a prefix: ends in '/') or "/v1/health" (exact) */
    msi_http_handler fn;
    void *arg;
    size_t max_body;      /* 0: the server's max_body */
    msi_http_early early; /* NULL: none */
} msi_http_route;

typedef struct msi_http_config {
    /* Where to listen, exactly one of: */
    int listen_fd;         /* a bound, listening socket (handed over); -1: none */
    const char *host_port; /* "127.0.0.1:4999", "[::1]:0"; port 0 picks one */
    const char *unix_path; /* a unix socket path (replaced if it exists, mode 0600) */
    /* Routes, tried in order. The array must outlive the server. */
    const msi_http_route *routes;
    size_t nroutes;
    size_t max_body;    /* default body limit (0: 1 MiB) */
    size_t max_header;  /* header limit (0: 8 KiB) */
    unsigned timeout_s; /* idle timeout, and time to receive one request (0: 10 s) */
    unsigned max_conns; /* connections (= threads) at once (0: 1024) */
    const char *name;   /* for log messages ("instance", "msd") */
} msi_http_config;

/* An initialiser with every field at its default and no listener. */
#define MSI_HTTP_CONFIG_INIT                                                                       \
    {                                                                                              \
        -1, NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL                                                  \
    }

/*
 * Starts a server; its threads answer requests until msi_http_stop. On failure returns a
 * status with err filled. A listen_fd passed in belongs to the server from then on (closed
 * by msi_http_quiesce or msi_http_stop, also on failure); it is made blocking. Any thread.
 */
ms_status msi_http_start(const msi_http_config *cfg, msi_http **out, msi_err *err);
/* The bound address, "127.0.0.1:40123" (or the unix path). */
const char *msi_http_addr(const msi_http *h);
uint16_t msi_http_port(const msi_http *h);
/* Requests being processed now (headers read, reply not yet fully sent); idle keep-alive
 * connections do not count. A drain waits for 0 so no reply is cut by msi_http_stop. */
long msi_http_active(const msi_http *h);
/* Stops accepting connections: the listening socket is shut down and closed, so new ones
 * are refused at once; open connections are still served. Idempotent; any thread. */
void msi_http_quiesce(msi_http *h);
/* Stops the server: stops accepting, closes idle connections and those still reading a
 * request, lets running handlers finish and send their reply, waits for every connection
 * thread to end, removes a unix socket file it created, frees h. Accepts NULL. Safe right
 * after msi_http_start and with connections mid-request. Must not be called from a
 * handler (it would wait for itself). */
void msi_http_stop(msi_http *h);

/* ---- the request (valid during the handler only) ---- */
const char *msi_http_method(const msi_http_req *r);
const char *msi_http_path(const msi_http_req *r);
/* The path after a route's '/'-ending prefix ("add" for "/v1/call/add"); "" for exact. */
const char *msi_http_rest(const msi_http_req *r);
/* A header (case-insensitive name; the first of several) or NULL. */
const char *msi_http_header(const msi_http_req *r, const char *name);
/* A query argument (?build=...), percent- and '+'-decoded, or NULL. "?a" gives "". */
const char *msi_http_query(const msi_http_req *r, const char *name);
/* When the request's headers arrived (msi_now_ms clock): relative deadlines count from it. */
int64_t msi_http_arrival_ms(const msi_http_req *r);
/* The body (NUL-terminated for convenience; len excludes the NUL). Empty in `early`. */
const char *msi_http_body(const msi_http_req *r, size_t *len);
/* The peer's uid on a unix socket (SO_PEERCRED); -1 on TCP or failure. */
int msi_http_peer_uid(const msi_http_req *r, uid_t *uid);
/* Whether the request has a reply already. */
int msi_http_replied(const msi_http_req *r);

/*
 * Whether the request carries "Authorization: Bearer T" with T one of tokens[0..n-1]
 * (NULL entries are skipped). Constant time in the tokens' contents. Returns 0 when n is 0
 * or every token is NULL.
 */
int msi_http_bearer_ok(const msi_http_req *r, const char *const *tokens, size_t n);
/*
 * Whether the request carries "Authorization: Bearer T" with T non-empty and SHA-256(T),
 * in lowercase hex, equal to sha256_hex (64 digits): how an instance recognises the admin
 * token without holding it. Constant time in sha256_hex's content. 0 when sha256_hex is
 * NULL or not 64 characters long.
 */
int msi_http_bearer_sha256_ok(const msi_http_req *r, const char *sha256_hex);
/* Constant-time comparison of a presented token with an expected one (1: equal). */
int msi_http_token_eq(const char *presented, size_t plen, const char *expected);

/* ---- replies: at most one per request ---- */
/* Adds a header to the coming reply (e.g. "Retry-After", "1"); copied. Up to 8.
 * "Connection: close" makes the server close the connection after the reply. */
void msi_http_add_header(msi_http_req *r, const char *name, const char *value);
/* A reply with any body (copied). */
void msi_http_reply(msi_http_req *r, int status, const char *content_type, const void *body,
                    size_t len);
/* A JSON reply; takes the reference to j (NULL: "{}"). */
void msi_http_reply_json(msi_http_req *r, int status, json_t *j);
/* {"error":{"code":ms_status_name(st),"message":...}} with msi_status_http(st); 429 and
 * 503 get "Retry-After: 1". */
void msi_http_reply_error(msi_http_req *r, ms_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same with an explicit HTTP status and extra members merged into "error" (NULL: none;
 * takes the reference), e.g. {"app_code":7}. */
void msi_http_reply_error_ex(msi_http_req *r, int http_status, ms_status st, json_t *extra,
                             const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- the request parser (http_parse.c): pure, no I/O, no allocation ----------------- */

#define MSI_HTTP_MAX_FIELDS 64 /* header fields in a request (431 past it) */

enum {
    MSI_HTTP_PARSE_ERROR = -1, /* malformed: see status and error */
    MSI_HTTP_PARSE_MORE = 0,   /* incomplete: call again with more bytes */
    MSI_HTTP_PARSE_DONE = 1,   /* complete */
};

/* A header field, as offsets into the parsed buffer; the value without surrounding
 * whitespace. */
typedef struct msi_http_field {
    uint32_t name, name_len, value, value_len;
} msi_http_field;

typedef struct msi_http_head {
    size_t head_len;             /* request line, fields and the empty line */
    uint32_t method, method_len; /* offsets into the buffer */
    uint32_t target, target_len; /* the request target, as sent */
    int minor;                   /* HTTP/1.minor: 0 or 1 (1.2 and up count as 1) */
    /* Framing and options, from the fields. */
    int chunked;         /* Transfer-Encoding: chunked */
    int has_length;      /* Content-Length present */
    uint64_t length;     /* its value; UINT64_MAX when it does not fit */
    int keep_alive;      /* by version and Connection */
    int expect_continue; /* Expect: 100-continue (HTTP/1.1) */
    /* On MSI_HTTP_PARSE_ERROR: */
    int status;        /* 400, 414, 417, 431, 501 or 505 */
    const char *error; /* why, static text */
    int nfields;
    msi_http_field fields[MSI_HTTP_MAX_FIELDS];
} msi_http_head;

/*
 * Parses the head of the request at buf[0..len): the request line ("METHOD SP target SP
 * HTTP/1.x", CRLF or a bare LF), header fields ("name: value"; obs-fold, whitespace before
 * the colon, control characters and NUL are 400) and the empty line; empty lines before
 * the request line are skipped. Needs no more than max_header bytes (431, or 414 when the
 * request line alone is longer), and at most MSI_HTTP_MAX_FIELDS fields (431). Then the
 * framing: Content-Length (digits only; several must agree), Transfer-Encoding (only
 * "chunked", else 501; with Content-Length or in HTTP/1.0, 400), Connection, Expect (other
 * than 100-continue: 417). Versions other than 1.x: 505. Fills *out (offsets into buf);
 * reads nothing past buf[len). Whenever it returns DONE for a buffer, it returns MORE for
 * every shorter prefix of it, and an ERROR for a prefix stays the same ERROR (same status)
 * as bytes are added.
 */
int msi_http_parse_head(const char *buf, size_t len, size_t max_header, msi_http_head *out);

/* State of a chunked body being decoded; zero it before the first call. */
typedef struct msi_http_chunked {
    int state;      /* private */
    uint64_t left;  /* bytes left in the current chunk (total + left bounds the body so far) */
    size_t line;    /* private: bytes of the current size or trailer line */
    size_t trailer; /* private: bytes of trailers so far */
    uint64_t total; /* bytes of data decoded so far, kept or not */
} msi_http_chunked;

/*
 * Decodes a chunked body in place. Consumes the raw bytes buf[*in .. len) and writes the
 * data to buf[*out ..] (never past *in: *out <= *in holds throughout), as long as `total`
 * stays within `keep`; data past it is counted in total and dropped. Chunk extensions are
 * ignored, trailer fields skipped. Returns MSI_HTTP_PARSE_DONE with *in just past the
 * body's last byte, MSI_HTTP_PARSE_MORE when every byte given was consumed and the body
 * goes on, or MSI_HTTP_PARSE_ERROR with *status 400 (malformed, or a size line over 4 KiB),
 * 413 (a chunk size of 2^60 or more) or 431 (trailers over 8 KiB). Bare LF line ends are
 * accepted. The same decoder reads chunked responses in the client (httpc.c).
 */
int msi_http_dechunk(msi_http_chunked *st, char *buf, size_t *in, size_t len, size_t *out,
                     uint64_t keep, int *status);

/* ---- the response parser (http_parse.c): the client's side (httpc.c), pure as well ---- */

/* What msi_http_parse_response found. */
typedef enum msi_http_resp_rc {
    MSI_HTTP_RESP_TOO_LONG = -2,  /* no empty line within max_head bytes */
    MSI_HTTP_RESP_MALFORMED = -1, /* a complete head that is not an HTTP/1.x response */
    MSI_HTTP_RESP_MORE = 0,       /* no complete head yet: call again with more bytes */
    MSI_HTTP_RESP_DONE = 1,       /* a complete head, in *out */
} msi_http_resp_rc;

/* The head of a response: what the client needs of it. */
typedef struct msi_http_resp_head {
    size_t head_len;        /* status line, fields and the empty line */
    int status;             /* 100..999: the three digits of the status line */
    int minor;              /* HTTP/1.minor: 0 or 1 */
    int64_t content_length; /* -1: none; else 0 .. 10^18 - 1 (the last field wins) */
    int chunked;            /* Transfer-Encoding lists "chunked" (the last field wins) */
    int keep_alive;         /* HTTP/1.1 without "Connection: close", or HTTP/1.0 with
                               "Connection: keep-alive" and without "close" */
    int retry_after_s;      /* Retry-After in seconds, 0..86399; -1: none, or a date */
} msi_http_resp_head;

/*
 * Parses the head of the response at buf[0..len), up to and including its first empty line
 * (CRLF or a bare LF). The status line must start "HTTP/1.0 " or "HTTP/1.1 " and three
 * digits, the first 1-9 (what follows, the reason, is not looked at); field lines are
 * "name: value" (lines without a colon are skipped, names matched case-insensitively,
 * values trimmed of SP and HTAB). Read: Content-Length (1 to 18 digits, else MALFORMED),
 * Transfer-Encoding (a list holding "chunked"), Connection (lists holding "close",
 * "keep-alive"), Retry-After (leading digits, up to 6, below 86400; anything else is
 * ignored). Other fields are ignored.
 * Guarantees: reads nothing past buf[min(len, max_head)); DONE only with head_len <=
 * max_head and <= len, and then the result depends on buf[0..head_len) alone (bytes after
 * the head, a body or a next response, are never looked at); every prefix shorter than
 * head_len is MORE; TOO_LONG exactly when the first max_head bytes hold no complete head,
 * so it stays TOO_LONG as bytes are added, and so does MALFORMED. Pure: no I/O, no
 * allocation; *out is filled on DONE (and zeroed with -1 for the absent values otherwise).
 */
msi_http_resp_rc msi_http_parse_response(const char *buf, size_t len, size_t max_head,
                                         msi_http_resp_head *out);

/* How the body of a response is framed (RFC 9112 section 6.3, for the cases we meet). */
typedef enum msi_http_body_framing {
    MSI_HTTP_BODY_NONE,        /* none: a response to HEAD, or 204, 304 */
    MSI_HTTP_BODY_CHUNKED,     /* chunked (msi_http_dechunk); wins over Content-Length */
    MSI_HTTP_BODY_LENGTH,      /* content_length bytes */
    MSI_HTTP_BODY_UNTIL_CLOSE, /* up to the end of the connection (which is then not kept) */
} msi_http_body_framing;

/* The framing of the body after head h; head_request: the request was a HEAD. (1xx heads
 * are not asked about: the client skips them, except 101, framed like any other.) */
msi_http_body_framing msi_http_response_framing(const msi_http_resp_head *h, int head_request);

/*
 * Percent-decodes s[0..len) in place (and '+' to a space when plus is set); a '%' not
 * followed by two hex digits stays as it is. Returns the decoded length; *nul is set when
 * a NUL was decoded.
 */
size_t msi_http_unescape(char *s, size_t len, int plus, int *nul);

#endif /* MSI_HTTP_H */
