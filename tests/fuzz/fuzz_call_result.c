/*
 * fuzz_call_result.c: the client's response parser, what msi_call_remote
 * (src/lib/client/engine.c) does with an instance's answer: on 200, msi_json_parse then
 * msi_decode_result (into a value, and with no destination); otherwise
 * msi_httpc_error_status and msi_httpc_error_text on the error body.
 *
 * Input: byte 0 picks the service (its result type; index into FUZZ_SERVICES), bytes 1-2
 * the HTTP status (big-endian, modulo 600), the rest is the response body. Bytes 1-2 =
 * 0x00 0xC8 is 200.
 *
 * Properties checked beyond "no crash, no leak, no sanitizer report":
 * - a decoding failure is MS_EPROTO (or MS_ENOMEM) with a non-empty UTF-8 message, and the
 *   result is left zeroed;
 * - a decoded result encodes again, to the same JSON once decoded and encoded again;
 * - the error helpers return a known status and a NUL-terminated text within the buffer,
 *   for every buffer size;
 * - the text lane (codec_text.c, the client's fast path) agrees with the tree: what it
 *   decodes, the tree decodes too, to a value that encodes the same.
 */
#include "fuzz_common.h"
#include "fuzz_services.h"

#include "codec.h"
#include "httpc.h"

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

static int
known_status(ms_status st)
{
    switch (st) {
#define X(name, num, http, text)                                                                   \
    case name:                                                                                     \
        return 1;
        MS_STATUS_LIST(X)
#undef X
    }
    return 0;
}

static void
check_result_round_trip(ms__service *svc, void *result)
{
    msi_err err = {{0}};
    json_t *enc1 = NULL, *enc2 = NULL;
    ms_status st = msi_encode_result(svc, result, &enc1, &err);
    if (st == MS_ENOMEM)
        return;
    FZ_CHECK(st == MS_OK, "%s: a decoded result does not encode: %s", svc->name, err.msg);
    char *text = json_dumps(enc1, JSON_COMPACT);
    FZ_CHECK(text != NULL, "cannot dump");
    json_t *j = msi_json_parse(text, strlen(text), &err);
    FZ_CHECK(j != NULL, "%s: our own result does not parse: %s", svc->name, text);
    size_t rsize = svc->result ? svc->result->size : 1;
    void *again = calloc(1, rsize);
    FZ_CHECK(again != NULL, "out of memory");
    st = msi_decode_result(svc, j, svc->result ? again : NULL, &err);
    FZ_CHECK(st == MS_OK, "%s: our own result does not decode: %s: %s", svc->name, err.msg, text);
    st = msi_encode_result(svc, svc->result ? again : NULL, &enc2, &err);
    FZ_CHECK(st == MS_OK, "%s: re-encoding failed: %s", svc->name, err.msg);
    FZ_CHECK(json_equal(enc1, enc2), "%s: result encoding is not a fixed point: %s", svc->name,
             text);
    if (svc->result)
        ms__free_value(svc->result, again);
    free(again);
    free(text);
    json_decref(j);
    json_decref(enc1);
    json_decref(enc2);
}

/* The text lane's decoding of body against the tree's: `tree` is what the tree decoded
 * (NULL: it failed). */
static void
check_text_lane(ms__service *svc, const char *body, size_t len, const void *tree, int tree_ok)
{
    size_t rsize = svc->result ? svc->result->size : 0;
    void *t = rsize ? malloc(rsize) : NULL;
    FZ_CHECK(!rsize || t != NULL, "out of memory");
    if (rsize)
        memset(t, 0x5A, rsize);
    int handled = msi_text_decode_result(svc, body, len, t);
    if (!handled) {
        FZ_CHECK(!rsize || all_zero(t, rsize), "%s: text lane left the result set", svc->name);
        free(t);
        return;
    }
    FZ_CHECK(tree_ok, "%s: the text lane decoded what the tree refuses", svc->name);
    if (rsize) {
        msi_err err = {{0}};
        json_t *a = NULL, *b = NULL;
        FZ_CHECK(msi_encode_result(svc, tree, &a, &err) == MS_OK, "%s: encode", svc->name);
        FZ_CHECK(msi_encode_result(svc, t, &b, &err) == MS_OK, "%s: encode (text lane)", svc->name);
        FZ_CHECK(json_equal(a, b), "%s: text lane and tree decode differently", svc->name);
        json_decref(a);
        json_decref(b);
        ms__free_value(svc->result, t);
    }
    free(t);
    /* And without a destination: checked, then released. */
    FZ_CHECK(msi_text_decode_result(svc, body, len, NULL) == 1,
             "%s: text lane decodes with a destination only", svc->name);
}

static void
decode_ok_body(ms__service *svc, const char *body, size_t len)
{
    msi_err err = {{0}};
    json_t *j = msi_json_parse(body, len, &err);
    if (!j) {
        FZ_CHECK(err.msg[0] && fz_utf8_ok(err.msg), "bad parse message: %s", err.msg);
        check_text_lane(svc, body, len, NULL, 0);
        return;
    }
    size_t rsize = svc->result ? svc->result->size : 0;
    void *result = rsize ? malloc(rsize) : NULL;
    if (rsize) {
        FZ_CHECK(result != NULL, "out of memory");
        memset(result, 0x5A, rsize); /* the decoder must zero it */
    }
    ms_status st = msi_decode_result(svc, j, result, &err);
    if (st != MS_OK) {
        FZ_CHECK(st == MS_EPROTO || st == MS_ENOMEM, "%s: unexpected status %s: %s", svc->name,
                 ms_status_name(st), err.msg);
        FZ_CHECK(err.msg[0] && fz_utf8_ok(err.msg), "%s: bad message: %s", svc->name, err.msg);
        FZ_CHECK(!rsize || all_zero(result, rsize), "%s: result not zeroed after a failure",
                 svc->name);
    } else {
        check_result_round_trip(svc, result);
    }
    check_text_lane(svc, body, len, result, st == MS_OK);
    if (rsize)
        ms__free_value(svc->result, result);
    free(result);
    /* The same without a destination (a transparent call whose result is discarded). */
    msi_err err2 = {{0}};
    ms_status st2 = msi_decode_result(svc, j, NULL, &err2);
    FZ_CHECK(st2 == st || st2 == MS_ENOMEM || st == MS_ENOMEM,
             "%s: decoding with and without a destination disagree: %s / %s", svc->name,
             ms_status_name(st), ms_status_name(st2));
    json_decref(j);
}

static void
check_error_helpers(long status, const char *body, size_t len)
{
    msi_httpc_resp rs;
    memset(&rs, 0, sizeof rs);
    rs.status = status;
    rs.body = body;
    rs.len = len;
    rs.retry_after_s = -1;
    int app_code = -12345;
    ms_status st = msi_httpc_error_status(&rs, &app_code);
    FZ_CHECK(known_status(st), "unknown status %d", (int)st);
    FZ_CHECK(app_code != -12345, "app_code not set");
    FZ_CHECK(known_status(msi_httpc_error_status(&rs, NULL)), "unknown status without app_code");
    static const size_t sizes[] = {1, 2, 7, 64, MSI_ERR_MAX / 2};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        char buf[MSI_ERR_MAX / 2 + 1];
        memset(buf, 'Z', sizeof buf);
        const char *t = msi_httpc_error_text(&rs, buf, sizes[i]);
        FZ_CHECK(t == buf, "error_text does not return its buffer");
        FZ_CHECK(memchr(buf, '\0', sizes[i]) != NULL, "error_text: no NUL within %zu bytes",
                 sizes[i]);
        FZ_CHECK(buf[sizes[i]] == 'Z', "error_text wrote past %zu bytes", sizes[i]);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ms__service *const services[] = FUZZ_SERVICES;
    if (size < 3)
        return 0;
    ms__service *svc = services[data[0] % FUZZ_NSERVICES];
    long status = ((long)data[1] << 8 | data[2]) % 600;
    size_t len = size - 3;
    /* The client's body is NUL-terminated (httpc.h); keep it on the heap, exactly sized. */
    char *body = malloc(len + 1);
    FZ_CHECK(body != NULL, "out of memory");
    memcpy(body, data + 3, len);
    body[len] = '\0';
    if (status == 200)
        decode_ok_body(svc, body, len);
    check_error_helpers(status, body, len);
    free(body);
    return 0;
}
