/* drills.c: failure drills (DESIGN section 4; docs/calls.md). One executable, one drill per
 * run (argv[1]), each printing one summary line:
 *
 *   drill <name>: calls=N ok=N failed=N indoubt=N executions=N leaked_procs=N leaked_fds=N
 *
 *   kill-idempotent  16 callers for 30 s against an idempotent service with 4 instances,
 *                    a random ready instance kill -9'd every 500 ms: no call may fail.
 *   kill-counter     the same against a service that is not idempotent and appends one line
 *                    per execution to a file (O_APPEND): no execution twice, every failure
 *                    MS_EINDOUBT, ok <= executions <= ok + indoubt, each successful call's
 *                    token executed exactly once, each failed one's at most once.
 *   steady-counter   8 callers for 60 s against the counter service, no faults, as fast as
 *                    they can: no call may fail (at-most-once has no throughput ceiling),
 *                    no execution twice, and on every instance no call refused for a full
 *                    duplicate-request cache and a peak entry count no higher than the
 *                    callers (the cache holds calls in flight, not throughput x deadline).
 *   tiny-cache       32 callers for 10 s against the counter service with every instance's
 *                    cache cut to 16 entries (MS_DEDUPE_MAX_ENTRIES): refusals happen
 *                    (ms_dedupe_full_total > 0), every failure is MS_EOVERLOADED saying the
 *                    cache was full, no token executed twice or executed after a failure.
 *   msd-restart      16 callers for 20 s against an idempotent service; msd kill -9'd at 5 s
 *                    and restarted on the same state at 9 s: no call may fail, and afterwards
 *                    every instance process (found through /proc) is one msd lists, with the
 *                    same pids as before the kill (re-adopted, not duplicated).
 * After each: msd is stopped (SIGTERM) and no process running a deployed binary may remain
 * (leaked_procs), and this process has as many descriptors as before (leaked_fds).
 *
 * Design notes
 * - This executable is also the deployed program: started with MS_SERVE it serves (first
 *   line of main). The driver starts msd through the integration harness (harness.h), then
 *   becomes a local-mode client of it: MS_STATE_DIR makes its ms_init register this
 *   executable over msd's unix socket.
 * - msd runs with its default options: what is drilled is what users get. An instance
 *   killed within 10 s of becoming ready is restarted after a back-off (250 ms, doubling
 *   per death in a row of its slot, at most 2 s: --backoff-max-ms), and such deaths never
 *   make a crash loop, since the instances did become ready (docs/msd.md, "Deaths, back-off,
 *   crash loops"). With 4 instances and a kill every 500 ms a slot dies 10 to 15 times in
 *   30 s, so there are moments with no ready instance: msd then holds lookups until one is
 *   ready (within the call's deadline) rather than answering 503. The killer tries every
 *   500 ms but skips rounds that find no ready instance, so it kills one to two instances a
 *   second, not always two: the drill demands at least one kill per 2 s on average.
 * - The killer kills only pids that msd lists for this drill's state directory and whose
 *   /proc/<pid>/exe is a binary deployed there.
 * - Each drill is bounded: the callers stop at their time, every call has its deadline
 *   (10 s), waits are polled with timeouts; ctest adds a timeout per drill.
 */
#include "harness.h"
#include "httpc.h"
#include "msi.h"
#include "prom.h"

#include <ms/ms.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the services ---- */

MS_SERVICE(int64_t, echo_idem, (int64_t, x))
{
    return x + 1;
}
MS_OPTIONS(echo_idem, .idempotent = true, .concurrency = 4, .min_instances = 4, .max_instances = 4)

/* Not idempotent: one line per execution, appended in one write. */
MS_SERVICE(int64_t, counter, (int64_t, token))
{
    char path[512], line[32];
    snprintf(path, sizeof path, "%s/executions.log", getenv("DRILL_DIR"));
    int n = snprintf(line, sizeof line, "%lld\n", (long long)token);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, line, (size_t)n) != n) {
        if (fd >= 0)
            close(fd);
        ms_fail(1, "cannot record the execution: %s", strerror(errno));
        return 0;
    }
    close(fd);
    return token;
}
MS_OPTIONS(counter, .concurrency = 4, .min_instances = 4, .max_instances = 4)

MS_SERVICE(int64_t, steady, (int64_t, x))
{
    return x + 1;
}
MS_OPTIONS(steady, .idempotent = true, .concurrency = 4, .min_instances = 4, .max_instances = 4)

/* ---- the drill ---- */

#define CALLERS_MAX 32
#define INSTANCES 4          /* of every drilled service */
#define PER_CALLER (1 << 21) /* tokens of one caller: caller * PER_CALLER + seq */
#define MAX_TOKENS ((long)CALLERS_MAX * PER_CALLER)

enum outcome { O_NONE = 0, O_OK, O_INDOUBT, O_FAILED };

static struct drill {
    const char *name;
    const char *service;
    int seconds;
    int callers;
    int killer; /* kill -9 instances while the callers call */
    int tiny;   /* MS_DEDUPE_MAX_ENTRIES for the instances, 0: the default */
    h_msd *m;
    char dir[64];
    _Atomic int stop;
    _Atomic long calls, ok, failed, indoubt, overloaded, kills, no_victim;
    _Atomic int reported;   /* failure details printed */
    unsigned char *outcome; /* counter: per token (caller * PER_CALLER + seq) */
} D;

static int
count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static void *
caller_main(void *arg)
{
    long me = (long)(intptr_t)arg;
    long seq = 0;
    while (!D.stop) {
        int64_t r = 0;
        ms_status st;
        long token = me * PER_CALLER + seq;
        if (strcmp(D.service, "counter") == 0) {
            if (seq >= PER_CALLER)
                break; /* tokens would repeat: cannot happen in 60 s on this machine */
            st = counter_try(&r, token);
        } else if (strcmp(D.service, "steady") == 0) {
            st = steady_try(&r, seq);
        } else {
            st = echo_idem_try(&r, seq);
        }
        D.calls++;
        if (st == MS_OK) {
            if (strcmp(D.service, "counter") == 0 ? r != token : r != seq + 1) {
                D.failed++;
                fprintf(stderr, "drill %s: wrong result %lld\n", D.name, (long long)r);
            } else {
                D.ok++;
            }
        } else {
            D.failed++;
            if (st == MS_EINDOUBT)
                D.indoubt++;
            /* With a tiny cache the one failure allowed is a clear "cache full". */
            int expected = D.tiny ? st == MS_EOVERLOADED &&
                                        strstr(ms_last_error(), "duplicate-request cache full")
                                  : st == MS_EINDOUBT;
            if (D.tiny && expected)
                D.overloaded++;
            if (D.reported++ < 5 || !expected)
                fprintf(stderr, "drill %s: %s: %s\n", D.name, ms_status_name(st), ms_last_error());
        }
        if (D.outcome)
            D.outcome[token] = st == MS_OK ? O_OK : st == MS_EINDOUBT ? O_INDOUBT : O_FAILED;
        seq++;
    }
    return NULL;
}

/* Whether pid runs a binary deployed to this drill's msd. */
static int
is_instance(pid_t pid)
{
    pid_t pids[64];
    int n = h_instance_procs(D.m, pids, 64);
    for (int i = 0; i < n && i < 64; i++)
        if (pids[i] == pid)
            return 1;
    return 0;
}

/* Ready instances of a service per msd (pids). */
static int
ready_pids(const char *service, pid_t *out, int max)
{
    json_t *list = h_services(D.m);
    int n = 0;
    size_t i, k;
    json_t *s, *in;
    json_array_foreach(list, i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "name")), service) != 0)
            continue;
        json_array_foreach(json_object_get(s, "instances"), k, in)
        {
            const char *st = json_string_value(json_object_get(in, "state"));
            pid_t pid = (pid_t)json_integer_value(json_object_get(in, "pid"));
            if (st && strcmp(st, "ready") == 0 && pid > 0 && n < max)
                out[n++] = pid;
        }
    }
    json_decref(list);
    return n;
}

/* Whether a killed process is gone: no /proc entry, or a zombie (its sockets are closed). */
static int
exited(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return !rp || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X';
}

/* Victims whose exit is still awaited: how long the kernel took to end them after SIGKILL
 * (a process in uninterruptible sleep dies only when that ends, and until then its
 * connections stay open: calls in flight there wait for their deadline). */
static struct {
    pid_t pid[32];
    int64_t at[32];
    int n;
    int64_t slowest_ms;
} V;

static void
victims_check(void)
{
    int64_t now = h_now_ms();
    for (int i = 0; i < V.n;) {
        if (exited(V.pid[i]) || now - V.at[i] > 30000) {
            if (now - V.at[i] > V.slowest_ms)
                V.slowest_ms = now - V.at[i];
            V.pid[i] = V.pid[--V.n];
            V.at[i] = V.at[V.n];
        } else {
            i++;
        }
    }
}

static void *
killer_main(void *arg)
{
    (void)arg;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    fprintf(stderr, "drill %s: killer seed %u\n", D.name, seed);
    while (!D.stop) {
        h_nap(500);
        victims_check();
        if (D.stop)
            break;
        pid_t pids[16];
        int n = ready_pids(D.service, pids, 16);
        if (n <= 0) {
            D.no_victim++; /* every instance dead or starting: callers wait on msd */
            continue;
        }
        pid_t victim = pids[rand_r(&seed) % (unsigned)n];
        if (getenv("DRILL_VERBOSE"))
            fprintf(stderr, "drill %s: %d ready, killing %ld\n", D.name, n, (long)victim);
        if (is_instance(victim) && kill(victim, SIGKILL) == 0) {
            D.kills++;
            if (V.n < 32) {
                V.pid[V.n] = victim;
                V.at[V.n++] = h_now_ms();
            }
        }
    }
    for (int64_t end = h_now_ms() + 15000; V.n > 0 && h_now_ms() < end; h_nap(50))
        victims_check();
    msi_httpc_thread_release();
    return NULL;
}

/* Every instance process the kernel shows is one msd lists. */
static int
procs_match_status(int timeout_ms)
{
    int64_t end = h_now_ms() + timeout_ms;
    for (;;) {
        pid_t procs[64], known[128];
        int np = h_instance_procs(D.m, procs, 64), nk = 0;
        json_t *list = h_services(D.m);
        size_t i, k;
        json_t *s, *in;
        json_array_foreach(list, i, s)
        {
            json_array_foreach(json_object_get(s, "instances"), k, in)
            {
                if (nk < 128)
                    known[nk++] = (pid_t)json_integer_value(json_object_get(in, "pid"));
            }
        }
        json_decref(list);
        int unknown = 0;
        for (int p = 0; p < np && p < 64; p++) {
            int found = 0;
            for (int q = 0; q < nk; q++)
                found |= known[q] == procs[p];
            unknown += !found;
        }
        if (!unknown)
            return 1;
        if (h_now_ms() >= end) {
            fprintf(stderr, "drill %s: %d instance processes msd does not list\n", D.name, unknown);
            return 0;
        }
        h_nap(50);
    }
}

static int
scale(const char *service, int n)
{
    char path[128], body[32];
    snprintf(path, sizeof path, "/v1/services/%s/scale", service);
    snprintf(body, sizeof body, "{\"instances\":%d}", n);
    h_resp r;
    if (h_http(D.m, "PUT", path, D.m->admin, body, strlen(body), NULL, &r) < 0 || r.status != 200) {
        fprintf(stderr, "drill %s: scale %s: HTTP %ld %s\n", D.name, service, r.status,
                r.body ? r.body : "");
        h_resp_free(&r);
        return -1;
    }
    h_resp_free(&r);
    return h_wait_count(D.m, service, "ready", n, 20000);
}

/* The duplicate-request caches of the drilled service's ready instances, from their
 * /metrics: refusals for want of room (summed) and the highest peak entry count. The
 * number of instances read, or -1 when one could not be. */
static int
dedupe_metrics(long long *full, long long *peak, long long *hits)
{
    json_t *list = h_services(D.m);
    int n = 0, bad = 0;
    size_t i, k;
    json_t *sv, *in;
    *full = *peak = *hits = 0;
    json_array_foreach(list, i, sv)
    {
        if (strcmp(json_string_value(json_object_get(sv, "name")), D.service) != 0)
            continue;
        json_array_foreach(json_object_get(sv, "instances"), k, in)
        {
            const char *st = json_string_value(json_object_get(in, "state"));
            const char *addr = json_string_value(json_object_get(in, "addr"));
            if (!st || strcmp(st, "ready") != 0 || !addr)
                continue;
            char url[160];
            snprintf(url, sizeof url, "http://%s/metrics", addr);
            h_resp r;
            if (h_http_url("GET", url, NULL, NULL, 0, NULL, &r) < 0 || r.status != 200 || !r.body) {
                fprintf(stderr, "drill %s: %s: no metrics\n", D.name, url);
                bad = 1;
                h_resp_free(&r);
                continue;
            }
            long long f = msi_prom_value(r.body, "ms_dedupe_full_total");
            long long p = msi_prom_value(r.body, "ms_dedupe_entries_peak");
            long long h = msi_prom_value(r.body, "ms_dedupe_hits_total");
            fprintf(stderr,
                    "drill %s: instance %s: calls=%lld dedupe entries=%lld peak=%lld callers=%lld "
                    "acked=%lld expired=%lld full=%lld hits=%lld bytes=%lld\n",
                    D.name, addr, msi_prom_value(r.body, "ms_calls_total"),
                    msi_prom_value(r.body, "ms_dedupe_entries"), p,
                    msi_prom_value(r.body, "ms_dedupe_callers"),
                    msi_prom_value(r.body, "ms_dedupe_acked_total"),
                    msi_prom_value(r.body, "ms_dedupe_expired_total"), f, h,
                    msi_prom_value(r.body, "ms_dedupe_bytes"));
            h_resp_free(&r);
            if (f < 0 || p < 0 || h < 0) {
                bad = 1;
                continue;
            }
            *full += f;
            *hits += h;
            *peak = p > *peak ? p : *peak;
            n++;
        }
    }
    json_decref(list);
    return bad ? -1 : n;
}

/* Counter drill: reads the executions and checks them against the outcomes. */
static long
check_executions(int *bad)
{
    char path[128];
    snprintf(path, sizeof path, "%s/executions.log", D.dir);
    FILE *f = fopen(path, "r");
    unsigned char *seen = calloc(MAX_TOKENS, 1);
    long lines = 0;
    char buf[64];
    while (f && seen && fgets(buf, sizeof buf, f)) {
        long t = atol(buf);
        lines++;
        if (t < 0 || t >= MAX_TOKENS) {
            fprintf(stderr, "drill %s: bad line '%s'\n", D.name, buf);
            ++*bad;
            continue;
        }
        if (seen[t]++) {
            fprintf(stderr, "drill %s: token %ld executed twice\n", D.name, t);
            ++*bad;
        }
    }
    if (f)
        fclose(f);
    long ok_run = 0, indoubt_run = 0;
    for (long t = 0; seen && t < MAX_TOKENS; t++) {
        switch (D.outcome[t]) {
        case O_OK:
            ok_run++;
            if (seen[t] != 1) {
                fprintf(stderr, "drill %s: successful call %ld executed %d times\n", D.name, t,
                        seen[t]);
                ++*bad;
            }
            break;
        case O_INDOUBT:
            indoubt_run += seen[t] ? 1 : 0;
            break;
        case O_FAILED:
        case O_NONE:
            if (seen[t]) {
                fprintf(stderr, "drill %s: token %ld executed, but its call %s\n", D.name, t,
                        D.outcome[t] == O_NONE ? "was never made" : "failed");
                ++*bad;
            }
            break;
        }
    }
    if (lines != ok_run + indoubt_run) {
        fprintf(stderr, "drill %s: %ld executions, %ld successful + %ld in doubt that ran\n",
                D.name, lines, ok_run, indoubt_run);
        ++*bad;
    }
    fprintf(stderr, "drill %s: of %ld in-doubt calls, %ld had run\n", D.name, (long)D.indoubt,
            indoubt_run);
    free(seen);
    return lines;
}

static int
run(void)
{
    int bad = 0;
    int fds_before = -1;
    const int counter = strcmp(D.service, "counter") == 0;
    const int msd_drill = strcmp(D.name, "msd-restart") == 0;

    if (D.tiny) { /* the instances inherit it through msd */
        char v[16];
        snprintf(v, sizeof v, "%d", D.tiny);
        setenv("MS_DEDUPE_MAX_ENTRIES", v, 1);
    }
    D.m = h_msd_start(NULL); /* msd's defaults (design notes) */
    if (!D.m)
        return 1;
    /* A dead orchestrator first in the list: every lookup fails over. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof sa;
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    char orch[160];
    snprintf(orch, sizeof orch, "127.0.0.1:%u,%s", (unsigned)ntohs(sa.sin_port), D.m->addr);
    setenv("MS_ORCHESTRATOR", orch, 1);
    setenv("MS_MODE", "local", 1);
    setenv("MS_STATE_DIR", D.m->state, 1);
    if (!getenv("MS_LOG"))
        setenv("MS_LOG", "error", 1);
    if (ms_init(NULL, NULL) != MS_OK) {
        fprintf(stderr, "drill %s: ms_init: %s\n", D.name, ms_last_error());
        return 1;
    }
    if (scale(D.service, INSTANCES) != 0)
        return 1;
    msi_httpc_thread_release();
    fds_before = count_fds();

    pthread_t callers[CALLERS_MAX], killer;
    for (long i = 0; i < D.callers; i++)
        if (pthread_create(&callers[i], NULL, caller_main, (void *)(intptr_t)i) != 0)
            return 1;
    int have_killer = D.killer && pthread_create(&killer, NULL, killer_main, NULL) == 0;

    pid_t before[16];
    int nbefore = 0;
    int64_t t0 = h_now_ms(), end = t0 + D.seconds * 1000LL;
    if (msd_drill) {
        h_nap(5000);
        nbefore = ready_pids(D.service, before, 16);
        int ws = h_msd_signal(D.m, SIGKILL, 5000);
        if (ws < 0 || !WIFSIGNALED(ws)) {
            fprintf(stderr, "drill %s: msd did not die\n", D.name);
            bad++;
        }
        fprintf(stderr, "drill %s: msd killed at %lld ms (%d ready instances)\n", D.name,
                (long long)(h_now_ms() - t0), nbefore);
        h_nap(4000);
        if (h_msd_restart(D.m) != 0) {
            fprintf(stderr, "drill %s: msd did not restart\n", D.name);
            bad++;
        }
        fprintf(stderr, "drill %s: msd restarted at %lld ms\n", D.name,
                (long long)(h_now_ms() - t0));
    }
    while (h_now_ms() < end)
        h_nap(100);
    D.stop = 1;
    for (int i = 0; i < D.callers; i++)
        pthread_join(callers[i], NULL);
    if (have_killer)
        pthread_join(killer, NULL);

    if (msd_drill) {
        /* No duplicate: the instances are the ones from before the kill, and every instance
         * process is one msd knows. */
        pid_t after[16];
        if (h_wait_count(D.m, D.service, "ready", nbefore, 15000) != 0)
            bad++;
        int nafter = ready_pids(D.service, after, 16);
        int kept = 0;
        for (int i = 0; i < nbefore; i++)
            for (int k = 0; k < nafter; k++)
                kept += before[i] == after[k];
        int procs = h_instance_procs(D.m, NULL, 0);
        fprintf(stderr, "drill %s: %d instances before, %d after, %d kept, %d processes\n", D.name,
                nbefore, nafter, kept, procs);
        if (kept != nbefore || nafter != nbefore || procs != nafter || !procs_match_status(5000))
            bad++;
    }

    long executions = 0;
    if (counter)
        executions = check_executions(&bad);
    long long dd_full = 0, dd_peak = 0, dd_hits = 0;
    if (counter && !D.killer) { /* no instance was replaced: each one's figures are whole */
        int n = dedupe_metrics(&dd_full, &dd_peak, &dd_hits);
        if (n != INSTANCES) {
            fprintf(stderr, "drill %s: read the caches of %d instances, not %d\n", D.name, n,
                    INSTANCES);
            bad++;
        }
        fprintf(stderr, "drill %s: dedupe full=%lld peak=%lld hits=%lld\n", D.name, dd_full,
                dd_peak, dd_hits);
        long long peak_max = D.tiny ? D.tiny : D.callers;
        if (dd_peak > peak_max) {
            fprintf(stderr, "drill %s: a cache held %lld entries at once, above %lld\n", D.name,
                    dd_peak, peak_max);
            bad++;
        }
        if (D.tiny ? dd_full == 0 : dd_full != 0) {
            fprintf(stderr, "drill %s: %lld calls refused for a full cache\n", D.name, dd_full);
            bad++;
        }
    }

    /* Stop msd: it drains and stops every instance; nothing may be left behind. */
    ms_shutdown();
    msi_httpc_thread_release();
    int ws = h_msd_signal(D.m, SIGTERM, 30000);
    if (ws < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
        fprintf(stderr, "drill %s: msd did not stop cleanly (status %d)\n", D.name, ws);
        bad++;
    }
    int leaked_procs = 0;
    int64_t gone_by = h_now_ms() + 5000;
    while ((leaked_procs = h_instance_procs(D.m, NULL, 0)) > 0 && h_now_ms() < gone_by)
        h_nap(50);
    int leaked_fds = count_fds() - fds_before;

    printf("drill %s: calls=%ld ok=%ld failed=%ld indoubt=%ld executions=%ld leaked_procs=%d "
           "leaked_fds=%d\n",
           D.name, (long)D.calls, (long)D.ok, (long)D.failed, (long)D.indoubt, executions,
           leaked_procs, leaked_fds);
    fprintf(stderr,
            "drill %s: %ld instances killed; %ld rounds found none ready; the slowest took %lld "
            "ms to exit after SIGKILL\n",
            D.name, (long)D.kills, (long)D.no_victim, (long long)V.slowest_ms);
    fflush(stdout);

    if (D.tiny) {
        if (D.failed != D.overloaded)
            bad++; /* every failure must be a clear "cache full" */
    } else if (D.killer && counter) {
        if (D.failed != D.indoubt)
            bad++; /* every failure must be MS_EINDOUBT */
    } else if (D.failed != 0) {
        bad++;
    }
    if (D.ok == 0 || leaked_procs != 0 || leaked_fds != 0)
        bad++;
    if (D.killer && D.kills < D.seconds / 2)
        bad++; /* the killer must really have been at work (design notes) */
    return bad ? 1 : 0;
}

static void
remove_dir(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/executions.log", D.dir);
    unlink(path);
    rmdir(D.dir);
}

int
main(int argc, char **argv)
{
    if (getenv("MS_SERVE") || getenv("MS_DESCRIBE")) {
        ms_init(&argc, &argv); /* serves or describes, and exits */
        return 2;
    }
    if (argc < 2) {
        fprintf(stderr,
                "usage: %s kill-idempotent|kill-counter|steady-counter|tiny-cache|msd-restart "
                "[seconds]\n",
                argv[0]);
        return 2;
    }
    /* The drills (the design notes above say what each checks). */
    static const struct {
        const char *name, *service;
        int seconds, callers, killer, tiny;
    } drills[] = {
        {"kill-idempotent", "echo_idem", 30, 16, 1, 0}, {"kill-counter", "counter", 30, 16, 1, 0},
        {"steady-counter", "counter", 60, 8, 0, 0},     {"tiny-cache", "counter", 10, 32, 0, 16},
        {"msd-restart", "steady", 20, 16, 0, 0},
    };
    size_t k = 0;
    while (k < sizeof drills / sizeof drills[0] && strcmp(drills[k].name, argv[1]) != 0)
        k++;
    if (k == sizeof drills / sizeof drills[0]) {
        fprintf(stderr, "unknown drill %s\n", argv[1]);
        return 2;
    }
    D.name = drills[k].name;
    D.service = drills[k].service;
    D.seconds = drills[k].seconds;
    D.callers = drills[k].callers;
    D.killer = drills[k].killer;
    D.tiny = drills[k].tiny;
    if (argc > 2)
        D.seconds = atoi(argv[2]);
    h_bin("MS_TEST_MSD"); /* exits early, before making anything, when unset */
    if (strcmp(D.service, "counter") == 0 && !(D.outcome = calloc(MAX_TOKENS, 1)))
        return 1;
    snprintf(D.dir, sizeof D.dir, "/tmp/ms-drill-XXXXXX");
    if (!mkdtemp(D.dir))
        return 1;
    setenv("DRILL_DIR", D.dir, 1); /* instances inherit it through msd */
    atexit(remove_dir);            /* registered before the harness's: runs after msd is stopped */
    signal(SIGPIPE, SIG_IGN);
    int rc = run();
    free(D.outcome);
    return rc;
}
