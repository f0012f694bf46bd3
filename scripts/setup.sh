#!/usr/bin/env bash
# Installs the Debian 12 packages pgcoro needs, only those that are missing. Idempotent: on a
# prepared machine it installs nothing and does not touch the network.
set -euo pipefail

packages=(
    cmake ninja-build g++ ccache pkg-config    # build
    libboost1.81-dev libpq-dev libexpected-dev # pgcoro's dependencies
    libgtest-dev libgmock-dev libbenchmark-dev # tests and benchmarks
    postgresql-15 pgbouncer                    # the servers the tests start themselves
    clang-14 libclang-rt-14-dev clang-format-14 # fuzzing, second compiler, formatting
    curl openssl procps prometheus             # promtool checks the metrics output
    time strace                                # scripts/compare.sh, scripts/hotpath-evidence.sh
    python3                                    # packaging agreement check (tests/packaging)
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
