/*
 * fuzz_http_response.c: the client's response parser (src/net/http_parse.c), as pure
 * functions: msi_http_parse_response, msi_http_response_framing and msi_http_dechunk as
 * httpc.c drives it.
 *
 * Input: byte 0 picks the settings, the rest is the bytes a server sent:
 *   bits 0-1  max_head: 16, 64, 256, 65536 (httpc's HEAD_MAX)
 *   bits 2-4  how many bytes each read brings (1 to 8) in the split replay
 *   bit 5     the request was a HEAD
 *
 * Properties, besides "no crash, no read past the input (it is exactly its length on the
 * heap), no sanitizer report":
 * - DONE: head_len within the input and max_head, ending in LF; the status is the three
 *   digits at 9..11 (100..999) and the version 1.0 or 1.1; Content-Length -1 or 0..10^18-1;
 *   Retry-After -1 or 0..86399; keep_alive 0 or 1, and 0 under HTTP/1.0 without a
 *   "keep-alive" in the head. The head alone (buf[0..head_len)) parses the same, every
 *   shorter prefix is MORE (all of them up to 128 bytes, 64 past that, and the last);
 *   with max_head = head_len it is DONE, with one less TOO_LONG.
 * - MALFORMED and TOO_LONG stay so as bytes are added (checked from the head's end, and
 *   from max_head bytes).
 * - The same as the parser it replaced: httpc.c's former parse_head (kept below as the
 *   oracle) gives the same head, status, version, Content-Length, chunked, keep-alive
 *   and Retry-After, and calls the same heads malformed, for every head within max_head;
 *   the one deliberate difference, list fields looked up element by element, is written
 *   into the oracle (old_lists).
 * - A whole response read as httpc.c reads it (1xx skipped, then the body by framing; a
 *   chunked body decoded in place with the consumed bytes dropped between reads): the same
 *   outcome, status and body whether the bytes come all at once, `step` at a time, or in
 *   two reads split at every byte boundary (inputs up to 128 bytes; 32 boundaries past
 *   that; reads of `step` bytes for inputs up to 256 bytes). The body never exceeds the input:
 *   a Content-Length body is exactly the bytes after the head, a chunked body is at most
 *   the raw bytes it was decoded from, and a body up to the close is the rest of the input.
 * - msi_httpc_header (httpc.c) over a DONE head: 0 or -1; a value it gives is terminated
 *   within the buffer, holds no control character, and its field name is in the head.
 */
#include "fuzz_common.h"

#include "http.h"
#include "httpc.h"

#include <string.h>
#include <strings.h>

static const size_t max_heads[4] = {16, 64, 256, 65536};

/* ---- the oracle: httpc.c's response head parser before it moved to http_parse.c ------- */

typedef struct old_head {
    size_t size;
    int status, minor;
    long long content_length;
    int chunked, conn_close, conn_keep, retry_after_s;
} old_head;

static int
old_ieq_prefix(const char *s, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    return n >= k && strncasecmp(s, lit, k) == 0;
}

/* The one deliberate change: a list field (Connection, Transfer-Encoding) is split at commas
 * into elements trimmed of SP and HTAB, and a token must be a whole element (RFC 9110
 * section 5.6.1), as the request parser always did. The former lookup also matched a token
 * followed by ';' or between spaces ("close;x", "a close"). So the oracle looks lists up
 * element by element (written again here, not the parser's own helper). */
static int
old_lists(const char *v, size_t n, const char *token)
{
    size_t k = strlen(token);
    size_t i = 0;
    while (i <= n) {
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (s < e && (v[s] == ' ' || v[s] == '\t'))
            s++;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == k && strncasecmp(v + s, token, k) == 0)
            return 1;
        i++;
    }
    return 0;
}

static int
old_parse_head(const char *buf, size_t len, old_head *h)
{
    memset(h, 0, sizeof *h);
    h->size = len;
    h->content_length = -1;
    h->retry_after_s = -1;
    if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') ||
        buf[8] != ' ' || buf[9] < '1' || buf[9] > '9' || buf[10] < '0' || buf[10] > '9' ||
        buf[11] < '0' || buf[11] > '9')
        return -1;
    h->minor = buf[7] - '0';
    h->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    const char *p = memchr(buf, '\n', len);
    const char *end = buf + len;
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl)
            break;
        size_t ll = (size_t)(nl - line);
        if (ll && line[ll - 1] == '\r')
            ll--;
        p = nl;
        const char *colon = memchr(line, ':', ll);
        if (!colon)
            continue;
        size_t nlen = (size_t)(colon - line);
        const char *v = colon + 1;
        size_t vlen = ll - nlen - 1;
        while (vlen && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        if (nlen == 14 && old_ieq_prefix(line, nlen, "Content-Length")) {
            long long cl = 0;
            if (vlen == 0 || vlen > 18)
                return -1;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return -1;
                cl = cl * 10 + (v[i] - '0');
            }
            h->content_length = cl;
        } else if (nlen == 17 && old_ieq_prefix(line, nlen, "Transfer-Encoding")) {
            h->chunked = old_lists(v, vlen, "chunked");
        } else if (nlen == 10 && old_ieq_prefix(line, nlen, "Connection")) {
            h->conn_close |= old_lists(v, vlen, "close");
            h->conn_keep |= old_lists(v, vlen, "keep-alive");
        } else if (nlen == 11 && old_ieq_prefix(line, nlen, "Retry-After")) {
            long s = 0;
            size_t i = 0;
            for (; i < vlen && i < 6 && v[i] >= '0' && v[i] <= '9'; i++)
                s = s * 10 + (v[i] - '0');
            if (i > 0 && s < 86400)
                h->retry_after_s = (int)s;
        }
    }
    return 0;
}

static size_t
old_head_end(const char *buf, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (buf[i + 1] == '\n')
            return i + 2;
        if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* ---- the head ------------------------------------------------------------------------- */

/* Whether buf[0..n) holds s, case-insensitively. */
static int
has_nocase(const char *buf, size_t n, const char *s)
{
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(buf + i, s, k) == 0)
            return 1;
    return 0;
}

static int
same_head(const msi_http_resp_head *a, const msi_http_resp_head *b)
{
    return a->head_len == b->head_len && a->status == b->status && a->minor == b->minor &&
           a->content_length == b->content_length && a->chunked == b->chunked &&
           a->keep_alive == b->keep_alive && a->retry_after_s == b->retry_after_s;
}

static void
check_head(const char *buf, size_t len, size_t maxh)
{
    msi_http_resp_head h, p;
    int rc = msi_http_parse_response(buf, len, maxh, &h);
    FZ_CHECK(rc == MSI_HTTP_RESP_MORE || rc == MSI_HTTP_RESP_DONE ||
                 rc == MSI_HTTP_RESP_MALFORMED || rc == MSI_HTTP_RESP_TOO_LONG,
             "rc %d", rc);
    if (rc == MSI_HTTP_RESP_MORE)
        FZ_CHECK(len < maxh, "MORE with max_head bytes in");
    if (rc == MSI_HTTP_RESP_TOO_LONG) {
        FZ_CHECK(len >= maxh, "TOO_LONG below max_head");
        FZ_CHECK(msi_http_parse_response(buf, maxh, maxh, &p) == MSI_HTTP_RESP_TOO_LONG,
                 "TOO_LONG, but not its first max_head bytes");
    }
    /* The oracle, on the head it finds within the limit. */
    size_t oend = old_head_end(buf, len < maxh ? len : maxh);
    if (oend) {
        old_head o;
        int orc = old_parse_head(buf, oend, &o);
        FZ_CHECK(orc == 0 ? rc == MSI_HTTP_RESP_DONE : rc == MSI_HTTP_RESP_MALFORMED,
                 "old parser %d, new %d", orc, rc);
        if (orc == 0) {
            int okeep = o.minor == 1 ? !o.conn_close : o.conn_keep && !o.conn_close;
            FZ_CHECK(h.head_len == o.size && h.status == o.status && h.minor == o.minor &&
                         h.content_length == o.content_length && h.chunked == o.chunked &&
                         h.keep_alive == okeep && h.retry_after_s == o.retry_after_s,
                     "differs from the old parser: head %zu/%zu status %d/%d minor %d/%d "
                     "length %lld/%lld chunked %d/%d keep %d/%d retry %d/%d",
                     h.head_len, o.size, h.status, o.status, h.minor, o.minor,
                     (long long)h.content_length, o.content_length, h.chunked, o.chunked,
                     h.keep_alive, okeep, h.retry_after_s, o.retry_after_s);
        }
    } else {
        FZ_CHECK(rc == MSI_HTTP_RESP_MORE || rc == MSI_HTTP_RESP_TOO_LONG, "no head end, yet rc %d",
                 rc);
    }
    if (rc == MSI_HTTP_RESP_MALFORMED)
        FZ_CHECK(msi_http_parse_response(buf, oend, maxh, &p) == MSI_HTTP_RESP_MALFORMED,
                 "MALFORMED, but not the head alone");
    if (rc != MSI_HTTP_RESP_DONE)
        return;
    size_t hl = h.head_len;
    FZ_CHECK(hl >= 12 && hl <= len && hl <= maxh, "head_len %zu (len %zu, max %zu)", hl, len, maxh);
    /* msi_httpc_header over the head, as httpc.c hands it out (ETag, Location: objects). */
    static const char *const fields[] = {"ETag", "Location", "Content-Length"};
    msi_httpc_resp hr = {0};
    hr.head = buf;
    hr.head_len = hl;
    for (size_t f = 0; f < sizeof fields / sizeof *fields; f++) {
        char out[24];
        memset(out, 'x', sizeof out);
        int hrc = msi_httpc_header(&hr, fields[f], out, sizeof out);
        FZ_CHECK(hrc == 0 || hrc == -1, "msi_httpc_header rc %d", hrc);
        if (hrc == 0) {
            size_t n = strnlen(out, sizeof out);
            FZ_CHECK(n < sizeof out, "header value not terminated");
            for (size_t i = 0; i < n; i++)
                FZ_CHECK((unsigned char)out[i] >= 0x20 && out[i] != 0x7f, "control in value");
            FZ_CHECK(has_nocase(buf, hl, fields[f]), "%s found where it is not", fields[f]);
        }
    }
    FZ_CHECK(buf[hl - 1] == '\n', "the head ends in LF");
    FZ_CHECK(h.minor == buf[7] - '0' && (h.minor == 0 || h.minor == 1), "minor %d", h.minor);
    FZ_CHECK(h.status >= 100 && h.status <= 999 &&
                 h.status == (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0'),
             "status %d", h.status);
    FZ_CHECK(h.content_length >= -1 && h.content_length < 1000000000000000000LL, "length %lld",
             (long long)h.content_length);
    FZ_CHECK(h.retry_after_s >= -1 && h.retry_after_s < 86400, "retry %d", h.retry_after_s);
    FZ_CHECK(h.keep_alive == 0 || h.keep_alive == 1, "keep_alive %d", h.keep_alive);
    if (h.minor == 0 && h.keep_alive)
        FZ_CHECK(has_nocase(buf, hl, "keep-alive"), "HTTP/1.0 kept alive without keep-alive");
    FZ_CHECK(msi_http_parse_response(buf, hl, maxh, &p) == MSI_HTTP_RESP_DONE && same_head(&h, &p),
             "the head alone parses differently");
    FZ_CHECK(msi_http_parse_response(buf, len, hl, &p) == MSI_HTTP_RESP_DONE && same_head(&h, &p),
             "max_head = head_len parses differently");
    FZ_CHECK(msi_http_parse_response(buf, len, hl - 1, &p) == MSI_HTTP_RESP_TOO_LONG,
             "max_head = head_len - 1 is not TOO_LONG");
    size_t every = hl <= 128 ? 1 : hl / 64;
    for (size_t k = 0; k < hl; k += every)
        FZ_CHECK(msi_http_parse_response(buf, k, maxh, &p) == MSI_HTTP_RESP_MORE,
                 "prefix %zu of a complete head is not MORE", k);
    FZ_CHECK(msi_http_parse_response(buf, hl - 1, maxh, &p) == MSI_HTTP_RESP_MORE,
             "the head but its last byte is not MORE");
    int fr = msi_http_response_framing(&h, 0);
    FZ_CHECK(fr == (h.status == 204 || h.status == 304 ? MSI_HTTP_BODY_NONE
                    : h.chunked                        ? MSI_HTTP_BODY_CHUNKED
                    : h.content_length >= 0            ? MSI_HTTP_BODY_LENGTH
                                                       : MSI_HTTP_BODY_UNTIL_CLOSE),
             "framing %d", fr);
    FZ_CHECK(msi_http_response_framing(&h, 1) == MSI_HTTP_BODY_NONE, "a HEAD with a body");
}

/* ---- a whole response, read as httpc.c reads it -------------------------------------- */

enum { R_OK, R_LOST, R_MALFORMED, R_TOOBIG };

typedef struct reading {
    const char *in; /* the bytes the server sent */
    size_t in_len, given;
    size_t cuts[2]; /* reads end at these offsets (then every `step` bytes) */
    size_t step;
    char *buf; /* the client's buffer (as large as the input: never more is needed) */
    size_t len;
} reading;

/* One read: appends the next bytes of the input; 0 at its end. */
static size_t
rd_fill(reading *r)
{
    size_t next = r->in_len;
    for (int i = 0; i < 2; i++)
        if (r->cuts[i] > r->given && r->cuts[i] < next)
            next = r->cuts[i];
    if (r->step && r->given + r->step < next)
        next = r->given + r->step;
    size_t n = next - r->given;
    FZ_CHECK(r->len + n <= r->in_len, "the buffer outgrew the input");
    memcpy(r->buf + r->len, r->in + r->given, n);
    r->len += n;
    r->given += n;
    return n;
}

typedef struct result {
    int rc, status;
    size_t blen;
    char *body; /* in the reading's buffer */
} result;

static void
read_response(reading *r, size_t maxh, int head_request, result *res)
{
    memset(res, 0, sizeof *res);
    msi_http_resp_head h;
    for (;;) {
        int rc = msi_http_parse_response(r->buf, r->len, maxh, &h);
        if (rc == MSI_HTTP_RESP_MALFORMED || rc == MSI_HTTP_RESP_TOO_LONG) {
            res->rc = R_MALFORMED;
            return;
        }
        if (rc == MSI_HTTP_RESP_DONE && (h.status >= 200 || h.status == 101))
            break;
        if (rc == MSI_HTTP_RESP_DONE) { /* 1xx: the final answer follows */
            memmove(r->buf, r->buf + h.head_len, r->len - h.head_len);
            r->len -= h.head_len;
            continue;
        }
        if (!rd_fill(r)) {
            res->rc = R_LOST;
            return;
        }
    }
    res->status = h.status;
    size_t off = h.head_len;
    res->body = r->buf + off;
    switch (msi_http_response_framing(&h, head_request)) {
    case MSI_HTTP_BODY_NONE:
        break;
    case MSI_HTTP_BODY_LENGTH:
        while (r->len < off + (uint64_t)h.content_length)
            if (!rd_fill(r)) {
                res->rc = R_LOST;
                return;
            }
        res->blen = (size_t)h.content_length;
        FZ_CHECK(memcmp(res->body, r->in + r->given - (r->len - off), res->blen) == 0,
                 "a Content-Length body that is not the bytes after the head");
        break;
    case MSI_HTTP_BODY_UNTIL_CLOSE:
        while (rd_fill(r))
            ;
        res->blen = r->len - off;
        FZ_CHECK(memcmp(res->body, r->in + r->in_len - res->blen, res->blen) == 0,
                 "a body up to the close that is not the rest of the input");
        break;
    case MSI_HTTP_BODY_CHUNKED: {
        msi_http_chunked st;
        memset(&st, 0, sizeof st);
        size_t in = off, out = off;
        size_t raw0 = r->given - (r->len - off); /* where the body starts in the input */
        for (;;) {
            int status = 0;
            int rc = msi_http_dechunk(&st, r->buf, &in, r->len, &out, UINT64_MAX, &status);
            FZ_CHECK(out <= in && in <= r->len, "out %zu in %zu len %zu", out, in, r->len);
            FZ_CHECK(st.total == out - off, "total %llu, kept %zu", (unsigned long long)st.total,
                     out - off);
            if (rc == MSI_HTTP_PARSE_DONE)
                break;
            if (rc == MSI_HTTP_PARSE_ERROR) {
                FZ_CHECK(status == 400 || status == 413 || status == 431, "status %d", status);
                res->rc = status == 413 ? R_TOOBIG : R_MALFORMED;
                return;
            }
            FZ_CHECK(in == r->len, "MORE with bytes left");
            r->len = in = out;
            if (!rd_fill(r)) {
                res->rc = R_LOST;
                return;
            }
        }
        res->blen = out - off;
        FZ_CHECK(res->blen <= r->given - raw0, "decoded %zu bytes from %zu", res->blen,
                 r->given - raw0);
        break;
    }
    }
    FZ_CHECK(off + res->blen <= r->in_len, "the body is longer than the input");
}

/* Reads the response with reads ending at cut0 and cut1 and every `step` bytes (0: none). */
static void
read_split(const char *in, size_t len, size_t maxh, int head_request, size_t cut0, size_t cut1,
           size_t step, result *res, reading *r)
{
    memset(r, 0, sizeof *r);
    r->in = in;
    r->in_len = len;
    r->cuts[0] = cut0;
    r->cuts[1] = cut1;
    r->step = step;
    r->buf = malloc(len ? len : 1);
    FZ_CHECK(r->buf != NULL, "malloc");
    read_response(r, maxh, head_request, res);
}

static void
check_same(const result *a, const result *b, const char *how, size_t at)
{
    FZ_CHECK(a->rc == b->rc && a->status == b->status && a->blen == b->blen &&
                 (a->rc != R_OK || memcmp(a->body, b->body, a->blen) == 0),
             "read whole: rc %d status %d body %zu; %s %zu: rc %d status %d body %zu", a->rc,
             a->status, a->blen, how, at, b->rc, b->status, b->blen);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned sel = data[0];
    size_t maxh = max_heads[sel & 3];
    size_t step = ((sel >> 2) & 7) + 1;
    int head_request = (sel >> 5) & 1;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;

    check_head(buf, len, maxh);

    /* The whole response, read at once and in pieces. Reads of one byte re-parse the head
     * after each byte (as httpc does after each read): bounded to keep the fuzzer fast. */
    result whole, other;
    reading rw, ro;
    read_split(buf, len, maxh, head_request, 0, 0, 0, &whole, &rw);
    if (len <= 256) {
        read_split(buf, len, maxh, head_request, 0, 0, step, &other, &ro);
        check_same(&whole, &other, "by", step);
        free(ro.buf);
    }
    size_t every = len <= 128 ? 1 : len / 32;
    for (size_t k = 1; k < len; k += every) {
        read_split(buf, len, maxh, head_request, k, 0, 0, &other, &ro);
        check_same(&whole, &other, "split at", k);
        free(ro.buf);
    }
    free(rw.buf);
    return 0;
}
