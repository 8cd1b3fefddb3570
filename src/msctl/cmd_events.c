/*
 * cmd_events.c: `msctl events`: msd's event log (spawns, deaths, back-off, crash loops,
 * scaling decisions), optionally followed as it grows.
 */
#include "msctl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char help[] =
    "usage: msctl events [--since SEQ] [--limit N] [-f|--follow] [--json]\n"
    "\n"
    "msd's events, oldest first: sequence number, time (UTC), type, service, instance and\n"
    "message. --since SEQ shows only later ones; --follow keeps printing new events\n"
    "(every second) until interrupted. --json prints one JSON object per event.\n";

static void
print_event(msctl *c, json_t *ev)
{
    if (c->json) {
        char *s = json_dumps(ev, JSON_COMPACT);
        if (s)
            printf("%s\n", s);
        free(s);
        return;
    }
    time_t t = (time_t)(json_integer_value(json_object_get(ev, "ts_ms")) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *svc = json_string_value(json_object_get(ev, "service"));
    const char *inst = json_string_value(json_object_get(ev, "instance"));
    printf("%6lld  %s  %-13s %-16s %-8s %s\n",
           (long long)json_integer_value(json_object_get(ev, "seq")), when,
           json_string_value(json_object_get(ev, "type")), svc && *svc ? svc : "-",
           inst && *inst ? inst : "-", json_string_value(json_object_get(ev, "message")));
}

int
msctl_cmd_events(msctl *c, int argc, char **argv)
{
    long long since = 0, limit = 1000;
    int follow = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (msctl_is_help(a)) {
            fputs(help, stdout);
            return MSCTL_OK;
        }
        if (strcmp(a, "-f") == 0 || strcmp(a, "--follow") == 0) {
            follow = 1;
            continue;
        }
        long long *dst = strcmp(a, "--since") == 0   ? &since
                         : strcmp(a, "--limit") == 0 ? &limit
                                                     : NULL;
        if (dst && i + 1 < argc) {
            char *end;
            *dst = strtoll(argv[++i], &end, 10);
            if (*end || *dst < 0 || end == argv[i]) {
                fprintf(stderr, "%s", help);
                return msctl_fail(c, MSCTL_EUSAGE, "%s: expected a number, got '%s'", a, argv[i]);
            }
            continue;
        }
        fprintf(stderr, "%s", help);
        return msctl_fail(c, MSCTL_EUSAGE, "unexpected argument '%s'", a);
    }
    if (limit < 1 || limit > 10000)
        return msctl_fail(c, MSCTL_EUSAGE, "--limit must be in [1, 10000]");
    int header = !c->json;
    for (;;) {
        char path[128];
        snprintf(path, sizeof path, "/v1/events?since=%lld&limit=%lld", since, limit);
        long status;
        json_t *body = NULL;
        int rc = msctl_request(c, "GET", path, NULL, NULL, 10000, &status, &body);
        if (rc != MSCTL_OK)
            return rc;
        if (status != 200) {
            rc = msctl_server_error(c, status, body);
            json_decref(body);
            return rc;
        }
        json_t *evs = json_object_get(body, "events");
        if (header) {
            printf("%6s  %-20s  %-13s %-16s %-8s %s\n", "SEQ", "TIME", "TYPE", "SERVICE",
                   "INSTANCE", "MESSAGE");
            header = 0;
        }
        size_t i;
        json_t *ev;
        json_array_foreach(evs, i, ev)
        {
            print_event(c, ev);
            long long seq = json_integer_value(json_object_get(ev, "seq"));
            if (seq > since)
                since = seq;
        }
        size_t n = json_array_size(evs);
        json_decref(body);
        fflush(stdout);
        if ((long long)n >= limit)
            continue; /* more to fetch at once */
        if (!follow)
            return MSCTL_OK;
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
}
