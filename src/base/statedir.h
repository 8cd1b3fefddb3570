/*
 * statedir.h: the names of the files in msd's state directory (MS_STATE_DIR, else
 * $XDG_STATE_HOME/ms, else ~/.local/state/ms), written by msd and read by libms, msctl and
 * the tests. One place for them, so that a writer and its readers cannot drift apart.
 * Part of src/base (see base.h); constants only.
 *
 * Join with a '/' by string concatenation: "%s/" MSI_STATE_ADDR.
 */
#ifndef MSI_STATEDIR_H
#define MSI_STATEDIR_H

#define MSI_STATE_ADDR "addr"             /* msd's TCP address, "host:port", one line */
#define MSI_STATE_SOCK "msd.sock"         /* msd's unix socket (peer uid checked) */
#define MSI_STATE_TOKEN "token"           /* the admin token (mode 0600) */
#define MSI_STATE_CALL_TOKEN "call-token" /* the call token (mode 0600) */
#define MSI_STATE_OBJECTS "objects.db"    /* the SQLite object store (docs/objects.md) */

#endif /* MSI_STATEDIR_H */
