#!/usr/bin/env bash
# Issue 19 matrix: builds the benchmark (its own target dir unless CARGO_TARGET_DIR is set), runs
# ROUNDS interleaved rounds of every mode × rate over PAIRS loopback pairs, keeps the raw result
# lines in results/, and prints the Markdown table. Bounded: ~7 s per window.
# PIN=1 runs the sender on CPU 0 and the receiver on CPU 1 (see README, "Where the receiver runs").
set -euo pipefail
cd "$(dirname "$0")"
PAIRS=${PAIRS:-10000}
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-5}
RATES=${RATES:-20000,40000,80000,0}
MODES=${MODES:-tokio,tokio1,direct,uring,uring-fixed,uring-sqpoll,tokio-uring}
PIN=${PIN:-0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/uring-send
mkdir -p results
out=results/$(date -u +%Y%m%dT%H%M%SZ).txt
{
  echo "# $(date -u) $(uname -r) nproc=$(nproc) uptime: $(uptime)"
  echo "# pairs=$PAIRS rounds=$ROUNDS secs=$SECS rates=$RATES modes=$MODES pin=$PIN"
} >"$out"
args=(send --pairs "$PAIRS" --rounds "$ROUNDS" --secs "$SECS" --rates "$RATES" --modes "$MODES")
if [ "$PIN" = 1 ]; then
  taskset -c 0 "$bin" "${args[@]}" --receiver-cpu 1 | tee -a "$out"
else
  "$bin" "${args[@]}" | tee -a "$out"
fi
echo "# end $(date -u) uptime: $(uptime)" >>"$out"
"$bin" summarize "$out"
