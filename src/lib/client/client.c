/*
 * client.c: remote calls in local and docker modes: locate instances through msd, call one,
 * retry what may be retried, decode the result. Also the client's set-up: the orchestrator
 * list, the token, a private msd when none is configured, and the registration of this
 * program's executable as a deployment.
 *
 * Design notes
 * - Process-wide state (`C`) is written by msi_client_start on the main thread before any
 *   call and only read afterwards, so it needs no lock.
 * - Per service, `cstate` (hung off msi_svc.client, made once by CAS, never freed: also
 *   kept on a global list) caches the instance list msd returned, until its ttl runs out
 * (re-located about every second, jittered +-25%, so scale-ups are seen). Its mutex guards the list
 * and is held only to copy one entry out: no allocation and no I/O under it. When the list expires,
 * one caller re-locates (briefly: a held lookup must not stall it) while the others go on with the
 * old list; while no orchestrator answers the old list is kept. With an empty list every caller
 * locates, and msd holds the lookup until an instance is ready or the call's deadline passes ("no
 * ready instance" is not a failed attempt).
 * - Balancing per the `lb` msd returned: client = round-robin over the list; orchestrator
 *   = the one instance msd chose; none = the first. An instance that failed is skipped by
 *   this client for 1 s, doubling up to 30 s while it keeps failing, and reported to msd
 *   (POST /v1/services/{name}/failures), which probes it at once. A failure is reported
 *   once per skip (by the thread that saw it first) and after the call is over, so that a
 *   report never delays a retry.
 * - One call (msi_call_remote, state machine drawn there): deadline = the caller's
 *   ms_next_call_timeout_ms or the service's timeout_ms, within what is left of the
 *   enclosing call's deadline; one request id and one trace span for all its attempts; at
 *   most 5 attempts. After each failed attempt after_failure() alone says what happens next,
 *   from (answer or transport status, sent?, idempotent, in doubt?): that function is where
 *   DESIGN section 4's rules live. Every retry takes one from the service's retry budget
 *   (20% of calls over 10 s, at least 10 a second).
 * - Orchestrators: requests go to the one that answered last, failing over along the
 *   MS_ORCHESTRATOR list. While none answers, calls go on with the instances already known
 *   (skipped ones included when nothing else is left); with none known, a client that has
 *   reached an orchestrator before waits for one (a restart) within the call's deadline,
 *   and one that never has fails at once (MS_EUNAVAILABLE: most likely a wrong address).
 * - Trace context (W3C traceparent): the outermost call starts a trace (random 128-bit id);
 *   a call made inside a service keeps the trace id of the call being served, with a new
 *   span id; flags are passed on ("00" for a new trace: ms samples nothing itself).
 * - Hot path: the HTTP client, its connections and its buffers are the thread's own
 *   (httpc.c); headers are formatted on the stack; the URL and Ms-Instance header of an
 *   instance are made once when it is located.
 * - A private msd (local mode, MS_ORCHESTRATOR unset) is a child process with its state in
 *   a temporary directory; it is stopped and the directory removed by msi_client_stop or,
 *   if the program never calls ms_shutdown, at exit. `--parent-pid` makes it go away if
 *   this process dies without either.
 * - The build hash (SHA-256 of /proc/self/exe) is computed once, on first need, not at
 *   start: an instance's start-up does not pay for it.
 */
#include "codec.h"
#include "httpc.h"
#include "msi.h"
#include "sha256.h"
#include "statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ORCH_MAX 8
#define ATTEMPTS_MAX 5
#define TTL_DEFAULT_MS 1000
#define REFRESH_WAIT_MS 500 /* a background-ish re-locate waits at most this long */
#define SKIP_BASE_MS 1000
#define SKIP_MAX_MS 30000
#define REPORT_TIMEOUT_MS 250
#define DEPLOY_TIMEOUT_MS 15000
#define MSD_START_MS 10000
#define MSD_STOP_MS 15000
#define BUDGET_WINDOW_S 10    /* retry budget: over the last 10 s ... */
#define BUDGET_RATIO 0.20     /* ... retries may be 20% of calls ... */
#define BUDGET_FLOOR_PER_S 10 /* ... and 10 per second are always allowed */
#define BACKOFF_BASE_MS 10    /* n-th retry with back-off: random(0, min(10 ms * 2^n, 1 s)) */
#define BACKOFF_MAX_MS 1000
#define MSD_WAIT_MAX_MS 1000 /* while msd is unreachable, ask again at least this often */

/* ---- process-wide state --------------------------------------------------------------- */

static struct client {
    int started;
    pid_t owner; /* the process that started the client (fork guard) */
    char *orch_buf;
    char *orch[ORCH_MAX]; /* "host:port" */
    int norch;
    _Atomic int orch_cur;  /* the orchestrator that answered last */
    _Atomic int orch_seen; /* some orchestrator answered once: worth waiting for again */
    char *token;           /* call token; NULL: none */
    char build[65];        /* SHA-256 of our executable; "" if unknown */
    char exe[PATH_MAX];
    char state[PATH_MAX]; /* msd's state dir (unix socket, token files) */
    /* private msd */
    pid_t msd_pid;
    char tmpdir[PATH_MAX];
    int atexit_set;
    _Atomic int stopped;
} C;

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

static int64_t
jitter(int64_t ms, int pct)
{
    if (ms <= 0)
        return 0;
    int64_t span = ms * pct / 100;
    if (span <= 0)
        return ms;
    return ms - span + (int64_t)(rng_next() % (uint64_t)(2 * span + 1));
}

static void
sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Sleeps ms, but never past deadline. */
static void
sleep_within(int64_t ms, int64_t deadline)
{
    int64_t left = deadline - msi_now_ms();
    sleep_ms(ms < left ? ms : left);
}

/* ---- per-thread call buffer ------------------------------------------------------------ */

/* The body of the call this thread is making, kept across its attempts (and the lookups in
 * between, which use httpc's own buffer) and reused by its next calls. A thread makes one
 * remote call at a time: nothing runs user code in the middle of msi_call_remote. */
static msi_tbuf call_tbuf = MSI_TBUF_INIT;

static msi_buf *
call_buf(void)
{
    return msi_tbuf_get(&call_tbuf, 256u << 10);
}

/* ---- per-service state ---------------------------------------------------------------- */

typedef struct inst {
    char id[32];
    long long epoch;
    char addr[64];
    char url[MSI_NAME_MAX + 96]; /* http://addr/v1/call/name */
    char hdr[80];                /* "Ms-Instance: id.epoch" */
    int fails;                   /* consecutive failures seen by this client */
    int64_t skip_until;          /* msi_now_ms: skipped until then */
} inst;

typedef struct cstate {
    pthread_mutex_t mu; /* guards everything below */
    inst *list;
    int n, cap;
    ms_lb lb;
    int64_t expires; /* re-locate after (msi_now_ms); 0: now */
    int refreshing;  /* a caller is re-locating a non-empty list */
    unsigned rr;
    /* The service's own options as msd reported them (lookup answers), for MS_CLIENT
     * stubs, which declare none: remote_known is 0 until an answer carried them. */
    int remote_known, remote_idem;
    int64_t remote_timeout_ms;
    /* Retry budget: calls and retries per second over the last BUDGET_WINDOW_S seconds. */
    int64_t b_sec[BUDGET_WINDOW_S];
    unsigned b_calls[BUDGET_WINDOW_S], b_retries[BUDGET_WINDOW_S];
    struct cstate *all_next; /* every cstate ever made (all_cstates): never freed */
} cstate;

/* Every cstate, so that they stay reachable (and valid) even after the registry frees the
 * msi_svc that pointed to one (a library unloaded, destructors at exit). Push-only. */
static cstate *_Atomic all_cstates;

static cstate *
cstate_of(msi_svc *rt)
{
    cstate *cs = __atomic_load_n((cstate **)&rt->client, __ATOMIC_ACQUIRE);
    if (cs)
        return cs;
    cs = calloc(1, sizeof *cs);
    if (!cs)
        return NULL;
    pthread_mutex_init(&cs->mu, NULL);
    void *expected = NULL;
    if (!__atomic_compare_exchange_n(&rt->client, &expected, cs, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        pthread_mutex_destroy(&cs->mu);
        free(cs);
        return expected;
    }
    cs->all_next = atomic_load(&all_cstates);
    while (!atomic_compare_exchange_weak(&all_cstates, &cs->all_next, cs)) {
    }
    return cs;
}

/* ---- talking to msd ------------------------------------------------------------------- */

/* Sends a request to the orchestrators in turn, starting with the one that answered last,
 * until one answers. MS_OK with *out (the parsed body, may be NULL) and resp->status. */
static ms_status
orch_request(const char *method, const char *path, const char *const *headers, json_t *body,
             int64_t deadline, msi_httpc_resp *resp, json_t **out, msi_err *err)
{
    ms_status st = msi_errf(err, MS_EUNAVAILABLE, "no orchestrator configured");
    int start = C.orch_cur;
    for (int k = 0; k < C.norch; k++) {
        int i = (start + k) % C.norch;
        char url[1024];
        snprintf(url, sizeof url, "http://%s%s", C.orch[i], path);
        msi_httpc_req rq = {0};
        rq.method = method;
        rq.url = url;
        rq.bearer = C.token;
        rq.headers = headers;
        rq.deadline_ms = deadline;
        st = msi_httpc_json(&rq, body, resp, out, err);
        if (st == MS_OK) {
            C.orch_cur = i;
            C.orch_seen = 1;
            return MS_OK;
        }
        if (st == MS_ETIMEDOUT)
            break;
    }
    return st;
}

static void
report_failure(const msi_svc *rt, const inst *in, const char *reason)
{
    char path[MSI_NAME_MAX + 64];
    snprintf(path, sizeof path, "/v1/services/%s/failures", rt->name);
    json_t *body = json_pack("{s:s,s:I,s:s}", "instance", in->id, "epoch", (json_int_t)in->epoch,
                             "reason", reason);
    msi_httpc_resp rs;
    json_t *out = NULL;
    msi_err err = {{0}};
    if (!body)
        return;
    if (orch_request("POST", path, NULL, body, msi_now_ms() + REPORT_TIMEOUT_MS, &rs, &out, &err) !=
        MS_OK)
        msi_log(3, "%s: failure report on %s not delivered: %s", rt->name, in->id, err.msg);
    json_decref(out);
    json_decref(body);
}

static ms_lb
parse_lb(const char *s)
{
    if (!s)
        return MS_LB_CLIENT;
    if (strcmp(s, "none") == 0)
        return MS_LB_NONE;
    if (strcmp(s, "orchestrator") == 0)
        return MS_LB_ORCHESTRATOR;
    return MS_LB_CLIENT;
}

/* Replaces the list with msd's answer; keeps what this client knew of instances that stay
 * (their failures). */
static ms_status
take_list(cstate *cs, const msi_svc *rt, json_t *ans, msi_err *err)
{
    json_t *arr = json_object_get(ans, "instances");
    if (!json_is_array(arr))
        return msi_errf(err, MS_EPROTO, "%s: msd's answer has no instance list", rt->name);
    size_t n = json_array_size(arr);
    inst *list = calloc(n ? n : 1, sizeof *list);
    if (!list)
        return msi_errf(err, MS_ENOMEM, "out of memory");
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        const char *id = json_string_value(json_object_get(e, "id"));
        const char *addr = json_string_value(json_object_get(e, "addr"));
        json_t *ep = json_object_get(e, "epoch");
        if (!id || !addr || !json_is_integer(ep) || strlen(id) >= sizeof list[k].id ||
            strlen(addr) >= sizeof list[k].addr)
            continue;
        inst *in = &list[k++];
        snprintf(in->id, sizeof in->id, "%s", id);
        snprintf(in->addr, sizeof in->addr, "%s", addr);
        in->epoch = (long long)json_integer_value(ep);
        snprintf(in->url, sizeof in->url, "http://%s/v1/call/%s", addr, rt->name);
        snprintf(in->hdr, sizeof in->hdr, "Ms-Instance: %s.%lld", id, in->epoch);
    }
    json_t *ttl = json_object_get(ans, "ttl_ms");
    int64_t ttl_ms = json_is_integer(ttl) ? (int64_t)json_integer_value(ttl) : TTL_DEFAULT_MS;
    ms_lb lb = parse_lb(json_string_value(json_object_get(ans, "lb")));
    json_t *idem = json_object_get(ans, "idempotent"), *tmo = json_object_get(ans, "timeout_ms");

    pthread_mutex_lock(&cs->mu);
    if (json_is_boolean(idem)) {
        cs->remote_known = 1;
        cs->remote_idem = json_is_true(idem);
        cs->remote_timeout_ms = json_is_integer(tmo) && json_integer_value(tmo) > 0
                                    ? (int64_t)json_integer_value(tmo)
                                    : 0;
    }
    for (int i = 0; i < k; i++) {
        for (int j = 0; j < cs->n; j++) {
            if (cs->list[j].epoch == list[i].epoch && strcmp(cs->list[j].id, list[i].id) == 0 &&
                strcmp(cs->list[j].addr, list[i].addr) == 0) {
                list[i].fails = cs->list[j].fails;
                list[i].skip_until = cs->list[j].skip_until;
                break;
            }
        }
    }
    inst *old = cs->list;
    cs->list = list;
    cs->n = k;
    cs->cap = (int)n;
    cs->lb = lb;
    cs->expires = msi_now_ms() + jitter(ttl_ms, 25);
    pthread_mutex_unlock(&cs->mu);
    free(old);
    return MS_OK;
}

static pthread_once_t build_once = PTHREAD_ONCE_INIT;

/* Our build (the SHA-256 of our executable), computed on first use: an instance that makes
 * no nested call, or a client before its first call, does not pay for hashing. */
static void
hash_build(void)
{
    msi_err err = {{0}};
    if (msi_sha256_file("/proc/self/exe", C.build, &err) != MS_OK) {
        msi_log(1, "cannot hash this program (%s): locating by signature only", err.msg);
        C.build[0] = '\0';
    }
}

/* GET /v1/services/{name}?build=&sig=: msd holds it until an instance is ready.
 * *unreachable is set when no orchestrator answered at all. */
static ms_status
locate(cstate *cs, const msi_svc *rt, int64_t deadline, int *unreachable, msi_err *err)
{
    char path[MSI_NAME_MAX + 160], dl[48];
    pthread_once(&build_once, hash_build);
    if (C.build[0])
        snprintf(path, sizeof path, "/v1/services/%s?build=%s&sig=%s", rt->name, C.build, rt->sig);
    else
        snprintf(path, sizeof path, "/v1/services/%s?sig=%s", rt->name, rt->sig);
    int64_t left = deadline - msi_now_ms();
    if (left <= 0)
        return msi_errf(err, MS_ETIMEDOUT, "%s: deadline passed while locating", rt->name);
    snprintf(dl, sizeof dl, "Ms-Deadline-Ms: %lld", (long long)left);
    const char *hdrs[] = {dl, NULL};
    msi_httpc_resp rs;
    json_t *ans = NULL;
    msi_err e2 = {{0}};
    ms_status st = orch_request("GET", path, hdrs, NULL, deadline, &rs, &ans, &e2);
    if (st != MS_OK) {
        if (st == MS_ETIMEDOUT) {
            st = msi_errf(err, MS_ETIMEDOUT, "%s: no instance ready before the deadline (%s)",
                          rt->name, e2.msg);
        } else {
            *unreachable = 1;
            st = msi_errf(err, MS_EUNAVAILABLE, "%s: no orchestrator reachable (%s): %s", rt->name,
                          msi_orchestrators ? msi_orchestrators
                          : C.orch[0]       ? C.orch[0]
                                            : "?",
                          e2.msg);
        }
        json_decref(ans);
        return st;
    }
    char text[MSI_ERR_MAX / 2];
    switch (rs.status) {
    case 200:
        st = take_list(cs, rt, ans, err);
        break;
    case 404:
        st = msi_errf(err, MS_ENOTFOUND,
                      "%s: no such service is deployed (msd: %s); deploy the program that "
                      "defines it (msctl deploy)",
                      rt->name, msi_httpc_error_text(&rs, text, sizeof text));
        break;
    case 412:
        st = msi_errf(err, MS_ESIGNATURE,
                      "%s: no deployment has this caller's signature %s (%s) (msd: %s)", rt->name,
                      rt->sig, rt->sigtext, msi_httpc_error_text(&rs, text, sizeof text));
        break;
    case 504:
        st = msi_errf(err, MS_ETIMEDOUT, "%s: no instance ready before the deadline (msd: %s)",
                      rt->name, msi_httpc_error_text(&rs, text, sizeof text));
        break;
    default:
        st = msi_httpc_error_status(&rs, NULL);
        if (st == MS_OK)
            st = MS_EPROTO;
        st = msi_errf(err, st, "%s: msd refused the lookup: %s", rt->name,
                      msi_httpc_error_text(&rs, text, sizeof text));
        break;
    }
    json_decref(ans);
    return st;
}

/* Makes sure the list is usable: re-located when expired (or `force`). With a non-empty
 * list a failed or slow re-locate keeps the old one, unless forced. *unreachable: as for
 * locate. */
static ms_status
ensure_list(cstate *cs, const msi_svc *rt, int64_t deadline, int force, int *unreachable,
            msi_err *err)
{
    pthread_mutex_lock(&cs->mu);
    int64_t now = msi_now_ms();
    int have = cs->n > 0;
    if (have && !force && (now < cs->expires || cs->refreshing)) {
        pthread_mutex_unlock(&cs->mu);
        return MS_OK;
    }
    int refresh = have && !force;
    if (refresh)
        cs->refreshing = 1;
    pthread_mutex_unlock(&cs->mu);

    int64_t dl = deadline;
    if (refresh && dl - now > REFRESH_WAIT_MS)
        dl = now + REFRESH_WAIT_MS;
    ms_status st = locate(cs, rt, dl, unreachable, err);

    pthread_mutex_lock(&cs->mu);
    if (refresh)
        cs->refreshing = 0;
    if (st != MS_OK && cs->n > 0 && !force) {
        msi_log(3, "%s: re-locate failed, keeping %d known instances: %s", rt->name, cs->n,
                err ? err->msg : "");
        cs->expires = msi_now_ms() + jitter(TTL_DEFAULT_MS, 25);
        st = MS_OK;
    }
    pthread_mutex_unlock(&cs->mu);
    return st;
}

/* Tried instances of one call. */
typedef struct tried {
    int n;
    struct {
        char id[32];
        long long epoch;
    } at[ATTEMPTS_MAX];
} tried;

static int
was_tried(const tried *t, const inst *in)
{
    for (int i = 0; i < t->n; i++)
        if (t->at[i].epoch == in->epoch && strcmp(t->at[i].id, in->id) == 0)
            return 1;
    return 0;
}

static void
mark_tried(tried *t, const inst *in)
{
    if (t->n < ATTEMPTS_MAX && !was_tried(t, in)) {
        memcpy(t->at[t->n].id, in->id, sizeof in->id);
        t->at[t->n].epoch = in->epoch;
        t->n++;
    }
}

/* Picks an instance: an untried, unskipped one by the balancing mode; else a tried one not
 * skipped (*again = 1); else, if ignore_skip, any. 0 when the list offers nothing. cs->mu
 * held. */
static int
pick_locked(cstate *cs, const tried *t, int ignore_skip, int64_t now, inst *out, int *again)
{
    int n = cs->n;
    *again = 0;
    if (n <= 0)
        return 0;
    unsigned start = cs->lb == MS_LB_CLIENT ? cs->rr++ : 0;
    int best = -1, second = -1, third = -1;
    for (int k = 0; k < n; k++) {
        int i = (int)((start + (unsigned)k) % (unsigned)n);
        inst *in = &cs->list[i];
        int skipped = in->skip_until > now;
        int seen = t->n && was_tried(t, in);
        if (!skipped && !seen) {
            best = i;
            break;
        }
        if (!skipped && second < 0)
            second = i;
        if (third < 0)
            third = i;
    }
    int i = best >= 0 ? best : second >= 0 ? second : ignore_skip ? third : -1;
    if (i < 0)
        return 0;
    *out = cs->list[i];
    *again = best < 0;
    return 1;
}

static int
pick(cstate *cs, const tried *t, int ignore_skip, inst *out, int *again)
{
    pthread_mutex_lock(&cs->mu);
    int found = pick_locked(cs, t, ignore_skip, msi_now_ms(), out, again);
    pthread_mutex_unlock(&cs->mu);
    return found;
}

/* What this client learns about an instance from an attempt. Returns 1 when a failure is
 * news (the instance was not being skipped already): that one is worth reporting to msd. */
static int
note_instance(cstate *cs, const inst *in, int failed, int stale)
{
    int news = 0;
    if (!failed && !stale && in->fails == 0)
        return 0; /* the common case: nothing to record, no lock */
    pthread_mutex_lock(&cs->mu);
    for (int i = 0; i < cs->n; i++) {
        inst *e = &cs->list[i];
        if (e->epoch != in->epoch || strcmp(e->id, in->id) != 0)
            continue;
        if (!failed) {
            e->fails = 0;
            e->skip_until = 0;
        } else {
            int64_t now = msi_now_ms();
            if (e->skip_until > now)
                break; /* already skipped: another thread saw it first */
            int64_t skip = SKIP_BASE_MS;
            for (int k = 0; k < e->fails && skip < SKIP_MAX_MS; k++)
                skip *= 2;
            e->fails++;
            e->skip_until = now + (skip < SKIP_MAX_MS ? skip : SKIP_MAX_MS);
            news = 1;
        }
        break;
    }
    if (stale)
        cs->expires = 0;
    pthread_mutex_unlock(&cs->mu);
    return news;
}

/* ---- retry budget ------------------------------------------------------------------------
 * Per service, per client: over the last BUDGET_WINDOW_S seconds retries may be at most
 * BUDGET_RATIO of calls, and BUDGET_FLOOR_PER_S retries in the current second are always
 * allowed (so that a client making few calls can still retry). One slot per second in a
 * ring; a slot whose second has passed out of the window is reset before use. */

static int
budget_slot(cstate *cs, int64_t sec)
{
    int i = (int)(sec % BUDGET_WINDOW_S);
    if (cs->b_sec[i] != sec) {
        cs->b_sec[i] = sec;
        cs->b_calls[i] = 0;
        cs->b_retries[i] = 0;
    }
    return i;
}

/* Counts a call; cs->mu held. */
static void
budget_call_locked(cstate *cs, int64_t now)
{
    cs->b_calls[budget_slot(cs, now / 1000)]++;
}

/*
 * The common start of a call, under one lock: the call is counted for the retry budget and,
 * when the list is fresh, an instance is picked (1). 0: the list must be (re-)located first
 * (next_instance does it).
 */
static int
first_pick(cstate *cs, int64_t now, inst *out)
{
    static const tried none = {0};
    int again, found = 0;
    pthread_mutex_lock(&cs->mu);
    budget_call_locked(cs, now);
    if (cs->n > 0 && now < cs->expires)
        found = pick_locked(cs, &none, 0, now, out, &again);
    pthread_mutex_unlock(&cs->mu);
    return found;
}

/* For an MS_CLIENT stub (no implementation here, so no options of its own): the service's
 * idempotent and timeout_ms as msd last reported them. 0 when no answer carried them yet. */
static int
remote_opts(cstate *cs, int *idem, int64_t *timeout_ms)
{
    pthread_mutex_lock(&cs->mu);
    int known = cs->remote_known;
    if (known) {
        *idem = cs->remote_idem;
        *timeout_ms = cs->remote_timeout_ms;
    }
    pthread_mutex_unlock(&cs->mu);
    return known;
}

/* Takes one retry from the budget; 0 when it is spent. */
static int
budget_retry(cstate *cs)
{
    int64_t sec = msi_now_ms() / 1000;
    pthread_mutex_lock(&cs->mu);
    int cur = budget_slot(cs, sec);
    unsigned long calls = 0, retries = 0;
    for (int i = 0; i < BUDGET_WINDOW_S; i++) {
        if (cs->b_sec[i] > sec - BUDGET_WINDOW_S) {
            calls += cs->b_calls[i];
            retries += cs->b_retries[i];
        }
    }
    int ok = cs->b_retries[cur] < BUDGET_FLOOR_PER_S ||
             (double)(retries + 1) <= BUDGET_RATIO * (double)calls;
    if (ok)
        cs->b_retries[cur]++;
    pthread_mutex_unlock(&cs->mu);
    return ok;
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
 * the thread's earlier entries from its duplicate-request cache (dedupe.c, after RIFL).
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
    if (note_instance(c->cs, in, 1, 0) && c->nbad < ATTEMPTS_MAX) {
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
        ms_status lst = ensure_list(c->cs, c->rt, c->deadline, relocates > 0, &unreachable, &err);
        if (lst != MS_OK) {
            if (!unreachable || !C.orch_seen) {
                say(c->why, sizeof c->why, "%s", err.msg);
                return lst;
            }
            c->waited_msd = 1;
            say(c->why, sizeof c->why, "%s", err.msg);
        }
        if (pick(c->cs, &c->t, relocates >= 3 || lst != MS_OK, out, again))
            return MS_OK;
        if (relocates++ || lst != MS_OK) {
            int64_t wait = relocates < 8 ? 10LL << relocates : MSD_WAIT_MAX_MS;
            sleep_within(jitter(wait < MSD_WAIT_MAX_MS ? wait : MSD_WAIT_MAX_MS, 50), c->deadline);
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
            note_instance(c->cs, in, 1, 1);
            if (c->in_doubt)
                break; /* the instance that had the request is gone */
            return RETRY_OTHER_NOW;
        case 429: /* queue full, or */
        case 503: /* draining, or its duplicate-request cache is full: it did not run this */
            if (c->in_doubt)
                return RETRY_SAME;
            if (http == 503 && *st != MS_EOVERLOADED)
                note_instance(c->cs, in, 1, 1); /* draining: on its way out */
            else
                note_instance(c->cs, in, 0, 0); /* busy, but healthy: no skip, no report */
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
    if (!C.started || C.stopped)
        return msi_set_error(MS_EUNAVAILABLE,
                             "%s: the client is not running (ms_init not "
                             "called, or ms_shutdown already called)",
                             rt->name);
    /* Not zeroed as a whole (it is a few KiB): every field is set here or before use. */
    call c;
    c.rt = rt;
    c.cs = cstate_of(rt);
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
    int r_known = client_only && remote_opts(c.cs, &r_idem, &r_timeout);
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
    int picked = first_pick(c.cs, now, &in);
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
            if (client_only && !r_known && remote_opts(c.cs, &r_idem, &r_timeout)) {
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
            if (!budget_retry(c.cs)) {
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
                sleep_within((int64_t)(rng_next() % (uint64_t)(cap + 1)), c.deadline);
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
        rq.bearer = C.token;
        rq.headers = hdrs;
        rq.body = body->p;
        rq.body_len = body->len;
        rq.deadline_ms = adl;
        rq.no_resend = !c.idem;
        msi_httpc_resp rs;
        c.attempts++;
        mark_tried(&c.t, &in);
        st = msi_httpc_do(&rq, &rs, &err);
        long http = st == MS_OK ? rs.status : 0;

        if (http == 200) {
            /* The text lane, else the tree ("bad result: ..." or "result: ..."). */
            st = msi_codec_decode_result(svc, rs.body, rs.len, result, &err);
            if (st != MS_OK)
                say(c.why, sizeof c.why, "%s: instance %s.%lld at %s: %s", rt->name, in.id,
                    in.epoch, in.addr, err.msg);
            note_instance(c.cs, &in, 0, 0);
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
        report_failure(rt, &c.bad[i], c.bad_why[i]);
    if (st == MS_OK)
        return MS_OK;
    if (!c.why[0])
        say(c.why, sizeof c.why, "%s: %s", rt->name, ms_strerror(st));
    msi_set_error(st, "%s", c.why);
    if (st == MS_EAPP)
        msi_set_app_code(c.app_code);
    return st;
}

/* ---- set-up: orchestrators, token, private msd, deployment ---------------------------- */

static void
default_state_dir(char *out, size_t size)
{
    const char *s = getenv("MS_STATE_DIR");
    const char *x = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    if (s && *s)
        snprintf(out, size, "%s", s);
    else if (x && *x)
        snprintf(out, size, "%s/ms", x);
    else if (home && *home)
        snprintf(out, size, "%s/.local/state/ms", home);
    else
        out[0] = '\0';
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void
stop_private_msd(void)
{
    if (C.msd_pid > 0 && getpid() == C.owner) {
        kill(C.msd_pid, SIGTERM);
        int64_t end = msi_now_ms() + MSD_STOP_MS;
        int status;
        while (waitpid(C.msd_pid, &status, WNOHANG) == 0) {
            if (msi_now_ms() >= end) {
                msi_log(1, "private msd (pid %ld) did not stop in time: killed", (long)C.msd_pid);
                kill(C.msd_pid, SIGKILL);
                waitpid(C.msd_pid, &status, 0);
                break;
            }
            sleep_ms(10);
        }
        C.msd_pid = 0;
    }
    if (C.tmpdir[0] && getpid() == C.owner) {
        nftw(C.tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        C.tmpdir[0] = '\0';
    }
}

static void
at_exit(void)
{
    stop_private_msd();
}

/* The msd to run: MS_MSD, else "msd" next to our executable, else "msd" from PATH. */
static void
find_msd(char *out, size_t size)
{
    const char *env = getenv("MS_MSD");
    if (env && *env) {
        snprintf(out, size, "%s", env);
        return;
    }
    if (C.exe[0]) {
        const char *slash = strrchr(C.exe, '/');
        if (slash) {
            snprintf(out, size, "%.*s/msd", (int)(slash - C.exe), C.exe);
            if (access(out, X_OK) == 0)
                return;
        }
    }
    snprintf(out, size, "msd");
}

static void
log_tail(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    char buf[2048];
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, sz > (long)sizeof buf - 1 ? sz - (long)sizeof buf + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    if (n)
        msi_log(0, "private msd's log ends with:\n%s", buf);
}

static ms_status
start_private_msd(msi_err *err)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(C.tmpdir, sizeof C.tmpdir, "%s/ms-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(C.tmpdir)) {
        ms_status st = msi_errf(err, MS_EIO, "cannot make a state directory %s: %s", C.tmpdir,
                                strerror(errno));
        C.tmpdir[0] = '\0';
        return st;
    }
    if (!C.atexit_set) {
        atexit(at_exit);
        C.atexit_set = 1;
    }
    char msd[PATH_MAX], pid[32], logpath[PATH_MAX + 16], addrpath[PATH_MAX + 16];
    find_msd(msd, sizeof msd);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    snprintf(logpath, sizeof logpath, "%s/msd.log", C.tmpdir);
    snprintf(addrpath, sizeof addrpath, "%s/" MSI_STATE_ADDR, C.tmpdir);
    char *argv[] = {msd,
                    (char *)"--listen",
                    (char *)"127.0.0.1:0",
                    (char *)"--state",
                    C.tmpdir,
                    (char *)"--parent-pid",
                    pid,
                    NULL};
    int verbose = msi_log_level >= 2;
    int logfd = verbose ? -1 : open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    pid_t child = fork();
    if (child == 0) {
        /* Only async-signal-safe calls from here to exec. */
        if (nullfd >= 0)
            dup2(nullfd, 0);
        if (logfd >= 0) {
            dup2(logfd, 1);
            dup2(logfd, 2);
        }
        if (strchr(msd, '/'))
            execv(msd, argv);
        else
            execvp(msd, argv);
        _exit(127);
    }
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    if (child < 0)
        return msi_errf(err, MS_EIO, "cannot start msd: fork: %s", strerror(errno));
    C.msd_pid = child;

    int64_t end = msi_now_ms() + MSD_START_MS;
    while (msi_now_ms() < end) {
        int status;
        if (waitpid(child, &status, WNOHANG) == child) {
            C.msd_pid = 0;
            if (!verbose)
                log_tail(logpath);
            return msi_errf(err, MS_EUNAVAILABLE,
                            "private msd (%s) exited at start (status %d); set MS_MSD to the "
                            "msd program or MS_ORCHESTRATOR to a running one",
                            msd, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
        char *addr = msi_read_first_line(addrpath);
        if (addr && strchr(addr, ':')) {
            free(C.orch_buf);
            C.orch_buf = addr;
            C.orch[0] = addr;
            C.norch = 1;
            snprintf(C.state, sizeof C.state, "%s", C.tmpdir);
            msi_log(2, "private msd (pid %ld) at %s, state %s", (long)child, addr, C.tmpdir);
            return MS_OK;
        }
        free(addr);
        sleep_ms(10);
    }
    stop_private_msd();
    return msi_errf(err, MS_EUNAVAILABLE, "private msd (%s) did not come up within %d ms", msd,
                    MSD_START_MS);
}

static void
count_provider(ms__service *svc, void *arg)
{
    if (svc->invoke)
        ++*(int *)arg;
}

/* Registers our executable with msd over its trusted unix socket, if there is one. */
static void
register_deployment(void)
{
    int providers = 0;
    msi_registry_each(count_provider, &providers);
    if (!providers || !C.exe[0] || !C.state[0])
        return;
    char sock[PATH_MAX + 16];
    snprintf(sock, sizeof sock, "%s/" MSI_STATE_SOCK, C.state);
    struct stat sb;
    if (stat(sock, &sb) != 0 || !S_ISSOCK(sb.st_mode)) {
        msi_log(3, "no msd unix socket at %s: not registering this program (msctl deploy)", sock);
        return;
    }
    json_t *body = json_pack("{s:s,s:[]}", "path", C.exe, "argv");
    msi_httpc_req rq = {0};
    rq.url = "http://localhost/v1/deployments";
    rq.unix_path = sock;
    rq.deadline_ms = msi_now_ms() + DEPLOY_TIMEOUT_MS;
    msi_httpc_resp rs;
    json_t *ans = NULL;
    msi_err err = {{0}};
    ms_status st = body ? msi_httpc_json(&rq, body, &rs, &ans, &err) : MS_ENOMEM;
    if (st != MS_OK) {
        msi_log(3, "registering %s with msd at %s failed: %s", C.exe, sock, err.msg);
    } else if (rs.status != 200 && rs.status != 201) {
        char text[256];
        msi_log(rs.status == 401 || rs.status == 403 ? 3 : 1,
                "msd at %s refused to register %s: %s", sock, C.exe,
                msi_httpc_error_text(&rs, text, sizeof text));
    } else {
        const char *b = json_string_value(json_object_get(ans, "build"));
        pthread_once(&build_once, hash_build);
        if (b && C.build[0] && strcmp(b, C.build) != 0)
            msi_log(1, "msd registered build %s but this program is %s", b, C.build);
        else
            msi_log(3, "registered %s with msd as build %s", C.exe, b ? b : "?");
    }
    json_decref(ans);
    json_decref(body);
}

ms_status
msi_client_start(void)
{
    if (C.started)
        return MS_OK;
    msi_err err = {{0}};
    ms_status st = MS_OK;
    C.owner = getpid();
    C.stopped = 0;

    ssize_t n = readlink("/proc/self/exe", C.exe, sizeof C.exe - 1);
    C.exe[n > 0 ? n : 0] = '\0';
    if (strstr(C.exe, " (deleted)"))
        C.exe[0] = '\0'; /* replaced on disk: our build cannot be deployed from there */

    free(C.orch_buf);
    C.orch_buf = NULL;
    C.norch = 0;
    free(C.token);
    C.token = NULL;
    if (msi_orchestrators && *msi_orchestrators) {
        C.orch_buf = strdup(msi_orchestrators);
        if (!C.orch_buf)
            return msi_set_error(MS_ENOMEM, "out of memory");
        for (char *p = C.orch_buf; p && *p && C.norch < ORCH_MAX;) {
            char *comma = strchr(p, ',');
            if (comma)
                *comma = '\0';
            if (*p)
                C.orch[C.norch++] = p;
            p = comma ? comma + 1 : NULL;
        }
        default_state_dir(C.state, sizeof C.state);
    } else if (msi_serving) {
        return msi_set_error(MS_EUNAVAILABLE, "instance without an orchestrator: no nested "
                                              "calls");
    } else if (msi_mode == MS_MODE_LOCAL) {
        st = start_private_msd(&err);
        if (st != MS_OK)
            return msi_set_error(st, "local mode: %s", err.msg);
    } else {
        return msi_set_error(MS_EUNAVAILABLE, "mode %s needs MS_ORCHESTRATOR",
                             ms_mode_name(msi_mode));
    }

    /* Token: MS_TOKEN, MS_TOKEN_FILE (read by ms_init), <state>/call-token, <state>/token. */
    if (msi_token) {
        C.token = strdup(msi_token);
    } else if (C.state[0]) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/" MSI_STATE_CALL_TOKEN, C.state);
        C.token = msi_read_first_line(path);
        if (!C.token) {
            snprintf(path, sizeof path, "%s/" MSI_STATE_TOKEN, C.state);
            C.token = msi_read_first_line(path);
        }
    }
    C.started = 1;
    if (!msi_serving)
        register_deployment();
    return MS_OK;
}

void
msi_client_stop(void)
{
    if (!C.started)
        return;
    /* Calls racing with ms_shutdown fail (C.stopped) but may still read the orchestrator
     * list and token: those are freed only by the next msi_client_start. */
    C.stopped = 1;
    msi_httpc_thread_release();
    msi_tbuf_release(&call_tbuf); /* the main thread's */
    stop_private_msd();
    C.started = 0;
}
