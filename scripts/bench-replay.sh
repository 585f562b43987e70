#!/usr/bin/env bash
# The replay speed benchmark: a day of about 200,000 calls (2.315 arrivals/s for 86,400 s), two
# legs each under a 10/s dial limit, impatient callers, 80 % of agents answering, through the real
# dialtone router and call log in virtual time. Prints the replay's own summary (calls per second
# of wall time) and the peak memory.
#
#   bash scripts/bench-replay.sh [SEED=1]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p dialtone
out=$(mktemp); trap 'rm -f "$out"' EXIT
/usr/bin/time -v target/release/dialtone replay --arrivals-per-second 2.315 --duration-s 86400 \
  --dial-limit 10 --fanout 2 --patience-mean-s 60 --answer-probability 0.8 --ring-median-s 5 \
  --seed "${1:-1}" 2>"$out"
grep -E 'Maximum resident set size|Elapsed \(wall clock\)' "$out" | sed 's/^\s*//'
