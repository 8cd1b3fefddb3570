/*
 * objects_api.c: the object store's REST API at msd's address (docs/objects.md), over
 * objects.h.
 *
 * Design notes
 * - Routes (api.c's table, where the call token is checked before a body is read; the
 *   admin token and msd's own uid on the unix socket pass too):
 *     POST   /v1/objects/{ns}/{collection}        create: 201, Location, ETag, the value
 *     GET    /v1/objects/{ns}/{collection}        a page: ?after=ID&limit=N
 *     GET    /v1/objects/{ns}/{collection}/{id}   200, ETag, the value
 *     PUT    /v1/objects/{ns}/{collection}/{id}   200 (201 when created), ETag, the value
 *     PATCH  /v1/objects/{ns}/{collection}/{id}   JSON merge patch: 200, ETag, the new value
 *     DELETE /v1/objects/{ns}/{collection}/{id}   204
 *     POST   /v1/txn                              a transaction (objects.h)
 *     GET    /v1/txn/{rid}                        the answer recorded under a request id
 * - Bodies: at most MSD_BODY_MAX (413 from the server before they are read), JSON objects
 *   only (400). Names per objects.h (400). Anything else about the path: 404; a method the
 *   path does not take: 405 with Allow.
 * - Every handler runs on its connection's thread (http.h) and holds no lock of msd's: the
 *   object store serialises what it must, so objects never wait for msd.mu nor it for them.
 */
#include "http.h"
#include "objects.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The path below /v1/objects/, split: ns, collection and, when n == 3, id. */
typedef struct obj_path {
    int n;
    char part[3][MSD_NAME_MAX + 1];
} obj_path;

/* Splits the rest of the path; 0, or -1 after replying. */
static int
split_path(msi_http_req *r, obj_path *p)
{
    const char *s = msi_http_rest(r);
    memset(p, 0, sizeof *p);
    for (;;) {
        const char *e = strchr(s, '/');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (p->n == 3) {
            msi_http_reply_error(r, MS_ENOTFOUND,
                                 "no such resource: /v1/objects/{ns}/{collection}[/{id}]");
            return -1;
        }
        if (l == 0 || l > MSD_NAME_MAX) {
            msi_http_reply_error(r, MS_EBADARGS,
                                 "bad name in the path (1 to %d of [A-Za-z0-9_.-], not . or ..)",
                                 MSD_NAME_MAX);
            return -1;
        }
        memcpy(p->part[p->n], s, l);
        p->part[p->n][l] = '\0';
        if (!msd_obj_name_ok(p->part[p->n])) {
            msi_http_reply_error(r, MS_EBADARGS,
                                 "bad name in the path (1 to %d of [A-Za-z0-9_.-], not . or ..)",
                                 MSD_NAME_MAX);
            return -1;
        }
        p->n++;
        if (!e)
            break;
        s = e + 1;
    }
    if (p->n < 2) {
        msi_http_reply_error(r, MS_ENOTFOUND,
                             "no such resource: /v1/objects/{ns}/{collection}[/{id}]");
        return -1;
    }
    return 0;
}

static void
reply_status(msi_http_req *r, ms_status st, const msi_err *err)
{
    msi_http_reply_error(r, st, "%s", err->msg[0] ? err->msg : ms_strerror(st));
}

static void
reply_value(msi_http_req *r, int status, int64_t version, const char *text, size_t len)
{
    char etag[MSD_OBJ_ETAG_MAX];
    msd_obj_etag(version, etag);
    msi_http_add_header(r, "ETag", etag);
    msi_http_reply(r, status, "application/json", text, len);
}

static void
reply_json_value(msi_http_req *r, int status, int64_t version, const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT);
    if (!text) {
        msi_http_reply_error(r, MS_ENOMEM, "out of memory");
        return;
    }
    reply_value(r, status, version, text, strlen(text));
    free(text);
}

static void
not_allowed(msi_http_req *r, const char *allow)
{
    msi_http_add_header(r, "Allow", allow);
    msi_http_reply_error_ex(r, 405, MS_EBADARGS, NULL, "method %s not allowed here (%s)",
                            msi_http_method(r), allow);
}

static void
h_collection(msd *m, msi_http_req *r, const obj_path *p)
{
    const char *method = msi_http_method(r);
    msi_err err = {{0}};
    if (strcmp(method, "GET") == 0) {
        const char *after = msi_http_query(r, "after");
        const char *lim = msi_http_query(r, "limit");
        long long limit = MSD_OBJ_LIST_DEFAULT;
        if (after && after[0] && !msd_obj_name_ok(after)) {
            msi_http_reply_error(r, MS_EBADARGS, "bad after= (an id)");
            return;
        }
        if (lim && msd_parse_int(lim, 1, MSD_OBJ_LIST_MAX, &limit) < 0) {
            msi_http_reply_error(r, MS_EBADARGS, "bad limit= (1 to %d)", MSD_OBJ_LIST_MAX);
            return;
        }
        json_t *page = NULL;
        ms_status st =
            msd_obj_list(m->objects, p->part[0], p->part[1], after, (int)limit, &page, &err);
        if (st != MS_OK)
            reply_status(r, st, &err);
        else
            msi_http_reply_json(r, 200, page);
        return;
    }
    if (strcmp(method, "POST") != 0) {
        not_allowed(r, "GET, POST");
        return;
    }
    json_t *v = msd_body_object(r);
    if (!v)
        return;
    char id[MSD_OBJ_ID_LEN + 1];
    int64_t version = 0;
    ms_status st = msd_obj_create(m->objects, p->part[0], p->part[1], v, id, &version, &err);
    if (st != MS_OK) {
        reply_status(r, st, &err);
    } else {
        char loc[40 + 3 * (MSD_NAME_MAX + 1)];
        snprintf(loc, sizeof loc, "/v1/objects/%s/%s/%s", p->part[0], p->part[1], id);
        msi_http_add_header(r, "Location", loc);
        reply_json_value(r, 201, version, v);
    }
    json_decref(v);
}

static void
h_object(msd *m, msi_http_req *r, const obj_path *p)
{
    const char *method = msi_http_method(r);
    msd_objkey k = {p->part[0], p->part[1], p->part[2]};
    const char *if_match = msi_http_header(r, "If-Match");
    msi_err err = {{0}};
    int64_t version = 0;
    ms_status st;
    if (strcmp(method, "GET") == 0) {
        char *text = NULL;
        size_t len = 0;
        st = msd_obj_get(m->objects, &k, &text, &len, &version, &err);
        if (st == MS_OK)
            reply_value(r, 200, version, text, len);
        else
            reply_status(r, st, &err);
        free(text);
    } else if (strcmp(method, "PUT") == 0) {
        json_t *v = msd_body_object(r);
        if (!v)
            return;
        int created = 0;
        st = msd_obj_put(m->objects, &k, v, if_match, &version, &created, &err);
        if (st == MS_OK)
            reply_json_value(r, created ? 201 : 200, version, v);
        else
            reply_status(r, st, &err);
        json_decref(v);
    } else if (strcmp(method, "PATCH") == 0) {
        json_t *v = msd_body_object(r);
        if (!v)
            return;
        json_t *res = NULL;
        st = msd_obj_patch(m->objects, &k, v, if_match, &res, &version, &err);
        if (st == MS_OK)
            reply_json_value(r, 200, version, res);
        else
            reply_status(r, st, &err);
        json_decref(res);
        json_decref(v);
    } else if (strcmp(method, "DELETE") == 0) {
        st = msd_obj_delete(m->objects, &k, if_match, &err);
        if (st == MS_OK)
            msi_http_reply(r, 204, NULL, NULL, 0);
        else
            reply_status(r, st, &err);
    } else {
        not_allowed(r, "GET, PUT, PATCH, DELETE");
    }
}

void
msd_objects_http(msd *m, msi_http_req *r)
{
    if (!m->objects) {
        msi_http_reply_error(r, MS_EUNAVAILABLE, "this msd has no object store open");
        return;
    }
    obj_path p;
    if (split_path(r, &p) < 0)
        return;
    if (p.n == 2)
        h_collection(m, r, &p);
    else
        h_object(m, r, &p);
}

void
msd_txn_http(msd *m, msi_http_req *r)
{
    if (!m->objects) {
        msi_http_reply_error(r, MS_EUNAVAILABLE, "this msd has no object store open");
        return;
    }
    const char *path = msi_http_path(r);
    if (strncmp(path, "/v1/txn/", 8) == 0) { /* GET /v1/txn/{rid} */
        if (strcmp(msi_http_method(r), "GET") != 0) {
            not_allowed(r, "GET");
            return;
        }
        int http = 0;
        char *answer = NULL;
        msi_err err = {{0}};
        ms_status st = msd_obj_txn_answer(m->objects, path + 8, &http, &answer, &err);
        if (st != MS_OK) {
            reply_status(r, st, &err);
            return;
        }
        char status[16];
        snprintf(status, sizeof status, "%d", http);
        msi_http_add_header(r, "Ms-Txn-Status", status);
        msi_http_reply(r, 200, "application/json", answer, strlen(answer));
        free(answer);
        return;
    }
    if (strcmp(msi_http_method(r), "POST") != 0) {
        not_allowed(r, "POST");
        return;
    }
    size_t len;
    const char *body = msi_http_body(r, &len);
    if (!body || len == 0) {
        msi_http_reply_error(r, MS_EBADARGS, "a JSON object body is required");
        return;
    }
    int http = 0, replayed = 0;
    char *answer = NULL;
    msi_err err = {{0}};
    ms_status st = msd_obj_txn(
        m->objects, m->cfg.objects_records_max, msi_http_header(r, "Ms-Request-Id"),
        msi_http_header(r, "Ms-Acked-Below"), body, len, &http, &answer, &replayed, &err);
    if (st != MS_OK) {
        reply_status(r, st, &err);
        return;
    }
    if (replayed)
        msi_http_add_header(r, "Ms-Replayed", "1");
    msi_http_reply(r, http, "application/json", answer, strlen(answer));
    free(answer);
}
