/*
 * autoscale.h: the autoscaling policy of msd (DESIGN section 5) as pure functions.
 *
 * Design notes
 * - Nothing here knows msd: the policy takes demand samples, the current instance count,
 *   the service's thresholds and the time, and returns a decision. The reconcile loop
 *   (reconcile.c) takes the samples, calls msd_autoscale_decide() once a second per
 *   service, applies the decision and records it as an event. The unit test
 *   (tests/unit/test_autoscale.c) drives the same function with made-up samples.
 * - Only libc: this header must compile without jansson, libcurl or msd.h.
 * - Times are monotonic milliseconds; any origin, as long as samples, now and
 *   last_change share it.
 */
#ifndef MSD_AUTOSCALE_H
#define MSD_AUTOSCALE_H

#include <stdint.h>

/* One demand sample of a service: taken every second by msd_sample_demand(). */
typedef struct msd_as_sample {
    int64_t t_ms;    /* when taken */
    double busy_sum; /* sum of `busy` (heartbeats) over the ready instances */
    int ready;       /* ready instances (their busy is in busy_sum) */
    int not_ready;   /* starting, suspect, dead-and-restarting instances */
} msd_as_sample;

typedef struct msd_as_options {
    int min_instances, max_instances;
    double scale_up_at, scale_down_at;
    int up_window_ms;   /* 2000: scale-up looks at the samples of the last 2 s */
    int down_window_ms; /* 10000: scale-down at the last 10 s, which must be covered */
    int stabilise_ms;   /* 30000: no scale-down this soon after any change of desired */
    int sample_ms;      /* 1000: period of the samples */
} msd_as_options;

typedef enum msd_as_action {
    MSD_AS_HOLD = 0, /* desired stays n */
    MSD_AS_UP,       /* desired > n */
    MSD_AS_DOWN,     /* desired == n - 1 */
    MSD_AS_BOUNDS,   /* n was outside [min_instances, max_instances]: brought inside */
} msd_as_action;

typedef enum msd_as_hold {
    MSD_AS_H_NONE = 0,    /* not a hold */
    MSD_AS_H_IDLE,        /* n is 0: lookups start the service, not the autoscaler */
    MSD_AS_H_NO_DATA,     /* no sample in the up window */
    MSD_AS_H_AT_MAX,      /* above scale_up_at, but n is max_instances already */
    MSD_AS_H_STEADY,      /* between the thresholds */
    MSD_AS_H_STABILISING, /* a change was made less than stabilise_ms ago */
    MSD_AS_H_WINDOW,      /* the down window is not covered by samples yet */
    MSD_AS_H_AT_MIN,      /* below scale_down_at, but n is min_instances already */
    MSD_AS_H_FLAP_GUARD,  /* below scale_down_at, but n - 1 would be too close to up */
    MSD_AS_H_CRASHLOOP,   /* (set by msd, not by the policy) no scale-up in a crash loop */
} msd_as_hold;

typedef struct msd_as_decision {
    msd_as_action action;
    msd_as_hold hold; /* why not, for MSD_AS_HOLD */
    int n;            /* the count the decision started from */
    int desired;      /* the new desired count (n when holding) */
    double demand;    /* the demand per instance that decided (up or down window) */
    double threshold; /* what it was compared with */
    double survivors; /* down: demand per instance once one is gone (n - 1 of them) */
    int wanted;       /* up: max(n+1, ceil(n*demand/scale_up_at)) before the cap */
    int capped;       /* up: wanted was above max_instances */
    int samples;      /* samples in the window used */
    char reason[200]; /* one line with the inputs, for events and logs */
} msd_as_decision;

/*
 * The decision for a service with n instances wanted, given its samples (oldest first,
 * nsamples of them, may be 0), its options, the time now and the time of its last change
 * of desired (last_change; any value <= now - stabilise_ms when there was none). Pure:
 * same inputs, same output. Fills *out; never fails.
 */
void msd_autoscale_decide(const msd_as_sample *samples, int nsamples, int n,
                          const msd_as_options *o, int64_t now, int64_t last_change,
                          msd_as_decision *out);

/* Demand per instance in the window ending at now: the mean over the samples taken after
 * now - window_ms of (busy_sum + not_ready * not_ready_as) / n. not_ready_as is 0 for
 * scale-up, 1 for scale-down. *count gets the number of samples used (may be NULL).
 * 0 when there is none or n <= 0. */
double msd_autoscale_demand(const msd_as_sample *samples, int nsamples, int n, int64_t now,
                            int window_ms, double not_ready_as, int *count);

/* A short name of a hold reason ("at max_instances", ...). */
const char *msd_autoscale_hold_name(msd_as_hold h);

#endif /* MSD_AUTOSCALE_H */
