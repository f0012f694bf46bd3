#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# packaging.conan_create: `conan create` of the recipe with the documented settings, which
# builds and runs test_package/. Needs Conan 2 on PATH; exits 77 (CTest: skipped) without it --
# Conan (PyPI) cannot be installed on pgcoro's Debian CI machines.
#   conan_create.sh <pgcoro source dir>
set -euo pipefail
src=$1
if ! command -v conan >/dev/null; then
    echo "conan not found: skipped"
    exit 77
fi
conan profile detect --exist-ok
conan create "$src" -s compiler.cppstd=20 --build=missing
