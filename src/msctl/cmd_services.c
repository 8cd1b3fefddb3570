/*
 * cmd_services.c: `msctl services`: every service with its signature and options, and
 * every instance with its state, address, pid and counters.
 */
#include "msctl.h"

#include <string.h>

static const char help[] =
    "usage: msctl services [SERVICE] [--json]\n"
    "\n"
    "Every service (or only SERVICE): build, signature, load balancing, desired count, and\n"
    "each instance: id, epoch, state, address, pid, busy %, calls in flight, calls,\n"
    "restarts and its last error.\n";

int
msctl_cmd_services(msctl *c, int argc, char **argv)
{
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (msctl_is_help(argv[i])) {
            fputs(help, stdout);
            return MSCTL_OK;
        }
        if (argv[i][0] == '-' || only) {
            fprintf(stderr, "%s", help);
            return msctl_fail(c, MSCTL_EUSAGE, "unexpected argument '%s'", argv[i]);
        }
        only = argv[i];
    }
    long status;
    json_t *body = NULL;
    int rc = msctl_request(c, "GET", "/v1/services", NULL, NULL, 10000, &status, &body);
    if (rc != MSCTL_OK)
        return rc;
    if (status != 200) {
        rc = msctl_server_error(c, status, body);
        json_decref(body);
        return rc;
    }
    json_t *list = json_object_get(body, "services");
    if (only) {
        json_t *keep = json_array();
        size_t i;
        json_t *s;
        json_array_foreach(list, i, s)
        {
            const char *name = json_string_value(json_object_get(s, "name"));
            if (name && strcmp(name, only) == 0)
                json_array_append(keep, s);
        }
        json_object_set_new(body, "services", keep);
        list = keep;
        if (json_array_size(keep) == 0) {
            json_decref(body);
            return msctl_fail(c, MSCTL_EFAIL, "MS_ENOTFOUND: %s: unknown service", only);
        }
    }
    if (c->json) {
        msctl_print_json(body);
        json_decref(body);
        return MSCTL_OK;
    }
    size_t i;
    json_t *s;
    json_array_foreach(list, i, s)
    {
        printf("%s%s  build %s\n", i ? "\n" : "", json_string_value(json_object_get(s, "name")),
               json_string_value(json_object_get(s, "build")));
        printf("  signature %s  %s\n", json_string_value(json_object_get(s, "signature")),
               json_string_value(json_object_get(s, "sigtext")));
        printf("  lb %s  desired %lld  min %lld  max %lld%s%s\n",
               json_string_value(json_object_get(s, "lb")),
               (long long)json_integer_value(json_object_get(s, "desired")),
               (long long)json_integer_value(json_object_get(s, "min_instances")),
               (long long)json_integer_value(json_object_get(s, "max_instances")),
               json_is_true(json_object_get(s, "crashloop")) ? "  CRASH LOOP" : "",
               json_is_true(json_object_get(s, "newest")) ? "" : "  (older build)");
        json_t *insts = json_object_get(s, "instances");
        if (json_array_size(insts) == 0) {
            printf("  no instances\n");
            continue;
        }
        printf("  %-10s %5s  %-9s %-21s %7s %5s %8s %9s %8s  %s\n", "INSTANCE", "EPOCH", "STATE",
               "ADDRESS", "PID", "BUSY", "INFLIGHT", "CALLS", "RESTARTS", "LAST ERROR");
        size_t k;
        json_t *in;
        json_array_foreach(insts, k, in)
        {
            const char *st = json_string_value(json_object_get(in, "state"));
            const char *err = json_string_value(json_object_get(in, "last_error"));
            printf("  %-10s %5lld  %-9s %-21s %7lld %4.0f%% %8lld %9lld %8lld  %s%s\n",
                   json_string_value(json_object_get(in, "id")),
                   (long long)json_integer_value(json_object_get(in, "epoch")), st ? st : "?",
                   json_string_value(json_object_get(in, "addr")),
                   (long long)json_integer_value(json_object_get(in, "pid")),
                   100 * json_number_value(json_object_get(in, "busy")),
                   (long long)json_integer_value(json_object_get(in, "inflight")),
                   (long long)json_integer_value(json_object_get(in, "calls")),
                   (long long)json_integer_value(json_object_get(in, "restarts")),
                   json_is_true(json_object_get(in, "retiring")) ? "(retiring) " : "",
                   err ? err : "");
        }
    }
    if (json_array_size(list) == 0)
        printf("(no services: deploy one with 'msctl deploy ./app')\n");
    json_decref(body);
    return MSCTL_OK;
}
