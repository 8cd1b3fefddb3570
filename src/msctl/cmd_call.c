/*
 * cmd_call.c: `msctl call SERVICE k=v ...`: look the service up through msd, then call an
 * instance directly, as a client program would.
 *
 * Design notes
 * - Each k=v is one argument; v is taken as JSON if it parses (5, true, "x", [1,2],
 *   {"a":1}), else as a string (bob). A key must be a C identifier.
 * - The lookup may start an instance and waits for it, bounded by --timeout-ms (the whole
 *   call's budget); the call then carries the remaining budget (Ms-Deadline-Ms), the
 *   signature msd reported (Ms-Signature), the instance it meant (Ms-Instance) and a fresh
 *   request id. If an instance cannot be connected to (nothing was sent) the next one is
 *   tried; a call that was sent is never repeated.
 */
#include "msctl.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char help[] =
    "usage: msctl call SERVICE [NAME=VALUE ...] [--timeout-ms N] [--build SHA256] [--json]\n"
    "\n"
    "Calls SERVICE with the named arguments and prints its result as JSON. A VALUE that\n"
    "parses as JSON is passed as such (2, true, \"text\", [1,2]); any other is a string.\n"
    "The lookup starts an instance if none runs. --timeout-ms bounds the whole call\n"
    "(default 10000); --build picks a deployment (default: the newest). --json prints the\n"
    "instance's whole answer ({\"result\": ...}).\n"
    "\n"
    "example: msctl call add a=2 b=3\n";

static int
is_ident(const char *s, size_t n)
{
    if (n == 0 || n > 128 || isdigit((unsigned char)s[0]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return 0;
    return 1;
}

static void
request_id(char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16] = {0};
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        int64_t t = msi_now_ms();
        memcpy(raw, &t, sizeof t);
    }
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[32] = '\0';
}

int
msctl_cmd_call(msctl *c, int argc, char **argv)
{
    const char *service = NULL, *build = NULL;
    long long timeout = 10000;
    json_t *args = json_object();
    json_t *loc = NULL, *res = NULL;
    int rc = MSCTL_EUSAGE;
    if (!args)
        return msctl_fail(c, MSCTL_EFAIL, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (msctl_is_help(a)) {
            fputs(help, stdout);
            rc = MSCTL_OK;
            goto out;
        }
        if (strcmp(a, "--timeout-ms") == 0 && i + 1 < argc) {
            char *end;
            timeout = strtoll(argv[++i], &end, 10);
            if (*end || timeout < 1 || timeout > 3600000) {
                msctl_fail(c, MSCTL_EUSAGE, "--timeout-ms: expected 1..3600000, got '%s'", argv[i]);
                goto out;
            }
            continue;
        }
        if (strcmp(a, "--build") == 0 && i + 1 < argc) {
            build = argv[++i];
            continue;
        }
        if (strcmp(a, "--") == 0)
            continue;
        if (!service) {
            if (a[0] == '-') {
                fprintf(stderr, "%s", help);
                msctl_fail(c, MSCTL_EUSAGE, "unknown option '%s'", a);
                goto out;
            }
            service = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        if (!eq || !is_ident(a, (size_t)(eq - a))) {
            fprintf(stderr, "%s", help);
            msctl_fail(c, MSCTL_EUSAGE, "expected NAME=VALUE, got '%s'", a);
            goto out;
        }
        char key[129];
        memcpy(key, a, (size_t)(eq - a));
        key[eq - a] = '\0';
        json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
        if (!v)
            v = json_string(eq + 1);
        if (!v) {
            msctl_fail(c, MSCTL_EUSAGE, "%s: not valid UTF-8", key);
            goto out;
        }
        if (json_object_get(args, key)) {
            json_decref(v);
            msctl_fail(c, MSCTL_EUSAGE, "argument '%s' given twice", key);
            goto out;
        }
        json_object_set_new(args, key, v);
    }
    if (!service) {
        fprintf(stderr, "%s", help);
        msctl_fail(c, MSCTL_EUSAGE, "which service?");
        goto out;
    }

    /* The lookup. */
    int64_t deadline = msi_now_ms() + timeout;
    char enc[400], benc[200], path[700], dl[64];
    snprintf(path, sizeof path, "/v1/services/%s%s%s", msctl_urlenc(service, enc, sizeof enc),
             build ? "?build=" : "", build ? msctl_urlenc(build, benc, sizeof benc) : "");
    snprintf(dl, sizeof dl, "Ms-Deadline-Ms: %lld", timeout);
    const char *lh[] = {dl, NULL};
    long status;
    rc = msctl_request(c, "GET", path, NULL, lh, (int)timeout + 2000, &status, &loc);
    if (rc != MSCTL_OK)
        goto out;
    if (status != 200) {
        rc = msctl_server_error(c, status, loc);
        goto out;
    }
    json_t *insts = json_object_get(loc, "instances");
    const char *sig = json_string_value(json_object_get(loc, "signature"));
    if (json_array_size(insts) == 0) {
        rc = msctl_fail(c, MSCTL_EFAIL, "MS_EUNAVAILABLE: %s: no instance", service);
        goto out;
    }

    /* The call: the first instance that can be connected to. */
    char rid[33];
    request_id(rid);
    const char *payload = NULL;
    size_t plen = 0;
    char *dumped = json_dumps(args, JSON_COMPACT);
    if (!dumped) {
        rc = msctl_fail(c, MSCTL_EFAIL, "out of memory");
        goto out;
    }
    payload = dumped;
    plen = strlen(dumped);
    rc = MSCTL_EUNREACHABLE;
    char last[600] = "";
    size_t i;
    json_t *in;
    json_array_foreach(insts, i, in)
    {
        const char *addr = json_string_value(json_object_get(in, "addr"));
        const char *id = json_string_value(json_object_get(in, "id"));
        if (!addr || !id)
            continue;
        int64_t left = deadline - msi_now_ms();
        if (left <= 0) {
            rc = msctl_fail(c, MSCTL_EFAIL, "MS_ETIMEDOUT: %s: deadline passed", service);
            break;
        }
        char url[700], h_dl[64], h_sig[64], h_inst[96], h_rid[64];
        snprintf(url, sizeof url, "http://%s/v1/call/%s", addr, enc);
        snprintf(h_dl, sizeof h_dl, "Ms-Deadline-Ms: %lld", (long long)left);
        snprintf(h_sig, sizeof h_sig, "Ms-Signature: %s", sig ? sig : "");
        snprintf(h_inst, sizeof h_inst, "Ms-Instance: %s.%lld", id,
                 (long long)json_integer_value(json_object_get(in, "epoch")));
        snprintf(h_rid, sizeof h_rid, "Ms-Request-Id: %s", rid);
        const char *hdrs[] = {
            h_dl, h_inst, h_rid, "Content-Type: application/json", sig ? h_sig : NULL, NULL};
        msi_httpc_req req = {0};
        req.method = "POST";
        req.url = url;
        req.bearer = c->call_token;
        req.headers = hdrs;
        req.body = payload;
        req.body_len = plen;
        req.deadline_ms = deadline;
        req.no_resend = 1;
        msi_httpc_resp resp;
        msi_err err = {{0}};
        ms_status st = msi_httpc_do(&req, &resp, &err);
        if (st == MS_EUNAVAILABLE) {
            snprintf(last, sizeof last, "%s: %s", id, err.msg);
            continue; /* nothing was sent: the next instance */
        }
        if (st != MS_OK) {
            rc = msctl_fail(c, MSCTL_EFAIL, "%s: %s: %s", ms_status_name(st), service, err.msg);
            break;
        }
        msi_err perr = {{0}};
        res = resp.len ? msi_json_parse(resp.body, resp.len, &perr) : NULL;
        if (resp.status != 200) {
            rc = msctl_server_error(c, resp.status, res);
            break;
        }
        if (!json_is_object(res) || !json_object_get(res, "result")) {
            rc = msctl_fail(c, MSCTL_EFAIL, "MS_EPROTO: %s: the instance's answer has no result",
                            service);
            break;
        }
        if (c->json) {
            msctl_print_json(res);
        } else {
            char *s = json_dumps(json_object_get(res, "result"), JSON_COMPACT | JSON_ENCODE_ANY);
            printf("%s\n", s ? s : "?");
            free(s);
        }
        rc = MSCTL_OK;
        break;
    }
    if (rc == MSCTL_EUNREACHABLE)
        msctl_fail(c, rc, "MS_EUNAVAILABLE: %s: cannot connect to any instance (%s)", service,
                   last);
    free(dumped);
out:
    json_decref(args);
    json_decref(loc);
    json_decref(res);
    return rc;
}
