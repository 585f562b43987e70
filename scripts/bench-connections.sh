#!/usr/bin/env bash
# Hostile connections against the carrier's webhook (issue: "with 20,000 hostile idle
# connections open, a webhook's p99 stays under 100 ms"). In one run, against one release
# `dialtone serve --demo`:
# 1. baseline: the inbound-call webhook at a fixed rate (`loadgen --rate`, every request a new
#    signed call, latency from when each was due), nothing else connected;
# 2. the same while `examples/hostile.rs` holds as many idle connections as it can (HOSTILE,
#    default 20,000) from ADDRESSES loopback addresses (default 20), reopening each one the
#    server closes; then again with slow-header (slowloris) connections.
# Reports p50/p99 of each run, what the flood managed to hold, and what the server refused.
#
#   bash scripts/bench-connections.sh [RATE=200] [SECONDS=10]
# Results: printed, and written to bench-results/connections-<timestamp>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-200}; seconds=${2:-10}
hostile=${HOSTILE:-20000}; addresses=${ADDRESSES:-20}
cargo build --release -q -p dialtone -p dialtone-server --examples --bins
bin=target/release; ex=target/release/examples
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p bench-results
# The flood needs as many descriptors as it holds connections (the server raises its own).
ulimit -n "$(ulimit -Hn)"

"$bin/dialtone" serve --demo --listen 127.0.0.1:0 --database "sqlite://$work/bench.db" >"$work/serve.out" 2>"$work/serve.err" &
for _ in $(seq 100); do grep -q 'listening on' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/serve.out")
[ -n "$url" ] || { echo "dialtone did not start:"; cat "$work/serve.err"; exit 1; }
addr=${url#http://}
results="$work/results.jsonl"; first=0

webhook() { # label → one JSON line
  "$ex/loadgen" --url "$url/twilio/voice" --first "$first" --seconds "$seconds" --rate "$rate" \
    | sed "s/^{/{\"run\":\"$1\",/" >>"$results"
  first=$((first + 1000000))
}
flood() { # label, extra args → runs the webhook under the flood
  local label=$1; shift
  local flood_s; flood_s=$(python3 -c "print($seconds + 15)")
  "$ex/hostile" --addr "$addr" --connections "$hostile" --addresses "$addresses" --seconds "$flood_s" "$@" >"$work/$label.flood" &
  local pid=$!
  sleep 10 # let it open what it can
  curl -s "$url/healthz" | python3 -c 'import json,sys; print(json.dumps({"run": sys.argv[1], "healthz_connections": json.load(sys.stdin)["connections"]}))' "$label-during" >>"$results"
  webhook "$label"
  wait "$pid"
  sed "s/^{/{\"run\":\"$label-flood\",/" "$work/$label.flood" >>"$results"
}

echo "baseline: $rate webhooks/s for ${seconds}s" >&2
webhook baseline
echo "idle flood: $hostile connections from $addresses addresses" >&2
flood idle
echo "slow-header flood" >&2
flood slow --slow

out="bench-results/connections-$(date -u +%Y%m%dT%H%M%SZ).json"
python3 - "$results" "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {r["run"]: r for r in rows}
json.dump(rows, open(sys.argv[2], "w"), indent=2)
for run in ("baseline", "idle", "slow"):
    r = by.get(run, {})
    print(f"{run:9} webhook p50 {r.get('p50_ms', float('nan')):.2f} ms, p99 {r.get('p99_ms', float('nan')):.2f} ms, "
          f"max {r.get('max_ms', float('nan')):.2f} ms, errors {r.get('errors')}")
    f = by.get(f"{run}-flood")
    h = by.get(f"{run}-during")
    if f and h:
        print(f"          flood held at most {f['peak_open']} of {f['connections']} connections (opened {f['opened']}, "
              f"closed by the server {f['closed_by_server']}, failed {f['failed']}); server: {h['healthz_connections']}")
print(f"written to {sys.argv[2]}")
PY
