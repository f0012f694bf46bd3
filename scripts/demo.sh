#!/usr/bin/env bash
# The demo, from a fresh Debian 12 machine: installs what is missing, builds, starts a
# throwaway PostgreSQL 15 cluster, runs examples/01_connect_and_query, stops the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Only what the demo runs: one example, in its own build directory (the test suite's `build`
# keeps its own configuration).
. scripts/ccache.sh
cmake -S . -B build-demo -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g0 -DNDEBUG" -DPGCORO_BUILD_TESTS=OFF \
    -DPGCORO_BUILD_BENCHMARKS=OFF "${launcher[@]}" >/dev/null
cmake --build build-demo --target example_01_connect_and_query
state=$(mktemp -d /tmp/pgcoro-demo.XXXXXX)
trap 'bash scripts/test-cluster.sh stop "$state"; rm -rf "$state"' EXIT
bash scripts/test-cluster.sh start "$state"
bash scripts/with-test-env.sh "$state" build-demo/examples/example_01_connect_and_query
