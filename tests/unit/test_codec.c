/* test_codec.c: the JSON codec (src/lib/codec/codec.c) against the wire rules of codec.h, using the
 * descriptors the real MS_SERVICE and MS_STRUCT macros emit. */
#include <jansson.h>
#include <ms/ms.h>

#include "codec.h"
#include "msi.h"

#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

MS_STRUCT(point, (double, x), (double, y))
MS_STRUCT(segment, (struct point, a), (struct point, b), (char *, label))
MS_STRUCT(widths, (int8_t, i8), (uint8_t, u8), (int16_t, i16), (uint16_t, u16), (int32_t, i32),
          (uint32_t, u32), (int64_t, i64), (uint64_t, u64))

MS_SERVICE(int64_t, add, (int64_t, a), (int64_t, b))
{
    return a + b;
}
MS_SERVICE(void, nothing) {}

MS_SERVICE(void, nums, (int8_t, i8), (uint16_t, u16), (int32_t, i32), (uint64_t, u64),
           (int64_t, i64), (float, f), (double, d), (bool, flag))
{
    (void)i8, (void)u16, (void)i32, (void)u64, (void)i64, (void)f, (void)d, (void)flag;
}

MS_SERVICE(void, blobs, (char *, s), (const char *, cs), (ms_bytes, b), (json_t *, j), (ms_ref, r),
           (struct segment, seg))
{
    (void)s, (void)cs, (void)b, (void)j, (void)r, (void)seg;
}

MS_SERVICE(struct point, midpoint, (struct segment, s))
{
    struct point p = {(s.a.x + s.b.x) / 2, (s.a.y + s.b.y) / 2};
    return p;
}

MS_SERVICE(char *, greet, (const char *, name))
{
    size_t n = strlen(name) + 8;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "hello, %s", name);
    return s;
}

MS_SERVICE(uint64_t, echo_u64, (uint64_t, v))
{
    return v;
}
MS_SERVICE(double, echo_double, (double, v))
{
    return v;
}

/* ------------------------------------------------------------------------------------------
 * Helpers.
 * ---------------------------------------------------------------------------------------- */

static json_t *
parse(const char *text)
{
    msi_err err = {{0}};
    json_t *j = msi_json_parse(text, strlen(text), &err);
    if (!j)
        fail_msg("cannot parse %s: %s", text, err.msg);
    return j;
}

static char *
dump(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(s);
    return s;
}

/* The wire text of one value (malloc'd). */
static char *
encode_text(const ms__type *t, const void *v)
{
    msi_err err = {{0}};
    json_t *j = NULL;
    ms_status st = msi_encode(t, v, &j, &err);
    if (st != MS_OK)
        fail_msg("encode failed: %s", err.msg);
    char *s = dump(j);
    json_decref(j);
    return s;
}

static ms_status
decode_text(const ms__type *t, const char *text, void *v, msi_err *err)
{
    json_t *j = parse(text);
    ms_status st = msi_decode(t, j, v, "value", err);
    json_decref(j);
    return st;
}

/* Value -> JSON -> text -> JSON -> value. */
static void
roundtrip(const ms__type *t, const void *in, void *out)
{
    char *text = encode_text(t, in);
    msi_err err = {{0}};
    ms_status st = decode_text(t, text, out, &err);
    if (st != MS_OK)
        fail_msg("decode of %s failed: %s", text, err.msg);
    free(text);
}

static ms_status
decode_args_text(const ms__service *svc, const char *text, void *args, msi_err *err)
{
    json_t *j = parse(text);
    ms_status st = msi_decode_args(svc, j, args, err);
    json_decref(j);
    return st;
}

static int
all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

static void
expect_encoding(const ms__type *t, const void *v, const char *want)
{
    char *got = encode_text(t, v);
    assert_string_equal(got, want);
    free(got);
}

static void
expect_decode_error(const ms__type *t, const char *text, const char *want)
{
    unsigned char buf[256];
    msi_err err = {{0}};
    memset(buf, 0xAB, sizeof buf);
    assert_int_equal(decode_text(t, text, buf, &err), MS_EBADARGS);
    assert_string_equal(err.msg, want);
    assert_true(all_zero(buf, t->size));
}

/* ------------------------------------------------------------------------------------------
 * Integers.
 * ---------------------------------------------------------------------------------------- */

static void
test_codec_int64_extremes_roundtrip(void **state)
{
    (void)state;
    const int64_t vals[] = {
        INT64_MIN, INT64_MAX, 0, -1, (INT64_C(1) << 53) + 1, -(INT64_C(1) << 53) - 1};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        int64_t out = 42;
        roundtrip(&ms__t_llong, &vals[i], &out);
        assert_true(out == vals[i]);
    }
    int64_t v = INT64_MIN;
    expect_encoding(&ms__t_llong, &v, "-9223372036854775808");
    v = (INT64_C(1) << 53) + 1;
    expect_encoding(&ms__t_llong, &v, "9007199254740993");
}

static void
test_codec_uint64_large_travels_as_string(void **state)
{
    (void)state;
    uint64_t v = UINT64_MAX, out = 0;
    expect_encoding(&ms__t_ullong, &v, "\"18446744073709551615\"");
    roundtrip(&ms__t_ullong, &v, &out);
    assert_true(out == UINT64_MAX);

    v = (uint64_t)INT64_MAX;
    expect_encoding(&ms__t_ullong, &v, "9223372036854775807");
    v = (uint64_t)INT64_MAX + 1;
    expect_encoding(&ms__t_ullong, &v, "\"9223372036854775808\"");
    roundtrip(&ms__t_ullong, &v, &out);
    assert_true(out == (uint64_t)INT64_MAX + 1);

    /* Both forms are accepted for every integer type. */
    msi_err err = {{0}};
    assert_int_equal(decode_text(&ms__t_ullong, "12", &out, &err), MS_OK);
    assert_true(out == 12);
    int8_t small = 0;
    assert_int_equal(decode_text(&ms__t_schar, "\"-128\"", &small, &err), MS_OK);
    assert_int_equal(small, -128);
}

struct edge {
    unsigned field; /* index into struct widths */
    const char *min, *max, *below, *above;
    const char *below_text, *above_text; /* how the message spells them */
};

static void
test_codec_int_width_edges(void **state)
{
    (void)state;
    static const struct edge edges[] = {
        {0, "-128", "127", "-129", "128", "-129", "128"},
        {1, "0", "255", "-1", "256", "-1", "256"},
        {2, "-32768", "32767", "-32769", "32768", "-32769", "32768"},
        {3, "0", "65535", "-1", "65536", "-1", "65536"},
        {4, "-2147483648", "2147483647", "-2147483649", "2147483648", "-2147483649", "2147483648"},
        {5, "0", "4294967295", "-1", "4294967296", "-1", "4294967296"},
        {6, "-9223372036854775808", "9223372036854775807", "\"-9223372036854775809\"",
         "\"9223372036854775808\"", "-9223372036854775809", "9223372036854775808"},
        {7, "0", "\"18446744073709551615\"", "-1", "\"18446744073709551616\"", "-1",
         "18446744073709551616"},
    };
    static const char *const names[] = {"int8",  "uint8",  "int16", "uint16",
                                        "int32", "uint32", "int64", "uint64"};
    assert_int_equal(ms__type_widths.nfields, 8);
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        const struct edge *e = &edges[i];
        const ms__type *t = ms__type_widths.fields[e->field].type;
        const char *ok[2] = {e->min, e->max};
        for (int k = 0; k < 2; k++) {
            uint64_t buf = 0;
            msi_err err = {{0}};
            assert_int_equal(decode_text(t, ok[k], &buf, &err), MS_OK);
            char *back = encode_text(t, &buf);
            assert_string_equal(back, ok[k]);
            free(back);
        }
        char want[128];
        snprintf(want, sizeof want, "value: %s does not fit %s", e->below_text, names[i]);
        expect_decode_error(t, e->below, want);
        snprintf(want, sizeof want, "value: %s does not fit %s", e->above_text, names[i]);
        expect_decode_error(t, e->above, want);
    }
}

static void
test_codec_int_decimal_strings_are_strict(void **state)
{
    (void)state;
    int32_t v = 0;
    msi_err err = {{0}};
    assert_int_equal(decode_text(&ms__t_int, "\"-42\"", &v, &err), MS_OK);
    assert_int_equal(v, -42);
    assert_int_equal(decode_text(&ms__t_int, "\"0042\"", &v, &err), MS_OK);
    assert_int_equal(v, 42);
    static const char *const bad[] = {"\" 42\"", "\"42 \"",  "\"+42\"", "\"\"",    "\"-\"",
                                      "\"4.2\"", "\"0x10\"", "\"1e3\"", "\"--1\"", "\"١\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_decode_error(&ms__t_int, bad[i], "value: expected an integer, got string");
    expect_decode_error(&ms__t_ullong, "\"99999999999999999999999\"",
                        "value: 99999999999999999999999 does not fit uint64");
    /* An overflowing run of digits followed by junk is "not an integer", not "too big". */
    expect_decode_error(&ms__t_ullong, "\"99999999999999999999999x\"",
                        "value: expected an integer, got string");
}

static void
test_codec_int_rejects_other_json_types(void **state)
{
    (void)state;
    expect_decode_error(&ms__t_int, "2.0", "value: expected an integer, got real");
    expect_decode_error(&ms__t_int, "true", "value: expected an integer, got boolean");
    expect_decode_error(&ms__t_int, "null", "value: expected an integer, got null");
    expect_decode_error(&ms__t_ullong, "[1]", "value: expected an integer, got array");
}

static void
test_codec_bool(void **state)
{
    (void)state;
    bool t = true, f = false, out = false;
    expect_encoding(&ms__t_bool, &t, "true");
    expect_encoding(&ms__t_bool, &f, "false");
    roundtrip(&ms__t_bool, &t, &out);
    assert_true(out);
    roundtrip(&ms__t_bool, &f, &out);
    assert_false(out);
    expect_decode_error(&ms__t_bool, "1", "value: expected a boolean, got integer");
    expect_decode_error(&ms__t_bool, "\"true\"", "value: expected a boolean, got string");
    expect_decode_error(&ms__t_bool, "null", "value: expected a boolean, got null");
}

/* ------------------------------------------------------------------------------------------
 * Reals.
 * ---------------------------------------------------------------------------------------- */

/* jansson itself: a real dumped and loaded again is the same double, bit for bit. */
static void
test_codec_jansson_reals_roundtrip_exactly(void **state)
{
    (void)state;
    const double vals[] = {0.1, 1e308, 5e-324, -0.0, DBL_MAX, DBL_MIN, 1.0 / 3, -2.5e-310};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        json_t *j = json_real(vals[i]);
        char *text = dump(j);
        json_decref(j);
        json_t *back = json_loads(text, JSON_DECODE_ANY, NULL);
        assert_non_null(back);
        assert_true(json_is_real(back));
        double d = json_real_value(back);
        if (memcmp(&d, &vals[i], sizeof d) != 0)
            fail_msg("%.17g came back as %.17g via %s", vals[i], d, text);
        json_decref(back);
        free(text);
    }
}

static void
test_codec_double_roundtrip_exact_and_special(void **state)
{
    (void)state;
    const double vals[] = {0.1,      1e308,   5e-324,  -0.0,     0.0,      DBL_MAX,
                           -DBL_MAX, DBL_MIN, 1.0 / 3, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        double out = 7;
        roundtrip(&ms__t_double, &vals[i], &out);
        if (memcmp(&out, &vals[i], sizeof out) != 0)
            fail_msg("%.17g came back as %.17g", vals[i], out);
    }
    double nan = NAN, inf = INFINITY, ninf = -INFINITY, nz = -0.0, out = 0;
    expect_encoding(&ms__t_double, &nan, "\"NaN\"");
    expect_encoding(&ms__t_double, &inf, "\"Infinity\"");
    expect_encoding(&ms__t_double, &ninf, "\"-Infinity\"");
    expect_encoding(&ms__t_double, &nz, "-0.0");
    roundtrip(&ms__t_double, &nan, &out);
    assert_true(isnan(out));
    roundtrip(&ms__t_double, &nz, &out);
    assert_true(out == 0 && signbit(out));

    /* Integers are numbers too. */
    msi_err err = {{0}};
    assert_int_equal(decode_text(&ms__t_double, "-3", &out, &err), MS_OK);
    assert_true(out == -3.0);
    expect_decode_error(&ms__t_double, "\"nan\"",
                        "value: expected a number, got string (only \"NaN\", \"Infinity\" and "
                        "\"-Infinity\" are allowed)");
    expect_decode_error(&ms__t_double, "\"1.5\"",
                        "value: expected a number, got string (only \"NaN\", \"Infinity\" and "
                        "\"-Infinity\" are allowed)");
    expect_decode_error(&ms__t_double, "true", "value: expected a number, got boolean");
}

static void
test_codec_float_range(void **state)
{
    (void)state;
    const float vals[] = {0.1f, FLT_MAX, -FLT_MAX, FLT_MIN, 1e-45f, -0.0f, INFINITY};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        float out = 7;
        roundtrip(&ms__t_float, &vals[i], &out);
        assert_memory_equal(&out, &vals[i], sizeof out);
    }
    float f = NAN, out = 0;
    roundtrip(&ms__t_float, &f, &out);
    assert_true(isnan(out));

    msi_err err = {{0}};
    assert_int_equal(decode_text(&ms__t_float, "3", &out, &err), MS_OK);
    assert_true(out == 3.0f);
    assert_int_equal(decode_text(&ms__t_float, "\"-Infinity\"", &out, &err), MS_OK);
    assert_true(isinf(out) && out < 0);
    expect_decode_error(&ms__t_float, "1e39", "value: 1e+39 does not fit float");
    expect_decode_error(&ms__t_float, "-1e300", "value: -1e+300 does not fit float");
}

/* ------------------------------------------------------------------------------------------
 * Strings, bytes, JSON, references.
 * ---------------------------------------------------------------------------------------- */

static void
test_codec_string_utf8_valid_roundtrip(void **state)
{
    (void)state;
    const char *vals[] = {"",
                          "plain",
                          "h\xc3\xa9llo",
                          "\xe2\x82\xac",
                          "\xf0\x9d\x84\x9e",
                          "\xef\xbf\xbf",
                          "\xf4\x8f\xbf\xbf",
                          "quote\" and \\ and \n"};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char *out = NULL;
        roundtrip(&ms__t_string, &vals[i], &out);
        assert_string_equal(out, vals[i]);
        ms__free_value(&ms__t_string, &out);
        assert_null(out);
    }
}

static void
test_codec_string_invalid_utf8_rejected(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t at;
    } bad[] = {
        {"\x80", 0},                 /* lone continuation byte */
        {"ab\xc3", 2},               /* truncated sequence */
        {"\xc3(", 0},                /* bad continuation */
        {"\xc0\xaf", 0},             /* overlong '/' */
        {"\xc1\xbf", 0},             /* overlong */
        {"\xe0\x80\xaf", 0},         /* overlong, 3 bytes */
        {"\xf0\x80\x80\xaf", 0},     /* overlong, 4 bytes */
        {"x\xed\xa0\x80", 1},        /* UTF-16 surrogate U+D800 */
        {"\xed\xbf\xbf", 0},         /* surrogate U+DFFF */
        {"\xf4\x90\x80\x80", 0},     /* U+110000 */
        {"\xf8\x88\x80\x80\x80", 0}, /* 5-byte form */
        {"ok\xff", 2},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "value: invalid UTF-8 at byte %zu", bad[i].at);

        /* Encoding from C. */
        msi_err err = {{0}};
        json_t *j = (json_t *)1;
        assert_int_equal(msi_encode(&ms__t_string, &bad[i].s, &j, &err), MS_EBADARGS);
        assert_null(j);
        assert_string_equal(err.msg, want);

        /* Decoding a JSON string that holds it (built without jansson's check). */
        json_t *js = json_stringn_nocheck(bad[i].s, strlen(bad[i].s));
        char *out = (char *)1;
        memset(&err, 0, sizeof err);
        assert_int_equal(msi_decode(&ms__t_string, js, &out, "value", &err), MS_EBADARGS);
        assert_string_equal(err.msg, want);
        assert_null(out);
        json_decref(js);

        /* And as JSON text: the parser refuses it. */
        char text[32];
        snprintf(text, sizeof text, "\"%s\"", bad[i].s);
        assert_null(msi_json_parse(text, strlen(text), &err));
        assert_non_null(strstr(err.msg, "invalid JSON"));
    }

    /* As an argument, the message names the argument. */
    struct ms__args_blobs a;
    memset(&a, 0, sizeof a);
    a.s = "fine";
    a.cs = "bad\xc0\x80";
    msi_err err = {{0}};
    json_t *j = NULL;
    assert_int_equal(msi_encode_args(&ms__svc_blobs, &a, &j, &err), MS_EBADARGS);
    assert_null(j);
    assert_string_equal(err.msg, "argument 'cs': invalid UTF-8 at byte 3");
}

static void
test_codec_string_nul_rejected(void **state)
{
    (void)state;
    msi_err err = {{0}};
    /* The parser refuses \u0000 ... */
    const char *text = "\"a\\u0000b\"";
    assert_null(msi_json_parse(text, strlen(text), &err));
    assert_non_null(strstr(err.msg, "invalid JSON"));
    /* ... and the decoder refuses a string with NUL however it was built. */
    json_t *j = json_stringn("a\0b", 3);
    assert_non_null(j);
    char *out = NULL;
    assert_int_equal(msi_decode(&ms__t_string, j, &out, "argument 's'", &err), MS_EBADARGS);
    assert_string_equal(err.msg, "argument 's': string contains NUL (\\u0000) at byte 1");
    assert_null(out);
    const char *cout = NULL;
    assert_int_equal(msi_decode(&ms__t_cstring, j, &cout, "value", &err), MS_EBADARGS);
    assert_null(cout);
    json_decref(j);
}

static void
test_codec_string_null_is_null(void **state)
{
    (void)state;
    char *s = NULL, *out = (char *)"junk";
    expect_encoding(&ms__t_string, &s, "null");
    roundtrip(&ms__t_string, &s, &out);
    assert_null(out);
    expect_decode_error(&ms__t_string, "5", "value: expected a string, got integer");

    /* A decoded const char * is a malloc'd copy, released by ms__free_value. */
    const char *cs = "const", *cout = NULL;
    roundtrip(&ms__t_cstring, &cs, &cout);
    assert_string_equal(cout, "const");
    assert_true(cout != cs);
    ms__free_value(&ms__t_cstring, &cout);
    assert_null(cout);
}

static void
test_codec_bytes_base64(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        const char *b64;
    } vec[] = {
        {"", "\"\""},
        {"f", "\"Zg==\""},
        {"fo", "\"Zm8=\""},
        {"foo", "\"Zm9v\""},
        {"foob", "\"Zm9vYg==\""},
        {"fooba", "\"Zm9vYmE=\""},
        {"foobar", "\"Zm9vYmFy\""},
    };
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        size_t n = strlen(vec[i].raw);
        ms_bytes b = {n ? (uint8_t *)vec[i].raw : NULL, n}, out = {NULL, 99};
        expect_encoding(&ms__t_bytes, &b, vec[i].b64);
        roundtrip(&ms__t_bytes, &b, &out);
        assert_int_equal(out.len, n);
        if (n)
            assert_memory_equal(out.data, vec[i].raw, n);
        else
            assert_null(out.data);
        ms_bytes_free(&out);
        assert_null(out.data);
        assert_int_equal(out.len, 0);
    }

    /* Every byte value, with 0, 1 and 2 bytes of padding. */
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    for (size_t n = 254; n <= 256; n++) {
        ms_bytes b = {all, n}, out = {NULL, 0};
        roundtrip(&ms__t_bytes, &b, &out);
        assert_int_equal(out.len, n);
        assert_memory_equal(out.data, all, n);
        ms_bytes_free(&out);
    }

    expect_decode_error(&ms__t_bytes, "\"Zg=\"",
                        "value: invalid base64: length 3 is not a multiple of 4");
    expect_decode_error(&ms__t_bytes, "\"Zm9v\\n\"",
                        "value: invalid base64: length 5 is not a multiple of 4");
    expect_decode_error(&ms__t_bytes, "\"Zg=a\"",
                        "value: invalid base64: unexpected character at offset 2");
    expect_decode_error(&ms__t_bytes, "\"Z===\"",
                        "value: invalid base64: unexpected character at offset 1");
    expect_decode_error(&ms__t_bytes, "\"====\"",
                        "value: invalid base64: unexpected character at offset 0");
    expect_decode_error(&ms__t_bytes, "\"Zm 9\"",
                        "value: invalid base64: unexpected character at offset 2");
    expect_decode_error(&ms__t_bytes, "\"-_8=\"",
                        "value: invalid base64: unexpected character at offset 0");
    expect_decode_error(&ms__t_bytes, "\"Zg==Zg==\"",
                        "value: invalid base64: unexpected character at offset 2");
    expect_decode_error(&ms__t_bytes, "\"Zh==\"", "value: invalid base64: non-zero padding bits");
    expect_decode_error(&ms__t_bytes, "\"Zm9=\"", "value: invalid base64: non-zero padding bits");
    expect_decode_error(&ms__t_bytes, "[]", "value: expected a base64 string, got array");

    ms_bytes bad = {NULL, 3};
    msi_err err = {{0}};
    json_t *j = NULL;
    assert_int_equal(msi_encode(&ms__t_bytes, &bad, &j, &err), MS_EBADARGS);
    assert_string_equal(err.msg, "value: ms_bytes with NULL data and length 3");
    assert_null(j);
}

static void
test_codec_json_passthrough(void **state)
{
    (void)state;
    json_t *in = parse("{\"k\":[1,2.5,\"s\",null,{\"n\":true}]}"), *out = NULL;
    roundtrip(&ms__t_json, &in, &out);
    assert_true(json_equal(in, out));
    assert_true(in != out);
    ms__free_value(&ms__t_json, &out);
    assert_null(out);

    /* Decoding copies: the decoded value shares nothing with the message. */
    msi_err err = {{0}};
    assert_int_equal(msi_decode(&ms__t_json, in, &out, "value", &err), MS_OK);
    assert_true(out != in && json_equal(in, out));
    json_array_clear(json_object_get(out, "k"));
    assert_int_equal(json_array_size(json_object_get(in, "k")), 5);
    json_decref(out);
    json_decref(in);

    /* NULL encodes as null; null decodes as json_null(), never NULL. */
    json_t *none = NULL;
    expect_encoding(&ms__t_json, &none, "null");
    roundtrip(&ms__t_json, &none, &out);
    assert_non_null(out);
    assert_true(json_is_null(out));
    json_decref(out);

    json_t *scalar = json_integer(7);
    roundtrip(&ms__t_json, &scalar, &out);
    assert_int_equal(json_integer_value(out), 7);
    json_decref(out);
    json_decref(scalar);
}

static void
test_codec_ref(void **state)
{
    (void)state;
    ms_ref r = {(char *)"ms://objects/ns/coll/42"}, out = {NULL};
    expect_encoding(&ms__t_ref, &r, "\"ms://objects/ns/coll/42\"");
    roundtrip(&ms__t_ref, &r, &out);
    assert_string_equal(out.uri, r.uri);
    assert_true(out.uri != r.uri);
    ms_ref_free(&out);
    assert_null(out.uri);

    ms_ref none = {NULL};
    expect_encoding(&ms__t_ref, &none, "null");
    roundtrip(&ms__t_ref, &none, &out);
    assert_null(out.uri);

    ms_ref bad = {(char *)"http://x"};
    msi_err err = {{0}};
    json_t *j = NULL;
    assert_int_equal(msi_encode(&ms__t_ref, &bad, &j, &err), MS_EBADARGS);
    assert_string_equal(err.msg, "value: reference \"http://x\" does not start with \"ms://\"");
    expect_decode_error(&ms__t_ref, "\"ms:/x\"",
                        "value: reference \"ms:/x\" does not start with \"ms://\"");
    expect_decode_error(&ms__t_ref, "1", "value: expected a reference string, got integer");
}

/* ------------------------------------------------------------------------------------------
 * Structs.
 * ---------------------------------------------------------------------------------------- */

static void
test_codec_struct_roundtrip(void **state)
{
    (void)state;
    struct segment s = {{1.5, -2}, {INFINITY, 0.25}, (char *)"diagonal"}, out;
    expect_encoding(&ms__type_segment, &s,
                    "{\"a\":{\"x\":1.5,\"y\":-2.0},\"b\":{\"x\":\"Infinity\",\"y\":0.25},"
                    "\"label\":\"diagonal\"}");
    roundtrip(&ms__type_segment, &s, &out);
    assert_true(out.a.x == 1.5 && out.a.y == -2 && isinf(out.b.x) && out.b.y == 0.25);
    assert_string_equal(out.label, "diagonal");
    segment_free_fields(&out);
    assert_null(out.label);
    segment_free_fields(NULL);
}

static void
test_codec_struct_errors_name_the_path(void **state)
{
    (void)state;
    struct ms__args_midpoint a;
    msi_err err = {{0}};

    assert_int_equal(decode_args_text(&ms__svc_midpoint,
                                      "{\"s\":{\"a\":{\"x\":1,\"y\":2},\"b\":{\"x\":\"no\","
                                      "\"y\":2},\"label\":null}}",
                                      &a, &err),
                     MS_EBADARGS);
    assert_string_equal(err.msg, "argument 's': field 'b': field 'x': expected a number, got "
                                 "string (only \"NaN\", \"Infinity\" and \"-Infinity\" are "
                                 "allowed)");
    assert_true(all_zero(&a, sizeof a));

    assert_int_equal(
        decode_args_text(&ms__svc_midpoint,
                         "{\"s\":{\"a\":{\"x\":1,\"y\":2},\"b\":{\"x\":1},\"label\":\"l\"}}", &a,
                         &err),
        MS_EBADARGS);
    assert_string_equal(err.msg, "argument 's': field 'b': missing field 'y'");

    assert_int_equal(decode_args_text(&ms__svc_midpoint,
                                      "{\"s\":{\"a\":{\"x\":1,\"y\":2,\"z\":3},\"b\":{\"x\":1,"
                                      "\"y\":2},\"label\":\"l\"}}",
                                      &a, &err),
                     MS_EBADARGS);
    assert_string_equal(err.msg, "argument 's': field 'a': unknown field 'z'");

    assert_int_equal(decode_args_text(&ms__svc_midpoint, "{\"s\":[1,2]}", &a, &err), MS_EBADARGS);
    assert_string_equal(err.msg, "argument 's': expected an object, got array");

    assert_int_equal(decode_args_text(&ms__svc_midpoint,
                                      "{\"s\":{\"a\":{\"x\":1,\"y\":2},\"b\":{\"x\":1,\"y\":2},"
                                      "\"label\":7}}",
                                      &a, &err),
                     MS_EBADARGS);
    assert_string_equal(err.msg, "argument 's': field 'label': expected a string, got integer");
    assert_true(all_zero(&a, sizeof a));
}

/* ------------------------------------------------------------------------------------------
 * Arguments and results.
 * ---------------------------------------------------------------------------------------- */

static void
test_codec_args_roundtrip_all_types(void **state)
{
    (void)state;
    struct ms__args_nums n, nout;
    memset(&n, 0, sizeof n);
    n.i8 = INT8_MIN;
    n.u16 = UINT16_MAX;
    n.i32 = INT32_MIN;
    n.u64 = UINT64_MAX;
    n.i64 = INT64_MAX;
    n.f = -1.25f;
    n.d = 5e-324;
    n.flag = true;
    msi_err err = {{0}};
    json_t *j = NULL;
    assert_int_equal(msi_encode_args(&ms__svc_nums, &n, &j, &err), MS_OK);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"d\":4.9406564584124654e-324,\"f\":-1.25,\"flag\":true,"
                              "\"i32\":-2147483648,\"i64\":9223372036854775807,\"i8\":-128,"
                              "\"u16\":65535,\"u64\":\"18446744073709551615\"}");
    json_decref(j);
    memset(&nout, 0xAB, sizeof nout);
    assert_int_equal(decode_args_text(&ms__svc_nums, text, &nout, &err), MS_OK);
    free(text);
    assert_true(nout.i8 == INT8_MIN && nout.u16 == UINT16_MAX && nout.i32 == INT32_MIN);
    assert_true(nout.u64 == UINT64_MAX && nout.i64 == INT64_MAX);
    assert_true(nout.f == -1.25f && nout.d == 5e-324 && nout.flag);
    msi_free_args(&ms__svc_nums, &nout);

    uint8_t raw[] = {0, 1, 2, 0xff};
    struct ms__args_blobs b, bout;
    memset(&b, 0, sizeof b);
    b.s = "s";
    b.cs = "cs";
    b.b.data = raw;
    b.b.len = sizeof raw;
    b.j = parse("{\"deep\":[[[]]]}");
    b.r.uri = "ms://objects/a/b/c";
    b.seg.a.x = 1;
    b.seg.label = NULL;
    assert_int_equal(msi_encode_args(&ms__svc_blobs, &b, &j, &err), MS_OK);
    text = dump(j);
    json_decref(j);
    assert_int_equal(decode_args_text(&ms__svc_blobs, text, &bout, &err), MS_OK);
    free(text);
    assert_string_equal(bout.s, "s");
    assert_string_equal(bout.cs, "cs");
    assert_int_equal(bout.b.len, sizeof raw);
    assert_memory_equal(bout.b.data, raw, sizeof raw);
    assert_true(json_equal(bout.j, b.j));
    assert_string_equal(bout.r.uri, "ms://objects/a/b/c");
    assert_true(bout.seg.a.x == 1 && bout.seg.label == NULL);
    msi_free_args(&ms__svc_blobs, &bout);
    assert_null(bout.s);
    assert_null(bout.cs);
    assert_null(bout.b.data);
    assert_null(bout.j);
    assert_null(bout.r.uri);
    json_decref(b.j);
}

static void
test_codec_args_missing_extra_mistyped(void **state)
{
    (void)state;
    struct ms__args_add a;
    msi_err err = {{0}};
    assert_int_equal(decode_args_text(&ms__svc_add, "{\"a\":2,\"b\":3}", &a, &err), MS_OK);
    assert_true(a.a == 2 && a.b == 3);

    assert_int_equal(decode_args_text(&ms__svc_add, "{\"a\":1}", &a, &err), MS_EBADARGS);
    assert_string_equal(err.msg, "missing argument 'b'");
    assert_int_equal(decode_args_text(&ms__svc_add, "{\"a\":1,\"b\":2,\"c\":3}", &a, &err),
                     MS_EBADARGS);
    assert_string_equal(err.msg, "unknown argument 'c'");
    assert_int_equal(decode_args_text(&ms__svc_add, "{\"a\":1,\"b\":\"x\"}", &a, &err),
                     MS_EBADARGS);
    assert_string_equal(err.msg, "argument 'b': expected an integer, got string");
    assert_true(all_zero(&a, sizeof a));
    assert_int_equal(decode_args_text(&ms__svc_add, "[1,2]", &a, &err), MS_EBADARGS);
    assert_string_equal(err.msg, "arguments: expected an object, got array");
    assert_int_equal(msi_decode_args(&ms__svc_add, NULL, &a, &err), MS_EBADARGS);

    struct ms__args_nums n;
    assert_int_equal(decode_args_text(&ms__svc_nums,
                                      "{\"i8\":0,\"u16\":0,\"i32\":3000000000,\"u64\":0,\"i64\":0,"
                                      "\"f\":0,\"d\":0,\"flag\":false}",
                                      &n, &err),
                     MS_EBADARGS);
    assert_string_equal(err.msg, "argument 'i32': 3000000000 does not fit int32");
    assert_int_equal(decode_args_text(&ms__svc_nums,
                                      "{\"i8\":0,\"u16\":-1,\"i32\":0,\"u64\":0,\"i64\":0,"
                                      "\"f\":0,\"d\":0,\"flag\":false}",
                                      &n, &err),
                     MS_EBADARGS);
    assert_string_equal(err.msg, "argument 'u16': -1 does not fit uint16");
    assert_int_equal(decode_args_text(&ms__svc_nums,
                                      "{\"i8\":0,\"u16\":0,\"i32\":0,\"u64\":0,\"i64\":0,"
                                      "\"f\":0,\"d\":0,\"flag\":0}",
                                      &n, &err),
                     MS_EBADARGS);
    assert_string_equal(err.msg, "argument 'flag': expected a boolean, got integer");
}

/* A failure after strings, bytes, JSON and a ref were decoded frees them all (ASan checks
 * for leaks) and leaves the argument struct zeroed. */
static void
test_codec_args_failure_frees_and_zeroes(void **state)
{
    (void)state;
    struct ms__args_blobs b;
    msi_err err = {{0}};
    /* jansson refuses a lone surrogate escape when parsing: build the tree by hand. */
    json_t *args = parse("{\"s\":\"x\",\"cs\":\"y\",\"b\":\"AAEC\",\"j\":[1,{}],\"r\":\"ms://o\","
                         "\"seg\":{\"a\":{\"x\":1,\"y\":2},\"b\":{\"x\":1,\"y\":2}}}");
    json_object_set_new(json_object_get(args, "seg"), "label",
                        json_stringn_nocheck("bad\xed\xa0\x80", 6));
    memset(&b, 0xAB, sizeof b);
    assert_int_equal(msi_decode_args(&ms__svc_blobs, args, &b, &err), MS_EBADARGS);
    assert_string_equal(err.msg, "argument 'seg': field 'label': invalid UTF-8 at byte 3");
    assert_true(all_zero(&b, sizeof b));
    json_decref(args);
}

static void
test_codec_args_zero_params(void **state)
{
    (void)state;
    struct ms__args_nothing a;
    msi_err err = {{0}};
    assert_int_equal(decode_args_text(&ms__svc_nothing, "{}", &a, &err), MS_OK);
    assert_int_equal(decode_args_text(&ms__svc_nothing, "{\"x\":1}", &a, &err), MS_EBADARGS);
    assert_string_equal(err.msg, "unknown argument 'x'");
    json_t *j = NULL;
    assert_int_equal(msi_encode_args(&ms__svc_nothing, &a, &j, &err), MS_OK);
    char *text = dump(j);
    assert_string_equal(text, "{}");
    free(text);
    json_decref(j);
}

static void
test_codec_result(void **state)
{
    (void)state;
    msi_err err = {{0}};
    json_t *j = NULL;
    int64_t r = 5, out = 0;
    assert_int_equal(msi_encode_result(&ms__svc_add, &r, &j, &err), MS_OK);
    char *text = dump(j);
    assert_string_equal(text, "{\"result\":5}");
    free(text);
    assert_int_equal(msi_decode_result(&ms__svc_add, j, &out, &err), MS_OK);
    assert_true(out == 5);
    assert_int_equal(msi_decode_result(&ms__svc_add, j, NULL, &err), MS_OK);
    json_decref(j);

    assert_int_equal(msi_encode_result(&ms__svc_nothing, NULL, &j, &err), MS_OK);
    text = dump(j);
    assert_string_equal(text, "{\"result\":null}");
    free(text);
    assert_int_equal(msi_decode_result(&ms__svc_nothing, j, NULL, &err), MS_OK);
    json_decref(j);

    static const struct {
        const ms__service *svc;
        const char *text;
        const char *msg;
    } bad[] = {
        {&ms__svc_add, "{}", "response: missing \"result\""},
        {&ms__svc_add, "{\"result\":1,\"x\":2}", "response: unexpected key 'x'"},
        {&ms__svc_add, "[5]", "response: expected an object, got array"},
        {&ms__svc_add, "{\"result\":\"five\"}", "result: expected an integer, got string"},
        {&ms__svc_add, "{\"result\":null}", "result: expected an integer, got null"},
        {&ms__svc_nothing, "{\"result\":1}",
         "result: expected null from a void service, got integer"},
        {&ms__svc_nothing, "{}", "response: missing \"result\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        out = 99;
        j = parse(bad[i].text);
        assert_int_equal(msi_decode_result(bad[i].svc, j, &out, &err), MS_EPROTO);
        assert_string_equal(err.msg, bad[i].msg);
        if (bad[i].svc->result)
            assert_true(out == 0);
        json_decref(j);
    }

    /* A struct result, and one with an owned string. */
    struct point p = {0.5, -0.0}, pout;
    assert_int_equal(msi_encode_result(&ms__svc_midpoint, &p, &j, &err), MS_OK);
    assert_int_equal(msi_decode_result(&ms__svc_midpoint, j, &pout, &err), MS_OK);
    assert_memory_equal(&p, &pout, sizeof p);
    json_decref(j);
    char *g = (char *)"hello", *gout = NULL;
    assert_int_equal(msi_encode_result(&ms__svc_greet, &g, &j, &err), MS_OK);
    assert_int_equal(msi_decode_result(&ms__svc_greet, j, &gout, &err), MS_OK);
    assert_string_equal(gout, "hello");
    free(gout);
    assert_int_equal(msi_decode_result(&ms__svc_greet, j, NULL, &err), MS_OK);
    json_decref(j);
}

/* ------------------------------------------------------------------------------------------
 * Parsing.
 * ---------------------------------------------------------------------------------------- */

static char *
nested(int depth, const char *inner)
{
    size_t n = strlen(inner), len = 2 * (size_t)depth + n;
    char *s = malloc(len + 1);
    assert_non_null(s);
    for (int i = 0; i < depth; i++) {
        s[i] = '[';
        s[(size_t)depth + n + (size_t)i] = ']';
    }
    memcpy(s + depth, inner, n);
    s[len] = '\0';
    return s;
}

static void
test_codec_parse_depth_limit(void **state)
{
    (void)state;
    msi_err err = {{0}};
    char *ok = nested(MSI_JSON_MAX_DEPTH, "");
    json_t *j = msi_json_parse(ok, strlen(ok), &err);
    assert_non_null(j);
    json_decref(j);
    free(ok);

    char *deep = nested(MSI_JSON_MAX_DEPTH + 1, "");
    assert_null(msi_json_parse(deep, strlen(deep), &err));
    char want[128];
    snprintf(want, sizeof want, "invalid JSON: nested deeper than %d levels at byte %d",
             MSI_JSON_MAX_DEPTH, MSI_JSON_MAX_DEPTH);
    assert_string_equal(err.msg, want);
    free(deep);

    /* Objects count too. */
    char objs[8 * (MSI_JSON_MAX_DEPTH + 1) + 1] = "";
    size_t o = 0;
    for (int i = 0; i <= MSI_JSON_MAX_DEPTH; i++)
        o += (size_t)snprintf(objs + o, sizeof objs - o, "{\"a\":");
    assert_null(msi_json_parse(objs, o, &err));
    assert_non_null(strstr(err.msg, "nested deeper"));

    /* Brackets inside strings (escaped quotes included) do not count. */
    char inner[300];
    o = (size_t)snprintf(inner, sizeof inner, "\"\\\"");
    for (int i = 0; i < 200; i++)
        inner[o++] = i % 2 ? '{' : '[';
    inner[o++] = '"';
    inner[o] = '\0';
    char *s = nested(MSI_JSON_MAX_DEPTH, inner);
    j = msi_json_parse(s, strlen(s), &err);
    if (!j)
        fail_msg("%s", err.msg);
    json_decref(j);
    free(s);
}

static void
test_codec_parse_rejects_duplicates_and_garbage(void **state)
{
    (void)state;
    msi_err err = {{0}};
    const char *dup = "{\"a\":1,\"a\":2}";
    assert_null(msi_json_parse(dup, strlen(dup), &err));
    assert_non_null(strstr(err.msg, "duplicate"));
    assert_non_null(strstr(err.msg, "line 1"));

    const char *trailing = "{\"a\":1} x";
    assert_null(msi_json_parse(trailing, strlen(trailing), &err));
    assert_non_null(strstr(err.msg, "invalid JSON: "));
    assert_non_null(strstr(err.msg, "(byte "));

    assert_null(msi_json_parse("", 0, &err));
    assert_null(msi_json_parse(NULL, 0, &err));
    const char *nul = "{\"a\":1}\0junk";
    assert_null(msi_json_parse(nul, 12, &err));

    /* Any value at top level. */
    json_t *j = msi_json_parse("5", 1, &err);
    assert_non_null(j);
    assert_int_equal(json_integer_value(j), 5);
    json_decref(j);
    /* len bounds the text: no terminator needed. */
    j = msi_json_parse("[1]]]", 3, &err);
    assert_non_null(j);
    json_decref(j);
}

/* Failure messages quote input; they must stay valid UTF-8 (they go into JSON error bodies)
 * even when the quote is cut mid-character or the input is not UTF-8 at all. Regression
 * seeds of tests/fuzz found both. */
static void
test_codec_messages_are_utf8(void **state)
{
    (void)state;
    char s[] = "ok \xc3\xa9 cut \xc3";
    msi_utf8_scrub(s);
    assert_string_equal(s, "ok \xc3\xa9 cut ?");
    char t[] = "\xff\xfe\xed\xa0\x80 \xf0\x9f\x98\x80";
    msi_utf8_scrub(t);
    assert_string_equal(t, "????? \xf0\x9f\x98\x80");
    msi_utf8_scrub(NULL);

    /* "unknown argument '%.64s'" cuts an "\u00e9" in two. */
    msi_err err = {{0}};
    char body[256] = "{\"x";
    for (int i = 0; i < 40; i++)
        strcat(body, "\xc3\xa9");
    strcat(body, "\":1}");
    json_t *j = msi_json_parse(body, strlen(body), &err);
    assert_non_null(j);
    struct ms__args_add a;
    assert_int_equal(msi_decode_args(&ms__svc_add, j, &a, &err), MS_EBADARGS);
    json_decref(j);
    assert_non_null(strstr(err.msg, "unknown argument"));
    json_t *m = json_string(err.msg); /* NULL unless valid UTF-8 */
    assert_non_null(m);
    json_decref(m);

    /* jansson's "near '...'" quotes the input up to a bad byte. */
    const char *bad = "{\"result\":\"h\\u00e\xc7\x81\"}";
    assert_null(msi_json_parse(bad, strlen(bad), &err));
    m = json_string(err.msg);
    assert_non_null(m);
    json_decref(m);
}

static void
test_codec_free_accepts_null(void **state)
{
    (void)state;
    ms__free_value(&ms__t_string, NULL);
    ms__free_value(&ms__type_segment, NULL);
    ms_bytes_free(NULL);
    ms_ref_free(NULL);
    msi_free_args(&ms__svc_blobs, NULL);
    int64_t x = 5;
    ms__free_value(&ms__t_llong, &x); /* scalars: nothing to free, left alone */
    assert_true(x == 5);
}

/* The real call path in zero-checked mode runs through this codec. */
static void
test_codec_zero_checked_calls(void **state)
{
    (void)state;
    ms_mode saved = msi_mode;
    msi_mode = MS_MODE_ZERO_CHECKED;

    uint64_t u = 0;
    assert_int_equal(echo_u64_try(&u, UINT64_MAX), MS_OK);
    assert_true(u == UINT64_MAX);
    double d = 0;
    assert_int_equal(echo_double_try(&d, -0.0), MS_OK);
    assert_true(d == 0 && signbit(d));
    assert_int_equal(echo_double_try(&d, NAN), MS_OK);
    assert_true(isnan(d));
    int64_t s = 0;
    assert_int_equal(add_try(&s, INT64_MIN, 0), MS_OK);
    assert_true(s == INT64_MIN);

    struct segment seg = {{0, 0}, {2, 4}, (char *)"l"};
    struct point p;
    assert_int_equal(midpoint_try(&p, seg), MS_OK);
    assert_true(p.x == 1 && p.y == 2);

    char *g = NULL;
    assert_int_equal(greet_try(&g, "w\xc3\xb6rld"), MS_OK);
    assert_string_equal(g, "hello, w\xc3\xb6rld");
    free(g);
    g = (char *)"junk";
    assert_int_equal(greet_try(&g, "bad\xff"), MS_EBADARGS);
    assert_null(g);
    assert_non_null(strstr(ms_last_error(), "argument 'name': invalid UTF-8 at byte 3"));

    msi_mode = saved;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_int64_extremes_roundtrip),
        cmocka_unit_test(test_codec_uint64_large_travels_as_string),
        cmocka_unit_test(test_codec_int_width_edges),
        cmocka_unit_test(test_codec_int_decimal_strings_are_strict),
        cmocka_unit_test(test_codec_int_rejects_other_json_types),
        cmocka_unit_test(test_codec_bool),
        cmocka_unit_test(test_codec_jansson_reals_roundtrip_exactly),
        cmocka_unit_test(test_codec_double_roundtrip_exact_and_special),
        cmocka_unit_test(test_codec_float_range),
        cmocka_unit_test(test_codec_string_utf8_valid_roundtrip),
        cmocka_unit_test(test_codec_string_invalid_utf8_rejected),
        cmocka_unit_test(test_codec_string_nul_rejected),
        cmocka_unit_test(test_codec_string_null_is_null),
        cmocka_unit_test(test_codec_bytes_base64),
        cmocka_unit_test(test_codec_json_passthrough),
        cmocka_unit_test(test_codec_ref),
        cmocka_unit_test(test_codec_struct_roundtrip),
        cmocka_unit_test(test_codec_struct_errors_name_the_path),
        cmocka_unit_test(test_codec_args_roundtrip_all_types),
        cmocka_unit_test(test_codec_args_missing_extra_mistyped),
        cmocka_unit_test(test_codec_args_failure_frees_and_zeroes),
        cmocka_unit_test(test_codec_args_zero_params),
        cmocka_unit_test(test_codec_result),
        cmocka_unit_test(test_codec_parse_depth_limit),
        cmocka_unit_test(test_codec_parse_rejects_duplicates_and_garbage),
        cmocka_unit_test(test_codec_messages_are_utf8),
        cmocka_unit_test(test_codec_free_accepts_null),
        cmocka_unit_test(test_codec_zero_checked_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
