/*
 * objstore.h: where the objects of the object store live (DESIGN section 6), behind a vtable.
 * Not msd's own state (store.h): a separate database with a separate life.
 *
 * Design notes
 * - A backend is storage and nothing else: transactions, read, write, remove, list, and a
 *   log of request ids. Every rule of the object store (ids, ETags, If-Match, merge patch,
 *   transactions of several operations, request ids) is written once, over this table, in
 *   objects.c. So a backend is one file with an msd_objstore_ops and an opener:
 *   objstore_sqlite.c, objstore_pg.c (docs/objects.md, "Writing a backend").
 * - Everything happens inside a transaction: begin, any number of operations, then commit
 *   or rollback (exactly one of them, also after a failed operation). A write transaction
 *   is serialisable: nothing another transaction commits is seen, or overwritten, between
 *   its begin and its end. A read-only transaction may share the database with others.
 * - Versions: write() gives the object a new version, an integer greater than every version
 *   this store ever handed out, to any object, also to objects since deleted. So a version
 *   is never reused and an ETag (made from it) names exactly one value.
 * - Keys are (ns, collection, id), each valid per msd_obj_name_ok (objects.h): the backend
 *   may rely on it. Values are compact JSON text of a JSON object.
 * - Every function returns 0 or a negative errno: -ENOENT (absent, where said), -EIO (the
 *   database failed; msg filled), -ENOTCONN (the database cannot be reached now, e.g. a
 *   server that went away: nothing was done, a later request may succeed; msg filled; the
 *   object store answers 503 MS_EUNAVAILABLE), -ENOMEM. A commit whose outcome is unknown
 *   (the connection broke during it) is -EIO, never -ENOTCONN.
 *
 * Threading: the ops may be called from any thread; the backend locks what it must. A
 * transaction (msd_objtx) belongs to the thread that began it until it ends.
 * Ownership: text handed to callbacks and out-parameters is the caller's to free where
 * said; everything passed in is borrowed for the duration of the call.
 */
#ifndef MSD_OBJSTORE_H
#define MSD_OBJSTORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct msd_objstore msd_objstore;
typedef struct msd_objtx msd_objtx;

/* One key. */
typedef struct msd_objkey {
    const char *ns, *collection, *id;
} msd_objkey;

/* A recorded answer to a request id (a transaction's). */
typedef struct msd_objrec {
    char body_sha[65]; /* SHA-256 of the request body, hex */
    int status;        /* the HTTP status answered */
    char *answer;      /* the body answered (malloc'd by get_record) */
} msd_objrec;

typedef struct msd_objstore_ops {
    const char *name; /* "sqlite", "postgresql" */
    /* Begins a transaction; write: one that may change something. */
    int (*begin)(msd_objstore *s, int write, msd_objtx **tx, char *msg, size_t msglen);
    /* Ends it: commit makes every write durable or fails (then nothing happened, and tx is
     * gone all the same); rollback forgets every write. */
    int (*commit)(msd_objtx *tx, char *msg, size_t msglen);
    void (*rollback)(msd_objtx *tx);
    /* The value (malloc'd JSON text, *value) and version of k; -ENOENT when absent. value
     * may be NULL to ask for the version alone. */
    int (*read)(msd_objtx *tx, const msd_objkey *k, char **value, int64_t *version, char *msg,
                size_t msglen);
    /* Stores value (JSON text, len bytes) at k, creating or replacing; *version gets its new
     * version (see above). A write transaction only. */
    int (*write)(msd_objtx *tx, const msd_objkey *k, const char *value, size_t len,
                 int64_t *version, char *msg, size_t msglen);
    /* Removes k; -ENOENT when absent. A write transaction only. */
    int (*remove)(msd_objtx *tx, const msd_objkey *k, char *msg, size_t msglen);
    /* Calls fn for the objects of (ns, collection) whose id sorts after `after` (bytewise;
     * "" from the start), in id order, at most limit of them; fn returns nonzero to stop
     * early. */
    int (*list)(msd_objtx *tx, const char *ns, const char *collection, const char *after, int limit,
                int (*fn)(const char *id, const char *value, size_t len, int64_t version,
                          void *arg),
                void *arg, char *msg, size_t msglen);
    /* The record of request id rid (-ENOENT when none); rec->answer is malloc'd. */
    int (*get_record)(msd_objtx *tx, const char *rid, msd_objrec *rec, char *msg, size_t msglen);
    /* Records rid's answer with its caller and sequence number (caller "" and seq 0 for an id
     * of another form) at wall time now_ms; a record already there for rid stays as it is
     * (the first answer stands). A write transaction only. */
    int (*put_record)(msd_objtx *tx, const char *rid, const char *caller, uint64_t seq,
                      const msd_objrec *rec, int64_t now_ms, char *msg, size_t msglen);
    /* How many records there are, in O(1) (the backend keeps the count in the same
     * transactions as the records: put_record adds one only when the rid was new, the trims
     * take off what they dropped). */
    int (*count_records)(msd_objtx *tx, long long *n, char *msg, size_t msglen);
    /* The acknowledgement remembered for caller (the highest `below` trim_records was given
     * for it): every seq below it is finished with on the caller's side. 0 when none. */
    int (*get_acked)(msd_objtx *tx, const char *caller, uint64_t *below, char *msg, size_t msglen);
    /* Forgets the records of caller below `below` and remembers `below` as its
     * acknowledgement at now_ms (never lowering one remembered); then forgets every record
     * and every acknowledgement older than before_ms (0: none by age). caller "" or below 0:
     * nothing of a caller's. A write transaction only. */
    int (*trim_records)(msd_objtx *tx, const char *caller, uint64_t below, int64_t now_ms,
                        int64_t before_ms, char *msg, size_t msglen);
    /* Closes the store (no transaction may be open). Accepts NULL. */
    void (*close)(msd_objstore *s);
} msd_objstore_ops;

struct msd_objstore {
    const msd_objstore_ops *ops;
};

/* Opens (creating) the SQLite object store at path, in WAL mode. 0 or -errno; msg names the
 * cause. */
int msd_objstore_sqlite_open(const char *path, msd_objstore **out, char *msg, size_t msglen);

/* Opens the PostgreSQL object store at url (a libpq connection string or URI,
 * "postgresql://..."; tables created when absent). Only a malformed url fails (-EINVAL, msg
 * says why): a server that does not answer is logged, and the store connects when a later
 * request needs it (until then operations fail with -ENOTCONN). */
int msd_objstore_pg_open(const char *url, msd_objstore **out, char *msg, size_t msglen);
/* Whether url is a connection string libpq can parse: 0 or -EINVAL (msg says why). */
int msd_objstore_pg_url_ok(const char *url, char *msg, size_t msglen);

#endif /* MSD_OBJSTORE_H */
