/*
 * e2e_app.c: a client and service program for test_local_e2e, built twice: APP_V=1 and
 * APP_V=2 differ only in the signature of `ver`, the way a rebuilt program would.
 *
 *   e2e_app pids SERVICE N   calls SERVICE (one of pid_client, pid_none, pid_orch) N times
 *                            and prints the pid of the instance that answered each call
 *   e2e_app ver              calls ver once and prints "v<N> <pid>"
 */
#include <ms/ms.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

MS_SERVICE(int64_t, pid_client) { return (int64_t)getpid(); }
MS_OPTIONS(pid_client, .idempotent = true, .lb = MS_LB_CLIENT)
MS_SERVICE(int64_t, pid_none) { return (int64_t)getpid(); }
MS_OPTIONS(pid_none, .idempotent = true, .lb = MS_LB_NONE)
MS_SERVICE(int64_t, pid_orch) { return (int64_t)getpid(); }
MS_OPTIONS(pid_orch, .idempotent = true, .lb = MS_LB_ORCHESTRATOR)

#if APP_V == 1
MS_SERVICE(int64_t, ver, (int64_t, x)) { return x * 1000000 + getpid(); }
#else
MS_SERVICE(int64_t, ver, (int32_t, x), (int32_t, y)) { return (x + y) * 1000000 + getpid(); }
#endif

int
main(int argc, char **argv)
{
    ms_status st = ms_init(&argc, &argv);
    if (st != MS_OK) {
        fprintf(stderr, "ms_init: %s: %s\n", ms_status_name(st), ms_last_error());
        return 1;
    }
    int rc = 0;
    if (argc == 4 && strcmp(argv[1], "pids") == 0) {
        int64_t (*fn)(void) = strcmp(argv[2], "pid_client") == 0 ? pid_client
                              : strcmp(argv[2], "pid_none") == 0 ? pid_none
                                                                 : pid_orch;
        long n = strtol(argv[3], NULL, 10);
        for (long i = 0; i < n; i++)
            printf("%lld\n", (long long)fn());
    } else if (argc == 2 && strcmp(argv[1], "ver") == 0) {
#if APP_V == 1
        int64_t r = ver(1);
#else
        int64_t r = ver(1, 1);
#endif
        printf("v%lld %lld\n", (long long)(r / 1000000), (long long)(r % 1000000));
    } else {
        fprintf(stderr, "usage: e2e_app pids SERVICE N | e2e_app ver\n");
        rc = 2;
    }
    ms_shutdown();
    return rc;
}
