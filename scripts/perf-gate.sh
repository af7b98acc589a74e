#!/usr/bin/env bash
# Performance gate for CI: dist-profile build, a separate courier process, a scenario against it.
# Four modes, so a noisy shared runner neither flakes nor misses a regression:
#   - plain:      fixed thresholds (the scenario's and any given);
#   - BASELINE:   relative thresholds against a report kept from an earlier run (e.g. main's):
#                 deliveries_per_sec >= MIN_RATIO × baseline, p99_ms <= MAX_P99_RATIO × baseline;
#   - BASE_BIN:   A/B — `loadtest ab` starts BASE_BIN (A, e.g. the previous release) and this
#                 build (B) itself and runs ROUNDS interleaved rounds; exit 1 on a significant
#                 regression (median B/A beyond THRESHOLD with a bootstrap interval excluding 1).
#   - VS_CEILING=1: the sustained sparse row as a ratio in one run against this machine's ceiling
#                 (../shared/ceiling, paced mode), interleaved ROUNDS (3) rounds: exit 1 when the
#                 median server CPU per delivery at 40k/s exceeds MAX_CPU_RATIO (1.15) × the ceiling's,
#                 or courier's highest rate at p99 <= 10 ms is below the ceiling's in most rounds
#                 (scripts/ceiling-compare.sh with ONLY=sustained; RATES="20000 40000 60000").
# For the sustained sparse row as an A/B against a base build instead:
#   SCENARIO=loadtest/scenarios/sustained-sparse.toml BASE_BIN=… scripts/perf-gate.sh
#   (at a fixed offered rate deliveries/s cannot move: the verdict rests on p99 and server CPU).
# Writes the JSON report under results/ (keep it as the next BASELINE) and exits 1 when the gate
# fails, 2 when the run could not be set up. Every server it starts is stopped.
#
#   scripts/perf-gate.sh [extra loadtest flags…]     e.g. --threshold 'p99_ms<500'
#   BASELINE=results/main.json scripts/perf-gate.sh
#   BASE_BIN=/opt/courier-1.2/courier ROUNDS=6 scripts/perf-gate.sh -- -c 2000 -u 200
# Env: SCENARIO (default loadtest/scenarios/fanout-10k.toml), PORT (default: a free one),
#      RESULTS (default results/), MIN_RATIO (0.9), MAX_P99_RATIO (1.2), ROUNDS (6), THRESHOLD (0.05).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

SCENARIO="${SCENARIO:-loadtest/scenarios/fanout-10k.toml}"
RESULTS="${RESULTS:-results}"
SECRET="perf-gate-$(date +%s)-$$"
API_KEY="key-$$-$RANDOM"

# Both processes need one fd per connection (plus slack): take the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "perf-gate: open-file limit $(ulimit -n)"

cargo build --profile "$PROFILE" -p courier -p loadtest
mkdir -p "$RESULTS"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"

if [ -n "${VS_CEILING:-}" ]; then
  ONLY=sustained SUSTAINED_RATES="${RATES:-20000 40000 60000}" MAX_CPU_RATIO="${MAX_CPU_RATIO:-1.15}" \
    exec scripts/ceiling-compare.sh "${ROUNDS:-3}"
fi
if [ -n "${BASE_BIN:-}" ]; then
  # A/B: loadtest starts and stops both servers itself ({port} is filled in per server).
  [ "${1:-}" = "--" ] && shift
  exec "$BIN_DIR/loadtest" ab \
    --a "$BASE_BIN --listen 127.0.0.1:{port} --jwt-secret $SECRET --api-key $API_KEY" \
    --b "$BIN_DIR/courier --listen 127.0.0.1:{port} --jwt-secret $SECRET --api-key $API_KEY" \
    --rounds "${ROUNDS:-6}" --threshold "${THRESHOLD:-0.05}" --scenario "$SCENARIO" \
    --jwt-secret "$SECRET" --api-key "$API_KEY" --json "$RESULTS/ab-$STAMP.json" -- "$@"
fi
GATE=()
if [ -n "${BASELINE:-}" ]; then
  GATE=(--baseline "$BASELINE"
        --threshold "deliveries_per_sec>=${MIN_RATIO:-0.9}*baseline"
        --threshold "p99_ms<=${MAX_P99_RATIO:-1.2}*baseline")
fi

if [ -z "${PORT:-}" ]; then
  PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18000)"
fi

"$BIN_DIR/courier" --listen "127.0.0.1:$PORT" --jwt-secret "$SECRET" --api-key "$API_KEY" >"${TMPDIR:-/tmp}/courier-perf-gate.log" 2>&1 &
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

NAME="$(basename "$SCENARIO" .toml)"
JSON="$RESULTS/$NAME-$STAMP.json"

set +e
"$BIN_DIR/loadtest" --scenario "$SCENARIO" \
  --target "ws://127.0.0.1:$PORT/ws/notifications/" \
  --jwt-secret "$SECRET" --api-key "$API_KEY" --server-pid "$SERVER_PID" \
  --no-progress --json "$JSON" --junit "$RESULTS/$NAME-$STAMP.junit.xml" \
  ${GATE[@]+"${GATE[@]}"} "$@"
CODE=$?
set -e
echo "perf-gate: report $JSON (exit $CODE)"
exit "$CODE"
