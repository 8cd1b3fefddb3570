/*
 * registry.c: the services linked into this process.
 *
 * Design notes
 * - Constructors emitted by MS_SERVICE call ms__register() before main() runs (or when a
 *   library is dlopen'd); destructors call ms__unregister() at exit or dlclose(), so an
 *   unloaded plugin leaves no dangling entry.
 * - The list keeps registration order. A name registered twice is a duplicate: ms_init()
 *   reports every such pair with both definitions (msi_registry_check); a duplicate that a
 *   library brings after ms_init is reported when it registers. Lookups return the first
 *   definition and never a duplicate.
 * - Threading: one mutex guards the list and the `next` links; `gen` (atomic) changes on
 *   every register/unregister so callers can cache a lookup and notice staleness cheaply.
 */
#include "codec.h"
#include "msi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static ms__service *head;
static _Atomic unsigned long gen = 1;

static ms_options
effective_options(const ms__service *svc)
{
    ms_options o = {MS__OPTION_DEFAULTS};
    if (svc->options && svc->options->ms__set)
        o = *svc->options;
    if (svc->flags & MS__F_METHOD) /* the store dedupes a method's writes (objects.md) */
        o.idempotent = true;
    return o;
}

msi_svc *
msi_svc_of(ms__service *svc)
{
    msi_svc *rt = __atomic_load_n((msi_svc **)&svc->rt, __ATOMIC_ACQUIRE);
    if (rt)
        return rt;
    rt = calloc(1, sizeof *rt);
    if (!rt)
        return NULL;
    rt->opts = effective_options(svc);
    if (rt->opts.ns && rt->opts.ns[0])
        snprintf(rt->name, sizeof rt->name, "%s.%s", rt->opts.ns, svc->name);
    else
        snprintf(rt->name, sizeof rt->name, "%s", svc->name);
    if (msi_signature(svc, &rt->sigtext, rt->sig) != MS_OK) {
        free(rt);
        return NULL;
    }
    void *expected = NULL;
    if (!__atomic_compare_exchange_n(&svc->rt, &expected, rt, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        free(rt->sigtext);
        free(rt);
        return expected;
    }
    return rt;
}

/* Names cross the wire in URLs: [A-Za-z0-9_.-], and must not have been truncated. */
static int
name_ok(const ms__service *svc, const msi_svc *rt)
{
    const char *ns = rt->opts.ns;
    size_t want = (ns && ns[0] ? strlen(ns) + 1 : 0) + strlen(svc->name);
    if (want != strlen(rt->name)) /* truncated to MSI_NAME_MAX */
        return 0;
    for (const char *p = rt->name; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", *p))
            return 0;
    return 1;
}

static void
svc_free_rt(ms__service *svc)
{
    msi_svc *rt = svc->rt;
    if (!rt)
        return;
    svc->rt = NULL;
    free(rt->sigtext);
    free(rt);
}

/* First provider named `name` other than `self`; lock held. */
static ms__service *
find_locked(const char *name, const ms__service *self)
{
    for (ms__service *s = head; s; s = s->next) {
        msi_svc *rt = msi_svc_of(s);
        if (s != self && rt && !rt->duplicate && !rt->invalid && strcmp(rt->name, name) == 0)
            return s;
    }
    return NULL;
}

void
ms__register(ms__service *svc)
{
    pthread_mutex_lock(&lock);
    ms__service **pp = &head;
    while (*pp)
        pp = &(*pp)->next;
    svc->next = NULL;
    *pp = svc;
    msi_svc *rt = msi_svc_of(svc);
    if (rt && !name_ok(svc, rt)) {
        rt->invalid = 1;
        msi_log(0,
                "%s:%d: service name '%s' is invalid (namespace and name: [A-Za-z0-9_.-], "
                "at most %d characters); the service is ignored",
                svc->file, svc->line, rt->name, MSI_NAME_MAX - 1);
    } else if (msi_initialized && rt) {
        ms__service *first = find_locked(rt->name, svc);
        if (first) {
            rt->duplicate = 1;
            msi_log(0, "duplicate service '%s': defined at %s:%d and %s:%d; the second is ignored",
                    rt->name, first->file, first->line, svc->file, svc->line);
        }
    }
    atomic_fetch_add(&gen, 1);
    pthread_mutex_unlock(&lock);
}

void
ms__unregister(ms__service *svc)
{
    pthread_mutex_lock(&lock);
    for (ms__service **pp = &head; *pp; pp = &(*pp)->next) {
        if (*pp == svc) {
            *pp = svc->next;
            break;
        }
    }
    svc->next = NULL;
    atomic_fetch_add(&gen, 1);
    svc_free_rt(svc);
    pthread_mutex_unlock(&lock);
}

unsigned long
msi_registry_gen(void)
{
    return atomic_load(&gen);
}

ms__service *
msi_registry_find(const char *fullname, unsigned long *genp)
{
    pthread_mutex_lock(&lock);
    ms__service *s = find_locked(fullname, NULL);
    if (genp)
        *genp = atomic_load(&gen);
    pthread_mutex_unlock(&lock);
    return s;
}

ms_status
msi_registry_check(void)
{
    ms_status st = MS_OK;
    pthread_mutex_lock(&lock);
    for (ms__service *a = head; a; a = a->next) {
        msi_svc *ra = msi_svc_of(a);
        if (!ra) {
            st = msi_set_error(MS_ENOMEM, "%s: out of memory", a->name);
            break;
        }
        if (ra->invalid) {
            st = msi_set_error(MS_EINVAL,
                               "%s:%d: service name '%s' is invalid (namespace and name: "
                               "[A-Za-z0-9_.-], at most %d characters)",
                               a->file, a->line, ra->name, MSI_NAME_MAX - 1);
            continue;
        }
        if (ra->duplicate)
            continue;
        for (ms__service *b = a->next; b; b = b->next) {
            msi_svc *rb = msi_svc_of(b);
            if (rb && !rb->duplicate && !rb->invalid && strcmp(ra->name, rb->name) == 0) {
                rb->duplicate = 1;
                st = msi_set_error(MS_EDUPLICATE,
                                   "duplicate service '%s': defined at %s:%d and at %s:%d",
                                   ra->name, a->file, a->line, b->file, b->line);
                msi_log(0, "%s", ms_last_error());
            }
        }
    }
    pthread_mutex_unlock(&lock);
    return st;
}

void
msi_registry_each(void (*fn)(ms__service *svc, void *arg), void *arg)
{
    pthread_mutex_lock(&lock);
    for (ms__service *s = head; s; s = s->next) {
        msi_svc *rt = msi_svc_of(s);
        if (rt && !rt->duplicate && !rt->invalid)
            fn(s, arg);
    }
    pthread_mutex_unlock(&lock);
}
