#!/usr/bin/env bash
# Compile cost of pgcoro, header-only vs PGCORO_SEPARATE_COMPILATION (issue 22): CPU time
# (user+sys) and peak memory of g++ -O2 for
#   - a TU using the pool and one query (acquire, then query("SELECT $1::int", 1)),
#   - the TU that includes <pgcoro/src.hpp> (separate mode compiles it once per program),
#   - a 10-TU "service": 10 TUs each using the pool and a couple of queries (query, query_one);
#     the separate total includes the src TU.
# Prints a Markdown table. Usage: scripts/compile-time.sh [CXX]   (default g++)
set -euo pipefail
cd "$(dirname "$0")/.."
cxx=${1:-g++}
flags=(-std=c++20 -O2 -DNDEBUG -Iinclude -isystem /usr/include/postgresql -c)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/pool_one.cpp" <<'CPP'
#include <pgcoro/pool.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
namespace asio = boost::asio;
asio::awaitable<void> run(pgcoro::pool& p)
{
    auto l = co_await p.acquire();
    if (!l) co_return;
    auto r = co_await (*l)->query("SELECT $1::int", 1);
    (void)r;
}
int main()
{
    asio::io_context io;
    pgcoro::pool p(io.get_executor(), pgcoro::connect_config{});
    asio::co_spawn(io, run(p), asio::detached);
    io.run();
}
CPP
echo '#include <pgcoro/src.hpp>' > "$work/src.cpp"
for i in $(seq 0 9); do
    cat > "$work/svc_$i.cpp" <<CPP
#include <pgcoro/pool.hpp>
#include <string>
boost::asio::awaitable<int> handler_$i(pgcoro::pool& p, int id)
{
    auto l = co_await p.acquire();
    if (!l) co_return -1;
    auto r = co_await (*l)->query("UPDATE t$i SET n = n + 1 WHERE id = \$1 AND name <> \$2", id,
                                  std::string("x"));
    if (!r) co_return -1;
    auto n = co_await (*l)->query_one<int>("SELECT n FROM t$i WHERE id = \$1", id);
    co_return n ? *n : -1;
}
CPP
done

# measure FILE [extra flags...] -> "cpu_seconds peak_mb"
measure() {
    local f=$1
    shift
    local out
    out=$( { /usr/bin/time -f '%U %S %M' "$cxx" "${flags[@]}" "$@" "$f" -o "$work/out.o"; } 2>&1 |
        tail -n 1)
    awk '{ printf "%.1f %.0f\n", $1 + $2, $3 / 1024 }' <<< "$out"
}
sep=-DPGCORO_SEPARATE_COMPILATION

read -r ho_cpu ho_mb < <(measure "$work/pool_one.cpp")
read -r sc_cpu sc_mb < <(measure "$work/pool_one.cpp" $sep)
read -r src_cpu src_mb < <(measure "$work/src.cpp" $sep)
svc_ho=0
svc_sc=0
svc_ho_mb=0
svc_sc_mb=0
for i in $(seq 0 9); do
    read -r c m < <(measure "$work/svc_$i.cpp")
    svc_ho=$(awk -v a="$svc_ho" -v b="$c" 'BEGIN { print a + b }')
    svc_ho_mb=$(( m > svc_ho_mb ? m : svc_ho_mb ))
    read -r c m < <(measure "$work/svc_$i.cpp" $sep)
    svc_sc=$(awk -v a="$svc_sc" -v b="$c" 'BEGIN { print a + b }')
    svc_sc_mb=$(( m > svc_sc_mb ? m : svc_sc_mb ))
done
svc_sc_total=$(awk -v a="$svc_sc" -v b="$src_cpu" 'BEGIN { print a + b }')
svc_sc_mb_all=$(( src_mb > svc_sc_mb ? src_mb : svc_sc_mb ))
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", a / b }'; }

echo "$cxx $("$cxx" -dumpfullversion), flags: ${flags[*]}; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "| TU / build | header-only CPU s | header-only peak MB | separate CPU s | separate peak MB | CPU ratio |"
echo "|---|---:|---:|---:|---:|---:|"
echo "| pool + one query (1 TU) | $ho_cpu | $ho_mb | $sc_cpu | $sc_mb | $(ratio "$ho_cpu" "$sc_cpu") |"
echo "| \`<pgcoro/src.hpp>\` TU (once per program) | - | - | $src_cpu | $src_mb | - |"
echo "| 10-TU service, total (separate: + the src TU) | $svc_ho | $svc_ho_mb | $svc_sc_total | $svc_sc_mb_all | $(ratio "$svc_ho" "$svc_sc_total") |"
echo "| 10-TU service, per service TU (without the src TU) | $(awk -v a="$svc_ho" 'BEGIN { printf "%.1f", a / 10 }') | $svc_ho_mb | $(awk -v a="$svc_sc" 'BEGIN { printf "%.1f", a / 10 }') | $svc_sc_mb | $(ratio "$svc_ho" "$svc_sc") |"
