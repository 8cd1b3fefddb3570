/*
 * objstore_pg.c: the PostgreSQL backend of objstore.h, selected with msd --objects
 * postgresql://... (docs/objects.md, "PostgreSQL").
 *
 * Design notes
 * - Tables, created at the first connection when absent (in one transaction under an
 *   advisory lock, so two msds starting on one database do not race): ms_objects(ns,
 *   collection, id, version, value) keyed by (ns, collection, id), the names in the "C"
 *   collation so that ids sort bytewise as objstore.h asks; the sequence ms_objects_version,
 *   the one counter every version is taken from (nextval is never rolled back: a version is
 *   never handed out twice, also after a failed transaction or a crash); ms_objects_records,
 *   the answers of transactions by request id; ms_objects_acks, each caller's highest
 *   acknowledgement; ms_objects_meta's row 'records', the count of records, moved by the
 *   very statements that add or drop records (count_records is one row, not a count(*)). Values are
 * text (not jsonb, which would reorder members): the compact JSON objects.c wrote, byte for byte.
 * - Isolation. A write transaction is BEGIN (READ COMMITTED) followed by LOCK TABLE
 *   ms_objects IN SHARE ROW EXCLUSIVE MODE: that mode conflicts with itself and with every
 *   INSERT, UPDATE and DELETE of the table, not with SELECT. So write transactions run one at
 *   a time, across every connection and every msd on the database, exactly as SQLite's BEGIN
 *   IMMEDIATE makes them; each statement of a READ COMMITTED transaction sees everything
 *   committed before it, and nothing else can commit while the lock is held, so the
 *   transaction sees one unchanging state: serial. SERIALIZABLE would give the same result
 *   but fail a conflicting transaction with SQLSTATE 40001, to be retried by the caller;
 *   objstore.h promises no such failure (objects.c does not retry) and every object write
 *   touches the one sequence anyway, so it would buy no concurrency between writers.
 *   A read-only transaction is REPEATABLE READ, READ ONLY: one snapshot for its statements
 *   (a listing page is consistent in itself), taking no lock a writer waits for.
 * - Connections: a pool of PG_POOL, each used by one transaction at a time (begin takes a
 *   free one, commit or rollback gives it back): reads run side by side, writes queue on the
 *   table lock inside PostgreSQL. A connection is made when a transaction needs one and
 *   there is none, and dropped when it fails.
 * - A server that goes away: an operation whose connection broke (or that cannot connect)
 *   fails with -ENOTCONN and a message naming PostgreSQL (objects.c answers 503
 *   MS_EUNAVAILABLE); the connection is dropped and the next transaction connects again.
 *   begin() drops a pooled connection that turns out to be dead (the server restarted since
 *   it was last used) and tries the next, up to a fresh one: nothing had happened yet. After a
 *   failed connection attempt no new one is tried for PG_RETRY_MS: requests meanwhile fail
 *   at once rather than each waiting for a connect timeout. A COMMIT whose connection broke
 *   has an unknown outcome: -EIO saying so (a transaction with a request id can be retried
 *   safely: its record says whether it was applied).
 * - Bounded waits: connecting (connect_timeout), a statement's answer and a free connection of
 *   the pool (PG_QUERY_MS, under the 10 s ms_obj_* give a request, so a client sees 503, not
 *   its own timeout). A server that stops answering without closing the connection (frozen,
 *   or a network that drops packets) thus fails the request with -ENOTCONN like one that
 *   went away; the connection is dropped. Statements are sent with PQsendQueryParams on a
 *   non-blocking connection and their answers awaited with poll().
 * - Every statement has its values as parameters (PQsendQueryParams; the schema's DDL,
 *   constant text, is the only script); every result is bounded: one row by primary key, or
 *   a listing capped both by count and by PG_LIST_BYTES of values per result (a longer page
 *   is fetched in several results).
 *
 * Threading: any thread; the pool is under a mutex; a transaction (with its connection)
 * belongs to the thread that began it.
 */
#include "msd.h"
#include "objstore.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

enum {
    PG_POOL = 4,                    /* connections at most */
    PG_RETRY_MS = 1000,             /* after a failed connect, none again for this long */
    PG_QUERY_MS = 8000,             /* a statement's answer, a free connection: at most this */
    PG_LIST_BYTES = 4 * 1024 * 1024 /* values per listing result, beyond one value */
};

/* The connection parameters msd sets unless the URL sets them (the URL comes after them). */
#define PG_CONNECT_TIMEOUT_S "5"
#define PG_TCP_USER_TIMEOUT_MS "10000"

static const char schema[] =
    "BEGIN;"
    "SELECT pg_advisory_xact_lock(7212345401);" /* any constant: "ms schema" */
    "CREATE TABLE IF NOT EXISTS ms_objects(ns text COLLATE \"C\" NOT NULL,"
    " collection text COLLATE \"C\" NOT NULL, id text COLLATE \"C\" NOT NULL,"
    " version bigint NOT NULL, value text NOT NULL, PRIMARY KEY(ns, collection, id));"
    "CREATE SEQUENCE IF NOT EXISTS ms_objects_version;"
    "CREATE TABLE IF NOT EXISTS ms_objects_records(rid text COLLATE \"C\" PRIMARY KEY,"
    " caller text COLLATE \"C\" NOT NULL, seq bigint NOT NULL, body_sha text NOT NULL,"
    " status integer NOT NULL, answer text NOT NULL, created_ms bigint NOT NULL);"
    "CREATE INDEX IF NOT EXISTS ms_objects_records_caller ON ms_objects_records(caller, seq);"
    "CREATE INDEX IF NOT EXISTS ms_objects_records_age ON ms_objects_records(created_ms);"
    "CREATE TABLE IF NOT EXISTS ms_objects_acks(caller text COLLATE \"C\" PRIMARY KEY,"
    " below bigint NOT NULL, at_ms bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS ms_objects_meta(key text PRIMARY KEY, value bigint NOT NULL);"
    "INSERT INTO ms_objects_meta(key, value) SELECT 'records', count(*) FROM ms_objects_records"
    " ON CONFLICT(key) DO NOTHING;"
    "COMMIT;";

/* The statements: X(name, sql). */
#define PG_STMT_LIST(X)                                                                            \
    X(BEGIN_R, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")                                 \
    X(BEGIN_W, "BEGIN ISOLATION LEVEL READ COMMITTED")                                             \
    X(LOCK_W, "LOCK TABLE ms_objects IN SHARE ROW EXCLUSIVE MODE")                                 \
    X(COMMIT, "COMMIT")                                                                            \
    X(ROLLBACK, "ROLLBACK")                                                                        \
    X(READ, "SELECT value, version FROM ms_objects WHERE ns = $1 AND collection = $2 AND id = $3") \
    X(VERSION, "SELECT version FROM ms_objects WHERE ns = $1 AND collection = $2 AND id = $3")     \
    X(WRITE, "INSERT INTO ms_objects(ns, collection, id, version, value)"                          \
             " VALUES($1, $2, $3, nextval('ms_objects_version'), $4)"                              \
             " ON CONFLICT(ns, collection, id) DO UPDATE SET version = excluded.version,"          \
             " value = excluded.value RETURNING version")                                          \
    X(REMOVE, "DELETE FROM ms_objects WHERE ns = $1 AND collection = $2 AND id = $3")              \
    /* At most $4 rows after $3, and of them those whose values before them total less than        \
     * $5 bytes; n: how many the $4 rows were (more than returned: fetch on from the last). */     \
    X(LIST,                                                                                        \
      "SELECT id, value, version, n FROM (SELECT id, value, version,"                              \
      " sum(octet_length(value)) OVER w - octet_length(value) AS before,"                          \
      " count(*) OVER () AS n FROM (SELECT id, value, version FROM ms_objects"                     \
      " WHERE ns = $1 AND collection = $2 AND id > $3 ORDER BY id LIMIT $4) page"                  \
      " WINDOW w AS (ORDER BY id ROWS UNBOUNDED PRECEDING)) t WHERE before < $5 ORDER BY id")      \
    X(GET_RECORD, "SELECT body_sha, status, answer FROM ms_objects_records WHERE rid = $1")        \
    /* The count of records moves in the statement that adds or drops them. */                     \
    X(PUT_RECORD, "WITH i AS (INSERT INTO ms_objects_records(rid, caller, seq, body_sha, status,"  \
                  " answer, created_ms) VALUES($1, $2, $3, $4, $5, $6, $7)"                        \
                  " ON CONFLICT(rid) DO NOTHING RETURNING 1) UPDATE ms_objects_meta"               \
                  " SET value = value + (SELECT count(*) FROM i) WHERE key = 'records'")           \
    X(TRIM_CALLER, "WITH d AS (DELETE FROM ms_objects_records WHERE caller = $1 AND seq < $2"      \
                   " RETURNING 1) UPDATE ms_objects_meta SET value = value - (SELECT count(*)"     \
                   " FROM d) WHERE key = 'records'")                                               \
    X(TRIM_AGE, "WITH d AS (DELETE FROM ms_objects_records WHERE created_ms < $1 RETURNING 1)"     \
                " UPDATE ms_objects_meta SET value = value - (SELECT count(*) FROM d)"             \
                " WHERE key = 'records'")                                                          \
    X(COUNT_RECORDS, "SELECT value FROM ms_objects_meta WHERE key = 'records'")                    \
    X(GET_ACK, "SELECT below FROM ms_objects_acks WHERE caller = $1")                              \
    X(PUT_ACK, "INSERT INTO ms_objects_acks(caller, below, at_ms) VALUES($1, $2, $3)"              \
               " ON CONFLICT(caller) DO UPDATE SET at_ms = excluded.at_ms,"                        \
               " below = greatest(ms_objects_acks.below, excluded.below)")                         \
    X(TRIM_ACK_AGE, "DELETE FROM ms_objects_acks WHERE at_ms < $1")

enum {
#define PG_STMT_ENUM(name, sql) Q_##name,
    PG_STMT_LIST(PG_STMT_ENUM)
#undef PG_STMT_ENUM
};

static const char *const stmt_sql[] = {
#define PG_STMT_SQL(name, sql) sql,
    PG_STMT_LIST(PG_STMT_SQL)
#undef PG_STMT_SQL
};

typedef struct pg_conn {
    PGconn *c; /* NULL: not connected */
    int busy;  /* a transaction holds it */
} pg_conn;

typedef struct pg_objstore {
    msd_objstore base;
    char *url;
    pthread_mutex_t mu;
    pthread_cond_t freed; /* a slot was given back */
    pg_conn pool[PG_POOL];
    int64_t retry_after_ms; /* no connection attempt before (monotonic) */
    int schema_ok;          /* the tables exist (made once per process) */
    char last_err[256];     /* why the last connection attempt failed */
} pg_objstore;

struct msd_objtx {
    pg_objstore *s;
    pg_conn *slot;
    int broken; /* the connection failed: dropped when the transaction ends */
    int late;   /* ... by not answering in time (begin does not try another then) */
};

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The server's message, one line. */
static void
pg_errtext(PGconn *c, const PGresult *r, char *out, size_t outlen)
{
    const char *e = r ? PQresultErrorMessage(r) : "";
    if (!e || !e[0])
        e = c ? PQerrorMessage(c) : "";
    if (!e || !e[0])
        e = "no answer";
    snprintf(out, outlen, "%s", e);
    char *w = out; /* newlines and tabs to single spaces, none at the end */
    for (const char *p = out; *p; p++) {
        char ch = *p == '\n' || *p == '\r' || *p == '\t' ? ' ' : *p;
        if (ch != ' ' || (w > out && w[-1] != ' '))
            *w++ = ch;
    }
    while (w > out && w[-1] == ' ')
        w--;
    *w = '\0';
}

/* Whether a failure means the server cannot be reached (rather than refused the statement):
 * the connection is broken, or SQLSTATE class 08 (connection exception), 57P01..57P03
 * (shutting down, starting up). */
static int
unreachable(PGconn *c, const PGresult *r)
{
    if (!c || PQstatus(c) == CONNECTION_BAD)
        return 1;
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!st)
        return r == NULL;
    return strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 ||
           strcmp(st, "57P03") == 0;
}

/* Fills msg for a failed statement and returns -ENOTCONN or -EIO. */
static int
fail(msd_objtx *tx, const char *what, const PGresult *r, char *msg, size_t msglen)
{
    char e[300];
    pg_errtext(tx->slot->c, r, e, sizeof e);
    int down = unreachable(tx->slot->c, r);
    if (down)
        tx->broken = 1;
    if (msg && msglen)
        snprintf(msg, msglen, "PostgreSQL%s: %s: %s", down ? " unreachable" : "", what, e);
    return down ? -ENOTCONN : -EIO;
}

/* Waits (poll) until the connection's socket is ready for what; 0, or -1 after the deadline
 * or when the socket fails. */
static int
wait_socket(PGconn *c, short what, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = PQsocket(c), .events = what};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

static int
ok_status(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* PQexecParams (n >= 0; PQexec's simple protocol for a constant script when n < 0) with a
 * bound: the answer must come within PG_QUERY_MS, else NULL with *late set (the connection
 * is then unusable: its caller drops it). NULL without *late: the connection failed. Of
 * several results (a script), the first failed one, else the last. */
static PGresult *
run_bounded(PGconn *c, const char *sql, int n, const char *const *params, const int *lens,
            int *late)
{
    *late = 0;
    int64_t deadline = mono_ms() + PG_QUERY_MS;
    int sent =
        n >= 0 ? PQsendQueryParams(c, sql, n, NULL, params, lens, NULL, 0) : PQsendQuery(c, sql);
    if (!sent)
        return NULL;
    int f;
    while ((f = PQflush(c)) == 1) /* non-blocking: the rest of a large statement */
        if (wait_socket(c, POLLOUT | POLLIN, deadline) < 0 || !PQconsumeInput(c)) {
            *late = mono_ms() >= deadline;
            return NULL;
        }
    if (f < 0)
        return NULL;
    PGresult *keep = NULL;
    for (;;) {
        while (PQisBusy(c)) {
            if (wait_socket(c, POLLIN, deadline) < 0) {
                *late = mono_ms() >= deadline;
                PQclear(keep);
                return NULL;
            }
            if (!PQconsumeInput(c)) {
                PQclear(keep);
                return NULL;
            }
        }
        PGresult *r = PQgetResult(c);
        if (!r)
            return keep;
        if (!keep || (ok_status(keep) && !ok_status(r))) {
            PQclear(keep);
            keep = r;
        } else {
            PQclear(r);
        }
    }
}

/* Runs statement i with n text parameters; *out gets the result when it succeeded (the
 * caller clears it), else the failure is returned (msg filled). */
static int
exec(msd_objtx *tx, int i, int n, const char *const *params, const int *lens, PGresult **out,
     char *msg, size_t msglen)
{
    int late;
    PGresult *r = run_bounded(tx->slot->c, stmt_sql[i], n, params, lens, &late);
    if (late) {
        tx->broken = tx->late = 1;
        if (msg && msglen)
            snprintf(msg, msglen, "PostgreSQL unreachable: %s: no answer within %d ms", stmt_sql[i],
                     PG_QUERY_MS);
        return -ENOTCONN;
    }
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int res = fail(tx, stmt_sql[i], r, msg, msglen);
        PQclear(r);
        return res;
    }
    if (out)
        *out = r;
    else
        PQclear(r);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * The pool.
 * ---------------------------------------------------------------------------------------- */

/* A new connection (the schema made if this process has not yet), or NULL with msg. */
static PGconn *
connect_db(pg_objstore *s, char *msg, size_t msglen)
{
    const char *const keys[] = {"connect_timeout", "tcp_user_timeout", "application_name",
                                "client_encoding", "dbname",           NULL};
    const char *const vals[] = {
        PG_CONNECT_TIMEOUT_S, PG_TCP_USER_TIMEOUT_MS, "msd", "UTF8", s->url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    char e[300];
    if (!c || PQstatus(c) != CONNECTION_OK || PQsetnonblocking(c, 1) != 0) {
        pg_errtext(c, NULL, e, sizeof e);
        snprintf(msg, msglen, "PostgreSQL unreachable: %s", e);
        PQfinish(c);
        return NULL;
    }
    pthread_mutex_lock(&s->mu);
    int schema_ok = s->schema_ok;
    pthread_mutex_unlock(&s->mu);
    if (!schema_ok) {
        int late;
        PGresult *r = run_bounded(c, schema, -1, NULL, NULL, &late);
        if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
            if (late)
                snprintf(e, sizeof e, "no answer within %d ms", PG_QUERY_MS);
            else
                pg_errtext(c, r, e, sizeof e);
            snprintf(msg, msglen, "PostgreSQL: creating the tables: %s", e);
            PQclear(r);
            PQfinish(c);
            return NULL;
        }
        PQclear(r);
        pthread_mutex_lock(&s->mu);
        if (!s->schema_ok)
            msd_log("info", "object store: PostgreSQL database %s on %s:%s, tables ready", PQdb(c),
                    PQhost(c), PQport(c));
        s->schema_ok = 1;
        pthread_mutex_unlock(&s->mu);
    }
    return c;
}

/* Takes a free slot (waiting for one); connects it if it has no connection. */
static int
take(pg_objstore *s, pg_conn **out, int *fresh, char *msg, size_t msglen)
{
    *fresh = 0;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += PG_QUERY_MS / 1000;
    pthread_mutex_lock(&s->mu);
    pg_conn *slot = NULL;
    for (;;) {
        for (int i = 0; i < PG_POOL; i++) /* a connected one first */
            if (!s->pool[i].busy && (!slot || (!slot->c && s->pool[i].c)))
                slot = &s->pool[i];
        if (slot)
            break;
        if (pthread_cond_timedwait(&s->freed, &s->mu, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&s->mu);
            snprintf(msg, msglen, "PostgreSQL: all %d connections busy for %d ms", PG_POOL,
                     PG_QUERY_MS);
            return -ENOTCONN;
        }
    }
    slot->busy = 1;
    if (slot->c) {
        pthread_mutex_unlock(&s->mu);
        *out = slot;
        return 0;
    }
    if (mono_ms() < s->retry_after_ms) {
        snprintf(msg, msglen, "%s (the last attempt was under %d ms ago)", s->last_err,
                 PG_RETRY_MS);
        slot->busy = 0;
        pthread_cond_signal(&s->freed);
        pthread_mutex_unlock(&s->mu);
        return -ENOTCONN;
    }
    pthread_mutex_unlock(&s->mu);
    PGconn *c = connect_db(s, msg, msglen);
    pthread_mutex_lock(&s->mu);
    if (!c) {
        snprintf(s->last_err, sizeof s->last_err, "%s", msg);
        s->retry_after_ms = mono_ms() + PG_RETRY_MS;
        slot->busy = 0;
        pthread_cond_signal(&s->freed);
        pthread_mutex_unlock(&s->mu);
        return -ENOTCONN;
    }
    s->retry_after_ms = 0;
    slot->c = c;
    *fresh = 1;
    pthread_mutex_unlock(&s->mu);
    *out = slot;
    return 0;
}

/* Gives a slot back; drop: its connection failed, close it. */
static void
give_back(pg_objstore *s, pg_conn *slot, int drop)
{
    PGconn *dead = NULL;
    pthread_mutex_lock(&s->mu);
    if (drop || (slot->c && PQstatus(slot->c) != CONNECTION_OK)) {
        dead = slot->c;
        slot->c = NULL;
    }
    slot->busy = 0;
    pthread_cond_signal(&s->freed);
    pthread_mutex_unlock(&s->mu);
    PQfinish(dead);
}

/* ------------------------------------------------------------------------------------------
 * The ops.
 * ---------------------------------------------------------------------------------------- */

static int
pg_begin(msd_objstore *base, int write, msd_objtx **out, char *msg, size_t msglen)
{
    pg_objstore *s = (pg_objstore *)base;
    msd_objtx *tx = calloc(1, sizeof *tx);
    if (!tx)
        return -ENOMEM;
    tx->s = s;
    /* A pooled connection found closed (the server restarted since it was used) is dropped
     * and the next one tried, up to a fresh connection: nothing had happened on it yet. One
     * that did not answer in time is not retried: the request has waited long enough. */
    for (int attempt = 0;; attempt++) {
        int fresh = 0;
        int res = take(s, &tx->slot, &fresh, msg, msglen);
        if (res < 0) {
            free(tx);
            return res;
        }
        tx->broken = 0;
        res = exec(tx, write ? Q_BEGIN_W : Q_BEGIN_R, 0, NULL, NULL, NULL, msg, msglen);
        if (res == 0 && write)
            res = exec(tx, Q_LOCK_W, 0, NULL, NULL, NULL, msg, msglen);
        if (res == 0) {
            *out = tx;
            return 0;
        }
        if (!tx->broken) { /* the server answered: end what BEGIN started */
            char ignored[8];
            if (exec(tx, Q_ROLLBACK, 0, NULL, NULL, NULL, ignored, sizeof ignored) < 0)
                tx->broken = 1;
        }
        give_back(s, tx->slot, tx->broken);
        if (!tx->broken || tx->late || fresh || attempt >= PG_POOL) {
            free(tx);
            return res;
        }
    }
}

static void
pg_rollback(msd_objtx *tx)
{
    if (!tx->broken) {
        char msg[300];
        if (exec(tx, Q_ROLLBACK, 0, NULL, NULL, NULL, msg, sizeof msg) < 0) {
            msd_log("warn", "object store: %s", msg);
            tx->broken = 1; /* state unknown: do not reuse the connection */
        }
    }
    give_back(tx->s, tx->slot, tx->broken);
    free(tx);
}

static int
pg_commit(msd_objtx *tx, char *msg, size_t msglen)
{
    int res = tx->broken ? -EIO : exec(tx, Q_COMMIT, 0, NULL, NULL, NULL, msg, msglen);
    if (res < 0 && tx->broken) {
        /* The connection broke: whether COMMIT reached the server is not known. */
        char why[256];
        snprintf(why, sizeof why, "%s", msg && msglen ? msg : "");
        if (msg && msglen)
            snprintf(msg, msglen, "%s (the transaction's outcome is unknown)", why);
        res = -EIO;
    }
    give_back(tx->s, tx->slot, tx->broken);
    free(tx);
    return res;
}

static int64_t
int64_of(const char *t)
{
    return strtoll(t, NULL, 10);
}

/* A malloc'd copy of field (row, col). */
static char *
dup_field(const PGresult *r, int row, int col)
{
    int n = PQgetlength(r, row, col);
    char *p = malloc((size_t)n + 1);
    if (!p)
        return NULL;
    memcpy(p, PQgetvalue(r, row, col), (size_t)n);
    p[n] = '\0';
    return p;
}

static int
pg_read(msd_objtx *tx, const msd_objkey *k, char **value, int64_t *version, char *msg,
        size_t msglen)
{
    const char *const p[] = {k->ns, k->collection, k->id};
    PGresult *r = NULL;
    int res = exec(tx, value ? Q_READ : Q_VERSION, 3, p, NULL, &r, msg, msglen);
    if (res < 0)
        return res;
    if (PQntuples(r) == 0) {
        res = -ENOENT;
    } else if (value) {
        *version = int64_of(PQgetvalue(r, 0, 1));
        if (!(*value = dup_field(r, 0, 0)))
            res = -ENOMEM;
    } else {
        *version = int64_of(PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    return res;
}

static int
pg_write(msd_objtx *tx, const msd_objkey *k, const char *value, size_t len, int64_t *version,
         char *msg, size_t msglen)
{
    if (len > INT32_MAX)
        return -EINVAL;
    const char *const p[] = {k->ns, k->collection, k->id, value};
    const int lens[] = {0, 0, 0, (int)len};
    PGresult *r = NULL;
    int res = exec(tx, Q_WRITE, 4, p, lens, &r, msg, msglen);
    if (res < 0)
        return res;
    if (PQntuples(r) != 1) {
        snprintf(msg, msglen, "PostgreSQL: write: %d rows returned", PQntuples(r));
        res = -EIO;
    } else {
        *version = int64_of(PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    return res;
}

static int
pg_remove(msd_objtx *tx, const msd_objkey *k, char *msg, size_t msglen)
{
    const char *const p[] = {k->ns, k->collection, k->id};
    PGresult *r = NULL;
    int res = exec(tx, Q_REMOVE, 3, p, NULL, &r, msg, msglen);
    if (res < 0)
        return res;
    if (strcmp(PQcmdTuples(r), "0") == 0)
        res = -ENOENT;
    PQclear(r);
    return res;
}

static int
pg_list(msd_objtx *tx, const char *ns, const char *collection, const char *after, int limit,
        int (*fn)(const char *id, const char *value, size_t len, int64_t version, void *arg),
        void *arg, char *msg, size_t msglen)
{
    char last[256], nbuf[16], bytes[16];
    snprintf(last, sizeof last, "%s", after ? after : "");
    snprintf(bytes, sizeof bytes, "%d", PG_LIST_BYTES);
    while (limit > 0) {
        snprintf(nbuf, sizeof nbuf, "%d", limit);
        const char *const p[] = {ns, collection, last, nbuf, bytes};
        PGresult *r = NULL;
        int res = exec(tx, Q_LIST, 5, p, NULL, &r, msg, msglen);
        if (res < 0)
            return res;
        int rows = PQntuples(r), more = rows > 0 && int64_of(PQgetvalue(r, 0, 3)) > rows;
        for (int i = 0; i < rows; i++) {
            if (fn(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1),
                   int64_of(PQgetvalue(r, i, 2)), arg)) {
                PQclear(r);
                return 0;
            }
        }
        if (rows > 0)
            snprintf(last, sizeof last, "%s", PQgetvalue(r, rows - 1, 0));
        PQclear(r);
        if (!more)
            return 0;
        limit -= rows;
    }
    return 0;
}

static int
pg_get_record(msd_objtx *tx, const char *rid, msd_objrec *rec, char *msg, size_t msglen)
{
    const char *const p[] = {rid};
    PGresult *r = NULL;
    int res = exec(tx, Q_GET_RECORD, 1, p, NULL, &r, msg, msglen);
    if (res < 0)
        return res;
    if (PQntuples(r) == 0) {
        res = -ENOENT;
    } else {
        snprintf(rec->body_sha, sizeof rec->body_sha, "%s", PQgetvalue(r, 0, 0));
        rec->status = (int)int64_of(PQgetvalue(r, 0, 1));
        if (!(rec->answer = dup_field(r, 0, 2)))
            res = -ENOMEM;
    }
    PQclear(r);
    return res;
}

static int
pg_put_record(msd_objtx *tx, const char *rid, const char *caller, uint64_t seq,
              const msd_objrec *rec, int64_t now_ms, char *msg, size_t msglen)
{
    char sq[24], st[16], now[24];
    snprintf(sq, sizeof sq, "%" PRId64, (int64_t)seq);
    snprintf(st, sizeof st, "%d", rec->status);
    snprintf(now, sizeof now, "%" PRId64, now_ms);
    const char *const p[] = {rid, caller, sq, rec->body_sha, st, rec->answer ? rec->answer : "",
                             now};
    return exec(tx, Q_PUT_RECORD, 7, p, NULL, NULL, msg, msglen);
}

static int
pg_count_records(msd_objtx *tx, long long *n, char *msg, size_t msglen)
{
    PGresult *r = NULL;
    *n = 0;
    int res = exec(tx, Q_COUNT_RECORDS, 0, NULL, NULL, &r, msg, msglen);
    if (res < 0)
        return res;
    if (PQntuples(r) == 1) {
        *n = (long long)int64_of(PQgetvalue(r, 0, 0));
    } else {
        snprintf(msg, msglen, "PostgreSQL: ms_objects_meta has no 'records' row");
        res = -EIO;
    }
    PQclear(r);
    return res;
}

static int
pg_get_acked(msd_objtx *tx, const char *caller, uint64_t *below, char *msg, size_t msglen)
{
    const char *const p[] = {caller};
    PGresult *r = NULL;
    *below = 0;
    int res = exec(tx, Q_GET_ACK, 1, p, NULL, &r, msg, msglen);
    if (res < 0)
        return res;
    if (PQntuples(r) == 1)
        *below = (uint64_t)int64_of(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

static int
pg_trim_records(msd_objtx *tx, const char *caller, uint64_t below, int64_t now_ms,
                int64_t before_ms, char *msg, size_t msglen)
{
    char num[24], at[24];
    int res = 0;
    if (caller && caller[0] && below > 0) {
        snprintf(num, sizeof num, "%" PRId64, (int64_t)below);
        snprintf(at, sizeof at, "%" PRId64, now_ms);
        const char *const p[] = {caller, num, at};
        res = exec(tx, Q_TRIM_CALLER, 2, p, NULL, NULL, msg, msglen);
        if (res == 0)
            res = exec(tx, Q_PUT_ACK, 3, p, NULL, NULL, msg, msglen);
    }
    if (res == 0 && before_ms > 0) {
        snprintf(num, sizeof num, "%" PRId64, before_ms);
        const char *const p[] = {num};
        res = exec(tx, Q_TRIM_AGE, 1, p, NULL, NULL, msg, msglen);
        if (res == 0)
            res = exec(tx, Q_TRIM_ACK_AGE, 1, p, NULL, NULL, msg, msglen);
    }
    return res;
}

static void
pg_close(msd_objstore *base)
{
    if (!base)
        return;
    pg_objstore *s = (pg_objstore *)base;
    for (int i = 0; i < PG_POOL; i++)
        PQfinish(s->pool[i].c);
    pthread_cond_destroy(&s->freed);
    pthread_mutex_destroy(&s->mu);
    free(s->url);
    free(s);
}

static const msd_objstore_ops pg_ops = {
    .name = "postgresql",
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .read = pg_read,
    .write = pg_write,
    .remove = pg_remove,
    .list = pg_list,
    .get_record = pg_get_record,
    .put_record = pg_put_record,
    .count_records = pg_count_records,
    .get_acked = pg_get_acked,
    .trim_records = pg_trim_records,
    .close = pg_close,
};

int
msd_objstore_pg_url_ok(const char *url, char *msg, size_t msglen)
{
    char *err = NULL;
    PQconninfoOption *o = PQconninfoParse(url, &err);
    if (!o) {
        snprintf(msg, msglen, "not a PostgreSQL connection string: %s",
                 err ? err : "out of memory");
        for (char *p = msg; *p; p++)
            if (*p == '\n')
                *p = *(p + 1) ? ' ' : '\0';
        PQfreemem(err);
        return -EINVAL;
    }
    PQconninfoFree(o);
    return 0;
}

int
msd_objstore_pg_open(const char *url, msd_objstore **out, char *msg, size_t msglen)
{
    int res = msd_objstore_pg_url_ok(url, msg, msglen);
    if (res < 0)
        return res;
    pg_objstore *s = calloc(1, sizeof *s);
    if (!s || !(s->url = strdup(url))) {
        free(s);
        return -ENOMEM;
    }
    s->base.ops = &pg_ops;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->freed, &ca);
    pthread_condattr_destroy(&ca);
    /* One connection now, to say at start whether the server answers; msd starts either
     * way (objects answer 503 until it does). */
    pg_conn *slot = NULL;
    int fresh;
    if (take(s, &slot, &fresh, msg, msglen) == 0)
        give_back(s, slot, 0);
    else
        msd_log("warn",
                "object store: %s; msd starts anyway, object requests answer 503 "
                "MS_EUNAVAILABLE until PostgreSQL answers",
                msg);
    msg[0] = '\0';
    *out = &s->base;
    return 0;
}
