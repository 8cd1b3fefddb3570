/*
 * test_msd_docker.c: msd --runner docker against a private Docker daemon (dockerd.h):
 * a missing daemon is a clear error at start; a deployed program runs as a container (host
 * networking, labels, the FROM-scratch image ms-build:<build>) and answers calls; a
 * container killed through the API is seen dead at once and replaced, and calls succeed
 * again; an orderly stop of msd removes every container; a program whose library is gone
 * gets no image (a start-up death naming the library); the daemon going away kills the
 * instance, later starts fail naming the socket, and msd still stops cleanly.
 *
 * When no daemon can run here (no dockerd, not root, it fails to start), the daemon tests
 * are skipped (exit 77) with the reason; the missing-daemon test runs anyway first.
 */
#include "dockerd.h"
#include "harness.h"

#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static h_dockerd D;
static h_msd *M;
static char build[65];
static char first_ctr[80]; /* the container of the first instance */

static int
msctl(char **out, char **err, ...)
{
    const char *args[32];
    int n = 0;
    va_list ap;
    va_start(ap, err);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 31)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return h_msctl(M, out, err, 60000, args);
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* ---- without a daemon ---- */

static void
test_docker_no_daemon_is_a_clear_error(void **state)
{
    (void)state;
    char dir[] = "/tmp/ms-it-nodaemon-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char st[128], sock[128];
    snprintf(st, sizeof st, "%s/state", dir);
    snprintf(sock, sizeof sock, "%s/no-docker.sock", dir);
    const char *argv[] = {
        h_bin("MS_TEST_MSD"), "--state", st,  "--listen", "127.0.0.1:0", "--runner", "docker",
        "--docker-socket",    sock,      NULL};
    char *out = NULL, *err = NULL;
    int64_t t0 = h_now_ms();
    int rc = h_run(argv, NULL, &out, &err, 20000);
    int64_t took = h_now_ms() - t0;
    fprintf(stderr, "msd without a daemon: exit %d in %lld ms: %s", rc, (long long)took,
            err ? err : "");
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "--runner docker: no Docker daemon answers on"));
    assert_non_null(strstr(err, sock));
    assert_true(took < 10000);
    free(out);
    free(err);

    /* --docker-socket belongs to the docker runner; an unknown runner is refused. */
    const char *bad1[] = {h_bin("MS_TEST_MSD"), "--state", st, "--docker-socket", sock, NULL};
    rc = h_run(bad1, NULL, &out, &err, 20000);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "needs --runner docker"));
    free(out);
    free(err);
    const char *bad2[] = {h_bin("MS_TEST_MSD"), "--state", st, "--runner", "kubernetes", NULL};
    rc = h_run(bad2, NULL, &out, &err, 20000);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "expected process or docker"));
    free(out);
    free(err);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- with the private daemon ---- */

/* The running containers (the daemon is private: every one is msd's); ids[0] and its
 * JSON (a new reference) when asked. */
static int
running(char id[80], json_t **first)
{
    h_resp r;
    if (first)
        *first = NULL;
    assert_int_equal(h_docker(&D, "GET", "/v1.41/containers/json", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    int n = (int)json_array_size(r.json);
    if (n > 0) {
        json_t *c = json_array_get(r.json, 0);
        if (id)
            snprintf(id, 80, "%s", json_string_value(json_object_get(c, "Id")));
        if (first)
            *first = json_incref(c);
    }
    h_resp_free(&r);
    return n;
}

static int
all_containers(void)
{
    h_resp r;
    assert_int_equal(h_docker(&D, "GET", "/v1.41/containers/json?all=1", NULL, &r), 0);
    int n = (int)json_array_size(r.json);
    h_resp_free(&r);
    return n;
}

/* Whether an event of that type names `text` in its message. */
static int
event_says(h_msd *m, const char *type, const char *text)
{
    json_t *ev = h_events(m);
    size_t i;
    json_t *e;
    int found = 0;
    json_array_foreach(ev, i, e)
    {
        const char *t = json_string_value(json_object_get(e, "type"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        if (t && msg && strcmp(t, type) == 0 && strstr(msg, text))
            found = 1;
    }
    json_decref(ev);
    return found;
}

static int
wait_event_says(h_msd *m, const char *type, const char *text, int timeout_ms)
{
    int64_t end = h_now_ms() + timeout_ms;
    while (h_now_ms() < end) {
        if (event_says(m, type, text))
            return 0;
        h_nap(50);
    }
    return -1;
}

static void
copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

static void
test_docker_deploy_and_call(void **state)
{
    (void)state;
    const char *const args[] = {"--runner",
                                "docker",
                                "--docker-socket",
                                D.sock,
                                "--probe-interval-ms",
                                "200",
                                "--probe-timeout-ms",
                                "1000",
                                NULL};
    M = h_msd_start(args);
    assert_non_null(M);

    char *out = NULL, *err = NULL;
    int rc = msctl(&out, &err, "deploy", h_bin("MS_TEST_APP"), "--app-flag", NULL);
    if (rc != 0)
        fprintf(stderr, "deploy: %s%s", out, err);
    assert_int_equal(rc, 0);
    assert_int_equal(strncmp(out, "deployed ", 9), 0);
    memcpy(build, out + 9, 64);
    build[64] = '\0';
    free(out);
    free(err);

    /* The first call builds the image and starts the container. */
    int64_t t0 = h_now_ms();
    rc = msctl(&out, &err, "call", "add", "a=2", "b=40", NULL);
    int64_t first = h_now_ms() - t0;
    if (rc != 0)
        fprintf(stderr, "call: %s%s", out, err);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "42\n");
    free(out);
    free(err);
    t0 = h_now_ms();
    rc = msctl(&out, &err, "call", "add", "a=1", "b=2", NULL);
    int64_t second = h_now_ms() - t0;
    assert_int_equal(rc, 0);
    assert_string_equal(out, "3\n");
    free(out);
    free(err);
    fprintf(stderr, "first call (image build, container): %lld ms; second call: %lld ms\n",
            (long long)first, (long long)second);
    assert_int_equal(h_count(M, "add", "ready"), 1);

    /* One container: host networking, the labels, the image of this build. */
    json_t *c = NULL;
    assert_int_equal(running(first_ctr, &c), 1);
    json_t *labels = json_object_get(c, "Labels");
    assert_non_null(json_string_value(json_object_get(labels, "ms.instance")));
    assert_int_equal(strncmp(json_string_value(json_object_get(labels, "ms.instance")), "i-", 2),
                     0);
    const char *msd_label = json_string_value(json_object_get(labels, "ms.msd"));
    assert_non_null(msd_label);
    assert_int_equal(strlen(msd_label), 16);
    assert_string_equal(json_string_value(json_object_get(labels, "ms.build")), build);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(c, "HostConfig"), "NetworkMode")),
        "host");
    char image[100];
    snprintf(image, sizeof image, "ms-build:%s", build);
    assert_string_equal(json_string_value(json_object_get(c, "Image")), image);
    json_decref(c);

    /* The image: made from scratch, the program as its entry point. */
    h_resp r;
    char path[200];
    snprintf(path, sizeof path, "/v1.41/images/%s/json", image);
    assert_int_equal(h_docker(&D, "GET", path, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *ep = json_object_get(json_object_get(r.json, "Config"), "Entrypoint");
    assert_string_equal(json_string_value(json_array_get(ep, 0)), "/ms/bin/msd_test_app");
    h_resp_free(&r);
}

static void
test_docker_killed_container_replaced(void **state)
{
    (void)state;
    assert_non_null(M);
    int deaths = h_count_events(M, "dead", "add");
    char path[200];
    snprintf(path, sizeof path, "/v1.41/containers/%s/kill?signal=KILL", first_ctr);
    h_resp r;
    int64_t t0 = h_now_ms();
    assert_int_equal(h_docker(&D, "POST", path, NULL, &r), 0);
    assert_int_equal(r.status, 204);
    h_resp_free(&r);

    /* Seen at once (the container's wait, not a probe), then replaced. */
    assert_int_equal(h_wait_events(M, "dead", "add", deaths + 1, 10000), 0);
    int64_t seen = h_now_ms() - t0;
    assert_int_equal(h_wait_count(M, "add", "ready", 1, 30000), 0);
    int64_t ready = h_now_ms() - t0;
    fprintf(stderr, "killed container: dead after %lld ms, replaced and ready after %lld ms\n",
            (long long)seen, (long long)ready);
    /* the exit came from the daemon's wait (a probe would say "probe failed") */
    assert_true(event_says(M, "dead", "killed by signal 9"));
    assert_true(seen < 10000);

    char *out = NULL, *err = NULL;
    int rc = msctl(&out, &err, "call", "add", "a=1", "b=1", NULL);
    if (rc != 0)
        fprintf(stderr, "call: %s%s", out, err);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "2\n");
    free(out);
    free(err);

    /* A new container runs; the killed one was removed. */
    char now[80];
    assert_int_equal(running(now, NULL), 1);
    assert_string_not_equal(now, first_ctr);
    snprintf(path, sizeof path, "/v1.41/containers/%s/json", first_ctr);
    assert_int_equal(h_docker(&D, "GET", path, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    h_resp_free(&r);
}

static void
test_docker_stop_removes_containers(void **state)
{
    (void)state;
    assert_non_null(M);
    char *out = NULL, *err = NULL;
    assert_int_equal(msctl(&out, &err, "scale", "add", "2", NULL), 0);
    free(out);
    free(err);
    assert_int_equal(h_wait_count(M, "add", "ready", 2, 30000), 0);
    assert_int_equal(running(NULL, NULL), 2);

    int st = h_msd_signal(M, SIGTERM, 30000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(all_containers(), 0);

    /* The instances' output was copied to their logs before the removal. */
    char p[400];
    snprintf(p, sizeof p, "%s/logs/i-1.log", M->state);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    char line[600];
    int noted = 0;
    while (fgets(line, sizeof line, f))
        noted |= strstr(line, "as container ms-") != NULL;
    fclose(f);
    assert_true(noted);
}

/* A program whose library is gone by its first start: no image, a start-up death whose
 * message names the library, and no container. A second msd on the same daemon. */
static void
test_docker_image_cannot_be_made(void **state)
{
    (void)state;
    char dir[] = "/tmp/ms-it-dep-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char lib[200];
    const char *src = h_bin("MS_TEST_DEP_LIB");
    snprintf(lib, sizeof lib, "%s/%s", dir, strrchr(src, '/') + 1);
    copy_file(src, lib);

    /* msd (and so the describe run at deploy) finds the library through LD_LIBRARY_PATH. */
    const char *const args[] = {"--runner", "docker", "--docker-socket", D.sock, NULL};
    setenv("LD_LIBRARY_PATH", dir, 1);
    h_msd *m = h_msd_start(args);
    unsetenv("LD_LIBRARY_PATH");
    assert_non_null(m);
    const char *const deploy[] = {"deploy", h_bin("MS_TEST_APP_DEP"), NULL};
    char *out = NULL, *err = NULL;
    int rc = h_msctl(m, &out, &err, 60000, deploy);
    if (rc != 0)
        fprintf(stderr, "deploy: %s%s", out, err);
    assert_int_equal(rc, 0);
    free(out);
    free(err);

    unlink(lib);
    const char *const scale[] = {"scale", "dep", "1", NULL};
    assert_int_equal(h_msctl(m, &out, &err, 60000, scale), 0);
    free(out);
    free(err);
    assert_int_equal(wait_event_says(m, "dead", "which ldd cannot find", 20000), 0);
    assert_true(event_says(m, "dead", "libmsd_test_dep.so"));
    assert_int_equal(all_containers(), 0);

    int st = h_msd_signal(m, SIGTERM, 30000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The daemon goes away under a running instance: the instance is seen dead, the starts that
 * follow fail with the daemon's absence in their message, and msd still stops cleanly. */
static void
test_docker_daemon_goes_away(void **state)
{
    (void)state;
    const char *const args[] = {"--runner", "docker", "--docker-socket", D.sock, NULL};
    h_msd *m = h_msd_start(args);
    assert_non_null(m);
    const char *const deploy[] = {"deploy", h_bin("MS_TEST_APP"), NULL};
    const char *const call[] = {"call", "add", "a=20", "b=22", NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(h_msctl(m, &out, &err, 60000, deploy), 0);
    free(out);
    free(err);
    assert_int_equal(h_msctl(m, &out, &err, 60000, call), 0);
    assert_string_equal(out, "42\n");
    free(out);
    free(err);

    int64_t t0 = h_now_ms();
    h_dockerd_kill(&D);
    int64_t stopped = h_now_ms() - t0;
    assert_int_equal(h_wait_events(m, "dead", "add", 1, 20000), 0);
    assert_int_equal(wait_event_says(m, "dead", "cannot connect to", 20000), 0);
    fprintf(stderr,
            "daemon gone: stopped in %lld ms; the instance dead and a start refused "
            "after %lld ms\n",
            (long long)stopped, (long long)(h_now_ms() - t0));

    int st = h_msd_signal(m, SIGTERM, 30000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int
main(void)
{
    const struct CMUnitTest plain[] = {
        cmocka_unit_test(test_docker_no_daemon_is_a_clear_error),
    };
    int failed = cmocka_run_group_tests_name("without a daemon", plain, NULL, NULL);

    char why[1200];
    int64_t t0 = h_now_ms();
    if (h_dockerd_start(&D, why, sizeof why) < 0) {
        fprintf(stderr, "SKIP: no Docker daemon can run here: %s\n", why);
        h_dockerd_stop(&D);
        return failed ? 1 : H_SKIP;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docker_deploy_and_call),
        cmocka_unit_test(test_docker_killed_container_replaced),
        cmocka_unit_test(test_docker_stop_removes_containers),
        cmocka_unit_test(test_docker_image_cannot_be_made),
        cmocka_unit_test(test_docker_daemon_goes_away), /* last: the daemon is gone */
    };
    failed += cmocka_run_group_tests_name("msd --runner docker", tests, NULL, NULL);
    fprintf(stderr, "docker tests: %lld ms with the daemon's start\n",
            (long long)(h_now_ms() - t0));
    return failed ? 1 : 0;
}
