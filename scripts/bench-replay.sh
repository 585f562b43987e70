#!/usr/bin/env bash
# The replay speed benchmark: the built-in `business-day` scenario (about 200,000 calls over a
# New York business day's curve, 200 companies with simulcall, single-number and menu flows,
# impatient callers, a 15/s dial limit) through the real dialtone router and call log in
# virtual time. Prints the replay's summary (calls simulated per second of wall time), the
# wall time and the peak memory.
#
#   bash scripts/bench-replay.sh [SEED=1]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p dialtone
out=$(mktemp); trap 'rm -f "$out"' EXIT
/usr/bin/time -v target/release/dialtone replay business-day --seed "${1:-1}" 2>"$out"
grep -E 'Maximum resident set size|Elapsed \(wall clock\)' "$out" | sed 's/^\s*//'
