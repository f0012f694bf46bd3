#!/usr/bin/env bash
# Checks that no object file of the separate-compilation consumer defines pgcoro's
# implementation (the engine, the pool's core, connection's out-of-line members), and, as a
# control of the pattern, that the installed libpgcoro.a does.
#   check_symbols.sh CONSUMER_BUILD_DIR PREFIX
set -euo pipefail
consumer=${1:?usage: check_symbols.sh CONSUMER_BUILD_DIR PREFIX}
prefix=${2:?usage: check_symbols.sh CONSUMER_BUILD_DIR PREFIX}
heavy='pgcoro::detail::(pq_engine|pq_session|pq_connector|pq_io|pool_core|pool_upkeep|pool_machine)::'
heavy+='|pgcoro::connection::(connection|~connection|connect|prepare|copy_in|copy_out|query_list|stream_list|execute_list|send_direct)\('
heavy+='|pgcoro::detail::(pool_acquire|pool_open|start_stream|start_copy|next_result|flush_direct|begin_direct)\('
defined() { nm -C --defined-only "$1" | grep -E ' [TtWw] ' | grep -E "$heavy" || true; }

mapfile -t objs < <(find "$consumer/CMakeFiles/app.dir" -name '*.o' | sort)
[ "${#objs[@]}" -ge 3 ] || { echo "expected 3 consumer objects, found ${#objs[@]}" >&2; exit 1; }
bad=0
for o in "${objs[@]}"; do
    found=$(defined "$o")
    if [ -n "$found" ]; then
        echo "FAIL: $o defines pgcoro's implementation:" >&2
        echo "$found" | head -20 >&2
        bad=1
    else
        echo "ok: $(basename "$o") defines none of pgcoro's implementation"
    fi
done
lib=$(find "$prefix" -name libpgcoro.a | head -n 1)
[ -n "$lib" ] || { echo "no libpgcoro.a under $prefix" >&2; exit 1; }
n=$(defined "$lib" | wc -l)
if [ "$n" -eq 0 ]; then
    echo "FAIL (control): $lib defines none of the checked symbols: the pattern is stale" >&2
    bad=1
else
    echo "ok: $(basename "$lib") defines $n of them"
fi
exit $bad
