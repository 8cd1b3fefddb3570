/*
 * log.c: the library's logger: one line per message on stderr, "ms[pid] level: message".
 * msd has its own (msd_log in src/msd/util.c: ISO time stamps, one write(2) per line, named
 * levels), kept apart because its format is part of msd's interface (logs read by people and
 * by the tests).
 */
#include "base.h"

#include <stdio.h>
#include <unistd.h>

int msi_log_level = 1;

void
msi_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (level > msi_log_level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    int k = level < 0 ? 0 : level > 3 ? 3 : level;
    fprintf(stderr, "ms[%ld] %s: %s\n", (long)getpid(), names[k], line);
}
