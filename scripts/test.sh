#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what is missing, builds,
# and runs every test with CTest. The `pg_cluster` fixture starts a throwaway PostgreSQL 15
# cluster for the integration tests and removes it at the end, also when tests fail.
# Ends with CTest's summary line; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh build
ctest --test-dir build --output-on-failure -j 2 --timeout 600
