#!/usr/bin/env bash
# The webhook on PostgreSQL against the webhook on SQLite, one run after the other on this
# machine (scripts/bench-webhook.sh for each, the same rounds, seconds and fixed rate): closed-loop
# throughput, CPU per request (PostgreSQL's processes included), and fixed-rate latency.
#
#   bash scripts/bench-postgres.sh [ROUNDS=3] [SECONDS=10] [RATE=2000]
# Results: printed, and written to bench-results/webhook-{sqlite,postgres}-<timestamp>.json and
# bench-results/postgres-vs-sqlite-<timestamp>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; seconds=${2:-10}; rate=${3:-2000}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench-results
for db in sqlite postgres; do
  echo "== $db" >&2
  DATABASE=$db OUT="bench-results/webhook-$db-$stamp.json" bash scripts/bench-webhook.sh "$rounds" "$seconds" "$rate"
done
python3 - "bench-results/webhook-sqlite-$stamp.json" "bench-results/webhook-postgres-$stamp.json" "bench-results/postgres-vs-sqlite-$stamp.json" <<'PY'
import json, sys
lite, pg = (json.load(open(p))["summary"] for p in sys.argv[1:3])
summary = {
    "rps": {"sqlite": lite["closed_loop_rps"]["dialtone"], "postgres": pg["closed_loop_rps"]["dialtone"]},
    "cpu_us_per_request": {"sqlite": lite["cpu_us_per_request"]["dialtone"], "postgres": pg["cpu_us_per_request"]["dialtone"]},
    "fixed_rate_p99_ms": {"sqlite": lite["fixed_rate_latency_ms"]["dialtone"]["p99"], "postgres": pg["fixed_rate_latency_ms"]["dialtone"]["p99"]},
    "fixed_rate_p50_ms": {"sqlite": lite["fixed_rate_latency_ms"]["dialtone"]["p50"], "postgres": pg["fixed_rate_latency_ms"]["dialtone"]["p50"]},
}
summary["throughput_postgres_over_sqlite"] = round(summary["rps"]["postgres"] / summary["rps"]["sqlite"], 3)
json.dump(summary, open(sys.argv[3], "w"), indent=2)
print(f"closed loop: SQLite {summary['rps']['sqlite']:.0f} req/s, PostgreSQL {summary['rps']['postgres']:.0f} req/s "
      f"({summary['throughput_postgres_over_sqlite']:.2f} of SQLite; goal at least 0.5)")
print(f"CPU per request (database included): SQLite {summary['cpu_us_per_request']['sqlite']:.1f} us, "
      f"PostgreSQL {summary['cpu_us_per_request']['postgres']:.1f} us")
print(f"fixed rate p50/p99: SQLite {summary['fixed_rate_p50_ms']['sqlite']:.2f}/{summary['fixed_rate_p99_ms']['sqlite']:.2f} ms, "
      f"PostgreSQL {summary['fixed_rate_p50_ms']['postgres']:.2f}/{summary['fixed_rate_p99_ms']['postgres']:.2f} ms (goal: p99 under 5 ms)")
print(f"written to {sys.argv[3]}")
PY
