/*
 * test_msd_basic.c: msd and msctl with real instances: deploy and status, a call through
 * msctl, lookups (the service's options in the reply), failure reports (an event at most
 * once a second per instance), the environment instances get from msd's, one start for
 * many concurrent lookups, an instance killed and replaced at once,
 * scale up and down (draining), load balancing, the dashboard, metrics and events, and an
 * orderly stop that takes every instance along.
 *
 * One msd serves the whole file (group setup); the tests run in order and build on each
 * other's state, as a user's session would.
 */
#include "harness.h"
#include "statedir.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

static h_msd *M;
static char build[65];

static int
setup(void **state)
{
    (void)state;
    static const char *const args[] = {"--probe-interval-ms", "200", "--probe-timeout-ms", "1000",
                                       NULL};
    /* msd's environment, for test_msd_instance_environment: tuning passes to instances,
     * anything else MS_* (msd's own token above all) does not. */
    setenv("MS_QUEUE_MAX", "77", 1);
    setenv("MS_DEDUPE_MAX_ENTRIES", "5000", 1);
    setenv("MS_TOKEN", "msd-own-token-not-for-instances", 1);
    setenv("MS_MODE", "zero", 1);
    setenv("MS_MSD", "/nonexistent/msd", 1);
    M = h_msd_start(args);
    unsetenv("MS_QUEUE_MAX");
    unsetenv("MS_DEDUPE_MAX_ENTRIES");
    unsetenv("MS_TOKEN");
    unsetenv("MS_MODE");
    unsetenv("MS_MSD");
    return M ? 0 : -1;
}

#define msctl(out, err, ...) h_msctl_list(M, out, err, __VA_ARGS__)

static void
test_msd_deploy_and_status(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    const char *app = h_bin("MS_TEST_APP");
    int rc = msctl(&out, &err, "deploy", app, "--app-flag", NULL);
    if (rc != 0)
        fprintf(stderr, "deploy: %s%s", out, err);
    assert_int_equal(rc, 0);
    /* "deployed <sha256> <path> (new)" then one "service NAME SIG" line per service */
    assert_int_equal(strncmp(out, "deployed ", 9), 0);
    memcpy(build, out + 9, 64);
    build[64] = '\0';
    assert_non_null(strstr(out, "(new)"));
    assert_non_null(strstr(out, "\nservice add "));
    assert_non_null(strstr(out, "\nservice slow "));
    free(out);
    free(err);

    /* The copy msd runs: <state>/bin/<sha256>, mode 0500. */
    char path[400];
    snprintf(path, sizeof path, "%s/bin/%s", M->state, build);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0500);

    /* Its SHA-256 is what sha256sum says. */
    const char *sum[] = {"/usr/bin/sha256sum", app, NULL};
    rc = h_run(sum, NULL, &out, NULL, 10000);
    if (rc == 0)
        assert_int_equal(strncmp(out, build, 64), 0);
    free(out);

    /* Deploying the same file again is "known". */
    rc = msctl(&out, &err, "deploy", app, "--app-flag", NULL);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "(known)"));
    free(out);
    free(err);

    /* status: the services, nothing running yet. */
    rc = msctl(&out, &err, "status", NULL);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "SERVICE"));
    assert_non_null(strstr(out, "add"));
    assert_non_null(strstr(out, "whoami"));
    free(out);
    free(err);

    rc = msctl(&out, &err, "status", "--json", NULL);
    assert_int_equal(rc, 0);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "services")), 3);
    json_decref(j);
    free(out);
    free(err);
    assert_int_equal(h_count(M, "add", NULL), 0);
}

static void
test_msd_call_through_msctl(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    int rc = msctl(&out, &err, "call", "add", "a=2", "b=40", NULL);
    if (rc != 0)
        fprintf(stderr, "call: %s%s", out, err);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "42\n");
    free(out);
    free(err);
    assert_int_equal(h_count(M, "add", "ready"), 1);

    /* Bad arguments: the instance's 400, exit 1, the message names the argument. */
    rc = msctl(&out, &err, "call", "add", "a=2", "b=x", NULL);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "MS_EBADARGS"));
    assert_non_null(strstr(err, "'b'"));
    free(out);
    free(err);

    /* Unknown service: 404 from msd, exit 1. */
    rc = msctl(&out, &err, "call", "nosuch", NULL);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "MS_ENOTFOUND"));
    free(out);
    free(err);

    /* Usage errors: exit 2. */
    rc = msctl(&out, &err, "call", NULL);
    assert_int_equal(rc, 2);
    free(out);
    free(err);
    rc = msctl(&out, &err, "scale", "add", "minus-one", NULL);
    assert_int_equal(rc, 2);
    free(out);
    free(err);
    rc = msctl(&out, &err, "frobnicate", NULL);
    assert_int_equal(rc, 2);
    free(out);
    free(err);

    /* msd unreachable: exit 3. */
    rc = msctl(&out, &err, "--orchestrator", "127.0.0.1:1", "status", NULL);
    assert_int_equal(rc, 3);
    assert_non_null(strstr(err, "cannot reach msd"));
    free(out);
    free(err);
}

static void
test_msd_lookup_and_heartbeat_checks(void **state)
{
    (void)state;
    h_resp r;
    /* A signature no deployment has: 412; the right one (or the build): 200. */
    assert_int_equal(
        h_http(M, "GET", "/v1/services/add?sig=0123456789abcdef", M->call, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 412);
    assert_string_equal(h_err_code(&r), "MS_ESIGNATURE");
    h_resp_free(&r);
    assert_int_equal(h_http(M, "GET", "/v1/services/add", M->call, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    /* The deployment's own options (msd_app.c: idempotent, 3000 ms). */
    assert_true(json_is_true(json_object_get(r.json, "idempotent")));
    assert_int_equal(json_integer_value(json_object_get(r.json, "timeout_ms")), 3000);
    char path[300], sig[17];
    snprintf(sig, sizeof sig, "%s", json_string_value(json_object_get(r.json, "signature")));
    json_t *inst = json_array_get(json_object_get(r.json, "instances"), 0);
    char id[32], addr[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(inst, "id")));
    snprintf(addr, sizeof addr, "%s", json_string_value(json_object_get(inst, "addr")));
    long long epoch = json_integer_value(json_object_get(inst, "epoch"));
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v1/services/add?sig=%s&build=%s", sig, build);
    assert_int_equal(h_http(M, "GET", path, M->call, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "build")), build);
    h_resp_free(&r);

    /* Heartbeats: the instance token only (not the call token), the current epoch only. */
    char hb[200], body[200];
    snprintf(hb, sizeof hb, "/v1/instances/%s/heartbeat", id);
    snprintf(body, sizeof body, "{\"epoch\":%lld,\"addr\":\"%s\"}", epoch, addr);
    assert_int_equal(h_http(M, "POST", hb, M->call, body, strlen(body), NULL, &r), 0);
    assert_int_equal(r.status, 401);
    h_resp_free(&r);
    char tokfile[400], tok[80] = "";
    snprintf(tokfile, sizeof tokfile, "%s/instances/%s.token", M->state, id);
    FILE *f = fopen(tokfile, "r");
    assert_non_null(f);
    assert_non_null(fgets(tok, sizeof tok, f));
    fclose(f);
    tok[strcspn(tok, "\n")] = '\0';
    assert_int_equal(h_http(M, "POST", hb, tok, body, strlen(body), NULL, &r), 0);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    snprintf(body, sizeof body, "{\"epoch\":%lld}", epoch + 7);
    assert_int_equal(h_http(M, "POST", hb, tok, body, strlen(body), NULL, &r), 0);
    assert_int_equal(r.status, 410);
    h_resp_free(&r);
    snprintf(body, sizeof body, "{\"epoch\":%lld,\"addr\":\"nowhere\"}", epoch);
    assert_int_equal(h_http(M, "POST", hb, tok, body, strlen(body), NULL, &r), 0);
    assert_int_equal(r.status, 400);
    h_resp_free(&r);
    snprintf(body, sizeof body, "{\"epoch\":%lld,\"busy\":-1}", epoch);
    assert_int_equal(h_http(M, "POST", hb, tok, body, strlen(body), NULL, &r), 0);
    assert_int_equal(r.status, 400);
    h_resp_free(&r);

    /* Failure reports: accepted; one of a stale epoch or an unknown instance is no event;
     * the first real one is an event ("report", msctl events), further ones within a second
     * are not; and the instance (healthy: msd probes it) stays ready. */
    const char *fpath = "/v1/services/add/failures";
    snprintf(body, sizeof body, "{\"instance\":\"%s\",\"epoch\":%lld,\"reason\":\"old\"}", id,
             epoch + 7);
    assert_int_equal(h_http(M, "POST", fpath, M->call, body, strlen(body), NULL, &r), 0);
    assert_int_equal(r.status, 202);
    h_resp_free(&r);
    snprintf(body, sizeof body, "{\"instance\":\"i-999\",\"reason\":\"unknown\"}");
    assert_int_equal(h_http(M, "POST", fpath, M->call, body, strlen(body), NULL, &r), 0);
    assert_int_equal(r.status, 202);
    h_resp_free(&r);
    assert_int_equal(h_count_events(M, "report", "add"), 0);
    snprintf(body, sizeof body,
             "{\"instance\":\"%s\",\"epoch\":%lld,\"reason\":\"test:\\nconnection refused\"}", id,
             epoch);
    int64_t t0 = h_now_ms();
    for (int i = 0; i < 5; i++) {
        assert_int_equal(h_http(M, "POST", fpath, M->call, body, strlen(body), NULL, &r), 0);
        assert_int_equal(r.status, 202);
        h_resp_free(&r);
    }
    int64_t burst = h_now_ms() - t0;
    if (burst < 900)
        assert_int_equal(h_count_events(M, "report", "add"), 1);
    char *out = NULL, *err = NULL;
    assert_int_equal(msctl(&out, &err, "events", NULL), 0);
    char *line = strstr(out, "report");
    assert_non_null(line);
    line[strcspn(line, "\n")] = '\0';
    assert_non_null(strstr(line, id));
    assert_non_null(strstr(line, "test: connection refused")); /* the newline made a space */
    assert_non_null(strstr(line, "probing it"));
    free(out);
    free(err);
    /* Reporting every 50 ms: the next event comes a second after the first. */
    int64_t end = t0 + 5000;
    while (h_count_events(M, "report", "add") < 2 && h_now_ms() < end) {
        assert_int_equal(h_http(M, "POST", fpath, M->call, body, strlen(body), NULL, &r), 0);
        h_resp_free(&r);
        h_nap(50);
    }
    int64_t second = h_now_ms() - t0;
    fprintf(stderr, "failure reports: second event after %lld ms\n", (long long)second);
    assert_int_equal(h_count_events(M, "report", "add"), 2);
    assert_true(second >= 990);
    assert_int_equal(h_wait_count(M, "add", "ready", 1, 5000), 0);
}

/* Reads /proc/<pid>/environ into a malloc'd buffer of NUL-separated entries. */
static char *
read_environ(pid_t pid, size_t *len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/environ", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    *len = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    return buf;
}

/* The entry NAME=... of an environ buffer, or NULL. */
static const char *
environ_get(const char *buf, size_t len, const char *name)
{
    size_t n = strlen(name);
    for (size_t off = 0; off < len; off += strlen(buf + off) + 1)
        if (strncmp(buf + off, name, n) == 0 && buf[off + n] == '=')
            return buf + off + n + 1;
    return NULL;
}

static void
test_msd_instance_environment(void **state)
{
    (void)state;
    /* The environment the instance started with (ms_init unsets some variables later, but
     * /proc shows the initial block). msd's own got the variables set in setup(). */
    assert_int_equal(h_wait_count(M, "add", "ready", 1, 10000), 0);
    pid_t procs[8];
    assert_true(h_instance_procs(M, procs, 8) >= 1);
    size_t len = 0;
    char *env = read_environ(procs[0], &len);
    assert_non_null(env);
    assert_true(len > 0);
    char want_tok[400];
    snprintf(want_tok, sizeof want_tok, "%s/" MSI_STATE_CALL_TOKEN, M->state);
    const char *v;
    assert_non_null(v = environ_get(env, len, "MS_QUEUE_MAX"));
    assert_string_equal(v, "77");
    assert_non_null(v = environ_get(env, len, "MS_DEDUPE_MAX_ENTRIES"));
    assert_string_equal(v, "5000");
    assert_null(environ_get(env, len, "MS_TOKEN"));
    assert_null(environ_get(env, len, "MS_MODE"));
    assert_null(environ_get(env, len, "MS_MSD"));
    assert_non_null(v = environ_get(env, len, "MS_TOKEN_FILE"));
    assert_string_equal(v, want_tok); /* the call token msd gives, not msd's own */
    assert_non_null(environ_get(env, len, "MS_SERVE"));
    assert_non_null(v = environ_get(env, len, "MS_ORCHESTRATOR"));
    assert_string_equal(v, M->addr);
    free(env);
}

typedef struct lookup {
    pthread_t t;
    long status;
} lookup;

static void *
do_lookup(void *arg)
{
    lookup *l = arg;
    const char *hdrs[] = {"Ms-Deadline-Ms: 15000", NULL};
    h_resp r;
    if (h_http(M, "GET", "/v1/services/slow", M->call, NULL, 0, hdrs, &r) == 0)
        l->status = r.status;
    h_resp_free(&r);
    return NULL;
}

static void
test_msd_one_start_for_many_lookups(void **state)
{
    (void)state;
    enum { N = 16 };
    lookup ls[N];
    for (int i = 0; i < N; i++) {
        ls[i].status = 0;
        assert_int_equal(pthread_create(&ls[i].t, NULL, do_lookup, &ls[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(ls[i].t, NULL);
        assert_int_equal(ls[i].status, 200);
    }
    assert_int_equal(h_count_events(M, "spawn", "slow"), 1);
    assert_int_equal(h_count(M, "slow", NULL), 1);
}

static void
test_msd_killed_instance_replaced_at_once(void **state)
{
    (void)state;
    assert_int_equal(h_wait_count(M, "add", "ready", 1, 10000), 0);
    json_t *list = h_services(M);
    pid_t pid = 0;
    char id[32] = "";
    size_t i, k;
    json_t *s, *in;
    json_array_foreach(list, i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "name")), "add") != 0)
            continue;
        json_array_foreach(json_object_get(s, "instances"), k, in)
        {
            pid = (pid_t)json_integer_value(json_object_get(in, "pid"));
            snprintf(id, sizeof id, "%s", json_string_value(json_object_get(in, "id")));
        }
    }
    json_decref(list);
    assert_true(pid > 0);
    int deaths = h_count_events(M, "dead", "add");
    int64_t t0 = h_now_ms();
    assert_int_equal(kill(pid, SIGKILL), 0);
    /* Seen at once (pidfd), not after probes: a death event well within a probe period... */
    assert_int_equal(h_wait_events(M, "dead", "add", deaths + 1, 5000), 0);
    int64_t seen = h_now_ms() - t0;
    /* ...and a new process in the same slot becomes ready. */
    int64_t end = h_now_ms() + 10000;
    pid_t npid = 0;
    while (h_now_ms() < end) {
        npid = h_instance_pid(M, id);
        if (npid > 0 && npid != pid && h_count(M, "add", "ready") == 1)
            break;
        h_nap(10);
    }
    int64_t replaced = h_now_ms() - t0;
    fprintf(stderr, "kill -9 of %s: death seen in %lld ms, replacement ready in %lld ms\n", id,
            (long long)seen, (long long)replaced);
    assert_true(npid > 0 && npid != pid);
    assert_true(replaced < 5000);
    /* Killed long after it became ready: no back-off, and the call works again. */
    char *out = NULL, *err = NULL;
    assert_int_equal(msctl(&out, &err, "call", "add", "a=1", "b=1", NULL), 0);
    assert_string_equal(out, "2\n");
    free(out);
    free(err);
}

static void
test_msd_scale_and_drain(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    assert_int_equal(msctl(&out, &err, "scale", "whoami", "3", NULL), 0);
    assert_non_null(strstr(out, "whoami: desired 3"));
    free(out);
    free(err);
    assert_int_equal(h_wait_count(M, "whoami", "ready", 3, 15000), 0);

    /* lb=orchestrator: one instance per lookup, round robin over the three. */
    int seen[3] = {0};
    char ids[3][32] = {"", "", ""};
    for (int round = 0; round < 6; round++) {
        h_resp r;
        assert_int_equal(h_http(M, "GET", "/v1/services/whoami", M->call, NULL, 0, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        json_t *insts = json_object_get(r.json, "instances");
        assert_int_equal(json_array_size(insts), 1);
        assert_string_equal(json_string_value(json_object_get(r.json, "lb")), "orchestrator");
        const char *id = json_string_value(json_object_get(json_array_get(insts, 0), "id"));
        for (int k = 0; k < 3; k++) {
            if (!ids[k][0])
                snprintf(ids[k], sizeof ids[k], "%s", id);
            if (strcmp(ids[k], id) == 0) {
                seen[k]++;
                break;
            }
        }
        h_resp_free(&r);
    }
    assert_int_equal(seen[0], 2);
    assert_int_equal(seen[1], 2);
    assert_int_equal(seen[2], 2);

    /* lb=client (the default): every ready instance. */
    h_resp r;
    assert_int_equal(h_http(M, "GET", "/v1/services/add", M->call, NULL, 0, NULL, &r), 0);
    assert_string_equal(json_string_value(json_object_get(r.json, "lb")), "client");
    h_resp_free(&r);

    /* Scale down: one drains and goes away; two stay ready. */
    assert_int_equal(msctl(&out, &err, "scale", "whoami", "2", NULL), 0);
    free(out);
    free(err);
    assert_int_equal(h_wait_count(M, "whoami", NULL, 2, 15000), 0);
    assert_int_equal(h_count(M, "whoami", "ready"), 2);
    assert_true(h_count_events(M, "drain", "whoami") >= 1);

    /* drain INSTANCE: it goes, a replacement comes. */
    json_t *list = h_services(M);
    char victim[32] = "";
    size_t i, k;
    json_t *s, *in;
    json_array_foreach(list, i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "name")), "whoami") != 0)
            continue;
        json_array_foreach(json_object_get(s, "instances"), k, in)
            snprintf(victim, sizeof victim, "%s", json_string_value(json_object_get(in, "id")));
    }
    json_decref(list);
    pid_t vpid = h_instance_pid(M, victim);
    assert_int_equal(msctl(&out, &err, "drain", victim, NULL), 0);
    assert_non_null(strstr(out, "draining "));
    free(out);
    free(err);
    assert_int_equal(h_wait_gone(vpid, 10000), 0);
    assert_int_equal(h_wait_count(M, "whoami", "ready", 2, 10000), 0);
    /* msd forgets the victim once it has collected its exit, which may come after the
     * replacement is ready: polled, bounded. */
    for (int64_t until = h_now_ms() + 10000; h_instance_pid(M, victim) != 0 && h_now_ms() < until;)
        h_nap(50);
    assert_int_equal(h_instance_pid(M, victim), 0);

    /* services shows the instances. */
    assert_int_equal(msctl(&out, &err, "services", "whoami", NULL), 0);
    assert_non_null(strstr(out, "INSTANCE"));
    assert_non_null(strstr(out, "ready"));
    free(out);
    free(err);
}

static void
test_msd_frozen_instance_suspect_then_dead(void **state)
{
    (void)state;
    /* whoami has two ready instances (previous test). Freeze one: its probes time out. */
    assert_int_equal(h_wait_count(M, "whoami", "ready", 2, 10000), 0);
    json_t *list = h_services(M);
    char id[32] = "";
    pid_t pid = 0;
    size_t i, k;
    json_t *s, *in;
    json_array_foreach(list, i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "name")), "whoami") != 0)
            continue;
        in = json_array_get(json_object_get(s, "instances"), 0);
        snprintf(id, sizeof id, "%s", json_string_value(json_object_get(in, "id")));
        pid = (pid_t)json_integer_value(json_object_get(in, "pid"));
    }
    json_decref(list);
    (void)k;
    assert_true(pid > 0);
    int suspects = h_count_events(M, "suspect", "whoami");
    int deaths = h_count_events(M, "dead", "whoami");
    assert_int_equal(kill(pid, SIGSTOP), 0);
    assert_int_equal(h_wait_events(M, "suspect", "whoami", suspects + 1, 10000), 0);
    /* While suspect it gets no traffic: every lookup names the other one. */
    for (int round = 0; round < 4; round++) {
        h_resp r;
        assert_int_equal(h_http(M, "GET", "/v1/services/whoami", M->call, NULL, 0, NULL, &r), 0);
        json_t *insts = json_object_get(r.json, "instances");
        for (size_t n = 0; n < json_array_size(insts); n++) {
            const char *got = json_string_value(json_object_get(json_array_get(insts, n), "id"));
            if (h_instance_pid(M, id) == pid && h_count(M, "whoami", "suspect") == 1)
                assert_string_not_equal(got, id);
        }
        h_resp_free(&r);
    }
    /* Three failed probes in a row: dead, killed, replaced in the same slot. */
    assert_int_equal(h_wait_events(M, "dead", "whoami", deaths + 1, 15000), 0);
    assert_int_equal(h_wait_gone(pid, 5000), 0);
    assert_int_equal(h_wait_count(M, "whoami", "ready", 2, 10000), 0);
    pid_t npid = h_instance_pid(M, id);
    assert_true(npid > 0 && npid != pid);
}

static void
test_msd_dashboard_metrics_events(void **state)
{
    (void)state;
    h_resp r;
    /* The dashboard is GET / (and /index.html: http.c cannot route "/" alone yet). */
    assert_int_equal(h_http(M, "GET", "/index.html", NULL, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "<html"));
    assert_non_null(strstr(r.body, "whoami"));
    assert_null(strstr(r.body, "http://")); /* self-contained: no external asset */
    assert_null(strstr(r.body, "https://"));
    h_resp_free(&r);

    assert_int_equal(h_http(M, "GET", "/metrics", NULL, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "msd_instances{service=\"whoami\""));
    assert_non_null(strstr(r.body, "msd_spawns_total"));
    h_resp_free(&r);

    char *out = NULL, *err = NULL;
    assert_int_equal(msctl(&out, &err, "events", NULL), 0);
    assert_non_null(strstr(out, "deploy"));
    assert_non_null(strstr(out, "spawn"));
    assert_non_null(strstr(out, "ready"));
    free(out);
    free(err);
    assert_int_equal(msctl(&out, &err, "events", "--since", "3", "--json", NULL), 0);
    json_t *first = json_loadb(out, strcspn(out, "\n"), 0, NULL);
    assert_non_null(first);
    assert_int_equal(json_integer_value(json_object_get(first, "seq")), 4);
    json_decref(first);
    free(out);
    free(err);
}

static void
test_msd_delete_service(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    assert_int_equal(msctl(&out, &err, "delete", "slow", NULL), 0);
    free(out);
    free(err);
    assert_int_equal(h_wait_count(M, "slow", NULL, 0, 10000), 0);
    h_resp r;
    assert_int_equal(h_http(M, "GET", "/v1/services/slow", M->call, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    h_resp_free(&r);
}

static void
test_msd_sigterm_stops_every_instance(void **state)
{
    (void)state;
    json_t *list = h_services(M);
    pid_t live[16];
    int n = 0;
    size_t i, k;
    json_t *s, *in;
    json_array_foreach(list, i, s)
    {
        json_array_foreach(json_object_get(s, "instances"), k, in)
        {
            pid_t p = (pid_t)json_integer_value(json_object_get(in, "pid"));
            if (p > 0 && n < 16)
                live[n++] = p;
        }
    }
    json_decref(list);
    assert_true(n >= 3);
    int st = h_msd_signal(M, SIGTERM, 20000);
    assert_true(st >= 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (int j = 0; j < n; j++)
        assert_int_equal(h_wait_gone(live[j], 5000), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msd_deploy_and_status),
        cmocka_unit_test(test_msd_call_through_msctl),
        cmocka_unit_test(test_msd_lookup_and_heartbeat_checks),
        cmocka_unit_test(test_msd_instance_environment),
        cmocka_unit_test(test_msd_one_start_for_many_lookups),
        cmocka_unit_test(test_msd_killed_instance_replaced_at_once),
        cmocka_unit_test(test_msd_scale_and_drain),
        cmocka_unit_test(test_msd_frozen_instance_suspect_then_dead),
        cmocka_unit_test(test_msd_dashboard_metrics_events),
        cmocka_unit_test(test_msd_delete_service),
        cmocka_unit_test(test_msd_sigterm_stops_every_instance),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
