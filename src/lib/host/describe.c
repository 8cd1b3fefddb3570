/*
 * describe.c: MS_DESCRIBE=1 (msi_describe_main): the JSON description of every
 * registered provider. Part of src/lib/host (host_int.h).
 */
#include "host_int.h"
#include "codec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- MS_DESCRIBE ---------------------------------------------------------------------- */

static const char *
lb_name(ms_lb lb)
{
    switch (lb) {
    case MS_LB_NONE:
        return "none";
    case MS_LB_ORCHESTRATOR:
        return "orchestrator";
    case MS_LB_CLIENT:
        return "client";
    default:
        return "default";
    }
}

static void
describe_one(ms__service *svc, void *arg)
{
    json_t *list = arg;
    msi_svc *rt = msi_svc_of(svc);
    if (!rt || !svc->invoke)
        return;
    const ms_options *o = &rt->opts;
    json_t *opts = json_pack("{s:b,s:b,s:i,s:i,s:i,s:f,s:f,s:i,s:s}", "idempotent",
                             (int)o->idempotent, "stateful", (int)o->stateful, "concurrency",
                             o->concurrency, "min_instances", o->min_instances, "max_instances",
                             o->max_instances, "scale_up_at", o->scale_up_at, "scale_down_at",
                             o->scale_down_at, "timeout_ms", o->timeout_ms, "lb", lb_name(o->lb));
    json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:o}", "name", rt->name, "signature",
                                          rt->sig, "sigtext", rt->sigtext, "options", opts));
}

int
msi_describe_main(void)
{
    json_t *list = json_array();
    msi_registry_each(describe_one, list);
    json_t *doc = json_pack("{s:i,s:o}", "ms", 1, "services", list);
    int rc = 1;
    if (doc && json_dumpf(doc, stdout, JSON_COMPACT | JSON_REAL_PRECISION(15)) == 0 &&
        fputc('\n', stdout) != EOF && fflush(stdout) == 0)
        rc = 0;
    json_decref(doc);
    return rc;
}
