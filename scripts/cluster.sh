#!/usr/bin/env bash
# Several courier processes on one address (--reuse-port: the kernel spreads new connections),
# all on the same Redis layer, each with its own descriptor budget and an admin listener for its
# health check. Stops only the PIDs it started (kept in $DIR/pids).
#
#   scripts/cluster.sh start N PORT [extra courier flags…]   e.g. start 3 8000 --layer redis-pubsub
#   scripts/cluster.sh status
#   scripts/cluster.sh stop
# Env: DIR (default results/cluster), COURIER_JWT_SECRET / COURIER_API_KEY (defaults S / K),
#      ADMIN_BASE (admin ports ADMIN_BASE+1…+N, default PORT+100).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
DIR="${DIR:-results/cluster}"; mkdir -p "$DIR"
cmd="${1:-}"; shift || true
case "$cmd" in
  start)
    N="$1"; PORT="$2"; shift 2
    ADMIN_BASE="${ADMIN_BASE:-$((PORT + 100))}"
    ulimit -n "$(ulimit -Hn)"
    cargo build --profile "$PROFILE" -q -p courier
    : >"$DIR/pids"
    for i in $(seq 1 "$N"); do
      "$BIN_DIR/courier" --listen "127.0.0.1:$PORT" --reuse-port --admin-listen "127.0.0.1:$((ADMIN_BASE + i))" \
        --jwt-secret "${COURIER_JWT_SECRET:-S}" --api-key "${COURIER_API_KEY:-K}" "$@" >"$DIR/courier-$i.log" 2>&1 &
      echo "$! $((ADMIN_BASE + i))" >>"$DIR/pids"
    done
    "$0" status
    ;;
  status)
    ok=0
    while read -r pid admin; do
      for _ in $(seq 1 50); do
        if [ "$(curl -s "127.0.0.1:$admin/healthz" 2>/dev/null)" = "ok" ]; then break; fi
        kill -0 "$pid" 2>/dev/null || break; sleep 0.1
      done
      if [ "$(curl -s "127.0.0.1:$admin/healthz" 2>/dev/null)" = "ok" ]; then
        open=$(curl -s "127.0.0.1:$admin/metrics" | awk '/^courier_connections_open / {print $2}')
        echo "courier pid $pid: healthy (admin 127.0.0.1:$admin), ${open:-0} connections open"; ok=$((ok + 1))
      else
        echo "courier pid $pid: NOT healthy (see $DIR)"; fi
    done <"$DIR/pids"
    [ "$ok" -eq "$(wc -l <"$DIR/pids")" ]
    ;;
  stop)
    while read -r pid _; do kill "$pid" 2>/dev/null || true; done <"$DIR/pids"
    while read -r pid _; do for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; done <"$DIR/pids"
    echo "stopped $(wc -l <"$DIR/pids") courier processes"; : >"$DIR/pids"
    ;;
  *) echo "usage: $0 start N PORT [flags…] | status | stop" >&2; exit 2 ;;
esac
