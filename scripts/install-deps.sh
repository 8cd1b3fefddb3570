#!/usr/bin/env bash
# Installs the Debian packages ms needs to build and test, if missing. Idempotent: does
# nothing (and needs no network) when everything is present. Run as root or with sudo.
#   scripts/install-deps.sh           build + test dependencies
#   scripts/install-deps.sh bench     also the baselines the benchmarks compare against
set -euo pipefail

pkgs=(build-essential cmake pkg-config clang libjansson-dev libmicrohttpd-dev
      libcurl4-openssl-dev libsqlite3-dev libcmocka-dev)
if [ "${1:-}" = bench ]; then
    pkgs+=(libtirpc-dev rpcsvc-proto libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev
           protobuf-compiler)
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
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
