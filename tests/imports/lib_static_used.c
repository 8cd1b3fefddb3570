/*
 * lib_static_used.c: services in a member of a static library (imp_static). The program
 * calls static_twice, which pulls this object, and with it both services' registration
 * constructors, into the link.
 */
#include "libsvc.h"

#include <stdlib.h>
#include <string.h>

MS_SERVICE(int64_t, static_twice, (int64_t, x)) { return 2 * x; }

MS_SERVICE(char *, static_tag, (const char *, s))
{
    size_t n = strlen(s);
    char *r = malloc(n + 3);
    if (!r) {
        ms_fail(1, "out of memory");
        return NULL;
    }
    r[0] = '[';
    memcpy(r + 1, s, n);
    r[n + 1] = ']';
    r[n + 2] = '\0';
    return r;
}
