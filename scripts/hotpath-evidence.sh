#!/usr/bin/env bash
# Evidence of pgcoro's per-query cost in steady state (issue #9), against a throwaway cluster:
#
#   1. heap allocations per operation: build-perf/benchmarks/pgcoro_driver_allocs counts calls
#      of the global operator new and of the whole malloc family (its own counting malloc,
#      which libpq's and Asio's aligned_alloc calls bind to as well) over exactly 10 000
#      operations after a 1 s warm-up;
#   2. heaptrack (if installed): allocation calls per SELECT 1 for pgcoro and for pgbench, as
#      the difference between a run of 10 001 and a run of 1 query (start-up cancels out), and
#      pgcoro's top allocation sites;
#   3. strace -c -f: system calls per SELECT 1 with one client, pgcoro (1 coroutine) vs
#      pgbench (-c 1 -j 1, -M extended and -M prepared), by the same difference.
#
#   scripts/hotpath-evidence.sh [BUILD_DIR]      (default build-perf; needs the targets
#                                                 pgcoro_driver and pgcoro_driver_allocs)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-${PGCORO_BUILD_DIR:-build-perf}}
driver=$build/benchmarks/pgcoro_driver
allocs=$build/benchmarks/pgcoro_driver_allocs
for b in "$driver" "$allocs"; do
    [ -x "$b" ] || {
        echo "hotpath-evidence.sh: $b not found; build it first:" >&2
        echo "  cmake --build $build --target pgcoro_driver pgcoro_driver_allocs" >&2
        exit 1
    }
done
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
pgbench=$PGBIN/pgbench
[ -x "$pgbench" ] || pgbench=$(command -v pgbench)
N=10000 # queries measured

work=$(mktemp -d /tmp/pgcoro-hotpath.XXXXXX)
cleanup() {
    bash scripts/test-cluster.sh stop "$work/cluster" || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bash scripts/test-cluster.sh start "$work/cluster" >/dev/null
# shellcheck disable=SC1091
. "$work/cluster/env"
if [ -n "${PGCORO_TEST_DSN:-}" ]; then
    url=$PGCORO_TEST_DSN
else
    url="postgresql://$PGCORO_TEST_USER@$PGCORO_TEST_HOST:$PGCORO_TEST_PORT/$PGCORO_TEST_DBNAME?sslmode=disable"
fi
export DATABASE_URL=$url
printf 'SELECT 1;\n' >"$work/w1.sql"

# ---- 1. allocations per operation -----------------------------------------------------------
echo "== 1. heap allocations per operation (pgcoro_driver_allocs, $N ops after 1 s warm-up, pool 10)"
printf '%-4s %11s %18s %22s %10s\n' "work" "coroutines" "operator new/op" "malloc family/op" "ops/s"
for c in "W1 1" "W2 1" "W1 10" "W2 10" "W1 100" "W2 100" "W3 10" "W3 1000"; do
    # shellcheck disable=SC2086
    set -- $c
    line=$("$allocs" --workload="$1" -c "$2" -p 10 -n $N -w 1 --format=result | grep '^RESULT ')
    echo "$line" | awk -v w="$1" -v c="$2" '{
        for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] }
        printf "%-4s %11s %18s %22s %10.0f\n", w, c, r["news_per_op"], r["mallocs_per_op"], r["qps"] }'
done
echo "(operator new/op: C++ allocations through the global operator new. malloc family/op: every"
echo " heap allocation of the process in the window, operator new's included, plus libpq's own"
echo " malloc calls and the memory Asio takes with std::aligned_alloc for handlers and coroutine"
echo " frames. W3 = acquire + release; with more coroutines than connections, acquires wait.)"

# ---- 2. heaptrack -----------------------------------------------------------------------------
echo
if command -v heaptrack >/dev/null && command -v heaptrack_print >/dev/null; then
    echo "== 2. heaptrack: allocation calls per SELECT 1, one client, run($((N + 1))) - run(1) queries"
    ht_calls() { heaptrack_print -f "$1" -p 0 -a 0 -T 0 2>/dev/null | sed -n 's/^calls to allocation functions: \([0-9]*\).*/\1/p'; }
    for n in 1 $((N + 1)); do
        heaptrack -o "$work/ht_c$n" "$driver" --workload=W1 -c 1 -p 1 -n $n -w 0 --format=result >/dev/null 2>&1
        heaptrack -o "$work/ht_b$n" "$pgbench" -n -c 1 -j 1 -t $n -M extended -f "$work/w1.sql" "$url" >/dev/null 2>&1
    done
    c1=$(ht_calls "$work/ht_c1.zst")
    c2=$(ht_calls "$work/ht_c$((N + 1)).zst")
    b1=$(ht_calls "$work/ht_b1.zst")
    b2=$(ht_calls "$work/ht_b$((N + 1)).zst")
    awk -v c1="$c1" -v c2="$c2" -v b1="$b1" -v b2="$b2" -v n=$N 'BEGIN {
        printf "  pgcoro  (1 coroutine, pool 1)   %6.2f allocation calls/query (%d - %d)\n", (c2 - c1) / n, c2, c1
        printf "  pgbench (-c 1 -M extended)      %6.2f allocation calls/query (%d - %d)\n", (b2 - b1) / n, b2, b1 }'
    echo "  pgcoro's sites (calls in run($((N + 1))) minus run(1); innermost frame in the program or libpq):"
    heaptrack_print -f "$work/ht_c$((N + 1)).zst" -d "$work/ht_c1.zst" -p 0 -T 0 -a 1 -n 14 -s 0 2>/dev/null |
        awk '/^[0-9]+ calls to allocation functions/ {
            cnt = $1; getline loc; getline nxt; lib = ""
            if (nxt ~ /^  in /) { k = split(nxt, parts, "/"); lib = parts[k] }
            printf "    %6d x %s%s\n", cnt, loc, (lib ~ /^lib/ && lib !~ /pgcoro/) ? "  [" lib "]" : ""
        }' | cut -c1-150
else
    echo "== 2. heaptrack not installed: skipped (apt-get install heaptrack)"
fi

# ---- 3. strace --------------------------------------------------------------------------------
echo
if command -v strace >/dev/null; then
    echo "== 3. strace -c -f: system calls per SELECT 1, one client, run($((N + 1))) - run(1) queries"
    # strace -c table -> "syscall calls errors" lines
    st_table() { awk '$1 ~ /^[0-9.]+$/ && $NF != "total" { e = (NF == 6) ? $5 : 0; print $NF, $4, e }' "$1"; }
    st_run() { # name n command...
        local name=$1 n=$2
        shift 2
        strace -c -f -o "$work/st_${name}_$n" "$@" >/dev/null 2>&1
    }
    # st_report A B "names" "headers|..": per-query calls of each syscall, run(B) - run(A)
    st_report() {
        local a=$1 b=$2 name
        for name in $3; do
            st_table "$work/st_${name}_$a" | sed "s/^/$name A /"
            st_table "$work/st_${name}_$b" | sed "s/^/$name B /"
        done | awk -v n=$((b - a)) -v names="$3" -v heads="$4" '
            { k = $3; key[k] = 1; v[$1, $2, k] = $4; e[$1, $2, k] = $5 }
            END {
                m = split(names, nm, " "); split(heads, hd, "|")
                line = sprintf("0 %-16s", "syscall")
                for (j = 1; j <= m; j++) line = line sprintf(" %16s", hd[j])
                print line
                for (k in key) {
                    line = sprintf("1 %-16s", k); keep = 0
                    for (j = 1; j <= m; j++) {
                        d = (v[nm[j], "B", k] - v[nm[j], "A", k]) / n
                        de = (e[nm[j], "B", k] - e[nm[j], "A", k]) / n
                        tot[j] += d
                        if (d >= 0.005) keep = 1
                        line = line sprintf(" %16s", de >= 0.005 ? sprintf("%.2f (%.2f err)", d, de) : sprintf("%.2f", d))
                    }
                    if (keep) print line
                }
                line = sprintf("2 %-16s", "total/query")
                for (j = 1; j <= m; j++) line = line sprintf(" %16.2f", tot[j])
                print line
            }' | sort -k1,1n -k2,2 | sed 's/^[0-9] /  /'
    }
    for n in 1 $((N + 1)); do
        st_run pgcoro $n "$driver" --workload=W1 -c 1 -p 1 -n $n -w 0 --format=result
        st_run ext $n "$pgbench" -n -c 1 -j 1 -t $n -M extended -f "$work/w1.sql" "$url"
        st_run prep $n "$pgbench" -n -c 1 -j 1 -t $n -M prepared -f "$work/w1.sql" "$url"
    done
    st_report 1 $((N + 1)) "pgcoro ext prep" "pgcoro|pgbench ext|pgbench prep"
    echo "  (err = calls that failed, e.g. recvfrom EAGAIN. pgcoro waits for readiness before it"
    echo "   reads: one epoll_wait per statement when a single client runs. A statement's first"
    echo "   wait is pgcoro's edge-triggered response wait, without the epoll_ctl(EPOLL_CTL_MOD)"
    echo "   that Asio's async_wait makes; detail/pq_socket.hpp.)"

    # The configuration of the throughput targets: 10 clients, prepared statements.
    echo
    echo "== 3b. the same, 10 clients: pgcoro 10 coroutines on 10 connections with the statement"
    echo "   cache, pgbench -c 10 -j 2 -M prepared; run($((N + 10))) - run(10) queries"
    for n in 10 $((N + 10)); do
        st_run pgcoro10 $n "$driver" --workload=W1 -c 10 -p 10 --statement-cache=16 -n $n -w 0 \
            --format=result
        st_run prep10 $n "$pgbench" -n -c 10 -j 2 -t $((n / 10)) -M prepared -f "$work/w1.sql" "$url"
    done
    st_report 10 $((N + 10)) "pgcoro10 prep10" "pgcoro|pgbench prep"
else
    echo "== 3. strace not installed: skipped"
fi
