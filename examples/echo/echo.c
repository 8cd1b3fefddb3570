/*
 * echo.c: a chain of services calling each other. echo1 appends its name to the message and
 * passes it to echo2, which does the same and passes it to echo3, which returns it. main
 * prints what comes back:
 *
 *     $ ./echo hello
 *     hello -> echo1 -> echo2 -> echo3
 *
 * In zero mode (the default) these are three nested function calls; with MS_MODE=local each
 * service runs in instances of this same program that msd starts, and the code is unchanged.
 * Results are malloc'd strings: each caller frees what it gets back.
 */
#include <ms/ms.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Declared before use, as a header would: echo1 calls echo2 and echo2 calls echo3. */
MS_DECLARE(char *, echo2, (const char *, msg))
MS_DECLARE(char *, echo3, (const char *, msg))

/* "msg -> name", malloc'd, or NULL (reported with ms_fail) when out of memory. */
static char *
append(const char *msg, const char *name)
{
    size_t a = strlen(msg), b = strlen(name);
    char *s = malloc(a + 4 + b + 1);
    if (!s) {
        ms_fail(1, "out of memory");
        return NULL;
    }
    memcpy(s, msg, a);
    memcpy(s + a, " -> ", 4);
    memcpy(s + a + 4, name, b + 1);
    return s;
}

/* Appends `name` and hands the message on with `next`; the last link passes NULL. */
static char *
relay(const char *msg, const char *name, char *(*next)(const char *))
{
    char *mine = append(msg, name);
    if (!mine || !next)
        return mine;
    char *out = next(mine);
    free(mine);
    return out;
}

MS_SERVICE(char *, echo1, (const char *, msg)) { return relay(msg, "echo1", echo2); }
MS_SERVICE(char *, echo2, (const char *, msg)) { return relay(msg, "echo2", echo3); }
MS_SERVICE(char *, echo3, (const char *, msg)) { return relay(msg, "echo3", NULL); }

int
main(int argc, char **argv)
{
    ms_status st = ms_init(&argc, &argv); /* first: an instance serves here, never returns */
    if (st != MS_OK) {
        fprintf(stderr, "echo: %s: %s\n", ms_strerror(st), ms_last_error());
        return 1;
    }
    const char *msg = argc > 1 ? argv[1] : "hello";
    char *out = NULL;
    st = echo1_try(&out, msg);
    if (st != MS_OK) {
        fprintf(stderr, "echo: echo1 failed: %s: %s\n", ms_strerror(st), ms_last_error());
        ms_shutdown();
        return 1;
    }
    printf("%s\n", out);
    free(out);
    ms_shutdown();
    return 0;
}
