/*
 * msd.h: the orchestrator's model and the functions its files share (prefix msd_).
 *
 * src/msd is a program, the top layer (docs/design.md, "Layers"): it uses src/base,
 * src/net (the HTTP server) and the public API of libms, never src/lib's private headers.
 *
 * Design notes
 * - The model (deployments, services, instances) lives in memory, guarded by one mutex,
 *   msd.mu. The store (store.h) is a write-through copy of it: every change is written
 *   while the mutex is held, so that the database never runs ahead of or behind memory by
 *   more than the change being made. On start the model is loaded back from the store.
 * - Threads: the HTTP server's connection threads (src/net/http.c, one per connection) run
 *   the API handlers (api.c); one thread runs the reconcile loop (reconcile.c). Handlers
 *   change desired state only (desired counts, deployments, failure reports, heartbeat
 *   data) and wake the loop; the loop alone spawns, probes, kills and moves instances
 *   between states. Handlers that wait (a lookup holding until an instance is ready) wait
 *   on msd.changed, which the loop broadcasts whenever an instance changes state.
 * - A service is identified by (name, build): the same name in two deployments is two
 *   services, each with its own desired count and instances. An instance is a slot
 *   ("i-17") of one service; each (re)start of the slot bumps its epoch, so a heartbeat
 *   from a process of an older epoch is recognised and answered 410.
 * - Times: `*_ms` fields ending in `mono` are CLOCK_MONOTONIC milliseconds (deadlines,
 *   back-off); the others are wall-clock milliseconds since the epoch (records, events).
 */
#ifndef MSD_MSD_H
#define MSD_MSD_H

#include <ms/ms.h>

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/types.h>

#include "autoscale.h"
#include "base.h"

#define MSD_VERSION MS_VERSION_STRING
#define MSD_NAME_MAX 128
#define MSD_ID_MAX 32
#define MSD_ADDR_MAX 64
#define MSD_TOKEN_HEX 64
#define MSD_BODY_MAX (1u << 20)
#define MSD_DEMAND_SAMPLES 60 /* one per second: the last minute of demand per service */
#define MSD_SAMPLE_MS 1000    /* period of the demand samples (and of autoscale decisions) */
#define MSD_EVENT_RING 1024

/* ------------------------------------------------------------------------------------------
 * Instances.
 * ---------------------------------------------------------------------------------------- */
typedef enum msd_istate {
    MSD_I_STARTING = 0, /* spawned; waiting for its first heartbeat and probe */
    MSD_I_READY,        /* registered, probes pass: gets traffic */
    MSD_I_SUSPECT,      /* a probe failed: no new traffic until one passes */
    MSD_I_DRAINING,     /* being retired: drain handshake, grace, SIGTERM, SIGKILL */
    MSD_I_DEAD,         /* its process exited or was killed; the slot waits to restart */
} msd_istate;

const char *msd_istate_name(msd_istate s);
int msd_istate_parse(const char *s, msd_istate *out);

/* What a runner knows of one running process (runner.h). */
typedef struct msd_proc {
    pid_t pid;           /* 0: none */
    uint64_t start_time; /* /proc/<pid>/stat field 22 (clock ticks since boot) */
    int exit_fd;         /* readable once the process has exited (a pidfd); -1: none */
    int child;           /* our child (waitpid reaps it) rather than a re-adopted process */
    int exited;          /* the exit has been seen */
    int status;          /* wait status when child and exited; else -1 */
    void *runner_data;   /* the runner's own (runner_docker.c: the container); NULL */
} msd_proc;

typedef struct msd_service msd_service;

typedef struct msd_instance {
    char id[MSD_ID_MAX]; /* "i-17" */
    int64_t epoch;       /* bumped by every (re)start of this slot */
    msd_service *svc;
    msd_istate state;
    msd_proc proc;
    char addr[MSD_ADDR_MAX]; /* "127.0.0.1:40123": bound by msd for this epoch */
    char token[MSD_TOKEN_HEX + 1];
    int registered;   /* a heartbeat with an address arrived this epoch */
    int probed_ok;    /* a probe passed this epoch */
    int restarts;     /* restarts of this slot (epoch - 1, unless re-adopted) */
    int quick_deaths; /* consecutive deaths before ready or soon after: back-off */
    int probe_fails;  /* consecutive failed probes */
    int probing;      /* a probe is in flight */
    int retiring;     /* draining towards removal of the slot (not a restart) */
    int stop_phase;   /* while DRAINING: 0 drain sent, 1 SIGTERM sent, 2 SIGKILL sent */
    int64_t created_ms, started_ms, ready_ms, updated_ms; /* wall clock */
    int64_t state_mono;                                   /* when the current state began */
    int64_t ready_mono;       /* when it last became ready (0: never this epoch) */
    int64_t next_probe_mono;  /* when to probe next */
    int64_t probe_start_mono; /* when the last probe was sent */
    int64_t restart_mono;     /* DEAD: when the slot may restart (back-off) */
    int64_t deadline_mono;    /* STARTING: start deadline; DRAINING: end of current phase */
    int64_t hb_mono;          /* last heartbeat */
    int64_t report_mono;      /* last "report" event (a caller's failure report) */
    /* From heartbeats. */
    double busy, cpu;
    int64_t inflight, queued, calls;
    int draining_reported;
    char last_error[160]; /* why it last died or failed a probe */
    struct msd_instance *next;
} msd_instance;

/* ------------------------------------------------------------------------------------------
 * Deployments and services.
 * ---------------------------------------------------------------------------------------- */
typedef struct msd_deployment {
    char build[65];   /* SHA-256 of the executable, hex */
    int64_t seq;      /* deployment order: the highest is the newest */
    char *path;       /* where it was deployed from (for argv[0] and messages) */
    char *exe;        /* <state>/bin/<build>: the only file msd ever runs */
    json_t *argv;     /* array of strings: arguments after argv[0] */
    json_t *services; /* the "services" array the executable described */
    int64_t created_ms;
    struct msd_deployment *next;
} msd_deployment;

struct msd_service {
    char name[MSD_NAME_MAX + 1];
    char build[65];
    char sig[17];
    char *sigtext;
    json_t *options; /* as described */
    msd_deployment *dep;
    /* Options, from `options`. */
    int concurrency, min_instances, max_instances, timeout_ms;
    double scale_up_at, scale_down_at;
    int idempotent, stateful;
    ms_lb lb; /* MS_LB_DEFAULT: msd's --lb */
    /* Desired state (persisted). */
    int desired;
    int deleted; /* DELETE'd: hidden until deployed again */
    int pinned;  /* set by a manual scale: the autoscaler leaves desired alone */
    /* Run-time. */
    int crashloop;      /* too many start-up deaths in a row: retried slowly, reported */
    int startup_deaths; /* consecutive deaths of its instances before ready */
    int64_t last_locate_mono;
    unsigned rr;                              /* round-robin cursor for lb=orchestrator */
    msd_as_sample demand[MSD_DEMAND_SAMPLES]; /* one per second, a ring (autoscale.h) */
    int ndemand, demand_pos;                  /* samples held; where the next one goes */
    int64_t scaled_mono; /* last change of desired: scale-down stabilisation (0: none) */
    msd_as_hold as_hold; /* the autoscaler's last hold reason (logged when it changes) */
    char as_last[200];   /* the autoscaler's last decision that changed something */
    int64_t calls_prev;  /* sum of instance calls at the previous sample */
    double calls_rate;   /* calls per second over the last sample */
    struct msd_service *next;
};

/* ------------------------------------------------------------------------------------------
 * Events.
 * ---------------------------------------------------------------------------------------- */
typedef struct msd_event {
    int64_t seq;
    int64_t ts_ms;
    char type[24];
    char service[MSD_NAME_MAX + 1];
    char instance[MSD_ID_MAX];
    char message[256];
} msd_event;

/* ------------------------------------------------------------------------------------------
 * The daemon.
 * ---------------------------------------------------------------------------------------- */
/*
 * msd's tuning options, one line each: X(field, option, min, max, default, help). From this
 * list come the msd_config fields below and, in main.c, the getopt table, the parsing (an
 * integer in [min, max]), the defaults and the --help lines ("--option N  help (default
 * D)"). An option is added here and nowhere else.
 */
#define MSD_TUNING_OPTIONS(X)                                                                      \
    X(probe_interval_ms, "probe-interval-ms", 10, 600000, 1000, "health probe period")             \
    X(probe_timeout_ms, "probe-timeout-ms", 10, 60000, 250, "health probe timeout")                \
    X(start_deadline_ms, "start-deadline-ms", 100, 3600000, 10000,                                 \
      "time an instance has to become ready")                                                      \
    X(quick_death_ms, "quick-death-ms", 0, 3600000, 10000,                                         \
      "a death this soon after ready is quick: restarted after a back-off")                        \
    X(backoff_base_ms, "backoff-base-ms", 1, 600000, 250,                                          \
      "first restart delay after a quick death; it doubles with each quick death in a row of "     \
      "the slot")                                                                                  \
    X(backoff_max_ms, "backoff-max-ms", 1, 3600000, 2000,                                          \
      "cap of that delay for a death after ready; for a death before ready the cap is the "        \
      "higher of N and 30000")                                                                     \
    X(crashloop_deaths, "crashloop-deaths", 1, 1000000, 5,                                         \
      "deaths before ready in a row that make a crash loop")                                       \
    X(crashloop_retry_ms, "crashloop-retry-ms", 10, 3600000, 30000,                                \
      "retry period of a service in a crash loop")                                                 \
    X(grace_max_ms, "grace-max-ms", 100, 3600000, 60000, "upper bound of a drain's grace period")  \
    X(old_build_idle_ms, "old-build-idle-ms", 1000, INT32_MAX, 300000,                             \
      "stop an older build nobody looked up this long")                                            \
    X(scale_up_window_ms, "scale-up-window-ms", MSD_SAMPLE_MS,                                     \
      (MSD_SAMPLE_MS * MSD_DEMAND_SAMPLES), 2000, "demand window of scale-up decisions")           \
    X(scale_down_window_ms, "scale-down-window-ms", MSD_SAMPLE_MS,                                 \
      (MSD_SAMPLE_MS * MSD_DEMAND_SAMPLES), 10000, "demand window of scale-down decisions")        \
    X(scale_stabilise_ms, "scale-stabilise-ms", 0, 24 * 3600 * 1000, 30000,                        \
      "no scale-down this long after any change of a service's instance count")                    \
    X(objects_records_max, "objects-records-max", 1, INT32_MAX, 1000000,                           \
      "request-id records the object store keeps at most; a transaction with a new id is "         \
      "refused (429) while full")

typedef struct msd_config {
    char listen[MSD_ADDR_MAX]; /* "127.0.0.1:4999" */
    int allow_remote;
    char *state_dir;
    char *objects_url;   /* --objects: PostgreSQL; NULL: SQLite in the state directory */
    pid_t parent_pid;    /* 0: none */
    ms_lb lb;            /* msd-wide default: MS_LB_CLIENT */
    char runner[16];     /* --runner: "process" (default) or "docker" (runner.h) */
    char *docker_socket; /* --docker-socket; NULL: MSD_DOCKER_SOCKET_DEFAULT (docker.h) */
#define MSD_CONFIG_FIELD(field, opt, min, max, def, help) int field;
    MSD_TUNING_OPTIONS(MSD_CONFIG_FIELD) /* the options above */
#undef MSD_CONFIG_FIELD
    int probe_failures_dead;  /* 3 failed probes in a row: dead */
    int start_backoff_max_ms; /* 30000: cap after a death before ready (>= backoff_max_ms) */
    int term_grace_ms;        /* 5000: SIGTERM to SIGKILL */
    int verbose;
} msd_config;

typedef struct msd_store msd_store;
typedef struct msd_runner msd_runner;
typedef struct msd_reconciler msd_reconciler;
typedef struct msd_objstore msd_objstore;

typedef struct msd {
    msd_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t changed;  /* broadcast on every instance state change */
    char addr[MSD_ADDR_MAX]; /* where instances reach us (MS_ORCHESTRATOR) */
    char admin_token[MSD_TOKEN_HEX + 1];
    char call_token[MSD_TOKEN_HEX + 1];
    char admin_sha256[65]; /* SHA-256 of admin_token in hex: instances get this, never the token */
    uid_t uid;
    msd_store *store;
    msd_objstore *objects; /* the object store (objstore.h, objects.h); its own lock */
    msd_runner *runner;
    msd_reconciler *rec;
    msd_deployment *deployments;
    msd_service *services;
    msd_instance *instances;
    int64_t next_instance; /* the N of the next "i-N" */
    int64_t next_deploy_seq;
    int stopping; /* shutting down: no new instances */
    int64_t start_ms;
    /* Events: a ring of the latest, guarded by mu. */
    msd_event events[MSD_EVENT_RING];
    int64_t event_seq; /* seq of the latest event */
    /* Counters for /metrics. */
    uint64_t n_spawns, n_exits, n_probes, n_probe_fails, n_locates, n_heartbeats, n_deploys,
        n_http_errors;
} msd;

/* ------------------------------------------------------------------------------------------
 * util.c
 * ---------------------------------------------------------------------------------------- */
int64_t msd_wall_ms(void);
void msd_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
extern int msd_verbose;
/* [A-Za-z0-9_.-]{1,128} */
int msd_valid_name(const char *s);
/* "i-17" style: [A-Za-z0-9_.-]{1,31} */
int msd_valid_id(const char *s);
/* 32 random bytes from getrandom(), as 64 hex digits. 0 or -errno. */
int msd_random_hex(char out[MSD_TOKEN_HEX + 1]);
/* nhex (even, at most 128) random hex digits and a NUL into out. 0 or -errno. */
int msd_random_hex_n(char *out, size_t nhex);
/* snprintf into buf; -1 if it did not fit. */
int msd_fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* malloc'd formatted string or NULL. */
char *msd_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reads a whole small file (at most max bytes) into a malloc'd NUL-terminated buffer. */
char *msd_read_file(const char *path, size_t max, size_t *len);
/* Writes a file atomically (temp + rename, fsync'd) with the given mode. 0 or -errno. */
int msd_write_file(const char *path, const void *data, size_t len, mode_t mode);
/* The same without fsync: for files that matter only while this boot lasts (an instance's
 * token: after a reboot every instance is started again and its token written anew). */
int msd_write_file_nosync(const char *path, const void *data, size_t len, mode_t mode);
/* Reads the first token-like line of a file into out (64 hex). 0 or -errno. */
int msd_read_token(const char *path, char out[MSD_TOKEN_HEX + 1]);
/* Parses "host:port" (host an IPv4 literal or "localhost", or [v6]). 0 or -1. */
int msd_parse_hostport(const char *s, char *host, size_t hlen, int *port);
/* Whether a host string is a loopback address. */
int msd_is_loopback(const char *host);
/* Parses a decimal integer in [min, max]; 0 or -1. */
int msd_parse_int(const char *s, long long min, long long max, long long *out);
/* Field 22 of /proc/<pid>/stat; 0 when the process does not exist (or is a zombie). */
uint64_t msd_proc_start_time(pid_t pid);

/* ------------------------------------------------------------------------------------------
 * model.c: lookups and changes of the model. The caller holds m->mu.
 * ---------------------------------------------------------------------------------------- */
msd_deployment *msd_deployment_find(msd *m, const char *build);
msd_service *msd_service_find(msd *m, const char *name, const char *build);
/* The newest (highest deployment seq) non-deleted service of that name, optionally with
 * signature sig; NULL if none. */
msd_service *msd_service_newest(msd *m, const char *name, const char *sig);
/* Whether any (non-deleted) service of that name exists. */
int msd_service_known(msd *m, const char *name);
msd_instance *msd_instance_find(msd *m, const char *id);
/* Fills the options fields of svc from svc->options. */
void msd_service_apply_options(msd_service *svc);
/* Effective load-balancing mode of a service. */
ms_lb msd_service_lb(const msd *m, const msd_service *svc);
const char *msd_lb_name(ms_lb lb);
int msd_lb_parse(const char *s, ms_lb *out);
/* Counts the service's instances by state (array of 5) and returns the live total
 * (everything not retiring and not dead). */
int msd_service_count(msd *m, const msd_service *svc, int counts[5]);
void msd_deployment_free(msd_deployment *d);
void msd_service_free(msd_service *s);
void msd_instance_free(msd_instance *in);
/* Persists (store) the record; logs a failure. */
void msd_save_service(msd *m, msd_service *svc);
void msd_save_instance(msd *m, msd_instance *in);
/* Records an event (ring, store, log). Caller holds mu. */
void msd_emit(msd *m, const char *type, const char *service, const char *instance, const char *fmt,
              ...) __attribute__((format(printf, 5, 6)));
/* Events with seq > since into a JSON array (at most limit), oldest first. Holds mu. */
json_t *msd_events_json(msd *m, int64_t since, int limit);

/* ------------------------------------------------------------------------------------------
 * deploy.c
 * ---------------------------------------------------------------------------------------- */
/*
 * Registers the executable at path with its arguments: checks it, copies it to
 * <state>/bin/<sha256>, has it describe its services, records it. Takes m->mu itself (not
 * while hashing or running the executable). On success *out is the reply body and
 * *created 1 for a new deployment, 0 for one already known. Otherwise err is filled and
 * a status returned (MS_EBADARGS, MS_EFORBIDDEN, MS_EIO, ...).
 */
ms_status msd_deploy(msd *m, const char *path, const json_t *argv, json_t **out, int *created,
                     msi_err *err);
/* Validates a describe document; fills the services into d. */
ms_status msd_parse_describe(const char *text, size_t len, json_t **services, msi_err *err);

/* ------------------------------------------------------------------------------------------
 * reconcile.c
 * ---------------------------------------------------------------------------------------- */
int msd_reconcile_start(msd *m);
/* Stops the loop. With drain set, retires every instance first and waits (bounded). */
void msd_reconcile_stop(msd *m, int drain);
/* Wakes the loop (desired state changed). Caller holds mu (which keeps the loop's
 * descriptor from being closed meanwhile). */
void msd_wake(msd *m);
/* Asks for an immediate probe of an instance (failure report). Caller holds mu. */
void msd_probe_soon(msd *m, msd_instance *in);
/*
 * A lookup: makes sure svc has at least one instance wanted and waits (releasing mu) until
 * one is ready, the deadline (mono ms) passes or msd stops. A service in a crash loop is
 * answered at once (MS_EUNAVAILABLE) only when none of its instances can be ready before
 * the deadline: none is starting or suspect, and no slot restarts before it; otherwise the
 * lookup is held like any other. Returns MS_OK, MS_ETIMEDOUT, MS_ENOTFOUND (deleted) or
 * MS_EUNAVAILABLE (crash loop, stopping). Caller holds mu.
 */
ms_status msd_wait_ready(msd *m, msd_service *svc, int64_t deadline_mono);
/* Whether an instance of svc may be ready by `by` (mono ms): one is ready, starting or
 * suspect, a slot is still to be created, or a dead slot restarts before then. *next_start
 * (may be NULL) gets the earliest restart time of its dead slots (0: none). Holds mu. */
int msd_service_may_be_ready(msd *m, const msd_service *svc, int64_t by, int64_t *next_start);
/* Sets a service's desired count (and wakes the loop), emitting a "scale" event; it counts
 * as a change for the autoscaler's stabilisation. Caller holds mu. */
void msd_set_desired(msd *m, msd_service *svc, int n, const char *why);
/* Pins (manual scale: the autoscaler leaves it alone) or unpins a service; persisted.
 * Unpinning counts as a change for stabilisation. Caller holds mu. */
void msd_set_pinned(msd *m, msd_service *svc, int pinned, const char *why);
/* Marks an instance for retirement (drain, then the slot is removed). Caller holds mu. */
void msd_retire(msd *m, msd_instance *in, const char *why);
/* Records a sample of demand for every service (called each second by the loop). */
void msd_sample_demand(msd *m, int64_t now);
/* Runs the autoscaling policy (autoscale.h) for every service that is not pinned, right
 * after a sample, and applies and records its decisions (events "autoscale"). */
void msd_autoscale(msd *m, int64_t now);
/* The instances a lookup of svc returns, per its load-balancing mode and the panic
 * threshold (DESIGN section 4), as a JSON array of {"id","epoch","addr"}. Holds mu. */
json_t *msd_select_instances(msd *m, msd_service *svc);
/* Whether svc has an instance that may take traffic. Holds mu. */
int msd_service_has_ready(msd *m, const msd_service *svc);
/* Mean demand per instance over the last n samples of svc, not-ready instances as 0 (0 when
 * none). */
double msd_service_demand(const msd_service *svc, int n);

/* ------------------------------------------------------------------------------------------
 * api.c and status.c
 * ---------------------------------------------------------------------------------------- */
typedef struct msd_api msd_api;
/* Starts the TCP listener (cfg.listen) and the unix socket; writes <state>/addr. */
int msd_api_start(msd *m, msd_api **out);
void msd_api_stop(msd_api *a);
struct msi_http_req;
/* The request's body as a JSON object (a new reference); NULL after replying 400 (no body,
 * bad JSON, not an object). Also for objects_api.c. */
json_t *msd_body_object(struct msi_http_req *r);
/* The services list of GET /v1/services. Holds mu. */
json_t *msd_services_json(msd *m, const char *only_name);
/* Prometheus text (malloc'd). Holds mu. */
char *msd_metrics_text(msd *m, size_t *len);
/* The dashboard page (malloc'd). Holds mu. */
char *msd_dashboard_html(msd *m, size_t *len);

#endif /* MSD_MSD_H */
