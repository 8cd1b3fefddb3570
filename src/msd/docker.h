/*
 * docker.h: msd's client of the Docker Engine API (over the daemon's unix socket), and the
 * FROM-scratch image of a deployed executable. runner_docker.c is its user.
 *
 * Design notes
 * - The transport is src/net's HTTP client (httpc.h), which speaks HTTP/1.1 over a unix
 *   socket already; libcurl (also linked by msd) would serve as well, but httpc is the
 *   project's own, keeps a connection per thread, and bounds every answer (body_max).
 *   Every answer of the daemon is bounded: MSD_DOCKER_BODY_MAX bytes, a deadline per
 *   request (none only for the wait of a container's exit, which is meant to last).
 * - The API version is fixed (MSD_DOCKER_API): Docker 20.10 (Debian 12's docker.io) serves
 *   1.41, and newer daemons still serve it.
 * - The image (decision, docs/docker.md): made with POST /images/create?fromSrc=- (an
 *   import) from a tar of the root file system msd writes itself: the executable at
 *   /ms/bin/<name>, the shared libraries ldd lists (and the dynamic loader) at the paths
 *   ldd gives, glibc's NSS modules that ldd does not list (libnss_files, libnss_dns, from
 *   libc's directory, when present), a minimal /etc/nsswitch.conf and /tmp. The entry point
 *   and LD_LIBRARY_PATH (the libraries' directories) are set with the import's `changes`.
 *   No Dockerfile, no builder, no docker CLI, no registry, no pull. Its name is
 *   MSD_DOCKER_REPO:<build> (the deployment's SHA-256), so it is made once per build.
 * - Functions return 0 or a negative errno and fill msg (which names the daemon's own
 *   message when it gave one). Any thread: nothing here is shared between threads.
 */
#ifndef MSD_DOCKER_H
#define MSD_DOCKER_H

#include "msd.h"

#define MSD_DOCKER_SOCKET_DEFAULT "/var/run/docker.sock"
#define MSD_DOCKER_API "/v1.41"
#define MSD_DOCKER_BODY_MAX (1u << 20)  /* the largest answer accepted from the daemon */
#define MSD_DOCKER_REPO "ms-build"      /* images are MSD_DOCKER_REPO:<build> */
#define MSD_DOCKER_LDD "ldd"            /* found in PATH */
#define MSD_DOCKER_IMAGE_BIN "/ms/bin/" /* where the executable goes in the image */
#define MSD_DOCKER_TAR_MAX ((size_t)1 << 30)
#define MSD_DOCKER_LOG_LINES 1000 /* of a container's output, copied to logs/<id>.log */

/* Labels of the containers msd runs (DESIGN section 9). */
#define MSD_DOCKER_LABEL_INSTANCE "ms.instance"
#define MSD_DOCKER_LABEL_MSD "ms.msd"
#define MSD_DOCKER_LABEL_EPOCH "ms.epoch"
#define MSD_DOCKER_LABEL_BUILD "ms.build"

/*
 * One request to the daemon at sock: method, path after the version prefix ("/_ping",
 * "/containers/create?name=x"), a body (NULL: none) of content type ctype, within
 * timeout_ms (0: no deadline). On 0, *status is the HTTP status and, when out is not NULL,
 * *out the parsed JSON answer (NULL if it had none or it was not JSON), and text (when not
 * NULL) a copy of the raw answer, truncated to textlen. -errno when no answer came.
 */
int msd_docker_request(const char *sock, const char *method, const char *path, const char *ctype,
                       const void *body, size_t len, int timeout_ms, long *status, json_t **out,
                       char *text, size_t textlen, char *msg, size_t msglen);

/* The same with a JSON body (NULL: none). */
int msd_docker_json(const char *sock, const char *method, const char *path, const json_t *body,
                    int timeout_ms, long *status, json_t **out, char *msg, size_t msglen);

/* The daemon's message in an error answer ({"message": ...}), or "HTTP <status>". */
const char *msd_docker_error_text(long status, const json_t *answer, char *buf, size_t len);

/* GET /_ping: 0 when a daemon answers "OK" at sock, else -errno with msg. */
int msd_docker_ping(const char *sock, char *msg, size_t msglen);

/* Appends the last MSD_DOCKER_LOG_LINES lines of container id's output (stdout and stderr,
 * as the daemon kept them) to the file at path. 0 or -errno with msg. */
int msd_docker_save_logs(const char *sock, const char *id, const char *path, char *msg,
                         size_t msglen);

/*
 * Makes sure the image MSD_DOCKER_REPO:<build> exists at sock, importing it from exe (see
 * the design notes) when it does not. name is the executable's name in the image (a file
 * name; sanitised). image gets the image's name. 0, or -errno with msg (a library ldd
 * cannot find, an executable too large, the daemon's refusal).
 */
int msd_docker_image_ensure(const char *sock, const char *exe, const char *name, const char *build,
                            char image[160], char *msg, size_t msglen);

#endif /* MSD_DOCKER_H */
