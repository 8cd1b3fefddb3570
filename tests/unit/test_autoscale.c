/*
 * test_autoscale.c: msd's autoscaling policy (src/msd/autoscale.c, DESIGN section 5) as
 * the pure function it is: thresholds, several instances at once when far above, the cap,
 * the 2 s and 10 s windows, stabilisation, the flap guard, not-ready instances (0 for
 * scale-up, fully busy for scale-down), min_instances, and a closed-loop simulation.
 */
#include "autoscale.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define NOW 1000000 /* ms; any origin */
#define LONG_AGO (NOW - 3600 * 1000)

static msd_as_options
opts(void)
{
    return (msd_as_options){
        .min_instances = 1,
        .max_instances = 8,
        .scale_up_at = 0.5,
        .scale_down_at = 0.3,
        .up_window_ms = 2000,
        .down_window_ms = 10000,
        .stabilise_ms = 30000,
        .sample_ms = 1000,
    };
}

/* count samples, one a second, the newest at `now`, all alike. Returns count. */
static int
fill(msd_as_sample *s, int count, int64_t now, double busy_sum, int ready, int not_ready)
{
    for (int i = 0; i < count; i++)
        s[i] = (msd_as_sample){now - (int64_t)(count - 1 - i) * 1000, busy_sum, ready, not_ready};
    return count;
}

static msd_as_decision
decide(const msd_as_sample *s, int ns, int n, const msd_as_options *o, int64_t last_change)
{
    msd_as_decision d;
    msd_autoscale_decide(s, ns, n, o, NOW, last_change, &d);
    return d;
}

static void
test_autoscale_holds_between_thresholds(void **state)
{
    (void)state;
    msd_as_options o = opts();
    msd_as_sample s[60];
    int ns = fill(s, 60, NOW, 0.8, 2, 0); /* 0.4 per instance: neither up nor down */
    msd_as_decision d = decide(s, ns, 2, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_HOLD);
    assert_int_equal(d.hold, MSD_AS_H_STEADY);
    assert_int_equal(d.desired, 2);
    /* Exactly at scale_up_at is not above it. */
    ns = fill(s, 60, NOW, 1.0, 2, 0);
    d = decide(s, ns, 2, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_HOLD);
    /* Exactly at scale_down_at is not below it (values exact in binary). */
    o.scale_down_at = 0.25;
    ns = fill(s, 60, NOW, 0.5, 2, 0);
    d = decide(s, ns, 2, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_HOLD);
    assert_int_equal(d.hold, MSD_AS_H_STEADY);
}

static void
test_autoscale_up_by_one_just_above(void **state)
{
    (void)state;
    msd_as_options o = opts();
    msd_as_sample s[4];
    int ns = fill(s, 4, NOW, 1.1, 2, 0);           /* 0.55 per instance: ceil(2 * 0.55 / 0.5) = 3 */
    msd_as_decision d = decide(s, ns, 2, &o, NOW); /* no stabilisation for scale-up */
    assert_int_equal(d.action, MSD_AS_UP);
    assert_int_equal(d.desired, 3);
    assert_int_equal(d.wanted, 3);
    assert_false(d.capped);
    assert_true(d.demand > 0.549 && d.demand < 0.551);
    assert_true(d.threshold == 0.5);
    /* Barely above: the n + 1 floor. */
    ns = fill(s, 4, NOW, 2.04, 4, 0);
    d = decide(s, ns, 4, &o, NOW);
    assert_int_equal(d.action, MSD_AS_UP);
    assert_int_equal(d.desired, 5);
}

static void
test_autoscale_up_many_at_once(void **state)
{
    (void)state;
    msd_as_options o = opts();
    msd_as_sample s[4];
    /* One instance with 3 calls queued behind the running one: demand 4. */
    int ns = fill(s, 4, NOW, 4.0, 1, 0);
    msd_as_decision d = decide(s, ns, 1, &o, NOW);
    assert_int_equal(d.action, MSD_AS_UP);
    assert_int_equal(d.desired, 8); /* ceil(1 * 4 / 0.5) */
    assert_false(d.capped);
    /* Two instances at 1.5: ceil(2 * 1.5 / 0.5) = 6. */
    ns = fill(s, 4, NOW, 3.0, 2, 0);
    d = decide(s, ns, 2, &o, NOW);
    assert_int_equal(d.action, MSD_AS_UP);
    assert_int_equal(d.desired, 6);
    /* Floating point: 3 * 0.3 / 0.3 is not 4. */
    o.scale_up_at = 0.3;
    o.scale_down_at = 0.1;
    ns = fill(s, 4, NOW, 0.9 + 0.01, 1, 0);
    d = decide(s, ns, 1, &o, NOW);
    assert_int_equal(d.desired, 4);
    ns = fill(s, 4, NOW, 0.9, 1, 0);
    d = decide(s, ns, 1, &o, NOW);
    assert_int_equal(d.desired, 3);
}

static void
test_autoscale_up_capped_at_max(void **state)
{
    (void)state;
    msd_as_options o = opts();
    o.max_instances = 4;
    msd_as_sample s[4];
    int ns = fill(s, 4, NOW, 10.0, 1, 0);
    msd_as_decision d = decide(s, ns, 1, &o, NOW);
    assert_int_equal(d.action, MSD_AS_UP);
    assert_int_equal(d.desired, 4);
    assert_int_equal(d.wanted, 20);
    assert_true(d.capped);
    assert_non_null(strstr(d.reason, "capped at max_instances"));
    /* At max already: a hold that says so. */
    ns = fill(s, 4, NOW, 8.0, 4, 0);
    d = decide(s, ns, 4, &o, NOW);
    assert_int_equal(d.action, MSD_AS_HOLD);
    assert_int_equal(d.hold, MSD_AS_H_AT_MAX);
    assert_int_equal(d.desired, 4);
    assert_non_null(strstr(d.reason, "max_instances 4"));
}

static void
test_autoscale_up_window_is_two_seconds(void **state)
{
    (void)state;
    msd_as_options o = opts();
    msd_as_sample s[10];
    /* A burst 5 s ago is forgotten: the last 2 s are quiet. */
    int ns = fill(s, 10, NOW, 0.4, 1, 0);
    s[4].busy_sum = 9;
    msd_as_decision d = decide(s, ns, 1, &o, NOW);
    assert_int_equal(d.action, MSD_AS_HOLD);
    /* The last 2 s average: one second at 0 and one at 1.2 is 0.6 > 0.5. */
    s[8].busy_sum = 0;
    s[9].busy_sum = 1.2;
    d = decide(s, ns, 1, &o, NOW);
    assert_int_equal(d.action, MSD_AS_UP);
    assert_int_equal(d.samples, 2);
    assert_true(d.demand > 0.59 && d.demand < 0.61);
    assert_int_equal(d.desired, 2);
    /* One second at 0 and one at 0.9: 0.45, hold. */
    s[9].busy_sum = 0.9;
    d = decide(s, ns, 1, &o, NOW);
    assert_int_equal(d.action, MSD_AS_HOLD);
}

static void
test_autoscale_not_ready_count_zero_for_up(void **state)
{
    (void)state;
    msd_as_options o = opts();
    msd_as_sample s[4];
    /* Just scaled 1 -> 4: the ready one is still loaded (1.6), three are starting. Per
     * instance 1.6 / 4 = 0.4: no further scale-up while they start. */
    int ns = fill(s, 4, NOW, 1.6, 1, 3);
    msd_as_decision d = decide(s, ns, 4, &o, NOW);
    assert_int_equal(d.action, MSD_AS_HOLD);
    assert_true(d.demand < 0.5);
    /* The total stays the measure: 4.0 of load over 4 (3 starting) still wants 8, not 32. */
    ns = fill(s, 4, NOW, 4.0, 1, 3);
    d = decide(s, ns, 4, &o, NOW);
    assert_int_equal(d.action, MSD_AS_UP);
    assert_int_equal(d.desired, 8);
}

static void
test_autoscale_not_ready_count_busy_for_down(void **state)
{
    (void)state;
    msd_as_options o = opts();
    msd_as_sample s[12];
    /* Four wanted, one ready and idle, three still starting (or restarting): for scale-down
     * they are fully busy, 3 / 4 = 0.75: no scale-down. */
    int ns = fill(s, 12, NOW, 0.0, 1, 3);
    msd_as_decision d = decide(s, ns, 4, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_HOLD);
    assert_int_equal(d.hold, MSD_AS_H_STEADY);
    assert_true(d.demand > 0.74 && d.demand < 0.76);
    /* All ready and idle: one goes. */
    ns = fill(s, 12, NOW, 0.0, 4, 0);
    d = decide(s, ns, 4, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_DOWN);
}

static void
test_autoscale_down_one_at_a_time(void **state)
{
    (void)state;
    msd_as_options o = opts();
    msd_as_sample s[12];
    int ns = fill(s, 12, NOW, 0.0, 8, 0); /* idle, far below */
    msd_as_decision d = decide(s, ns, 8, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_DOWN);
    assert_int_equal(d.desired, 7);
    assert_non_null(strstr(d.reason, "desired 8 -> 7"));
    assert_non_null(strstr(d.reason, "scale_down_at 0.30"));
}

static void
test_autoscale_down_window_is_ten_seconds(void **state)
{
    (void)state;
    msd_as_options o = opts();
    msd_as_sample s[30];
    /* 0.1 per instance, but a busy second 8 s ago (inside the 10 s) keeps the mean at
     * (9 * 0.2 + 6.0) / 10 / 2 = 0.39: not below 0.3. */
    int ns = fill(s, 30, NOW, 0.2, 2, 0);
    s[21].busy_sum = 6.0; /* 8 s ago */
    msd_as_decision d = decide(s, ns, 2, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_HOLD);
    assert_int_equal(d.hold, MSD_AS_H_STEADY);
    /* The same second 12 s ago is outside the window. */
    s[21].busy_sum = 0.2;
    s[17].busy_sum = 6.0;
    d = decide(s, ns, 2, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_DOWN);
    assert_int_equal(d.samples, 10);
}

static void
test_autoscale_down_needs_a_covered_window(void **state)
{
    (void)state;
    msd_as_options o = opts();
    msd_as_sample s[12];
    /* msd has just started: 5 s of samples only. */
    int ns = fill(s, 5, NOW, 0.0, 3, 0);
    msd_as_decision d = decide(s, ns, 3, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_HOLD);
    assert_int_equal(d.hold, MSD_AS_H_WINDOW);
    /* Samples a little late (the loop's jitter) still cover it. */
    ns = fill(s, 10, NOW, 0.0, 3, 0);
    for (int i = 0; i < ns; i++)
        s[i].t_ms = NOW - (int64_t)(ns - 1 - i) * 1010;
    d = decide(s, ns, 3, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_DOWN);
    /* But not scale-up: it acts on what it has. */
    ns = fill(s, 1, NOW, 3.0, 3, 0);
    d = decide(s, ns, 3, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_UP);
}

static void
test_autoscale_stabilisation(void **state)
{
    (void)state;
    msd_as_options o = opts();
    msd_as_sample s[40];
    int ns = fill(s, 40, NOW, 0.0, 3, 0);
    /* Any change 29.9 s ago holds scale-down back... */
    msd_as_decision d = decide(s, ns, 3, &o, NOW - 29900);
    assert_int_equal(d.action, MSD_AS_HOLD);
    assert_int_equal(d.hold, MSD_AS_H_STABILISING);
    /* ...30 s ago does not. */
    d = decide(s, ns, 3, &o, NOW - 30000);
    assert_int_equal(d.action, MSD_AS_DOWN);
    assert_int_equal(d.desired, 2);
    /* Scale-up is never held back by stabilisation. */
    ns = fill(s, 40, NOW, 3.0, 3, 0);
    d = decide(s, ns, 3, &o, NOW - 100);
    assert_int_equal(d.action, MSD_AS_UP);
    /* A shorter stabilisation (msd --scale-stabilise-ms). */
    o.stabilise_ms = 3000;
    ns = fill(s, 40, NOW, 0.0, 3, 0);
    d = decide(s, ns, 3, &o, NOW - 3000);
    assert_int_equal(d.action, MSD_AS_DOWN);
}

static void
test_autoscale_flap_guard(void **state)
{
    (void)state;
    msd_as_options o = opts();
    msd_as_sample s[12];
    /* Two at 0.25 each (< 0.3): one alone would be at 0.5, not below 0.9 * 0.5 = 0.45. */
    int ns = fill(s, 12, NOW, 0.5, 2, 0);
    msd_as_decision d = decide(s, ns, 2, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_HOLD);
    assert_int_equal(d.hold, MSD_AS_H_FLAP_GUARD);
    assert_true(d.survivors > 0.49 && d.survivors < 0.51);
    /* At 0.2 each, one alone is at 0.4 < 0.45: down. */
    ns = fill(s, 12, NOW, 0.4, 2, 0);
    d = decide(s, ns, 2, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_DOWN);
    assert_int_equal(d.desired, 1);
    /* With thresholds close together (0.45 / 0.5: a misconfiguration), the guard is what
     * prevents flapping: 4 at 0.44 would leave 3 at 0.587. */
    o.scale_down_at = 0.45;
    ns = fill(s, 12, NOW, 4 * 0.44, 4, 0);
    d = decide(s, ns, 4, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_HOLD);
    assert_int_equal(d.hold, MSD_AS_H_FLAP_GUARD);
}

static void
test_autoscale_min_instances(void **state)
{
    (void)state;
    msd_as_options o = opts();
    o.min_instances = 2;
    msd_as_sample s[12];
    int ns = fill(s, 12, NOW, 0.0, 2, 0);
    msd_as_decision d = decide(s, ns, 2, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_HOLD);
    assert_int_equal(d.hold, MSD_AS_H_AT_MIN);
    assert_int_equal(d.desired, 2);
    /* min_instances 1 (the default): never below one. */
    o.min_instances = 1;
    ns = fill(s, 12, NOW, 0.0, 1, 0);
    d = decide(s, ns, 1, &o, LONG_AGO);
    assert_int_equal(d.hold, MSD_AS_H_AT_MIN);
    /* min_instances 0: the last one goes only when there was no demand at all. */
    o.min_instances = 0;
    d = decide(s, ns, 1, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_DOWN);
    assert_int_equal(d.desired, 0);
    ns = fill(s, 12, NOW, 0.01, 1, 0);
    d = decide(s, ns, 1, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_HOLD);
    assert_int_equal(d.hold, MSD_AS_H_FLAP_GUARD);
    /* n = 0 is idle: the autoscaler does not start a service, lookups do. */
    d = decide(s, ns, 0, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_HOLD);
    assert_int_equal(d.hold, MSD_AS_H_IDLE);
}

static void
test_autoscale_bounds_and_no_data(void **state)
{
    (void)state;
    msd_as_options o = opts();
    msd_as_sample s[12];
    int ns = fill(s, 12, NOW, 0.0, 3, 0);
    o.min_instances = 3;
    msd_as_decision d = decide(s, ns, 1, &o, NOW);
    assert_int_equal(d.action, MSD_AS_BOUNDS);
    assert_int_equal(d.desired, 3);
    o.min_instances = 1;
    o.max_instances = 2;
    d = decide(s, ns, 5, &o, NOW);
    assert_int_equal(d.action, MSD_AS_BOUNDS);
    assert_int_equal(d.desired, 2);
    /* No sample in the up window (msd just started, or the loop stalled): nothing. */
    o = opts();
    d = decide(s, 0, 2, &o, LONG_AGO);
    assert_int_equal(d.action, MSD_AS_HOLD);
    assert_int_equal(d.hold, MSD_AS_H_NO_DATA);
    ns = fill(s, 12, NOW - 5000, 9.0, 2, 0); /* all older than 2 s */
    d = decide(s, ns, 2, &o, LONG_AGO);
    assert_int_equal(d.hold, MSD_AS_H_NO_DATA);
}

static void
test_autoscale_reason_names_the_inputs(void **state)
{
    (void)state;
    msd_as_options o = opts();
    msd_as_sample s[4];
    int ns = fill(s, 4, NOW, 3.0, 1, 0);
    msd_as_decision d = decide(s, ns, 1, &o, NOW);
    assert_non_null(strstr(d.reason, "up: n 1"));
    assert_non_null(strstr(d.reason, "demand 3.00"));
    assert_non_null(strstr(d.reason, "scale_up_at 0.50"));
    assert_non_null(strstr(d.reason, "desired 1 -> 6"));
    assert_string_equal(msd_autoscale_hold_name(MSD_AS_H_FLAP_GUARD), "flap guard");
}

/*
 * A closed-loop simulation: `clients` threads call a concurrency-1 service back to back,
 * so the service's total demand is `clients` (running + queued), however many instances
 * share it; a new instance is ready one second after it is wanted. From 1 instance the
 * policy must reach ceil(clients / scale_up_at) quickly, with a jump of several at once,
 * never overshoot it, and when the load stops come down one at a time, each step at
 * least a stabilisation period after the previous change, to min_instances.
 */
static void
test_autoscale_closed_loop_simulation(void **state)
{
    (void)state;
    msd_as_options o = opts();
    o.stabilise_ms = 5000;
    o.down_window_ms = 3000;
    enum { T = 120, LOAD_FROM = 2, LOAD_UNTIL = 30, START_S = 2 };
    const double clients = 3;
    msd_as_sample s[T];
    int wanted[T]; /* n after the decision of second t */
    int n = 1, max_seen = 1, biggest_jump = 0, reached_at = -1, downs = 0;
    int64_t last_change = -1000000, last_down = -1;
    for (int t = 0; t < T; t++) {
        int64_t now = (int64_t)t * 1000;
        /* Instances wanted START_S seconds ago are ready; newer ones are starting. */
        int ready = t >= START_S ? wanted[t - START_S] : 1;
        if (ready > n)
            ready = n;
        double load = t < LOAD_FROM || t >= LOAD_UNTIL ? 0 : t == LOAD_FROM ? clients / 2 : clients;
        s[t] = (msd_as_sample){now, load, ready, n - ready};
        msd_as_decision d;
        msd_autoscale_decide(s, t + 1, n, &o, now, last_change, &d);
        if (d.action == MSD_AS_UP && d.desired - n > biggest_jump)
            biggest_jump = d.desired - n;
        if (d.action == MSD_AS_DOWN) {
            assert_int_equal(d.desired, n - 1);
            assert_true(now - last_change >= o.stabilise_ms);
            assert_true(t > LOAD_UNTIL); /* never while loaded */
            if (last_down >= 0)
                assert_true(now - last_down >= o.stabilise_ms);
            last_down = now;
            downs++;
        }
        if (d.action != MSD_AS_HOLD) {
            n = d.desired;
            last_change = now;
        }
        wanted[t] = n;
        if (n > max_seen)
            max_seen = n;
        if (n == 6 && reached_at < 0)
            reached_at = t;
    }
    assert_int_equal(max_seen, 6); /* ceil(3 / 0.5), no overshoot */
    assert_true(biggest_jump >= 2);
    assert_true(reached_at >= 0 && reached_at <= LOAD_FROM + 3);
    assert_int_equal(n, 1);
    assert_int_equal(downs, 5);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_autoscale_holds_between_thresholds),
        cmocka_unit_test(test_autoscale_up_by_one_just_above),
        cmocka_unit_test(test_autoscale_up_many_at_once),
        cmocka_unit_test(test_autoscale_up_capped_at_max),
        cmocka_unit_test(test_autoscale_up_window_is_two_seconds),
        cmocka_unit_test(test_autoscale_not_ready_count_zero_for_up),
        cmocka_unit_test(test_autoscale_not_ready_count_busy_for_down),
        cmocka_unit_test(test_autoscale_down_one_at_a_time),
        cmocka_unit_test(test_autoscale_down_window_is_ten_seconds),
        cmocka_unit_test(test_autoscale_down_needs_a_covered_window),
        cmocka_unit_test(test_autoscale_stabilisation),
        cmocka_unit_test(test_autoscale_flap_guard),
        cmocka_unit_test(test_autoscale_min_instances),
        cmocka_unit_test(test_autoscale_bounds_and_no_data),
        cmocka_unit_test(test_autoscale_reason_names_the_inputs),
        cmocka_unit_test(test_autoscale_closed_loop_simulation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
