#!/usr/bin/env bash
# courier vs this machine's fan-out ceiling (../shared/ceiling), side by side in one session:
# one discarded warm-up round, then ROUNDS interleaved rounds of
#   ceiling raw 10000 200  |  courier fanout-10k   (burst fan-out)
#   ceiling raw 10000 1    |  courier sparse-10k   (one event to each of 10k: time to last client)
#   for each RATE in SUSTAINED_RATES (deliveries/s, multiples of 10000):
#   ceiling raw 10000 RATE/10000 --pace-secs 1 | courier sustained-sparse --rate RATE
#                                                (sustained sparse: every event to one connection)
# and a ratio table (median of the per-round ratios, with min..max). Each courier run is a
# separate courier process (dist build) measured by the load tester with --server-pid.
#
#   scripts/ceiling-compare.sh [ROUNDS]        (default 3; env CEILING=../shared/ceiling/run.sh,
#   ONLY=sustained skips the burst rows; MAX_CPU_RATIO=R makes it a gate: exit 1 when the median
#   40k/s server-CPU ratio exceeds R or courier's highest passing rate is below the ceiling's in most
#   rounds — scripts/perf-gate.sh's VS_CEILING=1 mode;
#   COURIER_BIN=another courier binary for an A/B against an older build, SUSTAINED_RATES="20000
#   40000 60000 80000" — empty skips the sustained rows, P99_MS=10 the sustained latency bound)
# The sustained rows: server CPU per delivery at 40k/s, and each side's highest swept rate whose
# p99 <= P99_MS with nothing lost (a courier step marked tester limited counts as not passed and
# is flagged in the absolute figures, so the tester's limit is never read as the server's).
# Writes every raw result under results/ceiling-<stamp>/ and prints the table (markdown).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ROUNDS="${1:-3}"
SUSTAINED_RATES="${SUSTAINED_RATES-20000 40000 60000 80000}"
P99_MS="${P99_MS:-10}"
ONLY="${ONLY:-}"
CEILING="${CEILING:-../shared/ceiling/run.sh}"
OUT="results/ceiling-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"
cargo build --profile "$PROFILE" -q -p courier -p loadtest


courier_run() { # scenario file, output json, extra loadtest flags…
  local scenario=$1 json=$2; shift 2
  local port; port="$(free_port)"
  "${COURIER_BIN:-$BIN_DIR/courier}" --listen "127.0.0.1:$port" --jwt-secret S --api-key K >"$json.server.log" 2>&1 &
  local pid=$!
  wait_port "$port" || true
  timeout 150 "$BIN_DIR/loadtest" --scenario "$scenario" --target "ws://127.0.0.1:$port/ws/notifications/" \
    --jwt-secret S --api-key K --server-pid "$pid" --no-progress --json "$json" "$@" >"$json.txt" 2>&1 || true
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}

ceiling_run() { # n m output, extra ceiling arguments…
  local n=$1 m=$2 json=$3; shift 3
  "$CEILING" raw "$n" "$m" "$@" >"$json.txt" 2>&1 || true
  tail -n +2 "$json.txt" >"$json" || true
}

for r in $(seq 0 "$ROUNDS"); do
  echo "round $r of $ROUNDS (0 = warm-up, discarded)" >&2
  if [ "$ONLY" != sustained ]; then
    ceiling_run 10000 200 "$OUT/r$r-ceiling-burst.json"
    courier_run loadtest/scenarios/fanout-10k.toml "$OUT/r$r-courier-burst.json"
    ceiling_run 10000 1 "$OUT/r$r-ceiling-sparse.json"
    courier_run loadtest/scenarios/sparse-10k.toml "$OUT/r$r-courier-sparse.json"
  fi
  for rate in $SUSTAINED_RATES; do
    ceiling_run 10000 "$((rate / 10000))" "$OUT/r$r-ceiling-sustained-$rate.json" --pace-secs 1
    courier_run loadtest/scenarios/sustained-sparse.toml "$OUT/r$r-courier-sustained-$rate.json" \
      --rate "$rate" --rate-duration 5s
  done
done

python3 - "$OUT" "$ROUNDS" "$SUSTAINED_RATES" "$P99_MS" "${MAX_CPU_RATIO:-}" <<'PY'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rates, p99_bound = [int(x) for x in sys.argv[3].split()], float(sys.argv[4])
max_cpu_ratio = float(sys.argv[5]) if sys.argv[5] else None
gate_failed = False
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
        if cb or kb or cs or ks:
            print(f"round {r}: a run failed; see {out}", file=sys.stderr)
        continue
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
def ceil_sus(d):  # a paced run: warm phases' medians; passed only if every warm phase delivered all
    warm = d["phases"][1:] or d["phases"]
    med = lambda k: statistics.median(p[k] for p in warm)
    whole = all(p["delivered"] >= p["expected"] for p in warm)
    p99 = med("p99_us") / 1e3
    return {"p99": p99, "srv_ns": med("server_cpu_ns_per_delivery"), "ok": whole and p99 <= p99_bound,
            "limited": False}
def cour_sus(d):
    c = cour(d)
    limited = bool((d.get("tester_limit") or {}).get("limited"))
    p99 = d["latency_us"]["p99"] / 1e3
    return {"p99": p99, "srv_ns": c["srv_ns"], "limited": limited,
            "ok": c["lost"] == 0 and p99 <= p99_bound and not limited}
sus = []  # per round: (round, {rate: (ceiling, courier)})
for r in range(1, rounds + 1):
    got = {}
    for rate in rates:
        c, k = load(f"{out}/r{r}-ceiling-sustained-{rate}.json"), load(f"{out}/r{r}-courier-sustained-{rate}.json")
        if c and k:
            got[rate] = (ceil_sus(c), cour_sus(k))
    if got:
        sus.append((r, got))
def best(got, side):  # highest rate passed, with every lower swept rate passed too
    top = 0
    for rate in sorted(got):
        if not got[rate][side]["ok"]:
            break
        top = rate
    return top
print(f"\n{max(len(raw), len(sus))} rounds after a warm-up, {out}\n")
print("| Figure | Goal | median ratio (min..max) |\n|---|---|---|")
for k, (name, goal) in (names.items() if raw else []):
    v = [x for x in rows[k] if x is not None]
    cell = f"**{statistics.median(v):.2f}** ({min(v):.2f}..{max(v):.2f})" if v else "n/a"
    print(f"| {name} | {goal} | {cell} |")
if sus:
    ratios = {"max": [], "cpu40": []}
    for r, got in sus:
        bc, bk = best(got, 0), best(got, 1)
        if bc:  # courier passing no swept rate is a ratio of 0, not a missing figure
            ratios["max"].append(bk / bc)
        if 40000 in got and got[40000][0]["srv_ns"] and got[40000][1]["srv_ns"]:
            ratios["cpu40"].append(got[40000][1]["srv_ns"] / got[40000][0]["srv_ns"])
    for key, name, goal in [("max", f"sustained sparse: highest swept rate at p99 <= {p99_bound:g} ms ÷ ceiling's", ">= 0.9"),
                            ("cpu40", "sustained sparse: server CPU per delivery at 40k/s ÷ ceiling's", "<= 1.0")]:
        v = ratios[key]
        cell = f"**{statistics.median(v):.2f}** ({min(v):.2f}..{max(v):.2f})" if v else "n/a (no rate passed, or 40000 not swept)"
        print(f"| {name} | {goal} | {cell} |")
    if max_cpu_ratio is not None:  # the gate (scripts/perf-gate.sh VS_CEILING=1): CPU ratio and latency
        cpu = ratios["cpu40"]
        lat = [best(got, 1) >= best(got, 0) for _, got in sus]
        gate_failed = not cpu or statistics.median(cpu) > max_cpu_ratio or lat.count(False) > len(lat) // 2
        print(f"\ngate: server CPU ratio {statistics.median(cpu) if cpu else float('nan'):.2f} (max {max_cpu_ratio}), "
              f"courier held the ceiling's p99 <= {p99_bound:g} ms rate in {lat.count(True)} of {len(lat)} rounds: "
              + ("FAIL" if gate_failed else "PASS"))
print("\nAbsolute figures per round (ceiling | courier):")
for r, cb, kb, cs, ks in raw:
    f = lambda x, p=0: "n/a" if x is None else f"{x:.{p}f}"
    print(f"round {r}: burst {cb['dps']/1e6:.2f} | {kb['dps']/1e6:.2f} M/s, server {f(cb['srv_ns'])} | {f(kb['srv_ns'])} ns, "
          f"client {f(cb['cli_ns'])} | {f(kb['cli_ns'])} ns, lost {kb['lost']}; sparse last client {cs['max_ms']:.1f} | {ks['max_ms']:.1f} ms, "
          f"lost {ks['lost']}; idle {cb['kb']:.2f} | {kb['kb']:.2f} KB/conn; handshakes {cb['hs']:.0f} | {kb['hs']:.0f}/s")
for r, got in sus:
    cells = []
    for rate in sorted(got):
        c, k = got[rate]
        mark = lambda x: ("ok" if x["ok"] else "over") + (" tester-limited" if x["limited"] else "")
        srv = lambda x: "n/a" if x["srv_ns"] is None else f"{x['srv_ns'] / 1e3:.1f}"
        cells.append(f"{rate // 1000}k: p99 {c['p99']:.1f} ({mark(c)}) | {k['p99']:.1f} ms ({mark(k)}), "
                     f"server {srv(c)} | {srv(k)} µs")
    print(f"round {r} sustained: best {best(got, 0) // 1000}k | {best(got, 1) // 1000}k/s; " + "; ".join(cells))
sys.exit(1 if gate_failed else 0)
PY
