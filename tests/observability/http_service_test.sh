#!/usr/bin/env bash
# Runs examples/04_http_service against the test cluster and checks it from outside with curl:
#   /health/database is 200 with a JSON report, /kv/1 reads a row, /metrics passes
#   `promtool check metrics`; stopping the database turns /health/database into 503, and
#   starting it again brings back 200.
#   tests/observability/http_service_test.sh STATE_DIR EXAMPLE_BINARY PROMTOOL
# Stops only the service it started (by pid); always leaves the cluster running.
set -euo pipefail
state=${1:?usage: http_service_test.sh STATE_DIR EXAMPLE_BINARY PROMTOOL}
bin=${2:?}
promtool=${3:?}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
svc_pid=
# shellcheck disable=SC1091
. "$state/env"
if [ -z "${PGCORO_TEST_PGDATA:-}" ]; then
    echo "the cluster is not ours (PGCORO_TEST_DSN): cannot stop it; skipping"
    exit 0
fi

pg_ctl() {
    local cmd=("$PGCORO_TEST_PGBIN/pg_ctl" -D "$PGCORO_TEST_PGDATA/data"
        -l "$PGCORO_TEST_PGDATA/server.log" -w -t 30 "$@")
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "${cmd[@]}"; else "${cmd[@]}"; fi
}
cleanup() {
    [ -n "$svc_pid" ] && kill "$svc_pid" 2>/dev/null && wait "$svc_pid" 2>/dev/null
    pg_ctl status >/dev/null 2>&1 || pg_ctl start >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    echo "--- service output" >&2
    cat "$work/out" "$work/err" >&2 || true
    exit 1
}

# status URL -> prints the HTTP status; the body goes to $work/body
get() {
    local code
    code=$(curl -s -o "$work/body" -w '%{http_code}' --max-time 10 "$1") || true
    echo "${code:-000}"
}
# Polls URL until it answers with STATUS, for at most SECONDS.
wait_for_status() {
    local url=$1 want=$2 seconds=$3 code=
    for _ in $(seq $((seconds * 10))); do
        code=$(get "$url")
        [ "$code" = "$want" ] && return 0
        sleep 0.1
    done
    fail "$url answered $code, expected $want within ${seconds}s"
}

PGCORO_ENV=development bash "$root/scripts/with-test-env.sh" "$state" "$bin" --seconds 120 \
    >"$work/out" 2>"$work/err" &
svc_pid=$!
for _ in $(seq 200); do
    grep -q '^listening on ' "$work/out" 2>/dev/null && break
    kill -0 "$svc_pid" 2>/dev/null || fail "the service exited early"
    sleep 0.1
done
base=$(sed -n 's/^listening on //p' "$work/out")
[ -n "$base" ] || fail "the service did not start listening within 20 s"
echo "service at $base"

code=$(get "$base/health/database")
[ "$code" = 200 ] || fail "/health/database answered $code"
python3 - "$work/body" <<'PY' || fail "bad health JSON: $(cat "$work/body")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] in ("healthy", "degraded"), r
c, m = r["connections"], r["metrics"]
assert c["max"] > 0 and 0 <= c["utilization"] <= 1 and c["current"] >= 1, c
assert 0 <= m["success_rate"] <= 1 and m["avg_response_time_ms"] >= 0 and "p99_ms" in m, m
assert r["checks"][0]["name"] == "ping" and r["checks"][0]["detail"].startswith("ok in"), r
assert r["circuit_breaker"] == "closed", r
PY
echo "health: $(cat "$work/body")"

code=$(get "$base/kv/7")
[ "$code" = 200 ] && [ "$(cat "$work/body")" = value-7 ] || fail "/kv/7 answered $code"
code=$(get "$base/kv/123456")
[ "$code" = 404 ] || fail "/kv/123456 answered $code, expected 404"
code=$(get "$base/kv/abc")
[ "$code" = 400 ] || fail "/kv/abc answered $code, expected 400"

code=$(get "$base/metrics")
[ "$code" = 200 ] || fail "/metrics answered $code"
"$promtool" check metrics <"$work/body" || fail "promtool rejected /metrics"
grep -q '^pgcoro_queries_total{outcome="success"} [1-9]' "$work/body" ||
    fail "/metrics counts no successful query"
grep -q '^pgcoro_pool_connections{state="idle"}' "$work/body" || fail "no pool gauge in /metrics"
echo "metrics: $(grep -c '^pgcoro_' "$work/body") samples, promtool ok"

echo "stopping the database"
pg_ctl stop -m fast >/dev/null
wait_for_status "$base/health/database" 503 15
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["status"]=="unhealthy", r' \
    "$work/body" || fail "503 without an unhealthy report: $(cat "$work/body")"
echo "down: $(cat "$work/body")"
code=$(get "$base/kv/7")
[ "$code" = 503 ] || fail "/kv/7 answered $code while the database is down, expected 503"

echo "starting the database"
pg_ctl start >/dev/null
wait_for_status "$base/health/database" 200 20
code=$(get "$base/kv/7")
[ "$code" = 200 ] || fail "/kv/7 answered $code after the restart"
echo "back: $(cat "$work/body")"

kill "$svc_pid"
wait "$svc_pid" || true
svc_pid=
grep -q '^stopped; ' "$work/out" || fail "the service did not stop cleanly"
echo "PASS"
