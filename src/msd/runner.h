/*
 * runner.h: how msd starts, watches and stops instances, behind a vtable.
 *
 * Design notes
 * - One backend per file: runner_process.c (local mode: subprocesses), runner_docker.c
 *   (containers: msd --runner docker); a Kubernetes runner later. The reconcile loop is the
 *   only caller and drives the drain handshake itself (an HTTP POST to the instance, the
 *   same for every runner); a runner only starts processes, reports their exit and
 *   delivers signals.
 * - Exits are noticed at once: every running instance has an `exit_fd` that becomes
 *   readable when it exits (a pidfd for processes, a pipe fed by a watcher thread for
 *   containers), which the reconcile loop polls with everything else it waits for. `reap`
 *   then collects the exit.
 * - A process from an earlier run of msd (found in the store at start) is re-adopted with
 *   `adopt`, which checks that the pid still names the same process (its start time) and
 *   opens an exit_fd for it; it is not our child, so its exit status is unknown.
 * - Functions return 0 or a negative errno and fill msg on failure. Not thread-safe: used
 *   by the reconcile loop (and msd_deploy's describe run, which has its own function).
 */
#ifndef MSD_RUNNER_H
#define MSD_RUNNER_H

#include "msd.h"

typedef struct msd_spawn {
    const char *exe;        /* the file to run: <state>/bin/<build> */
    const char *argv0;      /* argv[0] the program sees */
    const json_t *args;     /* array of strings: argv[1..] */
    const char *const *env; /* extra "NAME=value" entries, NULL-terminated */
    const char *log_path;   /* stdout and stderr go here (appended) */
    const char *instance;   /* the slot ("i-17") and its epoch: names and labels */
    int64_t epoch;
    const char *build;        /* the deployment's SHA-256 (hex) */
    const char *const *files; /* files the program reads by path (its tokens), NULL-
                                 terminated: a container gets them mounted read-only */
} msd_spawn;

typedef struct msd_runner_ops {
    const char *name;
    /* Starts an instance: fills proc and the address it listens on. */
    int (*spawn)(msd_runner *r, const msd_spawn *sp, msd_proc *proc, char addr[MSD_ADDR_MAX],
                 char *msg, size_t msglen);
    /* Re-adopts proc (pid and start_time filled from the store): 0 if the same process is
     * still running (proc->exit_fd then set), -ESRCH if it is gone. */
    int (*adopt)(msd_runner *r, msd_proc *proc);
    /* Collects the exit if the process has exited: 1 exited (proc->exited, status set),
     * 0 still running. */
    int (*reap)(msd_runner *r, msd_proc *proc);
    /* Delivers a signal (SIGTERM, SIGKILL) if the process is still the one started. */
    int (*signal)(msd_runner *r, msd_proc *proc, int sig);
    /* Releases what proc holds (exit_fd) and zeroes it. */
    void (*release)(msd_runner *r, msd_proc *proc);
    void (*close)(msd_runner *r);
} msd_runner_ops;

struct msd_runner {
    const msd_runner_ops *ops;
};

int msd_runner_process_open(msd_runner **out);
/* The docker runner (runner_docker.c) on the daemon at socket; state_dir names this msd
 * (the ms.msd label). Fails with msg when no daemon answers there. */
int msd_runner_docker_open(const char *socket, const char *state_dir, msd_runner **out, char *msg,
                           size_t msglen);

/*
 * Builds the environment of a program msd runs: msd's own, without LISTEN_* variables and
 * without MS_* ones except an allowlist of instance tuning (MS_LOG, MS_QUEUE_MAX,
 * MS_DEDUPE_MAX_ENTRIES, MS_DEDUPE_MAX_BYTES, MS_ORPHAN_TIMEOUT_MS), plus extra
 * (NULL-terminated "NAME=value"). Returns a malloc'd NULL-terminated
 * array whose strings are malloc'd; free with msd_env_free. reserve adds that many empty
 * slots before the NULL for the caller.
 */
char **msd_env_build(const char *const *extra, size_t reserve);
void msd_env_free(char **env);

/*
 * Runs exe with argv and MS_DESCRIBE=1 (stdin /dev/null), collecting stdout (at most
 * out_max bytes) and the tail of stderr, within timeout_ms; kills it past that. 0 and
 * *out (malloc'd) when it exited 0; else -errno/-1 with msg naming the cause.
 */
int msd_run_describe(const char *exe, const char *argv0, int timeout_ms, size_t out_max, char **out,
                     size_t *outlen, char *msg, size_t msglen);

#endif /* MSD_RUNNER_H */
