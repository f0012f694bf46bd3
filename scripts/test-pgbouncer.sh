#!/usr/bin/env bash
# Starts or stops a throwaway pgbouncer (transaction pooling) in front of the test cluster.
#
#   scripts/test-pgbouncer.sh start STATE_DIR CLUSTER_STATE_DIR   # writes STATE_DIR/env
#   scripts/test-pgbouncer.sh stop  STATE_DIR                     # stops only our own pgbouncer
#
# pgbouncer listens on a free port on 127.0.0.1 with pool_mode = transaction and at most
# PGCORO_PGBOUNCER_POOL_SIZE (default 5) server connections to the cluster's test database.
# Startup parameters other than pgbouncer's own are NOT ignored (ignore_startup_parameters
# lists only extra_float_digits), so a startup `options` is rejected, as in a default setup.
# auth_type = trust with an auth_file naming the test user; the admin console (database
# `pgbouncer`) accepts that user. pgbouncer refuses to run as root, so when root it runs as
# `postgres`. Without pgbouncer, or when the cluster is an external PGCORO_TEST_DSN server,
# no env file is written and the pgbouncer tests skip themselves.
set -euo pipefail

cmd=${1:?usage: test-pgbouncer.sh start|stop STATE_DIR [CLUSTER_STATE_DIR]}
state=${2:?usage: test-pgbouncer.sh start|stop STATE_DIR [CLUSTER_STATE_DIR]}
PGBOUNCER=${PGBOUNCER:-/usr/sbin/pgbouncer}
POOL_SIZE=${PGCORO_PGBOUNCER_POOL_SIZE:-5}

as_server_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

env_value() { sed -n "s/^$1=//p" "$2" 2>/dev/null | head -n 1; }

stop_bouncer() {
    [ -f "$state/env" ] || return 0
    local base pid
    base=$(env_value PGCORO_PGBOUNCER_DIR "$state/env")
    if [ -n "$base" ] && [ -f "$base/pgbouncer.pid" ]; then
        pid=$(cat "$base/pgbouncer.pid" 2>/dev/null || true)
        # Only the pgbouncer this script started: its pid file, and its own config on the
        # command line of that pid.
        if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
            grep -qF "$base/pgbouncer.ini"; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    if [ -n "$base" ] && [ -d "$base" ]; then rm -rf "$base"; fi
    rm -f "$state/env"
}

case "$cmd" in
stop)
    stop_bouncer
    exit 0
    ;;
start) ;;
*)
    echo "unknown command: $cmd" >&2
    exit 2
    ;;
esac

cluster=${3:?usage: test-pgbouncer.sh start STATE_DIR CLUSTER_STATE_DIR}
stop_bouncer # one left behind by a crashed run
mkdir -p "$state"

if [ ! -x "$PGBOUNCER" ]; then
    echo "pgbouncer not found at $PGBOUNCER: pgbouncer tests will be skipped"
    exit 0
fi
pg_port=$(env_value PGCORO_TEST_PORT "$cluster/env")
if [ -z "$pg_port" ]; then
    echo "no throwaway cluster in $cluster (external PGCORO_TEST_DSN?): pgbouncer tests will be skipped"
    exit 0
fi
pg_host=$(env_value PGCORO_TEST_HOST "$cluster/env")
dbname=$(env_value PGCORO_TEST_DBNAME "$cluster/env")
user=$(env_value PGCORO_TEST_USER "$cluster/env")

base=$(mktemp -d /tmp/pgcoro-pgbouncer.XXXXXX)
chmod 755 "$base"
printf '"%s" ""\n' "$user" >"$base/userlist.txt"

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

started=0
for _ in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" && continue
    cat >"$base/pgbouncer.ini" <<EOF
[databases]
$dbname = host=$pg_host port=$pg_port dbname=$dbname

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $base/userlist.txt
admin_users = $user
pool_mode = transaction
default_pool_size = $POOL_SIZE
max_db_connections = $POOL_SIZE
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
ignore_startup_parameters = extra_float_digits
server_login_retry = 1
query_wait_timeout = 60
logfile = $base/pgbouncer.log
pidfile = $base/pgbouncer.pid
log_connections = 0
log_disconnections = 0
EOF
    if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$base"; fi
    if as_server_user "$PGBOUNCER" -d "$base/pgbouncer.ini" >>"$base/start.log" 2>&1; then
        # -d returns once the daemon forked; wait (bounded) until it accepts connections.
        for _ in $(seq 1 50); do
            if port_in_use "$port"; then
                started=1
                break
            fi
            sleep 0.1
        done
    fi
    [ "$started" = 1 ] && break
    # Not ours to keep: stop what this attempt started before trying another port.
    if [ -f "$base/pgbouncer.pid" ]; then
        pid=$(cat "$base/pgbouncer.pid")
        kill -TERM "$pid" 2>/dev/null || true
        rm -f "$base/pgbouncer.pid"
    fi
done
if [ "$started" != 1 ]; then
    echo "could not start pgbouncer; its log:" >&2
    cat "$base/start.log" "$base/pgbouncer.log" >&2 2>/dev/null || true
    rm -rf "$base"
    exit 1
fi

cat >"$state/env" <<EOF
PGCORO_PGBOUNCER_HOST=127.0.0.1
PGCORO_PGBOUNCER_PORT=$port
PGCORO_PGBOUNCER_DBNAME=$dbname
PGCORO_PGBOUNCER_USER=$user
PGCORO_PGBOUNCER_POOL_SIZE=$POOL_SIZE
PGCORO_PGBOUNCER_DIR=$base
EOF
echo "pgbouncer (transaction mode, $POOL_SIZE server connections): 127.0.0.1:$port -> $pg_host:$pg_port/$dbname"
