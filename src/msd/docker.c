/*
 * docker.c: the Docker Engine API client and the FROM-scratch image (contract: docker.h).
 *
 * Design notes
 * - Requests go through httpc (src/net) on the calling thread's client, with
 *   body_max = MSD_DOCKER_BODY_MAX and a deadline; the answers are parsed with jansson
 *   (bounded depth, msi_json_parse).
 * - The image's root file system is a ustar archive made in memory (tar_*): directories
 *   first (0755, root-owned), then files with their permission bits; names up to 255 bytes
 *   (ustar's prefix + name). Symbolic links are followed: a library ldd names through a
 *   link is stored under that name with the content of its target.
 * - ldd runs with posix_spawnp (safe in a threaded program), stdin /dev/null, its output
 *   bounded (64 KiB) and its run bounded (LDD_TIMEOUT_MS), with PATH, LC_ALL=C and msd's
 *   LD_LIBRARY_PATH (a process instance inherits it, so the same libraries are found). A
 *   "not found" library is an error naming it; a static executable needs no library.
 */
#include "docker.h"

#include "httpc.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LDD_TIMEOUT_MS 10000
#define LDD_OUT_MAX (64u << 10)
#define MAX_FILES 256
#define IMPORT_TIMEOUT_MS 180000

/* ------------------------------------------------------------------------------------------
 * Requests.
 * ---------------------------------------------------------------------------------------- */

int
msd_docker_request(const char *sock, const char *method, const char *path, const char *ctype,
                   const void *body, size_t len, int timeout_ms, long *status, json_t **out,
                   char *text, size_t textlen, char *msg, size_t msglen)
{
    char url[1024], ct[128];
    if (out)
        *out = NULL;
    if (msd_fmt(url, sizeof url, "http://docker" MSD_DOCKER_API "%s", path) < 0) {
        msd_fmt(msg, msglen, "request path too long");
        return -ENAMETOOLONG;
    }
    const char *headers[2] = {NULL, NULL};
    if (ctype) {
        msd_fmt(ct, sizeof ct, "Content-Type: %s", ctype);
        headers[0] = ct;
    }
    msi_httpc_req rq = {0};
    rq.method = method;
    rq.url = url;
    rq.unix_path = sock;
    rq.headers = headers;
    rq.body = body;
    rq.body_len = body ? len : 0;
    rq.deadline_ms = timeout_ms > 0 ? msi_now_ms() + timeout_ms : 0;
    rq.body_max = MSD_DOCKER_BODY_MAX;
    msi_httpc_resp rs;
    msi_err err = {{0}};
    ms_status st = msi_httpc_do(&rq, &rs, &err);
    if (st != MS_OK) {
        /* err.msg begins with the URL, which says no more than the path */
        const char *why = err.msg;
        size_t ul = strlen(url);
        if (strncmp(why, url, ul) == 0 && why[ul] == ':')
            why += ul + 1 + (why[ul + 1] == ' ');
        msd_fmt(msg, msglen, "docker %s %.200s: %s", method, path, why);
        return st == MS_ETIMEDOUT ? -ETIMEDOUT : st == MS_ENOMEM ? -EFBIG : -ECONNREFUSED;
    }
    *status = rs.status;
    if (text && textlen)
        snprintf(text, textlen, "%.*s", (int)(rs.len < textlen ? rs.len : textlen - 1), rs.body);
    if (out && rs.len) {
        msi_err perr = {{0}};
        *out = msi_json_parse(rs.body, rs.len, &perr);
    }
    return 0;
}

int
msd_docker_json(const char *sock, const char *method, const char *path, const json_t *body,
                int timeout_ms, long *status, json_t **out, char *msg, size_t msglen)
{
    char *text = NULL;
    if (body && !(text = json_dumps(body, JSON_COMPACT))) {
        msd_fmt(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    int res =
        msd_docker_request(sock, method, path, text ? "application/json" : NULL, text,
                           text ? strlen(text) : 0, timeout_ms, status, out, NULL, 0, msg, msglen);
    free(text);
    return res;
}

const char *
msd_docker_error_text(long status, const json_t *answer, char *buf, size_t len)
{
    const char *m = json_string_value(json_object_get(answer, "message"));
    if (m)
        msd_fmt(buf, len, "%.300s (HTTP %ld)", m, status);
    else
        msd_fmt(buf, len, "HTTP %ld", status);
    return buf;
}

int
msd_docker_ping(const char *sock, char *msg, size_t msglen)
{
    long status = 0;
    char text[16] = "";
    char m[400];
    int res = msd_docker_request(sock, "GET", "/_ping", NULL, NULL, 0, 5000, &status, NULL, text,
                                 sizeof text, m, sizeof m);
    if (res) {
        msd_fmt(msg, msglen, "no Docker daemon answers on %s (%s)", sock, m);
        return res;
    }
    if (status != 200 || strcmp(text, "OK") != 0) {
        msd_fmt(msg, msglen, "%s does not answer like a Docker daemon (GET /_ping: HTTP %ld)", sock,
                status);
        return -EPROTO;
    }
    return 0;
}

int
msd_docker_save_logs(const char *sock, const char *id, const char *path, char *msg, size_t msglen)
{
    char url[300];
    msd_fmt(url, sizeof url,
            "http://docker" MSD_DOCKER_API "/containers/%s/logs?stdout=1&stderr=1&tail=%d", id,
            MSD_DOCKER_LOG_LINES);
    msi_httpc_req rq = {0};
    rq.method = "GET";
    rq.url = url;
    rq.unix_path = sock;
    rq.deadline_ms = msi_now_ms() + 10000;
    rq.body_max = MSD_DOCKER_BODY_MAX;
    msi_httpc_resp rs;
    msi_err err = {{0}};
    if (msi_httpc_do(&rq, &rs, &err) != MS_OK) {
        msd_fmt(msg, msglen, "%s", err.msg);
        return -EIO;
    }
    if (rs.status != 200) {
        msd_fmt(msg, msglen, "logs of %.12s: HTTP %ld", id, rs.status);
        return -EIO;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        msd_fmt(msg, msglen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    /* Without a TTY the answer is multiplexed: frames of an 8-byte header (stream, 0, 0, 0,
     * size as 32 bits big-endian) and the data. A frame cut short is dropped. */
    const unsigned char *b = (const unsigned char *)rs.body;
    size_t off = 0;
    while (off + 8 <= rs.len) {
        size_t n = (size_t)b[off + 4] << 24 | (size_t)b[off + 5] << 16 | (size_t)b[off + 6] << 8 |
                   (size_t)b[off + 7];
        if (n > rs.len - off - 8)
            break;
        ssize_t w = write(fd, b + off + 8, n);
        (void)w;
        off += 8 + n;
    }
    close(fd);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * ldd.
 * ---------------------------------------------------------------------------------------- */

typedef struct file_list {
    char *path[MAX_FILES];
    size_t n;
} file_list;

static int
list_add(file_list *l, const char *path)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->path[i], path) == 0)
            return 0;
    if (l->n == MAX_FILES)
        return -E2BIG;
    if (!(l->path[l->n] = strdup(path)))
        return -ENOMEM;
    l->n++;
    return 0;
}

static void
list_free(file_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->path[i]);
    l->n = 0;
}

/* Runs ldd on exe; its output (NUL-terminated, at most LDD_OUT_MAX) into out. 0 when it
 * exited 0, 1 when it exited otherwise (the output says why), -errno when it could not run. */
static int
run_ldd(const char *exe, char *out, size_t outsize, char *msg, size_t msglen)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        msd_fmt(msg, msglen, "pipe: %s", strerror(errno));
        return -errno;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_adddup2(&fa, p[1], 2);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {(char *)(uintptr_t)MSD_DOCKER_LDD, (char *)(uintptr_t)exe, NULL};
    /* msd's LD_LIBRARY_PATH (which a process instance inherits), so that ldd finds the
     * libraries the program loads as a process. */
    char ldp[4200] = "";
    const char *l = getenv("LD_LIBRARY_PATH");
    if (l && *l)
        msd_fmt(ldp, sizeof ldp, "LD_LIBRARY_PATH=%s", l);
    char *envp[] = {(char *)(uintptr_t) "PATH=/usr/local/bin:/usr/bin:/bin",
                    (char *)(uintptr_t) "LC_ALL=C", ldp[0] ? ldp : NULL, NULL};
    pid_t pid;
    int e = posix_spawnp(&pid, MSD_DOCKER_LDD, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(p[1]);
    if (e) {
        close(p[0]);
        msd_fmt(msg, msglen, "cannot run %s: %s", MSD_DOCKER_LDD, strerror(e));
        return -e;
    }
    size_t n = 0;
    int64_t deadline = msi_now_ms() + LDD_TIMEOUT_MS;
    int timed_out = 0;
    for (;;) {
        int64_t left = deadline - msi_now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd pf = {p[0], POLLIN, 0};
        int pr = poll(&pf, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        char tmp[4096];
        ssize_t r = read(p[0], tmp, sizeof tmp);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t k = (size_t)r;
        if (n + k > outsize - 1)
            k = outsize - 1 - n; /* the rest is dropped; the exit still comes */
        memcpy(out + n, tmp, k);
        n += k;
    }
    out[n] = '\0';
    close(p[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (timed_out) {
        msd_fmt(msg, msglen, "%s %s took longer than %d ms", MSD_DOCKER_LDD, exe, LDD_TIMEOUT_MS);
        return -ETIMEDOUT;
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

static int list_from_ldd(const char *exe, char *out, file_list *l, char *msg, size_t msglen);

/* The files the image needs besides the executable: every path ldd prints (libraries and
 * the loader), then glibc's NSS modules beside libc. */
static int
list_libraries(const char *exe, file_list *l, char *msg, size_t msglen)
{
    char *out = malloc(LDD_OUT_MAX);
    if (!out) {
        msd_fmt(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    int res = list_from_ldd(exe, out, l, msg, msglen);
    free(out);
    return res;
}

/* list_libraries with a buffer for ldd's output. */
static int
list_from_ldd(const char *exe, char *out, file_list *l, char *msg, size_t msglen)
{
    int res = run_ldd(exe, out, LDD_OUT_MAX, msg, msglen);
    if (res < 0)
        return res;
    if (strstr(out, "not a dynamic executable") || strstr(out, "statically linked"))
        return 0;
    if (res == 1) {
        for (char *c = out; *c; c++)
            if (*c == '\n' || *c == '\t')
                *c = ' ';
        msd_fmt(msg, msglen, "%s %s failed: %.200s", MSD_DOCKER_LDD, exe, out);
        return -ENOEXEC;
    }
    char libc_dir[4096] = "";
    for (char *line = out, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *nf = strstr(line, "=> not found");
        if (nf) {
            *nf = '\0';
            line += strspn(line, " \t");
            msd_fmt(msg, msglen, "%s needs %.100s, which ldd cannot find", exe, line);
            return -ENOENT;
        }
        /* "name => /path (0x...)" or "/path (0x...)"; "linux-vdso.so.1 (0x...)" has no file. */
        char *arrow = strstr(line, "=> ");
        char *p = arrow ? arrow + 3 : line + strspn(line, " \t");
        if (*p != '/')
            continue;
        p[strcspn(p, " \t(")] = '\0';
        res = list_add(l, p);
        if (res) {
            msd_fmt(msg, msglen, "%s: too many libraries", exe);
            return res;
        }
        const char *base = strrchr(p, '/') + 1;
        if (strncmp(base, "libc.so", 7) == 0)
            msd_fmt(libc_dir, sizeof libc_dir, "%.*s", (int)(base - 1 - p), p);
    }
    /* NSS modules ldd cannot know of (they are dlopen'd): names, users, hosts. */
    static const char *const nss[] = {"libnss_files.so.2", "libnss_dns.so.2"};
    for (size_t i = 0; libc_dir[0] && i < sizeof nss / sizeof *nss; i++) {
        char p[4200];
        struct stat sb;
        msd_fmt(p, sizeof p, "%s/%s", libc_dir, nss[i]);
        if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode) && list_add(l, p) < 0)
            return -E2BIG;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * The archive (ustar).
 * ---------------------------------------------------------------------------------------- */

static void
octal(char *dst, size_t width, unsigned long long v)
{
    /* width - 1 digits and a NUL */
    dst[width - 1] = '\0';
    for (size_t i = width - 1; i-- > 0;) {
        dst[i] = (char)('0' + (v & 7));
        v >>= 3;
    }
}

/* Appends a header for name (relative, no leading '/'); type '0' file, '5' directory. */
static int
tar_header(msi_buf *t, const char *name, char type, unsigned mode, unsigned long long size)
{
    char h[512];
    memset(h, 0, sizeof h);
    size_t n = strlen(name);
    if (n <= 100) {
        memcpy(h, name, n);
    } else {
        /* split at a '/' so that the prefix has at most 155 bytes and the name 100 */
        const char *cut = NULL;
        for (const char *s = name; (s = strchr(s, '/')); s++)
            if ((size_t)(s - name) <= 155 && n - (size_t)(s - name) - 1 <= 100)
                cut = s;
        if (!cut)
            return -ENAMETOOLONG;
        memcpy(h + 345, name, (size_t)(cut - name));
        memcpy(h, cut + 1, n - (size_t)(cut - name) - 1);
    }
    octal(h + 100, 8, mode & 07777);
    octal(h + 108, 8, 0);
    octal(h + 116, 8, 0);
    octal(h + 124, 12, size);
    octal(h + 136, 12, 0);
    h[156] = type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (size_t i = 0; i < sizeof h; i++)
        sum += (unsigned char)h[i];
    octal(h + 148, 7, sum);
    h[155] = ' ';
    return msi_buf_put(t, h, sizeof h) ? -ENOMEM : 0;
}

static int
tar_pad(msi_buf *t)
{
    static const char zero[512];
    size_t r = t->len % 512;
    return r && msi_buf_put(t, zero, 512 - r) ? -ENOMEM : 0;
}

static int
tar_data(msi_buf *t, const char *name, unsigned mode, const void *data, size_t len)
{
    int res = tar_header(t, name, '0', mode, len);
    if (!res && len && msi_buf_put(t, data, len))
        res = -ENOMEM;
    return res ? res : tar_pad(t);
}

/* A file of the host (symbolic links followed) stored as name. */
static int
tar_file(msi_buf *t, const char *name, const char *src, unsigned mode, char *msg, size_t msglen)
{
    int fd = open(src, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        int e = fd < 0 ? errno : EINVAL;
        msd_fmt(msg, msglen, "%s: %s", src, fd < 0 ? strerror(e) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return -e;
    }
    size_t size = (size_t)sb.st_size;
    int res = 0;
    if (size > MSD_DOCKER_TAR_MAX || t->len + size > MSD_DOCKER_TAR_MAX) {
        msd_fmt(msg, msglen, "%s: the image would exceed %zu bytes", src, MSD_DOCKER_TAR_MAX);
        res = -EFBIG;
    } else if ((res = tar_header(t, name, '0', mode ? mode : (unsigned)sb.st_mode, size)) ||
               msi_buf_reserve(t, size)) {
        msd_fmt(msg, msglen, "%s: %s", src, res ? "name too long for the archive" : "no memory");
        res = res ? res : -ENOMEM;
    } else {
        size_t got = 0;
        while (got < size) {
            ssize_t r = read(fd, t->p + t->len + got, size - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                msd_fmt(msg, msglen, "%s: %s", src, r < 0 ? strerror(errno) : "shrank while read");
                res = r < 0 ? -errno : -EIO;
                break;
            }
            got += (size_t)r;
        }
        if (!res) {
            t->len += size;
            res = tar_pad(t);
        }
    }
    close(fd);
    return res;
}

/* Directory entries for every parent of path (relative), each once (dirs remembers them). */
static int
tar_parents(msi_buf *t, const char *path, file_list *dirs)
{
    char d[4096];
    msd_fmt(d, sizeof d, "%s", path);
    for (char *s = strchr(d, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        int known = 0;
        for (size_t i = 0; i < dirs->n && !known; i++)
            known = strcmp(dirs->path[i], d) == 0;
        if (!known) {
            char name[4100];
            msd_fmt(name, sizeof name, "%s/", d);
            int res = list_add(dirs, d);
            if (!res)
                res = tar_header(t, name, '5', 0755, 0);
            if (res)
                return res;
        }
        *s = '/';
    }
    return 0;
}

/* The image's name of the executable: the file name, [A-Za-z0-9._-] only. */
static void
clean_name(const char *name, char out[64])
{
    const char *b = strrchr(name, '/');
    b = b ? b + 1 : name;
    size_t k = 0;
    for (; *b && k < 63; b++)
        out[k++] = (char)((*b >= 'a' && *b <= 'z') || (*b >= 'A' && *b <= 'Z') ||
                                  (*b >= '0' && *b <= '9') || *b == '.' || *b == '_' || *b == '-'
                              ? *b
                              : '_');
    out[k] = '\0';
    if (k == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
        memcpy(out, "app", 4);
}

/* Percent-encodes s into out (query values). -1 if it did not fit. */
static int
url_encode(const char *s, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '~';
        if (k + (plain ? 1 : 3) >= size)
            return -1;
        if (plain) {
            out[k++] = (char)c;
        } else {
            out[k++] = '%';
            out[k++] = hex[c >> 4];
            out[k++] = hex[c & 15];
        }
    }
    out[k] = '\0';
    return 0;
}

/* The root file system of the image into t; ld_path gets the libraries' directories. */
static int
make_rootfs(msi_buf *t, const char *exe, const char *name, const file_list *libs, char *ld_path,
            size_t ld_len, char *msg, size_t msglen)
{
    file_list dirs = {{0}, 0};
    int res = 0;
    char entry[4200];
    ld_path[0] = '\0';
    msd_fmt(entry, sizeof entry, "%s%s", &MSD_DOCKER_IMAGE_BIN[1], name); /* no leading / */
    if ((res = tar_parents(t, entry, &dirs)) || (res = tar_file(t, entry, exe, 0555, msg, msglen)))
        goto out;
    for (size_t i = 0; i < libs->n; i++) {
        const char *rel = libs->path[i] + 1;
        if ((res = tar_parents(t, rel, &dirs)) ||
            (res = tar_file(t, rel, libs->path[i], 0, msg, msglen)))
            goto out;
        /* LD_LIBRARY_PATH: each directory once, in ldd's order */
        size_t dl = (size_t)(strrchr(libs->path[i], '/') - libs->path[i]);
        char dir[4096];
        msd_fmt(dir, sizeof dir, "%.*s", (int)(dl ? dl : 1), libs->path[i]);
        int seen = 0;
        for (const char *s = ld_path; *s && !seen;) {
            size_t n = strcspn(s, ":");
            seen = n == strlen(dir) && strncmp(s, dir, n) == 0;
            s += n + (s[n] == ':');
        }
        if (!seen) {
            size_t have = strlen(ld_path);
            if (msd_fmt(ld_path + have, ld_len - have, "%s%s", have ? ":" : "", dir) < 0) {
                ld_path[have] = '\0';
                msd_fmt(msg, msglen, "too many library directories");
                res = -E2BIG;
                goto out;
            }
        }
    }
    static const char nsswitch[] = "passwd: files\ngroup: files\nhosts: files dns\n";
    if ((res = tar_parents(t, "etc/nsswitch.conf", &dirs)) ||
        (res = tar_data(t, "etc/nsswitch.conf", 0644, nsswitch, sizeof nsswitch - 1)) ||
        (res = tar_header(t, "tmp/", '5', 01777, 0))) {
        msd_fmt(msg, msglen, "out of memory");
        goto out;
    }
    static const char end[1024];
    if (msi_buf_put(t, end, sizeof end)) {
        msd_fmt(msg, msglen, "out of memory");
        res = -ENOMEM;
    }
out:
    if (res && !msg[0])
        msd_fmt(msg, msglen, "cannot make the image's archive: %s", strerror(-res));
    list_free(&dirs);
    return res;
}

/* ------------------------------------------------------------------------------------------
 * The image.
 * ---------------------------------------------------------------------------------------- */

int
msd_docker_image_ensure(const char *sock, const char *exe, const char *name, const char *build,
                        char image[160], char *msg, size_t msglen)
{
    char path[600], m[400];
    long status = 0;
    json_t *j = NULL;
    msd_fmt(image, 160, MSD_DOCKER_REPO ":%s", build);
    msd_fmt(path, sizeof path, "/images/%s/json", image);
    int res = msd_docker_json(sock, "GET", path, NULL, 10000, &status, &j, msg, msglen);
    if (res)
        return res;
    json_decref(j);
    if (status == 200)
        return 0;
    if (status != 404) {
        msd_fmt(msg, msglen, "docker: image %s: %s", image,
                msd_docker_error_text(status, NULL, m, sizeof m));
        return -EIO;
    }

    file_list libs = {{0}, 0};
    msi_buf tar = {0};
    char *query = NULL;
    char nm[64], ld_path[2048], enc[3 * 2400], change[2400];
    clean_name(name, nm);
    msg[0] = '\0';
    int64_t t0 = msi_now_ms();
    if ((res = list_libraries(exe, &libs, msg, msglen)) ||
        (res = make_rootfs(&tar, exe, nm, &libs, ld_path, sizeof ld_path, msg, msglen)))
        goto out;

    /* POST /images/create?fromSrc=-&repo=R&tag=T&changes=...: the entry point, the
     * libraries' directories, the build as a label. */
    const char *changes[3] = {change, NULL, NULL};
    char c2[2400], c3[200];
    msd_fmt(change, sizeof change, "ENTRYPOINT [\"" MSD_DOCKER_IMAGE_BIN "%s\"]", nm);
    if (ld_path[0]) {
        msd_fmt(c2, sizeof c2, "ENV LD_LIBRARY_PATH=%s", ld_path);
        changes[1] = c2;
    }
    msd_fmt(c3, sizeof c3, "LABEL " MSD_DOCKER_LABEL_BUILD "=%s", build);
    changes[2] = c3;
    size_t qcap = 512 + 3 * (sizeof change + sizeof c2 + sizeof c3);
    query = malloc(qcap);
    if (!query) {
        res = -ENOMEM;
        msd_fmt(msg, msglen, "out of memory");
        goto out;
    }
    size_t ql = (size_t)snprintf(query, qcap, "/images/create?fromSrc=-&repo=%s&tag=%s",
                                 MSD_DOCKER_REPO, build);
    for (size_t i = 0; i < 3; i++) {
        if (!changes[i])
            continue;
        if (url_encode(changes[i], enc, sizeof enc) < 0) {
            res = -E2BIG;
            msd_fmt(msg, msglen, "image settings too long");
            goto out;
        }
        ql += (size_t)snprintf(query + ql, qcap - ql, "&changes=%s", enc);
    }
    char text[1024] = "";
    res = msd_docker_request(sock, "POST", query, "application/x-tar", tar.p, tar.len,
                             IMPORT_TIMEOUT_MS, &status, NULL, text, sizeof text, m, sizeof m);
    if (res) {
        msd_fmt(msg, msglen, "image %s: %s", image, m);
        goto out;
    }
    /* The answer is a stream of JSON progress objects; a failure is one with "error". */
    if (status != 200 || strstr(text, "\"error\"")) {
        for (char *c = text; *c; c++)
            if (*c == '\n' || *c == '\r')
                *c = ' ';
        msd_fmt(msg, msglen, "docker refused image %s: HTTP %ld: %.300s", image, status, text);
        res = -EIO;
        goto out;
    }
    msd_log("info", "docker: built image %s (%s as %s%s, %zu files, %zu bytes) in %lld ms", image,
            exe, MSD_DOCKER_IMAGE_BIN, nm, libs.n + 1, tar.len, (long long)(msi_now_ms() - t0));
out:
    free(query);
    msi_buf_free(&tar);
    list_free(&libs);
    return res;
}
