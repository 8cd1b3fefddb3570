/*
 * host_int.h: what the files of src/lib/host share (prefix msi_host_). Private to the folder:
 * no file outside src/lib/host includes it (scripts/check-layers.sh).
 *
 * src/lib/host is the instance host: a program started with MS_SERVE=<service> serves that
 * one service over HTTP (docs/protocol.md, "Instance") until it is drained, then exits; and
 * MS_DESCRIBE=1 (msi_describe_main). It stands on the core (msi.h: the registry,
 * msi_invoke_local, msi_serving) and the layers below; the core reaches it only through
 * msi_host_main and msi_describe_main (msi.h).
 * - host.c: set-up, the routes, the main thread and the lifecycle (drawn there).
 * - checks.c: the call route's early hook (credentials, instance, signature, headers,
 *   deadline).
 * - endpoint.c: the call route's handler: arguments, the function, the reply.
 * - slots.c: call slots, the queue and demand; the glue to the duplicate-request cache.
 * - dedupe.c (dedupe.h): the duplicate-request cache itself.
 * - health.c: health, readiness, drain, metrics.
 * - heartbeat.c: the heartbeat thread.
 * - describe.c: MS_DESCRIBE.
 * Threading: the state (msi_host) is set up by the main thread before serving; calls run on
 * the HTTP server's connection threads; see host.c's design notes.
 */
#ifndef MSI_HOST_INT_H
#define MSI_HOST_INT_H

#include "dedupe.h"
#include "http.h"
#include "msi.h"

#include <pthread.h>
#include <time.h>

#define CALL_MAX_BODY (16u << 20)
#define OTHER_MAX_BODY (64u << 10)
#define HB_FIRST_MS 250
#define HB_STEADY_MS 1000
#define HB_TIMEOUT_MS 1000
#define ORPHAN_DEFAULT_MS 30000
#define LISTEN_FDS_START 3
#define DEDUPE_ENTRIES_DEFAULT 65536
#define DEDUPE_BYTES_DEFAULT (64LL << 20)

typedef enum exit_reason {
    R_NONE = 0,
    R_DRAIN,  /* POST /v1/drain */
    R_SIGNAL, /* SIGTERM / SIGINT */
    R_GONE,   /* msd answered 410 */
    R_ORPHAN, /* no orchestrator answered for orphan_ms */
} exit_reason;

typedef struct host {
    ms__service *svc;
    msi_svc *rt;
    char service[MSI_NAME_MAX];
    char id[64]; /* MS_INSTANCE_ID, "" when not started by msd */
    long long epoch;
    char instance[96];         /* "<id>.<epoch>", what Ms-Instance must name */
    char *inst_token;          /* heartbeat token */
    const char *orchestrators; /* ms_init's settings (msi_host_main); NULL: none */
    const char *call_token;    /* the call token setting: calls carry it or the admin token */
    char admin_sha256[65];     /* MS_ADMIN_TOKEN_SHA256: the admin token's hash ("": none) */
    int64_t orphan_ms;
    msi_http *srv;

    /* Call slots and demand, guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t slot_cv; /* a slot freed */
    pthread_cond_t idle_cv; /* inflight + queued reached 0 */
    int concurrency, queue_max;
    int inflight, queued;
    int64_t level_since_us;
    double level_us; /* integral of (inflight + queued) dt, in µs */
    /* Counters (atomics: read by metrics and heartbeat without mu). */
    _Atomic unsigned long long calls, errors;
    _Atomic int draining;
    _Atomic int reason; /* exit_reason */
    _Atomic int cancel_now;

    /* Wake-up pipe of the main thread: signal handler, drain handler, heartbeat. */
    int wake[2];

    /* Heartbeat thread. */
    pthread_t hb;
    int hb_started;
    pthread_mutex_t hb_mu;
    pthread_cond_t hb_cv;
    int hb_stop;
    /* Metrics window (guarded by mu). */
    int64_t m_last_us;
    double m_last_level_us;
    /* Duplicate-request cache counters (atomics, for metrics). */
    _Atomic unsigned long long dd_hits, dd_full;
} host;

extern host msi_host;
/* The duplicate-request cache (slots.c); NULL unless the service is not idempotent. */
extern msi_dd *msi_host_dd;

/* Who a request's bearer token is (checks.c, "credentials"). */
typedef enum bearer_kind { B_NONE, B_CALL, B_ADMIN } bearer_kind;

/* Refuses a call: counts an error, closes the connection after the reply (checks.c). */
void msi_host_call_refuse(msi_http_req *r, ms_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- shared functions ------------------------------------------------------------------ */

/* host.c */
void msi_host_abs_time(int64_t deadline_ms, struct timespec *ts);
int64_t msi_host_now_us(void);
long long msi_host_parse_ll(const char *s, long long dflt);
void msi_host_wake_main(exit_reason r);

/* slots.c */
void msi_host_dd_free(void);
void msi_host_dd_init(void);
void msi_host_level_tick(void);
void msi_host_slot_give(void);
ms_status msi_host_slot_take(int64_t deadline_ms);

/* checks.c */
int msi_host_auth_configured(void);
bearer_kind msi_host_bearer_of_req(const msi_http_req *r);
void msi_host_closing(msi_http_req *r);
int64_t msi_host_request_deadline(const msi_http_req *r);
void msi_host_call_early(msi_http_req *r, void *arg);

/* endpoint.c */
void msi_host_call_handler(msi_http_req *r, void *arg);

/* health.c */
double msi_host_cpu_seconds(void);
void msi_host_drain_handler(msi_http_req *r, void *arg);
void msi_host_health_handler(msi_http_req *r, void *arg);
void msi_host_metrics_handler(msi_http_req *r, void *arg);
void msi_host_ready_handler(msi_http_req *r, void *arg);

/* heartbeat.c */
void msi_host_hb_stop(void);
void *msi_host_hb_main(void *arg);

#endif /* MSI_HOST_INT_H */
