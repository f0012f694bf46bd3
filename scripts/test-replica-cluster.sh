#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL 15 primary with streaming replicas on loopback, for
# pgcoro's replica and failover tests (tests/replica.cmake) and examples/08_read_replicas.cpp.
#
#   scripts/test-replica-cluster.sh start STATE_DIR [REPLICAS] [sync]
#       initdb + start the primary, pg_basebackup -R each replica (default 2) and start it;
#       writes STATE_DIR/env. `sync`: the primary commits synchronously to the first replica
#       (synchronous_standby_names), so no acknowledged write is lost when it is killed.
#   scripts/test-replica-cluster.sh stop STATE_DIR
#       pg_ctl stop -m immediate on every member this script started; deletes the data.
#   scripts/test-replica-cluster.sh ctl STATE_DIR MEMBER pg_ctl-args...
#       pg_ctl on one member (primary, replica1, replica2, ...), e.g. `ctl DIR primary stop
#       -m immediate`, `ctl DIR replica1 promote`, `ctl DIR replica1 start`.
#   scripts/test-replica-cluster.sh psql STATE_DIR MEMBER SQL
#       runs SQL on one member over its unix socket as the superuser.
#   scripts/test-replica-cluster.sh run STATE_DIR command args...
#       runs a command with DATABASE_URL (every member, target_session_attrs=read-write) and
#       DATABASE_REPLICA_URLS (one URL per replica) set for the topology.
#
# Conventions as scripts/test-cluster.sh: free ports on 127.0.0.1, a unix-socket directory
# inside the state's data directory, a superuser `pgcoro` (trust), a database `pgcoro_test`;
# when root, the servers run as `postgres`. The env file has PGCORO_REPLICA_PRIMARY_PORT,
# PGCORO_REPLICA_<N>_PORT, PGCORO_REPLICA_COUNT, PGCORO_REPLICA_BASE, PGCORO_TEST_PGBIN.
set -euo pipefail

cmd=${1:?usage: test-replica-cluster.sh start|stop|ctl|psql STATE_DIR ...}
state=${2:?usage: test-replica-cluster.sh start|stop|ctl|psql STATE_DIR ...}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

as_server_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

env_value() { sed -n "s/^$1=//p" "$state/env"; }

stop_all() {
    [ -f "$state/env" ] || return 0
    local base
    base=$(env_value PGCORO_REPLICA_BASE)
    if [ -n "$base" ] && [ -d "$base" ]; then
        # Only the servers this script started, identified by their own data directories.
        for d in "$base"/*/data; do
            [ -d "$d" ] || continue
            as_server_user "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
        done
        rm -rf "$base"
    fi
    rm -f "$state/env"
}

member_dir() {
    local base
    base=$(env_value PGCORO_REPLICA_BASE)
    [ -n "$base" ] && [ -d "$base/$1/data" ] || {
        echo "no member $1 in $state" >&2
        exit 2
    }
    echo "$base/$1"
}

case "$cmd" in
stop)
    stop_all
    exit 0
    ;;
ctl)
    member=${3:?usage: ctl STATE_DIR MEMBER pg_ctl-args...}
    shift 3
    dir=$(member_dir "$member")
    exec_args=("$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 "$@")
    as_server_user "${exec_args[@]}" >/dev/null
    exit $?
    ;;
psql)
    member=${3:?usage: psql STATE_DIR MEMBER SQL}
    dir=$(member_dir "$member")
    port=$(sed -n "s/^port = '\?\([0-9]*\)'\?$/\1/p" "$dir/data/postgresql.auto.conf" | tail -n1)
    as_server_user "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$port" \
        -U postgres -d pgcoro_test -c "${4:?SQL}"
    exit $?
    ;;
run)
    shift 2
    [ -f "$state/env" ] || {
        echo "no replica topology in $state" >&2
        exit 1
    }
    pport=$(env_value PGCORO_REPLICA_PRIMARY_PORT)
    hosts="127.0.0.1:$pport"
    replica_urls=""
    for i in $(seq 1 "$(env_value PGCORO_REPLICA_COUNT)"); do
        rport=$(env_value "PGCORO_REPLICA_${i}_PORT")
        hosts="$hosts,127.0.0.1:$rport"
        replica_urls="$replica_urls${replica_urls:+,}postgres://pgcoro@127.0.0.1:$rport/pgcoro_test?sslmode=disable"
    done
    export DATABASE_URL="postgres://pgcoro@$hosts/pgcoro_test?sslmode=disable&target_session_attrs=read-write"
    export DATABASE_REPLICA_URLS="$replica_urls"
    exec "$@"
    ;;
start) ;;
*)
    echo "unknown command: $cmd" >&2
    exit 2
    ;;
esac

replicas=${3:-2}
sync=${4:-}
stop_all # a topology left behind by a crashed run
mkdir -p "$state"

[ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/pg_basebackup" ] || {
    echo "PostgreSQL 15 server not found in $PGBIN (run scripts/setup.sh)" >&2
    exit 1
}

base=$(mktemp -d /tmp/pgcoro-replicas.XXXXXX)
chmod 755 "$base"
mkdir -p "$base/primary/sock"
if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$base"; fi
# The env file exists from here on, so `stop` cleans up whatever a failed start left.
printf 'PGCORO_REPLICA_BASE=%s\n' "$base" >"$state/env"

fail() {
    echo "$1" >&2
    for f in "$base"/*/server.log "$base"/*.log; do [ -f "$f" ] && tail -n 20 "$f" >&2; done
    stop_all
    exit 1
}

as_server_user "$PGBIN/initdb" -D "$base/primary/data" -U postgres -A trust -E UTF8 \
    --locale=C.UTF-8 --no-sync --no-instructions >"$base/initdb.log" 2>&1 || fail "initdb failed"

cat >"$base/primary/data/pg_hba.conf" <<EOF
local all         all trust
local replication all trust
host  all         all 127.0.0.1/32 trust
host  replication all 127.0.0.1/32 trust
EOF

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p
    for _ in $(seq 1 20); do
        p=$((20000 + RANDOM % 40000))
        port_in_use "$p" || {
            echo "$p"
            return 0
        }
    done
    return 1
}

# Settings every member shares; the primary's file is copied to the replicas by pg_basebackup
# and each replica's own port and socket directory are appended (later lines win).
server_conf() { # port sockdir
    cat <<EOF
port = $1
listen_addresses = '127.0.0.1'
unix_socket_directories = '$2'
max_connections = 120
shared_buffers = 32MB
fsync = off
full_page_writes = off
log_min_messages = warning
log_connections = off
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 256MB
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 200ms
EOF
}

started=0
for _ in 1 2 3 4 5; do
    pport=$(free_port) || break
    {
        server_conf "$pport" "$base/primary/sock"
        echo "synchronous_commit = off"
    } >"$base/primary/data/postgresql.auto.conf"
    if as_server_user "$PGBIN/pg_ctl" -D "$base/primary/data" -l "$base/primary/server.log" \
        -w -t 20 start >/dev/null; then
        started=1
        break
    fi
done
[ "$started" = 1 ] || fail "could not start the primary"

as_server_user "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$base/primary/sock" -p "$pport" \
    -U postgres -d postgres <<EOF || fail "could not create the roles"
CREATE ROLE pgcoro SUPERUSER LOGIN;
CREATE DATABASE pgcoro_test OWNER pgcoro;
EOF

{
    printf 'PGCORO_REPLICA_PRIMARY_PORT=%s\n' "$pport"
    printf 'PGCORO_REPLICA_COUNT=%s\n' "$replicas"
    printf 'PGCORO_TEST_PGBIN=%s\n' "$PGBIN"
    printf 'PGCORO_TEST_HOST=127.0.0.1\nPGCORO_TEST_DBNAME=pgcoro_test\nPGCORO_TEST_USER=pgcoro\n'
} >>"$state/env"

for i in $(seq 1 "$replicas"); do
    name=replica$i
    dir=$base/$name
    mkdir -p "$dir/sock"
    if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$dir"; fi
    as_server_user "$PGBIN/pg_basebackup" -h "$base/primary/sock" -p "$pport" -U postgres \
        -D "$dir/data" -R -X stream --no-sync --checkpoint=fast >"$dir/basebackup.log" 2>&1 ||
        fail "pg_basebackup for $name failed"
    ok=0
    cp "$dir/data/postgresql.auto.conf" "$base/$name.auto.conf"
    for _ in 1 2 3 4 5; do
        rport=$(free_port) || break
        cp "$base/$name.auto.conf" "$dir/data/postgresql.auto.conf"
        {
            server_conf "$rport" "$dir/sock"
            # A promoted replica must not wait for standbys it does not have.
            echo "synchronous_commit = off"
            echo "synchronous_standby_names = ''"
            echo "cluster_name = '$name'"
            # pg_basebackup -R wrote primary_conninfo; name the walreceiver for sync commit.
            echo "primary_conninfo = 'host=127.0.0.1 port=$pport user=postgres application_name=$name'"
        } >>"$dir/data/postgresql.auto.conf"
        if as_server_user "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 20 \
            start >/dev/null; then
            ok=1
            break
        fi
    done
    [ "$ok" = 1 ] || fail "could not start $name"
    printf 'PGCORO_REPLICA_%s_PORT=%s\n' "$i" "$rport" >>"$state/env"
done

# Ready when every replica streams from the primary.
for _ in $(seq 1 100); do
    n=$(as_server_user "$PGBIN/psql" -X -At -h "$base/primary/sock" -p "$pport" -U postgres \
        -d postgres -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
    [ "$n" = "$replicas" ] && break
    sleep 0.1
done
[ "$n" = "$replicas" ] || fail "replicas did not start streaming"
if [ "$sync" = sync ]; then
    # Only now: with it set before the replicas stream, the setup's own commits would wait.
    as_server_user "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$base/primary/sock" -p "$pport" \
        -U postgres -d postgres >/dev/null <<EOF || fail "could not turn synchronous commit on"
ALTER SYSTEM SET synchronous_commit = on;
ALTER SYSTEM SET synchronous_standby_names = 'replica1';
SELECT pg_reload_conf();
EOF
fi
echo "replica topology: primary 127.0.0.1:$pport, $replicas replica(s), data $base"
