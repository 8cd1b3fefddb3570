/*
 * msctl.h: the helper layer msctl's subcommands share (as curl's tool_*.c share theirs).
 *
 * src/msctl is a program, the top layer (docs/design.md, "Layers"): it uses src/base,
 * src/net (the HTTP client) and the public API of libms, never src/lib's private headers.
 * Threading: one thread; a command runs its requests one after another.
 *
 * Design notes
 * - msctl uses only msd's HTTP API (docs/protocol.md) and the instances' call endpoint,
 *   through libms's HTTP client (httpc.h). One file per subcommand (cmd_*.c), each with
 *   its own --help; this file and common.c hold option parsing, locating msd, credentials,
 *   requests and output.
 * - Exit codes, for scripts: 0 success; 1 the request failed or msd answered an error;
 *   2 bad usage; 3 msd (or the instance, for `call`) cannot be reached.
 * - Messages: results on stdout; errors on stderr as one line
 *   "msctl: <subcommand>: <MS_CODE>: <message>" for an error answered by a server, or
 *   "msctl: <subcommand>: <message>" otherwise. --json prints the server's JSON instead
 *   of tables (errors too, on stdout, still with the exit codes above).
 */
#ifndef MSCTL_H
#define MSCTL_H

#include "base.h"
#include "httpc.h"

#include <jansson.h>
#include <stdio.h>

enum { MSCTL_OK = 0, MSCTL_EFAIL = 1, MSCTL_EUSAGE = 2, MSCTL_EUNREACHABLE = 3 };

typedef struct msctl {
    const char *cmd;     /* the subcommand, for messages */
    char *orchestrators; /* "host:port[,host:port]" */
    char *state_dir;     /* may be NULL when it cannot be determined */
    char *token_file;    /* --token-file */
    char *admin_token;   /* for msd requests (NULL: none found) */
    char *call_token;    /* for calls to instances */
    int json;            /* --json */
    int explicit_orch;   /* --orchestrator or MS_ORCHESTRATOR given */
    char addr[128];      /* the msd that answered last */
} msctl;

/* Takes the global options (--orchestrator, --state, --token-file, --json) out of argv
 * wherever they stand before a "--" (or, with stop_at_operand, before the first operand).
 * Returns the new argc, or -1 after printing a usage error. */
int msctl_take_globals(msctl *c, int argc, char **argv, int stop_at_operand);
/* Fills in the defaults (state dir, orchestrator, tokens) once the options are known. */
void msctl_resolve(msctl *c);
void msctl_free(msctl *c);

/* Whether argv[i] asks for help. */
int msctl_is_help(const char *a);

/*
 * Sends a request to msd (trying each orchestrator in turn while unreachable): method,
 * path ("/v1/services"), optional JSON body (borrowed) and extra headers. On an HTTP
 * answer returns its status in *status and the parsed body in *out (may be NULL). Returns
 * MSCTL_OK, or MSCTL_EUNREACHABLE after printing why. timeout_ms bounds the whole request.
 */
int msctl_request(msctl *c, const char *method, const char *path, json_t *body,
                  const char *const *headers, int timeout_ms, long *status, json_t **out);

/* Prints a server's error answer (or, with --json, the body) and returns MSCTL_EFAIL. */
int msctl_server_error(msctl *c, long status, json_t *body);
/* Prints "msctl: <cmd>: <message>" to stderr and returns code. */
int msctl_fail(msctl *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prints j (indented) on stdout. */
void msctl_print_json(const json_t *j);
/* Percent-encodes s for a URL path segment or query value into buf. */
const char *msctl_urlenc(const char *s, char *buf, size_t len);

/* Subcommands: argc/argv start at the subcommand's name. */
int msctl_cmd_status(msctl *c, int argc, char **argv);
int msctl_cmd_services(msctl *c, int argc, char **argv);
int msctl_cmd_events(msctl *c, int argc, char **argv);
int msctl_cmd_call(msctl *c, int argc, char **argv);
int msctl_cmd_scale(msctl *c, int argc, char **argv);
int msctl_cmd_deploy(msctl *c, int argc, char **argv);
int msctl_cmd_drain(msctl *c, int argc, char **argv);
int msctl_cmd_delete(msctl *c, int argc, char **argv);

#endif /* MSCTL_H */
