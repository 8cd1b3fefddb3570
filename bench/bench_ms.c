/*
 * bench_ms.c: ms in local mode, through the public API: the echo is an MS_SERVICE in this
 * very program, which msd re-runs as its instances (MS_SERVE), and the driver calls it
 * with the `_try` stub under MS_MODE=local, MS_ORCHESTRATOR=<msd>, MS_STATE_DIR=<msd's
 * state>. The same source is built three times, one service each, so that every variant is
 * a deployment of its own and their instance counts cannot interfere:
 *   bench_ms       service `echo`:      1 instance  (min = max = 1)
 *   bench_ms3      service `echo3`:     3 instances (min = max = 3; client LB round-robins)
 *   bench_ms_many  service `echo_many`: scaled to N (the probing-cost figure)
 *   bench_ms_once  service `echo_once`: 1 instance, NOT idempotent: every call goes through
 *                  the instance's duplicate-request cache (at-most-once's cost)
 * Every variant has concurrency 16 and all but echo_once are idempotent: the benchmark
 * measures the transport and the client, not a queue in front of a single-threaded
 * function.
 *
 * Subcommands, bench_main's commands (each prints one JSON line on stdout; messages go to
 * stderr):
 *   latency | throughput [bench options] [--instances K]
 *                      the echo through ms; with K, first make sure K instances are ready
 *   probe              one call with the default deadline: is local mode working at all?
 *   first-call [--delete]
 *                      times ms_init and the first call (locate + spawn + ready); with
 *                      --delete, deletes the service afterwards (and waits until its
 *                      instances are gone) so that the next trial starts from nothing
 *   ensure --instances K [--step N] [--max-seconds S]
 *                      one call, then scales the service to K (PUT .../scale; with --step,
 *                      N more at a time, each step once the previous is ready) and waits
 *                      until K instances are ready
 *   lookups [bench options]
 *                      GET /v1/services/NAME?build=..&sig=.. against msd (libms's own
 *                      HTTP client, a kept connection per caller): msd's lookup latency
 *                      and lookups per second
 *   msd-cpu --pid PID [--seconds S]
 *                      CPU time msd spends (utime + stime from /proc) over S seconds while
 *                      the service's instances sit idle: probes and heartbeats
 *   spawn-ready [--spawn-type T] [--ready-type T]
 *                      pairs the service's spawn and ready events (GET /v1/events) per
 *                      instance and epoch: the spawn-to-ready times, median first
 *   delete             DELETE /v1/services/NAME and wait until no instance is left
 *   dedupe             the duplicate-request caches of the service's ready instances, from
 *                      their /metrics: entries now, peak entries, bytes, calls served
 * msd's admin token is read from $MS_STATE_DIR/token (or $BENCH_MSD_TOKEN); msd accepts it
 * wherever a call token is accepted.
 */
#include "bench.h"

#include <ms/ms.h>

#include <jansson.h>

#include "httpc.h"    /* libms's internal HTTP client: in-tree only */
#include "statedir.h" /* the names of msd's state files */
#include "prom.h"     /* reading the instances' /metrics */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_SVC
#define BENCH_SVC echo
#endif
#ifndef BENCH_MIN
#define BENCH_MIN 1
#endif
#ifndef BENCH_MAX
#define BENCH_MAX 1
#endif
#ifndef BENCH_IDEM
#define BENCH_IDEM true
#endif
#define XSTR(x) STR_(x)
#define STR_(x) #x
#define CAT(a, b) CAT_(a, b)
#define CAT_(a, b) a##b
#define SVC_NAME XSTR(BENCH_SVC)
#define SVC_TRY CAT(BENCH_SVC, _try)

MS_STRUCT(echo_msg, (int64_t, n), (char *, s))

MS_SERVICE(struct echo_msg, BENCH_SVC, (int64_t, n), (const char *, s))
{
    struct echo_msg r = {n, strdup(s)};
    return r;
}
/* MS_OPTIONS pastes its first argument: expand BENCH_SVC before it gets there. */
#define OPTIONS_OF(N, ...) MS_OPTIONS(N, __VA_ARGS__)
OPTIONS_OF(BENCH_SVC, .idempotent = BENCH_IDEM, .concurrency = 16, .min_instances = BENCH_MIN,
           .max_instances = BENCH_MAX)

/* ------------------------------------------------------------------------------------------
 * Talking to msd directly (the parts no public API covers: scale, delete, events).
 * ---------------------------------------------------------------------------------------- */
static char orch[256]; /* "127.0.0.1:4999": the first of MS_ORCHESTRATOR */
static char auth[256]; /* msd's admin token */

static int
msd_setup(void)
{
    const char *o = getenv("MS_ORCHESTRATOR");
    if (!o || !*o) {
        fprintf(stderr, "bench_ms: MS_ORCHESTRATOR is not set\n");
        return -1;
    }
    size_t n = strcspn(o, ",");
    if (n >= sizeof orch)
        return -1;
    memcpy(orch, o, n);
    orch[n] = '\0';
    char tok[128] = "";
    const char *env = getenv("BENCH_MSD_TOKEN");
    if (env && *env) {
        snprintf(tok, sizeof tok, "%s", env);
    } else {
        const char *dir = getenv("MS_STATE_DIR");
        char path[4096];
        if (!dir || snprintf(path, sizeof path, "%s/" MSI_STATE_TOKEN, dir) >= (int)sizeof path) {
            fprintf(stderr, "bench_ms: MS_STATE_DIR is not set\n");
            return -1;
        }
        char *t = msi_read_first_line(path);
        if (!t) {
            fprintf(stderr, "bench_ms: cannot read %s\n", path);
            return -1;
        }
        snprintf(tok, sizeof tok, "%s", t);
        free(t);
    }
    snprintf(auth, sizeof auth, "%s", tok);
    return 0;
}

/* One request to msd (on the calling thread's kept connection). Returns the HTTP status (0
 * on a transport failure) and, when out is not NULL, the parsed JSON body. */
static long
msd_req(const char *method, const char *path, const char *body, json_t **out)
{
    char url[1024];
    snprintf(url, sizeof url, "http://%s%s", orch, path);
    msi_httpc_req rq = {0};
    rq.method = method;
    rq.url = url;
    rq.bearer = auth;
    rq.deadline_ms = msi_now_ms() + 15000;
    json_t *jb = body ? json_loads(body, 0, NULL) : NULL;
    msi_httpc_resp rs;
    msi_err err = {{0}};
    json_t *j = NULL;
    ms_status st = msi_httpc_json(&rq, jb, &rs, &j, &err);
    json_decref(jb);
    if (out)
        *out = j;
    else
        json_decref(j);
    return st == MS_OK ? rs.status : 0;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* This program's service in GET /v1/services (a new reference), or NULL. */
static json_t *
find_service(void)
{
    json_t *all = NULL;
    if (msd_req("GET", "/v1/services", NULL, &all) != 200 || !all) {
        json_decref(all);
        return NULL;
    }
    json_t *found = NULL, *s;
    size_t i;
    json_array_foreach(json_object_get(all, "services"), i, s)
    {
        if (json_is_string(json_object_get(s, "name")) &&
            strcmp(json_string_value(json_object_get(s, "name")), SVC_NAME) == 0) {
            found = json_incref(s); /* the newest is listed last, if several */
        }
    }
    json_decref(all);
    return found;
}

/* The dedupe subcommand: one JSON line summing the ready instances' caches. */
static int
dedupe_figures(void)
{
    json_t *svc = find_service();
    if (!svc)
        return bench_print_error("dedupe", "service %s not listed by msd", SVC_NAME);
    long long entries = 0, peak = 0, bytes = 0, calls = 0, full = 0;
    int n = 0;
    size_t i;
    json_t *in;
    json_array_foreach(json_object_get(svc, "instances"), i, in)
    {
        const char *st = json_string_value(json_object_get(in, "state"));
        const char *addr = json_string_value(json_object_get(in, "addr"));
        if (!st || strcmp(st, "ready") != 0 || !addr)
            continue;
        char url[300];
        snprintf(url, sizeof url, "http://%s/metrics", addr);
        msi_httpc_req rq = {0};
        rq.url = url;
        rq.deadline_ms = msi_now_ms() + 5000;
        msi_httpc_resp rs;
        msi_err err;
        if (msi_httpc_do(&rq, &rs, &err) != MS_OK || rs.status != 200) {
            json_decref(svc);
            return bench_print_error("dedupe", "%s: no metrics", url);
        }
        char *text = strndup(rs.body, rs.len);
        if (!text) {
            json_decref(svc);
            return bench_print_error("dedupe", "out of memory");
        }
        long long e = msi_prom_value(text, "ms_dedupe_entries"),
                  p = msi_prom_value(text, "ms_dedupe_entries_peak"),
                  b = msi_prom_value(text, "ms_dedupe_bytes"),
                  k = msi_prom_value(text, "ms_calls_total"),
                  f = msi_prom_value(text, "ms_dedupe_full_total");
        free(text);
        if (e < 0 || p < 0 || b < 0 || k < 0 || f < 0) {
            json_decref(svc);
            return bench_print_error("dedupe", "%s: a dedupe metric is missing", url);
        }
        entries += e;
        peak = p > peak ? p : peak;
        bytes += b;
        calls += k;
        full += f;
        n++;
    }
    json_decref(svc);
    printf("{\"kind\":\"dedupe\",\"label\":\"%s\",\"instances\":%d,\"entries\":%lld,"
           "\"entries_peak\":%lld,\"bytes\":%lld,\"calls\":%lld,\"full\":%lld}\n",
           SVC_NAME, n, entries, peak, bytes, calls, full);
    return 0;
}

/* Instances of the service in a given state (NULL: every instance not dead). */
static int
count_instances(json_t *svc, const char *state)
{
    int n = 0;
    size_t i;
    json_t *in;
    json_array_foreach(json_object_get(svc, "instances"), i, in)
    {
        const char *st = json_string_value(json_object_get(in, "state"));
        if (!st)
            continue;
        if (state ? strcmp(st, state) == 0 : strcmp(st, "dead") != 0)
            n++;
    }
    return n;
}

/* Makes sure the service has k ready instances: scales it if needed (in steps of `step`
 * instances when step > 0, each step once the previous one is ready), waits (bounded). */
static int
ensure_instances(int k, int step, double max_s)
{
    int64_t until = bench_now_ns() + (int64_t)(max_s * 1e9);
    int goal = step > 0 && step < k ? step : k, asked = 0, last_ready = -1;
    while (bench_now_ns() < until) {
        json_t *svc = find_service();
        int ready = svc ? count_instances(svc, "ready") : 0;
        if (ready >= k) {
            json_decref(svc);
            return 0;
        }
        if (ready >= goal && goal < k)
            goal = goal + step < k ? goal + step : k;
        if (svc && asked < goal && json_integer_value(json_object_get(svc, "desired")) < goal) {
            char body[256];
            const char *build = json_string_value(json_object_get(svc, "build"));
            snprintf(body, sizeof body, "{\"instances\":%d,\"build\":\"%s\"}", goal,
                     build ? build : "");
            long code = msd_req("PUT", "/v1/services/" SVC_NAME "/scale", body, NULL);
            if (code != 200 && code != 202)
                fprintf(stderr, "bench_ms: PUT scale %d answered %ld\n", goal, code);
            asked = goal;
        }
        if (ready != last_ready)
            fprintf(stderr, "bench_ms: %s: %d of %d instances ready\n", SVC_NAME, ready, k);
        last_ready = ready;
        json_decref(svc);
        sleep_ms(100);
    }
    fprintf(stderr, "bench_ms: %s: %d instances not ready within %.0f s\n", SVC_NAME, k, max_s);
    return -1;
}

/* ------------------------------------------------------------------------------------------
 * The echo through ms, for the harness.
 * ---------------------------------------------------------------------------------------- */
static void *
ms_open(const char *target, char *err, size_t errlen)
{
    (void)target;
    static int token;
    char s[BENCH_STR_LEN + 1];
    struct echo_msg r;
    bench_payload(0, s);
    /* The first call on a thread sets up its handles: not part of the measurement. */
    ms_status st = SVC_TRY(&r, 0, s);
    if (st != MS_OK) {
        snprintf(err, errlen, "%s: %s", ms_status_name(st), ms_last_error());
        return NULL;
    }
    echo_msg_free_fields(&r);
    return &token;
}

static int
ms_call(void *conn, int64_t n, const char *s, char *err, size_t errlen)
{
    (void)conn;
    struct echo_msg r;
    ms_status st = SVC_TRY(&r, n, s);
    if (st != MS_OK) {
        snprintf(err, errlen, "%s: %s", ms_status_name(st), ms_last_error());
        return -1;
    }
    int ok = r.n == n && r.s && strcmp(r.s, s) == 0;
    echo_msg_free_fields(&r);
    if (!ok) {
        snprintf(err, errlen, "echo mismatch");
        return -1;
    }
    return 0;
}

static void
ms_close(void *conn)
{
    (void)conn;
}

/* Lookups against msd: a kept connection per caller (msi_httpc is per thread). */
static char lookup_path[512];

static void *
lookup_open(const char *target, char *err, size_t errlen)
{
    (void)target;
    (void)err;
    (void)errlen;
    static char token;
    return &token; /* not used: the thread's client holds the connection */
}

static int
lookup_call(void *conn, int64_t n, const char *s, char *err, size_t errlen)
{
    (void)conn;
    (void)n;
    (void)s;
    json_t *j = NULL;
    long code = msd_req("GET", lookup_path, NULL, &j);
    int ok = code == 200 && json_array_size(json_object_get(j, "instances")) > 0;
    json_decref(j);
    if (!ok) {
        snprintf(err, errlen, "lookup answered %ld", code);
        return -1;
    }
    return 0;
}

static void
lookup_close(void *conn)
{
    (void)conn;
    msi_httpc_thread_release();
}

/* ------------------------------------------------------------------------------------------
 * Subcommands.
 * ---------------------------------------------------------------------------------------- */
typedef struct extra_opts {
    int instances;
    int step;
    int del;
    long pid;
    double seconds;
    const char *spawn_type, *ready_type;
} extra_opts;

static int
take_extra(const char *opt, const char *val, void *arg)
{
    extra_opts *x = arg;
    if (strcmp(opt, "--instances") == 0 && val) {
        x->instances = atoi(val);
        return x->instances >= 1 && x->instances <= 1000 ? 2 : 0;
    }
    if (strcmp(opt, "--step") == 0 && val) {
        x->step = atoi(val);
        return x->step >= 1 && x->step <= 1000 ? 2 : 0;
    }
    if (strcmp(opt, "--delete") == 0) {
        x->del = 1;
        return 1;
    }
    if (strcmp(opt, "--pid") == 0 && val) {
        x->pid = atol(val);
        return x->pid > 0 ? 2 : 0;
    }
    if (strcmp(opt, "--spawn-type") == 0 && val) {
        x->spawn_type = val;
        return 2;
    }
    if (strcmp(opt, "--ready-type") == 0 && val) {
        x->ready_type = val;
        return 2;
    }
    return 0;
}

static int
delete_service(double max_s)
{
    long code = msd_req("DELETE", "/v1/services/" SVC_NAME, NULL, NULL);
    if (code != 200 && code != 202 && code != 404) {
        fprintf(stderr, "bench_ms: DELETE %s answered %ld\n", SVC_NAME, code);
        return -1;
    }
    int64_t until = bench_now_ns() + (int64_t)(max_s * 1e9);
    while (bench_now_ns() < until) {
        json_t *svc = find_service();
        int live = svc ? count_instances(svc, NULL) : 0;
        json_decref(svc);
        if (live == 0)
            return 0;
        sleep_ms(50);
    }
    fprintf(stderr, "bench_ms: %s: instances still alive %.0f s after DELETE\n", SVC_NAME, max_s);
    return -1;
}

/* utime + stime of a process, in seconds; -1 if unreadable. */
static double
proc_cpu_s(long pid)
{
    char path[64], line[4096];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    char *p = strrchr(line, ')'); /* the command name may contain spaces */
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    /* After ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime(14) stime(15). */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(ut + st) / (double)(hz > 0 ? hz : 100);
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Spawn-to-ready times of this service's instances from msd's events. */
static int
spawn_ready(const extra_opts *x)
{
    enum { MAXP = 4096 };
    static struct {
        char inst[64];
        int64_t spawn_ms;
    } open_spawns[MAXP];
    static int64_t d[MAXP];
    int nopen = 0, nd = 0;
    int64_t since = 0;
    for (int page = 0; page < 200; page++) {
        char path[128];
        json_t *j = NULL;
        snprintf(path, sizeof path, "/v1/events?since=%" PRId64, since);
        if (msd_req("GET", path, NULL, &j) != 200 || !j) {
            json_decref(j);
            return bench_print_error("spawn_ready", "GET /v1/events failed");
        }
        json_t *evs = json_object_get(j, "events"), *e;
        size_t i;
        if (json_array_size(evs) == 0) {
            json_decref(j);
            break;
        }
        json_array_foreach(evs, i, e)
        {
            int64_t seq = json_integer_value(json_object_get(e, "seq"));
            since = seq > since ? seq : since;
            const char *type = json_string_value(json_object_get(e, "type"));
            const char *svc = json_string_value(json_object_get(e, "service"));
            const char *inst = json_string_value(json_object_get(e, "instance"));
            int64_t ts = json_integer_value(json_object_get(e, "ts_ms"));
            if (!type || !svc || !inst || strcmp(svc, SVC_NAME) != 0)
                continue;
            if (strcmp(type, x->spawn_type) == 0) {
                int k = 0;
                while (k < nopen && strcmp(open_spawns[k].inst, inst) != 0)
                    k++;
                if (k == nopen && nopen < MAXP)
                    nopen++;
                if (k < MAXP) {
                    snprintf(open_spawns[k].inst, sizeof open_spawns[k].inst, "%s", inst);
                    open_spawns[k].spawn_ms = ts;
                }
            } else if (strcmp(type, x->ready_type) == 0) {
                for (int k = 0; k < nopen; k++) {
                    if (strcmp(open_spawns[k].inst, inst) == 0 && open_spawns[k].spawn_ms) {
                        if (nd < MAXP)
                            d[nd++] = ts - open_spawns[k].spawn_ms;
                        open_spawns[k].spawn_ms = 0;
                        break;
                    }
                }
            }
        }
        json_decref(j);
    }
    if (nd == 0)
        return bench_print_error("spawn_ready",
                                 "no %s/%s event pair for service %s in msd's events",
                                 x->spawn_type, x->ready_type, SVC_NAME);
    qsort(d, (size_t)nd, sizeof *d, cmp_i64);
    double sum = 0;
    for (int i = 0; i < nd; i++)
        sum += (double)d[i];
    printf("{\"kind\":\"spawn_ready\",\"label\":\"%s\",\"instances\":%d,\"median_ms\":%" PRId64
           ",\"p90_ms\":%" PRId64 ",\"max_ms\":%" PRId64 ",\"mean_ms\":%.1f}\n",
           SVC_NAME, nd, d[nd / 2], d[(nd * 9) / 10 < nd ? (nd * 9) / 10 : nd - 1], d[nd - 1],
           sum / nd);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * The commands (bench_main runs them; ms_init ran first, in main).
 * ---------------------------------------------------------------------------------------- */
static int64_t t_start, t_init; /* before and after ms_init */
static ms_status init_st;       /* what ms_init returned */
/* The options of its own (take_extra). */
static extra_opts own = {0, 0, 0, 0, 10, "spawn", "ready"};

/* Every command needs ms_init to have worked, in local mode. */
static int
before(const char *cmd)
{
    if (init_st != MS_OK)
        return bench_print_error(cmd, "ms_init: %s: %s", ms_status_name(init_st), ms_last_error());
    if (ms_current_mode() != MS_MODE_LOCAL)
        return bench_print_error(cmd, "MS_MODE is %s, not local", ms_mode_name(ms_current_mode()));
    return 0;
}

/* The commands that talk to msd's API first. */
static int
no_msd(const char *cmd)
{
    return bench_print_error(cmd, "cannot reach msd's API (MS_ORCHESTRATOR, MS_STATE_DIR)");
}

static int
cmd_first_call(bench_opts *o)
{
    (void)o;
    char s[BENCH_STR_LEN + 1];
    struct echo_msg r;
    bench_payload(1, s);
    int64_t t0 = bench_now_ns();
    ms_status st = SVC_TRY(&r, 1, s);
    int64_t t1 = bench_now_ns();
    int rc;
    if (st != MS_OK) {
        rc = bench_print_error("first_call", "%s: %s", ms_status_name(st), ms_last_error());
    } else {
        echo_msg_free_fields(&r);
        printf("{\"kind\":\"first_call\",\"label\":\"%s\",\"init_ms\":%.3f,"
               "\"first_call_ms\":%.3f}\n",
               SVC_NAME, (double)(t_init - t_start) / 1e6, (double)(t1 - t0) / 1e6);
        fflush(stdout);
        rc = 0;
    }
    if (own.del && (msd_setup() != 0 || delete_service(30) != 0))
        rc = 1;
    return rc;
}

static int
cmd_probe(bench_opts *o)
{
    (void)o;
    char s[BENCH_STR_LEN + 1];
    struct echo_msg r;
    bench_payload(7, s);
    ms_status st = SVC_TRY(&r, 7, s);
    int rc;
    if (st != MS_OK)
        rc = bench_print_error("probe", "%s: %s", ms_status_name(st), ms_last_error());
    else if (r.n != 7 || !r.s || strcmp(r.s, s) != 0)
        rc = bench_print_error("probe", "echo mismatch");
    else {
        printf("{\"kind\":\"probe\",\"label\":\"%s\",\"ok\":true}\n", SVC_NAME);
        rc = 0;
    }
    if (st == MS_OK)
        echo_msg_free_fields(&r);
    return rc;
}

/* latency and throughput: the echo through ms. */
static int
echo_run(const char *cmd, bench_opts *o)
{
    static const bench_ops ops = {ms_open, ms_call, ms_close};
    if (msd_setup() != 0)
        return no_msd(cmd);
    o->mode = strcmp(cmd, "latency") == 0 ? BENCH_LATENCY : BENCH_THROUGHPUT;
    if (own.instances > 0) {
        char err[512];
        void *c = ms_open("", err, sizeof err);
        if (!c)
            return bench_print_error(o->label, "first call: %s", err);
        if (ensure_instances(own.instances, 0, 60) != 0)
            return bench_print_error(o->label, "%d instances not ready", own.instances);
    }
    return bench_run_client(&ops, o);
}

static int
cmd_latency(bench_opts *o)
{
    return echo_run("latency", o);
}

static int
cmd_throughput(bench_opts *o)
{
    return echo_run("throughput", o);
}

static int
cmd_ensure(bench_opts *o)
{
    if (msd_setup() != 0)
        return no_msd("ensure");
    char err[512];
    int k = own.instances > 0 ? own.instances : 1;
    int64_t t0 = bench_now_ns();
    if (!ms_open("", err, sizeof err))
        return bench_print_error("ensure", "first call: %s", err);
    if (ensure_instances(k, own.step, o->max_s) != 0)
        return bench_print_error("ensure", "%d instances not ready within %.0f s", k, o->max_s);
    printf("{\"kind\":\"ensure\",\"label\":\"%s\",\"instances\":%d,\"step\":%d,"
           "\"seconds\":%.3f}\n",
           SVC_NAME, k, own.step > 0 && own.step < k ? own.step : k,
           (double)(bench_now_ns() - t0) / 1e9);
    return 0;
}

static int
cmd_lookups(bench_opts *o)
{
    static const bench_ops ops = {lookup_open, lookup_call, lookup_close};
    if (msd_setup() != 0)
        return no_msd("lookups");
    char err[512];
    if (!ms_open("", err, sizeof err))
        return bench_print_error("lookups", "first call: %s", err);
    json_t *svc = find_service();
    const char *build = json_string_value(json_object_get(svc, "build"));
    const char *sig = json_string_value(json_object_get(svc, "signature"));
    if (!build || !sig) {
        json_decref(svc);
        return bench_print_error("lookups", "service %s not listed by msd", SVC_NAME);
    }
    snprintf(lookup_path, sizeof lookup_path, "/v1/services/%s?build=%s&sig=%s", SVC_NAME, build,
             sig);
    json_decref(svc);
    o->label = "lookups";
    return bench_run_client(&ops, o);
}

static int
cmd_msd_cpu(bench_opts *o)
{
    if (msd_setup() != 0)
        return no_msd("msd-cpu");
    if (own.pid <= 0)
        return bench_print_error("msd_cpu", "--pid is required");
    json_t *svc = find_service();
    int ready = svc ? count_instances(svc, "ready") : 0;
    json_decref(svc);
    double c0 = proc_cpu_s(own.pid);
    int64_t t0 = bench_now_ns();
    double secs = o->seconds < o->max_s ? o->seconds : o->max_s;
    sleep_ms((long)(secs * 1000));
    double c1 = proc_cpu_s(own.pid);
    double wall = (double)(bench_now_ns() - t0) / 1e9;
    if (c0 < 0 || c1 < 0)
        return bench_print_error("msd_cpu", "cannot read /proc/%ld/stat", own.pid);
    printf("{\"kind\":\"msd_cpu\",\"label\":\"%s\",\"instances\":%d,\"seconds\":%.3f,"
           "\"cpu_s\":%.3f,\"cpu_pct\":%.2f}\n",
           SVC_NAME, ready, wall, c1 - c0, 100.0 * (c1 - c0) / wall);
    return 0;
}

static int
cmd_spawn_ready(bench_opts *o)
{
    (void)o;
    if (msd_setup() != 0)
        return no_msd("spawn-ready");
    return spawn_ready(&own);
}

static int
cmd_dedupe(bench_opts *o)
{
    (void)o;
    if (msd_setup() != 0)
        return no_msd("dedupe");
    return dedupe_figures();
}

static int
cmd_delete(bench_opts *o)
{
    if (msd_setup() != 0)
        return no_msd("delete");
    int rc = delete_service(o->max_s) == 0 ? 0 : 1;
    if (rc == 0)
        printf("{\"kind\":\"delete\",\"label\":\"%s\"}\n", SVC_NAME);
    return rc;
}

int
main(int argc, char **argv)
{
    static const bench_command commands[] = {
        {"latency", cmd_latency},       {"throughput", cmd_throughput},   {"probe", cmd_probe},
        {"first-call", cmd_first_call}, {"ensure", cmd_ensure},           {"lookups", cmd_lookups},
        {"msd-cpu", cmd_msd_cpu},       {"spawn-ready", cmd_spawn_ready}, {"delete", cmd_delete},
        {"dedupe", cmd_dedupe},
    };
    static const bench_program prog = {
        .name = "bench_ms",
        .label = SVC_NAME,
        .client_done = ms_shutdown,
        .commands = commands,
        .ncommands = sizeof commands / sizeof *commands,
        .usage = "latency|throughput|probe|first-call|ensure|lookups|msd-cpu|spawn-ready|"
                 "delete|dedupe [options]",
        .before = before,
        .extra = take_extra,
        .extra_arg = &own,
    };
    t_start = bench_now_ns();
    /* An instance started by msd serves here and never returns. */
    init_st = ms_init(&argc, &argv);
    t_init = bench_now_ns();
    return bench_main(argc, argv, &prog);
}
