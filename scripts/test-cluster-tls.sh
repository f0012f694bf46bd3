#!/usr/bin/env bash
# Starts or stops a second throwaway PostgreSQL 15 cluster that speaks TLS, for the TLS tests.
#
#   scripts/test-cluster-tls.sh start STATE_DIR   # test-cluster.sh start + certificates + ssl=on
#   scripts/test-cluster-tls.sh stop  STATE_DIR   # test-cluster.sh stop (removes everything)
#
# The cluster is the one scripts/test-cluster.sh makes (always a fresh one here, never an
# external PGCORO_TEST_DSN server), with certificates made by `openssl` at start time in
# <cluster>/tls:
#   ca.crt            the CA the tests trust
#   server.crt/.key   CN=localhost, SAN DNS:localhost + IP:127.0.0.1, signed by ca.crt (served)
#   expired.crt       the same name and key, signed by ca.crt, already expired
#   unknown.crt       the same name and key, signed by unknown-ca.crt, a CA nobody trusts
# The server listens on 127.0.0.1 and, when the machine has it, ::1 (a name the certificate
# does not carry). STATE_DIR/env gets the PGCORO_TEST_* lines of test-cluster.sh plus
# PGCORO_TLS_* lines. Without openssl no PGCORO_TLS_* lines are written and the TLS tests skip.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?usage: test-cluster-tls.sh start|stop STATE_DIR}
state=${2:?usage: test-cluster-tls.sh start|stop STATE_DIR}

case "$cmd" in
stop)
    bash "$here/test-cluster.sh" stop "$state"
    exit 0
    ;;
start) ;;
*)
    echo "unknown command: $cmd" >&2
    exit 2
    ;;
esac

env -u PGCORO_TEST_DSN bash "$here/test-cluster.sh" start "$state"
if ! command -v openssl >/dev/null; then
    echo "openssl not found: the TLS tests will be skipped"
    exit 0
fi

env_value() { sed -n "s/^$1=//p" "$state/env" | head -n 1; }
base=$(env_value PGCORO_TEST_PGDATA)
port=$(env_value PGCORO_TEST_PORT)
pgbin=$(env_value PGCORO_TEST_PGBIN)
[ -n "$base" ] && [ -d "$base/data" ] || {
    echo "test-cluster.sh did not leave a cluster in $state" >&2
    exit 1
}

as_server_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

tls=$base/tls
mkdir -p "$tls"
(
    cd "$tls"
    # P-256 keys: made in milliseconds, unlike RSA.
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    ca() { # name key subject
        openssl req -x509 -new -key "$2" -out "$1" -days 3 -subj "$3" \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    }
    sign() { # out ca-cert ca-key days
        openssl x509 -req -in server.csr -CA "$2" -CAkey "$3" -CAcreateserial -out "$1" \
            -days "$4" -extfile server.ext 2>/dev/null
    }
    key ca.key
    ca ca.crt ca.key "/CN=pgcoro test CA"
    key unknown-ca.key
    ca unknown-ca.crt unknown-ca.key "/CN=pgcoro unknown CA"
    key server.key
    openssl req -new -key server.key -out server.csr -subj "/CN=localhost"
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "keyUsage=digitalSignature" \
        "extendedKeyUsage=serverAuth" >server.ext
    sign server.crt ca.crt ca.key 3
    sign expired.crt ca.crt ca.key -1 # notAfter a day before now
    sign unknown.crt unknown-ca.crt unknown-ca.key 3
    openssl verify -CAfile ca.crt server.crt >/dev/null
    if openssl verify -CAfile ca.crt expired.crt >/dev/null 2>&1; then
        echo "expired.crt verifies: could not make an expired certificate" >&2
        exit 1
    fi
    rm -f ca.key unknown-ca.key server.csr ./*.srl
    chmod 600 server.key
    chmod 644 ./*.crt
)
if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$tls"; fi

# Does this machine have IPv6 loopback? Then also listen on ::1, a name the certificate lacks.
ipv6=0
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    ipv6=1
fi
listen="127.0.0.1"
[ "$ipv6" = 1 ] && listen="127.0.0.1,::1"
# TLS goes into postgresql.conf, so that a test's ALTER SYSTEM SET ssl_cert_file (in
# postgresql.auto.conf) can be undone with ALTER SYSTEM RESET.
cat >>"$base/data/postgresql.conf" <<EOF
ssl = on
ssl_cert_file = '$tls/server.crt'
ssl_key_file = '$tls/server.key'
ssl_min_protocol_version = 'TLSv1.2'
EOF
sed -i "s/^listen_addresses = .*/listen_addresses = '$listen'/" "$base/data/postgresql.auto.conf"
if ! as_server_user "$pgbin/pg_ctl" -D "$base/data" -l "$base/server.log" -w -t 20 -m fast \
    restart >/dev/null; then
    echo "could not restart the TLS test cluster; server log:" >&2
    tail -n 20 "$base/server.log" >&2 || true
    exit 1
fi

cat >>"$state/env" <<EOF
PGCORO_TLS_DIR=$tls
PGCORO_TLS_CA=$tls/ca.crt
PGCORO_TLS_UNKNOWN_CA=$tls/unknown-ca.crt
PGCORO_TLS_SERVER_CERT=$tls/server.crt
PGCORO_TLS_EXPIRED_CERT=$tls/expired.crt
PGCORO_TLS_UNKNOWN_CA_CERT=$tls/unknown.crt
PGCORO_TLS_IPV6=$ipv6
EOF
echo "TLS test cluster: 127.0.0.1:$port (also ::1: $ipv6), certificates in $tls"
