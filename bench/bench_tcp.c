/*
 * bench_tcp.c: the floor. A raw TCP ping-pong over loopback: the client writes a fixed
 * 40-byte frame (int64 little-endian + 32 bytes of string), the server reads it whole and
 * writes it back. No framing beyond the fixed size, no encoding, one thread per connection
 * on the server. Whatever any RPC system costs above this is its own.
 *
 *   bench_tcp server --port-file F [--max-seconds S]
 *   bench_tcp client --target 127.0.0.1:PORT [--latency|--throughput] [bench options]
 */
#include "bench.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FRAME (8 + BENCH_STR_LEN)

static int
read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r > 0)
            got += (size_t)r;
        else if (r < 0 && errno == EINTR)
            continue;
        else
            return -1;
    }
    return 0;
}

static int
write_full(int fd, const void *buf, size_t n)
{
    size_t put = 0;
    while (put < n) {
        ssize_t r = send(fd, (const char *)buf + put, n - put, MSG_NOSIGNAL);
        if (r > 0)
            put += (size_t)r;
        else if (r < 0 && errno == EINTR)
            continue;
        else
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Server: one thread per connection, echoing frames until the peer closes.
 * ---------------------------------------------------------------------------------------- */
static void *
serve_conn(void *p)
{
    int fd = (int)(intptr_t)p;
    char buf[FRAME];
    while (read_full(fd, buf, FRAME) == 0 && write_full(fd, buf, FRAME) == 0)
        ;
    close(fd);
    return NULL;
}

static int
tcp_serve(const bench_server *s)
{
    if (bench_write_port_file(s->port_file, s->port) != 0)
        return 1;
    for (;;) { /* bounded by the lifetime alarm and by whoever started us */
        int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("bench_tcp: accept");
            return 1;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 64 * 1024);
        if (pthread_create(&t, &at, serve_conn, (void *)(intptr_t)fd) != 0)
            close(fd);
        pthread_attr_destroy(&at);
    }
}

/* ------------------------------------------------------------------------------------------
 * Client.
 * ---------------------------------------------------------------------------------------- */
typedef struct conn {
    int fd;
} conn;

static void *
tcp_open(const char *target, char *err, size_t errlen)
{
    int fd = bench_connect_loopback(target, err, errlen);
    if (fd < 0)
        return NULL;
    conn *c = malloc(sizeof *c);
    if (!c) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->fd = fd;
    return c;
}

static int
tcp_call(void *p, int64_t n, const char *s, char *err, size_t errlen)
{
    conn *c = p;
    unsigned char out[FRAME], in[FRAME];
    uint64_t u = (uint64_t)n;
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(u >> (8 * i));
    memcpy(out + 8, s, BENCH_STR_LEN);
    if (write_full(c->fd, out, FRAME) != 0 || read_full(c->fd, in, FRAME) != 0) {
        snprintf(err, errlen, "i/o: %s", errno ? strerror(errno) : "connection closed");
        return -1;
    }
    uint64_t back = 0;
    for (int i = 0; i < 8; i++)
        back |= (uint64_t)in[i] << (8 * i);
    if (back != u || memcmp(in + 8, s, BENCH_STR_LEN) != 0) {
        snprintf(err, errlen, "echo mismatch");
        return -1;
    }
    return 0;
}

static void
tcp_close(void *p)
{
    conn *c = p;
    if (c) {
        close(c->fd);
        free(c);
    }
}

int
main(int argc, char **argv)
{
    static const bench_ops ops = {tcp_open, tcp_call, tcp_close};
    static const bench_program prog = {
        .name = "bench_tcp", .label = "tcp", .ops = &ops, .serve = tcp_serve};
    return bench_main(argc, argv, &prog);
}
