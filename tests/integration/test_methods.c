/*
 * test_methods.c: MS_METHOD (docs/objects.md, "Methods") with a real msd and real instances
 * of apps/method_app.c in local mode: concurrent deposits on one object apply every call
 * exactly once (no failure, final balance = calls, every result distinct); the same request
 * id sent twice to an instance, and to another instance, is applied once and answered the
 * same; a method on an absent object is MS_ENOTFOUND; conflicts on every attempt end in
 * MS_ECONFLICT; without msd a method is MS_EUNAVAILABLE; and deposits while instances are
 * kill -9'd, or while msd is kill -9'd and restarted, still all succeed, each applied once.
 */
#include "harness.h"

#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static h_msd *M;
static char env_orch[128], env_state[320];

static int
setup(void **state)
{
    (void)state;
    M = h_msd_start(NULL);
    if (!M)
        return -1;
    snprintf(env_orch, sizeof env_orch, "MS_ORCHESTRATOR=%s", M->addr);
    snprintf(env_state, sizeof env_state, "MS_STATE_DIR=%s", M->state);
    return 0;
}

/* Runs method_app with args in local mode against M; returns its exit status, its output in
 * *out (malloc'd). */
static int
app(char **out, const char *a1, const char *a2, const char *a3)
{
    const char *argv[] = {h_bin("MS_TEST_METHOD_APP"), a1, a2, a3, NULL};
    const char *env[] = {env_orch, env_state, "MS_MODE=local", NULL};
    char *err = NULL;
    int rc = h_run(argv, env, out, &err, 120000);
    if (rc != 0)
        fprintf(stderr, "method_app %s exited %d: %s%s\n", a1, rc, *out ? *out : "",
                err ? err : "");
    free(err);
    return rc;
}

static void
check_deposits(const char *out, int want)
{
    int ok = -1, failed = -1, distinct = -1;
    long long balance = -1;
    assert_int_equal(
        sscanf(out, "ok=%d failed=%d balance=%lld distinct=%d", &ok, &failed, &balance, &distinct),
        4);
    if (failed)
        fprintf(stderr, "%s", out);
    assert_int_equal(failed, 0);
    assert_int_equal(ok, want);
    assert_int_equal(balance, ok);
    assert_int_equal(distinct, ok);
}

/* 8 threads x 50 calls on one object, 2 instances running 8 calls each: conflicts happen,
 * and are run again; every call succeeds once. */
static void
test_methods_concurrent_deposits(void **state)
{
    (void)state;
    char *out = NULL;
    assert_int_equal(app(&out, "deposits", "8", "50"), 0);
    check_deposits(out, 400);
    free(out);
}

static void
test_methods_absent_object(void **state)
{
    (void)state;
    char *out = NULL;
    assert_int_equal(app(&out, "notfound", NULL, NULL), 0);
    assert_string_equal(out, "MS_ENOTFOUND 0\n");
    free(out);
}

static void
test_methods_conflicts_exhausted(void **state)
{
    (void)state;
    char *out = NULL;
    assert_int_equal(app(&out, "conflict", NULL, NULL), 0);
    /* spoil: every attempt conflicted, nothing of the method written; touch twice: 2. */
    assert_string_equal(out, "MS_ECONFLICT MS_OK MS_OK touched=2 spoilt=0\n");
    free(out);
}

/* Runs without msd: zero mode. */
static void
test_methods_zero_mode(void **state)
{
    (void)state;
    const char *argv[] = {h_bin("MS_TEST_METHOD_APP"), "zero", NULL};
    const char *env[] = {"MS_MODE=zero", NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(h_run(argv, env, &out, &err, 30000), 0);
    assert_string_equal(out, "MS_EUNAVAILABLE\n");
    free(out);
    free(err);
}

/* The addresses of the ready instances of a service (up to max); how many. */
static int
ready_addrs(const char *service, char addrs[][64], int max)
{
    json_t *list = h_services(M);
    int n = 0;
    size_t k, q;
    json_t *s, *in;
    json_array_foreach(list, k, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "name")), service) != 0)
            continue;
        json_array_foreach(json_object_get(s, "instances"), q, in)
        {
            const char *st = json_string_value(json_object_get(in, "state"));
            if (st && strcmp(st, "ready") == 0 && n < max)
                snprintf(addrs[n++], 64, "%s", json_string_value(json_object_get(in, "addr")));
        }
    }
    json_decref(list);
    return n;
}

static long
call_raw(const char *addr, const char *body, const char *rid, char **answer)
{
    char url[160], h_rid[200];
    snprintf(url, sizeof url, "http://%s/v1/call/deposit", addr);
    snprintf(h_rid, sizeof h_rid, "Ms-Request-Id: %s", rid);
    const char *headers[] = {h_rid, NULL};
    h_resp r;
    assert_int_equal(h_http_url("POST", url, M->call, body, strlen(body), headers, &r), 0);
    long status = r.status;
    *answer = strdup(r.body ? r.body : "");
    h_resp_free(&r);
    return status;
}

/* The same call (same Ms-Request-Id, same body) sent twice to an instance, then to the
 * other: applied once, every answer the recorded result. */
static void
test_methods_retried_request_applied_once(void **state)
{
    (void)state;
    char *ref = NULL;
    assert_int_equal(app(&ref, "create", NULL, NULL), 0);
    ref[strcspn(ref, "\n")] = '\0';
    assert_int_equal(h_wait_count(M, "deposit", "ready", 2, 30000), 0);
    char addrs[4][64];
    assert_int_equal(ready_addrs("deposit", addrs, 4), 2);

    char body[300];
    snprintf(body, sizeof body, "{\"self\":\"%s\",\"amount\":5}", ref);
    char *a1 = NULL, *a2 = NULL, *a3 = NULL, *a4 = NULL;
    assert_int_equal(call_raw(addrs[0], body, "feedc0de-7", &a1), 200);
    assert_int_equal(call_raw(addrs[0], body, "feedc0de-7", &a2), 200);
    assert_int_equal(call_raw(addrs[1], body, "feedc0de-7", &a3), 200);
    assert_string_equal(a1, "{\"result\":5}");
    assert_string_equal(a2, a1);
    assert_string_equal(a3, a1);
    /* Another id: applied. */
    assert_int_equal(call_raw(addrs[1], body, "feedc0de-8", &a4), 200);
    assert_string_equal(a4, "{\"result\":10}");

    char *bal = NULL;
    assert_int_equal(app(&bal, "balance", ref, NULL), 0);
    assert_string_equal(bal, "10\n");

    /* The store kept the transaction's answer, with its result. */
    h_resp r;
    assert_int_equal(h_http(M, "GET", "/v1/txn/feedc0de-7", M->call, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "result")), 5);
    h_resp_free(&r);
    assert_int_equal(h_http(M, "GET", "/v1/txn/nosuch-1", M->call, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    h_resp_free(&r);
    free(a1);
    free(a2);
    free(a3);
    free(a4);
    free(bal);
    free(ref);
}

static volatile int chaos_stop;
static int chaos_kills;

static void *
killer(void *arg)
{
    (void)arg;
    while (!chaos_stop) {
        h_nap(150);
        if (chaos_stop)
            break;
        pid_t pids[16];
        int n = h_instance_procs(M, pids, 16);
        /* Only deposit's instances run this binary with MS_SERVE=deposit; any instance of
         * method_app will do: they all serve the methods the deposits call. */
        if (n > 0) {
            kill(pids[chaos_kills % n], SIGKILL);
            chaos_kills++;
        }
    }
    return NULL;
}

/* Deposits while an instance is kill -9'd every 150 ms: no call fails, each is applied
 * once (idempotent retries on another instance, deduplicated by the store). */
static void
test_methods_chaos_kill9(void **state)
{
    (void)state;
    assert_int_equal(h_wait_count(M, "deposit", "ready", 2, 30000), 0);
    pthread_t th;
    chaos_stop = 0;
    pthread_create(&th, NULL, killer, NULL);
    char *out = NULL;
    int rc = app(&out, "deposits", "8", "250");
    chaos_stop = 1;
    pthread_join(th, NULL);
    fprintf(stderr, "chaos: %d instances killed: %s", chaos_kills, out ? out : "");
    assert_int_equal(rc, 0);
    assert_true(chaos_kills > 0);
    check_deposits(out, 2000);
    free(out);
}

/* How many accounts the store holds (each run of the app creates one). */
static size_t
count_accounts(void)
{
    h_resp r;
    size_t n = 0;
    if (h_http(M, "GET", "/v1/objects/t/accounts?limit=1000", M->call, NULL, 0, NULL, &r) == 0 &&
        r.status == 200)
        n = json_array_size(json_object_get(r.json, "items"));
    h_resp_free(&r);
    return n;
}

static char *bg_out;
static int bg_rc;
static volatile int bg_done;

static void *
depositor_app(void *arg)
{
    (void)arg;
    bg_rc = app(&bg_out, "deposits", "4", "500");
    bg_done = 1;
    return NULL;
}

/* msd kill -9'd and restarted while deposits run: the methods' requests to the store that
 * got no answer are sent again (safe: the same request id), no call fails, each is applied
 * once. */
static void
test_methods_msd_killed(void **state)
{
    (void)state;
    assert_int_equal(h_wait_count(M, "deposit", "ready", 2, 30000), 0);
    pthread_t th;
    size_t accounts = count_accounts();
    pthread_create(&th, NULL, depositor_app, NULL);
    /* Killed once the app has made its account and its deposits have begun (a condition,
     * not a nap: a slow start, under ASan, would otherwise meet msd dead at ms_obj_create,
     * which is not what this drills). */
    for (int64_t until = h_now_ms() + 30000; count_accounts() == accounts && h_now_ms() < until;)
        h_nap(20);
    assert_true(count_accounts() > accounts);
    h_nap(100);
    assert_true(h_msd_signal(M, SIGKILL, 10000) != -1);
    int during = !bg_done; /* the deposits were running when msd died */
    h_nap(500);
    assert_int_equal(h_msd_restart(M), 0);
    pthread_join(th, NULL);
    fprintf(stderr, "msd killed: %s", bg_out ? bg_out : "");
    assert_int_equal(bg_rc, 0);
    check_deposits(bg_out, 2000);
    assert_true(during);
    free(bg_out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_methods_zero_mode),
        cmocka_unit_test(test_methods_concurrent_deposits),
        cmocka_unit_test(test_methods_absent_object),
        cmocka_unit_test(test_methods_conflicts_exhausted),
        cmocka_unit_test(test_methods_retried_request_applied_once),
        cmocka_unit_test(test_methods_chaos_kill9),
        cmocka_unit_test(test_methods_msd_killed),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
