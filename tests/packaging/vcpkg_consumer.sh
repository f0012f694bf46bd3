#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# packaging.vcpkg_manifest: builds tests/packaging/vcpkg_manifest (a manifest-mode project that
# lists pgcoro, through the overlay port of this checkout) with vcpkg's toolchain, then runs it
# against the test cluster. Needs vcpkg (VCPKG_ROOT, or vcpkg on PATH); exits 77 (CTest: skipped)
# without it -- vcpkg cannot be installed on pgcoro's Debian CI machines.
#   vcpkg_consumer.sh <pgcoro source dir> <work dir> <test cluster dir>
set -euo pipefail
src=$1 work=$2 cluster=$3
vcpkg=${VCPKG_ROOT:+$VCPKG_ROOT/vcpkg}
[ -x "${vcpkg:-}" ] || vcpkg=$(command -v vcpkg || true)
if [ -z "$vcpkg" ]; then
    echo "vcpkg not found (set VCPKG_ROOT): skipped"
    exit 77
fi
root=${VCPKG_ROOT:-$(dirname "$(readlink -f "$vcpkg")")}
rm -rf "$work" && mkdir -p "$work"
cp "$src"/tests/packaging/vcpkg_manifest/{vcpkg.json,CMakeLists.txt} "$work"/
mkdir -p "$work/consumer" && cp "$src/tests/packaging/consumer/main.cpp" "$work/consumer/"
sed -i 's|\${CMAKE_CURRENT_SOURCE_DIR}/../consumer/main.cpp|consumer/main.cpp|' "$work/CMakeLists.txt"
printf '{ "overlay-ports": ["%s/ports"] }\n' "$src" >"$work/vcpkg-configuration.json"
# The ports state version>= constraints, which need a baseline: this vcpkg's own.
(cd "$work" && "$vcpkg" x-update-baseline --add-initial-baseline)
cmake -S "$work" -B "$work/build" -DCMAKE_TOOLCHAIN_FILE="$root/scripts/buildsystems/vcpkg.cmake"
cmake --build "$work/build"
bash "$src/scripts/with-test-env.sh" "$cluster" "$work/build/app"
