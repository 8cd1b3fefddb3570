/*
 * ms.h: turn plain C functions into network services with one declaration.
 *
 *     MS_DECLARE(int64_t, add, (int64_t, a), (int64_t, b))            // in a header
 *     MS_SERVICE(int64_t, add, (int64_t, a), (int64_t, b)) { return a + b; }
 *     MS_OPTIONS(add, .idempotent = true)
 *
 *     int main(int argc, char **argv) {
 *         ms_init(&argc, &argv);   // first thing: an instance serves here and never returns
 *         int64_t s = add(2, 3);   // a local call, or a call to one of N instances
 *         ms_shutdown();
 *     }
 *
 * Threading: the stubs (`add`, `add_try`) and every function below may be called from any
 * thread, except where stated. ms_init and ms_shutdown: main thread only, once each.
 *
 * Ownership: arguments stay the caller's (a service never keeps a pointer to one after it
 * returns). Results are the caller's: `char *` with free(), `ms_bytes` with ms_bytes_free(),
 * `json_t *` with json_decref(), `ms_ref` with ms_ref_free(), an MS_STRUCT `struct x` with
 * x_free_fields(). A `const char *` result is refused at compile time: nobody would own it.
 *
 * The full reference is docs/api.md.
 */
#ifndef MS_MS_H
#define MS_MS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* jansson's JSON value, declared here so that ms.h does not include <jansson.h>: a program
 * that takes or returns a json_t * includes <jansson.h> itself to work with it (and links
 * jansson: pkg-config --cflags --libs ms jansson). jansson.h defines the same typedef; a
 * repeated typedef of the same type is valid C11 and C++. */
typedef struct json_t json_t;

#include <ms/ms_pp.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MS_VERSION_MAJOR 0
#define MS_VERSION_MINOR 1
#define MS_VERSION_PATCH 0
#define MS_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------------------------------
 * Status codes. One list makes the enum, ms_strerror() and ms_status_name(). Numbers are
 * stable: new codes are only appended. The HTTP status is what an instance or msd answers.
 * ---------------------------------------------------------------------------------------- */
#define MS_STATUS_LIST(X)                                                                          \
    X(MS_OK, 0, 200, "success")                                                                    \
    X(MS_EBADARGS, 1, 400, "bad arguments")                                                        \
    X(MS_EUNAVAILABLE, 2, 503, "service unavailable")                                              \
    X(MS_ETIMEDOUT, 3, 504, "deadline exceeded")                                                   \
    X(MS_EINDOUBT, 4, 502, "outcome unknown: the call may or may not have run")                    \
    X(MS_EAPP, 5, 500, "the service reported an error")                                            \
    X(MS_ETXN_LOST, 6, 409, "transaction lost: its instance is gone")                              \
    X(MS_ENOTFOUND, 7, 404, "unknown service")                                                     \
    X(MS_ESIGNATURE, 8, 412, "signature mismatch between caller and service")                      \
    X(MS_EAUTH, 9, 401, "missing or bad credentials")                                              \
    X(MS_EFORBIDDEN, 10, 403, "not allowed")                                                       \
    X(MS_ETOOBIG, 11, 413, "request too large")                                                    \
    X(MS_EOVERLOADED, 12, 429, "queue full, try again later")                                      \
    X(MS_EDRAINING, 13, 503, "instance is draining")                                               \
    X(MS_EPROTO, 14, 502, "protocol error: malformed request or response")                         \
    X(MS_EDUPLICATE, 15, 409, "duplicate service name")                                            \
    X(MS_ENOMEM, 16, 500, "out of memory")                                                         \
    X(MS_EINVAL, 17, 400, "invalid use of the API")                                                \
    X(MS_EIO, 18, 500, "system error")                                                             \
    X(MS_EREUSED, 19, 422, "request id reused with a different body")                              \
    X(MS_EWRONGINSTANCE, 20, 421, "request meant for another instance")                            \
    X(MS_ECONFLICT, 21, 412, "version conflict: the object changed (If-Match failed)")

typedef enum ms_status {
#define MS__STATUS_ENUM(name, num, http, text) name = num,
    MS_STATUS_LIST(MS__STATUS_ENUM)
#undef MS__STATUS_ENUM
} ms_status;

/* Text of a status ("bad arguments"); never NULL, also for unknown values. */
const char *ms_strerror(ms_status st);
/* Name of a status ("MS_EBADARGS"); never NULL. */
const char *ms_status_name(ms_status st);

/*
 * Detail of the calling thread's last failed call: names the service, the instance and the
 * cause, e.g. "add: argument 'b': 3000000000 does not fit int32". It always starts with
 * the service's full name. Overwritten by the thread's next failure. Never NULL ("" when
 * nothing failed yet).
 */
const char *ms_last_error(void);
/* The code a service passed to ms_fail(), for the calling thread's last MS_EAPP; else 0. */
int ms_last_app_code(void);

/* ------------------------------------------------------------------------------------------
 * Values that cross the wire besides the C scalars and strings.
 * ---------------------------------------------------------------------------------------- */

/* Binary data (base64 on the wire). As an argument it is borrowed; as a result the caller
 * owns `data` and releases it with ms_bytes_free(). */
typedef struct ms_bytes {
    uint8_t *data; /* public */
    size_t len;    /* public */
} ms_bytes;
/* Frees b->data and zeroes *b. Accepts NULL. */
void ms_bytes_free(ms_bytes *b);

/* A reference to an object in the object store; its text form is a URI
 * "ms://objects/{ns}/{collection}/{id}". As a result the caller owns `uri`. */
typedef struct ms_ref {
    char *uri; /* public */
} ms_ref;
/* Frees r->uri and zeroes *r. Accepts NULL. */
void ms_ref_free(ms_ref *r);

/* ------------------------------------------------------------------------------------------
 * Objects (docs/objects.md): JSON objects in msd's object store, named by an ms_ref
 * "ms://objects/{ns}/{collection}/{id}" (names: 1 to 128 of [A-Za-z0-9_.-], not . or ..).
 * They need msd: local or docker mode after ms_init (in the zero modes, or before ms_init:
 * MS_EUNAVAILABLE). Each is one request to msd within min(10 s, the enclosing call's
 * deadline), with the call token. A missing object is MS_ENOTFOUND; an if_match that is not
 * the object's current ETag is MS_ECONFLICT (nothing written). An ETag is an opaque string
 * that changes on every write. Values must be JSON objects (else MS_EBADARGS). Any thread.
 * Ownership: value and if_match are borrowed; *out, *value and *etag are the caller's
 * (ms_ref_free, json_decref, free) and are set only on MS_OK.
 * ---------------------------------------------------------------------------------------- */

/* Stores a new object in ns/collection; *out gets its reference. */
ms_status ms_obj_create(ms_ref *out, const char *ns, const char *collection, const json_t *value);
/* The object's value and, when etag is not NULL, its ETag. */
ms_status ms_obj_get(const ms_ref *ref, json_t **value, char **etag);
/* Replaces the object's value: only if its ETag is if_match (NULL: unconditionally, and an
 * absent object is created). *etag (may be NULL) gets the new ETag. */
ms_status ms_obj_put(const ms_ref *ref, const json_t *value, const char *if_match, char **etag);
/* Deletes the object: only if its ETag is if_match (NULL: unconditionally). */
ms_status ms_obj_delete(const ms_ref *ref, const char *if_match);

/* ------------------------------------------------------------------------------------------
 * Service options: MS_OPTIONS(add, .idempotent = true, .max_instances = 4)
 * ---------------------------------------------------------------------------------------- */
typedef enum ms_lb {
    MS_LB_DEFAULT = 0,  /* msd's setting (client round-robin unless configured) */
    MS_LB_NONE,         /* always the first ready instance */
    MS_LB_ORCHESTRATOR, /* msd picks one instance per lookup */
    MS_LB_CLIENT,       /* the client gets every ready instance and round-robins */
} ms_lb;

typedef struct ms_options {
    bool idempotent;      /* safe to run twice: sent calls may be retried elsewhere (false) */
    bool stateful;        /* transactions, sticky routing, quiesce (false) */
    int concurrency;      /* calls in flight per instance (1) */
    int min_instances;    /* (1) */
    int max_instances;    /* (8) */
    double scale_up_at;   /* demand above which instances are added (0.50) */
    double scale_down_at; /* demand below which one is removed (0.30) */
    int timeout_ms;       /* default deadline of a call (10000) */
    const char *ns;       /* namespace: the service is then known as "ns.name" (none) */
    ms_lb lb;             /* load balancing (MS_LB_DEFAULT) */
    int ms__set;          /* private: 1 when written by MS_OPTIONS */
} ms_options;

#define MS__OPTION_DEFAULTS                                                                        \
    .concurrency = 1, .min_instances = 1, .max_instances = 8, .scale_up_at = 0.50,                 \
    .scale_down_at = 0.30, .timeout_ms = 10000, .ms__set = 1

/* ------------------------------------------------------------------------------------------
 * Process-wide set-up.
 * ---------------------------------------------------------------------------------------- */

/*
 * First thing main() does. Reads MS_MODE, MS_ORCHESTRATOR, MS_TOKEN(_FILE), MS_LOG and the
 * options --ms-mode=M, --ms-orchestrator=LIST, --ms-log=LEVEL (which it removes from argv;
 * argc/argv may be NULL). Checks the registry: two services of one name are reported, both
 * definitions named, and MS_EDUPLICATE returned. If the process was started as an instance
 * (MS_SERVE set), it serves and exits without returning. Main thread only; a second call
 * returns MS_OK and does nothing.
 */
ms_status ms_init(int *argc, char ***argv);

/* Drains in-flight calls and releases everything ms_init acquired. Main thread only. Safe
 * to call without ms_init and more than once. */
void ms_shutdown(void);

typedef enum ms_mode {
    MS_MODE_ZERO = 0,     /* every call is a direct function call */
    MS_MODE_ZERO_CHECKED, /* in-process, through the full encode/decode path */
    MS_MODE_LOCAL,        /* instances are subprocesses started by msd */
    MS_MODE_DOCKER,       /* instances are containers started by msd */
} ms_mode;

/* The mode in force (MS_MODE_ZERO before ms_init). */
ms_mode ms_current_mode(void);
/* "zero", "zero-checked", "local", "docker". */
const char *ms_mode_name(ms_mode m);

/*
 * Called by a transparent stub (`add(2, 3)`) whose call failed, on the calling thread. The
 * default prints "ms: <status name>: <detail>" to stderr and aborts, like an uncaught
 * exception. If a handler returns, the stub returns a zero value. NULL restores the default.
 * Set it before calling services from several threads.
 */
typedef void (*ms_failure_handler)(ms_status st, const char *service, const char *detail,
                                   void *arg);
void ms_set_failure_handler(ms_failure_handler fn, void *arg);

/*
 * Deadline of the calling thread's next call: the next stub (`name()` or `name_try()`) this
 * thread calls, whichever service it is, gets `ms` milliseconds from when it starts instead
 * of its service's timeout_ms. The setting is used by that one call and then forgotten;
 * 0 forgets a pending one. Inside a service body the call still gets no more than what is
 * left of the enclosing call's deadline. In local and docker modes the deadline bounds the
 * whole call (retries included) and travels to the instance (docs/calls.md); in the zero
 * modes nothing interrupts the body, but it sees the deadline (ms_deadline_left_ms,
 * ms_cancelled). Returns MS_EINVAL (and changes nothing) if ms < 0. Per thread.
 *
 *     ms_next_call_timeout_ms(200);
 *     st = add_try(&sum, 2, 3);         // MS_ETIMEDOUT if no answer within 200 ms
 */
ms_status ms_next_call_timeout_ms(int64_t ms);

/* ------------------------------------------------------------------------------------------
 * Inside a service body.
 * ---------------------------------------------------------------------------------------- */

/*
 * Report an application error: the caller gets MS_EAPP, ms_last_app_code() == code and the
 * formatted message in ms_last_error(). The service should return right after (its return
 * value is discarded). Outside a service body it does nothing.
 */
void ms_fail(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/*
 * Inside an MS_METHOD body: the object's current value (a JSON object), to read and change in
 * place; what it holds when the body returns is stored. Borrowed: valid until the body
 * returns (do not json_decref it, nor keep it). NULL outside a method body. The body may run
 * more than once per call (docs/objects.md, "Methods").
 */
json_t *ms_self(void);

/* Milliseconds left before the current call's deadline (0 when passed); INT64_MAX when the
 * current call has none (a direct call in zero mode without ms_next_call_timeout_ms, or
 * outside a service). */
int64_t ms_deadline_left_ms(void);
/* True when the current call's deadline has passed or its instance is shutting down. */
bool ms_cancelled(void);

/* ------------------------------------------------------------------------------------------
 * Private: type and service descriptors the macros emit. Not part of the API.
 * ---------------------------------------------------------------------------------------- */
typedef enum ms__kind {
    MS__K_BOOL,
    MS__K_INT,  /* signed integer of `size` bytes */
    MS__K_UINT, /* unsigned integer of `size` bytes */
    MS__K_FLOAT,
    MS__K_DOUBLE,
    MS__K_STRING,  /* char *: UTF-8, no NUL; results malloc'd */
    MS__K_CSTRING, /* const char *: as STRING, parameters only */
    MS__K_BYTES,   /* ms_bytes */
    MS__K_JSON,    /* json_t * */
    MS__K_REF,     /* ms_ref */
    MS__K_STRUCT,  /* MS_STRUCT: `fields` */
} ms__kind;

struct ms__type;
typedef struct ms__field {
    const char *name;
    size_t offset;
    const struct ms__type *type;
} ms__field;

typedef struct ms__type {
    ms__kind kind;
    unsigned size;           /* sizeof the C type */
    const char *name;        /* "int64", "string", or the struct's tag */
    unsigned nfields;        /* MS__K_STRUCT only */
    const ms__field *fields; /* MS__K_STRUCT only */
} ms__type;

typedef struct ms__service {
    const char *name; /* as declared, without namespace */
    const char *file; /* where MS_SERVICE / MS_CLIENT stands */
    int line;
    const ms__type *result; /* NULL for void */
    unsigned nparams;
    const ms__field *params; /* offsets into the argument struct */
    size_t args_size;
    void (*invoke)(void *args, void *result); /* NULL for MS_CLIENT */
    const ms_options *options;                /* ms__set == 0: defaults */
    unsigned flags;                           /* MS__F_METHOD: declared by MS_METHOD */
    /* Owned by libms, guarded by its registry lock: */
    struct ms__service *next;
    void *rt;
} ms__service;

extern const ms__type ms__t_bool, ms__t_char, ms__t_schar, ms__t_uchar, ms__t_short, ms__t_ushort,
    ms__t_int, ms__t_uint, ms__t_long, ms__t_ulong, ms__t_llong, ms__t_ullong, ms__t_float,
    ms__t_double, ms__t_string, ms__t_cstring, ms__t_bytes, ms__t_json, ms__t_ref;

#define MS__F_METHOD 1u

void ms__register(ms__service *svc);
void ms__unregister(ms__service *svc);
/* Runs a call: `args` points to the argument struct, `result` to the result (NULL allowed:
 * the result is then released). On failure *result is zeroed. */
ms_status ms__call(ms__service *svc, void *args, void *result);
void ms__failed(ms__service *svc, ms_status st);
void ms__free_value(const ms__type *t, void *value);
/* The body of an MS_METHOD service: load the object named by the ms_ref at the start of
 * args, run `body` with ms_self() set, store with If-Match and the call's request id, again
 * on a conflict (docs/objects.md, "Methods"). Failures are the call's (through its
 * context); `result` is zeroed then. */
void ms__method_run(ms__service *svc, void *args, void (*body)(void *args, void *result),
                    void *result);

#ifdef __cplusplus
}
#define MS__EXTERN_C_BEGIN extern "C" {
#define MS__EXTERN_C_END }
#else
#define MS__EXTERN_C_BEGIN
#define MS__EXTERN_C_END
#endif

#if defined(__GNUC__)
#define MS__UNUSED __attribute__((unused))
#else
#define MS__UNUSED
#endif

/* ------------------------------------------------------------------------------------------
 * The declaration macros.
 * ---------------------------------------------------------------------------------------- */

/*
 * MS_DECLARE(R, name, (T1, a1), ...): prototypes of `R name(T1 a1, ...)` and
 * `ms_status name_try(R *result, T1 a1, ...)` (for void R: `name_try(T1 a1, ...)`), with C
 * linkage. 0 to 8 parameters. Usable from C and C++.
 */
#define MS_DECLARE(...)                                                                            \
    MS__APPLY(MS__DECLARE, MS__RT(__VA_ARGS__), MS__NAME(__VA_ARGS__), __VA_ARGS__)
#define MS__DECLARE(R, N, ...)                                                                     \
    MS__EXTERN_C_BEGIN                                                                             \
    MS__IF(MS__IS_VOID(R))(MS__DECL_VOID, MS__DECL_VAL)(R, N, __VA_ARGS__)MS__EXTERN_C_END
#define MS__DECL_VAL(R, N, ...)                                                                    \
    R N(MS__PLIST(__VA_ARGS__));                                                                   \
    ms_status N##_try(R *ms__result MS__PLIST_AFTER(__VA_ARGS__));
#define MS__DECL_VOID(R, N, ...)                                                                   \
    void N(MS__PLIST(__VA_ARGS__));                                                                \
    ms_status N##_try(MS__PLIST(__VA_ARGS__));

#ifndef __cplusplus

/* Type descriptor of a C type: scalars by _Generic, `struct x` by MS_STRUCT's descriptor. */
#define MS__TYPE(T) MS__CAT_T(MS__TYPE_, MS__IS_STRUCT(T))(T)
#define MS__TYPE_1(T) &MS__CAT_T(ms__type_, MS__STRUCT_TAG(T))
#define MS__TYPE_0(T) MS__SCALAR_TYPE(T)
/* The result's descriptor: NULL for void. (Own CAT macros: no expansion nests in itself.) */
#define MS__RTYPE(R) MS__CAT_R(MS__RTYPE_, MS__IS_VOID(R))(R)
#define MS__RTYPE_1(R) NULL
#define MS__RTYPE_0(R) MS__TYPE(R)
#define MS__CAT_T(a, b) MS__CAT_T_(a, b)
#define MS__CAT_T_(a, b) a##b
#define MS__CAT_R(a, b) MS__CAT_R_(a, b)
#define MS__CAT_R_(a, b) a##b
#define MS__SCALAR_TYPE(T)                                                                         \
    _Generic((T *)0,                                                                           \
        _Bool *: &ms__t_bool,                                                                  \
        char *: &ms__t_char,                                                                   \
        signed char *: &ms__t_schar,                                                           \
        unsigned char *: &ms__t_uchar,                                                         \
        short *: &ms__t_short,                                                                 \
        unsigned short *: &ms__t_ushort,                                                       \
        int *: &ms__t_int,                                                                     \
        unsigned *: &ms__t_uint,                                                               \
        long *: &ms__t_long,                                                                   \
        unsigned long *: &ms__t_ulong,                                                         \
        long long *: &ms__t_llong,                                                             \
        unsigned long long *: &ms__t_ullong,                                                   \
        float *: &ms__t_float,                                                                 \
        double *: &ms__t_double,                                                               \
        char **: &ms__t_string,                                                                \
        const char **: &ms__t_cstring,                                                         \
        ms_bytes *: &ms__t_bytes,                                                              \
        json_t **: &ms__t_json,                                                                \
        ms_ref *: &ms__t_ref)

#define MS__MEMBER(x, p) MS__PT(p) MS__PN(p);
#define MS__PARAM(N, p)                                                                            \
    {MS__STR(MS__PN(p)), offsetof(struct ms__args_##N, MS__PN(p)), MS__TYPE(MS__PT(p))},
#define MS__ASSIGN(a, p) a.MS__PN(p) = MS__PN(p);

/* The argument struct, parameter table, descriptor and stubs shared by SERVICE and CLIENT. */
#define MS__STUBS(R, N, INVOKE, FLAGS, ...)                                                        \
    MS__DECLARE(R, N, __VA_ARGS__)                                                                 \
    struct ms__args_##N {                                                                          \
        MS__MAP(MS__MEMBER, ~, __VA_ARGS__) char ms__pad;                                          \
    };                                                                                             \
    static const ms__field ms__params_##N[] = {MS__MAP(MS__PARAM, N, __VA_ARGS__){0, 0, 0}};       \
    static ms_options ms__opts_##N;                                                                \
    static ms__service ms__svc_##N = {MS__STR(N),                                                  \
                                      __FILE__,                                                    \
                                      __LINE__,                                                    \
                                      MS__RTYPE(R),                                                \
                                      MS__NP(__VA_ARGS__),                                         \
                                      ms__params_##N,                                              \
                                      sizeof(struct ms__args_##N),                                 \
                                      INVOKE,                                                      \
                                      &ms__opts_##N,                                               \
                                      FLAGS,                                                       \
                                      NULL,                                                        \
                                      NULL};                                                       \
    MS__IF(MS__IS_VOID(R))(MS__STUB_VOID, MS__STUB_VAL)(R, N, __VA_ARGS__)

#define MS__STUB_VAL(R, N, ...)                                                                    \
    _Static_assert(_Generic((R *)0, const char ** : 0, default : 1),                               \
                   "ms: a service cannot return const char *: return a malloc'd char *");          \
    R N(MS__PLIST(__VA_ARGS__))                                                                    \
    {                                                                                              \
        R ms__r;                                                                                   \
        struct ms__args_##N ms__a;                                                                 \
        ms_status ms__st;                                                                          \
        MS__MAP(MS__ASSIGN, ms__a, __VA_ARGS__)                                                    \
        ms__st = ms__call(&ms__svc_##N, &ms__a, &ms__r);                                           \
        if (ms__st != MS_OK)                                                                       \
            ms__failed(&ms__svc_##N, ms__st);                                                      \
        return ms__r;                                                                              \
    }                                                                                              \
    ms_status N##_try(R *ms__result MS__PLIST_AFTER(__VA_ARGS__))                                  \
    {                                                                                              \
        struct ms__args_##N ms__a;                                                                 \
        MS__MAP(MS__ASSIGN, ms__a, __VA_ARGS__)                                                    \
        return ms__call(&ms__svc_##N, &ms__a, ms__result);                                         \
    }

#define MS__STUB_VOID(R, N, ...)                                                                   \
    void N(MS__PLIST(__VA_ARGS__))                                                                 \
    {                                                                                              \
        struct ms__args_##N ms__a;                                                                 \
        ms_status ms__st;                                                                          \
        MS__MAP(MS__ASSIGN, ms__a, __VA_ARGS__)                                                    \
        ms__st = ms__call(&ms__svc_##N, &ms__a, NULL);                                             \
        if (ms__st != MS_OK)                                                                       \
            ms__failed(&ms__svc_##N, ms__st);                                                      \
    }                                                                                              \
    ms_status N##_try(MS__PLIST(__VA_ARGS__))                                                      \
    {                                                                                              \
        struct ms__args_##N ms__a;                                                                 \
        MS__MAP(MS__ASSIGN, ms__a, __VA_ARGS__)                                                    \
        return ms__call(&ms__svc_##N, &ms__a, NULL);                                               \
    }

/*
 * MS_SERVICE(R, name, (T1, a1), ...) { body }: the implementation, its stubs and its
 * registration (at load time; unregistered when a dlopen'd library is closed).
 */
#define MS_SERVICE(...)                                                                            \
    MS__APPLY(MS__SERVICE, MS__RT(__VA_ARGS__), MS__NAME(__VA_ARGS__), __VA_ARGS__)
#define MS__SERVICE(R, N, ...) MS__SERVICE_F(R, N, 0u, __VA_ARGS__)
#define MS__SERVICE_F(R, N, FLAGS, ...)                                                            \
    static R ms__impl_##N(MS__PLIST(__VA_ARGS__));                                                 \
    static void ms__invoke_##N(void *ms__args, void *ms__res);                                     \
    MS__STUBS(R, N, ms__invoke_##N, FLAGS, __VA_ARGS__)                                            \
    static void ms__invoke_##N(void *ms__args, void *ms__res)                                      \
    {                                                                                              \
        struct ms__args_##N *ms__A = (struct ms__args_##N *)ms__args;                              \
        (void)ms__A;                                                                               \
        MS__IF(MS__IS_VOID(R))                                                                     \
        ((void)ms__res; ms__impl_##N(MS__ALIST(ms__A, __VA_ARGS__));                               \
         , *(R *)ms__res = ms__impl_##N(MS__ALIST(ms__A, __VA_ARGS__));)                           \
    }                                                                                              \
    __attribute__((constructor)) static void ms__reg_##N(void)                                     \
    {                                                                                              \
        ms__register(&ms__svc_##N);                                                                \
    }                                                                                              \
    __attribute__((destructor)) static void ms__unreg_##N(void)                                    \
    {                                                                                              \
        ms__unregister(&ms__svc_##N);                                                              \
    }                                                                                              \
    static R ms__impl_##N(MS__PLIST(__VA_ARGS__))

/*
 * MS_METHOD(R, name, (T1, a1), ...) { body }: a method of objects (docs/objects.md,
 * "Methods"): the service `R name(ms_ref self, T1 a1, ...)` (and name_try), whose body runs
 * with ms_self() the current value of the object `self` names and takes the parameters after
 * self (0 to 7). The value is stored when the body returns, with If-Match; on a conflict the
 * body runs again (at most 32 times, then MS_ECONFLICT); the call's request id is recorded
 * with the write, so the call is applied once however often it is retried. The service is
 * idempotent for retries, whatever MS_OPTIONS says. A body has no side effects beyond
 * ms_self(). Callers elsewhere declare it MS_DECLARE(R, name, (ms_ref, self), (T1, a1), ...).
 */
#define MS_METHOD(...) MS__CAT_M(MS__METHOD_P, MS__NP(__VA_ARGS__))(__VA_ARGS__)
#define MS__CAT_M(a, b) MS__CAT_M_(a, b)
#define MS__CAT_M_(a, b) a##b
#define MS__METHOD_P0(...)                                                                         \
    MS__APPLY(MS__METHOD, MS__RT(__VA_ARGS__), MS__NAME(__VA_ARGS__), (__VA_ARGS__),               \
              MS__RT(__VA_ARGS__), MS__NAME(__VA_ARGS__), (ms_ref, self))
#define MS__METHOD_P1 MS__METHOD_PN
#define MS__METHOD_P2 MS__METHOD_PN
#define MS__METHOD_P3 MS__METHOD_PN
#define MS__METHOD_P4 MS__METHOD_PN
#define MS__METHOD_P5 MS__METHOD_PN
#define MS__METHOD_P6 MS__METHOD_PN
#define MS__METHOD_P7 MS__METHOD_PN
#define MS__METHOD_PN(R, N, ...)                                                                   \
    MS__METHOD(R, N, (R, N, __VA_ARGS__), R, N, (ms_ref, self), __VA_ARGS__)
/* The user's body gets the parameters after self: ORIG is the list without it. */
#define MS__METHOD_BLIST(...) MS__ALIST(ms__A, __VA_ARGS__)
#define MS__METHOD(R, N, ORIG, ...)                                                                \
    static R ms__mbody_##N MS__METHOD_PL(ORIG);                                                    \
    static void ms__mrun_##N(void *ms__args, void *ms__res);                                       \
    MS__SERVICE_F(R, N, MS__F_METHOD, __VA_ARGS__)                                                 \
    {                                                                                              \
        struct ms__args_##N ms__a;                                                                 \
        MS__IF(MS__IS_VOID(R))                                                                     \
        (MS__MAP(MS__ASSIGN, ms__a, __VA_ARGS__)                                                   \
             ms__method_run(&ms__svc_##N, &ms__a, ms__mrun_##N, NULL);                             \
         , R ms__r; MS__MAP(MS__ASSIGN, ms__a, __VA_ARGS__)                                        \
             ms__method_run(&ms__svc_##N, &ms__a, ms__mrun_##N, &ms__r);                           \
         return ms__r;)                                                                            \
    }                                                                                              \
    static void ms__mrun_##N(void *ms__args, void *ms__res)                                        \
    {                                                                                              \
        struct ms__args_##N *ms__A = (struct ms__args_##N *)ms__args;                              \
        (void)ms__A;                                                                               \
        MS__IF(MS__IS_VOID(R))                                                                     \
        ((void)ms__res; ms__mbody_##N(MS__METHOD_BLIST ORIG);                                      \
         , *(R *)ms__res = ms__mbody_##N(MS__METHOD_BLIST ORIG);)                                  \
    }                                                                                              \
    static R ms__mbody_##N MS__METHOD_PL(ORIG)
#define MS__METHOD_PL(ORIG) (MS__PLIST ORIG)

/*
 * MS_CLIENT(R, name, (T1, a1), ...): the stubs alone, for a program that calls a service
 * implemented elsewhere (another program, or a library that registers it). One .c file.
 */
#define MS_CLIENT(...)                                                                             \
    MS__APPLY(MS__CLIENT, MS__RT(__VA_ARGS__), MS__NAME(__VA_ARGS__), __VA_ARGS__)
/* A client registers nothing, but its run-time data (created on first call) must be freed
 * when a dlopen'd library that holds it is closed: ms__unregister does that. */
#define MS__CLIENT(R, N, ...)                                                                      \
    MS__STUBS(R, N, NULL, 0u, __VA_ARGS__)                                                         \
    __attribute__((destructor)) static void ms__unreg_##N(void)                                    \
    {                                                                                              \
        ms__unregister(&ms__svc_##N);                                                              \
    }

/*
 * MS_OPTIONS(name, .field = value, ...): options of a service, in the file of its
 * MS_SERVICE; unnamed fields keep their defaults (see ms_options).
 */
#define MS_OPTIONS(N, ...)                                                                         \
    _Pragma("GCC diagnostic push")                                                                 \
        _Pragma("GCC diagnostic ignored \"-Woverride-init\"") static ms_options ms__opts_##N = {   \
            MS__OPTION_DEFAULTS, __VA_ARGS__};                                                     \
    _Pragma("GCC diagnostic pop")

#define MS__SFIELD(S, p) {MS__STR(MS__PN(p)), offsetof(struct S, MS__PN(p)), MS__TYPE(MS__PT(p))},
#define MS__STRUCT_CODEC(S, ...)                                                                   \
    static const ms__field ms__fields_##S[] MS__UNUSED = {MS__FMAP(MS__SFIELD, S, __VA_ARGS__)};   \
    static const ms__type ms__type_##S MS__UNUSED = {MS__K_STRUCT, sizeof(struct S), #S,           \
                                                     MS__NF(__VA_ARGS__), ms__fields_##S};         \
    MS__UNUSED static inline void S##_free_fields(struct S *v)                                     \
    {                                                                                              \
        ms__free_value(&ms__type_##S, v);                                                          \
    }

#else /* __cplusplus: declarations only */
#define MS__STRUCT_CODEC(S, ...)
#endif

/*
 * MS_STRUCT(name, (T1, f1), ...): defines `struct name` (1 to 16 fields) and, in C, its codec
 * and `name_free_fields(struct name *)`, which frees its string/bytes/json/ref fields,
 * recursively. Put it in a header shared by caller and service.
 */
#define MS_STRUCT(S, ...)                                                                          \
    struct S {                                                                                     \
        MS__FMAP(MS__MEMBER_F, ~, __VA_ARGS__)                                                     \
    };                                                                                             \
    MS__STRUCT_CODEC(S, __VA_ARGS__)
#define MS__MEMBER_F(x, p) MS__PT(p) MS__PN(p);

#endif /* MS_MS_H */
