#!/usr/bin/env bash
# What TLS costs, side by side in one run: ROUNDS interleaved rounds of the same burst fan-out
# against
#   plain  ws://  courier                                   (the baseline)
#   courier-tls   wss:// courier's own listener (--tls-cert/--tls-key, rustls)
#   nginx-tls     wss:// nginx (docs/deploy/nginx.conf, TLS terminated) → plain courier
# with handshakes/s (connect phase), deliveries/s, server CPU per delivery (courier, and nginx's
# workers for nginx-tls: over the whole run, its TLS handshakes included) and the tester's CPU per delivery. Prints a table of medians (min..max)
# and each mode's ratio to plain.
#
#   scripts/tls-cost.sh [ROUNDS] [CONNECTIONS]        (default 3 rounds, 5000 connections)
# 5000, not 10k: through nginx every client holds two descriptors in the proxy (client side and
# upstream), and this box's open-file hard limit is 20000. A private CA and a leaf for 127.0.0.1
# are made with openssl; nginx runs as a foreground process under a private prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ROUNDS="${1:-3}"; CONNS="${2:-5000}"
command -v nginx >/dev/null || { echo "tls-cost: nginx is not installed (apt-get install nginx)" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)"
cargo build -q --profile "$PROFILE" -p courier -p loadtest
OUT="results/tls-cost-$(date -u +%Y%m%dT%H%M%SZ)"; mkdir -p "$OUT"
D="$(mktemp -d)"; PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$D"; }
trap cleanup EXIT INT TERM

# A private CA and a leaf with IP SAN 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=tls-cost CA" \
  -keyout "$D/ca.key" -out "$D/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" -keyout "$D/privkey.pem" -out "$D/leaf.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$D/san.ext"
openssl x509 -req -in "$D/leaf.csr" -CA "$D/ca.pem" -CAkey "$D/ca.key" -CAcreateserial -days 2 \
  -extfile "$D/san.ext" -out "$D/leaf.pem" 2>/dev/null
cat "$D/leaf.pem" "$D/ca.pem" >"$D/fullchain.pem"

FLAGS=(--jwt-secret S --api-key K --handshake-burst-per-ip 100000 --handshake-rate-per-ip 100000)
start_courier() { # port, extra flags…; echoes the pid
  local port=$1; shift
  "$BIN_DIR/courier" --listen "127.0.0.1:$port" "${FLAGS[@]}" "$@" >>"$OUT/courier-$port.log" 2>&1 &
  echo $!
}
PLAIN_PORT=$(free_port); TLS_PORT=$(free_port); UP_PORT=$(free_port); NGINX_PORT=$(free_port)
PLAIN_PID=$(start_courier "$PLAIN_PORT"); PIDS+=("$PLAIN_PID")
TLS_PID=$(start_courier "$TLS_PORT" --tls-cert "$D/fullchain.pem" --tls-key "$D/privkey.pem"); PIDS+=("$TLS_PID")
UP_PID=$(start_courier "$UP_PORT" --trusted-proxy 127.0.0.1); PIDS+=("$UP_PID")
# The documented config, only paths and ports changed (as tests/nginx.rs does); both upstream
# lines name the one courier here.
sed -e "s|/etc/ssl/courier/|$D/|g; s|/var/log/nginx/|$D/|g; s|/var/lib/nginx/|$D/|g; s|/run/|$D/|g" \
    -e "s|listen 443 ssl;|listen 127.0.0.1:$NGINX_PORT ssl;|" \
    -e "s|server 127.0.0.1:8001;|server 127.0.0.1:$UP_PORT;|; s|server 127.0.0.1:8002;|server 127.0.0.1:$UP_PORT;|" \
    docs/deploy/nginx.conf >"$D/nginx.conf"
nginx -p "$D" -e "$D/error.log" -c "$D/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!; PIDS+=("$NGINX_PID")
for p in "$PLAIN_PORT" "$TLS_PORT" "$UP_PORT" "$NGINX_PORT"; do wait_port "$p"; done

nginx_cpu() { # total CPU seconds of nginx's processes (master + workers)
  local t=0 pid
  for pid in $NGINX_PID $(pgrep -P "$NGINX_PID" || true); do
    t=$(awk -v t="$t" '{print t + ($14 + $15) / 100}' "/proc/$pid/stat")
  done
  echo "$t"
}
run() { # mode, target, server pid, round, extra loadtest flags…
  local mode=$1 target=$2 pid=$3 round=$4; shift 4
  local json="$OUT/r$round-$mode.json" before after
  before=$(nginx_cpu)
  local trust=(); [[ $target == wss://* ]] && trust=(--ca-cert "$D/ca.pem")
  timeout 180 "$BIN_DIR/loadtest" --target "$target" --jwt-secret S --api-key K "${trust[@]}" "$@" \
    --server-pid "$pid" -c "$CONNS" -u "$((CONNS / 10))" --source-addrs 8 --bursts 4 \
    --events-per-burst 20 --no-progress --json "$json" >"$json.txt" 2>&1 || true
  after=$(nginx_cpu)
  echo "$before $after" >"$json.nginx"
}
for r in $(seq 0 "$ROUNDS"); do
  echo "round $r of $ROUNDS (0 = warm-up, discarded)" >&2
  run plain "ws://127.0.0.1:$PLAIN_PORT/ws/notifications/" "$PLAIN_PID" "$r"
  run courier-tls "wss://127.0.0.1:$TLS_PORT/ws/notifications/" "$TLS_PID" "$r"
  # The publish API stays off the proxy (docs/deploy.md): published to the upstream directly.
  run nginx-tls "wss://127.0.0.1:$NGINX_PORT/ws/notifications/" "$UP_PID" "$r" \
    --publish-url "http://127.0.0.1:$UP_PORT"
done

python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
modes = ["plain", "courier-tls", "nginx-tls"]
rows = {m: {k: [] for k in ["hs", "dps", "srv", "proxy", "tst", "tls_p50", "lost"]} for m in modes}
for r in range(1, rounds + 1):
    for m in modes:
        try:
            d = json.load(open(f"{out}/r{r}-{m}.json"))
        except Exception:
            print(f"round {r} {m}: no report (see {out})", file=sys.stderr); continue
        n = max(d["deliveries"]["received"], 1)
        a, b = map(float, open(f"{out}/r{r}-{m}.json.nginx").read().split())
        row = rows[m]
        row["hs"].append(d["handshakes_per_sec"])
        row["dps"].append(d["throughput"]["deliveries_per_sec"])
        srv = d["server"].get("delivery_cpu_seconds")
        row["srv"].append(srv and 1e9 * srv / n)
        row["proxy"].append(1e9 * (b - a) / n if m == "nginx-tls" else 0.0)
        tst = (d.get("tester") or {}).get("delivery_cpu_seconds")
        row["tst"].append(tst and 1e9 * tst / n)
        row["tls_p50"].append(((d.get("tls") or {}).get("handshake_ms") or {}).get("p50"))
        row["lost"].append(d["deliveries"]["lost"])
def cell(v, fmt="{:.0f}"):
    v = [x for x in v if x is not None]
    return (fmt.format(statistics.median(v)) + f" ({fmt.format(min(v))}..{fmt.format(max(v))})") if v else "n/a"
def ratio(m, k):
    a = [x for x in rows[m][k] if x]; b = [x for x in rows["plain"][k] if x]
    return f"{statistics.median(a) / statistics.median(b):.2f}×" if a and b else "n/a"
print(f"\n{rounds} rounds after a warm-up, {out}\n")
print("| Mode | handshakes/s | deliveries/s | server ns/delivery | proxy ns/delivery | tester ns/delivery | TLS handshake p50 ms | lost |")
print("|---|---|---|---|---|---|---|---|")
for m in modes:
    x = rows[m]
    print(f"| {m} | {cell(x['hs'])} ({ratio(m, 'hs')}) | {cell(x['dps'])} ({ratio(m, 'dps')}) | "
          f"{cell(x['srv'])} ({ratio(m, 'srv')}) | {cell(x['proxy'])} | {cell(x['tst'])} ({ratio(m, 'tst')}) | "
          f"{cell(x['tls_p50'], '{:.2f}')} | {sum(x['lost'])} |")
PY
