/*
 * msi.h: libms internals shared across the files of src/lib (prefix msi_). Not installed.
 *
 * src/lib is the third layer, over src/net and src/base (docs/design.md, "Layers"). It owns
 * what makes a C function a service: the registry, signatures, the codec, modes and
 * settings, the call entry (ms__call); the caller side (src/lib/client) and the instance
 * host (src/lib/host) stand on it, each in its own folder with its own private header. This
 * header includes base.h (errors, clock, log, buffers, JSON helpers), so a file of src/lib
 * gets both; src/net and the programs (msd, msctl) include base.h and the net headers, never
 * this one.
 * Threading: the public API is thread-safe except where <ms/ms.h> says otherwise; the
 * registry is guarded by one mutex, the call context is per thread (below), and the client
 * and host state is described in src/lib/client/client_int.h and src/lib/host/host_int.h.
 *
 * Design notes
 * - The registry (registry.c) is an intrusive list of ms__service descriptors, linked at
 *   load time by constructors and unlinked by destructors (dlclose). One mutex guards it and
 *   a generation counter lets callers cache a lookup until the registry changes.
 * - Every descriptor has run-time data (msi_svc: full name, signature, client state) hung off
 *   ms__service.rt, created once (msi_svc_of) and never freed before process exit, except
 *   for descriptors of an unloaded library, whose data is freed at unregistration.
 * - The per-thread call context (msi_ctx) carries what a running service may ask for: its
 *   deadline, its failure (ms_fail, or msi_ctx_fail with another status), the trace id for
 *   nested calls, and the request id the call came with (which MS_METHOD writes under).
 */
#ifndef MSI_H
#define MSI_H

#include "base.h"

#include <ms/ms.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>

#define MSI_NAME_MAX 128 /* service names, including a namespace */
/* The longest call budget: a call's timeout (client/engine.c) and a request's
 * Ms-Deadline-Ms (host/checks.c) are clamped to a day, so that arrival time + budget cannot
 * overflow. */
#define MSI_DEADLINE_MAX_MS (24LL * 3600 * 1000)

/* Sets the calling thread's detail message (ms_last_error) and returns st. */
ms_status msi_set_error(ms_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void msi_set_app_code(int code);

/* Run-time data of a service descriptor. */
typedef struct msi_svc {
    char name[MSI_NAME_MAX]; /* "ns.name" or "name" */
    char sig[17];            /* signature hash, 16 hex digits */
    char *sigtext;           /* canonical signature text the hash is taken over */
    ms_options opts;         /* effective options (defaults filled in) */
    /* MS_CLIENT in zero mode: the provider found in the registry, valid while gen holds. */
    ms__service *provider;
    unsigned long provider_gen;
    void *client;  /* src/lib/client's per-service state (local mode), created on first call */
    int duplicate; /* a provider registered after another of the same name: never used */
    int invalid;   /* its full name is not a valid service name: never used */
} msi_svc;

/* The run-time data of svc, created on first use. Never NULL unless out of memory. */
msi_svc *msi_svc_of(ms__service *svc);

/* Registry (registry.c). */
ms__service *msi_registry_find(const char *fullname, unsigned long *gen);
unsigned long msi_registry_gen(void);
/* Checks for duplicates; on one, sets the error naming both definitions. */
ms_status msi_registry_check(void);
/* Calls fn for every registered provider, under the registry lock. */
void msi_registry_each(void (*fn)(ms__service *svc, void *arg), void *arg);

/* W3C trace context of a call: what nested calls keep (docs/calls.md). */
typedef struct msi_trace {
    char id[33];   /* trace-id: 32 lowercase hex digits, not all zero */
    char flags[3]; /* trace-flags: 2 lowercase hex digits */
} msi_trace;

/* Parses a `traceparent` header value into *t; 0 on success, -1 if malformed (then the
 * call starts a new trace, as the W3C recommendation says). */
int msi_trace_parse(const char *value, msi_trace *t);

/* Per-thread call context (call.c). */
typedef struct msi_ctx {
    ms__service *svc;
    int64_t deadline_ms;    /* CLOCK_MONOTONIC ms; INT64_MAX: none */
    const msi_trace *trace; /* the trace this call belongs to; NULL: none yet */
    int failed;
    ms_status fail_status; /* the call's status when failed: MS_EAPP (ms_fail) or msi_ctx_fail's */
    int app_code;
    char app_msg[MSI_ERR_MAX];
    const char *rid;         /* the incoming call's Ms-Request-Id (host); NULL: none */
    const char *acked_below; /* its Ms-Acked-Below; NULL: none */
    struct msi_ctx *prev;
} msi_ctx;
extern _Thread_local msi_ctx *msi_cur_ctx;

/* The request id and Ms-Acked-Below of the call the host is about to run on this thread
 * (borrowed for the call): msi_invoke_local takes them into its context and clears them. */
extern _Thread_local const char *msi_next_rid, *msi_next_acked_below;

/* Fails the running call with st (not MS_OK) and a message, as ms_fail does with MS_EAPP:
 * the call returns st with "<service>: <message>". Outside a call: only sets the thread's
 * error. */
void msi_ctx_fail(ms_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The pending ms_next_call_timeout_ms() of the thread (0: none); ms__call takes it. */
extern _Thread_local int64_t msi_next_timeout_ms;

/*
 * Runs svc's implementation in this process (the instance host uses this too). `trace`:
 * the call's trace context (borrowed for the call); NULL keeps the enclosing call's.
 */
ms_status msi_invoke_local(ms__service *svc, void *args, void *result, int64_t deadline_ms,
                           const msi_trace *trace);

/* Global state (init.c). */
extern ms_mode msi_mode;
extern int msi_initialized;

/*
 * The settings ms_init read from the environment and the --ms-* options (init.c), handed to
 * each part that needs them, never read by it from a global: to the client by
 * msi_transport.configure, to the host by msi_host_main. The strings are init.c's; a part
 * that keeps them past the call copies them (the host never returns, so it may keep the
 * pointers).
 */
typedef struct msi_settings {
    const char *orchestrators; /* MS_ORCHESTRATOR: "host:port[,host:port...]"; NULL: unset */
    const char *token;         /* call token read from MS_TOKEN or MS_TOKEN_FILE; NULL: unset */
} msi_settings;

/*
 * The remote path (local/docker modes) as the core sees it: a table of functions. The core
 * (call.c, init.c) and the host reach the caller side only through msi_remote, so that the
 * client (src/lib/client) stands on the core and the core does not call into it.
 */
typedef struct msi_transport {
    /* Takes a copy of the settings (ms_init calls it once, before start): MS_OK, or
     * MS_ENOMEM. */
    ms_status (*configure)(const msi_settings *s);
    /* Encodes args, locates an instance through msd, calls it with deadline and retries,
     * decodes the result. `timeout_ms`: the caller's ms_next_call_timeout_ms (0: the
     * service's timeout_ms). */
    ms_status (*call)(ms__service *svc, void *args, void *result, int64_t timeout_ms);
    /* Starts and stops the client side; called by ms_init and ms_shutdown, and by the host
     * for nested calls. */
    ms_status (*start)(void);
    void (*stop)(void);
} msi_transport;
/* The client's table (src/lib/client/engine.c). */
extern const msi_transport msi_client_transport;
/* The transport remote calls take (init.c): msi_client_transport, the one place the core
 * names the client. */
extern const msi_transport *msi_remote;

/* The instance host (src/lib/host/host.c): serves the service named by MS_SERVE, with ms_init's
 * settings (kept: they outlive it), and exits the process with the returned status; never
 * returns to the user's main(). */
int msi_host_main(const char *service, const msi_settings *s);
/* MS_DESCRIBE=1: prints the JSON description of every registered provider on stdout
 * (docs/protocol.md) and returns the exit status (src/lib/host/describe.c). */
int msi_describe_main(void);
/* The provider this process serves as an instance, or NULL (set by the host). */
extern ms__service *msi_serving;
/* Set once ms_shutdown or SIGTERM has begun: ms_cancelled() turns true. */
extern _Atomic int msi_shutting_down;

#endif /* MSI_H */
