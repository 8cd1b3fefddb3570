/*
 * fuzz_http_parse.c: the HTTP server's request parser (src/net/http_parse.c), as pure
 * functions: msi_http_parse_head, msi_http_dechunk and msi_http_unescape.
 *
 * Input: byte 0 picks the settings, the rest is the bytes a client sent:
 *   bits 0-1  max_header: 64, 256, 1024, 8192
 *   bits 2-4  how many bytes at a time the chunked body is fed (1 to 8)
 *   bits 5-7  the body limit given to the decoder (keep): 0, 1, 5, 16, 100, 1024, 65536,
 *             unlimited
 *
 * Properties, besides "no crash, no read past the input (it is exactly its length on the
 * heap), no sanitizer report":
 * - DONE: head_len within the input and max_header; every offset inside the head; the
 *   method a token, the target visible ASCII, fields well-formed (token names, values
 *   without control characters), at most 64; Content-Length and chunked never both.
 * - ERROR: a known status (400, 414, 417, 431, 501, 505) and a reason.
 * - Prefixes agree with the whole (http.c parses again whenever a line ends): a prefix of
 *   a DONE head is MORE; a prefix that is an ERROR makes the whole the same ERROR; a
 *   prefix that is DONE is the same head. Checked at each line end (the first 64) and
 *   at a few other lengths.
 * - Chunked body (after a DONE chunked head): decoding it all at once and fed a few bytes
 *   at a time give the same result (status, bytes consumed, data, total); *out <= *in
 *   always; MORE means every byte was consumed; the data kept is min(total, keep).
 * - The target percent-decodes to at most its length; "a NUL was decoded" is reported
 *   exactly when the result holds one (the target itself cannot).
 */
#include "fuzz_common.h"

#include "http.h"

#include <string.h>

static const size_t max_headers[4] = {64, 256, 1024, 8192};
static const uint64_t keeps[8] = {0, 1, 5, 16, 100, 1024, 65536, UINT64_MAX};

static int
tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void
check_done(const char *buf, size_t len, size_t maxh, const msi_http_head *h)
{
    size_t hl = h->head_len;
    FZ_CHECK(hl >= 4 && hl <= len && hl <= maxh, "head_len %zu (len %zu, max %zu)", hl, len, maxh);
    FZ_CHECK(buf[hl - 1] == '\n', "the head ends in LF");
    FZ_CHECK(h->method_len > 0 && h->method + h->method_len < hl, "method");
    for (uint32_t i = 0; i < h->method_len; i++)
        FZ_CHECK(tchar((unsigned char)buf[h->method + i]), "method byte %u", i);
    FZ_CHECK(buf[h->method + h->method_len] == ' ', "SP after the method");
    FZ_CHECK(h->target_len > 0 && h->target + h->target_len < hl, "target");
    for (uint32_t i = 0; i < h->target_len; i++) {
        unsigned char c = (unsigned char)buf[h->target + i];
        FZ_CHECK(c > 0x20 && c < 0x7f, "target byte %u: %#x", i, c);
    }
    FZ_CHECK(h->minor == 0 || h->minor == 1, "minor %d", h->minor);
    FZ_CHECK(h->nfields >= 0 && h->nfields <= MSI_HTTP_MAX_FIELDS, "nfields %d", h->nfields);
    for (int k = 0; k < h->nfields; k++) {
        const msi_http_field *f = &h->fields[k];
        FZ_CHECK(f->name_len > 0 && f->name + f->name_len < hl, "field %d name", k);
        FZ_CHECK(buf[f->name + f->name_len] == ':', "field %d: ':' after the name", k);
        for (uint32_t i = 0; i < f->name_len; i++)
            FZ_CHECK(tchar((unsigned char)buf[f->name + i]), "field %d name byte", k);
        FZ_CHECK(f->value > f->name && f->value + f->value_len < hl, "field %d value", k);
        for (uint32_t i = 0; i < f->value_len; i++) {
            unsigned char c = (unsigned char)buf[f->value + i];
            FZ_CHECK(c == '\t' || (c >= 0x20 && c != 0x7f), "field %d value byte %#x", k, c);
        }
        if (f->value_len) {
            FZ_CHECK(buf[f->value] != ' ' && buf[f->value] != '\t', "value not trimmed");
            char last = buf[f->value + f->value_len - 1];
            FZ_CHECK(last != ' ' && last != '\t', "value not trimmed at its end");
        }
    }
    FZ_CHECK(!(h->chunked && h->has_length), "both chunked and Content-Length");
    FZ_CHECK(!h->chunked || h->minor == 1, "chunked in HTTP/1.0");
    FZ_CHECK(h->keep_alive == 0 || h->keep_alive == 1, "keep_alive");
    FZ_CHECK(!h->expect_continue || h->minor == 1, "100-continue in HTTP/1.0");
}

static void
check_error(const msi_http_head *h)
{
    int s = h->status;
    FZ_CHECK(s == 400 || s == 414 || s == 417 || s == 431 || s == 501 || s == 505, "status %d", s);
    FZ_CHECK(h->error && h->error[0], "an error without a reason");
    FZ_CHECK(fz_utf8_ok(h->error), "reason not UTF-8");
}

static void
check_prefix(const char *buf, size_t k, size_t maxh, int rc, const msi_http_head *h)
{
    msi_http_head p;
    int rp = msi_http_parse_head(buf, k, maxh, &p);
    if (rc == MSI_HTTP_PARSE_DONE && k < h->head_len)
        FZ_CHECK(rp == MSI_HTTP_PARSE_MORE, "prefix %zu of a complete head: %d (status %d)", k, rp,
                 p.status);
    if (rp == MSI_HTTP_PARSE_ERROR)
        FZ_CHECK(rc == MSI_HTTP_PARSE_ERROR && h->status == p.status,
                 "prefix %zu is an error %d, the whole %d (status %d)", k, p.status, rc, h->status);
    if (rp == MSI_HTTP_PARSE_DONE)
        FZ_CHECK(rc == MSI_HTTP_PARSE_DONE && p.head_len == h->head_len &&
                     p.nfields == h->nfields && p.length == h->length && p.chunked == h->chunked,
                 "prefix %zu is complete but differs from the whole", k);
}

typedef struct dechunked {
    int rc, status;
    size_t in, out;
    uint64_t total;
    char *data;
} dechunked;

/* Decodes raw[0..len) fed `step` bytes at a time (step 0: all at once). */
static void
dechunk(const char *raw, size_t len, size_t step, uint64_t keep, dechunked *d)
{
    d->data = malloc(len ? len : 1);
    FZ_CHECK(d->data != NULL, "malloc");
    memcpy(d->data, raw, len);
    msi_http_chunked st;
    memset(&st, 0, sizeof st);
    size_t in = 0, out = 0, lim = 0;
    int rc = MSI_HTTP_PARSE_MORE, status = 0;
    while (rc == MSI_HTTP_PARSE_MORE && (lim < len || (len == 0 && lim == 0))) {
        lim = step && lim + step < len ? lim + step : len;
        rc = msi_http_dechunk(&st, d->data, &in, lim, &out, keep, &status);
        FZ_CHECK(out <= in && in <= lim, "out %zu in %zu lim %zu", out, in, lim);
        if (rc == MSI_HTTP_PARSE_MORE)
            FZ_CHECK(in == lim, "MORE with bytes left (in %zu, lim %zu)", in, lim);
        if (rc == MSI_HTTP_PARSE_ERROR)
            FZ_CHECK(status == 400 || status == 413 || status == 431, "chunk status %d", status);
        FZ_CHECK(out == (st.total < keep ? st.total : keep), "kept %zu of %llu (keep %llu)", out,
                 (unsigned long long)st.total, (unsigned long long)keep);
        if (len == 0)
            break;
    }
    d->rc = rc;
    d->status = rc == MSI_HTTP_PARSE_ERROR ? status : 0;
    d->in = in;
    d->out = out;
    d->total = st.total;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned sel = data[0];
    size_t maxh = max_headers[sel & 3];
    size_t step = ((sel >> 2) & 7) + 1;
    uint64_t keep = keeps[sel >> 5];
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;

    msi_http_head h;
    int rc = msi_http_parse_head(buf, len, maxh, &h);
    FZ_CHECK(rc == MSI_HTTP_PARSE_MORE || rc == MSI_HTTP_PARSE_DONE || rc == MSI_HTTP_PARSE_ERROR,
             "rc %d", rc);
    if (rc == MSI_HTTP_PARSE_DONE)
        check_done(buf, len, maxh, &h);
    else if (rc == MSI_HTTP_PARSE_ERROR)
        check_error(&h);
    else
        FZ_CHECK(len < maxh, "MORE with max_header bytes in");

    /* Prefixes: at line ends (where http.c parses again), and a few others. */
    int lines = 0;
    size_t lim = len < maxh + 1 ? len : maxh + 1;
    for (size_t k = 0; k < lim && lines < 64; k++)
        if (buf[k] == '\n') {
            check_prefix(buf, k + 1, maxh, rc, &h);
            lines++;
        }
    if (len) {
        check_prefix(buf, len - 1, maxh, rc, &h);
        check_prefix(buf, len / 2, maxh, rc, &h);
    }
    if (rc == MSI_HTTP_PARSE_DONE && h.head_len > 0)
        check_prefix(buf, h.head_len - 1, maxh, rc, &h);

    if (rc != MSI_HTTP_PARSE_DONE)
        return 0;

    /* The target, percent-decoded as http.c does it (path: no '+'; query: '+'). */
    char *t = malloc(h.target_len);
    FZ_CHECK(t != NULL, "malloc");
    for (int plus = 0; plus < 2; plus++) {
        memcpy(t, buf + h.target, h.target_len);
        int nul = 0;
        size_t n = msi_http_unescape(t, h.target_len, plus, &nul);
        FZ_CHECK(n <= h.target_len, "decoded %zu > %u", n, h.target_len);
        FZ_CHECK(nul == (memchr(t, '\0', n) != NULL), "nul flag %d", nul);
    }
    free(t);

    /* A chunked body after the head: the same, whole or fed in pieces. */
    if (h.chunked) {
        const char *raw = buf + h.head_len;
        size_t rlen = len - h.head_len;
        dechunked a, b;
        dechunk(raw, rlen, 0, keep, &a);
        dechunk(raw, rlen, step, keep, &b);
        FZ_CHECK(a.rc == b.rc && a.status == b.status && a.in == b.in && a.out == b.out &&
                     a.total == b.total,
                 "whole: rc %d status %d in %zu out %zu; by %zu: rc %d status %d in %zu out %zu",
                 a.rc, a.status, a.in, a.out, step, b.rc, b.status, b.in, b.out);
        FZ_CHECK(memcmp(a.data, b.data, a.out) == 0, "different data");
        free(a.data);
        free(b.data);
    }
    return 0;
}
