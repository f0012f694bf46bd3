#!/usr/bin/env bash
# Configures and builds pgcoro (tests, examples, benchmarks) into BUILD_DIR (default: build).
#   scripts/build.sh [BUILD_DIR] [extra cmake -D options...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
. scripts/ccache.sh
# -g1 (line tables: enough for backtraces and sanitizer reports) builds ~20 % faster than -g.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" "${launcher[@]}" "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"
