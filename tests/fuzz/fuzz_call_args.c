/*
 * fuzz_call_args.c: the instance's call-body decoder (src/lib/host/endpoint.c's call_handler path):
 * msi_json_parse, then msi_decode_args over services with every wire type, then
 * msi_free_args.
 *
 * Input: byte 0 picks the service (index into FUZZ_SERVICES, modulo their number); the
 * rest is the request body, e.g. "\x00{\"a\":1,...}".
 *
 * Properties checked beyond "no crash, no leak, no sanitizer report":
 * - a failure is MS_EBADARGS (or MS_ENOMEM) with a non-empty, valid UTF-8 message (it is
 *   sent back in a JSON error body), and leaves the argument struct zeroed;
 * - whatever decodes encodes again (msi_encode_args), and encoding is a fixed point:
 *   decode(encode(v)) encodes to the same JSON as v;
 * - the text lane (codec_text.c, the instance's fast path) agrees with the tree: what it
 *   decodes, the tree decodes too, to a value that encodes the same; and its encoding of
 *   the decoded value parses and encodes (through the tree) to the same JSON.
 */
#include "fuzz_common.h"
#include "fuzz_services.h"

#include "codec.h"

#include <jansson.h>
#include <string.h>

static int
all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* Encodes args, serialises, parses and decodes them again, and encodes the copy: both
 * encodings must be equal. */
static void
check_round_trip(ms__service *svc, void *args)
{
    msi_err err = {{0}};
    json_t *enc1 = NULL, *enc2 = NULL;
    ms_status st = msi_encode_args(svc, args, &enc1, &err);
    if (st == MS_ENOMEM)
        return;
    FZ_CHECK(st == MS_OK && enc1, "%s: decoded arguments do not encode: %s", svc->name, err.msg);
    char *text = json_dumps(enc1, JSON_COMPACT | JSON_ENCODE_ANY);
    FZ_CHECK(text != NULL, "%s: cannot dump the encoded arguments", svc->name);
    json_t *j = msi_json_parse(text, strlen(text), &err);
    FZ_CHECK(j != NULL, "%s: our own encoding does not parse: %s: %s", svc->name, err.msg, text);
    void *again = calloc(1, svc->args_size);
    FZ_CHECK(again != NULL, "out of memory");
    st = msi_decode_args(svc, j, again, &err);
    FZ_CHECK(st == MS_OK, "%s: our own encoding does not decode: %s: %s", svc->name, err.msg, text);
    st = msi_encode_args(svc, again, &enc2, &err);
    FZ_CHECK(st == MS_OK, "%s: re-encoding failed: %s", svc->name, err.msg);
    FZ_CHECK(json_equal(enc1, enc2), "%s: encoding is not a fixed point: %s", svc->name, text);
    msi_free_args(svc, again);
    free(again);
    json_decref(j);
    json_decref(enc1);
    json_decref(enc2);
    free(text);
}

/* The text lane against the tree: `tree_args` is what the tree decoded (NULL: it failed). */
static void
check_text_lane(ms__service *svc, const char *body, size_t len, void *tree_args)
{
    void *t = malloc(svc->args_size);
    FZ_CHECK(t != NULL, "out of memory");
    memset(t, 0x5A, svc->args_size);
    if (!msi_text_decode_args(svc, body, len, t)) {
        FZ_CHECK(all_zero(t, svc->args_size), "%s: text lane left arguments set", svc->name);
        free(t);
        return;
    }
    FZ_CHECK(tree_args != NULL, "%s: the text lane decoded what the tree refuses", svc->name);
    msi_err err = {{0}};
    json_t *a = NULL, *b = NULL;
    FZ_CHECK(msi_encode_args(svc, tree_args, &a, &err) == MS_OK, "%s: encode", svc->name);
    FZ_CHECK(msi_encode_args(svc, t, &b, &err) == MS_OK, "%s: encode (text lane's value)",
             svc->name);
    FZ_CHECK(json_equal(a, b), "%s: text lane and tree decode differently", svc->name);
    msi_buf out = {0};
    int rc = msi_text_encode_args(svc, t, &out);
    FZ_CHECK(rc >= 0, "out of memory");
    if (rc == 1) {
        json_t *j = msi_json_parse(out.p, out.len, &err);
        FZ_CHECK(j != NULL, "%s: text lane encoding does not parse: %s", svc->name, err.msg);
        void *again = calloc(1, svc->args_size);
        FZ_CHECK(again != NULL, "out of memory");
        FZ_CHECK(msi_decode_args(svc, j, again, &err) == MS_OK,
                 "%s: text lane encoding does not decode: %s", svc->name, err.msg);
        json_t *c = NULL;
        FZ_CHECK(msi_encode_args(svc, again, &c, &err) == MS_OK, "%s: encode", svc->name);
        FZ_CHECK(json_equal(a, c), "%s: text lane encodes another value", svc->name);
        json_decref(c);
        msi_free_args(svc, again);
        free(again);
        json_decref(j);
    }
    msi_buf_free(&out);
    json_decref(a);
    json_decref(b);
    msi_free_args(svc, t);
    free(t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ms__service *const services[] = FUZZ_SERVICES;
    _Static_assert(sizeof services / sizeof *services == FUZZ_NSERVICES, "FUZZ_NSERVICES");
    if (size < 1)
        return 0;
    ms__service *svc = services[data[0] % FUZZ_NSERVICES];
    const char *body = (const char *)data + 1;
    size_t len = size - 1;

    msi_err err = {{0}};
    json_t *j = msi_json_parse(body, len, &err);
    if (!j) {
        FZ_CHECK(err.msg[0], "parse failure without a message");
        FZ_CHECK(fz_utf8_ok(err.msg), "parse error message is not UTF-8: %s", err.msg);
        return 0;
    }
    /* On the heap, exactly args_size bytes: an overrun is a sanitizer report. */
    void *args = malloc(svc->args_size);
    FZ_CHECK(args != NULL, "out of memory");
    memset(args, 0xA5, svc->args_size); /* the decoder must zero it first */
    ms_status st = msi_decode_args(svc, j, args, &err);
    if (st != MS_OK) {
        FZ_CHECK(st == MS_EBADARGS || st == MS_ENOMEM, "%s: unexpected status %s: %s", svc->name,
                 ms_status_name(st), err.msg);
        FZ_CHECK(err.msg[0], "%s: failure without a message", svc->name);
        FZ_CHECK(fz_utf8_ok(err.msg), "%s: error message is not UTF-8: %s", svc->name, err.msg);
        FZ_CHECK(all_zero(args, svc->args_size), "%s: arguments not zeroed after a failure",
                 svc->name);
    } else {
        check_round_trip(svc, args);
    }
    check_text_lane(svc, body, len, st == MS_OK ? args : NULL);
    msi_free_args(svc, args);
    free(args);
    json_decref(j);
    return 0;
}
