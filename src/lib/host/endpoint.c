/*
 * endpoint.c: the call route's handler (msi_host_call_handler): decode the arguments, run the
 * function in a slot, reply. Part of src/lib/host (host_int.h).
 *
 * Design notes
 * - Nested calls made by the service go through the client (src/lib/client) started without a
 *   private msd; they inherit the call's deadline and trace id from the per-thread context
 *   (msi_invoke_local gets the deadline of Ms-Deadline-Ms and the parsed `traceparent`).
 * - The call's Ms-Request-Id and Ms-Acked-Below go into its context too (msi_next_rid), so an
 *   MS_METHOD body's write is recorded under the id the caller retries with
 *   (src/lib/client/method.c).
 */
#include "host_int.h"
#include "codec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *
app_message(void)
{
    const char *m = ms_last_error();
    size_t n = strlen(msi_host.svc->name);
    if (strncmp(m, msi_host.svc->name, n) == 0 && m[n] == ':' && m[n + 1] == ' ')
        return m + n + 2;
    return m;
}

/* Sends a reply of `len` bytes of JSON text, keeping it for duplicates when `dd` is set. */
static void
reply_text(msi_http_req *r, int status, const char *t, size_t len, msi_dd_entry **dd)
{
    if (*dd) {
        msi_dd_finish(msi_host_dd, *dd, status, t, len);
        *dd = NULL;
    }
    msi_host_closing(r);
    msi_http_reply(r, status, "application/json", t, len);
}

/* The calling thread's buffer for a result's text, emptied (NULL when out of memory). A
 * connection's thread serves one call at a time; the buffer goes with the thread. */
static msi_tbuf result_tbuf = MSI_TBUF_INIT;

static msi_buf *
result_buf(void)
{
    return msi_tbuf_get(&result_tbuf, 256u << 10);
}

/* Sends a reply made of `body` (taken), keeping it for duplicates when `dd` is set. */
static void
reply_kept(msi_http_req *r, int status, json_t *body, msi_dd_entry **dd)
{
    static const char oom[] = "{\"error\":{\"code\":\"MS_ENOMEM\",\"message\":\"out of memory\"}}";
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    const char *t = text ? text : oom;
    size_t len = strlen(t);
    if (!text)
        status = 500;
    reply_text(r, status, t, len, dd);
    free(text);
}

static json_t *
error_body(ms_status st, json_t *extra, const char *msg)
{
    json_t *e = json_pack("{s:s,s:s}", "code", ms_status_name(st), "message", msg);
    if (e && extra)
        json_object_update(e, extra);
    json_decref(extra);
    return e ? json_pack("{s:o}", "error", e) : NULL;
}

/*
 * POST /v1/call/{service}, after msi_host_call_early passed it:
 *   duplicate-request cache (non-idempotent, with a request id): a cached reply, 422, 503
 *   full, 504 while the first attempt runs, or a new entry
 *   -> 400 arguments -> slot (429 queue full, 504 deadline passed while queued)
 *   -> the function runs -> 200, or 500 (ms_fail, or a result that cannot be encoded).
 * A refusal before the function runs drops the cache entry (dd_abort at `done`).
 */
void
msi_host_call_handler(msi_http_req *r, void *arg)
{
    (void)arg;
    ms__service *svc = msi_host.svc;
    int64_t deadline = msi_host_request_deadline(r); /* checked valid by msi_host_call_early */
    size_t len;
    const char *body = msi_http_body(r, &len);
    const char *rid = msi_http_header(r, "Ms-Request-Id");
    msi_trace trace;
    const msi_trace *tr =
        msi_trace_parse(msi_http_header(r, "traceparent"), &trace) == 0 ? &trace : NULL;
    msi_err err = {{0}};
    msi_scratch a_tmp, r_tmp; /* the argument struct and the result of common services */
    void *args = svc->args_size <= sizeof a_tmp ? (void *)&a_tmp : calloc(1, svc->args_size);
    size_t rsize = svc->result ? svc->result->size : 0;
    void *res = rsize <= sizeof r_tmp ? (void *)&r_tmp : calloc(1, rsize);
    int have_args = 0, have_slot = 0;
    msi_dd_entry *dd = NULL;
    if (!args || !res) {
        msi_host_call_refuse(r, MS_ENOMEM, "%s: out of memory", msi_host.service);
        goto done;
    }

    if (msi_host_dd && rid) {
        char *cached = NULL;
        size_t clen = 0;
        int cstatus = 0;
        msi_dd_req q = {.rid = rid, .deadline = deadline};
        const char *ack = msi_http_header(r, "Ms-Acked-Below");
        q.has_ack =
            ack && msi_dd_parse_ack(ack, &q.acked_below); /* checked by msi_host_call_early */
        msi_dd_body_hash(msi_host_dd, body, len, q.body_h);
        switch (msi_dd_begin(msi_host_dd, &q, &dd, &cstatus, &cached, &clen)) {
        case MSI_DD_RUN:
            break;
        case MSI_DD_CACHED:
            msi_host.dd_hits++;
            msi_log(3, "call %s request %s: answered from the duplicate-request cache",
                    msi_host.service, rid);
            msi_host_closing(r);
            msi_http_reply(r, cstatus, "application/json", cached, clen);
            free(cached);
            goto done;
        case MSI_DD_REUSED:
            msi_host_call_refuse(r, MS_EREUSED,
                                 "%s: request id %s was already used with another body",
                                 msi_host.service, rid);
            goto done;
        case MSI_DD_STALE:
            msi_host_call_refuse(
                r, MS_EREUSED,
                "%s: request id %s is below its caller's Ms-Acked-Below: the caller had "
                "finished with it; not run",
                msi_host.service, rid);
            goto done;
        case MSI_DD_FULL: {
            msi_dd_stats ds;
            msi_dd_get_stats(msi_host_dd, &ds);
            msi_host.dd_full++;
            msi_host.errors++;
            msi_host_closing(r);
            msi_http_reply_error_ex(r, 503, MS_EOVERLOADED, NULL,
                                    "%s: instance %s: duplicate-request cache full (%lld entries "
                                    "max, %lld bytes max): too many calls in flight or callers "
                                    "that do not send Ms-Acked-Below",
                                    msi_host.service, msi_host.instance, ds.max_entries,
                                    ds.max_bytes);
            goto done;
        }
        case MSI_DD_LATE:
            msi_host_call_refuse(
                r, MS_ETIMEDOUT,
                "%s: deadline passed while the first attempt of request %s was running",
                msi_host.service, rid);
            goto done;
        case MSI_DD_NOMEM:
            msi_host_call_refuse(r, MS_ENOMEM, "%s: out of memory", msi_host.service);
            goto done;
        }
    }

    /* The text lane reads the common cases; the tree reads the rest, and is the one that
     * says what is wrong (msi_codec_decode_args). */
    ms_status st = msi_codec_decode_args(svc, body, len, args, &err);
    if (st != MS_OK) {
        msi_host_call_refuse(r, st, "%s: %s", msi_host.service, err.msg);
        goto done;
    }
    have_args = 1;

    st = msi_host_slot_take(deadline);
    if (st == MS_EOVERLOADED) {
        msi_host_call_refuse(r, st, "%s: instance %s: queue full (%d running, %d queued)",
                             msi_host.service, msi_host.instance, msi_host.concurrency,
                             msi_host.queue_max);
        goto done;
    }
    if (st == MS_OK && msi_now_ms() >= deadline) {
        have_slot = 1;
        st = MS_ETIMEDOUT;
    }
    if (st != MS_OK) {
        msi_host_call_refuse(r, MS_ETIMEDOUT, "%s: deadline passed while queued", msi_host.service);
        goto done;
    }
    have_slot = 1;

    msi_log(3, "call %s request %s trace %s", msi_host.service, rid ? rid : "-", tr ? tr->id : "-");
    memset(res, 0, rsize ? rsize : 1);
    msi_next_rid = rid; /* for MS_METHOD: its write is recorded under the call's id */
    msi_next_acked_below = msi_http_header(r, "Ms-Acked-Below");
    st = msi_invoke_local(svc, args, rsize ? res : NULL, deadline, tr);
    msi_host.calls++;
    if (st == MS_EAPP) {
        msi_host.errors++;
        reply_kept(r, 500,
                   error_body(MS_EAPP,
                              json_pack("{s:i}", "app_code", (json_int_t)ms_last_app_code()),
                              app_message()),
                   &dd);
        goto done;
    }
    if (st != MS_OK) {
        msi_host.errors++;
        reply_kept(r, 500, error_body(st, NULL, ms_last_error()), &dd);
        goto done;
    }
    /* The result, into the thread's buffer: by the text lane, else through the tree (which
     * also reports a result that cannot be sent) (msi_codec_encode_result). */
    msi_buf *out = result_buf();
    st = out ? msi_codec_encode_result(svc, rsize ? res : NULL, out, &err)
             : msi_errf(&err, MS_ENOMEM, "out of memory");
    if (rsize)
        ms__free_value(svc->result, res);
    if (st != MS_OK) {
        char msg[MSI_ERR_MAX + MSI_NAME_MAX + 16];
        snprintf(msg, sizeof msg, "%s: result: %s", msi_host.service, err.msg);
        msi_host.errors++;
        reply_kept(r, 500, error_body(st, NULL, msg), &dd);
        goto done;
    }
    reply_text(r, 200, out->p, out->len, &dd);

done:
    if (dd)
        msi_dd_abort(msi_host_dd, dd); /* refused before it ran */
    if (have_slot)
        msi_host_slot_give();
    if (have_args)
        msi_free_args(svc, args);
    if (args && args != (void *)&a_tmp)
        free(args);
    if (res && res != (void *)&r_tmp)
        free(res);
}
