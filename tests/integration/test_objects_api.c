/*
 * test_objects_api.c: the C side of the object store (ms_obj_create/get/put/delete, DESIGN
 * section 6) against a real msd: this process runs ms_init in local mode with
 * MS_ORCHESTRATOR naming the harness's msd. Before ms_init every function answers
 * MS_EUNAVAILABLE; then create, get with ETag, put with and without if_match (MS_ECONFLICT on
 * a stale one), delete, MS_ENOTFOUND afterwards, bad references and values (MS_EBADARGS,
 * nothing sent), and what the REST API sees of objects made through C.
 */
#include "harness.h"

#include <ms/ms.h>

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static h_msd *M;

static void
test_objects_api_needs_ms_init(void **state)
{
    (void)state;
    ms_ref r = {NULL};
    json_t *v = json_pack("{s:i}", "n", 1);
    assert_int_equal(ms_obj_create(&r, "c1", "things", v), MS_EUNAVAILABLE);
    assert_non_null(strstr(ms_last_error(), "ms_obj_create"));
    ms_ref ref = {(char *)"ms://objects/c1/things/x"};
    json_t *got = NULL;
    assert_int_equal(ms_obj_get(&ref, &got, NULL), MS_EUNAVAILABLE);
    assert_int_equal(ms_obj_put(&ref, v, NULL, NULL), MS_EUNAVAILABLE);
    assert_int_equal(ms_obj_delete(&ref, NULL), MS_EUNAVAILABLE);
    json_decref(v);
}

static void
start_client(void)
{
    M = h_msd_start(NULL);
    assert_non_null(M);
    setenv("MS_MODE", "local", 1);
    setenv("MS_ORCHESTRATOR", M->addr, 1);
    setenv("MS_TOKEN", M->call, 1);
    assert_int_equal(ms_init(NULL, NULL), MS_OK);
}

static void
test_objects_api_create_get_put_delete(void **state)
{
    (void)state;
    start_client();
    ms_ref r = {NULL};
    json_t *v = json_pack("{s:s, s:i}", "owner", "ann", "balance", 10);
    assert_int_equal(ms_obj_create(&r, "c1", "accounts", v), MS_OK);
    assert_non_null(r.uri);
    assert_true(strncmp(r.uri, "ms://objects/c1/accounts/", 25) == 0);
    assert_int_equal(strlen(r.uri), 25 + 32);

    json_t *got = NULL;
    char *e1 = NULL;
    assert_int_equal(ms_obj_get(&r, &got, &e1), MS_OK);
    assert_true(json_equal(got, v));
    assert_non_null(e1);
    json_decref(got);
    got = NULL;
    assert_int_equal(ms_obj_get(&r, &got, NULL), MS_OK); /* etag may be NULL */
    json_decref(got);

    /* put with the current ETag, then with the stale one: MS_ECONFLICT, nothing written. */
    json_t *v2 = json_pack("{s:s, s:i}", "owner", "ann", "balance", 20);
    char *e2 = NULL;
    assert_int_equal(ms_obj_put(&r, v2, e1, &e2), MS_OK);
    assert_non_null(e2);
    assert_string_not_equal(e1, e2);
    json_t *v3 = json_pack("{s:i}", "balance", 0);
    char *e3 = NULL;
    assert_int_equal(ms_obj_put(&r, v3, e1, &e3), MS_ECONFLICT);
    assert_null(e3);
    assert_non_null(strstr(ms_last_error(), "ms_obj_put"));
    char *now = NULL;
    assert_int_equal(ms_obj_get(&r, &got, &now), MS_OK);
    assert_true(json_equal(got, v2));
    assert_string_equal(now, e2);
    json_decref(got);
    free(now);

    /* Unconditional put; delete with a stale ETag refused, with the current one done. */
    assert_int_equal(ms_obj_put(&r, v3, NULL, &e3), MS_OK);
    assert_int_equal(ms_obj_delete(&r, e2), MS_ECONFLICT);
    assert_int_equal(ms_obj_delete(&r, e3), MS_OK);
    assert_int_equal(ms_obj_get(&r, &got, NULL), MS_ENOTFOUND);
    assert_int_equal(ms_obj_delete(&r, NULL), MS_ENOTFOUND);
    assert_int_equal(ms_obj_put(&r, v3, e3, NULL), MS_ENOTFOUND);

    /* put without if_match creates under a chosen id; REST sees the same object. */
    ms_ref named = {(char *)"ms://objects/c1/config/main"};
    assert_int_equal(ms_obj_put(&named, v, NULL, NULL), MS_OK);
    h_resp hr;
    assert_int_equal(h_http(M, "GET", "/v1/objects/c1/config/main", M->call, NULL, 0, NULL, &hr),
                     0);
    assert_int_equal(hr.status, 200);
    assert_true(json_equal(hr.json, v));
    h_resp_free(&hr);

    free(e1);
    free(e2);
    free(e3);
    ms_ref_free(&r);
    json_decref(v);
    json_decref(v2);
    json_decref(v3);
}

static void
test_objects_api_bad_arguments(void **state)
{
    (void)state;
    json_t *v = json_pack("{s:i}", "n", 1);
    json_t *arr = json_pack("[i]", 1);
    ms_ref out = {NULL};
    assert_int_equal(ms_obj_create(&out, "c1", "a/b", v), MS_EBADARGS);
    assert_int_equal(ms_obj_create(&out, "..", "c", v), MS_EBADARGS);
    assert_int_equal(ms_obj_create(&out, "", "c", v), MS_EBADARGS);
    assert_int_equal(ms_obj_create(&out, "c1", "c", arr), MS_EBADARGS);
    assert_int_equal(ms_obj_create(&out, "c1", "c", NULL), MS_EBADARGS);
    assert_null(out.uri);
    const char *bad[] = {"ms://objects/c1/c",        "ms://objects/c1/c/x/y", "ms://objects/c1/c/",
                         "http://objects/c1/c/x",    "ms://objects/c1/c/a?b", "ms://objects/c1//x",
                         "ms://objects/c1/c/%2e%2e", "ms://objects/c1/c/.."};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ms_ref r = {(char *)bad[i]};
        json_t *got = NULL;
        if (ms_obj_get(&r, &got, NULL) != MS_EBADARGS)
            fail_msg("ms_obj_get accepted %s", bad[i]);
        assert_int_equal(ms_obj_put(&r, v, NULL, NULL), MS_EBADARGS);
        assert_int_equal(ms_obj_delete(&r, NULL), MS_EBADARGS);
    }
    ms_ref none = {NULL};
    json_t *got = NULL;
    assert_int_equal(ms_obj_get(&none, &got, NULL), MS_EBADARGS);
    assert_int_equal(ms_obj_get(NULL, &got, NULL), MS_EBADARGS);
    ms_ref ok = {(char *)"ms://objects/c1/c/x"};
    assert_int_equal(ms_obj_put(&ok, arr, NULL, NULL), MS_EBADARGS);
    assert_int_equal(ms_obj_put(&ok, v, "\"1\"\r\nX-Evil: 1", NULL), MS_EBADARGS);
    assert_int_equal(ms_obj_delete(&ok, ""), MS_EBADARGS);
    /* A malformed ETag reaches msd, which refuses it. */
    assert_int_equal(ms_obj_put(&ok, v, "not-an-etag", NULL), MS_EBADARGS);
    assert_int_equal(ms_obj_get(&ok, &got, NULL), MS_ENOTFOUND);
    json_decref(v);
    json_decref(arr);
    ms_shutdown();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_objects_api_needs_ms_init),
        cmocka_unit_test(test_objects_api_create_get_put_delete),
        cmocka_unit_test(test_objects_api_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
