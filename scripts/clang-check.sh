#!/usr/bin/env bash
# Second compiler: builds every target with clang++ 14 (-Wall -Wextra -Wpedantic -Werror)
# and runs the unit and integration tests of that build against its own cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ccache.sh
CXX=clang++-14 cmake -S . -B build-clang -G Ninja "${launcher[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" >/dev/null
cmake --build build-clang -j "$(nproc)" --target pgcoro_unit_tests pgcoro_integration_tests \
    pgcoro_prometheus_sample example_04_http_service
ctest --test-dir build-clang --output-on-failure -L "unit|integration" -E "^(sanitizer|config\.fuzz)" \
    --timeout 600
