/*
 * pg_server.c: a real PostgreSQL server for the tests (pg_server.h).
 */
#include "pg_server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static h_pg *servers[4];
static int nservers;

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Whose the server's files and processes are: postgres when we are root, else us. */
static uid_t run_uid;
static gid_t run_gid;

static int
pick_user(void)
{
    run_uid = geteuid();
    run_gid = getegid();
    if (run_uid != 0)
        return 0;
    struct passwd *pw = getpwnam("postgres");
    if (!pw) {
        fprintf(stderr, "pg_server: running as root, and there is no postgres user to run "
                        "PostgreSQL as (is the package postgresql installed? "
                        "scripts/install-deps.sh installs it)\n");
        return -1;
    }
    run_uid = pw->pw_uid;
    run_gid = pw->pw_gid;
    return 0;
}

/* Forks and execs argv as run_uid with stdout and stderr to log; the child's pid or -1.
 * pdeath: the signal the child gets when the test dies (0: none). */
static pid_t
spawn(const char *const *argv, const char *log, int pdeath)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        if (geteuid() == 0 &&
            (setgroups(0, NULL) < 0 || setgid(run_gid) < 0 || setuid(run_uid) < 0)) {
            perror("pg_server: dropping privileges");
            _exit(126);
        }
        if (pdeath) /* after setuid, which clears it */
            prctl(PR_SET_PDEATHSIG, pdeath);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "pg_server: %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Waits for pid (bounded); its wait status, or -1 when it did not end in time. */
static int
wait_exit(pid_t pid, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 || now_ms() > end)
            return -1;
        nap_ms(20);
    }
}

static void
print_log(const char *log)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return;
    char line[512];
    fprintf(stderr, "--- %s ---\n", log);
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
}

static int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Starts the postmaster and polls until it accepts connections. */
static int
launch(h_pg *pg)
{
    char data[96], port[16];
    snprintf(data, sizeof data, "%s/data", pg->dir);
    snprintf(port, sizeof port, "%d", pg->port);
    const char *const argv[] = {PG_TEST_BIN "/postgres",
                                "-D",
                                data,
                                "-k",
                                pg->dir,
                                "-h",
                                "127.0.0.1",
                                "-p",
                                port,
                                "-c",
                                "fsync=off",
                                NULL};
    pg->pid = spawn(argv, pg->log, SIGINT);
    if (pg->pid < 0) {
        pg->pid = 0;
        return -1;
    }
    char conninfo[160];
    snprintf(conninfo, sizeof conninfo,
             "host=127.0.0.1 port=%d dbname=postgres user=postgres connect_timeout=2", pg->port);
    int64_t end = now_ms() + 30000;
    while (now_ms() < end) {
        if (PQping(conninfo) == PQPING_OK)
            return 0;
        int st;
        if (waitpid(pg->pid, &st, WNOHANG) == pg->pid) {
            fprintf(stderr, "pg_server: postgres exited (status 0x%x) before it answered\n", st);
            pg->pid = 0;
            print_log(pg->log);
            return -1;
        }
        nap_ms(50);
    }
    fprintf(stderr, "pg_server: postgres on port %d did not answer within 30 s\n", pg->port);
    print_log(pg->log);
    h_pg_stop(pg);
    return -1;
}

static void
cleanup(void)
{
    for (int i = 0; i < nservers; i++) {
        h_pg *pg = servers[i];
        h_pg_stop(pg);
        if (getenv("MS_TEST_KEEP")) {
            fprintf(stderr, "pg_server: kept %s\n", pg->dir);
        } else if (pg->dir[0]) {
            pid_t pid = fork();
            if (pid == 0) {
                execl("/bin/rm", "rm", "-rf", pg->dir, (char *)NULL);
                _exit(127);
            }
            if (pid > 0)
                wait_exit(pid, 30000);
        }
        free(pg);
    }
    nservers = 0;
}

h_pg *
h_pg_start(void)
{
    if (access(PG_TEST_BIN "/postgres", X_OK) != 0 || access(PG_TEST_BIN "/initdb", X_OK) != 0) {
        fprintf(stderr,
                "pg_server: PostgreSQL 15 is not installed (no %s/postgres or initdb): make test "
                "installs it (scripts/install-deps.sh, package postgresql)\n",
                PG_TEST_BIN);
        return NULL;
    }
    if (nservers == (int)(sizeof servers / sizeof *servers) || pick_user() < 0)
        return NULL;
    h_pg *pg = calloc(1, sizeof *pg);
    if (!pg)
        return NULL;
    snprintf(pg->dir, sizeof pg->dir, "/tmp/ms-pg-XXXXXX");
    if (!mkdtemp(pg->dir)) {
        perror("pg_server: mkdtemp");
        free(pg);
        return NULL;
    }
    if (nservers == 0)
        atexit(cleanup);
    servers[nservers++] = pg;
    if (chown(pg->dir, run_uid, run_gid) < 0) {
        perror("pg_server: chown");
        return NULL;
    }
    snprintf(pg->log, sizeof pg->log, "%s/postgres.log", pg->dir);
    char data[96], ilog[96];
    snprintf(data, sizeof data, "%s/data", pg->dir);
    snprintf(ilog, sizeof ilog, "%s/initdb.log", pg->dir);
    const char *const initdb[] = {
        PG_TEST_BIN "/initdb", "-D",       data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
        "--no-sync",           "--locale", "C",  NULL};
    pid_t pid = spawn(initdb, ilog, SIGKILL);
    int st = pid > 0 ? wait_exit(pid, 120000) : -1;
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        if (pid > 0 && st < 0) {
            kill(pid, SIGKILL);
            wait_exit(pid, 5000);
        }
        fprintf(stderr, "pg_server: initdb failed\n");
        print_log(ilog);
        return NULL;
    }
    /* A free port now; another process could take it before postgres binds it: then
     * postgres exits at once and another port is tried. */
    for (int tries = 0; tries < 3; tries++) {
        if ((pg->port = free_port()) < 0)
            return NULL;
        snprintf(pg->url, sizeof pg->url, "postgresql://postgres@127.0.0.1:%d/postgres", pg->port);
        if (launch(pg) == 0)
            return pg;
    }
    return NULL;
}

int
h_pg_stop(h_pg *pg)
{
    if (!pg || pg->pid <= 0)
        return 0;
    h_pg_freeze(pg, 0); /* if frozen */
    kill(pg->pid, SIGINT);
    int st = wait_exit(pg->pid, 20000);
    if (st < 0) {
        fprintf(stderr, "pg_server: postgres %ld did not stop in 20 s: SIGKILL\n", (long)pg->pid);
        kill(pg->pid, SIGKILL);
        st = wait_exit(pg->pid, 5000);
    }
    pg->pid = 0;
    return st < 0 ? -1 : 0;
}

/* Sends sig to every child of pid (the postmaster's backends and helpers: each is a session
 * of its own, so no process group holds them all). */
static void
signal_children(pid_t pid, int sig)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[300], buf[512];
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *p = strrchr(buf, ')'); /* "pid (comm) state ppid ..." */
        char state;
        long ppid;
        if (p && sscanf(p + 1, " %c %ld", &state, &ppid) == 2 && ppid == (long)pid)
            kill((pid_t)strtol(e->d_name, NULL, 10), sig);
    }
    if (d)
        closedir(d);
}

int
h_pg_freeze(h_pg *pg, int frozen)
{
    if (!pg || pg->pid <= 0)
        return -1;
    if (frozen) { /* the postmaster first: it starts no new backend meanwhile */
        if (kill(pg->pid, SIGSTOP) < 0)
            return -1;
        signal_children(pg->pid, SIGSTOP);
        return 0;
    }
    signal_children(pg->pid, SIGCONT);
    return kill(pg->pid, SIGCONT);
}

int
h_pg_createdb(h_pg *pg, const char *name, char *url, size_t urllen)
{
    char conninfo[160], sql[200];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d dbname=postgres user=postgres",
             pg->port);
    snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", name); /* a test's own constant */
    PGconn *c = PQconnectdb(conninfo);
    PGresult *r = c && PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
    int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "pg_server: %s: %s\n", sql, c ? PQerrorMessage(c) : "out of memory");
    PQclear(r);
    PQfinish(c);
    snprintf(url, urllen, "postgresql://postgres@127.0.0.1:%d/%s", pg->port, name);
    return ok ? 0 : -1;
}

int
h_pg_restart(h_pg *pg)
{
    if (pg->pid > 0)
        return 0;
    return launch(pg);
}
