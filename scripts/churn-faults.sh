#!/usr/bin/env bash
# Restarts during churn (issue 16 item 6): churn-10k's load (CONNECTIONS, default 10000; 10 %
# dropping every 3 s and resuming) while the server side fails, and every client must come back
# replayed or told — `lost_silent` 0:
#   (a) memory layer: courier stopped (SIGTERM: close 1001) a third into the stream, started again
#       on the same port (a new history epoch: every client gets one `resync` epoch_changed);
#   (b) redis-pubsub, 2 courier processes on a private Redis killed (SIGKILL) a third into the
#       stream and restarted empty 2 s later (clients closed 4008 resume, or are told).
#   CONNECTIONS=2000 scripts/churn-faults.sh    (COURIER_PROFILE=release|dist|debug; RATE=events/s)
# Bounded (each tester run: --duration 90s, timeout 150 s); stops only its own PIDs, never the
# shared Redis on 6379. Prints per case: server closes, reconnects, recovered, signalled (resyncs
# by reason), never accepted (publishes refused while down), lost_silent, duplicates, recovery p99.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
# The load per connection stays churn-10k's (5 connections a user, 2.5 events/s a user): fewer
# connections, proportionally fewer events/s (RATE overrides).
N="${CONNECTIONS:-10000}"; USERS=$(( N / 5 )); RATE="${RATE:-$(( 5000 * N / 10000 ))}"; SECS=30
OUT=${OUT:-/tmp/churn-faults}
if [ "$PROFILE" = debug ]; then cargo build -q -p courier -p loadtest; BIN_DIR=target/debug
else cargo build --profile "$PROFILE" -q -p courier -p loadtest; fi
ulimit -n "$(ulimit -Hn)"
DIR=$(mktemp -d); PIDS=()
trap 'kill -9 "${PIDS[@]}" 2>/dev/null || true; rm -rf "$DIR"' EXIT
# courier_on PORT ADMIN LOG ARGS…: starts one courier; its PID in LAST (a child of this shell,
# so `wait` sees its exit).
courier_on() {
  local port=$1 admin=$2 log=$3; shift 3
  "$BIN_DIR/courier" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" --jwt-secret S \
    --api-key K "$@" >>"$log" 2>&1 &
  LAST=$!; PIDS+=("$LAST")
}
# tester JSON ARGS…: churn-10k at N connections in the background (PID in LT).
tester() {
  local json=$1; shift
  timeout 150 "$BIN_DIR/loadtest" -s loadtest/scenarios/churn-10k.toml -c "$N" -u "$USERS" --rate "$RATE" \
    --duration 90s --jwt-secret S --api-key K --no-progress --json "$json" "$@" >"$json.txt" 2>&1 &
  LT=$!; PIDS+=("$LT")
}
# a third into the stream: deliveries flowing on ADMIN, then SECS/3 more.
third_in() {
  for _ in $(seq 1 600); do [ "$(metric "$1" courier_deliveries_total)" -gt 0 ] 2>/dev/null && break; sleep 0.1; done
  sleep $((SECS / 3))
}

echo "== (a) memory layer, courier restarted (SIGTERM, same port) at +$((SECS / 3)) s, $N connections"
PORT=$(free_port); ADMIN=$(free_port)
courier_on "$PORT" "$ADMIN" "$OUT.a.courier.log"; CPID=$LAST
wait_port "$PORT" || { echo "courier did not start"; exit 1; }
tester "$OUT.a.json" --target "ws://127.0.0.1:$PORT/ws/notifications/"
third_in "$ADMIN"
T0=$(date +%s%3N); kill -TERM "$CPID"; wait "$CPID" 2>/dev/null || true
courier_on "$PORT" "$ADMIN" "$OUT.a.courier.log"; CPID=$LAST
wait_port "$PORT" 200 || true; echo "courier down $(( $(date +%s%3N) - T0 )) ms"
wait "$LT" || true
kill -TERM "$CPID"; wait "$CPID" 2>/dev/null || true

echo "== (b) redis-pubsub, 2 couriers, private Redis killed at +$((SECS / 3)) s, back 2 s later, $N connections"
RPORT=$(free_port); P1=$(free_port); P2=$(free_port); A1=$(free_port); A2=$(free_port)
start_redis() { redis-server --port "$RPORT" --save '' --appendonly no --dir "$DIR" >>"$OUT.redis.log" 2>&1 & RPID=$!; PIDS+=("$RPID"); }
start_redis
for _ in $(seq 1 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
LAYER=(--layer redis-pubsub --redis-url "redis://127.0.0.1:$RPORT")
courier_on "$P1" "$A1" "$OUT.b1.courier.log" "${LAYER[@]}"; C1=$LAST
courier_on "$P2" "$A2" "$OUT.b2.courier.log" "${LAYER[@]}"; C2=$LAST
wait_port "$P1" && wait_port "$P2" || { echo "couriers did not start"; exit 1; }
tester "$OUT.b.json" --target "ws://127.0.0.1:$P1/ws/notifications/" \
  --reconnect-target "ws://127.0.0.1:$P2/ws/notifications/"
third_in "$A1"
kill -9 "$RPID"; wait "$RPID" 2>/dev/null || true
sleep 2; start_redis
wait "$LT" || true
kill -TERM "$C1" "$C2"; wait "$C1" "$C2" 2>/dev/null || true

python3 - "$OUT.a.json" "$OUT.b.json" <<'PY'
import json, sys
ok = True
for label, path in zip(["(a) memory, courier restart", "(b) redis-pubsub, Redis restart"], sys.argv[1:]):
    try:
        r = json.load(open(path))
    except (OSError, ValueError) as e:
        print(f"{label}: no report ({e})"); ok = False; continue
    c, d = r["churn"], r["deliveries"]
    kinds = lambda m: ", ".join(f"{k} {v}" for k, v in sorted(m.items())) or "0"
    print(f"{label}: {d['expected']} deliveries expected, {d['received']} received, {d['lost']} missing")
    print(f"  server closes {kinds(c.get('server_closes', {}))}; drops {c['drops']}; "
          f"reconnects {c['reconnects']} ({c['reconnect_failures']} attempts failed)")
    print(f"  recovered {c['recovered']}; signalled {c['unrecoverable']} events "
          f"(resyncs: {kinds(c.get('resyncs', {}))}); never accepted {c.get('never_accepted', 0)}")
    print(f"  lost_silent {c['lost_silent']}; duplicates {d['duplicated']}; reordered {d['reordered']}; "
          f"recovery p99 {c['recovery_ms']['p99']:.1f} ms ({c['recoveries']} recoveries)")
    partial = r.get("partial") or "stopped early" in open(path + ".txt").read()
    if partial:
        print("  PARTIAL: the run hit its duration bound (what was in flight counts as missing)")
    ok = ok and not partial and c["lost_silent"] == 0 and d["duplicated"] == 0
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
