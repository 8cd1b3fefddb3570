/*
 * dedupe.h: the duplicate-request cache of an instance (at-most-once for services that are
 * not idempotent; DESIGN sections 3 and 4, docs/calls.md "At most once"). Pure bookkeeping:
 * no I/O, no HTTP; the host (endpoint.c) asks it for a verdict on each call and hands it the
 * reply.
 *
 * Request ids. `<caller>-<seq>`: a caller id (1.. of [A-Za-z0-9._], or '-' inside) and a
 * decimal sequence number of at most 19 digits, split at the last '-'. With it a request may
 * carry `Ms-Acked-Below: N`, the caller's lowest sequence number still without a reply: the
 * cache drops that caller's entries below N at once (RIFL, SOSP 2015) and refuses a request
 * below N as stale. Any other well-formed id (1..128 of [A-Za-z0-9._-]) is a plain id: its
 * entry lives until the call's deadline + 1 s, as before acknowledgements existed.
 *
 * Threading: every function may be called from any thread; the cache is in shards, each
 * guarded by its own mutex (a caller's entries all in one), and msi_dd_begin waits on its
 * shard's condition variable while an earlier attempt of the same id runs.
 * Ownership: the cache owns its entries; msi_dd_begin hands the caller one entry it "owns"
 * (MSI_DD_RUN) until it gives it back with msi_dd_finish or msi_dd_abort, exactly once.
 */
#ifndef MS_DEDUPE_H
#define MS_DEDUPE_H

#include <stddef.h>
#include <stdint.h>

#define MSI_RID_MAX 128       /* Ms-Request-Id: 1..128 of [A-Za-z0-9._-] */
#define MSI_DD_LINGER_MS 1000 /* an unacknowledged entry lives until its deadline + this */

typedef struct msi_dd msi_dd;
typedef struct msi_dd_entry msi_dd_entry;

typedef enum msi_dd_verdict {
    MSI_DD_RUN,    /* a new entry: run the call, then msi_dd_finish or msi_dd_abort */
    MSI_DD_CACHED, /* an earlier attempt's reply */
    MSI_DD_REUSED, /* same id, other body */
    MSI_DD_STALE,  /* below its caller's acknowledgement: the caller is done with it */
    MSI_DD_FULL,   /* no room for a new entry (or caller) */
    MSI_DD_LATE,   /* the deadline passed while an earlier attempt was running */
    MSI_DD_NOMEM,
} msi_dd_verdict;

/* One request, as the cache sees it. */
typedef struct msi_dd_req {
    const char *rid;      /* Ms-Request-Id, well-formed (msi_dd_rid_ok) */
    int has_ack;          /* Ms-Acked-Below was sent (only with a <caller>-<seq> id) */
    uint64_t acked_below; /* its value */
    uint64_t body_h[2];   /* msi_dd_body_hash of the body */
    int64_t deadline;     /* msi_now_ms */
} msi_dd_req;

typedef struct msi_dd_stats {
    long long entries, entries_peak, callers, bytes;
    long long waiting; /* duplicates waiting for their first attempt's reply */
    long long max_entries, max_bytes;
    unsigned long long acked_total;   /* entries dropped by an acknowledgement */
    unsigned long long expired_total; /* entries dropped at their deadline + 1 s */
    unsigned long long stale_total;   /* requests refused as below their caller's ack */
} msi_dd_stats;

/* A cache bounded to max_entries entries (and as many callers) and max_bytes of entries,
 * callers and kept replies. NULL when out of memory. */
msi_dd *msi_dd_new(long long max_entries, long long max_bytes);
void msi_dd_free(msi_dd *dd);

/* The hash an entry keeps of a body (SipHash-2-4-128 under the cache's random key: nobody
 * outside this process can make two bodies collide). */
void msi_dd_body_hash(const msi_dd *dd, const void *body, size_t len, uint64_t out[2]);

/* Whether `rid` is a well-formed request id; whether it is `<caller>-<seq>` (then *seq). */
int msi_dd_rid_ok(const char *rid);
int msi_dd_rid_seq(const char *rid, size_t *caller_len, uint64_t *seq);
/* Parses an Ms-Acked-Below value: 1..19 decimal digits. 0 when malformed. */
int msi_dd_parse_ack(const char *s, uint64_t *out);

/*
 * The cache's verdict on a request. MSI_DD_RUN: *own is the new entry. MSI_DD_CACHED:
 * *status, *reply (malloc'd, NUL-terminated; the caller frees it) and *len. Waits, bounded
 * by the request's deadline, while an earlier attempt of the same id is running.
 */
msi_dd_verdict msi_dd_begin(msi_dd *dd, const msi_dd_req *q, msi_dd_entry **own, int *status,
                            char **reply, size_t *len);
/* The call ran: keeps a copy of its reply for retries (unless acknowledged meanwhile). */
void msi_dd_finish(msi_dd *dd, msi_dd_entry *e, int status, const char *reply, size_t len);
/* The call was refused before it ran: forgets it, so that a retry runs it. */
void msi_dd_abort(msi_dd *dd, msi_dd_entry *e);
/* Drops what has expired at `now` (msi_now_ms); msi_dd_begin sweeps by itself about once a
 * second and whenever the cache is full. */
void msi_dd_sweep(msi_dd *dd, int64_t now);
void msi_dd_get_stats(msi_dd *dd, msi_dd_stats *out);

#endif
