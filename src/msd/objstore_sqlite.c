/*
 * objstore_sqlite.c: the SQLite backend of objstore.h, the object store's embedded default.
 *
 * Design notes
 * - One database file, <state>/objects.db (beside msd.db, never inside it: the objects have
 *   a life of their own), in WAL mode with synchronous=FULL: a commit that was answered
 *   survives a crash of msd (SIGKILL) and a power loss.
 * - Tables: objects(ns, collection, id, version, value) keyed by (ns, collection, id), so a
 *   listing is a range scan; meta(key, value) holding "version", the last version handed
 *   out (objstore.h: versions are never reused, so it only grows, in the transaction of the
 *   write that takes one); records(rid, caller, seq, body_sha, status, answer, created_ms):
 *   the answers of transactions by request id. `PRAGMA user_version` numbers the schema.
 * - One connection, under one mutex taken by begin and given back by commit or rollback:
 *   transactions run one at a time, and a write transaction is BEGIN IMMEDIATE, so the
 *   serialisability objstore.h asks for holds also against another process that opens the
 *   file (busy_timeout 5 s). Statements are prepared once, at open.
 *
 * Threading: any thread; a transaction belongs to the thread that began it (the mutex is
 * held for its whole length).
 */
#include "msd.h"
#include "objstore.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS objects(ns TEXT NOT NULL, collection TEXT NOT NULL,"
    " id TEXT NOT NULL, version INTEGER NOT NULL, value TEXT NOT NULL,"
    " PRIMARY KEY(ns, collection, id)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta(key, value) VALUES('version', 0);"
    "CREATE TABLE IF NOT EXISTS records(rid TEXT PRIMARY KEY, caller TEXT NOT NULL,"
    " seq INTEGER NOT NULL, body_sha TEXT NOT NULL, status INTEGER NOT NULL,"
    " answer TEXT NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS records_caller ON records(caller, seq);"
    "CREATE INDEX IF NOT EXISTS records_age ON records(created_ms);"
    "CREATE TABLE IF NOT EXISTS acks(caller TEXT PRIMARY KEY, below INTEGER NOT NULL,"
    " at_ms INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta(key, value) VALUES('records', (SELECT count(*) FROM records));";

/* The statements, prepared at open: X(name, sql). */
#define STMT_LIST(X)                                                                               \
    X(BEGIN_R, "BEGIN")                                                                            \
    X(BEGIN_W, "BEGIN IMMEDIATE")                                                                  \
    X(COMMIT, "COMMIT")                                                                            \
    X(ROLLBACK, "ROLLBACK")                                                                        \
    X(READ, "SELECT value, version FROM objects WHERE ns = ?1 AND collection = ?2 AND id = ?3")    \
    X(NEXT_VERSION, "UPDATE meta SET value = value + 1 WHERE key = 'version' RETURNING value")     \
    X(WRITE, "INSERT INTO objects(ns, collection, id, version, value) VALUES(?1, ?2, ?3, ?4, ?5)"  \
             " ON CONFLICT(ns, collection, id) DO UPDATE SET version = excluded.version,"          \
             " value = excluded.value")                                                            \
    X(REMOVE, "DELETE FROM objects WHERE ns = ?1 AND collection = ?2 AND id = ?3")                 \
    X(LIST, "SELECT id, value, version FROM objects WHERE ns = ?1 AND collection = ?2"             \
            " AND id > ?3 ORDER BY id LIMIT ?4")                                                   \
    X(GET_RECORD, "SELECT body_sha, status, answer FROM records WHERE rid = ?1")                   \
    X(PUT_RECORD, "INSERT OR IGNORE INTO records(rid, caller, seq, body_sha, status, answer,"      \
                  " created_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)")                               \
    X(TRIM_CALLER, "DELETE FROM records WHERE caller = ?1 AND seq < ?2")                           \
    X(TRIM_AGE, "DELETE FROM records WHERE created_ms < ?1")                                       \
    X(GET_ACK, "SELECT below FROM acks WHERE caller = ?1")                                         \
    X(PUT_ACK, "INSERT INTO acks(caller, below, at_ms) VALUES(?1, ?2, ?3) ON CONFLICT(caller)"     \
               " DO UPDATE SET below = max(below, excluded.below), at_ms = excluded.at_ms")        \
    X(TRIM_ACK_AGE, "DELETE FROM acks WHERE at_ms < ?1")                                           \
    X(COUNT_RECORDS, "SELECT value FROM meta WHERE key = 'records'")                               \
    X(ADD_RECORDS, "UPDATE meta SET value = value + ?1 WHERE key = 'records'")

enum {
#define STMT_ENUM(name, sql) S_##name,
    STMT_LIST(STMT_ENUM)
#undef STMT_ENUM
        S_COUNT
};

static const char *const stmt_sql[] = {
#define STMT_SQL(name, sql) sql,
    STMT_LIST(STMT_SQL)
#undef STMT_SQL
};

typedef struct sqlite_objstore {
    msd_objstore base;
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    pthread_mutex_t mu; /* held from begin to commit/rollback */
} sqlite_objstore;

struct msd_objtx {
    sqlite_objstore *s;
    int write;
};

static int
fail(sqlite_objstore *s, const char *what, char *msg, size_t msglen)
{
    if (msg && msglen)
        snprintf(msg, msglen, "objects.db: %s: %s", what, sqlite3_errmsg(s->db));
    return -EIO;
}

/* The statement `i`, reset and with its bindings cleared. */
static sqlite3_stmt *
stmt(sqlite_objstore *s, int i)
{
    sqlite3_reset(s->st[i]);
    sqlite3_clear_bindings(s->st[i]);
    return s->st[i];
}

/* Runs a statement that returns no row (or whose rows are not wanted). */
static int
run(sqlite_objstore *s, int i, char *msg, size_t msglen)
{
    int rc = sqlite3_step(s->st[i]);
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(s->st[i]);
    sqlite3_reset(s->st[i]);
    return rc == SQLITE_DONE ? 0 : fail(s, stmt_sql[i], msg, msglen);
}

static int
bind_key(sqlite3_stmt *q, const msd_objkey *k)
{
    if (sqlite3_bind_text(q, 1, k->ns, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(q, 2, k->collection, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(q, 3, k->id, -1, SQLITE_STATIC) != SQLITE_OK)
        return -1;
    return 0;
}

static char *
dup_text(sqlite3_stmt *q, int col)
{
    const unsigned char *t = sqlite3_column_text(q, col);
    int n = sqlite3_column_bytes(q, col);
    char *p = malloc((size_t)n + 1);
    if (!p)
        return NULL;
    memcpy(p, t ? (const char *)t : "", (size_t)n);
    p[n] = '\0';
    return p;
}

/* ------------------------------------------------------------------------------------------
 * The ops.
 * ---------------------------------------------------------------------------------------- */

static int
sq_begin(msd_objstore *base, int write, msd_objtx **out, char *msg, size_t msglen)
{
    sqlite_objstore *s = (sqlite_objstore *)base;
    msd_objtx *tx = malloc(sizeof *tx);
    if (!tx)
        return -ENOMEM;
    tx->s = s;
    tx->write = write;
    pthread_mutex_lock(&s->mu);
    stmt(s, write ? S_BEGIN_W : S_BEGIN_R);
    int res = run(s, write ? S_BEGIN_W : S_BEGIN_R, msg, msglen);
    if (res < 0) {
        pthread_mutex_unlock(&s->mu);
        free(tx);
        return res;
    }
    *out = tx;
    return 0;
}

static void
end(msd_objtx *tx)
{
    pthread_mutex_unlock(&tx->s->mu);
    free(tx);
}

static void
sq_rollback(msd_objtx *tx)
{
    sqlite_objstore *s = tx->s;
    stmt(s, S_ROLLBACK);
    if (run(s, S_ROLLBACK, NULL, 0) < 0 && !sqlite3_get_autocommit(s->db))
        msd_log("error", "objects.db: ROLLBACK: %s", sqlite3_errmsg(s->db));
    end(tx);
}

static int
sq_commit(msd_objtx *tx, char *msg, size_t msglen)
{
    sqlite_objstore *s = tx->s;
    stmt(s, S_COMMIT);
    int res = run(s, S_COMMIT, msg, msglen);
    if (res < 0 && !sqlite3_get_autocommit(s->db)) {
        stmt(s, S_ROLLBACK);
        run(s, S_ROLLBACK, NULL, 0);
    }
    end(tx);
    return res;
}

static int
sq_read(msd_objtx *tx, const msd_objkey *k, char **value, int64_t *version, char *msg,
        size_t msglen)
{
    sqlite_objstore *s = tx->s;
    sqlite3_stmt *q = stmt(s, S_READ);
    if (bind_key(q, k) < 0)
        return fail(s, "bind", msg, msglen);
    int rc = sqlite3_step(q);
    int res = 0;
    if (rc == SQLITE_ROW) {
        *version = sqlite3_column_int64(q, 1);
        if (value && !(*value = dup_text(q, 0)))
            res = -ENOMEM;
    } else {
        res = rc == SQLITE_DONE ? -ENOENT : fail(s, "read", msg, msglen);
    }
    sqlite3_reset(q);
    return res;
}

static int
sq_write(msd_objtx *tx, const msd_objkey *k, const char *value, size_t len, int64_t *version,
         char *msg, size_t msglen)
{
    sqlite_objstore *s = tx->s;
    sqlite3_stmt *q = stmt(s, S_NEXT_VERSION);
    if (sqlite3_step(q) != SQLITE_ROW) {
        int res = fail(s, "next version", msg, msglen);
        sqlite3_reset(q);
        return res;
    }
    int64_t v = sqlite3_column_int64(q, 0);
    int res = run(s, S_NEXT_VERSION, msg, msglen);
    if (res < 0)
        return res;
    q = stmt(s, S_WRITE);
    if (bind_key(q, k) < 0 || sqlite3_bind_int64(q, 4, v) != SQLITE_OK ||
        sqlite3_bind_text(q, 5, value, (int)len, SQLITE_STATIC) != SQLITE_OK)
        return fail(s, "bind", msg, msglen);
    res = run(s, S_WRITE, msg, msglen);
    if (res == 0)
        *version = v;
    return res;
}

static int
sq_remove(msd_objtx *tx, const msd_objkey *k, char *msg, size_t msglen)
{
    sqlite_objstore *s = tx->s;
    sqlite3_stmt *q = stmt(s, S_REMOVE);
    if (bind_key(q, k) < 0)
        return fail(s, "bind", msg, msglen);
    int res = run(s, S_REMOVE, msg, msglen);
    if (res == 0 && sqlite3_changes(s->db) == 0)
        res = -ENOENT;
    return res;
}

static int
sq_list(msd_objtx *tx, const char *ns, const char *collection, const char *after, int limit,
        int (*fn)(const char *id, const char *value, size_t len, int64_t version, void *arg),
        void *arg, char *msg, size_t msglen)
{
    sqlite_objstore *s = tx->s;
    sqlite3_stmt *q = stmt(s, S_LIST);
    if (sqlite3_bind_text(q, 1, ns, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(q, 2, collection, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(q, 3, after ? after : "", -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int(q, 4, limit) != SQLITE_OK)
        return fail(s, "bind", msg, msglen);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(q, 0);
        const char *v = (const char *)sqlite3_column_text(q, 1);
        size_t vlen = (size_t)sqlite3_column_bytes(q, 1);
        if (fn(id ? id : "", v ? v : "", vlen, sqlite3_column_int64(q, 2), arg))
            break;
    }
    int res = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(s, "list", msg, msglen);
    sqlite3_reset(q);
    return res;
}

/* The count of records (meta 'records') moves by delta, in the transaction. */
static int
add_records(sqlite_objstore *s, int delta, char *msg, size_t msglen)
{
    if (delta == 0)
        return 0;
    sqlite3_stmt *q = stmt(s, S_ADD_RECORDS);
    if (sqlite3_bind_int(q, 1, delta) != SQLITE_OK)
        return fail(s, "bind", msg, msglen);
    return run(s, S_ADD_RECORDS, msg, msglen);
}

static int
sq_get_record(msd_objtx *tx, const char *rid, msd_objrec *rec, char *msg, size_t msglen)
{
    sqlite_objstore *s = tx->s;
    sqlite3_stmt *q = stmt(s, S_GET_RECORD);
    if (sqlite3_bind_text(q, 1, rid, -1, SQLITE_STATIC) != SQLITE_OK)
        return fail(s, "bind", msg, msglen);
    int rc = sqlite3_step(q);
    int res = 0;
    if (rc == SQLITE_ROW) {
        const char *sha = (const char *)sqlite3_column_text(q, 0);
        snprintf(rec->body_sha, sizeof rec->body_sha, "%s", sha ? sha : "");
        rec->status = sqlite3_column_int(q, 1);
        if (!(rec->answer = dup_text(q, 2)))
            res = -ENOMEM;
    } else {
        res = rc == SQLITE_DONE ? -ENOENT : fail(s, "get record", msg, msglen);
    }
    sqlite3_reset(q);
    return res;
}

static int
sq_put_record(msd_objtx *tx, const char *rid, const char *caller, uint64_t seq,
              const msd_objrec *rec, int64_t now_ms, char *msg, size_t msglen)
{
    sqlite_objstore *s = tx->s;
    sqlite3_stmt *q = stmt(s, S_PUT_RECORD);
    if (sqlite3_bind_text(q, 1, rid, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(q, 2, caller, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(q, 3, (int64_t)seq) != SQLITE_OK ||
        sqlite3_bind_text(q, 4, rec->body_sha, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int(q, 5, rec->status) != SQLITE_OK ||
        sqlite3_bind_text(q, 6, rec->answer ? rec->answer : "", -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(q, 7, now_ms) != SQLITE_OK)
        return fail(s, "bind", msg, msglen);
    int res = run(s, S_PUT_RECORD, msg, msglen);
    return res == 0 ? add_records(s, sqlite3_changes(s->db), msg, msglen) : res;
}

static int
sq_count_records(msd_objtx *tx, long long *n, char *msg, size_t msglen)
{
    sqlite_objstore *s = tx->s;
    sqlite3_stmt *q = stmt(s, S_COUNT_RECORDS);
    int rc = sqlite3_step(q), res = 0;
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    if (rc != SQLITE_ROW)
        res = fail(s, "count records", msg, msglen);
    sqlite3_reset(q);
    return res;
}

static int
sq_get_acked(msd_objtx *tx, const char *caller, uint64_t *below, char *msg, size_t msglen)
{
    sqlite_objstore *s = tx->s;
    sqlite3_stmt *q = stmt(s, S_GET_ACK);
    *below = 0;
    if (sqlite3_bind_text(q, 1, caller, -1, SQLITE_STATIC) != SQLITE_OK)
        return fail(s, "bind", msg, msglen);
    int rc = sqlite3_step(q), res = 0;
    if (rc == SQLITE_ROW)
        *below = (uint64_t)sqlite3_column_int64(q, 0);
    else if (rc != SQLITE_DONE)
        res = fail(s, "get acknowledgement", msg, msglen);
    sqlite3_reset(q);
    return res;
}

static int
sq_trim_records(msd_objtx *tx, const char *caller, uint64_t below, int64_t now_ms,
                int64_t before_ms, char *msg, size_t msglen)
{
    sqlite_objstore *s = tx->s;
    int res = 0;
    if (caller && caller[0] && below > 0) {
        sqlite3_stmt *q = stmt(s, S_TRIM_CALLER);
        if (sqlite3_bind_text(q, 1, caller, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_int64(q, 2, (int64_t)below) != SQLITE_OK)
            return fail(s, "bind", msg, msglen);
        res = run(s, S_TRIM_CALLER, msg, msglen);
        if (res == 0)
            res = add_records(s, -sqlite3_changes(s->db), msg, msglen);
        q = stmt(s, S_PUT_ACK);
        if (res == 0 && (sqlite3_bind_text(q, 1, caller, -1, SQLITE_STATIC) != SQLITE_OK ||
                         sqlite3_bind_int64(q, 2, (int64_t)below) != SQLITE_OK ||
                         sqlite3_bind_int64(q, 3, now_ms) != SQLITE_OK))
            return fail(s, "bind", msg, msglen);
        if (res == 0)
            res = run(s, S_PUT_ACK, msg, msglen);
    }
    if (res == 0 && before_ms > 0) {
        sqlite3_stmt *q = stmt(s, S_TRIM_AGE);
        if (sqlite3_bind_int64(q, 1, before_ms) != SQLITE_OK)
            return fail(s, "bind", msg, msglen);
        res = run(s, S_TRIM_AGE, msg, msglen);
        if (res == 0)
            res = add_records(s, -sqlite3_changes(s->db), msg, msglen);
        q = stmt(s, S_TRIM_ACK_AGE);
        if (res == 0 && sqlite3_bind_int64(q, 1, before_ms) != SQLITE_OK)
            return fail(s, "bind", msg, msglen);
        if (res == 0)
            res = run(s, S_TRIM_ACK_AGE, msg, msglen);
    }
    return res;
}

static void
sq_close(msd_objstore *base)
{
    if (!base)
        return;
    sqlite_objstore *s = (sqlite_objstore *)base;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const msd_objstore_ops sqlite_ops = {
    .name = "sqlite",
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .read = sq_read,
    .write = sq_write,
    .remove = sq_remove,
    .list = sq_list,
    .get_record = sq_get_record,
    .put_record = sq_put_record,
    .count_records = sq_count_records,
    .get_acked = sq_get_acked,
    .trim_records = sq_trim_records,
    .close = sq_close,
};

int
msd_objstore_sqlite_open(const char *path, msd_objstore **out, char *msg, size_t msglen)
{
    sqlite_objstore *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->base.ops = &sqlite_ops;
    pthread_mutex_init(&s->mu, NULL);
    char *errmsg = NULL;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(msg, msglen, "%s: %s", path, s->db ? sqlite3_errmsg(s->db) : "cannot open");
        sq_close(&s->base);
        return -EIO;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
                     &errmsg) != SQLITE_OK ||
        sqlite3_exec(s->db, schema, NULL, NULL, &errmsg) != SQLITE_OK ||
        sqlite3_exec(s->db, "PRAGMA user_version = 1" /* the schema above */, NULL, NULL,
                     &errmsg) != SQLITE_OK) {
        snprintf(msg, msglen, "%s: %s", path, errmsg ? errmsg : sqlite3_errmsg(s->db));
        sqlite3_free(errmsg);
        sq_close(&s->base);
        return -EIO;
    }
    for (int i = 0; i < S_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
                               NULL) != SQLITE_OK) {
            snprintf(msg, msglen, "%s: %s: %s", path, stmt_sql[i], sqlite3_errmsg(s->db));
            sq_close(&s->base);
            return -EIO;
        }
    }
    *out = &s->base;
    return 0;
}
