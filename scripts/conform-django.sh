#!/usr/bin/env bash
# `loadtest conform` against the seed Django Channels app (scripts/django-ref under Daphne) and, for
# contrast, against courier, with the same tokens (simplejwt format, same secret) and the same
# HTTP publisher (POST /api/notify). The seed's known deviations show as named failures (HTTP 403
# instead of a visible 4001, binary frames and unknown event types crash the consumer, and none of
# PROTOCOL.md §7: no positions or resume, a refresh frame echoed, no close at the token's exp).
# courier runs with a 1 s token grace so `expiry_close` runs against both (--expiry-wait 4s).
# Loopback only; every process it starts is stopped on exit. Exit status: courier's suite (0 = all
# passed).
#
#   scripts/conform-django.sh            # env: RESULTS (default results/)
set -euo pipefail
cd "$(dirname "$0")/.."

RESULTS="${RESULTS:-results}"
SECRET="conform-django-secret-key-0123456789abcdef"
API_KEY="conform-key"
DJ_PORT="${DJ_PORT:-18820}"
CO_PORT="${CO_PORT:-18821}"
mkdir -p "$RESULTS"

# shellcheck source=django-ref/side-by-side.sh
. scripts/django-ref/side-by-side.sh
COURIER_EXTRA_ARGS="--token-grace 1s"
start_side_by_side conform "$SECRET" "$API_KEY" "$DJ_PORT" "$CO_PORT" 3

echo "=== Django reference (Daphne, channels InMemoryChannelLayer) ==="
"$BIN_DIR/loadtest" conform --target "ws://127.0.0.1:$DJ_PORT/ws/notifications/" \
  --jwt-secret "$SECRET" --api-key "$API_KEY" --expiry-wait 4s \
  --junit "$RESULTS/conform-django.junit.xml" || true
echo "=== courier ==="
"$BIN_DIR/loadtest" conform --target "ws://127.0.0.1:$CO_PORT/ws/notifications/" \
  --jwt-secret "$SECRET" --api-key "$API_KEY" --expiry-wait 4s \
  --junit "$RESULTS/conform-courier.junit.xml"
