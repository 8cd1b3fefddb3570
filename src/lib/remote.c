/*
 * remote.c: TEMPORARY placeholder for local/docker modes until client.c and host.c land.
 * Every remote call fails with MS_EUNAVAILABLE and a message saying so.
 */
#include "msi.h"

#include <stdio.h>

ms_status
msi_call_remote(ms__service *svc, void *args, void *result)
{
    (void)args;
    (void)result;
    return msi_set_error(MS_EUNAVAILABLE, "%s: mode %s is not available in this build",
                         svc->name, ms_mode_name(msi_mode));
}

ms_status
msi_client_start(void)
{
    return MS_OK;
}

void
msi_client_stop(void)
{
}

int
msi_host_main(const char *service)
{
    fprintf(stderr, "ms: cannot serve %s: instance host not available in this build\n", service);
    return 2;
}
