/*
 * common.c: what msctl's subcommands share: global options, finding msd and the
 * credentials, requests, error output (contract: msctl.h).
 *
 * Design notes
 * - msd is found at --orchestrator, else $MS_ORCHESTRATOR (a list: tried in order while
 *   unreachable), else the address msd wrote to <state>/addr, else 127.0.0.1:4999.
 * - The token for msd is --token-file, else $MS_TOKEN, else $MS_TOKEN_FILE, else
 *   <state>/token (admin), else <state>/call-token. Calls to instances use <state>/call-token
 *   when readable (the narrower one; instances accept it or the admin token), else that same
 *   token. With no token at all and msd's unix socket in the state directory, requests go
 *   through the socket, where msd trusts its own uid.
 */
#include "msctl.h"
#include "statedir.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_ORCH "127.0.0.1:4999"

int
msctl_is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static int
set_opt(char **dst, const char *val)
{
    free(*dst);
    *dst = strdup(val);
    return *dst ? 0 : -1;
}

int
msctl_take_globals(msctl *c, int argc, char **argv, int stop_at_operand)
{
    static const char *const names[] = {"--orchestrator", "--state", "--token-file"};
    int out = 1;
    int i = 1;
    for (; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        if (stop_at_operand && a[0] != '-')
            break;
        if (strcmp(a, "--json") == 0) {
            c->json = 1;
            continue;
        }
        int matched = 0;
        for (int k = 0; k < 3; k++) {
            size_t n = strlen(names[k]);
            if (strncmp(a, names[k], n) != 0 || (a[n] != '\0' && a[n] != '='))
                continue;
            const char *val = a[n] == '=' ? a + n + 1 : NULL;
            if (!val) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "msctl: %s needs a value\n", names[k]);
                    return -1;
                }
                val = argv[++i];
            }
            char **dst = k == 0 ? &c->orchestrators : k == 1 ? &c->state_dir : &c->token_file;
            if (!*val || set_opt(dst, val) < 0) {
                fprintf(stderr, "msctl: %s: bad value\n", names[k]);
                return -1;
            }
            if (k == 0)
                c->explicit_orch = 1;
            matched = 1;
            break;
        }
        if (!matched)
            argv[out++] = a;
    }
    for (; i < argc; i++)
        argv[out++] = argv[i];
    argv[out] = NULL;
    return out;
}

void
msctl_resolve(msctl *c)
{
    if (!c->state_dir) {
        const char *s;
        char *dir = NULL;
        if ((s = getenv("MS_STATE_DIR")) && *s)
            dir = strdup(s);
        else if ((s = getenv("XDG_STATE_HOME")) && *s == '/') {
            if (asprintf(&dir, "%s/ms", s) < 0)
                dir = NULL;
        } else if ((s = getenv("HOME")) && *s) {
            if (asprintf(&dir, "%s/.local/state/ms", s) < 0)
                dir = NULL;
        }
        c->state_dir = dir;
    }
    char path[4096];
    if (!c->orchestrators) {
        const char *o = getenv("MS_ORCHESTRATOR");
        if (o && *o) {
            c->orchestrators = strdup(o);
            c->explicit_orch = 1;
        } else if (c->state_dir &&
                   snprintf(path, sizeof path, "%s/" MSI_STATE_ADDR, c->state_dir) > 0 &&
                   (c->orchestrators = msi_read_first_line(path))) {
            /* the address msd wrote */
        } else {
            c->orchestrators = strdup(DEFAULT_ORCH);
        }
    }
    if (c->token_file) {
        c->admin_token = msi_read_first_line(c->token_file);
        if (!c->admin_token)
            fprintf(stderr, "msctl: warning: cannot read token file %s: %s\n", c->token_file,
                    strerror(errno));
    } else if (getenv("MS_TOKEN") && *getenv("MS_TOKEN")) {
        c->admin_token = strdup(getenv("MS_TOKEN"));
    } else if (getenv("MS_TOKEN_FILE") && *getenv("MS_TOKEN_FILE")) {
        c->admin_token = msi_read_first_line(getenv("MS_TOKEN_FILE"));
    }
    if (!c->admin_token && c->state_dir) {
        snprintf(path, sizeof path, "%s/" MSI_STATE_TOKEN, c->state_dir);
        c->admin_token = msi_read_first_line(path);
        if (!c->admin_token) {
            snprintf(path, sizeof path, "%s/" MSI_STATE_CALL_TOKEN, c->state_dir);
            c->admin_token = msi_read_first_line(path);
        }
    }
    if (c->state_dir) {
        snprintf(path, sizeof path, "%s/" MSI_STATE_CALL_TOKEN, c->state_dir);
        c->call_token = msi_read_first_line(path);
    }
    if (!c->call_token && c->admin_token)
        c->call_token = strdup(c->admin_token);
}

void
msctl_free(msctl *c)
{
    free(c->orchestrators);
    free(c->state_dir);
    free(c->token_file);
    free(c->admin_token);
    free(c->call_token);
}

int
msctl_fail(msctl *c, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "msctl: %s%s%s\n", c->cmd ? c->cmd : "", c->cmd ? ": " : "", msg);
    return code;
}

void
msctl_print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (s) {
        printf("%s\n", s);
        free(s);
    }
}

int
msctl_server_error(msctl *c, long status, json_t *body)
{
    json_t *e = json_object_get(body, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (c->json && body) {
        msctl_print_json(body);
        return MSCTL_EFAIL;
    }
    if (code && msg)
        return msctl_fail(c, MSCTL_EFAIL, "%s: %s", code, msg);
    return msctl_fail(c, MSCTL_EFAIL, "HTTP %ld", status);
}

const char *
msctl_urlenc(const char *s, char *buf, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (; *s && k + 4 < len; s++) {
        unsigned char ch = (unsigned char)*s;
        if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            buf[k++] = (char)ch;
        } else {
            buf[k++] = '%';
            buf[k++] = hex[ch >> 4];
            buf[k++] = hex[ch & 15];
        }
    }
    buf[k] = '\0';
    return buf;
}

int
msctl_request(msctl *c, const char *method, const char *path, json_t *body,
              const char *const *headers, int timeout_ms, long *status, json_t **out)
{
    *out = NULL;
    *status = 0;
    char sock[4096];
    const char *unix_path = NULL;
    if (!c->admin_token && !c->explicit_orch && c->state_dir &&
        snprintf(sock, sizeof sock, "%s/" MSI_STATE_SOCK, c->state_dir) > 0 &&
        access(sock, F_OK) == 0)
        unix_path = sock;

    char *list = strdup(c->orchestrators ? c->orchestrators : DEFAULT_ORCH);
    if (!list)
        return msctl_fail(c, MSCTL_EFAIL, "out of memory");
    char last_err[600] = "";
    int rc = MSCTL_EUNREACHABLE;
    char *save = NULL;
    for (char *addr = list; addr; addr = save) {
        char *comma = strchr(addr, ',');
        save = comma ? comma + 1 : NULL;
        if (comma)
            *comma = '\0';
        while (*addr == ' ')
            addr++;
        if (!*addr)
            continue;
        char url[4600];
        snprintf(url, sizeof url, "http://%s%s", unix_path ? "localhost" : addr, path);
        msi_httpc_req req = {0};
        req.method = method;
        req.url = url;
        req.unix_path = unix_path;
        req.bearer = unix_path ? NULL : c->admin_token;
        req.headers = headers;
        req.deadline_ms = msi_now_ms() + timeout_ms;
        msi_httpc_resp resp;
        msi_err err = {{0}};
        ms_status st = msi_httpc_json(&req, body, &resp, out, &err);
        snprintf(c->addr, sizeof c->addr, "%s", unix_path ? "unix socket" : addr);
        if (st == MS_OK) {
            *status = resp.status;
            rc = MSCTL_OK;
            break;
        }
        snprintf(last_err, sizeof last_err, "%s", err.msg);
        if (st == MS_ETIMEDOUT) {
            rc = msctl_fail(c, MSCTL_EFAIL, "msd at %s did not answer within %d ms", c->addr,
                            timeout_ms);
            break;
        }
        if (st != MS_EUNAVAILABLE) {
            rc = msctl_fail(c, MSCTL_EFAIL, "request to msd at %s failed: %s", c->addr, err.msg);
            break;
        }
        if (unix_path)
            break;
    }
    if (rc == MSCTL_EUNREACHABLE)
        msctl_fail(c, MSCTL_EUNREACHABLE,
                   "cannot reach msd at %s: %s (is msd running? see "
                   "--orchestrator, MS_ORCHESTRATOR)",
                   unix_path ? sock : c->orchestrators, last_err);
    free(list);
    return rc;
}
