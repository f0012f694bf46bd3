#!/usr/bin/env bash
# Runs the pgcoro soak (tests/soak/soak.cpp) against a throwaway test cluster. Not part of CI.
#
#   scripts/soak.sh [BUILD_DIR] [soak options]
#   scripts/soak.sh --duration 60              # a quick check (build dir: build-soak)
#   scripts/soak.sh build-soak --seed 7        # 10 minutes, another fault schedule
#
# Options: --duration SECONDS (600), --seed N (42), --workers N (8), --pool-size N (6),
# --min-gap / --max-gap SECONDS between faults (20 / 60). Exit status 0 when the soak passed.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-soak
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
    build=$1
    shift
fi
if [ ! -f "$build/CMakeCache.txt" ]; then
    . scripts/ccache.sh
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" >/dev/null
fi
cmake --build "$build" --target pgcoro_soak -j 2

state=$(mktemp -d /tmp/pgcoro-soak.XXXXXX)
cleanup() {
    bash scripts/test-cluster.sh stop "$state" || true
    rm -rf "$state"
}
trap cleanup EXIT
bash scripts/test-cluster.sh start "$state"
PGCORO_TEST_CLUSTER=$state "$build/tests/pgcoro_soak" "$@"
