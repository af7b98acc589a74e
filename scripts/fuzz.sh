#!/usr/bin/env bash
# Fuzzes courier's parsers of untrusted input, one cargo-fuzz target after another, each for
# SECONDS_PER_TARGET on one core (one job, one worker), and prints a table per target: executions,
# exec/s, corpus size, crashes (with artifact paths), and the total. Exits 1 if any target crashed.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 60 s: 4 targets in 4 min, ~16 M executions
#                                              at the rates measured on a 2-core box, see RELIABILITY.md)
#   TARGETS="token ws_frames" scripts/fuzz.sh 30     (a subset)
#   SANITIZER=address scripts/fuzz.sh 150            (AddressSanitizer: 4-7x fewer executions)
#
# No sanitizer by default: courier forbids `unsafe`, so what fuzzing finds here are panics, broken
# invariants, overflows (debug assertions and overflow checks are on), stack overflows and
# timeouts — all caught without ASan, which costs 4-7x the executions here.
#
# Needs a nightly toolchain and cargo-fuzz (libFuzzer; Linux or macOS):
#   rustup toolchain install nightly && cargo install cargo-fuzz
# Targets and their input layouts: fuzz/fuzz_targets/*.rs. Seeds (committed, read-only):
# fuzz/corpus-seeds/<target>/; the grown corpus goes to fuzz/corpus/<target>/ and crash inputs to
# fuzz/artifacts/<target>/ (both git-ignored). Replay an artifact (from fuzz/):
#   cargo +nightly fuzz run -s none --target-dir target/none <target> artifacts/<target>/crash-…
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS="${1:-60}"
TARGETS="${TARGETS:-ws_frames token redis_payload notify_body}"
SANITIZER="${SANITIZER:-none}"
# One build directory per sanitizer, so switching does not rebuild everything.
BUILD=(-O -a -s "$SANITIZER" --target-dir "target/$SANITIZER")
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
case "$SECS" in '' | *[!0-9]*) echo "SECONDS_PER_TARGET must be a whole number" >&2; exit 2 ;; esac
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz not found: cargo install cargo-fuzz" >&2; exit 2; }

# Release build with debug assertions and overflow checks.
cargo +nightly fuzz build "${BUILD[@]}"
LOGS="$(mktemp -d)"
trap 'rm -rf "$LOGS"' EXIT

for t in $TARGETS; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "fuzzing $t for ${SECS}s ..." >&2
  # One job on one worker: one core (libFuzzer then runs it as a child process, logging to
  # fuzz-0.log and copying that log to its own output). -timeout: an input slower than 10 s is a
  # finding too. Whether it crashed is read from the log, not from the exit status.
  cargo +nightly fuzz run "${BUILD[@]}" "$t" "corpus/$t" "corpus-seeds/$t" -- \
    -max_total_time="$SECS" -jobs=1 -workers=1 -print_final_stats=1 -timeout=10 \
    >"$LOGS/$t.log" 2>&1 || true
  rm -f fuzz-0.log
done

python3 - "$LOGS" $TARGETS <<'PY'
import re, sys
logs, targets = sys.argv[1], sys.argv[2:]
rows, crashed = [], False
for t in targets:
    text = open(f"{logs}/{t}.log", errors="replace").read()
    stat = lambda k: int(m.group(1)) if (m := re.search(rf"stat::{k}:\s+(\d+)", text)) else 0
    corp = re.findall(r"corp: (\d+)/", text)
    arts = sorted(set(re.findall(r"Test unit written to (\S+)", text)))
    failed = bool(arts) or "ERROR: libFuzzer" in text or "stat::number_of_executed_units" not in text
    crashed |= failed
    rows.append((t, stat("number_of_executed_units"), stat("average_exec_per_sec"),
                 int(corp[-1]) if corp else 0, len(arts) or int(failed), arts))
    if failed:
        # The first lines of the report: what crashed, and where.
        head = [l for l in text.splitlines() if re.search(r"panicked|ERROR|SUMMARY|Test unit", l)]
        print(f"--- {t}:", *head[:8], sep="\n    ", file=sys.stderr)
print(f"{'target':<15} {'executions':>12} {'exec/s':>8} {'corpus':>7} {'crashes':>8}  artifacts")
for t, n, rate, corp, c, arts in rows:
    print(f"{t:<15} {n:>12,} {rate:>8,} {corp:>7,} {c:>8}  {' '.join(arts) or '-'}")
print(f"{'total':<15} {sum(r[1] for r in rows):>12,} {'':>8} {sum(r[3] for r in rows):>7,} "
      f"{sum(r[4] for r in rows):>8}")
sys.exit(1 if crashed else 0)
PY
