/*
 * cmd_delete.c: `msctl delete SERVICE`: stop every instance of a service (draining) and
 * hide it until it is deployed again.
 */
#include "msctl.h"

#include <string.h>

static const char help[] =
    "usage: msctl delete SERVICE [--json]\n"
    "\n"
    "Drains and stops every instance of SERVICE (all builds) and removes it from the\n"
    "listings; lookups answer 404 until a deployment provides it again. Prints\n"
    "\"deleted SERVICE\".\n";

int
msctl_cmd_delete(msctl *c, int argc, char **argv)
{
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (msctl_is_help(argv[i])) {
            fputs(help, stdout);
            return MSCTL_OK;
        }
        if (argv[i][0] == '-' || name) {
            fprintf(stderr, "%s", help);
            return msctl_fail(c, MSCTL_EUSAGE, "unexpected argument '%s'", argv[i]);
        }
        name = argv[i];
    }
    if (!name) {
        fprintf(stderr, "%s", help);
        return msctl_fail(c, MSCTL_EUSAGE, "which service?");
    }
    char enc[400], path[512];
    snprintf(path, sizeof path, "/v1/services/%s", msctl_urlenc(name, enc, sizeof enc));
    long status;
    json_t *reply = NULL;
    int rc = msctl_request(c, "DELETE", path, NULL, NULL, 10000, &status, &reply);
    if (rc != MSCTL_OK)
        return rc;
    if (status != 200)
        rc = msctl_server_error(c, status, reply);
    else if (c->json)
        msctl_print_json(reply);
    else
        printf("deleted %s\n", name);
    json_decref(reply);
    return rc;
}
