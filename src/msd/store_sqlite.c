/*
 * store_sqlite.c: the SQLite backend of store.h, the default for one msd.
 *
 * Design notes
 * - One database file, <state>/msd.db, in WAL mode with synchronous=NORMAL: a write is one
 *   small transaction, durable against a crash of msd (the point of the store), and a
 *   power loss may lose the last ones, which the reconcile loop then rebuilds from what it
 *   finds running.
 * - Tables: meta(key, value); deployments(build, seq, path, exe, argv, services, created_ms);
 *   services(name, build, signature, sigtext, options, desired, deleted, pinned);
 *   instances(id, epoch, service, build, pid, start_time, addr, state, restarts, ...);
 *   events(seq, ts_ms, type, service, instance, message), trimmed to the newest 10000.
 *   JSON columns hold compact JSON text. `PRAGMA user_version` numbers the schema.
 * - Statements are prepared per call (sqlite caches little, but writes are rare: a few per
 *   instance state change); nothing here is on a call's path.
 */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#define SCHEMA_VERSION 2 /* 2: services.pinned */
#define EVENTS_KEPT 10000

typedef struct sqlite_store {
    msd_store base;
    sqlite3 *db;
    int64_t events_since_trim;
} sqlite_store;

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS deployments(build TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
    " path TEXT NOT NULL, exe TEXT NOT NULL, argv TEXT NOT NULL, services TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS services(name TEXT NOT NULL, build TEXT NOT NULL,"
    " signature TEXT NOT NULL, sigtext TEXT NOT NULL, options TEXT NOT NULL,"
    " desired INTEGER NOT NULL, deleted INTEGER NOT NULL, pinned INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(name, build));"
    "CREATE TABLE IF NOT EXISTS instances(id TEXT PRIMARY KEY, epoch INTEGER NOT NULL,"
    " service TEXT NOT NULL, build TEXT NOT NULL, pid INTEGER NOT NULL,"
    " start_time INTEGER NOT NULL, addr TEXT NOT NULL, state TEXT NOT NULL,"
    " restarts INTEGER NOT NULL, retiring INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " started_ms INTEGER NOT NULL, ready_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL,"
    " type TEXT NOT NULL, service TEXT NOT NULL, instance TEXT NOT NULL,"
    " message TEXT NOT NULL);";

/* Brings a database of an older schema up to SCHEMA_VERSION (CREATE TABLE IF NOT EXISTS
 * leaves existing tables as they were). */
static int
migrate(sqlite3 *db, char **errmsg)
{
    int version = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version == 1) /* 1 -> 2: manual scales pin a service against the autoscaler */
        return sqlite3_exec(db, "ALTER TABLE services ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0",
                            NULL, NULL, errmsg);
    return SQLITE_OK;
}

static sqlite3 *
db_of(msd_store *s)
{
    return ((sqlite_store *)s)->db;
}

static int
fail(sqlite3 *db, const char *what)
{
    msd_log("error", "store: %s: %s", what, sqlite3_errmsg(db));
    return -EIO;
}

/* Runs one statement with text/int64 parameters given as a format: 't' text, 'i' int64,
 * 'd' double. */
static int
exec_bind(sqlite3 *db, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fail(db, sql);
    va_list ap;
    va_start(ap, types);
    for (int i = 0; types[i]; i++) {
        if (types[i] == 't') {
            const char *v = va_arg(ap, const char *);
            rc = sqlite3_bind_text(st, i + 1, v ? v : "", -1, SQLITE_TRANSIENT);
        } else if (types[i] == 'i') {
            rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        } else {
            rc = sqlite3_bind_double(st, i + 1, va_arg(ap, double));
        }
        if (rc != SQLITE_OK)
            break;
    }
    va_end(ap);
    int res = 0;
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
            res = fail(db, sql);
    } else {
        res = fail(db, sql);
    }
    sqlite3_finalize(st);
    return res;
}

static char *
dump(const json_t *j)
{
    return j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("null");
}

static const char *
col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

static json_t *
col_json(sqlite3_stmt *st, int i)
{
    const char *t = col_text(st, i);
    return json_loads(t, JSON_DECODE_ANY, NULL);
}

/* ------------------------------------------------------------------------------------------
 * Loading.
 * ---------------------------------------------------------------------------------------- */

static int
load_deployments(sqlite3 *db, msd *m)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT build, seq, path, exe, argv, services, created_ms FROM "
                           "deployments ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK)
        return fail(db, "load deployments");
    int rc, res = 0;
    msd_deployment **tail = &m->deployments;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        msd_deployment *d = calloc(1, sizeof *d);
        if (!d) {
            res = -ENOMEM;
            break;
        }
        msd_fmt(d->build, sizeof d->build, "%s", col_text(st, 0));
        d->seq = sqlite3_column_int64(st, 1);
        d->path = strdup(col_text(st, 2));
        d->exe = strdup(col_text(st, 3));
        d->argv = col_json(st, 4);
        d->services = col_json(st, 5);
        d->created_ms = sqlite3_column_int64(st, 6);
        if (!d->path || !d->exe || !json_is_array(d->argv) || !json_is_array(d->services)) {
            msd_log("warn", "store: deployment %s is damaged; skipped", d->build);
            msd_deployment_free(d);
            continue;
        }
        if (d->seq >= m->next_deploy_seq)
            m->next_deploy_seq = d->seq + 1;
        *tail = d;
        tail = &d->next;
    }
    if (rc != SQLITE_DONE && !res)
        res = fail(db, "load deployments");
    sqlite3_finalize(st);
    return res;
}

static int
load_services(sqlite3 *db, msd *m)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT name, build, signature, sigtext, options, desired, deleted, "
                           "pinned FROM services ORDER BY name, build",
                           -1, &st, NULL) != SQLITE_OK)
        return fail(db, "load services");
    int rc, res = 0;
    msd_service **tail = &m->services;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        msd_service *s = calloc(1, sizeof *s);
        if (!s) {
            res = -ENOMEM;
            break;
        }
        msd_fmt(s->name, sizeof s->name, "%s", col_text(st, 0));
        msd_fmt(s->build, sizeof s->build, "%s", col_text(st, 1));
        msd_fmt(s->sig, sizeof s->sig, "%s", col_text(st, 2));
        s->sigtext = strdup(col_text(st, 3));
        s->options = col_json(st, 4);
        s->desired = sqlite3_column_int(st, 5);
        s->deleted = sqlite3_column_int(st, 6);
        s->pinned = sqlite3_column_int(st, 7);
        s->dep = msd_deployment_find(m, s->build);
        if (!s->sigtext || !json_is_object(s->options) || !s->dep) {
            msd_log("warn", "store: service %s of build %.12s is damaged; skipped", s->name,
                    s->build);
            msd_service_free(s);
            continue;
        }
        msd_service_apply_options(s);
        *tail = s;
        tail = &s->next;
    }
    if (rc != SQLITE_DONE && !res)
        res = fail(db, "load services");
    sqlite3_finalize(st);
    return res;
}

static int
load_instances(sqlite3 *db, msd *m)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, epoch, service, build, pid, start_time, addr, state, "
                           "restarts, retiring, created_ms, started_ms, ready_ms, updated_ms "
                           "FROM instances ORDER BY created_ms, id",
                           -1, &st, NULL) != SQLITE_OK)
        return fail(db, "load instances");
    int rc, res = 0;
    msd_instance **tail = &m->instances;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        msd_instance *in = calloc(1, sizeof *in);
        if (!in) {
            res = -ENOMEM;
            break;
        }
        in->proc.exit_fd = -1;
        in->proc.status = -1;
        msd_fmt(in->id, sizeof in->id, "%s", col_text(st, 0));
        in->epoch = sqlite3_column_int64(st, 1);
        in->svc = msd_service_find(m, col_text(st, 2), col_text(st, 3));
        in->proc.pid = (pid_t)sqlite3_column_int64(st, 4);
        in->proc.start_time = (uint64_t)sqlite3_column_int64(st, 5);
        msd_fmt(in->addr, sizeof in->addr, "%s", col_text(st, 6));
        if (msd_istate_parse(col_text(st, 7), &in->state) < 0)
            in->state = MSD_I_DEAD;
        in->restarts = sqlite3_column_int(st, 8);
        in->retiring = sqlite3_column_int(st, 9);
        in->created_ms = sqlite3_column_int64(st, 10);
        in->started_ms = sqlite3_column_int64(st, 11);
        in->ready_ms = sqlite3_column_int64(st, 12);
        in->updated_ms = sqlite3_column_int64(st, 13);
        if (!in->svc || !msd_valid_id(in->id)) {
            msd_log("warn", "store: instance %s has no service; dropped", in->id);
            msd_instance_free(in);
            continue;
        }
        *tail = in;
        tail = &in->next;
    }
    if (rc != SQLITE_DONE && !res)
        res = fail(db, "load instances");
    sqlite3_finalize(st);
    return res;
}

static int
sq_get_meta(msd_store *s, const char *key, char *buf, size_t len)
{
    sqlite3 *db = db_of(s);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) != SQLITE_OK)
        return fail(db, "get meta");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    int res = 0;
    buf[0] = '\0';
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        msd_fmt(buf, len, "%s", col_text(st, 0));
    else if (rc != SQLITE_DONE)
        res = fail(db, "get meta");
    sqlite3_finalize(st);
    return res;
}

static int
sq_set_meta(msd_store *s, const char *key, const char *value)
{
    return exec_bind(db_of(s), "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", "tt", key,
                     value);
}

static int
sq_load(msd_store *s, msd *m)
{
    sqlite3 *db = db_of(s);
    int res = load_deployments(db, m);
    if (!res)
        res = load_services(db, m);
    if (!res)
        res = load_instances(db, m);
    if (res)
        return res;
    char buf[32];
    long long v;
    if (sq_get_meta(s, "next_instance", buf, sizeof buf) == 0 && buf[0] &&
        msd_parse_int(buf, 1, INT64_MAX, &v) == 0)
        m->next_instance = v;
    if (m->next_instance < 1)
        m->next_instance = 1;
    /* Never reuse an id seen in the table, whatever meta says. */
    for (msd_instance *in = m->instances; in; in = in->next) {
        if (strncmp(in->id, "i-", 2) == 0 && msd_parse_int(in->id + 2, 1, INT64_MAX, &v) == 0 &&
            v >= m->next_instance)
            m->next_instance = v + 1;
    }
    if (m->next_deploy_seq < 1)
        m->next_deploy_seq = 1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(seq), 0) FROM events", -1, &st, NULL) ==
        SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            m->event_seq = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Writes.
 * ---------------------------------------------------------------------------------------- */

static int
sq_put_deployment(msd_store *s, const msd_deployment *d)
{
    char *argv = dump(d->argv), *svcs = dump(d->services);
    int res = -ENOMEM;
    if (argv && svcs)
        res = exec_bind(db_of(s),
                        "INSERT OR REPLACE INTO deployments(build, seq, path, exe, argv, "
                        "services, created_ms) VALUES(?, ?, ?, ?, ?, ?, ?)",
                        "titttti", d->build, d->seq, d->path, d->exe, argv, svcs, d->created_ms);
    free(argv);
    free(svcs);
    return res;
}

static int
sq_put_service(msd_store *s, const msd_service *svc)
{
    char *opts = dump(svc->options);
    int res = -ENOMEM;
    if (opts)
        res = exec_bind(db_of(s),
                        "INSERT OR REPLACE INTO services(name, build, signature, sigtext, "
                        "options, desired, deleted, pinned) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                        "tttttiii", svc->name, svc->build, svc->sig, svc->sigtext, opts,
                        (int64_t)svc->desired, (int64_t)svc->deleted, (int64_t)svc->pinned);
    free(opts);
    return res;
}

static int
sq_put_instance(msd_store *s, const msd_instance *in)
{
    return exec_bind(db_of(s),
                     "INSERT OR REPLACE INTO instances(id, epoch, service, build, pid, "
                     "start_time, addr, state, restarts, retiring, created_ms, started_ms, "
                     "ready_ms, updated_ms) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     "tittiittiiiiii", in->id, in->epoch, in->svc->name, in->svc->build,
                     (int64_t)in->proc.pid, (int64_t)in->proc.start_time, in->addr,
                     msd_istate_name(in->state), (int64_t)in->restarts, (int64_t)in->retiring,
                     in->created_ms, in->started_ms, in->ready_ms, in->updated_ms);
}

static int
sq_del_instance(msd_store *s, const char *id)
{
    return exec_bind(db_of(s), "DELETE FROM instances WHERE id = ?", "t", id);
}

static int
sq_put_event(msd_store *s, const msd_event *ev)
{
    sqlite_store *ss = (sqlite_store *)s;
    int res =
        exec_bind(ss->db,
                  "INSERT OR REPLACE INTO events(seq, ts_ms, type, service, instance, "
                  "message) VALUES(?, ?, ?, ?, ?, ?)",
                  "iitttt", ev->seq, ev->ts_ms, ev->type, ev->service, ev->instance, ev->message);
    if (!res && ++ss->events_since_trim >= 1000) {
        ss->events_since_trim = 0;
        res = exec_bind(ss->db, "DELETE FROM events WHERE seq <= ?", "i",
                        ev->seq - (int64_t)EVENTS_KEPT);
    }
    return res;
}

static int
sq_events_since(msd_store *s, int64_t since, int limit, void (*fn)(const msd_event *ev, void *arg),
                void *arg)
{
    sqlite3 *db = db_of(s);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT seq, ts_ms, type, service, instance, message FROM events "
                           "WHERE seq > ? ORDER BY seq LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK)
        return fail(db, "events");
    sqlite3_bind_int64(st, 1, since);
    sqlite3_bind_int64(st, 2, limit);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        msd_event ev;
        memset(&ev, 0, sizeof ev);
        ev.seq = sqlite3_column_int64(st, 0);
        ev.ts_ms = sqlite3_column_int64(st, 1);
        msd_fmt(ev.type, sizeof ev.type, "%s", col_text(st, 2));
        msd_fmt(ev.service, sizeof ev.service, "%s", col_text(st, 3));
        msd_fmt(ev.instance, sizeof ev.instance, "%s", col_text(st, 4));
        msd_fmt(ev.message, sizeof ev.message, "%s", col_text(st, 5));
        fn(&ev, arg);
    }
    int res = rc == SQLITE_DONE ? 0 : fail(db, "events");
    sqlite3_finalize(st);
    return res;
}

static void
sq_close(msd_store *s)
{
    if (!s)
        return;
    sqlite3_close(db_of(s));
    free(s);
}

static const msd_store_ops sqlite_ops = {
    .name = "sqlite",
    .load = sq_load,
    .put_deployment = sq_put_deployment,
    .put_service = sq_put_service,
    .put_instance = sq_put_instance,
    .del_instance = sq_del_instance,
    .put_event = sq_put_event,
    .events_since = sq_events_since,
    .get_meta = sq_get_meta,
    .set_meta = sq_set_meta,
    .close = sq_close,
};

int
msd_store_sqlite_open(const char *path, msd_store **out, char *msg, size_t msglen)
{
    sqlite_store *s = calloc(1, sizeof *s);
    if (!s) {
        msd_fmt(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    s->base.ops = &sqlite_ops;
    int res = 0;
    char *errmsg = NULL;
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        msd_fmt(msg, msglen, "%s: %s", path, s->db ? sqlite3_errmsg(s->db) : "cannot open");
        res = -EIO;
        goto out;
    }
    sqlite3_busy_timeout(s->db, 5000);
    rc = sqlite3_exec(s->db,
                      "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                      "PRAGMA foreign_keys=OFF;",
                      NULL, NULL, &errmsg);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, schema, NULL, NULL, &errmsg);
    if (rc == SQLITE_OK)
        rc = migrate(s->db, &errmsg);
    if (rc == SQLITE_OK) {
        char pragma[64];
        msd_fmt(pragma, sizeof pragma, "PRAGMA user_version=%d;", SCHEMA_VERSION);
        rc = sqlite3_exec(s->db, pragma, NULL, NULL, &errmsg);
    }
    if (rc != SQLITE_OK) {
        msd_fmt(msg, msglen, "%s: %s", path, errmsg ? errmsg : sqlite3_errmsg(s->db));
        res = -EIO;
    }
out:
    sqlite3_free(errmsg);
    if (res) {
        if (s->db)
            sqlite3_close(s->db);
        free(s);
        return res;
    }
    *out = &s->base;
    return 0;
}
