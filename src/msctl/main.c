/*
 * main.c: msctl, the command line over msd's HTTP API: dispatch to the subcommands.
 *
 * Design notes
 * - `msctl [global options] SUBCOMMAND [options] [arguments]`; the global options may also
 *   follow the subcommand (except after `deploy`'s executable, whose arguments are the
 *   program's own). Each subcommand lives in its own cmd_*.c and answers --help.
 */
#include "msctl.h"

#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: msctl [--orchestrator HOST:PORT] [--state DIR] [--token-file FILE] [--json]\n"
    "             SUBCOMMAND [options] [arguments]\n"
    "\n"
    "subcommands:\n"
    "  status                   services with their instances by state, load, restarts\n"
    "  services                 every service and instance in detail\n"
    "  events [--since N] [-f]  what msd did and why\n"
    "  call SERVICE [k=v ...]   call a service (values are JSON if they parse, else strings)\n"
    "  scale SERVICE N          run N instances of SERVICE\n"
    "  deploy ./app [args ...]  register an executable and the services it provides\n"
    "  drain INSTANCE           retire one instance gracefully (it is replaced)\n"
    "  delete SERVICE           stop every instance of SERVICE and forget it\n"
    "\n"
    "global options:\n"
    "  --orchestrator HOST:PORT msd's address (default $MS_ORCHESTRATOR, else <state>/addr,\n"
    "                           else 127.0.0.1:4999)\n"
    "  --state DIR              msd's state directory, for its address and tokens (default\n"
    "                           $MS_STATE_DIR, else $XDG_STATE_HOME/ms, else\n"
    "                           ~/.local/state/ms)\n"
    "  --token-file FILE        token to present (default $MS_TOKEN, $MS_TOKEN_FILE, else\n"
    "                           <state>/token)\n"
    "  --json                   print JSON instead of tables\n"
    "\n"
    "exit status: 0 ok, 1 the request failed, 2 usage error, 3 msd cannot be reached.\n"
    "'msctl SUBCOMMAND --help' describes each subcommand.\n";

static const struct {
    const char *name;
    int (*fn)(msctl *c, int argc, char **argv);
} cmds[] = {
    {"status", msctl_cmd_status}, {"services", msctl_cmd_services}, {"events", msctl_cmd_events},
    {"call", msctl_cmd_call},     {"scale", msctl_cmd_scale},       {"deploy", msctl_cmd_deploy},
    {"drain", msctl_cmd_drain},   {"delete", msctl_cmd_delete},
};

int
main(int argc, char **argv)
{
    msctl c;
    memset(&c, 0, sizeof c);
    int rc = MSCTL_EUSAGE;
    argc = msctl_take_globals(&c, argc, argv, 1);
    if (argc < 0)
        goto out;
    if (argc < 2) {
        fputs(usage_text, stderr);
        goto out;
    }
    if (msctl_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        fputs(usage_text, stdout);
        rc = MSCTL_OK;
        goto out;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("msctl %s\n", MS_VERSION_STRING);
        rc = MSCTL_OK;
        goto out;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        if (strcmp(argv[1], cmds[i].name) != 0)
            continue;
        c.cmd = cmds[i].name;
        int n = msctl_take_globals(&c, argc - 1, argv + 1, strcmp(c.cmd, "deploy") == 0);
        if (n < 0)
            goto out;
        msctl_resolve(&c);
        rc = cmds[i].fn(&c, n, argv + 1);
        msi_httpc_thread_release();
        goto out;
    }
    fprintf(stderr, "msctl: unknown subcommand '%s'\nTry 'msctl --help'.\n", argv[1]);
out:
    msctl_free(&c);
    return rc;
}
