/*
 * cmd_status.c: `msctl status`: one line per service: build, desired count, instances by
 * state, load, restarts, crash loop.
 */
#include "msctl.h"

#include <string.h>

static const char help[] =
    "usage: msctl status [--json]\n"
    "\n"
    "One line per service (and build): desired instances, instances by state, busy %\n"
    "(demand over the last 2 s), calls per second, restarts, whether it is in a crash\n"
    "loop, and its scaling: auto (msd's autoscaler) or pinned (by 'msctl scale').\n"
    "--json prints msd's GET /v1/services answer.\n";

static int
count(json_t *svc, const char *state)
{
    return (int)json_integer_value(json_object_get(json_object_get(svc, "by_state"), state));
}

int
msctl_cmd_status(msctl *c, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (msctl_is_help(argv[i])) {
            fputs(help, stdout);
            return MSCTL_OK;
        }
        fprintf(stderr, "%s", help);
        return msctl_fail(c, MSCTL_EUSAGE, "unexpected argument '%s'", argv[i]);
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
    if (c->json) {
        msctl_print_json(body);
        json_decref(body);
        return MSCTL_OK;
    }
    int w = 7;
    size_t i;
    json_t *s;
    json_array_foreach(list, i, s)
    {
        const char *name = json_string_value(json_object_get(s, "name"));
        if (name && (int)strlen(name) > w)
            w = (int)strlen(name);
    }
    printf("%-*s  %-12s  %7s  %5s  %8s  %7s  %8s  %4s  %5s  %7s  %8s  %9s  %s\n", w, "SERVICE",
           "BUILD", "DESIRED", "READY", "STARTING", "SUSPECT", "DRAINING", "DEAD", "BUSY",
           "CALLS/S", "RESTARTS", "CRASHLOOP", "SCALING");
    json_array_foreach(list, i, s)
    {
        const char *name = json_string_value(json_object_get(s, "name"));
        const char *build = json_string_value(json_object_get(s, "build"));
        printf("%-*s  %-12.12s  %7lld  %5d  %8d  %7d  %8d  %4d  %4.0f%%  %7.1f  %8lld  %9s  %s\n",
               w, name ? name : "?", build ? build : "?",
               (long long)json_integer_value(json_object_get(s, "desired")), count(s, "ready"),
               count(s, "starting"), count(s, "suspect"), count(s, "draining"), count(s, "dead"),
               100 * json_number_value(json_object_get(s, "demand")),
               json_number_value(json_object_get(s, "calls_per_s")),
               (long long)json_integer_value(json_object_get(s, "restarts")),
               json_is_true(json_object_get(s, "crashloop")) ? "yes" : "no",
               json_is_false(json_object_get(s, "autoscale")) ? "pinned" : "auto");
    }
    if (json_array_size(list) == 0)
        printf("(no services: deploy one with 'msctl deploy ./app')\n");
    json_decref(body);
    return MSCTL_OK;
}
