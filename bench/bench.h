/*
 * bench.h: the harness every benchmark program shares (prefix bench_).
 *
 * Design notes
 * - Every transport measures the same echo: an int64 and a 32-byte string go in, both come
 *   back, and the client checks that they did. A transport supplies three functions (open a
 *   connection, make one call, close) and the harness does the rest, so that the latency and
 *   throughput figures of every row are measured by the same code.
 * - A client program prints exactly one JSON object on stdout (one line): the figures of the
 *   run, or {"error":"..."} with a non-zero exit. scripts/bench.sh collects these lines and
 *   bench_report turns them into the tables.
 * - Latency: `warmup` calls (and at least `warmup_s` seconds) that are not recorded, then
 *   `calls` sequential calls, each timed with CLOCK_MONOTONIC; p50, p99, mean, min, max.
 * - Throughput: `threads` threads, each with its own connection (opened before the clock
 *   starts), call in a loop for `seconds`; the figure is completed calls over elapsed time.
 * - Bounds: every loop stops at its count or at `max_s` seconds, whichever comes first; a
 *   latency run cut short by max_s reports the calls it made ("truncated": true).
 * - Servers bind 127.0.0.1 only, write their port to a file once listening, and exit by
 *   themselves after `max_s` seconds (alarm) if nobody stops them.
 * - Threading: bench_run_client runs the transport's `call` on one thread per connection;
 *   a connection is never shared between threads.
 */
#ifndef MS_BENCH_H
#define MS_BENCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BENCH_STR_LEN 32 /* the echoed string: 32 bytes, without its NUL */

/* The string a call sends: 32 characters derived from the call number, so that a transport
 * that answered an old call, or mixed two up, fails the check. out must hold 33 bytes. */
void bench_payload(int64_t n, char out[BENCH_STR_LEN + 1]);

/* One transport, seen from the client. */
typedef struct bench_ops {
    /* Opens one connection to `target` ("127.0.0.1:port" or whatever the transport takes).
     * Returns NULL on failure, with a message in err. */
    void *(*open)(const char *target, char *err, size_t errlen);
    /* One echo: sends (n, s), receives the reply and checks it. 0, or -1 with err filled. */
    int (*call)(void *conn, int64_t n, const char *s, char *err, size_t errlen);
    void (*close)(void *conn);
} bench_ops;

typedef enum bench_mode { BENCH_LATENCY, BENCH_THROUGHPUT } bench_mode;

typedef struct bench_opts {
    bench_mode mode;
    const char *target; /* passed to open() */
    long calls;         /* latency: recorded calls (20000) */
    long calls_max;     /* --calls's upper bound (100000000: a latency run keeps one sample
                           per call); a program may raise it in bench_program.defaults */
    long warmup;        /* latency: unrecorded calls first (2000) */
    double warmup_s;    /* latency: warm up for at least this long too (0) */
    int threads;        /* throughput: callers, each with its own connection (16) */
    double seconds;     /* throughput: duration (10) */
    double max_s;       /* bound on the whole run (120) */
    const char *label;  /* copied into the JSON ("") */
} bench_opts;

/* Defaults above. */
void bench_opts_init(bench_opts *o);

/*
 * Parses the common client options into o, starting at argv[first]:
 *   --latency | --throughput, --target T, --calls N, --warmup N, --warmup-seconds S,
 *   --threads N, --seconds S, --max-seconds S, --label L (--calls in [1, o->calls_max]).
 * Unknown options are an error unless `extra` accepts them: it is called with the option
 * and its value (or NULL) and returns how many of the two it consumed (0: unknown).
 * Returns 0, or -1 after printing a message to stderr.
 */
int bench_parse_opts(int argc, char **argv, int first, bench_opts *o,
                     int (*extra)(const char *opt, const char *val, void *arg), void *arg);

/* Runs the measurement o asks for over ops and prints the JSON line. Returns the exit
 * status for main (0 on success). */
int bench_run_client(const bench_ops *ops, const bench_opts *o);

/* ------------------------------------------------------------------------------------------
 * A transport program: `NAME server --port-file F [--max-seconds S] [its own options]` and
 * `NAME client --target HOST:PORT [--latency|--throughput] [bench options]` (the command
 * lines scripts/bench.sh uses). bench_main parses both, sets the server's lifetime
 * (bench_server_lifetime, default 900 s) and, unless the program listens itself, opens its
 * listening socket; the program states only its server, its client ops and its options.
 *
 * A program of commands instead (bench_ms, bench_zero): `NAME COMMAND [bench options] [its
 * own options]`, or `NAME [options]` for a program whose one command has no name. bench_main
 * finds the command (else prints the usage line, exit 2), calls `before` with its name,
 * parses the common options (after `defaults`) and the program's own (`extra`), runs the
 * command and then `client_done`; the program states only its commands and its options.
 * ---------------------------------------------------------------------------------------- */
typedef struct bench_server {
    const char *port_file; /* where to write the port once serving (bench_write_port_file) */
    int fd;                /* listening on 127.0.0.1 (backlog 128); -1 with own_listener */
    int port;              /* fd's port; 0 with own_listener */
} bench_server;

/* One command of a program of commands. */
typedef struct bench_command {
    const char *name; /* argv[1]; NULL: the program's only command, its options from argv[1] */
    int (*run)(bench_opts *o); /* with the options parsed; returns the exit status */
} bench_command;

typedef struct bench_program {
    const char *name;     /* "bench_tcp": in messages */
    const char *label;    /* the client's default --label */
    const bench_ops *ops; /* the client */
    /* Starts the server, writes the port file once it answers, serves until the process is
     * stopped (SIGTERM or the lifetime alarm). Returns an exit status only on failure. */
    int (*serve)(const bench_server *s);
    int own_listener; /* 1: serve() binds its own socket (s->fd is -1) */
    /* Optional: a server option of the program's own (each takes a value). Returns 1 if it
     * took it, 0 if the option is not its own, -1 if the value is bad. */
    int (*server_opt)(const char *opt, const char *val);
    const char *server_usage; /* its own server options, for the usage line; or NULL */
    /* Optional: called on the client's thread after its run (bench_mst releases its
     * thread's connection; bench_ms shuts ms down). */
    void (*client_done)(void);

    /* A program of commands sets these instead of ops and serve. */
    const bench_command *commands;
    int ncommands;
    const char *usage; /* what follows "usage: NAME " */
    /* Optional: called with the command's name (the label for an unnamed one) before its
     * options are parsed; 0, or the exit status (bench_ms checks ms_init here). */
    int (*before)(const char *command);
    /* Optional: the program's own defaults, after bench_opts_init and the label. */
    void (*defaults)(bench_opts *o);
    /* Optional: the program's own options (bench_parse_opts's `extra`, given extra_arg). */
    int (*extra)(const char *opt, const char *val, void *arg);
    void *extra_arg;
} bench_program;

/* main() of a transport program. Returns the exit status: 2 on bad usage. */
int bench_main(int argc, char **argv, const bench_program *p);

/* ------------------------------------------------------------------------------------------
 * Helpers for the programs.
 * ---------------------------------------------------------------------------------------- */
int64_t bench_now_ns(void);

/* Figures of a set of samples (nanoseconds). Sorts `ns` in place. */
typedef struct bench_stats {
    long n;
    double p50_us, p90_us, p99_us, mean_us, min_us, max_us;
} bench_stats;
void bench_stats_of(int64_t *ns, long n, bench_stats *out);

/* Prints {"error": msg, "label": label} on stdout. Returns 1 (the exit status). */
int bench_print_error(const char *label, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Server side: binds a TCP socket to 127.0.0.1:0 and listens. Returns the descriptor and
 * its port in *port, or -1 (message on stderr). */
int bench_listen_loopback(int backlog, int *port);
/* Writes "port\n" to path atomically (temp file + rename). 0 or -1. */
int bench_write_port_file(const char *path, int port);
/* Makes the process exit (status 0) after `seconds` (alarm), and on SIGTERM/SIGINT. */
void bench_server_lifetime(double seconds);
/* Splits "host:port"; 0 or -1. host must hold 64 bytes. */
int bench_split_target(const char *target, char host[64], int *port);
/* Connects a TCP socket to 127.0.0.1:port with TCP_NODELAY. Descriptor or -1 with err. */
int bench_connect_loopback(const char *target, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* MS_BENCH_H */
