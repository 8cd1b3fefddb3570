/* test_httpc_rcvtimeo.c: the HTTP client's wait for an answer stays bounded by the request's
 * deadline when setsockopt(SO_RCVTIMEO) fails.
 *
 * Design notes
 * - The failure is forced at link time: this executable is linked with
 *   -Wl,--wrap=setsockopt (tests/CMakeLists.txt), so httpc.c's setsockopt calls reach
 *   __wrap_setsockopt below, which fails SO_RCVTIMEO with ENOPROTOOPT while `fail_rcvtimeo`
 *   is set and passes everything else to the real one.
 * - The server is a raw listening socket served by one thread: "GET /never" is read and
 *   never answered (the connection is closed after 3 s, so a client that waits without a
 *   bound fails the timing check instead of hanging the test); "GET /slow" is answered after
 *   100 ms.
 */
#include "httpc.h"
#include "msi.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- the forced failure ---- */

static _Atomic int fail_rcvtimeo;
static _Atomic int rcvtimeo_calls; /* SO_RCVTIMEO attempts seen */

int __real_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
int __wrap_setsockopt(int fd, int level, int name, const void *val, socklen_t len);

int
__wrap_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    if (level == SOL_SOCKET && name == SO_RCVTIMEO) {
        rcvtimeo_calls++;
        if (fail_rcvtimeo) {
            errno = ENOPROTOOPT;
            return -1;
        }
    }
    return __real_setsockopt(fd, level, name, val, len);
}

/* ---- the server ---- */

static int lfd = -1;
static char base[64];
static pthread_t srv_thread;

static void
nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Serves one connection (its own thread): requests until the peer closes. */
static void *
conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    size_t len = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        if (strncmp(buf, "GET /never ", 11) == 0) {
            struct pollfd p = {fd, POLLIN, 0};
            poll(&p, 1, 3000); /* until the client gives up and closes, at most 3 s */
            break;
        }
        nap_ms(100);
        static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if (send(fd, ok, sizeof ok - 1, MSG_NOSIGNAL) < 0)
            break;
        size_t used = (size_t)(end + 4 - buf);
        memmove(buf, buf + used, len - used);
        len -= used;
    }
    close(fd);
    return NULL;
}

static void *
srv_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            return NULL; /* the listener was shut down */
        pthread_t t;
        if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)fd) == 0)
            pthread_detach(t);
        else
            close(fd);
    }
}

static int
setup(void **state)
{
    (void)state;
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof sa;
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 16) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0)
        return -1;
    snprintf(base, sizeof base, "http://127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    return pthread_create(&srv_thread, NULL, srv_main, NULL) == 0 ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    shutdown(lfd, SHUT_RDWR);
    pthread_join(srv_thread, NULL);
    close(lfd);
    msi_httpc_thread_release();
    return 0;
}

/* GET base+path with a deadline ms from now; the status of msi_httpc_do, *took the time. */
static ms_status
get(const char *path, int ms, long *status, int64_t *took)
{
    char url[128];
    snprintf(url, sizeof url, "%s%s", base, path);
    msi_httpc_req rq = {0};
    rq.url = url;
    int64_t t0 = msi_now_ms();
    rq.deadline_ms = t0 + ms;
    msi_httpc_resp rs;
    msi_err err = {{0}};
    ms_status st = msi_httpc_do(&rq, &rs, &err);
    *took = msi_now_ms() - t0;
    *status = st == MS_OK ? rs.status : 0;
    if (st != MS_OK && st != MS_ETIMEDOUT)
        fprintf(stderr, "GET %s: %s\n", path, err.msg);
    return st;
}

/* Lines of a file that contain needle. */
static int
count_in_file(FILE *f, const char *needle)
{
    char line[512];
    int n = 0;
    rewind(f);
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    return n;
}

static void
test_httpc_rcvtimeo_fails(void **state)
{
    (void)state;
    /* stderr goes to a file for the duration, to count the log lines. */
    FILE *log = tmpfile();
    assert_non_null(log);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(log), 2) == 2);

    fail_rcvtimeo = 1;
    long status;
    int64_t took;
    /* No answer: the deadline still ends the wait, with MS_ETIMEDOUT. */
    ms_status st1 = get("/never", 300, &status, &took);
    int64_t took1 = took;
    /* Answers come through the poll path, on a new connection and on a kept one. */
    ms_status st2 = get("/slow", 5000, &status, &took);
    long status2 = status;
    ms_status st3 = get("/slow", 5000, &status, &took);
    long status3 = status;
    ms_status st4 = get("/never", 200, &status, &took);
    int64_t took4 = took;
    fail_rcvtimeo = 0;

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    int logged = count_in_file(log, "SO_RCVTIMEO");
    fclose(log);

    assert_true(rcvtimeo_calls > 0); /* the failure was met */
    assert_int_equal(st1, MS_ETIMEDOUT);
    assert_true(took1 >= 290 && took1 < 1500);
    assert_int_equal(st2, MS_OK);
    assert_int_equal(status2, 200);
    assert_int_equal(st3, MS_OK);
    assert_int_equal(status3, 200);
    assert_int_equal(st4, MS_ETIMEDOUT);
    assert_true(took4 >= 190 && took4 < 1500);
    assert_int_equal(logged, 1); /* once per process */
}

/* The usual path, for comparison: SO_RCVTIMEO bounds the wait. */
static void
test_httpc_rcvtimeo_works(void **state)
{
    (void)state;
    long status;
    int64_t took;
    assert_int_equal(get("/never", 300, &status, &took), MS_ETIMEDOUT);
    assert_true(took >= 290 && took < 1500);
    assert_int_equal(get("/slow", 5000, &status, &took), MS_OK);
    assert_int_equal(status, 200);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_httpc_rcvtimeo_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_httpc_rcvtimeo_works, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
