#!/usr/bin/env bash
# `loadtest conform` against the seed Django Channels app (scripts/django-ref under Daphne) and, for
# contrast, against courier, with the same tokens (simplejwt format, same secret) and the same
# HTTP publisher (POST /api/notify). The seed's known deviations show as named failures (HTTP 403
# instead of a visible 4001, binary frames and unknown event types crash the consumer). Loopback
# only; every process it starts is stopped on exit. Exit status: courier's suite (0 = all passed).
#
#   scripts/conform-django.sh            # env: RESULTS (default results/)
set -euo pipefail
cd "$(dirname "$0")/.."

RESULTS="${RESULTS:-results}"
SECRET="conform-django-secret-key-0123456789abcdef"
API_KEY="conform-key"
VENV="target/django-venv"
DJ_PORT="${DJ_PORT:-18820}"
CO_PORT="${CO_PORT:-18821}"
mkdir -p "$RESULTS"

if [ ! -x "$VENV/bin/daphne" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r scripts/django-ref/requirements.txt
fi
cargo build --release -p courier -p loadtest

DB="$(mktemp -d)/ref.sqlite3"
export DJANGO_DB="$DB" DJANGO_SECRET_KEY="$SECRET" PUBLISH_API_KEY="$API_KEY"
( cd scripts/django-ref
  "../../$VENV/bin/python" manage.py migrate -v0
  "../../$VENV/bin/python" manage.py shell -c "
from django.contrib.auth.models import User
User.objects.bulk_create([User(id=i, username=f'user{i}') for i in range(1, 4)])" )

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

wait_port() {
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "conform-django: nothing listening on $1" >&2; exit 2
}

( cd scripts/django-ref && exec "../../$VENV/bin/daphne" -b 127.0.0.1 -p "$DJ_PORT" refproject.asgi:application ) \
  >"${TMPDIR:-/tmp}/conform-daphne.log" 2>&1 &
PIDS+=("$!")
target/release/courier --listen "127.0.0.1:$CO_PORT" --jwt-secret "$SECRET" --api-key "$API_KEY" \
  >"${TMPDIR:-/tmp}/conform-courier.log" 2>&1 &
PIDS+=("$!")
wait_port "$DJ_PORT"; wait_port "$CO_PORT"

echo "=== Django reference (Daphne, channels InMemoryChannelLayer) ==="
target/release/loadtest conform --target "ws://127.0.0.1:$DJ_PORT/ws/notifications/" \
  --jwt-secret "$SECRET" --api-key "$API_KEY" --junit "$RESULTS/conform-django.junit.xml" || true
echo "=== courier ==="
target/release/loadtest conform --target "ws://127.0.0.1:$CO_PORT/ws/notifications/" \
  --jwt-secret "$SECRET" --api-key "$API_KEY" --junit "$RESULTS/conform-courier.junit.xml"
