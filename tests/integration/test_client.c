/* test_client.c: the client side of local mode against the real msd.
 *
 * Each scenario runs in a fresh process (this executable re-run with the scenario's name),
 * because ms_init happens once per process: with MS_MODE=local and no MS_ORCHESTRATOR it
 * starts a private msd (MS_MSD, set by ctest), registers itself as a deployment, and msd
 * starts instances, which are this executable again with MS_SERVE. The driver checks the
 * scenario's exit status and that the private msd's temporary directory is gone afterwards
 * (TMPDIR points into the test's own directory).
 *
 * Clean-up: scenario processes get PR_SET_PDEATHSIG=SIGKILL and are killed and reaped on
 * timeout; a private msd watches its parent (--parent-pid) and stops its instances when the
 * scenario process is gone.
 */
#include "msi.h"

#include <ms/ms.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- services (served by instances of this executable) ---- */

MS_SERVICE(int64_t, add, (int64_t, a), (int64_t, b))
{
    return a + b;
}
MS_OPTIONS(add, .idempotent = true)

MS_SERVICE(char *, greet, (const char *, name))
{
    size_t n = strlen(name) + 8;
    char *s = malloc(n);
    snprintf(s, n, "hello %s", name);
    return s;
}

MS_SERVICE(int, boom, (int, code))
{
    ms_fail(code, "boom %d", code);
    return 0;
}

MS_SERVICE(int64_t, nested, (int64_t, x))
{
    return add(x, x) + 1;
}

/* Idempotent: a call sent on a kept-alive connection to an instance that has just been
 * killed is in doubt, and only an idempotent call may then be retried elsewhere. */
MS_SERVICE(int, pid_of)
{
    return (int)getpid();
}
MS_OPTIONS(pid_of, .min_instances = 2, .idempotent = true)

/* Not idempotent: once its instance is gone for good, calls still find another. */
MS_SERVICE(int, pid_of_once)
{
    return (int)getpid();
}

MS_SERVICE(int, slow, (int, ms))
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    return ms;
}
MS_OPTIONS(slow, .timeout_ms = 300)

/* Declared here, defined by no program: nobody deploys it. */
MS_CLIENT(int, nowhere, (int, x))

/* ---- scenarios (run in a child process) ---- */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "scenario: %s:%d: check failed: %s (last error: %s)\n", __FILE__,      \
                    __LINE__, #cond, ms_last_error());                                             \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static int
scenario_basic(int shutdown)
{
    int64_t r = 0;
    CHECK(add_try(&r, 2, 3) == MS_OK && r == 5);
    CHECK(add(INT64_MAX - 1, 1) == INT64_MAX);
    char *g = greet("ms");
    CHECK(g && strcmp(g, "hello ms") == 0);
    free(g);
    int x = -1;
    CHECK(boom_try(&x, 42) == MS_EAPP);
    CHECK(x == 0);
    CHECK(ms_last_app_code() == 42);
    CHECK(strstr(ms_last_error(), "boom 42") != NULL);
    CHECK(strstr(ms_last_error(), "instance") != NULL);
    CHECK(nested(5) == 11);
    if (shutdown)
        ms_shutdown();
    return 0;
}

static void *
hammer(void *arg)
{
    intptr_t bad = 0;
    (void)arg;
    for (int i = 0; i < 200; i++) {
        int64_t r;
        if (add_try(&r, i, 1) != MS_OK || r != i + 1) {
            fprintf(stderr, "thread: %s\n", ms_last_error());
            bad = 1;
            break;
        }
    }
    return (void *)bad;
}

static int
scenario_threads(void)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, hammer, NULL) == 0);
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        if (bad)
            ok = 0;
    }
    CHECK(ok);
    ms_shutdown();
    return 0;
}

/* An instance killed under the client: the next calls go elsewhere, none fails. */
static int
scenario_kill(void)
{
    int p = 0;
    CHECK(pid_of_try(&p) == MS_OK && p > 0);
    CHECK(kill(p, SIGKILL) == 0);
    for (int i = 0; i < 10; i++) {
        int q = 0;
        CHECK(pid_of_try(&q) == MS_OK);
        CHECK(q != p);
    }
    /* Not idempotent: after its instance has died (not while it dies), nothing is in
     * doubt: the connection is seen closed, the new one refused, the call goes elsewhere
     * or waits for a replacement. */
    CHECK(pid_of_once_try(&p) == MS_OK && p > 0);
    CHECK(kill(p, SIGKILL) == 0);
    for (int i = 0; i < 500 && kill(p, 0) == 0; i++)
        usleep(2000);
    for (int i = 0; i < 10; i++) {
        int q = 0;
        CHECK(pid_of_once_try(&q) == MS_OK);
        CHECK(q != p);
    }
    ms_shutdown();
    return 0;
}

/*
 * slow's timeout_ms (300) is the call's deadline. What bounded the call is told by its
 * outcome, not by how fast this machine is: without the 300 ms deadline, slow(2000) would
 * return MS_OK after 2 s (its body), or, were the default 10 s deadline in force instead,
 * still MS_OK; MS_ETIMEDOUT with a detail naming the deadline means the deadline ended it.
 * The wall bound only tells 300 ms from the next-larger deadline, the default 10 s: it is
 * half of that, room for a loaded machine that is late by seconds.
 */
static int
scenario_timeout(void)
{
    int r = -1;
    int64_t t0 = msi_now_ms();
    CHECK(slow_try(&r, 2000) == MS_ETIMEDOUT);
    int64_t took = msi_now_ms() - t0;
    CHECK(r == 0);
    CHECK(strstr(ms_last_error(), "deadline") != NULL);
    CHECK(took < 10000 / 2);
    /* The instance (concurrency 1) is still busy with the abandoned call for a while: its
     * next call times out in its queue until the slot is free. Polled, not slept. */
    ms_status st = MS_ETIMEDOUT;
    for (int64_t until = msi_now_ms() + 30000; msi_now_ms() < until;) {
        r = -1;
        st = slow_try(&r, 10);
        if (st != MS_ETIMEDOUT)
            break;
    }
    CHECK(st == MS_OK && r == 10);
    ms_shutdown();
    return 0;
}

static int
scenario_notfound(void)
{
    int r = -1;
    CHECK(nowhere_try(&r, 1) == MS_ENOTFOUND);
    CHECK(strstr(ms_last_error(), "nowhere") != NULL);
    ms_shutdown();
    return 0;
}

static int
scenario_unreachable(void)
{
    int64_t r = -1;
    CHECK(add_try(&r, 1, 2) == MS_EUNAVAILABLE);
    CHECK(strstr(ms_last_error(), getenv("EXPECT_ADDR")) != NULL);
    ms_shutdown();
    return 0;
}

static int
run_scenario(const char *name)
{
    if (strcmp(name, "basic") == 0)
        return scenario_basic(1);
    if (strcmp(name, "noshutdown") == 0)
        return scenario_basic(0);
    if (strcmp(name, "threads") == 0)
        return scenario_threads();
    if (strcmp(name, "kill") == 0)
        return scenario_kill();
    if (strcmp(name, "timeout") == 0)
        return scenario_timeout();
    if (strcmp(name, "notfound") == 0)
        return scenario_notfound();
    if (strcmp(name, "unreachable") == 0)
        return scenario_unreachable();
    fprintf(stderr, "unknown scenario %s\n", name);
    return 2;
}

/* ---- the driver ---- */

static char self_exe[4096];

typedef struct fixture {
    char dir[64]; /* TMPDIR of the scenario: the private msd's state goes below */
} fixture;

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ms-test-client-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    *state = f;
    return 0;
}

static int
dir_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static int
rm_tree(const char *path)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    return system(cmd);
}

static int
teardown(void **state)
{
    fixture *f = *state;
    rm_tree(f->dir);
    free(f);
    return 0;
}

/* Runs a scenario in a child process with `env` (NULL-terminated) added; returns its exit
 * status, killing it after timeout_ms. */
static int
run(fixture *f, const char *scenario, const char *const *env, int timeout_ms)
{
    char *envp[32];
    static char buf[32][512];
    int n = 0;
    snprintf(buf[n], sizeof buf[n], "TMPDIR=%s", f->dir), envp[n] = buf[n], n++;
    snprintf(buf[n], sizeof buf[n], "MS_LOG=%s",
             getenv("MS_TEST_LOG") ? getenv("MS_TEST_LOG") : "warn"),
        envp[n] = buf[n], n++;
    const char *keep[] = {"PATH", "MS_MSD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                          "HOME", NULL};
    for (int i = 0; keep[i]; i++) {
        if (getenv(keep[i])) {
            snprintf(buf[n], sizeof buf[n], "%s=%s", keep[i], getenv(keep[i]));
            envp[n] = buf[n];
            n++;
        }
    }
    for (int i = 0; env && env[i] && n < 30; i++) {
        snprintf(buf[n], sizeof buf[n], "%s", env[i]);
        envp[n] = buf[n];
        n++;
    }
    envp[n] = NULL;
    char *argv[] = {self_exe, (char *)scenario, NULL};
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        execve(self_exe, argv, envp);
        _exit(127);
    }
    int64_t end = msi_now_ms() + timeout_ms;
    int status = 0;
    for (;;) {
        pid_t p = waitpid(pid, &status, WNOHANG);
        if (p == pid)
            break;
        if (msi_now_ms() >= end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("scenario %s did not finish within %d ms", scenario, timeout_ms);
        }
        usleep(10 * 1000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The private msd's directory is removed once the scenario process is gone (it stops msd
 * and removes the directory at ms_shutdown or exit). */
static void
assert_cleaned(fixture *f)
{
    assert_int_equal(dir_entries(f->dir), 0);
}

static void
test_client_basic(void **state)
{
    fixture *f = *state;
    const char *env[] = {"MS_MODE=local", NULL};
    assert_int_equal(run(f, "basic", env, 60000), 0);
    assert_cleaned(f);
}

static void
test_client_exit_without_shutdown(void **state)
{
    fixture *f = *state;
    const char *env[] = {"MS_MODE=local", NULL};
    assert_int_equal(run(f, "noshutdown", env, 60000), 0);
    assert_cleaned(f);
}

static void
test_client_threads(void **state)
{
    fixture *f = *state;
    const char *env[] = {"MS_MODE=local", NULL};
    assert_int_equal(run(f, "threads", env, 60000), 0);
    assert_cleaned(f);
}

static void
test_client_instance_killed(void **state)
{
    fixture *f = *state;
    const char *env[] = {"MS_MODE=local", NULL};
    assert_int_equal(run(f, "kill", env, 60000), 0);
    assert_cleaned(f);
}

static void
test_client_deadline(void **state)
{
    fixture *f = *state;
    const char *env[] = {"MS_MODE=local", NULL};
    assert_int_equal(run(f, "timeout", env, 60000), 0);
    assert_cleaned(f);
}

static void
test_client_not_deployed(void **state)
{
    fixture *f = *state;
    const char *env[] = {"MS_MODE=local", NULL};
    assert_int_equal(run(f, "notfound", env, 60000), 0);
    assert_cleaned(f);
}

static void
test_client_orchestrator_unreachable(void **state)
{
    fixture *f = *state;
    /* A port that was just free: nothing listens there. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof sa;
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    char orch[64], expect[80];
    snprintf(orch, sizeof orch, "MS_ORCHESTRATOR=127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    snprintf(expect, sizeof expect, "EXPECT_ADDR=127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    char state_dir[128];
    snprintf(state_dir, sizeof state_dir, "MS_STATE_DIR=%s/none", f->dir);
    const char *env[] = {orch, expect, state_dir, NULL};
    assert_int_equal(run(f, "unreachable", env, 30000), 0);
}

int
main(int argc, char **argv)
{
    /* An instance (MS_SERVE) never returns from ms_init. */
    ms_status st = ms_init(&argc, &argv);
    if (argc > 1) {
        if (st != MS_OK) {
            fprintf(stderr, "ms_init: %s: %s\n", ms_status_name(st), ms_last_error());
            return 1;
        }
        return run_scenario(argv[1]);
    }
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (n <= 0)
        return 1;
    self_exe[n] = '\0';
    if (!getenv("MS_MSD")) {
        fprintf(stderr, "test_client: MS_MSD (the msd to run) is not set; skipped\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_exit_without_shutdown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_instance_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_not_deployed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_orchestrator_unreachable, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
