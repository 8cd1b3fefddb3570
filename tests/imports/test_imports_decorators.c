/*
 * test_imports_decorators.c: MS_SERVICE among the things C programmers wrap around their
 * functions:
 *   - a timing guard in the body (a cleanup-attribute scope guard, so every return is timed)
 *     and a logging macro that is the whole body;
 *   - user macros that expand to MS_SERVICE: one that adds a call counter and options around
 *     the user's body, one that passes everything through (written `(...)` like MS_SERVICE
 *     itself, so that a service without parameters works), one that puts MS_OPTIONS first;
 *   - GCC attributes where a user would write them: before MS_SERVICE (they apply to the
 *     implementation) and on static helpers;
 *   - a memoising wrapper around a stub, counting real executions;
 *   - a service calling another, a chain a -> b -> c across files, recursion through the stub
 *     (fib), and ms_fail propagating back through a chain.
 * ctest runs it with MS_MODE=zero and with MS_MODE=zero-checked, where every argument and
 * result of every nested call crosses the codec.
 */
#include "decorators.h"

#include "msi.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

static bool checked; /* MS_MODE=zero-checked: values are copies that crossed the codec */

/* ------------------------------------------------------------------------------------------
 * Decorating the body.
 * ---------------------------------------------------------------------------------------- */

/* TIMED(): a scope guard whose cleanup runs on every return path of the body. */
typedef struct timing {
    const char *fn;
    struct timespec t0;
} timing;
static int timed_calls;
static int64_t timed_ns;
static char timed_last[64];
static void
timing_done(timing *t)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    timed_calls++;
    timed_ns += (int64_t)(t1.tv_sec - t->t0.tv_sec) * 1000000000 + (t1.tv_nsec - t->t0.tv_nsec);
    snprintf(timed_last, sizeof timed_last, "%s", t->fn);
}
#define TIMED()                                                                                \
    __attribute__((cleanup(timing_done), unused)) timing timing_guard_ = {__func__, {0, 0}};   \
    clock_gettime(CLOCK_MONOTONIC, &timing_guard_.t0)

MS_SERVICE(int64_t, timed_abs, (int64_t, x))
{
    TIMED();
    if (x < 0)
        return -x;
    return x;
}

/* LOGGED_BODY(R, expr): the whole body, logging entry and exit around one expression. */
static char log_buf[256];
static void
log_line(const char *what, const char *fn)
{
    size_t n = strlen(log_buf);
    snprintf(log_buf + n, sizeof log_buf - n, "%s %s;", what, fn);
}
#define LOGGED_BODY(R, expr)                                                                   \
    {                                                                                          \
        log_line("enter", __func__);                                                           \
        R logged_r_ = (expr);                                                                  \
        log_line("leave", __func__);                                                           \
        return logged_r_;                                                                      \
    }

MS_SERVICE(int64_t, logged_mul, (int64_t, a), (int64_t, b)) LOGGED_BODY(int64_t, a * b)

static void
test_decorators_body_wrappers(void **state)
{
    (void)state;
    timed_calls = 0;
    assert_int_equal(timed_abs(-5), 5);
    assert_int_equal(timed_abs(6), 6);
    assert_int_equal(timed_calls, 2);
    assert_true(timed_ns >= 0);
    /* __func__ in a service body names the implementation; it contains the service name. */
    assert_non_null(strstr(timed_last, "timed_abs"));

    log_buf[0] = '\0';
    assert_int_equal(logged_mul(6, 7), 42);
    assert_non_null(strstr(log_buf, "enter "));
    assert_non_null(strstr(log_buf, "logged_mul;leave "));
}

/* ------------------------------------------------------------------------------------------
 * User macros that expand to MS_SERVICE.
 * ---------------------------------------------------------------------------------------- */

/*
 * COUNTED_SERVICE1(R, name, T, a) { body }: a one-parameter service that counts its calls
 * (name##_calls) and is idempotent. The user's body becomes name##_body; MS_SERVICE's own
 * body wraps it.
 */
#define COUNTED_SERVICE1(R, N, T1, a1)                                                         \
    static int N##_calls;                                                                      \
    static R N##_body(T1 a1);                                                                  \
    MS_SERVICE(R, N, (T1, a1))                                                                 \
    {                                                                                          \
        N##_calls++;                                                                           \
        return N##_body(a1);                                                                   \
    }                                                                                          \
    MS_OPTIONS(N, .idempotent = true, .max_instances = 3)                                      \
    static R N##_body(T1 a1)

COUNTED_SERVICE1(int64_t, counted_neg, int64_t, x) { return -x; }
COUNTED_SERVICE1(char *, counted_dup, const char *, s)
{
    size_t n = strlen(s) + 1;
    char *r = malloc(2 * n - 1);
    if (r) {
        memcpy(r, s, n - 1);
        memcpy(r + n - 1, s, n);
    }
    return r;
}

/*
 * NOINLINE_SERVICE(...): MS_SERVICE with an attribute in front. It is written `(...)` like
 * MS_SERVICE: a macro written `(R, N, ...)` could not take a service without parameters
 * (an empty variadic list, which -Wpedantic rejects in C11, and which would reach
 * MS_SERVICE as an empty parameter).
 */
static int noinline_calls;
#define NOINLINE_SERVICE(...) __attribute__((noinline)) MS_SERVICE(__VA_ARGS__)
NOINLINE_SERVICE(int32_t, noinline_zero)
{
    noinline_calls++;
    return 7;
}
NOINLINE_SERVICE(void, noinline_void, (int32_t, by)) { noinline_calls += by; }

/* IDEMPOTENT_SERVICE(R, name, params...): MS_OPTIONS first, then the service. */
#define IDEMPOTENT_SERVICE(R, N, ...)                                                          \
    MS_OPTIONS(N, .idempotent = true, .timeout_ms = 1234)                                      \
    MS_SERVICE(R, N, __VA_ARGS__)
IDEMPOTENT_SERVICE(double, idem_half, (double, x)) { return x / 2; }

static const ms_options *
options_of(const char *name)
{
    ms__service *svc = msi_registry_find(name, NULL);
    assert_non_null(svc);
    msi_svc *rt = msi_svc_of(svc);
    assert_non_null(rt);
    return &rt->opts;
}

static void
test_decorators_user_service_macros(void **state)
{
    (void)state;
    assert_int_equal(counted_neg(5), -5);
    assert_int_equal(counted_neg(-8), 8);
    assert_int_equal(counted_neg_calls, 2);
    char *d = counted_dup("ab");
    assert_string_equal(d, "abab");
    free(d);
    assert_int_equal(counted_dup_calls, 1);
    assert_true(options_of("counted_neg")->idempotent);
    assert_int_equal(options_of("counted_neg")->max_instances, 3);
    assert_int_equal(options_of("counted_neg")->concurrency, 1); /* default kept */

    noinline_calls = 0;
    assert_int_equal(noinline_zero(), 7);
    noinline_void(5);
    assert_int_equal(noinline_void_try(10), MS_OK);
    assert_int_equal(noinline_calls, 16);

    assert_true(idem_half(3) == 1.5);
    assert_true(options_of("idem_half")->idempotent);
    assert_int_equal(options_of("idem_half")->timeout_ms, 1234);
}

/* ------------------------------------------------------------------------------------------
 * GCC attributes.
 * ---------------------------------------------------------------------------------------- */

/* On helpers, as usual. */
static __attribute__((noinline, hot)) int64_t
cube_helper(int64_t x)
{
    return x * x * x;
}

static __attribute__((nonnull, pure)) size_t
count_vowels(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += strchr("aeiouAEIOU", *s) != NULL;
    return n;
}

/* Before MS_SERVICE: the attribute applies to the implementation (the first declaration
 * MS_SERVICE emits). After the parentheses, before the body, GCC would reject it. */
__attribute__((noinline)) MS_SERVICE(int64_t, attr_cube, (int64_t, x)) { return cube_helper(x); }

__attribute__((hot)) MS_SERVICE(int64_t, attr_hot_sum, (int64_t, a), (int64_t, b), (int64_t, c))
{
    return a + b + c;
}

__attribute__((nonnull)) MS_SERVICE(uint64_t, attr_vowels, (const char *, s))
{
    return count_vowels(s);
}

__attribute__((noinline, cold)) MS_SERVICE(void, attr_cold_noop) {}

static void
test_decorators_attributes(void **state)
{
    (void)state;
    assert_int_equal(attr_cube(-3), -27);
    assert_int_equal(attr_hot_sum(1, 2, 3), 6);
    assert_int_equal(attr_vowels("decorators"), 4);
    uint64_t n = 0;
    assert_int_equal(attr_vowels_try(&n, "xyz"), MS_OK);
    assert_int_equal(n, 0);
    attr_cold_noop();
    assert_int_equal(attr_cold_noop_try(), MS_OK);
}

/* ------------------------------------------------------------------------------------------
 * A memoising wrapper around a stub.
 * ---------------------------------------------------------------------------------------- */

/* MEMOISE_I64(fn): defines fn##_memo(x), which calls the stub fn once per x in [0, 64). */
#define MEMOISE_I64(fn)                                                                        \
    static int64_t fn##_memo(int64_t x)                                                        \
    {                                                                                          \
        static struct {                                                                        \
            bool have;                                                                         \
            int64_t v;                                                                         \
        } cache[64];                                                                           \
        if (x < 0 || x >= 64)                                                                  \
            return fn(x);                                                                      \
        if (!cache[x].have) {                                                                  \
            cache[x].v = fn(x);                                                                \
            cache[x].have = true;                                                              \
        }                                                                                      \
        return cache[x].v;                                                                     \
    }

static int slow_square_runs;
MS_SERVICE(int64_t, slow_square, (int64_t, x))
{
    slow_square_runs++;
    return x * x;
}
MEMOISE_I64(slow_square)

static void
test_decorators_memoised_stub(void **state)
{
    (void)state;
    slow_square_runs = 0;
    for (int i = 0; i < 5; i++)
        assert_int_equal(slow_square_memo(9), 81);
    assert_int_equal(slow_square_runs, 1);
    assert_int_equal(slow_square_memo(10), 100);
    assert_int_equal(slow_square_memo(100), 10000); /* outside the cache: runs every time */
    assert_int_equal(slow_square_memo(100), 10000);
    assert_int_equal(slow_square_runs, 4);
    assert_int_equal(slow_square(9), 81); /* the stub itself is not memoised */
    assert_int_equal(slow_square_runs, 5);
}

/* ------------------------------------------------------------------------------------------
 * Services calling services.
 * ---------------------------------------------------------------------------------------- */

MS_SERVICE(int64_t, hypot2, (int64_t, a), (int64_t, b)) { return slow_square(a) + slow_square(b); }

MS_DECLARE(char *, chain_b, (const char *, s))
MS_SERVICE(char *, chain_a, (const char *, s))
{
    char *inner = chain_b(s);
    if (!inner) {
        ms_fail(1, "chain_b gave nothing");
        return NULL;
    }
    size_t n = strlen(inner) + sizeof "a()";
    char *r = malloc(n);
    if (r)
        snprintf(r, n, "a(%s)", inner);
    free(inner);
    return r;
}

MS_SERVICE(char *, chain_b, (const char *, s))
{
    char *inner = chain_c(s); /* decorators_chain.c */
    if (!inner) {
        ms_fail(1, "chain_c gave nothing");
        return NULL;
    }
    size_t n = strlen(inner) + sizeof "b()";
    char *r = malloc(n);
    if (r)
        snprintf(r, n, "b(%s)", inner);
    free(inner);
    return r;
}

static int fib_runs;
MS_SERVICE(int64_t, fib, (int32_t, n))
{
    fib_runs++;
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

/* With the caller's string: a copy in zero-checked mode, the same pointer in zero mode. */
static const char *seen_arg;
MS_SERVICE(bool, same_pointer, (const char *, s)) { return s == seen_arg; }

static void
test_decorators_nested_calls(void **state)
{
    (void)state;
    slow_square_runs = 0;
    assert_int_equal(hypot2(3, 4), 25);
    assert_int_equal(slow_square_runs, 2);

    char *s = chain_a("x");
    assert_string_equal(s, "a(b(c(x)))");
    free(s);

    fib_runs = 0;
    assert_int_equal(fib(15), 610);
    assert_int_equal(fib_runs, 1973); /* 2 * fib(16) - 1: every node of the call tree ran */

    seen_arg = "pointer";
    assert_int_equal(same_pointer(seen_arg), !checked);
}

/* ------------------------------------------------------------------------------------------
 * ms_fail through a chain: fail_a -> fail_b -> fail_c; each level passes the code on and
 * prefixes the message.
 * ---------------------------------------------------------------------------------------- */

MS_SERVICE(int32_t, fail_b, (int32_t, x))
{
    int32_t r;
    ms_status st = fail_c_try(&r, x);
    if (st != MS_OK) {
        ms_fail(ms_last_app_code(), "b <- %s", ms_last_error());
        return -1;
    }
    return r + 1;
}

MS_SERVICE(int32_t, fail_a, (int32_t, x))
{
    int32_t r;
    ms_status st = fail_b_try(&r, x);
    if (st != MS_OK) {
        ms_fail(ms_last_app_code(), "a <- %s", ms_last_error());
        return -1;
    }
    return r + 1;
}

/* Ignores a failing nested call: a nested failure does not fail the caller by itself. */
MS_SERVICE(int32_t, fail_ignored, (int32_t, x))
{
    int32_t r;
    (void)fail_c_try(&r, x);
    return r + 100; /* r is 0: a failed _try zeroes its result */
}

/* Calls the transparent form: a failure goes to the thread's failure handler. */
MS_SERVICE(int32_t, fail_transparent, (int32_t, x)) { return fail_c(x) + 1000; }

static int handler_calls;
static char handler_service[64];
static void
record_failure(ms_status st, const char *service, const char *detail, void *arg)
{
    (void)detail;
    (void)arg;
    assert_int_equal(st, MS_EAPP);
    handler_calls++;
    snprintf(handler_service, sizeof handler_service, "%s", service);
}

static void
test_decorators_fail_through_chain(void **state)
{
    (void)state;
    int32_t r = 99;
    assert_int_equal(fail_a_try(&r, 5), MS_OK);
    assert_int_equal(r, 7);

    assert_int_equal(fail_a_try(&r, -2), MS_EAPP);
    assert_int_equal(r, 0);
    assert_int_equal(ms_last_app_code(), 42);
    assert_string_equal(ms_last_error(),
                        "fail_a: a <- fail_b: b <- fail_c: c: negative input -2");

    assert_int_equal(fail_ignored_try(&r, -1), MS_OK);
    assert_int_equal(r, 100);

    ms_set_failure_handler(record_failure, NULL);
    handler_calls = 0;
    assert_int_equal(fail_transparent(-3), 1000); /* the handler returned: fail_c gave 0 */
    assert_int_equal(handler_calls, 1);
    assert_string_equal(handler_service, "fail_c");
    assert_int_equal(fail_a(-4), 0); /* the outermost transparent call fails too */
    assert_int_equal(handler_calls, 2);
    assert_string_equal(handler_service, "fail_a");
    ms_set_failure_handler(NULL, NULL);
}

int
main(int argc, char **argv)
{
    if (ms_init(&argc, &argv) != MS_OK)
        return 1;
    const char *mode = getenv("MS_MODE");
    if (mode && strcmp(mode, ms_mode_name(ms_current_mode())) != 0) {
        fprintf(stderr, "MS_MODE=%s but ms runs in mode %s\n", mode,
                ms_mode_name(ms_current_mode()));
        return 1;
    }
    checked = ms_current_mode() == MS_MODE_ZERO_CHECKED;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decorators_body_wrappers),
        cmocka_unit_test(test_decorators_user_service_macros),
        cmocka_unit_test(test_decorators_attributes),
        cmocka_unit_test(test_decorators_memoised_stub),
        cmocka_unit_test(test_decorators_nested_calls),
        cmocka_unit_test(test_decorators_fail_through_chain),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ms_shutdown();
    return rc;
}
