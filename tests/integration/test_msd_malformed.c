/*
 * test_msd_malformed.c: a battery of bad requests against a live msd. Every one must get a
 * 4xx with a JSON error body (or 413 for a body past the limit), and msd must stay up and
 * healthy throughout: bad JSON, deep nesting, an oversized body, bad UTF-8, bad names,
 * unknown services and instances, missing, bad and insufficient tokens, bad numbers, wrong
 * methods, and executables msd must refuse to deploy.
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static h_msd *M;
static char tmpdir[300];

static int
setup(void **state)
{
    (void)state;
    M = h_msd_start(NULL);
    if (!M)
        return -1;
    snprintf(tmpdir, sizeof tmpdir, "%s/scratch", M->state);
    return mkdir(tmpdir, 0700);
}

static const char *const JSON_HDR[] = {"Content-Type: application/json", NULL};

/* Sends a request and checks the status and that the body is a JSON error with a code. */
static void
expect(const char *method, const char *path, const char *token, const char *body, size_t len,
       long status, const char *code)
{
    h_resp r;
    int rc = h_http(M, method, path, token, body, len, body ? JSON_HDR : NULL, &r);
    if (rc != 0 || r.status != status || (code && strcmp(h_err_code(&r), code) != 0))
        fprintf(stderr, "%s %.80s: got %ld %s (transport %d), wanted %ld %s\n", method, path,
                r.status, r.body ? r.body : "", r.transport, status, code ? code : "");
    assert_int_equal(rc, 0);
    assert_int_equal(r.status, status);
    if (code) {
        assert_non_null(r.json);
        assert_string_equal(h_err_code(&r), code);
        assert_non_null(json_object_get(json_object_get(r.json, "error"), "message"));
    }
    h_resp_free(&r);
}

static void
expect_s(const char *method, const char *path, const char *token, const char *body, long status,
         const char *code)
{
    expect(method, path, token, body, body ? strlen(body) : 0, status, code);
}

static void
assert_healthy(void)
{
    expect_s("GET", "/v1/health", NULL, NULL, 200, NULL);
    assert_true(h_alive(M->pid));
}

static void
test_msd_rejects_bad_bodies(void **state)
{
    (void)state;
    const char *A = M->admin;
    expect_s("POST", "/v1/deployments", A, "{", 400, "MS_EBADARGS");
    expect_s("POST", "/v1/deployments", A, "not json at all", 400, "MS_EBADARGS");
    expect_s("POST", "/v1/deployments", A, "[1,2,3]", 400, "MS_EBADARGS");
    expect_s("POST", "/v1/deployments", A, "\"path\"", 400, "MS_EBADARGS");
    expect_s("POST", "/v1/deployments", A, "{}", 400, "MS_EBADARGS");
    expect_s("POST", "/v1/deployments", A, "{\"path\":17}", 400, "MS_EBADARGS");
    expect_s("POST", "/v1/deployments", A, "{\"path\":\"/bin/sh\",\"argv\":\"x\"}", 400,
             "MS_EBADARGS");
    expect_s("POST", "/v1/deployments", A, "{\"path\":\"/bin/sh\",\"argv\":[1]}", 400,
             "MS_EBADARGS");
    expect_s("POST", "/v1/deployments", A, NULL, 400, "MS_EBADARGS");
    /* Invalid UTF-8. */
    expect_s("POST", "/v1/deployments", A, "{\"path\":\"/tmp/\xff\xfe\"}", 400, "MS_EBADARGS");
    /* A NUL inside a string. */
    expect_s("POST", "/v1/deployments", A, "{\"path\":\"/bin/sh\\u0000x\"}", 400, "MS_EBADARGS");

    /* Nesting: 64 levels parse (and are then refused for what they are), 65 do not. */
    char deep[300];
    size_t n = 0;
    deep[n++] = '{';
    memcpy(deep + n, "\"x\":", 4);
    n += 4;
    for (int i = 0; i < 70; i++)
        deep[n++] = '[';
    for (int i = 0; i < 70; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    expect("POST", "/v1/deployments", A, deep, n, 400, "MS_EBADARGS");
    h_resp r;
    assert_int_equal(h_http(M, "POST", "/v1/deployments", A, deep, n, JSON_HDR, &r), 0);
    assert_non_null(strstr(r.body, "deep"));
    h_resp_free(&r);

    /* A huge nesting attack, 100000 levels. */
    size_t big = 200000;
    char *bomb = malloc(big + 1);
    assert_non_null(bomb);
    memset(bomb, '[', big / 2);
    memset(bomb + big / 2, ']', big / 2);
    bomb[big] = '\0';
    expect("POST", "/v1/deployments", A, bomb, big, 400, "MS_EBADARGS");
    free(bomb);

    /* Bodies past 1 MiB: 413 before they are read. */
    size_t over = (1u << 20) + 1;
    char *huge = malloc(over);
    assert_non_null(huge);
    memset(huge, ' ', over);
    huge[0] = '{';
    huge[over - 1] = '}';
    expect("POST", "/v1/deployments", A, huge, over, 413, NULL);
    expect("POST", "/v1/instances/i-1/heartbeat", A, huge, over, 413, NULL);
    free(huge);
    /* Just under the limit is read (and refused for its content). */
    size_t under = (1u << 20) - 16;
    huge = malloc(under);
    memset(huge, ' ', under);
    huge[0] = '{';
    huge[under - 1] = '}';
    expect("POST", "/v1/deployments", A, huge, under, 400, "MS_EBADARGS");
    free(huge);
    assert_healthy();
}

static void
test_msd_rejects_bad_credentials(void **state)
{
    (void)state;
    expect_s("GET", "/v1/services", NULL, NULL, 401, "MS_EAUTH");
    expect_s("GET", "/v1/services", "0123", NULL, 401, "MS_EAUTH");
    expect_s("GET", "/v1/services/add", NULL, NULL, 401, "MS_EAUTH");
    expect_s("GET", "/v1/events", NULL, NULL, 401, "MS_EAUTH");
    expect_s("POST", "/v1/deployments", NULL, "{\"path\":\"/bin/true\"}", 401, "MS_EAUTH");
    expect_s("POST", "/v1/deployments", "wrong", "{\"path\":\"/bin/true\"}", 401, "MS_EAUTH");
    /* The call token does not allow mutations. */
    expect_s("POST", "/v1/deployments", M->call, "{\"path\":\"/bin/true\"}", 403, "MS_EFORBIDDEN");
    expect_s("PUT", "/v1/services/add/scale", M->call, "{\"instances\":1}", 403, "MS_EFORBIDDEN");
    expect_s("DELETE", "/v1/services/add", M->call, NULL, 403, "MS_EFORBIDDEN");
    expect_s("POST", "/v1/instances/i-1/drain", M->call, "{}", 403, "MS_EFORBIDDEN");
    /* But it allows lookups and listings. */
    expect_s("GET", "/v1/services", M->call, NULL, 200, NULL);
    expect_s("GET", "/v1/services/add", M->call, NULL, 404, "MS_ENOTFOUND");
    /* Heartbeats of unknown instances: 410, whatever the token. */
    expect_s("POST", "/v1/instances/i-999/heartbeat", "nope", "{\"epoch\":1}", 410, NULL);
    /* No token, no body read: an early 401 even for a big body. */
    expect_s("PUT", "/v1/services/add/scale", NULL, "{\"instances\":1}", 401, "MS_EAUTH");
    /* The unix socket: msd's own uid needs no token. */
    h_resp r;
    assert_int_equal(h_http_unix(M, "GET", "/v1/services", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    assert_healthy();
}

static void
test_msd_rejects_bad_names_and_values(void **state)
{
    (void)state;
    const char *C = M->call, *A = M->admin;
    expect_s("GET", "/v1/services/bad%20name", C, NULL, 400, "MS_EBADARGS");
    expect_s("GET", "/v1/services/a$b", C, NULL, 400, "MS_EBADARGS");
    expect_s("GET", "/v1/services/", C, NULL, 404, NULL);
    char longname[200] = "/v1/services/";
    memset(longname + strlen(longname), 'x', 129);
    expect_s("GET", longname, C, NULL, 400, "MS_EBADARGS");
    longname[strlen("/v1/services/") + 128] = '\0'; /* 128 is fine: unknown */
    expect_s("GET", longname, C, NULL, 404, "MS_ENOTFOUND");
    expect_s("GET", "/v1/services/add?build=xyz", C, NULL, 400, "MS_EBADARGS");
    expect_s("GET", "/v1/services/add?sig=12", C, NULL, 400, "MS_EBADARGS");
    const char *bad_dl[] = {"Ms-Deadline-Ms: soon", NULL};
    h_resp r;
    assert_int_equal(h_http(M, "GET", "/v1/services/add", C, NULL, 0, bad_dl, &r), 0);
    assert_int_equal(r.status, 400);
    h_resp_free(&r);
    expect_s("GET", "/v1/events?since=abc", C, NULL, 400, "MS_EBADARGS");
    expect_s("GET", "/v1/events?since=-1", C, NULL, 400, "MS_EBADARGS");
    expect_s("GET", "/v1/events?limit=0", C, NULL, 400, "MS_EBADARGS");
    expect_s("PUT", "/v1/services/add/scale", A, "{\"instances\":-1}", 400, "MS_EBADARGS");
    expect_s("PUT", "/v1/services/add/scale", A, "{\"instances\":\"3\"}", 400, "MS_EBADARGS");
    expect_s("PUT", "/v1/services/add/scale", A, "{\"instances\":100000}", 400, "MS_EBADARGS");
    expect_s("PUT", "/v1/services/add/scale", A, "{\"instances\":1,\"build\":\"zz\"}", 400,
             "MS_EBADARGS");
    expect_s("PUT", "/v1/services/add/scale", A, "{\"instances\":1}", 404, "MS_ENOTFOUND");
    expect_s("DELETE", "/v1/services/add", A, NULL, 404, "MS_ENOTFOUND");
    expect_s("POST", "/v1/services/add/failures", C, "{\"instance\":\"i-1\"}", 404, "MS_ENOTFOUND");
    expect_s("POST", "/v1/services/add/failures", C, "{\"instance\":\"../x\"}", 400, "MS_EBADARGS");
    expect_s("POST", "/v1/instances/i-1/drain", A, "{}", 404, "MS_ENOTFOUND");
    expect_s("POST", "/v1/instances/bad%20id/drain", A, "{}", 400, NULL);
    expect_s("POST", "/v1/instances/i-1/explode", A, "{}", 404, "MS_ENOTFOUND");
    expect_s("GET", "/v1/nothing-here", C, NULL, 404, NULL);
    /* Wrong methods. */
    expect_s("POST", "/v1/services", C, "{}", 405, NULL);
    expect_s("GET", "/v1/services/add/scale", A, NULL, 405, NULL);
    expect_s("DELETE", "/v1/deployments", A, NULL, 405, NULL);
    assert_healthy();
}

/* Writes a small file with a mode. */
static void
make_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void
deploy_expect(const char *path, long status, const char *code, const char *needle)
{
    json_t *reply = NULL;
    long st = h_deploy(M, path, &reply);
    const char *c = json_string_value(json_object_get(json_object_get(reply, "error"), "code"));
    const char *msg =
        json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
    if (st != status || !c || strcmp(c, code) != 0 || (needle && (!msg || !strstr(msg, needle))))
        fprintf(stderr, "deploy %s: %ld %s %s\n", path, st, c ? c : "", msg ? msg : "");
    assert_int_equal(st, status);
    assert_non_null(c);
    assert_string_equal(c, code);
    if (needle)
        assert_non_null(strstr(msg, needle));
    json_decref(reply);
}

static void
test_msd_refuses_unsafe_executables(void **state)
{
    (void)state;
    char p[400];
    deploy_expect("relative/app", 400, "MS_EBADARGS", "absolute");
    deploy_expect("/nonexistent/app", 400, "MS_EBADARGS", "No such file");
    deploy_expect(tmpdir, 400, "MS_EBADARGS", "not a regular file");
    snprintf(p, sizeof p, "%s/noexec", tmpdir);
    make_file(p, "#!/bin/sh\n", 0600);
    deploy_expect(p, 400, "MS_EBADARGS", "not executable");
    snprintf(p, sizeof p, "%s/groupw", tmpdir);
    make_file(p, "#!/bin/sh\n", 0775);
    deploy_expect(p, 403, "MS_EFORBIDDEN", "writable");
    snprintf(p, sizeof p, "%s/otherw", tmpdir);
    make_file(p, "#!/bin/sh\n", 0757);
    deploy_expect(p, 403, "MS_EFORBIDDEN", "writable");
    /* Executables that do not describe themselves (not ms programs). */
    snprintf(p, sizeof p, "%s/silent", tmpdir);
    make_file(p, "#!/bin/sh\nexit 0\n", 0700);
    deploy_expect(p, 400, "MS_EBADARGS", NULL);
    snprintf(p, sizeof p, "%s/failing", tmpdir);
    make_file(p, "#!/bin/sh\necho broken >&2\nexit 7\n", 0700);
    deploy_expect(p, 400, "MS_EBADARGS", "status 7");
    snprintf(p, sizeof p, "%s/liar", tmpdir);
    make_file(
        p, "#!/bin/sh\necho '{\"ms\":1,\"services\":[{\"name\":\"a b\",\"signature\":\"00\"}]}'\n",
        0700);
    deploy_expect(p, 400, "MS_EBADARGS", NULL);
    snprintf(p, sizeof p, "%s/slowpoke", tmpdir);
    make_file(p, "#!/bin/sh\nexec sleep 30\n", 0700);
    int64_t t0 = h_now_ms();
    deploy_expect(p, 400, "MS_EBADARGS", "within");
    assert_true(h_now_ms() - t0 < 10000);
    /* Nothing was recorded. */
    expect_s("GET", "/v1/services", M->call, NULL, 200, NULL);
    json_t *list = h_services(M);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    assert_healthy();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msd_rejects_bad_bodies),
        cmocka_unit_test(test_msd_rejects_bad_credentials),
        cmocka_unit_test(test_msd_rejects_bad_names_and_values),
        cmocka_unit_test(test_msd_refuses_unsafe_executables),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
