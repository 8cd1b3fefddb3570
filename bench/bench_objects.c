/*
 * bench_objects.c: the object store (docs/objects.md) through ms against the bare backend
 * (issue 9, "How well"). A program of commands (bench_main):
 *
 *   get  | put        [bench options]   through ms: ms_obj_get / ms_obj_put (If-Match none)
 *                                       to msd's object store (local mode: MS_ORCHESTRATOR
 *                                       and MS_STATE_DIR name a running msd)
 *   method | call     [bench options]   a method call (MS_METHOD bench_obj_method: its object
 *                                       read, the body, a conditional write with the call's
 *                                       request id) against a plain remote call with the same
 *                                       arguments (bench_obj_call, a service that only returns
 *                                       n), both to this program's own instances
 *   bare-get | bare-put --target DB [bench options]
 *                                       the same operations on SQLite directly, in the file
 *                                       DB (created), with msd's settings: WAL,
 *                                       synchronous=FULL, a write = BEGIN IMMEDIATE, a
 *                                       version from a counter, an upsert, COMMIT
 *
 * The value is the bench's echo ({"n": int64, "s": 32 characters}); a get checks that the
 * value read is the one stored, a put stores call number n. Latency: one caller; throughput:
 * --threads callers, each with its own object (puts) or all reading one (gets), and for the
 * bare rows each with its own SQLite connection (what a program using SQLite directly
 * would do; msd's backend has one connection under a lock: the throughput ratio shows it).
 *
 * Threading: bench_run_client gives each caller thread its own connection (here: its own
 * object reference, or its own sqlite3 handle).
 */
#include "bench.h"

#include <ms/ms.h>

#include <jansson.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- through ms ------------------------------------------------------------------------ */

typedef struct ms_conn {
    ms_ref ref;
    int64_t stored_n; /* get: the value the object holds */
    char stored_s[BENCH_STR_LEN + 1];
} ms_conn;

static atomic_int conn_seq;

static json_t *
value_of(int64_t n, const char *s)
{
    return json_pack("{s:I,s:s}", "n", (json_int_t)n, "s", s);
}

static int
check_value(const json_t *v, int64_t n, const char *s, char *err, size_t errlen)
{
    const char *vs = json_string_value(json_object_get(v, "s"));
    if (json_integer_value(json_object_get(v, "n")) != n || !vs || strcmp(vs, s) != 0) {
        snprintf(err, errlen, "the value read is not the value stored");
        return -1;
    }
    return 0;
}

/* Every caller gets an object of its own, "bench/objects/c<k>", holding (k, payload(k)). */
static void *
ms_open(const char *target, char *err, size_t errlen)
{
    (void)target;
    ms_conn *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int k = atomic_fetch_add(&conn_seq, 1);
    char uri[128];
    snprintf(uri, sizeof uri, "ms://objects/bench/objects/c%d", k);
    c->ref.uri = strdup(uri);
    c->stored_n = k;
    bench_payload(k, c->stored_s);
    json_t *v = value_of(k, c->stored_s);
    ms_status st = c->ref.uri && v ? ms_obj_put(&c->ref, v, NULL, NULL) : MS_ENOMEM;
    json_decref(v);
    if (st != MS_OK) {
        snprintf(err, errlen, "put %s: %s", uri, ms_status_name(st));
        ms_ref_free(&c->ref);
        free(c);
        return NULL;
    }
    return c;
}

static int
ms_get_call(void *conn, int64_t n, const char *s, char *err, size_t errlen)
{
    (void)n;
    (void)s;
    ms_conn *c = conn;
    json_t *v = NULL;
    ms_status st = ms_obj_get(&c->ref, &v, NULL);
    if (st != MS_OK) {
        snprintf(err, errlen, "ms_obj_get: %s", ms_status_name(st));
        return -1;
    }
    int rc = check_value(v, c->stored_n, c->stored_s, err, errlen);
    json_decref(v);
    return rc;
}

static int
ms_put_call(void *conn, int64_t n, const char *s, char *err, size_t errlen)
{
    ms_conn *c = conn;
    json_t *v = value_of(n, s);
    ms_status st = v ? ms_obj_put(&c->ref, v, NULL, NULL) : MS_ENOMEM;
    json_decref(v);
    if (st != MS_OK) {
        snprintf(err, errlen, "ms_obj_put: %s", ms_status_name(st));
        return -1;
    }
    return 0;
}

static void
ms_close(void *conn)
{
    ms_conn *c = conn;
    ms_ref_free(&c->ref);
    free(c);
}

/* A method that stores n in its object, and a plain service of the same signature. */
MS_METHOD(int64_t, bench_obj_method, (int64_t, n))
{
    json_object_set_new(ms_self(), "n", json_integer(n));
    return n;
}
MS_OPTIONS(bench_obj_method, .concurrency = 16)
MS_SERVICE(int64_t, bench_obj_call, (ms_ref, self), (int64_t, n))
{
    (void)self;
    return n;
}
MS_OPTIONS(bench_obj_call, .concurrency = 16, .idempotent = true)

static int
ms_method_call(void *conn, int64_t n, const char *s, char *err, size_t errlen)
{
    (void)s;
    ms_conn *c = conn;
    int64_t r = 0;
    ms_status st = bench_obj_method_try(&r, c->ref, n);
    if (st != MS_OK || r != n) {
        snprintf(err, errlen, "bench_obj_method: %s", ms_status_name(st));
        return -1;
    }
    return 0;
}

static int
ms_plain_call(void *conn, int64_t n, const char *s, char *err, size_t errlen)
{
    (void)s;
    ms_conn *c = conn;
    int64_t r = 0;
    ms_status st = bench_obj_call_try(&r, c->ref, n);
    if (st != MS_OK || r != n) {
        snprintf(err, errlen, "bench_obj_call: %s", ms_status_name(st));
        return -1;
    }
    return 0;
}

/* ---- SQLite directly --------------------------------------------------------------------- */

typedef struct bare_conn {
    sqlite3 *db;
    sqlite3_stmt *get, *next_version, *put, *begin, *commit;
    char id[32];
    int64_t stored_n;
    char stored_s[BENCH_STR_LEN + 1];
} bare_conn;

static const char bare_schema[] =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000;"
    "CREATE TABLE IF NOT EXISTS objects(ns TEXT NOT NULL, collection TEXT NOT NULL,"
    " id TEXT NOT NULL, version INTEGER NOT NULL, value TEXT NOT NULL,"
    " PRIMARY KEY(ns, collection, id)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta(key, value) VALUES('version', 0);";

static void
bare_close(void *conn)
{
    bare_conn *c = conn;
    sqlite3_finalize(c->get);
    sqlite3_finalize(c->next_version);
    sqlite3_finalize(c->put);
    sqlite3_finalize(c->begin);
    sqlite3_finalize(c->commit);
    sqlite3_close(c->db);
    free(c);
}

/* A write as msd's backend does it: its own transaction, a new version, an upsert. */
static int
bare_write(bare_conn *c, int64_t n, const char *s, char *err, size_t errlen)
{
    char value[128];
    snprintf(value, sizeof value, "{\"n\":%lld,\"s\":\"%s\"}", (long long)n, s);
    int rc = sqlite3_step(c->begin);
    sqlite3_reset(c->begin);
    if (rc != SQLITE_DONE)
        goto fail;
    rc = sqlite3_step(c->next_version);
    int64_t version = sqlite3_column_int64(c->next_version, 0);
    sqlite3_reset(c->next_version);
    if (rc != SQLITE_ROW)
        goto fail_rollback;
    sqlite3_bind_text(c->put, 1, c->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(c->put, 2, version);
    sqlite3_bind_text(c->put, 3, value, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(c->put);
    sqlite3_reset(c->put);
    if (rc != SQLITE_DONE)
        goto fail_rollback;
    rc = sqlite3_step(c->commit);
    sqlite3_reset(c->commit);
    if (rc != SQLITE_DONE)
        goto fail_rollback;
    return 0;
fail_rollback:
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
fail:
    snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(c->db));
    return -1;
}

static void *
bare_open(const char *target, char *err, size_t errlen)
{
    bare_conn *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!target || !target[0]) {
        snprintf(err, errlen, "--target DB (an SQLite file) is required");
        free(c);
        return NULL;
    }
    if (sqlite3_open_v2(target, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(c->db, bare_schema, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db,
                           "SELECT value FROM objects WHERE ns = 'bench' AND"
                           " collection = 'objects' AND id = ?1",
                           -1, &c->get, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db,
                           "UPDATE meta SET value = value + 1 WHERE key = 'version'"
                           " RETURNING value",
                           -1, &c->next_version, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db,
                           "INSERT INTO objects(ns, collection, id, version, value)"
                           " VALUES('bench', 'objects', ?1, ?2, ?3) ON CONFLICT(ns, collection,"
                           " id) DO UPDATE SET version = excluded.version, value = excluded.value",
                           -1, &c->put, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "BEGIN IMMEDIATE", -1, &c->begin, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "COMMIT", -1, &c->commit, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite %s: %s", target, c->db ? sqlite3_errmsg(c->db) : "no memory");
        bare_close(c);
        return NULL;
    }
    int k = atomic_fetch_add(&conn_seq, 1);
    snprintf(c->id, sizeof c->id, "c%d", k);
    c->stored_n = k;
    bench_payload(k, c->stored_s);
    if (bare_write(c, k, c->stored_s, err, errlen) < 0) {
        bare_close(c);
        return NULL;
    }
    return c;
}

static int
bare_get_call(void *conn, int64_t n, const char *s, char *err, size_t errlen)
{
    (void)n;
    (void)s;
    bare_conn *c = conn;
    sqlite3_bind_text(c->get, 1, c->id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(c->get), res = -1;
    if (rc == SQLITE_ROW) {
        /* Parsed as msd's answer is: a JSON object out of the stored text. */
        json_t *v = json_loads((const char *)sqlite3_column_text(c->get, 0), 0, NULL);
        res = v ? check_value(v, c->stored_n, c->stored_s, err, errlen) : -1;
        if (!v)
            snprintf(err, errlen, "stored value is not JSON");
        json_decref(v);
    } else {
        snprintf(err, errlen, "sqlite: %s", rc == SQLITE_DONE ? "no row" : sqlite3_errmsg(c->db));
    }
    sqlite3_reset(c->get);
    return res;
}

static int
bare_put_call(void *conn, int64_t n, const char *s, char *err, size_t errlen)
{
    return bare_write(conn, n, s, err, errlen);
}

/* ---- the program --------------------------------------------------------------------------- */

static const bench_ops ms_get_ops = {ms_open, ms_get_call, ms_close};
static const bench_ops ms_put_ops = {ms_open, ms_put_call, ms_close};
static const bench_ops ms_method_ops = {ms_open, ms_method_call, ms_close};
static const bench_ops ms_call_ops = {ms_open, ms_plain_call, ms_close};
static const bench_ops bare_get_ops = {bare_open, bare_get_call, bare_close};
static const bench_ops bare_put_ops = {bare_open, bare_put_call, bare_close};

static int
run_ms_get(bench_opts *o)
{
    return bench_run_client(&ms_get_ops, o);
}
static int
run_ms_put(bench_opts *o)
{
    return bench_run_client(&ms_put_ops, o);
}
static int
run_ms_method(bench_opts *o)
{
    return bench_run_client(&ms_method_ops, o);
}
static int
run_ms_call(bench_opts *o)
{
    return bench_run_client(&ms_call_ops, o);
}
static int
run_bare_get(bench_opts *o)
{
    return bench_run_client(&bare_get_ops, o);
}
static int
run_bare_put(bench_opts *o)
{
    return bench_run_client(&bare_put_ops, o);
}

static const bench_command commands[] = {
    {"get", run_ms_get},   {"put", run_ms_put},        {"method", run_ms_method},
    {"call", run_ms_call}, {"bare-get", run_bare_get}, {"bare-put", run_bare_put},
};

/* ms_init for the rows through ms (local mode from the environment); none for bare ones. */
static int
before(const char *command)
{
    if (strncmp(command, "bare-", 5) == 0)
        return 0;
    ms_status st = ms_init(NULL, NULL);
    if (st != MS_OK)
        return bench_print_error(command, "ms_init: %s", ms_status_name(st));
    return 0;
}

int
main(int argc, char **argv)
{
    /* Started by msd as an instance of one of the services above (serves, never returns), or
     * to describe them (prints, exits): ms_init first. */
    if (getenv("MS_SERVE") || getenv("MS_DESCRIBE"))
        ms_init(&argc, &argv);
    static const bench_program p = {
        .name = "bench_objects",
        .label = "objects",
        .commands = commands,
        .ncommands = (int)(sizeof commands / sizeof *commands),
        .usage = "get|put|method|call|bare-get|bare-put [--target DB] [bench options]",
        .before = before,
    };
    return bench_main(argc, argv, &p);
}
