#!/bin/sh
# run.sh BUILD_DIR SECONDS [TARGET...]: runs each libFuzzer target for SECONDS (bounded).
#
# BUILD_DIR is a clang build of the project; when it has no CMakeCache.txt, one is
# configured there with clang (MS_FUZZ_CC, default clang). Only the fuzz targets are built.
# Targets default to every fuzz target. Each one starts from its committed corpus
# (tests/fuzz/corpus/<target>, never written to) and a working corpus under
# BUILD_DIR/fuzz-work/<target> (kept between runs, so coverage accumulates); a crash is
# saved as BUILD_DIR/fuzz-artifacts/<target>-crash-<sha1>.
#
# Prints per target: "fuzz: <target> execs=N seconds=S exec/s=R cov=C ft=F corpus=K
# new=U crashes=0|1". Exit status: 0 all clean, 1 a target crashed or failed, 2 usage or
# build error, 77 no clang (ctest counts that as skipped).
set -u

if [ $# -lt 2 ]; then
    echo "usage: $0 BUILD_DIR SECONDS [TARGET...]" >&2
    exit 2
fi
build=$1
secs=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
targets=${*:-fuzz_call_args fuzz_call_result fuzz_http_parse fuzz_http_response fuzz_msd_api}
cc=${MS_FUZZ_CC:-clang}
case $secs in
'' | *[!0-9]*)
    echo "run.sh: SECONDS must be a whole number" >&2
    exit 2
    ;;
esac

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "run.sh: SKIP: no clang ('$cc' not found); the fuzzers need clang's libFuzzer"
    exit 77
fi
# libFuzzer itself ships in a separate package on some systems (libclang-rt-*-dev).
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; return (int)n * 0; }\n' \
    >"$probe/p.c"
if ! "$cc" -fsanitize=fuzzer,address "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
    echo "run.sh: SKIP: $cc cannot link -fsanitize=fuzzer (install libclang-rt-dev)"
    exit 77
fi

if [ ! -f "$build/CMakeCache.txt" ]; then
    cxx=$(echo "$cc" | sed 's/clang/clang++/')
    gen=
    command -v ninja >/dev/null 2>&1 && gen="-G Ninja"
    echo "run.sh: configuring a clang build in $build"
    # shellcheck disable=SC2086
    cmake -S "$src" -B "$build" $gen -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        >"$build.configure.log" 2>&1 || {
        cat "$build.configure.log" >&2
        echo "run.sh: configure failed" >&2
        exit 2
    }
fi
# shellcheck disable=SC2086
if ! cmake --build "$build" --target $targets >"$build/fuzz-build.log" 2>&1; then
    tail -n 30 "$build/fuzz-build.log" >&2
    echo "run.sh: build failed (is $build a clang build? see $build/fuzz-build.log)" >&2
    exit 2
fi

status=0
mkdir -p "$build/fuzz-artifacts"
# Temporary files of the targets (fuzz_msd_api's state directory): here, not in /tmp, so
# that a crashed run leaves nothing behind outside the build.
rm -rf "$build/fuzz-tmp"
mkdir -p "$build/fuzz-tmp"
TMPDIR=$(cd "$build/fuzz-tmp" && pwd)
export TMPDIR
for t in $targets; do
    bin=$build/tests/fuzz/$t
    work=$build/fuzz-work/$t
    log=$build/fuzz-artifacts/$t.log
    mkdir -p "$work"
    extra=
    case $t in
    # msd answers on its own threads, so libFuzzer's per-input leak check (which runs a
    # full LeakSanitizer scan whenever mallocs and frees of an input do not pair up)
    # would fire on almost every input and cut the speed by half. Its corpus replay in the
    # ASan build still checks for leaks (at exit).
    fuzz_msd_api) extra=-detect_leaks=0 ;;
    esac
    # The process is bounded twice: libFuzzer's own clock, and timeout(1) for a hang
    # libFuzzer cannot see (it checks -max_total_time between inputs; -timeout bounds one
    # input at 30 s). Logging of the code under test goes to the log file; libFuzzer's
    # report (and a sanitizer's) to this script's output.
    # shellcheck disable=SC2086
    timeout -k 10 $((secs + 90)) "$bin" $extra -max_total_time="$secs" -timeout=30 \
        -rss_limit_mb=4096 -max_len=16384 -dict="$here/json.dict" -print_final_stats=1 \
        -artifact_prefix="$build/fuzz-artifacts/$t-" "$work" "$here/corpus/$t" >"$log" 2>&1
    rc=$?
    done_line=$(grep -a -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
    [ -n "$done_line" ] || done_line=$(grep -a -E '^#[0-9]+[[:space:]]' "$log" | tail -n 1)
    fz_stat() { grep -a "^stat::$1:" "$log" | tail -n 1 | awk '{print $2}'; }
    cov=$(echo "$done_line" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$done_line" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$done_line" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
    crashed=0
    [ "$rc" -eq 0 ] || crashed=1
    echo "fuzz: $t execs=$(fz_stat number_of_executed_units) seconds=$secs" \
        "exec/s=$(fz_stat average_exec_per_sec) cov=${cov:-?} ft=${ft:-?} corpus=${corp:-?}" \
        "new=$(fz_stat new_units_added) crashes=$crashed"
    if [ "$crashed" -ne 0 ]; then
        echo "run.sh: $t failed (exit $rc); its report:" >&2
        grep -a -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|RELOAD)' "$log" | tail -n 60 >&2
        status=1
    fi
done
exit $status
