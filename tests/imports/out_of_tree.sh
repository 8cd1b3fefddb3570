#!/bin/sh
# out_of_tree.sh: ms as a user outside this tree gets it. Installs the current build into a
# temporary prefix with `cmake --install`, then builds examples/echo against that prefix two
# ways and runs each binary with LD_LIBRARY_PATH pointing into the prefix:
#   1. cc echo.c $(pkg-config --cflags --libs ms), with strict warnings as C11;
#   2. a tiny CMake project: find_package(ms) and ms::ms (shared) / ms::ms_static.
# Usage (from ctest): out_of_tree.sh BUILD_DIR SOURCE_DIR LIBDIR C_COMPILER [SANITIZE_FLAGS]
# LIBDIR is CMAKE_INSTALL_LIBDIR of the build ("lib", or "lib/x86_64-linux-gnu" when the
# configured prefix was /usr on Debian).
set -eu

build=$1
src=$2
libdir=$3
cc=$4
san=${5:-}

fail() {
    echo "out_of_tree: FAIL: $*" >&2
    exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
want="hello -> echo1 -> echo2 -> echo3"

echo "out_of_tree: installing $build into $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 ||
    { cat "$work/install.log"; fail "cmake --install failed"; }
for f in include/ms/ms.h include/ms/ms_pp.h "$libdir/libms.so" "$libdir/libms.a" \
    "$libdir/pkgconfig/ms.pc" "$libdir/cmake/ms/msConfig.cmake"; do
    [ -e "$prefix/$f" ] || fail "$f is not installed (CMAKE_INSTALL_LIBDIR=$libdir)"
done

# 1. pkg-config --------------------------------------------------------------------------
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
flags=$(pkg-config --cflags --libs ms) || fail "pkg-config --cflags --libs ms failed"
echo "out_of_tree: pkg-config --cflags --libs ms: $flags"
# The -I and -L directories must be the prefix's (compared after resolving "..").
real() { (cd "$1" 2>/dev/null && pwd -P) || echo "$1"; }
inc_ok=no lib_ok=no
for f in $flags; do
    case $f in
    -I*) [ "$(real "${f#-I}")" = "$(real "$prefix/include")" ] && inc_ok=yes ;;
    -L*) [ "$(real "${f#-L}")" = "$(real "$prefix/$libdir")" ] && lib_ok=yes ;;
    esac
done
[ "$inc_ok$lib_ok" = yesyes ] ||
    fail "pkg-config does not point into the install prefix $prefix: ms.pc says" \
        "'$(grep '^prefix=' "$prefix/$libdir/pkgconfig/ms.pc")', the prefix configured at" \
        "build time; ms.pc must derive its prefix from \${pcfiledir} to be relocatable"
# shellcheck disable=SC2086 # $flags and $san are word lists
"$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror $san -o "$work/echo_pc" \
    "$src/examples/echo/echo.c" $flags || fail "cc with pkg-config flags failed"
got=$(LD_LIBRARY_PATH="$prefix/$libdir" "$work/echo_pc") || fail "echo_pc exited with $?"
[ "$got" = "$want" ] || fail "echo_pc printed '$got'"
LD_LIBRARY_PATH="$prefix/$libdir" ldd "$work/echo_pc" | grep -q "$prefix/$libdir/libms.so" ||
    fail "echo_pc does not load the installed libms.so"
echo "out_of_tree: pkg-config build ok: $got"

# 2. find_package(ms) ------------------------------------------------------------------------
mkdir "$work/app"
cp "$src/examples/echo/echo.c" "$work/app/"
cat >"$work/app/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.18)
project(ms_user C)
set(CMAKE_C_STANDARD 11)
set(CMAKE_C_STANDARD_REQUIRED ON)
set(CMAKE_C_EXTENSIONS OFF)
add_compile_options(-Wall -Wextra -Wpedantic -Werror)
find_package(ms 0.1 REQUIRED)
add_executable(echo_shared echo.c)
target_link_libraries(echo_shared PRIVATE ms::ms)
add_executable(echo_static echo.c)
target_link_libraries(echo_static PRIVATE ms::ms_static)
CMAKE
cmake -S "$work/app" -B "$work/app/build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san" \
    >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; fail "configuring the user project failed"; }
cmake --build "$work/app/build" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log"; fail "building the user project failed"; }
for exe in echo_shared echo_static; do
    got=$(LD_LIBRARY_PATH="$prefix/$libdir" "$work/app/build/$exe") || fail "$exe exited with $?"
    [ "$got" = "$want" ] || fail "$exe printed '$got'"
done
LD_LIBRARY_PATH="$prefix/$libdir" ldd "$work/app/build/echo_shared" |
    grep -q "$prefix/$libdir/libms.so" || fail "echo_shared does not load the installed libms.so"
if ldd "$work/app/build/echo_static" | grep -q 'libms\.so'; then
    fail "echo_static links libms.so"
fi
echo "out_of_tree: find_package build ok (ms::ms and ms::ms_static)"
