#!/usr/bin/env bash
# Builds pgcoro's tests with a sanitizer and runs them against their own throwaway cluster.
#   scripts/sanitize.sh asan   # ASan + UBSan (+ LeakSanitizer): every unit, TLS and pgbouncer
#                              # test, and the integration tests of the pool, connections,
#                              # pipelines, the regression and stress tests and the misuse and
#                              # terminate faults (the rest time the event loop or wait on
#                              # faults, and add build time, not memory findings)
#   scripts/sanitize.sh tsan   # ThreadSanitizer: the concurrency tests (multi-threaded pool
#                              # stress, statements and pipelines whose cancel runs on the
#                              # helper thread)
# The test suite runs both through ctest (label "sanitizer").
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: sanitize.sh asan|tsan}
case "$kind" in
asan)
    flags="address,undefined"
    targets=(pgcoro_unit_tests pgcoro_pq_socket_portable_tests pgcoro_integration_tests pgcoro_tls_tests pgcoro_pgbouncer_tests)
    filter='^(unit|integration|cluster|tls|tls_cluster|pgbouncer)\.'
    subset='/(pool|pipeline|connection|statement_cache|pool_stress|pool_shards|pool_regression|engine_regression|fault_misuse|fault_terminate|copy_stream|listen|async_token)_test\.cpp$'
    ;;
tsan)
    flags="thread"
    targets=(pgcoro_integration_tests)
    filter='^(integration\.(Pool\.(FourThreadStress|ThousandCoroutines|ReleaseFromAnotherThread|WaiterResumesOnItsOwnExecutor)|Pipeline[A-Za-z]*\.|Query\.|PoolStress\.|PoolShards[A-Za-z]*\.|PoolRegression\.|EngineRegression\.|AsyncToken\.)|cluster\.)'
    subset='/(pool|pipeline|connection|pool_stress|pool_shards|pool_regression|engine_regression|async_token)_test\.cpp$'
    export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp"
    ;;
*)
    echo "unknown sanitizer: $kind" >&2
    exit 2
    ;;
esac
build=build-$kind
. scripts/ccache.sh
cmake -S . -B "$build" -G Ninja "${launcher[@]}" -DPGCORO_SANITIZE="$flags" \
    -DPGCORO_BUILD_EXAMPLES=OFF -DPGCORO_BUILD_BENCHMARKS=OFF -DCMAKE_BUILD_TYPE= \
    "-DPGCORO_INTEGRATION_SUBSET=$subset" \
    "-DCMAKE_CXX_FLAGS=-O1 -g1" >/dev/null # -g1: line tables for the reports, faster builds
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export PGCORO_LAG_BUDGET_SCALE=3 # event-loop lag budget 60 ms: sanitized code runs 2-10x slower
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# The portable-path repeat of the integration suite runs once, in the main build.
ctest --test-dir "$build" --output-on-failure -R "$filter" -E "\\.portable\\." --timeout 600
