#!/usr/bin/env bash
# Benchmark: `simian schedule` for one day over a static inventory of INSTANCES instances in
# INSTANCES/10 groups (100 apps), each instance carrying LABELS labels (with UNIQUE=1, one of
# them unique to each instance: see benches/gen-inventory.py). Prints wall time and peak
# memory of RUNS runs, then their median and range.
#
# Usage: benches/schedule.sh [RUNS] [INSTANCES] [LABELS] [UNIQUE]
#   defaults: 3 runs, 1,000,000 instances, no labels, shared label sets
#   SIMIAN_BIN=path   time another build of simian (for example an older commit's)
#   SIMIAN_BENCH_DIR  where the inventories are generated (default /tmp), once per shape
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
instances="${2:-1000000}"
labels="${3:-0}"
unique="${4:-0}"
dir="${SIMIAN_BENCH_DIR:-/tmp}/simian-bench-$instances-${labels}l$([ "$unique" = 1 ] && echo -unique)"
if [ -z "${SIMIAN_BIN:-}" ]; then
    cargo build --release -p simian --quiet
    bin="$PWD/target/release/simian"
else
    bin="$SIMIAN_BIN"
fi
if [ ! -f "$dir/inventory.json" ]; then
    python3 benches/gen-inventory.py "$dir" "$instances" "$((instances / 10))" 100 "$labels" "$unique"
fi
cd "$dir"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "binary: $bin"
echo "inventory: $(du -h inventory.json | cut -f1), $instances instances, $labels label(s) each$([ "$unique" = 1 ] && echo ', one unique per instance')"
times=()
mems=()
for i in $(seq "$runs"); do
    out="$(/usr/bin/time -f "%e %M" "$bin" schedule --date 2026-03-04 --seed 1 --json 2>&1 >schedule.json | tail -n 1)"
    read -r t m <<<"$out"
    echo "run $i: $t s wall, $((m / 1024)) MB peak RSS"
    times+=("$t")
    mems+=("$m")
done
echo "planned kills: $(grep -c '"time"' schedule.json)"
python3 - "${times[@]}" -- "${mems[@]}" <<'EOF'
import statistics, sys
args = sys.argv[1:]
cut = args.index("--")
t = [float(x) for x in args[:cut]]
m = [int(x) / 1024 for x in args[cut + 1:]]
print(f"median {statistics.median(t):.2f} s (range {min(t):.2f}-{max(t):.2f}), "
      f"median {statistics.median(m):.0f} MB peak (range {min(m):.0f}-{max(m):.0f})")
EOF
