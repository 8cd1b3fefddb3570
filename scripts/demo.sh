#!/usr/bin/env bash
# The main demo: the sleepers example, first in zero mode (every call a direct call), then
# in local mode (every call goes to instances that a private msd starts for the program).
#   scripts/demo.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
sleepers=$build/examples/sleepers/sleepers
msd=$build/src/msd/msd

echo "== sleepers, zero mode (MS_MODE=zero): calls run on the callers' threads"
"$sleepers"
echo
if [ -x "$msd" ]; then
    echo "== sleepers, local mode (MS_MODE=local): calls go to instances started by a private msd"
    MS_MODE=local MS_MSD="$msd" "$sleepers"
else
    echo "(local mode skipped: $msd was not built)"
fi
