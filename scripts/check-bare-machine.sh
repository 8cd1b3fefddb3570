#!/usr/bin/env bash
# check-bare-machine.sh: the README's two commands on a bare Debian 12, for real. Makes a
# minimal Debian 12 root (debootstrap --variant=minbase, plus git and sudo, nothing else),
# clones this repository into it (its committed HEAD) and, as an ordinary user with sudo,
# runs ./ms.sh demo and ./ms.sh test there. A manual check, not a CI step: it needs root
# (debootstrap, chroot, mounts) and Debian's archive.
#
#   scripts/check-bare-machine.sh [--full | --ctest ARGS] [--as-root] [--keep] [--dir DIR]
#                                 [--mirror URL]
#     --full      the whole suite (default: all but fuzz_run and the chaos drills, which
#                 take minutes and need nothing the other tests do not)
#     --ctest ARGS  ./ms.sh test CTEST_ARGS='ARGS' instead (e.g. --ctest '-L unit')
#     --as-root   run the commands as root (default: user "dev", passwordless sudo)
#     --keep      keep the root afterwards (default: removed)
#     --dir DIR   where to make the root (default: a new directory under /tmp)
#     --mirror    Debian mirror (default: the first one of this machine's apt sources)
#
# Every command in the root runs in a PID and mount namespace of its own (unshare), so no
# process of the check outlives it and its mounts (/proc, /dev, /sys) go away with it; on
# exit, failure included, anything still running or mounted under the root is killed or
# unmounted all the same before the root is removed.
# Prints the time of each step. Exit status 0 when the demo ran its 14 calls in both modes
# and the tests passed. The logs (debootstrap, demo, test) stay in the directory.
set -euo pipefail

ctest_args='-LE chaos -E fuzz_run' as_root=no keep=no dir='' mirror=''
while [ $# -gt 0 ]; do
    case $1 in
    --full) ctest_args='' ;;
    --ctest) ctest_args=$2; shift ;;
    --as-root) as_root=yes ;;
    --keep) keep=yes ;;
    --dir) dir=$2; shift ;;
    --mirror) mirror=$2; shift ;;
    -h | --help) sed -n '2,20s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "check-bare-machine: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "check-bare-machine: $*"; }
die() { echo "check-bare-machine: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mounts)"
src=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
if [ -n "$(git -C "$src" status --porcelain --untracked-files=no)" ]; then
    log "note: $src has uncommitted changes; the check clones its committed HEAD"
fi
if [ -z "$mirror" ]; then
    mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        sed -n 's/^URIs: *\([^ ]*debian\/\{0,1\}\)$/\1/p' | head -n 1)
    [ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(http[^ ]*\) bookworm .*/\1/p' \
        /etc/apt/sources.list 2>/dev/null | head -n 1)
    mirror=${mirror:-http://deb.debian.org/debian}
fi
if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    apt-get install -y -q debootstrap >/dev/null || die "cannot install debootstrap"
fi

if [ -z "$dir" ]; then
    dir=$(mktemp -d /tmp/ms-bare.XXXXXX)
else
    mkdir -p "$dir"
    [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
fi
root=$(cd "$dir" && pwd)/root

# Processes whose root is inside the chroot (none should be left: the PID namespace ends
# with its first process), then every mount under it, innermost first.
cleanup() {
    local rc=$? pid r m
    for pid in /proc/[0-9]*; do
        r=$(readlink "$pid/root" 2>/dev/null) || continue
        case $r in "$root" | "$root"/*) kill -9 "${pid#/proc/}" 2>/dev/null || true ;; esac
    done
    awk -v r="$root" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/self/mounts |
        sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    if awk -v r="$root" 'index($2, r "/") == 1 {f=1} END {exit !f}' /proc/self/mounts; then
        echo "check-bare-machine: could not unmount everything under $root; not removing it" >&2
    elif [ $keep = yes ]; then
        log "kept $root"
    else
        rm -rf "$root"
        log "logs (debootstrap, demo, test) in $dir"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t_all=$(date +%s)
step_t=$t_all
times=()
step() { # step NAME: ends the previous step's timing
    local now
    now=$(date +%s)
    [ -z "${step_name:-}" ] || times+=("$step_name: $((now - step_t)) s")
    step_name=$1
    step_t=$now
    [ -z "$1" ] || log "== $1"
}

step "debootstrap --variant=minbase --include=git,sudo bookworm ($mirror)"
debootstrap --variant=minbase --include=git,sudo bookworm "$root" "$mirror" \
    >"$dir/debootstrap.log" 2>&1 || { tail -n 20 "$dir/debootstrap.log" >&2; die "debootstrap"; }

# in_root [--user] CMD...: runs CMD in the root as pid 1's child of a PID namespace and in
# a mount namespace of their own (private: nothing mounted there reaches this machine's
# mounts, and it all goes away with the namespace): /proc of that namespace, /dev, /sys.
# With --user, as the user who runs the README's commands.
user=dev
[ $as_root = no ] || user=root
home=/root
[ $user = root ] || home=/home/$user
in_root() {
    local spec=''
    if [ "$1" = --user ]; then
        shift
        [ $user = root ] || spec=--userspec=$user:$user
    fi
    # shellcheck disable=SC2016,SC2086 # the inner script's $1; $spec is one word or none
    unshare --pid --fork --kill-child --mount --propagation private \
        /bin/sh -ec 'r=$1; shift
            mount -t proc proc "$r/proc"
            mount --rbind /dev "$r/dev"
            mount -t sysfs -o ro sysfs "$r/sys"
            exec chroot "$@"' sh "$root" $spec "$root" /usr/bin/env -i HOME="$home" \
        PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 TERM=dumb "$@"
}

step "the premise: bash, git and sudo; no make, no compiler"
for t in bash git sudo; do
    in_root sh -c "command -v $t" >/dev/null || die "$t is missing from the root"
done
for t in make cc gcc cmake pkg-config clang; do
    if in_root sh -c "command -v $t" >/dev/null; then die "$t is already in the root"; fi
done
if [ $user != root ]; then
    in_root useradd -m -s /bin/bash "$user"
    echo "$user ALL=(ALL) NOPASSWD: ALL" >"$root/etc/sudoers.d/$user"
    chmod 440 "$root/etc/sudoers.d/$user"
fi
git clone -q "$src" "$root$home/ms"
in_root chown -R "$user:$user" "$home/ms"
log "cloned $(git -C "$src" log --oneline -1 | cut -c1-60) as $user"

step "./ms.sh demo (installs the dependencies, builds, runs the sleepers example)"
in_root --user bash -c "cd ~/ms && ./ms.sh demo" 2>&1 | tee "$dir/demo.log" |
    grep -E '^(install-deps|==|[0-9]+ of 14 calls)' || true
n=$(grep -c '^14 of 14 calls completed' "$dir/demo.log" || true)
[ "$n" -eq 2 ] || { tail -n 40 "$dir/demo.log" >&2; die "demo: $n of 2 runs (zero, local) completed 14 of 14 calls"; }
log "demo: 14 of 14 calls in zero mode and in local mode"

if [ -z "$ctest_args" ]; then
    step "./ms.sh test (the whole suite)"
    cmd="./ms.sh test"
else
    cmd="./ms.sh test CTEST_ARGS='$ctest_args'"
    step "$cmd"
fi
rc=0
in_root --user bash -c "cd ~/ms && $cmd" >"$dir/test.log" 2>&1 || rc=$?
grep -E '^(install-deps|[0-9]+% tests passed|The following tests)|\*\*\*|\(Failed\)|\(Timeout\)|Not Run|Skipped|setup_tools|fuzz_run' \
    "$dir/test.log" || true
step ""
log "times: ${times[*]/%/,} total $(($(date +%s) - t_all)) s"
if [ $rc -ne 0 ]; then
    tail -n 60 "$dir/test.log" >&2
    die "$cmd exited with $rc (logs: $dir)"
fi
log "ok: ./ms.sh demo and $cmd on a bare Debian 12"
