/*
 * file.c: reading small files: tokens and addresses of the state directory.
 *
 * Design notes
 * - One reader for the files that hold one word (a token, "host:port"), used by ms_init
 *   (MS_TOKEN_FILE), the client (<state>/addr, <state>/call-token), the instance host
 *   (MS_INST_TOKEN_FILE) and msctl; before, each had its own copy.
 */
#include "base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *
msi_read_first_line(const char *path)
{
    if (!path)
        return NULL;
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char buf[512];
    char *s = NULL;
    if (fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\r\n \t")] = '\0';
        if (buf[0])
            s = strdup(buf);
    }
    fclose(f);
    return s;
}
