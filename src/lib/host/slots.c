/*
 * slots.c: call slots (concurrency, the bounded queue, demand) and the glue to the
 * duplicate-request cache (dedupe.c). Part of src/lib/host (host_int.h).
 *
 * Design notes
 * - Demand: `level` = calls running + calls queued, integrated over time (level_us); a
 *   heartbeat reports the increase since the previous one divided by wall time and
 *   concurrency, which is DESIGN section 5's busy fraction (it can exceed 1 when calls
 *   queue). CPU is getrusage's user + system time over wall time.
 * - At-most-once (non-idempotent services only): the duplicate-request cache (dedupe.c),
 *   fed each request's Ms-Request-Id, Ms-Acked-Below and body hash.
 */
#include "host_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- call slots ----------------------------------------------------------------------- */

/* Adds the time since the last change at the current level; mu held. */
void
msi_host_level_tick(void)
{
    int64_t t = msi_host_now_us();
    msi_host.level_us +=
        (double)(msi_host.inflight + msi_host.queued) * (double)(t - msi_host.level_since_us);
    msi_host.level_since_us = t;
}

/* Takes a call slot, waiting in the queue until deadline_ms. MS_OK, MS_EOVERLOADED (queue
 * full) or MS_ETIMEDOUT. */
ms_status
msi_host_slot_take(int64_t deadline_ms)
{
    ms_status st = MS_OK;
    pthread_mutex_lock(&msi_host.mu);
    msi_host_level_tick();
    if (msi_host.inflight < msi_host.concurrency && msi_host.queued == 0) {
        msi_host.inflight++;
        goto out;
    }
    if (msi_host.queued >= msi_host.queue_max) {
        st = MS_EOVERLOADED;
        goto out;
    }
    msi_host.queued++;
    while (msi_host.inflight >= msi_host.concurrency) {
        if (deadline_ms != INT64_MAX && msi_now_ms() >= deadline_ms) {
            st = MS_ETIMEDOUT;
            break;
        }
        if (deadline_ms == INT64_MAX) {
            pthread_cond_wait(&msi_host.slot_cv, &msi_host.mu);
        } else {
            struct timespec ts;
            msi_host_abs_time(deadline_ms, &ts);
            pthread_cond_timedwait(&msi_host.slot_cv, &msi_host.mu, &ts);
        }
    }
    msi_host_level_tick();
    msi_host.queued--;
    if (st == MS_OK)
        msi_host.inflight++;
    else if (msi_host.inflight + msi_host.queued == 0)
        pthread_cond_broadcast(&msi_host.idle_cv);
out:
    pthread_mutex_unlock(&msi_host.mu);
    return st;
}

void
msi_host_slot_give(void)
{
    pthread_mutex_lock(&msi_host.mu);
    msi_host_level_tick();
    msi_host.inflight--;
    if (msi_host.queued)
        pthread_cond_signal(&msi_host.slot_cv);
    if (msi_host.inflight + msi_host.queued == 0)
        pthread_cond_broadcast(&msi_host.idle_cv);
    pthread_mutex_unlock(&msi_host.mu);
}

/* ---- duplicate-request cache (dedupe.c) ----------------------------------------------- */

/* The cache of a host serving a service that is not idempotent; NULL otherwise (or when out
 * of memory at start, then logged). Made before serving starts, freed after it stopped. */
msi_dd *msi_host_dd;

void
msi_host_dd_init(void)
{
    long long entries = msi_host_parse_ll(getenv("MS_DEDUPE_MAX_ENTRIES"), DEDUPE_ENTRIES_DEFAULT);
    long long bytes = msi_host_parse_ll(getenv("MS_DEDUPE_MAX_BYTES"), DEDUPE_BYTES_DEFAULT);
    msi_host_dd = msi_dd_new(entries > 0 ? entries : DEDUPE_ENTRIES_DEFAULT,
                             bytes > 0 ? bytes : DEDUPE_BYTES_DEFAULT);
    if (!msi_host_dd)
        msi_log(0, "no memory for the duplicate-request cache: calls are not deduplicated");
}

void
msi_host_dd_free(void)
{
    msi_dd_free(msi_host_dd);
    msi_host_dd = NULL;
}
