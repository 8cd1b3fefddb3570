/*
 * host.c: the instance host. A program started with MS_SERVE=<service> serves that one
 * service over HTTP (docs/protocol.md, "Instance") until it is drained, then exits: set-up,
 * the routes, the main thread and the lifecycle. Part of src/lib/host (host_int.h).
 *
 * Design notes
 * - Threads. The HTTP server runs one thread per connection (http.h) and a call runs on
 *   the thread of its connection. `concurrency` bounds calls running at once with a counting
 *   slot (mutex + condvar); callers beyond it wait in a bounded queue (429 past it) until a
 *   slot frees or their deadline passes (504). Health, readiness, drain and metrics never
 *   take a slot, so a probe is answered while every slot is busy. One more thread sends the
 *   heartbeats; the main thread (the one that called ms_init) waits for the end and
 *   carries out the drain.
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
#include "host_int.h"
#include "httpc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

host msi_host = {
    .mu = PTHREAD_MUTEX_INITIALIZER, .hb_mu = PTHREAD_MUTEX_INITIALIZER, .wake = {-1, -1}};

int64_t
msi_host_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
msi_host_abs_time(int64_t deadline_ms, struct timespec *ts)
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

void
msi_host_wake_main(exit_reason r)
{
    int expected = R_NONE;
    atomic_compare_exchange_strong(&msi_host.reason, &expected, (int)r);
    if (msi_host.wake[1] >= 0) {
        ssize_t n = write(msi_host.wake[1], "x", 1);
        (void)n;
    }
}

static void
on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    msi_host_wake_main(R_SIGNAL);
    errno = saved;
}

/* ---- set-up and the main thread ------------------------------------------------------- */

static const msi_http_route routes[] = {
    {"POST", "/v1/call/", msi_host_call_handler, NULL, CALL_MAX_BODY, msi_host_call_early},
    {"GET", "/v1/health", msi_host_health_handler, NULL, 0, NULL},
    {"GET", "/v1/ready", msi_host_ready_handler, NULL, 0, NULL},
    {"POST", "/v1/drain", msi_host_drain_handler, NULL, 0, NULL},
    {"GET", "/metrics", msi_host_metrics_handler, NULL, 0, NULL},
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

long long
msi_host_parse_ll(const char *s, long long dflt)
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
    if (fds[0] && msi_host_parse_ll(fds, 0) >= 1 &&
        msi_host_parse_ll(pid, -1) == (long long)getpid()) {
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
    msi_host.draining = 1;
    msi_http_quiesce(msi_host.srv);
}

/* Waits until no call runs or waits and no reply is unsent, or until grace_end. 0 when
 * idle. */
static int
wait_idle(int64_t grace_end)
{
    int idle = 0;
    pthread_mutex_lock(&msi_host.mu);
    while (msi_host.inflight + msi_host.queued > 0) {
        int64_t t = msi_now_ms();
        if (t >= grace_end)
            break;
        if (t >= grace_end - 1000)
            msi_shutting_down = 1; /* ms_cancelled() for the stragglers */
        struct timespec ts;
        msi_host_abs_time(t >= grace_end - 1000 ? grace_end : grace_end - 1000, &ts);
        pthread_cond_timedwait(&msi_host.idle_cv, &msi_host.mu, &ts);
    }
    idle = msi_host.inflight + msi_host.queued == 0;
    pthread_mutex_unlock(&msi_host.mu);
    /* The replies of the last calls may still be on their way out. */
    while (idle && msi_http_active(msi_host.srv) > 0 && msi_now_ms() < grace_end)
        usleep(2000);
    return idle && msi_http_active(msi_host.srv) == 0 ? 0 : -1;
}

static int
host_run(void)
{
    struct pollfd pfd = {msi_host.wake[0], POLLIN, 0};
    while (msi_host.reason == R_NONE) {
        int n = poll(&pfd, 1, -1);
        if (n < 0 && errno != EINTR)
            break;
        char buf[64];
        while (read(msi_host.wake[0], buf, sizeof buf) > 0) {
        }
    }
    static const char *const why[] = {"?", "drain requested", "signal", "unknown to msd",
                                      "orphaned"};
    int reason = msi_host.reason;
    msi_log(2, "instance %s of %s draining (%s)", msi_host.instance[0] ? msi_host.instance : "-",
            msi_host.service, why[reason >= 0 && reason <= R_ORPHAN ? reason : 0]);
    begin_drain();
    int64_t grace =
        (int64_t)(msi_host.rt->opts.timeout_ms > 0 ? msi_host.rt->opts.timeout_ms : 10000) + 1000;
    if (wait_idle(msi_now_ms() + grace) != 0) {
        msi_log(0, "instance %s of %s: grace period of %lld ms over with calls running: exiting",
                msi_host.instance, msi_host.service, (long long)grace);
        return 1;
    }
    return 0;
}

int
msi_host_main(const char *service, const msi_settings *settings)
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

    snprintf(msi_host.service, sizeof msi_host.service, "%s", serve);
    snprintf(msi_host.id, sizeof msi_host.id, "%s", id);
    msi_host.epoch = msi_host_parse_ll(epoch, 0);
    if (msi_host.id[0])
        snprintf(msi_host.instance, sizeof msi_host.instance, "%s.%lld", msi_host.id,
                 msi_host.epoch);
    msi_host.orphan_ms = msi_host_parse_ll(orphan, ORPHAN_DEFAULT_MS);
    if (msi_host.orphan_ms <= 0)
        msi_host.orphan_ms = ORPHAN_DEFAULT_MS;
    msi_host.orchestrators = settings->orchestrators;
    msi_host.call_token = settings->token;
    if (callfile[0] && !msi_host.call_token) {
        msi_log(0, "cannot serve %s: call token file %s unreadable", serve, callfile);
        goto out;
    }
    if (admin_sha[0] && parse_sha256_hex(admin_sha, msi_host.admin_sha256) != 0) {
        msi_log(0, "cannot serve %s: MS_ADMIN_TOKEN_SHA256 is not 64 hex digits", serve);
        goto out;
    }
    if (tokfile[0] && !(msi_host.inst_token = msi_read_first_line(tokfile))) {
        msi_log(0, "cannot serve %s: instance token file %s unreadable", serve, tokfile);
        goto out;
    }

    msi_host.svc = msi_registry_find(serve, NULL);
    if (!msi_host.svc || !msi_host.svc->invoke || !(msi_host.rt = msi_svc_of(msi_host.svc))) {
        msi_log(0, "cannot serve %s: no such service in this program", serve);
        goto out;
    }
    msi_serving = msi_host.svc;
    msi_host.concurrency = msi_host.rt->opts.concurrency > 0 ? msi_host.rt->opts.concurrency : 1;
    msi_host.queue_max = (int)msi_host_parse_ll(getenv("MS_QUEUE_MAX"), 0);
    if (msi_host.queue_max <= 0)
        msi_host.queue_max = msi_host.concurrency * 4 > 16 ? msi_host.concurrency * 4 : 16;
    if (!msi_host.rt->opts.idempotent)
        msi_host_dd_init();
    cond_init_mono(&msi_host.slot_cv);
    cond_init_mono(&msi_host.idle_cv);
    cond_init_mono(&msi_host.hb_cv);
    msi_host.level_since_us = msi_host.m_last_us = msi_host_now_us();

    if (pipe2(msi_host.wake, O_CLOEXEC | O_NONBLOCK) != 0) {
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
    if (msi_host.orchestrators && msi_remote->start() != MS_OK)
        msi_log(1, "client for nested calls not started: %s", ms_last_error());

    char hp[160];
    pick_listener(&cfg, fds, lpid, listen_at, hp, sizeof hp);
    cfg.routes = routes;
    cfg.nroutes = sizeof routes / sizeof *routes;
    cfg.max_body = OTHER_MAX_BODY;
    cfg.name = "instance";
    if (msi_http_start(&cfg, &msi_host.srv, &err) != MS_OK) {
        msi_log(0, "cannot serve %s: %s", serve, err.msg);
        goto out;
    }
    msi_log(2, "instance %s serving %s on %s (concurrency %d, queue %d)",
            msi_host.instance[0] ? msi_host.instance : "-", serve, msi_http_addr(msi_host.srv),
            msi_host.concurrency, msi_host.queue_max);

    if (msi_host.orchestrators && msi_host.id[0]) {
        if (pthread_create(&msi_host.hb, NULL, msi_host_hb_main, NULL) == 0)
            msi_host.hb_started = 1;
        else
            msi_log(0, "cannot start the heartbeat thread");
    } else {
        msi_log(2, "no orchestrator or instance id: no heartbeats");
    }

    rc = host_run();
    msi_host_hb_stop();
    if (rc != 0) {
        /* Calls are still running on connection threads: leave without running
         * destructors under them. */
        fflush(NULL);
        _exit(rc);
    }
    msi_http_stop(msi_host.srv);
    msi_host.srv = NULL;
    msi_host_dd_free();
    msi_remote->stop();
    msi_httpc_thread_release();
    msi_log(2, "instance %s of %s exits", msi_host.instance[0] ? msi_host.instance : "-", serve);

out:
    free(msi_host.inst_token);
    msi_host.inst_token = NULL;
    return rc;
}
