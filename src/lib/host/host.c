/*
 * host.c: the instance host. A program started with MS_SERVE=<service> serves that one
 * service over HTTP (docs/protocol.md, "Instance") until it is drained, then exits.
 * Also MS_DESCRIBE=1 (msi_describe_main).
 *
 * Design notes
 * - Threads. The HTTP server runs one thread per connection (http.h) and a call runs on
 *   the thread of its connection. `concurrency` bounds calls running at once with a counting
 *   slot (mutex + condvar); callers beyond it wait in a bounded queue (429 past it) until a
 *   slot frees or their deadline passes (504). Health, readiness, drain and metrics never
 *   take a slot, so a probe is answered while every slot is busy. One more thread sends the
 *   heartbeats; the main thread (the one that called ms_init) waits for the end and
 *   carries out the drain.
 * - Pre-execution checks run in the call route's early hook, before the body is read:
 *   401 credentials, 503 draining, 421 instance, 404 service, 412 signature, 400 malformed
 *   Ms-Request-Id, Ms-Acked-Below or Ms-Deadline-Ms, 504 deadline. Then the body: 413 (http.c); for
 * a service that is not idempotent the duplicate-request cache (dedupe.c: a kept reply, 422 same id
 * with another body or below the caller's acknowledgement, 503 cache full, 504 while waiting for
 * the first attempt); 400 bad JSON or arguments (naming the argument), 429 queue full, 504 deadline
 * passed while queued. Only then the function runs: 200, or 500 after ms_fail (with "app_code").
 * - Demand: `level` = calls running + calls queued, integrated over time (level_us); a
 *   heartbeat reports the increase since the previous one divided by wall time and
 *   concurrency, which is DESIGN section 5's busy fraction (it can exceed 1 when calls
 *   queue). CPU is getrusage's user + system time over wall time.
 * - Nested calls made by the service go through the client (client.c) started without a
 *   private msd; they inherit the call's deadline and trace id from the per-thread context
 *   (msi_invoke_local gets the deadline of Ms-Deadline-Ms and the parsed `traceparent`).
 * - Deadlines: Ms-Deadline-Ms is the caller's remaining budget, counted from the arrival of
 *   the headers (clocks need not agree); it is clamped to a day. A call whose deadline has
 *   passed is refused with 504 before it runs: in the early hook, and again after waiting
 *   for a slot.
 * - At-most-once (non-idempotent services only): the duplicate-request cache (dedupe.c),
 *   fed each request's Ms-Request-Id, Ms-Acked-Below and body hash.
 * - Process-wide effects: SIGTERM and SIGINT start the drain (a handler that writes to a
 *   pipe; no signal mask, so children of the service inherit nothing odd); SIGPIPE is
 *   ignored. The MS_* instance variables are removed from the environment before the
 *   service can run. MS_QUEUE_MAX overrides the queue bound (default max(16,
 *   4 x concurrency)).
 *
 * Lifecycle (main thread, host_run):
 *
 *   SERVING --POST /v1/drain, SIGTERM/SIGINT, heartbeat 410, orphaned--> DRAINING
 *   DRAINING: no new calls (503 + Retry-After), listener closed (msi_http_quiesce),
 *             heartbeats go on with "draining":true
 *   DRAINING --in-flight and queued calls done, replies sent--> exit 0   (begin_drain,
 *                                                                        wait_idle)
 *   DRAINING --grace (timeout_ms + 1 s) over--> exit 1 without waiting for the stragglers
 *
 *   ms_cancelled() turns true for running calls one second before the grace ends.
 */
#include "codec.h"
#include "dedupe.h"
#include "http.h"
#include "httpc.h"
#include "msi.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define CALL_MAX_BODY (16u << 20)
#define OTHER_MAX_BODY (64u << 10)
#define HB_FIRST_MS 250
#define HB_STEADY_MS 1000
#define HB_TIMEOUT_MS 1000
#define ORPHAN_DEFAULT_MS 30000
#define LISTEN_FDS_START 3
#define DEDUPE_ENTRIES_DEFAULT 65536
#define DEDUPE_BYTES_DEFAULT (64LL << 20)

typedef enum exit_reason {
    R_NONE = 0,
    R_DRAIN,  /* POST /v1/drain */
    R_SIGNAL, /* SIGTERM / SIGINT */
    R_GONE,   /* msd answered 410 */
    R_ORPHAN, /* no orchestrator answered for orphan_ms */
} exit_reason;

typedef struct host {
    ms__service *svc;
    msi_svc *rt;
    char service[MSI_NAME_MAX];
    char id[64]; /* MS_INSTANCE_ID, "" when not started by msd */
    long long epoch;
    char instance[96];      /* "<id>.<epoch>", what Ms-Instance must name */
    char *inst_token;       /* heartbeat token */
    const char *call_token; /* msi_token: calls must carry it or the admin token */
    char admin_sha256[65];  /* MS_ADMIN_TOKEN_SHA256: the admin token's hash ("": none) */
    int64_t orphan_ms;
    msi_http *srv;

    /* Call slots and demand, guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t slot_cv; /* a slot freed */
    pthread_cond_t idle_cv; /* inflight + queued reached 0 */
    int concurrency, queue_max;
    int inflight, queued;
    int64_t level_since_us;
    double level_us; /* integral of (inflight + queued) dt, in µs */
    /* Counters (atomics: read by metrics and heartbeat without mu). */
    _Atomic unsigned long long calls, errors;
    _Atomic int draining;
    _Atomic int reason; /* exit_reason */
    _Atomic int cancel_now;

    /* Wake-up pipe of the main thread: signal handler, drain handler, heartbeat. */
    int wake[2];

    /* Heartbeat thread. */
    pthread_t hb;
    int hb_started;
    pthread_mutex_t hb_mu;
    pthread_cond_t hb_cv;
    int hb_stop;
    /* Metrics window (guarded by mu). */
    int64_t m_last_us;
    double m_last_level_us;
    /* Duplicate-request cache counters (atomics, for metrics). */
    _Atomic unsigned long long dd_hits, dd_full;
} host;

static long long parse_ll(const char *s, long long dflt);

static host H = {
    .mu = PTHREAD_MUTEX_INITIALIZER, .hb_mu = PTHREAD_MUTEX_INITIALIZER, .wake = {-1, -1}};

static int64_t
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
abs_time(int64_t deadline_ms, struct timespec *ts)
{
    ts->tv_sec = (time_t)(deadline_ms / 1000);
    ts->tv_nsec = (long)(deadline_ms % 1000) * 1000000;
}

static void
cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

static void
wake_main(exit_reason r)
{
    int expected = R_NONE;
    atomic_compare_exchange_strong(&H.reason, &expected, (int)r);
    if (H.wake[1] >= 0) {
        ssize_t n = write(H.wake[1], "x", 1);
        (void)n;
    }
}

static void
on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    wake_main(R_SIGNAL);
    errno = saved;
}

/* ---- call slots ----------------------------------------------------------------------- */

/* Adds the time since the last change at the current level; mu held. */
static void
level_tick(void)
{
    int64_t t = now_us();
    H.level_us += (double)(H.inflight + H.queued) * (double)(t - H.level_since_us);
    H.level_since_us = t;
}

/* Takes a call slot, waiting in the queue until deadline_ms. MS_OK, MS_EOVERLOADED (queue
 * full) or MS_ETIMEDOUT. */
static ms_status
slot_take(int64_t deadline_ms)
{
    ms_status st = MS_OK;
    pthread_mutex_lock(&H.mu);
    level_tick();
    if (H.inflight < H.concurrency && H.queued == 0) {
        H.inflight++;
        goto out;
    }
    if (H.queued >= H.queue_max) {
        st = MS_EOVERLOADED;
        goto out;
    }
    H.queued++;
    while (H.inflight >= H.concurrency) {
        if (deadline_ms != INT64_MAX && msi_now_ms() >= deadline_ms) {
            st = MS_ETIMEDOUT;
            break;
        }
        if (deadline_ms == INT64_MAX) {
            pthread_cond_wait(&H.slot_cv, &H.mu);
        } else {
            struct timespec ts;
            abs_time(deadline_ms, &ts);
            pthread_cond_timedwait(&H.slot_cv, &H.mu, &ts);
        }
    }
    level_tick();
    H.queued--;
    if (st == MS_OK)
        H.inflight++;
    else if (H.inflight + H.queued == 0)
        pthread_cond_broadcast(&H.idle_cv);
out:
    pthread_mutex_unlock(&H.mu);
    return st;
}

static void
slot_give(void)
{
    pthread_mutex_lock(&H.mu);
    level_tick();
    H.inflight--;
    if (H.queued)
        pthread_cond_signal(&H.slot_cv);
    if (H.inflight + H.queued == 0)
        pthread_cond_broadcast(&H.idle_cv);
    pthread_mutex_unlock(&H.mu);
}

/* ---- duplicate-request cache (dedupe.c) ----------------------------------------------- */

/* The cache of a host serving a service that is not idempotent; NULL otherwise (or when out
 * of memory at start, then logged). Made before serving starts, freed after it stopped. */
static msi_dd *DD;

static void
dd_init(void)
{
    long long entries = parse_ll(getenv("MS_DEDUPE_MAX_ENTRIES"), DEDUPE_ENTRIES_DEFAULT);
    long long bytes = parse_ll(getenv("MS_DEDUPE_MAX_BYTES"), DEDUPE_BYTES_DEFAULT);
    DD = msi_dd_new(entries > 0 ? entries : DEDUPE_ENTRIES_DEFAULT,
                    bytes > 0 ? bytes : DEDUPE_BYTES_DEFAULT);
    if (!DD)
        msi_log(0, "no memory for the duplicate-request cache: calls are not deduplicated");
}

static void
dd_free(void)
{
    msi_dd_free(DD);
    DD = NULL;
}

/* ---- the call endpoint ---------------------------------------------------------------- */

/* The deadline a request carries: from Ms-Deadline-Ms counted from its arrival, else the
 * service's timeout. -1 when the header is malformed. */
static int64_t
request_deadline(const msi_http_req *r)
{
    const char *d = msi_http_header(r, "Ms-Deadline-Ms");
    int64_t budget = H.rt->opts.timeout_ms > 0 ? H.rt->opts.timeout_ms : 10000;
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
static void
closing(msi_http_req *r)
{
    if (H.draining)
        msi_http_add_header(r, "Connection", "close");
}

static void call_refuse(msi_http_req *r, ms_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
call_refuse(msi_http_req *r, ms_status st, const char *fmt, ...)
{
    char msg[MSI_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    H.errors++;
    closing(r);
    msi_http_reply_error(r, st, "%s", msg);
}

/* ---- credentials (docs/protocol.md, "Credentials") -------------------------------------
 * A call needs the call token or the admin token; a drain (a retirement, like msctl drain)
 * needs the admin token. The instance holds the call token and only the SHA-256 of the admin
 * token (msd passes MS_ADMIN_TOKEN_SHA256), so a compromised instance learns nothing it
 * could deploy with. An instance given neither (started by hand) checks nothing. */

typedef enum bearer_kind { B_NONE, B_CALL, B_ADMIN } bearer_kind;

static int
auth_configured(void)
{
    return H.call_token || H.admin_sha256[0];
}

/* What the request's bearer token is. The call token is tried first: a call carrying it (the
 * common case) costs no hash. Both comparisons are constant time in the expected values. */
static bearer_kind
bearer_of_req(const msi_http_req *r)
{
    if (H.call_token && msi_http_bearer_ok(r, &H.call_token, 1))
        return B_CALL;
    if (H.admin_sha256[0] && msi_http_bearer_sha256_ok(r, H.admin_sha256))
        return B_ADMIN;
    return B_NONE;
}

/* Pre-execution checks on the headers (http.h's early hook). */
static void
call_early(msi_http_req *r, void *arg)
{
    (void)arg;
    if (auth_configured() && bearer_of_req(r) == B_NONE) {
        call_refuse(r, MS_EAUTH,
                    "%s: missing or bad token (a call needs the call token or the "
                    "admin token)",
                    H.instance[0] ? H.instance : H.service);
        return;
    }
    if (H.draining) {
        call_refuse(r, MS_EDRAINING, "instance %s of %s is draining", H.instance, H.service);
        return;
    }
    /* The instance before the service: a client whose list is stale (the address now
     * belongs to another instance, maybe of another service) learns that it is stale. */
    const char *inst = msi_http_header(r, "Ms-Instance");
    if (inst && H.id[0] && strcmp(inst, H.instance) != 0) {
        call_refuse(r, MS_EWRONGINSTANCE, "this is instance %s, not %s", H.instance, inst);
        return;
    }
    const char *name = msi_http_rest(r);
    if (strcmp(name, H.service) != 0) {
        call_refuse(r, MS_ENOTFOUND, "this instance serves '%s', not '%s'", H.service, name);
        return;
    }
    const char *sig = msi_http_header(r, "Ms-Signature");
    if (sig && strcmp(sig, H.rt->sig) != 0) {
        call_refuse(r, MS_ESIGNATURE, "%s: signature %s does not match this instance's %s (%s)",
                    H.service, sig, H.rt->sig, H.rt->sigtext);
        return;
    }
    const char *rid = msi_http_header(r, "Ms-Request-Id");
    if (rid && !msi_dd_rid_ok(rid)) {
        call_refuse(r, MS_EBADARGS, "bad Ms-Request-Id header: 1 to %d of [A-Za-z0-9._-]",
                    MSI_RID_MAX);
        return;
    }
    const char *ack = msi_http_header(r, "Ms-Acked-Below");
    if (ack) {
        uint64_t below, seq;
        size_t clen;
        if (!msi_dd_parse_ack(ack, &below)) {
            call_refuse(r, MS_EBADARGS, "bad Ms-Acked-Below header: 1 to 19 decimal digits");
            return;
        }
        if (!rid || !msi_dd_rid_seq(rid, &clen, &seq)) {
            call_refuse(r, MS_EBADARGS,
                        "Ms-Acked-Below needs an Ms-Request-Id of the form <caller>-<sequence>");
            return;
        }
        if (below > seq) {
            call_refuse(r, MS_EBADARGS,
                        "Ms-Acked-Below %s is above the request's own sequence number %llu", ack,
                        (unsigned long long)seq);
            return;
        }
    }
    int64_t dl = request_deadline(r);
    if (dl < 0)
        call_refuse(r, MS_EBADARGS, "bad Ms-Deadline-Ms header");
    else if (dl <= msi_now_ms())
        call_refuse(r, MS_ETIMEDOUT, "%s: deadline passed before the call started", H.service);
}

/* The message of an MS_EAPP without the "service: " prefix msi_invoke_local adds. */
static const char *
app_message(void)
{
    const char *m = ms_last_error();
    size_t n = strlen(H.svc->name);
    if (strncmp(m, H.svc->name, n) == 0 && m[n] == ':' && m[n + 1] == ' ')
        return m + n + 2;
    return m;
}

/* Sends a reply of `len` bytes of JSON text, keeping it for duplicates when `dd` is set. */
static void
reply_text(msi_http_req *r, int status, const char *t, size_t len, msi_dd_entry **dd)
{
    if (*dd) {
        msi_dd_finish(DD, *dd, status, t, len);
        *dd = NULL;
    }
    closing(r);
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
 * POST /v1/call/{service}, after call_early passed it:
 *   duplicate-request cache (non-idempotent, with a request id): a cached reply, 422, 503
 *   full, 504 while the first attempt runs, or a new entry
 *   -> 400 arguments -> slot (429 queue full, 504 deadline passed while queued)
 *   -> the function runs -> 200, or 500 (ms_fail, or a result that cannot be encoded).
 * A refusal before the function runs drops the cache entry (dd_abort at `done`).
 */
static void
call_handler(msi_http_req *r, void *arg)
{
    (void)arg;
    ms__service *svc = H.svc;
    int64_t deadline = request_deadline(r); /* checked valid by call_early */
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
        call_refuse(r, MS_ENOMEM, "%s: out of memory", H.service);
        goto done;
    }

    if (DD && rid) {
        char *cached = NULL;
        size_t clen = 0;
        int cstatus = 0;
        msi_dd_req q = {.rid = rid, .deadline = deadline};
        const char *ack = msi_http_header(r, "Ms-Acked-Below");
        q.has_ack = ack && msi_dd_parse_ack(ack, &q.acked_below); /* checked by call_early */
        msi_dd_body_hash(DD, body, len, q.body_h);
        switch (msi_dd_begin(DD, &q, &dd, &cstatus, &cached, &clen)) {
        case MSI_DD_RUN:
            break;
        case MSI_DD_CACHED:
            H.dd_hits++;
            msi_log(3, "call %s request %s: answered from the duplicate-request cache", H.service,
                    rid);
            closing(r);
            msi_http_reply(r, cstatus, "application/json", cached, clen);
            free(cached);
            goto done;
        case MSI_DD_REUSED:
            call_refuse(r, MS_EREUSED, "%s: request id %s was already used with another body",
                        H.service, rid);
            goto done;
        case MSI_DD_STALE:
            call_refuse(r, MS_EREUSED,
                        "%s: request id %s is below its caller's Ms-Acked-Below: the caller had "
                        "finished with it; not run",
                        H.service, rid);
            goto done;
        case MSI_DD_FULL: {
            msi_dd_stats ds;
            msi_dd_get_stats(DD, &ds);
            H.dd_full++;
            H.errors++;
            closing(r);
            msi_http_reply_error_ex(r, 503, MS_EOVERLOADED, NULL,
                                    "%s: instance %s: duplicate-request cache full (%lld entries "
                                    "max, %lld bytes max): too many calls in flight or callers "
                                    "that do not send Ms-Acked-Below",
                                    H.service, H.instance, ds.max_entries, ds.max_bytes);
            goto done;
        }
        case MSI_DD_LATE:
            call_refuse(r, MS_ETIMEDOUT,
                        "%s: deadline passed while the first attempt of request %s was running",
                        H.service, rid);
            goto done;
        case MSI_DD_NOMEM:
            call_refuse(r, MS_ENOMEM, "%s: out of memory", H.service);
            goto done;
        }
    }

    /* The text lane reads the common cases; the tree reads the rest, and is the one that
     * says what is wrong (msi_codec_decode_args). */
    ms_status st = msi_codec_decode_args(svc, body, len, args, &err);
    if (st != MS_OK) {
        call_refuse(r, st, "%s: %s", H.service, err.msg);
        goto done;
    }
    have_args = 1;

    st = slot_take(deadline);
    if (st == MS_EOVERLOADED) {
        call_refuse(r, st, "%s: instance %s: queue full (%d running, %d queued)", H.service,
                    H.instance, H.concurrency, H.queue_max);
        goto done;
    }
    if (st == MS_OK && msi_now_ms() >= deadline) {
        have_slot = 1;
        st = MS_ETIMEDOUT;
    }
    if (st != MS_OK) {
        call_refuse(r, MS_ETIMEDOUT, "%s: deadline passed while queued", H.service);
        goto done;
    }
    have_slot = 1;

    msi_log(3, "call %s request %s trace %s", H.service, rid ? rid : "-", tr ? tr->id : "-");
    memset(res, 0, rsize ? rsize : 1);
    st = msi_invoke_local(svc, args, rsize ? res : NULL, deadline, tr);
    H.calls++;
    if (st == MS_EAPP) {
        H.errors++;
        reply_kept(r, 500,
                   error_body(MS_EAPP,
                              json_pack("{s:i}", "app_code", (json_int_t)ms_last_app_code()),
                              app_message()),
                   &dd);
        goto done;
    }
    if (st != MS_OK) {
        H.errors++;
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
        snprintf(msg, sizeof msg, "%s: result: %s", H.service, err.msg);
        H.errors++;
        reply_kept(r, 500, error_body(st, NULL, msg), &dd);
        goto done;
    }
    reply_text(r, 200, out->p, out->len, &dd);

done:
    if (dd)
        msi_dd_abort(DD, dd); /* refused before it ran */
    if (have_slot)
        slot_give();
    if (have_args)
        msi_free_args(svc, args);
    if (args && args != (void *)&a_tmp)
        free(args);
    if (res && res != (void *)&r_tmp)
        free(res);
}

/* ---- health, readiness, drain, metrics ------------------------------------------------ */

static void
health_handler(msi_http_req *r, void *arg)
{
    (void)arg;
    msi_http_reply_json(r, 200,
                        json_pack("{s:s,s:s,s:I,s:s}", "status", "ok", "id", H.id, "epoch",
                                  (json_int_t)H.epoch, "service", H.service));
}

static void
ready_handler(msi_http_req *r, void *arg)
{
    (void)arg;
    int ready = !H.draining;
    msi_http_reply_json(r, ready ? 200 : 503, json_pack("{s:b}", "ready", ready));
}

static void
drain_handler(msi_http_req *r, void *arg)
{
    (void)arg;
    /* Without an admin hash (an instance not started by msd) no token drains it: stop it
     * with SIGTERM. Without any credentials it checks nothing, like its calls. */
    bearer_kind b = auth_configured() ? bearer_of_req(r) : B_ADMIN;
    if (b == B_CALL) {
        msi_http_reply_error(r, MS_EFORBIDDEN,
                             "drain retires the instance: it needs the admin token (msctl drain), "
                             "not the call token");
        return;
    }
    if (b == B_NONE) {
        msi_http_reply_error(r, MS_EAUTH, "drain needs the admin token (missing or bad token)");
        return;
    }
    H.draining = 1;
    wake_main(R_DRAIN);
    pthread_mutex_lock(&H.mu);
    int inflight = H.inflight + H.queued;
    pthread_mutex_unlock(&H.mu);
    msi_http_reply_json(r, 200, json_pack("{s:b,s:i}", "draining", 1, "inflight", inflight));
}

static double
cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void
metrics_handler(msi_http_req *r, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&H.mu);
    level_tick();
    int inflight = H.inflight, queued = H.queued;
    int64_t t = now_us();
    double busy = t > H.m_last_us
                      ? (H.level_us - H.m_last_level_us) / (double)(t - H.m_last_us) / H.concurrency
                      : 0;
    double busy_total_s = H.level_us / 1e6 / H.concurrency;
    H.m_last_us = t;
    H.m_last_level_us = H.level_us;
    pthread_mutex_unlock(&H.mu);

    msi_dd_stats ds = {0};
    if (DD)
        msi_dd_get_stats(DD, &ds);

    char text[8192];
    const char *s = H.service;
    int n = snprintf(
        text, sizeof text,
        "# HELP ms_calls_total Calls this instance ran.\n# TYPE ms_calls_total counter\n"
        "ms_calls_total{service=\"%s\"} %llu\n"
        "# HELP ms_call_errors_total Calls answered with an error.\n"
        "# TYPE ms_call_errors_total counter\nms_call_errors_total{service=\"%s\"} %llu\n"
        "# HELP ms_inflight Calls running now.\n# TYPE ms_inflight gauge\n"
        "ms_inflight{service=\"%s\"} %d\n"
        "# HELP ms_queued Calls waiting for a slot.\n# TYPE ms_queued gauge\n"
        "ms_queued{service=\"%s\"} %d\n"
        "# HELP ms_busy_ratio Demand (running + queued) / concurrency since the last scrape.\n"
        "# TYPE ms_busy_ratio gauge\nms_busy_ratio{service=\"%s\"} %.6f\n"
        "# HELP ms_busy_seconds_total Integral of demand / concurrency.\n"
        "# TYPE ms_busy_seconds_total counter\nms_busy_seconds_total{service=\"%s\"} %.6f\n"
        "# HELP ms_cpu_seconds_total CPU time of this process.\n"
        "# TYPE ms_cpu_seconds_total counter\nms_cpu_seconds_total{service=\"%s\"} %.6f\n",
        s, (unsigned long long)H.calls, s, (unsigned long long)H.errors, s, inflight, s, queued, s,
        busy, s, busy_total_s, s, cpu_seconds());
    if (n < 0 || (size_t)n >= sizeof text)
        n = (int)strlen(text);
    /* The duplicate-request cache (all zero for an idempotent service, which has none). */
    int m = snprintf(
        text + n, sizeof text - (size_t)n,
        "# HELP ms_dedupe_entries Entries in the duplicate-request cache.\n"
        "# TYPE ms_dedupe_entries gauge\nms_dedupe_entries{service=\"%s\"} %lld\n"
        "# HELP ms_dedupe_entries_peak Most entries the cache has held at once.\n"
        "# TYPE ms_dedupe_entries_peak gauge\nms_dedupe_entries_peak{service=\"%s\"} %lld\n"
        "# HELP ms_dedupe_callers Callers whose acknowledgements the cache keeps.\n"
        "# TYPE ms_dedupe_callers gauge\nms_dedupe_callers{service=\"%s\"} %lld\n"
        "# HELP ms_dedupe_bytes Bytes of entries, callers and kept replies.\n"
        "# TYPE ms_dedupe_bytes gauge\nms_dedupe_bytes{service=\"%s\"} %lld\n"
        "# HELP ms_dedupe_hits_total Retries answered from the duplicate-request cache.\n"
        "# TYPE ms_dedupe_hits_total counter\nms_dedupe_hits_total{service=\"%s\"} %llu\n"
        "# HELP ms_dedupe_acked_total Entries dropped by their caller's Ms-Acked-Below.\n"
        "# TYPE ms_dedupe_acked_total counter\nms_dedupe_acked_total{service=\"%s\"} %llu\n"
        "# HELP ms_dedupe_expired_total Entries dropped at their deadline + 1 s.\n"
        "# TYPE ms_dedupe_expired_total counter\nms_dedupe_expired_total{service=\"%s\"} "
        "%llu\n"
        "# HELP ms_dedupe_stale_total Requests refused as below their caller's Ms-Acked-Below.\n"
        "# TYPE ms_dedupe_stale_total counter\nms_dedupe_stale_total{service=\"%s\"} %llu\n"
        "# HELP ms_dedupe_full_total Calls refused because the cache was full.\n"
        "# TYPE ms_dedupe_full_total counter\nms_dedupe_full_total{service=\"%s\"} %llu\n",
        s, ds.entries, s, ds.entries_peak, s, ds.callers, s, ds.bytes, s,
        (unsigned long long)H.dd_hits, s, ds.acked_total, s, ds.expired_total, s, ds.stale_total, s,
        (unsigned long long)H.dd_full);
    if (m < 0 || (size_t)m >= sizeof text - (size_t)n)
        m = (int)strlen(text + n);
    n += m;
    msi_http_reply(r, 200, "text/plain; version=0.0.4", text, (size_t)n);
}

/* ---- heartbeat ------------------------------------------------------------------------ */

typedef struct hb_state {
    int64_t t_us;
    double level_us;
    double cpu_s;
} hb_state;

static json_t *
hb_body(hb_state *prev)
{
    pthread_mutex_lock(&H.mu);
    level_tick();
    int64_t t = now_us();
    double busy = t > prev->t_us
                      ? (H.level_us - prev->level_us) / (double)(t - prev->t_us) / H.concurrency
                      : 0;
    int inflight = H.inflight, queued = H.queued;
    prev->level_us = H.level_us;
    pthread_mutex_unlock(&H.mu);
    double cpu_s = cpu_seconds();
    double cpu = t > prev->t_us ? (cpu_s - prev->cpu_s) / ((double)(t - prev->t_us) / 1e6) : 0;
    prev->t_us = t;
    prev->cpu_s = cpu_s;
    return json_pack("{s:I,s:I,s:s,s:s,s:s,s:f,s:f,s:i,s:i,s:I,s:b}", "epoch", (json_int_t)H.epoch,
                     "pid", (json_int_t)getpid(), "addr", msi_http_addr(H.srv), "service",
                     H.service, "signature", H.rt->sig, "busy", busy, "cpu", cpu, "inflight",
                     inflight, "queued", queued, "calls", (json_int_t)H.calls, "draining",
                     (int)H.draining);
}

/* Waits up to ms on the heartbeat condvar; 1 when asked to stop. */
static int
hb_wait(int64_t ms)
{
    struct timespec ts;
    abs_time(msi_now_ms() + ms, &ts);
    pthread_mutex_lock(&H.hb_mu);
    while (!H.hb_stop) {
        if (pthread_cond_timedwait(&H.hb_cv, &H.hb_mu, &ts) == ETIMEDOUT)
            break;
    }
    int stop = H.hb_stop;
    pthread_mutex_unlock(&H.hb_mu);
    return stop;
}

static void *
hb_main(void *arg)
{
    (void)arg;
    char *list = strdup(msi_orchestrators);
    char *orch[8];
    int norch = 0;
    for (char *p = list; p && *p && norch < 8;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (*p)
            orch[norch++] = p;
        p = comma ? comma + 1 : NULL;
    }
    int cur = 0;
    int64_t interval = HB_FIRST_MS, last_ok = msi_now_ms();
    int warned = 0;
    hb_state prev = {now_us(), 0, cpu_seconds()};
    pthread_mutex_lock(&H.mu);
    prev.level_us = H.level_us;
    pthread_mutex_unlock(&H.mu);

    while (norch) {
        json_t *body = hb_body(&prev);
        int answered = 0;
        for (int k = 0; k < norch && !answered; k++) {
            int i = (cur + k) % norch;
            char url[512];
            snprintf(url, sizeof url, "http://%s/v1/instances/%s/heartbeat", orch[i], H.id);
            msi_httpc_req rq = {0};
            rq.url = url;
            rq.bearer = H.inst_token;
            rq.deadline_ms = msi_now_ms() + HB_TIMEOUT_MS;
            msi_httpc_resp rs;
            json_t *out = NULL;
            msi_err err = {{0}};
            ms_status st = msi_httpc_json(&rq, body, &rs, &out, &err);
            json_decref(out);
            if (st != MS_OK) {
                if (!warned++)
                    msi_log(1, "heartbeat to %s failed: %s", orch[i], err.msg);
                continue;
            }
            cur = i;
            if (rs.status == 410) {
                msi_log(1, "msd at %s does not know instance %s: exiting", orch[i], H.instance);
                wake_main(R_GONE);
                answered = -1;
                break;
            }
            if (rs.status >= 200 && rs.status < 300) {
                answered = 1;
                last_ok = msi_now_ms();
                interval = HB_STEADY_MS;
                warned = 0;
            } else {
                char buf[256];
                if (!warned++)
                    msi_log(1, "heartbeat to %s refused: %s", orch[i],
                            msi_httpc_error_text(&rs, buf, sizeof buf));
            }
        }
        json_decref(body);
        if (answered < 0)
            break;
        if (!answered && msi_now_ms() - last_ok >= H.orphan_ms) {
            msi_log(0, "instance %s of %s: no orchestrator answered for %lld ms: exiting",
                    H.instance, H.service, (long long)(msi_now_ms() - last_ok));
            wake_main(R_ORPHAN);
            break;
        }
        if (hb_wait(interval))
            break;
    }
    free(list);
    msi_httpc_thread_release();
    return NULL;
}

static void
hb_stop(void)
{
    if (!H.hb_started)
        return;
    pthread_mutex_lock(&H.hb_mu);
    H.hb_stop = 1;
    pthread_cond_signal(&H.hb_cv);
    pthread_mutex_unlock(&H.hb_mu);
    pthread_join(H.hb, NULL);
    H.hb_started = 0;
}

/* ---- set-up and the main thread ------------------------------------------------------- */

static const msi_http_route routes[] = {
    {"POST", "/v1/call/", call_handler, NULL, CALL_MAX_BODY, call_early},
    {"GET", "/v1/health", health_handler, NULL, 0, NULL},
    {"GET", "/v1/ready", ready_handler, NULL, 0, NULL},
    {"POST", "/v1/drain", drain_handler, NULL, 0, NULL},
    {"GET", "/metrics", metrics_handler, NULL, 0, NULL},
};

/* Copies a variable's value (or "") and removes it from the environment. */
static void
take_env(const char *name, char *out, size_t size)
{
    const char *v = getenv(name);
    snprintf(out, size, "%s", v ? v : "");
    unsetenv(name);
}

/* 64 hex digits into out, in lowercase (msi_sha256_hex's form): 0, or -1. */
static int
parse_sha256_hex(const char *s, char out[65])
{
    for (int i = 0; i < 64; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            out[0] = '\0';
            return -1;
        }
        out[i] = c;
    }
    out[64] = '\0';
    if (s[64]) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

static long long
parse_ll(const char *s, long long dflt)
{
    if (!s || !*s)
        return dflt;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    return errno || *end ? dflt : v;
}

/* The socket to serve: fd 3 handed over (LISTEN_FDS), else MS_LISTEN, else 127.0.0.1:0. */
static void
pick_listener(msi_http_config *cfg, const char *fds, const char *pid, const char *listen_at,
              char *buf, size_t size)
{
    if (fds[0] && parse_ll(fds, 0) >= 1 && parse_ll(pid, -1) == (long long)getpid()) {
        cfg->listen_fd = LISTEN_FDS_START;
        return;
    }
    if (fds[0])
        msi_log(1, "LISTEN_FDS is set but LISTEN_PID is not this process: ignored");
    snprintf(buf, size, "%s", listen_at[0] ? listen_at : "127.0.0.1:0");
    cfg->host_port = buf;
}

static void
begin_drain(void)
{
    H.draining = 1;
    msi_http_quiesce(H.srv);
}

/* Waits until no call runs or waits and no reply is unsent, or until grace_end. 0 when
 * idle. */
static int
wait_idle(int64_t grace_end)
{
    int idle = 0;
    pthread_mutex_lock(&H.mu);
    while (H.inflight + H.queued > 0) {
        int64_t t = msi_now_ms();
        if (t >= grace_end)
            break;
        if (t >= grace_end - 1000)
            msi_shutting_down = 1; /* ms_cancelled() for the stragglers */
        struct timespec ts;
        abs_time(t >= grace_end - 1000 ? grace_end : grace_end - 1000, &ts);
        pthread_cond_timedwait(&H.idle_cv, &H.mu, &ts);
    }
    idle = H.inflight + H.queued == 0;
    pthread_mutex_unlock(&H.mu);
    /* The replies of the last calls may still be on their way out. */
    while (idle && msi_http_active(H.srv) > 0 && msi_now_ms() < grace_end)
        usleep(2000);
    return idle && msi_http_active(H.srv) == 0 ? 0 : -1;
}

static int
host_run(void)
{
    struct pollfd pfd = {H.wake[0], POLLIN, 0};
    while (H.reason == R_NONE) {
        int n = poll(&pfd, 1, -1);
        if (n < 0 && errno != EINTR)
            break;
        char buf[64];
        while (read(H.wake[0], buf, sizeof buf) > 0) {
        }
    }
    static const char *const why[] = {"?", "drain requested", "signal", "unknown to msd",
                                      "orphaned"};
    int reason = H.reason;
    msi_log(2, "instance %s of %s draining (%s)", H.instance[0] ? H.instance : "-", H.service,
            why[reason >= 0 && reason <= R_ORPHAN ? reason : 0]);
    begin_drain();
    int64_t grace = (int64_t)(H.rt->opts.timeout_ms > 0 ? H.rt->opts.timeout_ms : 10000) + 1000;
    if (wait_idle(msi_now_ms() + grace) != 0) {
        msi_log(0, "instance %s of %s: grace period of %lld ms over with calls running: exiting",
                H.instance, H.service, (long long)grace);
        return 1;
    }
    return 0;
}

int
msi_host_main(const char *service)
{
    char serve[MSI_NAME_MAX], id[64], epoch[32], tokfile[4096], callfile[4096], admin_sha[80],
        fds[16], lpid[16], listen_at[128], orphan[32], ignored[8];
    snprintf(serve, sizeof serve, "%s", service);
    take_env("MS_SERVE", ignored, sizeof ignored); /* `service` may point into environ */
    take_env("MS_INSTANCE_ID", id, sizeof id);
    take_env("MS_INSTANCE_EPOCH", epoch, sizeof epoch);
    take_env("MS_INSTANCE_TOKEN_FILE", tokfile, sizeof tokfile);
    take_env("MS_TOKEN_FILE", callfile, sizeof callfile);
    take_env("MS_ADMIN_TOKEN_SHA256", admin_sha, sizeof admin_sha);
    take_env("LISTEN_FDS", fds, sizeof fds);
    take_env("LISTEN_PID", lpid, sizeof lpid);
    take_env("MS_LISTEN", listen_at, sizeof listen_at);
    take_env("MS_ORPHAN_TIMEOUT_MS", orphan, sizeof orphan);
    unsetenv("LISTEN_FDNAMES");
    unsetenv("MS_TOKEN");
    unsetenv("MS_ORCHESTRATOR");
    unsetenv("MS_DESCRIBE");

    int rc = 2;
    msi_err err = {{0}};
    msi_http_config cfg = MSI_HTTP_CONFIG_INIT;

    snprintf(H.service, sizeof H.service, "%s", serve);
    snprintf(H.id, sizeof H.id, "%s", id);
    H.epoch = parse_ll(epoch, 0);
    if (H.id[0])
        snprintf(H.instance, sizeof H.instance, "%s.%lld", H.id, H.epoch);
    H.orphan_ms = parse_ll(orphan, ORPHAN_DEFAULT_MS);
    if (H.orphan_ms <= 0)
        H.orphan_ms = ORPHAN_DEFAULT_MS;
    H.call_token = msi_token;
    if (callfile[0] && !msi_token) {
        msi_log(0, "cannot serve %s: call token file %s unreadable", serve, callfile);
        goto out;
    }
    if (admin_sha[0] && parse_sha256_hex(admin_sha, H.admin_sha256) != 0) {
        msi_log(0, "cannot serve %s: MS_ADMIN_TOKEN_SHA256 is not 64 hex digits", serve);
        goto out;
    }
    if (tokfile[0] && !(H.inst_token = msi_read_first_line(tokfile))) {
        msi_log(0, "cannot serve %s: instance token file %s unreadable", serve, tokfile);
        goto out;
    }

    H.svc = msi_registry_find(serve, NULL);
    if (!H.svc || !H.svc->invoke || !(H.rt = msi_svc_of(H.svc))) {
        msi_log(0, "cannot serve %s: no such service in this program", serve);
        goto out;
    }
    msi_serving = H.svc;
    H.concurrency = H.rt->opts.concurrency > 0 ? H.rt->opts.concurrency : 1;
    H.queue_max = (int)parse_ll(getenv("MS_QUEUE_MAX"), 0);
    if (H.queue_max <= 0)
        H.queue_max = H.concurrency * 4 > 16 ? H.concurrency * 4 : 16;
    if (!H.rt->opts.idempotent)
        dd_init();
    cond_init_mono(&H.slot_cv);
    cond_init_mono(&H.idle_cv);
    cond_init_mono(&H.hb_cv);
    H.level_since_us = H.m_last_us = now_us();

    if (pipe2(H.wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        msi_log(0, "cannot serve %s: pipe: %s", serve, strerror(errno));
        goto out;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Nested calls to other services. */
    if (msi_orchestrators && msi_client_start() != MS_OK)
        msi_log(1, "client for nested calls not started: %s", ms_last_error());

    char hp[160];
    pick_listener(&cfg, fds, lpid, listen_at, hp, sizeof hp);
    cfg.routes = routes;
    cfg.nroutes = sizeof routes / sizeof *routes;
    cfg.max_body = OTHER_MAX_BODY;
    cfg.name = "instance";
    if (msi_http_start(&cfg, &H.srv, &err) != MS_OK) {
        msi_log(0, "cannot serve %s: %s", serve, err.msg);
        goto out;
    }
    msi_log(2, "instance %s serving %s on %s (concurrency %d, queue %d)",
            H.instance[0] ? H.instance : "-", serve, msi_http_addr(H.srv), H.concurrency,
            H.queue_max);

    if (msi_orchestrators && H.id[0]) {
        if (pthread_create(&H.hb, NULL, hb_main, NULL) == 0)
            H.hb_started = 1;
        else
            msi_log(0, "cannot start the heartbeat thread");
    } else {
        msi_log(2, "no orchestrator or instance id: no heartbeats");
    }

    rc = host_run();
    hb_stop();
    if (rc != 0) {
        /* Calls are still running on connection threads: leave without running
         * destructors under them. */
        fflush(NULL);
        _exit(rc);
    }
    msi_http_stop(H.srv);
    H.srv = NULL;
    dd_free();
    msi_client_stop();
    msi_httpc_thread_release();
    msi_log(2, "instance %s of %s exits", H.instance[0] ? H.instance : "-", serve);

out:
    free(H.inst_token);
    H.inst_token = NULL;
    return rc;
}

/* ---- MS_DESCRIBE ---------------------------------------------------------------------- */

static const char *
lb_name(ms_lb lb)
{
    switch (lb) {
    case MS_LB_NONE:
        return "none";
    case MS_LB_ORCHESTRATOR:
        return "orchestrator";
    case MS_LB_CLIENT:
        return "client";
    default:
        return "default";
    }
}

static void
describe_one(ms__service *svc, void *arg)
{
    json_t *list = arg;
    msi_svc *rt = msi_svc_of(svc);
    if (!rt || !svc->invoke)
        return;
    const ms_options *o = &rt->opts;
    json_t *opts = json_pack("{s:b,s:b,s:i,s:i,s:i,s:f,s:f,s:i,s:s}", "idempotent",
                             (int)o->idempotent, "stateful", (int)o->stateful, "concurrency",
                             o->concurrency, "min_instances", o->min_instances, "max_instances",
                             o->max_instances, "scale_up_at", o->scale_up_at, "scale_down_at",
                             o->scale_down_at, "timeout_ms", o->timeout_ms, "lb", lb_name(o->lb));
    json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:o}", "name", rt->name, "signature",
                                          rt->sig, "sigtext", rt->sigtext, "options", opts));
}

int
msi_describe_main(void)
{
    json_t *list = json_array();
    msi_registry_each(describe_one, list);
    json_t *doc = json_pack("{s:i,s:o}", "ms", 1, "services", list);
    int rc = 1;
    if (doc && json_dumpf(doc, stdout, JSON_COMPACT | JSON_REAL_PRECISION(15)) == 0 &&
        fputc('\n', stdout) != EOF && fflush(stdout) == 0)
        rc = 0;
    json_decref(doc);
    return rc;
}
