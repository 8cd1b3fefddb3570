/*
 * method_app.c: the MS_METHOD program of test_methods (docs/objects.md, "Methods"): the
 * methods below, served by its own instances in local mode, and a driver of them.
 *
 *   method_app deposits T N   creates an account {"balance":0}, T threads call deposit(+1)
 *                             N times each; prints "ok=.. failed=.. balance=.. distinct=.."
 *                             (distinct: successful calls whose result, the new balance, no
 *                             other call returned, each within 1..ok)
 *   method_app create         creates an account and prints its ref
 *   method_app balance REF    prints the account's balance
 *   method_app notfound       deposit on an absent object: prints the status name
 *   method_app conflict       spoil (a body that writes its own object behind the method's
 *                             back, so every attempt conflicts), then touch (a method with no
 *                             parameters and no result): prints both status names and
 *                             "touched=N"
 *   method_app zero           deposit without msd (run in zero mode): prints the status name
 */
#include <ms/ms.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The account's new balance. */
MS_METHOD(int64_t, deposit, (int64_t, amount))
{
    json_t *self = ms_self();
    int64_t b = (int64_t)json_integer_value(json_object_get(self, "balance")) + amount;
    json_object_set_new(self, "balance", json_integer(b));
    return b;
}
MS_OPTIONS(deposit, .concurrency = 8, .min_instances = 2, .max_instances = 2)

/* Breaks the rule on purpose: writes its own object (named again by `same`) inside the body,
 * so the method's If-Match fails on every attempt. */
MS_METHOD(int64_t, spoil, (ms_ref, same))
{
    json_t *v = json_pack("{s:i}", "balance", -1);
    ms_obj_put(&same, v, NULL, NULL);
    json_decref(v);
    json_object_set_new(ms_self(), "spoilt", json_true());
    return 1;
}

MS_METHOD(void, touch)
{
    json_t *self = ms_self();
    json_int_t n = json_integer_value(json_object_get(self, "touched"));
    json_object_set_new(self, "touched", json_integer(n + 1));
}

static ms_ref account;
static int calls_each;
static int64_t *results; /* per call: the balance it returned, 0 when it failed */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char first_error[512];

static void *
depositor(void *arg)
{
    int64_t *mine = (int64_t *)arg;
    for (int i = 0; i < calls_each; i++) {
        int64_t b = 0;
        ms_status st = deposit_try(&b, account, 1);
        mine[i] = st == MS_OK ? b : 0;
        if (st != MS_OK) {
            pthread_mutex_lock(&mu);
            if (!first_error[0])
                snprintf(first_error, sizeof first_error, "%s: %s", ms_status_name(st),
                         ms_last_error());
            pthread_mutex_unlock(&mu);
        }
    }
    return NULL;
}

static int64_t
balance_of(const ms_ref *r)
{
    json_t *v = NULL;
    if (ms_obj_get(r, &v, NULL) != MS_OK) {
        fprintf(stderr, "ms_obj_get: %s\n", ms_last_error());
        exit(1);
    }
    int64_t b = (int64_t)json_integer_value(json_object_get(v, "balance"));
    json_decref(v);
    return b;
}

static void
create(ms_ref *r)
{
    json_t *v = json_pack("{s:i}", "balance", 0);
    if (ms_obj_create(r, "t", "accounts", v) != MS_OK) {
        fprintf(stderr, "ms_obj_create: %s\n", ms_last_error());
        exit(1);
    }
    json_decref(v);
}

static int
deposits(int threads, int each)
{
    create(&account);
    calls_each = each;
    int total = threads * each;
    results = calloc((size_t)total, sizeof *results);
    pthread_t th[64];
    for (int t = 0; t < threads; t++)
        pthread_create(&th[t], NULL, depositor, results + (size_t)t * (size_t)each);
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    int ok = 0;
    for (int i = 0; i < total; i++)
        ok += results[i] != 0;
    char *seen = calloc((size_t)total + 1, 1);
    int distinct = 0;
    for (int i = 0; i < total; i++) {
        int64_t b = results[i];
        if (b >= 1 && b <= ok && !seen[b]) {
            seen[b] = 1;
            distinct++;
        }
    }
    printf("ok=%d failed=%d balance=%lld distinct=%d\n", ok, total - ok,
           (long long)balance_of(&account), distinct);
    if (first_error[0])
        printf("first failure: %s\n", first_error);
    free(seen);
    free(results);
    return 0;
}

int
main(int argc, char **argv)
{
    ms_status st = ms_init(&argc, &argv);
    if (st != MS_OK) {
        fprintf(stderr, "ms_init: %s: %s\n", ms_status_name(st), ms_last_error());
        return 1;
    }
    int rc = 0;
    if (argc == 4 && strcmp(argv[1], "deposits") == 0) {
        rc = deposits(atoi(argv[2]), atoi(argv[3]));
    } else if (argc == 2 && strcmp(argv[1], "create") == 0) {
        ms_ref r = {NULL};
        create(&r);
        printf("%s\n", r.uri);
        ms_ref_free(&r);
    } else if (argc == 3 && strcmp(argv[1], "balance") == 0) {
        ms_ref r = {argv[2]};
        printf("%lld\n", (long long)balance_of(&r));
    } else if (argc == 2 && strcmp(argv[1], "notfound") == 0) {
        ms_ref r = {(char *)"ms://objects/t/accounts/absent"};
        int64_t b = 7;
        st = deposit_try(&b, r, 1);
        printf("%s %lld\n", ms_status_name(st), (long long)b);
    } else if (argc == 2 && strcmp(argv[1], "conflict") == 0) {
        ms_ref r = {NULL};
        create(&r);
        int64_t x = 0;
        ms_status s1 = spoil_try(&x, r, r);
        ms_status s2 = touch_try(r);
        ms_status s3 = touch_try(r);
        json_t *v = NULL;
        ms_obj_get(&r, &v, NULL);
        printf("%s %s %s touched=%lld spoilt=%d\n", ms_status_name(s1), ms_status_name(s2),
               ms_status_name(s3), (long long)json_integer_value(json_object_get(v, "touched")),
               json_object_get(v, "spoilt") != NULL);
        json_decref(v);
        ms_ref_free(&r);
    } else if (argc == 2 && strcmp(argv[1], "zero") == 0) {
        ms_ref r = {(char *)"ms://objects/t/accounts/a"};
        int64_t b = 0;
        st = deposit_try(&b, r, 1);
        printf("%s\n", ms_status_name(st));
    } else {
        fprintf(stderr, "usage: see method_app.c\n");
        rc = 2;
    }
    ms_shutdown();
    return rc;
}
