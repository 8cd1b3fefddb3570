/*
 * instances.c: per service, the instances this client knows (located through msd), which one
 * to call (balancing, skipping failed ones, failure reports) and the retry budget.
 * Part of src/lib/client (client_int.h).
 *
 * Design notes
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
 */
#include "client_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every cstate, so that they stay reachable (and valid) even after the registry frees the
 * msi_svc that pointed to one (a library unloaded, destructors at exit). Push-only. */
static cstate *_Atomic all_cstates;

cstate *
msi_cl_cstate_of(msi_svc *rt)
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

void
msi_cl_report_failure(const msi_svc *rt, const inst *in, const char *reason)
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
    if (msi_cl_orch_request("POST", path, NULL, body, msi_now_ms() + REPORT_TIMEOUT_MS, &rs, &out,
                            &err) != MS_OK)
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
    cs->expires = msi_now_ms() + msi_cl_jitter(ttl_ms, 25);
    pthread_mutex_unlock(&cs->mu);
    free(old);
    return MS_OK;
}

/* GET /v1/services/{name}?build=&sig=: msd holds it until an instance is ready.
 * *unreachable is set when no orchestrator answered at all. */
static ms_status
locate(cstate *cs, const msi_svc *rt, int64_t deadline, int *unreachable, msi_err *err)
{
    char path[MSI_NAME_MAX + 160], dl[48];
    pthread_once(&msi_cl_build_once, msi_cl_hash_build);
    if (msi_client.build[0])
        snprintf(path, sizeof path, "/v1/services/%s?build=%s&sig=%s", rt->name, msi_client.build,
                 rt->sig);
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
    ms_status st = msi_cl_orch_request("GET", path, hdrs, NULL, deadline, &rs, &ans, &e2);
    if (st != MS_OK) {
        if (st == MS_ETIMEDOUT) {
            st = msi_errf(err, MS_ETIMEDOUT, "%s: no instance ready before the deadline (%s)",
                          rt->name, e2.msg);
        } else {
            *unreachable = 1;
            st = msi_errf(err, MS_EUNAVAILABLE, "%s: no orchestrator reachable (%s): %s", rt->name,
                          msi_client.conf_orch ? msi_client.conf_orch
                          : msi_client.orch[0] ? msi_client.orch[0]
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
ms_status
msi_cl_ensure_list(cstate *cs, const msi_svc *rt, int64_t deadline, int force, int *unreachable,
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
        cs->expires = msi_now_ms() + msi_cl_jitter(TTL_DEFAULT_MS, 25);
        st = MS_OK;
    }
    pthread_mutex_unlock(&cs->mu);
    return st;
}

static int
was_tried(const tried *t, const inst *in)
{
    for (int i = 0; i < t->n; i++)
        if (t->at[i].epoch == in->epoch && strcmp(t->at[i].id, in->id) == 0)
            return 1;
    return 0;
}

void
msi_cl_mark_tried(tried *t, const inst *in)
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

int
msi_cl_pick(cstate *cs, const tried *t, int ignore_skip, inst *out, int *again)
{
    pthread_mutex_lock(&cs->mu);
    int found = pick_locked(cs, t, ignore_skip, msi_now_ms(), out, again);
    pthread_mutex_unlock(&cs->mu);
    return found;
}

/* What this client learns about an instance from an attempt. Returns 1 when a failure is
 * news (the instance was not being skipped already): that one is worth reporting to msd. */
int
msi_cl_note_instance(cstate *cs, const inst *in, int failed, int stale)
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
int
msi_cl_first_pick(cstate *cs, int64_t now, inst *out)
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
int
msi_cl_remote_opts(cstate *cs, int *idem, int64_t *timeout_ms)
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
int
msi_cl_budget_retry(cstate *cs)
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
