#!/usr/bin/env bash
# Second compiler: builds with clang++ 14 (-Wall -Wextra -Wpedantic -Werror) the unit tests,
# the integration tests of the pool, connections and pipelines (every public template
# instantiated) and the HTTP example, and runs those tests against their own cluster; and
# compiles every public header alone with a user's strictest warnings (pgcoro_header_check:
# -Wshadow -Wconversion -Wsign-conversion on top), as packaging.headers does with g++.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ccache.sh
CXX=clang++-14 cmake -S . -B build-clang -G Ninja "${launcher[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g0 -DNDEBUG" \
    "-DPGCORO_INTEGRATION_SUBSET=/(pool|pipeline|connection|pool_regression|engine_regression)_test\\.cpp$" \
    >/dev/null
cmake --build build-clang -j "$(nproc)" --target pgcoro_unit_tests pgcoro_integration_tests \
    pgcoro_prometheus_sample example_04_http_service pgcoro_header_check
# This run shares the 2 cores with the rest of the suite (fuzzers, examples), so the fault
# tests' event-loop lag budget is doubled (40 ms); the GCC run keeps the strict 20 ms.
export PGCORO_LAG_BUDGET_SCALE=2
ctest --test-dir build-clang --output-on-failure -L "unit|integration" -LE portable -E "^(sanitizer|config\.fuzz)" \
    --timeout 600
