#!/usr/bin/env bash
# check_layers_rejects.sh SOURCE_DIR: scripts/check-layers.sh must fail on each violation
# below, made in a copy of src/ (the tree itself is not touched): the client and the host
# including each other's private headers (by name and by relative path), the core including
# a part's header, and a file of lib including an app's header. Registered in ctest as
# check_layers_rejects.
set -u
src=${1:?usage: check_layers_rejects.sh SOURCE_DIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/src" "$tmp/src"
cp -r "$src/scripts" "$tmp/scripts"
fails=0
# file to break | the include added to it | what the check must say
cases=(
    'src/lib/client/orch.c|#include "host_int.h"|private to src/lib/host'
    'src/lib/client/engine.c|#include "../host/dedupe.h"|private to src/lib/host'
    'src/lib/host/slots.c|#include "client_int.h"|private to src/lib/client'
    'src/lib/call.c|#include "client/client_int.h"|private to src/lib/client'
    'src/lib/init.c|#include "msd.h"|a layer above'
)
if ! bash "$tmp/scripts/check-layers.sh" "$tmp" >/dev/null; then
    echo "check_layers_rejects: the unchanged copy does not pass"
    exit 1
fi
for c in "${cases[@]}"; do
    IFS='|' read -r file inc want <<<"$c"
    cp "$tmp/$file" "$tmp/saved"
    printf '%s\n' "$inc" >>"$tmp/$file"
    out=$(bash "$tmp/scripts/check-layers.sh" "$tmp" 2>&1)
    rc=$?
    mv "$tmp/saved" "$tmp/$file"
    if [ "$rc" -eq 0 ] || ! grep -qF "$want" <<<"$out"; then
        echo "NOT rejected: $file + $inc (rc $rc): $out"
        fails=1
    else
        echo "rejected: $file + $inc: $(grep -F "$want" <<<"$out")"
    fi
done
[ "$fails" -eq 0 ] && echo "check_layers_rejects: ok (${#cases[@]} violations rejected)"
exit "$fails"
