/*
 * api.c: msd's HTTP API (docs/protocol.md, "msd"), on TCP and on the trusted unix socket.
 *
 * Design notes
 * - Two listeners share one route table: TCP (cfg.listen, loopback unless --allow-remote)
 *   and <state>/msd.sock. On the socket a peer whose uid (SO_PEERCRED) is msd's own is the
 *   admin without a token: the trusted local client of DESIGN section 10.
 * - Credentials, checked in each route's `early` hook (before a body is read): the admin
 *   token allows everything; the call token allows lookups, listings and failure reports;
 *   an instance token allows that instance's heartbeats. Missing or unknown token: 401;
 *   a valid token without the right: 403. /v1/health, /metrics and / need none (they show
 *   no secrets: names, counts, states, addresses; calling an instance needs the call
 *   token anyway).
 * - Input bounds: bodies 1 MiB (the server answers 413 past it), JSON depth 64 and valid
 *   UTF-8 (msi_json_parse), names [A-Za-z0-9_.-]{1,128}, ids of 31 characters, builds of 64
 *   and signatures of 16 hex digits, numbers range-checked. Anything else is a 4xx with a
 *   JSON error naming the problem.
 * - Handlers take msd.mu only around reading or changing the model; a lookup waits on
 *   msd.changed (msd_wait_ready), which releases it. Each connection has its own thread
 *   (http.h), so a waiting lookup holds up nobody else.
 */
#include "http.h"
#include "objects.h"
#include "statedir.h"
#include "store.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct msd_api {
    msd *m;
    msi_http *tcp;
    msi_http *unix_srv;
};

enum { AUTH_NONE, AUTH_CALL, AUTH_ADMIN };

static msd *the_msd; /* the route table's arg is per route; every route serves this msd */

/* ------------------------------------------------------------------------------------------
 * Helpers.
 * ---------------------------------------------------------------------------------------- */

static int
auth_level(msd *m, msi_http_req *r)
{
    uid_t uid;
    if (msi_http_peer_uid(r, &uid) == 0 && uid == m->uid)
        return AUTH_ADMIN;
    const char *admin[] = {m->admin_token};
    if (msi_http_bearer_ok(r, admin, 1))
        return AUTH_ADMIN;
    const char *call[] = {m->call_token};
    if (msi_http_bearer_ok(r, call, 1))
        return AUTH_CALL;
    return AUTH_NONE;
}

/* Replies 401/403 unless the request has at least `need`. Returns 1 when it may proceed. */
static int
require(msd *m, msi_http_req *r, int need)
{
    int have = auth_level(m, r);
    if (have >= need)
        return 1;
    if (have == AUTH_NONE) {
        const char *h = msi_http_header(r, "Authorization");
        msi_http_reply_error(r, MS_EAUTH,
                             h ? "bad token" : "missing token (Authorization: Bearer ...)");
    } else {
        msi_http_reply_error(r, MS_EFORBIDDEN,
                             "this needs the admin token (the file 'token' in "
                             "msd's state directory)");
    }
    return 0;
}

static int
is_hex_n(const char *s, size_t n)
{
    if (!s || strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

json_t *
msd_body_object(msi_http_req *r)
{
    size_t len;
    const char *body = msi_http_body(r, &len);
    if (!body || len == 0) {
        msi_http_reply_error(r, MS_EBADARGS, "a JSON object body is required");
        return NULL;
    }
    msi_err err = {{0}};
    json_t *j = msi_json_parse(body, len, &err);
    if (!j) {
        msi_http_reply_error(r, MS_EBADARGS, "bad JSON: %s", err.msg);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        msi_http_reply_error(r, MS_EBADARGS, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* Splits "name/verb" (or "name") at the first '/'. 0, or -1 after replying 400. */
static int
split_rest(msi_http_req *r, char *name, size_t nlen, const char **verb, const char *what)
{
    const char *rest = msi_http_rest(r);
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    *verb = slash ? slash + 1 : "";
    if (n == 0 || n >= nlen) {
        msi_http_reply_error(r, MS_EBADARGS, "bad %s name (1 to %zu of [A-Za-z0-9_.-])", what,
                             nlen - 1);
        return -1;
    }
    memcpy(name, rest, n);
    name[n] = '\0';
    if (!(nlen == MSD_ID_MAX ? msd_valid_id(name) : msd_valid_name(name))) {
        msi_http_reply_error(r, MS_EBADARGS, "bad %s name (1 to %zu of [A-Za-z0-9_.-])", what,
                             nlen - 1);
        return -1;
    }
    return 0;
}

static int
get_int_member(msi_http_req *r, json_t *o, const char *key, long long min, long long max,
               int required, long long *out)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (!required)
            return 0;
        msi_http_reply_error(r, MS_EBADARGS, "\"%s\" is required", key);
        return -1;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        msi_http_reply_error(r, MS_EBADARGS, "\"%s\" must be an integer in [%lld, %lld]", key, min,
                             max);
        return -1;
    }
    *out = json_integer_value(v);
    return 1;
}

#define REPORT_TEXT_MAX 150

/* Copies a caller's text into an event message: control characters become spaces, and a
 * cut never splits a UTF-8 sequence (src is valid UTF-8: msi_json_parse checked it). */
static void
clean_text(char *dst, size_t len, const char *src)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)src;
    while (*p) {
        size_t n = *p < 0x80 ? 1 : *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2;
        if (o + n >= len || memchr(p, '\0', n))
            break; /* no room for the whole character (or a cut sequence: not valid input) */
        if (n == 1)
            dst[o] = *p < 0x20 || *p == 0x7f ? ' ' : (char)*p;
        else
            memcpy(dst + o, p, n);
        o += n;
        p += n;
    }
    dst[o] = '\0';
}

/* ------------------------------------------------------------------------------------------
 * Early hooks: credentials before the body is read.
 * ---------------------------------------------------------------------------------------- */

static void
early_call(msi_http_req *r, void *arg)
{
    (void)arg;
    require(the_msd, r, AUTH_CALL);
}

static void
early_services(msi_http_req *r, void *arg)
{
    (void)arg;
    const char *method = msi_http_method(r);
    int need = strcmp(method, "GET") == 0 ? AUTH_CALL : AUTH_ADMIN;
    /* failure reports are for callers */
    const char *rest = msi_http_rest(r);
    const char *slash = strchr(rest, '/');
    if (slash && strcmp(slash + 1, "failures") == 0)
        need = AUTH_CALL;
    require(the_msd, r, need);
}

static void
early_deployments(msi_http_req *r, void *arg)
{
    (void)arg;
    require(the_msd, r, strcmp(msi_http_method(r), "GET") == 0 ? AUTH_CALL : AUTH_ADMIN);
}

static void
early_instances(msi_http_req *r, void *arg)
{
    (void)arg;
    msd *m = the_msd;
    const char *rest = msi_http_rest(r);
    const char *slash = strchr(rest, '/');
    if (slash && strcmp(slash + 1, "heartbeat") == 0) {
        int lvl = auth_level(m, r);
        if (lvl == AUTH_ADMIN)
            return;
        /* The instance's own token; the id is checked properly in the handler. */
        char id[MSD_ID_MAX];
        size_t n = (size_t)(slash - rest);
        if (n == 0 || n >= sizeof id) {
            msi_http_reply_error(r, MS_EBADARGS, "bad instance id");
            return;
        }
        memcpy(id, rest, n);
        id[n] = '\0';
        const char *h = msi_http_header(r, "Authorization");
        pthread_mutex_lock(&m->mu);
        msd_instance *in = msd_valid_id(id) ? msd_instance_find(m, id) : NULL;
        char tok[MSD_TOKEN_HEX + 1] = "";
        if (in)
            msd_fmt(tok, sizeof tok, "%s", in->token);
        pthread_mutex_unlock(&m->mu);
        if (!in) {
            msi_http_reply_error_ex(r, 410, MS_ENOTFOUND, NULL,
                                    "instance %s is unknown to this msd: exit", id);
            return;
        }
        const char *toks[] = {tok[0] ? tok : NULL};
        if (!msi_http_bearer_ok(r, toks, 1))
            msi_http_reply_error(r, MS_EAUTH, h ? "bad instance token" : "missing instance token");
        return;
    }
    require(m, r, AUTH_ADMIN);
}

/* ------------------------------------------------------------------------------------------
 * Handlers.
 * ---------------------------------------------------------------------------------------- */

static void
h_health(msi_http_req *r, void *arg)
{
    (void)arg;
    msi_http_reply_json(r, 200, json_pack("{s:s, s:s}", "status", "ok", "version", MSD_VERSION));
}

static void
h_services_list(msi_http_req *r, void *arg)
{
    (void)arg;
    msd *m = the_msd;
    if (strcmp(msi_http_method(r), "GET") != 0) {
        msi_http_reply_error_ex(r, 405, MS_EINVAL, NULL, "use GET");
        return;
    }
    pthread_mutex_lock(&m->mu);
    json_t *list = msd_services_json(m, NULL);
    pthread_mutex_unlock(&m->mu);
    msi_http_reply_json(r, 200, json_pack("{s:o}", "services", list ? list : json_array()));
}

/* GET /v1/services/{name}: the lookup. */
static void
locate(msd *m, msi_http_req *r, const char *name)
{
    const char *build = msi_http_query(r, "build");
    const char *sig = msi_http_query(r, "sig");
    if (build && *build && !is_hex_n(build, 64)) {
        msi_http_reply_error(r, MS_EBADARGS, "build must be 64 hex digits");
        return;
    }
    if (sig && *sig && !is_hex_n(sig, 16)) {
        msi_http_reply_error(r, MS_EBADARGS, "sig must be 16 hex digits");
        return;
    }
    long long wait_ms = 10000;
    const char *dl = msi_http_header(r, "Ms-Deadline-Ms");
    if (dl && msd_parse_int(dl, 0, 3600 * 1000, &wait_ms) < 0) {
        msi_http_reply_error(r, MS_EBADARGS, "Ms-Deadline-Ms must be an integer in [0, 3600000]");
        return;
    }
    int64_t deadline = msi_now_ms() + wait_ms;

    pthread_mutex_lock(&m->mu);
    m->n_locates++;
    msd_service *svc = NULL;
    if (build && *build) {
        svc = msd_service_find(m, name, build);
        if (svc && svc->deleted)
            svc = NULL;
    }
    if (!svc)
        svc = msd_service_newest(m, name, sig && *sig ? sig : NULL);
    if (!svc) {
        int known = msd_service_known(m, name);
        pthread_mutex_unlock(&m->mu);
        if (known)
            msi_http_reply_error(r, MS_ESIGNATURE,
                                 "%s: no deployment has signature %s (redeploy the caller's "
                                 "build, or the service's)",
                                 name, sig ? sig : "");
        else
            msi_http_reply_error(r, MS_ENOTFOUND, "%s: unknown service (deploy it first)", name);
        return;
    }
    ms_status st = msd_wait_ready(m, svc, deadline);
    if (st != MS_OK) {
        char msg[300];
        int64_t next = 0;
        int crashloop = st == MS_EUNAVAILABLE && svc->crashloop && !m->stopping;
        if (crashloop && !msd_service_may_be_ready(m, svc, deadline, &next) && next)
            msd_fmt(msg, sizeof msg,
                    "%s: crash loop: its instances keep dying at start, and the next start, "
                    "in %lld ms, is past this lookup's deadline; see msctl events and the "
                    "instance logs in the state directory",
                    name, (long long)(next - msi_now_ms()));
        else if (crashloop)
            msd_fmt(msg, sizeof msg,
                    "%s: crash loop: its instances keep dying at start; see "
                    "msctl events and the instance logs in the state directory",
                    name);
        else if (st == MS_EUNAVAILABLE)
            msd_fmt(msg, sizeof msg, "%s: msd is stopping", name);
        else if (st == MS_ENOTFOUND)
            msd_fmt(msg, sizeof msg, "%s: deleted", name);
        else
            msd_fmt(msg, sizeof msg, "%s: no instance became ready within %lld ms", name, wait_ms);
        pthread_mutex_unlock(&m->mu);
        msi_http_reply_error(r, st, "%s", msg);
        return;
    }
    json_t *insts = msd_select_instances(m, svc);
    /* idempotent and timeout_ms: the deployment's own options, for callers (MS_CLIENT
     * stubs) that do not declare them. */
    json_t *reply =
        json_pack("{s:s, s:s, s:s, s:s, s:i, s:b, s:i, s:o}", "service", svc->name, "build",
                  svc->build, "signature", svc->sig, "lb", msd_lb_name(msd_service_lb(m, svc)),
                  "ttl_ms", 1000, "idempotent", svc->idempotent, "timeout_ms", svc->timeout_ms,
                  "instances", insts ? insts : json_array());
    pthread_mutex_unlock(&m->mu);
    msi_http_reply_json(r, 200, reply);
}

static void
failures(msd *m, msi_http_req *r, const char *name)
{
    json_t *b = msd_body_object(r);
    if (!b)
        return;
    const char *id = json_string_value(json_object_get(b, "instance"));
    const char *reason = json_string_value(json_object_get(b, "reason"));
    long long epoch = 0;
    if (!id || !msd_valid_id(id)) {
        msi_http_reply_error(r, MS_EBADARGS, "\"instance\" must be an instance id");
        json_decref(b);
        return;
    }
    if (get_int_member(r, b, "epoch", 0, INT64_MAX, 0, &epoch) < 0) {
        json_decref(b);
        return;
    }
    pthread_mutex_lock(&m->mu);
    if (!msd_service_known(m, name)) {
        pthread_mutex_unlock(&m->mu);
        msi_http_reply_error(r, MS_ENOTFOUND, "%s: unknown service", name);
        json_decref(b);
        return;
    }
    msd_instance *in = msd_instance_find(m, id);
    if (in && strcmp(in->svc->name, name) == 0 && (!epoch || epoch == in->epoch)) {
        msd_log("debug", "failure report for %s %s: %.200s", name, id, reason ? reason : "");
        msd_probe_soon(m, in);
        /* Visible in msctl events, but at most one event per instance a second: a dying
         * instance is reported by every caller that had it. */
        int64_t now = msi_now_ms();
        if (!in->report_mono || now - in->report_mono >= 1000) {
            char text[REPORT_TEXT_MAX];
            clean_text(text, sizeof text, reason && *reason ? reason : "no reason given");
            int probing = in->state == MSD_I_READY || in->state == MSD_I_SUSPECT;
            in->report_mono = now;
            msd_emit(m, "report", name, id, "epoch %lld reported by a caller (%s); %s%s",
                     (long long)in->epoch, text, probing ? "probing it" : "it is ",
                     probing ? "" : msd_istate_name(in->state));
        }
    }
    pthread_mutex_unlock(&m->mu);
    json_decref(b);
    msi_http_reply_json(r, 202, json_pack("{s:b}", "accepted", 1));
}

static void
scale(msd *m, msi_http_req *r, const char *name)
{
    json_t *b = msd_body_object(r);
    if (!b)
        return;
    /* {"instances":N}: N now, pinned (the autoscaler leaves it alone);
     * {"auto":true}: autoscaled again from the current count; both: N now, autoscaled. */
    long long n = 0;
    int has_n = get_int_member(r, b, "instances", 0, 1024, 0, &n);
    if (has_n < 0) {
        json_decref(b);
        return;
    }
    json_t *autoj = json_object_get(b, "auto");
    if ((autoj && !json_is_boolean(autoj)) || (!has_n && !autoj)) {
        msi_http_reply_error(r, MS_EBADARGS,
                             "expected {\"instances\": N} (pinned at N), {\"auto\": true} "
                             "(autoscaled) or both");
        json_decref(b);
        return;
    }
    int pin = autoj ? !json_is_true(autoj) : 1;
    json_t *bj = json_object_get(b, "build");
    const char *build = json_string_value(bj);
    if (bj && !is_hex_n(build, 64)) {
        msi_http_reply_error(r, MS_EBADARGS, "\"build\" must be 64 hex digits");
        json_decref(b);
        return;
    }
    pthread_mutex_lock(&m->mu);
    msd_service *svc = build ? msd_service_find(m, name, build) : msd_service_newest(m, name, NULL);
    if (!svc || svc->deleted) {
        pthread_mutex_unlock(&m->mu);
        msi_http_reply_error(r, MS_ENOTFOUND, "%s%s%.12s: unknown service", name,
                             build ? " build " : "", build ? build : "");
        json_decref(b);
        return;
    }
    if (n > svc->max_instances) {
        int max = svc->max_instances;
        pthread_mutex_unlock(&m->mu);
        msi_http_reply_error(r, MS_EBADARGS, "%s: %lld is above its max_instances (%d)", name, n,
                             max);
        json_decref(b);
        return;
    }
    if (has_n)
        msd_set_desired(m, svc, (int)n, "scale request");
    msd_set_pinned(m, svc, pin, "scale request");
    json_t *reply = json_pack("{s:s, s:s, s:i, s:b}", "service", svc->name, "build", svc->build,
                              "desired", svc->desired, "autoscale", !svc->pinned);
    pthread_mutex_unlock(&m->mu);
    json_decref(b);
    msi_http_reply_json(r, 200, reply);
}

static void
delete_service(msd *m, msi_http_req *r, const char *name)
{
    pthread_mutex_lock(&m->mu);
    int n = 0, stopping = 0;
    for (msd_service *svc = m->services; svc; svc = svc->next) {
        if (strcmp(svc->name, name) != 0 || svc->deleted)
            continue;
        n++;
        svc->deleted = 1;
        svc->desired = 0;
        svc->pinned = 0; /* deployed again, it starts afresh: lazily, autoscaled */
        msd_save_service(m, svc);
        for (msd_instance *in = m->instances; in; in = in->next) {
            if (in->svc == svc && !in->retiring) {
                msd_retire(m, in, "service deleted");
                stopping++;
            }
        }
    }
    if (n) {
        msd_emit(m, "delete", name, NULL, "deleted (%d build(s)); stopping %d instance(s)", n,
                 stopping);
        pthread_cond_broadcast(&m->changed);
    }
    pthread_mutex_unlock(&m->mu);
    if (!n) {
        msi_http_reply_error(r, MS_ENOTFOUND, "%s: unknown service", name);
        return;
    }
    msi_http_reply_json(r, 200, json_pack("{s:s, s:i}", "deleted", name, "stopping", stopping));
}

static void
h_service(msi_http_req *r, void *arg)
{
    (void)arg;
    msd *m = the_msd;
    char name[MSD_NAME_MAX + 1];
    const char *verb;
    if (split_rest(r, name, sizeof name, &verb, "service") < 0)
        return;
    const char *method = msi_http_method(r);
    if (!*verb && strcmp(method, "GET") == 0)
        locate(m, r, name);
    else if (!*verb && strcmp(method, "DELETE") == 0)
        delete_service(m, r, name);
    else if (strcmp(verb, "failures") == 0 && strcmp(method, "POST") == 0)
        failures(m, r, name);
    else if (strcmp(verb, "scale") == 0 && strcmp(method, "PUT") == 0)
        scale(m, r, name);
    else if (!*verb || strcmp(verb, "failures") == 0 || strcmp(verb, "scale") == 0)
        msi_http_reply_error_ex(r, 405, MS_EINVAL, NULL, "method %s not allowed here", method);
    else
        msi_http_reply_error(r, MS_ENOTFOUND, "no such endpoint: %s", msi_http_path(r));
}

static void
h_deployments(msi_http_req *r, void *arg)
{
    (void)arg;
    msd *m = the_msd;
    const char *method = msi_http_method(r);
    if (strcmp(method, "GET") == 0) {
        pthread_mutex_lock(&m->mu);
        json_t *list = json_array();
        for (msd_deployment *d = m->deployments; d; d = d->next)
            json_array_append_new(list, json_pack("{s:s, s:I, s:s, s:O, s:O, s:I}", "build",
                                                  d->build, "seq", (json_int_t)d->seq, "path",
                                                  d->path, "argv", d->argv, "services", d->services,
                                                  "created_ms", (json_int_t)d->created_ms));
        pthread_mutex_unlock(&m->mu);
        msi_http_reply_json(r, 200, json_pack("{s:o}", "deployments", list));
        return;
    }
    if (strcmp(method, "POST") != 0) {
        msi_http_reply_error_ex(r, 405, MS_EINVAL, NULL, "use GET or POST");
        return;
    }
    json_t *b = msd_body_object(r);
    if (!b)
        return;
    const char *path = json_string_value(json_object_get(b, "path"));
    json_t *argv = json_object_get(b, "argv");
    if (!path || !*path || strlen(path) > 4095) {
        msi_http_reply_error(r, MS_EBADARGS, "\"path\" (a string, the executable) is required");
        json_decref(b);
        return;
    }
    if (argv) {
        size_t i;
        json_t *a;
        int ok = json_is_array(argv) && json_array_size(argv) <= 1024;
        json_array_foreach(argv, i, a)
        {
            if (!json_is_string(a) || json_string_length(a) > 65536 ||
                strlen(json_string_value(a)) != json_string_length(a))
                ok = 0;
        }
        if (!ok) {
            msi_http_reply_error(r, MS_EBADARGS,
                                 "\"argv\" must be an array of at most 1024 strings");
            json_decref(b);
            return;
        }
    }
    msi_err err = {{0}};
    json_t *out = NULL;
    int created = 0;
    ms_status st = msd_deploy(m, path, argv, &out, &created, &err);
    json_decref(b);
    if (st != MS_OK) {
        msi_http_reply_error(r, st, "%s", err.msg);
        return;
    }
    msi_http_reply_json(r, created ? 201 : 200, out);
}

static void
heartbeat(msd *m, msi_http_req *r, const char *id)
{
    json_t *b = msd_body_object(r);
    if (!b)
        return;
    long long epoch = 0, pid = 0, inflight = 0, queued = 0, calls = 0;
    if (get_int_member(r, b, "epoch", 1, INT64_MAX, 1, &epoch) < 0 ||
        get_int_member(r, b, "pid", 0, INT32_MAX, 0, &pid) < 0 ||
        get_int_member(r, b, "inflight", 0, INT64_MAX, 0, &inflight) < 0 ||
        get_int_member(r, b, "queued", 0, INT64_MAX, 0, &queued) < 0 ||
        get_int_member(r, b, "calls", 0, INT64_MAX, 0, &calls) < 0) {
        json_decref(b);
        return;
    }
    json_t *addrj = json_object_get(b, "addr");
    const char *addr = json_string_value(addrj);
    char host[MSD_ADDR_MAX];
    int port;
    if (addrj && (!addr || strlen(addr) >= MSD_ADDR_MAX ||
                  msd_parse_hostport(addr, host, sizeof host, &port) < 0 || port == 0)) {
        msi_http_reply_error(r, MS_EBADARGS, "\"addr\" must be \"host:port\"");
        json_decref(b);
        return;
    }
    json_t *busyj = json_object_get(b, "busy"), *cpuj = json_object_get(b, "cpu");
    if ((busyj && !json_is_number(busyj)) || (cpuj && !json_is_number(cpuj))) {
        msi_http_reply_error(r, MS_EBADARGS, "\"busy\" and \"cpu\" must be numbers");
        json_decref(b);
        return;
    }
    double busy = busyj ? json_number_value(busyj) : 0, cpu = cpuj ? json_number_value(cpuj) : 0;
    if (!(busy >= 0 && busy <= 1e6) || !(cpu >= 0 && cpu <= 1e6)) {
        msi_http_reply_error(r, MS_EBADARGS, "\"busy\" and \"cpu\" must be in [0, 1e6]");
        json_decref(b);
        return;
    }
    int draining = json_is_true(json_object_get(b, "draining"));

    pthread_mutex_lock(&m->mu);
    m->n_heartbeats++;
    msd_instance *in = msd_instance_find(m, id);
    if (!in || in->epoch != epoch || in->state == MSD_I_DEAD) {
        pthread_mutex_unlock(&m->mu);
        json_decref(b);
        msi_http_reply_error_ex(r, 410, MS_ENOTFOUND, NULL,
                                "instance %s epoch %lld is not one this msd runs: exit", id, epoch);
        return;
    }
    in->hb_mono = msi_now_ms();
    in->busy = busy;
    in->cpu = cpu;
    in->inflight = inflight;
    in->queued = queued;
    in->calls = calls;
    in->draining_reported = draining;
    if (addr && !in->registered) {
        /* Local mode: msd bound the address and knows it; the heartbeat confirms it. Other
         * runners learn it here. */
        if (!in->addr[0] || strcmp(in->addr, addr) != 0) {
            msd_fmt(in->addr, sizeof in->addr, "%s", addr);
            msd_save_instance(m, in);
        }
        in->registered = 1;
        if (in->state == MSD_I_STARTING) {
            in->next_probe_mono = in->hb_mono; /* probe at once: ready sooner */
            msd_wake(m);
        }
    }
    pthread_mutex_unlock(&m->mu);
    json_decref(b);
    msi_http_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
}

static void
h_instance(msi_http_req *r, void *arg)
{
    (void)arg;
    msd *m = the_msd;
    char id[MSD_ID_MAX];
    const char *verb;
    if (split_rest(r, id, sizeof id, &verb, "instance") < 0)
        return;
    const char *method = msi_http_method(r);
    if (strcmp(verb, "heartbeat") == 0 && strcmp(method, "POST") == 0) {
        heartbeat(m, r, id);
    } else if (strcmp(verb, "drain") == 0 && strcmp(method, "POST") == 0) {
        pthread_mutex_lock(&m->mu);
        msd_instance *in = msd_instance_find(m, id);
        if (in)
            msd_retire(m, in, "drain requested");
        pthread_mutex_unlock(&m->mu);
        if (!in)
            msi_http_reply_error(r, MS_ENOTFOUND, "%s: unknown instance", id);
        else
            msi_http_reply_json(r, 202, json_pack("{s:s, s:b}", "instance", id, "draining", 1));
    } else if (strcmp(verb, "heartbeat") == 0 || strcmp(verb, "drain") == 0) {
        msi_http_reply_error_ex(r, 405, MS_EINVAL, NULL, "use POST");
    } else {
        msi_http_reply_error(r, MS_ENOTFOUND, "no such endpoint: %s", msi_http_path(r));
    }
}

static void
h_events(msi_http_req *r, void *arg)
{
    (void)arg;
    msd *m = the_msd;
    long long since = 0, limit = 1000;
    const char *s = msi_http_query(r, "since");
    const char *l = msi_http_query(r, "limit");
    if ((s && msd_parse_int(s, 0, INT64_MAX, &since) < 0) ||
        (l && msd_parse_int(l, 1, 10000, &limit) < 0)) {
        msi_http_reply_error(r, MS_EBADARGS, "since must be an integer >= 0, limit in [1, 10000]");
        return;
    }
    pthread_mutex_lock(&m->mu);
    json_t *ev = msd_events_json(m, since, (int)limit);
    int64_t last = m->event_seq;
    pthread_mutex_unlock(&m->mu);
    msi_http_reply_json(
        r, 200,
        json_pack("{s:o, s:I}", "events", ev ? ev : json_array(), "last", (json_int_t)last));
}

static void
h_metrics(msi_http_req *r, void *arg)
{
    (void)arg;
    msd *m = the_msd;
    size_t len = 0;
    pthread_mutex_lock(&m->mu);
    char *text = msd_metrics_text(m, &len);
    pthread_mutex_unlock(&m->mu);
    if (!text) {
        msi_http_reply_error(r, MS_ENOMEM, "out of memory");
        return;
    }
    msi_http_reply(r, 200, "text/plain; version=0.0.4", text, len);
    free(text);
}

static void
h_root(msi_http_req *r, void *arg)
{
    (void)arg;
    msd *m = the_msd;
    const char *path = msi_http_path(r);
    if (strcmp(path, "/") != 0 && strcmp(path, "/index.html") != 0) {
        msi_http_reply_error(r, MS_ENOTFOUND, "no such endpoint: %s", path);
        return;
    }
    if (strcmp(msi_http_method(r), "GET") != 0 && strcmp(msi_http_method(r), "HEAD") != 0) {
        msi_http_reply_error_ex(r, 405, MS_EINVAL, NULL, "use GET");
        return;
    }
    size_t len = 0;
    pthread_mutex_lock(&m->mu);
    char *html = msd_dashboard_html(m, &len);
    pthread_mutex_unlock(&m->mu);
    if (!html) {
        msi_http_reply_error(r, MS_ENOMEM, "out of memory");
        return;
    }
    msi_http_reply(r, 200, "text/html; charset=utf-8", html, len);
    free(html);
}

/* The object store (objects_api.c). */
static void
h_objects(msi_http_req *r, void *arg)
{
    (void)arg;
    msd_objects_http(the_msd, r);
}

static void
h_txn(msi_http_req *r, void *arg)
{
    (void)arg;
    msd_txn_http(the_msd, r);
}

static const msi_http_route routes[] = {
    {"GET", "/v1/health", h_health, NULL, 0, NULL},
    {NULL, "/v1/services", h_services_list, NULL, 0, early_call},
    {NULL, "/v1/services/", h_service, NULL, 0, early_services},
    {NULL, "/v1/deployments", h_deployments, NULL, 0, early_deployments},
    {NULL, "/v1/instances/", h_instance, NULL, 0, early_instances},
    {"GET", "/v1/events", h_events, NULL, 0, early_call},
    {"GET", "/metrics", h_metrics, NULL, 0, NULL},
    {NULL, "/v1/objects/", h_objects, NULL, 0, early_call},
    {NULL, "/v1/txn", h_txn, NULL, 0, early_call},
    {NULL, "/v1/txn/", h_txn, NULL, 0, early_call},
    /* The dashboard: "/" (a '/'-ending prefix route also catches every other path, for a
     * JSON 404) and "/index.html". */
    {NULL, "/index.html", h_root, NULL, 0, NULL},
    {NULL, "/", h_root, NULL, 0, NULL},
};

/* ------------------------------------------------------------------------------------------
 * Start and stop.
 * ---------------------------------------------------------------------------------------- */

static ms_status
start_tcp(msd_api *a, const char *host_port, msi_err *err)
{
    msi_http_config cfg = MSI_HTTP_CONFIG_INIT;
    cfg.host_port = host_port;
    cfg.routes = routes;
    cfg.nroutes = sizeof routes / sizeof *routes;
    cfg.max_body = MSD_BODY_MAX;
    cfg.name = "msd";
    return msi_http_start(&cfg, &a->tcp, err);
}

int
msd_api_start(msd *m, msd_api **out)
{
    msd_api *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    a->m = m;
    the_msd = m;
    msi_err err = {{0}};
    char host[MSD_ADDR_MAX], addrfile[4096], hp[MSD_ADDR_MAX + 8];
    int port = 0;
    if (msd_parse_hostport(m->cfg.listen, host, sizeof host, &port) < 0) {
        msd_log("error", "--listen %s: expected HOST:PORT", m->cfg.listen);
        free(a);
        return -EINVAL;
    }
    msd_fmt(addrfile, sizeof addrfile, "%s/" MSI_STATE_ADDR, m->cfg.state_dir);
    ms_status st = MS_EIO;
    if (port == 0) {
        /* Port 0: the port of the previous run if it is free, so that instances it left
         * running (which heartbeat to that address) find this msd and are re-adopted. */
        char *prev = NULL;
        char meta[MSD_ADDR_MAX];
        if (m->store && m->store->ops->get_meta(m->store, "addr", meta, sizeof meta) == 0 &&
            meta[0])
            prev = strdup(meta);
        if (!prev)
            prev = msd_read_file(addrfile, 256, NULL);
        char ph[MSD_ADDR_MAX];
        int pp;
        if (prev) {
            prev[strcspn(prev, "\r\n")] = '\0';
            if (msd_parse_hostport(prev, ph, sizeof ph, &pp) == 0 && pp > 0 &&
                strcmp(ph, host) == 0) {
                st = start_tcp(a, prev, &err);
                if (st != MS_OK)
                    msd_log("info", "previous address %s is taken; picking a new port", prev);
            }
            free(prev);
        }
    }
    if (st != MS_OK) {
        if (strchr(host, ':'))
            msd_fmt(hp, sizeof hp, "[%s]:%d", host, port);
        else
            msd_fmt(hp, sizeof hp, "%s:%d", host, port);
        st = start_tcp(a, hp, &err);
    }
    if (st != MS_OK) {
        msd_log("error", "cannot listen on %s: %s", m->cfg.listen, err.msg);
        free(a);
        return -EADDRINUSE;
    }
    msd_fmt(m->addr, sizeof m->addr, "%s", msi_http_addr(a->tcp));

    msi_http_config ucfg = MSI_HTTP_CONFIG_INIT;
    char sock[4096];
    msd_fmt(sock, sizeof sock, "%s/" MSI_STATE_SOCK, m->cfg.state_dir);
    ucfg.unix_path = sock;
    ucfg.routes = routes;
    ucfg.nroutes = sizeof routes / sizeof *routes;
    ucfg.max_body = MSD_BODY_MAX;
    ucfg.name = "msd-unix";
    if (strlen(sock) >= 100) {
        msd_log("warn", "%s: path too long for a unix socket; no trusted socket", sock);
    } else if (msi_http_start(&ucfg, &a->unix_srv, &err) != MS_OK) {
        msd_log("warn", "no trusted unix socket: %s", err.msg);
        a->unix_srv = NULL;
    }
    /* Written last: its presence means msd answers. */
    char line[MSD_ADDR_MAX + 2];
    msd_fmt(line, sizeof line, "%s\n", m->addr);
    int res = msd_write_file(addrfile, line, strlen(line), 0644);
    if (res < 0)
        msd_log("warn", "cannot write %s: %s", addrfile, strerror(-res));
    *out = a;
    return 0;
}

void
msd_api_stop(msd_api *a)
{
    if (!a)
        return;
    msi_http_stop(a->unix_srv);
    msi_http_stop(a->tcp);
    free(a);
}
