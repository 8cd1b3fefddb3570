/*
 * sleepers.c: fourteen concurrent calls to services that sleep. main starts one thread per
 * call (ten sleep_1, three sleep_3, one sleep_5), prints each completion and the total wall
 * time.
 *
 * In zero mode a call runs on its caller's thread, so all fourteen sleep at once and the
 * whole takes about 5 s, the longest call. With MS_MODE=local the same code calls instances
 * that msd runs; the options below let one instance of sleep_1 take ten calls at a time
 * (sleeping is thread-safe), so it is about 5 s there too once the instances are up.
 */
#define _POSIX_C_SOURCE 200809L

#include <ms/ms.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

/* Sleeps `seconds`, resuming after signals; returns the seconds slept. */
static int32_t
nap(int32_t seconds)
{
    struct timespec ts = {seconds, 0};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return seconds;
}

MS_SERVICE(int32_t, sleep_1) { return nap(1); }
MS_OPTIONS(sleep_1, .idempotent = true, .concurrency = 10)
MS_SERVICE(int32_t, sleep_3) { return nap(3); }
MS_OPTIONS(sleep_3, .idempotent = true, .concurrency = 3)
MS_SERVICE(int32_t, sleep_5) { return nap(5); }
MS_OPTIONS(sleep_5, .idempotent = true, .timeout_ms = 15000)

static struct timespec start;

static double
elapsed(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
}

typedef struct job {
    const char *name;
    ms_status (*call)(int32_t *result);
    int n;        /* which call of this service, from 1 */
    ms_status st; /* out */
    pthread_t thread;
} job;

static void *
run(void *arg)
{
    job *j = arg;
    int32_t slept = 0;
    j->st = j->call(&slept);
    if (j->st == MS_OK)
        printf("[%5.2f s] %s #%d done: slept %d s\n", elapsed(), j->name, j->n, (int)slept);
    else
        printf("[%5.2f s] %s #%d failed: %s: %s\n", elapsed(), j->name, j->n,
               ms_strerror(j->st), ms_last_error());
    fflush(stdout);
    return NULL;
}

int
main(int argc, char **argv)
{
    ms_status st = ms_init(&argc, &argv);
    if (st != MS_OK) {
        fprintf(stderr, "sleepers: %s: %s\n", ms_strerror(st), ms_last_error());
        return 1;
    }
    printf("mode %s: 10 x sleep_1, 3 x sleep_3, 1 x sleep_5, all at once\n",
           ms_mode_name(ms_current_mode()));
    fflush(stdout);

    job jobs[14];
    int n = 0;
    for (int i = 1; i <= 10; i++)
        jobs[n++] = (job){.name = "sleep_1", .call = sleep_1_try, .n = i};
    for (int i = 1; i <= 3; i++)
        jobs[n++] = (job){.name = "sleep_3", .call = sleep_3_try, .n = i};
    jobs[n++] = (job){.name = "sleep_5", .call = sleep_5_try, .n = 1};

    clock_gettime(CLOCK_MONOTONIC, &start);
    int started = 0;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&jobs[i].thread, NULL, run, &jobs[i]) != 0) {
            fprintf(stderr, "sleepers: cannot start thread %d\n", i);
            break;
        }
        started++;
    }
    int ok = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(jobs[i].thread, NULL);
        ok += jobs[i].st == MS_OK;
    }
    printf("%d of %d calls completed in %.2f s\n", ok, n, elapsed());
    ms_shutdown();
    return ok == n ? 0 : 1;
}
