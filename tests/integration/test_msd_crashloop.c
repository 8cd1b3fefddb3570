/*
 * test_msd_crashloop.c: instances that never come up, and instances killed soon after they
 * did (docs/msd.md, "Deaths, back-off, crash loops"). A program whose instances exit at
 * once is restarted with exponential back-off, reported as a crash loop after 5 start-up
 * deaths, retried slowly rather than spun, and a lookup answers 503 saying so, at once when
 * nothing can start before its deadline, after holding when a retry comes first; one that
 * hangs is killed at its start deadline and replaced with back-off. An instance killed
 * again and again right after becoming ready is restarted with a capped back-off, never
 * makes a crash loop, and lookups are held meanwhile rather than refused. msd stays
 * healthy.
 */
#include "harness.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static h_msd *M;

static int
setup(void **state)
{
    (void)state;
    /* clang-format off */
    static const char *const args[] = {
        "--backoff-base-ms", "100", "--start-deadline-ms", "1500",
        "--probe-interval-ms", "200", "--probe-timeout-ms", "1000", NULL};
    /* clang-format on */
    M = h_msd_start(args);
    return M ? 0 : -1;
}

/* The "restart in N ms" delays of the dead events of a service, in order. */
static int
backoffs_of(h_msd *m, const char *service, long long *out, int max)
{
    json_t *evs = h_events(m);
    int n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(evs, i, e)
    {
        const char *t = json_string_value(json_object_get(e, "type"));
        const char *s = json_string_value(json_object_get(e, "service"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        if (!t || strcmp(t, "dead") != 0 || !s || strcmp(s, service) != 0 || !msg)
            continue;
        const char *r = strstr(msg, "restart in ");
        if (r && n < max)
            out[n++] = strtoll(r + 11, NULL, 10);
    }
    json_decref(evs);
    return n;
}

static int
backoffs(const char *service, long long *out, int max)
{
    return backoffs_of(M, service, out, max);
}

/* Whether the listing flags service as in a crash loop. */
static int
crashloop_flag(h_msd *m, const char *service)
{
    json_t *list = h_services(m);
    size_t i;
    json_t *s;
    int flagged = 0;
    json_array_foreach(list, i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "name")), service) == 0)
            flagged |= json_is_true(json_object_get(s, "crashloop"));
    }
    json_decref(list);
    return flagged;
}

static void
test_msd_crash_at_start_backs_off_and_reports(void **state)
{
    (void)state;
    assert_int_equal(h_deploy(M, h_bin("MS_TEST_APP_CRASH"), NULL), 201);
    const char *hdrs[] = {"Ms-Deadline-Ms: 20000", NULL};
    int64_t t0 = h_now_ms();
    h_resp r;
    assert_int_equal(h_http(M, "GET", "/v1/services/add", M->call, NULL, 0, hdrs, &r), 0);
    int64_t took = h_now_ms() - t0;
    /* Not a timeout: 503 as soon as the crash loop is established, saying so. */
    assert_int_equal(r.status, 503);
    assert_string_equal(h_err_code(&r), "MS_EUNAVAILABLE");
    assert_non_null(strstr(r.body, "crash loop"));
    h_resp_free(&r);
    assert_true(took < 15000);

    /* Back-off doubled: 100, 200, 400, 800, then the slow crash-loop retry. */
    long long d[16];
    int n = backoffs("add", d, 16);
    fprintf(stderr, "back-off delays:");
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %lld", d[i]);
    fprintf(stderr, " (crash loop after %lld ms)\n", (long long)took);
    assert_int_equal(n, 5);
    assert_int_equal(d[0], 100);
    assert_int_equal(d[1], 200);
    assert_int_equal(d[2], 400);
    assert_int_equal(d[3], 800);
    assert_true(d[4] >= 30000);
    assert_int_equal(h_count_events(M, "crashloop", "add"), 1);

    /* Not spun: no new start for a while. */
    int spawns = h_count_events(M, "spawn", "add");
    int64_t end = h_now_ms() + 1500;
    while (h_now_ms() < end) {
        assert_int_equal(h_count_events(M, "spawn", "add"), spawns);
        h_nap(100);
    }

    /* Reported by msctl status (exit 0, crash loop flag) and services. */
    char *out = NULL, *err = NULL;
    const char *st_args[] = {"status", NULL};
    assert_int_equal(h_msctl(M, &out, &err, 10000, st_args), 0);
    char *line = strstr(out, "\nadd ");
    assert_non_null(line);
    char *eol = strchr(line + 1, '\n');
    if (eol)
        *eol = '\0';
    assert_non_null(strstr(line, "yes"));
    free(out);
    free(err);
    assert_true(crashloop_flag(M, "add"));

    /* Its log holds what the program said. */
    h_resp hr;
    assert_int_equal(h_http(M, "GET", "/v1/health", NULL, NULL, 0, NULL, &hr), 0);
    assert_int_equal(hr.status, 200);
    h_resp_free(&hr);
    assert_true(h_alive(M->pid));
}

static void
test_msd_hang_at_start_hits_the_deadline(void **state)
{
    (void)state;
    assert_int_equal(h_deploy(M, h_bin("MS_TEST_APP_HANG"), NULL), 201);
    /* The hanging build is the newest provider of "slow": a lookup starts it. */
    const char *hdrs[] = {"Ms-Deadline-Ms: 2500", NULL};
    h_resp r;
    int64_t t0 = h_now_ms();
    assert_int_equal(h_http(M, "GET", "/v1/services/slow", M->call, NULL, 0, hdrs, &r), 0);
    assert_int_equal(r.status, 504);
    assert_string_equal(h_err_code(&r), "MS_ETIMEDOUT");
    assert_true(h_now_ms() - t0 >= 2400);
    h_resp_free(&r);
    /* Killed at its 1.5 s start deadline, then restarted after back-off. */
    assert_int_equal(h_wait_events(M, "dead", "slow", 1, 5000), 0);
    json_t *evs = h_events(M);
    int found = 0;
    size_t i;
    json_t *e;
    json_array_foreach(evs, i, e)
    {
        const char *msg = json_string_value(json_object_get(e, "message"));
        const char *t = json_string_value(json_object_get(e, "type"));
        if (t && strcmp(t, "dead") == 0 && msg && strstr(msg, "not ready within 1500 ms") &&
            strstr(msg, "back-off"))
            found = 1;
    }
    json_decref(evs);
    assert_true(found);
    assert_int_equal(h_wait_events(M, "spawn", "slow", 2, 5000), 0);
    assert_true(h_alive(M->pid));
}

/*
 * A crash loop whose next retry comes before a lookup's deadline: the lookup is held
 * through that start (503 only once nothing can start before the deadline), while one
 * whose deadline comes first is answered 503 at once.
 */
static void
test_msd_crashloop_lookup_held_while_a_start_may_come(void **state)
{
    (void)state;
    /* clang-format off */
    static const char *const args[] = {
        "--backoff-base-ms", "10", "--crashloop-deaths", "3", "--crashloop-retry-ms", "1500",
        "--probe-interval-ms", "200", NULL};
    /* clang-format on */
    h_msd *m = h_msd_start(args);
    assert_non_null(m);
    assert_int_equal(h_deploy(m, h_bin("MS_TEST_APP_CRASH"), NULL), 201);
    /* A lookup starts it; three start-up deaths later it is a crash loop. */
    const char *start_hdrs[] = {"Ms-Deadline-Ms: 100", NULL};
    h_resp r;
    assert_int_equal(h_http(m, "GET", "/v1/services/add", m->call, NULL, 0, start_hdrs, &r), 0);
    h_resp_free(&r);
    assert_int_equal(h_wait_events(m, "crashloop", "add", 1, 10000), 0);
    assert_true(crashloop_flag(m, "add"));

    /* The crash loop began with a death: the next starts come about 1.5, 3 and 4.5 s from
     * now (the slot's own back-off, 10 ms doubling, stays below the 1.5 s retry until its
     * 9th death). A lookup with 5.2 s is held through them, then answered 503 once the
     * next start would come after its deadline. */
    const char *hdrs[] = {"Ms-Deadline-Ms: 5200", NULL};
    int spawns = h_count_events(m, "spawn", "add");
    int64_t t0 = h_now_ms();
    assert_int_equal(h_http(m, "GET", "/v1/services/add", m->call, NULL, 0, hdrs, &r), 0);
    int64_t took = h_now_ms() - t0;
    int spawned = h_count_events(m, "spawn", "add") - spawns;
    fprintf(stderr, "held lookup: %ld after %lld ms, %d start(s) meanwhile: %s\n", r.status,
            (long long)took, spawned, r.body ? r.body : "");
    /* 503 when msd sees the next start would come after the deadline; 504 when a start
     * was still expected before it but came late (a loaded machine): both are correct
     * answers of a lookup that was held through the starts. */
    assert_true(r.status == 503 || r.status == 504);
    if (r.status == 503) {
        assert_string_equal(h_err_code(&r), "MS_EUNAVAILABLE");
        assert_non_null(strstr(r.body, "crash loop"));
        assert_non_null(strstr(r.body, "past this lookup's deadline"));
    } else {
        assert_string_equal(h_err_code(&r), "MS_ETIMEDOUT");
    }
    h_resp_free(&r);
    assert_true(spawned >= 2);
    assert_true(took >= 3000); /* held through the starts before the deadline */
    assert_true(took < 5200 + 1000);

    /* It was answered at a death: the next start is 1.5 s away, so a 300 ms lookup is
     * answered at once. */
    const char *short_hdrs[] = {"Ms-Deadline-Ms: 300", NULL};
    t0 = h_now_ms();
    assert_int_equal(h_http(m, "GET", "/v1/services/add", m->call, NULL, 0, short_hdrs, &r), 0);
    took = h_now_ms() - t0;
    assert_int_equal(r.status, 503);
    h_resp_free(&r);
    assert_true(took < 250);
    assert_true(h_alive(m->pid));
}

/*
 * kill -9, again and again, of an instance that became ready: each restart is backed off
 * (100, 200, then capped at --backoff-max-ms 400), none of it is a crash loop, and a lookup
 * made while the slot waits to restart is held until it is ready (200), never refused.
 */
static void
test_msd_kills_after_ready_capped_backoff_no_crashloop(void **state)
{
    (void)state;
    /* clang-format off */
    static const char *const args[] = {
        "--backoff-base-ms", "100", "--backoff-max-ms", "400", "--probe-interval-ms", "200",
        NULL};
    /* clang-format on */
    h_msd *m = h_msd_start(args);
    assert_non_null(m);
    assert_int_equal(h_deploy(m, h_bin("MS_TEST_APP"), NULL), 201);
    const char *hdrs[] = {"Ms-Deadline-Ms: 10000", NULL};
    h_resp r;
    assert_int_equal(h_http(m, "GET", "/v1/services/add", m->call, NULL, 0, hdrs, &r), 0);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);

    enum { KILLS = 7 }; /* more than the 5 start-up deaths that would make a crash loop */
    for (int k = 0; k < KILLS; k++) {
        assert_int_equal(h_wait_count(m, "add", "ready", 1, 10000), 0);
        pid_t procs[8];
        int np = h_instance_procs(m, procs, 8);
        assert_int_equal(np, 1); /* the one instance this msd runs, seen through /proc */
        int deaths = h_count_events(m, "dead", "add");
        assert_int_equal(kill(procs[0], SIGKILL), 0);
        assert_int_equal(h_wait_events(m, "dead", "add", deaths + 1, 5000), 0);
        /* Dead and waiting for its back-off: the lookup is held, then answered. */
        int64_t t0 = h_now_ms();
        assert_int_equal(h_http(m, "GET", "/v1/services/add", m->call, NULL, 0, hdrs, &r), 0);
        if (r.status != 200)
            fprintf(stderr, "lookup after kill %d: %ld %s\n", k + 1, r.status, r.body);
        assert_int_equal(r.status, 200);
        assert_int_equal(json_array_size(json_object_get(r.json, "instances")), 1);
        h_resp_free(&r);
        assert_true(h_now_ms() - t0 < 5000);
    }
    long long d[16];
    int n = backoffs_of(m, "add", d, 16);
    fprintf(stderr, "back-off after kills:");
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %lld", d[i]);
    fprintf(stderr, "\n");
    assert_int_equal(n, KILLS);
    assert_int_equal(d[0], 100);
    assert_int_equal(d[1], 200);
    for (int i = 2; i < n; i++)
        assert_int_equal(d[i], 400);
    assert_int_equal(h_count_events(m, "crashloop", "add"), 0);
    assert_false(crashloop_flag(m, "add"));
    assert_true(h_alive(m->pid));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msd_crash_at_start_backs_off_and_reports),
        cmocka_unit_test(test_msd_hang_at_start_hits_the_deadline),
        cmocka_unit_test(test_msd_crashloop_lookup_held_while_a_start_may_come),
        cmocka_unit_test(test_msd_kills_after_ready_capped_backoff_no_crashloop),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
