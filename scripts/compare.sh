#!/usr/bin/env bash
# Side-by-side throughput of pgcoro and pgbench (PostgreSQL's C client) against one throwaway
# PostgreSQL 15 cluster in the same run (issue #9).
#
#   scripts/compare.sh [--rounds N] [--duration S] [--warmup S] [--build DIR] [--only REGEX]
#   env: PGCORO_COMPARE_ROUNDS (3), PGCORO_COMPARE_DURATION (5), PGCORO_COMPARE_WARMUP (1),
#        PGCORO_BUILD_DIR (build-perf: configured as Release and its pgcoro_driver target
#        built by this script when needed), PGCORO_COMPARE_ONLY (an extended regex: only the
#        rows whose id matches, e.g. 'W1_|W2_' or '_2$|ej1|prep|ext')
#
# Every round runs each row once, pgbench and pgcoro rows interleaved (A/B/A/B...), the order
# reversed every other round; the table shows per-row medians over the rounds. Client and
# server share the machine's cores, so only ratios within one run mean anything.
#
# Client CPU per query is measured the same way for both programs: /usr/bin/time's user+sys
# CPU of the whole client process (from wait4's rusage, 10 ms resolution) divided by every
# query that process ran (pgbench: transactions processed x queries per transaction; pgcoro:
# all operations, warm-up included). Peak RSS is /usr/bin/time's %M for both.
# To add a row, add one line to ROWS below (a pgcoro row: its driver arguments and the
# pgbench rows it is compared with). A pgcoro row whose workload the driver does not support
# (exit status 3, e.g. W1P before the library pipelines) is reported as skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${PGCORO_COMPARE_ROUNDS:-3}
duration=${PGCORO_COMPARE_DURATION:-5}
warmup=${PGCORO_COMPARE_WARMUP:-1}
build=${PGCORO_BUILD_DIR:-build-perf}
only=${PGCORO_COMPARE_ONLY:-}
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$rounds" in '' | *[!0-9]*) echo "--rounds must be an integer" >&2; exit 2 ;; esac
if [ "$rounds" -lt 1 ] || [ "$rounds" -gt 50 ]; then echo "--rounds must be 1..50" >&2; exit 2; fi

# From a fresh clone: install what is missing and build just the driver (Release, ~1 min).
bash scripts/setup.sh
driver=$build/benchmarks/pgcoro_driver
if [ ! -f "$build/CMakeCache.txt" ]; then
    . scripts/ccache.sh
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >/dev/null
fi
cmake --build "$build" --target pgcoro_driver -j "$(nproc)" >/dev/null
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
pgbench=$PGBIN/pgbench
[ -x "$pgbench" ] || pgbench=$(command -v pgbench) || { echo "pgbench not found" >&2; exit 1; }

# ---- the rows -------------------------------------------------------------------------------
# id | kind | label | queries per transaction (pgbench) or "-" | args | compared with (pgcoro)
ROWS=(
    "B_W1_ext |pgbench|pgbench W1 SELECT 1, -M extended  |1 |-M extended -f w1.sql|"
    "B_W1_prep|pgbench|pgbench W1 SELECT 1, -M prepared  |1 |-M prepared -f w1.sql|"
    "B_W1_pj1 |pgbench|pgbench W1 -M prepared, 1 thread |1 |-j 1 -M prepared -f w1.sql|"
    "B_W1_ej1 |pgbench|pgbench W1 -M extended, 1 thread |1 |-j 1 -M extended -f w1.sql|"
    "B_W1_pipe|pgbench|pgbench W1 pipeline of 10, prepared|10|-M prepared -f w1p.sql|"
    "B_W1_pipx|pgbench|pgbench W1 pipeline of 10, extended|10|-M extended -f w1p.sql|"
    "B_W2_ext |pgbench|pgbench W2 point read, -M extended |1 |-M extended -f w2.sql|"
    "B_W2_prep|pgbench|pgbench W2 point read, -M prepared |1 |-M prepared -f w2.sql|"
    "B_W2_pj1 |pgbench|pgbench W2 -M prepared, 1 thread |1 |-j 1 -M prepared -f w2.sql|"
    "B_W2_ej1 |pgbench|pgbench W2 -M extended, 1 thread |1 |-j 1 -M extended -f w2.sql|"
    "C_W1_10  |pgcoro |pgcoro  W1 SELECT 1, 10 coroutines |- |--workload=W1 -c 10|B_W1_ext B_W1_prep B_W1_ej1"
    "C_W1_100 |pgcoro |pgcoro  W1 SELECT 1, 100 coroutines|- |--workload=W1 -c 100|B_W1_ext B_W1_prep B_W1_ej1"
    "C_W1_10s |pgcoro |pgcoro  W1 10 coroutines, stmt cache|- |--workload=W1 -c 10 --statement-cache=16|B_W1_ext B_W1_prep B_W1_pj1"
    "C_W1_100s|pgcoro |pgcoro  W1 100 coroutines, stmt cache|- |--workload=W1 -c 100 --statement-cache=16|B_W1_ext B_W1_prep B_W1_pj1"
    "C_W1P_10 |pgcoro |pgcoro  W1P pipelined, 10 coroutines|- |--workload=W1P -c 10|B_W1_pipx B_W1_pipe"
    "C_W1P_100|pgcoro |pgcoro  W1P pipelined, 100 coroutines|- |--workload=W1P -c 100|B_W1_pipx B_W1_pipe"
    "C_W1P_100s|pgcoro |pgcoro  W1P 100 coroutines, stmt cache|- |--workload=W1P -c 100 --statement-cache=16|B_W1_pipx B_W1_pipe"
    "C_W2_10  |pgcoro |pgcoro  W2 point read, 10 coroutines|- |--workload=W2 -c 10|B_W2_ext B_W2_prep B_W2_ej1"
    "C_W2_100 |pgcoro |pgcoro  W2 point read, 100 coroutines|- |--workload=W2 -c 100|B_W2_ext B_W2_prep B_W2_ej1"
    "C_W2_10s |pgcoro |pgcoro  W2 10 coroutines, stmt cache|- |--workload=W2 -c 10 --statement-cache=16|B_W2_ext B_W2_prep B_W2_pj1"
    "C_W2_100s|pgcoro |pgcoro  W2 100 coroutines, stmt cache|- |--workload=W2 -c 100 --statement-cache=16|B_W2_ext B_W2_prep B_W2_pj1"
    # Two threads, one io_context and pool shard each (--shards); compared with pgbench -j 2
    # and with the same pgcoro row on one thread.
    "C_W1_10_2 |pgcoro |pgcoro  W1 10, 2 shards            |- |--workload=W1 -c 10 -t 2 --shards|B_W1_ext C_W1_10"
    "C_W1_100_2|pgcoro |pgcoro  W1 100, 2 shards           |- |--workload=W1 -c 100 -t 2 --shards|B_W1_ext C_W1_100"
    "C_W1_10s2 |pgcoro |pgcoro  W1 10, stmt cache, 2 shards|- |--workload=W1 -c 10 --statement-cache=16 -t 2 --shards|B_W1_prep C_W1_10s"
    "C_W1_100s2|pgcoro |pgcoro  W1 100, stmt cache, 2 shards|- |--workload=W1 -c 100 --statement-cache=16 -t 2 --shards|B_W1_prep C_W1_100s"
    "C_W2_10_2 |pgcoro |pgcoro  W2 10, 2 shards            |- |--workload=W2 -c 10 -t 2 --shards|B_W2_ext C_W2_10"
    "C_W2_100_2|pgcoro |pgcoro  W2 100, 2 shards           |- |--workload=W2 -c 100 -t 2 --shards|B_W2_ext C_W2_100"
    "C_W2_10s2 |pgcoro |pgcoro  W2 10, stmt cache, 2 shards|- |--workload=W2 -c 10 --statement-cache=16 -t 2 --shards|B_W2_prep C_W2_10s"
    "C_W2_100s2|pgcoro |pgcoro  W2 100, stmt cache, 2 shards|- |--workload=W2 -c 100 --statement-cache=16 -t 2 --shards|B_W2_prep C_W2_100s"
    "C_W1P_100s2|pgcoro|pgcoro  W1P 100, stmt cache, 2 shards|- |--workload=W1P -c 100 --statement-cache=16 -t 2 --shards|B_W1_pipe C_W1P_100s"
    "C_W3_10  |pgcoro |pgcoro  W3 acquire+release, 10     |- |--workload=W3 -c 10|"
    "C_W3_1000|pgcoro |pgcoro  W3 acquire+release, 1000   |- |--workload=W3 -c 1000|"
)
field() { # field ROW N (1-based), trimmed
    local IFS='|'
    # shellcheck disable=SC2206
    local parts=($1)
    local v=${parts[$(($2 - 1))]:-}
    v=${v#"${v%%[![:space:]]*}"}
    printf '%s' "${v%"${v##*[![:space:]]}"}"
}
# Interleave pgbench and pgcoro rows: B C B C ... so neighbours in time are A/B pairs.
order=()
bs=() cs=()
if [ -n "$only" ]; then
    kept=()
    for r in "${ROWS[@]}"; do
        if grep -Eq -- "$only" <<<"$(field "$r" 1)"; then kept+=("$r"); fi
    done
    [ ${#kept[@]} -gt 0 ] || { echo "--only '$only' matches no row" >&2; exit 2; }
    ROWS=("${kept[@]}")
fi
for r in "${ROWS[@]}"; do
    if [ "$(field "$r" 2)" = pgbench ]; then bs+=("$r"); else cs+=("$r"); fi
done
for ((i = 0; i < ${#bs[@]} || i < ${#cs[@]}; i++)); do
    [ $i -lt ${#bs[@]} ] && order+=("${bs[$i]}")
    [ $i -lt ${#cs[@]} ] && order+=("${cs[$i]}")
done

# ---- the cluster ----------------------------------------------------------------------------
work=$(mktemp -d /tmp/pgcoro-compare.XXXXXX)
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

"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$url" <<'EOF'
CREATE TABLE IF NOT EXISTS kv (id int PRIMARY KEY, v text NOT NULL);
INSERT INTO kv SELECT g, md5(g::text) FROM generate_series(1, 10000) g ON CONFLICT (id) DO NOTHING;
ANALYZE kv;
EOF
printf 'SELECT 1;\n' >"$work/w1.sql"
printf '\\set id random(1, 10000)\nSELECT v FROM kv WHERE id = :id;\n' >"$work/w2.sql"
{
    printf '\\startpipeline\n'
    for _ in 1 2 3 4 5 6 7 8 9 10; do printf 'SELECT 1;\n'; done
    printf '\\endpipeline\n'
} >"$work/w1p.sql"

server_version=$("$PGBIN/psql" -X -At "$url" -c 'SHOW server_version')
echo "pgcoro vs pgbench: $rounds round(s) x ${duration} s per row, pgcoro warm-up ${warmup} s;" \
    "PostgreSQL $server_version on 127.0.0.1; $(nproc) CPUs shared by client and server;" \
    "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "pgbench: $("$pgbench" --version), -c 10 -j 2 (2 threads); pgcoro: pool 10, 1 io_context thread" \
    "(rows '2 shards': 2 threads, an io_context and a pool shard each)"

# ---- one run --------------------------------------------------------------------------------
results=$work/results.tsv # id  qps  lat_avg_ms  p99_ms  cpu_us_per_query  rss_kib
: >"$results"
skipped=""
run_row() {
    local row=$1 id kind qpt args out tf rc
    id=$(field "$row" 1)
    kind=$(field "$row" 2)
    qpt=$(field "$row" 4)
    args=$(field "$row" 5)
    out=$work/out.txt
    tf=$work/time.txt
    case " $skipped " in *" $id "*) return 0 ;; esac
    rc=0
    if [ "$kind" = pgbench ]; then
        # shellcheck disable=SC2086
        (cd "$work" && /usr/bin/time -f '%U %S %M' -o "$tf" "$pgbench" -n -c 10 -j 2 \
            -T "$duration" $args "$url") >"$out" 2>&1 || rc=$?
        if [ $rc -ne 0 ]; then
            echo "  $id failed (exit $rc):" >&2
            tail -5 "$out" >&2
            return 0
        fi
        local n tps lat
        n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
        tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out")
        lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out")
        read -r u s m <"$tf"
        awk -v id="$id" -v n="$n" -v tps="$tps" -v lat="$lat" -v q="$qpt" -v u="$u" -v s="$s" \
            -v m="$m" 'BEGIN { printf "%s\t%.1f\t%.6f\t-\t%.2f\t%d\n", id, tps * q, lat,
                               (u + s) * 1e6 / (n * q), m }' >>"$results"
        printf '  %-10s %10.0f q/s\n' "$id" "$(awk -v t="$tps" -v q="$qpt" 'BEGIN{print t*q}')"
    else
        # shellcheck disable=SC2086
        DATABASE_URL=$url /usr/bin/time -f '%U %S %M' -o "$tf" "$driver" -p 10 -t 1 $args \
            -d "$duration" -w "$warmup" --format=result >"$out" 2>&1 || rc=$?
        if [ $rc -eq 3 ]; then
            echo "  $id skipped: $(tail -1 "$out")"
            skipped="$skipped $id"
            return 0
        fi
        local line
        line=$(grep '^RESULT ' "$out" || true)
        if [ $rc -ne 0 ] || [ -z "$line" ]; then
            echo "  $id failed (exit $rc):" >&2
            tail -5 "$out" >&2
            return 0
        fi
        read -r u s m <"$tf"
        echo "$line" | awk -v id="$id" -v u="$u" -v s="$s" -v m="$m" '{
            for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] }
            printf "%s\t%.1f\t%.6f\t%.6f\t%.2f\t%d\n", id, r["qps"], r["mean_us"] / 1000,
                   r["p99_us"] / 1000, (u + s) * 1e6 / r["total_ops"], m
            if (r["fifo_out_of_order"] != "")
                printf "%s\t%s\t%s\n", id, r["fifo_out_of_order"], r["fifo_checked"] > "/dev/stderr"
        }' >>"$results" 2>>"$work/fifo.tsv"
        printf '  %-10s %10.0f q/s\n' "$id" "$(grep -o ' qps=[0-9.]*' <<<"$line" | cut -d= -f2)"
    fi
}

for ((round = 1; round <= rounds; round++)); do
    echo "round $round/$rounds"
    if [ $((round % 2)) = 1 ]; then
        for r in "${order[@]}"; do run_row "$r"; done
    else
        for ((i = ${#order[@]} - 1; i >= 0; i--)); do run_row "${order[$i]}"; done
    fi
done

# ---- the table ------------------------------------------------------------------------------
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -F'\t' -v id="$1" -v c="$2" '$1 == id && $c != "-" { print $c }' "$results"; }
stat_of() { col "$1" "$2" | median; }
range_of() { col "$1" 2 | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%.0f..%.0f", lo, hi }'; }

echo
echo "Medians over $rounds round(s); qps range = min..max over the rounds; avg = mean latency"
echo "(pgbench's 'latency average'; pgcoro: acquire + query, W3: acquire wait), p99 = pgcoro's"
echo "p99 (pgbench prints none without per-transaction logs)."
echo "Ratios are pgcoro / pgbench: qps (higher is better for pgcoro), client CPU per query"
echo "(lower is better for pgcoro), against pgbench -M extended (the same protocol messages as"
echo "pgcoro's PQsendQueryParams) and -M prepared (Bind/Execute only; pgcoro's rows with"
echo "'stmt cache' send the same, through connect_config::statement_cache_size); 'pj1' is"
echo "pgbench -M prepared with one client thread (-j 1), like pgcoro's one io_context thread;"
echo "'pipe' / 'pipx' are pgbench's pipelines of 10 with -M prepared / -M extended."
printf '%-38s %8s %15s %8s %8s %8s %7s  %s\n' "row" "qps" "qps range" "avg us" "p99 us" \
    "CPU us/q" "RSS MiB" "pgcoro/pgbench ratios: qps, CPU per query"
for r in "${ROWS[@]}"; do
    id=$(field "$r" 1)
    label=$(field "$r" 3)
    refs=$(field "$r" 6)
    case " $skipped " in *" $id "*) continue ;; esac
    [ -n "$(col "$id" 2)" ] || { printf '%-38s %8s\n' "$label" "failed"; continue; }
    ratios=""
    qps=$(stat_of "$id" 2)
    lat=$(stat_of "$id" 3)
    p99=$(stat_of "$id" 4)
    cpu=$(stat_of "$id" 5)
    rss=$(stat_of "$id" 6)
    for ref in $refs; do
        rq=$(stat_of "$ref" 2)
        rc=$(stat_of "$ref" 5)
        [ "$rq" = - ] && continue
        ratios="$ratios$(awk -v a="$qps" -v b="$rq" -v c="$cpu" -v d="$rc" -v n="${ref#[BC]_W?_}" \
            'BEGIN { printf "vs %s %.2f, %.2f; ", n, a / b, c / d }')"
    done
    printf '%-38s %8.0f %15s %8.1f %8s %8.2f %7.1f  %s\n' "$label" "$qps" "$(range_of "$id")" \
        "$(awk -v l="$lat" 'BEGIN { print l * 1000 }')" \
        "$(awk -v p="$p99" 'BEGIN { if (p == "-") print "-"; else printf "%.1f", p * 1000 }')" \
        "$cpu" "$(awk -v m="$rss" 'BEGIN { print m / 1024 }')" "$ratios"
done
if [ -s "$work/fifo.tsv" ]; then
    echo
    echo "pgcoro FIFO check (acquire grants that overtook an older waiting acquire, all rounds):"
    awk -F'\t' '{ o[$1] += $2; n[$1] += $3 } END { for (k in o) printf "  %-10s %d out of order / %d grants\n", k, o[k], n[k] }' \
        "$work/fifo.tsv" | sort
fi
[ -z "$skipped" ] || echo "skipped (not supported by this pgcoro build):$skipped"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
