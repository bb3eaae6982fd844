#!/usr/bin/env bash
# Benchmark: `simian schedule` for one day over a static inventory of 1,000,000 instances in
# 100,000 groups (100 apps). Prints wall time and peak memory of RUNS runs (default 5).
# Usage: benches/schedule.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
dir="${SIMIAN_BENCH_DIR:-/tmp/simian-bench-1m}"
cargo build --release -p simian --quiet
if [ ! -f "$dir/inventory.json" ]; then
    python3 benches/gen-inventory.py "$dir" 1000000 100000 100
fi
bin="$PWD/target/release/simian"
cd "$dir"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "inventory: $(du -h inventory.json | cut -f1), $(grep -c '"id"' inventory.json) instances"
for i in $(seq "$runs"); do
    /usr/bin/time -f "run $i: %e s wall, %M KB peak RSS" "$bin" schedule --date 2026-03-04 --seed 1 --json > schedule.json
done
echo "planned kills: $(grep -c '"time"' schedule.json)"
