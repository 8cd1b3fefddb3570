/*
 * bench_zero.c: what ms costs in zero mode (MS_MODE=zero, the default without an
 * orchestrator), against a direct call of the same function.
 *
 * The echo body is the same on both sides (copy the int64, strdup the string; the caller
 * frees the copy), so the difference is the stub: the argument struct, the registry
 * indirection and the per-thread context that ms_fail() and ms_deadline_left_ms() read.
 * The direct function is noinline (and noclone on GCC) with an empty asm barrier in its
 * body and around every call, so the compiler can neither inline it nor drop the calls.
 *
 * Calls are timed in rounds (`--rounds R` of `--calls N`, direct and ms interleaved); the
 * figure is the fastest round of each, the usual defence against a machine that is busy
 * for a moment (the median round is reported too).
 *
 * Run with MS_MODE=zero-checked instead, it times the ms call alone (every value through
 * the full encode -> JSON text -> decode path, both ways), to show what the codec costs.
 *
 *   [MS_MODE=zero|zero-checked] bench_zero [--calls N] [--rounds R] [--max-seconds S]
 * Prints one JSON line. main is bench_main's (bench.h), with one command without a name.
 */
#include "bench.h"

#include <ms/ms.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

MS_STRUCT(echo_msg, (int64_t, n), (char *, s))

MS_SERVICE(struct echo_msg, echo, (int64_t, n), (const char *, s))
{
    struct echo_msg r = {n, strdup(s)};
    return r;
}
MS_OPTIONS(echo, .idempotent = true)

#if defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE __attribute__((noinline, noclone))
#endif
#define BARRIER(p) __asm__ volatile("" : : "g"(p) : "memory")

NOINLINE static struct echo_msg
direct_echo(int64_t n, const char *s)
{
    BARRIER(s);
    struct echo_msg r = {n, strdup(s)};
    return r;
}

typedef int (*one_call)(int64_t n, const char *s);

static int
call_direct(int64_t n, const char *s)
{
    struct echo_msg r = direct_echo(n, s);
    BARRIER(&r);
    int ok = r.n == n && r.s;
    free(r.s);
    return ok ? 0 : -1;
}

static int
call_ms(int64_t n, const char *s)
{
    struct echo_msg r;
    ms_status st = echo_try(&r, n, s);
    BARRIER(&r);
    int ok = st == MS_OK && r.n == n && r.s;
    echo_msg_free_fields(&r);
    return ok ? 0 : -1;
}

/* Nanoseconds per call over `calls` calls; -1 on a failed call. */
static double
time_calls(one_call fn, long calls, const char *s)
{
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < calls; i++) {
        if (fn(i, s) != 0)
            return -1;
    }
    return (double)(bench_now_ns() - t0) / (double)calls;
}

static int
cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static long rounds = 5;

/* --rounds R, this program's own option (bench_main's `extra`). */
static int
take_rounds(const char *opt, const char *val, void *arg)
{
    (void)arg;
    if (strcmp(opt, "--rounds") != 0 || !val)
        return 0;
    char *end;
    long r = strtol(val, &end, 10);
    if (*end || end == val || r < 1 || r > 100)
        return 0;
    rounds = r;
    return 2;
}

/* --calls: 2,000,000 by default, up to 10^9 (no sample is kept per call here). */
static void
zero_defaults(bench_opts *o)
{
    o->calls = 2000000;
    o->calls_max = 1000000000;
}

static int
run_zero(bench_opts *o)
{
    long calls = o->calls;
    double max_s = o->max_s;
    const char *mode = getenv("MS_MODE");
    if (!mode || !*mode)
        setenv("MS_MODE", "zero", 1);
    unsetenv("MS_ORCHESTRATOR");
    if (ms_init(NULL, NULL) != MS_OK) /* the environment only: bench_main took the options */
        return bench_print_error("zero", "ms_init: %s", ms_last_error());
    char s[BENCH_STR_LEN + 1];
    bench_payload(42, s);
    int64_t limit = bench_now_ns() + (int64_t)(max_s * 1e9);

    if (ms_current_mode() == MS_MODE_ZERO_CHECKED) {
        double best = -1;
        if (time_calls(call_ms, calls / 10 + 1, s) < 0)
            return bench_print_error("zero_checked", "call failed: %s", ms_last_error());
        for (long r = 0; r < rounds && bench_now_ns() < limit; r++) {
            double t = time_calls(call_ms, calls, s);
            if (t < 0)
                return bench_print_error("zero_checked", "call failed: %s", ms_last_error());
            best = best < 0 || t < best ? t : best;
        }
        ms_shutdown();
        printf("{\"kind\":\"zero_checked\",\"label\":\"zero_checked\",\"calls_per_round\":%ld,"
               "\"rounds\":%ld,\"checked_ns\":%.1f}\n",
               calls, rounds, best);
        return 0;
    }
    if (ms_current_mode() != MS_MODE_ZERO)
        return bench_print_error("zero", "MS_MODE must be zero or zero-checked, not %s",
                                 ms_mode_name(ms_current_mode()));

    /* Warm-up: caches, branch predictors, the allocator's free lists. */
    if (time_calls(call_direct, calls / 10 + 1, s) < 0 ||
        time_calls(call_ms, calls / 10 + 1, s) < 0)
        return bench_print_error("zero", "warm-up call failed: %s", ms_last_error());

    double *d = calloc((size_t)rounds, sizeof *d), *m = calloc((size_t)rounds, sizeof *m);
    if (!d || !m)
        return bench_print_error("zero", "out of memory");
    long done = 0;
    for (; done < rounds && bench_now_ns() < limit; done++) {
        d[done] = time_calls(call_direct, calls, s);
        m[done] = time_calls(call_ms, calls, s);
        if (d[done] < 0 || m[done] < 0)
            return bench_print_error("zero", "call failed: %s", ms_last_error());
    }
    double best_d = d[0], best_m = m[0];
    for (long i = 1; i < done; i++) {
        best_d = d[i] < best_d ? d[i] : best_d;
        best_m = m[i] < best_m ? m[i] : best_m;
    }
    qsort(d, (size_t)done, sizeof *d, cmp_d);
    qsort(m, (size_t)done, sizeof *m, cmp_d);
    double med_d = d[done / 2], med_m = m[done / 2];
    ms_shutdown();

    printf("{\"kind\":\"zero\",\"label\":\"zero\",\"calls_per_round\":%ld,\"rounds\":%ld,"
           "\"direct_ns\":%.2f,\"ms_ns\":%.2f,\"overhead_ns\":%.2f,"
           "\"direct_median_ns\":%.2f,\"ms_median_ns\":%.2f,\"overhead_median_ns\":%.2f}\n",
           calls, done, best_d, best_m, best_m - best_d, med_d, med_m, med_m - med_d);
    free(d);
    free(m);
    return 0;
}

int
main(int argc, char **argv)
{
    static const bench_command commands[] = {{NULL, run_zero}};
    static const bench_program prog = {.name = "bench_zero",
                                       .label = "zero",
                                       .commands = commands,
                                       .ncommands = 1,
                                       .usage = "[--calls N] [--rounds R] [--max-seconds S]",
                                       .defaults = zero_defaults,
                                       .extra = take_rounds};
    return bench_main(argc, argv, &prog);
}
