#!/usr/bin/env bash
# System calls per 64-byte round trip made by `simian proxy` (no toxic) and by the relays of
# benches/peers, counted with strace(1) while N round trips cross each one to a local echo
# server. The round-trip times printed are strace's, not the proxies' own: the benchmark of
# record is `cargo bench -p simian --bench proxy -- rtt`. This tells what each one asks the
# kernel for per message, which timing alone cannot separate from noise.
#
#   benches/syscalls.sh [N]      (default N = 5000; needs strace, python3 and curl)
#
# Everything listens on 127.0.0.1 ports the kernel picks, and every process it starts is its
# own and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}
for tool in strace python3 curl; do
    command -v "$tool" >/dev/null || { echo "syscalls.sh: needs $tool (apt-get install $tool)" >&2; exit 2; }
done

cargo build -q --release --locked -p simian
(cd benches/peers && cargo build -q --release --locked --target-dir ../../target/peers)

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cat > "$work/echo.py" <<'EOF'
import socket, sys, threading
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
def serve(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := c.recv(65536):
        c.sendall(data)
while True:
    threading.Thread(target=serve, args=(listener.accept()[0],), daemon=True).start()
EOF
cat > "$work/rtt.py" <<'EOF'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
c = socket.create_connection(("127.0.0.1", port))
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
began = time.monotonic()
for _ in range(n):
    c.sendall(b"x" * 64)
    got = 0
    while got < 64:
        got += len(c.recv(64 - got))
print(f"{(time.monotonic() - began) / n * 1e6:.0f}")
EOF

wait_port() {
    for _ in $(seq 100); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.1).close()" 2>/dev/null && return
        sleep 0.05
    done
    echo "syscalls.sh: nothing listens on $1" >&2
    exit 1
}

echo_port=$(free_port)
python3 "$work/echo.py" "$echo_port" & pids+=($!)
wait_port "$echo_port"

# name, port, pid of each contender
contenders=()
api=$(free_port)
listen=$(free_port)
target/release/simian proxy --host 127.0.0.1 --port "$api" >"$work/simian.log" 2>&1 & pids+=($!)
simian_pid=$!
wait_port "$api"
curl -sf -X POST "127.0.0.1:$api/proxies" \
    -d "{\"name\":\"echo\",\"listen\":\"127.0.0.1:$listen\",\"upstream\":\"127.0.0.1:$echo_port\"}" >/dev/null
contenders+=("simian-proxy $listen $simian_pid")
for relay in tokio-relay epoll-relay splice-relay; do
    port=$(free_port)
    "target/peers/release/$relay" "127.0.0.1:$port=127.0.0.1:$echo_port" >/dev/null & pids+=($!)
    contenders+=("$relay $port $!")
    wait_port "$port"
done

printf '%-14s %14s %14s %s\n' contender "calls/rtt" "rtt (traced)" "calls per round trip, by kind"
for c in "${contenders[@]}"; do
    read -r name port pid <<<"$c"
    strace -c -f -p "$pid" -o "$work/$name.strace" 2>/dev/null & tracer=$!
    sleep 1
    rtt=$(python3 "$work/rtt.py" "$port" "$n")
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
    # strace -c: "% time seconds usecs/call calls [errors] syscall"; the total line last.
    summary=$(awk -v n="$n" '
        $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { if ($4 / n >= 0.05) by = by sprintf("%s %.2f  ", $NF, $4 / n) }
        $NF == "total" { total = $4 }
        END { printf "%.2f|%s", total / n, by }' "$work/$name.strace")
    printf '%-14s %14s %11s µs %s\n' "$name" "${summary%%|*}" "$rtt" "${summary#*|}"
done
