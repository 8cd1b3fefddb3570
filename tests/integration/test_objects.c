/*
 * test_objects.c: the object store's REST API against a real msd (docs/objects.md): create,
 * get, put, patch (JSON merge patch), delete, listing and paging; ETags and If-Match (412
 * MS_ECONFLICT on a stale one, 404 on a deleted object); bodies too large (413), malformed or
 * not objects (400); bad names (400); credentials (401; the admin token passes); transactions
 * all or nothing, and a retry with the same request id answered from the record; concurrent
 * compare-and-swap writers losing no update; objects, ETags and records surviving SIGTERM and
 * SIGKILL of msd.
 *
 * Two backends, one set of tests: `test_objects` runs them against msd's default SQLite
 * store; `test_objects pg` (ctest test_objects_pg) against a PostgreSQL 15 server that it
 * starts itself (pg_server.h) and an msd started with --objects postgresql://..., and adds
 * the server going away mid-run: object requests answer 503 MS_EUNAVAILABLE naming
 * PostgreSQL while the rest of msd keeps answering, an msd started meanwhile starts, and both
 * recover once the server is back.
 *
 * Requests go through libcurl here (not the harness's client) to see the answers' headers
 * (ETag, Location, Ms-Replayed).
 */
#include "harness.h"
#include "pg_server.h"

#include <curl/curl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static h_msd *M;
static h_pg *PG; /* test_objects pg: the PostgreSQL server of the object store */

static int
setup(void **state)
{
    (void)state;
    M = h_msd_start(NULL);
    return M ? 0 : -1;
}

static int
setup_pg(void **state)
{
    (void)state;
    static const char *args[3];
    if (!(PG = h_pg_start()))
        return -1;
    args[0] = "--objects";
    args[1] = PG->url;
    M = h_msd_start(args);
    return M ? 0 : -1;
}

/* ------------------------------------------------------------------------------------------
 * Requests.
 * ---------------------------------------------------------------------------------------- */

typedef struct resp {
    long status;
    char *body;
    size_t len;
    json_t *json;
    char etag[64];
    char location[512];
    int replayed;
} resp;

static const char NO_TOKEN[] = "";

static size_t
on_body(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    char *nb = realloc(r->body, r->len + sz * n + 1);
    if (!nb)
        return 0;
    memcpy(nb + r->len, p, sz * n);
    r->len += sz * n;
    nb[r->len] = '\0';
    r->body = nb;
    return sz * n;
}

static void
header_value(const char *line, size_t n, const char *name, char *out, size_t outlen)
{
    size_t k = strlen(name);
    if (n <= k + 1 || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return;
    const char *v = line + k + 1;
    const char *e = line + n;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
        e--;
    snprintf(out, outlen, "%.*s", (int)(e - v), v);
}

static size_t
on_header(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    char rep[8] = "";
    header_value(p, sz * n, "ETag", r->etag, sizeof r->etag);
    header_value(p, sz * n, "Location", r->location, sizeof r->location);
    header_value(p, sz * n, "Ms-Replayed", rep, sizeof rep);
    if (rep[0])
        r->replayed = 1;
    return sz * n;
}

static void
resp_free(resp *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* One request to msd; token NULL: the call token; NO_TOKEN: none. extra: headers
 * ("If-Match: ..."), NULL-terminated. The previous content of r is freed. */
static long
req(resp *r, const char *method, const char *path, const char *token, const char *body,
    const char *const *extra)
{
    resp_free(r);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char url[1024], auth[200];
    snprintf(url, sizeof url, "http://%s%s", M->addr, path);
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    hl = curl_slist_append(hl, "Content-Type: application/json");
    if (token != NO_TOKEN) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token ? token : M->call);
        hl = curl_slist_append(hl, auth);
    }
    for (int i = 0; extra && extra[i]; i++)
        hl = curl_slist_append(hl, extra[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    else
        fprintf(stderr, "%s %s: %s\n", method, path, curl_easy_strerror(rc));
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    if (r->body)
        r->json = json_loads(r->body, 0, NULL);
    return r->status;
}

static const char *
err_code(const resp *r)
{
    const char *c = json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
    return c ? c : "";
}

/* Asserts the answer's status (and error code when code is not NULL), printing the body. */
#define EXPECT(r, st, code)                                                                        \
    do {                                                                                           \
        if ((r)->status != (st) || ((code) && strcmp(err_code(r), (code) ? (code) : "") != 0))     \
            fail_msg("line %d: HTTP %ld (wanted %d %s): %s", __LINE__, (r)->status, (st),          \
                     (code) ? (code) : "", (r)->body ? (r)->body : "");                            \
    } while (0)

/* The id at the end of a Location. */
static const char *
loc_id(const resp *r)
{
    const char *s = strrchr(r->location, '/');
    assert_non_null(s);
    return s + 1;
}

static long long
json_int(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* ------------------------------------------------------------------------------------------
 * The tests.
 * ---------------------------------------------------------------------------------------- */

static void
test_objects_crud_and_etags(void **state)
{
    (void)state;
    resp r = {0};
    char path[300], id[64], e1[64], e2[64], e3[64], e4[64], im[100];

    req(&r, "POST", "/v1/objects/t1/acct", NULL, "{\"owner\":\"ann\",\"balance\":10}", NULL);
    EXPECT(&r, 201, NULL);
    assert_true(strncmp(r.location, "/v1/objects/t1/acct/", 20) == 0);
    assert_true(r.etag[0] == '"');
    assert_int_equal(json_int(r.json, "balance"), 10);
    snprintf(id, sizeof id, "%s", loc_id(&r));
    snprintf(e1, sizeof e1, "%s", r.etag);
    snprintf(path, sizeof path, "/v1/objects/t1/acct/%s", id);

    req(&r, "GET", path, NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    assert_string_equal(r.etag, e1);
    assert_string_equal(json_string_value(json_object_get(r.json, "owner")), "ann");

    /* PUT with the current ETag: a new ETag. */
    snprintf(im, sizeof im, "If-Match: %s", e1);
    req(&r, "PUT", path, NULL, "{\"owner\":\"ann\",\"balance\":20}",
        (const char *const[]){im, NULL});
    EXPECT(&r, 200, NULL);
    snprintf(e2, sizeof e2, "%s", r.etag);
    assert_string_not_equal(e1, e2);

    /* The stale one: 412 MS_ECONFLICT, nothing written. */
    req(&r, "PUT", path, NULL, "{\"balance\":0}", (const char *const[]){im, NULL});
    EXPECT(&r, 412, "MS_ECONFLICT");
    req(&r, "PATCH", path, NULL, "{\"balance\":0}", (const char *const[]){im, NULL});
    EXPECT(&r, 412, "MS_ECONFLICT");
    req(&r, "DELETE", path, NULL, NULL, (const char *const[]){im, NULL});
    EXPECT(&r, 412, "MS_ECONFLICT");
    req(&r, "GET", path, NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    assert_string_equal(r.etag, e2);
    assert_int_equal(json_int(r.json, "balance"), 20);

    /* PATCH: RFC 7396 merge patch (null removes, objects merge), with a list of ETags. */
    snprintf(im, sizeof im, "If-Match: \"999999\", %s", e2);
    req(&r, "PATCH", path, NULL, "{\"owner\":null,\"limits\":{\"daily\":5},\"balance\":25}",
        (const char *const[]){im, NULL});
    EXPECT(&r, 200, NULL);
    snprintf(e3, sizeof e3, "%s", r.etag);
    assert_string_not_equal(e3, e2);
    assert_null(json_object_get(r.json, "owner"));
    assert_int_equal(json_int(r.json, "balance"), 25);
    req(&r, "PATCH", path, NULL, "{\"limits\":{\"weekly\":20}}", NULL);
    EXPECT(&r, 200, NULL);
    req(&r, "GET", path, NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    assert_int_equal(json_int(json_object_get(r.json, "limits"), "daily"), 5);
    assert_int_equal(json_int(json_object_get(r.json, "limits"), "weekly"), 20);
    assert_int_equal(json_object_size(r.json), 2);
    snprintf(e4, sizeof e4, "%s", r.etag);

    /* If-Match: * passes for an existing object; a weak ETag never matches; junk is 400. */
    req(&r, "PUT", path, NULL, "{\"balance\":30}", (const char *const[]){"If-Match: *", NULL});
    EXPECT(&r, 200, NULL);
    snprintf(e4, sizeof e4, "%s", r.etag);
    snprintf(im, sizeof im, "If-Match: W/%s", e4);
    req(&r, "PUT", path, NULL, "{\"balance\":31}", (const char *const[]){im, NULL});
    EXPECT(&r, 412, "MS_ECONFLICT");
    req(&r, "PUT", path, NULL, "{\"balance\":31}", (const char *const[]){"If-Match: \"x\"", NULL});
    EXPECT(&r, 400, "MS_EBADARGS");

    /* DELETE with the current ETag: 204; then 404 everywhere. */
    snprintf(im, sizeof im, "If-Match: %s", e4);
    req(&r, "DELETE", path, NULL, NULL, (const char *const[]){im, NULL});
    EXPECT(&r, 204, NULL);
    req(&r, "GET", path, NULL, NULL, NULL);
    EXPECT(&r, 404, "MS_ENOTFOUND");
    req(&r, "DELETE", path, NULL, NULL, NULL);
    EXPECT(&r, 404, "MS_ENOTFOUND");
    req(&r, "PATCH", path, NULL, "{\"a\":1}", NULL);
    EXPECT(&r, 404, "MS_ENOTFOUND");
    req(&r, "PUT", path, NULL, "{\"a\":1}", (const char *const[]){im, NULL});
    EXPECT(&r, 404, "MS_ENOTFOUND");
    req(&r, "PUT", path, NULL, "{\"a\":1}", (const char *const[]){"If-Match: *", NULL});
    EXPECT(&r, 404, "MS_ENOTFOUND");

    /* PUT without If-Match creates (201) under the caller's id, with an ETag never seen
     * before: the old ETags stay stale. */
    req(&r, "PUT", path, NULL, "{\"a\":1}", NULL);
    EXPECT(&r, 201, NULL);
    const char *olds[] = {e1, e2, e3, e4};
    for (int i = 0; i < 4; i++)
        assert_string_not_equal(r.etag, olds[i]);
    req(&r, "PUT", path, NULL, "{\"a\":2}", (const char *const[]){im, NULL});
    EXPECT(&r, 412, "MS_ECONFLICT");
    req(&r, "PUT", "/v1/objects/t1/acct/well-known.config_1", NULL, "{\"k\":true}", NULL);
    EXPECT(&r, 201, NULL);
    req(&r, "GET", "/v1/objects/t1/acct/well-known.config_1", NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    assert_true(json_is_true(json_object_get(r.json, "k")));

    /* Other methods: 405. */
    req(&r, "POST", path, NULL, "{}", NULL);
    EXPECT(&r, 405, NULL);
    req(&r, "DELETE", "/v1/objects/t1/acct", NULL, NULL, NULL);
    EXPECT(&r, 405, NULL);
    resp_free(&r);
}

static void
test_objects_list_pages(void **state)
{
    (void)state;
    resp r = {0};
    enum { N = 25 };
    char ids[N][64];
    for (int i = 0; i < N; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"i\":%d}", i);
        req(&r, "POST", "/v1/objects/t2/items", NULL, body, NULL);
        EXPECT(&r, 201, NULL);
        snprintf(ids[i], sizeof ids[i], "%s", loc_id(&r));
    }
    req(&r, "POST", "/v1/objects/t2/other", NULL, "{\"i\":-1}", NULL);
    EXPECT(&r, 201, NULL);
    req(&r, "POST", "/v1/objects/t2x/items", NULL, "{\"i\":-2}", NULL);
    EXPECT(&r, 201, NULL);

    /* Pages of 10: 10, 10, 5, ids ascending, each object once, nothing of another collection. */
    int seen[N] = {0}, total = 0, pages = 0;
    char after[64] = "", prev[64] = "";
    for (;;) {
        char path[200];
        snprintf(path, sizeof path, "/v1/objects/t2/items?limit=10%s%s", after[0] ? "&after=" : "",
                 after);
        req(&r, "GET", path, NULL, NULL, NULL);
        EXPECT(&r, 200, NULL);
        json_t *items = json_object_get(r.json, "items");
        assert_true(json_is_array(items));
        pages++;
        assert_int_equal(json_array_size(items), pages < 3 ? 10 : 5);
        size_t k;
        json_t *it;
        json_array_foreach(items, k, it)
        {
            const char *id = json_string_value(json_object_get(it, "id"));
            assert_non_null(id);
            assert_true(strcmp(id, prev) > 0);
            snprintf(prev, sizeof prev, "%s", id);
            assert_true(json_string_value(json_object_get(it, "etag"))[0] == '"');
            long long i = json_int(json_object_get(it, "value"), "i");
            assert_true(i >= 0 && i < N);
            assert_string_equal(ids[i], id);
            seen[i]++;
            total++;
        }
        json_t *next = json_object_get(r.json, "next");
        if (json_is_null(next))
            break;
        assert_true(pages < 3);
        snprintf(after, sizeof after, "%s", json_string_value(next));
        assert_string_equal(after, prev);
    }
    assert_int_equal(pages, 3);
    assert_int_equal(total, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);

    /* Default limit, an empty collection, bad limits and afters. */
    req(&r, "GET", "/v1/objects/t2/items", NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), N);
    req(&r, "GET", "/v1/objects/t2/none", NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
    assert_true(json_is_null(json_object_get(r.json, "next")));
    const char *bad[] = {"?limit=0",  "?limit=1001", "?limit=x",
                         "?limit=-1", "?after=..",   "?after=a%2Fb"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char path[200];
        snprintf(path, sizeof path, "/v1/objects/t2/items%s", bad[i]);
        req(&r, "GET", path, NULL, NULL, NULL);
        EXPECT(&r, 400, "MS_EBADARGS");
    }
    req(&r, "GET", "/v1/objects/t2/items?limit=1000", NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    resp_free(&r);
}

static void
test_objects_bad_input(void **state)
{
    (void)state;
    resp r = {0};
    /* Credentials: none or a bad token is 401; the admin token passes. */
    req(&r, "GET", "/v1/objects/t3/c", NO_TOKEN, NULL, NULL);
    EXPECT(&r, 401, "MS_EAUTH");
    req(&r, "POST", "/v1/objects/t3/c", NO_TOKEN, "{}", NULL);
    EXPECT(&r, 401, "MS_EAUTH");
    req(&r, "POST", "/v1/txn", NO_TOKEN, "{}", NULL);
    EXPECT(&r, 401, "MS_EAUTH");
    req(&r, "GET", "/v1/objects/t3/c",
        "0000000000000000000000000000000000000000000000000000000000000000", NULL, NULL);
    EXPECT(&r, 401, "MS_EAUTH");
    req(&r, "POST", "/v1/objects/t3/c", M->admin, "{\"by\":\"admin\"}", NULL);
    EXPECT(&r, 201, NULL);

    /* Bodies: malformed, not an object, empty: 400. */
    const char *bodies[] = {"{",    "[1,2]",      "\"s\"", "42",
                            "null", "{\"a\":1}x", "",      "{\"a\":\"\xff\"}"};
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        req(&r, "POST", "/v1/objects/t3/c", NULL, bodies[i], NULL);
        EXPECT(&r, 400, "MS_EBADARGS");
        req(&r, "PUT", "/v1/objects/t3/c/x", NULL, bodies[i], NULL);
        EXPECT(&r, 400, "MS_EBADARGS");
        req(&r, "PATCH", "/v1/objects/t3/c/x", NULL, bodies[i], NULL);
        EXPECT(&r, 400, "MS_EBADARGS");
    }
    /* Nested deeper than 64: 400. */
    char deep[800] = ""; /* 70 x 5 + 1 + 70 + 1 */
    for (int i = 0; i < 70; i++)
        strcat(deep, "{\"a\":");
    strcat(deep, "1");
    for (int i = 0; i < 70; i++)
        strcat(deep, "}");
    req(&r, "POST", "/v1/objects/t3/c", NULL, deep, NULL);
    EXPECT(&r, 400, "MS_EBADARGS");

    /* Names. */
    char longname[200];
    memset(longname, 'n', 129);
    longname[129] = '\0';
    const char *paths[] = {
        "/v1/objects/t3/c/..",     "/v1/objects/t3/c/.", "/v1/objects/t3/a%20b/x",
        "/v1/objects/t%2A/c",      "/v1/objects/t3/c/",  "/v1/objects//c/x",
        "/v1/objects/t3/c/%C3%A9",
    };
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        req(&r, "GET", paths[i], NULL, NULL, NULL);
        EXPECT(&r, 400, "MS_EBADARGS");
    }
    char path[400];
    snprintf(path, sizeof path, "/v1/objects/t3/c/%s", longname);
    req(&r, "PUT", path, NULL, "{}", NULL);
    EXPECT(&r, 400, "MS_EBADARGS");
    snprintf(path, sizeof path, "/v1/objects/%s/c", longname);
    req(&r, "POST", path, NULL, "{}", NULL);
    EXPECT(&r, 400, "MS_EBADARGS");
    longname[128] = '\0'; /* 128 is fine */
    snprintf(path, sizeof path, "/v1/objects/t3/c/%s", longname);
    req(&r, "PUT", path, NULL, "{}", NULL);
    EXPECT(&r, 201, NULL);
    req(&r, "GET", "/v1/objects/t3/c/x/y", NULL, NULL, NULL);
    EXPECT(&r, 404, "MS_ENOTFOUND");
    req(&r, "GET", "/v1/objects/t3", NULL, NULL, NULL);
    EXPECT(&r, 404, "MS_ENOTFOUND");

    /* Over 1 MiB: 413 before the body is read (the harness's client copes with the early
     * answer); a value that a patch grows past 1 MiB: 413 too, nothing written. */
    size_t over = (1u << 20) + 1;
    char *huge = malloc(over + 1);
    assert_non_null(huge);
    memset(huge, ' ', over);
    huge[0] = '{';
    huge[over - 1] = '}';
    huge[over] = '\0';
    h_resp hr;
    h_http(M, "POST", "/v1/objects/t3/c", M->call, huge, over, NULL, &hr);
    assert_int_equal(hr.status, 413);
    h_resp_free(&hr);
    h_http(M, "PUT", "/v1/objects/t3/c/x", M->call, huge, over, NULL, &hr);
    assert_int_equal(hr.status, 413);
    h_resp_free(&hr);
    h_http(M, "POST", "/v1/txn", M->call, huge, over, NULL, &hr);
    assert_int_equal(hr.status, 413);
    h_resp_free(&hr);
    size_t half = 600 * 1024;
    snprintf(huge, over, "{\"a\":\"%0*d\"}", (int)half, 0);
    req(&r, "PUT", "/v1/objects/t3/c/grow", NULL, huge, NULL);
    EXPECT(&r, 201, NULL);
    snprintf(huge, over, "{\"b\":\"%0*d\"}", (int)half, 0);
    req(&r, "PATCH", "/v1/objects/t3/c/grow", NULL, huge, NULL);
    EXPECT(&r, 413, "MS_ETOOBIG");
    free(huge);
    req(&r, "GET", "/v1/objects/t3/c/grow", NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    assert_null(json_object_get(r.json, "b"));

    /* msd still answers. */
    req(&r, "GET", "/v1/health", NO_TOKEN, NULL, NULL);
    EXPECT(&r, 200, NULL);
    resp_free(&r);
}

/* Creates an object with {"n":n} in t4/acct; its id and ETag. */
static void
make(const char *coll, int n, char id[64], char etag[64])
{
    resp r = {0};
    char body[64], path[100];
    snprintf(body, sizeof body, "{\"n\":%d}", n);
    snprintf(path, sizeof path, "/v1/objects/t4/%s", coll);
    req(&r, "POST", path, NULL, body, NULL);
    EXPECT(&r, 201, NULL);
    snprintf(id, 64, "%s", loc_id(&r));
    snprintf(etag, 64, "%s", r.etag);
    resp_free(&r);
}

static long long
get_n(const char *id, char etag[64])
{
    resp r = {0};
    char path[200];
    snprintf(path, sizeof path, "/v1/objects/t4/acct/%s", id);
    req(&r, "GET", path, NULL, NULL, NULL);
    long long n = r.status == 200 ? json_int(r.json, "n") : -r.status;
    if (etag)
        snprintf(etag, 64, "%s", r.etag);
    resp_free(&r);
    return n;
}

/* A JSON string literal of an ETag ("\"7\"" -> "\"\\\"7\\\"\""). */
static const char *
q(const char *etag, char *buf)
{
    snprintf(buf, 80, "\"\\\"%.*s\\\"\"", (int)strlen(etag) - 2, etag + 1);
    return buf;
}

static void
test_objects_txn_all_or_nothing_and_replay(void **state)
{
    (void)state;
    resp r = {0};
    char a[64], ea[64], b[64], eb[64], d[64], ed[64], q1[80], q2[80], q3[80], body[2048];
    make("acct", 100, a, ea);
    make("acct", 0, b, eb);
    make("acct", 7, d, ed);

    /* A transfer whose second condition is stale: 412 naming op 1, nothing applied. */
    snprintf(body, sizeof body,
             "{\"ops\":[{\"op\":\"put\",\"ref\":\"ms://objects/t4/acct/%s\",\"if_match\":%s,"
             "\"value\":{\"n\":70}},{\"op\":\"put\",\"ref\":\"ms://objects/t4/acct/%s\","
             "\"if_match\":\"\\\"1\\\"\",\"value\":{\"n\":30}}]}",
             a, q(ea, q1), b);
    req(&r, "POST", "/v1/txn", NULL, body, NULL);
    EXPECT(&r, 412, "MS_ECONFLICT");
    assert_int_equal(json_int(json_object_get(r.json, "error"), "op"), 1);
    char now[64];
    assert_int_equal(get_n(a, now), 100);
    assert_string_equal(now, ea);
    assert_int_equal(get_n(b, now), 0);
    assert_string_equal(now, eb);

    /* A missing object: 404 naming its op, nothing applied. */
    snprintf(body, sizeof body,
             "{\"ops\":[{\"op\":\"patch\",\"ref\":\"ms://objects/t4/acct/%s\",\"value\":{\"n\":1}},"
             "{\"op\":\"delete\",\"ref\":\"ms://objects/t4/acct/nosuch\"}]}",
             a);
    req(&r, "POST", "/v1/txn", NULL, body, NULL);
    EXPECT(&r, 404, "MS_ENOTFOUND");
    assert_int_equal(get_n(a, now), 100);
    assert_string_equal(now, ea);

    /* The transfer with good conditions, a check, a create and a delete: all applied. */
    const char *const rid[] = {"Ms-Request-Id: objtest-1", NULL};
    snprintf(body, sizeof body,
             "{\"ops\":[{\"op\":\"put\",\"ref\":\"ms://objects/t4/acct/%s\",\"if_match\":%s,"
             "\"value\":{\"n\":70}},{\"op\":\"patch\",\"ref\":\"ms://objects/t4/acct/%s\","
             "\"if_match\":%s,\"value\":{\"n\":30}},{\"op\":\"check\",\"ref\":"
             "\"ms://objects/t4/acct/%s\",\"if_match\":%s},{\"op\":\"create\",\"ref\":"
             "\"ms://objects/t4/log\",\"value\":{\"moved\":30}},{\"op\":\"delete\",\"ref\":"
             "\"ms://objects/t4/acct/%s\",\"if_match\":%s}]}",
             a, q(ea, q1), b, q(eb, q2), a, q(ea, q3), d, q(ed, q3));
    /* (the check names A's old ETag after A's put in the same transaction: it must fail) */
    req(&r, "POST", "/v1/txn", NULL, body, rid);
    EXPECT(&r, 412, "MS_ECONFLICT");
    assert_int_equal(json_int(json_object_get(r.json, "error"), "op"), 2);
    assert_false(r.replayed);
    assert_int_equal(get_n(a, NULL), 100);
    assert_int_equal(get_n(b, NULL), 0);
    assert_int_equal(get_n(d, NULL), 7);
    /* Its retry is answered from the record, also a refusal. */
    req(&r, "POST", "/v1/txn", NULL, body, rid);
    EXPECT(&r, 412, "MS_ECONFLICT");
    assert_true(r.replayed);

    const char *const rid2[] = {"Ms-Request-Id: objtest-2", NULL};
    snprintf(body, sizeof body,
             "{\"ops\":[{\"op\":\"check\",\"ref\":\"ms://objects/t4/acct/%s\",\"if_match\":%s},"
             "{\"op\":\"put\",\"ref\":\"ms://objects/t4/acct/%s\",\"if_match\":%s,"
             "\"value\":{\"n\":70}},{\"op\":\"patch\",\"ref\":\"ms://objects/t4/acct/%s\","
             "\"if_match\":%s,\"value\":{\"n\":30}},{\"op\":\"create\",\"ref\":"
             "\"ms://objects/t4/log\",\"value\":{\"moved\":30}},{\"op\":\"delete\",\"ref\":"
             "\"ms://objects/t4/acct/%s\",\"if_match\":%s}]}",
             a, q(ea, q1), a, q(ea, q1), b, q(eb, q2), d, q(ed, q3));
    req(&r, "POST", "/v1/txn", NULL, body, rid2);
    EXPECT(&r, 200, NULL);
    assert_false(r.replayed);
    json_t *res = json_object_get(r.json, "results");
    assert_int_equal(json_array_size(res), 5);
    char first[4096];
    snprintf(first, sizeof first, "%s", r.body);
    char ea2[64], eb2[64];
    assert_int_equal(get_n(a, ea2), 70);
    assert_int_equal(get_n(b, eb2), 30);
    assert_int_equal(get_n(d, NULL), -404);
    assert_string_equal(json_string_value(json_object_get(json_array_get(res, 1), "etag")), ea2);
    const char *logref = json_string_value(json_object_get(json_array_get(res, 3), "ref"));
    assert_non_null(logref);
    assert_true(strncmp(logref, "ms://objects/t4/log/", 20) == 0);
    char logpath[200];
    snprintf(logpath, sizeof logpath, "/v1/objects/t4/log/%s", logref + 20);

    /* The retry (same id, same body): the recorded answer, nothing applied again (the
     * conditions would fail now, and no second log entry is made). */
    req(&r, "POST", "/v1/txn", NULL, body, rid2);
    EXPECT(&r, 200, NULL);
    assert_true(r.replayed);
    assert_string_equal(r.body, first);
    char e[64];
    assert_int_equal(get_n(a, e), 70);
    assert_string_equal(e, ea2);
    assert_int_equal(get_n(b, e), 30);
    assert_string_equal(e, eb2);
    req(&r, "GET", "/v1/objects/t4/log", NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 1);
    req(&r, "GET", logpath, NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);

    /* Same id, another body: 422 MS_EREUSED. */
    req(&r, "POST", "/v1/txn", NULL,
        "{\"ops\":[{\"op\":\"create\",\"ref\":\"ms://objects/t4/log\",\"value\":{}}]}", rid2);
    EXPECT(&r, 422, "MS_EREUSED");

    /* Ms-Acked-Below drops the caller's records below it, and the store remembers it: a
     * request below it is stale (the caller had its answer), refused and not run. */
    const char *const rid3[] = {"Ms-Request-Id: objtest-3", "Ms-Acked-Below: 3", NULL};
    req(&r, "POST", "/v1/txn", NULL,
        "{\"ops\":[{\"op\":\"create\",\"ref\":\"ms://objects/t4/log\",\"value\":{}}]}", rid3);
    EXPECT(&r, 200, NULL);
    req(&r, "POST", "/v1/txn", NULL, body, rid2);
    EXPECT(&r, 422, "MS_EREUSED");
    assert_non_null(strstr(r.body, "below its caller's Ms-Acked-Below"));
    req(&r, "GET", "/v1/objects/t4/log", NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 2);
    /* A request cannot acknowledge itself. */
    const char *const rid4[] = {"Ms-Request-Id: objtest-4", "Ms-Acked-Below: 5", NULL};
    req(&r, "POST", "/v1/txn", NULL,
        "{\"ops\":[{\"op\":\"create\",\"ref\":\"ms://objects/t4/log\",\"value\":{}}]}", rid4);
    EXPECT(&r, 400, "MS_EBADARGS");

    /* Bad bodies and headers: 400, nothing applied. */
    const char *bad[] = {
        "{}",
        "[]",
        "{\"ops\":[]}",
        "{\"ops\":{}}",
        "{\"ops\":[1]}",
        "{\"ops\":[{\"op\":\"frob\",\"ref\":\"ms://objects/t4/acct/x\"}]}",
        "{\"ops\":[{\"op\":\"delete\",\"ref\":\"ms://objects/t4/acct\"}]}",
        "{\"ops\":[{\"op\":\"delete\",\"ref\":\"ms://objects/t4/acct/..\"}]}",
        "{\"ops\":[{\"op\":\"delete\",\"ref\":\"http://x/t4/acct/a\"}]}",
        "{\"ops\":[{\"op\":\"check\",\"ref\":\"ms://objects/t4/acct/a\"}]}",
        "{\"ops\":[{\"op\":\"put\",\"ref\":\"ms://objects/t4/acct/a\",\"value\":[1]}]}",
        "{\"ops\":[{\"op\":\"put\",\"ref\":\"ms://objects/t4/acct/a\",\"value\":{},\"x\":1}]}",
        "{\"ops\":[{\"op\":\"create\",\"ref\":\"ms://objects/t4/acct/a\",\"value\":{}}]}",
        "{\"ops\":[{\"op\":\"delete\",\"ref\":\"ms://objects/t4/acct/a\",\"value\":{}}]}",
        "{\"ops\":[{\"op\":\"delete\",\"ref\":\"ms://objects/t4/acct/a\",\"if_match\":7}]}",
        "{\"ops\":[],\"more\":1}",
        "{\"ops\":",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        req(&r, "POST", "/v1/txn", NULL, bad[i], NULL);
        EXPECT(&r, 400, "MS_EBADARGS");
    }
    char *many = malloc(70 * 100 + 20);
    strcpy(many, "{\"ops\":[");
    for (int i = 0; i < 65; i++)
        strcat(many, i ? ",{\"op\":\"create\",\"ref\":\"ms://objects/t4/m\",\"value\":{}}"
                       : "{\"op\":\"create\",\"ref\":\"ms://objects/t4/m\",\"value\":{}}");
    strcat(many, "]}");
    req(&r, "POST", "/v1/txn", NULL, many, NULL);
    EXPECT(&r, 400, "MS_EBADARGS");
    free(many);
    req(&r, "POST", "/v1/txn", NULL,
        "{\"ops\":[{\"op\":\"create\",\"ref\":\"ms://objects/t4/m\",\"value\":{}}]}",
        (const char *const[]){"Ms-Request-Id: bad id!", NULL});
    EXPECT(&r, 400, "MS_EBADARGS");
    req(&r, "GET", "/v1/objects/t4/m", NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
    req(&r, "GET", "/v1/txn", NULL, NULL, NULL);
    EXPECT(&r, 405, NULL);
    resp_free(&r);
}

/* The request-id records are bounded (--objects-records-max): callers that never
 * acknowledge fill them, a new id is then refused (429 MS_EOVERLOADED) before anything runs, a
 * replay still answers, and a caller's own acknowledgement makes room for its next transaction. */
static h_msd *main_msd; /* M while a test talks to an msd of its own */

static int
restore_main_msd(void **state)
{
    (void)state;
    if (main_msd && M != main_msd) {
        h_msd_signal(M, SIGTERM, 10000);
        M = main_msd;
    }
    return 0;
}

/* A method's transaction (MS_METHOD, docs/objects.md "Methods"): a top-level "result" is
 * copied into the answer and recorded with it; its refusal is not recorded (the same id then
 * runs); GET /v1/txn/{rid} answers the record, 404 when there is none. */
static void
test_objects_txn_method_result_and_record(void **state)
{
    (void)state;
    resp r = {0};
    char a[64], ea[64], q1[80], body[1024];
    make("acct", 1, a, ea);
    const char *const rid[] = {"Ms-Request-Id: mtest-1", NULL};

    /* Stale If-Match: 412, not recorded. */
    snprintf(body, sizeof body,
             "{\"ops\":[{\"op\":\"put\",\"ref\":\"ms://objects/t4/acct/%s\",\"if_match\":"
             "\"\\\"999999999\\\"\",\"value\":{\"n\":2}}],\"result\":2}",
             a);
    req(&r, "POST", "/v1/txn", NULL, body, rid);
    EXPECT(&r, 412, "MS_ECONFLICT");
    req(&r, "GET", "/v1/txn/mtest-1", NULL, NULL, NULL);
    EXPECT(&r, 404, "MS_ENOTFOUND");

    /* The same id with the current ETag: applied, the result in the answer. */
    snprintf(body, sizeof body,
             "{\"ops\":[{\"op\":\"put\",\"ref\":\"ms://objects/t4/acct/%s\",\"if_match\":%s,"
             "\"value\":{\"n\":2}}],\"result\":{\"b\":2}}",
             a, q(ea, q1));
    req(&r, "POST", "/v1/txn", NULL, body, rid);
    EXPECT(&r, 200, NULL);
    assert_false(r.replayed);
    assert_int_equal(json_int(json_object_get(r.json, "result"), "b"), 2);
    assert_int_equal(get_n(a, NULL), 2);
    req(&r, "POST", "/v1/txn", NULL, body, rid);
    EXPECT(&r, 200, NULL);
    assert_true(r.replayed);
    assert_int_equal(json_int(json_object_get(r.json, "result"), "b"), 2);
    req(&r, "GET", "/v1/txn/mtest-1", NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    assert_int_equal(json_int(json_object_get(r.json, "result"), "b"), 2);
    assert_non_null(json_object_get(r.json, "results"));
    req(&r, "POST", "/v1/txn/mtest-1", NULL, body, NULL);
    EXPECT(&r, 405, "MS_EBADARGS");
    req(&r, "GET", "/v1/txn/bad%20id", NULL, NULL, NULL);
    EXPECT(&r, 400, "MS_EBADARGS");

    /* Any other top-level member is still refused. */
    snprintf(body, sizeof body,
             "{\"ops\":[{\"op\":\"check\",\"ref\":\"ms://objects/t4/acct/%s\",\"if_match\":"
             "\"*\"}],\"result\":1,\"x\":1}",
             a);
    req(&r, "POST", "/v1/txn", NULL, body, NULL);
    EXPECT(&r, 400, "MS_EBADARGS");
    resp_free(&r);
}

static void
test_objects_records_bounded(void **state)
{
    (void)state;
    main_msd = M;
    static char url[160]; /* with PostgreSQL: a database of its own, as SQLite gets a file */
    if (PG)
        assert_int_equal(h_pg_createdb(PG, "records_bounded", url, sizeof url), 0);
    M = h_msd_start(PG ? (const char *const[]){"--objects-records-max", "3", "--objects", url, NULL}
                       : (const char *const[]){"--objects-records-max", "3", NULL});
    assert_non_null(M);
    resp r = {0};
    const char *create =
        "{\"ops\":[{\"op\":\"create\",\"ref\":\"ms://objects/t9/c\",\"value\":{}}]}";
    char rid[64];
    for (int i = 1; i <= 3; i++) { /* three callers, none acknowledging */
        snprintf(rid, sizeof rid, "Ms-Request-Id: caller%d-1", i);
        req(&r, "POST", "/v1/txn", NULL, create, (const char *const[]){rid, NULL});
        EXPECT(&r, 200, NULL);
    }
    req(&r, "POST", "/v1/txn", NULL, create,
        (const char *const[]){"Ms-Request-Id: caller4-1", NULL});
    EXPECT(&r, 429, "MS_EOVERLOADED");
    assert_non_null(strstr(r.body, "request-id records full (3 max"));
    req(&r, "GET", "/v1/objects/t9/c", NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 3); /* not run */
    /* A replay needs no room. */
    req(&r, "POST", "/v1/txn", NULL, create,
        (const char *const[]){"Ms-Request-Id: caller2-1", NULL});
    EXPECT(&r, 200, NULL);
    assert_true(r.replayed);
    /* caller1's next transaction acknowledges its first: that makes its room. */
    req(&r, "POST", "/v1/txn", NULL, create,
        (const char *const[]){"Ms-Request-Id: caller1-2", "Ms-Acked-Below: 2", NULL});
    EXPECT(&r, 200, NULL);
    assert_false(r.replayed);
    /* Without an id nothing is recorded, and nothing is refused. */
    req(&r, "POST", "/v1/txn", NULL, create, NULL);
    EXPECT(&r, 200, NULL);
    req(&r, "GET", "/v1/objects/t9/c", NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 5);
    /* The count survives a restart (it is in the database, not in msd's memory). */
    assert_true(h_msd_signal(M, SIGKILL, 10000) >= 0);
    assert_int_equal(h_msd_restart(M), 0);
    req(&r, "POST", "/v1/txn", NULL, create,
        (const char *const[]){"Ms-Request-Id: caller5-1", NULL});
    EXPECT(&r, 429, "MS_EOVERLOADED");
    resp_free(&r);
}

/* Writers incrementing one counter by read, then PUT with If-Match, again on 412: no update
 * may be lost. */
#define WRITERS 4
#define INCS 25

static char counter_path[200];

static void *
writer(void *arg)
{
    (void)arg;
    resp r = {0};
    long conflicts = 0;
    for (int i = 0; i < INCS; i++) {
        for (int attempt = 0;; attempt++) {
            if (attempt > 1000 || req(&r, "GET", counter_path, NULL, NULL, NULL) != 200)
                return (void *)-1L;
            char body[64], im[100];
            snprintf(body, sizeof body, "{\"n\":%lld}", json_int(r.json, "n") + 1);
            snprintf(im, sizeof im, "If-Match: %s", r.etag);
            long st = req(&r, "PUT", counter_path, NULL, body, (const char *const[]){im, NULL});
            if (st == 200)
                break;
            if (st != 412)
                return (void *)-1L;
            conflicts++;
        }
    }
    resp_free(&r);
    return (void *)conflicts;
}

static void
test_objects_concurrent_cas_loses_nothing(void **state)
{
    (void)state;
    resp r = {0};
    req(&r, "PUT", "/v1/objects/t5/counters/c", NULL, "{\"n\":0}", NULL);
    EXPECT(&r, 201, NULL);
    snprintf(counter_path, sizeof counter_path, "/v1/objects/t5/counters/c");
    pthread_t th[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, writer, NULL), 0);
    long conflicts = 0;
    int failed = 0;
    for (int i = 0; i < WRITERS; i++) {
        void *res;
        pthread_join(th[i], &res);
        if ((long)res < 0)
            failed = 1;
        else
            conflicts += (long)res;
    }
    assert_false(failed);
    req(&r, "GET", counter_path, NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    assert_int_equal(json_int(r.json, "n"), WRITERS * INCS);
    printf("%d increments by %d writers, %ld conflicts retried\n", WRITERS * INCS, WRITERS,
           conflicts);
    resp_free(&r);
}

static void
test_objects_survive_sigterm_and_sigkill(void **state)
{
    (void)state;
    resp r = {0};
    char id[64], e1[64], path[200];
    req(&r, "POST", "/v1/objects/t6/keep", NULL, "{\"v\":\"before\"}", NULL);
    EXPECT(&r, 201, NULL);
    snprintf(id, sizeof id, "%s", loc_id(&r));
    snprintf(e1, sizeof e1, "%s", r.etag);
    snprintf(path, sizeof path, "/v1/objects/t6/keep/%s", id);
    const char *const rid[] = {"Ms-Request-Id: survivor-1", NULL};
    const char *txn = "{\"ops\":[{\"op\":\"create\",\"ref\":\"ms://objects/t6/log\","
                      "\"value\":{\"x\":1}}]}";
    req(&r, "POST", "/v1/txn", NULL, txn, rid);
    EXPECT(&r, 200, NULL);
    char answer[1024];
    snprintf(answer, sizeof answer, "%s", r.body);

    /* SIGTERM: a clean stop. */
    int st = h_msd_signal(M, SIGTERM, 30000);
    assert_true(st >= 0 && WIFEXITED(st));
    assert_int_equal(h_msd_restart(M), 0);
    req(&r, "GET", path, NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    assert_string_equal(r.etag, e1);
    assert_string_equal(json_string_value(json_object_get(r.json, "v")), "before");

    /* A write answered, then SIGKILL at once: it is there after the restart. */
    char im[100], e2[64];
    snprintf(im, sizeof im, "If-Match: %s", e1);
    req(&r, "PUT", path, NULL, "{\"v\":\"after\"}", (const char *const[]){im, NULL});
    EXPECT(&r, 200, NULL);
    snprintf(e2, sizeof e2, "%s", r.etag);
    st = h_msd_signal(M, SIGKILL, 30000);
    assert_true(st >= 0 && WIFSIGNALED(st));
    assert_int_equal(h_msd_restart(M), 0);
    req(&r, "GET", path, NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    assert_string_equal(r.etag, e2);
    assert_string_equal(json_string_value(json_object_get(r.json, "v")), "after");
    /* The stale ETag stays stale, and versions go on from where they were (never reused). */
    req(&r, "PUT", path, NULL, "{\"v\":\"x\"}", (const char *const[]){im, NULL});
    EXPECT(&r, 412, "MS_ECONFLICT");
    req(&r, "POST", "/v1/objects/t6/keep", NULL, "{}", NULL);
    EXPECT(&r, 201, NULL);
    assert_string_not_equal(r.etag, e1);
    assert_string_not_equal(r.etag, e2);
    assert_true(strtoll(r.etag + 1, NULL, 10) > strtoll(e2 + 1, NULL, 10));
    /* The transaction's record survived too: its retry is answered from it. */
    req(&r, "POST", "/v1/txn", NULL, txn, rid);
    EXPECT(&r, 200, NULL);
    assert_true(r.replayed);
    assert_string_equal(r.body, answer);
    req(&r, "GET", "/v1/objects/t6/log", NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 1);
    resp_free(&r);
}

/* Polls GET path until it answers 200 (bounded); the last status. */
static long
wait_ok(resp *r, const char *path, int timeout_ms)
{
    int64_t end = h_now_ms() + timeout_ms;
    while (req(r, "GET", path, NULL, NULL, NULL) != 200 && h_now_ms() < end)
        h_nap(50);
    return r->status;
}

/* Asserts that an object request was refused for want of the database: 503, naming it. */
#define EXPECT_PG_AWAY(r)                                                                          \
    do {                                                                                           \
        EXPECT(r, 503, "MS_EUNAVAILABLE");                                                         \
        assert_non_null(strstr((r)->body, "PostgreSQL"));                                          \
    } while (0)

static void
test_objects_pg_server_goes_away(void **state)
{
    (void)state;
    resp r = {0};
    char path[200], etag[64];
    req(&r, "POST", "/v1/objects/t7/away", NULL, "{\"v\":1}", NULL);
    EXPECT(&r, 201, NULL);
    snprintf(path, sizeof path, "/v1/objects/t7/away/%s", loc_id(&r));
    snprintf(etag, sizeof etag, "%s", r.etag);

    /* PostgreSQL freezes (connections open, no answer): a request is refused after msd's
     * bound on a statement (8 s), not left waiting; thawed, the next one succeeds. */
    assert_int_equal(h_pg_freeze(PG, 1), 0);
    int64_t tf = h_now_ms();
    req(&r, "GET", path, NULL, NULL, NULL);
    assert_int_equal(h_pg_freeze(PG, 0), 0);
    EXPECT_PG_AWAY(&r);
    printf("a frozen server: answered in %lld ms: %s\n", (long long)(h_now_ms() - tf), r.body);
    assert_true(h_now_ms() - tf < 9500);
    req(&r, "GET", path, NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);

    /* PostgreSQL stops: every kind of object request is refused, clearly and at once... */
    assert_int_equal(h_pg_stop(PG), 0);
    int64_t t0 = h_now_ms();
    req(&r, "GET", path, NULL, NULL, NULL);
    EXPECT_PG_AWAY(&r);
    printf("first request after the stop: %s\n", r.body);
    req(&r, "PUT", path, NULL, "{\"v\":2}", NULL);
    EXPECT_PG_AWAY(&r);
    req(&r, "POST", "/v1/objects/t7/away", NULL, "{}", NULL);
    EXPECT_PG_AWAY(&r);
    req(&r, "GET", "/v1/objects/t7/away", NULL, NULL, NULL);
    EXPECT_PG_AWAY(&r);
    req(&r, "POST", "/v1/txn", NULL,
        "{\"ops\":[{\"op\":\"create\",\"ref\":\"ms://objects/t7/log\",\"value\":{}}]}",
        (const char *const[]){"Ms-Request-Id: away-1", NULL});
    EXPECT_PG_AWAY(&r);
    assert_true(h_now_ms() - t0 < 10000);
    /* ... while the rest of msd answers as before. */
    req(&r, "GET", "/v1/health", NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    req(&r, "GET", "/v1/services", NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);

    /* The server is back: the same msd serves objects again, the object as it was. */
    assert_int_equal(h_pg_restart(PG), 0);
    int64_t t1 = h_now_ms();
    wait_ok(&r, path, 10000);
    EXPECT(&r, 200, NULL);
    printf("objects answered again %lld ms after PostgreSQL did\n", (long long)(h_now_ms() - t1));
    assert_string_equal(r.etag, etag);
    assert_int_equal(json_int(r.json, "v"), 1);
    char im[100];
    snprintf(im, sizeof im, "If-Match: %s", etag);
    req(&r, "PUT", path, NULL, "{\"v\":2}", (const char *const[]){im, NULL});
    EXPECT(&r, 200, NULL);
    assert_true(strtoll(r.etag + 1, NULL, 10) > strtoll(etag + 1, NULL, 10));
    snprintf(etag, sizeof etag, "%s", r.etag);
    /* The transaction refused while the server was away was not recorded: it runs now. */
    req(&r, "POST", "/v1/txn", NULL,
        "{\"ops\":[{\"op\":\"create\",\"ref\":\"ms://objects/t7/log\",\"value\":{}}]}",
        (const char *const[]){"Ms-Request-Id: away-1", NULL});
    EXPECT(&r, 200, NULL);
    assert_false(r.replayed);

    /* An msd that starts while PostgreSQL is away starts (objects answer 503), and serves
     * objects once the server is back. */
    assert_int_equal(h_pg_stop(PG), 0);
    int st = h_msd_signal(M, SIGKILL, 30000);
    assert_true(st >= 0 && WIFSIGNALED(st));
    assert_int_equal(h_msd_restart(M), 0);
    req(&r, "GET", "/v1/health", NULL, NULL, NULL);
    EXPECT(&r, 200, NULL);
    req(&r, "GET", path, NULL, NULL, NULL);
    EXPECT_PG_AWAY(&r);
    assert_int_equal(h_pg_restart(PG), 0);
    wait_ok(&r, path, 10000);
    EXPECT(&r, 200, NULL);
    assert_string_equal(r.etag, etag);
    assert_int_equal(json_int(r.json, "v"), 2);
    resp_free(&r);
}

int
main(int argc, char **argv)
{
    int pg = argc > 1 && strcmp(argv[1], "pg") == 0;
    if (argc > 1 && !pg) {
        fprintf(stderr, "usage: %s [pg]\n", argv[0]);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_objects_crud_and_etags),
        cmocka_unit_test(test_objects_list_pages),
        cmocka_unit_test(test_objects_bad_input),
        cmocka_unit_test(test_objects_txn_all_or_nothing_and_replay),
        cmocka_unit_test(test_objects_txn_method_result_and_record),
        cmocka_unit_test_teardown(test_objects_records_bounded, restore_main_msd),
        cmocka_unit_test(test_objects_concurrent_cas_loses_nothing),
        cmocka_unit_test(test_objects_survive_sigterm_and_sigkill),
        cmocka_unit_test(test_objects_pg_server_goes_away), /* last, pg only */
    };
    size_t n = sizeof tests / sizeof *tests - (pg ? 0 : 1);
    int rc = pg ? _cmocka_run_group_tests("test_objects_pg", tests, n, setup_pg, NULL)
                : _cmocka_run_group_tests("test_objects", tests, n, setup, NULL);
    curl_global_cleanup();
    return rc;
}
