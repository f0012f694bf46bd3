#!/usr/bin/env bash
# Builds the consumer's main.cpp with nothing but `pkg-config --cflags --libs pgcoro`, against
# the pgcoro installed in PREFIX, after checking what pgcoro.pc promises:
#   tests/packaging/consumer_pkgconfig.sh PREFIX SOURCE OUTPUT CXX [LAUNCHER]
set -euo pipefail
prefix=${1:?usage: consumer_pkgconfig.sh PREFIX SOURCE OUTPUT CXX [LAUNCHER]}
src=${2:?}
out=${3:?}
cxx=${4:?}
launcher=${5:-}
export PKG_CONFIG_PATH="$prefix/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"

fail() {
    echo "pgcoro.pc: $*" >&2
    exit 1
}
pkg-config --exists --print-errors pgcoro || fail "not found under $prefix/share/pkgconfig"
flags=$(pkg-config --cflags --libs pgcoro)
echo "pkg-config --cflags --libs pgcoro: $flags"
version=$(pkg-config --modversion pgcoro)
echo "pkg-config --modversion pgcoro: $version"

# The standard is the consumer's (issue 22: a -std=c++20 in Cflags overrode a user's
# -std=c++23); libpq is a Requires (its -I/usr/include/postgresql and -lpq come through it);
# the include directory is the prefix's.
[[ " $flags " != *" -std="* ]] || fail "Cflags set the language standard: $flags"
pkg-config --print-requires pgcoro | grep -qx 'libpq' || fail "Requires lacks libpq"
for f in $(pkg-config --cflags-only-I libpq) $(pkg-config --libs-only-l libpq); do
    [[ " $flags " == *" $f "* ]] || fail "libpq's $f is missing"
done
incdir=$(pkg-config --variable=includedir pgcoro)
[ -f "$incdir/pgcoro.hpp" ] || fail "includedir $incdir holds no pgcoro.hpp"
[ "$(cd "$incdir" && pwd -P)" = "$(cd "$prefix/include" && pwd -P)" ] ||
    fail "includedir $incdir is not $prefix/include"

mkdir -p "$(dirname "$out")"
# shellcheck disable=SC2086 # the flags are meant to be split
$launcher "$cxx" -std=c++20 "$src" -o "$out" $flags
echo "built $out"
