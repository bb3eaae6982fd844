#!/usr/bin/env bash
# The whole test suite, as the README's quick start and CI run it: installs what the tests
# need (PostgreSQL, Chromium, Python's toxiproxy client, the Chaos Toolkit reference runner, the kmock Kubernetes API emulator and moto's AWS API emulator, from
# Debian's packages and PyPI, when missing), starts a private PostgreSQL server on 127.0.0.1, runs every test including the
# ones a plain `cargo test` ignores for want of those services, and fails if any test was
# ignored all the same. Extra arguments go to `cargo test` (before its `--`).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v gcc >/dev/null || need+=(build-essential)
command -v python3 >/dev/null || need+=(python3 python3-pip)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# The dashboard's pages are checked in headless Chromium.
command -v chromium >/dev/null || need+=(chromium)
# The systemd unit in deploy/ is checked with systemd-analyze.
command -v systemd-analyze >/dev/null || need+=(systemd)
# The Docker tests build their images FROM scratch around a statically linked busybox.
if ! [ -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
    need+=(busybox-static)
fi
if ((${#need[@]})); then
    echo "== installing ${need[*]} (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

if ! python3 -c "import toxiproxy, pytest, requests, kmock, moto.server, boto3, flask, prometheus_client" 2>/dev/null; then
    echo "== installing the Python packages (the real Toxiproxy client for its conformance suite; kmock, the Kubernetes API emulator; moto, the AWS API emulator; prometheus-client, whose parser reads /metrics)"
    python3 -m pip install --quiet --disable-pip-version-check toxiproxy-python pytest requests future kmock 'moto[server]' prometheus-client
fi

# The reference experiment runner, for the differential tests of `simian run` (pinned: the
# journals are compared field by field).
if ! python3 -c "import chaostoolkit, chaoslib, jsonpath2; from importlib.metadata import version as v; assert v('chaostoolkit') == '1.19.0' and v('chaostoolkit-lib') == '1.44.0'" 2>/dev/null; then
    echo "== installing the reference experiment runner (chaostoolkit 1.19.0, chaostoolkit-lib 1.44.0, jsonpath2)"
    python3 -m pip install --quiet --disable-pip-version-check chaostoolkit==1.19.0 chaostoolkit-lib==1.44.0 jsonpath2
fi

echo "== Docker engine"
if ! docker info --format '{{.ServerVersion}}' 2>/dev/null; then
    echo "error: no Docker engine answers (docker info failed): start it (systemctl start docker) and run again" >&2
    exit 1
fi

echo "== PostgreSQL (a private server on 127.0.0.1)"
SIMIAN_PG_DATA="$(mktemp -d /tmp/simian-test-pg.XXXXXX)"
export SIMIAN_PG_DATA
trap 'scripts/start-postgres.sh stop; rm -rf "$SIMIAN_PG_DATA"' EXIT
SIMIAN_TEST_POSTGRES_URL="$(scripts/start-postgres.sh)"
export SIMIAN_TEST_POSTGRES_URL
echo "$SIMIAN_TEST_POSTGRES_URL"

# The suite runs on a statically linked build (glibc's crt-static; an explicit --target keeps
# the flag off build scripts and proc macros): the very binary the container image is built
# around, which crates/cli/tests/container.rs builds into the Dockerfile's image.
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"
host="$(rustc -vV | sed -n 's/^host: //p')"

echo "== cargo test --workspace --locked --target $host $* -- --include-ignored"
log="$(mktemp /tmp/simian-test-log.XXXXXX)"
status=0
cargo test --workspace --locked --target "$host" "$@" -- --include-ignored 2>&1 | tee "$log" || status=$?
if ((status != 0)); then
    rm -f "$log"
    exit "$status"
fi
# Nothing may be skipped here: every service a test needs was started above.
ignored="$(grep -E '^test result:' "$log" | grep -Ev ' 0 ignored;' || true)"
rm -f "$log"
if [ -n "$ignored" ]; then
    echo "error: some tests were ignored, though this script provides what they need:" >&2
    echo "$ignored" >&2
    exit 1
fi
echo "== every test ran; none was ignored"
