#!/usr/bin/env bash
# Fuzzes every parser a stranger can reach, CASES generated inputs per target (default a
# million): webhook forms and TwiML documents (crates/dialtone-twiml/tests/fuzz.rs),
# configuration files, website visits, callback positions and X-Forwarded-For chains
# (crates/dialtone-core/tests/fuzz.rs), and, through the real router on a real SQLite store,
# signed webhooks, API queries and cursors, DNI session bodies and AMP queries
# (crates/dialtone-server/tests/fuzz.rs). Property-based (proptest) on the stable toolchain; a
# failure prints the smallest input that fails and proptest keeps it in
# proptest-regressions/ to be tried first next time. CI runs the same targets with 256 cases.
#
#   bash scripts/fuzz.sh [CASES=1000000]
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${1:-1000000}
for crate in dialtone-twiml dialtone-core dialtone-server; do
  start=$(date +%s)
  PROPTEST_CASES=$cases cargo test --release -q -p "$crate" --test fuzz -- --test-threads 2
  echo "$crate: $cases cases per target in $(( $(date +%s) - start )) s" >&2
done
