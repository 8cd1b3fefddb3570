/*
 * health.c: health, readiness, drain and metrics: routes that never take a slot. Part of
 * src/lib/host (host_int.h).
 */
#include "host_int.h"

#include <sys/resource.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- health, readiness, drain, metrics ------------------------------------------------ */

void
msi_host_health_handler(msi_http_req *r, void *arg)
{
    (void)arg;
    msi_http_reply_json(r, 200,
                        json_pack("{s:s,s:s,s:I,s:s}", "status", "ok", "id", msi_host.id, "epoch",
                                  (json_int_t)msi_host.epoch, "service", msi_host.service));
}

void
msi_host_ready_handler(msi_http_req *r, void *arg)
{
    (void)arg;
    int ready = !msi_host.draining;
    msi_http_reply_json(r, ready ? 200 : 503, json_pack("{s:b}", "ready", ready));
}

void
msi_host_drain_handler(msi_http_req *r, void *arg)
{
    (void)arg;
    /* Without an admin hash (an instance not started by msd) no token drains it: stop it
     * with SIGTERM. Without any credentials it checks nothing, like its calls. */
    bearer_kind b = msi_host_auth_configured() ? msi_host_bearer_of_req(r) : B_ADMIN;
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
    msi_host.draining = 1;
    msi_host_wake_main(R_DRAIN);
    pthread_mutex_lock(&msi_host.mu);
    int inflight = msi_host.inflight + msi_host.queued;
    pthread_mutex_unlock(&msi_host.mu);
    msi_http_reply_json(r, 200, json_pack("{s:b,s:i}", "draining", 1, "inflight", inflight));
}

double
msi_host_cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

void
msi_host_metrics_handler(msi_http_req *r, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&msi_host.mu);
    msi_host_level_tick();
    int inflight = msi_host.inflight, queued = msi_host.queued;
    int64_t t = msi_host_now_us();
    double busy = t > msi_host.m_last_us
                      ? (msi_host.level_us - msi_host.m_last_level_us) /
                            (double)(t - msi_host.m_last_us) / msi_host.concurrency
                      : 0;
    double busy_total_s = msi_host.level_us / 1e6 / msi_host.concurrency;
    msi_host.m_last_us = t;
    msi_host.m_last_level_us = msi_host.level_us;
    pthread_mutex_unlock(&msi_host.mu);

    msi_dd_stats ds = {0};
    if (msi_host_dd)
        msi_dd_get_stats(msi_host_dd, &ds);

    char text[8192];
    const char *s = msi_host.service;
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
        s, (unsigned long long)msi_host.calls, s, (unsigned long long)msi_host.errors, s, inflight,
        s, queued, s, busy, s, busy_total_s, s, msi_host_cpu_seconds());
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
        (unsigned long long)msi_host.dd_hits, s, ds.acked_total, s, ds.expired_total, s,
        ds.stale_total, s, (unsigned long long)msi_host.dd_full);
    if (m < 0 || (size_t)m >= sizeof text - (size_t)n)
        m = (int)strlen(text + n);
    n += m;
    msi_http_reply(r, 200, "text/plain; version=0.0.4", text, (size_t)n);
}
