/*
 * msd_app.c: the program the msd integration tests deploy. One source, three builds
 * (three different SHA-256s), chosen by APP_MODE at compile time:
 *   0 (msd_app)        a well-behaved service program: add, slow, whoami
 *   1 (msd_app_crash)  describes itself, but every instance exits with status 3 at once
 *   2 (msd_app_hang)   describes itself, but every instance hangs before serving
 * The misbehaviour happens before ms_init, when MS_SERVE is set, so that MS_DESCRIBE=1
 * (which never sets MS_SERVE) still works.
 */
#include <ms/ms.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#ifndef APP_MODE
#define APP_MODE 0
#endif

MS_SERVICE(int64_t, add, (int64_t, a), (int64_t, b))
{
    return a + b;
}
MS_OPTIONS(add, .idempotent = true, .timeout_ms = 3000)

MS_SERVICE(int, slow, (int, ms))
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    return ms;
}
MS_OPTIONS(slow, .timeout_ms = 3000, .max_instances = 4)

MS_SERVICE(int64_t, whoami)
{
    return (int64_t)getpid();
}
MS_OPTIONS(whoami, .lb = MS_LB_ORCHESTRATOR)

int
main(int argc, char **argv)
{
    if (getenv("MS_SERVE")) {
        if (APP_MODE == 1) {
            fprintf(stderr, "msd_app_crash: exiting at start, as built\n");
            return 3;
        }
        if (APP_MODE == 2) {
            fprintf(stderr, "msd_app_hang: hanging at start, as built\n");
            for (;;)
                pause();
        }
    }
    ms_status st = ms_init(&argc, &argv);
    if (st != MS_OK) {
        fprintf(stderr, "ms_init: %s: %s\n", ms_status_name(st), ms_last_error());
        return 1;
    }
    printf("%lld\n", (long long)add(2, 3));
    ms_shutdown();
    return 0;
}
