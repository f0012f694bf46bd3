#!/usr/bin/env bash
# Starts or stops the throwaway PostgreSQL 15 cluster that pgcoro's tests and examples use.
#
#   scripts/test-cluster.sh start STATE_DIR   # initdb + pg_ctl start; writes STATE_DIR/env
#   scripts/test-cluster.sh stop  STATE_DIR   # pg_ctl stop -m immediate; deletes the cluster
#
# The cluster listens on a free port on 127.0.0.1 and on a private unix-socket directory, and
# has: a superuser `pgcoro` (trust auth), a role `pgcoro_pw` that must give a password
# (scram-sha-256), and a database `pgcoro_test`. When root, the server runs as `postgres`.
# With PGCORO_TEST_DSN set, nothing is started: the env file points the tests at that server
# (tests that need to stop/restart the server skip themselves).
set -euo pipefail

cmd=${1:?usage: test-cluster.sh start|stop STATE_DIR}
state=${2:?usage: test-cluster.sh start|stop STATE_DIR}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
TEST_PASSWORD=${PGCORO_TEST_PASSWORD:-pgcoro-test-secret-9f3}

as_server_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop_cluster() {
    [ -f "$state/env" ] || return 0
    local data
    data=$(sed -n 's/^PGCORO_TEST_PGDATA=//p' "$state/env")
    if [ -n "$data" ] && [ -d "$data" ]; then
        # Only the cluster this script started, identified by its own data directory.
        as_server_user "$PGBIN/pg_ctl" -D "$data/data" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$data"
    fi
    rm -f "$state/env"
}

case "$cmd" in
stop)
    stop_cluster
    exit 0
    ;;
start) ;;
*)
    echo "unknown command: $cmd" >&2
    exit 2
    ;;
esac

stop_cluster # a cluster left behind by a crashed run
mkdir -p "$state"

if [ -n "${PGCORO_TEST_DSN:-}" ]; then
    printf 'PGCORO_TEST_DSN=%s\n' "$PGCORO_TEST_DSN" >"$state/env"
    echo "using the existing server from PGCORO_TEST_DSN"
    exit 0
fi

[ -x "$PGBIN/initdb" ] || {
    echo "PostgreSQL 15 server not found in $PGBIN (run scripts/setup.sh)" >&2
    exit 1
}

base=$(mktemp -d /tmp/pgcoro-cluster.XXXXXX)
chmod 755 "$base"
mkdir -p "$base/data" "$base/sock"
if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$base"; fi

as_server_user "$PGBIN/initdb" -D "$base/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
    --no-sync --no-instructions >"$base/initdb.log" 2>&1 || {
    cat "$base/initdb.log" >&2
    exit 1
}

cat >"$base/data/pg_hba.conf" <<EOF
local all all trust
host  all pgcoro_pw 127.0.0.1/32 scram-sha-256
host  all pgcoro_pw ::1/128      scram-sha-256
host  all all       127.0.0.1/32 trust
host  all all       ::1/128      trust
EOF

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

started=0
for _ in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" && continue
    cat >"$base/data/postgresql.auto.conf" <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$base/sock'
max_connections = 120
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
log_connections = off
password_encryption = 'scram-sha-256'
EOF
    if as_server_user "$PGBIN/pg_ctl" -D "$base/data" -l "$base/server.log" -w -t 20 start >/dev/null; then
        started=1
        break
    fi
done
if [ "$started" != 1 ]; then
    echo "could not start the test cluster; server log:" >&2
    cat "$base/server.log" >&2 || true
    rm -rf "$base"
    exit 1
fi

as_server_user "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$base/sock" -p "$port" -U postgres \
    -d postgres <<EOF
CREATE ROLE pgcoro SUPERUSER LOGIN;
CREATE ROLE pgcoro_pw LOGIN PASSWORD '$TEST_PASSWORD';
CREATE DATABASE pgcoro_test OWNER pgcoro;
GRANT ALL ON DATABASE pgcoro_test TO pgcoro_pw;
EOF

cat >"$state/env" <<EOF
PGCORO_TEST_HOST=127.0.0.1
PGCORO_TEST_PORT=$port
PGCORO_TEST_SOCKET_DIR=$base/sock
PGCORO_TEST_DBNAME=pgcoro_test
PGCORO_TEST_USER=pgcoro
PGCORO_TEST_PASSWORD_USER=pgcoro_pw
PGCORO_TEST_PASSWORD=$TEST_PASSWORD
PGCORO_TEST_PGDATA=$base
PGCORO_TEST_PGBIN=$PGBIN
EOF
echo "test cluster: 127.0.0.1:$port, socket dir $base/sock, data $base/data"
