#!/usr/bin/env bash
# The tester's own cost, A/B: an old and a new `loadtest` binary against one courier, interleaved
# (a discarded warm-up, then ROUNDS rounds of burst fan-out: 5,000 connections of 500 users,
# 4 bursts x 20 events); prints tester CPU ns per delivery per round and the median new/old.
#   scripts/tester-ab.sh OLD_LOADTEST NEW_LOADTEST COURIER [ROUNDS]   (default 3)
set -u
OLD=$1; NEW=$2; COURIER=$3; ROUNDS=${4:-3}
ulimit -n 20000
$COURIER --listen 127.0.0.1:18600 --jwt-secret S --api-key K --handshake-burst-per-ip 100000 --handshake-rate-per-ip 100000 >/tmp/tab-courier.log 2>&1 &
CP=$!; sleep 0.5
run() { timeout 120 $1 --target ws://127.0.0.1:18600/ws/notifications/ --jwt-secret S --api-key K --server-pid $CP -c 5000 -u 500 --source-addrs 8 --bursts 4 --events-per-burst 20 --no-progress --json $2 >/dev/null 2>&1; }
for r in $(seq 0 $ROUNDS); do run $OLD /tmp/tab-old-$r.json; run $NEW /tmp/tab-new-$r.json; done
kill $CP
python3 - $ROUNDS <<'PY'
import json, statistics, sys
n = int(sys.argv[1]); rat = []
for r in range(1, n + 1):
    f = lambda p: (lambda d: 1e9 * d["tester"]["delivery_cpu_seconds"] / d["deliveries"]["received"])(json.load(open(p)))
    o, w = f(f"/tmp/tab-old-{r}.json"), f(f"/tmp/tab-new-{r}.json")
    rat.append(w / o); print(f"round {r}: old {o:.0f} ns, new {w:.0f} ns, new/old {w/o:.3f}")
print(f"median new/old {statistics.median(rat):.3f} ({min(rat):.3f}..{max(rat):.3f})")
PY
