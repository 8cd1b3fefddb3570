/*
 * deploy.c: registering an executable (POST /v1/deployments, DESIGN sections 2 and 10).
 *
 * Design notes
 * - The file is opened once and everything is checked and read through that descriptor
 *   (fstat, then the copy), so the file checked is the file copied, whatever happens to the
 *   path meanwhile. Checks: a regular file, executable, not writable by group or others,
 *   owned by msd's uid or root.
 * - The file is hashed first; a build msd already has under <state>/bin is not copied
 *   again (a program's ms_init deploys itself at every start: this keeps that cheap).
 *   Otherwise the copy is written to a temporary name in <state>/bin while being hashed
 *   again (the build is the hash of what was copied, even if the file changed after the
 *   first read), made 0500 and renamed to <state>/bin/<sha256>. msd only ever executes
 *   files under <state>/bin, so replacing or deleting the original changes nothing that
 *   runs.
 * - The copy is then run with MS_DESCRIBE=1 (5 s, stdin /dev/null, output capped at
 *   1 MiB) and its JSON (docs/protocol.md) validated strictly: names, signatures, options.
 * - A build deployed again is not described again: it becomes the newest deployment (so a
 *   rollback is a deploy of the old file), takes the argv given this time, and its services
 *   are undeleted. msd.mu is held only to record the result, not
 *   while hashing or running the program.
 */
#include "runner.h"
#include "sha256.h"
#include "store.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DESCRIBE_TIMEOUT_MS 5000
#define DESCRIBE_MAX (1u << 20)
#define EXE_MAX ((off_t)4 << 30) /* 4 GiB */
#define MAX_SERVICES 1024

static int
is_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
            return 0;
    return 1;
}

ms_status
msd_parse_describe(const char *text, size_t len, json_t **services, msi_err *err)
{
    json_t *doc = msi_json_parse(text, len, err);
    if (!doc) {
        char detail[MSI_ERR_MAX];
        msd_fmt(detail, sizeof detail, "%s", err->msg);
        return msi_errf(err, MS_EBADARGS, "describe output is not JSON: %s", detail);
    }
    ms_status st = MS_OK;
    json_t *out = NULL;
    json_t *ver = json_object_get(doc, "ms");
    json_t *svcs = json_object_get(doc, "services");
    if (!json_is_object(doc) || !json_is_integer(ver) || json_integer_value(ver) != 1) {
        st = msi_errf(err, MS_EBADARGS, "describe output lacks {\"ms\":1}");
        goto out;
    }
    if (!json_is_array(svcs) || json_array_size(svcs) == 0) {
        st = msi_errf(err, MS_EBADARGS,
                      "the program provides no services (does main() call ms_init() first, "
                      "and does it define an MS_SERVICE?)");
        goto out;
    }
    if (json_array_size(svcs) > MAX_SERVICES) {
        st = msi_errf(err, MS_EBADARGS, "more than %d services", MAX_SERVICES);
        goto out;
    }
    out = json_array();
    if (!out) {
        st = msi_errf(err, MS_ENOMEM, "out of memory");
        goto out;
    }
    size_t i;
    json_t *s;
    json_array_foreach(svcs, i, s)
    {
        const char *name = json_string_value(json_object_get(s, "name"));
        const char *sig = json_string_value(json_object_get(s, "signature"));
        const char *sigtext = json_string_value(json_object_get(s, "sigtext"));
        json_t *opts = json_object_get(s, "options");
        if (!json_is_object(s) || !msd_valid_name(name)) {
            st = msi_errf(err, MS_EBADARGS, "service %zu: bad or missing name", i);
            goto out;
        }
        if (!sig || !is_hex(sig, 16)) {
            st = msi_errf(err, MS_EBADARGS, "service %s: signature must be 16 hex digits", name);
            goto out;
        }
        if (sigtext && strlen(sigtext) > 8192) {
            st = msi_errf(err, MS_EBADARGS, "service %s: sigtext too long", name);
            goto out;
        }
        if (opts && !json_is_object(opts)) {
            st = msi_errf(err, MS_EBADARGS, "service %s: options must be an object", name);
            goto out;
        }
        for (size_t k = 0; k < i; k++) {
            const char *other = json_string_value(json_object_get(json_array_get(out, k), "name"));
            if (other && strcmp(other, name) == 0) {
                st = msi_errf(err, MS_EBADARGS, "service %s is described twice", name);
                goto out;
            }
        }
        json_t *o = opts ? json_deep_copy(opts) : json_object();
        json_t *rec = json_pack("{s:s, s:s, s:s, s:o}", "name", name, "signature", sig, "sigtext",
                                sigtext ? sigtext : "", "options", o);
        if (!rec || json_array_append_new(out, rec) < 0) {
            st = msi_errf(err, MS_ENOMEM, "out of memory");
            goto out;
        }
    }
out:
    json_decref(doc);
    if (st != MS_OK) {
        json_decref(out);
        return st;
    }
    *services = out;
    return MS_OK;
}

/* The SHA-256 of fd's content from offset 0 (hex). */
static ms_status
hash_fd(int fd, char hex[65], msi_err *err)
{
    msi_sha256 c;
    msi_sha256_init(&c);
    static _Thread_local char buf[1 << 16];
    for (off_t off = 0;;) {
        ssize_t r = pread(fd, buf, sizeof buf, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return msi_errf(err, MS_EIO, "read: %s", strerror(errno));
        if (r == 0)
            break;
        msi_sha256_update(&c, buf, (size_t)r);
        off += r;
    }
    uint8_t digest[32];
    msi_sha256_final(&c, digest);
    msi_sha256_hex(digest, hex);
    return MS_OK;
}

/* <state>/bin/<hex> when msd has that build's copy already (a new string), else NULL. */
static char *
known_copy(msd *m, const char *hex)
{
    pthread_mutex_lock(&m->mu);
    int known = msd_deployment_find(m, hex) != NULL;
    pthread_mutex_unlock(&m->mu);
    char *path = known ? msd_strf("%s/bin/%s", m->cfg.state_dir, hex) : NULL;
    struct stat sb;
    if (path && (stat(path, &sb) < 0 || !S_ISREG(sb.st_mode))) {
        free(path);
        path = NULL;
    }
    return path;
}

/* Copies fd to <state>/bin/<sha256> (0500), hashing it on the way. */
static ms_status
copy_and_hash(msd *m, int fd, char hex[65], char **exe, msi_err *err)
{
    char tmp[4096], rnd[MSD_TOKEN_HEX + 1];
    if (msd_random_hex(rnd) < 0 ||
        msd_fmt(tmp, sizeof tmp, "%s/bin/.tmp-%.16s", m->cfg.state_dir, rnd) < 0)
        return msi_errf(err, MS_EIO, "cannot make a temporary name");
    int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0)
        return msi_errf(err, MS_EIO, "cannot create %s: %s", tmp, strerror(errno));
    ms_status st = MS_OK;
    msi_sha256 c;
    msi_sha256_init(&c);
    static _Thread_local char buf[1 << 16];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            st = msi_errf(err, MS_EIO, "read: %s", strerror(errno));
            break;
        }
        if (r == 0)
            break;
        msi_sha256_update(&c, buf, (size_t)r);
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(out, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                st = msi_errf(err, MS_EIO, "write %s: %s", tmp, strerror(errno));
                break;
            }
            off += w;
        }
        if (st != MS_OK)
            break;
    }
    if (st == MS_OK && (fchmod(out, 0500) < 0 || fsync(out) < 0))
        st = msi_errf(err, MS_EIO, "%s: %s", tmp, strerror(errno));
    if (close(out) < 0 && st == MS_OK)
        st = msi_errf(err, MS_EIO, "close %s: %s", tmp, strerror(errno));
    uint8_t digest[32];
    msi_sha256_final(&c, digest);
    msi_sha256_hex(digest, hex);
    char *final = msd_strf("%s/bin/%s", m->cfg.state_dir, hex);
    if (st == MS_OK && !final)
        st = msi_errf(err, MS_ENOMEM, "out of memory");
    if (st == MS_OK) {
        /* rename over an identical copy is harmless; the content is named by its hash. */
        if (rename(tmp, final) < 0)
            st = msi_errf(err, MS_EIO, "rename to %s: %s", final, strerror(errno));
    }
    if (st != MS_OK) {
        unlink(tmp);
        free(final);
        return st;
    }
    *exe = final;
    return MS_OK;
}

static json_t *
reply_of(const char *build, const json_t *services)
{
    json_t *list = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(services, i, s)
    {
        json_array_append_new(list, json_pack("{s:O, s:O}", "name", json_object_get(s, "name"),
                                              "signature", json_object_get(s, "signature")));
    }
    return json_pack("{s:s, s:o}", "build", build, "services", list);
}

/* Records a described deployment (or refreshes a known one). Caller holds mu. */
static void
record(msd *m, msd_deployment *d, int *created)
{
    msd_deployment *old = msd_deployment_find(m, d->build);
    if (old) {
        /* Deployed again: it becomes the newest (a rollback is a deploy of the old build),
         * with the arguments and path given this time. */
        json_decref(old->argv);
        old->argv = json_incref(d->argv);
        char *p = strdup(d->path);
        if (p) {
            free(old->path);
            old->path = p;
        }
        old->seq = m->next_deploy_seq++;
        if (m->store && m->store->ops->put_deployment(m->store, old) < 0)
            msd_log("error", "cannot persist deployment %.12s", old->build);
        msd_deployment_free(d);
        d = old;
        *created = 0;
    } else {
        d->seq = m->next_deploy_seq++;
        d->created_ms = msd_wall_ms();
        msd_deployment **tail = &m->deployments;
        while (*tail)
            tail = &(*tail)->next;
        *tail = d;
        if (m->store && m->store->ops->put_deployment(m->store, d) < 0)
            msd_log("error", "cannot persist deployment %.12s", d->build);
        *created = 1;
    }
    size_t i;
    json_t *s;
    json_array_foreach(d->services, i, s)
    {
        const char *name = json_string_value(json_object_get(s, "name"));
        msd_service *svc = msd_service_find(m, name, d->build);
        if (svc) {
            if (svc->deleted) {
                svc->deleted = 0;
                msd_save_service(m, svc);
            }
            continue;
        }
        svc = calloc(1, sizeof *svc);
        if (!svc)
            continue;
        msd_fmt(svc->name, sizeof svc->name, "%s", name);
        msd_fmt(svc->build, sizeof svc->build, "%s", d->build);
        msd_fmt(svc->sig, sizeof svc->sig, "%s",
                json_string_value(json_object_get(s, "signature")));
        svc->sigtext = strdup(json_string_value(json_object_get(s, "sigtext")));
        svc->options = json_deep_copy(json_object_get(s, "options"));
        svc->dep = d;
        if (!svc->sigtext || !svc->options) {
            msd_service_free(svc);
            continue;
        }
        msd_service_apply_options(svc);
        svc->last_locate_mono = msi_now_ms();
        msd_service **tail = &m->services;
        while (*tail)
            tail = &(*tail)->next;
        *tail = svc;
        msd_save_service(m, svc);
    }
    m->n_deploys++;
    msd_emit(m, "deploy", NULL, NULL, "%s build %.12s (%s): %zu service(s)",
             *created ? "new" : "known", d->build, d->path, json_array_size(d->services));
}

ms_status
msd_deploy(msd *m, const char *path, const json_t *argv, json_t **out, int *created, msi_err *err)
{
    ms_status st = MS_OK;
    int fd = -1;
    char hex[65];
    char *exe = NULL, *text = NULL;
    json_t *services = NULL;
    msd_deployment *d = NULL;

    if (!path || path[0] != '/')
        return msi_errf(err, MS_EBADARGS, "\"path\" must be an absolute path");
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return msi_errf(err, MS_EBADARGS, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        st = msi_errf(err, MS_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = msi_errf(err, MS_EBADARGS, "%s: not a regular file", path);
        goto out;
    }
    if (!(sb.st_mode & S_IXUSR)) {
        st = msi_errf(err, MS_EBADARGS, "%s: not executable", path);
        goto out;
    }
    if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
        st = msi_errf(err, MS_EFORBIDDEN,
                      "%s: writable by group or others (mode %04o): msd refuses to run it", path,
                      (unsigned)(sb.st_mode & 07777));
        goto out;
    }
    if (sb.st_uid != m->uid && sb.st_uid != 0) {
        st = msi_errf(err, MS_EFORBIDDEN, "%s: owned by uid %ld, neither msd's (%ld) nor root",
                      path, (long)sb.st_uid, (long)m->uid);
        goto out;
    }
    if (sb.st_size > EXE_MAX) {
        st = msi_errf(err, MS_ETOOBIG, "%s: larger than 4 GiB", path);
        goto out;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    st = hash_fd(fd, hex, err);
    if (st == MS_OK && !(exe = known_copy(m, hex))) {
        if (lseek(fd, 0, SEEK_SET) < 0)
            st = msi_errf(err, MS_EIO, "%s: %s", path, strerror(errno));
        else
            st = copy_and_hash(m, fd, hex, &exe, err);
    }
    if (st != MS_OK)
        goto out;

    pthread_mutex_lock(&m->mu);
    msd_deployment *known = msd_deployment_find(m, hex);
    json_t *known_services = known ? json_incref(known->services) : NULL;
    pthread_mutex_unlock(&m->mu);

    if (known_services) {
        services = known_services;
    } else {
        char msg[700];
        size_t len = 0;
        if (msd_run_describe(exe, path, DESCRIBE_TIMEOUT_MS, DESCRIBE_MAX, &text, &len, msg,
                             sizeof msg) < 0) {
            st = msi_errf(err, MS_EBADARGS, "%s: %s", path, msg);
            goto out;
        }
        if (strspn(text, " \t\r\n") == len) {
            st = msi_errf(err, MS_EBADARGS,
                          "%s: printed nothing with MS_DESCRIBE=1: not an ms program? (main() "
                          "must call ms_init() first)",
                          path);
            goto out;
        }
        st = msd_parse_describe(text, len, &services, err);
        if (st != MS_OK) {
            char detail[MSI_ERR_MAX];
            msd_fmt(detail, sizeof detail, "%s", err->msg);
            st = msi_errf(err, st, "%s: %s", path, detail);
            goto out;
        }
    }

    d = calloc(1, sizeof *d);
    if (!d || !(d->path = strdup(path))) {
        st = msi_errf(err, MS_ENOMEM, "out of memory");
        goto out;
    }
    msd_fmt(d->build, sizeof d->build, "%s", hex);
    d->exe = exe;
    exe = NULL;
    d->argv = argv ? json_deep_copy(argv) : json_array();
    d->services = json_incref(services);
    if (!d->argv) {
        st = msi_errf(err, MS_ENOMEM, "out of memory");
        goto out;
    }
    pthread_mutex_lock(&m->mu);
    record(m, d, created);
    d = NULL;
    pthread_mutex_unlock(&m->mu);
    *out = reply_of(hex, services);
    if (!*out)
        st = msi_errf(err, MS_ENOMEM, "out of memory");
out:
    if (fd >= 0)
        close(fd);
    if (exe && st != MS_OK) {
        /* A copy nobody deployed is not kept (unless a deployment refers to it). */
        pthread_mutex_lock(&m->mu);
        if (!msd_deployment_find(m, hex))
            unlink(exe);
        pthread_mutex_unlock(&m->mu);
    }
    free(exe);
    free(text);
    json_decref(services);
    msd_deployment_free(d);
    return st;
}
