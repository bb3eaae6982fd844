#!/usr/bin/env bash
# Starts a private PostgreSQL server for the tests, on 127.0.0.1 only, in a fresh data
# directory, and prints the URL to use as SIMIAN_TEST_POSTGRES_URL. Installs the server from
# Debian's packages when it is missing.
#
#   scripts/start-postgres.sh          start; prints the URL on stdout
#   scripts/start-postgres.sh stop     stop the server started with the same SIMIAN_PG_DATA
#
# SIMIAN_PG_DATA names the data directory (default /tmp/simian-test-pg). SIMIAN_PG_PORT
# pins the port; by default the kernel picks a free one, so a server left running by
# someone else on a fixed port can never make this fail. When the server does not come up,
# its log is printed, and it is tried again with settings for machines with little shared
# memory before giving up.
set -euo pipefail

DATA="${SIMIAN_PG_DATA:-/tmp/simian-test-pg}"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"

as_postgres() { runuser -u postgres -- "$@"; }

if [ "${1:-}" = "stop" ]; then
    if [ -n "$BIN" ] && [ -f "$DATA/postmaster.pid" ]; then
        as_postgres "$BIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1 || true
    fi
    exit 0
fi

if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
    echo "installing PostgreSQL from Debian's packages" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The server refuses to run as root: it runs as the postgres user the package creates.
id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql postgres
if [ -f "$DATA/postmaster.pid" ]; then
    as_postgres "$BIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1 || true
fi
rm -rf "$DATA"
mkdir -p "$DATA"
chown postgres "$DATA"
chmod 700 "$DATA"
as_postgres "$BIN/initdb" -D "$DATA" -U simian --auth=trust >/dev/null

base="-c listen_addresses=127.0.0.1 -c unix_socket_directories=$DATA -c max_connections=200 -c fsync=off"
# The second try is for containers with a small /dev/shm or no SysV shared memory.
lean="-c shared_buffers=16MB -c dynamic_shared_memory_type=mmap -c huge_pages=off"
for extra in "" "$lean" "$lean"; do
    port="${SIMIAN_PG_PORT:-$(free_port)}"
    rm -f "$DATA/server.log"
    if as_postgres "$BIN/pg_ctl" -D "$DATA" -w -t 60 -l "$DATA/server.log" \
        -o "$base -c port=$port $extra" start >/dev/null 2>&1; then
        echo "postgres://simian@127.0.0.1:$port/postgres"
        exit 0
    fi
    echo "PostgreSQL did not start on 127.0.0.1:$port${extra:+ (with $extra)}; its log:" >&2
    sed 's/^/    /' "$DATA/server.log" >&2 || true
    as_postgres "$BIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1 || true
done
echo "error: could not start a private PostgreSQL server (see the logs above)" >&2
exit 1
