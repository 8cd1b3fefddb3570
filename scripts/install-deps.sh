#!/usr/bin/env bash
# Installs the Debian packages ms needs to build and test, if missing. Idempotent: does
# nothing (and needs no network) when everything is present. Run as root or with sudo.
#   scripts/install-deps.sh           build + test dependencies
#   scripts/install-deps.sh bench     also the baselines the benchmarks compare against
#   scripts/install-deps.sh --list [bench]   print the packages, one a line; install nothing
# Every tool `./ms.sh demo` and `./ms.sh test` run, and the package that brings it, is listed
# in tests/setup/check_tools.sh (ctest setup_tools), which fails when one is missing here.
set -euo pipefail

list=no
if [ "${1:-}" = --list ]; then
    list=yes
    shift
fi

# build-essential: make, gcc, g++, libc6-dev. clang and libclang-rt-dev (its sanitizer and
# libFuzzer runtimes): the fuzz_run test. Libraries are found with pkg-config. docker.io:
# dockerd (with containerd and runc) for msd --runner docker and test_msd_docker, which starts
# a private daemon of its own (on a systemd machine the package also enables the system one).
# libpq-dev: msd's PostgreSQL object store; postgresql: the server test_objects_pg starts
# (PostgreSQL 15).
pkgs=(build-essential cmake pkg-config clang libclang-rt-dev libjansson-dev
      libmicrohttpd-dev libcurl4-openssl-dev libsqlite3-dev libcmocka-dev docker.io libpq-dev
      postgresql)
if [ "${1:-}" = bench ]; then
    pkgs+=(libtirpc-dev rpcsvc-proto libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev
           protobuf-compiler)
fi
if [ $list = yes ]; then
    printf '%s\n' "${pkgs[@]}"
    exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -q
# sudo drops the environment: DEBIAN_FRONTEND goes through env(1).
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
