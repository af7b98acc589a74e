# Sourced by scripts/compare-django.sh and scripts/conform-django.sh: the seed Django app under
# Daphne beside a courier, with the same tokens (simplejwt format, same secret) and API key.
#
#   start_side_by_side NAME SECRET API_KEY DJANGO_PORT COURIER_PORT USERS
#
# builds what is missing (a venv in target/django-venv, dist-profile courier + loadtest), creates
# USERS Django users (ids 1..USERS) in a fresh SQLite database, starts both servers (logs in
# ${TMPDIR:-/tmp}/NAME-{daphne,courier}.log), waits for their ports and sets DJ_PID and CO_PID.
# COURIER_EXTRA_ARGS (word-split) go to courier's command line.
# Every process it starts is stopped when the calling script exits.

# shellcheck source=../lib.sh
. scripts/lib.sh

start_side_by_side() {
  local name="$1" secret="$2" api_key="$3" dj_port="$4" co_port="$5" users="$6"
  local venv="target/django-venv"
  if [ ! -x "$venv/bin/daphne" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r scripts/django-ref/requirements.txt
  fi
  cargo build --profile "$PROFILE" -p courier -p loadtest
  DJANGO_DB="$(mktemp -d)/ref.sqlite3"
  export DJANGO_DB DJANGO_SECRET_KEY="$secret" PUBLISH_API_KEY="$api_key"
  ( cd scripts/django-ref
    "../../$venv/bin/python" manage.py migrate -v0
    "../../$venv/bin/python" manage.py shell -c "
from django.contrib.auth.models import User
User.objects.bulk_create([User(id=i, username=f'user{i}') for i in range(1, $users + 1)])" )
  SIDE_BY_SIDE_PIDS=()
  trap 'for p in "${SIDE_BY_SIDE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT INT TERM
  ( cd scripts/django-ref && exec "../../$venv/bin/daphne" -b 127.0.0.1 -p "$dj_port" refproject.asgi:application ) \
    >"${TMPDIR:-/tmp}/$name-daphne.log" 2>&1 &
  DJ_PID=$!; SIDE_BY_SIDE_PIDS+=("$DJ_PID")
  # shellcheck disable=SC2086
  "$BIN_DIR/courier" --listen "127.0.0.1:$co_port" --jwt-secret "$secret" --api-key "$api_key" \
    ${COURIER_EXTRA_ARGS:-} >"${TMPDIR:-/tmp}/$name-courier.log" 2>&1 &
  CO_PID=$!; SIDE_BY_SIDE_PIDS+=("$CO_PID")
  local port
  for port in "$dj_port" "$co_port"; do
    wait_port "$port" 100 || { echo "$name: nothing listening on $port" >&2; exit 2; }
  done
}
