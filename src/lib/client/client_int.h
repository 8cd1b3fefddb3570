/*
 * client_int.h: what the files of src/lib/client share (prefix msi_cl_). Private to the folder:
 * no file outside src/lib/client includes it (scripts/check-layers.sh).
 *
 * src/lib/client is the caller side of libms in local and docker modes: remote calls (locate
 * instances through msd, call one, retry what may be retried, decode the result) and the
 * client's set-up (the orchestrator list, the token, a private msd when none is configured,
 * the registration of this program's executable as a deployment). It stands on the core
 * (msi.h: the registry, the per-thread call context, msi_serving) and the layers below; the
 * core reaches it only through its transport table, msi_client_transport (msi.h).
 * - engine.c: one call (msi_call_remote), its state machine and retry rules.
 * - instances.c: per service, the instance cache, balancing, skipping, failure reports, the
 *   retry budget.
 * - orch.c: requests to msd with failover along the orchestrator list; set-up and stop,
 *   the private msd, the deployment registration.
 * Threading: the process-wide state (msi_client) is written by msi_client_configure and
 * msi_client_start before any call and only read afterwards; per-service state has its own mutex
 * (instances.c); randomness, the call buffer and the caller id are per thread (engine.c).
 *
 * Design notes
 * - Process-wide state (`msi_client`) is written by msi_client_configure and
 *   msi_client_start on the main thread before any call and only read afterwards, so it
 *   needs no lock. The settings come only through msi_client_configure (ms_init's copy):
 *   the client reads no global of the core's init.c.
 */
#ifndef MSI_CLIENT_INT_H
#define MSI_CLIENT_INT_H

#include "httpc.h"
#include "msi.h"

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#define ORCH_MAX 8
#define ATTEMPTS_MAX 5
#define TTL_DEFAULT_MS 1000
#define REFRESH_WAIT_MS 500 /* a background-ish re-locate waits at most this long */
#define SKIP_BASE_MS 1000
#define SKIP_MAX_MS 30000
#define REPORT_TIMEOUT_MS 250
#define DEPLOY_TIMEOUT_MS 15000
#define MSD_START_MS 10000
#define MSD_STOP_MS 15000
#define BUDGET_WINDOW_S 10    /* retry budget: over the last 10 s ... */
#define BUDGET_RATIO 0.20     /* ... retries may be 20% of calls ... */
#define BUDGET_FLOOR_PER_S 10 /* ... and 10 per second are always allowed */
#define BACKOFF_BASE_MS 10    /* n-th retry with back-off: random(0, min(10 ms * 2^n, 1 s)) */
#define BACKOFF_MAX_MS 1000
#define MSD_WAIT_MAX_MS 1000 /* while msd is unreachable, ask again at least this often */

/* ---- process-wide state --------------------------------------------------------------- */

struct client {
    int started;
    pid_t owner; /* the process that started the client (fork guard) */
    char *orch_buf;
    char *orch[ORCH_MAX]; /* "host:port" */
    int norch;
    _Atomic int orch_cur;  /* the orchestrator that answered last */
    _Atomic int orch_seen; /* some orchestrator answered once: worth waiting for again */
    char *token;           /* call token; NULL: none */
    /* ms_init's settings (msi_client_configure's copies), which msi_client_start takes */
    char *conf_orch;  /* MS_ORCHESTRATOR; NULL: none (local mode starts a private msd) */
    char *conf_token; /* MS_TOKEN / MS_TOKEN_FILE; NULL: none (the state dir's files) */
    char build[65];   /* SHA-256 of our executable; "" if unknown */
    char exe[PATH_MAX];
    char state[PATH_MAX]; /* msd's state dir (unix socket, token files) */
    /* private msd */
    pid_t msd_pid;
    char tmpdir[PATH_MAX];
    int atexit_set;
    _Atomic int stopped;
};
extern struct client msi_client;

/* ---- per-service state ---------------------------------------------------------------- */

typedef struct inst {
    char id[32];
    long long epoch;
    char addr[64];
    char url[MSI_NAME_MAX + 96]; /* http://addr/v1/call/name */
    char hdr[80];                /* "Ms-Instance: id.epoch" */
    int fails;                   /* consecutive failures seen by this client */
    int64_t skip_until;          /* msi_now_ms: skipped until then */
} inst;

typedef struct cstate {
    pthread_mutex_t mu; /* guards everything below */
    inst *list;
    int n, cap;
    ms_lb lb;
    int64_t expires; /* re-locate after (msi_now_ms); 0: now */
    int refreshing;  /* a caller is re-locating a non-empty list */
    unsigned rr;
    /* The service's own options as msd reported them (lookup answers), for MS_CLIENT
     * stubs, which declare none: remote_known is 0 until an answer carried them. */
    int remote_known, remote_idem;
    int64_t remote_timeout_ms;
    /* Retry budget: calls and retries per second over the last BUDGET_WINDOW_S seconds. */
    int64_t b_sec[BUDGET_WINDOW_S];
    unsigned b_calls[BUDGET_WINDOW_S], b_retries[BUDGET_WINDOW_S];
    struct cstate *all_next; /* every cstate ever made (all_cstates): never freed */
} cstate;

/* Tried instances of one call. */
typedef struct tried {
    int n;
    struct {
        char id[32];
        long long epoch;
    } at[ATTEMPTS_MAX];
} tried;

/* ---- shared functions ------------------------------------------------------------------ */

/* The functions of msi_client_transport (msi.h), which the core reaches through it. */
/* orch.c: takes a copy of ms_init's settings (msi_transport.configure). */
ms_status msi_client_configure(const msi_settings *s);
/* engine.c: a remote call (msi_transport.call). */
ms_status msi_call_remote(ms__service *svc, void *args, void *result, int64_t timeout_ms);
/* orch.c: starts and stops the client side of local/docker modes (msi_transport.start,
 * .stop). */
ms_status msi_client_start(void);
void msi_client_stop(void);

/* engine.c: per-thread randomness and sleeping. */
int64_t msi_cl_jitter(int64_t ms, int pct);
void msi_cl_sleep_ms(int64_t ms);
/* Sleeps ms, but never past deadline. */
void msi_cl_sleep_within(int64_t ms, int64_t deadline);
/* engine.c: the body buffer of the call this thread is making (msi_client_stop releases the
 * main thread's). */
extern msi_tbuf msi_cl_call_tbuf;

/* instances.c */
cstate *msi_cl_cstate_of(msi_svc *rt);
void msi_cl_report_failure(const msi_svc *rt, const inst *in, const char *reason);
ms_status msi_cl_ensure_list(cstate *cs, const msi_svc *rt, int64_t deadline, int force,
                             int *unreachable, msi_err *err);
void msi_cl_mark_tried(tried *t, const inst *in);
int msi_cl_pick(cstate *cs, const tried *t, int ignore_skip, inst *out, int *again);
int msi_cl_note_instance(cstate *cs, const inst *in, int failed, int stale);
int msi_cl_first_pick(cstate *cs, int64_t now, inst *out);
int msi_cl_remote_opts(cstate *cs, int *idem, int64_t *timeout_ms);
int msi_cl_budget_retry(cstate *cs);

/* orch.c */
ms_status msi_cl_orch_request(const char *method, const char *path, const char *const *headers,
                              json_t *body, int64_t deadline, msi_httpc_resp *resp, json_t **out,
                              msi_err *err);
/* engine.c: a new request id "<caller>-<seq>" of the calling thread, as a call of its gets,
 * and its Ms-Acked-Below (the seq: the thread's earlier calls are over). */
#define MSI_CL_RID_MAX (16 + 1 + 20 + 1)
void msi_cl_new_rid(char rid[MSI_CL_RID_MAX], char acked_below[24]);
/* objects.c: "/v1/objects/ns/collection/id" from a reference (its names checked); -1 when
 * it is not one. */
int msi_cl_obj_path(const ms_ref *ref, char *path, size_t len);

/* Our build (msi_client.build), hashed once on first need:
 * pthread_once(&msi_cl_build_once, msi_cl_hash_build). */
extern pthread_once_t msi_cl_build_once;
void msi_cl_hash_build(void);

#endif /* MSI_CLIENT_INT_H */
