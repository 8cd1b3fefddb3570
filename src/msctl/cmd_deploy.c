/*
 * cmd_deploy.c: `msctl deploy ./app [args...]`: register an executable with msd.
 *
 * Design notes
 * - The path is made absolute (realpath) here: msd resolves nothing relative to its own
 *   working directory. Everything after the executable is its argv, options included, so
 *   `msctl deploy ./app --port 1` passes --port 1 to the program.
 * - msd copies the file, so rebuilding ./app later changes nothing that runs until it is
 *   deployed again (as a new build).
 */
#include "msctl.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: msctl deploy [--json] EXECUTABLE [ARGS ...]\n"
    "\n"
    "Registers EXECUTABLE (with ARGS, given to every instance) with msd: msd checks it\n"
    "(a regular executable file nobody else can write), copies it under its state\n"
    "directory, asks it which services it provides (MS_DESCRIBE=1) and records them.\n"
    "Nothing starts until a service is called or scaled. Prints \"deployed BUILD PATH (new)\"\n"
    "(or \"(known)\" for a build already deployed), then \"service NAME SIGNATURE\" per\n"
    "service.\n";

int
msctl_cmd_deploy(msctl *c, int argc, char **argv)
{
    int first = 1;
    while (first < argc && argv[first][0] == '-') {
        if (msctl_is_help(argv[first])) {
            fputs(help, stdout);
            return MSCTL_OK;
        }
        if (strcmp(argv[first], "--") == 0) {
            first++;
            break;
        }
        fprintf(stderr, "%s", help);
        return msctl_fail(c, MSCTL_EUSAGE, "unknown option '%s'", argv[first]);
    }
    if (first >= argc) {
        fprintf(stderr, "%s", help);
        return msctl_fail(c, MSCTL_EUSAGE, "which executable?");
    }
    char abs[PATH_MAX];
    if (!realpath(argv[first], abs))
        return msctl_fail(c, MSCTL_EFAIL, "%s: %s", argv[first], strerror(errno));
    json_t *args = json_array();
    for (int i = first + 1; i < argc; i++)
        json_array_append_new(args, json_string(argv[i]));
    json_t *body = json_pack("{s:s, s:o}", "path", abs, "argv", args);
    long status;
    json_t *reply = NULL;
    int rc = msctl_request(c, "POST", "/v1/deployments", body, NULL, 60000, &status, &reply);
    json_decref(body);
    if (rc != MSCTL_OK)
        return rc;
    if (status != 200 && status != 201) {
        rc = msctl_server_error(c, status, reply);
    } else if (c->json) {
        msctl_print_json(reply);
    } else {
        printf("deployed %s %s (%s)\n", json_string_value(json_object_get(reply, "build")), abs,
               status == 201 ? "new" : "known");
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(reply, "services"), i, s)
            printf("service %s %s\n", json_string_value(json_object_get(s, "name")),
                   json_string_value(json_object_get(s, "signature")));
    }
    json_decref(reply);
    return rc;
}
