/*
 * objects.c: the object store's rules over a backend (objects.h, objstore.h).
 *
 * Design notes
 * - Every operation is one backend transaction: a read-only one for GET and listings, a write
 *   one for the rest, in which the If-Match check and the write happen together (the check
 *   cannot go stale before the write). A transaction of several operations (msd_obj_txn)
 *   applies each with the same function as the single ones (apply_op) inside one backend
 *   transaction, so a condition means the same thing in both.
 * - A transaction's life, with its request id rid (the functions named):
 *
 *      parse_txn ── bad body ──▶ 400, nothing recorded
 *          │
 *       begin ─▶ get_record(rid) ── same body ──▶ rollback, the recorded answer (replayed)
 *          │                     └ other body ──▶ rollback, 422 MS_EREUSED
 *          │    get_acked(caller) ── seq below it ──▶ rollback, 422 MS_EREUSED (stale)
 *          │    count_records ── full, even after the request's own acknowledgement and
 *          │                     without those over an hour old ──▶ rollback, 503 MS_EOVERLOADED
 *          ▼
 *       apply_op × n ── a condition fails ──▶ rollback; begin, put_record(rid, 412|404), commit
 *          │        └── the backend fails ──▶ rollback, 500, nothing recorded
 *          ▼
 *       put_record(rid, 200), trim_records(acked, age) ─▶ commit ─▶ 200
 *
 *   A failed condition is recorded too, so the retry of a transaction that was refused is
 *   refused the same way, whatever happened to the objects meanwhile; except for a method's
 *   transaction (one with a "result", MS_METHOD): nothing was applied, and the method reads
 *   the object again and sends its next attempt under the same id, which must then run.
 * - msd_obj_txn_answer reads a recorded answer by request id (GET /v1/txn/{rid}): how a
 *   method whose attempt got 422 (an earlier attempt of the same id committed, with another
 *   body) learns that attempt's result.
 * - Values are JSON objects stored as compact JSON text of at most MSD_OBJ_VALUE_MAX bytes.
 */
#include "objects.h"

#include "sha256.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG 256 /* backend messages */

/* ------------------------------------------------------------------------------------------
 * Names, ids, ETags.
 * ---------------------------------------------------------------------------------------- */

int
msd_obj_name_ok(const char *s)
{
    return msd_valid_name(s);
}

void
msd_obj_etag(int64_t version, char out[MSD_OBJ_ETAG_MAX])
{
    snprintf(out, MSD_OBJ_ETAG_MAX, "\"%lld\"", (long long)version);
}

/* A condition: none, "*" (exists), or a list of versions. */
typedef struct cond {
    int present, any, n;
    int64_t v[16];
} cond;

/* Parses an If-Match value into c. 0, or -1 (malformed). */
static int
parse_if_match(const char *h, cond *c)
{
    memset(c, 0, sizeof *c);
    if (!h)
        return 0;
    c->present = 1;
    const char *p = h;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '*' && c->n == 0 && !c->any) {
            c->any = 1;
            p++;
        } else {
            int weak = 0;
            if (p[0] == 'W' && p[1] == '/') {
                weak = 1;
                p += 2;
            }
            int quoted = *p == '"';
            p += quoted;
            uint64_t v = 0; /* 19 digits fit; a value past INT64_MAX matches nothing */
            int digits = 0;
            while (*p >= '0' && *p <= '9' && digits < 19) {
                v = v * 10 + (uint64_t)(*p++ - '0');
                digits++;
            }
            if (digits == 0 || (*p >= '0' && *p <= '9'))
                return -1;
            if (quoted && *p++ != '"')
                return -1;
            if (weak && !quoted)
                return -1;
            if (!weak) { /* a weak ETag is well-formed but never matches */
                if (c->n == (int)(sizeof c->v / sizeof *c->v))
                    return -1;
                c->v[c->n++] = v > INT64_MAX ? -1 : (int64_t)v;
            }
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        if (*p++ != ',' || c->any)
            return -1;
    }
    return 0;
}

/* Whether the current state (exists, version) passes c; fills err otherwise. */
static ms_status
check_cond(const cond *c, const msd_objkey *k, int exists, int64_t version, msi_err *err)
{
    if (!c->present)
        return MS_OK;
    if (!exists)
        return msi_errf(err, MS_ENOTFOUND, "object %s/%s/%s does not exist", k->ns, k->collection,
                        k->id);
    if (c->any)
        return MS_OK;
    for (int i = 0; i < c->n; i++)
        if (c->v[i] == version)
            return MS_OK;
    char etag[MSD_OBJ_ETAG_MAX];
    msd_obj_etag(version, etag);
    return msi_errf(err, MS_ECONFLICT, "object %s/%s/%s is at version %s: If-Match does not match",
                    k->ns, k->collection, k->id, etag);
}

/* ------------------------------------------------------------------------------------------
 * JSON merge patch (RFC 7396).
 * ---------------------------------------------------------------------------------------- */

/* The merge of patch into target (target may be NULL); a new reference, NULL when out of
 * memory. Depth: never deeper than the deeper of the two. */
static json_t *
merge_patch(json_t *target, json_t *patch)
{
    if (!json_is_object(patch))
        return json_deep_copy(patch);
    json_t *res = json_is_object(target) ? json_copy(target) : json_object();
    if (!res)
        return NULL;
    const char *key;
    json_t *val;
    json_object_foreach(patch, key, val)
    {
        if (json_is_null(val)) {
            json_object_del(res, key);
            continue;
        }
        json_t *sub = merge_patch(json_object_get(res, key), val);
        if (!sub || json_object_set_new(res, key, sub) < 0) {
            json_decref(res);
            return NULL;
        }
    }
    return res;
}

/* ------------------------------------------------------------------------------------------
 * One operation inside a transaction.
 * ---------------------------------------------------------------------------------------- */

typedef enum op_kind { OP_CHECK, OP_CREATE, OP_PUT, OP_PATCH, OP_DELETE } op_kind;

typedef struct obj_op {
    op_kind kind;
    msd_objkey key;            /* for OP_CREATE the id is made by apply_op */
    char id[MSD_NAME_MAX + 1]; /* the id's storage */
    const json_t *value;       /* CREATE, PUT: the value; PATCH: the patch */
    cond cond;                 /* If-Match */
} obj_op;

typedef struct op_result {
    int64_t version; /* after the operation (CHECK: the current one) */
    int created;     /* PUT created the object */
    json_t *value;   /* PATCH: the new value (new reference), if wanted */
} op_result;

static ms_status
io_err(msi_err *err, int res, const char *msg)
{
    if (res == -ENOMEM)
        return msi_errf(err, MS_ENOMEM, "out of memory");
    if (res == -ENOTCONN) /* the database is away for now (objstore.h): 503 */
        return msi_errf(err, MS_EUNAVAILABLE, "object store: %s",
                        msg[0] ? msg : "the database cannot be reached");
    return msi_errf(err, MS_EIO, "object store: %s", msg[0] ? msg : strerror(-res));
}

/* Compact text of value, at most MSD_OBJ_VALUE_MAX bytes. */
static ms_status
dump_value(const json_t *value, char **text, size_t *len, msi_err *err)
{
    *text = json_dumps(value, JSON_COMPACT);
    if (!*text)
        return msi_errf(err, MS_ENOMEM, "out of memory");
    *len = strlen(*text);
    if (*len > MSD_OBJ_VALUE_MAX) {
        free(*text);
        *text = NULL;
        return msi_errf(err, MS_ETOOBIG, "the value is %zu bytes of JSON, over the limit of %u",
                        *len, (unsigned)MSD_OBJ_VALUE_MAX);
    }
    return MS_OK;
}

static ms_status
apply_op(msd_objstore *s, msd_objtx *tx, obj_op *op, op_result *res, int want_value, msi_err *err)
{
    const msd_objstore_ops *o = s->ops;
    char msg[MSG] = "";
    char *text = NULL, *old = NULL;
    size_t len = 0;
    int64_t version = 0;
    ms_status st = MS_OK;
    int rc;

    if (op->kind == OP_CREATE) {
        for (int tries = 0;; tries++) { /* 128 random bits: a clash is not expected, ever */
            int e = msd_random_hex_n(op->id, MSD_OBJ_ID_LEN);
            if (e < 0)
                return msi_errf(err, MS_EIO, "getrandom: %s", strerror(-e));
            op->key.id = op->id;
            rc = o->read(tx, &op->key, NULL, &version, msg, sizeof msg);
            if (rc == -ENOENT)
                break;
            if (rc < 0)
                return io_err(err, rc, msg);
            if (tries == 3)
                return msi_errf(err, MS_EIO, "no free id after 4 random ones");
        }
        if ((st = dump_value(op->value, &text, &len, err)) != MS_OK)
            return st;
        rc = o->write(tx, &op->key, text, len, &res->version, msg, sizeof msg);
        free(text);
        return rc < 0 ? io_err(err, rc, msg) : MS_OK;
    }

    rc = o->read(tx, &op->key, op->kind == OP_PATCH ? &old : NULL, &version, msg, sizeof msg);
    if (rc < 0 && rc != -ENOENT)
        return io_err(err, rc, msg);
    int exists = rc == 0;
    if ((st = check_cond(&op->cond, &op->key, exists, version, err)) != MS_OK)
        goto out;
    if (!exists && op->kind != OP_PUT) {
        st = msi_errf(err, MS_ENOTFOUND, "object %s/%s/%s does not exist", op->key.ns,
                      op->key.collection, op->key.id);
        goto out;
    }
    switch (op->kind) {
    case OP_CHECK:
        res->version = version;
        break;
    case OP_PUT:
        if ((st = dump_value(op->value, &text, &len, err)) != MS_OK)
            goto out;
        rc = o->write(tx, &op->key, text, len, &res->version, msg, sizeof msg);
        if (rc < 0)
            st = io_err(err, rc, msg);
        res->created = !exists;
        break;
    case OP_PATCH: {
        msi_err perr = {{0}};
        json_t *cur = msi_json_parse(old, strlen(old), &perr);
        if (!cur) {
            st = msi_errf(err, MS_EIO, "object %s/%s/%s: stored value unreadable: %s", op->key.ns,
                          op->key.collection, op->key.id, perr.msg);
            goto out;
        }
        json_t *merged = merge_patch(cur, (json_t *)op->value);
        json_decref(cur);
        if (!merged) {
            st = msi_errf(err, MS_ENOMEM, "out of memory");
            goto out;
        }
        if ((st = dump_value(merged, &text, &len, err)) == MS_OK) {
            rc = o->write(tx, &op->key, text, len, &res->version, msg, sizeof msg);
            if (rc < 0)
                st = io_err(err, rc, msg);
        }
        if (st == MS_OK && want_value)
            res->value = merged;
        else
            json_decref(merged);
        break;
    }
    case OP_DELETE:
        rc = o->remove(tx, &op->key, msg, sizeof msg);
        if (rc < 0)
            st = io_err(err, rc, msg);
        break;
    case OP_CREATE:
        break;
    }
out:
    free(text);
    free(old);
    return st;
}

/* Runs one operation in a write transaction of its own. */
static ms_status
run_one(msd_objstore *s, obj_op *op, op_result *res, int want_value, msi_err *err)
{
    char msg[MSG] = "";
    msd_objtx *tx = NULL;
    int rc = s->ops->begin(s, 1, &tx, msg, sizeof msg);
    if (rc < 0)
        return io_err(err, rc, msg);
    ms_status st = apply_op(s, tx, op, res, want_value, err);
    if (st != MS_OK) {
        s->ops->rollback(tx);
        json_decref(res->value);
        res->value = NULL;
        return st;
    }
    rc = s->ops->commit(tx, msg, sizeof msg);
    if (rc < 0) {
        json_decref(res->value);
        res->value = NULL;
        return io_err(err, rc, msg);
    }
    return MS_OK;
}

/* ------------------------------------------------------------------------------------------
 * The single operations.
 * ---------------------------------------------------------------------------------------- */

ms_status
msd_obj_get(msd_objstore *s, const msd_objkey *k, char **value, size_t *len, int64_t *version,
            msi_err *err)
{
    char msg[MSG] = "";
    msd_objtx *tx = NULL;
    int rc = s->ops->begin(s, 0, &tx, msg, sizeof msg);
    if (rc < 0)
        return io_err(err, rc, msg);
    rc = s->ops->read(tx, k, value, version, msg, sizeof msg);
    s->ops->rollback(tx); /* read-only: nothing to keep */
    if (rc == -ENOENT)
        return msi_errf(err, MS_ENOTFOUND, "object %s/%s/%s does not exist", k->ns, k->collection,
                        k->id);
    if (rc < 0)
        return io_err(err, rc, msg);
    *len = strlen(*value);
    return MS_OK;
}

ms_status
msd_obj_create(msd_objstore *s, const char *ns, const char *collection, const json_t *value,
               char id[MSD_OBJ_ID_LEN + 1], int64_t *version, msi_err *err)
{
    obj_op op = {.kind = OP_CREATE, .key = {ns, collection, NULL}, .value = value};
    op_result res = {0};
    ms_status st = run_one(s, &op, &res, 0, err);
    if (st == MS_OK) {
        memcpy(id, op.id, MSD_OBJ_ID_LEN + 1);
        *version = res.version;
    }
    return st;
}

ms_status
msd_obj_put(msd_objstore *s, const msd_objkey *k, const json_t *value, const char *if_match,
            int64_t *version, int *created, msi_err *err)
{
    obj_op op = {.kind = OP_PUT, .key = *k, .value = value};
    if (parse_if_match(if_match, &op.cond) < 0)
        return msi_errf(err, MS_EBADARGS, "bad If-Match (\"*\" or a list of quoted ETags)");
    op_result res = {0};
    ms_status st = run_one(s, &op, &res, 0, err);
    if (st == MS_OK) {
        *version = res.version;
        *created = res.created;
    }
    return st;
}

ms_status
msd_obj_patch(msd_objstore *s, const msd_objkey *k, const json_t *patch, const char *if_match,
              json_t **result, int64_t *version, msi_err *err)
{
    obj_op op = {.kind = OP_PATCH, .key = *k, .value = patch};
    if (parse_if_match(if_match, &op.cond) < 0)
        return msi_errf(err, MS_EBADARGS, "bad If-Match (\"*\" or a list of quoted ETags)");
    op_result res = {0};
    ms_status st = run_one(s, &op, &res, result != NULL, err);
    if (st == MS_OK) {
        *version = res.version;
        if (result)
            *result = res.value;
    }
    return st;
}

ms_status
msd_obj_delete(msd_objstore *s, const msd_objkey *k, const char *if_match, msi_err *err)
{
    obj_op op = {.kind = OP_DELETE, .key = *k};
    if (parse_if_match(if_match, &op.cond) < 0)
        return msi_errf(err, MS_EBADARGS, "bad If-Match (\"*\" or a list of quoted ETags)");
    op_result res = {0};
    return run_one(s, &op, &res, 0, err);
}

/* ------------------------------------------------------------------------------------------
 * Listing.
 * ---------------------------------------------------------------------------------------- */

typedef struct list_ctx {
    json_t *items;
    int limit; /* items wanted on the page */
    int seen;  /* rows given so far (the backend is asked for limit + 1) */
    size_t bytes;
    int more;   /* a row beyond the page exists */
    int failed; /* out of memory, or a stored value that does not parse */
    char last[MSD_NAME_MAX + 1];
} list_ctx;

static int
list_row(const char *id, const char *value, size_t len, int64_t version, void *arg)
{
    list_ctx *c = arg;
    if (c->seen == c->limit || (c->seen > 0 && c->bytes + len > MSD_OBJ_PAGE_BYTES)) {
        c->more = 1;
        return 1;
    }
    c->seen++;
    c->bytes += len;
    msi_err perr = {{0}};
    json_t *v = msi_json_parse(value, len, &perr);
    char etag[MSD_OBJ_ETAG_MAX];
    msd_obj_etag(version, etag);
    json_t *item = v ? json_pack("{s:s, s:s, s:o}", "id", id, "etag", etag, "value", v) : NULL;
    if (!item || json_array_append_new(c->items, item) < 0) {
        c->failed = 1;
        return 1;
    }
    snprintf(c->last, sizeof c->last, "%s", id);
    return 0;
}

ms_status
msd_obj_list(msd_objstore *s, const char *ns, const char *collection, const char *after, int limit,
             json_t **page, msi_err *err)
{
    list_ctx c = {.items = json_array(), .limit = limit};
    if (!c.items)
        return msi_errf(err, MS_ENOMEM, "out of memory");
    char msg[MSG] = "";
    msd_objtx *tx = NULL;
    int rc = s->ops->begin(s, 0, &tx, msg, sizeof msg);
    if (rc < 0) {
        json_decref(c.items);
        return io_err(err, rc, msg);
    }
    rc = s->ops->list(tx, ns, collection, after ? after : "", limit + 1, list_row, &c, msg,
                      sizeof msg);
    s->ops->rollback(tx);
    if (rc < 0 || c.failed) {
        json_decref(c.items);
        if (rc < 0)
            return io_err(err, rc, msg);
        return msi_errf(err, MS_EIO, "listing %s/%s: out of memory or an unreadable value", ns,
                        collection);
    }
    *page = json_pack("{s:o, s:o}", "items", c.items, "next",
                      c.more ? json_string(c.last) : json_null());
    return *page ? MS_OK : msi_errf(err, MS_ENOMEM, "out of memory");
}

/* ------------------------------------------------------------------------------------------
 * Transactions.
 * ---------------------------------------------------------------------------------------- */

#define REF_PREFIX "ms://objects/"

static const struct {
    const char *name;
    op_kind kind;
} op_names[] = {{"check", OP_CHECK},
                {"create", OP_CREATE},
                {"put", OP_PUT},
                {"patch", OP_PATCH},
                {"delete", OP_DELETE}};

/* Splits "ms://objects/ns/collection[/id]" into op->key (pointing into op->id and the two
 * buffers). want_id: 1 for an object, 0 for a collection (create). */
static int
parse_ref(const char *ref, obj_op *op, char ns[MSD_NAME_MAX + 1], char coll[MSD_NAME_MAX + 1],
          int want_id)
{
    if (strncmp(ref, REF_PREFIX, strlen(REF_PREFIX)) != 0)
        return -1;
    const char *p = ref + strlen(REF_PREFIX);
    char *outs[3] = {ns, coll, op->id};
    int n = 0;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (n == 3 || l > MSD_NAME_MAX)
            return -1;
        memcpy(outs[n], p, l);
        outs[n][l] = '\0';
        if (!msd_obj_name_ok(outs[n]))
            return -1;
        n++;
        if (!e)
            break;
        p = e + 1;
    }
    if (n != (want_id ? 3 : 2))
        return -1;
    op->key.ns = ns;
    op->key.collection = coll;
    op->key.id = want_id ? op->id : NULL;
    return 0;
}

typedef struct txn {
    json_t *body;
    json_t *result; /* a method's result (MS_METHOD), recorded in the answer; NULL: none */
    int n;
    obj_op ops[MSD_OBJ_TXN_OPS_MAX];
    char ns[MSD_OBJ_TXN_OPS_MAX][MSD_NAME_MAX + 1];
    char coll[MSD_OBJ_TXN_OPS_MAX][MSD_NAME_MAX + 1];
} txn;

/* Checks the body and fills t (whose ops point into t->body). MS_EBADARGS with err. */
static ms_status
parse_txn(const char *text, size_t len, txn *t, msi_err *err)
{
    msi_err perr = {{0}};
    t->body = msi_json_parse(text, len, &perr);
    if (!t->body)
        return msi_errf(err, MS_EBADARGS, "bad JSON: %s", perr.msg);
    json_t *ops = json_object_get(t->body, "ops");
    t->result = json_object_get(t->body, "result");
    if (!json_is_object(t->body) || json_object_size(t->body) != 1u + (t->result != NULL) ||
        !json_is_array(ops))
        return msi_errf(err, MS_EBADARGS,
                        "the body must be {\"ops\":[...]} (and an optional "
                        "\"result\")");
    size_t n = json_array_size(ops);
    if (n == 0 || n > MSD_OBJ_TXN_OPS_MAX)
        return msi_errf(err, MS_EBADARGS, "\"ops\" must hold 1 to %d operations",
                        MSD_OBJ_TXN_OPS_MAX);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(ops, i);
        obj_op *op = &t->ops[i];
        if (!json_is_object(e))
            return msi_errf(err, MS_EBADARGS, "op %zu: not a JSON object", i);
        const char *name = json_string_value(json_object_get(e, "op"));
        size_t k = 0;
        for (; name && k < sizeof op_names / sizeof *op_names; k++)
            if (strcmp(name, op_names[k].name) == 0)
                break;
        if (!name || k == sizeof op_names / sizeof *op_names)
            return msi_errf(err, MS_EBADARGS,
                            "op %zu: \"op\" must be check, create, put, patch or delete", i);
        op->kind = op_names[k].kind;
        const char *key;
        json_t *v;
        json_object_foreach(e, key, v)
        {
            if (strcmp(key, "op") != 0 && strcmp(key, "ref") != 0 && strcmp(key, "value") != 0 &&
                strcmp(key, "if_match") != 0)
                return msi_errf(err, MS_EBADARGS,
                                "op %zu: unknown member (op, ref, value, if_match)", i);
        }
        const char *ref = json_string_value(json_object_get(e, "ref"));
        if (!ref || parse_ref(ref, op, t->ns[i], t->coll[i], op->kind != OP_CREATE) < 0)
            return msi_errf(err, MS_EBADARGS, "op %zu: \"ref\" must be \"%s{ns}/{collection}%s\"",
                            i, REF_PREFIX, op->kind == OP_CREATE ? "" : "/{id}");
        json_t *value = json_object_get(e, "value");
        int wants_value = op->kind == OP_CREATE || op->kind == OP_PUT || op->kind == OP_PATCH;
        if (wants_value ? !json_is_object(value) : value != NULL)
            return msi_errf(err, MS_EBADARGS, "op %zu: %s", i,
                            wants_value ? "\"value\" must be a JSON object"
                                        : "this op takes no \"value\"");
        op->value = value;
        json_t *im = json_object_get(e, "if_match");
        if (im && (op->kind == OP_CREATE || !json_is_string(im) ||
                   parse_if_match(json_string_value(im), &op->cond) < 0))
            return msi_errf(err, MS_EBADARGS, "op %zu: bad \"if_match\"", i);
        if (op->kind == OP_CHECK && !im)
            return msi_errf(err, MS_EBADARGS, "op %zu: check needs \"if_match\"", i);
    }
    t->n = (int)n;
    return MS_OK;
}

/* "<caller>-<seq>": the caller and the sequence number; otherwise caller "" and seq 0. */
static void
split_rid(const char *rid, char *caller, size_t clen, uint64_t *seq)
{
    caller[0] = '\0';
    *seq = 0;
    const char *dash = strrchr(rid, '-');
    if (!dash || dash == rid || !dash[1] || strlen(dash + 1) > 19)
        return;
    uint64_t v = 0;
    for (const char *p = dash + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    size_t n = (size_t)(dash - rid);
    if (n >= clen)
        return;
    memcpy(caller, rid, n);
    caller[n] = '\0';
    *seq = v;
}

static char *
error_answer(ms_status st, const msi_err *e, int op)
{
    json_t *j = json_pack("{s:{s:s, s:s, s:i}}", "error", "code", ms_status_name(st), "message",
                          e->msg, "op", op);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

static char *
success_answer(const txn *t, const op_result *res)
{
    json_t *arr = json_array();
    for (int i = 0; arr && i < t->n; i++) {
        const obj_op *op = &t->ops[i];
        char ref[sizeof REF_PREFIX + 3 * (MSD_NAME_MAX + 1)], etag[MSD_OBJ_ETAG_MAX];
        snprintf(ref, sizeof ref, REF_PREFIX "%s/%s/%s", op->key.ns, op->key.collection,
                 op->key.id);
        msd_obj_etag(res[i].version, etag);
        json_t *r = op->kind == OP_DELETE ? json_pack("{s:s, s:b}", "ref", ref, "deleted", 1)
                                          : json_pack("{s:s, s:s}", "ref", ref, "etag", etag);
        if (!r || json_array_append_new(arr, r) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    json_t *j = arr ? json_pack("{s:o}", "results", arr) : NULL;
    if (j && t->result && json_object_set(j, "result", t->result) < 0) {
        json_decref(j);
        return NULL;
    }
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    return s;
}

/* Records a refused transaction's answer in a transaction of its own (the one that ran its
 * operations was rolled back). A failure to record is logged: the answer stands. */
static void
record_refusal(msd_objstore *s, const char *rid, const char *caller, uint64_t seq,
               const msd_objrec *rec)
{
    char msg[MSG] = "";
    msd_objtx *tx = NULL;
    int rc = s->ops->begin(s, 1, &tx, msg, sizeof msg);
    if (rc == 0) {
        rc = s->ops->put_record(tx, rid, caller, seq, rec, msd_wall_ms(), msg, sizeof msg);
        if (rc == 0)
            rc = s->ops->commit(tx, msg, sizeof msg);
        else
            s->ops->rollback(tx);
    }
    if (rc < 0)
        msd_log("warn", "objects: cannot record the refusal of transaction %s: %s", rid, msg);
}

/* Whether a new record fits under records_max; if not, after applying the request's own
 * acknowledgement (so that a caller that acknowledges always makes room for its next call,
 * as at instances) and dropping the records over an hour old. 0, -ENOSPC (err filled), or
 * the backend's error (msg filled). */
static int
room_for_record(msd_objstore *s, msd_objtx *tx, long long records_max, const char *caller,
                uint64_t acked, char *msg, msi_err *err)
{
    long long n = 0;
    int rc = s->ops->count_records(tx, &n, msg, MSG);
    if (rc == 0 && n >= records_max) {
        int64_t now = msd_wall_ms();
        rc = s->ops->trim_records(tx, caller, acked, now, now - MSD_OBJ_RECORD_KEEP_MS, msg, MSG);
        if (rc == 0)
            rc = s->ops->count_records(tx, &n, msg, MSG);
    }
    if (rc == 0 && n >= records_max) {
        msi_errf(err, MS_EOVERLOADED,
                 "object store: request-id records full (%lld max, --objects-records-max): "
                 "too many transactions of callers that do not send Ms-Acked-Below; not run",
                 records_max);
        return -ENOSPC;
    }
    return rc;
}

ms_status
msd_obj_txn(msd_objstore *s, long long records_max, const char *rid, const char *acked_below,
            const char *body, size_t len, int *http, char **answer, int *replayed, msi_err *err)
{
    *answer = NULL;
    *replayed = 0;
    char caller[MSD_NAME_MAX + 1] = "";
    uint64_t seq = 0, acked = 0;
    if (rid) {
        size_t n = strlen(rid);
        if (n == 0 || n > 128 ||
            strspn(rid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                        "0123456789._-") != n)
            return msi_errf(err, MS_EBADARGS, "bad Ms-Request-Id (1 to 128 of [A-Za-z0-9._-])");
        split_rid(rid, caller, sizeof caller, &seq);
    }
    if (acked_below) {
        size_t n = strlen(acked_below);
        if (!caller[0] || n == 0 || n > 19 || strspn(acked_below, "0123456789") != n)
            return msi_errf(err, MS_EBADARGS,
                            "bad Ms-Acked-Below (1 to 19 digits, with a <caller>-<seq> id)");
        acked = strtoull(acked_below, NULL, 10);
        if (acked > seq) /* a request cannot acknowledge itself, as at instances */
            return msi_errf(err, MS_EBADARGS,
                            "Ms-Acked-Below %s is above the request's own sequence number",
                            acked_below);
    }
    txn *t = calloc(1, sizeof *t);
    if (!t)
        return msi_errf(err, MS_ENOMEM, "out of memory");
    op_result res[MSD_OBJ_TXN_OPS_MAX];
    memset(res, 0, sizeof res);
    ms_status st = parse_txn(body, len, t, err);
    if (st != MS_OK)
        goto out;
    msd_objrec rec = {.status = 0};
    msi_sha256_hex_of(body, len, rec.body_sha);

    char msg[MSG] = "";
    msd_objtx *tx = NULL;
    int rc = s->ops->begin(s, 1, &tx, msg, sizeof msg);
    if (rc < 0) {
        st = io_err(err, rc, msg);
        goto out;
    }
    if (rid) {
        msd_objrec old = {.answer = NULL};
        rc = s->ops->get_record(tx, rid, &old, msg, sizeof msg);
        if (rc == 0) {
            s->ops->rollback(tx);
            if (strcmp(old.body_sha, rec.body_sha) != 0) {
                free(old.answer);
                st = msi_errf(err, MS_EREUSED, "request id %s was used for another transaction",
                              rid);
                goto out;
            }
            *http = old.status;
            *answer = old.answer;
            *replayed = 1;
            goto out;
        }
        if (rc != -ENOENT) {
            s->ops->rollback(tx);
            st = io_err(err, rc, msg);
            goto out;
        }
        uint64_t caller_acked = 0; /* below it: the caller had its answer, and moved on */
        if (caller[0] && (rc = s->ops->get_acked(tx, caller, &caller_acked, msg, sizeof msg)) < 0) {
            s->ops->rollback(tx);
            st = io_err(err, rc, msg);
            goto out;
        }
        if (seq < caller_acked) {
            s->ops->rollback(tx);
            st = msi_errf(err, MS_EREUSED,
                          "request id %s is below its caller's Ms-Acked-Below: the caller had "
                          "finished with it; not run",
                          rid);
            goto out;
        }
        if ((rc = room_for_record(s, tx, records_max, caller, acked, msg, err)) < 0) {
            s->ops->rollback(tx);
            st = rc == -ENOSPC ? MS_EOVERLOADED : io_err(err, rc, msg);
            goto out;
        }
    }
    int i = 0;
    msi_err oerr = {{0}};
    for (; i < t->n; i++)
        if ((st = apply_op(s, tx, &t->ops[i], &res[i], 0, &oerr)) != MS_OK)
            break;
    if (st == MS_ECONFLICT || st == MS_ENOTFOUND) {
        s->ops->rollback(tx);
        *http = msi_status_http(st);
        *answer = error_answer(st, &oerr, i);
        if (!*answer) {
            st = msi_errf(err, MS_ENOMEM, "out of memory");
            goto out;
        }
        if (rid && !t->result) { /* a method's refusal is not recorded: it runs again */
            rec.status = *http;
            rec.answer = *answer;
            record_refusal(s, rid, caller, seq, &rec);
        }
        st = MS_OK;
        goto out;
    }
    if (st != MS_OK) { /* 400 (a value too large), 500: nothing applied, nothing recorded */
        s->ops->rollback(tx);
        memcpy(err, &oerr, sizeof oerr);
        goto out;
    }
    *http = 200;
    if (!(*answer = success_answer(t, res))) {
        s->ops->rollback(tx);
        st = msi_errf(err, MS_ENOMEM, "out of memory");
        goto out;
    }
    if (rid) {
        rec.status = 200;
        rec.answer = *answer;
        rc = s->ops->put_record(tx, rid, caller, seq, &rec, msd_wall_ms(), msg, sizeof msg);
        if (rc == 0)
            rc = s->ops->trim_records(tx, caller, acked, msd_wall_ms(),
                                      msd_wall_ms() - MSD_OBJ_RECORD_KEEP_MS, msg, sizeof msg);
        if (rc < 0) {
            s->ops->rollback(tx);
            st = io_err(err, rc, msg);
            goto out;
        }
    }
    rc = s->ops->commit(tx, msg, sizeof msg);
    if (rc < 0)
        st = io_err(err, rc, msg);
out:
    if (st != MS_OK) {
        free(*answer);
        *answer = NULL;
    }
    json_decref(t->body);
    free(t);
    return st;
}

ms_status
msd_obj_txn_answer(msd_objstore *s, const char *rid, int *http, char **answer, msi_err *err)
{
    *answer = NULL;
    size_t n = strlen(rid);
    if (n == 0 || n > 128 ||
        strspn(rid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n)
        return msi_errf(err, MS_EBADARGS, "bad request id (1 to 128 of [A-Za-z0-9._-])");
    char msg[MSG] = "";
    msd_objtx *tx = NULL;
    int rc = s->ops->begin(s, 0, &tx, msg, sizeof msg);
    if (rc < 0)
        return io_err(err, rc, msg);
    msd_objrec rec = {.answer = NULL};
    rc = s->ops->get_record(tx, rid, &rec, msg, sizeof msg);
    s->ops->rollback(tx);
    if (rc == -ENOENT)
        return msi_errf(err, MS_ENOTFOUND, "no transaction recorded under request id %s", rid);
    if (rc < 0)
        return io_err(err, rc, msg);
    *http = rec.status;
    *answer = rec.answer;
    return MS_OK;
}
