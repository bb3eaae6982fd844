#!/usr/bin/env bash
# What a dependency costs to build: a clean `cargo build --release -p simian` (the binary the
# README's quick start builds) at HEAD and at BASE, each in a fresh clone with its own target
# directory, one after the other, with the crates already downloaded (so only compilation is
# timed). Prints both wall times, their difference, and each build's peak memory.
#
#   benches/build-cost.sh [BASE]   # BASE defaults to c843f21, the commit before the aws provider
set -euo pipefail
cd "$(dirname "$0")/.."
base="${1:-c843f21}"
work="$(mktemp -d /tmp/simian-build-cost.XXXXXX)"
trap 'rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo); $(cargo --version)"
for rev in "$base" HEAD; do
    dir="$work/$rev"
    git clone -q . "$dir"
    git -C "$dir" checkout -q "$(git rev-parse "$rev")"
    (cd "$dir" && cargo fetch --locked -q)
    start=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$work/$rev.mem" \
        bash -c "cd '$dir' && cargo build --release --locked -q -p simian"
    end=$(date +%s.%N)
    secs=$(echo "$end - $start" | bc)
    echo "$rev $(git rev-parse --short "$rev"): clean release build ${secs%.*} s, peak memory of one process $(( $(cat "$work/$rev.mem") / 1024 )) MB"
    echo "$secs" > "$work/$rev.secs"
    rm -rf "$dir/target"
done
echo "added by the change: $(echo "$(cat "$work/HEAD.secs") - $(cat "$work/$base.secs")" | bc | cut -d. -f1) s"
