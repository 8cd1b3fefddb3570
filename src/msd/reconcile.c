/*
 * reconcile.c: the reconcile loop: desired vs actual state, instance lifecycle, probes,
 * back-off, re-adoption, drains (DESIGN sections 2 and 4).
 *
 * Instance lifecycle (one slot "i-N"; every start of the slot is a new epoch):
 *
 *               spawn_instance()                become_ready(): registered by a heartbeat
 *   (new slot) ─────────────────▶ STARTING ───────────────────────────────────▶ READY
 *        ▲                          │         with its address, then a probe passed  │ ▲
 *        │     start deadline:      │ exit seen:                       probe_failed() │ │
 *        │     mark_dead()          │ on_exit_seen()                                 ▼ │
 *        │                          ▼                                 probe_passed() SUSPECT
 *        │                         DEAD ◀── exit seen: on_exit_seen(); ──────────────┘
 *        │                          │       3rd failed probe in a row: mark_dead()
 *        └── spawn_instance() ──────┘  (same slot, epoch + 1, once the process is gone,
 *                                       after back-off when the death was quick)
 *
 *   retire (scale down, DELETE, drain, shutdown): msd_retire() marks the slot, then
 *   start_drain():  any state ──▶ DRAINING: POST /v1/drain, grace = timeout_ms + 1 s
 *                   ──(grace over) SIGTERM ──(term grace over) SIGKILL; on_exit_seen() ──▶ slot
 *                   removed: remove_slot().
 *   msd restart: adopt_all(): a recorded live instance whose pid still has the recorded
 *   start time is re-adopted as SUSPECT (no traffic until a probe passes: probe_passed());
 *   one whose process is gone is DEAD and restarts at once.
 *
 * Invariants
 *   1. Only this thread spawns, signals, probes, changes an instance's state or removes a
 *      slot. API handlers change desired counts and heartbeat data, mark slots retiring
 *      and ask for probes, under msd.mu, then wake the loop.
 *   2. An instance's record is written (store) before its process is spawned, and after
 *      every state change.
 *   3. A slot never has two processes: a DEAD slot restarts only once its process's exit
 *      has been seen.
 *   4. Back-off only follows a quick death: before becoming ready (a start-up death), or
 *      within quick_death_ms of it. Only start-up deaths count towards a crash loop
 *      (crashloop_deaths of them in a row over a service's instances); see "Deaths" below.
 *   5. Every lookup of a service with nothing wanted sets desired to at least 1; the loop
 *      then makes one start however many lookups wait.
 *   6. Autoscaling (DESIGN section 5) runs on the demand-sample tick, once a second, after
 *      msd_sample_demand(): msd_autoscale() asks the pure policy (autoscale.c) about every
 *      service that is not pinned and changes desired only; the ordinary reconcile pass
 *      then spawns, or retires through msd_retire() -> start_drain(), like for a manual
 *      scale. Every change of desired (manual, lookup, autoscale) stamps scaled_mono,
 *      which holds scale-downs back for --scale-stabilise-ms.
 *
 * Deaths, back-off, crash loops (decision; docs/msd.md says the same)
 *   msd cannot tell a kill -9, an OOM kill or a crash of a serving instance from one
 *   another, and none of them says that the program cannot run: it became ready. So the
 *   kind of death decides, in mark_dead():
 *   - Start-up death (the instance never became ready this epoch: it exited, or missed its
 *     start deadline): the slot restarts after backoff_base_ms * 2^(n-1), n its quick deaths
 *     in a row, capped at start_backoff_max_ms (30 s). crashloop_deaths of them in a row
 *     over the service's instances make a crash loop: an event, `crashloop` in listings,
 *     no scale-up, and start-up deaths then restart only every crashloop_retry_ms. An
 *     instance becoming ready ends both the run of start-up deaths and the crash loop
 *     (become_ready()): the program can start.
 *   - Quick death after ready (ready for less than quick_death_ms): the same doubling, but
 *     capped at backoff_max_ms (2 s): a program that keeps getting killed while serving
 *     comes back within 2 s, and one that crashes soon after each start still cannot spin.
 *     It never makes a crash loop.
 *   - Any other death restarts at once and resets the slot's count.
 *   Lookups (msd_wait_ready()) are held while an instance may still be ready before their
 *   deadline (msd_service_may_be_ready()); 503 "crash loop" only when the service is in one
 *   and none can be.
 *
 * The loop sleeps in curl_multi_poll on the probes in flight, an eventfd (msd_wake), the
 * pidfds of every instance (exits are seen at once) and the pidfd of --parent-pid, with a
 * timeout to the nearest timer (probe, deadline, restart, demand sample).
 */
#include "runner.h"
#include "statedir.h"
#include "store.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum { X_PROBE, X_DRAIN };

/* An HTTP exchange with an instance in flight (probe or drain). */
typedef struct xfer {
    CURL *easy;
    int kind;
    char id[MSD_ID_MAX];
    int64_t epoch;
    struct curl_slist *hdrs;
    char body[512];
    size_t nbody;
    char err[CURL_ERROR_SIZE];
    struct xfer *next;
} xfer;

struct msd_reconciler {
    pthread_t thread;
    int running;
    int wake_fd;
    int parent_fd;
    CURLM *multi;
    xfer *xfers;
    int stop;
    int drain;
    int64_t next_sample_mono;
    int64_t stop_deadline_mono;
};

/* ------------------------------------------------------------------------------------------
 * Helpers.
 * ---------------------------------------------------------------------------------------- */

static int64_t
min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int
proc_alive(const msd_instance *in)
{
    return in->proc.pid > 0 && !in->proc.exited;
}

static void
set_state(msd *m, msd_instance *in, msd_istate st, int64_t now)
{
    in->state = st;
    in->state_mono = now;
    msd_save_instance(m, in);
    pthread_cond_broadcast(&m->changed);
}

static int
grace_ms(msd *m, const msd_instance *in)
{
    int64_t g = (int64_t)in->svc->timeout_ms + 1000;
    return (int)min64(g, m->cfg.grace_max_ms);
}

/* base * 2^(quick_deaths - 1), capped at max. */
static int
backoff_ms(msd *m, int quick_deaths, int max)
{
    int64_t d = m->cfg.backoff_base_ms;
    for (int i = 1; i < quick_deaths && d < max; i++)
        d *= 2;
    return (int)min64(d, max);
}

static void
token_path(msd *m, const msd_instance *in, char *buf, size_t len)
{
    msd_fmt(buf, len, "%s/instances/%s.token", m->cfg.state_dir, in->id);
}

/* ------------------------------------------------------------------------------------------
 * HTTP exchanges with instances (curl multi).
 * ---------------------------------------------------------------------------------------- */

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    xfer *x = arg;
    size_t n = size * nmemb;
    size_t room = sizeof x->body - 1 - x->nbody;
    size_t take = n < room ? n : room;
    memcpy(x->body + x->nbody, ptr, take);
    x->nbody += take;
    x->body[x->nbody] = '\0';
    return n;
}

static int
start_xfer(msd *m, msd_instance *in, int kind)
{
    msd_reconciler *rc = m->rec;
    xfer *x = calloc(1, sizeof *x);
    if (!x)
        return -ENOMEM;
    x->kind = kind;
    x->epoch = in->epoch;
    msd_fmt(x->id, sizeof x->id, "%s", in->id);
    x->easy = curl_easy_init();
    if (!x->easy) {
        free(x);
        return -ENOMEM;
    }
    char url[128];
    msd_fmt(url, sizeof url, "http://%s%s", in->addr, kind == X_PROBE ? "/v1/health" : "/v1/drain");
    curl_easy_setopt(x->easy, CURLOPT_URL, url);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->easy, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->err);
    curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http");
    long timeout = kind == X_PROBE ? m->cfg.probe_timeout_ms : 1000;
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, timeout);
    if (kind == X_DRAIN) {
        char auth[128];
        /* A drain is a retirement: the admin token (docs/protocol.md, "Credentials"). */
        msd_fmt(auth, sizeof auth, "Authorization: Bearer %s", m->admin_token);
        x->hdrs = curl_slist_append(NULL, auth);
        struct curl_slist *h2 =
            x->hdrs ? curl_slist_append(x->hdrs, "Content-Type: application/json") : NULL;
        if (h2)
            x->hdrs = h2;
        curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, "{}");
    }
    if (curl_multi_add_handle(rc->multi, x->easy) != CURLM_OK) {
        curl_slist_free_all(x->hdrs);
        curl_easy_cleanup(x->easy);
        free(x);
        return -EIO;
    }
    x->next = rc->xfers;
    rc->xfers = x;
    return 0;
}

static void
free_xfer(msd_reconciler *rc, xfer *x)
{
    for (xfer **p = &rc->xfers; *p; p = &(*p)->next) {
        if (*p == x) {
            *p = x->next;
            break;
        }
    }
    curl_multi_remove_handle(rc->multi, x->easy);
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    free(x);
}

/* ------------------------------------------------------------------------------------------
 * Transitions.
 * ---------------------------------------------------------------------------------------- */

static void mark_dead(msd *m, msd_instance *in, int64_t now, const char *why);

/* (new slot) or DEAD -> STARTING */
static void
spawn_instance(msd *m, msd_instance *in, int64_t now)
{
    msd_service *svc = in->svc;
    msd_deployment *dep = svc->dep;
    char path[4096], logp[4096], msg[256] = "";
    in->epoch++;
    if (in->epoch > 1)
        in->restarts++;
    in->registered = 0;
    in->probed_ok = 0;
    in->probe_fails = 0;
    in->probing = 0;
    in->stop_phase = 0;
    in->ready_mono = 0;
    in->draining_reported = 0;
    in->busy = in->cpu = 0;
    in->inflight = in->queued = in->calls = 0;
    in->addr[0] = '\0';
    in->last_error[0] = '\0';
    memset(&in->proc, 0, sizeof in->proc);
    in->proc.exit_fd = -1;
    in->proc.status = -1;
    in->started_ms = msd_wall_ms();
    in->deadline_mono = now + m->cfg.start_deadline_ms;
    in->state = MSD_I_STARTING;
    in->state_mono = now;

    /* One token per slot, kept across epochs: a process of an older epoch can still
     * authenticate, and so learns from the 410 that it must exit. Not fsync'd (~1 ms of a
     * first call): the file only matters while this boot lasts. */
    int res = in->token[0] ? 0 : msd_random_hex(in->token);
    token_path(m, in, path, sizeof path);
    if (!res)
        res = msd_write_file_nosync(path, in->token, strlen(in->token), 0600);
    if (res) {
        msd_fmt(msg, sizeof msg, "cannot write %s: %s", path, strerror(-res));
        goto fail;
    }
    /* Invariant 2: the record exists before the process. */
    msd_save_instance(m, in);

    char e_serve[MSD_NAME_MAX + 16], e_id[64], e_epoch[64], e_itok[4200], e_tok[4200], e_orch[128],
        e_admin[96];
    msd_fmt(e_serve, sizeof e_serve, "MS_SERVE=%s", svc->name);
    msd_fmt(e_id, sizeof e_id, "MS_INSTANCE_ID=%s", in->id);
    msd_fmt(e_epoch, sizeof e_epoch, "MS_INSTANCE_EPOCH=%lld", (long long)in->epoch);
    msd_fmt(e_itok, sizeof e_itok, "MS_INSTANCE_TOKEN_FILE=%s", path);
    msd_fmt(e_tok, sizeof e_tok, "MS_TOKEN_FILE=%s/" MSI_STATE_CALL_TOKEN, m->cfg.state_dir);
    msd_fmt(e_orch, sizeof e_orch, "MS_ORCHESTRATOR=%s", m->addr);
    /* The admin token's hash, not the token: it lets the instance recognise the token, and is
     * no credential itself, so it may travel in the environment. */
    msd_fmt(e_admin, sizeof e_admin, "MS_ADMIN_TOKEN_SHA256=%s", m->admin_sha256);
    const char *env[] = {e_serve, e_id, e_epoch, e_itok, e_tok, e_orch, e_admin, NULL};
    msd_fmt(logp, sizeof logp, "%s/logs/%s.log", m->cfg.state_dir, in->id);
    char call_tok[4200];
    msd_fmt(call_tok, sizeof call_tok, "%s/" MSI_STATE_CALL_TOKEN, m->cfg.state_dir);
    const char *files[] = {path, call_tok, NULL};
    msd_spawn sp = {.exe = dep->exe,
                    .argv0 = dep->path,
                    .args = dep->argv,
                    .env = env,
                    .log_path = logp,
                    .instance = in->id,
                    .epoch = in->epoch,
                    .build = svc->build,
                    .files = files};
    res = m->runner->ops->spawn(m->runner, &sp, &in->proc, in->addr, msg, sizeof msg);
    if (res)
        goto fail;
    m->n_spawns++;
    msd_save_instance(m, in);
    msd_emit(m, "spawn", svc->name, in->id, "epoch %lld, pid %ld, %s, build %.12s",
             (long long)in->epoch, (long)in->proc.pid,
             in->addr[0] ? in->addr : "address from its first heartbeat", svc->build);
    return;
fail:
    msd_log("error", "%s %s: cannot start: %s", svc->name, in->id, msg);
    mark_dead(m, in, now, msg);
}

/* STARTING (registered, probe passed) or SUSPECT (probe passed) -> READY */
static void
become_ready(msd *m, msd_instance *in, int64_t now)
{
    msd_service *svc = in->svc;
    msd_istate prev = in->state;
    if (prev == MSD_I_STARTING || !in->ready_mono)
        in->ready_mono = now;
    in->ready_ms = msd_wall_ms();
    set_state(m, in, MSD_I_READY, now);
    if (prev == MSD_I_STARTING)
        msd_emit(m, "ready", svc->name, in->id, "epoch %lld ready in %lld ms at %s",
                 (long long)in->epoch,
                 (long long)(now - (in->deadline_mono - m->cfg.start_deadline_ms)), in->addr);
    else
        msd_emit(m, "recovered", svc->name, in->id, "probe passed; taking traffic again");
    if (prev == MSD_I_STARTING) {
        /* The program can start: the run of start-up deaths, and any crash loop, is over. */
        if (svc->crashloop)
            msd_emit(m, "crashloop-over", svc->name, in->id,
                     "epoch %lld became ready: crash loop over", (long long)in->epoch);
        svc->startup_deaths = 0;
        svc->crashloop = 0;
    }
}

/* STARTING, READY, SUSPECT -> DEAD (the process is killed if it still runs) */
static void
mark_dead(msd *m, msd_instance *in, int64_t now, const char *why)
{
    msd_service *svc = in->svc;
    /* The policy is the top comment's "Deaths, back-off, crash loops". */
    int startup = in->state == MSD_I_STARTING;
    int quick = startup || (in->ready_mono && now - in->ready_mono < m->cfg.quick_death_ms);
    int64_t delay = 0;
    if (quick) {
        in->quick_deaths++;
        delay = backoff_ms(m, in->quick_deaths,
                           startup ? m->cfg.start_backoff_max_ms : m->cfg.backoff_max_ms);
    } else {
        in->quick_deaths = 0;
    }
    if (startup) {
        svc->startup_deaths++;
        if (svc->startup_deaths >= m->cfg.crashloop_deaths && !svc->crashloop) {
            svc->crashloop = 1;
            msd_emit(m, "crashloop", svc->name, in->id,
                     "%d deaths before ready in a row (last: %s); retrying every %d ms",
                     svc->startup_deaths, why, m->cfg.crashloop_retry_ms);
        }
        if (svc->crashloop && delay < m->cfg.crashloop_retry_ms)
            delay = m->cfg.crashloop_retry_ms;
    }
    msd_fmt(in->last_error, sizeof in->last_error, "%s", why);
    in->restart_mono = now + delay;
    in->probing = 0;
    if (proc_alive(in))
        m->runner->ops->signal(m->runner, &in->proc, SIGKILL);
    set_state(m, in, MSD_I_DEAD, now);
    if (delay)
        msd_emit(m, "dead", svc->name, in->id, "epoch %lld: %s; restart in %lld ms (back-off)",
                 (long long)in->epoch, why, (long long)delay);
    else
        msd_emit(m, "dead", svc->name, in->id, "epoch %lld: %s; restarting", (long long)in->epoch,
                 why);
}

/* any -> DRAINING */
static void
start_drain(msd *m, msd_instance *in, int64_t now)
{
    in->probing = 0;
    set_state(m, in, MSD_I_DRAINING, now);
    if (in->registered && in->addr[0] && start_xfer(m, in, X_DRAIN) == 0) {
        in->stop_phase = 0;
        in->deadline_mono = now + grace_ms(m, in);
    } else {
        m->runner->ops->signal(m->runner, &in->proc, SIGTERM);
        in->stop_phase = 1;
        in->deadline_mono = now + m->cfg.term_grace_ms;
    }
    msd_emit(m, "drain", in->svc->name, in->id, "epoch %lld: draining (%s)", (long long)in->epoch,
             in->stop_phase == 0 ? "drain handshake" : "SIGTERM");
}

/* DRAINING past a deadline: SIGTERM, then SIGKILL. */
static void
drain_timer(msd *m, msd_instance *in, int64_t now)
{
    if (in->stop_phase == 0) {
        m->runner->ops->signal(m->runner, &in->proc, SIGTERM);
        in->stop_phase = 1;
        in->deadline_mono = now + m->cfg.term_grace_ms;
        msd_emit(m, "sigterm", in->svc->name, in->id, "grace period over; SIGTERM");
    } else if (in->stop_phase == 1) {
        m->runner->ops->signal(m->runner, &in->proc, SIGKILL);
        in->stop_phase = 2;
        in->deadline_mono = now + 5000;
        msd_emit(m, "sigkill", in->svc->name, in->id, "still running after SIGTERM; SIGKILL");
    } else {
        msd_log("error", "%s: pid %ld survives SIGKILL; forgetting it", in->id, (long)in->proc.pid);
        m->runner->ops->release(m->runner, &in->proc);
        in->proc.exited = 1;
    }
}

static void
remove_slot(msd *m, msd_instance *in)
{
    char path[4096];
    for (msd_instance **p = &m->instances; *p; p = &(*p)->next) {
        if (*p == in) {
            *p = in->next;
            break;
        }
    }
    m->runner->ops->release(m->runner, &in->proc);
    if (m->store && m->store->ops->del_instance(m->store, in->id) < 0)
        msd_log("error", "cannot remove instance %s from the store", in->id);
    token_path(m, in, path, sizeof path);
    unlink(path);
    msd_emit(m, "removed", in->svc->name, in->id, "slot removed");
    pthread_cond_broadcast(&m->changed);
    msd_instance_free(in);
}

static void
exit_text(const msd_proc *p, char *buf, size_t len)
{
    if (!p->child || p->status < 0)
        msd_fmt(buf, len, "process %ld exited", (long)p->pid);
    else if (WIFEXITED(p->status))
        msd_fmt(buf, len, "process %ld exited with status %d", (long)p->pid,
                WEXITSTATUS(p->status));
    else if (WIFSIGNALED(p->status))
        msd_fmt(buf, len, "process %ld killed by signal %d (%s)", (long)p->pid, WTERMSIG(p->status),
                strsignal(WTERMSIG(p->status)));
    else
        msd_fmt(buf, len, "process %ld ended", (long)p->pid);
}

/* The process of a slot exited. Returns 1 if the slot was removed. */
static int
on_exit_seen(msd *m, msd_instance *in, int64_t now)
{
    char why[160];
    exit_text(&in->proc, why, sizeof why);
    m->runner->ops->release(m->runner, &in->proc);
    m->n_exits++;
    if (in->state == MSD_I_DRAINING || in->retiring) {
        msd_emit(m, "stopped", in->svc->name, in->id, "epoch %lld: %s", (long long)in->epoch, why);
        remove_slot(m, in);
        return 1;
    }
    if (in->state == MSD_I_DEAD) {
        msd_save_instance(m, in); /* killed earlier; now gone */
        return 0;
    }
    mark_dead(m, in, now, why);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Probes.
 * ---------------------------------------------------------------------------------------- */

static void
probe_passed(msd *m, msd_instance *in, int64_t now)
{
    in->probe_fails = 0;
    in->probed_ok = 1;
    in->next_probe_mono = now + m->cfg.probe_interval_ms;
    if ((in->state == MSD_I_STARTING && in->registered) || in->state == MSD_I_SUSPECT)
        become_ready(m, in, now);
}

static void
probe_failed(msd *m, msd_instance *in, int64_t now, const char *why)
{
    m->n_probe_fails++;
    in->probe_fails++;
    msd_fmt(in->last_error, sizeof in->last_error, "probe: %s", why);
    in->next_probe_mono = now + (in->state == MSD_I_STARTING ? min64(m->cfg.probe_interval_ms, 200)
                                                             : m->cfg.probe_interval_ms);
    if (in->state == MSD_I_READY) {
        set_state(m, in, MSD_I_SUSPECT, now);
        msd_emit(m, "suspect", in->svc->name, in->id, "probe failed: %s", why);
    } else if (in->state == MSD_I_SUSPECT && in->probe_fails >= m->cfg.probe_failures_dead) {
        char msg[200];
        msd_fmt(msg, sizeof msg, "%d probes failed in a row (last: %s)", in->probe_fails, why);
        mark_dead(m, in, now, msg);
    }
}

/* Whether a health reply names this instance (an old process on a reused port would
 * answer with another id or epoch). A reply without them is taken as is. */
static int
health_matches(const xfer *x)
{
    json_t *j = json_loads(x->body, 0, NULL);
    if (!j)
        return 1;
    int ok = 1;
    const char *id = json_string_value(json_object_get(j, "id"));
    json_t *ep = json_object_get(j, "epoch");
    if (id && strcmp(id, x->id) != 0)
        ok = 0;
    if (json_is_integer(ep) && json_integer_value(ep) != x->epoch)
        ok = 0;
    json_decref(j);
    return ok;
}

static void
xfer_done(msd *m, xfer *x, CURLcode cc, int64_t now)
{
    msd_instance *in = msd_instance_find(m, x->id);
    if (!in || in->epoch != x->epoch)
        return;
    if (x->kind == X_DRAIN) {
        long dcode = 0;
        if (cc != CURLE_OK)
            msd_log("debug", "%s: drain request failed: %s", in->id,
                    x->err[0] ? x->err : curl_easy_strerror(cc));
        else if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &dcode) == CURLE_OK &&
                 dcode != 200)
            msd_log("warn", "%s: POST /v1/drain answered %ld (%.200s); SIGTERM when the grace ends",
                    in->id, dcode, x->body);
        return;
    }
    in->probing = 0;
    m->n_probes++;
    if (in->state == MSD_I_DRAINING || in->state == MSD_I_DEAD)
        return;
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    char why[CURL_ERROR_SIZE + 32];
    if (cc != CURLE_OK) {
        msd_fmt(why, sizeof why, "%s", x->err[0] ? x->err : curl_easy_strerror(cc));
        probe_failed(m, in, now, why);
    } else if (code != 200) {
        msd_fmt(why, sizeof why, "GET /v1/health answered %ld", code);
        probe_failed(m, in, now, why);
    } else if (!health_matches(x)) {
        probe_failed(m, in, now, "another instance answers on this address");
    } else {
        probe_passed(m, in, now);
    }
}

void
msd_probe_soon(msd *m, msd_instance *in)
{
    if (in->state != MSD_I_READY && in->state != MSD_I_SUSPECT)
        return;
    /* At once, but not more than 10 times a second however many reports arrive. */
    int64_t at = in->probe_start_mono + 100;
    int64_t now = msi_now_ms();
    if (at < now)
        at = now;
    if (at < in->next_probe_mono) {
        in->next_probe_mono = at;
        msd_wake(m);
    }
}

/* ------------------------------------------------------------------------------------------
 * Desired state.
 * ---------------------------------------------------------------------------------------- */

void
msd_set_desired(msd *m, msd_service *svc, int n, const char *why)
{
    if (svc->desired == n)
        return;
    msd_emit(m, "scale", svc->name, NULL, "desired %d -> %d (%s), build %.12s", svc->desired, n,
             why, svc->build);
    svc->desired = n;
    svc->scaled_mono = msi_now_ms();
    msd_save_service(m, svc);
    msd_wake(m);
}

void
msd_set_pinned(msd *m, msd_service *svc, int pinned, const char *why)
{
    pinned = pinned != 0;
    if (svc->pinned == pinned)
        return;
    svc->pinned = pinned;
    svc->as_hold = MSD_AS_H_NONE;
    if (!pinned)
        svc->scaled_mono = msi_now_ms(); /* handing over counts as a change */
    if (pinned)
        msd_emit(m, "autoscale", svc->name, NULL,
                 "pinned at %d (%s): the autoscaler leaves it alone until it is scaled to "
                 "auto; build %.12s",
                 svc->desired, why, svc->build);
    else
        msd_emit(m, "autoscale", svc->name, NULL, "autoscaled again from %d (%s); build %.12s",
                 svc->desired, why, svc->build);
    msd_save_service(m, svc);
    msd_wake(m);
}

void
msd_retire(msd *m, msd_instance *in, const char *why)
{
    if (in->retiring)
        return;
    in->retiring = 1;
    msd_save_instance(m, in);
    msd_emit(m, "retire", in->svc->name, in->id, "%s", why);
    msd_wake(m);
}

static msd_instance *
new_slot(msd *m, msd_service *svc)
{
    msd_instance *in = calloc(1, sizeof *in);
    if (!in)
        return NULL;
    msd_fmt(in->id, sizeof in->id, "i-%lld", (long long)m->next_instance++);
    if (m->store) {
        char v[32];
        msd_fmt(v, sizeof v, "%lld", (long long)m->next_instance);
        m->store->ops->set_meta(m->store, "next_instance", v);
    }
    in->svc = svc;
    in->proc.exit_fd = -1;
    in->proc.status = -1;
    in->created_ms = msd_wall_ms();
    in->state = MSD_I_DEAD;
    msd_instance **tail = &m->instances;
    while (*tail)
        tail = &(*tail)->next;
    *tail = in;
    return in;
}

/* Order in which extra instances are retired: the least useful first. */
static int
retire_rank(const msd_instance *in)
{
    switch (in->state) {
    case MSD_I_DEAD:
        return 0;
    case MSD_I_STARTING:
        return 1;
    case MSD_I_SUSPECT:
        return 2;
    default:
        return 3;
    }
}

static void
reconcile_service(msd *m, msd_service *svc, int64_t now)
{
    int counts[5];
    int live = msd_service_count(m, svc, counts);
    int want = svc->deleted || m->stopping ? 0 : svc->desired;
    for (; live < want; live++) {
        msd_instance *in = new_slot(m, svc);
        if (!in)
            break;
        spawn_instance(m, in, now);
    }
    while (live > want) {
        msd_instance *pick = NULL;
        for (msd_instance *in = m->instances; in; in = in->next) {
            if (in->svc != svc || in->retiring || in->state == MSD_I_DRAINING)
                continue;
            /* the least useful; among equals the newest (last in the list) */
            if (!pick || retire_rank(in) <= retire_rank(pick))
                pick = in;
        }
        if (!pick)
            break;
        msd_retire(m, pick, m->stopping ? "msd is stopping" : "scale down");
        live--;
    }
}

/* ------------------------------------------------------------------------------------------
 * Demand, autoscaling and selection.
 * ---------------------------------------------------------------------------------------- */

void
msd_sample_demand(msd *m, int64_t now)
{
    for (msd_service *svc = m->services; svc; svc = svc->next) {
        msd_as_sample smp = {now, 0, 0, 0};
        int64_t calls = 0;
        for (msd_instance *in = m->instances; in; in = in->next) {
            if (in->svc != svc || in->state == MSD_I_DRAINING)
                continue;
            if (in->state != MSD_I_DEAD)
                calls += in->calls;
            if (in->retiring)
                continue; /* leaving: neither capacity nor demand */
            if (in->state == MSD_I_READY && !in->draining_reported) {
                smp.ready++;
                smp.busy_sum += in->busy;
            } else {
                smp.not_ready++; /* starting, suspect, dead and restarting */
            }
        }
        svc->demand[svc->demand_pos] = smp;
        svc->demand_pos = (svc->demand_pos + 1) % MSD_DEMAND_SAMPLES;
        if (svc->ndemand < MSD_DEMAND_SAMPLES)
            svc->ndemand++;
        int64_t d = calls - svc->calls_prev;
        svc->calls_rate = d > 0 ? (double)d : 0;
        svc->calls_prev = calls;
    }
}

/* The i-th newest sample (0: the latest). */
static const msd_as_sample *
sample_back(const msd_service *svc, int i)
{
    return &svc->demand[(svc->demand_pos - 1 - i + 2 * MSD_DEMAND_SAMPLES) % MSD_DEMAND_SAMPLES];
}

double
msd_service_demand(const msd_service *svc, int n)
{
    if (n > svc->ndemand)
        n = svc->ndemand;
    if (n <= 0)
        return 0;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        const msd_as_sample *s = sample_back(svc, i);
        int k = s->ready + s->not_ready;
        sum += k ? s->busy_sum / k : 0;
    }
    return sum / n;
}

/* "busy_sum/ready+not_ready" of the newest samples, newest first, for the log. */
static void
samples_text(const msd_service *svc, int max, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < svc->ndemand && i < max && off + 1 < len; i++) {
        const msd_as_sample *s = sample_back(svc, i);
        int w = snprintf(buf + off, len - off, "%s%.2f/%d+%d", i ? " " : "", s->busy_sum, s->ready,
                         s->not_ready);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

static void
autoscale_service(msd *m, msd_service *svc, int64_t now)
{
    if (svc->pinned || svc->deleted || svc->desired <= 0)
        return;
    msd_as_sample smp[MSD_DEMAND_SAMPLES];
    int ns = 0;
    for (int i = svc->ndemand - 1; i >= 0; i--)
        smp[ns++] = *sample_back(svc, i); /* oldest first */
    msd_as_options o = {
        .min_instances = svc->min_instances,
        .max_instances = svc->max_instances,
        .scale_up_at = svc->scale_up_at,
        .scale_down_at = svc->scale_down_at,
        .up_window_ms = m->cfg.scale_up_window_ms,
        .down_window_ms = m->cfg.scale_down_window_ms,
        .stabilise_ms = m->cfg.scale_stabilise_ms,
        .sample_ms = MSD_SAMPLE_MS,
    };
    msd_as_decision d;
    msd_autoscale_decide(smp, ns, svc->desired, &o, now, svc->scaled_mono, &d);
    if (d.action == MSD_AS_UP && svc->crashloop) {
        /* More instances of a service whose instances die at start only add crashes. */
        d.action = MSD_AS_HOLD;
        d.hold = MSD_AS_H_CRASHLOOP;
        d.desired = d.n;
    }
    char stext[200];
    if (d.action == MSD_AS_HOLD) {
        if (d.hold != svc->as_hold) {
            /* Worth an event: demand the service cannot meet. The rest is for -v. */
            if (d.hold == MSD_AS_H_AT_MAX || d.hold == MSD_AS_H_CRASHLOOP)
                msd_emit(m, "autoscale", svc->name, NULL, "%s%s", d.reason,
                         d.hold == MSD_AS_H_CRASHLOOP ? "; not scaling up: crash loop" : "");
            else
                msd_log("debug", "autoscale %s (build %.12s): %s", svc->name, svc->build, d.reason);
            svc->as_hold = d.hold;
        }
        return;
    }
    samples_text(svc, 10, stext, sizeof stext);
    msd_emit(m, "autoscale", svc->name, NULL, "%s", d.reason);
    msd_log("info", "autoscale %s (build %.12s): samples busy/ready+not-ready, newest first: %s",
            svc->name, svc->build, stext);
    msd_fmt(svc->as_last, sizeof svc->as_last, "%s", d.reason);
    /* A capped scale-up is already "at max": no second event for the same episode. */
    svc->as_hold = d.capped ? MSD_AS_H_AT_MAX : MSD_AS_H_NONE;
    svc->desired = d.desired;
    /* From when the change was made public (its event), not from the start of this pass,
     * which a loaded machine can put well before it: the events then show every
     * stabilisation period whole. */
    svc->scaled_mono = msi_now_ms();
    msd_save_service(m, svc);
    msd_wake(m);
}

void
msd_autoscale(msd *m, int64_t now)
{
    if (m->stopping)
        return;
    for (msd_service *svc = m->services; svc; svc = svc->next)
        autoscale_service(m, svc, now);
}

static int
takes_traffic(const msd_instance *in)
{
    return in->state == MSD_I_READY && !in->retiring && !in->draining_reported;
}

int
msd_service_has_ready(msd *m, const msd_service *svc)
{
    for (msd_instance *in = m->instances; in; in = in->next)
        if (in->svc == svc && takes_traffic(in))
            return 1;
    return 0;
}

int
msd_service_may_be_ready(msd *m, const msd_service *svc, int64_t by, int64_t *next_start)
{
    int may = 0, slots = 0;
    int64_t first = 0;
    for (msd_instance *in = m->instances; in; in = in->next) {
        if (in->svc != svc || in->retiring || in->state == MSD_I_DRAINING)
            continue;
        slots++; /* as msd_service_count() counts them for reconcile_service() */
        if (in->state != MSD_I_DEAD) {
            may = 1; /* ready, starting or suspect */
            continue;
        }
        if (!first || in->restart_mono < first)
            first = in->restart_mono;
        if (in->restart_mono < by)
            may = 1;
    }
    int want = svc->deleted || m->stopping ? 0 : svc->desired;
    if (slots < want)
        may = 1; /* the loop is about to create a slot */
    if (next_start)
        *next_start = first;
    return may;
}

static json_t *
instance_ref(const msd_instance *in)
{
    return json_pack("{s:s, s:I, s:s}", "id", in->id, "epoch", (json_int_t)in->epoch, "addr",
                     in->addr);
}

json_t *
msd_select_instances(msd *m, msd_service *svc)
{
    int ready = 0, suspect = 0;
    for (msd_instance *in = m->instances; in; in = in->next) {
        if (in->svc != svc || in->retiring || in->draining_reported)
            continue;
        ready += in->state == MSD_I_READY;
        suspect += in->state == MSD_I_SUSPECT && in->probed_ok;
    }
    /* Panic threshold: with fewer than half of the ready-or-suspect instances ready, spread
     * traffic over all of them rather than crush the few. */
    int panic = ready > 0 && 2 * ready < ready + suspect;
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    for (msd_instance *in = m->instances; in; in = in->next) {
        if (in->svc != svc || in->retiring || in->draining_reported)
            continue;
        if (in->state == MSD_I_READY || (panic && in->state == MSD_I_SUSPECT && in->probed_ok))
            json_array_append_new(arr, instance_ref(in));
    }
    size_t n = json_array_size(arr);
    ms_lb lb = msd_service_lb(m, svc);
    if (n > 1 && (lb == MS_LB_NONE || lb == MS_LB_ORCHESTRATOR)) {
        size_t pick = lb == MS_LB_NONE ? 0 : svc->rr++ % n;
        json_t *one = json_array();
        if (one)
            json_array_append(one, json_array_get(arr, pick));
        json_decref(arr);
        arr = one;
    }
    return arr;
}

ms_status
msd_wait_ready(msd *m, msd_service *svc, int64_t deadline_mono)
{
    svc->last_locate_mono = msi_now_ms();
    if (!svc->deleted && svc->desired < 1) {
        int n = svc->min_instances > 1 ? svc->min_instances : 1;
        msd_set_desired(m, svc, n, "lookup");
    }
    for (;;) {
        if (msd_service_has_ready(m, svc))
            return MS_OK;
        if (m->stopping)
            return MS_EUNAVAILABLE;
        if (svc->deleted)
            return MS_ENOTFOUND;
        int64_t now = msi_now_ms();
        if (now >= deadline_mono)
            return MS_ETIMEDOUT;
        /* Only a crash loop with nothing that can be ready in time is answered at once: a
         * starting instance, or a slot that restarts before the deadline, is waited for.
         * Whether one can be changes only with an instance's state (restart times are set
         * by mark_dead()), which broadcasts `changed`: checking on each wake-up is enough. */
        if (svc->crashloop && !msd_service_may_be_ready(m, svc, deadline_mono, NULL))
            return MS_EUNAVAILABLE;
        struct timespec ts;
        ts.tv_sec = deadline_mono / 1000;
        ts.tv_nsec = (deadline_mono % 1000) * 1000000;
        pthread_cond_timedwait(&m->changed, &m->mu, &ts);
    }
}

/* ------------------------------------------------------------------------------------------
 * Re-adoption at start.
 * ---------------------------------------------------------------------------------------- */

static void
adopt_all(msd *m, int64_t now)
{
    for (msd_instance *in = m->instances; in; in = in->next) {
        in->state_mono = now;
        in->next_probe_mono = now;
        int alive = 0;
        if (in->state != MSD_I_DEAD && in->proc.pid > 0)
            alive = m->runner->ops->adopt(m->runner, &in->proc) == 0;
        else
            in->proc.exit_fd = -1;
        char path[4096];
        token_path(m, in, path, sizeof path);
        if (msd_read_token(path, in->token) < 0)
            in->token[0] = '\0';
        if (alive) {
            if (!in->token[0])
                msd_log("warn", "%s: no token file; its heartbeats will be refused", in->id);
            in->registered = in->addr[0] != '\0';
            in->probed_ok = 0;
            if (in->state == MSD_I_DRAINING || in->retiring) {
                in->state = MSD_I_SUSPECT; /* start_drain runs from the loop */
                in->retiring = 1;
            } else {
                in->state = MSD_I_SUSPECT;
            }
            msd_save_instance(m, in);
            msd_emit(m, "adopt", in->svc->name, in->id,
                     "epoch %lld, pid %ld still running at %s: re-adopted, probing",
                     (long long)in->epoch, (long)in->proc.pid, in->addr);
        } else {
            int was_alive = in->state != MSD_I_DEAD;
            memset(&in->proc, 0, sizeof in->proc);
            in->proc.exit_fd = -1;
            in->proc.status = -1;
            in->proc.exited = 1;
            in->state = MSD_I_DEAD;
            in->restart_mono = now;
            msd_save_instance(m, in);
            if (was_alive)
                msd_emit(m, "lost", in->svc->name, in->id,
                         "epoch %lld: process gone while msd was down; replacing",
                         (long long)in->epoch);
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * The loop.
 * ---------------------------------------------------------------------------------------- */

/* One pass over everything; returns the time of the next timer. */
static int64_t
step(msd *m, msd_reconciler *rc, int64_t now)
{
    int64_t next = now + 1000;

    /* Exits (invariant 3: seen before anything restarts). */
    for (msd_instance *in = m->instances, *nx; in; in = nx) {
        nx = in->next;
        if (in->proc.pid > 0 && !in->proc.exited) {
            if (m->runner->ops->reap(m->runner, &in->proc) == 1)
                on_exit_seen(m, in, now);
            else if (in->proc.exit_fd < 0)
                next = min64(next, now + 100); /* no pidfd: poll */
        }
    }

    for (msd_service *svc = m->services; svc; svc = svc->next)
        reconcile_service(m, svc, now);

    for (msd_instance *in = m->instances, *nx; in; in = nx) {
        nx = in->next;
        if (in->retiring && in->state != MSD_I_DRAINING) {
            if (!proc_alive(in)) {
                msd_emit(m, "stopped", in->svc->name, in->id, "retired");
                remove_slot(m, in);
                continue;
            }
            if (in->state != MSD_I_DEAD)
                start_drain(m, in, now);
        }
        switch (in->state) {
        case MSD_I_STARTING:
            if (now >= in->deadline_mono) {
                char msg[96];
                msd_fmt(msg, sizeof msg, "not ready within %d ms of its start%s",
                        m->cfg.start_deadline_ms, in->registered ? "" : " (no heartbeat)");
                mark_dead(m, in, now, msg);
                break;
            }
            next = min64(next, in->deadline_mono);
            __attribute__((fallthrough)); /* a registered starting instance is probed */
        case MSD_I_READY:
        case MSD_I_SUSPECT:
            if (in->state == MSD_I_STARTING && !in->registered)
                break;
            if (!in->probing && now >= in->next_probe_mono && in->addr[0]) {
                if (start_xfer(m, in, X_PROBE) == 0) {
                    in->probing = 1;
                    in->probe_start_mono = now;
                } else
                    in->next_probe_mono = now + m->cfg.probe_interval_ms;
            }
            if (!in->probing)
                next = min64(next, in->next_probe_mono);
            break;
        case MSD_I_DRAINING:
            if (proc_alive(in) && now >= in->deadline_mono)
                drain_timer(m, in, now);
            if (!proc_alive(in)) {
                remove_slot(m, in);
                continue;
            }
            next = min64(next, in->deadline_mono);
            break;
        case MSD_I_DEAD:
            if (proc_alive(in) || in->retiring || m->stopping)
                break;
            if (now >= in->restart_mono)
                spawn_instance(m, in, now);
            else
                next = min64(next, in->restart_mono);
            break;
        }
    }

    if (now >= rc->next_sample_mono) {
        msd_sample_demand(m, now);
        msd_autoscale(m, now); /* invariant 6: changes desired; the next pass acts on it */
        rc->next_sample_mono = now + MSD_SAMPLE_MS;
        /* Older builds nobody has looked up for a while stop (DESIGN section 2). */
        for (msd_service *svc = m->services; svc; svc = svc->next) {
            if (svc->desired > 0 && !svc->deleted &&
                msd_service_newest(m, svc->name, NULL) != svc &&
                now - svc->last_locate_mono > m->cfg.old_build_idle_ms)
                msd_set_desired(m, svc, 0, "older build, unused");
        }
    }
    return min64(next, rc->next_sample_mono);
}

static int
has_processes(msd *m)
{
    for (msd_instance *in = m->instances; in; in = in->next)
        if (proc_alive(in))
            return 1;
    return 0;
}

static void *
loop(void *arg)
{
    msd *m = arg;
    msd_reconciler *rc = m->rec;
    struct curl_waitfd *wfds = NULL;
    size_t wcap = 0;

    pthread_mutex_lock(&m->mu);
    for (;;) {
        int64_t now = msi_now_ms();
        if (rc->stop && (!rc->drain || !has_processes(m) || now >= rc->stop_deadline_mono))
            break;
        int64_t next = step(m, rc, now);

        /* What to wait for: the wake eventfd, the parent's pidfd, every exit_fd. */
        size_t n = 0, need = 2;
        for (msd_instance *in = m->instances; in; in = in->next)
            need++;
        if (need > wcap) {
            struct curl_waitfd *nw = realloc(wfds, need * sizeof *nw);
            if (nw) {
                wfds = nw;
                wcap = need;
            }
        }
        if (wfds) {
            wfds[n++] = (struct curl_waitfd){rc->wake_fd, CURL_WAIT_POLLIN, 0};
            if (rc->parent_fd >= 0)
                wfds[n++] = (struct curl_waitfd){rc->parent_fd, CURL_WAIT_POLLIN, 0};
            for (msd_instance *in = m->instances; in && n < wcap; in = in->next)
                if (in->proc.exit_fd >= 0 && !in->proc.exited)
                    wfds[n++] = (struct curl_waitfd){in->proc.exit_fd, CURL_WAIT_POLLIN, 0};
        }
        now = msi_now_ms();
        int64_t wait = next - now;
        if (wait < 0)
            wait = 0;
        if (wait > 1000)
            wait = 1000;
        if (rc->stop)
            wait = wait > 100 ? 100 : wait;
        pthread_mutex_unlock(&m->mu);

        curl_multi_poll(rc->multi, wfds, (unsigned)n, (int)wait, NULL);
        uint64_t v;
        ssize_t r = read(rc->wake_fd, &v, sizeof v);
        (void)r;

        pthread_mutex_lock(&m->mu);
        if (rc->parent_fd >= 0 && wfds && n > 1 && (wfds[1].revents & CURL_WAIT_POLLIN)) {
            msd_log("info", "parent process %ld is gone: stopping", (long)m->cfg.parent_pid);
            close(rc->parent_fd);
            rc->parent_fd = -1;
            kill(getpid(), SIGTERM); /* main() performs the orderly shutdown */
        } else if (rc->parent_fd < 0 && m->cfg.parent_pid > 0 && !m->stopping &&
                   kill(m->cfg.parent_pid, 0) < 0 && errno == ESRCH) {
            msd_log("info", "parent process %ld is gone: stopping", (long)m->cfg.parent_pid);
            kill(getpid(), SIGTERM);
        }
        int running;
        curl_multi_perform(rc->multi, &running);
        CURLMsg *msg;
        int left;
        now = msi_now_ms();
        while ((msg = curl_multi_info_read(rc->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            xfer *x = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            CURLcode cc = msg->data.result;
            if (x) {
                xfer_done(m, x, cc, now);
                free_xfer(rc, x);
            }
        }
    }
    /* Leaving: instances that still run (no drain asked, or the bound passed) stay, and a
     * later msd re-adopts them. */
    for (msd_instance *in = m->instances; in; in = in->next)
        m->runner->ops->release(m->runner, &in->proc);
    pthread_cond_broadcast(&m->changed);
    pthread_mutex_unlock(&m->mu);
    free(wfds);
    return NULL;
}

static void
wake_fd(int fd)
{
    uint64_t one = 1;
    ssize_t w = write(fd, &one, sizeof one);
    (void)w;
}

void
msd_wake(msd *m)
{
    if (m->rec && m->rec->wake_fd >= 0)
        wake_fd(m->rec->wake_fd);
}

int
msd_reconcile_start(msd *m)
{
    msd_reconciler *rc = calloc(1, sizeof *rc);
    if (!rc)
        return -ENOMEM;
    rc->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    rc->parent_fd = -1;
    rc->multi = curl_multi_init();
    if (rc->wake_fd < 0 || !rc->multi) {
        if (rc->wake_fd >= 0)
            close(rc->wake_fd);
        if (rc->multi)
            curl_multi_cleanup(rc->multi);
        free(rc);
        return -EIO;
    }
    if (m->cfg.parent_pid > 0) {
#ifdef SYS_pidfd_open
        rc->parent_fd = (int)syscall(SYS_pidfd_open, m->cfg.parent_pid, 0);
#endif
        if (rc->parent_fd < 0 && kill(m->cfg.parent_pid, 0) < 0 && errno == ESRCH) {
            msd_log("error", "--parent-pid %ld: no such process", (long)m->cfg.parent_pid);
            curl_multi_cleanup(rc->multi);
            close(rc->wake_fd);
            free(rc);
            return -ESRCH;
        }
    }
    pthread_mutex_lock(&m->mu);
    m->rec = rc;
    int64_t now = msi_now_ms();
    for (msd_service *svc = m->services; svc; svc = svc->next) {
        svc->last_locate_mono = now;
        svc->scaled_mono = now; /* no scale-down before a stabilisation period of data */
    }
    adopt_all(m, now);
    pthread_mutex_unlock(&m->mu);
    if (pthread_create(&rc->thread, NULL, loop, m) != 0) {
        pthread_mutex_lock(&m->mu);
        m->rec = NULL;
        pthread_mutex_unlock(&m->mu);
        curl_multi_cleanup(rc->multi);
        close(rc->wake_fd);
        if (rc->parent_fd >= 0)
            close(rc->parent_fd);
        free(rc);
        return -EAGAIN;
    }
    rc->running = 1;
    return 0;
}

void
msd_reconcile_stop(msd *m, int drain)
{
    msd_reconciler *rc = m->rec;
    if (!rc)
        return;
    pthread_mutex_lock(&m->mu);
    rc->stop = 1;
    rc->drain = drain;
    if (drain) {
        m->stopping = 1;
        int64_t longest = 0;
        for (msd_service *svc = m->services; svc; svc = svc->next)
            if (svc->timeout_ms > longest)
                longest = svc->timeout_ms;
        rc->stop_deadline_mono =
            msi_now_ms() + min64(longest + 1000, m->cfg.grace_max_ms) + m->cfg.term_grace_ms + 2000;
    }
    pthread_cond_broadcast(&m->changed);
    pthread_mutex_unlock(&m->mu);
    wake_fd(rc->wake_fd);
    if (rc->running)
        pthread_join(rc->thread, NULL);
    while (rc->xfers)
        free_xfer(rc, rc->xfers);
    curl_multi_cleanup(rc->multi);
    if (rc->parent_fd >= 0)
        close(rc->parent_fd);
    pthread_mutex_lock(&m->mu);
    m->stopping = 1; /* lookups still waiting give up (503) */
    pthread_cond_broadcast(&m->changed);
    int fd = rc->wake_fd;
    m->rec = NULL;
    pthread_mutex_unlock(&m->mu);
    close(fd);
    free(rc);
}
