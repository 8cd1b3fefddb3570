/*
 * clock.c: the one monotonic clock of libms, msd and msctl (milliseconds).
 */
#include "base.h"

#include <time.h>

int64_t
msi_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
