/*
 * cmd_scale.c: `msctl scale SERVICE N|auto`: set how many instances of a service msd runs
 * (pinned), or hand the count back to msd's autoscaler.
 */
#include "msctl.h"

#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: msctl scale SERVICE N|auto [--build SHA256] [--json]\n"
    "\n"
    "Makes msd run N instances of SERVICE (of its newest deployment, or of --build). N may\n"
    "be 0 (stop them all, draining) up to the service's max_instances. N pins the count:\n"
    "the autoscaler leaves the service alone until 'msctl scale SERVICE auto' hands it back\n"
    "(from the current count, within min_instances..max_instances). Prints\n"
    "\"SERVICE: desired N (build BUILD), pinned\" or \", autoscaled\".\n";

int
msctl_cmd_scale(msctl *c, int argc, char **argv)
{
    const char *service = NULL, *count = NULL, *build = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (msctl_is_help(a)) {
            fputs(help, stdout);
            return MSCTL_OK;
        }
        if (strcmp(a, "--build") == 0 && i + 1 < argc) {
            build = argv[++i];
        } else if (a[0] != '-' && !service) {
            service = a;
        } else if (a[0] != '-' && !count) {
            count = a;
        } else {
            fprintf(stderr, "%s", help);
            return msctl_fail(c, MSCTL_EUSAGE, "unexpected argument '%s'", a);
        }
    }
    char *end = NULL;
    int is_auto = count && strcmp(count, "auto") == 0;
    long long n = count && !is_auto ? strtoll(count, &end, 10) : -1;
    if (!service || !count || (!is_auto && (*end || n < 0 || n > 1024))) {
        fprintf(stderr, "%s", help);
        return msctl_fail(c, MSCTL_EUSAGE, "expected SERVICE and a count in [0, 1024] or 'auto'");
    }
    json_t *body =
        is_auto ? json_pack("{s:b}", "auto", 1) : json_pack("{s:I}", "instances", (json_int_t)n);
    if (build)
        json_object_set_new(body, "build", json_string(build));
    char enc[400], path[512];
    snprintf(path, sizeof path, "/v1/services/%s/scale", msctl_urlenc(service, enc, sizeof enc));
    long status;
    json_t *reply = NULL;
    int rc = msctl_request(c, "PUT", path, body, NULL, 10000, &status, &reply);
    json_decref(body);
    if (rc != MSCTL_OK)
        return rc;
    if (status != 200) {
        rc = msctl_server_error(c, status, reply);
    } else if (c->json) {
        msctl_print_json(reply);
    } else {
        printf("%s: desired %lld (build %.12s), %s\n",
               json_string_value(json_object_get(reply, "service")),
               (long long)json_integer_value(json_object_get(reply, "desired")),
               json_string_value(json_object_get(reply, "build")),
               json_is_false(json_object_get(reply, "autoscale")) ? "pinned" : "autoscaled");
    }
    json_decref(reply);
    return rc;
}
