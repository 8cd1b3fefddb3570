/* prom.c: reading Prometheus text (prom.h). */
#include "prom.h"

#include <stdlib.h>
#include <string.h>

long long
msi_prom_value(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) != 0 || (p[n] != '{' && p[n] != ' '))
            continue;
        const char *v = p[n] == ' ' ? p + n : strchr(p + n, '}');
        if (!v || !(v = strchr(v, ' ')))
            return -1;
        return atoll(v + 1);
    }
    return -1;
}
