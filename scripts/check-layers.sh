#!/usr/bin/env bash
# check-layers.sh [SOURCE_DIR]: fails when a file of src/ includes ("...") a header of a layer
# above its own (docs/design.md, "Layers"). Layers, lowest first:
#   base (src/base) < net (src/net) < codec (src/lib/codec) < lib (src/lib)
#     < apps (src/msd, src/msctl)
# src/lib/codec is a sub-layer of lib below the rest of it: the codec includes base only, so
# it cannot reach the registry, the client or the host it serves.
# src/lib/client (the caller side) and src/lib/host (the instance host) are parts of lib, not
# layers: they include the core's headers (src/lib) and those below, and a part's headers are
# private to it: neither part, nor the core, may include a header of a part it is not in.
# A file may include headers of its own folder and of the layers below it; the two apps may
# not include each other's headers. A header name must be found in exactly one folder
# (else which one the compiler takes depends on the -I order) and must exist. tests/,
# bench/ and examples/ may include anything and are not checked. <...> includes (the
# public <ms/ms.h>, system headers) are not checked either.
# Registered in ctest as check_layers (tests/CMakeLists.txt), so it runs in `make test`.
set -u
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2

# folder -> rank
declare -A rank=([src/base]=0 [src/net]=1 [src/lib/codec]=2 [src/lib]=3 [src/msd]=4 [src/msctl]=4)
# A sub-folder that is its own layer comes before its parent: folder_of takes the first match.
folders=(src/base src/net src/lib/codec src/lib src/msd src/msctl)

# Parts of a layer whose headers are private to them (see above).
parts=(src/lib/client src/lib/host)

part_of() { # the part a path lies in (src/lib/host/x.c -> src/lib/host), or ""
    local p
    for p in "${parts[@]}"; do
        case $1 in "$p"/*) echo "$p"; return ;; esac
    done
}

folder_of() { # the layer folder a path lies in (src/lib/x/y.c -> src/lib), or ""
    local f
    for f in "${folders[@]}"; do
        case $1 in "$f"/*) echo "$f"; return ;; esac
    done
}

bad=0
checked=0
while IFS= read -r file; do
    own=$(folder_of "$file")
    [ -n "$own" ] || continue
    ownpart=$(part_of "$file")
    dir=$(dirname "$file")
    while IFS= read -r line; do
        lineno=${line%%:*}
        inc=${line#*\"}
        inc=${inc%%\"*}
        checked=$((checked + 1))
        if [ -f "$dir/$inc" ]; then
            path=$(realpath -m --relative-to=. "$dir/$inc")
            where=$(folder_of "$path")
        else
            found=()
            for f in "${folders[@]}" "${parts[@]}"; do
                [ -f "$f/$inc" ] && found+=("$f")
            done
            if [ ${#found[@]} -eq 0 ]; then
                echo "$file:$lineno: \"$inc\" is in no layer folder (${folders[*]} ${parts[*]})"
                bad=1
                continue
            fi
            if [ ${#found[@]} -gt 1 ]; then
                echo "$file:$lineno: \"$inc\" is in several folders (${found[*]}): rename one"
                bad=1
                continue
            fi
            path=${found[0]}/$inc
            where=$(folder_of "$path")
        fi
        incpart=$(part_of "$path")
        if [ -n "$incpart" ] && [ "$incpart" != "$ownpart" ]; then
            echo "$file:$lineno: includes \"$inc\", private to $incpart"
            bad=1
            continue
        fi
        if [ "${rank[$where]}" -gt "${rank[$own]}" ] ||
            { [ "${rank[$where]}" -eq "${rank[$own]}" ] && [ "$where" != "$own" ]; }; then
            echo "$file:$lineno: includes \"$inc\" from $where, a layer above or beside $own"
            bad=1
        fi
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file")
done < <(find "${folders[@]}" -type f \( -name '*.c' -o -name '*.h' \) 2>/dev/null | sort -u)

if [ "$bad" -ne 0 ]; then
    echo "check-layers: FAILED (layers, lowest first: base < net < lib/codec < lib < msd, msctl)"
    exit 1
fi
echo "check-layers: ok ($checked includes checked)"
