/*
 * dockerd.c: a private Docker daemon for the tests (contract: dockerd.h).
 */
#include "dockerd.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define START_TIMEOUT_MS 60000
#define STOP_TIMEOUT_MS 20000

static h_dockerd *the_daemon; /* stopped at exit */

/* The first executable "dockerd" in PATH (and the sbin directories, which root's PATH may
 * lack), into out. */
static int
find_dockerd(char *out, size_t len)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s:/usr/sbin:/sbin:/usr/local/sbin", path ? path : "/usr/bin");
    for (const char *dir = buf; *dir;) {
        size_t n = strcspn(dir, ":");
        snprintf(out, len, "%.*s/dockerd", (int)n, dir);
        if (n && access(out, X_OK) == 0)
            return 0;
        dir += n + (dir[n] == ':');
    }
    return -1;
}

/* The last line of the daemon's log that says level=error or level=fatal (else the last
 * line), into why. */
static void
last_error(const h_dockerd *d, char *why, size_t len)
{
    FILE *f = fopen(d->log, "r");
    char line[1024], best[1024] = "", last[1024] = "";
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(last, sizeof last, "%s", line);
        if (strstr(line, "level=error") || strstr(line, "level=fatal") ||
            strstr(line, "failed to start daemon"))
            snprintf(best, sizeof best, "%s", line);
    }
    if (f)
        fclose(f);
    snprintf(why, len, "%s", best[0] ? best : last[0] ? last : "(its log is empty)");
}

int
h_docker(h_dockerd *d, const char *method, const char *path, const char *body, h_resp *r)
{
    const char *hdr[] = {"Content-Type: application/json", NULL};
    return h_http_sock(d->sock, method, path, body, body ? strlen(body) : 0, body ? hdr : NULL, r);
}

static void
stop_at_exit(void)
{
    if (the_daemon)
        h_dockerd_stop(the_daemon);
}

int
h_dockerd_start(h_dockerd *d, char *why, size_t whylen)
{
    char exe[4200];
    memset(d, 0, sizeof *d);
    if (find_dockerd(exe, sizeof exe) < 0) {
        snprintf(why, whylen, "dockerd not found (package docker.io: scripts/install-deps.sh)");
        return -1;
    }
    if (geteuid() != 0) {
        snprintf(why, whylen, "dockerd needs root; this test runs as uid %ld", (long)geteuid());
        return -1;
    }
    snprintf(d->dir, sizeof d->dir, "/tmp/ms-dockerd-XXXXXX");
    if (!mkdtemp(d->dir)) {
        snprintf(why, whylen, "mkdtemp: %s", strerror(errno));
        return -1;
    }
    snprintf(d->sock, sizeof d->sock, "%s/docker.sock", d->dir);
    snprintf(d->log, sizeof d->log, "%s/dockerd.log", d->dir);
    char cfg[128], data[128], execr[128], pidf[128], host[160];
    snprintf(cfg, sizeof cfg, "%s/daemon.json", d->dir);
    snprintf(data, sizeof data, "%s/data", d->dir);
    snprintf(execr, sizeof execr, "%s/exec", d->dir);
    snprintf(pidf, sizeof pidf, "%s/docker.pid", d->dir);
    snprintf(host, sizeof host, "unix://%s", d->sock);
    char cgparent[80];
    snprintf(cgparent, sizeof cgparent, "/%s", strrchr(d->dir, '/') + 1);
    FILE *f = fopen(cfg, "w");
    if (!f) {
        snprintf(why, whylen, "%s: %s", cfg, strerror(errno));
        return -1;
    }
    fprintf(f, "{\"deprecated-key-path\": \"%s/key.json\"}\n", d->dir);
    fclose(f);
    the_daemon = d;
    h_after_cleanup(stop_at_exit);

    const char *argv[] = {exe,
                          "--config-file",
                          cfg,
                          "--data-root",
                          data,
                          "--exec-root",
                          execr,
                          "--pidfile",
                          pidf,
                          "-H",
                          host,
                          "--bridge=none",
                          "--iptables=false",
                          "--ip6tables=false",
                          "--ip-masq=false",
                          "--ip-forward=false",
                          "--exec-opt",
                          "native.cgroupdriver=cgroupfs",
                          "--cgroup-parent",
                          cgparent,
                          NULL};
    pid_t pid = h_spawn_logged(argv, d->log, NULL);
    if (pid < 0) {
        snprintf(why, whylen, "fork: %s", strerror(errno));
        return -1;
    }
    d->pid = pid;
    int64_t t0 = h_now_ms(), end = t0 + START_TIMEOUT_MS;
    while (h_now_ms() < end) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            d->pid = 0;
            char e[900];
            last_error(d, e, sizeof e);
            snprintf(why, whylen, "dockerd exited at start (status %d): %s", st, e);
            return -1;
        }
        h_resp r;
        if (h_docker(d, "GET", "/_ping", NULL, &r) == 0 && r.status == 200) {
            h_resp_free(&r);
            fprintf(stderr, "dockerd: pid %ld, %s, answered in %lld ms\n", (long)pid, d->sock,
                    (long long)(h_now_ms() - t0));
            return 0;
        }
        h_resp_free(&r);
        h_nap(50);
    }
    char e[900];
    last_error(d, e, sizeof e);
    snprintf(why, whylen, "dockerd did not answer on %s within %d ms: %s", d->sock,
             START_TIMEOUT_MS, e);
    return -1;
}

/* DELETE every object listed by GET list_path (its "Id"s), at del_fmt (a "%s" for the id). */
static void
remove_all(h_dockerd *d, const char *list_path, const char *del_fmt)
{
    h_resp r;
    if (h_docker(d, "GET", list_path, NULL, &r) != 0 || r.status != 200 || !json_is_array(r.json)) {
        h_resp_free(&r);
        return;
    }
    size_t i;
    json_t *it;
    json_array_foreach(r.json, i, it)
    {
        const char *id = json_string_value(json_object_get(it, "Id"));
        if (!id)
            continue;
        char path[300];
        snprintf(path, sizeof path, del_fmt, id);
        h_resp x;
        h_docker(d, "DELETE", path, NULL, &x);
        h_resp_free(&x);
    }
    h_resp_free(&r);
}

/* The containers' parent cgroup (--cgroup-parent /<dir's name>) in every hierarchy: empty
 * once the daemon is gone (rmdir fails harmlessly otherwise). */
static void
remove_cgroups(const h_dockerd *d)
{
    FILE *f = fopen("/proc/self/mounts", "r");
    char line[4096];
    while (f && fgets(line, sizeof line, f)) {
        char *mp = strchr(line, ' ');
        if (!mp)
            continue;
        mp++;
        char *end = strchr(mp, ' ');
        if (!end || (strncmp(end + 1, "cgroup ", 7) != 0 && strncmp(end + 1, "cgroup2 ", 8) != 0))
            continue;
        *end = '\0';
        char p[4300];
        snprintf(p, sizeof p, "%s/%s", mp, strrchr(d->dir, '/') + 1);
        rmdir(p);
    }
    if (f)
        fclose(f);
}

/* Detaches every mount under dir (the daemon's network namespace file, overlays), deepest
 * first. */
static void
unmount_under(const char *dir)
{
    for (int pass = 0; pass < 8; pass++) {
        FILE *f = fopen("/proc/self/mounts", "r");
        if (!f)
            return;
        char line[4096], found[4096] = "";
        size_t dl = strlen(dir);
        while (fgets(line, sizeof line, f)) {
            char *mp = strchr(line, ' ');
            if (!mp)
                continue;
            mp++;
            mp[strcspn(mp, " ")] = '\0';
            if (strncmp(mp, dir, dl) == 0 && (mp[dl] == '/' || mp[dl] == '\0'))
                snprintf(found, sizeof found, "%s", mp); /* the last one: mounted last */
        }
        fclose(f);
        if (!found[0] || umount2(found, MNT_DETACH) < 0)
            return;
    }
}

void
h_dockerd_kill(h_dockerd *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGTERM);
    int64_t end = h_now_ms() + STOP_TIMEOUT_MS;
    int st, gone = 0;
    while (!gone && h_now_ms() < end) {
        gone = waitpid(d->pid, &st, WNOHANG) == d->pid;
        if (!gone)
            h_nap(20);
    }
    if (!gone) {
        fprintf(stderr, "dockerd: %ld did not stop on SIGTERM: SIGKILL\n", (long)d->pid);
        kill(d->pid, SIGKILL);
        waitpid(d->pid, &st, 0);
    }
    d->pid = 0;
}

void
h_dockerd_stop(h_dockerd *d)
{
    if (d->pid > 0) {
        remove_all(d, "/v1.41/containers/json?all=1", "/v1.41/containers/%s?force=1&v=1");
        remove_all(d, "/v1.41/images/json?all=1", "/v1.41/images/%s?force=1");
        h_dockerd_kill(d);
    }
    if (d->dir[0]) {
        remove_cgroups(d);
        unmount_under(d->dir);
        if (getenv("MS_TEST_KEEP"))
            fprintf(stderr, "dockerd: kept %s\n", d->dir);
        else
            h_rm_tree(d->dir, 1);
        d->dir[0] = '\0';
    }
    if (the_daemon == d)
        the_daemon = NULL;
}
