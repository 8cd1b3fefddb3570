/*
 * util.c: small helpers of msd: clocks, logging, names, tokens, files, /proc.
 *
 * Design notes
 * - Log lines go to stderr as "msd <iso time> <level>: <message>", one write each, so that
 *   lines from several threads never interleave.
 * - Tokens are 32 bytes from getrandom() in hex; files holding them are written to a
 *   temporary name with mode 0600 and renamed, so a reader never sees a partial token.
 */
#include "msd.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int msd_verbose;

int64_t
msd_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
msd_log(const char *level, const char *fmt, ...)
{
    if (strcmp(level, "debug") == 0 && !msd_verbose)
        return;
    char line[1200];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(
        line, sizeof line, "msd %04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: ", tm.tm_year + 1900,
        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (k < 0 ? 0 : (size_t)k);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(2, line, len);
    (void)w;
}

static int
name_char(int c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-';
}

int
msd_valid_name(const char *s)
{
    if (!s)
        return 0;
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= MSD_NAME_MAX || !name_char(s[n]))
            return 0;
    return n > 0 && !(n == 1 && s[0] == '.') && strcmp(s, "..") != 0;
}

int
msd_valid_id(const char *s)
{
    if (!s)
        return 0;
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= MSD_ID_MAX - 1 || !name_char(s[n]))
            return 0;
    return n > 0 && s[0] != '.';
}

int
msd_random_hex_n(char *out, size_t nhex)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char raw[64];
    size_t nraw = nhex / 2, got = 0;
    if (nhex % 2 || nraw > sizeof raw)
        return -EINVAL;
    while (got < nraw) {
        ssize_t n = getrandom(raw + got, nraw - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < nraw; i++) {
        out[2 * i] = digits[raw[i] >> 4];
        out[2 * i + 1] = digits[raw[i] & 15];
    }
    out[nhex] = '\0';
    return 0;
}

int
msd_random_hex(char out[MSD_TOKEN_HEX + 1])
{
    return msd_random_hex_n(out, MSD_TOKEN_HEX);
}

int
msd_fmt(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

char *
msd_strf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

char *
msd_read_file(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 256, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            if (cap > max + 1) {
                free(buf);
                buf = NULL;
                errno = EFBIG;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            buf = NULL;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            free(buf);
            buf = NULL;
            errno = EFBIG;
            break;
        }
    }
    close(fd);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = n;
    }
    return buf;
}

static int
write_file(const char *path, const void *data, size_t len, mode_t mode, int sync)
{
    char tmp[4096];
    if (msd_fmt(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) < 0)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -errno;
    int res = 0;
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            res = -errno;
            break;
        }
        p += w;
        len -= (size_t)w;
    }
    if (!res && fchmod(fd, mode) < 0)
        res = -errno;
    if (!res && sync && fsync(fd) < 0)
        res = -errno;
    if (close(fd) < 0 && !res)
        res = -errno;
    if (!res && rename(tmp, path) < 0)
        res = -errno;
    if (res)
        unlink(tmp);
    return res;
}

int
msd_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    return write_file(path, data, len, mode, 1);
}

int
msd_write_file_nosync(const char *path, const void *data, size_t len, mode_t mode)
{
    return write_file(path, data, len, mode, 0);
}

int
msd_read_token(const char *path, char out[MSD_TOKEN_HEX + 1])
{
    size_t len;
    char *s = msd_read_file(path, 4096, &len);
    if (!s)
        return -errno;
    size_t n = strcspn(s, "\r\n \t");
    int res = 0;
    if (n != MSD_TOKEN_HEX) {
        res = -EINVAL;
    } else {
        for (size_t i = 0; i < n; i++)
            if (!isxdigit((unsigned char)s[i]))
                res = -EINVAL;
        if (!res) {
            memcpy(out, s, n);
            out[n] = '\0';
        }
    }
    free(s);
    return res;
}

int
msd_parse_int(const char *s, long long min, long long max, long long *out)
{
    if (!s || !*s)
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int
msd_parse_hostport(const char *s, char *host, size_t hlen, int *port)
{
    if (!s || !*s)
        return -1;
    const char *colon;
    const char *h = s;
    size_t n;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        h = s + 1;
        n = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        n = (size_t)(colon - s);
    }
    if (n == 0 || n >= hlen)
        return -1;
    long long p;
    if (msd_parse_int(colon + 1, 0, 65535, &p) < 0)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (int)p;
    return 0;
}

int
msd_is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "localhost") == 0 ||
           strcmp(host, "::1") == 0;
}

uint64_t
msd_proc_start_time(pid_t pid)
{
    if (pid <= 0)
        return 0;
    char path[64], buf[1024];
    msd_fmt(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* "pid (comm) S ppid ...": comm may hold spaces and parentheses; skip to the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return 0;
    p += 2;
    if (*p == 'Z' || *p == 'X') /* a zombie has exited: not alive for our purposes */
        return 0;
    /* Field 3 is the state; field 22 is starttime: 19 more fields on. */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return 0;
        p++;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno || end == p)
        return 0;
    return (uint64_t)v;
}
