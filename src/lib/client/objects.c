/*
 * objects.c: the C side of the object store (ms_obj_*, <ms/ms.h>; docs/objects.md): each
 * function is one request to msd's REST API. Part of src/lib/client (client_int.h).
 *
 * Design notes
 * - A reference is parsed and its three names checked here, with msd's grammar, before
 *   anything is sent: a name reaches a URL path only when it is 1 to 128 of
 *   [A-Za-z0-9_.-] (nothing to escape), and an if_match reaches a header only when it is
 *   printable ASCII (no header injection).
 * - Requests go through msi_cl_orch_request (the orchestrator list, failover, the call
 *   token) with a deadline of min(10 s, what is left of the enclosing call's deadline).
 * - The ETag comes from the answer's ETag header, the id of a new object from its
 *   Location header (msi_httpc_header).
 *
 * Threading: any thread; no state of its own. Ownership: see <ms/ms.h>.
 */
#include "client_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OBJ_NAME_MAX 128
#define OBJ_TIMEOUT_MS 10000
#define OBJ_PREFIX "ms://objects/"
#define OBJ_PATH_MAX (64 + 3 * OBJ_NAME_MAX) /* "/v1/objects/{ns}/{collection}/{id}" */
#define OBJ_HDR_MAX 256                      /* an ETag or a Location we accept */

/* msd's name grammar (src/msd/util.c, msd_valid_name): [A-Za-z0-9_.-]{1,128}, not . or .. */
static int
name_ok(const char *s, size_t n)
{
    if (n == 0 || n > OBJ_NAME_MAX || (n == 1 && s[0] == '.') ||
        (n == 2 && s[0] == '.' && s[1] == '.'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* "/v1/objects/ns/collection/id" from a reference; -1 when it is not one. */
int
msi_cl_obj_path(const ms_ref *ref, char *path, size_t len)
{
    if (!ref || !ref->uri || strncmp(ref->uri, OBJ_PREFIX, strlen(OBJ_PREFIX)) != 0)
        return -1;
    const char *p = ref->uri + strlen(OBJ_PREFIX);
    for (int part = 0; part < 3; part++) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (!name_ok(p, n) || (part < 2) != (e != NULL))
            return -1;
        p = e ? e + 1 : p + n;
    }
    int w = snprintf(path, len, "/v1/objects/%s", ref->uri + strlen(OBJ_PREFIX));
    return w > 0 && (size_t)w < len ? 0 : -1;
}

static int
header_value_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > OBJ_HDR_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static int64_t
deadline(void)
{
    int64_t left = ms_deadline_left_ms();
    return msi_now_ms() + (left < OBJ_TIMEOUT_MS ? left : OBJ_TIMEOUT_MS);
}

static ms_status
running(const char *what)
{
    if (!msi_client.started || msi_client.stopped)
        return msi_set_error(MS_EUNAVAILABLE,
                             "%s: objects need msd: local or docker mode, after ms_init and "
                             "before ms_shutdown",
                             what);
    return MS_OK;
}

/* One request; MS_OK only for a 2xx answer, otherwise the answer's status and message (the
 * detail starts with `what`). *out: the parsed body (may be NULL). */
static ms_status
request(const char *what, const char *method, const char *path, const char *if_match,
        const json_t *body, msi_httpc_resp *resp, json_t **out)
{
    char im[OBJ_HDR_MAX + 16];
    const char *headers[2] = {NULL, NULL};
    if (if_match) {
        snprintf(im, sizeof im, "If-Match: %s", if_match);
        headers[0] = im;
    }
    msi_err err = {{0}};
    ms_status st =
        msi_cl_orch_request(method, path, headers, (json_t *)body, deadline(), resp, out, &err);
    if (st != MS_OK)
        return msi_set_error(st, "%s: %s", what, err.msg);
    if (resp->status >= 200 && resp->status < 300)
        return MS_OK;
    char text[300];
    msi_httpc_error_text(resp, text, sizeof text);
    json_decref(*out);
    *out = NULL;
    return msi_set_error(msi_httpc_error_status(resp, NULL), "%s: %s", what, text);
}

static ms_status
take_etag(const char *what, const msi_httpc_resp *resp, char **etag)
{
    if (!etag)
        return MS_OK;
    char buf[OBJ_HDR_MAX + 1];
    if (msi_httpc_header(resp, "ETag", buf, sizeof buf) < 0)
        return msi_set_error(MS_EPROTO, "%s: the answer has no ETag", what);
    if (!(*etag = strdup(buf)))
        return msi_set_error(MS_ENOMEM, "%s: out of memory", what);
    return MS_OK;
}

ms_status
ms_obj_create(ms_ref *out, const char *ns, const char *collection, const json_t *value)
{
    ms_status st = running("ms_obj_create");
    if (st != MS_OK)
        return st;
    if (!out || !ns || !collection || !name_ok(ns, strlen(ns)) ||
        !name_ok(collection, strlen(collection)))
        return msi_set_error(MS_EBADARGS, "ms_obj_create: bad ns or collection (1 to 128 of "
                                          "[A-Za-z0-9_.-], not . or ..)");
    if (!json_is_object(value))
        return msi_set_error(MS_EBADARGS, "ms_obj_create: the value must be a JSON object");
    char path[64 + 2 * OBJ_NAME_MAX];
    snprintf(path, sizeof path, "/v1/objects/%s/%s", ns, collection);
    msi_httpc_resp resp;
    json_t *ans = NULL;
    st = request("ms_obj_create", "POST", path, NULL, value, &resp, &ans);
    json_decref(ans);
    if (st != MS_OK)
        return st;
    /* Location: /v1/objects/{ns}/{collection}/{id} */
    char loc[OBJ_HDR_MAX + 1];
    size_t plen = strlen(path);
    if (msi_httpc_header(&resp, "Location", loc, sizeof loc) < 0 || strncmp(loc, path, plen) != 0 ||
        loc[plen] != '/' || !name_ok(loc + plen + 1, strlen(loc + plen + 1)))
        return msi_set_error(MS_EPROTO, "ms_obj_create: the answer has no usable Location");
    size_t n = strlen(OBJ_PREFIX) + strlen(ns) + strlen(collection) + strlen(loc + plen + 1) + 3;
    char *uri = malloc(n);
    if (!uri)
        return msi_set_error(MS_ENOMEM, "ms_obj_create: out of memory");
    snprintf(uri, n, OBJ_PREFIX "%s/%s/%s", ns, collection, loc + plen + 1);
    out->uri = uri;
    return MS_OK;
}

/* The REST path of ref (the caller's buffer of OBJ_PATH_MAX), after checking ref and, when
 * given, if_match; MS_EBADARGS naming `what` otherwise. */
static ms_status
object_path(const char *what, const ms_ref *ref, const char *if_match, char *path)
{
    if (msi_cl_obj_path(ref, path, OBJ_PATH_MAX) < 0)
        return msi_set_error(MS_EBADARGS, "%s: not an object reference (%s{ns}/{collection}/{id})",
                             what, OBJ_PREFIX);
    if (if_match && !header_value_ok(if_match))
        return msi_set_error(MS_EBADARGS, "%s: bad if_match (an ETag)", what);
    return MS_OK;
}

ms_status
ms_obj_get(const ms_ref *ref, json_t **value, char **etag)
{
    ms_status st = running("ms_obj_get");
    if (st != MS_OK)
        return st;
    char path[OBJ_PATH_MAX];
    if (!value)
        return msi_set_error(MS_EBADARGS,
                             "ms_obj_get: not an object reference (%s{ns}/{collection}/{id})",
                             OBJ_PREFIX);
    if ((st = object_path("ms_obj_get", ref, NULL, path)) != MS_OK)
        return st;
    msi_httpc_resp resp;
    json_t *ans = NULL;
    st = request("ms_obj_get", "GET", path, NULL, NULL, &resp, &ans);
    if (st != MS_OK)
        return st;
    if (!json_is_object(ans)) {
        json_decref(ans);
        return msi_set_error(MS_EPROTO, "ms_obj_get: %s: the answer is not a JSON object",
                             ref->uri);
    }
    if ((st = take_etag("ms_obj_get", &resp, etag)) != MS_OK) {
        json_decref(ans);
        return st;
    }
    *value = ans;
    return MS_OK;
}

ms_status
ms_obj_put(const ms_ref *ref, const json_t *value, const char *if_match, char **etag)
{
    ms_status st = running("ms_obj_put");
    if (st != MS_OK)
        return st;
    char path[OBJ_PATH_MAX];
    if ((st = object_path("ms_obj_put", ref, NULL, path)) != MS_OK)
        return st;
    if (!json_is_object(value))
        return msi_set_error(MS_EBADARGS, "ms_obj_put: the value must be a JSON object");
    if (if_match && !header_value_ok(if_match))
        return msi_set_error(MS_EBADARGS, "ms_obj_put: bad if_match (an ETag)");
    msi_httpc_resp resp;
    json_t *ans = NULL;
    st = request("ms_obj_put", "PUT", path, if_match, value, &resp, &ans);
    json_decref(ans);
    if (st != MS_OK)
        return st;
    return take_etag("ms_obj_put", &resp, etag);
}

ms_status
ms_obj_delete(const ms_ref *ref, const char *if_match)
{
    ms_status st = running("ms_obj_delete");
    if (st != MS_OK)
        return st;
    char path[OBJ_PATH_MAX];
    if ((st = object_path("ms_obj_delete", ref, if_match, path)) != MS_OK)
        return st;
    msi_httpc_resp resp;
    json_t *ans = NULL;
    st = request("ms_obj_delete", "DELETE", path, if_match, NULL, &resp, &ans);
    json_decref(ans);
    return st;
}
