/*
 * heartbeat.c: the heartbeat thread: reports demand and CPU to msd, learns of a
 * retirement (410) or an orphaned instance. Part of src/lib/host (host_int.h).
 */
#include "host_int.h"
#include "httpc.h"

#include <sys/resource.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- heartbeat ------------------------------------------------------------------------ */

typedef struct hb_state {
    int64_t t_us;
    double level_us;
    double cpu_s;
} hb_state;

static json_t *
hb_body(hb_state *prev)
{
    pthread_mutex_lock(&msi_host.mu);
    msi_host_level_tick();
    int64_t t = msi_host_now_us();
    double busy = t > prev->t_us ? (msi_host.level_us - prev->level_us) / (double)(t - prev->t_us) /
                                       msi_host.concurrency
                                 : 0;
    int inflight = msi_host.inflight, queued = msi_host.queued;
    prev->level_us = msi_host.level_us;
    pthread_mutex_unlock(&msi_host.mu);
    double cpu_s = msi_host_cpu_seconds();
    double cpu = t > prev->t_us ? (cpu_s - prev->cpu_s) / ((double)(t - prev->t_us) / 1e6) : 0;
    prev->t_us = t;
    prev->cpu_s = cpu_s;
    return json_pack(
        "{s:I,s:I,s:s,s:s,s:s,s:f,s:f,s:i,s:i,s:I,s:b}", "epoch", (json_int_t)msi_host.epoch, "pid",
        (json_int_t)getpid(), "addr", msi_http_addr(msi_host.srv), "service", msi_host.service,
        "signature", msi_host.rt->sig, "busy", busy, "cpu", cpu, "inflight", inflight, "queued",
        queued, "calls", (json_int_t)msi_host.calls, "draining", (int)msi_host.draining);
}

/* Waits up to ms on the heartbeat condvar; 1 when asked to stop. */
static int
hb_wait(int64_t ms)
{
    struct timespec ts;
    msi_host_abs_time(msi_now_ms() + ms, &ts);
    pthread_mutex_lock(&msi_host.hb_mu);
    while (!msi_host.hb_stop) {
        if (pthread_cond_timedwait(&msi_host.hb_cv, &msi_host.hb_mu, &ts) == ETIMEDOUT)
            break;
    }
    int stop = msi_host.hb_stop;
    pthread_mutex_unlock(&msi_host.hb_mu);
    return stop;
}

void *
msi_host_hb_main(void *arg)
{
    (void)arg;
    char *list = strdup(msi_host.orchestrators);
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
    hb_state prev = {msi_host_now_us(), 0, msi_host_cpu_seconds()};
    pthread_mutex_lock(&msi_host.mu);
    prev.level_us = msi_host.level_us;
    pthread_mutex_unlock(&msi_host.mu);

    while (norch) {
        json_t *body = hb_body(&prev);
        int answered = 0;
        for (int k = 0; k < norch && !answered; k++) {
            int i = (cur + k) % norch;
            char url[512];
            snprintf(url, sizeof url, "http://%s/v1/instances/%s/heartbeat", orch[i], msi_host.id);
            msi_httpc_req rq = {0};
            rq.url = url;
            rq.bearer = msi_host.inst_token;
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
                msi_log(1, "msd at %s does not know instance %s: exiting", orch[i],
                        msi_host.instance);
                msi_host_wake_main(R_GONE);
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
        if (!answered && msi_now_ms() - last_ok >= msi_host.orphan_ms) {
            msi_log(0, "instance %s of %s: no orchestrator answered for %lld ms: exiting",
                    msi_host.instance, msi_host.service, (long long)(msi_now_ms() - last_ok));
            msi_host_wake_main(R_ORPHAN);
            break;
        }
        if (hb_wait(interval))
            break;
    }
    free(list);
    msi_httpc_thread_release();
    return NULL;
}

void
msi_host_hb_stop(void)
{
    if (!msi_host.hb_started)
        return;
    pthread_mutex_lock(&msi_host.hb_mu);
    msi_host.hb_stop = 1;
    pthread_cond_signal(&msi_host.hb_cv);
    pthread_mutex_unlock(&msi_host.hb_mu);
    pthread_join(msi_host.hb, NULL);
    msi_host.hb_started = 0;
}
