#!/usr/bin/env bash
# The README's two commands, on any Debian 12 machine, even one with nothing but bash, git
# and sudo:
#   ./ms.sh demo    install what is missing (apt), build, run the sleepers example
#   ./ms.sh test    install what is missing (apt), build, run the whole test suite
# It installs the build dependencies (scripts/install-deps.sh, which brings make and the
# compilers), then runs make with its arguments: with make already there, `make demo` and
# `make test` are the same. Other targets and variables pass through too:
#   ./ms.sh test-sanitize, ./ms.sh bench, ./ms.sh test CTEST_ARGS='-L unit', ./ms.sh clean
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '2,9s/^# \{0,1\}//p' "$0"; }
case ${1:-} in
'') usage >&2; exit 2 ;;
-h | --help) usage; exit 0 ;;
esac

deps=()
for a in "$@"; do
    [ "$a" = bench ] && deps=(bench)
done
scripts/install-deps.sh "${deps[@]}"
exec make "$@"
