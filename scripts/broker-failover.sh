#!/usr/bin/env bash
# Broker failover under load (issue 9): a private Redis is killed (SIGKILL) mid-burst and restarted
# empty on the same port. courier (redis-pubsub layer) must live, reconnect, resubscribe and send
# every connection a `resync`; the tester publishes like Django (channels_redis wire format) and
# counts what it lost. Loss must fall inside the outage window: at most the events scheduled from
# the kill until courier reported the host back up (plus one publish batch in flight).
#   scripts/broker-failover.sh [CONNECTIONS] [OUTAGE_SECONDS]     (default 5000, 3)
# Bounded (the tester's --duration 60s; Redis down OUTAGE s); stops only its own PIDs, never the
# shared Redis on 6379.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
N="${1:-5000}"; OUTAGE="${2:-3}"; RATE=20000; SECS=15
ulimit -n "$(ulimit -Hn)"
cargo build --profile "$PROFILE" -q -p courier -p loadtest
RPORT=$(free_port); PORT=$(free_port); ADMIN=$(free_port)
DIR=$(mktemp -d); OUT=${OUT:-/tmp/broker-failover}
start_redis() { redis-server --port "$RPORT" --save '' --appendonly no --dir "$DIR" >"$OUT.redis.log" 2>&1 & RPID=$!; }
start_redis
PIDS=()
trap 'kill -9 "${PIDS[@]}" "$RPID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 1 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS="redis://127.0.0.1:$RPORT"
"$BIN_DIR/courier" --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN" --jwt-secret S \
  --layer redis-pubsub --redis-url "$REDIS" >"$OUT.courier.log" 2>&1 &
CPID=$!; PIDS+=("$CPID")
wait_port "$ADMIN" || true
now_ms() { date +%s%3N; }
timeout 90 "$BIN_DIR/loadtest" --target "ws://127.0.0.1:$PORT/ws/notifications/" --jwt-secret S \
  --publisher redis-pubsub --redis-url "$REDIS" -c "$N" -u "$N" --model rate --rate "$RATE" \
  --rate-duration "${SECS}s" --batch 100 --duration 60s --drain-timeout 3s --source-addrs 4 \
  --no-progress --server-metrics "http://127.0.0.1:$ADMIN/metrics" --json "$OUT.json" >"$OUT.txt" 2>&1 &
LT=$!; PIDS+=("$LT")
# Kill a third of the way into publishing: wait for deliveries to flow, then a few seconds more.
for _ in $(seq 1 300); do [ "$(metric "$ADMIN" courier_deliveries_total)" -gt 0 ] 2>/dev/null && break; sleep 0.1; done
sleep $((SECS / 3))
T_KILL=$(now_ms); kill -9 "$RPID"; wait "$RPID" 2>/dev/null || true
sleep "$OUTAGE"
T_RESTART=$(now_ms); start_redis
# Back up: the layer reports no host down and has reconnected.
T_UP=""
for _ in $(seq 1 600); do
  if [ "$(metric "$ADMIN" courier_layer_hosts_down)" = "0" ] && [ "$(metric "$ADMIN" courier_layer_reconnects_total)" != "0" ]; then T_UP=$(now_ms); break; fi
  sleep 0.02
done
LRC=0; wait "$LT" || LRC=$?
ALIVE=no; curl -sf "127.0.0.1:$ADMIN/healthz" >/dev/null && kill -0 "$CPID" 2>/dev/null && ALIVE=yes
M=$(curl -s "127.0.0.1:$ADMIN/metrics")
python3 - "$OUT.json" "$T_KILL" "$T_RESTART" "${T_UP:-0}" "$RATE" "$N" "$ALIVE" "$LRC" <<'PY' "$M"
import json, sys
path, t_kill, t_restart, t_up, rate, n, alive, lrc = sys.argv[1:9]
t_kill, t_restart, t_up, rate, n = int(t_kill), int(t_restart), int(t_up), int(rate), int(n)
metrics = sys.argv[9]
def m(name):
    for line in metrics.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return line.split()[-1]
    return "?"
r = json.load(open(path))
d, ev = r["deliveries"], r.get("events", {})
errors = sum(ev.get("errors", {}).values()) if isinstance(ev.get("errors"), dict) else ev.get("errors", "?")
window_s = (t_up - t_kill) / 1000 if t_up else float("inf")
bound = int(rate * window_s) + 100  # events scheduled in the window, + one batch in flight
print(f"redis killed at +0 ms, restarted at +{t_restart - t_kill} ms, courier back up at "
      f"+{t_up - t_kill if t_up else 'never'} ms (reconnect took {t_up - t_restart if t_up else '-'} ms after restart)")
print(f"tester: published {ev.get('published')} events, expected {d['expected']}, received {d['received']}, lost {d['lost']}, "
      f"duplicated {d['duplicated']}, resyncs {d['resyncs']} of {n} connections, publish errors {errors}")
print(f"server: alive {alive}, layer reconnects {m('courier_layer_reconnects_total')}, "
      f"layer errors {m('courier_layer_errors_total')}, hosts down now {m('courier_layer_hosts_down')}")
print(f"loss bound (events scheduled kill→up at {rate}/s, + a batch): {bound}")
ok = (alive == "yes" and t_up and d["lost"] <= bound and d["duplicated"] == 0
      and d["resyncs"] >= n)
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
