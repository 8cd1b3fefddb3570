/*
 * pg_server.h: a real PostgreSQL 15 server for the tests, started and stopped by the test
 * itself (test_objects pg: the object store's PostgreSQL backend).
 *
 * Design notes
 * - h_pg_start makes a temporary directory (/tmp/ms-pg-XXXXXX, owned by the postgres user
 *   when the test runs as root, since PostgreSQL refuses to run as root), runs initdb there
 *   (trust authentication on 127.0.0.1, user postgres, no fsync: the test never crashes the
 *   machine), and starts `postgres -D <dir>/data -k <dir> -h 127.0.0.1 -p <a free port>` as
 *   a child of the test (forked, privileges dropped, exec'd: its PID is the postmaster's),
 *   with PR_SET_PDEATHSIG so that it stops if the test dies. Readiness is polled with
 *   PQping, bounded, never a bare sleep.
 * - Clean-up at exit (atexit, so also after a failed assertion): the server is stopped by
 *   PID (SIGINT, PostgreSQL's fast shutdown; SIGKILL after 20 s) and reaped, and the
 *   directory is removed (kept when MS_TEST_KEEP is set).
 * - The binaries are PG_TEST_BIN (Debian's postgresql-15, which scripts/install-deps.sh
 *   installs through the package postgresql). Missing: h_pg_start fails with a message
 *   saying so: make test installs it, so its absence is a broken set-up, not a skip.
 */
#ifndef MS_TEST_PG_SERVER_H
#define MS_TEST_PG_SERVER_H

#include <stddef.h>
#include <sys/types.h>

#define PG_TEST_BIN "/usr/lib/postgresql/15/bin"

typedef struct h_pg {
    pid_t pid; /* the postmaster; 0 when stopped */
    int port;
    char dir[64];  /* the temporary directory: data/, the socket, the logs */
    char url[128]; /* postgresql://postgres@127.0.0.1:<port>/postgres */
    char log[128]; /* the server's stderr */
} h_pg;

/* Makes and starts a server; NULL on failure (the reason printed). */
h_pg *h_pg_start(void);
/* Stops it (fast shutdown) and waits until its process is gone; 0 or -1. */
int h_pg_stop(h_pg *pg);
/* Freezes (SIGSTOP) or thaws (SIGCONT) the server and every backend (the postmaster's
 * children): a server that no longer answers but keeps its connections open. 0 or -1. */
int h_pg_freeze(h_pg *pg, int frozen);
/* Creates database name on the server; url gets its URL. 0 or -1 (printed). */
int h_pg_createdb(h_pg *pg, const char *name, char *url, size_t urllen);
/* Starts it again on the same directory and port; waits until it answers; 0 or -1. */
int h_pg_restart(h_pg *pg);

#endif /* MS_TEST_PG_SERVER_H */
