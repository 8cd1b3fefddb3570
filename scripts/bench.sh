#!/usr/bin/env bash
# bench.sh: runs the benchmark suite (docs/bench.md) and writes its results.
#
#   scripts/bench.sh BUILD_DIR            full run (3-4 minutes); writes
#                                         bench/results/latest.{json,md} and prints the table
#   scripts/bench.sh BUILD_DIR --smoke    seconds; what CI runs (ctest -L bench); writes
#                                         BUILD_DIR/bench/results/smoke.{json,md}
#
# Every row is the same echo (an int64 and a 32-byte string, both sent back) over loopback:
# sequential latency with both ends pinned to CPU 0 (taskset -c 0), then unpinned, then
# throughput with 16 callers. Rows whose programs were not built (ONC RPC and gRPC need
# optional packages: scripts/install-deps.sh bench) and the local-mode rows when msd is
# missing or a probe call fails are reported as skipped, never as failures.
#
# Safety: servers bind 127.0.0.1 only; every client runs under `timeout` and every wait is
# a bounded poll; the script kills only the processes it started (trap on EXIT).
# Exit status: 0, or 1 if a measurement that ran failed (bench_report's verdict), 2 on
# bad usage or a missing build.
set -uo pipefail

usage() {
    echo "usage: scripts/bench.sh BUILD_DIR [--smoke]" >&2
    exit 2
}
[ $# -ge 1 ] || usage
[ -d "$1" ] || { echo "bench: no build directory $1" >&2; exit 2; }
BUILD_ARG=$1
BUILD=$(cd "$1" && pwd)
shift
SMOKE=0
for a in "$@"; do
    case "$a" in
        --smoke) SMOKE=1 ;;
        *) usage ;;
    esac
done
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=$BUILD/bench
MSD=$BUILD/src/msd/msd

for p in bench_tcp bench_zero bench_report; do
    if [ ! -x "$B/$p" ]; then
        echo "bench: $B/$p is missing: build first (cmake --build $BUILD)" >&2
        exit 2
    fi
done

if [ $SMOKE = 1 ]; then
    MODE=smoke CALLS=2000 WARMUP=200 SECS=1 THREADS=16 PAIR_ROUNDS=1
    ZERO_CALLS=200000 ZERO_ROUNDS=3 FC_TRIALS=3 MANY=20 MANY_STEP=20 CPU_SECS=2
    OUT_DIR=$BUILD/bench/results OUT_NAME=smoke
else
    MODE=full CALLS=50000 WARMUP=5000 SECS=10 THREADS=16 PAIR_ROUNDS=2
    ZERO_CALLS=2000000 ZERO_ROUNDS=5 FC_TRIALS=10 MANY=200 MANY_STEP=200 CPU_SECS=10
    OUT_DIR=$SRC/bench/results OUT_NAME=latest
fi
LAT_LIMIT=120                # seconds: bound on one latency run
SERVER_LIFE=$((LAT_LIMIT * 2 + SECS + 120)) # a server exits by itself after this long
TPUT_LIMIT=$((SECS + 60))    # seconds: bound on one throughput run

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ms-bench.XXXXXX")
R=$TMP/results
mkdir -p "$R" "$OUT_DIR" "$BUILD/bench/results"

# ------------------------------------------------------------------------------------------
# Processes: every PID we start is in PIDS until we have reaped it.
# ------------------------------------------------------------------------------------------
PIDS=()

forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

# stop_pid PID [GRACE_S]: SIGTERM, a bounded wait, then SIGKILL; reaps it.
stop_pid() {
    local pid=$1 grace=${2:-5} i
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < grace * 20; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    forget_pid "$pid"
}

cleanup() {
    local p
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$p" 30; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "bench: $*" >&2; }

# Pinning: both ends on CPU 0.
PIN_OK=0
if command -v taskset >/dev/null && taskset -c 0 true 2>/dev/null; then PIN_OK=1; fi
pin() { # pin 1|0 CMD...: runs CMD on CPU 0 when asked (and possible)
    local p=$1
    shift
    if [ "$p" = 1 ]; then taskset -c 0 "$@"; else "$@"; fi
}

# json_error FILE MESSAGE: writes {"error": MESSAGE} (escaped) unless FILE has a JSON line.
json_error() {
    local file=$1 msg
    grep -q '^{' "$file" 2>/dev/null && return 0
    msg=$(printf '%s' "$2" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g' | cut -c1-400)
    printf '{"error":"%s"}\n' "$msg" >"$file"
}

# run_client OUT LIMIT_S PIN CMD...: runs a client, its JSON line into OUT.
run_client() {
    local out=$1 limit=$2 p=$3 rc
    shift 3
    pin "$p" timeout -k 5 "$limit" "$@" >"$out" 2>"$out.err"
    rc=$?
    if [ $rc -ne 0 ]; then
        local why
        why=$(grep -v '^$' "$out.err" | tail -n 1)
        [ $rc -eq 124 ] && why="timed out after ${limit}s; $why"
        json_error "$out" "exit $rc: ${why:-no message}"
        log "$(basename "$out" .json): failed ($rc): ${why:-}"
    fi
    return $rc
}

# keep_best NEW BEST KEY LOWER: NEW (a client's JSON, with NEW.err) replaces BEST when BEST
# is missing or failed, or NEW's figure KEY is better (lower when LOWER=1, else higher).
keep_best() {
    local n o
    n=$(grep -o "\"$3\":[0-9.]*" "$1" | head -n 1 | cut -d: -f2)
    o=
    [ -s "$2" ] && o=$(grep -o "\"$3\":[0-9.]*" "$2" | head -n 1 | cut -d: -f2)
    if [ ! -s "$2" ] || { [ -n "$n" ] && { [ -z "$o" ] ||
        awk -v n="$n" -v o="$o" -v l="$4" 'BEGIN { exit !(l ? n < o : n > o) }'; }; }; then
        mv "$1" "$2"
        mv "$1.err" "$2.err"
    fi
}

# best_of_pair KEY LOWER PIN LIMIT OUT_A OUT_B: runs the commands in the arrays CMD_A and
# CMD_B alternately, PAIR_ROUNDS times each, and keeps for each its best run by KEY (see
# keep_best). Two rows compared as a ratio thus see the same machine: load that comes and
# goes during the run (other work on a 2-core machine) falls on both, not on one of them.
best_of_pair() {
    local key=$1 lower=$2 p=$3 limit=$4 outa=$5 outb=$6 r
    for ((r = 0; r < PAIR_ROUNDS; r++)); do
        run_client "$TMP/pair_a.json" "$limit" "$p" "${CMD_A[@]}"
        keep_best "$TMP/pair_a.json" "$outa" "$key" "$lower"
        run_client "$TMP/pair_b.json" "$limit" "$p" "${CMD_B[@]}"
        keep_best "$TMP/pair_b.json" "$outb" "$key" "$lower"
    done
}

# start_server NAME PIN CMD...: starts a server that writes its port to the file named by
# the --port-file argument we append; sets SERVER_PID and SERVER_PORT. 0 or 1.
SERVER_PID=
SERVER_PORT=
start_server() {
    local name=$1 p=$2 i
    shift 2
    local pf=$TMP/$name.port
    rm -f "$pf"
    # Started directly (not through a shell function, which would put a subshell between
    # us and the server and make $! the subshell's PID); taskset execs the program.
    local log=$TMP/$name.server.log
    if [ "$p" = 1 ]; then
        taskset -c 0 "$@" --port-file "$pf" --max-seconds "$SERVER_LIFE" >"$log" 2>&1 &
    else
        "$@" --port-file "$pf" --max-seconds "$SERVER_LIFE" >"$log" 2>&1 &
    fi
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for ((i = 0; i < 200; i++)); do # 10 s
        [ -s "$pf" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    if [ ! -s "$pf" ]; then
        log "$name: server did not start: $(tail -n 2 "$log")"
        stop_pid "$SERVER_PID"
        return 1
    fi
    SERVER_PORT=$(tr -dc '0-9' <"$pf")
    return 0
}

# ------------------------------------------------------------------------------------------
# Transport rows: pinned latency, unpinned latency, throughput.
# ------------------------------------------------------------------------------------------
# row ID PROGRAM SKIP_REASON [SERVER_ARGS...]
row() {
    local id=$1 prog=$2 why=$3
    shift 3
    if [ ! -x "$B/$prog" ]; then
        echo "skipped: $why" >"$R/$id.skipped"
        log "$id: skipped: $why"
        return
    fi
    local lat=(--latency --calls "$CALLS" --warmup "$WARMUP" --max-seconds $((LAT_LIMIT - 10)))
    if [ $PIN_OK = 1 ]; then
        log "$id: latency, pinned to CPU 0"
        if start_server "$id" 1 "$B/$prog" server "$@"; then
            run_client "$R/$id.lat_pinned.json" $LAT_LIMIT 1 "$B/$prog" client \
                --target "127.0.0.1:$SERVER_PORT" --label "$id" "${lat[@]}"
            stop_pid "$SERVER_PID"
        else
            json_error "$R/$id.lat_pinned.json" "server did not start"
        fi
    else
        json_error "$R/$id.lat_pinned.json" "taskset is not available"
    fi
    log "$id: latency unpinned, then throughput ($THREADS callers, ${SECS}s)"
    if start_server "$id" 0 "$B/$prog" server "$@"; then
        run_client "$R/$id.lat_unpinned.json" $LAT_LIMIT 0 "$B/$prog" client \
            --target "127.0.0.1:$SERVER_PORT" --label "$id" "${lat[@]}"
        run_client "$R/$id.tput.json" $TPUT_LIMIT 0 "$B/$prog" client \
            --target "127.0.0.1:$SERVER_PORT" --label "$id" --throughput \
            --threads "$THREADS" --seconds "$SECS"
        stop_pid "$SERVER_PID"
    else
        json_error "$R/$id.lat_unpinned.json" "server did not start"
        json_error "$R/$id.tput.json" "server did not start"
    fi
}

NEED_BENCH="install them with scripts/install-deps.sh bench, then re-run cmake"
row tcp bench_tcp "bench_tcp not built"
row http bench_http "bench_http not built (needs libmicrohttpd-dev)" --mhd tpc
row http_epoll bench_http "bench_http not built (needs libmicrohttpd-dev)" --mhd epoll
row mst bench_mst "bench_mst not built"
row oncrpc bench_oncrpc "ONC RPC not built: needs libtirpc-dev and rpcsvc-proto ($NEED_BENCH)"
row grpc bench_grpc "gRPC not built: needs libgrpc++-dev, libprotobuf-dev, protobuf-compiler,\
 protobuf-compiler-grpc ($NEED_BENCH)"

# ------------------------------------------------------------------------------------------
# ms zero mode against a direct call.
# ------------------------------------------------------------------------------------------
log "zero mode: $ZERO_ROUNDS rounds of $ZERO_CALLS calls"
run_client "$R/zero.json" $LAT_LIMIT $PIN_OK env MS_MODE=zero "$B/bench_zero" \
    --calls "$ZERO_CALLS" --rounds "$ZERO_ROUNDS" --max-seconds $((LAT_LIMIT - 10))
run_client "$R/zero_checked.json" $LAT_LIMIT $PIN_OK env MS_MODE=zero-checked "$B/bench_zero" \
    --calls $((ZERO_CALLS / 10)) --rounds 3 --max-seconds $((LAT_LIMIT - 10))

# ------------------------------------------------------------------------------------------
# ms local mode: instances started by an msd this script starts (state in $TMP).
# ------------------------------------------------------------------------------------------
MSD_PID=
MSD_N=0
# start_msd PIN: a fresh msd (its instances inherit its CPU affinity); exports
# MS_ORCHESTRATOR, MS_STATE_DIR, MS_MODE=local. 0 or 1.
start_msd() {
    local p=$1 i
    MSD_N=$((MSD_N + 1))
    local state=$TMP/msd-$MSD_N
    mkdir -p "$state"
    chmod 700 "$state"
    # Started directly, as in start_server. --parent-pid: msd stops (and stops its
    # instances) by itself if this script is killed before its trap runs.
    local args=(--state "$state" --listen 127.0.0.1:0 --parent-pid $$)
    if [ "$p" = 1 ]; then
        taskset -c 0 "$MSD" "${args[@]}" >"$TMP/msd-$MSD_N.log" 2>&1 &
    else
        "$MSD" "${args[@]}" >"$TMP/msd-$MSD_N.log" 2>&1 &
    fi
    MSD_PID=$!
    PIDS+=("$MSD_PID")
    for ((i = 0; i < 200; i++)); do # 10 s
        [ -s "$state/addr" ] && break
        kill -0 "$MSD_PID" 2>/dev/null || break
        sleep 0.05
    done
    if [ ! -s "$state/addr" ]; then
        LOCAL_WHY="msd did not start: $(tail -n 1 "$TMP/msd-$MSD_N.log")"
        stop_pid "$MSD_PID"
        MSD_PID=
        return 1
    fi
    export MS_ORCHESTRATOR MS_STATE_DIR MS_MODE=local
    MS_ORCHESTRATOR=$(head -n 1 "$state/addr" | tr -d ' \r\n')
    MS_STATE_DIR=$state
    # No explicit deployment: ms_init of a trusted local client (same uid, msd's unix
    # socket in MS_STATE_DIR) registers its own executable.
    return 0
}

stop_msd() {
    # msd drains and stops its instances on SIGTERM: give it time for that.
    [ -n "$MSD_PID" ] && stop_pid "$MSD_PID" 60
    MSD_PID=
    unset MS_ORCHESTRATOR MS_STATE_DIR MS_MODE
}

# probe PIN: one call through local mode. 0 or 1 (LOCAL_WHY set).
probe() {
    if run_client "$TMP/probe.json" 60 "$1" "$B/bench_ms" probe; then
        return 0
    fi
    local why
    why=$(grep '^bench: ' "$TMP/probe.json.err" | tail -n 1 | sed 's/^bench: probe: //' |
        cut -c1-300)
    LOCAL_WHY="probe call failed: $why"
    return 1
}

LOCAL_WHY=
local_ok=1
if [ ! -x "$MSD" ]; then
    LOCAL_WHY="$MSD does not exist"
    local_ok=0
elif [ ! -x "$B/bench_ms" ]; then
    LOCAL_WHY="bench_ms not built"
    local_ok=0
fi

ms_lat=(latency --calls "$CALLS" --warmup "$WARMUP" --max-seconds $((LAT_LIMIT - 10)))
ms_tput=(throughput --threads "$THREADS" --seconds "$SECS")

if [ $local_ok = 1 ] && [ $PIN_OK = 1 ]; then
    log "local mode: msd and both ends pinned to CPU 0"
    if start_msd 1 && probe 1; then
        # The idempotent echo and the one that is not, alternately (best_of_pair).
        CMD_A=("$B/bench_ms" "${ms_lat[@]}" --label ms_local1)
        CMD_B=("$B/bench_ms_once" "${ms_lat[@]}" --label ms_once)
        best_of_pair p50_us 1 1 $LAT_LIMIT "$R/ms_local1.lat_pinned.json" \
            "$R/ms_once.lat_pinned.json"
        run_client "$R/ms_local3.lat_pinned.json" $LAT_LIMIT 1 "$B/bench_ms3" "${ms_lat[@]}" \
            --instances 3 --warmup-seconds 2 --label ms_local3
    else
        local_ok=0
    fi
    stop_msd
elif [ $local_ok = 1 ]; then
    json_error "$R/ms_local1.lat_pinned.json" "taskset is not available"
    json_error "$R/ms_local3.lat_pinned.json" "taskset is not available"
fi

if [ $local_ok = 1 ]; then
    log "local mode: unpinned"
    if start_msd 0 && probe 0; then
        # Deleting the service between trials makes every first call spawn an instance.
        run_client "$TMP/delete.json" 60 0 "$B/bench_ms" delete
        log "local mode: first call, $FC_TRIALS trials"
        for ((t = 0; t < FC_TRIALS; t++)); do
            run_client "$TMP/fc.json" 60 0 "$B/bench_ms" first-call --delete
            cat "$TMP/fc.json" >>"$R/first_call.json"
        done
        # The idempotent echo and, alternately (best_of_pair), the one that is not: at most
        # once through the instance's duplicate-request cache.
        log "local mode: 1 instance, idempotent and not, alternately"
        CMD_A=("$B/bench_ms" "${ms_lat[@]}" --label ms_local1)
        CMD_B=("$B/bench_ms_once" "${ms_lat[@]}" --label ms_once)
        best_of_pair p50_us 1 0 $LAT_LIMIT "$R/ms_local1.lat_unpinned.json" \
            "$R/ms_once.lat_unpinned.json"
        CMD_A=("$B/bench_ms" "${ms_tput[@]}" --label ms_local1)
        CMD_B=("$B/bench_ms_once" "${ms_tput[@]}" --label ms_once)
        best_of_pair calls_per_s 0 0 $TPUT_LIMIT "$R/ms_local1.tput.json" "$R/ms_once.tput.json"
        run_client "$R/dedupe.json" 60 0 "$B/bench_ms_once" dedupe
        run_client "$R/ms_local3.lat_unpinned.json" $LAT_LIMIT 0 "$B/bench_ms3" "${ms_lat[@]}" \
            --instances 3 --warmup-seconds 2 --label ms_local3
        run_client "$R/ms_local3.tput.json" $TPUT_LIMIT 0 "$B/bench_ms3" "${ms_tput[@]}" \
            --instances 3 --label ms_local3
        if [ -x "$B/bench_objects" ]; then
            # The object store through ms, then the same operations on SQLite directly (a
            # file in $TMP, msd's settings). PUTs wait for fsync: fewer calls.
            log "local mode: object store, through ms and on SQLite directly"
            obj_lat=(--latency --calls "$CALLS" --warmup "$WARMUP" --max-seconds $((LAT_LIMIT - 10)))
            obj_put_lat=(--latency --calls $((CALLS / 50 + 10)) --warmup $((WARMUP / 50 + 1))
                --max-seconds $((LAT_LIMIT - 10)))
            obj_tput=(--throughput --threads "$THREADS" --seconds "$SECS")
            for op in get put; do
                lat=("${obj_lat[@]}")
                [ $op = put ] && lat=("${obj_put_lat[@]}")
                run_client "$R/obj_$op.lat.json" $LAT_LIMIT 0 "$B/bench_objects" $op "${lat[@]}"
                run_client "$R/obj_$op.tput.json" $TPUT_LIMIT 0 "$B/bench_objects" $op \
                    "${obj_tput[@]}"
                run_client "$R/obj_bare_$op.lat.json" $LAT_LIMIT 0 "$B/bench_objects" bare-$op \
                    --target "$TMP/bare-objects.db" "${lat[@]}"
                run_client "$R/obj_bare_$op.tput.json" $TPUT_LIMIT 0 "$B/bench_objects" \
                    bare-$op --target "$TMP/bare-objects.db" "${obj_tput[@]}"
            done
            # A method call (MS_METHOD: read, body, conditional write with its request id)
            # against a plain remote call of the same signature, both to instances of
            # bench_objects itself (issue 9: within 2x of a plain call plus one backend write).
            for op in method call; do
                lat=("${obj_put_lat[@]}")
                [ $op = call ] && lat=("${obj_lat[@]}")
                run_client "$R/obj_$op.lat.json" $LAT_LIMIT 0 "$B/bench_objects" $op "${lat[@]}"
                run_client "$R/obj_$op.tput.json" $TPUT_LIMIT 0 "$B/bench_objects" $op \
                    "${obj_tput[@]}"
            done
        fi
        log "local mode: msd lookups"
        run_client "$R/lookups.lat.json" $LAT_LIMIT 0 "$B/bench_ms" lookups --latency \
            --calls "$CALLS" --warmup "$WARMUP" --max-seconds $((LAT_LIMIT - 10))
        run_client "$R/lookups.tput.json" $TPUT_LIMIT 0 "$B/bench_ms" lookups --throughput \
            --threads "$THREADS" --seconds "$SECS"
        run_client "$R/spawn_ready.json" 60 0 "$B/bench_ms" spawn-ready
        log "local mode: $MANY instances (spawn to ready, msd CPU while probing them)"
        # MANY_STEP at a time (all of them at once: since libms no longer links libcurl and
        # libmicrohttpd an instance starts in a few ms, and msd brings 200 up together).
        if run_client "$R/many_ensure.json" 300 0 "$B/bench_ms_many" ensure \
            --instances "$MANY" --step "$MANY_STEP" --max-seconds 240; then
            run_client "$R/msd_cpu.json" $((CPU_SECS + 60)) 0 "$B/bench_ms_many" msd-cpu \
                --pid "$MSD_PID" --seconds "$CPU_SECS"
        else
            cp "$R/many_ensure.json" "$R/msd_cpu.json"
        fi
        run_client "$R/spawn_ready_many.json" 60 0 "$B/bench_ms_many" spawn-ready
        run_client "$TMP/many-delete.json" 120 0 "$B/bench_ms_many" delete --max-seconds 100
    else
        local_ok=0
    fi
    stop_msd
fi

if [ $local_ok = 0 ]; then
    msg="skipped: local mode not available ($LOCAL_WHY)"
    echo "bench: $msg"
    for id in ms_local1 ms_local3 ms_once; do
        echo "$msg" >"$R/$id.skipped"
    done
    echo "$msg" >"$R/local.skipped"
fi

# ------------------------------------------------------------------------------------------
# Report.
# ------------------------------------------------------------------------------------------
cpuinfo() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo 2>/dev/null | sed 's/^[^:]*:[[:space:]]*//'; }
cpu="$(cpuinfo 'model name') (family $(cpuinfo 'cpu family') model $(cpuinfo model),\
 $(cpuinfo 'cpu MHz' | cut -d. -f1) MHz$(grep -qw hypervisor /proc/cpuinfo && echo ', virtual machine'))"
cmd="scripts/bench.sh $BUILD_ARG"
[ $SMOKE = 1 ] && cmd="$cmd --smoke"
echo
"$B/bench_report" --dir "$R" --out-json "$OUT_DIR/$OUT_NAME.json" --out-md "$OUT_DIR/$OUT_NAME.md" \
    --mode "$MODE" --command "$cmd" --date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --nproc "$(nproc)" --cpu "${cpu:-unknown}" --kernel "$(uname -r)" \
    --load "$LOAD_START -> $(cut -d' ' -f1-3 /proc/loadavg)" \
    --calls "$CALLS" --warmup "$WARMUP" --threads "$THREADS" --seconds "$SECS"
rc=$?
if [ "$OUT_DIR" != "$BUILD/bench/results" ]; then
    cp "$OUT_DIR/$OUT_NAME.json" "$OUT_DIR/$OUT_NAME.md" "$BUILD/bench/results/" 2>/dev/null
fi
echo
echo "bench: results in $OUT_DIR/$OUT_NAME.json and $OUT_DIR/$OUT_NAME.md"
exit $rc
