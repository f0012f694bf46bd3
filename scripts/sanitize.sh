#!/usr/bin/env bash
# Builds pgcoro's tests with a sanitizer and runs a subset of them against their own
# throwaway cluster.
#   scripts/sanitize.sh asan   # AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer)
#   scripts/sanitize.sh tsan   # ThreadSanitizer, the multi-threaded pool stress test
# The test suite runs both through ctest (label "sanitizer").
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: sanitize.sh asan|tsan}
case "$kind" in
asan)
    flags="address,undefined"
    targets=(pgcoro_unit_tests pgcoro_integration_tests)
    filter='^(unit\.(Error|TextCodec|PoolPolicy)|integration\.(Connect|Query|Connection|Pool)\.|cluster\.)'
    ;;
tsan)
    flags="thread"
    targets=(pgcoro_integration_tests)
    filter='^(integration\.Pool\.(FourThreadStress|ThousandCoroutines)|cluster\.)'
    export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
    ;;
*)
    echo "unknown sanitizer: $kind" >&2
    exit 2
    ;;
esac
build=build-$kind
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build" -G Ninja "${launcher[@]}" -DPGCORO_SANITIZE="$flags" \
    -DPGCORO_BUILD_EXAMPLES=OFF -DPGCORO_BUILD_BENCHMARKS=OFF -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS=-O1 >/dev/null
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir "$build" --output-on-failure -R "$filter" --timeout 600
