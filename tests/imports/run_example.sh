#!/bin/sh
# run_example.sh: runs an example program and checks its output (ctest entries example_*).
#   run_example.sh echo PATH      "hello -> echo1 -> echo2 -> echo3", and a message of ours
#   run_example.sh sleepers PATH  14 calls done; wall time (measured here and printed by the
#                                 program) at least 5 s and under 9 s
set -eu

fail() {
    echo "run_example: $*" >&2
    exit 1
}

name=$1
bin=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT

case $name in
echo)
    "$bin" >"$out" || fail "echo exited with status $?"
    cat "$out"
    [ "$(cat "$out")" = "hello -> echo1 -> echo2 -> echo3" ] || fail "unexpected output"
    "$bin" "ünïcødé message" >"$out" || fail "echo exited with status $?"
    cat "$out"
    [ "$(cat "$out")" = "ünïcødé message -> echo1 -> echo2 -> echo3" ] ||
        fail "unexpected output for a message of ours"
    ;;
sleepers)
    t0=$(date +%s%N)
    "$bin" >"$out" || { cat "$out"; fail "sleepers exited with status $?"; }
    t1=$(date +%s%N)
    cat "$out"
    ms=$(((t1 - t0) / 1000000))
    echo "run_example: wall time measured outside: $ms ms"
    done=$(grep -c ' done: slept ' "$out" || true)
    [ "$done" -eq 14 ] || fail "$done of 14 calls reported done"
    for s in 1 3 5; do
        n=$(grep -c "sleep_$s #[0-9]* done: slept $s s" "$out" || true)
        case $s in 1) want=10 ;; 3) want=3 ;; 5) want=1 ;; esac
        [ "$n" -eq "$want" ] || fail "sleep_$s: $n of $want calls done"
    done
    grep -q '^14 of 14 calls completed in ' "$out" || fail "no summary line"
    [ "$ms" -ge 5000 ] || fail "took $ms ms: less than the 5 s sleep_5 needs"
    [ "$ms" -lt 9000 ] || fail "took $ms ms: the calls did not run concurrently"
    ;;
*)
    fail "unknown example $name"
    ;;
esac
echo "run_example: $name ok"
