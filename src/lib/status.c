/*
 * status.c: status texts and the per-thread error detail.
 *
 * Design notes
 * - MS_STATUS_LIST in <ms/ms.h> is the one list behind the enum, ms_strerror() and
 *   ms_status_name(); nothing here repeats it.
 * - The detail of the last failure lives in a thread-local buffer: ms_last_error() returns a
 *   pointer into it, valid until the thread's next call into ms.
 */
#include "msi.h"

#include <stdio.h>

static _Thread_local char last_error[MSI_ERR_MAX];
static _Thread_local int last_app_code;

const char *
ms_strerror(ms_status st)
{
    switch (st) {
#define X(name, num, http, text)                                                                   \
    case name:                                                                                     \
        return text;
        MS_STATUS_LIST(X)
#undef X
    }
    return "unknown status";
}

const char *
ms_status_name(ms_status st)
{
    switch (st) {
#define X(name, num, http, text)                                                                   \
    case name:                                                                                     \
        return #name;
        MS_STATUS_LIST(X)
#undef X
    }
    return "MS_E?";
}

const char *
ms_last_error(void)
{
    return last_error;
}

int
ms_last_app_code(void)
{
    return last_app_code;
}

void
msi_set_app_code(int code)
{
    last_app_code = code;
}

ms_status
msi_set_error(ms_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    if (st != MS_EAPP)
        last_app_code = 0;
    return st;
}
