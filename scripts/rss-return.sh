#!/usr/bin/env bash
# Does courier give memory back after load? Starts a courier binary, records its RSS before, at
# the peak and 30 s after the load left, for an echo flood (hostile clients that send 60 KB frames
# and never read) and/or a fanout-10k run. Bounded; stops only the server it started.
#
#   scripts/rss-return.sh [BINARY] [echo|fanout|both]     (default target/dist/courier, both)
# Goal (issue 9): RSS within 20 % of the pre-load level 30 s after the clients leave.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
BIN="${1:-$BIN_DIR/courier}"; WHAT="${2:-both}"; SETTLE="${SETTLE:-30}"
ulimit -n "$(ulimit -Hn)"
PORT="$(free_port)"
"$BIN" --listen "127.0.0.1:$PORT" --jwt-secret S --api-key K >/tmp/rss-return.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
wait_port "$PORT" || true
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$PID/status"; }
report() { # name before peak after (KiB)
  python3 -c 'import sys; n=sys.argv[1]; b,p,a=map(int,sys.argv[2:]); print(f"{n}: RSS before {b/1024:.1f} MiB, peak {p/1024:.1f} MiB, after {a/1024:.1f} MiB ({100*(a-b)/b:+.0f} % vs before)")' "$@"
}
echo "binary $BIN ($(basename "$BIN")), settle ${SETTLE}s"
if [ "$WHAT" = echo ] || [ "$WHAT" = both ]; then
  B=$(rss)
  timeout 60 python3 scripts/echo-flood.py "127.0.0.1:$PORT" S --clients 10 --seconds 15 | tail -3
  P=$(hwm); sleep "$SETTLE"; A=$(rss)
  report echo-flood "$B" "$P" "$A"
fi
if [ "$WHAT" = fanout ] || [ "$WHAT" = both ]; then
  B=$(rss)
  timeout 120 "$BIN_DIR/loadtest" --scenario loadtest/scenarios/fanout-10k.toml \
    --target "ws://127.0.0.1:$PORT/ws/notifications/" --jwt-secret S --api-key K --no-progress >/tmp/rss-return.fanout 2>&1 || true
  grep -E "received|lost" /tmp/rss-return.fanout | head -2
  P=$(hwm); sleep "$SETTLE"; A=$(rss)
  report fanout-10k "$B" "$P" "$A"
fi
