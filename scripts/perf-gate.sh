#!/usr/bin/env bash
# Performance gate: release build, a separate courier process, the fanout-10k scenario against it.
# Writes the JSON report under results/ and exits non-zero when a threshold fails (1) or the run
# could not be set up (2). The server is always stopped.
#
#   scripts/perf-gate.sh [extra loadtest flags…]     e.g. --threshold 'p99_ms<500'
# Env: SCENARIO (default loadtest/scenarios/fanout-10k.toml), PORT (default: a free one),
#      RESULTS (default results/).
set -euo pipefail
cd "$(dirname "$0")/.."

SCENARIO="${SCENARIO:-loadtest/scenarios/fanout-10k.toml}"
RESULTS="${RESULTS:-results}"
SECRET="perf-gate-$(date +%s)-$$"
API_KEY="key-$$-$RANDOM"

# Both processes need one fd per connection (plus slack): take the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "perf-gate: open-file limit $(ulimit -n)"

cargo build --release -p courier -p loadtest

if [ -z "${PORT:-}" ]; then
  PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18000)"
fi

target/release/courier --listen "127.0.0.1:$PORT" --jwt-secret "$SECRET" --api-key "$API_KEY" >"${TMPDIR:-/tmp}/courier-perf-gate.log" 2>&1 &
SERVER_PID=$!
cleanup() {
  kill "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SERVER_PID" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# Wait (bounded) for the server to answer.
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "perf-gate: courier exited; log:"; cat "${TMPDIR:-/tmp}/courier-perf-gate.log"; exit 2; }
  sleep 0.1
done

mkdir -p "$RESULTS"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
JSON="$RESULTS/fanout-10k-$STAMP.json"

set +e
target/release/loadtest --scenario "$SCENARIO" \
  --target "ws://127.0.0.1:$PORT/ws/notifications/" \
  --jwt-secret "$SECRET" --api-key "$API_KEY" --server-pid "$SERVER_PID" \
  --no-progress --json "$JSON" --junit "$RESULTS/fanout-10k-$STAMP.junit.xml" "$@"
CODE=$?
set -e
echo "perf-gate: report $JSON (exit $CODE)"
exit "$CODE"
