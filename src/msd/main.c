/*
 * main.c: msd, the orchestrator: options, the state directory, credentials, start-up and
 * orderly shutdown.
 *
 * Design notes
 * - Start-up order: options; state directory (0700) with bin/, logs/, instances/; an
 *   exclusive lock on <state>/msd.lock (one msd per state directory: a second one would
 *   start duplicates of everything); tokens; the store, loaded; the API listeners (the
 *   address must be known before any instance is spawned: it is their MS_ORCHESTRATOR);
 *   then the reconcile loop, which re-adopts what still runs and starts what is missing.
 * - Signals are blocked in every thread and taken by the main thread with sigwait:
 *   SIGTERM and SIGINT stop msd the orderly way (every instance drained and stopped: DESIGN
 *   section 4, "retirement ... shutdown, SIGTERM"); SIGQUIT stops msd alone and leaves its
 *   instances running for the next msd to re-adopt (an upgrade of msd). SIGPIPE is ignored.
 * - --parent-pid: the reconcile loop watches that process (pidfd) and, when it is gone,
 *   raises SIGTERM: the private msd of a program dies with it and takes its instances along.
 * - Exit codes: 0 after a clean stop, 1 when start-up fails, 2 for bad usage.
 */
#include "docker.h"
#include "runner.h"
#include "sha256.h"
#include "statedir.h"
#include "objstore.h"
#include "store.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage_head[] =
    "usage: msd [options]\n"
    "\n"
    "The ms orchestrator: runs, health-checks, load-balances and replaces the instances of\n"
    "deployed services. See msctl(1) to deploy and inspect.\n"
    "\n"
    "options:\n"
    "  --listen HOST:PORT     where the HTTP API listens (default 127.0.0.1:4999); port 0\n"
    "                         picks one (the previous run's, if free) and writes it to\n"
    "                         <state>/addr\n"
    "  --allow-remote         allow a non-loopback --listen address\n"
    "  --state DIR            state directory (default $MS_STATE_DIR, else\n"
    "                         $XDG_STATE_HOME/ms, else ~/.local/state/ms)\n"
    "  --parent-pid PID       stop (and stop every instance) when that process exits\n"
    "  --lb none|orchestrator|client\n"
    "                         default load balancing of services (default client)\n"
    "  --objects URL          the object store's database: a PostgreSQL connection string\n"
    "                         (postgresql://[user@]host[:port]/db[?param=value], or\n"
    "                         \"host=... dbname=...\"; passwords from ~/.pgpass, not here).\n"
    "                         msd starts when it does not answer; objects answer 503 until\n"
    "                         it does. Default: SQLite, <state>/objects.db\n"
    "  --runner process|docker\n"
    "                         how instances run: subprocesses (default) or containers of a\n"
    "                         Docker daemon (docs/docker.md)\n"
    "  --docker-socket PATH   the Docker daemon's socket, with --runner docker (default\n"
    "                         " MSD_DOCKER_SOCKET_DEFAULT ")\n";
/* Then the tuning options (MSD_TUNING_OPTIONS), then: */
static const char usage_tail[] =
    "  -v, --verbose          log debug messages\n"
    "  -h, --help             this text\n"
    "  -V, --version          print the version\n"
    "\n"
    "signals: SIGTERM/SIGINT drain and stop every instance, then exit; SIGQUIT exits and\n"
    "leaves instances running for the next msd to re-adopt.\n";

/* The tuning options (msd.h's MSD_TUNING_OPTIONS) as a table: getopt entries, parsing,
 * defaults and --help lines are made from it. */
static const struct tuning {
    const char *opt; /* without the leading "--" */
    long long min, max;
    int def;
    size_t offset; /* of its int field in msd_config */
    const char *help;
} tuning[] = {
#define TUNING_ENTRY(field, opt, min, max, def, help)                                              \
    {opt, min, max, def, offsetof(msd_config, field), help},
    MSD_TUNING_OPTIONS(TUNING_ENTRY)
#undef TUNING_ENTRY
};
#define NTUNING (sizeof tuning / sizeof *tuning)

static int *
tuning_field(msd_config *cfg, size_t i)
{
    return (int *)((char *)cfg + tuning[i].offset);
}

#define HELP_COL 25   /* where the help of an option starts */
#define HELP_WIDTH 88 /* longest line of the help */

/* One option of the usage: "  --opt N" then its help, word-wrapped, in the help column. */
static void
usage_option(FILE *f, const char *opt, const char *help, int def)
{
    char text[512];
    snprintf(text, sizeof text, "%s (default %d)", help, def);
    int col = fprintf(f, "  --%s N", opt);
    if (col >= HELP_COL) {
        fputc('\n', f);
        col = 0;
    }
    const char *p = text;
    while (*p) {
        fprintf(f, "%*s", HELP_COL - col, "");
        size_t room = HELP_WIDTH - HELP_COL, n = strlen(p);
        if (n > room) {
            n = room;
            while (n > 0 && p[n] != ' ')
                n--;
            if (n == 0) /* one word longer than the line */
                n = strcspn(p, " ");
        }
        fprintf(f, "%.*s\n", (int)n, p);
        p += n;
        while (*p == ' ')
            p++;
        col = 0;
    }
}

static void
usage(FILE *f)
{
    fputs(usage_head, f);
    for (size_t i = 0; i < NTUNING; i++)
        usage_option(f, tuning[i].opt, tuning[i].help, tuning[i].def);
    fputs(usage_tail, f);
}

enum {
    OPT_LISTEN = 256,
    OPT_ALLOW_REMOTE,
    OPT_STATE,
    OPT_PARENT,
    OPT_LB,
    OPT_OBJECTS,
    OPT_RUNNER,
    OPT_DOCKER_SOCKET,
    OPT_TUNING, /* OPT_TUNING + i: tuning[i] */
};

static int
usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "msd: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'msd --help'.\n");
    return 2;
}

static int
int_opt(const char *name, const char *val, long long min, long long max, int *out)
{
    long long v;
    if (msd_parse_int(val, min, max, &v) < 0) {
        fprintf(stderr, "msd: %s: expected an integer in [%lld, %lld], got '%s'\n", name, min, max,
                val);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* The runners (runner.h, one file each), chosen with --runner. */
static int
open_process(const msd_config *cfg, msd_runner **out, char *msg, size_t msglen)
{
    (void)cfg;
    int res = msd_runner_process_open(out);
    if (res)
        msd_fmt(msg, msglen, "cannot create the process runner: %s", strerror(-res));
    return res;
}

static int
open_docker(const msd_config *cfg, msd_runner **out, char *msg, size_t msglen)
{
    return msd_runner_docker_open(cfg->docker_socket ? cfg->docker_socket
                                                     : MSD_DOCKER_SOCKET_DEFAULT,
                                  cfg->state_dir, out, msg, msglen);
}

static const struct runner_kind {
    const char *name;
    int (*open)(const msd_config *cfg, msd_runner **out, char *msg, size_t msglen);
} runner_kinds[] = {
    {"process", open_process},
    {"docker", open_docker},
};

static const struct runner_kind *
runner_find(const char *name)
{
    for (size_t i = 0; i < sizeof runner_kinds / sizeof *runner_kinds; i++)
        if (strcmp(runner_kinds[i].name, name) == 0)
            return &runner_kinds[i];
    return NULL;
}

/* Returns -1 to continue, else an exit code. */
static int
parse_args(int argc, char **argv, msd_config *cfg)
{
    static const struct option fixed[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"allow-remote", no_argument, NULL, OPT_ALLOW_REMOTE},
        {"state", required_argument, NULL, OPT_STATE},
        {"parent-pid", required_argument, NULL, OPT_PARENT},
        {"lb", required_argument, NULL, OPT_LB},
        {"objects", required_argument, NULL, OPT_OBJECTS},
        {"runner", required_argument, NULL, OPT_RUNNER},
        {"docker-socket", required_argument, NULL, OPT_DOCKER_SOCKET},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
    };
    enum { NFIXED = sizeof fixed / sizeof *fixed };
    struct option opts[NFIXED + NTUNING + 1];
    memcpy(opts, fixed, sizeof fixed);
    for (size_t i = 0; i < NTUNING; i++)
        opts[NFIXED + i] =
            (struct option){tuning[i].opt, required_argument, NULL, OPT_TUNING + (int)i};
    opts[NFIXED + NTUNING] = (struct option){NULL, 0, NULL, 0};
    int c, pid;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hvV", opts, NULL)) != -1) {
        switch (c) {
        case OPT_LISTEN:
            if (msd_fmt(cfg->listen, sizeof cfg->listen, "%s", optarg) < 0)
                return usage_error("--listen: too long: %s", optarg);
            break;
        case OPT_ALLOW_REMOTE:
            cfg->allow_remote = 1;
            break;
        case OPT_STATE:
            free(cfg->state_dir);
            cfg->state_dir = strdup(optarg);
            break;
        case OPT_PARENT:
            if (int_opt("--parent-pid", optarg, 1, INT32_MAX, &pid) < 0)
                return 2;
            cfg->parent_pid = (pid_t)pid;
            break;
        case OPT_LB:
            if (msd_lb_parse(optarg, &cfg->lb) < 0 || cfg->lb == MS_LB_DEFAULT)
                return usage_error("--lb: expected none, orchestrator or client, got '%s'", optarg);
            break;
        case OPT_OBJECTS: {
            char why[300];
            if (strncmp(optarg, "postgresql://", 13) != 0 &&
                strncmp(optarg, "postgres://", 11) != 0 && !strchr(optarg, '='))
                return usage_error("--objects: expected a PostgreSQL connection string "
                                   "(postgresql://... or key=value ...), got '%s'",
                                   optarg);
            if (msd_objstore_pg_url_ok(optarg, why, sizeof why) < 0)
                return usage_error("--objects: %s", why);
            free(cfg->objects_url);
            cfg->objects_url = strdup(optarg);
            break;
        }
        case OPT_RUNNER:
            if (!runner_find(optarg))
                return usage_error("--runner: expected process or docker, got '%s'", optarg);
            msd_fmt(cfg->runner, sizeof cfg->runner, "%s", optarg);
            break;
        case OPT_DOCKER_SOCKET:
            if (!optarg[0] || strlen(optarg) >= 108)
                return usage_error("--docker-socket: expected a socket path, got '%s'", optarg);
            free(cfg->docker_socket);
            cfg->docker_socket = strdup(optarg);
            break;
        case 'v':
            cfg->verbose = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("msd %s\n", MSD_VERSION);
            return 0;
        case ':':
            return usage_error("option %s needs a value", argv[optind - 1]);
        default:
            if (c >= OPT_TUNING && c < OPT_TUNING + (int)NTUNING) {
                const struct tuning *t = &tuning[c - OPT_TUNING];
                char name[64];
                snprintf(name, sizeof name, "--%s", t->opt);
                if (int_opt(name, optarg, t->min, t->max, tuning_field(cfg, c - OPT_TUNING)) < 0)
                    return 2;
                break;
            }
            return usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (cfg->docker_socket && strcmp(cfg->runner, "docker") != 0)
        return usage_error("--docker-socket %s needs --runner docker", cfg->docker_socket);
    if (cfg->start_backoff_max_ms < cfg->backoff_max_ms)
        cfg->start_backoff_max_ms = cfg->backoff_max_ms;
    char host[MSD_ADDR_MAX];
    int port;
    if (msd_parse_hostport(cfg->listen, host, sizeof host, &port) < 0)
        return usage_error("--listen: expected HOST:PORT, got '%s'", cfg->listen);
    if (!msd_is_loopback(host) && !cfg->allow_remote)
        return usage_error("--listen %s is not a loopback address; msd has no TLS yet, so this "
                           "needs --allow-remote",
                           cfg->listen);
    return -1;
}

static char *
default_state_dir(void)
{
    const char *s = getenv("MS_STATE_DIR");
    if (s && *s)
        return strdup(s);
    s = getenv("XDG_STATE_HOME");
    if (s && *s && s[0] == '/')
        return msd_strf("%s/ms", s);
    s = getenv("HOME");
    if (s && *s)
        return msd_strf("%s/.local/state/ms", s);
    return NULL;
}

/* mkdir -p; the last component with mode, the parents 0700 too. */
static int
make_dirs(const char *path, mode_t mode)
{
    char tmp[4096];
    if (msd_fmt(tmp, sizeof tmp, "%s", path) < 0)
        return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int
prepare_state(msd *m, int *lock_fd)
{
    const char *dir = m->cfg.state_dir;
    int res = make_dirs(dir, 0700);
    struct stat sb;
    if (res == 0 && stat(dir, &sb) < 0)
        res = -errno;
    if (res) {
        msd_log("error", "state directory %s: %s", dir, strerror(-res));
        return -1;
    }
    if (!S_ISDIR(sb.st_mode) || sb.st_uid != m->uid) {
        msd_log("error", "state directory %s is not a directory owned by uid %ld", dir,
                (long)m->uid);
        return -1;
    }
    if ((sb.st_mode & 0077) && chmod(dir, 0700) < 0) {
        msd_log("error", "cannot make %s private (0700): %s", dir, strerror(errno));
        return -1;
    }
    const char *subs[] = {"bin", "logs", "instances"};
    for (size_t i = 0; i < 3; i++) {
        char p[4096];
        msd_fmt(p, sizeof p, "%s/%s", dir, subs[i]);
        if (mkdir(p, 0700) < 0 && errno != EEXIST) {
            msd_log("error", "%s: %s", p, strerror(errno));
            return -1;
        }
    }
    char lp[4096];
    msd_fmt(lp, sizeof lp, "%s/msd.lock", dir);
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        msd_log("error", "%s: %s", lp, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        msd_log("error", "another msd is running on state directory %s", dir);
        close(fd);
        return -1;
    }
    *lock_fd = fd;

    /* Credentials: created on first start, 0600, never on a command line. */
    struct {
        const char *file;
        char *dst;
    } toks[] = {{MSI_STATE_TOKEN, m->admin_token}, {MSI_STATE_CALL_TOKEN, m->call_token}};
    for (size_t i = 0; i < 2; i++) {
        char p[4096];
        msd_fmt(p, sizeof p, "%s/%s", dir, toks[i].file);
        res = msd_read_token(p, toks[i].dst);
        if (res == -ENOENT) {
            res = msd_random_hex(toks[i].dst);
            if (!res) {
                char line[MSD_TOKEN_HEX + 2];
                msd_fmt(line, sizeof line, "%s\n", toks[i].dst);
                res = msd_write_file(p, line, strlen(line), 0600);
            }
            if (!res)
                msd_log("info", "created %s", p);
        }
        if (res) {
            msd_log("error", "%s: %s", p,
                    res == -EINVAL ? "not a token (64 hex digits)" : strerror(-res));
            return -1;
        }
        chmod(p, 0600);
    }
    /* Instances accept the admin token wherever they accept the call token, and only it for a
     * drain, but hold only its hash: a compromised instance cannot deploy. */
    msi_sha256_hex_of(m->admin_token, strlen(m->admin_token), m->admin_sha256);
    return 0;
}

static void
free_model(msd *m)
{
    for (msd_instance *in = m->instances, *nx; in; in = nx) {
        nx = in->next;
        msd_instance_free(in);
    }
    for (msd_service *s = m->services, *nx; s; s = nx) {
        nx = s->next;
        msd_service_free(s);
    }
    for (msd_deployment *d = m->deployments, *nx; d; d = nx) {
        nx = d->next;
        msd_deployment_free(d);
    }
    m->instances = NULL;
    m->services = NULL;
    m->deployments = NULL;
}

int
main(int argc, char **argv)
{
    static msd m;
    int rc = 1, lock_fd = -1;
    msd_api *api = NULL;
    m.cfg = (msd_config){
        .listen = "127.0.0.1:4999",
        .lb = MS_LB_CLIENT,
        .runner = "process",
        .probe_failures_dead = 3,
        .start_backoff_max_ms = 30000,
        .term_grace_ms = 5000,
    };
    for (size_t i = 0; i < NTUNING; i++)
        *tuning_field(&m.cfg, i) = tuning[i].def;
    int pr = parse_args(argc, argv, &m.cfg);
    if (pr >= 0) {
        free(m.cfg.state_dir);
        free(m.cfg.objects_url);
        free(m.cfg.docker_socket);
        return pr;
    }
    msd_verbose = m.cfg.verbose;
    if (m.cfg.parent_pid > 0 && kill(m.cfg.parent_pid, 0) < 0 && errno == ESRCH) {
        fprintf(stderr, "msd: --parent-pid %ld: no such process\n", (long)m.cfg.parent_pid);
        free(m.cfg.state_dir);
        return 1;
    }
    if (!m.cfg.state_dir && !(m.cfg.state_dir = default_state_dir())) {
        fprintf(stderr, "msd: no state directory: set --state, MS_STATE_DIR or HOME\n");
        return 2;
    }
    if (m.cfg.state_dir[0] != '/') {
        char cwd[4096];
        char *abs = getcwd(cwd, sizeof cwd) ? msd_strf("%s/%s", cwd, m.cfg.state_dir) : NULL;
        if (!abs) {
            fprintf(stderr, "msd: cannot resolve %s\n", m.cfg.state_dir);
            free(m.cfg.state_dir);
            return 1;
        }
        free(m.cfg.state_dir);
        m.cfg.state_dir = abs;
    }
    size_t sl = strlen(m.cfg.state_dir);
    while (sl > 1 && m.cfg.state_dir[sl - 1] == '/')
        m.cfg.state_dir[--sl] = '\0';

    /* Signals: blocked everywhere (threads inherit the mask), taken here by sigwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGQUIT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    m.uid = geteuid();
    m.start_ms = msd_wall_ms();
    pthread_mutex_init(&m.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m.changed, &ca);
    pthread_condattr_destroy(&ca);
    umask(077);

    if (prepare_state(&m, &lock_fd) < 0)
        goto out;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        msd_log("error", "curl_global_init failed");
        goto out;
    }
    char dbpath[4096], msg[512];
    msd_fmt(dbpath, sizeof dbpath, "%s/msd.db", m.cfg.state_dir);
    if (msd_store_sqlite_open(dbpath, &m.store, msg, sizeof msg) < 0) {
        msd_log("error", "store: %s", msg);
        goto out;
    }
    if (m.store->ops->load(m.store, &m) < 0) {
        msd_log("error", "store: cannot load %s", dbpath);
        goto out;
    }
    if (m.cfg.objects_url) {
        if (msd_objstore_pg_open(m.cfg.objects_url, &m.objects, msg, sizeof msg) < 0) {
            msd_log("error", "object store: %s", msg);
            goto out;
        }
    } else {
        msd_fmt(dbpath, sizeof dbpath, "%s/" MSI_STATE_OBJECTS, m.cfg.state_dir);
        if (msd_objstore_sqlite_open(dbpath, &m.objects, msg, sizeof msg) < 0) {
            msd_log("error", "object store: %s", msg);
            goto out;
        }
    }
    if (runner_find(m.cfg.runner)->open(&m.cfg, &m.runner, msg, sizeof msg) < 0) {
        msd_log("error", "--runner %s: %s", m.cfg.runner, msg);
        goto out;
    }
    if (msd_api_start(&m, &api) < 0)
        goto out;
    pthread_mutex_lock(&m.mu);
    m.store->ops->set_meta(m.store, "addr", m.addr);
    msd_emit(&m, "start", NULL, NULL, "msd %s listening on %s, state %s, pid %ld", MSD_VERSION,
             m.addr, m.cfg.state_dir, (long)getpid());
    pthread_mutex_unlock(&m.mu);
    int res = msd_reconcile_start(&m);
    if (res < 0) {
        msd_log("error", "cannot start the reconcile loop: %s", strerror(-res));
        goto out;
    }

    int sig = 0;
    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            msd_log("info", "SIGHUP ignored");
            continue;
        }
        break;
    }
    int drain = sig != SIGQUIT;
    msd_log("info", "%s: %s", strsignal(sig),
            drain ? "draining and stopping every instance" : "stopping; instances keep running");
    msd_reconcile_stop(&m, drain);
    pthread_mutex_lock(&m.mu);
    msd_emit(&m, "stop", NULL, NULL, "msd stopped (%s)",
             drain ? "instances stopped" : "instances left running");
    pthread_mutex_unlock(&m.mu);
    rc = 0;
out:
    msd_reconcile_stop(&m, 0);
    msd_api_stop(api);
    if (rc == 0) {
        char p[4096];
        msd_fmt(p, sizeof p, "%s/" MSI_STATE_ADDR, m.cfg.state_dir);
        unlink(p);
    }
    if (m.runner)
        m.runner->ops->close(m.runner);
    if (m.store)
        m.store->ops->close(m.store);
    if (m.objects)
        m.objects->ops->close(m.objects);
    free_model(&m);
    curl_global_cleanup();
    if (lock_fd >= 0)
        close(lock_fd);
    free(m.cfg.state_dir);
    free(m.cfg.objects_url);
    free(m.cfg.docker_socket);
    pthread_cond_destroy(&m.changed);
    pthread_mutex_destroy(&m.mu);
    return rc;
}
