/*
 * dedupe.c: the duplicate-request cache (dedupe.h).
 *
 * Design notes
 * - Only for services that are not idempotent. A client retries such a call only on the
 *   same instance with the same request id, when it cannot know whether its first attempt
 *   ran (the connection broke after the request left); this cache answers the retry with
 *   the first attempt's reply instead of running the function twice.
 * - Key: the request id (hash chains over a power-of-two bucket array). Each entry also
 *   holds a 128-bit hash of the body: the same id with another body is MSI_DD_REUSED, never
 *   the first call's reply. The hash is SipHash-2-4 under a key drawn at random for each
 *   cache, so a caller cannot make another body collide with one it has not seen hashed
 *   (SHA-256 did the same job at ten times the cost: 0.38 us of a 19 us call).
 * - Callers (after RIFL, Lee et al., SOSP 2015). An id `<caller>-<seq>` belongs to a caller
 *   record, found by its own hash table, which holds the caller's entries and `acked`: every
 *   sequence number below it is finished with on the caller's side (it will never send it
 *   again). A request's Ms-Acked-Below raises `acked` (never lowers it) before anything
 *   else, so that even a request refused for want of room frees its caller's old entries.
 *   The cache therefore holds, per caller, what is in flight plus the reply of its latest
 *   call here (until its next call here acknowledges it), not throughput x deadline. The
 *   client (src/lib/client) is a caller per thread, whose calls follow one another, so an instance
 *   holds at most one entry per calling thread that reached it.
 * - Life of an entry:
 *
 *     (none) --begin: id unknown, not stale, room left--> RUNNING --finish--> DONE
 *     RUNNING --abort: refused before the function ran (400, 429, 504 queued)--> (none)
 *     RUNNING --acknowledged--> RUNNING(acked) --finish--> (none): nobody will ask again
 *     DONE --acknowledged (Ms-Acked-Below above its seq)--> (none)
 *     DONE --sweep, once expires (= the call's deadline + 1 s) has passed--> (none)
 *
 *   A duplicate of a RUNNING entry waits in begin (on dd->cv) until it is DONE or gone,
 *   bounded by its own deadline (LATE); of a DONE entry it gets the stored status and body;
 *   when the entry is gone it is looked at afresh: below its caller's acknowledgement it is
 *   STALE, else (aborted) it runs. Only the owner (the request that made the entry) moves
 *   a RUNNING entry, and neither a sweep nor an acknowledgement frees one, so the owner's
 *   pointer stays valid without a reference count.
 * - Life of a caller record: made with its first entry; kept while it has entries, and
 *   after its last one until the longest deadline of its calls + 1 s has passed (the
 *   acknowledgement must outlive every retry the caller may still send), then swept.
 * - Bounds: at most max_entries entries, at most max_entries callers, and max_bytes of
 *   entries, callers and stored replies. A reply is counted when stored, so the bytes can
 *   pass the bound by the replies of the calls running at that moment. When full even
 *   after a sweep, a new call is MSI_DD_FULL; a live entry is never evicted.
 * - A sweep walks the insertion-ordered lists; it runs at most once a second, and when full.
 * - Locking: 16 shards, each with its own mutex, condition variable, tables and lists. A
 *   caller (its record and all its entries) lives in one shard, picked by the top bits of
 *   the hash of its id; a plain id's entry by the hash of the id. So a verdict, a finish or
 *   an abort takes one shard's lock and no other, and 16 callers on 16 threads rarely meet
 *   on a lock (one lock for the whole cache cost a quarter of the throughput of 16 callers
 *   on a busy 2-core machine: a holder preempted stalled every caller). The bounds are
 *   totals over every shard, kept in atomics: room for an entry (and a caller record) is
 *   reserved before it is made, so the entry and caller bounds hold exactly. When a shard
 *   finds no room even after sweeping itself, it lets go of its lock and sweeps every shard
 *   in turn (never two locks at once), then looks again, once. A stored reply is copied out
 *   under its shard's lock.
 */
#include "dedupe.h"

#include "msi.h"
#include "siphash.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define SWEEP_MS 1000
#define NSHARDS 16 /* a power of two; a caller's shard: the top bits of its id's hash */

typedef struct dd_caller dd_caller;
typedef struct dd_shard dd_shard;

struct msi_dd_entry {
    msi_dd_entry *hnext;         /* hash chain */
    msi_dd_entry *prev, *next;   /* insertion order */
    msi_dd_entry *cprev, *cnext; /* its caller's entries */
    dd_caller *caller;           /* NULL: a plain id */
    dd_shard *shard;             /* the shard it lives in */
    uint64_t seq;
    uint64_t h;
    uint64_t body_h[2];
    int done;
    int acked;         /* RUNNING, and acknowledged meanwhile: dropped when it finishes */
    int64_t expires;   /* msi_now_ms */
    int status;        /* DONE: the reply */
    const char *reply; /* malloc'd, or lost_reply (not freed) */
    size_t reply_len;
    size_t bytes; /* counted in dd->bytes */
    char rid[];
};

struct dd_caller {
    dd_caller *hnext;       /* hash chain */
    dd_caller *prev, *next; /* the shard's callers, in order of creation */
    msi_dd_entry *entries;
    uint64_t acked;  /* every seq below this is finished with */
    int64_t expires; /* once it has no entry: swept after this */
    uint64_t h;
    size_t bytes;
    size_t len;
    char id[];
};

/* A part of the cache with its own lock: a caller's entries and record, or a plain id's
 * entry, all live in one shard, so a verdict takes one shard's lock and no other. */
struct dd_shard {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* an entry of this shard became DONE or went away */
    msi_dd_entry **buckets;
    dd_caller **cbuckets;
    msi_dd_entry *head, *tail;
    dd_caller *chead, *ctail;
    long long waiting; /* duplicates waiting on cv */
    int64_t next_sweep;
};

struct msi_dd {
    dd_shard shards[NSHARDS];
    size_t nbuckets; /* of each table of each shard; a power of two */
    long long max_entries, max_bytes;
    /* Totals over the shards, kept without a lock: count and ncallers are taken (reserve)
     * before an entry or a caller is made, so the bounds hold exactly. */
    _Atomic long long count, peak, ncallers, bytes, waiting;
    _Atomic unsigned long long acked_total, expired_total, stale_total;
    uint64_t key[2]; /* of the body hashes */
};

/* What a duplicate gets when the first attempt ran but its reply could not be kept (out of
 * memory): the truth, which is that nobody knows its result any more. */
static const char lost_reply[] =
    "{\"error\":{\"code\":\"MS_EINDOUBT\",\"message\":\"the call ran but its reply could not "
    "be kept for a retry (out of memory)\"}}";

static uint64_t
fnv1a(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int
rid_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

int
msi_dd_rid_ok(const char *rid)
{
    size_t n = 0;
    for (; rid[n]; n++)
        if (!rid_char(rid[n]))
            return 0;
    return n >= 1 && n <= MSI_RID_MAX;
}

int
msi_dd_parse_ack(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = 0;
    for (; s[n]; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= 19)
            return 0;
        v = v * 10 + (uint64_t)(s[n] - '0');
    }
    if (n == 0)
        return 0;
    *out = v;
    return 1;
}

int
msi_dd_rid_seq(const char *rid, size_t *caller_len, uint64_t *seq)
{
    const char *dash = strrchr(rid, '-');
    if (!dash || dash == rid || !msi_dd_parse_ack(dash + 1, seq))
        return 0;
    *caller_len = (size_t)(dash - rid);
    return 1;
}

msi_dd *
msi_dd_new(long long max_entries, long long max_bytes)
{
    msi_dd *dd = calloc(1, sizeof *dd);
    if (!dd)
        return NULL;
    dd->max_entries = max_entries > 0 ? max_entries : 1;
    dd->max_bytes = max_bytes > 0 ? max_bytes : 1;
    size_t n = 16;
    while (n < (size_t)dd->max_entries / 2 / NSHARDS && n < ((size_t)1 << 16))
        n *= 2;
    dd->nbuckets = n;
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int64_t now = msi_now_ms();
    size_t made = 0;
    for (; made < NSHARDS; made++) {
        dd_shard *sh = &dd->shards[made];
        sh->buckets = calloc(n, sizeof *sh->buckets);
        sh->cbuckets = calloc(n, sizeof *sh->cbuckets);
        if (!sh->buckets || !sh->cbuckets) {
            free(sh->buckets);
            free(sh->cbuckets);
            break;
        }
        pthread_mutex_init(&sh->mu, NULL);
        pthread_cond_init(&sh->cv, &a);
        sh->next_sweep = now + SWEEP_MS;
    }
    pthread_condattr_destroy(&a);
    if (made < NSHARDS) {
        while (made-- > 0) {
            free(dd->shards[made].buckets);
            free(dd->shards[made].cbuckets);
            pthread_mutex_destroy(&dd->shards[made].mu);
            pthread_cond_destroy(&dd->shards[made].cv);
        }
        free(dd);
        return NULL;
    }
    if (getrandom(dd->key, sizeof dd->key, 0) != (ssize_t)sizeof dd->key) {
        /* No entropy to be had (not expected on Linux >= 3.17): a key from the clock and
         * addresses, unknown outside this process all the same. */
        dd->key[0] = (uint64_t)now * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)dd;
        dd->key[1] = (uint64_t)(uintptr_t)&n ^ 0xc2b2ae3d27d4eb4full;
    }
    return dd;
}

void
msi_dd_body_hash(const msi_dd *dd, const void *body, size_t len, uint64_t out[2])
{
    msi_siphash128(dd->key, body, len, out);
}

/* The shard of a caller, or of a plain id, by its hash: the top bits, as the buckets take
 * the low ones. */
static dd_shard *
shard_of(msi_dd *dd, uint64_t h)
{
    return &dd->shards[h >> 60 & (NSHARDS - 1)];
}

/* ---- room: the bounds over every shard, without a lock -------------------------------- */

/* Takes room for one entry and, with new_caller, one caller record. 0: no room. */
static int
reserve(msi_dd *dd, int new_caller)
{
    if (atomic_load_explicit(&dd->bytes, memory_order_relaxed) >= dd->max_bytes)
        return 0;
    long long n = atomic_fetch_add(&dd->count, 1) + 1;
    if (n > dd->max_entries) {
        atomic_fetch_sub(&dd->count, 1);
        return 0;
    }
    if (new_caller && atomic_fetch_add(&dd->ncallers, 1) >= dd->max_entries) {
        atomic_fetch_sub(&dd->ncallers, 1);
        atomic_fetch_sub(&dd->count, 1);
        return 0;
    }
    long long p = atomic_load_explicit(&dd->peak, memory_order_relaxed);
    while (n > p && !atomic_compare_exchange_weak(&dd->peak, &p, n))
        ;
    return 1;
}

static void
unreserve(msi_dd *dd, int entry, int caller)
{
    if (entry)
        atomic_fetch_sub(&dd->count, 1);
    if (caller)
        atomic_fetch_sub(&dd->ncallers, 1);
}

/* ---- entries and callers; their shard's mu held ---------------------------------------- */

static msi_dd_entry *
entry_find(const msi_dd *dd, dd_shard *sh, const char *rid, uint64_t h)
{
    for (msi_dd_entry *e = sh->buckets[h & (dd->nbuckets - 1)]; e; e = e->hnext)
        if (e->h == h && strcmp(e->rid, rid) == 0)
            return e;
    return NULL;
}

static dd_caller *
caller_find(const msi_dd *dd, dd_shard *sh, const char *id, size_t len, uint64_t h)
{
    for (dd_caller *c = sh->cbuckets[h & (dd->nbuckets - 1)]; c; c = c->hnext)
        if (c->h == h && c->len == len && memcmp(c->id, id, len) == 0)
            return c;
    return NULL;
}

static void
entry_unlink(msi_dd *dd, msi_dd_entry *e)
{
    dd_shard *sh = e->shard;
    msi_dd_entry **pp = &sh->buckets[e->h & (dd->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->prev)
        e->prev->next = e->next;
    else
        sh->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        sh->tail = e->prev;
    if (e->caller) {
        if (e->cprev)
            e->cprev->cnext = e->cnext;
        else
            e->caller->entries = e->cnext;
        if (e->cnext)
            e->cnext->cprev = e->cprev;
    }
    unreserve(dd, 1, 0);
    atomic_fetch_sub(&dd->bytes, (long long)e->bytes);
    if (e->reply != lost_reply)
        free((void *)(uintptr_t)e->reply);
    free(e);
}

static void
caller_unlink(msi_dd *dd, dd_shard *sh, dd_caller *c)
{
    dd_caller **pp = &sh->cbuckets[c->h & (dd->nbuckets - 1)];
    while (*pp != c)
        pp = &(*pp)->hnext;
    *pp = c->hnext;
    if (c->prev)
        c->prev->next = c->next;
    else
        sh->chead = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        sh->ctail = c->prev;
    unreserve(dd, 0, 1);
    atomic_fetch_sub(&dd->bytes, (long long)c->bytes);
    free(c);
}

/* The caller has finished with every seq below `acked`: its DONE entries below go now, its
 * RUNNING ones when they finish. */
static void
caller_ack(msi_dd *dd, dd_caller *c, uint64_t acked)
{
    if (acked <= c->acked)
        return;
    c->acked = acked;
    for (msi_dd_entry *e = c->entries, *next; e; e = next) {
        next = e->cnext;
        if (e->seq >= acked)
            continue;
        if (e->done) {
            entry_unlink(dd, e);
            atomic_fetch_add(&dd->acked_total, 1);
        } else {
            e->acked = 1;
        }
    }
}

static void
shard_sweep(msi_dd *dd, dd_shard *sh, int64_t now)
{
    for (msi_dd_entry *e = sh->head, *next; e; e = next) {
        next = e->next;
        if (e->done && e->expires <= now) {
            entry_unlink(dd, e);
            atomic_fetch_add(&dd->expired_total, 1);
        }
    }
    for (dd_caller *c = sh->chead, *next; c; c = next) {
        next = c->next;
        if (!c->entries && c->expires <= now)
            caller_unlink(dd, sh, c);
    }
    sh->next_sweep = now + SWEEP_MS;
}

/* Every shard in turn; no shard's mu held on entry. */
void
msi_dd_sweep(msi_dd *dd, int64_t now)
{
    for (size_t i = 0; i < NSHARDS; i++) {
        pthread_mutex_lock(&dd->shards[i].mu);
        shard_sweep(dd, &dd->shards[i], now);
        pthread_mutex_unlock(&dd->shards[i].mu);
    }
}

/* A caller record for which room was reserved. */
static dd_caller *
caller_new(msi_dd *dd, dd_shard *sh, const char *id, size_t len, uint64_t h)
{
    dd_caller *c = calloc(1, sizeof *c + len + 1);
    if (!c)
        return NULL;
    memcpy(c->id, id, len);
    c->len = len;
    c->h = h;
    c->bytes = sizeof *c + len + 1;
    dd_caller **b = &sh->cbuckets[h & (dd->nbuckets - 1)];
    c->hnext = *b;
    *b = c;
    c->prev = sh->ctail;
    if (sh->ctail)
        sh->ctail->next = c;
    else
        sh->chead = c;
    sh->ctail = c;
    atomic_fetch_add(&dd->bytes, (long long)c->bytes);
    return c;
}

/* An entry for which room was reserved. */
static msi_dd_entry *
entry_new(msi_dd *dd, dd_shard *sh, const msi_dd_req *q, uint64_t h, dd_caller *c, uint64_t seq)
{
    size_t rl = strlen(q->rid);
    msi_dd_entry *e = calloc(1, sizeof *e + rl + 1);
    if (!e)
        return NULL;
    memcpy(e->rid, q->rid, rl + 1);
    e->shard = sh;
    e->body_h[0] = q->body_h[0];
    e->body_h[1] = q->body_h[1];
    e->h = h;
    e->seq = seq;
    e->expires = q->deadline + MSI_DD_LINGER_MS;
    e->bytes = sizeof *e + rl + 1;
    msi_dd_entry **b = &sh->buckets[h & (dd->nbuckets - 1)];
    e->hnext = *b;
    *b = e;
    e->prev = sh->tail;
    if (sh->tail)
        sh->tail->next = e;
    else
        sh->head = e;
    sh->tail = e;
    if (c) {
        e->caller = c;
        e->cnext = c->entries;
        if (c->entries)
            c->entries->cprev = e;
        c->entries = e;
        if (c->expires < e->expires)
            c->expires = e->expires;
    }
    atomic_fetch_add(&dd->bytes, (long long)e->bytes);
    return e;
}

/* ---- the verdict ------------------------------------------------------------------------- */

msi_dd_verdict
msi_dd_begin(msi_dd *dd, const msi_dd_req *q, msi_dd_entry **own, int *status, char **reply,
             size_t *len)
{
    uint64_t h = fnv1a(q->rid, strlen(q->rid)), seq = 0, ch = 0;
    size_t clen = 0;
    int has_caller = msi_dd_rid_seq(q->rid, &clen, &seq);
    if (has_caller)
        ch = fnv1a(q->rid, clen);
    /* A request cannot acknowledge itself: an acknowledgement above its own seq counts as
     * its own seq (checks.c refuses such a header before asking). */
    int has_ack = has_caller && q->has_ack;
    uint64_t ack = has_ack && q->acked_below < seq ? q->acked_below : seq;
    dd_shard *sh = shard_of(dd, has_caller ? ch : h);
    int swept_all = 0;
    msi_dd_verdict res;
    pthread_mutex_lock(&sh->mu);
    for (;;) {
        int64_t now = msi_now_ms();
        if (now >= sh->next_sweep)
            shard_sweep(dd, sh, now);
        dd_caller *c = has_caller ? caller_find(dd, sh, q->rid, clen, ch) : NULL;
        if (c && has_ack)
            caller_ack(dd, c, ack);
        if (c && seq < c->acked) {
            atomic_fetch_add(&dd->stale_total, 1);
            res = MSI_DD_STALE;
            break;
        }
        msi_dd_entry *e = entry_find(dd, sh, q->rid, h);
        if (e && (e->body_h[0] != q->body_h[0] || e->body_h[1] != q->body_h[1])) {
            res = MSI_DD_REUSED;
            break;
        }
        if (e && e->done) {
            *reply = malloc(e->reply_len + 1);
            if (!*reply) {
                res = MSI_DD_NOMEM;
                break;
            }
            memcpy(*reply, e->reply, e->reply_len);
            (*reply)[e->reply_len] = '\0';
            *len = e->reply_len;
            *status = e->status;
            res = MSI_DD_CACHED;
            break;
        }
        if (e) { /* the first attempt is running: wait for its reply */
            if (now >= q->deadline) {
                res = MSI_DD_LATE;
                break;
            }
            struct timespec ts = {.tv_sec = (time_t)(q->deadline / 1000),
                                  .tv_nsec = (long)(q->deadline % 1000) * 1000000};
            sh->waiting++;
            atomic_fetch_add(&dd->waiting, 1);
            pthread_cond_timedwait(&sh->cv, &sh->mu, &ts);
            atomic_fetch_sub(&dd->waiting, 1);
            sh->waiting--;
            continue;
        }
        int need_caller = has_caller && !c;
        if (!reserve(dd, need_caller)) {
            shard_sweep(dd, sh, now);
            if (!reserve(dd, need_caller)) {
                if (!swept_all) { /* what expired in other shards is room too */
                    swept_all = 1;
                    pthread_mutex_unlock(&sh->mu);
                    msi_dd_sweep(dd, now);
                    pthread_mutex_lock(&sh->mu);
                    continue;
                }
                res = MSI_DD_FULL;
                break;
            }
        }
        if (need_caller) {
            c = caller_new(dd, sh, q->rid, clen, ch);
            if (!c) {
                unreserve(dd, 1, 1);
                res = MSI_DD_NOMEM;
                break;
            }
            if (has_ack)
                c->acked = ack;
        }
        e = entry_new(dd, sh, q, h, c, seq);
        if (!e) {
            unreserve(dd, 1, 0);
            res = MSI_DD_NOMEM;
            break;
        }
        *own = e;
        res = MSI_DD_RUN;
        break;
    }
    pthread_mutex_unlock(&sh->mu);
    return res;
}

void
msi_dd_finish(msi_dd *dd, msi_dd_entry *e, int status, const char *reply, size_t len)
{
    char *copy = malloc(len + 1); /* outside the lock: e is ours until it is DONE */
    if (copy)
        memcpy(copy, reply, len);
    dd_shard *sh = e->shard;
    pthread_mutex_lock(&sh->mu);
    if (e->acked) { /* its caller has moved on: nobody will ask for this reply */
        free(copy);
        entry_unlink(dd, e);
        atomic_fetch_add(&dd->acked_total, 1);
    } else {
        if (copy) {
            e->reply = copy;
            e->reply_len = len;
            e->status = status;
        } else {
            e->reply = lost_reply;
            e->reply_len = sizeof lost_reply - 1;
            e->status = 502;
        }
        e->bytes += e->reply_len;
        atomic_fetch_add(&dd->bytes, (long long)e->reply_len);
        e->done = 1;
    }
    if (sh->waiting)
        pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
}

void
msi_dd_abort(msi_dd *dd, msi_dd_entry *e)
{
    dd_shard *sh = e->shard;
    pthread_mutex_lock(&sh->mu);
    entry_unlink(dd, e);
    if (sh->waiting)
        pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
}

void
msi_dd_get_stats(msi_dd *dd, msi_dd_stats *out)
{
    out->entries = atomic_load(&dd->count);
    out->entries_peak = atomic_load(&dd->peak);
    out->callers = atomic_load(&dd->ncallers);
    out->waiting = atomic_load(&dd->waiting);
    out->bytes = atomic_load(&dd->bytes);
    out->max_entries = dd->max_entries;
    out->max_bytes = dd->max_bytes;
    out->acked_total = atomic_load(&dd->acked_total);
    out->expired_total = atomic_load(&dd->expired_total);
    out->stale_total = atomic_load(&dd->stale_total);
}

void
msi_dd_free(msi_dd *dd)
{
    if (!dd)
        return;
    for (size_t i = 0; i < NSHARDS; i++) {
        dd_shard *sh = &dd->shards[i];
        pthread_mutex_lock(&sh->mu);
        while (sh->head)
            entry_unlink(dd, sh->head);
        while (sh->chead)
            caller_unlink(dd, sh, sh->chead);
        pthread_mutex_unlock(&sh->mu);
        pthread_mutex_destroy(&sh->mu);
        pthread_cond_destroy(&sh->cv);
        free(sh->buckets);
        free(sh->cbuckets);
    }
    free(dd);
}
