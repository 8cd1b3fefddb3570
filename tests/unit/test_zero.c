/* test_zero.c: declarations and zero mode: direct calls, _try, void, no parameters,
 * ms_fail, the failure handler, MS_CLIENT resolving to an in-process provider. */
#include <jansson.h>
#include <ms/ms.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

MS_STRUCT(vec2, (double, x), (double, y))

MS_DECLARE(int64_t, add, (int64_t, a), (int64_t, b))
MS_SERVICE(int64_t, add, (int64_t, a), (int64_t, b))
{
    return a + b;
}
MS_OPTIONS(add, .idempotent = true, .max_instances = 4)

static int64_t ticks;
MS_SERVICE(int64_t, now_tick)
{
    return ++ticks;
}

static int bumps;
MS_SERVICE(void, bump, (int, by))
{
    bumps += by;
}
MS_SERVICE(void, nothing) {}

MS_SERVICE(char *, greet, (const char *, name))
{
    size_t n = strlen(name) + 8;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "hello, %s", name);
    return s;
}

MS_SERVICE(struct vec2, scale, (struct vec2, v), (double, k))
{
    struct vec2 r = {v.x * k, v.y * k};
    return r;
}

MS_SERVICE(int, checked_div, (int, a), (int, b))
{
    if (b == 0) {
        ms_fail(42, "division of %d by zero", a);
        return -1;
    }
    return a / b;
}

MS_SERVICE(int, eight, (int, a), (int, b), (int, c), (int, d), (int, e), (int, f), (int, g),
           (int, h))
{
    return a + b + c + d + e + f + g + h;
}

MS_SERVICE(int64_t, nested_deadline)
{
    return ms_deadline_left_ms() == INT64_MAX ? 1 : 0;
}

static void
test_zero_direct_calls(void **state)
{
    (void)state;
    assert_int_equal(add(2, 3), 5);
    assert_int_equal(add(INT64_MAX - 1, 1), INT64_MAX);
    int64_t r = 0;
    assert_int_equal(add_try(&r, 40, 2), MS_OK);
    assert_int_equal(r, 42);
    assert_int_equal(now_tick(), 1);
    assert_int_equal(now_tick(), 2);
    bump(3);
    assert_int_equal(bump_try(4), MS_OK);
    assert_int_equal(bumps, 7);
    nothing();
    assert_int_equal(eight(1, 2, 3, 4, 5, 6, 7, 8), 36);
    assert_int_equal(nested_deadline(), 1);
}

static void
test_zero_results_owned_by_caller(void **state)
{
    (void)state;
    char *s = greet("ada");
    assert_string_equal(s, "hello, ada");
    free(s);
    struct vec2 v = {1.5, -2};
    struct vec2 w = scale(v, 2);
    assert_true(w.x == 3.0 && w.y == -4.0);
    /* A NULL result pointer discards (and frees) the result. */
    assert_int_equal(greet_try(NULL, "bob"), MS_OK);
}

static void
test_zero_app_error(void **state)
{
    (void)state;
    int r = 7;
    assert_int_equal(checked_div_try(&r, 1, 0), MS_EAPP);
    assert_int_equal(r, 0);
    assert_int_equal(ms_last_app_code(), 42);
    assert_non_null(strstr(ms_last_error(), "division of 1 by zero"));
    assert_non_null(strstr(ms_last_error(), "checked_div"));
    assert_int_equal(checked_div_try(&r, 9, 3), MS_OK);
    assert_int_equal(r, 3);
}

static int handled;
static ms_status handled_st;
static char handled_svc[64];

static void
record_failure(ms_status st, const char *service, const char *detail, void *arg)
{
    (void)detail;
    handled++;
    handled_st = st;
    snprintf(handled_svc, sizeof handled_svc, "%s", service);
    assert_ptr_equal(arg, &handled);
}

static void
test_zero_failure_handler(void **state)
{
    (void)state;
    ms_set_failure_handler(record_failure, &handled);
    assert_int_equal(checked_div(5, 0), 0); /* the handler returned: a zero value */
    assert_int_equal(handled, 1);
    assert_int_equal(handled_st, MS_EAPP);
    assert_string_equal(handled_svc, "checked_div");
    assert_int_equal(checked_div(6, 2), 3);
    assert_int_equal(handled, 1);
    ms_set_failure_handler(NULL, NULL);
}

static void
test_zero_status_strings(void **state)
{
    (void)state;
    assert_string_equal(ms_status_name(MS_OK), "MS_OK");
    assert_string_equal(ms_status_name(MS_EINDOUBT), "MS_EINDOUBT");
    assert_string_equal(ms_strerror(MS_EBADARGS), "bad arguments");
    assert_string_equal(ms_strerror((ms_status)9999), "unknown status");
    assert_int_equal(MS_OK, 0);
}

static void
test_zero_mode_default(void **state)
{
    (void)state;
    assert_int_equal(ms_current_mode(), MS_MODE_ZERO);
    assert_string_equal(ms_mode_name(MS_MODE_ZERO_CHECKED), "zero-checked");
}

int
main(int argc, char **argv)
{
    unsetenv("MS_ORCHESTRATOR");
    unsetenv("MS_MODE");
    if (ms_init(&argc, &argv) != MS_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_direct_calls),
        cmocka_unit_test(test_zero_results_owned_by_caller),
        cmocka_unit_test(test_zero_app_error),
        cmocka_unit_test(test_zero_failure_handler),
        cmocka_unit_test(test_zero_status_strings),
        cmocka_unit_test(test_zero_mode_default),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ms_shutdown();
    return rc;
}
