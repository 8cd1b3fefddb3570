/*
 * cmd_drain.c: `msctl drain INSTANCE`: retire one instance gracefully. It stops taking new
 * calls, finishes those in flight and exits; msd starts a replacement if the service still
 * wants that many instances.
 */
#include "msctl.h"

#include <string.h>

static const char help[] =
    "usage: msctl drain INSTANCE [--json]\n"
    "\n"
    "Drains INSTANCE (an id such as i-3, see 'msctl services'): no new calls, calls in\n"
    "flight finish within the service's grace period, then it exits and msd replaces it\n"
    "if the service still wants that many instances. Prints \"draining INSTANCE\".\n";

int
msctl_cmd_drain(msctl *c, int argc, char **argv)
{
    const char *id = NULL;
    for (int i = 1; i < argc; i++) {
        if (msctl_is_help(argv[i])) {
            fputs(help, stdout);
            return MSCTL_OK;
        }
        if (argv[i][0] == '-' || id) {
            fprintf(stderr, "%s", help);
            return msctl_fail(c, MSCTL_EUSAGE, "unexpected argument '%s'", argv[i]);
        }
        id = argv[i];
    }
    if (!id) {
        fprintf(stderr, "%s", help);
        return msctl_fail(c, MSCTL_EUSAGE, "which instance?");
    }
    char enc[200], path[300];
    snprintf(path, sizeof path, "/v1/instances/%s/drain", msctl_urlenc(id, enc, sizeof enc));
    long status;
    json_t *reply = NULL;
    json_t *body = json_object();
    int rc = msctl_request(c, "POST", path, body, NULL, 10000, &status, &reply);
    json_decref(body);
    if (rc != MSCTL_OK)
        return rc;
    if (status != 202 && status != 200)
        rc = msctl_server_error(c, status, reply);
    else if (c->json)
        msctl_print_json(reply);
    else
        printf("draining %s\n", id);
    json_decref(reply);
    return rc;
}
