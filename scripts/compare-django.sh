#!/usr/bin/env bash
# Side by side: the seed Django Channels app (scripts/django-ref, under Daphne, InMemoryChannelLayer)
# and courier, driven by the same load-test scenario (loadtest/scenarios/compare-django.toml), with
# the same tokens (simplejwt format, same secret) and the same publisher (POST /api/notify).
# Prints both reports and the ratios (deliveries/s, p99, RSS per connection). Loopback only; every
# process it starts is stopped on exit.
#
#   scripts/compare-django.sh            # env: SCENARIO, RESULTS (default results/)
set -euo pipefail
cd "$(dirname "$0")/.."

SCENARIO="${SCENARIO:-loadtest/scenarios/compare-django.toml}"
RESULTS="${RESULTS:-results}"
SECRET="compare-django-secret-key-0123456789abcdef"
API_KEY="compare-key"
DJ_PORT=18810
CO_PORT=18811
USERS=$(awk -F= '/^users/ {gsub(/[ #].*/, "", $2); gsub(/ /, "", $2); print $2}' "$SCENARIO" | head -n1)
USERS="${USERS:-100}"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$RESULTS"

# shellcheck source=django-ref/side-by-side.sh
. scripts/django-ref/side-by-side.sh
start_side_by_side compare "$SECRET" "$API_KEY" "$DJ_PORT" "$CO_PORT" "$USERS"

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
run() { # name port pid
  set +e
  "$BIN_DIR/loadtest" --scenario "$SCENARIO" --target "ws://127.0.0.1:$2/ws/notifications/" \
    --jwt-secret "$SECRET" --api-key "$API_KEY" --server-pid "$3" --no-progress \
    --json "$RESULTS/compare-$1-$STAMP.json"
  set -e
}
echo "=== Django reference (Daphne, channels InMemoryChannelLayer) ==="
run django "$DJ_PORT" "$DJ_PID"
echo "=== courier ==="
run courier "$CO_PORT" "$CO_PID"

python3 - "$RESULTS/compare-django-$STAMP.json" "$RESULTS/compare-courier-$STAMP.json" <<'PY'
import json, sys
dj, co = (json.load(open(p)) for p in sys.argv[1:3])
def per_conn(r):
    # Server RSS growth over the connect phase ÷ connections (falls back to RSS ÷ connections).
    s = r["server"]
    if s.get("rss_per_connection_bytes"):
        return s["rss_per_connection_bytes"]
    est = r["connections"]["established"] or 1
    return s["rss_bytes"] / est if s.get("rss_bytes") else None
rows = [
    ("handshakes/s", dj["handshakes_per_sec"], co["handshakes_per_sec"], True),
    ("deliveries/s", dj["throughput"]["deliveries_per_sec"], co["throughput"]["deliveries_per_sec"], True),
    ("delivered", dj["deliveries"]["received"], co["deliveries"]["received"], True),
    ("server CPU us / delivery", 1e6 * dj["server"]["cpu_seconds"] / max(dj["deliveries"]["received"], 1),
     1e6 * co["server"]["cpu_seconds"] / max(co["deliveries"]["received"], 1), False),
    ("lost", dj["deliveries"]["lost"], co["deliveries"]["lost"], False),
    ("p99 latency ms", dj["latency_us"]["p99"] / 1000, co["latency_us"]["p99"] / 1000, False),
    ("server RSS / connection KiB", (per_conn(dj) or 0) / 1024, (per_conn(co) or 0) / 1024, False),
]
print("\nBoth runs follow the same schedule (bursts at fixed intervals): a server that keeps up is bounded")
print("by the schedule, so deliveries/s understates the faster one; CPU per delivery and p99 do not.")
print(f"\n{'':30}{'django':>14}{'courier':>14}{'courier advantage':>20}")
for name, d, c, higher_better in rows:
    if d and c:
        ratio = (c / d) if higher_better else (d / c)
        adv = f"{ratio:.1f}x"
    else:
        adv = "-"
    print(f"{name:30}{d:>14.1f}{c:>14.1f}{adv:>20}")
PY
