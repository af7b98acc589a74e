#!/usr/bin/env bash
# What per-user history costs the server, side by side in one run (`loadtest ab`, interleaved
# rounds): courier with history off (`--history-size 0`: positions, nothing kept) as A and with
# the default history (100 events per user) as B, on
#   - sustained sparse delivery (every event to one connection, so every delivery is an append):
#     10k users × 1 connection, an open-model rate over HTTP;
#   - burst fan-out (`fanout-10k`): one append per event, shared by every recipient.
# Prints each A/B table (median of per-round B/A with min..max and a bootstrap interval).
#
#   scripts/history-cost.sh [RATE] [ROUNDS]        (default 40000 deliveries/s, 6 rounds)
# Env: COURIER_PROFILE (scripts/lib.sh; `release` for a quick look, not for publishing).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
RATE="${1:-40000}"; ROUNDS="${2:-6}"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build -q --profile "$PROFILE" -p courier -p loadtest
SERVER="$BIN_DIR/courier --listen 127.0.0.1:{port} --jwt-secret S --api-key K"
ab() { # scenario, then run flags
  local scenario=$1; shift
  timeout 900 "$BIN_DIR/loadtest" ab --a "$SERVER --history-size 0" --b "$SERVER" --rounds "$ROUNDS" \
    --scenario "$scenario" --jwt-secret S --api-key K -m server_ns_per_delivery -m p99_ms \
    -m deliveries_per_sec -- "$@"
}
echo "== sustained sparse: $RATE events/s, 10k users x 1 connection, 5 s"
ab loadtest/scenarios/sustained-200k.toml -c 10000 -u 10000 --rate "$RATE" --rate-duration 5s
echo "== burst fan-out: fanout-10k"
ab loadtest/scenarios/fanout-10k.toml
