/*
 * codec_text.c: the text lane of the codec (contract in codec.h): arguments and results
 * straight between C values and JSON text, for the call path.
 *
 * Design notes
 * - Why: a callgrind profile of one call (issue 5) put about 45,000 instructions per call in
 *   the JSON tree on the two sides together: build jansson objects, dump them, pre-scan and
 *   parse the text back into objects, decode, free. This lane writes and reads the text
 *   directly; it allocates only what a decoded value owns (its strings and bytes).
 * - Conservative by construction: whatever it does not fully understand, or finds wrong, is
 *   "not handled", and the caller runs the tree path (codec.c), which is the reference and
 *   says exactly what is wrong. The decoder reads a strict subset of the JSON that
 *   msi_json_parse + msi_decode_* accept, into the same values:
 *     objects whose keys have no escapes and each name a parameter (or field) once, with
 *     every parameter present; whitespace as JSON has it; nothing after the object;
 *     true / false / null as the type allows;
 *     integers as JSON integers within int64 (as jansson reads them), or as decimal strings
 *     ('-'? digits, how uint64 above INT64_MAX travels), range-checked like the tree path;
 *     reals with strtod, as jansson does, only if strtod ends where the token ends (a locale
 *     whose decimal point is not '.' leaves them to the tree path), never an overflow; an
 *     integer token for a float goes through int64, as jansson's integer does (so "-0" is
 *     +0.0); "NaN", "Infinity", "-Infinity" for floats;
 *     strings with every JSON escape, valid UTF-8, no control character, no \u0000, no lone
 *     surrogate (jansson refuses those too); base64 by msi_b64_decode; "ms://" references;
 *     no json_t * value (not handled: it is a tree anyway).
 *   Nesting deeper than MSI_JSON_MAX_DEPTH is not handled (msi_json_parse refuses it).
 * - The encoder writes what the tree path's text decodes to: integers in decimal (uint64
 *   above INT64_MAX as a decimal string), doubles with %.17g (as jansson; a '.' or an
 *   exponent is always there, so it stays a real), NaN and the infinities as strings, strings
 *   escaped as jansson does (", \, control characters; '/' and non-ASCII as they are). A
 *   string that is not valid UTF-8, a NULL ms_bytes with a length, a reference without
 *   "ms://" and any json_t * are not handled: the tree path reports the first three.
 */
#include "codec.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUM_MAX 64 /* a real longer than this (as text) is left to the tree path */

/* ------------------------------------------------------------------------------------------
 * Encoding.
 * ---------------------------------------------------------------------------------------- */

#define PUTLIT(b, lit) msi_buf_put((b), (lit), sizeof(lit) - 1)

/* Appends s (len bytes, valid UTF-8, no NUL) as a JSON string. */
static int
put_string(msi_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (msi_buf_reserve(b, len + 2) != 0)
        return -1;
    b->p[b->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (msi_buf_put(b, s + run, i - run) != 0)
            return -1;
        run = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
            break;
        }
        if (msi_buf_put(b, esc, n) != 0)
            return -1;
    }
    if (msi_buf_put(b, s + run, len - run) != 0 || msi_buf_put(b, "\"", 1) != 0)
        return -1;
    return 0;
}

/* A C string as JSON: 1, 0 (not valid UTF-8: not handled), -1. */
static int
enc_text(msi_buf *b, const char *s)
{
    if (!s)
        return PUTLIT(b, "null") ? -1 : 1;
    size_t len = strlen(s);
    if (msi_utf8_invalid_at(s, len) != len)
        return 0;
    return put_string(b, s, len) ? -1 : 1;
}

static int
enc_real(msi_buf *b, double d)
{
    if (isnan(d))
        return PUTLIT(b, "\"NaN\"") ? -1 : 1;
    if (isinf(d))
        return (d > 0 ? PUTLIT(b, "\"Infinity\"") : PUTLIT(b, "\"-Infinity\"")) ? -1 : 1;
    char num[40];
    int n = snprintf(num, sizeof num, "%.17g", d);
    if (n <= 0 || (size_t)n >= sizeof num - 2)
        return 0;
    int real = 0;
    for (int i = 0; i < n; i++) {
        char c = num[i];
        if (c == '.' || c == 'e' || c == 'E')
            real = 1;
        else if (!(c >= '0' && c <= '9') && c != '-' && c != '+')
            return 0; /* a locale's decimal point: the tree path knows what to do */
    }
    if (!real) {
        num[n++] = '.';
        num[n++] = '0';
    }
    return msi_buf_put(b, num, (size_t)n) ? -1 : 1;
}

static int enc_value(msi_buf *b, const ms__type *t, const void *v);

static int
enc_fields(msi_buf *b, const ms__field *f, unsigned n, const char *base)
{
    if (msi_buf_put(b, "{", 1) != 0)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        /* Names are C identifiers (the macros stringize them): no escaping needed. */
        if ((i && msi_buf_put(b, ",", 1) != 0) || msi_buf_put(b, "\"", 1) != 0 ||
            msi_buf_put(b, f[i].name, strlen(f[i].name)) != 0 || PUTLIT(b, "\":") != 0)
            return -1;
        int rc = enc_value(b, f[i].type, base + f[i].offset);
        if (rc != 1)
            return rc;
    }
    return msi_buf_put(b, "}", 1) ? -1 : 1;
}

static int
enc_value(msi_buf *b, const ms__type *t, const void *v)
{
    switch (t->kind) {
    case MS__K_BOOL: {
        unsigned char x;
        memcpy(&x, v, 1);
        return (x ? PUTLIT(b, "true") : PUTLIT(b, "false")) ? -1 : 1;
    }
    case MS__K_INT:
    case MS__K_UINT: {
        char num[24], *p = num;
        uint64_t mag;
        int quote = 0;
        if (!msi_int_size_ok(t->size))
            return 0;
        if (t->kind == MS__K_INT) {
            int64_t x = msi_read_int(v, t->size);
            if (x < 0) {
                *p++ = '-';
                mag = (uint64_t)(-(x + 1)) + 1;
            } else {
                mag = (uint64_t)x;
            }
        } else {
            mag = msi_read_uint(v, t->size);
            quote = mag > INT64_MAX; /* outside JSON integers' int64: a decimal string */
        }
        p = msi_u64_text(p, mag);
        if ((quote && msi_buf_put(b, "\"", 1) != 0) ||
            msi_buf_put(b, num, (size_t)(p - num)) != 0 || (quote && msi_buf_put(b, "\"", 1) != 0))
            return -1;
        return 1;
    }
    case MS__K_FLOAT: {
        float f;
        memcpy(&f, v, sizeof f);
        return enc_real(b, f);
    }
    case MS__K_DOUBLE: {
        double d;
        memcpy(&d, v, sizeof d);
        return enc_real(b, d);
    }
    case MS__K_STRING:
    case MS__K_CSTRING: {
        const char *s;
        memcpy(&s, v, sizeof s);
        return enc_text(b, s);
    }
    case MS__K_BYTES: {
        ms_bytes x;
        memcpy(&x, v, sizeof x);
        if (!x.data && x.len)
            return 0;
        if (x.len / 3 >= SIZE_MAX / 4 - 2)
            return 0;
        size_t olen = (x.len + 2) / 3 * 4;
        if (msi_buf_reserve(b, olen + 2) != 0)
            return -1;
        b->p[b->len++] = '"';
        if (x.len)
            msi_b64_encode(x.data, x.len, b->p + b->len);
        b->len += olen;
        b->p[b->len++] = '"';
        return 1;
    }
    case MS__K_REF: {
        ms_ref r;
        memcpy(&r, v, sizeof r);
        if (r.uri && strncmp(r.uri, "ms://", 5) != 0)
            return 0;
        return enc_text(b, r.uri);
    }
    case MS__K_STRUCT:
        return enc_fields(b, t->fields, t->nfields, v);
    case MS__K_JSON:
        return 0;
    }
    return 0;
}

int
msi_text_encode_args(const ms__service *svc, const void *args, msi_buf *b)
{
    size_t start = b->len;
    int rc = enc_fields(b, svc->params, svc->nparams, args);
    if (rc != 1)
        b->len = start;
    return rc;
}

int
msi_text_encode_result(const ms__service *svc, const void *result, msi_buf *b)
{
    size_t start = b->len;
    int rc;
    if (!svc->result) {
        rc = PUTLIT(b, "{\"result\":null}") ? -1 : 1;
    } else if (!result) {
        rc = 0;
    } else {
        rc = PUTLIT(b, "{\"result\":") ? -1 : enc_value(b, svc->result, result);
        if (rc == 1 && msi_buf_put(b, "}", 1) != 0)
            rc = -1;
    }
    if (rc != 1)
        b->len = start;
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Decoding. Every function returns 1 (done) or 0 (not handled); the caller of the top-level
 * one frees whatever was decoded when it gets 0.
 * ---------------------------------------------------------------------------------------- */

typedef struct rd {
    const char *p, *end;
    int depth;
} rd;

static void
skip_ws(rd *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

/* Whether the literal lit is at r->p and ends there (a delimiter or the end follows). */
static int
literal(rd *r, const char *lit, size_t n)
{
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n) != 0)
        return 0;
    const char *q = r->p + n;
    if (q < r->end && !(*q == ',' || *q == '}' || *q == ']' || *q == ' ' || *q == '\t' ||
                        *q == '\n' || *q == '\r'))
        return 0;
    r->p = q;
    return 1;
}

static int
hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return 0;
        v = v << 4 | d;
    }
    *out = v;
    return 1;
}

/* A JSON string at r->p (which is '"'), unescaped into a malloc'd NUL-terminated copy. */
static int
read_string(rd *r, char **out, size_t *outlen)
{
    const char *s = r->p + 1, *q = s;
    int escapes = 0;
    while (q < r->end && *q != '"') {
        unsigned char c = (unsigned char)*q;
        if (c < 0x20)
            return 0; /* jansson refuses control characters in strings */
        if (c == '\\') {
            escapes = 1;
            if (q + 1 >= r->end)
                return 0;
            q += 2;
            continue;
        }
        q++;
    }
    if (q >= r->end)
        return 0;
    size_t raw = (size_t)(q - s);
    char *o = malloc(raw + 1);
    if (!o)
        return 0;
    size_t n = 0;
    if (!escapes) {
        memcpy(o, s, raw);
        n = raw;
    } else {
        for (const char *p = s; p < q;) {
            if (*p != '\\') {
                o[n++] = *p++;
                continue;
            }
            char e = p[1];
            p += 2;
            switch (e) {
            case '"':
            case '\\':
            case '/':
                o[n++] = e;
                continue;
            case 'b':
                o[n++] = '\b';
                continue;
            case 'f':
                o[n++] = '\f';
                continue;
            case 'n':
                o[n++] = '\n';
                continue;
            case 'r':
                o[n++] = '\r';
                continue;
            case 't':
                o[n++] = '\t';
                continue;
            case 'u':
                break;
            default:
                free(o);
                return 0;
            }
            unsigned cp;
            if (q - p < 4 || !hex4(p, &cp)) {
                free(o);
                return 0;
            }
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (q - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, &lo) || lo < 0xDC00 ||
                    lo > 0xDFFF) {
                    free(o);
                    return 0;
                }
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0) {
                free(o);
                return 0;
            }
            if (cp < 0x80) {
                o[n++] = (char)cp;
            } else if (cp < 0x800) {
                o[n++] = (char)(0xC0 | cp >> 6);
                o[n++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                o[n++] = (char)(0xE0 | cp >> 12);
                o[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                o[n++] = (char)(0x80 | (cp & 0x3F));
            } else {
                o[n++] = (char)(0xF0 | cp >> 18);
                o[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                o[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                o[n++] = (char)(0x80 | (cp & 0x3F));
            }
        }
    }
    o[n] = '\0';
    if (msi_utf8_invalid_at(o, n) != n) {
        free(o);
        return 0;
    }
    r->p = q + 1;
    *out = o;
    *outlen = n;
    return 1;
}

/* A JSON number token at r->p: its extent, and whether it is an integer (no fraction or
 * exponent). 0 when it is not a number by JSON's grammar. */
static int
number_token(rd *r, const char **endp, int *is_int)
{
    const char *p = r->p, *e = r->end;
    if (p < e && *p == '-')
        p++;
    if (p >= e || !(*p >= '0' && *p <= '9'))
        return 0;
    if (*p == '0') {
        p++;
        if (p < e && *p >= '0' && *p <= '9')
            return 0; /* leading zero */
    } else {
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    *is_int = 1;
    if (p < e && *p == '.') {
        p++;
        if (p >= e || !(*p >= '0' && *p <= '9'))
            return 0;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
        *is_int = 0;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || !(*p >= '0' && *p <= '9'))
            return 0;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
        *is_int = 0;
    }
    *endp = p;
    return 1;
}

/* An integer token (checked by number_token) as sign and magnitude, within int64 as jansson
 * reads integers. */
static int
int_token(const char *p, const char *end, int *neg, uint64_t *mag)
{
    *neg = *p == '-';
    if (*neg)
        p++;
    uint64_t m = 0;
    for (; p < end; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (m > (UINT64_MAX - d) / 10)
            return 0;
        m = m * 10 + d;
    }
    if (*neg ? m > (uint64_t)1 << 63 : m > (uint64_t)INT64_MAX)
        return 0;
    *mag = m;
    return 1;
}

static int
dec_int(rd *r, const ms__type *t, void *v)
{
    const char *end;
    int is_int, neg;
    uint64_t mag;
    if (r->p < r->end && *r->p == '"') {
        /* A decimal string (how uint64 above INT64_MAX travels). */
        const char *q = r->p + 1;
        while (q < r->end && *q >= '-' && *q <= '9' && *q != '.' && *q != '/')
            q++;
        if (q >= r->end || *q != '"' ||
            msi_parse_decimal(r->p + 1, (size_t)(q - r->p - 1), &neg, &mag) != 0)
            return 0;
        end = q + 1;
    } else if (!number_token(r, &end, &is_int) || !is_int || !int_token(r->p, end, &neg, &mag)) {
        return 0;
    }
    unsigned bits = t->size * 8;
    if (t->kind == MS__K_INT) {
        uint64_t lim = (uint64_t)1 << (bits - 1);
        if (neg ? mag > lim : mag > lim - 1)
            return 0;
        msi_write_int(v, t->size,
                      !neg                       ? (int64_t)mag
                      : mag == (uint64_t)1 << 63 ? INT64_MIN
                                                 : -(int64_t)mag);
    } else {
        uint64_t max = bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
        if ((neg && mag != 0) || mag > max)
            return 0;
        msi_write_uint(v, t->size, mag);
    }
    r->p = end;
    return 1;
}

static int
dec_real(rd *r, const ms__type *t, void *v)
{
    double d;
    if (r->p < r->end && *r->p == '"') {
        char *s;
        size_t n;
        if (!read_string(r, &s, &n))
            return 0;
        int ok = 1;
        if (n == 3 && memcmp(s, "NaN", 3) == 0)
            d = NAN;
        else if (n == 8 && memcmp(s, "Infinity", 8) == 0)
            d = INFINITY;
        else if (n == 9 && memcmp(s, "-Infinity", 9) == 0)
            d = -INFINITY;
        else
            ok = 0;
        free(s);
        if (!ok)
            return 0;
    } else {
        const char *end;
        int is_int, neg;
        uint64_t mag;
        if (!number_token(r, &end, &is_int))
            return 0;
        if (is_int) {
            if (!int_token(r->p, end, &neg, &mag))
                return 0;
            int64_t x = !neg ? (int64_t)mag : mag == (uint64_t)1 << 63 ? INT64_MIN : -(int64_t)mag;
            d = (double)x;
        } else {
            char num[NUM_MAX];
            size_t n = (size_t)(end - r->p);
            if (n >= sizeof num)
                return 0;
            memcpy(num, r->p, n);
            num[n] = '\0';
            char *stop;
            errno = 0;
            d = strtod(num, &stop);
            if (stop != num + n || isinf(d))
                return 0;
        }
        r->p = end;
    }
    if (t->kind == MS__K_DOUBLE) {
        memcpy(v, &d, sizeof d);
    } else {
        if (isfinite(d) && fabs(d) > FLT_MAX)
            return 0;
        float f = (float)d;
        memcpy(v, &f, sizeof f);
    }
    return 1;
}

static int dec_value(rd *r, const ms__type *t, void *v);

/* An object at r->p whose keys are exactly the n fields, into base. */
static int
dec_fields(rd *r, const ms__field *f, unsigned n, char *base)
{
    if (n > 64 || r->p >= r->end || *r->p != '{' || ++r->depth > MSI_JSON_MAX_DEPTH)
        return 0;
    r->p++;
    skip_ws(r);
    uint64_t seen = 0;
    unsigned count = 0;
    if (r->p < r->end && *r->p == '}') {
        r->p++;
    } else {
        for (;;) {
            if (r->p >= r->end || *r->p != '"')
                return 0;
            const char *k = r->p + 1, *q = k;
            while (q < r->end && *q != '"' && *q != '\\')
                q++;
            if (q >= r->end || *q != '"')
                return 0; /* an escaped key: the tree path */
            size_t klen = (size_t)(q - k);
            unsigned i = 0;
            while (i < n && !(strlen(f[i].name) == klen && memcmp(f[i].name, k, klen) == 0))
                i++;
            if (i == n || (seen >> i & 1))
                return 0; /* unknown or duplicate */
            seen |= (uint64_t)1 << i;
            r->p = q + 1;
            skip_ws(r);
            if (r->p >= r->end || *r->p != ':')
                return 0;
            r->p++;
            skip_ws(r);
            if (!dec_value(r, f[i].type, base + f[i].offset))
                return 0;
            count++;
            skip_ws(r);
            if (r->p < r->end && *r->p == ',') {
                r->p++;
                skip_ws(r);
                continue;
            }
            if (r->p < r->end && *r->p == '}') {
                r->p++;
                break;
            }
            return 0;
        }
    }
    r->depth--;
    return count == n;
}

static int
dec_value(rd *r, const ms__type *t, void *v)
{
    switch (t->kind) {
    case MS__K_BOOL: {
        _Bool x;
        if (literal(r, "true", 4))
            x = 1;
        else if (literal(r, "false", 5))
            x = 0;
        else
            return 0;
        memcpy(v, &x, sizeof x);
        return 1;
    }
    case MS__K_INT:
    case MS__K_UINT:
        if (t->size != 1 && t->size != 2 && t->size != 4 && t->size != 8)
            return 0;
        return dec_int(r, t, v);
    case MS__K_FLOAT:
    case MS__K_DOUBLE:
        return dec_real(r, t, v);
    case MS__K_STRING:
    case MS__K_CSTRING:
    case MS__K_REF: {
        if (literal(r, "null", 4))
            return 1; /* NULL: already zeroed */
        if (r->p >= r->end || *r->p != '"')
            return 0;
        char *s;
        size_t n;
        if (!read_string(r, &s, &n))
            return 0;
        if (t->kind != MS__K_REF) {
            memcpy(v, &s, sizeof s);
            return 1;
        }
        if (strncmp(s, "ms://", 5) != 0) {
            free(s);
            return 0;
        }
        ms_ref x = {s};
        memcpy(v, &x, sizeof x);
        return 1;
    }
    case MS__K_BYTES: {
        if (r->p >= r->end || *r->p != '"')
            return 0;
        char *s;
        size_t n;
        if (!read_string(r, &s, &n))
            return 0;
        ms_bytes x;
        int rc = msi_b64_decode(s, n, &x);
        free(s);
        if (rc != 0)
            return 0;
        memcpy(v, &x, sizeof x);
        return 1;
    }
    case MS__K_STRUCT:
        return dec_fields(r, t->fields, t->nfields, v);
    case MS__K_JSON:
        return 0;
    }
    return 0;
}

int
msi_text_decode_args(const ms__service *svc, const char *text, size_t len, void *args)
{
    memset(args, 0, svc->args_size);
    rd r = {text, text + len, 0};
    skip_ws(&r);
    int ok = dec_fields(&r, svc->params, svc->nparams, args);
    if (ok) {
        skip_ws(&r);
        ok = r.p == r.end;
    }
    if (!ok) {
        msi_free_args(svc, args);
        memset(args, 0, svc->args_size);
    }
    return ok;
}

int
msi_text_decode_result(const ms__service *svc, const char *text, size_t len, void *result)
{
    const ms__type *t = svc->result;
    if (t && result)
        memset(result, 0, t->size);
    rd r = {text, text + len, 1};
    skip_ws(&r);
    if (r.p >= r.end || *r.p != '{')
        return 0;
    r.p++;
    skip_ws(&r);
    if ((size_t)(r.end - r.p) < 8 || memcmp(r.p, "\"result\"", 8) != 0)
        return 0;
    r.p += 8;
    skip_ws(&r);
    if (r.p >= r.end || *r.p != ':')
        return 0;
    r.p++;
    skip_ws(&r);
    msi_scratch tmp;
    void *v = result;
    int ok;
    if (!t) {
        ok = literal(&r, "null", 4);
    } else {
        if (!v) {
            v = t->size <= sizeof tmp ? (void *)&tmp : calloc(1, t->size);
            if (!v)
                return 0;
            memset(v, 0, t->size);
        }
        ok = dec_value(&r, t, v);
    }
    if (ok) {
        skip_ws(&r);
        ok = r.p < r.end && *r.p == '}';
        if (ok) {
            r.p++;
            skip_ws(&r);
            ok = r.p == r.end;
        }
    }
    if (t && (!ok || v != result)) {
        ms__free_value(t, v);
        memset(v, 0, t->size);
    }
    if (v && v != result && v != (void *)&tmp)
        free(v);
    return ok;
}
