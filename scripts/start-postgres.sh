#!/usr/bin/env bash
# Starts a private PostgreSQL server for the tests, on 127.0.0.1 only, in a fresh data
# directory, and prints the URL to use as SIMIAN_TEST_POSTGRES_URL. Installs the server from
# Debian's packages when it is missing. Stop it with: scripts/start-postgres.sh stop
set -euo pipefail

PORT="${SIMIAN_PG_PORT:-55432}"
DATA="${SIMIAN_PG_DATA:-/tmp/simian-test-pg}"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"

if [ "${1:-}" = "stop" ]; then
    [ -n "$BIN" ] && [ -d "$DATA" ] && runuser -u postgres -- "$BIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1 || true
    exit 0
fi

if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
    echo "installing PostgreSQL from Debian's packages" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
fi

# The server refuses to run as root: it runs as the postgres user the package creates.
id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql postgres
if [ -f "$DATA/postmaster.pid" ]; then
    runuser -u postgres -- "$BIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1 || true
fi
rm -rf "$DATA"
mkdir -p "$DATA"
chown postgres "$DATA"
runuser -u postgres -- "$BIN/initdb" -D "$DATA" -U simian --auth=trust >/dev/null
runuser -u postgres -- "$BIN/pg_ctl" -D "$DATA" -w -l "$DATA/server.log" \
    -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DATA -c max_connections=200 -c fsync=off" \
    start >/dev/null
echo "postgres://simian@127.0.0.1:$PORT/postgres"
