/*
 * method.c: the run-time of MS_METHOD (<ms/ms.h>; docs/objects.md, "Methods"): load the
 * object, run the body with ms_self() set, store the result of the body with If-Match in one
 * transaction of msd's object store that also records the call's request id and the body's
 * encoded result, again on a conflict. Part of src/lib/client (client_int.h).
 *
 * Design notes
 * - One call's life (ms__method_run), at most METHOD_ATTEMPTS attempts:
 *
 *      GET the object ── 404 ──▶ MS_ENOTFOUND
 *          │ value, ETag
 *       body (ms_self() = value) ── ms_fail ──▶ MS_EAPP, nothing written
 *          │ its result, encoded by the codec
 *       POST /v1/txn {"ops":[put if_match ETag], "result": r}, Ms-Request-Id: the call's
 *          ├─ 200 (fresh, or replayed: an earlier attempt of this call committed, same body)
 *          │        ──▶ the answer's "result", decoded: the call's result
 *          ├─ 412 (the object changed; not recorded) ──▶ a short jittered pause, GET again
 *          ├─ 404 (deleted meanwhile) ──▶ MS_ENOTFOUND
 *          ├─ no answer (msd restarting, a connection cut) ──▶ the same request again
 *          │        after a pause (any request here is safe to resend: send)
 *          └─ 422 (the id is recorded with another body: an earlier attempt of this call, in
 *             this instance or one that died, committed) ──▶ GET /v1/txn/{rid} ──▶ its
 *             "result"; no record (the caller acknowledged it, or it expired): MS_EREUSED
 *      after METHOD_ATTEMPTS conflicts ──▶ MS_ECONFLICT
 *
 * - The request id is the incoming call's (the host hands it over in msi_ctx.rid, with its
 *   Ms-Acked-Below); the client sends the same id on every retry of a call, to any instance,
 *   so every execution of one call writes under one id and the store applies one of them.
 *   A call with no id (a self-call in an instance, a request without Ms-Request-Id) gets a
 *   new one of the thread, "<caller>-<seq>", as the client makes them.
 * - The result a call answers is always the one in the store's answer, decoded: the same
 *   for the attempt that committed and for any replay.
 * - Failures go through the call's context (msi_ctx_fail): the service returns them as its
 *   status (MS_ENOTFOUND, MS_ECONFLICT, ...), not as MS_EAPP.
 *
 * Threading: any thread; ms_self() is per thread (the body runs on the calling thread).
 */
#include "client_int.h"
#include "codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METHOD_ATTEMPTS 32
#define METHOD_TIMEOUT_MS 10000 /* per request to msd, within the call's deadline */
#define METHOD_PAUSE_MS 2       /* after the n-th conflict, up to n times this, jittered */
#define METHOD_PAUSE_MAX_MS 50
#define METHOD_RESEND_MS 50      /* a request that got no answer is sent again after this, */
#define METHOD_RESEND_MAX_MS 800 /* doubled up to this */

static _Thread_local json_t *self_value;

json_t *
ms_self(void)
{
    return self_value;
}

static int64_t
request_deadline(void)
{
    int64_t left = ms_deadline_left_ms();
    return msi_now_ms() + (left < METHOD_TIMEOUT_MS ? left : METHOD_TIMEOUT_MS);
}

/* One request to msd: MS_OK when an answer came (any HTTP status: resp->status), with its
 * parsed body in *out (may be NULL). Every request a method sends is safe to send again (a
 * GET, or a transaction under the call's request id, which the store applies once), so one
 * that got no answer (msd restarting, a connection cut) is sent again after a pause, until
 * min(10 s, the call's deadline). */
static ms_status
send(const char *method, const char *path, const char *const *headers, const json_t *body,
     msi_httpc_resp *resp, json_t **out, char *why, size_t whylen)
{
    int64_t until = request_deadline();
    for (int64_t pause = METHOD_RESEND_MS;; pause *= 2) {
        msi_err err = {{0}};
        *out = NULL;
        ms_status st =
            msi_cl_orch_request(method, path, headers, (json_t *)body, until, resp, out, &err);
        if (st == MS_OK)
            return MS_OK;
        snprintf(why, whylen, "%s %s: %.300s", method, path, err.msg);
        if (pause > METHOD_RESEND_MAX_MS)
            pause = METHOD_RESEND_MAX_MS;
        if ((st != MS_EUNAVAILABLE && st != MS_EINDOUBT && st != MS_ETIMEDOUT) ||
            msi_now_ms() + pause >= until)
            return st;
        msi_log(3, "method: %s %s: %s; sending again", method, path, err.msg);
        msi_cl_sleep_within(msi_cl_jitter(pause, 25), until);
    }
}

/* The store's error answer as a status and text (for a failure that ends the call). */
static ms_status
answer_error(const msi_httpc_resp *resp, char *why, size_t whylen)
{
    msi_httpc_error_text(resp, why, whylen);
    return msi_httpc_error_status(resp, NULL);
}

/* Decodes the "result" member of a transaction's answer into result. */
static ms_status
take_result(ms__service *svc, const json_t *answer, void *result, char *why, size_t whylen)
{
    if (!svc->result || !result)
        return MS_OK;
    json_t *r = json_object_get(answer, "result");
    if (!r) {
        snprintf(why, whylen, "the store's answer has no \"result\"");
        return MS_EPROTO;
    }
    msi_err err = {{0}};
    ms_status st = msi_decode(svc->result, r, result, "result", &err);
    if (st != MS_OK)
        snprintf(why, whylen, "%.400s", err.msg);
    return st;
}

/* One run of the body on a fresh value: *txn gets the transaction to send, or NULL after the
 * body failed (ms_fail: the context says so) or its result cannot be encoded (*st). */
static json_t *
run_body(ms__service *svc, void *args, void (*body)(void *, void *), json_t *value, const char *uri,
         const char *etag, ms_status *st, char *why, size_t whylen)
{
    msi_scratch tmp;
    size_t rsize = svc->result ? svc->result->size : 0;
    void *res = rsize <= sizeof tmp ? (void *)&tmp : calloc(1, rsize);
    if (!res) {
        *st = MS_ENOMEM;
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    memset(res, 0, rsize ? rsize : 1);
    json_t *prev = self_value;
    self_value = value;
    body(args, res);
    self_value = prev;
    json_t *txn = NULL;
    if (msi_cur_ctx && msi_cur_ctx->failed) {
        *st = MS_EAPP;
    } else if (!json_is_object(value)) {
        *st = MS_EBADARGS;
        snprintf(why, whylen, "ms_self() must stay a JSON object");
    } else {
        msi_err err = {{0}};
        json_t *enc = NULL;
        *st = msi_encode_result(svc, rsize ? res : NULL, &enc, &err);
        if (*st != MS_OK)
            snprintf(why, whylen, "result: %.400s", err.msg);
        else if (!(txn = json_pack("{s:[{s:s,s:s,s:s,s:O}],s:O}", "ops", "op", "put", "ref", uri,
                                   "if_match", etag, "value", value, "result",
                                   json_object_get(enc, "result")))) {
            *st = MS_ENOMEM;
            snprintf(why, whylen, "out of memory");
        }
        json_decref(enc);
    }
    if (rsize)
        ms__free_value(svc->result, res);
    if (res != (void *)&tmp)
        free(res);
    return txn;
}

/* Whether a recorded answer is that of a write to uri (a method's: one put). */
static int
uri_is(const json_t *answer, const char *uri)
{
    json_t *first = json_array_get(json_object_get(answer, "results"), 0);
    const char *ref = json_string_value(json_object_get(first, "ref"));
    return ref && strcmp(ref, uri) == 0;
}

/* 422 on our id: an earlier attempt of this call committed. Its recorded answer (checked to
 * be a write to the same object: an id reused for another call is MS_EREUSED). */
static ms_status
recorded(ms__service *svc, const char *rid, const char *uri, void *result, char *why, size_t whylen)
{
    char path[32 + MSI_CL_RID_MAX + 128];
    snprintf(path, sizeof path, "/v1/txn/%s", rid);
    msi_httpc_resp resp;
    json_t *ans = NULL;
    const char *none[1] = {NULL};
    ms_status st = send("GET", path, none, NULL, &resp, &ans, why, whylen);
    if (st == MS_OK && resp.status == 404) {
        snprintf(why, whylen,
                 "request id %s was used for another call, or its record is gone (acknowledged "
                 "by its caller, or over an hour old): not run",
                 rid);
        st = MS_EREUSED;
    } else if (st == MS_OK && resp.status != 200) {
        st = answer_error(&resp, why, whylen);
    } else if (st == MS_OK) {
        char ts[16] = "";
        if (msi_httpc_header(&resp, "Ms-Txn-Status", ts, sizeof ts) < 0 || strcmp(ts, "200") != 0) {
            snprintf(why, whylen, "request id %s: the recorded transaction was refused (%s)", rid,
                     ts);
            st = MS_EREUSED;
        } else if (!uri_is(ans, uri)) {
            snprintf(why, whylen, "request id %s was used for a call on another object", rid);
            st = MS_EREUSED;
        } else {
            st = take_result(svc, ans, result, why, whylen);
        }
    }
    json_decref(ans);
    return st;
}

void
ms__method_run(ms__service *svc, void *args, void (*body)(void *args, void *result), void *result)
{
    char why[MSI_ERR_MAX] = "";
    ms_status st = MS_OK;
    size_t rsize = svc->result ? svc->result->size : 0;
    if (result && rsize)
        memset(result, 0, rsize);
    const ms_ref *self = (const ms_ref *)((char *)args + svc->params[0].offset);
    char path[64 + 3 * 128];
    char rid_buf[MSI_CL_RID_MAX], ack_buf[24];
    msi_ctx *c = msi_cur_ctx;
    const char *rid = c ? c->rid : NULL;
    const char *ack = c ? c->acked_below : NULL;
    if (!rid) {
        msi_cl_new_rid(rid_buf, ack_buf);
        rid = rid_buf;
        ack = ack_buf;
    }
    if (!msi_client.started || msi_client.stopped) {
        msi_ctx_fail(MS_EUNAVAILABLE, "methods need msd's object store: local or docker mode, "
                                      "after ms_init and before ms_shutdown");
        return;
    }
    if (msi_cl_obj_path(self, path, sizeof path) < 0) {
        msi_ctx_fail(MS_EBADARGS, "self: not an object reference (ms://objects/{ns}/"
                                  "{collection}/{id})");
        return;
    }
    char h_rid[16 + 128 + 1], h_ack[20 + 24];
    snprintf(h_rid, sizeof h_rid, "Ms-Request-Id: %s", rid);
    snprintf(h_ack, sizeof h_ack, "Ms-Acked-Below: %s", ack ? ack : "");
    const char *headers[3] = {h_rid, ack ? h_ack : NULL, NULL};
    const char *none[1] = {NULL};

    for (int attempt = 1; attempt <= METHOD_ATTEMPTS; attempt++) {
        if (ms_deadline_left_ms() == 0) { /* (not ms_cancelled: a draining instance finishes) */
            msi_ctx_fail(MS_ETIMEDOUT, "%s: deadline passed after %d attempts", self->uri,
                         attempt - 1);
            return;
        }
        msi_httpc_resp resp;
        json_t *value = NULL;
        if ((st = send("GET", path, none, NULL, &resp, &value, why, sizeof why)) != MS_OK)
            break;
        if (resp.status != 200) {
            json_decref(value);
            st = answer_error(&resp, why, sizeof why);
            break;
        }
        char etag[300];
        if (!json_is_object(value) || msi_httpc_header(&resp, "ETag", etag, sizeof etag) < 0) {
            json_decref(value);
            st = MS_EPROTO;
            snprintf(why, sizeof why, "GET %s: no JSON object or no ETag", path);
            break;
        }
        json_t *txn = run_body(svc, args, body, value, self->uri, etag, &st, why, sizeof why);
        json_decref(value);
        if (!txn) {
            if (st == MS_EAPP)
                return; /* ms_fail: the context has it; nothing written */
            break;
        }
        json_t *ans = NULL;
        st = send("POST", "/v1/txn", headers, txn, &resp, &ans, why, sizeof why);
        json_decref(txn);
        if (st != MS_OK)
            break;
        if (resp.status == 200) {
            st = result && rsize ? take_result(svc, ans, result, why, sizeof why) : MS_OK;
            json_decref(ans);
            if (st != MS_OK)
                break;
            return;
        }
        json_decref(ans);
        if (resp.status == 412) { /* the object changed since the GET: run again */
            msi_log(3, "method %s request %s: conflict on %s, attempt %d", svc->name, rid,
                    self->uri, attempt);
            int64_t pause = METHOD_PAUSE_MS * attempt;
            msi_cl_sleep_within(
                msi_cl_jitter(pause < METHOD_PAUSE_MAX_MS ? pause : METHOD_PAUSE_MAX_MS, 100),
                request_deadline());
            st = MS_ECONFLICT;
            snprintf(why, sizeof why,
                     "%s: version conflict on each of %d attempts (the object changes too often)",
                     self->uri, METHOD_ATTEMPTS);
            continue;
        }
        if (resp.status == 422) {
            st = recorded(svc, rid, self->uri, result && rsize ? result : NULL, why, sizeof why);
            if (st == MS_OK)
                return;
            break;
        }
        st = answer_error(&resp, why, sizeof why);
        break;
    }
    if (result && rsize)
        memset(result, 0, rsize);
    msi_ctx_fail(st != MS_OK ? st : MS_EPROTO, "%s", why[0] ? why : "unexpected answer");
}
