#!/usr/bin/env bash
# The demo, from a fresh Debian 12 machine: installs what is missing, builds, starts a
# throwaway PostgreSQL 15 cluster, runs examples/01_connect_and_query, stops the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh build
state=$(mktemp -d /tmp/pgcoro-demo.XXXXXX)
trap 'bash scripts/test-cluster.sh stop "$state"; rm -rf "$state"' EXIT
bash scripts/test-cluster.sh start "$state"
bash scripts/with-test-env.sh "$state" build/examples/example_01_connect_and_query
