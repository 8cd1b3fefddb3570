/*
 * harness.h: what the msd integration tests share: a real msd in a temporary state
 * directory, HTTP requests to it, msctl runs, polling, and clean-up.
 *
 * Design notes
 * - msd runs as a child of the test, on port 0 (it writes <state>/addr once listening),
 *   with --parent-pid <the test> and PR_SET_PDEATHSIG=SIGTERM, so that if the test dies
 *   in any way msd stops and stops its instances.
 * - Readiness is polled (<state>/addr, then GET /v1/health; instance states through
 *   GET /v1/services), never waited for with a bare sleep. Every wait is bounded.
 * - Clean-up at exit (atexit, so also after a failed assertion): every msd and msctl this
 *   harness started is killed by PID and reaped; then every instance recorded in each
 *   state directory's msd.db whose process still has the recorded start time is killed by
 *   PID; then the state directories are removed (kept when MS_TEST_KEEP is set).
 * - Paths of the binaries come from the environment (set by CMake with generator
 *   expressions): MS_TEST_MSD, MS_TEST_MSCTL, MS_TEST_APP, MS_TEST_APP_CRASH,
 *   MS_TEST_APP_HANG.
 */
#ifndef MS_TEST_HARNESS_H
#define MS_TEST_HARNESS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct h_msd {
    pid_t pid; /* 0 when not running */
    char state[256];
    char addr[64];
    char admin[80], call[80]; /* the tokens msd created */
    const char *args[24];     /* extra msd arguments, NULL-terminated, kept for restarts */
    char log[300];            /* msd's stderr (appended across restarts) */
} h_msd;

typedef struct h_resp {
    long status;   /* 0: no answer */
    int transport; /* ms_status of the transport (0 when an answer came) */
    char *body;    /* NUL-terminated, malloc'd */
    size_t len;
    json_t *json; /* parsed body or NULL */
} h_resp;

/* Path of a binary from the environment; aborts the test if unset. */
const char *h_bin(const char *env);
/* Milliseconds on the monotonic clock. */
int64_t h_now_ms(void);
/* Sleeps ms (only between polls). */
void h_nap(int ms);

/* Runs fn at exit after the msds are stopped and their state directories removed, even
 * when that clean-up fails (it then exits with _exit(1), past later atexit handlers). */
void h_after_cleanup(void (*fn)(void));

/* Starts msd in a new temporary state directory with extra args (NULL-terminated, may be
 * NULL; kept for h_msd_restart) and waits until it answers. NULL on failure (printed). */
h_msd *h_msd_start(const char *const *args);
/* Starts msd again on the same state directory (after a kill); waits until it answers. */
int h_msd_restart(h_msd *m);
/* Sends sig to msd and waits (bounded) for it to exit; returns its wait status or -1. */
int h_msd_signal(h_msd *m, int sig, int timeout_ms);

/* One HTTP request to msd (path such as "/v1/services"); token may be NULL; body raw
 * bytes (NULL: none); headers NULL-terminated "Name: value" (may be NULL). */
int h_http(h_msd *m, const char *method, const char *path, const char *token, const char *body,
           size_t len, const char *const *headers, h_resp *r);
/* The same on msd's unix socket. */
int h_http_unix(h_msd *m, const char *method, const char *path, const char *token, const char *body,
                size_t len, h_resp *r);
/* The same to any path over any unix socket (the Host header says "localhost"). */
int h_http_sock(const char *sock, const char *method, const char *path, const char *body,
                size_t len, const char *const *headers, h_resp *r);
/* The same to any URL. */
int h_http_url(const char *method, const char *url, const char *token, const char *body, size_t len,
               const char *const *headers, h_resp *r);
void h_resp_free(h_resp *r);
/* The "code" of a JSON error answer, or "". */
const char *h_err_code(const h_resp *r);

/* Runs msctl against m with its state directory and the given args (NULL-terminated);
 * captures stdout and stderr (malloc'd, may be NULL'd by passing NULL). Returns the exit
 * status, -1 if it could not run or was killed after timeout_ms. */
int h_msctl(h_msd *m, char **out, char **err, int timeout_ms, const char *const *args);
/* The same with the arguments listed (NULL-terminated, at most 31) and a 60 s bound. */
int h_msctl_list(h_msd *m, char **out, char **err, ...);
/* Removes dir and everything below it; same_fs: without crossing into other mounts. */
void h_rm_tree(const char *dir, int same_fs);
/* Starts argv[0] with argv, stdout and stderr appended to log, stdin from /dev/null, SIGTERM
 * when this process dies, and the variables named in unset (NULL-terminated, may be NULL)
 * removed from its environment. Its pid, or -1 (errno set by fork). */
pid_t h_spawn_logged(const char *const *argv, const char *log, const char *const *unset);
/* Runs any program; same conventions. env: extra "NAME=value" (NULL-terminated) or NULL. */
int h_run(const char *const *argv, const char *const *env, char **out, char **err, int timeout_ms);

/* GET /v1/services with the call token (new reference; NULL on failure). */
json_t *h_services(h_msd *m);
/* Instances of service (all builds) in state ("ready", ...; NULL: any). */
int h_count(h_msd *m, const char *service, const char *state);
/* Waits until h_count(m, service, state) == n; 0 or -1 on timeout. */
int h_wait_count(h_msd *m, const char *service, const char *state, int n, int timeout_ms);
/* Events of a type (and service, if not NULL) so far. */
int h_count_events(h_msd *m, const char *type, const char *service);
/* Waits until at least n such events exist; 0 or -1. */
int h_wait_events(h_msd *m, const char *type, const char *service, int n, int timeout_ms);
/* The events as a JSON array (new reference). */
json_t *h_events(h_msd *m);
/* Pid of instance id (0 if none). */
pid_t h_instance_pid(h_msd *m, const char *id);

/* Whether a process exists (and is not a zombie). */
int h_alive(pid_t pid);
/* Waits until pid is gone; 0 or -1. */
int h_wait_gone(pid_t pid, int timeout_ms);

/* Processes running a binary deployed to m (their /proc/<pid>/exe is under <state>/bin/),
 * whoever their parent is: the instances, seen by the kernel rather than by msd. Fills
 * pids[0..max-1] when pids is not NULL; returns how many there are. */
int h_instance_procs(h_msd *m, pid_t *pids, int max);

/* Deploys an executable through the API (admin token); returns the HTTP status. */
long h_deploy(h_msd *m, const char *path, json_t **reply);

#endif /* MS_TEST_HARNESS_H */
