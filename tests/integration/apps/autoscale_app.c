/*
 * autoscale_app.c: the program test_msd_autoscale deploys. Two services with a busy body
 * (a sleep: the demand msd sees is time in calls plus time queued, not CPU) and the
 * default concurrency 1, scale_up_at 0.5 and scale_down_at 0.3:
 *   work   max_instances 6: driven by load from the test, autoscaled up and down
 *   held   max_instances 4: scaled by hand (pinned), then handed back to the autoscaler
 */
#include <ms/ms.h>

#include <stdio.h>
#include <time.h>

static int
nap(int ms)
{
    if (ms < 0 || ms > 2000) {
        ms_fail(1, "ms must be in [0, 2000], got %d", ms);
        return 0;
    }
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    return ms;
}

MS_SERVICE(int, work, (int, ms))
{
    return nap(ms);
}
MS_OPTIONS(work, .idempotent = true, .timeout_ms = 3000, .max_instances = 6)

MS_SERVICE(int, held, (int, ms))
{
    return nap(ms);
}
MS_OPTIONS(held, .idempotent = true, .timeout_ms = 3000, .max_instances = 4)

int
main(int argc, char **argv)
{
    ms_status st = ms_init(&argc, &argv);
    if (st != MS_OK) {
        fprintf(stderr, "ms_init: %s: %s\n", ms_status_name(st), ms_last_error());
        return 1;
    }
    printf("%d\n", work(1));
    ms_shutdown();
    return 0;
}
