/*
 * model.c: lookups and small changes of msd's in-memory model, and its events.
 *
 * Design notes
 * - Lists are singly linked and short (tens of services, hundreds of instances): linear
 *   search keeps the code obvious. Every function here expects the caller to hold msd.mu.
 * - Events go to three places: a ring of the latest MSD_EVENT_RING in memory (answers
 *   GET /v1/events cheaply), the store (older ones, and across restarts) and the log.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const istate_names[] = {"starting", "ready", "suspect", "draining", "dead"};

const char *
msd_istate_name(msd_istate s)
{
    return (unsigned)s < sizeof istate_names / sizeof *istate_names ? istate_names[s] : "?";
}

int
msd_istate_parse(const char *s, msd_istate *out)
{
    for (unsigned i = 0; i < sizeof istate_names / sizeof *istate_names; i++) {
        if (strcmp(s, istate_names[i]) == 0) {
            *out = (msd_istate)i;
            return 0;
        }
    }
    return -1;
}

static const char *const lb_names[] = {"default", "none", "orchestrator", "client"};

const char *
msd_lb_name(ms_lb lb)
{
    return (unsigned)lb < sizeof lb_names / sizeof *lb_names ? lb_names[lb] : "?";
}

int
msd_lb_parse(const char *s, ms_lb *out)
{
    for (unsigned i = 0; i < sizeof lb_names / sizeof *lb_names; i++) {
        if (strcmp(s, lb_names[i]) == 0) {
            *out = (ms_lb)i;
            return 0;
        }
    }
    return -1;
}

ms_lb
msd_service_lb(const msd *m, const msd_service *svc)
{
    return svc->lb != MS_LB_DEFAULT ? svc->lb : m->cfg.lb;
}

msd_deployment *
msd_deployment_find(msd *m, const char *build)
{
    for (msd_deployment *d = m->deployments; d; d = d->next)
        if (strcmp(d->build, build) == 0)
            return d;
    return NULL;
}

msd_service *
msd_service_find(msd *m, const char *name, const char *build)
{
    for (msd_service *s = m->services; s; s = s->next)
        if (strcmp(s->name, name) == 0 && strcmp(s->build, build) == 0)
            return s;
    return NULL;
}

msd_service *
msd_service_newest(msd *m, const char *name, const char *sig)
{
    msd_service *best = NULL;
    for (msd_service *s = m->services; s; s = s->next) {
        if (s->deleted || strcmp(s->name, name) != 0)
            continue;
        if (sig && strcmp(s->sig, sig) != 0)
            continue;
        if (!best || s->dep->seq > best->dep->seq)
            best = s;
    }
    return best;
}

int
msd_service_known(msd *m, const char *name)
{
    return msd_service_newest(m, name, NULL) != NULL;
}

msd_instance *
msd_instance_find(msd *m, const char *id)
{
    for (msd_instance *in = m->instances; in; in = in->next)
        if (strcmp(in->id, id) == 0)
            return in;
    return NULL;
}

static int
opt_int(const json_t *o, const char *key, int def, int min, int max)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        return def;
    json_int_t i = json_integer_value(v);
    return i < min ? min : i > max ? max : (int)i;
}

static double
opt_real(const json_t *o, const char *key, double def)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        return def;
    double d = json_number_value(v);
    return d > 0 && d < 1e6 ? d : def;
}

void
msd_service_apply_options(msd_service *svc)
{
    const json_t *o = svc->options;
    svc->concurrency = opt_int(o, "concurrency", 1, 1, 1 << 20);
    svc->min_instances = opt_int(o, "min_instances", 1, 0, 1 << 16);
    svc->max_instances = opt_int(o, "max_instances", 8, 1, 1 << 16);
    if (svc->max_instances < svc->min_instances)
        svc->max_instances = svc->min_instances ? svc->min_instances : 1;
    svc->timeout_ms = opt_int(o, "timeout_ms", 10000, 1, 24 * 3600 * 1000);
    svc->scale_up_at = opt_real(o, "scale_up_at", 0.5);
    svc->scale_down_at = opt_real(o, "scale_down_at", 0.3);
    svc->idempotent = json_is_true(json_object_get(o, "idempotent"));
    svc->stateful = json_is_true(json_object_get(o, "stateful"));
    svc->lb = MS_LB_DEFAULT;
    const char *lb = json_string_value(json_object_get(o, "lb"));
    if (lb && msd_lb_parse(lb, &svc->lb) < 0)
        svc->lb = MS_LB_DEFAULT;
}

int
msd_service_count(msd *m, const msd_service *svc, int counts[5])
{
    int live = 0;
    for (int i = 0; i < 5; i++)
        counts[i] = 0;
    for (msd_instance *in = m->instances; in; in = in->next) {
        if (in->svc != svc)
            continue;
        counts[in->state]++;
        if (!in->retiring && in->state != MSD_I_DRAINING)
            live++;
    }
    return live;
}

void
msd_deployment_free(msd_deployment *d)
{
    if (!d)
        return;
    free(d->path);
    free(d->exe);
    json_decref(d->argv);
    json_decref(d->services);
    free(d);
}

void
msd_service_free(msd_service *s)
{
    if (!s)
        return;
    free(s->sigtext);
    json_decref(s->options);
    free(s);
}

void
msd_instance_free(msd_instance *in)
{
    free(in);
}

void
msd_save_service(msd *m, msd_service *svc)
{
    if (m->store && m->store->ops->put_service(m->store, svc) < 0)
        msd_log("error", "cannot persist service %s", svc->name);
}

void
msd_save_instance(msd *m, msd_instance *in)
{
    in->updated_ms = msd_wall_ms();
    if (m->store && m->store->ops->put_instance(m->store, in) < 0)
        msd_log("error", "cannot persist instance %s", in->id);
}

void
msd_emit(msd *m, const char *type, const char *service, const char *instance, const char *fmt, ...)
{
    msd_event *ev = &m->events[(m->event_seq + 1) % MSD_EVENT_RING];
    memset(ev, 0, sizeof *ev);
    ev->seq = ++m->event_seq;
    ev->ts_ms = msd_wall_ms();
    msd_fmt(ev->type, sizeof ev->type, "%s", type);
    msd_fmt(ev->service, sizeof ev->service, "%s", service ? service : "");
    msd_fmt(ev->instance, sizeof ev->instance, "%s", instance ? instance : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev->message, sizeof ev->message, fmt, ap);
    va_end(ap);
    msd_log("info", "event %s%s%s%s%s: %s", ev->type, ev->service[0] ? " " : "", ev->service,
            ev->instance[0] ? " " : "", ev->instance, ev->message);
    if (m->store)
        m->store->ops->put_event(m->store, ev);
}

static json_t *
event_json(const msd_event *ev)
{
    return json_pack("{s:I, s:I, s:s, s:s, s:s, s:s}", "seq", (json_int_t)ev->seq, "ts_ms",
                     (json_int_t)ev->ts_ms, "type", ev->type, "service", ev->service, "instance",
                     ev->instance, "message", ev->message);
}

static void
append_event(const msd_event *ev, void *arg)
{
    json_t *j = event_json(ev);
    if (j)
        json_array_append_new(arg, j);
}

json_t *
msd_events_json(msd *m, int64_t since, int limit)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    if (since < 0)
        since = 0;
    int64_t oldest_in_ring = m->event_seq - MSD_EVENT_RING + 1;
    if (oldest_in_ring < 1)
        oldest_in_ring = 1;
    /* Events the ring no longer holds (or never held: before a restart) come from the
     * store; the ring holds only events of this run, so check it has them. */
    int64_t from = since + 1;
    int64_t first_in_ring = 0;
    for (int64_t s = oldest_in_ring; s <= m->event_seq; s++) {
        if (m->events[s % MSD_EVENT_RING].seq == s) {
            first_in_ring = s;
            break;
        }
    }
    if (m->store && (first_in_ring == 0 || from < first_in_ring)) {
        int64_t upto = first_in_ring ? first_in_ring - 1 : m->event_seq;
        int n = 0;
        if (upto >= from) {
            int64_t span = upto - from + 1;
            n = span < limit ? (int)span : limit;
            m->store->ops->events_since(m->store, since, n, append_event, arr);
        }
        from = first_in_ring ? first_in_ring : m->event_seq + 1;
    }
    for (int64_t s = from; s <= m->event_seq && (int)json_array_size(arr) < limit; s++) {
        const msd_event *ev = &m->events[s % MSD_EVENT_RING];
        if (ev->seq == s)
            append_event(ev, arr);
    }
    return arr;
}
