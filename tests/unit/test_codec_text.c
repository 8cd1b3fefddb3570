/* test_codec_text.c: the text lane of the codec (src/lib/codec/codec_text.c) against the tree
 * path (codec.c), which is the reference (codec.h): whatever the text lane decodes, the tree path
 * decodes to the same value; whatever it encodes, the tree path reads back as the value; and
 * it handles the common cases (else the call path would not be fast). Differential tests on
 * hand-picked texts, on random values and on random mutations of valid texts. */
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

MS_STRUCT(tpoint, (double, x), (double, y))
MS_STRUCT(tseg, (struct tpoint, a), (struct tpoint, b), (char *, label))

MS_SERVICE(void, tnums, (int8_t, i8), (uint8_t, u8), (int16_t, i16), (uint16_t, u16),
           (int32_t, i32), (uint32_t, u32), (int64_t, i64), (uint64_t, u64))
{
    (void)i8, (void)u8, (void)i16, (void)u16, (void)i32, (void)u32, (void)i64, (void)u64;
}
MS_SERVICE(void, treals, (float, f), (double, d), (bool, flag))
{
    (void)f, (void)d, (void)flag;
}
MS_SERVICE(void, ttext, (char *, s), (const char *, cs), (ms_bytes, b), (ms_ref, r),
           (struct tseg, seg))
{
    (void)s, (void)cs, (void)b, (void)r, (void)seg;
}
MS_SERVICE(void, tjson, (json_t *, j))
{
    (void)j;
}
MS_SERVICE(void, tnone) {}
MS_SERVICE(struct tseg, tsegres, (int64_t, n))
{
    struct tseg s = {{1, 2}, {3, (double)n}, NULL};
    return s;
}
MS_SERVICE(double, tdres, (int64_t, n))
{
    return (double)n;
}

static ms__service *
svc_of(const char *name)
{
    ms__service *s = msi_registry_find(name, NULL);
    assert_non_null(s);
    return s;
}

/* The tree path's decoding of text into args: MS_OK or its error. */
static ms_status
tree_decode(ms__service *svc, const char *text, size_t len, void *args)
{
    msi_err err = {{0}};
    memset(args, 0, svc->args_size);
    json_t *j = msi_json_parse(text, len, &err);
    if (!j)
        return MS_EBADARGS;
    ms_status st = msi_decode_args(svc, j, args, &err);
    json_decref(j);
    return st;
}

/* Two decoded argument structs hold the same value: by the tree encoder, and bit for bit for
 * the scalar-only services (so -0.0 and +0.0 differ). */
static void
assert_args_equal(ms__service *svc, const void *a, const void *b)
{
    if (strcmp(svc->name, "tnums") == 0 || strcmp(svc->name, "treals") == 0) {
        assert_memory_equal(a, b, svc->args_size);
        return;
    }
    msi_err err = {{0}};
    json_t *ja = NULL, *jb = NULL;
    assert_int_equal(msi_encode_args(svc, a, &ja, &err), MS_OK);
    assert_int_equal(msi_encode_args(svc, b, &jb, &err), MS_OK);
    char *ta = json_dumps(ja, JSON_COMPACT | JSON_SORT_KEYS);
    char *tb = json_dumps(jb, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(ta, tb);
    free(ta);
    free(tb);
    json_decref(ja);
    json_decref(jb);
}

/* The property: if the text lane decodes text, the tree path does too, to the same value.
 * Returns whether the lane handled it. */
static int
check_decode(ms__service *svc, const char *text, size_t len)
{
    char lane[1024], tree[1024];
    assert_true(svc->args_size <= sizeof lane);
    memset(lane, 0x5a, sizeof lane);
    int ok = msi_text_decode_args(svc, text, len, lane);
    if (!ok) {
        /* Not handled: left zeroed, nothing leaked (ASan's leak check sees the rest). */
        for (size_t i = 0; i < svc->args_size; i++)
            assert_int_equal(lane[i], 0);
        return 0;
    }
    ms_status st = tree_decode(svc, text, len, tree);
    if (st != MS_OK)
        fail_msg("text lane accepted what the tree path refuses (%s): %.*s", ms_status_name(st),
                 (int)len, text);
    assert_args_equal(svc, lane, tree);
    msi_free_args(svc, lane);
    msi_free_args(svc, tree);
    return 1;
}

static void
expect_handled(const char *name, const char *text)
{
    if (!check_decode(svc_of(name), text, strlen(text)))
        fail_msg("text lane did not handle %s(%s)", name, text);
}

static void
expect_left(const char *name, const char *text)
{
    assert_int_equal(check_decode(svc_of(name), text, strlen(text)), 0);
}

/* ------------------------------------------------------------------------------------------
 * Decoding.
 * ---------------------------------------------------------------------------------------- */

static void
test_codec_text_decodes_common_cases(void **state)
{
    (void)state;
    expect_handled("tnums", "{\"i8\":-128,\"u8\":255,\"i16\":-32768,\"u16\":65535,"
                            "\"i32\":-2147483648,\"u32\":4294967295,"
                            "\"i64\":-9223372036854775808,\"u64\":9223372036854775807}");
    expect_handled("tnums", " { \"u64\" : 0 , \"i64\":0,\"u32\":0,\"i32\":-0,\"u16\":1,\"i16\":2,"
                            "\"u8\":3,\"i8\":4 } \n");
    expect_handled("tnums", "{\"i8\":\"-7\",\"u8\":\"007\",\"i16\":0,\"u16\":0,\"i32\":0,"
                            "\"u32\":0,\"i64\":\"-0\",\"u64\":\"18446744073709551615\"}");
    expect_handled("treals", "{\"f\":1.5,\"d\":-0.0,\"flag\":true}");
    expect_handled("treals", "{\"f\":3,\"d\":-0,\"flag\":false}"); /* an integer: +0.0 */
    expect_handled("treals", "{\"f\":1e-50,\"d\":2.2250738585072014e-308,\"flag\":true}");
    expect_handled("treals", "{\"f\":\"NaN\",\"d\":\"-Infinity\",\"flag\":true}");
    expect_handled("treals", "{\"f\":3.4028234663852886e38,\"d\":1E+300,\"flag\":true}");
    expect_handled("treals", "{\"f\":0.1,\"d\":0.30000000000000004,\"flag\":true}");
    expect_handled("ttext", "{\"s\":\"plain\",\"cs\":null,\"b\":\"aGVsbG8=\",\"r\":\"ms://o/c/1\","
                            "\"seg\":{\"a\":{\"x\":1,\"y\":2},\"b\":{\"x\":3,\"y\":4},"
                            "\"label\":\"caf\xc3\xa9\"}}");
    expect_handled("ttext", "{\"s\":\"q\\\"b\\\\s\\/n\\n\\r\\t\\b\\f\\u00e9\\ud83d\\ude00\","
                            "\"cs\":\"\",\"b\":\"\",\"r\":null,"
                            "\"seg\":{\"a\":{\"x\":1,\"y\":2},\"b\":{\"x\":3,\"y\":4},"
                            "\"label\":null}}");
    expect_handled("tnone", "{}");
    expect_handled("tnone", " {  } ");
}

static void
test_codec_text_leaves_the_rest(void **state)
{
    (void)state;
    /* Errors: the tree path says what is wrong. */
    expect_left("tnums", "{\"i8\":128,\"u8\":0,\"i16\":0,\"u16\":0,\"i32\":0,\"u32\":0,\"i64\":0,"
                         "\"u64\":0}");
    expect_left("tnums", "{\"i8\":1,\"u8\":-1,\"i16\":0,\"u16\":0,\"i32\":0,\"u32\":0,\"i64\":0,"
                         "\"u64\":0}");
    expect_left("tnums", "{\"i8\":1,\"u8\":1,\"i16\":0,\"u16\":0,\"i32\":0,\"u32\":0,\"i64\":0}");
    expect_left("tnums", "{\"i8\":1.0,\"u8\":1,\"i16\":0,\"u16\":0,\"i32\":0,\"u32\":0,\"i64\":0,"
                         "\"u64\":0}");
    expect_left("tnums", "{\"i8\":01,\"u8\":1,\"i16\":0,\"u16\":0,\"i32\":0,\"u32\":0,\"i64\":0,"
                         "\"u64\":0}");
    /* A decimal string past uint64, a duplicate, an unknown key, an escaped key, trailing
     * text. */
    expect_left("tnums", "{\"i8\":1,\"u8\":1,\"i16\":0,\"u16\":0,\"i32\":0,\"u32\":0,\"i64\":0,"
                         "\"u64\":\"18446744073709551616\"}");
    expect_left("tnums", "{\"i8\":1,\"u8\":1,\"i16\":0,\"u16\":0,\"i32\":0,\"u32\":0,\"i64\":0,"
                         "\"u64\":\"1e3\"}");
    expect_left("tnums", "{\"i8\":1,\"i8\":1,\"u8\":1,\"i16\":0,\"u16\":0,\"i32\":0,\"u32\":0,"
                         "\"i64\":0,\"u64\":0}");
    expect_left("tnone", "{\"x\":1}");
    expect_left("tnone", "{}x");
    expect_left("tnone", "[]");
    expect_left("treals", "{\"\\u0066\":1,\"d\":1,\"flag\":true}");
    expect_left("treals", "{\"f\":1e39,\"d\":1,\"flag\":true}");  /* beyond a float */
    expect_left("treals", "{\"f\":1,\"d\":1e400,\"flag\":true}"); /* jansson: overflow */
    expect_left("treals", "{\"f\":1,\"d\":\"nan\",\"flag\":true}");
    expect_left("treals", "{\"f\":1,\"d\":1,\"flag\":1}");
    expect_left("treals", "{\"f\":1,\"d\":1,\"flag\":truex}");
    /* Strings: control characters, \u0000, lone surrogates, invalid UTF-8. */
    const char *seg = "\"seg\":{\"a\":{\"x\":1,\"y\":2},\"b\":{\"x\":3,\"y\":4},\"label\":null}";
    char t[512];
    snprintf(t, sizeof t, "{\"s\":\"a\tb\",\"cs\":null,\"b\":\"\",\"r\":null,%s}", seg);
    expect_left("ttext", t);
    snprintf(t, sizeof t, "{\"s\":\"a\\u0000b\",\"cs\":null,\"b\":\"\",\"r\":null,%s}", seg);
    expect_left("ttext", t);
    snprintf(t, sizeof t, "{\"s\":\"\\ud800\",\"cs\":null,\"b\":\"\",\"r\":null,%s}", seg);
    expect_left("ttext", t);
    snprintf(t, sizeof t, "{\"s\":\"\xff\",\"cs\":null,\"b\":\"\",\"r\":null,%s}", seg);
    expect_left("ttext", t);
    snprintf(t, sizeof t, "{\"s\":null,\"cs\":null,\"b\":\"QR==\",\"r\":null,%s}", seg);
    expect_left("ttext", t);
    snprintf(t, sizeof t, "{\"s\":null,\"cs\":null,\"b\":\"\",\"r\":\"http://x\",%s}", seg);
    expect_left("ttext", t);
    /* json_t * is a tree anyway. */
    expect_left("tjson", "{\"j\":{\"a\":[1,2]}}");
}

/* The call path's entries (msi_codec_*): the lane's value or the tree's, and the tree's
 * messages, with the prefixes the call sites printed before the entries existed. */
static void
test_codec_text_entries(void **state)
{
    (void)state;
    ms__service *dres = svc_of("tdres"), *js = svc_of("tjson"), *none = svc_of("tnone");
    msi_err err = {{0}};
    msi_buf b = {0};
    union {
        max_align_t align;
        char bytes[256];
    } a;
    assert_true(dres->args_size <= sizeof a && js->args_size <= sizeof a);

    /* Arguments: one the lane writes, one (a json_t *) only the tree writes. */
    memset(&a, 0, sizeof a);
    int64_t n = 7;
    memcpy(a.bytes + dres->params[0].offset, &n, sizeof n);
    assert_int_equal(msi_codec_encode_args(dres, &a, &b, &err), MS_OK);
    b.p[b.len] = '\0';
    assert_string_equal(b.p, "{\"n\":7}");
    memset(&a, 0x5a, sizeof a);
    assert_int_equal(msi_codec_decode_args(dres, b.p, b.len, &a, &err), MS_OK);
    memcpy(&n, a.bytes + dres->params[0].offset, sizeof n);
    assert_int_equal(n, 7);
    json_t *j = json_pack("{s:[i,i]}", "a", 1, 2);
    memset(&a, 0, sizeof a);
    memcpy(a.bytes + js->params[0].offset, &j, sizeof j);
    b.len = 0;
    assert_int_equal(msi_codec_encode_args(js, &a, &b, &err), MS_OK);
    json_decref(j);
    b.p[b.len] = '\0';
    assert_string_equal(b.p, "{\"j\":{\"a\":[1,2]}}");
    assert_int_equal(msi_codec_decode_args(js, b.p, b.len, &a, &err), MS_OK);
    memcpy(&j, a.bytes + js->params[0].offset, sizeof j);
    assert_int_equal(json_array_size(json_object_get(j, "a")), 2);
    msi_free_args(js, &a);
    /* Not JSON; JSON but not these arguments: the tree's messages, args left zeroed. */
    memset(&a, 0x5a, sizeof a);
    assert_int_equal(msi_codec_decode_args(dres, "{\"n\":", 5, &a, &err), MS_EBADARGS);
    assert_int_equal(strncmp(err.msg, "arguments: invalid JSON", 23), 0);
    memcpy(&n, a.bytes + dres->params[0].offset, sizeof n);
    assert_int_equal(n, 0);
    assert_int_equal(msi_codec_decode_args(dres, "{\"m\":1}", 7, &a, &err), MS_EBADARGS);
    assert_string_equal(err.msg, "unknown argument 'm'");

    /* Results: the lane's text, a text only the tree reads (an escaped key), and errors. */
    double d = 2.5;
    b.len = 0;
    assert_int_equal(msi_codec_encode_result(dres, &d, &b, &err), MS_OK);
    b.p[b.len] = '\0';
    assert_string_equal(b.p, "{\"result\":2.5}");
    d = 0;
    assert_int_equal(msi_codec_decode_result(dres, b.p, b.len, &d, &err), MS_OK);
    assert_true(d == 2.5);
    const char *esc = "{\"res\\u0075lt\":3}";
    assert_int_equal(msi_text_decode_result(dres, esc, strlen(esc), &d), 0);
    assert_int_equal(msi_codec_decode_result(dres, esc, strlen(esc), &d, &err), MS_OK);
    assert_true(d == 3);
    assert_int_equal(msi_codec_decode_result(dres, "nope", 4, &d, &err), MS_EPROTO);
    assert_int_equal(strncmp(err.msg, "bad result: invalid JSON", 24), 0);
    assert_int_equal(msi_codec_decode_result(dres, "{}", 2, &d, &err), MS_EPROTO);
    assert_string_equal(err.msg, "result: response: missing \"result\"");
    /* A void service: null only, but with no destination the tree decodes nothing. */
    assert_int_equal(msi_codec_decode_result(none, "{\"result\":null}", 15, NULL, &err), MS_OK);
    assert_int_equal(msi_codec_decode_result(none, "{\"result\":1}", 12, NULL, &err), MS_OK);
    msi_buf_free(&b);
}

/* Deeper than the parser's limit: left to the tree path, which refuses it. */
static void
test_codec_text_result_lane(void **state)
{
    (void)state;
    ms__service *seg = svc_of("tsegres"), *dres = svc_of("tdres"), *none = svc_of("tnone");
    struct tseg s;
    const char *ok = "{\"result\":{\"a\":{\"x\":1,\"y\":2},\"b\":{\"x\":3,\"y\":4.5},"
                     "\"label\":\"x\"}}";
    assert_int_equal(msi_text_decode_result(seg, ok, strlen(ok), &s), 1);
    assert_true(s.b.y == 4.5);
    assert_string_equal(s.label, "x");
    ms__free_value(seg->result, &s);
    assert_int_equal(msi_text_decode_result(seg, ok, strlen(ok), NULL), 1);
    const char *bad = "{\"result\":{\"a\":{\"x\":1,\"y\":2},\"b\":{\"x\":3}}}";
    memset(&s, 0x5a, sizeof s);
    assert_int_equal(msi_text_decode_result(seg, bad, strlen(bad), &s), 0);
    assert_null(s.label);
    assert_true(s.a.x == 0);
    double d = 1;
    assert_int_equal(msi_text_decode_result(dres, "{\"result\":-0}", 13, &d), 1);
    assert_false(signbit(d)); /* an integer token: +0.0, as jansson reads it */
    assert_int_equal(msi_text_decode_result(dres, "{\"result\":-0.0}", 15, &d), 1);
    assert_true(signbit(d));
    assert_int_equal(msi_text_decode_result(dres, "{\"result\":1,\"x\":2}", 18, &d), 0);
    assert_int_equal(msi_text_decode_result(none, "{\"result\":null}", 15, NULL), 1);
    assert_int_equal(msi_text_decode_result(none, "{\"result\":1}", 12, NULL), 0);

    msi_buf b = {0};
    assert_int_equal(msi_text_encode_result(none, NULL, &b), 1);
    assert_int_equal((int)b.len, 15);
    assert_memory_equal(b.p, "{\"result\":null}", 15);
    b.len = 0;
    double v = 0.1;
    assert_int_equal(msi_text_encode_result(dres, &v, &b), 1);
    b.p[b.len] = '\0';
    assert_string_equal(b.p, "{\"result\":0.10000000000000001}");
    b.len = 0;
    v = 3;
    assert_int_equal(msi_text_encode_result(dres, &v, &b), 1);
    b.p[b.len] = '\0';
    assert_string_equal(b.p, "{\"result\":3.0}");
    msi_buf_free(&b);
}

static void
test_codec_text_depth(void **state)
{
    (void)state;
    /* Struct nesting is bounded by the types; the lane still counts like the parser. */
    expect_handled("ttext", "{\"s\":null,\"cs\":null,\"b\":\"\",\"r\":null,\"seg\":{\"a\":{\"x\":1,"
                            "\"y\":2},\"b\":{\"x\":3,\"y\":4},\"label\":null}}");
}

/* ------------------------------------------------------------------------------------------
 * Encoding: the lane's text, read by the tree path, is the value.
 * ---------------------------------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A random string: ASCII, escapes, multi-byte UTF-8; sometimes invalid UTF-8. */
static char *
rnd_string(int allow_invalid)
{
    static const char *const pieces[] = {"a",
                                         "Z",
                                         "0",
                                         " ",
                                         "\"",
                                         "\\",
                                         "/",
                                         "\n",
                                         "\t",
                                         "\x01",
                                         "\x1f",
                                         "\x7f",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80",
                                         "\xc3",
                                         "\xff",
                                         "\xed\xa0\x80"};
    size_t n = rnd() % 12;
    char *s = calloc(1, 12 * 4 + 1);
    for (size_t i = 0; i < n; i++) {
        size_t k = rnd() % (allow_invalid ? 18 : 15);
        strcat(s, pieces[k]);
    }
    return s;
}

static void
lane_encode_tree_decode(ms__service *svc, const void *args)
{
    msi_buf b = {0};
    int rc = msi_text_encode_args(svc, args, &b);
    assert_true(rc >= 0);
    msi_err err = {{0}};
    json_t *tree = NULL;
    ms_status est = msi_encode_args(svc, args, &tree, &err);
    if (rc == 0) {
        msi_buf_free(&b);
        json_decref(tree);
        return; /* left to the tree path (which may refuse it) */
    }
    /* What the lane encodes, the tree path can encode too. */
    assert_int_equal(est, MS_OK);
    json_decref(tree);
    char back[1024];
    assert_int_equal(tree_decode(svc, b.p, b.len, back), MS_OK);
    assert_args_equal(svc, args, back);
    /* And the lane reads its own text back. */
    char lane[1024];
    assert_int_equal(msi_text_decode_args(svc, b.p, b.len, lane), 1);
    assert_args_equal(svc, args, lane);
    msi_free_args(svc, back);
    msi_free_args(svc, lane);
    msi_buf_free(&b);
}

static double
rnd_double(void)
{
    switch (rnd() % 6) {
    case 0: {
        uint64_t bits = rnd();
        double d;
        memcpy(&d, &bits, sizeof d);
        return d; /* any bit pattern: NaNs, infinities, subnormals included */
    }
    case 1:
        return (double)(int64_t)rnd();
    case 2:
        return -0.0;
    case 3:
        return (double)(rnd() % 1000) / 10;
    case 4:
        return ldexp((double)(rnd() % 1000000), (int)(rnd() % 200) - 100);
    default:
        return (rnd() & 1) ? DBL_MAX : DBL_MIN;
    }
}

static void
test_codec_text_encode_roundtrip_random(void **state)
{
    (void)state;
    ms__service *nums = svc_of("tnums"), *reals = svc_of("treals"), *text = svc_of("ttext");
    for (int i = 0; i < 3000; i++) {
        char a[1024];
        /* Padding must be zero for the bitwise comparison: set the fields one by one. */
        struct {
            int8_t i8;
            uint8_t u8;
            int16_t i16;
            uint16_t u16;
            int32_t i32;
            uint32_t u32;
            int64_t i64;
            uint64_t u64;
        } v = {(int8_t)rnd(),  (uint8_t)rnd(),  (int16_t)rnd(), (uint16_t)rnd(),
               (int32_t)rnd(), (uint32_t)rnd(), (int64_t)rnd(), rnd()};
        memset(a, 0, sizeof a);
        const ms__field *p = nums->params;
        memcpy(a + p[0].offset, &v.i8, 1);
        memcpy(a + p[1].offset, &v.u8, 1);
        memcpy(a + p[2].offset, &v.i16, 2);
        memcpy(a + p[3].offset, &v.u16, 2);
        memcpy(a + p[4].offset, &v.i32, 4);
        memcpy(a + p[5].offset, &v.u32, 4);
        memcpy(a + p[6].offset, &v.i64, 8);
        memcpy(a + p[7].offset, &v.u64, 8);
        lane_encode_tree_decode(nums, a);

        memset(a, 0, sizeof a);
        p = reals->params;
        float f = (float)rnd_double();
        double d = rnd_double();
        _Bool flag = rnd() & 1;
        memcpy(a + p[0].offset, &f, sizeof f);
        memcpy(a + p[1].offset, &d, sizeof d);
        memcpy(a + p[2].offset, &flag, sizeof flag);
        /* NaN payloads are not kept (docs/design.md): compare a canonical NaN. */
        if (isnan(f) || isnan(d)) {
            if (isnan(f))
                f = NAN;
            if (isnan(d))
                d = NAN;
            memcpy(a + p[0].offset, &f, sizeof f);
            memcpy(a + p[1].offset, &d, sizeof d);
        }
        lane_encode_tree_decode(reals, a);

        memset(a, 0, sizeof a);
        p = text->params;
        char *s = rnd_string(1), *cs = rnd_string(0), *label = rnd_string(0);
        uint8_t raw[16];
        for (size_t k = 0; k < sizeof raw; k++)
            raw[k] = (uint8_t)rnd();
        ms_bytes b = {raw, rnd() % 17};
        ms_ref r = {(rnd() & 1) ? (char *)"ms://objects/ns/c/1" : NULL};
        struct tseg seg = {{rnd_double(), 1}, {2, 3}, label};
        if (isnan(seg.a.x))
            seg.a.x = NAN;
        memcpy(a + p[0].offset, &s, sizeof s);
        memcpy(a + p[1].offset, &cs, sizeof cs);
        memcpy(a + p[2].offset, &b, sizeof b);
        memcpy(a + p[3].offset, &r, sizeof r);
        memcpy(a + p[4].offset, &seg, sizeof seg);
        lane_encode_tree_decode(text, a);
        free(s);
        free(cs);
        free(label);
    }
}

/* Random mutations of valid texts: whatever the lane accepts, the tree path accepts as the
 * same value. */
static void
test_codec_text_mutations(void **state)
{
    (void)state;
    static const struct {
        const char *svc, *text;
    } seeds[] = {
        {"tnums", "{\"i8\":-12,\"u8\":250,\"i16\":-300,\"u16\":600,\"i32\":-70000,"
                  "\"u32\":70000,\"i64\":-5000000000,\"u64\":5000000000}"},
        {"treals", "{\"f\":1.25,\"d\":-3.5e-7,\"flag\":true}"},
        {"ttext", "{\"s\":\"a\\\"\\u00e9\\n\",\"cs\":\"x\",\"b\":\"aGk=\",\"r\":\"ms://a/b/c\","
                  "\"seg\":{\"a\":{\"x\":1,\"y\":2},\"b\":{\"x\":3,\"y\":4},\"label\":\"l\"}}"},
    };
    static const char alphabet[] = "{}[]\":,.-+eE0123456789 \\/untrfalsNIy\x01\xc3\xa9\xff";
    int handled = 0;
    for (int round = 0; round < 30000; round++) {
        size_t k = (size_t)round % 3;
        char t[512];
        size_t n = strlen(seeds[k].text);
        memcpy(t, seeds[k].text, n + 1);
        int edits = 1 + (int)(rnd() % 3);
        for (int e = 0; e < edits; e++) {
            size_t at = rnd() % n;
            switch (rnd() % 3) {
            case 0: /* replace */
                t[at] = alphabet[rnd() % (sizeof alphabet - 1)];
                break;
            case 1: /* delete */
                memmove(t + at, t + at + 1, n - at);
                n--;
                break;
            default: /* insert */
                if (n + 2 < sizeof t) {
                    memmove(t + at + 1, t + at, n - at + 1);
                    t[at] = alphabet[rnd() % (sizeof alphabet - 1)];
                    n++;
                }
                break;
            }
        }
        handled += check_decode(svc_of(seeds[k].svc), t, n);
    }
    assert_true(handled > 100); /* some mutations stay valid (digits, letters in strings) */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_text_decodes_common_cases),
        cmocka_unit_test(test_codec_text_leaves_the_rest),
        cmocka_unit_test(test_codec_text_result_lane),
        cmocka_unit_test(test_codec_text_entries),
        cmocka_unit_test(test_codec_text_depth),
        cmocka_unit_test(test_codec_text_encode_roundtrip_random),
        cmocka_unit_test(test_codec_text_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
