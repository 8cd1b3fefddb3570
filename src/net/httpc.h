/*
 * httpc.h: a small HTTP/1.1 client for libms (client, heartbeats) and msctl, over plain
 * sockets (TCP or a unix socket). Part of src/net (see http.h). Not installed.
 *
 * Design notes
 * - Threading: every thread has its own client, created on its first request and kept
 *   (pthread key; freed when the thread exits or by msi_httpc_thread_release). It keeps
 *   connections alive (up to 32, one per instance typically), so a call to an instance it
 *   already spoke to costs no connect. Nothing is shared between threads, so no lock is
 *   taken on the request path. A forked child discards the connections it inherited (they
 *   belong to the parent) and makes fresh ones.
 * - Buffers: the response body, the request head and the text made by msi_httpc_dump live
 *   in the thread's client and are reused: a request allocates nothing once they have grown.
 *   Head and body leave in one send.
 * - Unsent vs sent (DESIGN section 4): `resp.sent` says whether any byte of the body was
 *   accepted by the kernel. Like libcurl (which this replaces, see httpc.c), a request whose
 *   reused connection turned out dead before any byte of the answer came is sent again on a
 *   new connection; for a request with `no_resend` whose body had left, that resend is
 *   refused instead (`resp.resend_refused`, MS_EINDOUBT), never a second execution.
 * - Reused connections are not kept past 5 s idle, well inside the servers' 10 s idle
 *   timeout, so a connection the server is about to close is not reused: that race would
 *   turn a non-idempotent call into an in-doubt one. A kept connection is also checked
 *   (without waiting) before a request with `no_resend`; other requests are simply sent
 *   again on a new connection if the kept one turns out to be closed.
 * - Deadlines are absolute (msi_now_ms clock). A request whose deadline has passed is not
 *   sent at all.
 * - Only http:// URLs; proxies are never used (the environment's http_proxy is ignored:
 *   msd and instances are reached directly).
 */
#ifndef MSI_HTTPC_H
#define MSI_HTTPC_H

#include "base.h"

#include <stddef.h>
#include <stdint.h>

typedef struct msi_httpc_req {
    const char *method;         /* "GET", "POST", "PUT", "DELETE" (NULL: GET, or POST with a
                                   body) */
    const char *url;            /* "http://127.0.0.1:4999/v1/services/add" */
    const char *unix_path;      /* NULL, or a unix socket to connect through (the URL's host
                                   is then only the Host header) */
    const char *bearer;         /* NULL, or a token sent as "Authorization: Bearer <token>" */
    const char *const *headers; /* NULL, or up to 16 "Name: value" lines, NULL-terminated */
    const void *body;           /* NULL: no body. Borrowed until msi_httpc_do returns. */
    size_t body_len;
    int64_t deadline_ms; /* absolute (msi_now_ms); 0 or INT64_MAX: none */
    int no_resend;       /* once a body byte left, never send it again */
    size_t body_max;     /* the largest response body accepted (0: 1 GiB); a larger one is
                            MS_ENOMEM. The connection is then closed. */
} msi_httpc_req;

typedef struct msi_httpc_resp {
    long status;      /* HTTP status; 0 when no response came */
    const char *body; /* NUL-terminated; owned by the thread's handle, valid until the
                         thread's next request */
    size_t len;
    int sent;           /* some body byte left (always 0 without a body) */
    int resend_refused; /* a resend was due and was refused (no_resend) */
    int retry_after_s;  /* the Retry-After header in seconds; -1: none */
    const char *head;   /* the status line and header fields, head_len bytes (not
                           NUL-terminated); NULL when no response came. Valid as body. */
    size_t head_len;
} msi_httpc_resp;

/*
 * Performs one request on the calling thread's client. Returns MS_OK when a response came
 * (whatever its HTTP status: see resp.status), else:
 *   MS_ETIMEDOUT     the deadline passed (before sending, or while waiting),
 *   MS_EUNAVAILABLE  no body byte left: no connection (refused, unreachable, bad unix
 *                    path), or it failed before the body,
 *   MS_EINDOUBT      the connection failed after body bytes left (resp.sent), whatever
 *                    happened next (a resend that was refused, or a new connection that
 *                    was refused),
 *   MS_ENOMEM        out of memory (or an answer over req.body_max, 1 GiB by default),
 *   MS_EIO           a bad URL (not http://host[:port]/...),
 * with err filled. Any thread.
 */
ms_status msi_httpc_do(const msi_httpc_req *req, msi_httpc_resp *resp, msi_err *err);

/*
 * JSON convenience over msi_httpc_do: sends `body` (borrowed; NULL: none) as
 * application/json, and when the response has a body parses it (bounded depth) into *out
 * (a new reference, NULL if the body is empty or not JSON). req->body is ignored.
 */
ms_status msi_httpc_json(const msi_httpc_req *req, json_t *body, msi_httpc_resp *resp, json_t **out,
                         msi_err *err);

/* The calling thread's request-body buffer, emptied, to write a body into (then pass
 * b->p, b->len as req.body): valid until the thread's next msi_httpc_buf, msi_httpc_dump or
 * msi_httpc_json. NULL when out of memory. */
msi_buf *msi_httpc_buf(void);
/* Serialises j compactly into the thread's request-body buffer (as msi_httpc_buf). NULL
 * when out of memory. */
const char *msi_httpc_dump(const json_t *j, size_t *len);

/* How many times this process's line has forked (pthread_atfork): per-thread state made
 * before a fork (connections, request-id callers, random seeds) is remade when it changed. */
unsigned long msi_fork_generation(void);

/* Frees the calling thread's handle (its connections close). The next request makes a new
 * one. */
void msi_httpc_thread_release(void);

/* Copies the value of the response's first header field `name` (case-insensitive), without
 * surrounding blanks, into out (NUL-terminated). 0; -1 when there is no such field, no
 * response, or the value does not fit in outlen - 1 bytes or holds a control character. */
int msi_httpc_header(const msi_httpc_resp *resp, const char *name, char *out, size_t outlen);

/* The "message" of a JSON error body {"error":{"message":...}}, or a prefix of the raw body;
 * writes into buf and returns it. */
const char *msi_httpc_error_text(const msi_httpc_resp *resp, char *buf, size_t size);
/* The ms_status named by the "code" of a JSON error body, or by the HTTP status when the body
 * has none (MS_EPROTO when neither is known). *app_code gets "app_code" when present. */
ms_status msi_httpc_error_status(const msi_httpc_resp *resp, int *app_code);

#endif /* MSI_HTTPC_H */
