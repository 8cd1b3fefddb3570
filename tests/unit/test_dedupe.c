/*
 * test_dedupe.c: the duplicate-request cache (src/lib/host/dedupe.c) as the bookkeeping it is:
 * request-id forms, kept replies and 422s, acknowledgements (RIFL) dropping entries at once
 * and refusing stale retries, running entries acknowledged meanwhile, waiting duplicates,
 * the bounds (entries, callers, bytes; exact over the shards, also with 16 threads at once),
 * expiry by sweep (room held in any shard), and the point of it all: with
 * acknowledgements the cache holds one entry per caller however many calls go through.
 */
#include "dedupe.h"
#include "msi.h"
#include "siphash.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static msi_dd_req
req(const char *rid, int has_ack, uint64_t ack)
{
    return (msi_dd_req){.rid = rid,
                        .has_ack = has_ack,
                        .acked_below = ack,
                        .body_h = {1, 2},
                        .deadline = msi_now_ms() + 10000};
}

/* Begins and, when it runs, finishes at once with reply "r<rid>". */
static msi_dd_verdict
call(msi_dd *dd, msi_dd_req q)
{
    msi_dd_entry *e = NULL;
    int st = 0;
    char *reply = NULL;
    size_t len = 0;
    msi_dd_verdict v = msi_dd_begin(dd, &q, &e, &st, &reply, &len);
    if (v == MSI_DD_RUN) {
        char r[160];
        int n = snprintf(r, sizeof r, "r%s", q.rid);
        msi_dd_finish(dd, e, 200, r, (size_t)n);
    }
    free(reply);
    return v;
}

static msi_dd_stats
stats(msi_dd *dd)
{
    msi_dd_stats s;
    msi_dd_get_stats(dd, &s);
    return s;
}

static void
test_dedupe_request_id_forms(void **state)
{
    (void)state;
    size_t clen;
    uint64_t seq;
    assert_true(msi_dd_rid_ok("0123abcd-17"));
    assert_true(msi_dd_rid_ok("plain"));
    assert_false(msi_dd_rid_ok(""));
    assert_false(msi_dd_rid_ok("a b"));
    char big[MSI_RID_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_false(msi_dd_rid_ok(big));
    big[MSI_RID_MAX] = '\0';
    assert_true(msi_dd_rid_ok(big));

    assert_true(msi_dd_rid_seq("0123abcd-17", &clen, &seq));
    assert_int_equal(clen, 8);
    assert_int_equal(seq, 17);
    assert_true(msi_dd_rid_seq("a-b-c-5", &clen, &seq)); /* split at the last '-' */
    assert_int_equal(clen, 5);
    assert_int_equal(seq, 5);
    assert_false(msi_dd_rid_seq("plain", &clen, &seq));
    assert_false(msi_dd_rid_seq("-5", &clen, &seq));     /* no caller */
    assert_false(msi_dd_rid_seq("abc-", &clen, &seq));   /* no seq */
    assert_false(msi_dd_rid_seq("abc-5x", &clen, &seq)); /* not decimal */

    uint64_t v;
    assert_true(msi_dd_parse_ack("0", &v));
    assert_int_equal(v, 0);
    assert_true(msi_dd_parse_ack("9999999999999999999", &v));   /* 19 digits */
    assert_false(msi_dd_parse_ack("10000000000000000000", &v)); /* 20 */
    assert_false(msi_dd_parse_ack("", &v));
    assert_false(msi_dd_parse_ack("-1", &v));
    assert_false(msi_dd_parse_ack("1 ", &v));
}

/* A kept reply for the same id and body; 422 for another body; a plain id kept too. */
static void
test_dedupe_kept_reply_and_reused(void **state)
{
    (void)state;
    msi_dd *dd = msi_dd_new(100, 1 << 20);
    assert_non_null(dd);
    const char *ids[] = {"c1-1", "plain-id"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(call(dd, req(ids[i], 0, 0)), MSI_DD_RUN);
        msi_dd_req q = req(ids[i], 0, 0);
        msi_dd_entry *e = NULL;
        int st = 0;
        char *reply = NULL;
        size_t len = 0;
        assert_int_equal(msi_dd_begin(dd, &q, &e, &st, &reply, &len), MSI_DD_CACHED);
        assert_int_equal(st, 200);
        char want[64];
        snprintf(want, sizeof want, "r%s", ids[i]);
        assert_string_equal(reply, want);
        assert_int_equal(len, strlen(want));
        free(reply);
        q.body_h[1] = 3;
        assert_int_equal(msi_dd_begin(dd, &q, &e, &st, &reply, &len), MSI_DD_REUSED);
    }
    assert_int_equal(stats(dd).entries, 2);
    msi_dd_free(dd);
}

/* Ms-Acked-Below drops the caller's entries below it at once, and a late retry below it is
 * refused, never run again. Other callers are untouched. */
static void
test_dedupe_ack_drops_and_refuses_stale(void **state)
{
    (void)state;
    msi_dd *dd = msi_dd_new(100, 1 << 20);
    assert_int_equal(call(dd, req("x-1", 1, 1)), MSI_DD_RUN);
    assert_int_equal(call(dd, req("y-1", 1, 1)), MSI_DD_RUN);
    assert_int_equal(call(dd, req("x-2", 1, 1)), MSI_DD_RUN); /* 1 not acknowledged yet */
    assert_int_equal(stats(dd).entries, 3);
    assert_int_equal(call(dd, req("x-3", 1, 3)), MSI_DD_RUN);
    msi_dd_stats s = stats(dd);
    assert_int_equal(s.entries, 2); /* x-3 and y-1 */
    assert_int_equal(s.acked_total, 2);
    assert_int_equal(s.callers, 2);
    assert_int_equal(call(dd, req("x-1", 1, 1)), MSI_DD_STALE);
    assert_int_equal(call(dd, req("x-2", 0, 0)), MSI_DD_STALE);
    assert_int_equal(stats(dd).stale_total, 2);
    assert_int_equal(call(dd, req("x-3", 1, 3)), MSI_DD_CACHED); /* its own retry */
    assert_int_equal(call(dd, req("y-1", 1, 1)), MSI_DD_CACHED);
    /* An acknowledgement never goes back. */
    assert_int_equal(call(dd, req("x-4", 1, 2)), MSI_DD_RUN);
    assert_int_equal(call(dd, req("x-2", 1, 2)), MSI_DD_STALE);
    /* One above its own seq counts as its own seq: the request itself stays. */
    assert_int_equal(call(dd, req("y-2", 1, 99)), MSI_DD_RUN);
    assert_int_equal(call(dd, req("y-2", 1, 2)), MSI_DD_CACHED);
    msi_dd_free(dd);
}

/* A running entry that is acknowledged meanwhile stays until it finishes, then goes. */
static void
test_dedupe_running_entry_acknowledged(void **state)
{
    (void)state;
    msi_dd *dd = msi_dd_new(100, 1 << 20);
    msi_dd_req q = req("x-1", 1, 1);
    msi_dd_entry *e1 = NULL;
    int st;
    char *reply = NULL;
    size_t len;
    assert_int_equal(msi_dd_begin(dd, &q, &e1, &st, &reply, &len), MSI_DD_RUN);
    assert_int_equal(call(dd, req("x-2", 1, 2)), MSI_DD_RUN);
    assert_int_equal(stats(dd).entries, 2); /* x-1 still running */
    msi_dd_sweep(dd, msi_now_ms() + 3600 * 1000);
    assert_int_equal(stats(dd).entries, 1); /* x-2 expired; a running entry never does */
    msi_dd_finish(dd, e1, 200, "late", 4);
    msi_dd_stats s = stats(dd);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.acked_total, 1);
    assert_int_equal(call(dd, req("x-1", 1, 1)), MSI_DD_STALE);
    msi_dd_free(dd);
}

typedef struct waiter {
    msi_dd *dd;
    const char *rid;
    msi_dd_verdict v;
    char *reply;
} waiter;

static void *
waiter_main(void *arg)
{
    waiter *w = arg;
    msi_dd_req q = req(w->rid, 1, 1);
    msi_dd_entry *e = NULL;
    int st;
    size_t len;
    w->v = msi_dd_begin(w->dd, &q, &e, &st, &w->reply, &len);
    return NULL;
}

/* A duplicate of a running attempt waits for its reply, or learns it is stale if the caller
 * acknowledged it meanwhile: it never runs it a second time. */
static void
test_dedupe_duplicate_waits(void **state)
{
    (void)state;
    msi_dd *dd = msi_dd_new(100, 1 << 20);
    for (int acked = 0; acked < 2; acked++) {
        const char *rid = acked ? "w-5" : "w-1";
        msi_dd_req q = req(rid, 1, acked ? 5 : 1);
        msi_dd_entry *e = NULL;
        int st;
        char *reply = NULL;
        size_t len;
        assert_int_equal(msi_dd_begin(dd, &q, &e, &st, &reply, &len), MSI_DD_RUN);
        waiter w = {.dd = dd, .rid = rid};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, waiter_main, &w), 0);
        /* Until the waiter is blocked on the entry (only the finish below can release it). */
        for (int i = 0; i < 10000 && stats(dd).waiting == 0; i++)
            usleep(1000);
        assert_int_equal(stats(dd).waiting, 1);
        if (acked)
            assert_int_equal(call(dd, req("w-6", 1, 6)), MSI_DD_RUN);
        msi_dd_finish(dd, e, 200, "first", 5);
        pthread_join(t, NULL);
        if (acked) {
            assert_int_equal(w.v, MSI_DD_STALE);
        } else {
            assert_int_equal(w.v, MSI_DD_CACHED);
            assert_string_equal(w.reply, "first");
        }
        free(w.reply);
    }
    msi_dd_free(dd);
}

/* A refusal before the function ran forgets the entry: a retry runs. */
static void
test_dedupe_abort(void **state)
{
    (void)state;
    msi_dd *dd = msi_dd_new(100, 1 << 20);
    msi_dd_req q = req("a-1", 1, 1);
    msi_dd_entry *e = NULL;
    int st;
    char *reply = NULL;
    size_t len;
    assert_int_equal(msi_dd_begin(dd, &q, &e, &st, &reply, &len), MSI_DD_RUN);
    msi_dd_abort(dd, e);
    assert_int_equal(stats(dd).entries, 0);
    assert_int_equal(call(dd, req("a-1", 1, 1)), MSI_DD_RUN);
    msi_dd_free(dd);
}

/* Full: a new caller is refused, a live entry is never evicted, and a known caller's own
 * acknowledgement makes room for its next call. Bytes bound too. */
static void
test_dedupe_bounds(void **state)
{
    (void)state;
    msi_dd *dd = msi_dd_new(2, 1 << 20);
    assert_int_equal(call(dd, req("x-1", 1, 1)), MSI_DD_RUN);
    assert_int_equal(call(dd, req("y-1", 1, 1)), MSI_DD_RUN);
    assert_int_equal(call(dd, req("z-1", 1, 1)), MSI_DD_FULL);
    assert_int_equal(call(dd, req("plain", 0, 0)), MSI_DD_FULL);
    assert_int_equal(call(dd, req("x-2", 1, 2)), MSI_DD_RUN); /* drops x-1 first */
    assert_int_equal(call(dd, req("y-1", 1, 1)), MSI_DD_CACHED);
    assert_int_equal(call(dd, req("x-2", 1, 2)), MSI_DD_CACHED);
    msi_dd_stats s = stats(dd);
    assert_int_equal(s.entries, 2);
    assert_int_equal(s.entries_peak, 2);
    /* Expired entries make room (the sweep that a full cache forces). */
    msi_dd_sweep(dd, msi_now_ms() + 3600 * 1000);
    s = stats(dd);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.callers, 0); /* no entries, and their time is over */
    assert_int_equal(s.expired_total, 2);
    assert_int_equal(call(dd, req("z-1", 1, 1)), MSI_DD_RUN);
    msi_dd_free(dd);

    dd = msi_dd_new(1000, 600); /* bytes */
    int ran = 0;
    char rid[32];
    for (int i = 0; i < 50; i++) {
        snprintf(rid, sizeof rid, "c%d-1", i);
        ran += call(dd, req(rid, 1, 1)) == MSI_DD_RUN;
    }
    assert_true(ran > 0 && ran < 50);
    /* Below the bound before the last one came: at most one caller, entry and reply over. */
    assert_true(stats(dd).bytes < 600 + 400);
    msi_dd_free(dd);
}

/* The cache is in shards with one bound over all of them: room held by expired entries in
 * another shard than the new request's is found too (a full shard sweeps every shard). */
static void
test_dedupe_expired_room_in_any_shard(void **state)
{
    (void)state;
    char old[32], fresh[32];
    for (int i = 0; i < 32; i++) {
        msi_dd *dd = msi_dd_new(1, 1 << 20);
        snprintf(old, sizeof old, "old%d-1", i);
        snprintf(fresh, sizeof fresh, "fresh%d-1", i);
        msi_dd_req q = req(old, 1, 1);
        q.deadline = msi_now_ms() - 5000; /* expired at once once done */
        assert_int_equal(call(dd, q), MSI_DD_RUN);
        assert_int_equal(stats(dd).entries, 1);
        assert_int_equal(call(dd, req(fresh, 1, 1)), MSI_DD_RUN);
        msi_dd_stats s = stats(dd);
        assert_int_equal(s.entries, 1);
        assert_int_equal(s.expired_total, 1);
        msi_dd_free(dd);
    }
}

enum { BT_THREADS = 16, BT_CALLS = 20000, BT_CAP = 8 };

typedef struct {
    msi_dd *dd;
    int id;
    long run, full;
} bt_arg;

static void *
bt_caller(void *p)
{
    bt_arg *a = p;
    char rid[48];
    for (int i = 1; i <= BT_CALLS; i++) {
        snprintf(rid, sizeof rid, "t%d-%d", a->id, i);
        msi_dd_verdict v = call(a->dd, req(rid, 1, (uint64_t)i));
        if (v == MSI_DD_RUN)
            a->run++;
        else if (v == MSI_DD_FULL)
            a->full++;
        else
            fail_msg("caller %d call %d: verdict %d", a->id, i, (int)v);
    }
    return NULL;
}

/* The entry and caller bounds hold exactly over shards, with many threads at once: the
 * peak never passes the cap, and every request is run or refused as full. */
static void
test_dedupe_bound_exact_under_threads(void **state)
{
    (void)state;
    msi_dd *dd = msi_dd_new(BT_CAP, 1 << 24);
    pthread_t t[BT_THREADS];
    bt_arg a[BT_THREADS];
    for (int i = 0; i < BT_THREADS; i++) {
        a[i] = (bt_arg){.dd = dd, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, bt_caller, &a[i]), 0);
    }
    long run = 0, full = 0;
    for (int i = 0; i < BT_THREADS; i++) {
        pthread_join(t[i], NULL);
        run += a[i].run;
        full += a[i].full;
    }
    msi_dd_stats s = stats(dd);
    assert_int_equal(run + full, (long)BT_THREADS * BT_CALLS);
    assert_true(run > 0);
    assert_true(s.entries_peak <= BT_CAP);
    assert_true(s.entries <= BT_CAP && s.callers <= BT_CAP);
    assert_int_equal(s.waiting, 0);
    msi_dd_free(dd);
}

/* The point: callers that acknowledge keep one entry each here, however many calls they
 * make (before acknowledgements, every call's entry stayed until its deadline + 1 s). */
static void
test_dedupe_bounded_by_callers_not_throughput(void **state)
{
    (void)state;
    enum { CALLERS = 8, CALLS = 200000 };
    msi_dd *dd = msi_dd_new(CALLERS, 1 << 20); /* room for exactly one entry per caller */
    uint64_t seq[CALLERS] = {0};
    char rid[32];
    for (int i = 0; i < CALLS; i++) {
        int c = (i * 7) % CALLERS;
        seq[c]++;
        snprintf(rid, sizeof rid, "caller%d-%llu", c, (unsigned long long)seq[c]);
        assert_int_equal(call(dd, req(rid, 1, seq[c])), MSI_DD_RUN);
    }
    msi_dd_stats s = stats(dd);
    assert_int_equal(s.entries, CALLERS);
    assert_int_equal(s.entries_peak, CALLERS);
    assert_int_equal(s.callers, CALLERS);
    assert_int_equal(s.acked_total, CALLS - CALLERS);
    assert_true(s.bytes < 4096);
    msi_dd_free(dd);
}

/* SipHash-2-4 against the paper's vectors: key 00..0f, messages 00..(n-1). */
static void
test_dedupe_siphash_vectors(void **state)
{
    (void)state;
    const uint64_t key[2] = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
    unsigned char m[64];
    for (int i = 0; i < 64; i++)
        m[i] = (unsigned char)i;
    const struct {
        size_t len;
        uint64_t h;
    } v64[] = {{0, 0x726fdb47dd0e0e31ull},  {1, 0x74f839c593dc67fdull},
               {7, 0xab0200f58b01d137ull},  {8, 0x93f5f5799a932462ull},
               {15, 0xa129ca6149be45e5ull}, {63, 0x958a324ceb064572ull}};
    for (size_t i = 0; i < sizeof v64 / sizeof v64[0]; i++)
        assert_true(msi_siphash64(key, m, v64[i].len) == v64[i].h);
    uint64_t out[2];
    msi_siphash128(key, m, 0, out);
    const unsigned char want[16] = {0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6,
                                    0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93};
    unsigned char got[16];
    for (int i = 0; i < 16; i++)
        got[i] = (unsigned char)(out[i / 8] >> (8 * (i % 8)));
    assert_memory_equal(got, want, 16);

    /* A cache's key is its own: the same body hashes alike in one cache, and differently
     * in another (with overwhelming probability). */
    msi_dd *a = msi_dd_new(4, 4096), *b = msi_dd_new(4, 4096);
    uint64_t ha[2], ha2[2], hb[2];
    msi_dd_body_hash(a, "{\"x\":1}", 7, ha);
    msi_dd_body_hash(a, "{\"x\":1}", 7, ha2);
    msi_dd_body_hash(b, "{\"x\":1}", 7, hb);
    assert_memory_equal(ha, ha2, sizeof ha);
    assert_memory_not_equal(ha, hb, sizeof ha);
    msi_dd_body_hash(a, "{\"x\":2}", 7, ha2);
    assert_memory_not_equal(ha, ha2, sizeof ha);
    msi_dd_free(a);
    msi_dd_free(b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dedupe_request_id_forms),
        cmocka_unit_test(test_dedupe_siphash_vectors),
        cmocka_unit_test(test_dedupe_kept_reply_and_reused),
        cmocka_unit_test(test_dedupe_ack_drops_and_refuses_stale),
        cmocka_unit_test(test_dedupe_running_entry_acknowledged),
        cmocka_unit_test(test_dedupe_duplicate_waits),
        cmocka_unit_test(test_dedupe_abort),
        cmocka_unit_test(test_dedupe_bounds),
        cmocka_unit_test(test_dedupe_expired_room_in_any_shard),
        cmocka_unit_test(test_dedupe_bound_exact_under_threads),
        cmocka_unit_test(test_dedupe_bounded_by_callers_not_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
