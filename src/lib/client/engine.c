/*
 * engine.c: one remote call in local and docker modes (msi_call_remote): locate an instance
 * (instances.c), call it, retry what may be retried, decode the result. Part of
 * src/lib/client (client_int.h).
 *
 * Design notes
 * - One call (msi_call_remote, state machine drawn there): deadline = the caller's
 *   ms_next_call_timeout_ms or the service's timeout_ms, within what is left of the
 *   enclosing call's deadline; one request id and one trace span for all its attempts; at
 *   most 5 attempts. After each failed attempt after_failure() alone says what happens next,
 *   from (answer or transport status, sent?, idempotent, in doubt?): that function is where
 *   DESIGN section 4's rules live. Every retry takes one from the service's retry budget
 *   (20% of calls over 10 s, at least 10 a second).
 * - Trace context (W3C traceparent): the outermost call starts a trace (random 128-bit id);
 *   a call made inside a service keeps the trace id of the call being served, with a new
 *   span id; flags are passed on ("00" for a new trace: ms samples nothing itself).
 * - Hot path: the HTTP client, its connections and its buffers are the thread's own
 *   (httpc.c); headers are formatted on the stack; the URL and Ms-Instance header of an
 *   instance are made once when it is located.
 */
#include "client_int.h"
#include "codec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- per-thread randomness (request ids, jitter) -------------------------------------- */

static _Thread_local uint64_t rng_s[2];
static _Thread_local unsigned long rng_gen; /* msi_fork_generation when seeded */

static uint64_t
rng_next(void)
{
    unsigned long gen = msi_fork_generation();
    if (rng_gen != gen) { /* a forked child must not repeat its parent's numbers */
        rng_gen = gen;
        rng_s[0] = rng_s[1] = 0;
    }
    if (!rng_s[0] && !rng_s[1]) {
        if (getrandom(rng_s, sizeof rng_s, 0) != (ssize_t)sizeof rng_s ||
            (!rng_s[0] && !rng_s[1])) {
            rng_s[0] = (uint64_t)msi_now_ms() ^ ((uint64_t)getpid() << 32);
            rng_s[1] = (uint64_t)(uintptr_t)&rng_s ^ 0x9e3779b97f4a7c15ull;
        }
    }
    /* xorshift128+ */
    uint64_t s1 = rng_s[0];
    const uint64_t s0 = rng_s[1];
    rng_s[0] = s0;
    s1 ^= s1 << 23;
    rng_s[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return rng_s[1] + s0;
}

int64_t
msi_cl_jitter(int64_t ms, int pct)
{
    if (ms <= 0)
        return 0;
    int64_t span = ms * pct / 100;
    if (span <= 0)
        return ms;
    return ms - span + (int64_t)(rng_next() % (uint64_t)(2 * span + 1));
}

void
msi_cl_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Sleeps ms, but never past deadline. */
void
msi_cl_sleep_within(int64_t ms, int64_t deadline)
{
    int64_t left = deadline - msi_now_ms();
    msi_cl_sleep_ms(ms < left ? ms : left);
}

/* ---- per-thread call buffer ------------------------------------------------------------ */

/* The body of the call this thread is making, kept across its attempts (and the lookups in
 * between, which use httpc's own buffer) and reused by its next calls. A thread makes one
 * remote call at a time: nothing runs user code in the middle of msi_call_remote. */
msi_tbuf msi_cl_call_tbuf = MSI_TBUF_INIT;

static msi_buf *
call_buf(void)
{
    return msi_tbuf_get(&msi_cl_call_tbuf, 256u << 10);
}

/* ---- one call ------------------------------------------------------------------------- */

typedef enum retry_action {
    RETRY_NONE,          /* the call has its outcome: return it */
    RETRY_OTHER_NOW,     /* nothing ran: another instance at once */
    RETRY_OTHER_BACKOFF, /* it may have run, but running twice is safe: another instance,
                            after a back-off */
    RETRY_SAME,          /* it may have run: only the same instance with the same request id
                            (its duplicate-request cache answers), after a back-off */
} retry_action;

/* One logical call: what its attempts share. */
typedef struct call {
    const msi_svc *rt;
    cstate *cs;
    int64_t deadline; /* msi_now_ms */
    bool idem;
    int attempts; /* attempts made so far */
    int unsent;   /* of which reached no instance (no connection): those do not count
                     against ATTEMPTS_MAX, only against the deadline and the retry budget */
    int backoffs; /* retries with back-off so far */
    int in_doubt; /* SAME: a sent attempt's outcome is unknown; only `same` may be tried */
    inst same;
    int waited_msd; /* the last wait was for an unreachable orchestrator */
    tried t;
    /* failed instances, reported to msd once the call is over (never delaying a retry) */
    inst bad[ATTEMPTS_MAX];
    char bad_why[ATTEMPTS_MAX][160];
    int nbad;
    char why[MSI_ERR_MAX]; /* the detail of the outcome so far */
    int app_code;
} call;

/* snprintf for messages, where truncation is fine. */
static void say(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
say(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

/* `n` random lowercase hex digits (n even), never all zero. */
static void
rand_hex(char *out, int n)
{
    do {
        for (int i = 0; i < n; i += 16) {
            uint64_t v = rng_next();
            for (int k = 0; k < 16 && i + k < n; k++)
                out[i + k] = "0123456789abcdef"[(v >> (4 * k)) & 15];
        }
        out[n] = '\0';
    } while (strspn(out, "0") == (size_t)n);
}

/*
 * Request ids: a caller per thread. An id is `<caller>-<seq>`, the thread's caller id (16
 * random hex digits, remade in a forked child, which must not reuse its parent's) and the
 * thread's next sequence number. A thread's calls follow one another, so when one starts
 * every earlier call of the thread is over, whatever its outcome, and none of them will be
 * sent again: Ms-Acked-Below is the new call's own seq, and an instance that gets it drops
 * the thread's earlier entries from its duplicate-request cache (host/dedupe.c, after RIFL).
 */
static _Thread_local struct caller {
    unsigned long gen; /* msi_fork_generation when the id was made */
    uint64_t seq;
    char id[17];
} me;

/* The thread's next sequence number; *id its caller id. */
static uint64_t
next_seq(const char **id)
{
    unsigned long gen = msi_fork_generation();
    if (!me.id[0] || me.gen != gen) {
        rand_hex(me.id, 16);
        me.gen = gen;
        me.seq = 0;
    }
    *id = me.id;
    return ++me.seq;
}

/* An attempt failed because of the instance: skip it for a while, and report it to msd
 * once the call is over if this client did not know already. */
static void
instance_failed(call *c, const inst *in, const char *why)
{
    if (msi_cl_note_instance(c->cs, in, 1, 0) && c->nbad < ATTEMPTS_MAX) {
        c->bad[c->nbad] = *in;
        say(c->bad_why[c->nbad], sizeof c->bad_why[0], "%s", why);
        c->nbad++;
    }
}

/*
 * An instance for the next attempt (not in SAME): from the list, re-located when it is old;
 * when the list offers nothing usable, from msd, which holds the lookup until an instance is
 * ready ("no ready instance" is not a failed attempt: this waits, bounded by the deadline).
 * While no orchestrator answers, the instances already known are used, skipped or not, and
 * with none known the lookup is tried again until the deadline if an orchestrator answered
 * before (a restart of msd), else the call fails at once (a wrong MS_ORCHESTRATOR).
 * MS_OK, or the status that ends the call (c->why says why).
 */
static ms_status
next_instance(call *c, inst *out, int *again)
{
    int relocates = 0;
    c->waited_msd = 0;
    for (;;) {
        if (msi_now_ms() >= c->deadline) {
            if (!c->waited_msd)
                say(c->why, sizeof c->why, "%s: no usable instance before the deadline",
                    c->rt->name);
            return c->waited_msd ? MS_EUNAVAILABLE : MS_ETIMEDOUT;
        }
        int unreachable = 0;
        msi_err err = {{0}};
        ms_status lst =
            msi_cl_ensure_list(c->cs, c->rt, c->deadline, relocates > 0, &unreachable, &err);
        if (lst != MS_OK) {
            if (!unreachable || !msi_client.orch_seen) {
                say(c->why, sizeof c->why, "%s", err.msg);
                return lst;
            }
            c->waited_msd = 1;
            say(c->why, sizeof c->why, "%s", err.msg);
        }
        if (msi_cl_pick(c->cs, &c->t, relocates >= 3 || lst != MS_OK, out, again))
            return MS_OK;
        if (relocates++ || lst != MS_OK) {
            int64_t wait = relocates < 8 ? 10LL << relocates : MSD_WAIT_MAX_MS;
            msi_cl_sleep_within(msi_cl_jitter(wait < MSD_WAIT_MAX_MS ? wait : MSD_WAIT_MAX_MS, 50),
                                c->deadline);
        }
    }
}

/*
 * After a failed attempt on `in`: what it says about the instance, and what the call does
 * next (DESIGN section 4). `st` is the transport's status or the one the instance answered,
 * `http` its HTTP status (0: no answer), `adl` the attempt's own deadline. May turn *st into
 * the call's final status.
 */
static retry_action
after_failure(call *c, const inst *in, ms_status *st, long http, const msi_httpc_resp *rs,
              int64_t adl, const char *text)
{
    const char *name = c->rt->name;
    if (http) {
        switch (http) {
        case 421: /* another instance (or epoch) at that address now */
            msi_cl_note_instance(c->cs, in, 1, 1);
            if (c->in_doubt)
                break; /* the instance that had the request is gone */
            return RETRY_OTHER_NOW;
        case 429: /* queue full, or */
        case 503: /* draining, or its duplicate-request cache is full: it did not run this */
            if (c->in_doubt)
                return RETRY_SAME;
            if (http == 503 && *st != MS_EOVERLOADED)
                msi_cl_note_instance(c->cs, in, 1, 1); /* draining: on its way out */
            else
                msi_cl_note_instance(c->cs, in, 0, 0); /* busy, but healthy: no skip, no report */
            return RETRY_OTHER_NOW;
        case 504: /* the instance could not start it before the attempt's deadline */
            if (c->in_doubt)
                break;
            if (c->idem && adl < c->deadline && msi_now_ms() < c->deadline)
                return RETRY_OTHER_NOW;
            return RETRY_NONE;
        default: /* a result (ms_fail, 500), or a refusal that another attempt would repeat */
            return RETRY_NONE;
        }
        *st = MS_EINDOUBT;
        say(c->why, sizeof c->why,
            "%s: instance %s.%lld at %s, which received the request, is gone (%s): the call "
            "may or may not have run",
            name, in->id, in->epoch, in->addr, text);
        return RETRY_NONE;
    }
    switch (*st) {
    case MS_ENOMEM:
    case MS_EIO: /* a problem here, not there */
        if (c->in_doubt)
            *st = MS_EINDOUBT;
        return RETRY_NONE;
    case MS_ETIMEDOUT:
        if (msi_now_ms() < c->deadline && (!rs->sent || adl < c->deadline)) {
            /* Time is left, and either the connection could not be made in time (nothing was
             * sent) or an idempotent attempt used up its share: the instance is unreachable,
             * hung or slow; another one may do better. */
            instance_failed(c, in, text);
            if (c->in_doubt) {
                *st = MS_EINDOUBT;
                say(c->why, sizeof c->why,
                    "%s: instance %s.%lld at %s lost the connection after receiving the "
                    "request and cannot be reached again (%s): the call may or may not have run",
                    name, in->id, in->epoch, in->addr, text);
                return RETRY_NONE;
            }
            return rs->sent ? RETRY_OTHER_BACKOFF : RETRY_OTHER_NOW;
        }
        if (c->in_doubt) {
            *st = MS_EINDOUBT;
            say(c->why, sizeof c->why,
                "%s: instance %s.%lld at %s: lost the connection after sending the request and "
                "could not learn the outcome before the deadline: the call may or may not have "
                "run",
                name, in->id, in->epoch, in->addr);
        } else if (rs->sent && !c->idem) {
            say(c->why, sizeof c->why,
                "%s: instance %s.%lld at %s: no answer before the deadline; the request was "
                "sent: it may have run (%s)",
                name, in->id, in->epoch, in->addr, text);
        }
        return RETRY_NONE;
    case MS_EUNAVAILABLE: /* no connection: nothing was sent */
        instance_failed(c, in, text);
        if (c->in_doubt) {
            *st = MS_EINDOUBT;
            say(c->why, sizeof c->why,
                "%s: instance %s.%lld at %s lost the connection after receiving the request and "
                "is now gone (%s): the call may or may not have run",
                name, in->id, in->epoch, in->addr, text);
            return RETRY_NONE;
        }
        return RETRY_OTHER_NOW;
    default: /* sent, and the connection failed before an answer: it may have run */
        instance_failed(c, in, text);
        if (c->idem)
            return RETRY_OTHER_BACKOFF;
        *st = MS_EINDOUBT;
        if (!c->in_doubt) {
            c->in_doubt = 1;
            c->same = *in;
        }
        say(c->why, sizeof c->why,
            "%s: instance %s.%lld at %s: %s; the call may or may not have run", name, in->id,
            in->epoch, in->addr, text);
        return RETRY_SAME;
    }
}

/*
 * One call, DESIGN section 4:
 *
 *   PICK --nothing usable--> wait on msd (next_instance; not an attempt) --> PICK
 *   PICK --an instance--> SEND: attempt n <= ATTEMPTS_MAX, with the same request id each
 *        time; an idempotent attempt may use half the time left (the last one all of it);
 *        Ms-Deadline-Ms says how much. An attempt that got no connection at all is not
 *        counted in n (the instance is gone: a stale entry of the list, as "no ready
 *        instance" is not an attempt); it still takes from the budget and the deadline
 *   SEND --200--> done                --500 (ms_fail), 4xx, other 5xx--> done (never retried)
 *        --not sent (no connection), or refused before running (421, 429, 503; 504 with time
 *          left, idempotent)--> PICK another instance, at once         (RETRY_OTHER_NOW)
 *        --sent, no answer, idempotent--> back-off, PICK another      (RETRY_OTHER_BACKOFF)
 *        --sent, no answer, not idempotent--> back-off, SEND to the same instance and epoch
 *          (SAME: its duplicate-request cache answers with the first attempt's reply, or runs
 *          it if it never arrived)                                           (RETRY_SAME)
 *   SAME --200, 500--> done   --429, 503, connection lost again--> back-off, SAME
 *        --instance gone (no connection, 421), attempts or deadline used up--> MS_EINDOUBT
 *
 * Each retry takes one from the service's retry budget; when it is spent the call ends with
 * its last failure. Back-off before the n-th retry that has one: random(0, min(10 ms * 2^n,
 * 1 s)), never past the deadline. (after_failure decides each arrow out of SEND and SAME.)
 */
ms_status
msi_call_remote(ms__service *svc, void *args, void *result, int64_t timeout_ms)
{
    msi_svc *rt = msi_svc_of(svc);
    if (!rt)
        return msi_set_error(MS_ENOMEM, "%s: out of memory", svc->name);
    if (!msi_client.started || msi_client.stopped)
        return msi_set_error(MS_EUNAVAILABLE,
                             "%s: the client is not running (ms_init not "
                             "called, or ms_shutdown already called)",
                             rt->name);
    /* Not zeroed as a whole (it is a few KiB): every field is set here or before use. */
    call c;
    c.rt = rt;
    c.cs = msi_cl_cstate_of(rt);
    if (!c.cs)
        return msi_set_error(MS_ENOMEM, "%s: out of memory", rt->name);
    c.idem = rt->opts.idempotent;
    c.attempts = c.unsent = c.backoffs = c.in_doubt = c.waited_msd = c.nbad = c.app_code = 0;
    c.t.n = 0;
    c.why[0] = '\0';
    /* An MS_CLIENT stub takes the service's own options from msd's answers (docs/calls.md):
     * until one came, it is not idempotent and has the default timeout. */
    int client_only = svc->invoke == NULL, r_idem = 0;
    int64_t r_timeout = 0;
    int r_known = client_only && msi_cl_remote_opts(c.cs, &r_idem, &r_timeout);
    if (r_known)
        c.idem = r_idem;
    int64_t opt_timeout = r_known && r_timeout > 0 ? r_timeout : rt->opts.timeout_ms;

    /* The deadline: this call's timeout, within what is left of the enclosing call's. */
    int64_t now = msi_now_ms(), t0 = now;
    int64_t budget = timeout_ms > 0 ? timeout_ms : opt_timeout > 0 ? opt_timeout : 10000;
    if (budget > MSI_DEADLINE_MAX_MS)
        budget = MSI_DEADLINE_MAX_MS;
    c.deadline = now + budget;
    if (msi_cur_ctx && msi_cur_ctx->deadline_ms < c.deadline)
        c.deadline = msi_cur_ctx->deadline_ms;
    if (c.deadline <= now)
        return msi_set_error(MS_ETIMEDOUT, "%s: the enclosing call's deadline has passed",
                             rt->name);

    /* The body, made once for every attempt, into the thread's call buffer (no allocation
     * once it has grown): by the text lane, else the tree, which also says what is wrong
     * (msi_codec_encode_args). */
    msi_err err = {{0}};
    msi_buf *body = call_buf();
    ms_status st = body ? msi_codec_encode_args(svc, args, body, &err)
                        : msi_errf(&err, MS_ENOMEM, "out of memory");
    if (st != MS_OK)
        return msi_set_error(st, "%s: %s", rt->name, err.msg);

    /* Headers shared by the attempts: one request id and its acknowledgement, one span of the
     * caller's trace (a new trace for an outermost call). Built without printf: this is the
     * hot path. */
    const msi_trace *parent = msi_cur_ctx ? msi_cur_ctx->trace : NULL;
    char rid_h[15 + 16 + 1 + 21] = "Ms-Request-Id: ";
    char ack_h[16 + 21] = "Ms-Acked-Below: ";
    char tp_h[16 + 32 + 1 + 16 + 1 + 2 + 1] = "traceparent: 00-";
    char sig_h[14 + 17] = "Ms-Signature: ";
    char dl_h[16 + 21] = "Ms-Deadline-Ms: ";
    const char *caller;
    uint64_t seq = next_seq(&caller);
    memcpy(rid_h + 15, caller, 16);
    rid_h[31] = '-';
    *msi_u64_text(rid_h + 32, seq) = '\0';
    *msi_u64_text(ack_h + 16, seq) = '\0';
    if (parent)
        memcpy(tp_h + 16, parent->id, 32);
    else
        rand_hex(tp_h + 16, 32);
    tp_h[48] = '-';
    rand_hex(tp_h + 49, 16);
    tp_h[65] = '-';
    memcpy(tp_h + 66, parent ? parent->flags : "00", 2);
    tp_h[68] = '\0';
    memcpy(sig_h + 14, rt->sig, 17);

    inst in;
    retry_action next = RETRY_OTHER_NOW;
    int picked = msi_cl_first_pick(c.cs, now, &in);
    st = MS_EUNAVAILABLE;
    for (;;) {
        /* 1. The instance. */
        if (c.in_doubt) {
            in = c.same;
        } else if (picked) {
            picked = 0; /* the first attempt's, picked with the budget's count */
        } else {
            int again = 0;
            ms_status ist = next_instance(&c, &in, &again);
            if (ist != MS_OK) {
                st = ist;
                break;
            }
            if (again && c.attempts > 0 && next == RETRY_OTHER_NOW)
                next = RETRY_OTHER_BACKOFF; /* the same instance again: never at once */
            now = msi_now_ms();             /* the lookup may have waited */
            if (client_only && !r_known && msi_cl_remote_opts(c.cs, &r_idem, &r_timeout)) {
                r_known = 1; /* the first lookup of an MS_CLIENT stub: msd says */
                c.idem = r_idem;
                if (timeout_ms <= 0 && r_timeout > 0 && r_timeout < MSI_DEADLINE_MAX_MS) {
                    int64_t d = t0 + r_timeout;
                    if (msi_cur_ctx && msi_cur_ctx->deadline_ms < d)
                        d = msi_cur_ctx->deadline_ms;
                    c.deadline = d;
                }
            }
        }

        /* 2. A retry: the budget, then the back-off. */
        if (c.attempts > 0) {
            if (!msi_cl_budget_retry(c.cs)) {
                char last[MSI_ERR_MAX];
                say(last, sizeof last, "%s", c.why);
                say(c.why, sizeof c.why, "%s (retry budget of %s spent: no more retries)", last,
                    rt->name);
                if (c.in_doubt)
                    st = MS_EINDOUBT;
                break;
            }
            if (next != RETRY_OTHER_NOW) {
                int64_t cap = BACKOFF_BASE_MS << (c.backoffs < 7 ? ++c.backoffs : 7);
                if (cap > BACKOFF_MAX_MS)
                    cap = BACKOFF_MAX_MS;
                msi_cl_sleep_within((int64_t)(rng_next() % (uint64_t)(cap + 1)), c.deadline);
            }
            now = msi_now_ms();
        }
        if (now >= c.deadline) {
            if (c.in_doubt) {
                st = MS_EINDOUBT; /* c.why says why */
            } else if (c.attempts == 0) {
                st = MS_ETIMEDOUT;
                say(c.why, sizeof c.why, "%s: deadline passed before the call was sent", rt->name);
            } else {
                char last[MSI_ERR_MAX];
                say(last, sizeof last, "%s", c.why);
                say(c.why, sizeof c.why, "%s: deadline passed after %d attempts; the last: %s",
                    rt->name, c.attempts, last);
                st = MS_ETIMEDOUT;
            }
            break;
        }

        /* 3. The attempt. */
        int64_t left = c.deadline - now, share = left;
        if (c.idem && c.attempts - c.unsent + 1 < ATTEMPTS_MAX && left > 1)
            share = left / 2;
        int64_t adl = now + share;
        *msi_u64_text(dl_h + 16, (uint64_t)share) = '\0';
        const char *hdrs[] = {rid_h, ack_h, dl_h, sig_h, tp_h, in.hdr, NULL};
        msi_httpc_req rq = {0};
        rq.url = in.url;
        rq.bearer = msi_client.token;
        rq.headers = hdrs;
        rq.body = body->p;
        rq.body_len = body->len;
        rq.deadline_ms = adl;
        rq.no_resend = !c.idem;
        msi_httpc_resp rs;
        c.attempts++;
        msi_cl_mark_tried(&c.t, &in);
        st = msi_httpc_do(&rq, &rs, &err);
        long http = st == MS_OK ? rs.status : 0;

        if (http == 200) {
            /* The text lane, else the tree ("bad result: ..." or "result: ..."). */
            st = msi_codec_decode_result(svc, rs.body, rs.len, result, &err);
            if (st != MS_OK)
                say(c.why, sizeof c.why, "%s: instance %s.%lld at %s: %s", rt->name, in.id,
                    in.epoch, in.addr, err.msg);
            msi_cl_note_instance(c.cs, &in, 0, 0);
            break;
        }

        /* 4. A failure: what it says, and what comes next. */
        char text[MSI_ERR_MAX / 2];
        if (http) {
            st = msi_httpc_error_status(&rs, &c.app_code);
            if (st == MS_OK)
                st = MS_EPROTO;
            msi_httpc_error_text(&rs, text, sizeof text);
        } else {
            say(text, sizeof text, "%s", err.msg);
        }
        if (st == MS_EAPP)
            say(c.why, sizeof c.why, "%s: %s (instance %s.%lld)", rt->name, text, in.id, in.epoch);
        else
            say(c.why, sizeof c.why, "%s: instance %s.%lld at %s: %s", rt->name, in.id, in.epoch,
                in.addr, text);
        next = after_failure(&c, &in, &st, http, &rs, adl, text);
        if (next == RETRY_NONE)
            break;
        if (!http && !rs.sent)
            c.unsent++; /* a dead entry of a stale list, like "no ready instance" */
        if (c.attempts - c.unsent >= ATTEMPTS_MAX) {
            char last[MSI_ERR_MAX];
            say(last, sizeof last, "%s", c.why);
            say(c.why, sizeof c.why, "%s (after %d attempts)", last, c.attempts);
            if (c.in_doubt)
                st = MS_EINDOUBT;
            break;
        }
    }
    for (int i = 0; i < c.nbad; i++)
        msi_cl_report_failure(rt, &c.bad[i], c.bad_why[i]);
    if (st == MS_OK)
        return MS_OK;
    if (!c.why[0])
        say(c.why, sizeof c.why, "%s: %s", rt->name, ms_strerror(st));
    msi_set_error(st, "%s", c.why);
    if (st == MS_EAPP)
        msi_set_app_code(c.app_code);
    return st;
}

const msi_transport msi_client_transport = {
    .configure = msi_client_configure,
    .call = msi_call_remote,
    .start = msi_client_start,
    .stop = msi_client_stop,
};
