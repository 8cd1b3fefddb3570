/* test_calls_msd.c: call semantics with the real msd and real instances: nested deadlines
 * and trace ids, an instance that dies mid-call (idempotent: retried; not: MS_EINDOUBT),
 * one that hangs, a connection cut under a live instance (the duplicate-request cache
 * answers the retry), msd killed and restarted under running calls, and the credentials
 * instances accept (the call token or the admin token for a call, only the admin token for
 * a drain; msd's own drains).
 *
 * Design notes
 * - This executable is the deployed program too: started with MS_SERVE it serves (main's
 *   first line); otherwise it starts msd (harness.h), then becomes a local-mode client of it
 *   (MS_STATE_DIR: its ms_init registers this executable over msd's unix socket) with the
 *   orchestrator list "<a dead address>,<msd>", so every lookup fails over.
 * - Instances find their scratch directory in CALLS_TEST_DIR, which they inherit through
 *   msd's environment (msd passes on everything but MS_* and LISTEN_*): marker files make
 *   exactly one instance misbehave, whichever it is; a log file records executions.
 * - Tests run in order and share msd and the client; each uses services of its own.
 */
#include "sha256.h"
#include "harness.h"
#include "msi.h"
#include "statedir.h"

#include <ms/ms.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- services ---- */

static void
nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* 1 for exactly one caller across every instance: whoever creates the marker first. */
static int
first_to(const char *marker)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", getenv("CALLS_TEST_DIR"), marker);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

/* Hangs until the instance stops (msd's drain at the end of the test). */
static void
hang_forever(void)
{
    while (!msi_shutting_down)
        nap_ms(10);
}

MS_SERVICE(char *, inner)
{
    char buf[96];
    snprintf(buf, sizeof buf, "%s %lld", msi_cur_ctx->trace ? msi_cur_ctx->trace->id : "-",
             (long long)ms_deadline_left_ms());
    return strdup(buf);
}
MS_OPTIONS(inner, .idempotent = true)

MS_SERVICE(char *, outer)
{
    char *in = NULL;
    if (inner_try(&in) != MS_OK) {
        ms_fail(1, "inner: %s", ms_last_error());
        return NULL;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s %lld %s", msi_cur_ctx->trace ? msi_cur_ctx->trace->id : "-",
             (long long)ms_deadline_left_ms(), in);
    free(in);
    return strdup(buf);
}
MS_OPTIONS(outer, .idempotent = true)

static int calls_here; /* per instance process */

/* One instance dies (SIGKILL, mid-call) on its nth call. */
MS_SERVICE(int64_t, die_idem, (int, nth))
{
    if (++calls_here == nth && first_to("die_idem"))
        raise(SIGKILL);
    return (int64_t)getpid();
}
MS_OPTIONS(die_idem, .idempotent = true, .min_instances = 2)

MS_SERVICE(int64_t, die_once, (int, nth))
{
    if (++calls_here == nth)
        _exit(9);
    return (int64_t)getpid();
}

MS_SERVICE(int64_t, hang_idem)
{
    if (first_to("hang_idem"))
        hang_forever();
    return (int64_t)getpid();
}
MS_OPTIONS(hang_idem, .idempotent = true, .min_instances = 2, .timeout_ms = 2000)

MS_SERVICE(int64_t, hang_once)
{
    if (first_to("hang_once"))
        hang_forever();
    return (int64_t)getpid();
}
MS_OPTIONS(hang_once, .timeout_ms = 1000)

/* Cuts every TCP connection of this process (not its listening socket): the network failing
 * under a live instance. */
static void
cut_connections(void)
{
    for (int fd = 3; fd < 1024; fd++) {
        int type = 0, acc = 0;
        socklen_t l = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) != 0 || type != SOCK_STREAM)
            continue;
        l = sizeof acc;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l) != 0 || acc)
            continue;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 || ss.ss_family != AF_INET)
            continue;
        shutdown(fd, SHUT_RDWR);
    }
}

/* Not idempotent: records each execution, and the first one loses its connection after
 * running. */
MS_SERVICE(int64_t, cut, (int64_t, token))
{
    char path[512], line[32];
    snprintf(path, sizeof path, "%s/cut.log", getenv("CALLS_TEST_DIR"));
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int n = snprintf(line, sizeof line, "%lld\n", (long long)token);
    if (fd < 0 || write(fd, line, (size_t)n) != n) {
        ms_fail(1, "cannot record the execution");
        if (fd >= 0)
            close(fd);
        return 0;
    }
    close(fd);
    if (first_to("cut"))
        cut_connections();
    return token;
}

MS_SERVICE(int64_t, steady)
{
    return (int64_t)getpid();
}
MS_OPTIONS(steady, .idempotent = true, .min_instances = 2)

/* A long timeout, so that a drain msd sends and the instance refused would only end with
 * SIGTERM after the grace (timeout_ms + 1 s): test_calls_msd_tokens_msd_drains tells. */
MS_SERVICE(int64_t, whoami)
{
    return (int64_t)getpid();
}
MS_OPTIONS(whoami, .idempotent = true, .timeout_ms = 20000)

/* ---- the driver ---- */

static h_msd *M;
static char dir[64];

/* Pids of a service's instances in a state (NULL: any) per msd. */
static int
pids_of(const char *service, const char *state, pid_t *out, int max)
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
            const char *st = json_string_value(json_object_get(in, "state"));
            if (state && (!st || strcmp(st, state) != 0))
                continue;
            if (n < max)
                out[n] = (pid_t)json_integer_value(json_object_get(in, "pid"));
            n++;
        }
    }
    json_decref(list);
    return n;
}

/* Whether every instance process the kernel shows for msd's state is one msd lists (no
 * duplicate, no orphan), waiting up to timeout_ms for starts and exits in flight. */
static int
procs_match_status(int timeout_ms)
{
    int64_t end = msi_now_ms() + timeout_ms;
    for (;;) {
        pid_t procs[64], known[128];
        int np = h_instance_procs(M, procs, 64), nk = 0;
        json_t *list = h_services(M);
        size_t i, k;
        json_t *s, *in;
        json_array_foreach(list, i, s)
        {
            json_array_foreach(json_object_get(s, "instances"), k, in)
            {
                if (nk < 128)
                    known[nk++] = (pid_t)json_integer_value(json_object_get(in, "pid"));
            }
        }
        json_decref(list);
        int unknown = 0;
        for (int p = 0; p < np && p < 64; p++) {
            int found = 0;
            for (int q = 0; q < nk; q++)
                found |= known[q] == procs[p];
            unknown += !found;
        }
        if (!unknown)
            return 1;
        if (msi_now_ms() >= end) {
            fprintf(stderr, "%d instance processes msd does not list\n", unknown);
            return 0;
        }
        h_nap(50);
    }
}

/* Scales a service to n instances and waits until they are ready. */
static void
scale(const char *service, int n)
{
    char path[128], body[32];
    snprintf(path, sizeof path, "/v1/services/%s/scale", service);
    snprintf(body, sizeof body, "{\"instances\":%d}", n);
    h_resp r;
    assert_int_equal(h_http(M, "PUT", path, M->admin, body, strlen(body), NULL, &r), 0);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    assert_int_equal(h_wait_count(M, service, "ready", n, 15000), 0);
}

static void
test_calls_msd_nested_deadline_and_trace(void **state)
{
    (void)state;
    char *r = NULL;
    /* First both instances start (slow under sanitizers on a loaded machine): the call
     * measured below must not spend its 3 s on that. */
    assert_int_equal(ms_next_call_timeout_ms(30000), MS_OK);
    assert_int_equal(outer_try(&r), MS_OK);
    free(r);
    r = NULL;
    assert_int_equal(ms_next_call_timeout_ms(3000), MS_OK);
    assert_int_equal(outer_try(&r), MS_OK);
    char t_out[64], t_in[64];
    long long l_out = -1, l_in = -1;
    assert_int_equal(sscanf(r, "%63s %lld %63s %lld", t_out, &l_out, t_in, &l_in), 4);
    free(r);
    /* One trace across the nested call; the inner call has what the outer had left. */
    assert_int_equal((int)strlen(t_out), 32);
    assert_string_equal(t_out, t_in);
    assert_true(l_out > 0 && l_out <= 1500); /* idempotent: its first attempt gets half */
    assert_true(l_in > 0 && l_in <= l_out);
    /* A second outermost call is another trace. */
    assert_int_equal(outer_try(&r), MS_OK);
    assert_int_equal(strncmp(r, t_out, 32) != 0, 1);
    free(r);
}

static void
test_calls_msd_death_idempotent(void **state)
{
    (void)state;
    scale("die_idem", 2);
    int dead0 = h_count_events(M, "dead", "die_idem");
    for (int i = 0; i < 12; i++) {
        int64_t pid = 0;
        ms_status st = die_idem_try(&pid, 3);
        if (st != MS_OK)
            fprintf(stderr, "die_idem: %s\n", ms_last_error());
        assert_int_equal(st, MS_OK);
        assert_true(pid > 0);
    }
    /* One instance died on its third call: seen, and replaced. */
    assert_int_equal(h_wait_events(M, "dead", "die_idem", dead0 + 1, 10000), 0);
    assert_int_equal(h_wait_count(M, "die_idem", "ready", 2, 15000), 0);
}

static void
test_calls_msd_death_not_idempotent(void **state)
{
    (void)state;
    int64_t pid = 0, pid2 = 0;
    assert_int_equal(die_once_try(&pid, 2), MS_OK);
    ms_status st = die_once_try(&pid2, 2);
    if (st != MS_EINDOUBT) {
        fprintf(stderr, "die_once: %s (%lld, %lld): %s\n", ms_status_name(st), (long long)pid,
                (long long)pid2, ms_last_error());
        json_t *ev = h_events(M);
        char *t = json_dumps(ev, JSON_INDENT(1));
        fprintf(stderr, "%s\n", t);
        free(t);
        json_decref(ev);
    }
    assert_int_equal(st, MS_EINDOUBT); /* died while running it */
    assert_non_null(strstr(ms_last_error(), "may or may not have run"));
    /* Replaced; the next call waits for the replacement rather than failing. */
    assert_int_equal(die_once_try(&pid2, 5), MS_OK);
    assert_true(pid2 != pid);
    assert_true(h_count_events(M, "dead", "die_once") >= 1);
}

static void
test_calls_msd_hang(void **state)
{
    (void)state;
    /* Two instances; one hangs on the call it gets: after half the deadline the other one
     * answers. */
    scale("hang_idem", 2);
    int64_t pid = 0, t0 = msi_now_ms();
    ms_status st = hang_idem_try(&pid);
    if (st != MS_OK)
        fprintf(stderr, "hang_idem: %s\n", ms_last_error());
    assert_int_equal(st, MS_OK);
    assert_true(msi_now_ms() - t0 < 2000);
    /* Not idempotent: its instance hangs, the call gets the whole deadline and then
     * MS_ETIMEDOUT; nothing runs elsewhere. */
    t0 = msi_now_ms();
    assert_int_equal(hang_once_try(&pid), MS_ETIMEDOUT);
    int64_t took = msi_now_ms() - t0;
    assert_true(took >= 950 && took < 2500);
}

static int
count_lines(const char *path, const char *line)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char buf[64];
    int n = 0;
    while (fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = '\0';
        if (strcmp(buf, line) == 0)
            n++;
    }
    fclose(f);
    return n;
}

static void
test_calls_msd_cut_connection_same_instance(void **state)
{
    (void)state;
    int64_t r = 0;
    ms_status st = cut_try(&r, 4242);
    if (st != MS_OK)
        fprintf(stderr, "cut: %s\n", ms_last_error());
    assert_int_equal(st, MS_OK);
    assert_int_equal(r, 4242);
    char path[128];
    snprintf(path, sizeof path, "%s/cut.log", dir);
    assert_int_equal(count_lines(path, "4242"), 1); /* ran once, answered twice: */
    json_t *list = h_services(M);
    char url[160] = "";
    size_t i, k;
    json_t *sv, *in;
    json_array_foreach(list, i, sv)
    {
        if (strcmp(json_string_value(json_object_get(sv, "name")), "cut") == 0)
            json_array_foreach(json_object_get(sv, "instances"), k, in)
            {
                snprintf(url, sizeof url, "http://%s/metrics",
                         json_string_value(json_object_get(in, "addr")));
            }
    }
    json_decref(list);
    h_resp mr;
    assert_int_equal(h_http_url("GET", url, NULL, NULL, 0, NULL, &mr), 0);
    assert_non_null(strstr(mr.body, "ms_dedupe_hits_total{service=\"cut\"} 1"));
    h_resp_free(&mr);
    assert_int_equal(cut_try(&r, 4343), MS_OK);
    assert_int_equal(count_lines(path, "4343"), 1);
}

static void
test_calls_msd_orchestrator_loss(void **state)
{
    (void)state;
    int64_t pid = 0;
    scale("steady", 2);
    assert_int_equal(steady_try(&pid), MS_OK);
    pid_t before[4];
    assert_int_equal(pids_of("steady", "ready", before, 4), 2);

    /* kill -9 msd: the instances keep serving, the client keeps calling them. */
    int ws = h_msd_signal(M, SIGKILL, 5000);
    assert_true(ws >= 0 && WIFSIGNALED(ws));
    int64_t end = msi_now_ms() + 1500;
    int n = 0;
    while (msi_now_ms() < end) {
        ms_status st = steady_try(&pid);
        if (st != MS_OK)
            fprintf(stderr, "steady while msd is down: %s\n", ms_last_error());
        assert_int_equal(st, MS_OK);
        assert_true(pid == before[0] || pid == before[1]);
        n++;
    }
    assert_true(n > 20);

    /* Back on the same state: the instances are re-adopted, none duplicated. */
    assert_int_equal(h_msd_restart(M), 0);
    assert_int_equal(h_wait_count(M, "steady", "ready", 2, 15000), 0);
    pid_t after[4];
    assert_int_equal(pids_of("steady", NULL, after, 4), 2);
    assert_true((after[0] == before[0] && after[1] == before[1]) ||
                (after[0] == before[1] && after[1] == before[0]));
    assert_true(procs_match_status(10000));
    for (int i = 0; i < 20; i++)
        assert_int_equal(steady_try(&pid), MS_OK);
}

/* The address and pid of the i-th ready instance of a service; 0, or -1 if there is none. */
static int
ready_instance(const char *service, int i, char *addr, size_t len, pid_t *pid)
{
    json_t *list = h_services(M);
    int n = 0, found = -1;
    size_t k, q;
    json_t *s, *in;
    json_array_foreach(list, k, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "name")), service) != 0)
            continue;
        json_array_foreach(json_object_get(s, "instances"), q, in)
        {
            const char *st = json_string_value(json_object_get(in, "state"));
            if (!st || strcmp(st, "ready") != 0 || n++ != i)
                continue;
            snprintf(addr, len, "%s", json_string_value(json_object_get(in, "addr")));
            *pid = (pid_t)json_integer_value(json_object_get(in, "pid"));
            found = 0;
        }
    }
    json_decref(list);
    return found;
}

/* One request to an instance with a bearer token (NULL: none); returns the HTTP status and
 * copies the error code of the answer, if any, into code. */
static long
to_instance(const char *addr, const char *method, const char *path, const char *token, char *code,
            size_t len)
{
    char url[160];
    snprintf(url, sizeof url, "http://%s%s", addr, path);
    h_resp r;
    assert_int_equal(h_http_url(method, url, token, "{}", 2, NULL, &r), 0);
    long status = r.status;
    snprintf(code, len, "%s", h_err_code(&r));
    h_resp_free(&r);
    return status;
}

/* Runs this executable as a client program of msd (not as a trusted local one: no state
 * directory) with the environment env; returns its exit status, its output in out. */
static int
run_client(const char *const *env, char *out, size_t len)
{
    static char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    const char *argv[] = {exe, "--call-whoami", NULL};
    char *o = NULL, *e = NULL;
    int rc = h_run(argv, env, &o, &e, 20000);
    snprintf(out, len, "%s", o ? o : "");
    if (rc != 0)
        fprintf(stderr, "client: exit %d: %s%s\n", rc, o ? o : "", e ? e : "");
    free(o);
    free(e);
    return rc;
}

/* DESIGN sections 1 and 10: the admin token also authorises everything the call token does.
 * Instances accept it for calls (they hold only its hash), a program run with
 * MS_TOKEN_FILE=<state>/token calls services, a wrong token is MS_EAUTH. */
static void
test_calls_msd_tokens_call(void **state)
{
    (void)state;
    scale("whoami", 2);
    char addr[64], code[64];
    pid_t pid;
    assert_int_equal(ready_instance("whoami", 0, addr, sizeof addr, &pid), 0);
    assert_int_equal(to_instance(addr, "POST", "/v1/call/whoami", M->admin, code, sizeof code),
                     200);
    assert_int_equal(to_instance(addr, "POST", "/v1/call/whoami", M->call, code, sizeof code), 200);
    assert_int_equal(to_instance(addr, "POST", "/v1/call/whoami", "not-a-token", code, sizeof code),
                     401);
    assert_string_equal(code, "MS_EAUTH");
    assert_int_equal(to_instance(addr, "POST", "/v1/call/whoami", NULL, code, sizeof code), 401);
    assert_string_equal(code, "MS_EAUTH");
    /* The hash the instance holds is no token. */
    char hash[65];
    msi_sha256_hex_of(M->admin, strlen(M->admin), hash);
    assert_int_equal(to_instance(addr, "POST", "/v1/call/whoami", hash, code, sizeof code), 401);

    /* Whole programs, through lookup and call: the admin token file, the call token file, a
     * wrong token. */
    char orch[96], admin_file[300], call_file[300], out[256];
    snprintf(orch, sizeof orch, "MS_ORCHESTRATOR=%s", M->addr);
    snprintf(admin_file, sizeof admin_file, "MS_TOKEN_FILE=%s/" MSI_STATE_TOKEN, M->state);
    snprintf(call_file, sizeof call_file, "MS_TOKEN_FILE=%s/" MSI_STATE_CALL_TOKEN, M->state);
    const char *as_admin[] = {orch, "MS_MODE=local", admin_file, NULL};
    assert_int_equal(run_client(as_admin, out, sizeof out), 0);
    assert_non_null(strstr(out, "ok "));
    const char *as_caller[] = {orch, "MS_MODE=local", call_file, NULL};
    assert_int_equal(run_client(as_caller, out, sizeof out), 0);
    const char *as_nobody[] = {orch, "MS_MODE=local", "MS_TOKEN=not-a-token", NULL};
    assert_int_equal(run_client(as_nobody, out, sizeof out), 1);
    assert_non_null(strstr(out, "MS_EAUTH"));
}

/* POST /v1/drain on an instance retires it: it needs what msctl drain needs, the admin
 * token; the call token is refused with 403. */
static void
test_calls_msd_tokens_drain(void **state)
{
    (void)state;
    char addr[64], code[64];
    pid_t pid;
    assert_int_equal(ready_instance("whoami", 0, addr, sizeof addr, &pid), 0);
    assert_int_equal(to_instance(addr, "POST", "/v1/drain", M->call, code, sizeof code), 403);
    assert_string_equal(code, "MS_EFORBIDDEN");
    assert_int_equal(to_instance(addr, "POST", "/v1/drain", NULL, code, sizeof code), 401);
    assert_string_equal(code, "MS_EAUTH");
    assert_int_equal(to_instance(addr, "POST", "/v1/drain", "not-a-token", code, sizeof code), 401);
    /* Still serving. */
    assert_int_equal(to_instance(addr, "GET", "/v1/ready", NULL, code, sizeof code), 200);
    assert_int_equal(to_instance(addr, "POST", "/v1/call/whoami", M->call, code, sizeof code), 200);
    assert_true(h_alive(pid));

    assert_int_equal(to_instance(addr, "POST", "/v1/drain", M->admin, code, sizeof code), 200);
    assert_int_equal(h_wait_gone(pid, 10000), 0);
    /* msd replaces it: the service is pinned at 2. */
    assert_int_equal(h_wait_count(M, "whoami", "ready", 2, 15000), 0);
}

/* msd's own drains (scale-down) use the admin token: the instance leaves by the handshake,
 * well before the grace (21 s) would end in SIGTERM. */
static void
test_calls_msd_tokens_msd_drains(void **state)
{
    (void)state;
    int sigterms = h_count_events(M, "sigterm", "whoami");
    h_resp r;
    const char *body = "{\"instances\":1}";
    assert_int_equal(
        h_http(M, "PUT", "/v1/services/whoami/scale", M->admin, body, strlen(body), NULL, &r), 0);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    int64_t t0 = msi_now_ms();
    assert_int_equal(h_wait_count(M, "whoami", NULL, 1, 10000), 0);
    assert_true(msi_now_ms() - t0 < 10000);
    assert_int_equal(h_count_events(M, "sigterm", "whoami"), sigterms);
    assert_true(procs_match_status(10000));
}

static void
remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (dir[0] && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int
main(int argc, char **argv)
{
    if (getenv("MS_SERVE") || getenv("MS_DESCRIBE")) {
        ms_init(&argc, &argv); /* serves or describes, and exits */
        return 2;
    }
    if (argc > 1 && strcmp(argv[1], "--call-whoami") == 0) { /* run_client */
        int64_t pid = 0;
        ms_status st = ms_init(&argc, &argv);
        if (st == MS_OK)
            st = whoami_try(&pid);
        if (st == MS_OK)
            printf("ok %lld\n", (long long)pid);
        else
            printf("%s: %s\n", ms_status_name(st), ms_last_error());
        ms_shutdown();
        return st == MS_OK ? 0 : 1;
    }
    h_bin("MS_TEST_MSD"); /* exits early, before making anything, when unset */
    snprintf(dir, sizeof dir, "/tmp/ms-test-calls-msd-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    atexit(remove_dir); /* registered before the harness's: runs after msd is stopped */
    setenv("CALLS_TEST_DIR", dir, 1);
    static const char *const args[] = {"--probe-interval-ms", "200", NULL};
    M = h_msd_start(args);
    if (!M)
        return 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof sa;
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    char orch[160];
    snprintf(orch, sizeof orch, "127.0.0.1:%u,%s", (unsigned)ntohs(sa.sin_port), M->addr);
    setenv("MS_ORCHESTRATOR", orch, 1);
    setenv("MS_MODE", "local", 1);
    setenv("MS_STATE_DIR", M->state, 1);
    if (!getenv("MS_LOG"))
        setenv("MS_LOG", "error", 1);
    if (ms_init(&argc, &argv) != MS_OK) {
        fprintf(stderr, "ms_init: %s\n", ms_last_error());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls_msd_nested_deadline_and_trace),
        cmocka_unit_test(test_calls_msd_death_idempotent),
        cmocka_unit_test(test_calls_msd_death_not_idempotent),
        cmocka_unit_test(test_calls_msd_hang),
        cmocka_unit_test(test_calls_msd_cut_connection_same_instance),
        cmocka_unit_test(test_calls_msd_tokens_call),
        cmocka_unit_test(test_calls_msd_tokens_drain),
        cmocka_unit_test(test_calls_msd_tokens_msd_drains),
        cmocka_unit_test(test_calls_msd_orchestrator_loss),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ms_shutdown();
    return rc;
}
