#!/usr/bin/env bash
# Scale-out on one box (issue 11): H private Redis hosts (channels_redis `hosts`, groups sharded
# by its consistent hash), P courier processes sharing one port (--reuse-port, redis-pubsub
# layer over all H hosts) and S tester segments publishing through courier's HTTP API from one
# agreed instant, merged exactly. Prints the merged verdict, then per courier process its
# connections, deliveries and CPU per delivery, and per Redis host its channels and publishes.
# Bounded (each segment --duration 120s); stops only its own PIDs, never the shared Redis.
#
#   scripts/scale-out.sh [CONNECTIONS] [REDIS_HOSTS] [PROCESSES] [SEGMENTS]   (51000 3 3 3)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
C="${1:-51000}"; H="${2:-3}"; P="${3:-3}"; S="${4:-3}"
OUT="${OUT:-results/scale-out-$(date -u +%Y%m%dT%H%M%SZ)}"; mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"
cargo build --profile "$PROFILE" -q -p courier -p loadtest
RPIDS=(); RPORTS=(); URLS=()
cleanup() {
  DIR="$OUT/cluster" scripts/cluster.sh stop >/dev/null 2>&1 || true
  for p in "${RPIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
for h in $(seq 1 "$H"); do
  port=$(free_port); mkdir -p "$OUT/redis-$h"
  redis-server --port "$port" --save '' --appendonly no --dir "$OUT/redis-$h" >"$OUT/redis-$h.log" 2>&1 &
  RPIDS+=("$!"); RPORTS+=("$port"); URLS+=(--redis-url "redis://127.0.0.1:$port")
done
for port in "${RPORTS[@]}"; do for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done; done
PORT=$(free_port)
DIR="$OUT/cluster" scripts/cluster.sh start "$P" "$PORT" --layer redis-pubsub "${URLS[@]}" >"$OUT/cluster.txt"
cat "$OUT/cluster.txt"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
AT=$(( $(date +%s%3N) + 25000 ))
USERS=$(( C / 10 ))
SEGS=()
for k in $(seq 1 "$S"); do
  "$BIN_DIR/loadtest" --target "ws://127.0.0.1:$PORT/ws/notifications/" --jwt-secret S --api-key K \
    -c "$C" -u "$USERS" --segment "$k/$S" --start-at "$AT" --bursts 5 --events-per-burst 4 \
    --burst-interval 200ms --batch 500 --source-addrs 8 --duration 120s --no-progress \
    --json "$OUT/seg$k.json" >"$OUT/seg$k.txt" 2>&1 &
  SEGS+=("$!")
done
# Once every segment has connected (1 s before the agreed start): channels per Redis host, and
# each process's CPU and deliveries so far, so the figures below cover delivery alone.
( sleep $(( (AT - $(date +%s%3N)) / 1000 - 1 ))
  for port in "${RPORTS[@]}"; do redis-cli -p "$port" pubsub channels | wc -l; done >"$OUT/channels.txt"
  while read -r pid admin; do echo "$pid $(cpu_ticks "$pid") $(metric "$admin" courier_deliveries_total)"; done \
    <"$OUT/cluster/pids" >"$OUT/before.txt" ) &
for p in "${SEGS[@]}"; do wait "$p" || true; done
"$BIN_DIR/loadtest" merge "$OUT"/seg*.json -t lost==0 -t duplicated==0 --json "$OUT/merged.json" | tee "$OUT/merged.txt" || true
echo "Per courier process, from the agreed start (CPU from /proc, deliveries from its /metrics):"
HZ=$(getconf CLK_TCK)
while read -r pid admin; do
  read -r _ t0 d0 < <(grep "^$pid " "$OUT/before.txt")
  t=$(( $(cpu_ticks "$pid") - t0 )); d=$(( $(metric "$admin" courier_deliveries_total) - d0 ))
  awk -v pid="$pid" -v t="$t" -v hz="$HZ" -v d="$d" 'BEGIN { printf "  pid %s: %d deliveries, %.2f s CPU, %s ns/delivery\n", pid, d, t / hz, d ? sprintf("%.0f", t / hz * 1e9 / d) : "-" }'
done <"$OUT/cluster/pids"
echo "Per Redis host (groups are sharded over them):"
for h in $(seq 1 "$H"); do
  port=${RPORTS[$((h - 1))]}
  echo "  host $h :$port: $(sed -n "${h}p" "$OUT/channels.txt") channels subscribed at the start, $(redis-cli -p "$port" info stats | awk -F: '/^total_commands_processed/ {print $2}' | tr -d '\r') commands"
done
