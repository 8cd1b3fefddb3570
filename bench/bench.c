/*
 * bench.c: the shared harness (bench.h): option parsing, the latency and throughput loops,
 * statistics, the JSON line, and the small socket helpers the servers use.
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CALL_CAP 2000000000L /* a count bound on every loop, far above what time allows */

int64_t
bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void
bench_payload(int64_t n, char out[BENCH_STR_LEN + 1])
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuv";
    uint64_t x = (uint64_t)n * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < BENCH_STR_LEN; i++) {
        out[i] = digits[x & 31];
        x = (x >> 5) | (x << 59);
        if (i % 12 == 11)
            x = x * 0x9E3779B97F4A7C15ull + (uint64_t)i;
    }
    out[BENCH_STR_LEN] = '\0';
}

void
bench_opts_init(bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->mode = BENCH_LATENCY;
    o->target = "";
    o->calls = 20000;
    o->calls_max = 100000000;
    o->warmup = 2000;
    o->warmup_s = 0;
    o->threads = 16;
    o->seconds = 10;
    o->max_s = 120;
    o->label = "";
}

static int
parse_long(const char *opt, const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || *end || end == s || v < min || v > max) {
        fprintf(stderr, "bench: %s: expected an integer in [%ld, %ld]\n", opt, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

static int
parse_double(const char *opt, const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || errno || *end || end == s || !(v >= min && v <= max)) {
        fprintf(stderr, "bench: %s: expected a number in [%g, %g]\n", opt, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int
bench_parse_opts(int argc, char **argv, int first, bench_opts *o,
                 int (*extra)(const char *opt, const char *val, void *arg), void *arg)
{
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long l;
        if (strcmp(a, "--latency") == 0) {
            o->mode = BENCH_LATENCY;
        } else if (strcmp(a, "--throughput") == 0) {
            o->mode = BENCH_THROUGHPUT;
        } else if (strcmp(a, "--target") == 0 && v) {
            o->target = v;
            i++;
        } else if (strcmp(a, "--label") == 0 && v) {
            o->label = v;
            i++;
        } else if (strcmp(a, "--calls") == 0) {
            if (parse_long(a, v, 1, o->calls_max, &o->calls))
                return -1;
            i++;
        } else if (strcmp(a, "--warmup") == 0) {
            if (parse_long(a, v, 0, 100000000, &o->warmup))
                return -1;
            i++;
        } else if (strcmp(a, "--warmup-seconds") == 0) {
            if (parse_double(a, v, 0, 600, &o->warmup_s))
                return -1;
            i++;
        } else if (strcmp(a, "--threads") == 0) {
            if (parse_long(a, v, 1, 1024, &l))
                return -1;
            o->threads = (int)l;
            i++;
        } else if (strcmp(a, "--seconds") == 0) {
            if (parse_double(a, v, 0.01, 3600, &o->seconds))
                return -1;
            i++;
        } else if (strcmp(a, "--max-seconds") == 0) {
            if (parse_double(a, v, 0.1, 7200, &o->max_s))
                return -1;
            i++;
        } else {
            int used = extra ? extra(a, v, arg) : 0;
            if (used <= 0) {
                fprintf(stderr, "bench: unknown option or missing value: %s\n", a);
                return -1;
            }
            i += used - 1;
        }
    }
    return 0;
}

/* Writes s as a JSON string (the labels and messages are short and plain). */
static void
json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

int
bench_print_error(const char *label, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fputs("{\"error\":", stdout);
    json_str(stdout, msg);
    fputs(",\"label\":", stdout);
    json_str(stdout, label);
    fputs("}\n", stdout);
    fflush(stdout);
    fprintf(stderr, "bench: %s: %s\n", label && *label ? label : "error", msg);
    return 1;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples. */
static int64_t
pct(const int64_t *s, long n, double p)
{
    long k = (long)(p * (double)n + 0.999999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return s[k - 1];
}

void
bench_stats_of(int64_t *ns, long n, bench_stats *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    if (n <= 0)
        return;
    qsort(ns, (size_t)n, sizeof *ns, cmp_i64);
    double sum = 0;
    for (long i = 0; i < n; i++)
        sum += (double)ns[i];
    out->p50_us = (double)pct(ns, n, 0.50) / 1e3;
    out->p90_us = (double)pct(ns, n, 0.90) / 1e3;
    out->p99_us = (double)pct(ns, n, 0.99) / 1e3;
    out->mean_us = sum / (double)n / 1e3;
    out->min_us = (double)ns[0] / 1e3;
    out->max_us = (double)ns[n - 1] / 1e3;
}

/* ------------------------------------------------------------------------------------------
 * Latency.
 * ---------------------------------------------------------------------------------------- */
static int
run_latency(const bench_ops *ops, const bench_opts *o)
{
    char err[512] = "";
    int64_t start = bench_now_ns();
    int64_t limit = start + (int64_t)(o->max_s * 1e9);
    void *c = ops->open(o->target, err, sizeof err);
    if (!c)
        return bench_print_error(o->label, "open %s: %s", o->target, err);

    char s[BENCH_STR_LEN + 1];
    int64_t n = 1;
    long warm = 0;
    int64_t warm_until = bench_now_ns() + (int64_t)(o->warmup_s * 1e9);
    while ((warm < o->warmup || bench_now_ns() < warm_until) && warm < CALL_CAP &&
           bench_now_ns() < limit) {
        bench_payload(n, s);
        if (ops->call(c, n, s, err, sizeof err) != 0) {
            ops->close(c);
            return bench_print_error(o->label, "warm-up call %ld: %s", warm + 1, err);
        }
        n++;
        warm++;
    }

    int64_t *ns = malloc((size_t)o->calls * sizeof *ns);
    if (!ns) {
        ops->close(c);
        return bench_print_error(o->label, "out of memory");
    }
    long done = 0;
    int truncated = 0;
    int64_t t_begin = bench_now_ns();
    for (; done < o->calls; done++) {
        bench_payload(n, s);
        int64_t t0 = bench_now_ns();
        if (t0 >= limit) {
            truncated = 1;
            break;
        }
        if (ops->call(c, n, s, err, sizeof err) != 0) {
            free(ns);
            ops->close(c);
            return bench_print_error(o->label, "call %ld: %s", done + 1, err);
        }
        ns[done] = bench_now_ns() - t0;
        n++;
    }
    double wall_s = (double)(bench_now_ns() - t_begin) / 1e9;
    ops->close(c);
    if (done == 0) {
        free(ns);
        return bench_print_error(o->label, "no call completed within %.1f s", o->max_s);
    }
    bench_stats st;
    bench_stats_of(ns, done, &st);
    free(ns);
    printf("{\"kind\":\"latency\",\"label\":");
    json_str(stdout, o->label);
    printf(",\"calls\":%ld,\"warmup\":%ld,\"p50_us\":%.3f,\"p90_us\":%.3f,\"p99_us\":%.3f,"
           "\"mean_us\":%.3f,\"min_us\":%.3f,\"max_us\":%.3f,\"wall_s\":%.3f,"
           "\"truncated\":%s}\n",
           st.n, warm, st.p50_us, st.p90_us, st.p99_us, st.mean_us, st.min_us, st.max_us, wall_s,
           truncated ? "true" : "false");
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Throughput.
 * ---------------------------------------------------------------------------------------- */
typedef struct worker {
    const bench_ops *ops;
    void *conn;
    pthread_barrier_t *go;
    volatile int *stop;
    int index;
    long calls;
    int failed;
    char err[512];
    pthread_t tid;
} worker;

static void *
worker_main(void *p)
{
    worker *w = p;
    char s[BENCH_STR_LEN + 1];
    int64_t n = (int64_t)w->index << 40;
    pthread_barrier_wait(w->go);
    while (!__atomic_load_n(w->stop, __ATOMIC_RELAXED) && w->calls < CALL_CAP) {
        bench_payload(n, s);
        if (w->ops->call(w->conn, n, s, w->err, sizeof w->err) != 0) {
            __atomic_store_n(&w->failed, 1, __ATOMIC_RELAXED);
            break;
        }
        w->calls++;
        n++;
    }
    return NULL;
}

static int
run_throughput(const bench_ops *ops, const bench_opts *o)
{
    int nt = o->threads;
    worker *ws = calloc((size_t)nt, sizeof *ws);
    pthread_barrier_t go;
    volatile int stop = 0;
    char err[512] = "";
    if (!ws)
        return bench_print_error(o->label, "out of memory");
    for (int i = 0; i < nt; i++) {
        ws[i].conn = ops->open(o->target, err, sizeof err);
        if (!ws[i].conn) {
            for (int j = 0; j < i; j++)
                ops->close(ws[j].conn);
            free(ws);
            return bench_print_error(o->label, "open connection %d to %s: %s", i + 1, o->target,
                                     err);
        }
    }
    pthread_barrier_init(&go, NULL, (unsigned)nt + 1);
    int started = 0;
    for (int i = 0; i < nt; i++) {
        ws[i].ops = ops;
        ws[i].go = &go;
        ws[i].stop = &stop;
        ws[i].index = i + 1;
        if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) {
            fprintf(stderr, "bench: cannot start thread %d\n", i + 1);
            abort(); /* the barrier would never open: nothing sensible to unwind */
        }
        started++;
    }
    pthread_barrier_wait(&go);
    int64_t t0 = bench_now_ns();
    double secs = o->seconds < o->max_s ? o->seconds : o->max_s;
    int64_t until = t0 + (int64_t)(secs * 1e9);
    for (int64_t now = t0; now < until; now = bench_now_ns()) {
        int64_t left = until - now;
        if (left > 50000000)
            left = 50000000;
        struct timespec ts = {0, (long)left};
        nanosleep(&ts, NULL);
        int all_failed = 1;
        for (int i = 0; i < nt; i++)
            all_failed &= __atomic_load_n(&ws[i].failed, __ATOMIC_RELAXED);
        if (all_failed)
            break;
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    int64_t t1 = bench_now_ns();
    long total = 0, failed = 0;
    const char *first_err = NULL;
    for (int i = 0; i < started; i++) {
        pthread_join(ws[i].tid, NULL);
        total += ws[i].calls;
        if (ws[i].failed) {
            failed++;
            if (!first_err)
                first_err = ws[i].err;
        }
    }
    double elapsed = (double)(t1 - t0) / 1e9;
    int rc = 0;
    if (failed) {
        rc = bench_print_error(o->label, "%ld of %d callers failed; first: %s", failed, nt,
                               first_err);
    } else {
        printf("{\"kind\":\"throughput\",\"label\":");
        json_str(stdout, o->label);
        printf(",\"threads\":%d,\"seconds\":%.3f,\"calls\":%ld,\"calls_per_s\":%.1f}\n", nt,
               elapsed, total, (double)total / elapsed);
        fflush(stdout);
    }
    for (int i = 0; i < nt; i++)
        ops->close(ws[i].conn);
    pthread_barrier_destroy(&go);
    free(ws);
    return rc;
}

int
bench_run_client(const bench_ops *ops, const bench_opts *o)
{
    signal(SIGPIPE, SIG_IGN);
    return o->mode == BENCH_LATENCY ? run_latency(ops, o) : run_throughput(ops, o);
}

/* ------------------------------------------------------------------------------------------
 * Sockets and servers.
 * ---------------------------------------------------------------------------------------- */
int
bench_listen_loopback(int backlog, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("bench: socket");
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, backlog) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("bench: bind/listen 127.0.0.1:0");
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

int
bench_write_port_file(const char *path, int port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void
on_exit_signal(int sig)
{
    (void)sig;
    _exit(0);
}

void
bench_server_lifetime(double seconds)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_exit_signal;
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    unsigned s = seconds < 1 ? 1 : (unsigned)seconds;
    alarm(s);
}

int
bench_split_target(const char *target, char host[64], int *port)
{
    const char *colon = strrchr(target, ':');
    if (!colon || colon == target || (size_t)(colon - target) >= 64)
        return -1;
    memcpy(host, target, (size_t)(colon - target));
    host[colon - target] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p <= 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

int
bench_connect_loopback(const char *target, char *err, size_t errlen)
{
    char host[64];
    int port;
    if (bench_split_target(target, host, &port) != 0) {
        snprintf(err, errlen, "bad target '%s' (want 127.0.0.1:port)", target);
        return -1;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1 || !(ntohl(a.sin_addr.s_addr) >> 24 == 127)) {
        snprintf(err, errlen, "target '%s' is not a loopback IPv4 address", target);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    struct timeval tv = {10, 0}; /* a call never waits forever */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        snprintf(err, errlen, "connect %s: %s", target, strerror(errno));
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* ------------------------------------------------------------------------------------------
 * A transport program's main.
 * ---------------------------------------------------------------------------------------- */
static int
program_usage(const bench_program *p)
{
    fprintf(stderr,
            "usage: %s server --port-file F [--max-seconds S]%s%s\n"
            "       %s client --target HOST:PORT [--latency|--throughput] [bench options]\n",
            p->name, p->server_usage ? " " : "", p->server_usage ? p->server_usage : "", p->name);
    return 2;
}

static int
server_main(int argc, char **argv, const bench_program *p)
{
    bench_server s = {NULL, -1, 0};
    double max_s = 900;
    for (int i = 2; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int took = 0;
        if (!v)
            return program_usage(p);
        if (strcmp(a, "--port-file") == 0)
            s.port_file = v;
        else if (strcmp(a, "--max-seconds") == 0) {
            if (parse_double(a, v, 0, 1e6, &max_s) != 0)
                return 2;
        } else if (!p->server_opt || (took = p->server_opt(a, v)) == 0) {
            fprintf(stderr, "%s server: unknown option %s\n", p->name, a);
            return program_usage(p);
        } else if (took < 0) {
            fprintf(stderr, "%s server: bad value for %s: '%s'\n", p->name, a, v);
            return program_usage(p);
        }
    }
    if (!s.port_file) {
        fprintf(stderr, "%s server: --port-file is required\n", p->name);
        return program_usage(p);
    }
    bench_server_lifetime(max_s);
    if (!p->own_listener && (s.fd = bench_listen_loopback(128, &s.port)) < 0)
        return 1;
    return p->serve(&s);
}

/* A program of commands: find the command, parse its options, run it. */
static int
command_main(int argc, char **argv, const bench_program *p)
{
    const bench_command *cmd = NULL;
    int first = 1; /* where the options begin */
    if (p->ncommands == 1 && !p->commands[0].name) {
        cmd = &p->commands[0];
    } else {
        first = 2;
        for (int i = 0; argc >= 2 && i < p->ncommands && !cmd; i++)
            if (p->commands[i].name && strcmp(argv[1], p->commands[i].name) == 0)
                cmd = &p->commands[i];
    }
    if (!cmd) {
        fprintf(stderr, "usage: %s %s\n", p->name, p->usage ? p->usage : "");
        return 2;
    }
    int rc = p->before ? p->before(cmd->name ? cmd->name : p->label) : 0;
    if (rc != 0)
        return rc;
    bench_opts o;
    bench_opts_init(&o);
    o.label = p->label;
    if (p->defaults)
        p->defaults(&o);
    if (bench_parse_opts(argc, argv, first, &o, p->extra, p->extra_arg) != 0)
        return 2;
    rc = cmd->run(&o);
    if (p->client_done)
        p->client_done();
    return rc;
}

int
bench_main(int argc, char **argv, const bench_program *p)
{
    if (p->commands)
        return command_main(argc, argv, p);
    if (argc >= 2 && strcmp(argv[1], "server") == 0)
        return server_main(argc, argv, p);
    if (argc >= 2 && strcmp(argv[1], "client") == 0) {
        bench_opts o;
        bench_opts_init(&o);
        o.label = p->label;
        if (bench_parse_opts(argc, argv, 2, &o, NULL, NULL) != 0)
            return 2;
        int rc = bench_run_client(p->ops, &o);
        if (p->client_done)
            p->client_done();
        return rc;
    }
    return program_usage(p);
}
