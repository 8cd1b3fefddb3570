/*
 * http_parse.c: the HTTP/1.1 parser of the server (http.c) and of the client (httpc.c): the
 * head of a request, the head of a response, and chunked bodies either way (contract in
 * http.h). Pure functions over a byte buffer: no I/O, no allocation, no global state, so
 * they are unit-tested (tests/unit/test_http.c) and fuzzed (tests/fuzz/fuzz_http_parse.c
 * for requests, tests/fuzz/fuzz_http_response.c for responses) on their own.
 *
 * Design notes
 * - The head is parsed line by line in one pass, and each complete line is checked when it
 *   is found, in order. So a buffer that parses (DONE) has no prefix that fails, and a
 *   prefix that fails keeps failing, with the same status, as bytes are added: the server
 *   may parse whenever a new LF arrives without changing the outcome. Framing checks that
 *   need every field (Content-Length against Transfer-Encoding, ...) run after the empty
 *   line.
 * - Output is offsets into the buffer, not pointers: the server may move its buffer
 *   (realloc while reading a body) after parsing.
 * - Grammar (RFC 9112): request-line = method SP request-target SP HTTP-version; method a
 *   token; the target visible ASCII; field-name a token directly followed by ':'; a field
 *   value of visible characters, obs-text, SP and HTAB. Lines end in CRLF or a bare LF; a
 *   CR anywhere else is an error. Whatever is not in the grammar is a 400 (never guessed
 *   at): that is what keeps the request a proxy in front of us sees and the one we see the
 *   same (no request smuggling through odd framing).
 * - Chunked bodies are decoded by a byte-driven state machine that consumes everything it
 *   is given (a chunk-size line may be split anywhere), so the server never keeps raw
 *   chunk framing around: memory is the decoded body, and nothing once over the limit.
 * - Responses come from servers we wrote (http.c) and are parsed as leniently as the client
 *   always did (a reason phrase or a field line is not checked against the grammar; lines
 *   without a colon are skipped): the client trusts the framing it reads, not the rest. The
 *   head is parsed once it is complete (its empty line found), so its outcome cannot
 *   depend on where the bytes were split. The same case-insensitive compare and list
 *   lookup serve both directions.
 */
#include "http.h"

#include <string.h>
#include <strings.h>

/* tchar (RFC 9110 section 5.6.2): the characters of a token. */
static int
is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return 1;
    default:
        return 0;
    }
}

/* A character of a field value: VCHAR, obs-text, SP, HTAB. */
static int
is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int
fail(msi_http_head *h, int status, const char *why)
{
    h->status = status;
    h->error = why;
    return MSI_HTTP_PARSE_ERROR;
}

/* Whether the comma-separated list v[0..n) holds `token` (case-insensitive; elements
 * trimmed of SP and HTAB). Requests and responses. */
static int
list_has(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token), i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
            return 1;
    }
    return 0;
}

/* Whether a[0..n) is lit, case-insensitively. Requests and responses. */
static int
eq_nocase(const char *a, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(a, lit, n) == 0;
}

/* The request line buf[s..e) (line end excluded). */
static int
request_line(const char *buf, size_t s, size_t e, msi_http_head *h)
{
    size_t i = s;
    while (i < e && is_tchar((unsigned char)buf[i]))
        i++;
    if (i == s || i == e || buf[i] != ' ')
        return fail(h, 400, "malformed request line (method)");
    h->method = (uint32_t)s;
    h->method_len = (uint32_t)(i - s);
    size_t t = ++i;
    while (i < e && (unsigned char)buf[i] > 0x20 && (unsigned char)buf[i] < 0x7f)
        i++;
    if (i == t)
        return fail(h, 400, "malformed request line (target)");
    if (i == e)
        return fail(h, 400, "request line without an HTTP version");
    if (buf[i] != ' ')
        return fail(h, 400, "malformed request line (a control character or non-ASCII byte)");
    h->target = (uint32_t)t;
    h->target_len = (uint32_t)(i - t);
    i++;
    const char *v = buf + i;
    size_t vl = e - i;
    if (vl != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return fail(h, 400, "malformed HTTP version");
    if (v[5] != '1')
        return fail(h, 505, "HTTP version not supported (HTTP/1.0 and HTTP/1.1 are)");
    h->minor = v[7] == '0' ? 0 : 1;
    const char *tg = buf + t;
    if (tg[0] != '/' && !(h->target_len == 1 && tg[0] == '*') &&
        !(h->target_len >= 7 && strncasecmp(tg, "http://", 7) == 0) &&
        !(h->target_len >= 8 && strncasecmp(tg, "https://", 8) == 0))
        return fail(h, 400, "malformed request target");
    return 0;
}

/* A header field line buf[s..e) (line end excluded). */
static int
field_line(const char *buf, size_t s, size_t e, msi_http_head *h)
{
    if (buf[s] == ' ' || buf[s] == '\t')
        return fail(h, 400, "obsolete line folding in a header field");
    size_t i = s;
    while (i < e && is_tchar((unsigned char)buf[i]))
        i++;
    if (i == s || i == e || buf[i] != ':')
        return fail(h, 400, "malformed header field (a name, then ':' without space)");
    if (h->nfields >= MSI_HTTP_MAX_FIELDS)
        return fail(h, 431, "more than 64 header fields");
    msi_http_field *f = &h->fields[h->nfields++];
    f->name = (uint32_t)s;
    f->name_len = (uint32_t)(i - s);
    i++;
    while (i < e && (buf[i] == ' ' || buf[i] == '\t'))
        i++;
    size_t vs = i;
    for (; i < e; i++)
        if (!is_value_char((unsigned char)buf[i]))
            return fail(h, 400, "control character or NUL in a header field");
    size_t ve = e;
    while (ve > vs && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t'))
        ve--;
    f->value = (uint32_t)vs;
    f->value_len = (uint32_t)(ve - vs);
    return 0;
}

/* Framing and options from the fields, once the head is complete. */
static int
framing(const char *buf, msi_http_head *h)
{
    int te = 0, close = 0, ka = 0;
    for (int k = 0; k < h->nfields; k++) {
        const msi_http_field *f = &h->fields[k];
        const char *n = buf + f->name, *v = buf + f->value;
        size_t nl = f->name_len, vl = f->value_len;
        if (eq_nocase(n, nl, "Content-Length")) {
            if (vl == 0)
                return fail(h, 400, "empty Content-Length");
            uint64_t x = 0;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return fail(h, 400, "Content-Length is not a number");
                unsigned d = (unsigned)(v[i] - '0');
                x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
            }
            if (h->has_length && x != h->length)
                return fail(h, 400, "conflicting Content-Length fields");
            h->has_length = 1;
            h->length = x;
        } else if (eq_nocase(n, nl, "Transfer-Encoding")) {
            te++;
            h->chunked = te == 1 && eq_nocase(v, vl, "chunked");
        } else if (eq_nocase(n, nl, "Connection")) {
            close |= list_has(v, vl, "close");
            ka |= list_has(v, vl, "keep-alive");
        } else if (eq_nocase(n, nl, "Expect") && h->minor == 1) {
            /* (HTTP/1.0 expectations are ignored, RFC 9110 section 10.1.1.) */
            if (!eq_nocase(v, vl, "100-continue"))
                return fail(h, 417, "unsupported expectation (only 100-continue)");
            h->expect_continue = 1;
        }
    }
    if (te) {
        if (h->has_length)
            return fail(h, 400, "both Content-Length and Transfer-Encoding");
        if (h->minor == 0)
            return fail(h, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if (!h->chunked)
            return fail(h, 501, "unsupported transfer coding (only chunked)");
    }
    h->keep_alive = !close && (h->minor == 1 || ka);
    return MSI_HTTP_PARSE_DONE;
}

int
msi_http_parse_head(const char *buf, size_t len, size_t max_header, msi_http_head *h)
{
    memset(h, 0, offsetof(msi_http_head, fields));
    h->nfields = 0;
    h->minor = 1;
    size_t lim = len < max_header ? len : max_header;
    size_t pos = 0;
    int have_request_line = 0;
    for (;;) {
        const char *lf = pos < lim ? memchr(buf + pos, '\n', lim - pos) : NULL;
        if (!lf) {
            /* The head goes on past what we have. */
            if (lim < max_header)
                return MSI_HTTP_PARSE_MORE;
            return have_request_line ? fail(h, 431, "request head over the size limit")
                                     : fail(h, 414, "request line over the size limit");
        }
        size_t s = pos, e = (size_t)(lf - buf);
        pos = e + 1;
        if (e > s && buf[e - 1] == '\r')
            e--;
        if (memchr(buf + s, '\r', e - s))
            return fail(h, 400, "bare CR in the request head");
        if (!have_request_line) {
            if (e == s)
                continue; /* empty lines before the request line (RFC 9112 section 2.2) */
            if (request_line(buf, s, e, h) != 0)
                return MSI_HTTP_PARSE_ERROR;
            have_request_line = 1;
            continue;
        }
        if (e == s) {
            h->head_len = pos;
            return framing(buf, h);
        }
        if (field_line(buf, s, e, h) != 0)
            return MSI_HTTP_PARSE_ERROR;
    }
}

/* ---- response heads ------------------------------------------------------------------ */

/* Where the head ends in buf[0..len) (the offset after its first empty line), or 0. */
static size_t
resp_head_end(const char *buf, size_t len)
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

static void
resp_field(const char *name, size_t nlen, const char *v, size_t vlen, msi_http_resp_head *h,
           int *conn_close, int *conn_keep, int *bad)
{
    if (eq_nocase(name, nlen, "Content-Length")) {
        if (vlen == 0 || vlen > 18) {
            *bad = 1;
            return;
        }
        int64_t cl = 0;
        for (size_t i = 0; i < vlen; i++) {
            if (v[i] < '0' || v[i] > '9') {
                *bad = 1;
                return;
            }
            cl = cl * 10 + (v[i] - '0');
        }
        h->content_length = cl;
    } else if (eq_nocase(name, nlen, "Transfer-Encoding")) {
        h->chunked = list_has(v, vlen, "chunked");
    } else if (eq_nocase(name, nlen, "Connection")) {
        *conn_close |= list_has(v, vlen, "close");
        *conn_keep |= list_has(v, vlen, "keep-alive");
    } else if (eq_nocase(name, nlen, "Retry-After")) {
        long sec = 0;
        size_t i = 0;
        for (; i < vlen && i < 6 && v[i] >= '0' && v[i] <= '9'; i++)
            sec = sec * 10 + (v[i] - '0');
        if (i > 0 && sec < 86400)
            h->retry_after_s = (int)sec;
    }
}

msi_http_resp_rc
msi_http_parse_response(const char *buf, size_t len, size_t max_head, msi_http_resp_head *h)
{
    memset(h, 0, sizeof *h);
    h->content_length = -1;
    h->retry_after_s = -1;
    size_t lim = len < max_head ? len : max_head;
    size_t end = resp_head_end(buf, lim);
    if (!end)
        return len >= max_head ? MSI_HTTP_RESP_TOO_LONG : MSI_HTTP_RESP_MORE;
    if (end < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') ||
        buf[8] != ' ' || buf[9] < '1' || buf[9] > '9' || buf[10] < '0' || buf[10] > '9' ||
        buf[11] < '0' || buf[11] > '9')
        return MSI_HTTP_RESP_MALFORMED;
    h->minor = buf[7] - '0';
    h->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    int conn_close = 0, conn_keep = 0, bad = 0;
    /* Field lines: from after the status line up to the empty line. */
    const char *p = memchr(buf, '\n', end);
    const char *stop = buf + end;
    while (p && p + 1 < stop && !bad) {
        const char *line = p + 1;
        const char *nl = memchr(line, '\n', (size_t)(stop - line));
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
        resp_field(line, nlen, v, vlen, h, &conn_close, &conn_keep, &bad);
    }
    if (bad) {
        memset(h, 0, sizeof *h);
        h->content_length = -1;
        h->retry_after_s = -1;
        return MSI_HTTP_RESP_MALFORMED;
    }
    h->head_len = end;
    h->keep_alive = h->minor == 1 ? !conn_close : conn_keep && !conn_close;
    return MSI_HTTP_RESP_DONE;
}

msi_http_body_framing
msi_http_response_framing(const msi_http_resp_head *h, int head_request)
{
    if (head_request || h->status == 204 || h->status == 304)
        return MSI_HTTP_BODY_NONE;
    if (h->chunked)
        return MSI_HTTP_BODY_CHUNKED;
    if (h->content_length >= 0)
        return MSI_HTTP_BODY_LENGTH;
    return MSI_HTTP_BODY_UNTIL_CLOSE;
}

/* ---- chunked bodies ------------------------------------------------------------------ */

enum {
    C_SIZE0 = 0, /* the first hex digit of a chunk size */
    C_SIZE,      /* more hex digits */
    C_BWS,       /* whitespace after the size */
    C_EXT,       /* an extension (ignored), up to the line end */
    C_SIZE_LF,   /* the LF after a CR ending the size line */
    C_DATA,      /* `left` bytes of data */
    C_DATA_END,  /* the CR or LF after the data */
    C_DATA_LF,   /* the LF after that CR */
    C_TRAILER0,  /* the start of a trailer line (or the empty line that ends the body) */
    C_TRAILER,   /* the rest of a trailer line */
    C_TRAILER_LF,
    C_END_LF, /* the LF of the final empty line */
};

#define CHUNK_LINE_MAX 4096u
#define TRAILER_MAX 8192u
#define CHUNK_SIZE_MAX (1ULL << 60)

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int
chunk_fail(int *status, int st)
{
    *status = st;
    return MSI_HTTP_PARSE_ERROR;
}

int
msi_http_dechunk(msi_http_chunked *st, char *buf, size_t *in, size_t len, size_t *out,
                 uint64_t keep, int *status)
{
    size_t i = *in, o = *out;
    int rc = MSI_HTTP_PARSE_MORE;
    while (i < len) {
        unsigned char c = (unsigned char)buf[i];
        switch (st->state) {
        case C_SIZE0:
        case C_SIZE: {
            if (++st->line > CHUNK_LINE_MAX) {
                rc = chunk_fail(status, 400);
                goto out;
            }
            int d = hexval(c);
            if (d >= 0) {
                if (st->left >= CHUNK_SIZE_MAX >> 4) {
                    rc = chunk_fail(status, 413);
                    goto out;
                }
                st->left = st->left << 4 | (unsigned)d;
                st->state = C_SIZE;
                i++;
                break;
            }
            if (st->state == C_SIZE0) {
                rc = chunk_fail(status, 400); /* no digit */
                goto out;
            }
            if (c == ';') {
                st->state = C_EXT;
                i++;
            } else if (c == ' ' || c == '\t') {
                st->state = C_BWS;
                i++;
            } else if (c == '\r' || c == '\n') {
                st->state = C_EXT; /* the line end, taken there */
            } else {
                rc = chunk_fail(status, 400);
                goto out;
            }
            break;
        }
        case C_BWS:
            /* Whitespace after the size: then ';' or the line end. */
            if (++st->line > CHUNK_LINE_MAX) {
                rc = chunk_fail(status, 400);
                goto out;
            }
            if (c == ' ' || c == '\t') {
                i++;
            } else if (c == ';') {
                st->state = C_EXT;
                i++;
            } else if (c == '\r' || c == '\n') {
                st->state = C_EXT;
            } else {
                rc = chunk_fail(status, 400);
                goto out;
            }
            break;
        case C_EXT:
            i++;
            if (c == '\n' || c == '\r') {
                st->line = 0;
                if (c == '\r') {
                    st->state = C_SIZE_LF;
                    break;
                }
                goto size_done;
            }
            if ((c != '\t' && c < 0x20) || c == 0x7f || ++st->line > CHUNK_LINE_MAX) {
                rc = chunk_fail(status, 400);
                goto out;
            }
            break;
        case C_SIZE_LF:
            if (c != '\n') {
                rc = chunk_fail(status, 400);
                goto out;
            }
            i++;
        size_done:
            st->state = st->left ? C_DATA : C_TRAILER0;
            break;
        case C_DATA: {
            size_t n = len - i;
            if ((uint64_t)n > st->left)
                n = (size_t)st->left;
            uint64_t room = st->total < keep ? keep - st->total : 0;
            size_t k = (uint64_t)n < room ? n : (size_t)room;
            if (k && o != i)
                memmove(buf + o, buf + i, k);
            o += k;
            st->total += n;
            st->left -= n;
            i += n;
            if (!st->left)
                st->state = C_DATA_END;
            break;
        }
        case C_DATA_END:
            i++;
            if (c == '\r')
                st->state = C_DATA_LF;
            else if (c == '\n')
                st->state = C_SIZE0;
            else {
                rc = chunk_fail(status, 400);
                goto out;
            }
            break;
        case C_DATA_LF:
            if (c != '\n') {
                rc = chunk_fail(status, 400);
                goto out;
            }
            i++;
            st->state = C_SIZE0;
            break;
        case C_TRAILER0:
            i++;
            if (c == '\n') {
                rc = MSI_HTTP_PARSE_DONE;
                goto out;
            }
            if (c == '\r') {
                st->state = C_END_LF;
                break;
            }
            st->state = C_TRAILER;
            goto trailer_byte;
        case C_TRAILER:
            i++;
            if (c == '\n') {
                st->state = C_TRAILER0;
                break;
            }
            if (c == '\r') {
                st->state = C_TRAILER_LF;
                break;
            }
        trailer_byte:
            if (c == 0 || ++st->trailer > TRAILER_MAX) {
                rc = chunk_fail(status, c == 0 ? 400 : 431);
                goto out;
            }
            break;
        case C_TRAILER_LF:
            if (c != '\n') {
                rc = chunk_fail(status, 400);
                goto out;
            }
            i++;
            st->state = C_TRAILER0;
            break;
        case C_END_LF:
            if (c != '\n') {
                rc = chunk_fail(status, 400);
                goto out;
            }
            i++;
            rc = MSI_HTTP_PARSE_DONE;
            goto out;
        default:
            rc = chunk_fail(status, 400);
            goto out;
        }
    }
out:
    *in = i;
    *out = o;
    return rc;
}

/* ---- percent-decoding ---------------------------------------------------------------- */

size_t
msi_http_unescape(char *s, size_t len, int plus, int *nul)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < len) {
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                c = (char)(hi << 4 | lo);
                if (c == '\0')
                    *nul = 1;
                i += 2;
            }
        } else if (c == '+' && plus) {
            c = ' ';
        }
        s[o++] = c;
    }
    return o;
}
