/*
 * err.c: error details (msi_err) and the HTTP status of each ms_status, both ways.
 *
 * Design notes
 * - MS_STATUS_LIST in <ms/ms.h> is the one list behind the HTTP codes; nothing here repeats
 *   it. The texts and names of statuses (ms_strerror, ms_status_name) are public API and stay
 *   in src/lib/status.c with the per-thread ms_last_error.
 */
#include "base.h"

#include <stdio.h>

int
msi_status_http(ms_status st)
{
    switch (st) {
#define X(name, num, http, text)                                                                   \
    case name:                                                                                     \
        return http;
        MS_STATUS_LIST(X)
#undef X
    }
    return 500;
}

ms_status
msi_status_of_http(int http)
{
#define X(name, num, code, text)                                                                   \
    if (code == http && code != 500 && name != MS_EINDOUBT)                                        \
        return name;
    MS_STATUS_LIST(X)
#undef X
    return MS_EPROTO;
}

ms_status
msi_errf(msi_err *err, ms_status st, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return st;
}
