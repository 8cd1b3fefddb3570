/*
 * dockerd.h: a private Docker daemon for the docker runner's tests.
 *
 * Design notes
 * - The daemon is started by the test, as root, with everything of its own in a temporary
 *   directory (/tmp/ms-dockerd-XXXXXX): --data-root, --exec-root, --pidfile, the API socket
 *   (-H unix://<dir>/docker.sock) and a --config-file that keeps its trust key there too
 *   (otherwise /etc/docker/key.json). It touches no network: --bridge=none,
 *   --iptables=false, --ip6tables=false, --ip-masq=false, --ip-forward=false (the sysctl
 *   stays as it is); containers use host networking. Cgroups through cgroupfs, under a
 *   parent of its own (--cgroup-parent /<the directory's name>, removed at the end).
 * - Readiness is GET /_ping, polled (bounded). The daemon gets PR_SET_PDEATHSIG=SIGTERM, so
 *   it stops if the test dies in any way.
 * - Clean-up (h_dockerd_stop, also at exit through h_after_cleanup, after the msds are
 *   stopped): every container is removed (force), then every image; the daemon is stopped
 *   by its PID (SIGTERM, SIGKILL after 20 s) and reaped; its parent cgroups are removed;
 *   mounts it left under the directory are detached; the directory is removed (kept when
 *   MS_TEST_KEEP is set).
 * - When the daemon cannot run here (no dockerd, not root, it exits or does not answer),
 *   h_dockerd_start says why, with the daemon's last error line: the test then exits 77,
 *   which ctest reports as skipped (SKIP_RETURN_CODE).
 */
#ifndef MS_TEST_DOCKERD_H
#define MS_TEST_DOCKERD_H

#include "harness.h"

#include <stddef.h>
#include <sys/types.h>

#define H_SKIP 77 /* the exit status ctest reads as "skipped" */

typedef struct h_dockerd {
    pid_t pid; /* 0 when not running */
    char dir[64];
    char sock[128];
    char log[128];
} h_dockerd;

/* Starts the daemon and waits until it answers. 0, or -1 with why filled. */
int h_dockerd_start(h_dockerd *d, char *why, size_t whylen);
/* One request to the daemon's API (path such as "/v1.41/containers/json"); body JSON or
 * NULL. */
int h_docker(h_dockerd *d, const char *method, const char *path, const char *body, h_resp *r);
/* Stops the daemon by its PID (SIGTERM; SIGKILL after 20 s), as if it went away: its
 * containers stop with it, the directory stays for h_dockerd_stop. */
void h_dockerd_kill(h_dockerd *d);
/* Removes every container and image, stops the daemon, removes its directory. Idempotent. */
void h_dockerd_stop(h_dockerd *d);

#endif /* MS_TEST_DOCKERD_H */
