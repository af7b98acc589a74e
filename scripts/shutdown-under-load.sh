#!/usr/bin/env bash
# Shutdown under load: a courier process serving CONNECTIONS clients a paced event stream gets
# SIGTERM mid-run; every client must receive close 1001 (after the frames already queued for it)
# and the process must exit 0 within --shutdown-timeout + --close-linger. Bounded; stops only
# its own server.
#   scripts/shutdown-under-load.sh [CONNECTIONS]      (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
N="${1:-10000}"
ulimit -n "$(ulimit -Hn)"
cargo build --profile "$PROFILE" -q -p courier -p loadtest
PORT="$(free_port)"
"$BIN_DIR/courier" --listen "127.0.0.1:$PORT" --jwt-secret S --api-key K >/tmp/shutdown-under-load.log 2>&1 &
PID=$!
trap 'kill -9 $PID 2>/dev/null || true' EXIT
wait_port "$PORT" || true
timeout 60 "$BIN_DIR/loadtest" --target "ws://127.0.0.1:$PORT/ws/notifications/" --jwt-secret S --api-key K \
  -c "$N" -u $((N / 10)) --model rate --rate 20000 --rate-duration 10s --source-addrs 4 --no-progress \
  --json /tmp/shutdown-under-load.json >/tmp/shutdown-under-load.txt 2>&1 &
LT=$!
# SIGTERM once every client is connected and events are flowing.
for _ in $(seq 1 100); do grep -q "courier_connections_open $N" <(curl -s "127.0.0.1:$PORT/metrics" 2>/dev/null) && break; sleep 0.1; done
sleep 2
T0=$(date +%s.%N); kill -TERM $PID
RC=0; wait $PID || RC=$?; T1=$(date +%s.%N)
wait $LT || true
python3 - "$T0" "$T1" "$RC" "$N" <<'PY'
import json, sys
t0, t1, rc, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
r = json.load(open("/tmp/shutdown-under-load.json"))
codes = r["connections"]["closed_by_code"]
print(f"server exited {rc} {t1 - t0:.2f} s after SIGTERM; close codes seen: {codes}; "
      f"received {r['deliveries']['received']} of {r['deliveries']['expected']} planned")
ok = rc == 0 and codes.get("1001", 0) == n
print("PASS: every client got 1001" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
