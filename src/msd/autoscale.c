/*
 * autoscale.c: the autoscaling policy (DESIGN section 5), pure: samples in, decision out.
 *
 * Demand of an instance = (time in calls + time queued) / wall time / concurrency, as its
 * heartbeats report it (`busy`, src/lib/host/heartbeat.c); it exceeds 1 when calls queue.
 * msd samples every service once a second (msd_sample_demand): the sum of busy over its
 * ready instances and how many are ready and not ready. Demand per instance over a window is
 *
 *     demand(window, x) = mean over the window's samples of (busy_sum + not_ready * x) / n
 *
 * where n is the number of instances wanted now and x is what a not-ready instance counts
 * for: 0 for scale-up (it will take load soon: do not add more for it), 1 for scale-down
 * (fully busy: do not remove one while others are still starting). Working on sums and
 * dividing by today's n means a window that straddles a change is not skewed by the
 * instance count of older samples.
 *
 * The decision, once a second, for a service with n >= 1 wanted and not pinned:
 *
 *   n < min_instances or n > max_instances ──────────────────────▶ BOUNDS: clamp n
 *        │ no
 *        ▼
 *   up = demand(last up_window_ms (2 s), x = 0)
 *   up > scale_up_at ? ──yes──▶ wanted = max(n + 1, ceil(n * up / scale_up_at))
 *        │ no                   desired = min(wanted, max_instances)
 *        │                      desired > n ? UP (several at once when far above)
 *        │                                  : HOLD "at max_instances"
 *        ▼
 *   last change of desired < stabilise_ms (30 s) ago ? ──yes──▶ HOLD "stabilising"
 *        │ no
 *        ▼
 *   samples cover the down window (10 s) ? ──no──▶ HOLD "window not covered"
 *        │ yes
 *        ▼
 *   down = demand(last down_window_ms, x = 1)
 *   down < scale_down_at ? ──no──▶ HOLD "steady"
 *        │ yes
 *        ▼
 *   n <= min_instances ? ──yes──▶ HOLD "at min_instances"
 *        │ no
 *        ▼
 *   survivors = down * n / (n - 1)     (n = 1, min 0: survivors = down, must be 0)
 *   survivors < 0.9 * scale_up_at ? ──no──▶ HOLD "flap guard"
 *        │ yes
 *        ▼
 *   DOWN: desired = n - 1 (one at a time; the loop retires one instance by draining it)
 *
 * Invariants
 *   1. Scale-up is never delayed by stabilisation; scale-down never happens within
 *      stabilise_ms of any change of desired (up, down, manual, lookup).
 *   2. A decision never leaves [min_instances, max_instances], and never goes down by
 *      more than one (except BOUNDS, which only brings n back inside them).
 *   3. With scale_down_at < 0.9 * scale_up_at, a DOWN is never followed by an UP on the
 *      same steady load: the survivors' demand is below 0.9 * scale_up_at.
 *   4. n == 0 is left alone: 0 means stopped or idle, and a lookup starts the service.
 */
#include "autoscale.h"

#include <stdio.h>
#include <string.h>

static const char *const hold_names[] = {
    "",           "idle",        "no demand samples",           "at max_instances",
    "steady",     "stabilising", "down window not covered yet", "at min_instances",
    "flap guard", "crash loop",
};

const char *
msd_autoscale_hold_name(msd_as_hold h)
{
    return (unsigned)h < sizeof hold_names / sizeof *hold_names ? hold_names[h] : "?";
}

double
msd_autoscale_demand(const msd_as_sample *samples, int nsamples, int n, int64_t now, int window_ms,
                     double not_ready_as, int *count)
{
    double sum = 0;
    int k = 0;
    for (int i = 0; i < nsamples; i++) {
        const msd_as_sample *s = &samples[i];
        if (s->t_ms <= now - window_ms || s->t_ms > now)
            continue;
        sum += s->busy_sum + not_ready_as * s->not_ready;
        k++;
    }
    if (count)
        *count = k;
    if (k == 0 || n <= 0)
        return 0;
    return sum / k / n;
}

/* Whether the samples cover the window ending at now: the oldest one inside it is about a
 * window old (within one and a half sample periods, for the loop's jitter). */
static int
covered(const msd_as_sample *samples, int nsamples, int64_t now, int window_ms, int sample_ms)
{
    int64_t oldest = -1;
    for (int i = 0; i < nsamples; i++) {
        const msd_as_sample *s = &samples[i];
        if (s->t_ms > now - window_ms && s->t_ms <= now && (oldest < 0 || s->t_ms < oldest))
            oldest = s->t_ms;
    }
    return oldest >= 0 && now - oldest >= (int64_t)window_ms - (int64_t)sample_ms * 3 / 2;
}

/* ceil() that does not turn 4.000000000000001 into 5 (and needs no libm). */
static int
ceil_count(double x)
{
    if (!(x < 1e6))
        return 1000000;
    if (x <= 0)
        return 0;
    int i = (int)x;
    return x - i > 1e-9 ? i + 1 : i;
}

static void
hold(msd_as_decision *d, msd_as_hold why)
{
    d->action = MSD_AS_HOLD;
    d->hold = why;
    d->desired = d->n;
}

void
msd_autoscale_decide(const msd_as_sample *samples, int nsamples, int n, const msd_as_options *o,
                     int64_t now, int64_t last_change, msd_as_decision *out)
{
    msd_as_decision *d = out;
    memset(d, 0, sizeof *d);
    d->n = n;
    d->desired = n;
    int lo = o->min_instances > 0 ? o->min_instances : 0;
    int hi = o->max_instances > lo ? o->max_instances : (lo > 1 ? lo : 1);

    if (n <= 0) {
        hold(d, MSD_AS_H_IDLE);
        snprintf(d->reason, sizeof d->reason, "n 0: idle; a lookup starts it");
        return;
    }
    if (n < lo || n > hi) {
        d->action = MSD_AS_BOUNDS;
        d->desired = n < lo ? lo : hi;
        snprintf(d->reason, sizeof d->reason,
                 "bounds: n %d outside [min_instances %d, max_instances %d]: desired %d -> %d", n,
                 lo, hi, n, d->desired);
        return;
    }

    /* Scale up: the last up_window_ms, not-ready instances as 0. */
    double up = msd_autoscale_demand(samples, nsamples, n, now, o->up_window_ms, 0, &d->samples);
    if (d->samples == 0) {
        hold(d, MSD_AS_H_NO_DATA);
        snprintf(d->reason, sizeof d->reason, "n %d: no demand sample in the last %d ms", n,
                 o->up_window_ms);
        return;
    }
    if (up > o->scale_up_at) {
        d->demand = up;
        d->threshold = o->scale_up_at;
        int want = ceil_count(n * up / o->scale_up_at);
        if (want < n + 1)
            want = n + 1;
        d->wanted = want;
        d->desired = want;
        if (want > hi) {
            d->desired = hi;
            d->capped = 1;
        }
        if (d->desired > n) {
            d->action = MSD_AS_UP;
            snprintf(d->reason, sizeof d->reason,
                     "up: n %d, demand %.2f (last %d ms, %d samples, not-ready as 0) > "
                     "scale_up_at %.2f: desired %d -> %d%s",
                     n, up, o->up_window_ms, d->samples, o->scale_up_at, n, d->desired,
                     d->capped ? " (capped at max_instances)" : "");
            if (d->capped) {
                size_t len = strlen(d->reason);
                snprintf(d->reason + len, sizeof d->reason - len, ", %d wanted", want);
            }
        } else {
            hold(d, MSD_AS_H_AT_MAX);
            snprintf(d->reason, sizeof d->reason,
                     "hold: n %d, demand %.2f (last %d ms) > scale_up_at %.2f, but at "
                     "max_instances %d (%d wanted)",
                     n, up, o->up_window_ms, o->scale_up_at, hi, want);
        }
        return;
    }

    /* Scale down: the last down_window_ms, not-ready instances as fully busy. */
    if (now - last_change < o->stabilise_ms) {
        d->demand = up;
        d->threshold = o->scale_up_at;
        hold(d, MSD_AS_H_STABILISING);
        snprintf(d->reason, sizeof d->reason,
                 "hold: n %d, demand %.2f; last change %lld ms ago, stabilising for %d ms", n, up,
                 (long long)(now - last_change), o->stabilise_ms);
        return;
    }
    if (!covered(samples, nsamples, now, o->down_window_ms, o->sample_ms)) {
        d->demand = up;
        hold(d, MSD_AS_H_WINDOW);
        snprintf(d->reason, sizeof d->reason,
                 "hold: n %d: the samples do not cover the last %d ms yet", n, o->down_window_ms);
        return;
    }
    double down =
        msd_autoscale_demand(samples, nsamples, n, now, o->down_window_ms, 1, &d->samples);
    d->demand = down;
    d->threshold = o->scale_down_at;
    if (!(down < o->scale_down_at)) {
        hold(d, MSD_AS_H_STEADY);
        snprintf(d->reason, sizeof d->reason,
                 "hold: n %d, demand %.2f up (last %d ms) <= %.2f, %.2f down (last %d ms) >= "
                 "%.2f",
                 n, up, o->up_window_ms, o->scale_up_at, down, o->down_window_ms, o->scale_down_at);
        return;
    }
    if (n <= lo) {
        hold(d, MSD_AS_H_AT_MIN);
        snprintf(d->reason, sizeof d->reason,
                 "hold: n %d, demand %.2f (last %d ms) < scale_down_at %.2f, but at "
                 "min_instances %d",
                 n, down, o->down_window_ms, o->scale_down_at, lo);
        return;
    }
    /* The survivors must stay clearly below the up threshold, or the next second would
     * add the instance back. With one instance left to remove (min_instances 0) there
     * are no survivors: only a service with no demand at all goes to zero. */
    double survivors = n > 1 ? down * n / (n - 1) : down;
    d->survivors = survivors;
    int ok = n > 1 ? survivors < 0.9 * o->scale_up_at : down <= 0;
    if (!ok) {
        hold(d, MSD_AS_H_FLAP_GUARD);
        snprintf(d->reason, sizeof d->reason,
                 "hold: n %d, demand %.2f (last %d ms) < scale_down_at %.2f, but %d would be "
                 "at %.2f, not below 0.9 * scale_up_at = %.2f",
                 n, down, o->down_window_ms, o->scale_down_at, n - 1, survivors,
                 0.9 * o->scale_up_at);
        return;
    }
    d->action = MSD_AS_DOWN;
    d->desired = n - 1;
    snprintf(d->reason, sizeof d->reason,
             "down: n %d, demand %.2f (last %d ms, %d samples, not-ready as busy) < "
             "scale_down_at %.2f, %d would be at %.2f < %.2f: desired %d -> %d",
             n, down, o->down_window_ms, d->samples, o->scale_down_at, n - 1, survivors,
             0.9 * o->scale_up_at, n, n - 1);
}
