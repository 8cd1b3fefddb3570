/*
 * runner_docker.c: the docker runner: instances are containers of a Docker daemon, reached
 * through its Engine API on a unix socket (contract: runner.h; the API client and the
 * image: docker.h; user's view: docs/docker.md).
 *
 * Design notes
 * - Spawn: the image MSD_DOCKER_REPO:<build> is made if the daemon does not have it
 *   (msd_docker_image_ensure: once per build), then a container is created and started:
 *   host networking (there is no bridge; the instance binds 127.0.0.1:0 like any process
 *   and tells msd its address in its first heartbeat, so spawn returns no address), the
 *   deployment's arguments, the environment runner_process.c gives a process
 *   (msd_env_build: msd's own, filtered, plus MS_SERVE and the instance's credentials)
 *   without LD_* variables (the image sets LD_LIBRARY_PATH), msd's uid and gid, the token
 *   files mounted read-only at their own paths, and the labels ms.instance, ms.msd (this
 *   msd: the first 16 hex digits of the SHA-256 of its state directory), ms.epoch,
 *   ms.build. Its name is ms-<msd>-<instance>-<epoch>. proc->pid is the container's main
 *   process as the host sees it (State.Pid). A container whose process is gone before
 *   spawn could see it running is removed and the spawn fails (a start-up death).
 * - Exit watching (threads): each container has one watcher thread, detached, that waits
 *   on POST /containers/{id}/wait (a long poll, no deadline, its own connection: httpc's
 *   clients are per thread) and then writes a byte to a pipe whose read end is the
 *   instance's exit_fd. The watcher and the reconcile loop share only the `ctr` (reference
 *   counted: one reference each; whoever drops the last frees it) and its atomics `code`
 *   and `done`. A daemon that stops answering counts as the container's exit after
 *   WATCH_TRIES failed attempts (its containers die with it: no live-restore). Every other
 *   function here runs on the reconcile loop's thread, under msd.mu.
 * - signal: POST /containers/{id}/kill?signal=N. The instance is PID 1 of its PID
 *   namespace, which is fine: libms handles SIGTERM itself (a drain), and SIGKILL comes
 *   from outside the namespace.
 * - release: a container whose exit was seen is removed (DELETE ?force=1); one still running
 *   (msd stopping with SIGQUIT, or a container that survived SIGKILL) is left to run and
 *   only forgotten.
 * - Not yet (docs/docker.md): re-adoption. adopt always answers -ESRCH, and at open every
 *   container labelled with this msd is removed (running or not), so that a restarted msd
 *   never runs two containers for one slot. CPU from the stats API. The instances' output
 *   reaches logs/<id>.log only once the container has exited (the last
 *   MSD_DOCKER_LOG_LINES lines, copied before the removal); meanwhile it is in the
 *   daemon's log of the container (json-file, at most 10 MB).
 * - The image is made on the first spawn of a build, on the loop's thread, which holds
 *   msd.mu meanwhile (about 100 ms for a small program here); every request is bounded.
 */
#include "runner.h"

#include "docker.h"
#include "httpc.h"
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REQ_TIMEOUT_MS 30000 /* create, start, kill, remove, inspect */
#define WATCH_TRIES 5        /* failed waits in a row before the daemon counts as gone */
#define MSD_ID_HEX 16

static int remove_container(const char *sock, const char *id, char *msg, size_t msglen);

typedef struct dk_runner {
    msd_runner base; /* first: the runner.h handle */
    char sock[108];
    char msd_id[MSD_ID_HEX + 1];
    char uidgid[48];
} dk_runner;

/* One container: shared by the instance's proc (runner_data) and its watcher thread. */
typedef struct ctr {
    _Atomic int refs;
    _Atomic int done; /* the watcher saw the exit (or gave up on the daemon) */
    _Atomic int code; /* the exit code the daemon reported; -1 unknown */
    int rfd, wfd;     /* the pipe: rfd is exit_fd (the loop's), wfd the watcher's */
    char sock[108];
    char id[72];
    char name[MSD_NAME_MAX];
    char log_path[4096]; /* its output is copied there before the removal */
} ctr;

static void
ctr_unref(ctr *c)
{
    if (--c->refs == 0)
        free(c);
}

static void *
watch(void *arg)
{
    ctr *c = arg;
    char path[128], msg[300];
    msd_fmt(path, sizeof path, "/containers/%s/wait", c->id);
    int fails = 0;
    for (;;) {
        long status = 0;
        json_t *j = NULL;
        int res = msd_docker_json(c->sock, "POST", path, NULL, 0, &status, &j, msg, sizeof msg);
        if (res == 0 && status == 200) {
            json_t *sc = json_object_get(j, "StatusCode");
            json_int_t v = json_is_integer(sc) ? json_integer_value(sc) : -1;
            c->code = v >= 0 && v <= 255 ? (int)v : -1; /* an exit status, or unknown */
            json_decref(j);
            break;
        }
        json_decref(j);
        if (res == 0 && status == 404) { /* removed behind our back */
            c->code = -1;
            break;
        }
        if (++fails >= WATCH_TRIES) {
            msd_log("error", "docker: container %s: cannot wait for its exit (%s): gone", c->name,
                    res ? msg : "unexpected answer");
            c->code = -1;
            break;
        }
        struct timespec ts = {0, 500 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    c->done = 1;
    char one = 1;
    ssize_t w = write(c->wfd, &one, 1); /* EPIPE if released meanwhile: msd ignores SIGPIPE */
    (void)w;
    close(c->wfd);
    msi_httpc_thread_release();
    ctr_unref(c);
    return NULL;
}

/* Copies the container's output to the instance's log, then removes it. */
static void
remove_exited(const char *sock, const char *id, const char *name, const char *log_path)
{
    char m[300];
    if (log_path[0] && msd_docker_save_logs(sock, id, log_path, m, sizeof m) < 0)
        msd_log("warn", "docker: cannot copy the output of container %s: %s", name, m);
    if (remove_container(sock, id, m, sizeof m) < 0)
        msd_log("warn", "docker: cannot remove container %s: %s", name, m);
}

static int
remove_container(const char *sock, const char *id, char *msg, size_t msglen)
{
    char path[160];
    long status = 0;
    msd_fmt(path, sizeof path, "/containers/%s?force=1", id);
    int res = msd_docker_request(sock, "DELETE", path, NULL, NULL, 0, REQ_TIMEOUT_MS, &status, NULL,
                                 NULL, 0, msg, msglen);
    if (res == 0 && status != 204 && status != 404) {
        msd_fmt(msg, msglen, "DELETE %s: HTTP %ld", path, status);
        res = -EIO;
    }
    return res;
}

/* The JSON body of POST /containers/create. */
static json_t *
create_body(dk_runner *r, const msd_spawn *sp, const char *image)
{
    json_t *cmd = json_array(), *env = json_array(), *binds = json_array();
    json_t *labels = json_object();
    char **envp = msd_env_build(sp->env, 0);
    char epoch[24];
    json_t *body = NULL;
    if (!cmd || !env || !binds || !labels || !envp)
        goto out;
    for (size_t i = 0; json_is_array(sp->args) && i < json_array_size(sp->args); i++) {
        const char *a = json_string_value(json_array_get(sp->args, i));
        json_array_append_new(cmd, json_string(a ? a : ""));
    }
    for (char **e = envp; *e; e++)
        if (strncmp(*e, "LD_", 3) != 0)
            json_array_append_new(env, json_string(*e));
    for (const char *const *f = sp->files; f && *f; f++) {
        char *b = msd_strf("%s:%s:ro", *f, *f);
        if (b)
            json_array_append_new(binds, json_string(b));
        free(b);
    }
    msd_fmt(epoch, sizeof epoch, "%lld", (long long)sp->epoch);
    json_object_set_new(labels, MSD_DOCKER_LABEL_INSTANCE, json_string(sp->instance));
    json_object_set_new(labels, MSD_DOCKER_LABEL_MSD, json_string(r->msd_id));
    json_object_set_new(labels, MSD_DOCKER_LABEL_EPOCH, json_string(epoch));
    json_object_set_new(labels, MSD_DOCKER_LABEL_BUILD, json_string(sp->build));
    body = json_pack("{s:s, s:O, s:O, s:s, s:s, s:O, s:{s:s, s:O, s:{s:s, s:{s:s, s:s}}}}", "Image",
                     image, "Cmd", cmd, "Env", env, "User", r->uidgid, "WorkingDir", "/", "Labels",
                     labels, "HostConfig", "NetworkMode", "host", "Binds", binds, "LogConfig",
                     "Type", "json-file", "Config", "max-size", "10m", "max-file", "1");
out:
    json_decref(cmd);
    json_decref(env);
    json_decref(binds);
    json_decref(labels);
    msd_env_free(envp);
    return body;
}

/* A line in the instance's log file: where this epoch's output is. */
static void
log_note(const msd_spawn *sp, const char *name, const char *id)
{
    int fd = open(sp->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return;
    char head[400];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    int n = snprintf(head, sizeof head,
                     "---- msd: starting %s at %04d-%02d-%02dT%02d:%02d:%02dZ as container %s "
                     "(%.12s); its output is copied here when it has exited\n",
                     sp->argv0, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, name, id);
    if (n > 0) {
        ssize_t w = write(fd, head, (size_t)n < sizeof head ? (size_t)n : sizeof head - 1);
        (void)w;
    }
    close(fd);
}

static int
dk_spawn(msd_runner *rr, const msd_spawn *sp, msd_proc *proc, char addr[MSD_ADDR_MAX], char *msg,
         size_t msglen)
{
    dk_runner *r = (dk_runner *)rr;
    char image[160], path[400], m[400], name[MSD_NAME_MAX];
    long status = 0;
    json_t *body = NULL, *ans = NULL;
    ctr *c = NULL;
    int res, created = 0;
    char id[72] = "";

    addr[0] = '\0'; /* learned from the first heartbeat */
    res = msd_docker_image_ensure(r->sock, sp->exe, sp->argv0, sp->build, image, msg, msglen);
    if (res)
        return res;

    msd_fmt(name, sizeof name, "ms-%.8s-%s-%lld", r->msd_id, sp->instance, (long long)sp->epoch);
    body = create_body(r, sp, image);
    if (!body) {
        msd_fmt(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    msd_fmt(path, sizeof path, "/containers/create?name=%s", name);
    res = msd_docker_json(r->sock, "POST", path, body, REQ_TIMEOUT_MS, &status, &ans, m, sizeof m);
    if (res == 0 && status == 409) {
        /* A container of that name is left from an earlier try: it is ours, remove it. */
        json_decref(ans);
        ans = NULL;
        remove_container(r->sock, name, m, sizeof m);
        res = msd_docker_json(r->sock, "POST", path, body, REQ_TIMEOUT_MS, &status, &ans, m,
                              sizeof m);
    }
    const char *cid = json_string_value(json_object_get(ans, "Id"));
    if (res || status != 201 || !cid || strlen(cid) >= sizeof id ||
        strspn(cid, "0123456789abcdef") != strlen(cid)) {
        if (!res)
            msd_docker_error_text(status, ans, m, sizeof m);
        msd_fmt(msg, msglen, "docker: cannot create container %s: %s", name, m);
        res = res ? res : -EIO;
        goto fail;
    }
    memcpy(id, cid, strlen(cid) + 1);
    created = 1;
    json_decref(ans);
    ans = NULL;

    c = calloc(1, sizeof *c);
    int p[2] = {-1, -1};
    if (c)
        c->rfd = c->wfd = -1;
    if (!c || pipe2(p, O_CLOEXEC) < 0) {
        res = c ? -errno : -ENOMEM;
        msd_fmt(msg, msglen, "cannot watch container %s: %s", name, strerror(-res));
        goto fail;
    }
    c->rfd = p[0];
    c->wfd = p[1];
    c->code = -1;
    msd_fmt(c->sock, sizeof c->sock, "%s", r->sock);
    msd_fmt(c->id, sizeof c->id, "%s", id);
    msd_fmt(c->name, sizeof c->name, "%s", name);
    msd_fmt(c->log_path, sizeof c->log_path, "%s", sp->log_path);

    msd_fmt(path, sizeof path, "/containers/%s/start", id);
    res = msd_docker_request(r->sock, "POST", path, NULL, NULL, 0, REQ_TIMEOUT_MS, &status, &ans,
                             NULL, 0, m, sizeof m);
    if (res || (status != 204 && status != 304)) {
        if (!res)
            msd_docker_error_text(status, ans, m, sizeof m);
        msd_fmt(msg, msglen, "docker: cannot start container %s: %s", name, m);
        res = res ? res : -EIO;
        goto fail;
    }
    json_decref(ans);
    ans = NULL;

    /* The watcher starts before the inspection, so that an exit from now on is seen. */
    c->refs = 2;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    pthread_t t;
    int e = pthread_create(&t, &at, watch, c);
    pthread_attr_destroy(&at);
    if (e) {
        c->refs = 0;
        res = -e;
        msd_fmt(msg, msglen, "cannot watch container %s: %s", name, strerror(e));
        goto fail;
    }

    msd_fmt(path, sizeof path, "/containers/%s/json", id);
    res = msd_docker_json(r->sock, "GET", path, NULL, REQ_TIMEOUT_MS, &status, &ans, m, sizeof m);
    json_t *state = json_object_get(ans, "State");
    json_int_t pid = json_integer_value(json_object_get(state, "Pid"));
    if (res || status != 200 || pid <= 0 || pid > INT32_MAX) {
        json_int_t code = json_integer_value(json_object_get(state, "ExitCode"));
        if (res)
            msd_fmt(msg, msglen, "docker: cannot inspect container %s: %s", name, m);
        else if (status != 200)
            msd_fmt(msg, msglen, "docker: cannot inspect container %s: %s", name,
                    msd_docker_error_text(status, ans, m, sizeof m));
        else
            msd_fmt(msg, msglen, "container %s exited at once with status %lld", name,
                    (long long)code);
        res = res ? res : -ECHILD;
        goto fail_watched;
    }
    json_decref(ans);
    log_note(sp, name, id);

    memset(proc, 0, sizeof *proc);
    proc->pid = (pid_t)pid;
    proc->start_time = msd_proc_start_time(proc->pid);
    proc->exit_fd = c->rfd;
    proc->status = -1;
    proc->runner_data = c;
    json_decref(body);
    return 0;

fail_watched:
    /* The watcher holds its reference; the removal ends its wait. */
    json_decref(ans);
    json_decref(body);
    log_note(sp, name, id);
    remove_exited(r->sock, id, name, sp->log_path);
    close(c->rfd);
    ctr_unref(c);
    return res;
fail:
    json_decref(ans);
    json_decref(body);
    if (created)
        remove_container(r->sock, id, m, sizeof m);
    if (c) {
        if (c->rfd >= 0)
            close(c->rfd);
        if (c->wfd >= 0)
            close(c->wfd);
        free(c);
    }
    return res;
}

static int
dk_adopt(msd_runner *r, msd_proc *proc)
{
    (void)r;
    /* Re-adoption is not done yet: the open removed every container of this msd. */
    proc->exit_fd = -1;
    proc->runner_data = NULL;
    return -ESRCH;
}

static int
dk_reap(msd_runner *r, msd_proc *proc)
{
    (void)r;
    ctr *c = proc->runner_data;
    if (proc->exited || !c)
        return 1;
    struct pollfd p = {c->rfd, POLLIN, 0};
    if (!c->done || poll(&p, 1, 0) != 1)
        return 0;
    proc->exited = 1;
    /* The daemon's exit code: 128 + N is taken as death by signal N (what a shell and
     * Docker say); the wait status is made so that exit_text() reads like a process's. */
    int code = c->code;
    proc->child = code >= 0;
    if (code > 128 && code < 128 + 65)
        proc->status = code - 128;
    else
        proc->status = code >= 0 ? (code & 0xff) << 8 : -1;
    return 1;
}

static int
dk_signal(msd_runner *rr, msd_proc *proc, int sig)
{
    dk_runner *r = (dk_runner *)rr;
    ctr *c = proc->runner_data;
    if (!c || proc->exited || c->done)
        return -ESRCH;
    char path[160], m[300];
    long status = 0;
    msd_fmt(path, sizeof path, "/containers/%s/kill?signal=%d", c->id, sig);
    int res = msd_docker_request(r->sock, "POST", path, NULL, NULL, 0, REQ_TIMEOUT_MS, &status,
                                 NULL, NULL, 0, m, sizeof m);
    if (res) {
        msd_log("warn", "docker: container %s: signal %d: %s", c->name, sig, m);
        return res;
    }
    if (status == 204)
        return 0;
    return status == 404 || status == 409 ? -ESRCH : -EIO;
}

static void
dk_release(msd_runner *rr, msd_proc *proc)
{
    dk_runner *r = (dk_runner *)rr;
    ctr *c = proc->runner_data;
    if (c) {
        if (c->done)
            remove_exited(r->sock, c->id, c->name, c->log_path);
        close(c->rfd);
        ctr_unref(c);
    }
    proc->runner_data = NULL;
    proc->exit_fd = -1;
}

static void
dk_close(msd_runner *r)
{
    free(r);
}

static const msd_runner_ops docker_ops = {
    .name = "docker",
    .spawn = dk_spawn,
    .adopt = dk_adopt,
    .reap = dk_reap,
    .signal = dk_signal,
    .release = dk_release,
    .close = dk_close,
};

/* Removes every container labelled with this msd (see the design notes). */
static int
remove_ours(dk_runner *r, char *msg, size_t msglen)
{
    char filt[128], enc[256], path[400], m[300];
    msd_fmt(filt, sizeof filt, "{\"label\":[\"" MSD_DOCKER_LABEL_MSD "=%s\"]}", r->msd_id);
    size_t k = 0;
    for (const char *s = filt; *s && k + 4 < sizeof enc; s++) {
        if (*s == '{' || *s == '}' || *s == '"' || *s == '[' || *s == ']' || *s == ':' || *s == '=')
            k += (size_t)snprintf(enc + k, sizeof enc - k, "%%%02X", (unsigned char)*s);
        else
            enc[k++] = *s;
    }
    enc[k] = '\0';
    msd_fmt(path, sizeof path, "/containers/json?all=1&filters=%s", enc);
    long status = 0;
    json_t *list = NULL;
    int res =
        msd_docker_json(r->sock, "GET", path, NULL, REQ_TIMEOUT_MS, &status, &list, m, sizeof m);
    if (res || status != 200 || !json_is_array(list)) {
        msd_fmt(msg, msglen, "docker: cannot list containers: %s",
                res ? m : msd_docker_error_text(status, list, m, sizeof m));
        json_decref(list);
        return res ? res : -EIO;
    }
    size_t i, n = 0;
    json_t *it;
    json_array_foreach(list, i, it)
    {
        const char *id = json_string_value(json_object_get(it, "Id"));
        if (!id || strspn(id, "0123456789abcdef") != strlen(id) || strlen(id) > 64)
            continue;
        if (remove_container(r->sock, id, m, sizeof m) < 0)
            msd_log("warn", "docker: cannot remove container %.12s: %s", id, m);
        else
            n++;
    }
    if (n)
        msd_log("info",
                "docker: removed %zu container(s) of an earlier run of this msd (re-adoption is "
                "not done yet: their slots start afresh)",
                n);
    json_decref(list);
    return 0;
}

int
msd_runner_docker_open(const char *socket, const char *state_dir, msd_runner **out, char *msg,
                       size_t msglen)
{
    dk_runner *r = calloc(1, sizeof *r);
    if (!r) {
        msd_fmt(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    r->base.ops = &docker_ops;
    if (msd_fmt(r->sock, sizeof r->sock, "%s", socket) < 0) {
        msd_fmt(msg, msglen, "--docker-socket %s: path too long", socket);
        free(r);
        return -ENAMETOOLONG;
    }
    char hex[65];
    msi_sha256_hex_of(state_dir, strlen(state_dir), hex);
    msd_fmt(r->msd_id, sizeof r->msd_id, "%.*s", MSD_ID_HEX, hex);
    msd_fmt(r->uidgid, sizeof r->uidgid, "%ld:%ld", (long)geteuid(), (long)getegid());
    int res = msd_docker_ping(r->sock, msg, msglen);
    if (!res)
        res = remove_ours(r, msg, msglen);
    msi_httpc_thread_release(); /* the loop's thread makes its own connection */
    if (res) {
        free(r);
        return res;
    }
    *out = &r->base;
    return 0;
}
