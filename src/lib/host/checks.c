/*
 * checks.c: the call route's early hook (msi_host_call_early): the checks made before the
 * body is read. Part of src/lib/host (host_int.h).
 *
 * Design notes
 * - Pre-execution checks run in the call route's early hook, before the body is read:
 *   401 credentials, 503 draining, 421 instance, 404 service, 412 signature, 400 malformed
 *   Ms-Request-Id, Ms-Acked-Below or Ms-Deadline-Ms, 504 deadline. Then the body: 413 (http.c); for
 * a service that is not idempotent the duplicate-request cache (dedupe.c: a kept reply, 422 same id
 * with another body or below the caller's acknowledgement, 503 cache full, 504 while waiting for
 * the first attempt); 400 bad JSON or arguments (naming the argument), 429 queue full, 504 deadline
 * passed while queued. Only then the function runs: 200, or 500 after ms_fail (with "app_code").
 * - Deadlines: Ms-Deadline-Ms is the caller's remaining budget, counted from the arrival of
 *   the headers (clocks need not agree); it is clamped to a day. A call whose deadline has
 *   passed is refused with 504 before it runs: in the early hook, and again after waiting
 *   for a slot.
 */
#include "host_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the call endpoint ---------------------------------------------------------------- */

/* The deadline a request carries: from Ms-Deadline-Ms counted from its arrival, else the
 * service's timeout. -1 when the header is malformed. */
int64_t
msi_host_request_deadline(const msi_http_req *r)
{
    const char *d = msi_http_header(r, "Ms-Deadline-Ms");
    int64_t budget = msi_host.rt->opts.timeout_ms > 0 ? msi_host.rt->opts.timeout_ms : 10000;
    if (d) {
        char *end;
        errno = 0;
        long long v = strtoll(d, &end, 10);
        if (errno || end == d || *end)
            return -1;
        budget = v;
    }
    if (budget <= 0)
        return 0;
    if (budget > MSI_DEADLINE_MAX_MS)
        budget = MSI_DEADLINE_MAX_MS;
    return msi_http_arrival_ms(r) + budget;
}

/* While draining, replies close their connection, so a client does not send its next call
 * on a connection that is about to go away (it would then not know whether it was read). */
void
msi_host_closing(msi_http_req *r)
{
    if (msi_host.draining)
        msi_http_add_header(r, "Connection", "close");
}

void
msi_host_call_refuse(msi_http_req *r, ms_status st, const char *fmt, ...)
{
    char msg[MSI_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    msi_host.errors++;
    msi_host_closing(r);
    msi_http_reply_error(r, st, "%s", msg);
}

/* ---- credentials (docs/protocol.md, "Credentials") -------------------------------------
 * A call needs the call token or the admin token; a drain (a retirement, like msctl drain)
 * needs the admin token. The instance holds the call token and only the SHA-256 of the admin
 * token (msd passes MS_ADMIN_TOKEN_SHA256), so a compromised instance learns nothing it
 * could deploy with. An instance given neither (started by hand) checks nothing. */

int
msi_host_auth_configured(void)
{
    return msi_host.call_token || msi_host.admin_sha256[0];
}

/* What the request's bearer token is. The call token is tried first: a call carrying it (the
 * common case) costs no hash. Both comparisons are constant time in the expected values. */
bearer_kind
msi_host_bearer_of_req(const msi_http_req *r)
{
    if (msi_host.call_token && msi_http_bearer_ok(r, &msi_host.call_token, 1))
        return B_CALL;
    if (msi_host.admin_sha256[0] && msi_http_bearer_sha256_ok(r, msi_host.admin_sha256))
        return B_ADMIN;
    return B_NONE;
}

/* Pre-execution checks on the headers (http.h's early hook). */
void
msi_host_call_early(msi_http_req *r, void *arg)
{
    (void)arg;
    if (msi_host_auth_configured() && msi_host_bearer_of_req(r) == B_NONE) {
        msi_host_call_refuse(r, MS_EAUTH,
                             "%s: missing or bad token (a call needs the call token or the "
                             "admin token)",
                             msi_host.instance[0] ? msi_host.instance : msi_host.service);
        return;
    }
    if (msi_host.draining) {
        msi_host_call_refuse(r, MS_EDRAINING, "instance %s of %s is draining", msi_host.instance,
                             msi_host.service);
        return;
    }
    /* The instance before the service: a client whose list is stale (the address now
     * belongs to another instance, maybe of another service) learns that it is stale. */
    const char *inst = msi_http_header(r, "Ms-Instance");
    if (inst && msi_host.id[0] && strcmp(inst, msi_host.instance) != 0) {
        msi_host_call_refuse(r, MS_EWRONGINSTANCE, "this is instance %s, not %s", msi_host.instance,
                             inst);
        return;
    }
    const char *name = msi_http_rest(r);
    if (strcmp(name, msi_host.service) != 0) {
        msi_host_call_refuse(r, MS_ENOTFOUND, "this instance serves '%s', not '%s'",
                             msi_host.service, name);
        return;
    }
    const char *sig = msi_http_header(r, "Ms-Signature");
    if (sig && strcmp(sig, msi_host.rt->sig) != 0) {
        msi_host_call_refuse(r, MS_ESIGNATURE,
                             "%s: signature %s does not match this instance's %s (%s)",
                             msi_host.service, sig, msi_host.rt->sig, msi_host.rt->sigtext);
        return;
    }
    const char *rid = msi_http_header(r, "Ms-Request-Id");
    if (rid && !msi_dd_rid_ok(rid)) {
        msi_host_call_refuse(r, MS_EBADARGS, "bad Ms-Request-Id header: 1 to %d of [A-Za-z0-9._-]",
                             MSI_RID_MAX);
        return;
    }
    const char *ack = msi_http_header(r, "Ms-Acked-Below");
    if (ack) {
        uint64_t below, seq;
        size_t clen;
        if (!msi_dd_parse_ack(ack, &below)) {
            msi_host_call_refuse(r, MS_EBADARGS,
                                 "bad Ms-Acked-Below header: 1 to 19 decimal digits");
            return;
        }
        if (!rid || !msi_dd_rid_seq(rid, &clen, &seq)) {
            msi_host_call_refuse(
                r, MS_EBADARGS,
                "Ms-Acked-Below needs an Ms-Request-Id of the form <caller>-<sequence>");
            return;
        }
        if (below > seq) {
            msi_host_call_refuse(
                r, MS_EBADARGS, "Ms-Acked-Below %s is above the request's own sequence number %llu",
                ack, (unsigned long long)seq);
            return;
        }
    }
    int64_t dl = msi_host_request_deadline(r);
    if (dl < 0)
        msi_host_call_refuse(r, MS_EBADARGS, "bad Ms-Deadline-Ms header");
    else if (dl <= msi_now_ms())
        msi_host_call_refuse(r, MS_ETIMEDOUT, "%s: deadline passed before the call started",
                             msi_host.service);
}

/* The message of an MS_EAPP without the "service: " prefix msi_invoke_local adds. */
