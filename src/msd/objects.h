/*
 * objects.h: the object store's rules (DESIGN section 6, docs/objects.md), over any backend
 * of objstore.h, and its REST API at msd's address.
 *
 * Design notes
 * - objects.c holds every rule once: names, ids, ETags and If-Match, JSON merge patch,
 *   the size of a value, transactions of several operations and their request ids. A
 *   backend (objstore.h) only stores. objects_api.c turns HTTP requests into these calls.
 * - Names (ns, collection, id): msd's name grammar, 1 to 128 of [A-Za-z0-9_.-], neither "."
 *   nor "..". Server-made ids are 32 lowercase hex digits (128 random bits).
 * - ETag: the version of objstore.h in double quotes, "\"17\"": a strong validator, new on
 *   every write and never reused by this store. An If-Match is "*" (the object exists) or a
 *   comma-separated list of ETags (quoted; a bare number is accepted too); a weak one
 *   (W/"...") never matches (RFC 9110 13.1.1: If-Match compares strongly).
 * - Statuses: MS_ENOTFOUND (absent), MS_ECONFLICT (an If-Match that does not match),
 *   MS_EBADARGS (a bad name, body or If-Match), MS_ETOOBIG (a value over MSD_OBJ_VALUE_MAX
 *   once patched), MS_EREUSED (a request id reused with another body), MS_EIO (the backend
 *   failed), MS_ENOMEM.
 *
 * Threading: every function may be called from any thread at once (the backend serialises
 * what it must). Ownership: out-parameters are the caller's; inputs are borrowed.
 */
#ifndef MSD_OBJECTS_H
#define MSD_OBJECTS_H

#include "msd.h"
#include "objstore.h"

#define MSD_OBJ_ID_LEN 32              /* server-made ids: 32 hex digits */
#define MSD_OBJ_VALUE_MAX MSD_BODY_MAX /* a stored value, compact JSON: 1 MiB */
#define MSD_OBJ_LIST_DEFAULT 100       /* objects per page when no limit is given */
#define MSD_OBJ_LIST_MAX 1000          /* the largest limit */
#define MSD_OBJ_PAGE_BYTES (4u << 20)  /* a page stops growing past this many bytes of values */
#define MSD_OBJ_TXN_OPS_MAX 64         /* operations in one transaction */
#define MSD_OBJ_RECORD_KEEP_MS (3600 * 1000) /* a transaction's record outlives it this long */
#define MSD_OBJ_ETAG_MAX 24                  /* "\"" + 19 digits + "\"" + NUL */

/* Whether s is a valid ns, collection or id. */
int msd_obj_name_ok(const char *s);
/* The ETag of a version: "\"17\"". */
void msd_obj_etag(int64_t version, char out[MSD_OBJ_ETAG_MAX]);

/* GET: the value (malloc'd compact JSON text, *len bytes) and version of k. */
ms_status msd_obj_get(msd_objstore *s, const msd_objkey *k, char **value, size_t *len,
                      int64_t *version, msi_err *err);
/* POST: stores a new object (value must be a JSON object) under a new id (id[] filled). */
ms_status msd_obj_create(msd_objstore *s, const char *ns, const char *collection,
                         const json_t *value, char id[MSD_OBJ_ID_LEN + 1], int64_t *version,
                         msi_err *err);
/* PUT: replaces k's value, or creates k when it is absent and if_match is NULL (*created
 * set). if_match: the If-Match header or NULL. */
ms_status msd_obj_put(msd_objstore *s, const msd_objkey *k, const json_t *value,
                      const char *if_match, int64_t *version, int *created, msi_err *err);
/* PATCH: applies a JSON merge patch (RFC 7396; patch must be an object) to k's value;
 * *result (may be NULL) gets the new value (a new reference). */
ms_status msd_obj_patch(msd_objstore *s, const msd_objkey *k, const json_t *patch,
                        const char *if_match, json_t **result, int64_t *version, msi_err *err);
/* DELETE. */
ms_status msd_obj_delete(msd_objstore *s, const msd_objkey *k, const char *if_match, msi_err *err);
/* A page of (ns, collection) after id `after` ("" or NULL: from the start), at most limit
 * objects: *page = {"items":[{"id","etag","value"}...],"next":id or null} (new reference).
 * "next" is the id to pass as `after` for the next page, null at the end. */
ms_status msd_obj_list(msd_objstore *s, const char *ns, const char *collection, const char *after,
                       int limit, json_t **page, msi_err *err);

/*
 * POST /v1/txn: the body (docs/objects.md, "Transactions") is checked, then its operations
 * run in one write transaction of the backend: all of them or none. With a request id (rid,
 * may be NULL: nothing recorded) the answer is recorded in the same transaction, also when
 * a condition failed (412/404: nothing applied, and the record says so), and a later
 * request with the same id and body gets the recorded answer without running again
 * (*replayed set); with another body, MS_EREUSED. acked_below (NULL: none) is the caller's
 * Ms-Acked-Below: its records below it are dropped, and a later request of that caller
 * below it is stale (MS_EREUSED). At most records_max records are kept: a new id when they
 * are all taken, even after dropping those over an hour old, is MS_EOVERLOADED, before
 * anything runs. On return *http and *answer (malloc'd JSON text) are the reply, whatever it
 * is; the status is MS_OK when *answer is a reply (also an error reply), otherwise err says
 * why (400 and 500 class answers are not recorded).
 */
ms_status msd_obj_txn(msd_objstore *s, long long records_max, const char *rid,
                      const char *acked_below, const char *body, size_t len, int *http,
                      char **answer, int *replayed, msi_err *err);

/* GET /v1/txn/{rid}: the answer recorded under request id rid (*http, and *answer malloc'd),
 * in a read transaction; MS_ENOTFOUND when there is none (never recorded, or dropped). */
ms_status msd_obj_txn_answer(msd_objstore *s, const char *rid, int *http, char **answer,
                             msi_err *err);

/* objects_api.c: the REST handlers, under "/v1/objects/" and "/v1/txn" in api.c's table
 * (which checks the call token first). */
struct msi_http_req;
void msd_objects_http(msd *m, struct msi_http_req *r);
void msd_txn_http(msd *m, struct msi_http_req *r);

#endif /* MSD_OBJECTS_H */
