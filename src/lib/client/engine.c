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

/* The states of one call (msi_call_remote, diagram there); each is one function. */
typedef enum call_state {
    S_PICK,     /* the instance of the next attempt (pick) */
    S_RETRY,    /* before a retry: the retry budget, the back-off (retry) */
    S_SEND,     /* the deadline, then one attempt (send_attempt) */
    S_REPLY,    /* what the attempt's answer says (reply) */
    S_CLASSIFY, /* a failed attempt: what the call does next (classify, after_failure) */
    S_DONE,     /* the call has its outcome, c->st (finish) */
} call_state;

/* One logical call: what its attempts share, and what one step hands to the next. */
typedef struct call {
    ms__service *svc;
    const msi_svc *rt;
    cstate *cs;
    void *result;
    const msi_buf *body; /* the encoded arguments, made once (the thread's call buffer) */
    int64_t t0;          /* msi_now_ms when the call began */
    int64_t timeout_ms;  /* the caller's ms_next_call_timeout_ms (0: none) */
    int64_t deadline;    /* msi_now_ms */
    int64_t now;         /* msi_now_ms as of the last step that looked (or waited) */
    bool idem;
    int client_only; /* an MS_CLIENT stub: its options come from msd's answers */
    int r_known;     /* ... and they came */
    int attempts;    /* attempts made so far */
    int unsent;      /* of which reached no instance (no connection): those do not count
                        against ATTEMPTS_MAX, only against the deadline and the retry budget */
    int backoffs;    /* retries with back-off so far */
    int in_doubt;    /* SAME: a sent attempt's outcome is unknown; only `same` may be tried */
    inst same;
    int waited_msd; /* the last wait was for an unreachable orchestrator */
    tried t;
    int picked;        /* the first attempt's instance was picked before the first step */
    inst in;           /* the instance of the current attempt */
    retry_action next; /* what the last failed attempt asked for (RETRY_OTHER_NOW at first) */
    ms_status st;      /* the outcome so far */
    int64_t adl;       /* the current attempt's own deadline */
    long http;         /* its HTTP status; 0: no answer */
    msi_httpc_resp rs; /* its answer */
    msi_err err;       /* the transport's or the codec's detail */
    char text[MSI_ERR_MAX / 2]; /* what a failed attempt says */
    /* Headers shared by the attempts: one request id and its acknowledgement, one span of
     * the caller's trace; Ms-Deadline-Ms is rewritten for each attempt. */
    struct {
        char rid[15 + 16 + 1 + 21];            /* Ms-Request-Id: <caller>-<seq> */
        char ack[16 + 21];                     /* Ms-Acked-Below: <seq> */
        char tp[16 + 32 + 1 + 16 + 1 + 2 + 1]; /* traceparent: 00-<trace>-<span>-<flags> */
        char sig[14 + 17];                     /* Ms-Signature: <hash> */
        char dl[16 + 21];                      /* Ms-Deadline-Ms: <ms> */
    } h;
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

void
msi_cl_new_rid(char rid[MSI_CL_RID_MAX], char acked_below[24])
{
    const char *caller;
    uint64_t seq = next_seq(&caller);
    memcpy(rid, caller, 16);
    rid[16] = '-';
    *msi_u64_text(rid + 17, seq) = '\0';
    *msi_u64_text(acked_below, seq) = '\0';
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
 * One call, DESIGN section 4. The rules:
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
 *
 * The machine that keeps them: call_begin sets the call up (deadline, body, headers, and the
 * first attempt's instance when the list has one); then one function per state, each
 * returning the next, until S_DONE; finish reports the failed instances and returns.
 *
 *   call_begin ---------------------+
 *                                   v
 *       +--------------------> S_PICK (pick) --no instance (next_instance)--> S_DONE
 *       |                           |
 *       |          a retry          |   the first attempt
 *       |        +------------------+-------+
 *       |        v                          v
 *       |   S_RETRY (retry)           S_SEND (send_attempt) --deadline passed--> S_DONE
 *       |    |   |                     ^    |
 *       |    |   +-- budget taken; ----+    | one attempt
 *       |    |       back-off unless        v
 *       |    |       RETRY_OTHER_NOW   S_REPLY (reply) --200: decoded--> S_DONE
 *       |    +-- budget spent --> S_DONE    | failed: status and detail
 *       |                                   v
 *       +-- RETRY_OTHER_*, _SAME ---------- S_CLASSIFY (classify: after_failure)
 *                                           | RETRY_NONE, or ATTEMPTS_MAX used up
 *                                           v
 *                                         S_DONE (finish)
 */

/* The instance of the next attempt: the same one in SAME; for the first attempt the one
 * call_begin picked (msi_cl_first_pick, which also counts the call in the retry budget) if
 * any; else next_instance's, which may wait for msd. An MS_CLIENT stub learns its options
 * from its first lookup. */
static call_state
pick(call *c)
{
    if (c->in_doubt) {
        c->in = c->same;
    } else if (c->picked) {
        c->picked = 0; /* the first attempt's, picked with the budget's count */
    } else {
        int again = 0;
        ms_status ist = next_instance(c, &c->in, &again);
        if (ist != MS_OK) {
            c->st = ist;
            return S_DONE;
        }
        if (again && c->attempts > 0 && c->next == RETRY_OTHER_NOW)
            c->next = RETRY_OTHER_BACKOFF; /* the same instance again: never at once */
        c->now = msi_now_ms();             /* the lookup may have waited */
        int r_idem = 0;
        int64_t r_timeout = 0;
        if (c->client_only && !c->r_known && msi_cl_remote_opts(c->cs, &r_idem, &r_timeout)) {
            c->r_known = 1; /* the first lookup of an MS_CLIENT stub: msd says */
            c->idem = r_idem;
            if (c->timeout_ms <= 0 && r_timeout > 0 && r_timeout < MSI_DEADLINE_MAX_MS) {
                int64_t d = c->t0 + r_timeout;
                if (msi_cur_ctx && msi_cur_ctx->deadline_ms < d)
                    d = msi_cur_ctx->deadline_ms;
                c->deadline = d;
            }
        }
    }
    return c->attempts > 0 ? S_RETRY : S_SEND;
}

/* Before a retry: one from the retry budget, then the back-off unless the last failure asked
 * for another instance at once. */
static call_state
retry(call *c)
{
    if (!msi_cl_budget_retry(c->cs)) {
        char last[MSI_ERR_MAX];
        say(last, sizeof last, "%s", c->why);
        say(c->why, sizeof c->why, "%s (retry budget of %s spent: no more retries)", last,
            c->rt->name);
        if (c->in_doubt)
            c->st = MS_EINDOUBT;
        return S_DONE;
    }
    if (c->next != RETRY_OTHER_NOW) {
        int64_t cap = BACKOFF_BASE_MS << (c->backoffs < 7 ? ++c->backoffs : 7);
        if (cap > BACKOFF_MAX_MS)
            cap = BACKOFF_MAX_MS;
        msi_cl_sleep_within((int64_t)(rng_next() % (uint64_t)(cap + 1)), c->deadline);
    }
    c->now = msi_now_ms();
    return S_SEND;
}

/* The deadline, then one attempt on c->in with its share of the time left. */
static call_state
send_attempt(call *c)
{
    if (c->now >= c->deadline) {
        if (c->in_doubt) {
            c->st = MS_EINDOUBT; /* c->why says why */
        } else if (c->attempts == 0) {
            c->st = MS_ETIMEDOUT;
            say(c->why, sizeof c->why, "%s: deadline passed before the call was sent", c->rt->name);
        } else {
            char last[MSI_ERR_MAX];
            say(last, sizeof last, "%s", c->why);
            say(c->why, sizeof c->why, "%s: deadline passed after %d attempts; the last: %s",
                c->rt->name, c->attempts, last);
            c->st = MS_ETIMEDOUT;
        }
        return S_DONE;
    }
    int64_t left = c->deadline - c->now, share = left;
    if (c->idem && c->attempts - c->unsent + 1 < ATTEMPTS_MAX && left > 1)
        share = left / 2;
    c->adl = c->now + share;
    *msi_u64_text(c->h.dl + 16, (uint64_t)share) = '\0';
    const char *hdrs[] = {c->h.rid, c->h.ack, c->h.dl, c->h.sig, c->h.tp, c->in.hdr, NULL};
    msi_httpc_req rq = {0};
    rq.url = c->in.url;
    rq.bearer = msi_client.token;
    rq.headers = hdrs;
    rq.body = c->body->p;
    rq.body_len = c->body->len;
    rq.deadline_ms = c->adl;
    rq.no_resend = !c->idem;
    c->attempts++;
    msi_cl_mark_tried(&c->t, &c->in);
    c->st = msi_httpc_do(&rq, &c->rs, &c->err);
    c->http = c->st == MS_OK ? c->rs.status : 0;
    return S_REPLY;
}

/* What the answer says: a result (decoded), or a failure's status and detail. */
static call_state
reply(call *c)
{
    const char *name = c->rt->name;
    const inst *in = &c->in;
    if (c->http == 200) {
        /* The text lane, else the tree ("bad result: ..." or "result: ..."). */
        c->st = msi_codec_decode_result(c->svc, c->rs.body, c->rs.len, c->result, &c->err);
        if (c->st != MS_OK)
            say(c->why, sizeof c->why, "%s: instance %s.%lld at %s: %s", name, in->id, in->epoch,
                in->addr, c->err.msg);
        msi_cl_note_instance(c->cs, in, 0, 0);
        return S_DONE;
    }
    if (c->http) {
        c->st = msi_httpc_error_status(&c->rs, &c->app_code);
        if (c->st == MS_OK)
            c->st = MS_EPROTO;
        msi_httpc_error_text(&c->rs, c->text, sizeof c->text);
    } else {
        say(c->text, sizeof c->text, "%s", c->err.msg);
    }
    if (c->st == MS_EAPP)
        say(c->why, sizeof c->why, "%s: %s (instance %s.%lld)", name, c->text, in->id, in->epoch);
    else
        say(c->why, sizeof c->why, "%s: instance %s.%lld at %s: %s", name, in->id, in->epoch,
            in->addr, c->text);
    return S_CLASSIFY;
}

/* A failed attempt: after_failure says what comes next; the attempts are counted. */
static call_state
classify(call *c)
{
    c->next = after_failure(c, &c->in, &c->st, c->http, &c->rs, c->adl, c->text);
    if (c->next == RETRY_NONE)
        return S_DONE;
    if (!c->http && !c->rs.sent)
        c->unsent++; /* a dead entry of a stale list, like "no ready instance" */
    if (c->attempts - c->unsent >= ATTEMPTS_MAX) {
        char last[MSI_ERR_MAX];
        say(last, sizeof last, "%s", c->why);
        say(c->why, sizeof c->why, "%s (after %d attempts)", last, c->attempts);
        if (c->in_doubt)
            c->st = MS_EINDOUBT;
        return S_DONE;
    }
    return S_PICK;
}

/* S_DONE: the failed instances go to msd, the outcome to the caller. */
static ms_status
finish(call *c)
{
    for (int i = 0; i < c->nbad; i++)
        msi_cl_report_failure(c->rt, &c->bad[i], c->bad_why[i]);
    if (c->st == MS_OK)
        return MS_OK;
    if (!c->why[0])
        say(c->why, sizeof c->why, "%s: %s", c->rt->name, ms_strerror(c->st));
    msi_set_error(c->st, "%s", c->why);
    if (c->st == MS_EAPP)
        msi_set_app_code(c->app_code);
    return c->st;
}

/* The headers every attempt carries (built without printf: this is the hot path). */
static void
make_headers(call *c)
{
    const msi_trace *parent = msi_cur_ctx ? msi_cur_ctx->trace : NULL;
    memcpy(c->h.rid, "Ms-Request-Id: ", 15);
    memcpy(c->h.ack, "Ms-Acked-Below: ", 16);
    memcpy(c->h.tp, "traceparent: 00-", 16);
    memcpy(c->h.sig, "Ms-Signature: ", 14);
    memcpy(c->h.dl, "Ms-Deadline-Ms: ", 16);
    const char *caller;
    uint64_t seq = next_seq(&caller);
    memcpy(c->h.rid + 15, caller, 16);
    c->h.rid[31] = '-';
    *msi_u64_text(c->h.rid + 32, seq) = '\0';
    *msi_u64_text(c->h.ack + 16, seq) = '\0';
    if (parent)
        memcpy(c->h.tp + 16, parent->id, 32);
    else
        rand_hex(c->h.tp + 16, 32);
    c->h.tp[48] = '-';
    rand_hex(c->h.tp + 49, 16);
    c->h.tp[65] = '-';
    memcpy(c->h.tp + 66, parent ? parent->flags : "00", 2);
    c->h.tp[68] = '\0';
    memcpy(c->h.sig + 14, c->rt->sig, 17);
}

/* Everything the attempts share: the deadline, the body, the headers, and the first
 * attempt's instance when the list has one. MS_OK, or the call's status (error set). */
static ms_status
call_begin(call *c, ms__service *svc, void *args, void *result, int64_t timeout_ms)
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
    c->svc = svc;
    c->rt = rt;
    c->result = result;
    c->timeout_ms = timeout_ms;
    c->cs = msi_cl_cstate_of(rt);
    if (!c->cs)
        return msi_set_error(MS_ENOMEM, "%s: out of memory", rt->name);
    c->idem = rt->opts.idempotent;
    c->attempts = c->unsent = c->backoffs = c->in_doubt = c->waited_msd = c->nbad = 0;
    c->app_code = 0;
    c->t.n = 0;
    c->why[0] = '\0';
    /* An MS_CLIENT stub takes the service's own options from msd's answers (docs/calls.md):
     * until one came, it is not idempotent and has the default timeout. */
    int r_idem = 0;
    int64_t r_timeout = 0;
    c->client_only = svc->invoke == NULL;
    c->r_known = c->client_only && msi_cl_remote_opts(c->cs, &r_idem, &r_timeout);
    if (c->r_known)
        c->idem = r_idem;
    int64_t opt_timeout = c->r_known && r_timeout > 0 ? r_timeout : rt->opts.timeout_ms;

    /* The deadline: this call's timeout, within what is left of the enclosing call's. */
    int64_t now = msi_now_ms();
    c->t0 = c->now = now;
    int64_t budget = timeout_ms > 0 ? timeout_ms : opt_timeout > 0 ? opt_timeout : 10000;
    if (budget > MSI_DEADLINE_MAX_MS)
        budget = MSI_DEADLINE_MAX_MS;
    c->deadline = now + budget;
    if (msi_cur_ctx && msi_cur_ctx->deadline_ms < c->deadline)
        c->deadline = msi_cur_ctx->deadline_ms;
    if (c->deadline <= now)
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
    c->body = body;
    c->err.msg[0] = '\0';

    make_headers(c);
    c->next = RETRY_OTHER_NOW;
    c->picked = msi_cl_first_pick(c->cs, now, &c->in);
    c->st = MS_EUNAVAILABLE;
    return MS_OK;
}

ms_status
msi_call_remote(ms__service *svc, void *args, void *result, int64_t timeout_ms)
{
    static call_state (*const step[])(call *) = {
        [S_PICK] = pick,   [S_RETRY] = retry,       [S_SEND] = send_attempt,
        [S_REPLY] = reply, [S_CLASSIFY] = classify,
    };
    call c;
    ms_status st = call_begin(&c, svc, args, result, timeout_ms);
    if (st != MS_OK)
        return st;
    for (call_state s = S_PICK; s != S_DONE;)
        s = step[s](&c);
    return finish(&c);
}

const msi_transport msi_client_transport = {
    .configure = msi_client_configure,
    .call = msi_call_remote,
    .start = msi_client_start,
    .stop = msi_client_stop,
};
