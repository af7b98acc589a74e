# Sourced by the scripts here (`. scripts/lib.sh` from the repository root): one copy of each
# small helper they share.

# free_port: a TCP port on 127.0.0.1 that was free a moment ago, below the kernel's ephemeral
# range: a port the kernel handed out could, once its listener is restarted (a Redis killed and
# started again), already be the source port of one of thousands of client sockets.
free_port() {
  python3 - <<'PY'
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for port in random.sample(range(10000, max(low, 10001)), min(500, max(low - 10000, 1))):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port)); print(port); break
    except OSError:
        continue
    finally:
        s.close()
else:
    raise SystemExit("free_port: no free port below the ephemeral range")
PY
}

# wait_port PORT [TRIES]: until something accepts on 127.0.0.1:PORT, polling every 0.1 s
# (default 50 tries); returns 1 if nothing ever did.
wait_port() {
  local _
  for _ in $(seq 1 "${2:-50}"); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

# metric PORT NAME: the value of the unlabelled series NAME in 127.0.0.1:PORT/metrics (empty if
# it is absent).
metric() { curl -s "127.0.0.1:$1/metrics" | awk -v k="$2" '$1 == k {print $2}'; }

# The one build every script here measures with: the `dist` profile (Cargo.toml: release with fat
# LTO and one codegen unit; binaries in target/dist/), not the README's quicker `--release`, so a
# published figure never shifts with whichever profile was built last. BENCHMARKS.md "Build
# profiles" has the trade. COURIER_PROFILE=release gives a quick look that is not for publishing.
PROFILE="${COURIER_PROFILE:-dist}"
BIN_DIR="target/$PROFILE"
