/*
 * call.c: what a stub does with a call: run it here (zero, zero-checked, or a self-call in
 * an instance) or hand it to the client (local, docker).
 *
 * Design notes
 * - The zero-mode path is one branch and an indirect call, plus the per-thread context that
 *   ms_fail() and ms_deadline_left_ms() read; nothing is allocated.
 * - zero-checked runs every argument and result through encode, JSON text and decode, so a
 *   value that cannot cross the wire fails in tests exactly as it would in production.
 * - An MS_CLIENT stub (no implementation) finds its provider in the registry by name, cached
 *   until the registry generation changes (a library loaded or unloaded).
 * - Deadlines: a direct call (zero modes, self-calls in an instance) keeps the enclosing
 *   call's deadline, shortened by a pending ms_next_call_timeout_ms(); nothing enforces it
 *   but the body sees it. Remote calls get theirs in the client (client/engine.c). The
 *   pending setting is taken (and cleared) by every ms__call, whatever path the call then
 *   takes, so it never leaks to a later call.
 * - Trace context: a direct call keeps the enclosing call's (msi_ctx.trace is a pointer,
 *   copied, never the text); the host passes the one its request carried.
 * - Threading: everything here is reentrant; the context is thread-local.
 */
#include "codec.h"
#include "msi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

_Thread_local msi_ctx *msi_cur_ctx;
_Thread_local int64_t msi_next_timeout_ms;
_Thread_local const char *msi_next_rid, *msi_next_acked_below;
ms__service *msi_serving;

static ms_failure_handler failure_handler;
static void *failure_arg;

ms_status
msi_invoke_local(ms__service *svc, void *args, void *result, int64_t deadline_ms,
                 const msi_trace *trace)
{
    msi_scratch tmp; /* a result the caller does not want (result == NULL) */
    void *res = result;
    size_t rsize = svc->result ? svc->result->size : 0;
    if (!res && rsize) {
        res = rsize <= sizeof tmp ? (void *)&tmp : malloc(rsize);
        if (!res)
            return msi_set_error(MS_ENOMEM, "%s: out of memory", svc->name);
    }
    msi_ctx c;
    c.svc = svc;
    c.deadline_ms = deadline_ms;
    c.trace = trace ? trace : msi_cur_ctx ? msi_cur_ctx->trace : NULL;
    c.failed = 0;
    c.fail_status = MS_EAPP;
    c.rid = msi_next_rid;
    c.acked_below = msi_next_acked_below;
    msi_next_rid = msi_next_acked_below = NULL;
    c.prev = msi_cur_ctx;
    msi_cur_ctx = &c;
    svc->invoke(args, res ? res : (void *)&tmp);
    msi_cur_ctx = c.prev;

    ms_status st = MS_OK;
    if (c.failed) {
        if (rsize) {
            ms__free_value(svc->result, res);
            memset(res, 0, rsize);
        }
        msi_svc *rt = msi_svc_of(svc);
        st = c.fail_status;
        msi_set_error(st, "%s: %s", rt ? rt->name : svc->name, c.app_msg);
        if (st == MS_EAPP)
            msi_set_app_code(c.app_code);
    } else if (!result && rsize) {
        ms__free_value(svc->result, res);
    }
    if (res && res != result && res != (void *)&tmp)
        free(res);
    return st;
}

/* The implementation of svc in this process, or NULL. */
static ms__service *
provider_of(ms__service *svc, msi_svc *rt)
{
    if (svc->invoke)
        return svc;
    unsigned long g = msi_registry_gen();
    ms__service *p = __atomic_load_n(&rt->provider, __ATOMIC_ACQUIRE);
    if (p && __atomic_load_n(&rt->provider_gen, __ATOMIC_ACQUIRE) == g)
        return p;
    p = msi_registry_find(rt->name, &g);
    __atomic_store_n(&rt->provider_gen, g, __ATOMIC_RELEASE);
    __atomic_store_n(&rt->provider, p, __ATOMIC_RELEASE);
    return p;
}

/* One trip through the wire format: value -> JSON text -> value. */
static json_t *
through_text(json_t *j, msi_err *err)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    if (!text) {
        msi_errf(err, MS_ENOMEM, "cannot serialise");
        return NULL;
    }
    json_t *back = msi_json_parse(text, strlen(text), err);
    free(text);
    return back;
}

static ms_status
call_checked(ms__service *stub, ms__service *impl, void *args, void *result, const char *name,
             int64_t deadline_ms)
{
    msi_err err = {{0}};
    json_t *j = NULL;
    ms_status st = msi_encode_args(stub, args, &j, &err);
    if (st != MS_OK)
        return msi_set_error(st, "%s: %s", name, err.msg);
    if (!(j = through_text(j, &err)))
        return msi_set_error(MS_EBADARGS, "%s: %s", name, err.msg);

    void *iargs = calloc(1, impl->args_size);
    if (!iargs) {
        json_decref(j);
        return msi_set_error(MS_ENOMEM, "%s: out of memory", name);
    }
    st = msi_decode_args(impl, j, iargs, &err);
    json_decref(j);
    if (st != MS_OK) {
        free(iargs);
        return msi_set_error(st, "%s: %s", name, err.msg);
    }

    size_t rsize = impl->result ? impl->result->size : 0;
    msi_scratch tmp;
    void *ires = rsize > sizeof tmp ? calloc(1, rsize) : (void *)&tmp;
    if (!ires) {
        msi_free_args(impl, iargs);
        free(iargs);
        return msi_set_error(MS_ENOMEM, "%s: out of memory", name);
    }
    st = msi_invoke_local(impl, iargs, rsize ? ires : NULL, deadline_ms, NULL);
    msi_free_args(impl, iargs);
    free(iargs);
    if (st == MS_OK) {
        st = msi_encode_result(impl, rsize ? ires : NULL, &j, &err);
        if (rsize)
            ms__free_value(impl->result, ires);
        if (st == MS_OK && !(j = through_text(j, &err)))
            st = MS_EBADARGS;
        if (st == MS_OK) {
            st = result ? msi_decode_result(stub, j, result, &err) : MS_OK;
            json_decref(j);
        }
        if (st != MS_OK)
            msi_set_error(st, "%s: %s", name, err.msg);
    }
    if (ires != (void *)&tmp)
        free(ires);
    return st;
}

/* Deadline of a direct call: the enclosing one, shortened by a timeout (0: none). */
static int64_t
local_deadline(int64_t timeout_ms)
{
    int64_t dl = msi_cur_ctx ? msi_cur_ctx->deadline_ms : INT64_MAX;
    if (timeout_ms > 0) {
        int64_t now = msi_now_ms();
        int64_t mine = timeout_ms < INT64_MAX - now ? now + timeout_ms : INT64_MAX;
        if (mine < dl)
            dl = mine;
    }
    return dl;
}

static ms_status
call_slow(ms__service *svc, void *args, void *result, int64_t timeout_ms)
{
    msi_svc *rt = msi_svc_of(svc);
    if (!rt)
        return msi_set_error(MS_ENOMEM, "%s: out of memory", svc->name);

    if (msi_mode == MS_MODE_ZERO || msi_mode == MS_MODE_ZERO_CHECKED) {
        ms__service *impl = provider_of(svc, rt);
        if (!impl)
            return msi_set_error(MS_ENOTFOUND,
                                 "%s: no implementation in this process (mode %s); run it "
                                 "with MS_MODE=local or link the library that defines it",
                                 rt->name, ms_mode_name(msi_mode));
        msi_svc *irt = msi_svc_of(impl);
        if (!irt || strcmp(irt->sig, rt->sig) != 0)
            return msi_set_error(MS_ESIGNATURE, "%s: caller expects %s but %s:%d defines %s",
                                 rt->name, rt->sigtext, impl->file, impl->line,
                                 irt ? irt->sigtext : "?");
        if (msi_mode == MS_MODE_ZERO)
            return msi_invoke_local(impl, args, result, local_deadline(timeout_ms), NULL);
        return call_checked(svc, impl, args, result, rt->name, local_deadline(timeout_ms));
    }

    /* local / docker: a self-call inside the instance that serves it stays here. */
    if (msi_serving) {
        ms__service *impl = provider_of(svc, rt);
        if (impl == msi_serving)
            return msi_invoke_local(impl, args, result, local_deadline(timeout_ms), NULL);
    }
    return msi_remote->call(svc, args, result, timeout_ms);
}

ms_status
ms__call(ms__service *svc, void *args, void *result)
{
    ms_status st;
    int64_t timeout_ms = msi_next_timeout_ms;
    if (__builtin_expect(timeout_ms != 0, 0))
        msi_next_timeout_ms = 0;
    if (__builtin_expect(msi_mode == MS_MODE_ZERO && svc->invoke != NULL && !timeout_ms, 1))
        st = msi_invoke_local(svc, args, result, msi_cur_ctx ? msi_cur_ctx->deadline_ms : INT64_MAX,
                              NULL);
    else
        st = call_slow(svc, args, result, timeout_ms);
    if (st != MS_OK && result && svc->result)
        memset(result, 0, svc->result->size);
    return st;
}

ms_status
ms_next_call_timeout_ms(int64_t ms)
{
    if (ms < 0)
        return msi_set_error(MS_EINVAL, "ms_next_call_timeout_ms: negative timeout %lld",
                             (long long)ms);
    msi_next_timeout_ms = ms;
    return MS_OK;
}

static int
is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int
all_zero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0')
            return 0;
    return 1;
}

/* W3C Trace Context: "VV-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>". Version ff
 * is invalid; a later version may add fields after the flags ("-..."), version 00 may not. */
int
msi_trace_parse(const char *v, msi_trace *t)
{
    if (!v)
        return -1;
    size_t n = strlen(v);
    if (n < 55 || !is_lower_hex(v, 2) || v[2] != '-' || v[35] != '-' || v[52] != '-' ||
        !is_lower_hex(v + 3, 32) || !is_lower_hex(v + 36, 16) || !is_lower_hex(v + 53, 2))
        return -1;
    if (strncmp(v, "ff", 2) == 0 || all_zero(v + 3, 32) || all_zero(v + 36, 16))
        return -1;
    if (strncmp(v, "00", 2) == 0 ? n != 55 : n > 55 && v[55] != '-')
        return -1;
    memcpy(t->id, v + 3, 32);
    t->id[32] = '\0';
    memcpy(t->flags, v + 53, 2);
    t->flags[2] = '\0';
    return 0;
}

void
ms_set_failure_handler(ms_failure_handler fn, void *arg)
{
    failure_arg = arg;
    failure_handler = fn;
}

void
ms__failed(ms__service *svc, ms_status st)
{
    msi_svc *rt = msi_svc_of(svc);
    const char *name = rt ? rt->name : svc->name;
    if (failure_handler) {
        failure_handler(st, name, ms_last_error(), failure_arg);
        return;
    }
    (void)name;
    fprintf(stderr, "ms: %s: %s\n", ms_status_name(st), ms_last_error());
    abort();
}

void
ms_fail(int code, const char *fmt, ...)
{
    msi_ctx *c = msi_cur_ctx;
    if (!c)
        return;
    c->failed = 1;
    c->app_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->app_msg, sizeof c->app_msg, fmt, ap);
    va_end(ap);
}

void
msi_ctx_fail(ms_status st, const char *fmt, ...)
{
    msi_ctx *c = msi_cur_ctx;
    char msg[MSI_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!c) {
        msi_set_error(st, "%s", msg);
        return;
    }
    c->failed = 1;
    c->fail_status = st;
    c->app_code = 0;
    snprintf(c->app_msg, sizeof c->app_msg, "%s", msg);
}

int64_t
ms_deadline_left_ms(void)
{
    msi_ctx *c = msi_cur_ctx;
    if (!c || c->deadline_ms == INT64_MAX)
        return INT64_MAX;
    int64_t left = c->deadline_ms - msi_now_ms();
    return left > 0 ? left : 0;
}

bool
ms_cancelled(void)
{
    if (msi_shutting_down)
        return true;
    return ms_deadline_left_ms() == 0;
}
