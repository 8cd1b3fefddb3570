/*
 * status.c: what msd shows of itself: the services listing (GET /v1/services), Prometheus
 * metrics (GET /metrics) and the dashboard (GET /).
 *
 * Design notes
 * - All three are rendered from the model under msd.mu, in one pass, into a growing
 *   buffer; nothing is cached.
 * - The dashboard is one self-contained HTML page (inline CSS, no script, no external
 *   asset) that refreshes itself every 2 s with <meta http-equiv="refresh">: it works in
 *   any browser, with curl, and in a screenshot. Every string from the model is escaped.
 */
#include "msd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------------------------
 * A growing text buffer: base's msi_buf, with printf and a failure that sticks, so that a
 * page is written without a check per line and given up once at the end (bdone).
 * ---------------------------------------------------------------------------------------- */
typedef struct buf {
    msi_buf b;
    int failed;
} buf;

static void bprintf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
bprintf(buf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        size_t room = b->b.cap - b->b.len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->b.p ? b->b.p + b->b.len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < room) {
            b->b.len += (size_t)n;
            return;
        }
        if (msi_buf_reserve(&b->b, (size_t)n) != 0) {
            b->failed = 1;
            return;
        }
    }
}

static void
bescape(buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            bprintf(b, "&lt;");
            break;
        case '>':
            bprintf(b, "&gt;");
            break;
        case '&':
            bprintf(b, "&amp;");
            break;
        case '"':
            bprintf(b, "&quot;");
            break;
        case '\'':
            bprintf(b, "&#39;");
            break;
        default:
            bprintf(b, "%c", *s);
        }
    }
}

static char *
bdone(buf *b, size_t *len)
{
    if (b->failed || !b->b.p) {
        msi_buf_free(&b->b);
        return NULL;
    }
    *len = b->b.len;
    return b->b.p;
}

/* ------------------------------------------------------------------------------------------
 * GET /v1/services
 * ---------------------------------------------------------------------------------------- */

static json_t *
instance_json(const msd_instance *in, int64_t now)
{
    json_t *j = json_pack(
        "{s:s, s:I, s:s, s:s, s:I, s:f, s:f, s:I, s:I, s:I, s:i, s:b, s:I}", "id", in->id, "epoch",
        (json_int_t)in->epoch, "state", msd_istate_name(in->state), "addr", in->addr, "pid",
        (json_int_t)in->proc.pid, "busy", in->busy, "cpu", in->cpu, "inflight",
        (json_int_t)in->inflight, "queued", (json_int_t)in->queued, "calls", (json_int_t)in->calls,
        "restarts", in->restarts, "retiring", in->retiring || in->state == MSD_I_DRAINING, "age_ms",
        (json_int_t)(now - in->state_mono));
    if (j && in->last_error[0])
        json_object_set_new(j, "last_error", json_string(in->last_error));
    return j;
}

json_t *
msd_services_json(msd *m, const char *only_name)
{
    json_t *list = json_array();
    if (!list)
        return NULL;
    int64_t now = msi_now_ms();
    for (msd_service *svc = m->services; svc; svc = svc->next) {
        if (svc->deleted || (only_name && strcmp(only_name, svc->name) != 0))
            continue;
        json_t *insts = json_array();
        int restarts = 0;
        for (msd_instance *in = m->instances; in; in = in->next) {
            if (in->svc != svc)
                continue;
            json_array_append_new(insts, instance_json(in, now));
            restarts += in->restarts;
        }
        int counts[5];
        msd_service_count(m, svc, counts);
        json_t *by_state = json_object();
        for (int i = 0; i < 5; i++)
            json_object_set_new(by_state, msd_istate_name((msd_istate)i), json_integer(counts[i]));
        int newest = msd_service_newest(m, svc->name, NULL) == svc;
        json_t *j = json_pack(
            "{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:s, s:O, s:o, s:o, s:b, s:i, s:f, s:f, s:f, s:b}",
            "name", svc->name, "build", svc->build, "signature", svc->sig, "sigtext", svc->sigtext,
            "desired", svc->desired, "min_instances", svc->min_instances, "max_instances",
            svc->max_instances, "lb", msd_lb_name(msd_service_lb(m, svc)), "options", svc->options,
            "instances", insts, "by_state", by_state, "crashloop", svc->crashloop, "restarts",
            restarts, "demand", msd_service_demand(svc, 2), "demand_10s",
            msd_service_demand(svc, 10), "calls_per_s", svc->calls_rate, "newest", newest);
        if (j) {
            json_object_set_new(j, "autoscale", json_boolean(!svc->pinned));
            if (svc->as_last[0])
                json_object_set_new(j, "autoscale_last", json_string(svc->as_last));
            json_array_append_new(list, j);
        }
    }
    return list;
}

/* ------------------------------------------------------------------------------------------
 * GET /metrics
 * ---------------------------------------------------------------------------------------- */

char *
msd_metrics_text(msd *m, size_t *len)
{
    buf b = {0};
    bprintf(&b, "# HELP msd_up 1 while msd runs.\n# TYPE msd_up gauge\nmsd_up 1\n");
    bprintf(&b, "# TYPE msd_uptime_seconds gauge\nmsd_uptime_seconds %.3f\n",
            (double)(msd_wall_ms() - m->start_ms) / 1000.0);
    struct {
        const char *name, *help;
        uint64_t v;
    } counters[] = {
        {"msd_spawns_total", "Instance processes started.", m->n_spawns},
        {"msd_exits_total", "Instance process exits seen.", m->n_exits},
        {"msd_probes_total", "Health probes completed.", m->n_probes},
        {"msd_probe_failures_total", "Health probes that failed.", m->n_probe_fails},
        {"msd_lookups_total", "Service lookups.", m->n_locates},
        {"msd_heartbeats_total", "Heartbeats received.", m->n_heartbeats},
        {"msd_deploys_total", "Deployments registered.", m->n_deploys},
    };
    for (size_t i = 0; i < sizeof counters / sizeof *counters; i++)
        bprintf(&b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counters[i].name,
                counters[i].help, counters[i].name, counters[i].name,
                (unsigned long long)counters[i].v);
    bprintf(&b,
            "# HELP msd_events_total Events recorded.\n# TYPE msd_events_total counter\n"
            "msd_events_total %lld\n",
            (long long)m->event_seq);
    bprintf(&b, "# HELP msd_instances Instances by service, build and state.\n"
                "# TYPE msd_instances gauge\n");
    for (msd_service *svc = m->services; svc; svc = svc->next) {
        if (svc->deleted)
            continue;
        int counts[5];
        msd_service_count(m, svc, counts);
        for (int i = 0; i < 5; i++)
            bprintf(&b, "msd_instances{service=\"%s\",build=\"%.12s\",state=\"%s\"} %d\n",
                    svc->name, svc->build, msd_istate_name((msd_istate)i), counts[i]);
    }
    bprintf(&b, "# TYPE msd_desired_instances gauge\n");
    for (msd_service *svc = m->services; svc; svc = svc->next)
        if (!svc->deleted)
            bprintf(&b, "msd_desired_instances{service=\"%s\",build=\"%.12s\"} %d\n", svc->name,
                    svc->build, svc->desired);
    bprintf(&b, "# TYPE msd_service_demand gauge\n");
    for (msd_service *svc = m->services; svc; svc = svc->next)
        if (!svc->deleted)
            bprintf(&b, "msd_service_demand{service=\"%s\",build=\"%.12s\"} %.4f\n", svc->name,
                    svc->build, msd_service_demand(svc, 2));
    bprintf(&b, "# TYPE msd_service_crashloop gauge\n");
    for (msd_service *svc = m->services; svc; svc = svc->next)
        if (!svc->deleted)
            bprintf(&b, "msd_service_crashloop{service=\"%s\",build=\"%.12s\"} %d\n", svc->name,
                    svc->build, svc->crashloop);
    bprintf(&b, "# TYPE msd_instance_restarts_total counter\n");
    for (msd_instance *in = m->instances; in; in = in->next)
        bprintf(&b, "msd_instance_restarts_total{service=\"%s\",instance=\"%s\"} %d\n",
                in->svc->name, in->id, in->restarts);
    return bdone(&b, len);
}

/* ------------------------------------------------------------------------------------------
 * GET /
 * ---------------------------------------------------------------------------------------- */

static const char page_head[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta http-equiv=\"refresh\" content=\"2\">"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    "<title>msd</title><style>"
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}"
    "h1{font-size:1.3em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.5em 0 .4em}"
    ".sub{color:#666;margin-bottom:1em}"
    "table{border-collapse:collapse;width:100%;background:#fff}"
    "th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}"
    "th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "code{font:12px ui-monospace,monospace}"
    ".st{display:inline-block;padding:0 .4em;border-radius:3px;font-size:12px;color:#fff}"
    ".ready{background:#2e7d32}.starting{background:#1565c0}.suspect{background:#ef6c00}"
    ".draining{background:#6a1b9a}.dead{background:#b71c1c}"
    ".bad{color:#b71c1c;font-weight:bold}.muted{color:#888}"
    "</style></head><body>\n";

char *
msd_dashboard_html(msd *m, size_t *len)
{
    buf b = {0};
    int64_t now = msi_now_ms();
    bprintf(&b, "%s", page_head);
    bprintf(&b, "<h1>msd</h1><div class=\"sub\">version %s &middot; listening on <code>",
            MSD_VERSION);
    bescape(&b, m->addr);
    bprintf(&b, "</code> &middot; up %lld s &middot; default load balancing %s</div>\n",
            (long long)((msd_wall_ms() - m->start_ms) / 1000), msd_lb_name(m->cfg.lb));

    bprintf(&b, "<h2>Services</h2>\n<table><tr><th>service</th><th>build</th><th>desired</th>"
                "<th>ready</th><th>starting</th><th>suspect</th><th>draining</th><th>dead</th>"
                "<th>busy</th><th>calls/s</th><th>restarts</th><th>scaling</th><th>status</th>"
                "</tr>\n");
    int any = 0;
    for (msd_service *svc = m->services; svc; svc = svc->next) {
        if (svc->deleted)
            continue;
        any = 1;
        int c[5], restarts = 0;
        msd_service_count(m, svc, c);
        for (msd_instance *in = m->instances; in; in = in->next)
            if (in->svc == svc)
                restarts += in->restarts;
        bprintf(&b, "<tr><td>");
        bescape(&b, svc->name);
        bprintf(&b,
                "</td><td><code>%.12s</code></td><td class=n>%d</td><td class=n>%d</td>"
                "<td class=n>%d</td><td class=n>%d</td><td class=n>%d</td><td class=n>%d</td>"
                "<td class=n>%.0f%%</td><td class=n>%.1f</td><td class=n>%d</td><td>%s</td>"
                "<td>%s</td></tr>\n",
                svc->build, svc->desired, c[MSD_I_READY], c[MSD_I_STARTING], c[MSD_I_SUSPECT],
                c[MSD_I_DRAINING], c[MSD_I_DEAD], 100 * msd_service_demand(svc, 2), svc->calls_rate,
                restarts, svc->pinned ? "pinned" : "auto",
                svc->crashloop ? "<span class=bad>crash loop</span>"
                               : (c[MSD_I_READY] ? "ok" : "<span class=muted>idle</span>"));
    }
    if (!any)
        bprintf(&b, "<tr><td colspan=13 class=muted>nothing deployed yet: <code>msctl deploy "
                    "./app</code></td></tr>\n");
    bprintf(&b, "</table>\n");

    bprintf(&b, "<h2>Instances</h2>\n<table><tr><th>instance</th><th>service</th><th>state</th>"
                "<th>epoch</th><th>pid</th><th>address</th><th>busy</th><th>in flight</th>"
                "<th>calls</th><th>restarts</th><th>for</th><th>last error</th></tr>\n");
    any = 0;
    for (msd_instance *in = m->instances; in; in = in->next) {
        any = 1;
        const char *st = msd_istate_name(in->state);
        bprintf(&b, "<tr><td><code>%s</code></td><td>", in->id);
        bescape(&b, in->svc->name);
        bprintf(&b,
                "</td><td><span class=\"st %s\">%s</span>%s</td><td class=n>%lld</td>"
                "<td class=n>%ld</td><td><code>",
                st, st, in->retiring ? " retiring" : "", (long long)in->epoch, (long)in->proc.pid);
        bescape(&b, in->addr);
        bprintf(&b,
                "</code></td><td class=n>%.0f%%</td><td class=n>%lld</td><td class=n>%lld</td>"
                "<td class=n>%d</td><td class=n>%lld s</td><td>",
                100 * in->busy, (long long)in->inflight, (long long)in->calls, in->restarts,
                (long long)((now - in->state_mono) / 1000));
        bescape(&b, in->last_error);
        bprintf(&b, "</td></tr>\n");
    }
    if (!any)
        bprintf(&b, "<tr><td colspan=12 class=muted>no instances</td></tr>\n");
    bprintf(&b, "</table>\n");

    bprintf(&b, "<h2>Recent events</h2>\n<table><tr><th>#</th><th>time (UTC)</th><th>type</th>"
                "<th>service</th><th>instance</th><th>message</th></tr>\n");
    for (int64_t s = m->event_seq; s > 0 && s > m->event_seq - 30; s--) {
        const msd_event *ev = &m->events[s % MSD_EVENT_RING];
        if (ev->seq != s)
            break;
        time_t t = (time_t)(ev->ts_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        bprintf(&b, "<tr><td class=n>%lld</td><td>%02d:%02d:%02d</td><td>", (long long)ev->seq,
                tm.tm_hour, tm.tm_min, tm.tm_sec);
        bescape(&b, ev->type);
        bprintf(&b, "</td><td>");
        bescape(&b, ev->service);
        bprintf(&b, "</td><td>");
        bescape(&b, ev->instance);
        bprintf(&b, "</td><td>");
        bescape(&b, ev->message);
        bprintf(&b, "</td></tr>\n");
    }
    bprintf(&b, "</table>\n<p class=muted>Refreshes every 2 s. JSON: <code>/v1/services</code>, "
                "<code>/v1/events</code> (call token); metrics: <code>/metrics</code>.</p>\n"
                "</body></html>\n");
    return bdone(&b, len);
}
