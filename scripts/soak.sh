#!/usr/bin/env bash
# Soak with churn: one courier process, and the load tester run again and again against it —
# each run connects CONNECTIONS clients, publishes bursts, checks every delivery, disconnects —
# for DURATION (bounded). Server RSS and open descriptors are sampled every 5 s into a CSV, and
# the curve's start / peak / end is printed. Stops only the server it started.
#
#   scripts/soak.sh [DURATION_SECS] [CONNECTIONS]      (defaults 900 s, 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
DURATION="${1:-900}"; CONNECTIONS="${2:-10000}"
OUT="results/soak-$(date -u +%Y%m%dT%H%M%SZ)"; mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"
cargo build --profile "$PROFILE" -q -p courier -p loadtest
PORT="$(free_port)"
"$BIN_DIR/courier" --listen "127.0.0.1:$PORT" --jwt-secret S --api-key K >"$OUT/server.log" 2>&1 &
PID=$!
SAMPLER=""
trap 'kill $PID 2>/dev/null || true; [ -n "$SAMPLER" ] && kill $SAMPLER 2>/dev/null || true' EXIT
wait_port "$PORT" || true
echo "t_secs,rss_kib,fds" >"$OUT/samples.csv"
START=$(date +%s)
( while kill -0 $PID 2>/dev/null; do
    echo "$(( $(date +%s) - START )),$(awk '/VmRSS/ {print $2}' /proc/$PID/status),$(ls /proc/$PID/fd | wc -l)" >>"$OUT/samples.csv"
    sleep 5
  done ) &
SAMPLER=$!
runs=0; lost=0; failed=0
while [ $(( $(date +%s) - START )) -lt "$DURATION" ]; do
  runs=$((runs + 1))
  timeout 120 "$BIN_DIR/loadtest" --target "ws://127.0.0.1:$PORT/ws/notifications/" \
    --jwt-secret S --api-key K -c "$CONNECTIONS" -u $((CONNECTIONS / 10)) --bursts 5 --events-per-burst 5 \
    --burst-interval 200ms --source-addrs 4 --no-progress --json "$OUT/run-$runs.json" >/dev/null 2>&1 || failed=$((failed + 1))
  lost=$((lost + $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['deliveries']['lost'])" "$OUT/run-$runs.json" 2>/dev/null || echo 0)))
done
sleep 6
python3 - "$OUT/samples.csv" "$runs" "$lost" "$failed" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
rss = [int(r["rss_kib"]) for r in rows]; fds = [int(r["fds"]) for r in rows]
print(f"soak: {sys.argv[2]} runs ({sys.argv[4]} failed), {sys.argv[3]} deliveries lost, {rows[-1]['t_secs']} s")
print(f"  RSS  start {rss[0]/1024:.1f} MiB, peak {max(rss)/1024:.1f} MiB, end {rss[-1]/1024:.1f} MiB")
print(f"  fds  start {fds[0]}, peak {max(fds)}, end {fds[-1]}")
PY
echo "samples: $OUT/samples.csv"
