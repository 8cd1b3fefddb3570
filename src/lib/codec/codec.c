/*
 * codec.c: C values to and from JSON, driven by type descriptors (contract: codec.h).
 *
 * Design notes
 * - One recursive pair, encode_value / decode_value, walks a descriptor; msi_encode and
 *   msi_decode wrap it, and the argument and result functions apply it per parameter. A
 *   decoder zeroes its destination first and, on failure, frees what it had allocated and
 *   zeroes it again, so a caller never sees a half-decoded value.
 * - Error messages name the value by a path built on the way down: "argument 'p': field
 *   'a': field 'x': expected a number, got string". The service name is not included: the
 *   caller prefixes it.
 * - Integers are read and written with memcpy by width (1, 2, 4, 8 bytes), never through a
 *   cast of the pointer. A decoded integer, from a JSON integer or a decimal string, is
 *   carried as sign and 64-bit magnitude, so that one range check covers every width and
 *   both signs, including INT64_MIN and UINT64_MAX. Messages name widths as "int32",
 *   "uint64" (not the descriptor's short name), with the offending value as text.
 * - Reals: jansson dumps a real with 17 significant digits, enough for any finite double to
 *   round-trip exactly (-0.0 included); NaN and the infinities travel as strings. A NaN's
 *   sign and payload are not preserved: it decodes as NAN.
 * - Nullable pointers: a NULL `char *` / `const char *` encodes as JSON null and null
 *   decodes to NULL; likewise an ms_ref whose uri is NULL. A NULL `json_t *` encodes as
 *   null, and JSON null decodes to json_null() (never NULL), so a decoded json_t * can
 *   always be json_decref'd and inspected.
 * - json_t *: encoding takes a reference (json_incref), since the encoded tree only lives
 *   until it is dumped; decoding makes a deep copy, so the decoded value shares nothing
 *   with the message (or, in zero-checked mode, with the caller's argument).
 * - ms_bytes: base64 by our own strict codec: length a multiple of 4, the RFC 4648
 *   alphabet, at most two '=' and only at the end, and zero unused bits (one encoding per
 *   value). {NULL, 0} encodes as "" and "" decodes to {NULL, 0}.
 * - Failure messages are valid UTF-8 (msi_utf8_scrub, src/base/json.c, on the way out of
 *   every public decoder, as msi_json_parse does): they quote input (a key cut at 64
 *   bytes, jansson's "near '...'"), and they end up in JSON error bodies, which must be
 *   UTF-8 to be built at all. Found by tests/fuzz/fuzz_call_args.
 */
#include "codec.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LEN 256 /* the "argument 'p': field 'x'" prefix of a message */

/* ------------------------------------------------------------------------------------------
 * Small helpers.
 * ---------------------------------------------------------------------------------------- */

static const char *
json_kind(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "real";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

static ms_status
mismatch(msi_err *err, const char *what, const char *expected, const json_t *j)
{
    return msi_errf(err, MS_EBADARGS, "%s: expected %s, got %s", what, expected, json_kind(j));
}

static ms_status
nomem(msi_err *err, const char *what)
{
    return msi_errf(err, MS_ENOMEM, "%s: out of memory", what);
}

/* Pointer-sized slots (char *, const char *, json_t *) are moved with memcpy, so that a
 * `const char *` member is handled without casting away const through the lvalue. */
static void *
get_ptr(const void *slot)
{
    void *p;
    memcpy(&p, slot, sizeof p);
    return p;
}

static void
set_ptr(void *slot, const void *p)
{
    memcpy(slot, &p, sizeof p);
}

/* Checks that s (len bytes) is valid UTF-8 without NUL; else fills err. */
static ms_status
check_text(const char *s, size_t len, const char *what, msi_err *err)
{
    const char *nul = memchr(s, '\0', len);
    if (nul)
        return msi_errf(err, MS_EBADARGS, "%s: string contains NUL (\\u0000) at byte %zu", what,
                        (size_t)(nul - s));
    size_t bad = msi_utf8_invalid_at(s, len);
    if (bad != len)
        return msi_errf(err, MS_EBADARGS, "%s: invalid UTF-8 at byte %zu", what, bad);
    return MS_OK;
}

/* Makes a failure's message valid UTF-8 (it quotes input text, maybe cut mid-character)
 * and returns st. */
static ms_status
scrubbed(msi_err *err, ms_status st)
{
    if (err && st != MS_OK)
        msi_utf8_scrub(err->msg);
    return st;
}

/* A malloc'd NUL-terminated copy of a JSON string, checked by check_text. */
static ms_status
copy_text(const json_t *j, char **out, const char *what, msi_err *err)
{
    const char *s = json_string_value(j);
    size_t len = json_string_length(j);
    ms_status st = check_text(s, len, what, err);
    if (st != MS_OK)
        return st;
    char *p = malloc(len + 1);
    if (!p)
        return nomem(err, what);
    memcpy(p, s, len);
    p[len] = '\0';
    *out = p;
    return MS_OK;
}

/* ------------------------------------------------------------------------------------------
 * Integers.
 * ---------------------------------------------------------------------------------------- */

static const char *
int_name(const ms__type *t)
{
    static const char *const sname[] = {"int8", "int16", "int32", "int64"};
    static const char *const uname[] = {"uint8", "uint16", "uint32", "uint64"};
    unsigned i = t->size == 1 ? 0 : t->size == 2 ? 1 : t->size == 4 ? 2 : 3;
    return t->kind == MS__K_INT ? sname[i] : uname[i];
}

int
msi_int_size_ok(unsigned size)
{
    return size == 1 || size == 2 || size == 4 || size == 8;
}

int64_t
msi_read_int(const void *v, unsigned size)
{
    switch (size) {
    case 1: {
        int8_t x;
        memcpy(&x, v, 1);
        return x;
    }
    case 2: {
        int16_t x;
        memcpy(&x, v, 2);
        return x;
    }
    case 4: {
        int32_t x;
        memcpy(&x, v, 4);
        return x;
    }
    default: {
        int64_t x;
        memcpy(&x, v, 8);
        return x;
    }
    }
}

uint64_t
msi_read_uint(const void *v, unsigned size)
{
    switch (size) {
    case 1: {
        uint8_t x;
        memcpy(&x, v, 1);
        return x;
    }
    case 2: {
        uint16_t x;
        memcpy(&x, v, 2);
        return x;
    }
    case 4: {
        uint32_t x;
        memcpy(&x, v, 4);
        return x;
    }
    default: {
        uint64_t x;
        memcpy(&x, v, 8);
        return x;
    }
    }
}

void
msi_write_int(void *v, unsigned size, int64_t x)
{
    switch (size) {
    case 1: {
        int8_t y = (int8_t)x;
        memcpy(v, &y, 1);
        break;
    }
    case 2: {
        int16_t y = (int16_t)x;
        memcpy(v, &y, 2);
        break;
    }
    case 4: {
        int32_t y = (int32_t)x;
        memcpy(v, &y, 4);
        break;
    }
    default:
        memcpy(v, &x, 8);
        break;
    }
}

void
msi_write_uint(void *v, unsigned size, uint64_t x)
{
    switch (size) {
    case 1: {
        uint8_t y = (uint8_t)x;
        memcpy(v, &y, 1);
        break;
    }
    case 2: {
        uint16_t y = (uint16_t)x;
        memcpy(v, &y, 2);
        break;
    }
    case 4: {
        uint32_t y = (uint32_t)x;
        memcpy(v, &y, 4);
        break;
    }
    default:
        memcpy(v, &x, 8);
        break;
    }
}

/* Parses a decimal integer: an optional '-', then one or more digits, nothing else.
 * Returns 0 on success, -1 when s is not of that form, -2 when the magnitude exceeds
 * UINT64_MAX. */
int
msi_parse_decimal(const char *s, size_t len, int *neg, uint64_t *mag)
{
    size_t i = 0;
    uint64_t m = 0;
    *neg = 0;
    if (i < len && s[i] == '-') {
        *neg = 1;
        i++;
    }
    if (i == len)
        return -1;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (m > (UINT64_MAX - d) / 10) {
            /* Keep scanning: a non-digit later makes it "not an integer", not "too big". */
            for (i++; i < len; i++)
                if (s[i] < '0' || s[i] > '9')
                    return -1;
            return -2;
        }
        m = m * 10 + d;
    }
    *mag = m;
    return 0;
}

/* Stores the integer (sign, magnitude) into v if it fits t. */
static ms_status
store_int(const ms__type *t, int neg, uint64_t mag, void *v, const char *what, msi_err *err)
{
    unsigned bits = t->size * 8;
    if (t->kind == MS__K_INT) {
        uint64_t lim = (uint64_t)1 << (bits - 1); /* |min|; max is lim - 1 */
        if (neg ? mag > lim : mag > lim - 1)
            goto range;
        int64_t x;
        if (!neg)
            x = (int64_t)mag;
        else if (mag == (uint64_t)1 << 63)
            x = INT64_MIN;
        else
            x = -(int64_t)mag;
        msi_write_int(v, t->size, x);
    } else {
        uint64_t max = bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
        if ((neg && mag != 0) || mag > max)
            goto range;
        msi_write_uint(v, t->size, mag);
    }
    return MS_OK;
range:
    return msi_errf(err, MS_EBADARGS, "%s: %s%" PRIu64 " does not fit %s", what,
                    neg && mag ? "-" : "", mag, int_name(t));
}

static ms_status
encode_int(const ms__type *t, const void *v, json_t **out)
{
    if (t->kind == MS__K_INT) {
        *out = json_integer((json_int_t)msi_read_int(v, t->size));
    } else {
        uint64_t x = msi_read_uint(v, t->size);
        if (x <= INT64_MAX) {
            *out = json_integer((json_int_t)x);
        } else {
            char buf[24];
            int n = snprintf(buf, sizeof buf, "%" PRIu64, x);
            *out = json_stringn_nocheck(buf, (size_t)n);
        }
    }
    return *out ? MS_OK : MS_ENOMEM;
}

static ms_status
decode_int(const ms__type *t, const json_t *j, void *v, const char *what, msi_err *err)
{
    int neg;
    uint64_t mag;
    if (json_is_integer(j)) {
        json_int_t x = json_integer_value(j);
        neg = x < 0;
        mag = neg ? (uint64_t)(-(x + 1)) + 1 : (uint64_t)x;
    } else if (json_is_string(j)) {
        const char *s = json_string_value(j);
        size_t len = json_string_length(j);
        int rc = msi_parse_decimal(s, len, &neg, &mag);
        if (rc == -1)
            return mismatch(err, what, "an integer", j);
        if (rc == -2)
            return msi_errf(err, MS_EBADARGS, "%s: %.40s%s does not fit %s", what, s,
                            len > 40 ? "..." : "", int_name(t));
    } else {
        return mismatch(err, what, "an integer", j);
    }
    return store_int(t, neg, mag, v, what, err);
}

/* ------------------------------------------------------------------------------------------
 * Reals.
 * ---------------------------------------------------------------------------------------- */

static json_t *
encode_real(double d)
{
    if (isnan(d))
        return json_string("NaN");
    if (isinf(d))
        return json_string(d > 0 ? "Infinity" : "-Infinity");
    return json_real(d);
}

/* The shortest of %.15g .. %.17g that reads back as d, for messages. */
static const char *
real_text(char *buf, size_t size, double d)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    return buf;
}

static ms_status
decode_real(const ms__type *t, const json_t *j, void *v, const char *what, msi_err *err)
{
    double d;
    if (json_is_real(j)) {
        d = json_real_value(j);
    } else if (json_is_integer(j)) {
        d = (double)json_integer_value(j);
    } else if (json_is_string(j)) {
        const char *s = json_string_value(j);
        size_t len = json_string_length(j);
        if (len == 3 && memcmp(s, "NaN", 3) == 0)
            d = NAN;
        else if (len == 8 && memcmp(s, "Infinity", 8) == 0)
            d = INFINITY;
        else if (len == 9 && memcmp(s, "-Infinity", 9) == 0)
            d = -INFINITY;
        else
            return msi_errf(err, MS_EBADARGS,
                            "%s: expected a number, got string (only \"NaN\", \"Infinity\" "
                            "and \"-Infinity\" are allowed)",
                            what);
    } else {
        return mismatch(err, what, "a number", j);
    }
    if (t->kind == MS__K_DOUBLE) {
        memcpy(v, &d, sizeof d);
    } else {
        if (isfinite(d) && fabs(d) > FLT_MAX) {
            char buf[32];
            return msi_errf(err, MS_EBADARGS, "%s: %s does not fit float", what,
                            real_text(buf, sizeof buf, d));
        }
        float f = (float)d;
        memcpy(v, &f, sizeof f);
    }
    return MS_OK;
}

/* ------------------------------------------------------------------------------------------
 * Base64 (RFC 4648, standard alphabet, with padding).
 * ---------------------------------------------------------------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

void
msi_b64_encode(const uint8_t *data, size_t len, char *out)
{
    size_t i = 0, o = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t w = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        out[o++] = b64_alphabet[w >> 18];
        out[o++] = b64_alphabet[(w >> 12) & 63];
        out[o++] = b64_alphabet[(w >> 6) & 63];
        out[o++] = b64_alphabet[w & 63];
    }
    if (len - i == 1) {
        uint32_t w = (uint32_t)data[i] << 16;
        out[o++] = b64_alphabet[w >> 18];
        out[o++] = b64_alphabet[(w >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        uint32_t w = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        out[o++] = b64_alphabet[w >> 18];
        out[o++] = b64_alphabet[(w >> 12) & 63];
        out[o++] = b64_alphabet[(w >> 6) & 63];
        out[o++] = '=';
    }
}

static ms_status
encode_bytes(const void *v, json_t **out, const char *what, msi_err *err)
{
    ms_bytes b;
    memcpy(&b, v, sizeof b);
    if (!b.data && b.len)
        return msi_errf(err, MS_EBADARGS, "%s: ms_bytes with NULL data and length %zu", what,
                        b.len);
    if (b.len / 3 >= SIZE_MAX / 4 - 1)
        return nomem(err, what);
    size_t olen = (b.len + 2) / 3 * 4;
    char *buf = malloc(olen ? olen : 1);
    if (!buf)
        return nomem(err, what);
    msi_b64_encode(b.data, b.len, buf);
    *out = json_stringn_nocheck(buf, olen);
    free(buf);
    return *out ? MS_OK : nomem(err, what);
}

/* Checks base64 text: 0 valid, else 1 (length), 2 (a character, at *at), 3 (padding bits). */
static int
b64_check(const unsigned char *s, size_t n, size_t *at)
{
    if (n % 4 != 0)
        return 1;
    size_t pad = s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    size_t data_chars = n - pad;
    for (size_t i = 0; i < data_chars; i++) {
        if (b64_value(s[i]) < 0) {
            *at = i;
            return 2;
        }
    }
    /* The bits after the last byte must be zero: "QR==" and "QQ==" are not both "A". */
    int last = b64_value(s[data_chars - 1]);
    if ((pad == 1 && (last & 0x3)) || (pad == 2 && (last & 0xF)))
        return 3;
    return 0;
}

/* Decodes checked base64 text (n > 0) into a malloc'd buffer; NULL when out of memory. */
static uint8_t *
b64_decode(const unsigned char *s, size_t n, size_t *len)
{
    size_t pad = s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    size_t data_chars = n - pad;
    size_t blen = n / 4 * 3 - pad;
    uint8_t *data = malloc(blen ? blen : 1);
    if (!data)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t w = 0;
        for (size_t k = 0; k < 4; k++)
            w = w << 6 | (uint32_t)(i + k < data_chars ? b64_value(s[i + k]) : 0);
        data[o++] = (uint8_t)(w >> 16);
        if (o < blen)
            data[o++] = (uint8_t)(w >> 8);
        if (o < blen)
            data[o++] = (uint8_t)w;
    }
    *len = blen;
    return data;
}

int
msi_b64_decode(const char *text, size_t n, ms_bytes *out)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t at;
    out->data = NULL;
    out->len = 0;
    if (n == 0)
        return 0;
    if (b64_check(s, n, &at) != 0)
        return -1;
    out->data = b64_decode(s, n, &out->len);
    return out->data ? 0 : -2;
}

static ms_status
decode_bytes(const json_t *j, void *v, const char *what, msi_err *err)
{
    if (!json_is_string(j))
        return mismatch(err, what, "a base64 string", j);
    const unsigned char *s = (const unsigned char *)json_string_value(j);
    size_t n = json_string_length(j);
    ms_bytes b = {NULL, 0};
    if (n == 0) {
        memcpy(v, &b, sizeof b);
        return MS_OK;
    }
    size_t at = 0;
    switch (b64_check(s, n, &at)) {
    case 1:
        return msi_errf(err, MS_EBADARGS, "%s: invalid base64: length %zu is not a multiple of 4",
                        what, n);
    case 2:
        return msi_errf(err, MS_EBADARGS, "%s: invalid base64: unexpected character at offset %zu",
                        what, at);
    case 3:
        return msi_errf(err, MS_EBADARGS, "%s: invalid base64: non-zero padding bits", what);
    default:
        break;
    }
    b.data = b64_decode(s, n, &b.len);
    if (!b.data)
        return nomem(err, what);
    memcpy(v, &b, sizeof b);
    return MS_OK;
}

/* ------------------------------------------------------------------------------------------
 * Strings and references.
 * ---------------------------------------------------------------------------------------- */

#define REF_PREFIX "ms://"

static ms_status
encode_text(const char *s, json_t **out, const char *what, msi_err *err)
{
    if (!s) {
        *out = json_null();
        return MS_OK;
    }
    size_t len = strlen(s);
    ms_status st = check_text(s, len, what, err);
    if (st != MS_OK)
        return st;
    *out = json_stringn_nocheck(s, len);
    return *out ? MS_OK : nomem(err, what);
}

static ms_status
check_ref(const char *uri, size_t len, const char *what, msi_err *err)
{
    if (len < strlen(REF_PREFIX) || memcmp(uri, REF_PREFIX, strlen(REF_PREFIX)) != 0)
        return msi_errf(err, MS_EBADARGS, "%s: reference \"%.64s%s\" does not start with \"%s\"",
                        what, uri, len > 64 ? "..." : "", REF_PREFIX);
    return MS_OK;
}

/* ------------------------------------------------------------------------------------------
 * The walk.
 * ---------------------------------------------------------------------------------------- */

static ms_status encode_value(const ms__type *t, const void *v, json_t **out, const char *what,
                              msi_err *err);
static ms_status decode_value(const ms__type *t, const json_t *j, void *v, const char *what,
                              msi_err *err);

static ms_status
encode_struct(const ms__type *t, const void *v, json_t **out, const char *what, msi_err *err)
{
    json_t *obj = json_object();
    if (!obj)
        return nomem(err, what);
    for (unsigned i = 0; i < t->nfields; i++) {
        const ms__field *f = &t->fields[i];
        char path[PATH_MAX_LEN];
        json_t *fj;
        snprintf(path, sizeof path, "%s: field '%s'", what, f->name);
        ms_status st = encode_value(f->type, (const char *)v + f->offset, &fj, path, err);
        if (st != MS_OK) {
            json_decref(obj);
            return st;
        }
        if (json_object_set_new(obj, f->name, fj) != 0) {
            json_decref(obj);
            return nomem(err, what);
        }
    }
    *out = obj;
    return MS_OK;
}

/* Finds a key of obj that names none of the n fields; NULL when there is none. */
static const char *
unknown_key(const json_t *obj, const ms__field *fields, unsigned n)
{
    for (void *it = json_object_iter((json_t *)obj); it;
         it = json_object_iter_next((json_t *)obj, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        unsigned i;
        for (i = 0; i < n; i++)
            if (strlen(fields[i].name) == klen && memcmp(fields[i].name, key, klen) == 0)
                break;
        if (i == n)
            return key;
    }
    return NULL;
}

static ms_status
decode_struct(const ms__type *t, const json_t *j, void *v, const char *what, msi_err *err)
{
    if (!json_is_object(j))
        return mismatch(err, what, "an object", j);
    const char *extra = unknown_key(j, t->fields, t->nfields);
    if (extra)
        return msi_errf(err, MS_EBADARGS, "%s: unknown field '%.64s'", what, extra);
    for (unsigned i = 0; i < t->nfields; i++) {
        const ms__field *f = &t->fields[i];
        const json_t *fj = json_object_get(j, f->name);
        if (!fj)
            return msi_errf(err, MS_EBADARGS, "%s: missing field '%s'", what, f->name);
        char path[PATH_MAX_LEN];
        snprintf(path, sizeof path, "%s: field '%s'", what, f->name);
        ms_status st = decode_value(f->type, fj, (char *)v + f->offset, path, err);
        if (st != MS_OK)
            return st;
    }
    return MS_OK;
}

static ms_status
encode_value(const ms__type *t, const void *v, json_t **out, const char *what, msi_err *err)
{
    *out = NULL;
    switch (t->kind) {
    case MS__K_BOOL: {
        unsigned char b;
        memcpy(&b, v, 1);
        *out = json_boolean(b != 0);
        return MS_OK;
    }
    case MS__K_INT:
    case MS__K_UINT:
        if (!msi_int_size_ok(t->size))
            break;
        return encode_int(t, v, out) == MS_OK ? MS_OK : nomem(err, what);
    case MS__K_FLOAT: {
        float f;
        memcpy(&f, v, sizeof f);
        *out = encode_real(f);
        return *out ? MS_OK : nomem(err, what);
    }
    case MS__K_DOUBLE: {
        double d;
        memcpy(&d, v, sizeof d);
        *out = encode_real(d);
        return *out ? MS_OK : nomem(err, what);
    }
    case MS__K_STRING:
    case MS__K_CSTRING:
        return encode_text(get_ptr(v), out, what, err);
    case MS__K_BYTES:
        return encode_bytes(v, out, what, err);
    case MS__K_JSON: {
        json_t *j = get_ptr(v);
        *out = j ? json_incref(j) : json_null();
        return MS_OK;
    }
    case MS__K_REF: {
        ms_ref r;
        memcpy(&r, v, sizeof r);
        if (r.uri) {
            ms_status st = check_ref(r.uri, strlen(r.uri), what, err);
            if (st != MS_OK)
                return st;
        }
        return encode_text(r.uri, out, what, err);
    }
    case MS__K_STRUCT:
        return encode_struct(t, v, out, what, err);
    }
    return msi_errf(err, MS_EINVAL, "%s: unsupported type descriptor (kind %d, size %u)", what,
                    (int)t->kind, t->size);
}

static ms_status
decode_value(const ms__type *t, const json_t *j, void *v, const char *what, msi_err *err)
{
    switch (t->kind) {
    case MS__K_BOOL: {
        if (!json_is_boolean(j))
            return mismatch(err, what, "a boolean", j);
        _Bool b = json_is_true(j);
        memcpy(v, &b, sizeof b);
        return MS_OK;
    }
    case MS__K_INT:
    case MS__K_UINT:
        if (!msi_int_size_ok(t->size))
            break;
        return decode_int(t, j, v, what, err);
    case MS__K_FLOAT:
    case MS__K_DOUBLE:
        return decode_real(t, j, v, what, err);
    case MS__K_STRING:
    case MS__K_CSTRING: {
        if (json_is_null(j))
            return MS_OK; /* NULL, already zeroed */
        if (!json_is_string(j))
            return mismatch(err, what, "a string", j);
        char *s;
        ms_status st = copy_text(j, &s, what, err);
        if (st == MS_OK)
            set_ptr(v, s);
        return st;
    }
    case MS__K_BYTES:
        return decode_bytes(j, v, what, err);
    case MS__K_JSON: {
        json_t *copy = json_deep_copy(j);
        if (!copy)
            return nomem(err, what);
        set_ptr(v, copy);
        return MS_OK;
    }
    case MS__K_REF: {
        if (json_is_null(j))
            return MS_OK;
        if (!json_is_string(j))
            return mismatch(err, what, "a reference string", j);
        ms_status st = check_ref(json_string_value(j), json_string_length(j), what, err);
        ms_ref r = {NULL};
        if (st == MS_OK)
            st = copy_text(j, &r.uri, what, err);
        if (st == MS_OK)
            memcpy(v, &r, sizeof r);
        return st;
    }
    case MS__K_STRUCT:
        return decode_struct(t, j, v, what, err);
    }
    return msi_errf(err, MS_EINVAL, "%s: unsupported type descriptor (kind %d, size %u)", what,
                    (int)t->kind, t->size);
}

/* ------------------------------------------------------------------------------------------
 * Public and internal entry points.
 * ---------------------------------------------------------------------------------------- */

void
ms_bytes_free(ms_bytes *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

void
ms_ref_free(ms_ref *r)
{
    if (!r)
        return;
    free(r->uri);
    r->uri = NULL;
}

void
ms__free_value(const ms__type *t, void *value)
{
    if (!t || !value)
        return;
    switch (t->kind) {
    case MS__K_STRING:
    case MS__K_CSTRING:
        free(get_ptr(value)); /* a decoded const char * was malloc'd by the decoder */
        set_ptr(value, NULL);
        break;
    case MS__K_BYTES:
        ms_bytes_free(value);
        break;
    case MS__K_JSON:
        json_decref(get_ptr(value));
        set_ptr(value, NULL);
        break;
    case MS__K_REF:
        ms_ref_free(value);
        break;
    case MS__K_STRUCT:
        for (unsigned i = 0; i < t->nfields; i++)
            ms__free_value(t->fields[i].type, (char *)value + t->fields[i].offset);
        break;
    default:
        break;
    }
}

ms_status
msi_encode(const ms__type *t, const void *v, json_t **out, msi_err *err)
{
    *out = NULL;
    return scrubbed(err, encode_value(t, v, out, "value", err));
}

ms_status
msi_decode(const ms__type *t, const json_t *j, void *v, const char *what, msi_err *err)
{
    if (!what)
        what = "value";
    memset(v, 0, t->size);
    if (!j)
        return msi_errf(err, MS_EBADARGS, "%s: missing", what);
    ms_status st = decode_value(t, j, v, what, err);
    if (st != MS_OK) {
        ms__free_value(t, v);
        memset(v, 0, t->size);
    }
    return scrubbed(err, st);
}

ms_status
msi_encode_args(const ms__service *svc, const void *args, json_t **out, msi_err *err)
{
    *out = NULL;
    json_t *obj = json_object();
    if (!obj)
        return msi_errf(err, MS_ENOMEM, "arguments: out of memory");
    for (unsigned i = 0; i < svc->nparams; i++) {
        const ms__field *p = &svc->params[i];
        char what[PATH_MAX_LEN];
        json_t *j;
        snprintf(what, sizeof what, "argument '%s'", p->name);
        ms_status st = encode_value(p->type, (const char *)args + p->offset, &j, what, err);
        if (st != MS_OK) {
            json_decref(obj);
            return scrubbed(err, st);
        }
        if (json_object_set_new(obj, p->name, j) != 0) {
            json_decref(obj);
            return nomem(err, what);
        }
    }
    *out = obj;
    return MS_OK;
}

void
msi_free_args(const ms__service *svc, void *args)
{
    if (!svc || !args)
        return;
    for (unsigned i = 0; i < svc->nparams; i++)
        ms__free_value(svc->params[i].type, (char *)args + svc->params[i].offset);
}

ms_status
msi_decode_args(const ms__service *svc, const json_t *obj, void *args, msi_err *err)
{
    memset(args, 0, svc->args_size);
    if (!obj || !json_is_object(obj))
        return msi_errf(err, MS_EBADARGS, "arguments: expected an object, got %s",
                        obj ? json_kind(obj) : "nothing");
    const char *extra = unknown_key(obj, svc->params, svc->nparams);
    if (extra)
        return scrubbed(err, msi_errf(err, MS_EBADARGS, "unknown argument '%.64s'", extra));
    ms_status st = MS_OK;
    for (unsigned i = 0; i < svc->nparams && st == MS_OK; i++) {
        const ms__field *p = &svc->params[i];
        const json_t *j = json_object_get(obj, p->name);
        if (!j) {
            st = msi_errf(err, MS_EBADARGS, "missing argument '%s'", p->name);
            break;
        }
        char what[PATH_MAX_LEN];
        snprintf(what, sizeof what, "argument '%s'", p->name);
        st = decode_value(p->type, j, (char *)args + p->offset, what, err);
    }
    if (st != MS_OK) {
        msi_free_args(svc, args);
        memset(args, 0, svc->args_size);
    }
    return scrubbed(err, st);
}

ms_status
msi_encode_result(const ms__service *svc, const void *result, json_t **out, msi_err *err)
{
    json_t *v;
    *out = NULL;
    if (!svc->result) {
        v = json_null();
    } else {
        if (!result)
            return msi_errf(err, MS_EINVAL, "result: no value to encode");
        ms_status st = encode_value(svc->result, result, &v, "result", err);
        if (st != MS_OK)
            return scrubbed(err, st);
    }
    json_t *obj = json_object();
    if (!obj || json_object_set_new(obj, "result", v) != 0) {
        json_decref(obj);
        return msi_errf(err, MS_ENOMEM, "result: out of memory");
    }
    *out = obj;
    return MS_OK;
}

ms_status
msi_decode_result(const ms__service *svc, const json_t *obj, void *result, msi_err *err)
{
    const ms__type *t = svc->result;
    if (t && result)
        memset(result, 0, t->size);
    if (!obj || !json_is_object(obj))
        return msi_errf(err, MS_EPROTO, "response: expected an object, got %s",
                        obj ? json_kind(obj) : "nothing");
    static const ms__field result_field[] = {{"result", 0, NULL}};
    const char *extra = unknown_key(obj, result_field, 1);
    if (extra)
        return scrubbed(err, msi_errf(err, MS_EPROTO, "response: unexpected key '%.64s'", extra));
    const json_t *j = json_object_get(obj, "result");
    if (!j)
        return msi_errf(err, MS_EPROTO, "response: missing \"result\"");
    if (!t) {
        if (!json_is_null(j))
            return msi_errf(err, MS_EPROTO, "result: expected null from a void service, got %s",
                            json_kind(j));
        return MS_OK;
    }
    /* No destination: decode into a scratch value to validate it, then release it. */
    void *scratch = NULL;
    if (!result) {
        scratch = calloc(1, t->size ? t->size : 1);
        if (!scratch)
            return msi_errf(err, MS_ENOMEM, "result: out of memory");
        result = scratch;
    }
    ms_status st = msi_decode(t, j, result, "result", err);
    if (scratch) {
        ms__free_value(t, scratch);
        free(scratch);
    }
    /* A result the C type cannot hold means the peer broke the protocol, not our caller. */
    return st == MS_EBADARGS ? MS_EPROTO : st;
}

/* ---- The call path's entries: the text lane, else the tree ---------------------------- */

/* json_dump_callback's sink: appends to a msi_buf. */
static int
dump_to_buf(const char *s, size_t n, void *b)
{
    return msi_buf_put(b, s, n);
}

/* err->msg becomes prefix + err->msg, cut where msi_errf would cut the two formatted
 * together (so a caller's "%s: %s" prints what its own "%s: prefix%s" printed). */
static ms_status
prefixed(msi_err *err, ms_status st, const char *prefix)
{
    if (!err)
        return st;
    size_t p = strlen(prefix), n = strlen(err->msg), room = sizeof err->msg - 1;
    if (n > room - p)
        n = room - p;
    memmove(err->msg + p, err->msg, n);
    memcpy(err->msg, prefix, p);
    err->msg[p + n] = '\0';
    return st;
}

/* The tree's text of a value the text lane left: j (taken) dumped onto out. */
static ms_status
dump_tree(json_t *j, msi_buf *out, msi_err *err)
{
    int rc = json_dump_callback(j, dump_to_buf, out, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    return rc == 0 ? MS_OK : msi_errf(err, MS_ENOMEM, "out of memory");
}

ms_status
msi_codec_encode_args(const ms__service *svc, const void *args, msi_buf *out, msi_err *err)
{
    int trc = msi_text_encode_args(svc, args, out);
    if (trc > 0)
        return MS_OK;
    if (trc < 0)
        return msi_errf(err, MS_ENOMEM, "out of memory");
    json_t *j = NULL;
    ms_status st = msi_encode_args(svc, args, &j, err);
    return st == MS_OK ? dump_tree(j, out, err) : st;
}

ms_status
msi_codec_decode_args(const ms__service *svc, const char *text, size_t len, void *args,
                      msi_err *err)
{
    if (msi_text_decode_args(svc, text, len, args))
        return MS_OK;
    memset(args, 0, svc->args_size);
    json_t *j = msi_json_parse(text, len, err);
    if (!j)
        return prefixed(err, MS_EBADARGS, "arguments: ");
    ms_status st = msi_decode_args(svc, j, args, err);
    json_decref(j);
    return st;
}

ms_status
msi_codec_encode_result(const ms__service *svc, const void *result, msi_buf *out, msi_err *err)
{
    int trc = msi_text_encode_result(svc, result, out);
    if (trc > 0)
        return MS_OK;
    if (trc < 0)
        return msi_errf(err, MS_ENOMEM, "out of memory");
    json_t *j = NULL;
    ms_status st = msi_encode_result(svc, result, &j, err);
    return st == MS_OK ? dump_tree(j, out, err) : st;
}

ms_status
msi_codec_decode_result(const ms__service *svc, const char *text, size_t len, void *result,
                        msi_err *err)
{
    if (msi_text_decode_result(svc, text, len, result))
        return MS_OK;
    json_t *j = msi_json_parse(text, len, err);
    if (!j)
        return prefixed(err, MS_EPROTO, "bad result: ");
    ms_status st = result ? msi_decode_result(svc, j, result, err) : MS_OK;
    json_decref(j);
    return st == MS_OK ? MS_OK : prefixed(err, st, "result: ");
}
