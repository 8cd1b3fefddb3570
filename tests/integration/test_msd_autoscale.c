/*
 * test_msd_autoscale.c: msd's autoscaler (DESIGN section 5) with real instances and real
 * load. The test drives a concurrency-1 service whose calls sleep 50 ms from LOAD_THREADS
 * threads (raw HTTP calls to the instances msd's lookup returns, re-located every 200 ms
 * like a client): it must scale up from 1 instance to max_instances, several at once,
 * stay there while loaded, and after the load stops come down one at a time, a
 * stabilisation period apart, to min_instances, draining each. A manual scale pins a
 * service until it is handed back with `msctl scale SERVICE auto`.
 *
 * msd runs with shortened windows (--scale-down-window-ms 2000, --scale-stabilise-ms
 * 3000) so the whole file takes well under a minute. Waits are polls with bounds; the
 * only fixed waits check that something does NOT happen over a stated period.
 */
#include "harness.h"
#include "httpc.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define STABILISE_MS 3000
#define DOWN_WINDOW_MS 2000
#define LOAD_THREADS 4
#define CALL_MS 50
#define WORK_MAX 6 /* max_instances of "work" (apps/autoscale_app.c) */

static h_msd *M;

static int
setup(void **state)
{
    (void)state;
    static const char *const args[] = {"--probe-interval-ms",
                                       "200",
                                       "--scale-down-window-ms",
                                       "2000",
                                       "--scale-stabilise-ms",
                                       "3000",
                                       NULL};
    M = h_msd_start(args);
    if (!M)
        return -1;
    json_t *reply = NULL;
    long st = h_deploy(M, h_bin("MS_TEST_AUTOSCALE_APP"), &reply);
    json_decref(reply);
    if (st != 201) {
        fprintf(stderr, "deploy answered %ld\n", st);
        return -1;
    }
    return 0;
}

/* ---- load: LOAD_THREADS callers and a locator ---------------------------------------- */

typedef struct load {
    pthread_mutex_t mu;
    const char *service;
    char addrs[16][64];
    int naddr;
    int stop;
    long ok, failed;
    pthread_t locator, workers[LOAD_THREADS];
} load;

static void *
locate_loop(void *arg)
{
    load *l = arg;
    char path[128];
    snprintf(path, sizeof path, "/v1/services/%s", l->service);
    const char *hdrs[] = {"Ms-Deadline-Ms: 2000", NULL};
    for (;;) {
        pthread_mutex_lock(&l->mu);
        int stop = l->stop;
        pthread_mutex_unlock(&l->mu);
        if (stop)
            break;
        h_resp r;
        if (h_http(M, "GET", path, M->call, NULL, 0, hdrs, &r) == 0 && r.status == 200) {
            json_t *insts = json_object_get(r.json, "instances");
            pthread_mutex_lock(&l->mu);
            l->naddr = 0;
            for (size_t i = 0; i < json_array_size(insts) && l->naddr < 16; i++) {
                const char *a =
                    json_string_value(json_object_get(json_array_get(insts, i), "addr"));
                if (a)
                    snprintf(l->addrs[l->naddr++], sizeof l->addrs[0], "%s", a);
            }
            pthread_mutex_unlock(&l->mu);
        }
        h_resp_free(&r);
        h_nap(200); /* a client re-locates every ~1 s; a little sooner here */
    }
    msi_httpc_thread_release();
    return NULL;
}

static void *
call_loop(void *arg)
{
    load *l = arg;
    static int next_id;
    pthread_mutex_lock(&l->mu);
    unsigned k = (unsigned)next_id++;
    pthread_mutex_unlock(&l->mu);
    char body[32];
    snprintf(body, sizeof body, "{\"ms\":%d}", CALL_MS);
    const char *hdrs[] = {"Ms-Deadline-Ms: 3000", "Content-Type: application/json", NULL};
    for (;;) {
        char url[128] = "";
        pthread_mutex_lock(&l->mu);
        int stop = l->stop;
        if (l->naddr)
            snprintf(url, sizeof url, "http://%s/v1/call/%s", l->addrs[k++ % (unsigned)l->naddr],
                     l->service);
        pthread_mutex_unlock(&l->mu);
        if (stop)
            break;
        if (!url[0]) {
            h_nap(10); /* the locator has not answered yet */
            continue;
        }
        h_resp r;
        int ok =
            h_http_url("POST", url, M->call, body, strlen(body), hdrs, &r) == 0 && r.status == 200;
        h_resp_free(&r);
        pthread_mutex_lock(&l->mu);
        if (ok)
            l->ok++;
        else
            l->failed++;
        pthread_mutex_unlock(&l->mu);
    }
    msi_httpc_thread_release();
    return NULL;
}

static void
load_start(load *l, const char *service)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    l->service = service;
    assert_int_equal(pthread_create(&l->locator, NULL, locate_loop, l), 0);
    for (int i = 0; i < LOAD_THREADS; i++)
        assert_int_equal(pthread_create(&l->workers[i], NULL, call_loop, l), 0);
}

static void
load_stop(load *l)
{
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->locator, NULL);
    for (int i = 0; i < LOAD_THREADS; i++)
        pthread_join(l->workers[i], NULL);
    pthread_mutex_destroy(&l->mu);
}

/* ---- events ----------------------------------------------------------------------------- */

typedef struct decision {
    int64_t ts_ms;
    int from, to;
    char dir; /* 'u' or 'd' */
} decision;

/* The autoscaler's "up:" and "down:" events of service after seq `since`, oldest first. */
static int
decisions(const char *service, int64_t since, decision *out, int max)
{
    json_t *evs = h_events(M);
    int n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(evs, i, e)
    {
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *svc = json_string_value(json_object_get(e, "service"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        if (json_integer_value(json_object_get(e, "seq")) <= since || !type || !svc || !msg ||
            strcmp(type, "autoscale") != 0 || strcmp(svc, service) != 0)
            continue;
        char dir = strncmp(msg, "up:", 3) == 0 ? 'u' : strncmp(msg, "down:", 5) == 0 ? 'd' : 0;
        const char *d = strstr(msg, "desired ");
        decision x = {json_integer_value(json_object_get(e, "ts_ms")), 0, 0, dir};
        if (!dir || !d || sscanf(d, "desired %d -> %d", &x.from, &x.to) != 2 || n >= max)
            continue;
        out[n++] = x;
    }
    json_decref(evs);
    return n;
}

/* msd's desired instance count of service (GET /v1/services); -1 when not listed. */
static int
desired_of(const char *service)
{
    json_t *list = h_services(M);
    int d = -1;
    size_t i;
    json_t *s;
    json_array_foreach(list, i, s)
    {
        const char *name = json_string_value(json_object_get(s, "name"));
        if (name && strcmp(name, service) == 0)
            d = (int)json_integer_value(json_object_get(s, "desired"));
    }
    json_decref(list);
    return d;
}

static int64_t
last_seq(void)
{
    json_t *evs = h_events(M);
    int64_t s = 0;
    size_t i;
    json_t *e;
    json_array_foreach(evs, i, e)
    {
        int64_t q = json_integer_value(json_object_get(e, "seq"));
        if (q > s)
            s = q;
    }
    json_decref(evs);
    return s;
}

static int64_t
wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The service's "autoscale" flag in GET /v1/services (-1 if not found). */
static int
autoscaled(const char *service)
{
    json_t *list = h_services(M);
    int v = -1;
    size_t i;
    json_t *s;
    json_array_foreach(list, i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "name")), service) == 0)
            v = json_is_true(json_object_get(s, "autoscale"));
    }
    json_decref(list);
    return v;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void
test_msd_autoscale_up_under_load_then_down(void **state)
{
    (void)state;
    /* A lookup starts the first instance (lazily, one). */
    h_resp r;
    const char *hdrs[] = {"Ms-Deadline-Ms: 15000", NULL};
    assert_int_equal(h_http(M, "GET", "/v1/services/work", M->call, NULL, 0, hdrs, &r), 0);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    assert_int_equal(h_wait_count(M, "work", "ready", 1, 10000), 0);
    assert_int_equal(autoscaled("work"), 1);
    int64_t since = last_seq();

    /* LOAD_THREADS callers on a concurrency-1 service: demand ~LOAD_THREADS on one
     * instance, far above scale_up_at 0.5: max(n + 1, ceil(1 * 4 / 0.5)) = 8, capped at 6. */
    load l;
    int64_t t0 = h_now_ms();
    load_start(&l, "work");
    int64_t reached[WORK_MAX + 1] = {0};
    int top = 1;
    int64_t end = t0 + 30000;
    while (h_now_ms() < end && top < WORK_MAX) {
        int c = h_count(M, "work", "ready");
        for (; top < c && top < WORK_MAX; top++)
            reached[top + 1] = h_now_ms() - t0;
        h_nap(50);
    }
    assert_int_equal(top, WORK_MAX);
    fprintf(stderr, "load of %d callers: ready instances", LOAD_THREADS);
    for (int i = 2; i <= WORK_MAX; i++)
        fprintf(stderr, " %d after %lld ms%s", i, (long long)reached[i], i < WORK_MAX ? "," : "\n");

    /* Loaded, it stays at max_instances: no scale-down over two stabilisation periods. What
     * is asserted is msd's desired count, not the instances listed: on a loaded machine an
     * instance may miss its probes and be replaced meanwhile, which is not a scale-down. */
    int64_t hold_end = h_now_ms() + 2 * STABILISE_MS;
    while (h_now_ms() < hold_end) {
        assert_int_equal(desired_of("work"), WORK_MAX);
        h_nap(200);
    }
    int64_t stopped_wall = wall_ms();
    load_stop(&l);
    fprintf(stderr, "calls: %ld ok, %ld failed\n", l.ok, l.failed);
    assert_true(l.ok > 100);
    assert_true(l.failed * 20 <= l.ok); /* at most 5% (none expected: nothing drained) */

    decision ups[16];
    int nup = decisions("work", since, ups, 16);
    int biggest = 0;
    for (int i = 0; i < nup; i++) {
        assert_int_equal(ups[i].dir, 'u');
        assert_true(ups[i].to > ups[i].from);
        assert_true(ups[i].to <= WORK_MAX);
        if (ups[i].to - ups[i].from > biggest)
            biggest = ups[i].to - ups[i].from;
    }
    assert_true(nup >= 1);
    assert_true(biggest >= 2); /* several at once when far above */
    fprintf(stderr, "scale-ups: %d decision(s), the biggest +%d\n", nup, biggest);

    /* Idle: down one at a time, a stabilisation period apart, to min_instances (1). */
    int64_t t1 = h_now_ms();
    assert_int_equal(h_wait_count(M, "work", NULL, 1, 40000), 0);
    int64_t took = h_now_ms() - t1;
    decision all[32];
    int n = decisions("work", since, all, 32);
    int downs = 0;
    int64_t prev_change = 0;
    for (int i = 0; i < n; i++) {
        if (all[i].dir == 'd') {
            assert_int_equal(all[i].to, all[i].from - 1);
            assert_true(all[i].ts_ms >= stopped_wall - 100); /* never while loaded */
            /* Wall-clock stamps of two decisions made on the monotonic clock: allow
             * for a little skew. */
            assert_true(all[i].ts_ms - prev_change >= STABILISE_MS - 50);
            downs++;
        }
        prev_change = all[i].ts_ms;
    }
    fprintf(stderr, "scale-down %d -> 1 in %lld ms after the load stopped (%d decisions)\n",
            WORK_MAX, (long long)took, downs);
    assert_int_equal(downs, WORK_MAX - 1);
    /* Each went through the drain path, and it stays at one (min_instances). */
    assert_true(h_count_events(M, "drain", "work") >= WORK_MAX - 1);
    assert_int_equal(h_count(M, "work", "ready"), 1);
}

static void
test_msd_autoscale_manual_scale_pins(void **state)
{
    (void)state;
    h_resp r;
    const char body[] = "{\"instances\":3}";
    assert_int_equal(
        h_http(M, "PUT", "/v1/services/held/scale", M->admin, body, strlen(body), NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(json_is_false(json_object_get(r.json, "autoscale")));
    h_resp_free(&r);
    assert_int_equal(h_wait_count(M, "held", "ready", 3, 15000), 0);
    assert_int_equal(autoscaled("held"), 0);
    int64_t since = last_seq();

    /* Idle and pinned: no scale-down over the window and twice the stabilisation. */
    int64_t hold_end = h_now_ms() + DOWN_WINDOW_MS + 2 * STABILISE_MS;
    while (h_now_ms() < hold_end) {
        assert_int_equal(h_count(M, "held", NULL), 3);
        h_nap(200);
    }
    decision d[8];
    assert_int_equal(decisions("held", since, d, 8), 0);

    /* Bad bodies: 400. */
    const char bad[] = "{\"auto\":\"yes\"}";
    assert_int_equal(
        h_http(M, "PUT", "/v1/services/held/scale", M->admin, bad, strlen(bad), NULL, &r), 0);
    assert_int_equal(r.status, 400);
    h_resp_free(&r);
    assert_int_equal(h_http(M, "PUT", "/v1/services/held/scale", M->admin, "{}", 2, NULL, &r), 0);
    assert_int_equal(r.status, 400);
    h_resp_free(&r);

    /* Handed back: the autoscaler brings it down to min_instances, one at a time. */
    char *out = NULL, *err = NULL;
    const char *args[] = {"scale", "held", "auto", NULL};
    assert_int_equal(h_msctl(M, &out, &err, 10000, args), 0);
    assert_non_null(strstr(out, "held: desired 3"));
    assert_non_null(strstr(out, "autoscaled"));
    free(out);
    free(err);
    assert_int_equal(autoscaled("held"), 1);
    assert_int_equal(h_wait_count(M, "held", NULL, 1, 30000), 0);
    int n = decisions("held", since, d, 8);
    assert_int_equal(n, 2);
    assert_true(d[0].dir == 'd' && d[0].from == 3 && d[0].to == 2);
    assert_true(d[1].dir == 'd' && d[1].from == 2 && d[1].to == 1);
    assert_true(d[1].ts_ms - d[0].ts_ms >= STABILISE_MS - 50);

    /* The decisions show in msctl events, with their inputs. */
    const char *ev[] = {"events", NULL};
    assert_int_equal(h_msctl(M, &out, &err, 10000, ev), 0);
    assert_non_null(strstr(out, "autoscale"));
    assert_non_null(strstr(out, "down: n 3, demand"));
    assert_non_null(strstr(out, "scale_down_at 0.30"));
    assert_non_null(strstr(out, "pinned at 3"));
    free(out);
    free(err);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msd_autoscale_up_under_load_then_down),
        cmocka_unit_test(test_msd_autoscale_manual_scale_pins),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
