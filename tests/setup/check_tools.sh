#!/usr/bin/env bash
# check_tools.sh SOURCE_DIR (ctest setup_tools): every tool the README's commands
# (./ms.sh demo, ./ms.sh test) run is brought by the set-up, on a machine that had only
# bash, git and sudo (a Debian 12 minbase). The table below names each tool, the package
# that brings it and a file of this tree that uses it. For each row it checks:
#   1. the file still uses it (a row nobody needs is removed, not kept),
#   2. the package is one scripts/install-deps.sh installs, or "base" (Priority: required,
#      in every Debian root) or "given" (bash, git, sudo: the README's premise),
#   3. on this machine: the tool is there, and the package that owns its file is that
#      package or one it depends on (so the row is not just a guess).
# A new external command in a script, a test or a CMakeLists gets a row here; if its
# package is not installed by scripts/install-deps.sh, add it there.
# Exit status: 0 every row holds, 1 one does not, 77 (skipped) without dpkg-query.
set -uo pipefail

src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$src" || exit 1

# what: a command found in PATH; /path: a file run by its path; pc:MODULE: a pkg-config
# module; clang-rt:NAME: a runtime library of clang.
#  what                        package               file using it                   word
table='
make                           build-essential       ms.sh                           make
cc                             build-essential       CMakeLists.txt                  LANGUAGES C
c++                            build-essential       CMakeLists.txt                  CXX
cmake                          cmake                 Makefile                        cmake
ctest                          cmake                 Makefile                        ctest
pkg-config                     pkg-config            tests/imports/out_of_tree.sh    pkg-config
pc:jansson                     libjansson-dev        CMakeLists.txt                  jansson
pc:libcurl                     libcurl4-openssl-dev  CMakeLists.txt                  libcurl
pc:sqlite3                     libsqlite3-dev        CMakeLists.txt                  sqlite3
pc:libpq                       libpq-dev             CMakeLists.txt                  libpq
pc:libmicrohttpd               libmicrohttpd-dev     CMakeLists.txt                  libmicrohttpd
pc:cmocka                      libcmocka-dev         tests/CMakeLists.txt            cmocka
clang                          clang                 tests/fuzz/run.sh               clang
clang++                        clang                 tests/fuzz/run.sh               clang++
clang-rt:fuzzer                libclang-rt-dev       tests/fuzz/run.sh               -fsanitize=fuzzer
bash                           given                 ms.sh                           bash
sudo                           given                 scripts/install-deps.sh         sudo
sh                             base                  tests/imports/CMakeLists.txt    COMMAND sh
dpkg-query                     base                  scripts/install-deps.sh         dpkg-query
apt-get                        base                  scripts/install-deps.sh         apt-get
id                             base                  scripts/install-deps.sh         id -u
env                            base                  scripts/install-deps.sh         env
grep                           base                  scripts/install-deps.sh         grep
dirname                        base                  ms.sh                           dirname
sed                            base                  ms.sh                           sed
nproc                          base                  Makefile                        nproc
timeout                        base                  tests/fuzz/run.sh               timeout
awk                            base                  tests/fuzz/run.sh               awk
mktemp                         base                  tests/fuzz/run.sh               mktemp
tail                           base                  tests/fuzz/run.sh               tail
ldd                            base                  tests/imports/out_of_tree.sh    ldd
cp                             base                  tests/imports/out_of_tree.sh    cp
realpath                       base                  scripts/check-layers.sh         realpath -m
mv                             base                  tests/check_layers_rejects.sh   mv "
date                           base                  tests/imports/run_example.sh    date
cat                            base                  tests/imports/run_example.sh    cat
rm                             base                  tests/integration/test_client.c rm -rf
/usr/lib/postgresql/15/bin/initdb postgresql     tests/integration/pg_server.c   "/initdb"
/usr/lib/postgresql/15/bin/postgres postgresql   tests/integration/pg_server.c   "/postgres"
/bin/rm                        base                  tests/integration/pg_server.c   "/bin/rm"
/usr/bin/sha256sum             base                  tests/integration/test_msd_basic.c /usr/bin/sha256sum
/usr/bin/tail                  base                  tests/integration/harness.c     /usr/bin/tail
/bin/sleep                     base                  tests/integration/test_msd_restart.c /bin/sleep
/usr/sbin/dockerd              docker.io             tests/integration/dockerd.c     dockerd
'

if ! command -v dpkg-query >/dev/null; then
    echo "check_tools: SKIP: no dpkg-query (not Debian): the table is about Debian packages"
    exit 77
fi
mapfile -t installed_by_us < <(scripts/install-deps.sh --list)

# What dpkg knows, read once: each installed package's priority and dependencies.
declare -A prio deps owner_of
while IFS=$'\t' read -r p pr d; do
    prio[$p]=$pr
    deps[$p]=$d
done < <(dpkg-query -W -f='${Package}\t${Priority}\t${Depends}, ${Pre-Depends}\n' |
    sed -E 's/ *\([^)]*\)//g; s/:any//g; s/ *[,|] */ /g')

# Whether installed package FROM is TO or depends on it (Depends, Pre-Depends, through
# installed packages, any alternative, at most 4 levels).
reaches() {
    local to=$2 level=0 p d
    local -a frontier=("$1") next
    local -A seen=()
    while [ $level -le 4 ] && [ ${#frontier[@]} -gt 0 ]; do
        next=()
        for p in "${frontier[@]}"; do
            [ "$p" = "$to" ] && return 0
            [ -z "${seen[$p]:-}" ] || continue
            seen[$p]=1
            for d in ${deps[$p]:-}; do
                next+=("$d")
            done
        done
        frontier=("${next[@]}")
        level=$((level + 1))
    done
    return 1
}

# The names under which dpkg may list FILE: as given and resolved, each with and without
# /usr (Debian 12 merged /usr, but dpkg still lists some files under /bin).
candidates() {
    local p
    for p in "$1" "$(readlink -f "$1")"; do
        echo "$p"
        case $p in
        /usr/bin/*) echo "/bin/${p#/usr/bin/}" ;;
        /bin/*) echo "/usr/bin/${p#/bin/}" ;;
        esac
    done
}

fail=0
bad() {
    echo "check_tools: FAIL: $*"
    fail=1
}

# Checks 1 and 2, and where each tool is on this machine.
rows=()
while read -r what pkg file word; do
    [ -n "$what" ] || continue
    # 1. still used
    if [ ! -f "$file" ]; then
        bad "$what: $file does not exist (update the table)"
    elif ! grep -qF -- "$word" "$file"; then
        bad "$what: $file no longer has '$word' (update the table)"
    fi
    # 2. installed by the set-up
    case $pkg in
    given | base) ;;
    *)
        case " ${installed_by_us[*]} " in
        *" $pkg "*) ;;
        *) bad "$what: its package $pkg is not installed by scripts/install-deps.sh" ;;
        esac
        ;;
    esac
    path=
    case $what in
    /*) path=$what ;;
    pc:*)
        m=${what#pc:}
        d=$(pkg-config --variable=pcfiledir "$m" 2>/dev/null) && path=$d/$m.pc
        ;;
    clang-rt:*)
        d=$(clang --print-runtime-dir 2>/dev/null) &&
            path=$d/libclang_rt.${what#clang-rt:}-$(uname -m).a
        ;;
    *) path=$(command -v "$what") ;;
    esac
    rows+=("$what $pkg ${path:--}")
done <<<"$table"

# Who owns each file: one dpkg-query for all ("pkg[:arch][, pkg...]: /path" lines).
mapfile -t files < <(for r in "${rows[@]}"; do
    f=${r##* }
    [ -e "$f" ] && candidates "$f"
done | sort -u)
while IFS= read -r line; do
    case $line in diversion*) continue ;; esac
    o=${line%%: *}
    o=${o%%,*}
    owner_of[${line#*: }]=${o%%:*}
done < <(dpkg-query -S "${files[@]}" 2>/dev/null)

# 3. on this machine: there, and really from that package
for r in "${rows[@]}"; do
    read -r what pkg path <<<"$r"
    if [ "$path" = - ] || [ ! -e "$path" ]; then
        # sudo is only needed (and only there) when not root.
        [ "$pkg" = given ] && continue
        bad "$what: not found on this machine ($path); is $pkg installed?"
        continue
    fi
    o=
    for c in $(candidates "$path"); do
        o=${owner_of[$c]:-}
        [ -z "$o" ] || break
    done
    if [ -z "$o" ]; then
        bad "$what: no package owns $path"
        continue
    fi
    case $pkg in
    base)
        [ "${prio[$o]:-}" = required ] ||
            bad "$what: $path is from $o (Priority: ${prio[$o]:-?}), not in a minimal Debian root"
        ;;
    given) ;;
    *)
        reaches "$pkg" "$o" || bad "$what: $path is from $o, which $pkg does not bring"
        ;;
    esac
    echo "check_tools: $what -> $path ($o, via $pkg)"
done

[ $fail -eq 0 ] && echo "check_tools: ok: ${#rows[@]} tools, each brought by the set-up"
exit $fail
