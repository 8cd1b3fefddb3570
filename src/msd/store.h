/*
 * store.h: where msd keeps its state across restarts, behind a vtable.
 *
 * Design notes
 * - One backend per file: store_sqlite.c now; store_etcd.c (several orchestrators,
 *   DESIGN section 8) later. A new backend is a new file with an msd_store_ops, not a new
 *   `if` in msd.
 * - The store is a write-through copy of the in-memory model (msd.h): msd calls put_* and
 *   del_* while holding its mutex, right after changing memory, and load() once at start.
 *   A failed write is logged by the caller and does not undo the change in memory: msd
 *   keeps running on what it knows.
 * - Every function returns 0 or a negative errno (-EIO for a database error).
 * - Threading: a store is used under msd.mu; the backend need not lock.
 */
#ifndef MSD_STORE_H
#define MSD_STORE_H

#include "msd.h"

typedef struct msd_store_ops {
    const char *name;
    /* Loads every deployment, service and instance into m (which is empty), and the
     * counters (next instance number, deployment seq, last event seq). */
    int (*load)(msd_store *s, msd *m);
    int (*put_deployment)(msd_store *s, const msd_deployment *d);
    int (*put_service)(msd_store *s, const msd_service *svc);
    int (*put_instance)(msd_store *s, const msd_instance *in);
    int (*del_instance)(msd_store *s, const char *id);
    int (*put_event)(msd_store *s, const msd_event *ev);
    /* Calls fn for events with seq > since, oldest first, at most limit. */
    int (*events_since)(msd_store *s, int64_t since, int limit,
                        void (*fn)(const msd_event *ev, void *arg), void *arg);
    /* Small named values ("next_instance"): get fills buf ("" when absent). */
    int (*get_meta)(msd_store *s, const char *key, char *buf, size_t len);
    int (*set_meta)(msd_store *s, const char *key, const char *value);
    void (*close)(msd_store *s);
} msd_store_ops;

struct msd_store {
    const msd_store_ops *ops;
};

/* Opens (creating) the SQLite store at path. 0 or -errno; msg names the cause. */
int msd_store_sqlite_open(const char *path, msd_store **out, char *msg, size_t msglen);

#endif /* MSD_STORE_H */
