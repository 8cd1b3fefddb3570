/*
 * test_local_e2e.c: local mode end to end, from a user's programs: the three load-balancing
 * modes seen through real calls (which instance answered), a rebuilt program with another
 * signature getting its own instances while the old build's answer 412 to it, and
 * `msctl status` showing the real state while the sleepers example runs.
 *
 * One msd serves the file. The programs run as separate processes in local mode with
 * MS_ORCHESTRATOR pointing at it and MS_STATE_DIR at its state (so they register their own
 * executable over msd's unix socket, as a developer's program does).
 */
#include "harness.h"

#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

extern char **environ;

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

/* Runs a program in local mode against M; returns its exit status, output in *out. */
static int
run_local(char **out, const char *const *argv)
{
    const char *env[] = {env_orch, env_state, "MS_MODE=local", NULL};
    char *err = NULL;
    int rc = h_run(argv, env, out, &err, 60000);
    if (rc != 0)
        fprintf(stderr, "%s exited %d: %s\n", argv[0], rc, err ? err : "");
    free(err);
    return rc;
}

static int
msctl(char **out, const char *const *args)
{
    char *err = NULL;
    int rc = h_msctl(M, out, &err, 30000, args);
    if (rc != 0)
        fprintf(stderr, "msctl %s exited %d: %s\n", args[0], rc, err ? err : "");
    free(err);
    return rc;
}

/* Distinct pids in a newline-separated list, and the smallest count of any of them. */
static int
distinct_pids(const char *text, int *min_count)
{
    long pids[64];
    int counts[64], n = 0;
    for (const char *p = text; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        int k;
        for (k = 0; k < n && pids[k] != v; k++)
            ;
        if (k == n && n < 64) {
            pids[n] = v;
            counts[n++] = 0;
        }
        if (k < n)
            counts[k]++;
        p = end;
        while (*p == '\n')
            p++;
    }
    *min_count = n ? counts[0] : 0;
    for (int k = 1; k < n; k++)
        if (counts[k] < *min_count)
            *min_count = counts[k];
    return n;
}

/* Starts SERVICE's first instance with one call, then scales it to 3 and waits for them. */
static void
three_ready(const char *service)
{
    const char *app = h_bin("MS_TEST_E2E_V1");
    char *out = NULL;
    assert_int_equal(run_local(&out, (const char *const[]){app, "pids", service, "1", NULL}), 0);
    free(out);
    assert_int_equal(msctl(&out, (const char *const[]){"scale", service, "3", NULL}), 0);
    free(out);
    assert_int_equal(h_wait_count(M, service, "ready", 3, 20000), 0);
}

static void
test_local_lb_client_round_robin(void **state)
{
    (void)state;
    three_ready("pid_client");
    char *out = NULL;
    const char *app = h_bin("MS_TEST_E2E_V1");
    assert_int_equal(run_local(&out, (const char *const[]){app, "pids", "pid_client", "30", NULL}),
                     0);
    int min;
    int n = distinct_pids(out, &min);
    printf("lb=client: 30 calls over %d instances, the least used served %d\n", n, min);
    assert_int_equal(n, 3);
    assert_true(min >= 5); /* round-robin: about 10 each */
    free(out);
}

static void
test_local_lb_none_first_instance(void **state)
{
    (void)state;
    three_ready("pid_none");
    char *out = NULL;
    const char *app = h_bin("MS_TEST_E2E_V1");
    assert_int_equal(run_local(&out, (const char *const[]){app, "pids", "pid_none", "30", NULL}),
                     0);
    int min;
    int n = distinct_pids(out, &min);
    printf("lb=none: 30 calls over %d instance(s)\n", n);
    assert_int_equal(n, 1);
    assert_int_equal(min, 30);
    free(out);
}

static void
test_local_lb_orchestrator_picks(void **state)
{
    (void)state;
    three_ready("pid_orch");
    /* msd picks one instance per lookup: three lookups name three different instances, and
     * a program's calls go to instances msd picked for it. */
    char seen[3][32] = {"", "", ""};
    for (int i = 0; i < 3; i++) {
        h_resp r;
        assert_int_equal(h_http(M, "GET", "/v1/services/pid_orch", M->call, NULL, 0, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        json_t *insts = json_object_get(r.json, "instances");
        assert_int_equal(json_array_size(insts), 1);
        snprintf(seen[i], sizeof seen[i], "%s",
                 json_string_value(json_object_get(json_array_get(insts, 0), "id")));
        h_resp_free(&r);
    }
    assert_string_not_equal(seen[0], seen[1]);
    assert_string_not_equal(seen[1], seen[2]);
    assert_string_not_equal(seen[0], seen[2]);

    char *out = NULL;
    const char *app = h_bin("MS_TEST_E2E_V1");
    assert_int_equal(run_local(&out, (const char *const[]){app, "pids", "pid_orch", "10", NULL}),
                     0);
    int min, n = distinct_pids(out, &min);
    assert_true(n >= 1 && n <= 3);
    /* Every pid that answered is one of pid_orch's instances. */
    for (const char *p = out; *p;) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        int found = 0;
        for (int i = 0; i < 3; i++)
            found |= h_instance_pid(M, seen[i]) == (pid_t)pid;
        assert_true(found);
        p = end + (*end == '\n');
    }
    free(out);
}

/* The service entry of `name` whose signature is (not) sig; new reference or NULL. */
static json_t *
service_entry(const char *name, const char *sig, int want_equal)
{
    json_t *list = h_services(M), *found = NULL, *s;
    size_t i;
    json_array_foreach(list, i, s)
    {
        const char *sn = json_string_value(json_object_get(s, "name"));
        const char *ss = json_string_value(json_object_get(s, "signature"));
        if (sn && ss && strcmp(sn, name) == 0 && (strcmp(ss, sig) == 0) == want_equal) {
            found = json_incref(s);
            break;
        }
    }
    json_decref(list);
    return found;
}

static void
test_local_rebuilt_signature_gets_own_instances(void **state)
{
    (void)state;
    char *o1 = NULL, *o2 = NULL;
    assert_int_equal(run_local(&o1, (const char *const[]){h_bin("MS_TEST_E2E_V1"), "ver", NULL}), 0);
    assert_int_equal(run_local(&o2, (const char *const[]){h_bin("MS_TEST_E2E_V2"), "ver", NULL}), 0);
    long p1 = 0, p2 = 0;
    assert_int_equal(sscanf(o1, "v1 %ld", &p1), 1);
    assert_int_equal(sscanf(o2, "v2 %ld", &p2), 1);
    assert_true(p1 != p2); /* each build answered from its own instance */
    free(o1);
    free(o2);

    /* Two entries for `ver`, one per build and signature. */
    json_t *any = service_entry("ver", "", 0);
    assert_non_null(any);
    const char *sig1 = json_string_value(json_object_get(any, "signature"));
    json_t *other = service_entry("ver", sig1, 0);
    assert_non_null(other);
    assert_string_not_equal(json_string_value(json_object_get(any, "build")),
                            json_string_value(json_object_get(other, "build")));

    /* An instance of one build answers 412 to a call with the other build's signature,
     * before running anything. */
    json_t *inst = json_array_get(json_object_get(any, "instances"), 0);
    const char *addr = json_string_value(json_object_get(inst, "addr"));
    assert_non_null(addr);
    char url[160], hdr[64], auth[128];
    snprintf(url, sizeof url, "http://%s/v1/call/ver", addr);
    snprintf(hdr, sizeof hdr, "Ms-Signature: %s",
             json_string_value(json_object_get(other, "signature")));
    const char *headers[] = {hdr, NULL};
    (void)auth;
    h_resp r;
    assert_int_equal(h_http_url("POST", url, M->call, "{\"x\":1}", 7, headers, &r), 0);
    assert_int_equal(r.status, 412);
    assert_string_equal(h_err_code(&r), "MS_ESIGNATURE");
    h_resp_free(&r);
    json_decref(any);
    json_decref(other);
}

static void
test_local_msctl_status_during_sleepers(void **state)
{
    (void)state;
    const char *sleepers = h_bin("MS_TEST_SLEEPERS");
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    /* Environment: ours plus local mode against M. */
    char *envp[256];
    int n = 0;
    for (char **e = environ; *e && n < 250; e++)
        if (strncmp(*e, "MS_", 3) != 0)
            envp[n++] = *e;
    envp[n++] = env_orch;
    envp[n++] = env_state;
    envp[n++] = "MS_MODE=local";
    envp[n] = NULL;
    pid_t pid;
    char *argv[] = {(char *)sleepers, NULL};
    assert_int_equal(posix_spawn(&pid, sleepers, &fa, NULL, argv, envp), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);

    /* While it runs: poll msctl status until all three services have a ready instance and
     * sleep_5 (busy for 5 s) shows as busy. */
    int64_t until = h_now_ms() + 15000;
    char *table = NULL;
    int shown = 0;
    while (!shown && h_now_ms() < until) {
        free(table);
        table = NULL;
        if (msctl(&table, (const char *const[]){"status", NULL}) != 0)
            break;
        char *row = strstr(table, "\nsleep_5 ");
        shown = strstr(table, "\nsleep_1 ") && strstr(table, "\nsleep_3 ") && row &&
                !strstr(row, "   0%");
        if (!shown)
            h_nap(100);
    }
    printf("msctl status while sleepers runs:\n%s", table ? table : "(none)\n");
    assert_true(shown);
    for (const char *svc = "sleep_1"; svc; svc = strcmp(svc, "sleep_1") == 0 ? "sleep_3"
                                               : strcmp(svc, "sleep_3") == 0 ? "sleep_5"
                                                                             : NULL)
        assert_true(h_count(M, svc, "ready") >= 1);
    free(table);

    char buf[4096];
    size_t len = 0;
    ssize_t k;
    while (len < sizeof buf - 1 && (k = read(fd[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)k;
    buf[len] = '\0';
    close(fd[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_non_null(strstr(buf, "14 of 14 calls completed"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_lb_client_round_robin),
        cmocka_unit_test(test_local_lb_none_first_instance),
        cmocka_unit_test(test_local_lb_orchestrator_picks),
        cmocka_unit_test(test_local_rebuilt_signature_gets_own_instances),
        cmocka_unit_test(test_local_msctl_status_during_sleepers),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
