/*
 * test_msd_crashloop.c: instances that never come up. A program whose instances exit at
 * once is restarted with exponential back-off, reported as a crash loop after 5 quick
 * deaths, retried slowly rather than spun, and a lookup answers 503 saying so; one that
 * hangs is killed at its start deadline and replaced with back-off. msd stays healthy.
 */
#include "harness.h"

#include <setjmp.h>
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
backoffs(const char *service, long long *out, int max)
{
    json_t *evs = h_events(M);
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
    json_t *list = h_services(M);
    size_t i;
    json_t *s;
    int flagged = 0;
    json_array_foreach(list, i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "name")), "add") == 0)
            flagged = json_is_true(json_object_get(s, "crashloop"));
    }
    json_decref(list);
    assert_true(flagged);

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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msd_crash_at_start_backs_off_and_reports),
        cmocka_unit_test(test_msd_hang_at_start_hits_the_deadline),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
