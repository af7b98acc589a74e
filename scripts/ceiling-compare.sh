#!/usr/bin/env bash
# courier vs this machine's fan-out ceiling (../shared/ceiling), side by side in one session:
# one discarded warm-up round, then ROUNDS interleaved rounds of
#   ceiling raw 10000 200  |  courier fanout-10k   (burst fan-out)
#   ceiling raw 10000 1    |  courier sparse-10k   (one event to each of 10k: time to last client)
# and a ratio table (median of the per-round ratios, with min..max). Each courier run is a
# separate courier process (dist build) measured by the load tester with --server-pid.
#
#   scripts/ceiling-compare.sh [ROUNDS]        (default 3; env CEILING=../shared/ceiling/run.sh,
#   COURIER_BIN=another courier binary for an A/B against an older build)
# Writes every raw result under results/ceiling-<stamp>/ and prints the table (markdown).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ROUNDS="${1:-3}"
CEILING="${CEILING:-../shared/ceiling/run.sh}"
OUT="results/ceiling-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"
cargo build --profile "$PROFILE" -q -p courier -p loadtest


courier_run() { # scenario file, output json
  local port; port="$(free_port)"
  "${COURIER_BIN:-$BIN_DIR/courier}" --listen "127.0.0.1:$port" --jwt-secret S --api-key K >"$2.server.log" 2>&1 &
  local pid=$!
  wait_port "$port" || true
  timeout 150 "$BIN_DIR/loadtest" --scenario "$1" --target "ws://127.0.0.1:$port/ws/notifications/" \
    --jwt-secret S --api-key K --server-pid "$pid" --no-progress --json "$2" >"$2.txt" 2>&1 || true
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}

ceiling_run() { # n m output
  "$CEILING" raw "$1" "$2" >"$3.txt" 2>&1 || true
  tail -n +2 "$3.txt" >"$3" || true
}

for r in $(seq 0 "$ROUNDS"); do
  echo "round $r of $ROUNDS (0 = warm-up, discarded)" >&2
  ceiling_run 10000 200 "$OUT/r$r-ceiling-burst.json"
  courier_run loadtest/scenarios/fanout-10k.toml "$OUT/r$r-courier-burst.json"
  ceiling_run 10000 1 "$OUT/r$r-ceiling-sparse.json"
  courier_run loadtest/scenarios/sparse-10k.toml "$OUT/r$r-courier-sparse.json"
done

python3 - "$OUT" "$ROUNDS" <<'PY'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(p):
    try: return json.load(open(p))
    except Exception: return None
def ceil(d):  # warm phases' medians
    warm = d["phases"][1:] or d["phases"]
    med = lambda k: statistics.median(p[k] for p in warm)
    return {"dps": med("deliveries_per_s"), "srv_ns": med("server_cpu_ns_per_delivery"),
            "cli_ns": med("client_cpu_ns_per_delivery"), "max_ms": med("max_us") / 1e3,
            "hs": d["hs_per_s"], "kb": d["server_kb_per_conn"]}
def cour(d):
    n = max(d["deliveries"]["received"], 1)
    srv = d["server"].get("delivery_cpu_seconds")
    tst = (d.get("tester") or {}).get("delivery_cpu_seconds")
    return {"dps": d["throughput"]["deliveries_per_sec"], "srv_ns": srv and 1e9 * srv / n,
            "cli_ns": tst and 1e9 * tst / n, "max_ms": d["latency_us"]["max"] / 1e3,
            "hs": d["handshakes_per_sec"], "kb": (d["server"].get("rss_per_connection_bytes") or 0) / 1e3,
            "lost": d["deliveries"]["lost"]}
rows = {k: [] for k in ["dps", "srv_ns", "cli_ns", "max_ms", "kb", "hs"]}
raw = []
for r in range(1, rounds + 1):
    cb, kb = load(f"{out}/r{r}-ceiling-burst.json"), load(f"{out}/r{r}-courier-burst.json")
    cs, ks = load(f"{out}/r{r}-ceiling-sparse.json"), load(f"{out}/r{r}-courier-sparse.json")
    if not all([cb, kb, cs, ks]):
        print(f"round {r}: a run failed; see {out}", file=sys.stderr); continue
    cb, kb, cs, ks = ceil(cb), cour(kb), ceil(cs), cour(ks)
    raw.append((r, cb, kb, cs, ks))
    ratio = lambda a, b: (a / b) if a and b else None
    rows["dps"].append(ratio(kb["dps"], cb["dps"]))
    rows["srv_ns"].append(ratio(kb["srv_ns"], cb["srv_ns"]))
    rows["cli_ns"].append(ratio(kb["cli_ns"], cb["cli_ns"]))
    rows["max_ms"].append(ratio(ks["max_ms"], cs["max_ms"]))
    rows["kb"].append(ratio(kb["kb"], cb["kb"]))
    rows["hs"].append(ratio(kb["hs"], cb["hs"]))
names = {"dps": ("fanout-10k deliveries/s ÷ ceiling raw 10000 200", ">= 0.90"),
         "srv_ns": ("server CPU per delivery ÷ ceiling server's", "<= 1.15"),
         "cli_ns": ("loadtest CPU per delivery ÷ ceiling client's", "<= 0.8"),
         "max_ms": ("sparse-10k time to last client ÷ ceiling raw 10000 1", "<= 1.0"),
         "kb": ("idle server RSS per connection ÷ ceiling raw's", "<= 1.2"),
         "hs": ("handshakes/s ÷ ceiling's (fanout-10k connect phase)", ">= 1.0")}
print(f"\n{len(raw)} rounds after a warm-up, {out}\n")
print("| Figure | Goal | median ratio (min..max) |\n|---|---|---|")
for k, (name, goal) in names.items():
    v = [x for x in rows[k] if x is not None]
    cell = f"**{statistics.median(v):.2f}** ({min(v):.2f}..{max(v):.2f})" if v else "n/a"
    print(f"| {name} | {goal} | {cell} |")
print("\nAbsolute figures per round (ceiling | courier):")
for r, cb, kb, cs, ks in raw:
    f = lambda x, p=0: "n/a" if x is None else f"{x:.{p}f}"
    print(f"round {r}: burst {cb['dps']/1e6:.2f} | {kb['dps']/1e6:.2f} M/s, server {f(cb['srv_ns'])} | {f(kb['srv_ns'])} ns, "
          f"client {f(cb['cli_ns'])} | {f(kb['cli_ns'])} ns, lost {kb['lost']}; sparse last client {cs['max_ms']:.1f} | {ks['max_ms']:.1f} ms, "
          f"lost {ks['lost']}; idle {cb['kb']:.2f} | {kb['kb']:.2f} KB/conn; handshakes {cb['hs']:.0f} | {kb['hs']:.0f}/s")
PY
