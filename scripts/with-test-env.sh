#!/usr/bin/env bash
# Runs a command with the test cluster's address in the environment:
#   scripts/with-test-env.sh STATE_DIR command args...
# Exports DATABASE_URL and libpq's PGHOST/PGPORT/PGUSER/PGDATABASE for the cluster that
# scripts/test-cluster.sh started in STATE_DIR.
set -euo pipefail
state=${1:?usage: with-test-env.sh STATE_DIR command...}
shift
[ -f "$state/env" ] || { echo "no test cluster in $state" >&2; exit 1; }
set -a
# shellcheck disable=SC1091
. "$state/env"
set +a
if [ -n "${PGCORO_TEST_DSN:-}" ]; then
    export DATABASE_URL="$PGCORO_TEST_DSN"
else
    export PGHOST=$PGCORO_TEST_HOST PGPORT=$PGCORO_TEST_PORT PGUSER=$PGCORO_TEST_USER
    export PGDATABASE=$PGCORO_TEST_DBNAME
    export DATABASE_URL="postgresql://$PGCORO_TEST_USER@$PGCORO_TEST_HOST:$PGCORO_TEST_PORT/$PGCORO_TEST_DBNAME?sslmode=disable"
fi
exec "$@"
