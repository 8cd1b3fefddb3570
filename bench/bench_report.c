/*
 * bench_report.c: turns the JSON lines scripts/bench.sh collected into the results: one
 * JSON document for tooling and a markdown page for people, with every transport's figures
 * as ratios to the floor (raw TCP), ONC RPC and gRPC measured in the same run.
 *
 *   bench_report --dir DIR --out-json FILE --out-md FILE [--mode full|smoke]
 *                [--command CMD] [--date D] [--nproc N] [--cpu MODEL] [--kernel K] [--load L]
 *                [--calls N] [--warmup N] [--threads N] [--seconds S]
 *
 * DIR holds, per row ID: ID.lat_pinned.json, ID.lat_unpinned.json, ID.tput.json (one JSON
 * line each, or {"error": ...}), or ID.skipped (the reason, one line). The other files:
 * zero.json, zero_checked.json, first_call.json (one line per trial), lookups.lat.json,
 * lookups.tput.json, spawn_ready.json, spawn_ready_many.json, msd_cpu.json, dedupe.json,
 * obj_{get,put}.{lat,tput}.json and obj_bare_{get,put}.{lat,tput}.json (the object store
 * through ms and on SQLite directly), and local.skipped when local mode is not available.
 *
 * Prints the markdown on stdout. Exits 1 if any measurement that ran reported an error
 * (skipped rows are not errors), so that a smoke run in CI fails when a row rots.
 */
#include <jansson.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct row_def {
    const char *id;
    const char *name;
    const char *what;
} row_def;

static const row_def ROWS[] = {
    {"tcp", "raw TCP ping-pong (floor)", "40-byte frame echoed by a thread per connection"},
    {"http", "libmicrohttpd + libcurl", "the libraries ms used before issue 5"},
    {"http_epoll", "libmicrohttpd (epoll pool) + libcurl", "the other libmicrohttpd mode"},
    {"mst", "ms's own HTTP server + client, bare", "the transport ms uses, without ms"},
    {"oncrpc", "ONC RPC (rpcgen + libtirpc)", "TCP, svc_run, no portmapper"},
    {"grpc", "gRPC C++ (sync unary)", "HTTP/2 + protobuf, a channel per caller"},
    {"ms_local1", "ms local mode, 1 instance", "client LB, msd-spawned instance"},
    {"ms_local3", "ms local mode, 3 instances", "client LB round-robin over 3"},
    {"ms_once", "ms local mode, 1 instance, not idempotent",
     "every call through the duplicate-request cache"},
};
#define NROWS (sizeof ROWS / sizeof *ROWS)

static const char *dir;
static int errors;
static json_t *error_list;

/* ------------------------------------------------------------------------------------------
 * Reading the result files.
 * ---------------------------------------------------------------------------------------- */
static char *
read_text(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t n;
    while (s && (n = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            char *t = len < (1u << 24) ? realloc(s, cap *= 2) : NULL;
            if (!t) {
                free(s);
                s = NULL;
            } else {
                s = t;
            }
        }
    }
    fclose(f);
    if (s)
        s[len] = '\0';
    return s;
}

/* The JSON objects of a file, one per line (an array; empty when the file is missing). */
static json_t *
read_lines(const char *name)
{
    json_t *arr = json_array();
    char *text = read_text(name);
    if (!text)
        return arr;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *j = json_loads(line, 0, NULL);
        if (json_is_object(j))
            json_array_append_new(arr, j);
        else
            json_decref(j);
    }
    free(text);
    return arr;
}

/* The last JSON object of a file; NULL if missing. A file that exists without a JSON line
 * (a program that died before printing) becomes {"error": "no result"}. */
static json_t *
read_one(const char *name)
{
    char *text = read_text(name);
    if (!text)
        return NULL;
    free(text);
    json_t *arr = read_lines(name);
    size_t n = json_array_size(arr);
    json_t *j = n ? json_incref(json_array_get(arr, n - 1))
                  : json_pack("{s:s}", "error", "no result (the program printed nothing)");
    json_decref(arr);
    return j;
}

static char *
read_reason(const char *name)
{
    char *s = read_text(name);
    if (s)
        s[strcspn(s, "\n")] = '\0';
    return s;
}

/* "skipped: why" -> "why" */
static const char *
unprefixed(const char *reason)
{
    return strncmp(reason, "skipped: ", 9) == 0 ? reason + 9 : reason;
}

static void
note_error(const char *what, json_t *j)
{
    const char *e = json_string_value(json_object_get(j, "error"));
    if (!e)
        return;
    errors++;
    json_array_append_new(error_list, json_pack("{s:s,s:s}", "what", what, "error", e));
}

static double
num(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* ------------------------------------------------------------------------------------------
 * Markdown helpers.
 * ---------------------------------------------------------------------------------------- */
typedef struct out {
    FILE *md;
} out;

static void
md(out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(o->md, fmt, ap);
    va_end(ap);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
}

/* A figure with a sensible number of digits. */
static const char *
fig(char *buf, size_t len, double v)
{
    if (isnan(v))
        snprintf(buf, len, "–");
    else if (fabs(v) >= 10000)
        snprintf(buf, len, "%.0f", v);
    else if (fabs(v) >= 100)
        snprintf(buf, len, "%.0f", v);
    else if (fabs(v) >= 10)
        snprintf(buf, len, "%.1f", v);
    else
        snprintf(buf, len, "%.2f", v);
    return buf;
}

/* A count; "?" when unknown. */
static const char *
cnt(char *buf, size_t len, double v)
{
    if (isnan(v))
        snprintf(buf, len, "?");
    else
        snprintf(buf, len, "%.0f", v);
    return buf;
}

/* Throughput with thousands separators. */
static const char *
rate(char *buf, size_t len, double v)
{
    if (isnan(v)) {
        snprintf(buf, len, "–");
        return buf;
    }
    long long x = llround(v);
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", x);
    size_t n = strlen(tmp), j = 0;
    for (size_t i = 0; i < n && j + 2 < len; i++) {
        if (i && (n - i) % 3 == 0)
            buf[j++] = ',';
        buf[j++] = tmp[i];
    }
    buf[j] = '\0';
    return buf;
}

static const char *
ratio(char *buf, size_t len, double a, double b)
{
    if (isnan(a) || isnan(b) || b == 0)
        snprintf(buf, len, "–");
    else
        snprintf(buf, len, "%.2fx", a / b);
    return buf;
}

/* ------------------------------------------------------------------------------------------
 * Rows.
 * ---------------------------------------------------------------------------------------- */
typedef struct row {
    const row_def *def;
    char *skipped;
    json_t *lat_pinned, *lat_unpinned, *tput;
} row;

static row rows[NROWS];

static json_t *
row_of(const char *id)
{
    for (size_t i = 0; i < NROWS; i++)
        if (strcmp(rows[i].def->id, id) == 0)
            return json_pack("{s:O?,s:O?,s:O?}", "latency_pinned", rows[i].lat_pinned,
                             "latency_unpinned", rows[i].lat_unpinned, "throughput", rows[i].tput);
    return NULL;
}

static double
fig_of(const char *id, const char *part, const char *key)
{
    json_t *r = row_of(id);
    double v = num(json_object_get(r, part), key);
    json_decref(r);
    return v;
}

static void
latency_table(out *o, const char *part, const char *title)
{
    char a[64], b[64], c[64], d[64], e[64], f[64];
    md(o, "\n### %s\n\n", title);
    md(o, "| transport | p50 µs | p99 µs | mean µs | p50 vs floor | p50 vs ONC RPC | "
          "p50 vs gRPC |\n|---|---:|---:|---:|---:|---:|---:|\n");
    double floor = fig_of("tcp", part, "p50_us"), onc = fig_of("oncrpc", part, "p50_us"),
           grpc = fig_of("grpc", part, "p50_us");
    for (size_t i = 0; i < NROWS; i++) {
        row *r = &rows[i];
        json_t *l = strcmp(part, "latency_pinned") == 0 ? r->lat_pinned : r->lat_unpinned;
        if (r->skipped) {
            md(o, "| %s | skipped | | | | | |\n", r->def->name);
            continue;
        }
        if (!l || json_object_get(l, "error")) {
            md(o, "| %s | error: %s | | | | | |\n", r->def->name,
               l ? json_string_value(json_object_get(l, "error")) : "no result");
            continue;
        }
        double p50 = num(l, "p50_us");
        md(o, "| %s | %s | %s | %s | %s | %s | %s |\n", r->def->name, fig(a, sizeof a, p50),
           fig(b, sizeof b, num(l, "p99_us")), fig(c, sizeof c, num(l, "mean_us")),
           ratio(d, sizeof d, p50, floor), ratio(e, sizeof e, p50, onc),
           ratio(f, sizeof f, p50, grpc));
    }
}

static void
throughput_table(out *o, const char *title)
{
    char a[64], b[64], c[64], d[64];
    md(o, "\n### %s\n\n", title);
    md(o, "| transport | calls/s | vs floor | vs ONC RPC | vs gRPC |\n"
          "|---|---:|---:|---:|---:|\n");
    double floor = fig_of("tcp", "throughput", "calls_per_s"),
           onc = fig_of("oncrpc", "throughput", "calls_per_s"),
           grpc = fig_of("grpc", "throughput", "calls_per_s");
    for (size_t i = 0; i < NROWS; i++) {
        row *r = &rows[i];
        if (r->skipped) {
            md(o, "| %s | skipped | | | |\n", r->def->name);
            continue;
        }
        if (!r->tput || json_object_get(r->tput, "error")) {
            md(o, "| %s | error: %s | | | |\n", r->def->name,
               r->tput ? json_string_value(json_object_get(r->tput, "error")) : "no result");
            continue;
        }
        double v = num(r->tput, "calls_per_s");
        md(o, "| %s | %s | %s | %s | %s |\n", r->def->name, rate(a, sizeof a, v),
           ratio(b, sizeof b, v, floor), ratio(c, sizeof c, v, onc), ratio(d, sizeof d, v, grpc));
    }
}

/* Ratios of every row to the three references, for the JSON. */
static json_t *
ratios_json(size_t i)
{
    json_t *o = json_object();
    static const char *refs[] = {"tcp", "oncrpc", "grpc"};
    static const char *names[] = {"floor", "oncrpc", "grpc"};
    for (int k = 0; k < 3; k++) {
        json_t *rk = json_object();
        double pp = num(rows[i].lat_pinned, "p50_us"), pu = num(rows[i].lat_unpinned, "p50_us"),
               t = num(rows[i].tput, "calls_per_s");
        double rpp = fig_of(refs[k], "latency_pinned", "p50_us"),
               rpu = fig_of(refs[k], "latency_unpinned", "p50_us"),
               rt = fig_of(refs[k], "throughput", "calls_per_s");
        if (!isnan(pp) && !isnan(rpp) && rpp > 0)
            json_object_set_new(rk, "p50_pinned", json_real(pp / rpp));
        if (!isnan(pu) && !isnan(rpu) && rpu > 0)
            json_object_set_new(rk, "p50_unpinned", json_real(pu / rpu));
        if (!isnan(t) && !isnan(rt) && rt > 0)
            json_object_set_new(rk, "throughput", json_real(t / rt));
        json_object_set_new(o, names[k], rk);
    }
    return o;
}

/* Median of a numeric field over an array of objects. */
static double
median_of(json_t *arr, const char *key, double *min, double *max, int *n)
{
    double v[1024];
    int k = 0;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        double x = num(e, key);
        if (!isnan(x) && k < 1024)
            v[k++] = x;
    }
    *n = k;
    if (!k) {
        *min = *max = NAN;
        return NAN;
    }
    for (int a = 1; a < k; a++) /* insertion sort: a handful of trials */
        for (int b = a; b > 0 && v[b - 1] > v[b]; b--) {
            double t = v[b];
            v[b] = v[b - 1];
            v[b - 1] = t;
        }
    *min = v[0];
    *max = v[k - 1];
    return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

int
main(int argc, char **argv)
{
    const char *out_json = NULL, *out_md = NULL, *mode = "full", *command = "", *date = "",
               *nproc = "", *cpu = "", *kernel = "", *load = "", *calls = "", *warmup = "",
               *threads = "", *seconds = "";
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--dir"))
            dir = v;
        else if (!strcmp(k, "--out-json"))
            out_json = v;
        else if (!strcmp(k, "--out-md"))
            out_md = v;
        else if (!strcmp(k, "--mode"))
            mode = v;
        else if (!strcmp(k, "--command"))
            command = v;
        else if (!strcmp(k, "--date"))
            date = v;
        else if (!strcmp(k, "--nproc"))
            nproc = v;
        else if (!strcmp(k, "--cpu"))
            cpu = v;
        else if (!strcmp(k, "--kernel"))
            kernel = v;
        else if (!strcmp(k, "--load"))
            load = v;
        else if (!strcmp(k, "--calls"))
            calls = v;
        else if (!strcmp(k, "--warmup"))
            warmup = v;
        else if (!strcmp(k, "--threads"))
            threads = v;
        else if (!strcmp(k, "--seconds"))
            seconds = v;
        else {
            fprintf(stderr, "bench_report: unknown option %s\n", k);
            return 2;
        }
    }
    if (!dir || !out_json || !out_md) {
        fprintf(stderr, "usage: bench_report --dir DIR --out-json FILE --out-md FILE ...\n");
        return 2;
    }
    error_list = json_array();

    /* Load. */
    for (size_t i = 0; i < NROWS; i++) {
        row *r = &rows[i];
        char name[256];
        r->def = &ROWS[i];
        snprintf(name, sizeof name, "%s.skipped", r->def->id);
        if ((r->skipped = read_reason(name)))
            continue;
        snprintf(name, sizeof name, "%s.lat_pinned.json", r->def->id);
        r->lat_pinned = read_one(name);
        snprintf(name, sizeof name, "%s.lat_unpinned.json", r->def->id);
        r->lat_unpinned = read_one(name);
        snprintf(name, sizeof name, "%s.tput.json", r->def->id);
        r->tput = read_one(name);
        if (!r->lat_pinned && !r->lat_unpinned && !r->tput) {
            r->skipped = strdup("skipped: not measured");
            continue;
        }
        char what[128];
        snprintf(what, sizeof what, "%s pinned latency", r->def->id);
        note_error(what, r->lat_pinned);
        snprintf(what, sizeof what, "%s unpinned latency", r->def->id);
        note_error(what, r->lat_unpinned);
        snprintf(what, sizeof what, "%s throughput", r->def->id);
        note_error(what, r->tput);
    }
    json_t *zero = read_one("zero.json"), *zero_checked = read_one("zero_checked.json");
    note_error("zero mode", zero);
    note_error("zero-checked mode", zero_checked);
    char *local_skipped = read_reason("local.skipped");
    json_t *first = read_lines("first_call.json");
    json_t *lk_lat = read_one("lookups.lat.json"), *lk_tput = read_one("lookups.tput.json");
    json_t *sr = read_one("spawn_ready.json"), *sr_many = read_one("spawn_ready_many.json");
    json_t *cpu_j = read_one("msd_cpu.json"), *many = read_one("many_ensure.json");
    json_t *dedupe = read_one("dedupe.json");
    /* The object store (issue 9): through ms and on SQLite directly; [op][bare][tput]. */
    static const char *const OBJ_FILES[2][2][2] = {
        {{"obj_get.lat.json", "obj_get.tput.json"},
         {"obj_bare_get.lat.json", "obj_bare_get.tput.json"}},
        {{"obj_put.lat.json", "obj_put.tput.json"},
         {"obj_bare_put.lat.json", "obj_bare_put.tput.json"}},
    };
    /* A method call against a plain remote call (issue 9); [method or call][tput]. */
    static const char *const METH_FILES[2][2] = {{"obj_method.lat.json", "obj_method.tput.json"},
                                                 {"obj_call.lat.json", "obj_call.tput.json"}};
    json_t *meth[2][2];
    for (int a = 0; a < 2; a++)
        for (int c = 0; c < 2; c++)
            meth[a][c] = read_one(METH_FILES[a][c]);
    json_t *obj[2][2][2];
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 2; c++)
                obj[a][b][c] = read_one(OBJ_FILES[a][b][c]);
    if (!local_skipped) {
        size_t i;
        json_t *e;
        json_array_foreach(first, i, e) note_error("first call", e);
        note_error("msd lookups latency", lk_lat);
        note_error("msd lookups throughput", lk_tput);
        note_error("spawn-to-ready", sr);
        note_error("spawn-to-ready (many)", sr_many);
        note_error("msd CPU", cpu_j);
        note_error("duplicate-request cache", dedupe);
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                for (int c = 0; c < 2; c++)
                    note_error(OBJ_FILES[a][b][c], obj[a][b][c]);
        for (int a = 0; a < 2; a++)
            for (int c = 0; c < 2; c++)
                note_error(METH_FILES[a][c], meth[a][c]);
    }

    /* Markdown. */
    FILE *mf = fopen(out_md, "w");
    if (!mf) {
        perror(out_md);
        return 2;
    }
    out o = {mf};
    char a[64], b[64], c[64], d[64], e[64];
    md(&o, "## ms benchmarks (%s run, %s)\n\n", mode, date);
    md(&o,
       "Machine: %s, %s CPUs, Linux %s. Load average (1, 5, 15 min) before and after: %s. "
       "Command: `%s`.\n\n",
       cpu, nproc, kernel, load, command);
    md(&o,
       "Every row echoes an int64 and a 32-byte string over loopback (127.0.0.1). Latency: "
       "%s sequential calls after %s warm-up calls, one connection. Throughput: %s "
       "concurrent callers, each with its own connection, for %s s. Ratios are to the "
       "raw TCP floor, ONC RPC and gRPC of this same run (lower is better for latency, "
       "higher for throughput).\n",
       calls, warmup, threads, seconds);
    latency_table(&o, "latency_pinned",
                  "Sequential latency, both ends pinned to CPU 0 (`taskset -c 0`)");
    latency_table(&o, "latency_unpinned", "Sequential latency, unpinned");
    throughput_table(&o, "Throughput, concurrent callers");

    md(&o, "\n### ms zero mode against a direct call\n\n");
    if (zero && !json_object_get(zero, "error")) {
        md(&o, "| call | ns per call |\n|---|---:|\n");
        md(&o, "| direct function call (noinline, barrier) | %s |\n",
           fig(a, sizeof a, num(zero, "direct_ns")));
        md(&o, "| ms stub, MS_MODE=zero | %s |\n", fig(b, sizeof b, num(zero, "ms_ns")));
        md(&o, "| **overhead of ms** | **%s** |\n", fig(c, sizeof c, num(zero, "overhead_ns")));
        if (zero_checked && !json_object_get(zero_checked, "error"))
            md(&o, "| ms stub, MS_MODE=zero-checked (full encode/decode) | %s |\n",
               fig(d, sizeof d, num(zero_checked, "checked_ns")));
        md(&o,
           "\nFastest of %.0f rounds of %.0f calls each (the echo body, a strdup, is in "
           "both).\n",
           num(zero, "rounds"), num(zero, "calls_per_round"));
    } else {
        md(&o, "error: %s\n",
           zero ? json_string_value(json_object_get(zero, "error")) : "not measured");
    }

    md(&o, "\n### ms local mode: orchestration\n\n");
    json_t *local = json_object();
    {
        static const char *const OPN[2] = {"get", "put"}, *const WHO[2] = {"ms", "sqlite"},
                                 *const PART[2] = {"latency", "throughput"};
        json_t *oj = json_object();
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                for (int c = 0; c < 2; c++) {
                    char key[64];
                    snprintf(key, sizeof key, "%s_%s_%s", OPN[a], WHO[b], PART[c]);
                    json_object_set(oj, key, obj[a][b][c] ? obj[a][b][c] : json_null());
                }
        static const char *const MN[2] = {"method", "call"};
        for (int a = 0; a < 2; a++)
            for (int c = 0; c < 2; c++) {
                char key[64];
                snprintf(key, sizeof key, "%s_%s", MN[a], PART[c]);
                json_object_set(oj, key, meth[a][c] ? meth[a][c] : json_null());
            }
        json_object_set_new(local, "objects", oj);
    }
    if (local_skipped) {
        md(&o, "%s\n", local_skipped);
        json_object_set_new(local, "skipped", json_string(local_skipped));
    } else {
        md(&o, "| measure | value |\n|---|---:|\n");
        double mn, mx;
        int n;
        double fc = median_of(first, "first_call_ms", &mn, &mx, &n);
        md(&o, "| first call (locate + spawn + ready), median of %d | %s ms (min %s, max %s) |\n",
           n, fig(a, sizeof a, fc), fig(b, sizeof b, mn), fig(c, sizeof c, mx));
        json_object_set_new(local, "first_call",
                            json_pack("{s:f,s:f,s:f,s:i,s:O}", "median_ms", isnan(fc) ? -1 : fc,
                                      "min_ms", isnan(mn) ? -1 : mn, "max_ms", isnan(mx) ? -1 : mx,
                                      "trials", n, "runs", first));
        double in = median_of(first, "init_ms", &mn, &mx, &n);
        md(&o, "| ms_init before it (client start, deployment), median | %s ms |\n",
           fig(a, sizeof a, in));
        md(&o, "| msd lookup, sequential p50 / p99 | %s / %s µs |\n",
           fig(a, sizeof a, num(lk_lat, "p50_us")), fig(b, sizeof b, num(lk_lat, "p99_us")));
        md(&o, "| msd lookups per second, %s callers | %s |\n", threads,
           rate(a, sizeof a, num(lk_tput, "calls_per_s")));
        char k1[32], k2[32];
        md(&o, "| spawn to ready, median (one at a time; %s instances) | %s ms |\n",
           cnt(k1, sizeof k1, num(sr, "instances")), fig(a, sizeof a, num(sr, "median_ms")));
        md(&o, "| spawn to ready, median (%s instances, started %s at a time) | %s ms (p90 %s) |\n",
           cnt(k1, sizeof k1, num(sr_many, "instances")), cnt(k2, sizeof k2, num(many, "step")),
           fig(a, sizeof a, num(sr_many, "median_ms")), fig(b, sizeof b, num(sr_many, "p90_ms")));
        md(&o, "| time until all %s were ready | %s s |\n",
           cnt(k1, sizeof k1, num(many, "instances")), fig(a, sizeof a, num(many, "seconds")));
        md(&o, "| msd CPU with %s idle instances (probes + heartbeats) | %s%% of a core |\n",
           cnt(k1, sizeof k1, num(cpu_j, "instances")), fig(a, sizeof a, num(cpu_j, "cpu_pct")));
        json_object_set(local, "lookups_latency", lk_lat ? lk_lat : json_null());
        json_object_set(local, "lookups_throughput", lk_tput ? lk_tput : json_null());
        json_object_set(local, "spawn_ready", sr ? sr : json_null());
        json_object_set(local, "spawn_ready_many", sr_many ? sr_many : json_null());
        json_object_set(local, "msd_cpu", cpu_j ? cpu_j : json_null());
        json_object_set(local, "many_ensure", many ? many : json_null());
        json_object_set(local, "dedupe", dedupe ? dedupe : json_null());
    }

    /* At-most-once's cost: the same echo, not idempotent, against the idempotent one. */
    md(&o, "\n### ms local mode: at-most-once (issue 20)\n\n");
    if (local_skipped || !dedupe || json_object_get(dedupe, "error")) {
        md(&o, "not measured\n");
    } else {
        md(&o, "| measure | value |\n|---|---:|\n");
        md(&o, "| pinned p50, not idempotent / idempotent | %s / %s µs |\n",
           fig(a, sizeof a, fig_of("ms_once", "latency_pinned", "p50_us")),
           fig(b, sizeof b, fig_of("ms_local1", "latency_pinned", "p50_us")));
        md(&o, "| throughput, not idempotent / idempotent | %s / %s calls/s |\n",
           rate(a, sizeof a, fig_of("ms_once", "throughput", "calls_per_s")),
           rate(b, sizeof b, fig_of("ms_local1", "throughput", "calls_per_s")));
        md(&o,
           "| cache after the throughput run (%s calls): entries now / peak / bytes | %s / %s / "
           "%s |\n",
           rate(a, sizeof a, num(dedupe, "calls")), fig(b, sizeof b, num(dedupe, "entries")),
           fig(c, sizeof c, num(dedupe, "entries_peak")), fig(d, sizeof d, num(dedupe, "bytes")));
        md(&o, "| calls refused for a full cache | %s |\n", fig(a, sizeof a, num(dedupe, "full")));
    }

    /* The object store against SQLite directly. */
    md(&o, "\n### Object store (issue 9): through ms and on SQLite directly\n\n");
    if (local_skipped) {
        md(&o, "Not measured: %s\n", unprefixed(local_skipped));
    } else {
        md(&o,
           "| operation | ms p50 µs | SQLite p50 µs | ms per second (%s callers) | SQLite per "
           "second |\n|---|---:|---:|---:|---:|\n",
           threads);
        static const char *const OP[2] = {"GET (ms_obj_get)", "PUT (ms_obj_put, no If-Match)"};
        for (int a = 0; a < 2; a++)
            md(&o, "| %s | %s | %s | %s | %s |\n", OP[a],
               fig(b, sizeof b, num(obj[a][0][0], "p50_us")),
               fig(c, sizeof c, num(obj[a][1][0], "p50_us")),
               rate(d, sizeof d, num(obj[a][0][1], "calls_per_s")),
               rate(e, sizeof e, num(obj[a][1][1], "calls_per_s")));
        md(&o, "\n| call | p50 µs | per second (%s callers, an object each) |\n|---|---:|---:|\n",
           threads);
        static const char *const MOP[2] = {"method (MS_METHOD: read, body, conditional write)",
                                           "plain remote call, same arguments"};
        for (int a = 0; a < 2; a++)
            md(&o, "| %s | %s | %s |\n", MOP[a], fig(b, sizeof b, num(meth[a][0], "p50_us")),
               rate(d, sizeof d, num(meth[a][1], "calls_per_s")));
    }

    /* Issues 5's, 9's and 20's targets, from this run's figures. */
    md(&o, "\n### Targets (issues 5, 9 and 20), from this run\n\n| target | measured | verdict |\n"
           "|---|---:|---|\n");
    json_t *targets = json_array();
    {
        double ms_p = fig_of("ms_local1", "latency_pinned", "p50_us"),
               mst_p = fig_of("mst", "latency_pinned", "p50_us"),
               grpc_p = fig_of("grpc", "latency_pinned", "p50_us"),
               ms_t = fig_of("ms_local1", "throughput", "calls_per_s"),
               grpc_t = fig_of("grpc", "throughput", "calls_per_s"),
               onc_t = fig_of("oncrpc", "throughput", "calls_per_s"),
               once_p = fig_of("ms_once", "latency_pinned", "p50_us"),
               once_t = fig_of("ms_once", "throughput", "calls_per_s"),
               zo = zero && !json_object_get(zero, "error") ? num(zero, "overhead_ns") : NAN,
               obj_get = num(obj[0][0][0], "p50_us"), sq_get = num(obj[0][1][0], "p50_us"),
               mst_u = fig_of("mst", "latency_unpinned", "p50_us"),
               meth_p = num(meth[0][0], "p50_us"), call_p = num(meth[1][0], "p50_us"),
               sq_put = num(obj[1][1][0], "p50_us");
        double mn, mx;
        int n;
        double fc = local_skipped ? NAN : median_of(first, "first_call_ms", &mn, &mx, &n);
        const struct {
            const char *what;
            double value, limit;
            int at_most; /* 1: value <= limit passes; 0: value >= limit */
            const char *unit;
        } t[] = {
            {"ms local pinned p50 / bare transport <= 1.5x", ms_p / mst_p, 1.5, 1, "x"},
            {"ms local pinned p50 / gRPC <= 0.6x", ms_p / grpc_p, 0.6, 1, "x"},
            {"ms throughput / gRPC >= 3x", ms_t / grpc_t, 3.0, 0, "x"},
            {"ms throughput / ONC RPC >= 0.8x", ms_t / onc_t, 0.8, 0, "x"},
            {"zero-mode overhead < 100 ns", zo, 100, 1, " ns"},
            {"first call, median < 20 ms", fc, 20, 1, " ms"},
            {"not idempotent / idempotent pinned p50 <= 1.05x", once_p / ms_p, 1.05, 1, "x"},
            {"not idempotent / idempotent throughput >= 0.95x", once_t / ms_t, 0.95, 0, "x"},
            {"object GET p50 / (bare transport + SQLite read) <= 1.5x", obj_get / (mst_u + sq_get),
             1.5, 1, "x"},
            {"method call p50 / (plain call + SQLite write) <= 2x", meth_p / (call_p + sq_put), 2.0,
             1, "x"},
        };
        for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
            int known = !isnan(t[i].value) && !isinf(t[i].value);
            int ok = known && (t[i].at_most ? t[i].value <= t[i].limit : t[i].value >= t[i].limit);
            const char *v = !known ? "not measured" : ok ? "met" : "missed";
            md(&o, "| %s | %s%s | %s |\n", t[i].what, known ? fig(a, sizeof a, t[i].value) : "–",
               known ? t[i].unit : "", v);
            json_t *tj = json_pack("{s:s,s:s}", "target", t[i].what, "verdict", v);
            if (known)
                json_object_set_new(tj, "value", json_real(t[i].value));
            json_array_append_new(targets, tj);
        }
    }

    int nskipped = 0;
    for (size_t i = 0; i < NROWS; i++)
        nskipped += rows[i].skipped != NULL;
    if (nskipped || local_skipped) {
        md(&o, "\nSkipped:\n");
        for (size_t i = 0; i < NROWS; i++)
            if (rows[i].skipped)
                md(&o, "- %s: %s\n", rows[i].def->name, unprefixed(rows[i].skipped));
        if (local_skipped)
            md(&o, "- local-mode orchestration figures: %s\n", unprefixed(local_skipped));
    }
    if (errors) {
        md(&o, "\nErrors:\n");
        size_t i;
        json_t *e;
        json_array_foreach(error_list, i, e)
            md(&o, "- %s: %s\n", json_string_value(json_object_get(e, "what")),
               json_string_value(json_object_get(e, "error")));
    }
    fclose(mf);

    /* JSON. */
    json_t *rows_j = json_array();
    for (size_t i = 0; i < NROWS; i++) {
        row *r = &rows[i];
        json_t *rj = json_pack("{s:s,s:s,s:s}", "id", r->def->id, "name", r->def->name, "what",
                               r->def->what);
        if (r->skipped) {
            json_object_set_new(rj, "skipped", json_string(r->skipped));
        } else {
            json_object_set(rj, "latency_pinned", r->lat_pinned ? r->lat_pinned : json_null());
            json_object_set(rj, "latency_unpinned",
                            r->lat_unpinned ? r->lat_unpinned : json_null());
            json_object_set(rj, "throughput", r->tput ? r->tput : json_null());
            json_object_set_new(rj, "ratios", ratios_json(i));
        }
        json_array_append_new(rows_j, rj);
    }
    json_t *doc = json_pack(
        "{s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s},s:{s:s,s:s,s:s,s:s},s:o,s:O?,s:O?,s:o,s:o,s:O,s:i}",
        "date", date, "mode", mode, "command", command, "machine", "nproc", nproc, "cpu", cpu,
        "kernel", kernel, "loadavg", load, "params", "calls", calls, "warmup", warmup, "threads",
        threads, "seconds", seconds, "rows", rows_j, "zero", zero, "zero_checked", zero_checked,
        "local", local, "targets", targets, "errors", error_list, "error_count", errors);
    if (!doc || json_dump_file(doc, out_json, JSON_INDENT(2) | JSON_SORT_KEYS) != 0) {
        fprintf(stderr, "bench_report: cannot write %s\n", out_json);
        return 2;
    }
    json_decref(doc);
    for (size_t i = 0; i < NROWS; i++) {
        free(rows[i].skipped);
        json_decref(rows[i].lat_pinned);
        json_decref(rows[i].lat_unpinned);
        json_decref(rows[i].tput);
    }
    json_decref(zero);
    json_decref(zero_checked);
    json_decref(first);
    json_decref(lk_lat);
    json_decref(lk_tput);
    json_decref(sr);
    json_decref(sr_many);
    json_decref(cpu_j);
    json_decref(many);
    json_decref(dedupe);
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 2; c++)
                json_decref(obj[a][b][c]);
    for (int a = 0; a < 2; a++)
        for (int c = 0; c < 2; c++)
            json_decref(meth[a][c]);
    json_decref(error_list);
    free(local_skipped);
    return errors ? 1 : 0;
}
