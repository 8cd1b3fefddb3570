/*
 * runner_process.c: the local runner: instances are subprocesses of msd (contract: runner.h).
 *
 * Design notes
 * - Spawn: msd binds the instance's socket (127.0.0.1, port 0) and listens on it before
 *   forking, so the address is known, and reachable, before the program has even started;
 *   the child gets it as fd 3 by systemd's LISTEN_FDS convention (LISTEN_FDS=1,
 *   LISTEN_PID=<its pid>).
 * - msd is multithreaded, so between fork and exec the child only makes async-signal-safe
 *   calls: argv and the environment are built before the fork (with a reserved slot for
 *   LISTEN_PID, whose digits the child writes itself), then dup2, close_range, sigaction,
 *   setsid, execve. Every descriptor msd opens is O_CLOEXEC, and close_range closes
 *   everything from fd 4 anyway.
 * - The fork is a vfork: no page tables are copied, so starting a process
 *   costs msd ~0.1 ms instead of a fork's 1-3 ms (most of what msd spent on a first call).
 *   The child runs on msd's memory until execve, so every signal is blocked in the calling
 *   thread around the vfork (no msd handler can run in the child); the child resets every
 *   disposition to the default, then unblocks. The child writes nothing of msd's but the
 *   LISTEN_PID slot prepared for it.
 * - The child starts a session of its own (setsid): a ^C in msd's terminal does not reach
 *   the instances, which msd stops itself, by draining. Signal dispositions msd changed
 *   (SIGPIPE ignored) and its signal mask are reset to the defaults.
 * - Exit watching: pidfd_open(2) gives a descriptor that turns readable when the process
 *   exits; it works for re-adopted processes too (which are not our children). Children
 *   are reaped with waitpid(pid) for that pid only; msd never waits for "any child", so
 *   this file and the describe runner never steal each other's exits. Without pidfds (Linux
 *   before 5.3) exit_fd is -1 and the reconcile loop polls `reap` every tick instead.
 * - Signals go through pidfd_send_signal when there is a pidfd, so a signal never reaches
 *   another process that reused the pid; without one, the start time is checked first.
 */
#include "runner.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define LISTEN_PID_SLOT "LISTEN_PID=00000000000000000000"

static int
pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static int
pidfd_send_signal_(int pidfd, int sig)
{
#ifdef SYS_pidfd_send_signal
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
#else
    (void)pidfd;
    (void)sig;
    errno = ENOSYS;
    return -1;
#endif
}

/* ------------------------------------------------------------------------------------------
 * Environment and argv.
 * ---------------------------------------------------------------------------------------- */

/* MS_* variables of msd's own environment that reach the programs it runs: the tuning an
 * instance reads (docs/protocol.md, "Instance"). Every other MS_* variable is dropped:
 * tokens (MS_TOKEN, MS_TOKEN_FILE: msd's own credentials), what msd sets itself (MS_SERVE,
 * MS_ORCHESTRATOR, MS_INSTANCE_*, MS_ADMIN_TOKEN_SHA256, and MS_TOKEN_FILE again, naming the
 * call token) and what would make an instance act as something else (MS_MODE, MS_STATE_DIR,
 * MS_MSD, ...). An allowlist, so that a variable added later stays msd's until someone
 * decides otherwise. */
static const char *const env_pass[] = {
    "MS_LOG",
    "MS_QUEUE_MAX",
    "MS_DEDUPE_MAX_ENTRIES",
    "MS_DEDUPE_MAX_BYTES",
    "MS_ORPHAN_TIMEOUT_MS",
};

static int
env_passes(const char *e)
{
    if (strncmp(e, "LISTEN_", 7) == 0)
        return 0;
    if (strncmp(e, "MS_", 3) != 0)
        return 1;
    size_t n = strcspn(e, "=");
    for (size_t i = 0; i < sizeof env_pass / sizeof *env_pass; i++)
        if (strlen(env_pass[i]) == n && strncmp(e, env_pass[i], n) == 0)
            return 1;
    return 0;
}

void
msd_env_free(char **env)
{
    if (!env)
        return;
    for (char **e = env; *e; e++)
        free(*e);
    free(env);
}

char **
msd_env_build(const char *const *extra, size_t reserve)
{
    size_t n = 0, nx = 0;
    for (char **e = environ; e && *e; e++)
        n++;
    for (; extra && extra[nx]; nx++)
        ;
    /* calloc: the reserved slots stay NULL until the caller fills them. */
    char **env = calloc(n + nx + reserve + 1, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (char **e = environ; e && *e; e++) {
        if (!env_passes(*e))
            continue;
        if (!(env[k++] = strdup(*e)))
            goto fail;
    }
    for (size_t i = 0; i < nx; i++)
        if (!(env[k++] = strdup(extra[i])))
            goto fail;
    return env;
fail:
    msd_env_free(env);
    return NULL;
}

/* argv: argv0, then the strings of args. NULL-terminated; the strings are borrowed. */
static char **
argv_build(const char *argv0, const json_t *args)
{
    size_t n = json_is_array(args) ? json_array_size(args) : 0;
    char **argv = calloc(n + 2, sizeof *argv);
    if (!argv)
        return NULL;
    argv[0] = (char *)(uintptr_t)argv0;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(args, i));
        argv[i + 1] = (char *)(uintptr_t)(s ? s : "");
    }
    return argv;
}

/* Moves fd to a number >= 10 (close-on-exec), so that dup2 onto 0..3 never clobbers it. */
static int
lift_fd(int fd)
{
    if (fd < 0 || fd >= 10)
        return fd;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    close(fd);
    return nfd;
}

/* Async-signal-safe: writes n in decimal at the end of the LISTEN_PID slot. */
static void
put_pid(char *slot, long n)
{
    char digits[24];
    int k = 0;
    do {
        digits[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n && k < 20);
    char *p = slot + strlen("LISTEN_PID=");
    while (k)
        *p++ = digits[--k];
    *p = '\0';
}

/* What a child gets: descriptors dup2'd onto 1, 2, 0 and (when >= 0) 3, in that order;
 * the rest are closed. */
typedef struct child_spec {
    const char *exe;
    char **argv, **envp;
    char *pid_slot; /* NULL, or where the child writes its pid (LISTEN_PID) */
    int fd1, fd2, fd0, fd3;
} child_spec;

/* In the child, between vfork and exec: async-signal-safe calls only, nothing of msd's
 * memory written but the pid slot. Never returns. */
static void
child_exec(const child_spec *c)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &sa, NULL); /* fails harmlessly for SIGKILL, SIGSTOP, RT gaps */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();
    if (dup2(c->fd1, 1) < 0 || dup2(c->fd2, 2) < 0 || dup2(c->fd0, 0) < 0)
        _exit(126);
    if (c->fd3 >= 0 && dup2(c->fd3, 3) < 0)
        _exit(126);
    close_range(c->fd3 >= 0 ? 4 : 3, ~0u, 0);
    if (c->pid_slot)
        put_pid(c->pid_slot, (long)getpid());
    execve(c->exe, c->argv, c->envp);
    static const char msg[] = "msd: exec failed\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(127);
}

/* Starts c with vfork, every signal blocked in the calling thread around it (see the design
 * notes). The child never returns from here (it execs or exits), which is what makes vfork
 * safe to call in a helper. The pid, or -1 with errno set. */
__attribute__((noinline)) static pid_t
spawn_child(const child_spec *c)
{
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t pid = vfork();
    if (pid == 0)
        child_exec(c);
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    errno = e;
    return pid;
}

/* ------------------------------------------------------------------------------------------
 * The runner.
 * ---------------------------------------------------------------------------------------- */

static int
bind_loopback(char addr[MSD_ADDR_MAX], char *msg, size_t msglen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        msd_fmt(msg, msglen, "socket: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = 0;
    socklen_t sl = sizeof sin;
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &sl) < 0) {
        msd_fmt(msg, msglen, "bind 127.0.0.1:0: %s", strerror(errno));
        close(fd);
        return -1;
    }
    msd_fmt(addr, MSD_ADDR_MAX, "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
    return fd;
}

static int
proc_spawn(msd_runner *r, const msd_spawn *sp, msd_proc *proc, char addr[MSD_ADDR_MAX], char *msg,
           size_t msglen)
{
    (void)r;
    int res = 0;
    int sock = -1, logfd = -1, devnull = -1;
    char **argv = NULL, **envp = NULL;
    size_t nenv = 0;

    sock = lift_fd(bind_loopback(addr, msg, msglen));
    if (sock < 0) {
        res = -EIO;
        goto out;
    }
    logfd =
        lift_fd(open(sp->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (logfd < 0) {
        res = -errno;
        msd_fmt(msg, msglen, "%s: %s", sp->log_path, strerror(errno));
        goto out;
    }
    devnull = lift_fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (devnull < 0) {
        res = -errno;
        msd_fmt(msg, msglen, "/dev/null: %s", strerror(errno));
        goto out;
    }
    argv = argv_build(sp->argv0, sp->args);
    envp = msd_env_build(sp->env, 2);
    if (!argv || !envp) {
        res = -ENOMEM;
        msd_fmt(msg, msglen, "out of memory");
        goto out;
    }
    while (envp[nenv])
        nenv++;
    envp[nenv] = strdup("LISTEN_FDS=1");
    envp[nenv + 1] = strdup(LISTEN_PID_SLOT);
    if (!envp[nenv] || !envp[nenv + 1]) {
        res = -ENOMEM;
        msd_fmt(msg, msglen, "out of memory");
        goto out;
    }
    {
        /* A note in the log marks where each epoch's output begins. */
        char head[160];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        int n = snprintf(head, sizeof head,
                         "---- msd: starting %s at %04d-%02d-%02dT%02d:%02d:%02dZ on %s\n",
                         sp->argv0, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                         tm.tm_min, tm.tm_sec, addr);
        if (n > 0) {
            ssize_t w = write(logfd, head, (size_t)n < sizeof head ? (size_t)n : sizeof head - 1);
            (void)w;
        }
    }

    child_spec cs = {sp->exe, argv, envp, envp[nenv + 1], logfd, logfd, devnull, sock};
    pid_t pid = spawn_child(&cs);
    if (pid < 0) {
        res = -errno;
        msd_fmt(msg, msglen, "fork: %s", strerror(errno));
        goto out;
    }

    memset(proc, 0, sizeof *proc);
    proc->pid = pid;
    proc->child = 1;
    proc->status = -1;
    proc->start_time = msd_proc_start_time(pid);
    proc->exit_fd = pidfd_open_(pid);
    if (proc->exit_fd >= 0)
        proc->exit_fd = lift_fd(proc->exit_fd);
    if (proc->exit_fd >= 0)
        fcntl(proc->exit_fd, F_SETFD, FD_CLOEXEC);
out:
    if (sock >= 0)
        close(sock);
    if (logfd >= 0)
        close(logfd);
    if (devnull >= 0)
        close(devnull);
    free(argv);
    msd_env_free(envp);
    return res;
}

static int
proc_adopt(msd_runner *r, msd_proc *proc)
{
    (void)r;
    proc->child = 0;
    proc->exited = 0;
    proc->status = -1;
    proc->exit_fd = -1;
    if (proc->pid <= 0 || proc->start_time == 0)
        return -ESRCH;
    if (msd_proc_start_time(proc->pid) != proc->start_time)
        return -ESRCH;
    int fd = pidfd_open_(proc->pid);
    if (fd >= 0) {
        fd = lift_fd(fd);
        if (fd >= 0)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    /* Check again now that the pidfd pins the process: the pid might have been reused
     * between the first check and pidfd_open. */
    if (msd_proc_start_time(proc->pid) != proc->start_time) {
        if (fd >= 0)
            close(fd);
        return -ESRCH;
    }
    proc->exit_fd = fd;
    return 0;
}

static int
proc_reap(msd_runner *r, msd_proc *proc)
{
    (void)r;
    if (proc->exited || proc->pid <= 0)
        return 1;
    if (proc->child) {
        int st;
        pid_t w = waitpid(proc->pid, &st, WNOHANG);
        if (w == 0)
            return 0;
        proc->exited = 1;
        proc->status = w == proc->pid ? st : -1;
        return 1;
    }
    if (proc->exit_fd >= 0) {
        struct pollfd p = {proc->exit_fd, POLLIN, 0};
        if (poll(&p, 1, 0) == 1) {
            proc->exited = 1;
            return 1;
        }
        return 0;
    }
    if (msd_proc_start_time(proc->pid) != proc->start_time) {
        proc->exited = 1;
        return 1;
    }
    return 0;
}

static int
proc_signal(msd_runner *r, msd_proc *proc, int sig)
{
    (void)r;
    if (proc->pid <= 0 || proc->exited)
        return -ESRCH;
    if (proc->exit_fd >= 0) {
        if (pidfd_send_signal_(proc->exit_fd, sig) == 0)
            return 0;
        if (errno != ENOSYS)
            return -errno;
    }
    if (msd_proc_start_time(proc->pid) != proc->start_time)
        return -ESRCH;
    return kill(proc->pid, sig) == 0 ? 0 : -errno;
}

static void
proc_release(msd_runner *r, msd_proc *proc)
{
    (void)r;
    if (proc->exit_fd >= 0)
        close(proc->exit_fd);
    proc->exit_fd = -1;
}

static void
proc_close(msd_runner *r)
{
    free(r);
}

static const msd_runner_ops process_ops = {
    .name = "process",
    .spawn = proc_spawn,
    .adopt = proc_adopt,
    .reap = proc_reap,
    .signal = proc_signal,
    .release = proc_release,
    .close = proc_close,
};

int
msd_runner_process_open(msd_runner **out)
{
    msd_runner *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->ops = &process_ops;
    *out = r;
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * The describe run (deploy.c): a short-lived child with its output captured.
 * ---------------------------------------------------------------------------------------- */

int
msd_run_describe(const char *exe, const char *argv0, int timeout_ms, size_t out_max, char **out,
                 size_t *outlen, char *msg, size_t msglen)
{
    int res = 0;
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, devnull = -1;
    char **envp = NULL;
    char *buf = NULL;
    size_t n = 0;
    char errtail[512];
    size_t nerr = 0;
    pid_t pid = -1;
    const char *extra[] = {"MS_DESCRIBE=1", NULL};
    char *argv[2] = {(char *)(uintptr_t)argv0, NULL};

    if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
        res = -errno;
        msd_fmt(msg, msglen, "pipe: %s", strerror(errno));
        goto out;
    }
    for (int i = 0; i < 2; i++) {
        outp[i] = lift_fd(outp[i]);
        errp[i] = lift_fd(errp[i]);
    }
    devnull = lift_fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
    envp = msd_env_build(extra, 0);
    buf = malloc(out_max + 1);
    if (devnull < 0 || outp[0] < 0 || outp[1] < 0 || errp[0] < 0 || errp[1] < 0 || !envp || !buf) {
        res = -ENOMEM;
        msd_fmt(msg, msglen, "cannot prepare the describe run");
        goto out;
    }
    child_spec cs = {exe, argv, envp, NULL, outp[1], errp[1], devnull, -1};
    pid = spawn_child(&cs);
    if (pid < 0) {
        res = -errno;
        msd_fmt(msg, msglen, "fork: %s", strerror(errno));
        goto out;
    }
    close(outp[1]);
    outp[1] = -1;
    close(errp[1]);
    errp[1] = -1;

    int64_t deadline = msi_now_ms() + timeout_ms;
    int open_out = 1, open_err = 1, timed_out = 0, too_big = 0;
    while (open_out || open_err) {
        int64_t left = deadline - msi_now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd p[2] = {{open_out ? outp[0] : -1, POLLIN, 0},
                              {open_err ? errp[0] : -1, POLLIN, 0}};
        int pr = poll(p, 2, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            break;
        if (open_out && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            char tmp[4096];
            ssize_t r = read(outp[0], tmp, sizeof tmp);
            if (r <= 0) {
                open_out = 0;
            } else if (n + (size_t)r > out_max) {
                too_big = 1;
                break;
            } else {
                memcpy(buf + n, tmp, (size_t)r);
                n += (size_t)r;
            }
        }
        if (open_err && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            char tmp[1024];
            ssize_t r = read(errp[0], tmp, sizeof tmp);
            if (r <= 0) {
                open_err = 0;
            } else {
                /* keep the last bytes */
                for (ssize_t i = 0; i < r; i++) {
                    if (nerr == sizeof errtail - 1) {
                        memmove(errtail, errtail + 1, nerr - 1);
                        nerr--;
                    }
                    errtail[nerr++] = tmp[i];
                }
            }
        }
    }
    int st = 0;
    if (timed_out || too_big) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
    /* The output is closed (or it was killed): the exit follows promptly, but bound the
     * wait anyway in case it closed its stdout and kept running. */
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR))
            break;
        if (msi_now_ms() > deadline) {
            if (!timed_out)
                timed_out = 1;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    errtail[nerr] = '\0';
    for (size_t i = 0; i < nerr; i++)
        if (errtail[i] == '\n' || errtail[i] == '\r' || errtail[i] == '\t')
            errtail[i] = ' ';
    if (timed_out) {
        res = -ETIMEDOUT;
        msd_fmt(msg, msglen, "did not describe itself within %d ms (MS_DESCRIBE=1)", timeout_ms);
    } else if (too_big) {
        res = -EFBIG;
        msd_fmt(msg, msglen, "describe output is larger than %zu bytes", out_max);
    } else if (WIFSIGNALED(st)) {
        res = -1;
        msd_fmt(msg, msglen, "MS_DESCRIBE=1 run was killed by signal %d%s%s", WTERMSIG(st),
                nerr ? ": " : "", errtail);
    } else if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
        res = -1;
        msd_fmt(msg, msglen, "MS_DESCRIBE=1 run exited with status %d%s%s", WEXITSTATUS(st),
                nerr ? ": " : "", errtail);
    }
out:
    for (int i = 0; i < 2; i++) {
        if (outp[i] >= 0)
            close(outp[i]);
        if (errp[i] >= 0)
            close(errp[i]);
    }
    if (devnull >= 0)
        close(devnull);
    msd_env_free(envp);
    if (res == 0) {
        buf[n] = '\0';
        *out = buf;
        *outlen = n;
    } else {
        free(buf);
    }
    return res;
}
