/*
 * test_msd_restart.c: kill -9 of msd, then a new msd on the same state directory. Running
 * instances are re-adopted (same pid, same epoch) without a duplicate; an instance that
 * died while msd was down is replaced; lookups work again; instances keep answering calls
 * while msd is down. Also: a second msd on a busy state directory is refused, and
 * --parent-pid stops msd and its instances when the parent goes.
 */
#include "harness.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static h_msd *M;

static int
setup(void **state)
{
    (void)state;
    static const char *const args[] = {"--probe-interval-ms", "200", "--probe-timeout-ms", "1000",
                                       NULL};
    M = h_msd_start(args);
    return M ? 0 : -1;
}

typedef struct inst {
    char id[32];
    long long epoch;
    pid_t pid;
    char addr[64];
} inst;

static int
instances(const char *service, inst *out, int max)
{
    json_t *list = h_services(M);
    int n = 0;
    size_t i, k;
    json_t *s, *in;
    json_array_foreach(list, i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "name")), service) != 0)
            continue;
        json_array_foreach(json_object_get(s, "instances"), k, in)
        {
            if (n >= max)
                break;
            snprintf(out[n].id, sizeof out[n].id, "%s",
                     json_string_value(json_object_get(in, "id")));
            out[n].epoch = json_integer_value(json_object_get(in, "epoch"));
            out[n].pid = (pid_t)json_integer_value(json_object_get(in, "pid"));
            snprintf(out[n].addr, sizeof out[n].addr, "%s",
                     json_string_value(json_object_get(in, "addr")));
            n++;
        }
    }
    json_decref(list);
    return n;
}

static long
call_add(const char *addr, int a, int b, long long *result)
{
    char url[128], body[64];
    snprintf(url, sizeof url, "http://%s/v1/call/add", addr);
    snprintf(body, sizeof body, "{\"a\":%d,\"b\":%d}", a, b);
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    h_resp r;
    if (h_http_url("POST", url, M->call, body, strlen(body), hdrs, &r) < 0)
        return 0;
    long st = r.status;
    *result = json_integer_value(json_object_get(r.json, "result"));
    h_resp_free(&r);
    return st;
}

static void
test_msd_kill9_and_restart_readopts(void **state)
{
    (void)state;
    assert_int_equal(h_deploy(M, h_bin("MS_TEST_APP"), NULL), 201);
    h_resp r;
    assert_int_equal(
        h_http(M, "PUT", "/v1/services/add/scale", M->admin, "{\"instances\":3}", 15, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    assert_int_equal(h_wait_count(M, "add", "ready", 3, 15000), 0);
    inst before[8];
    assert_int_equal(instances("add", before, 8), 3);
    char old_addr[64];
    snprintf(old_addr, sizeof old_addr, "%s", M->addr);

    /* kill -9 msd: instances keep running and keep answering calls. */
    int st = h_msd_signal(M, SIGKILL, 5000);
    assert_true(st >= 0 && WIFSIGNALED(st));
    for (int i = 0; i < 3; i++)
        assert_true(h_alive(before[i].pid));
    long long res = 0;
    assert_int_equal(call_add(before[0].addr, 20, 22, &res), 200);
    assert_int_equal(res, 42);

    /* One of them dies while msd is down. */
    assert_int_equal(kill(before[2].pid, SIGKILL), 0);
    assert_int_equal(h_wait_gone(before[2].pid, 5000), 0);

    /* A new msd on the same state directory: same port (the previous one, now free). */
    assert_int_equal(h_msd_restart(M), 0);
    assert_string_equal(M->addr, old_addr);
    assert_int_equal(h_wait_count(M, "add", "ready", 3, 15000), 0);
    inst after[8];
    int n = instances("add", after, 8);
    assert_int_equal(n, 3); /* no duplicate */
    for (int i = 0; i < 2; i++) {
        /* the live ones: same slot, same process, same epoch */
        int found = 0;
        for (int k = 0; k < n; k++) {
            if (strcmp(after[k].id, before[i].id) == 0) {
                found = 1;
                assert_int_equal(after[k].pid, before[i].pid);
                assert_int_equal(after[k].epoch, before[i].epoch);
            }
        }
        assert_true(found);
    }
    /* the dead one: its slot restarted (epoch + 1, a new process) */
    int replaced = 0;
    for (int k = 0; k < n; k++) {
        if (strcmp(after[k].id, before[2].id) == 0) {
            replaced = 1;
            assert_int_equal(after[k].epoch, before[2].epoch + 1);
            assert_true(after[k].pid != before[2].pid);
        }
    }
    assert_true(replaced);
    assert_int_equal(h_count_events(M, "adopt", "add"), 2);
    assert_int_equal(h_count_events(M, "lost", "add"), 1);

    /* Still no duplicate a little later (every live process is counted once). */
    h_nap(600);
    assert_int_equal(h_count(M, "add", NULL), 3);
    assert_int_equal(h_count(M, "add", "ready"), 3);

    /* Lookups and calls work through the new msd. */
    assert_int_equal(h_http(M, "GET", "/v1/services/add", M->call, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "instances")), 3);
    h_resp_free(&r);
    char *out = NULL, *err = NULL;
    const char *args[] = {"call", "add", "a=1", "b=2", NULL};
    assert_int_equal(h_msctl(M, &out, &err, 15000, args), 0);
    assert_string_equal(out, "3\n");
    free(out);
    free(err);

    /* A re-adopted instance that dies is seen at once too (pidfd of a non-child). */
    int deaths = h_count_events(M, "dead", "add");
    assert_int_equal(kill(before[0].pid, SIGKILL), 0);
    assert_int_equal(h_wait_events(M, "dead", "add", deaths + 1, 3000), 0);
    assert_int_equal(h_wait_count(M, "add", "ready", 3, 10000), 0);
}

static void
test_msd_refuses_a_second_msd_on_the_same_state(void **state)
{
    (void)state;
    const char *argv[] = {h_bin("MS_TEST_MSD"), "--state",     M->state,
                          "--listen",           "127.0.0.1:0", NULL};
    char *err = NULL;
    int rc = h_run(argv, NULL, NULL, &err, 10000);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "another msd"));
    free(err);
    assert_true(h_alive(M->pid));
}

static void
test_msd_parent_pid_takes_everything_down(void **state)
{
    (void)state;
    /* A parent that we control: a sleeping child of ours. */
    pid_t parent = fork();
    assert_true(parent >= 0);
    if (parent == 0) {
        execl("/bin/sleep", "sleep", "60", (char *)NULL);
        _exit(127);
    }
    char pp[32];
    snprintf(pp, sizeof pp, "%ld", (long)parent);
    /* Its own state directory; h_msd_start adds --parent-pid <test>, the later one wins. */
    const char *args[] = {"--parent-pid", pp, NULL};
    h_msd *p = h_msd_start(args);
    assert_non_null(p);
    assert_int_equal(h_deploy(p, h_bin("MS_TEST_APP"), NULL), 201);
    const char *hdrs[] = {"Ms-Deadline-Ms: 10000", NULL};
    h_resp r;
    assert_int_equal(h_http(p, "GET", "/v1/services/add", p->call, NULL, 0, hdrs, &r), 0);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    json_t *list = h_services(p);
    pid_t ipid = (pid_t)json_integer_value(json_object_get(
        json_array_get(json_object_get(json_array_get(list, 0), "instances"), 0), "pid"));
    json_decref(list);
    assert_true(ipid > 0);
    kill(parent, SIGKILL);
    waitpid(parent, NULL, 0);
    /* msd notices, drains, stops the instance and exits 0. */
    int64_t end = h_now_ms() + 15000;
    int st = -1;
    while (h_now_ms() < end) {
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = 0;
            break;
        }
        h_nap(20);
    }
    assert_int_equal(p->pid, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(h_wait_gone(ipid, 5000), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msd_kill9_and_restart_readopts),
        cmocka_unit_test(test_msd_refuses_a_second_msd_on_the_same_state),
        cmocka_unit_test(test_msd_parent_pid_takes_everything_down),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
