#!/usr/bin/env bash
# One dialtone node against two, on one PostgreSQL database, behind HAProxy, on this machine:
# the inbound-call webhook, every request a new call signed for the balancer's address
# (`loadgen`), rounds alternating one node / two nodes (which goes first alternating too):
# - closed loop: 64 connections for SECONDS, requests per second and the machine's CPU per
#   request (all cores busy, from /proc/stat: the nodes, PostgreSQL, HAProxy and the load
#   generator together);
# - fixed rate: RATE requests per second for SECONDS, p50/p99 latency from when each was due.
# Both nodes run in both configurations (the second idle in the first): only the balancer's
# backend list changes. On a machine of two cores a second node adds no core to serve with;
# the figure says what a second node costs and that nothing is lost between them.
#
#   bash scripts/bench-nodes.sh [SECONDS=10] [ROUNDS=3] [RATE=1000]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}; rounds=${2:-3}; rate=${3:-1000}
command -v haproxy >/dev/null || bash scripts/test-deps.sh >/dev/null
cargo build --release -q -p dialtone -p dialtone-server --examples --bins
bin=target/release; ex=target/release/examples
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$work/haproxy.pid" ] && kill "$(cat "$work/haproxy.pid")" 2>/dev/null; rm -rf "$work"' EXIT
url=$(bash scripts/postgres.sh database bench_nodes)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
lb=$(free_port); port_a=$(free_port); port_b=$(free_port)
public="http://127.0.0.1:$lb"

node() { # port
  "$bin/dialtone" serve --demo --listen "127.0.0.1:$1" --database "$url" --public-url "$public" \
    --spool-dir "$work/spool-$1" >"$work/node-$1.out" 2>"$work/node-$1.err" &
  for _ in $(seq 100); do grep -q 'listening on' "$work/node-$1.out" 2>/dev/null && return; sleep 0.1; done
  echo "node on $1 did not start:"; cat "$work/node-$1.err"; exit 1
}
balance() { # ports...
  [ -f "$work/haproxy.pid" ] && { kill "$(cat "$work/haproxy.pid")" 2>/dev/null || true; sleep 0.5; }
  { printf 'global\n  maxconn 4096\n  pidfile %s\n' "$work/haproxy.pid"
    printf 'defaults\n  mode http\n  timeout connect 1s\n  timeout client 30s\n  timeout server 15s\n'
    printf '  retries 3\n  option redispatch 1\n  retry-on all-retryable-errors\n  option http-buffer-request\n'
    printf 'frontend carrier\n  bind 127.0.0.1:%s\n  default_backend nodes\n' "$lb"
    printf 'backend nodes\n  balance roundrobin\n'
    for p in "$@"; do printf '  server n%s 127.0.0.1:%s\n' "$p" "$p"; done
  } >"$work/haproxy.cfg"
  haproxy -D -f "$work/haproxy.cfg"
  for _ in $(seq 50); do curl -sf "$public/healthz" >/dev/null && return; sleep 0.1; done
  echo "haproxy did not start"; exit 1
}
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; } # ticks, all cores
ticks=$(getconf CLK_TCK)

node "$port_a"
node "$port_b"
results="$work/results.jsonl"
next=0
run() { # label, ports...
  local label=$1; shift
  balance "$@"
  local before; before=$(busy)
  local out; out=$("$ex/loadgen" --url "$public/twilio/voice" --connections 64 --seconds "$seconds" --first "$next")
  local after; after=$(busy)
  next=$((next + 2000000))
  python3 - "$label" "$out" "$before" "$after" "$ticks" >>"$results" <<'PY'
import json, sys
label, out, before, after, ticks = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print(json.dumps({"mode": "closed", "nodes": label, "rps": out["rps"], "errors": out["errors"],
                  "cpu_us_per_request": round((after - before) / ticks * 1e6 / max(out["requests"], 1), 1)}))
PY
}
rated() { # label, ports...
  local label=$1; shift
  balance "$@"
  local out; out=$("$ex/loadgen" --url "$public/twilio/voice" --rate "$rate" --seconds "$seconds" --first "$next")
  next=$((next + 2000000))
  python3 -c 'import json, sys; o = json.loads(sys.argv[2]); print(json.dumps({"mode": "rate", "nodes": sys.argv[1], "p50_ms": o["p50_ms"], "p99_ms": o["p99_ms"], "errors": o["errors"]}))' "$label" "$out" >>"$results"
}

"$ex/loadgen" --url "$public/twilio/voice" --connections 64 --seconds 2 --first 900000000 >/dev/null 2>&1 || true
for r in $(seq "$rounds"); do
  echo "round $r/$rounds: 64 connections, ${seconds}s each" >&2
  # In turn first, so that neither always meets the database younger (autovacuum, plans).
  if [ $((r % 2)) = 1 ]; then
    run one "$port_a"; run two "$port_a" "$port_b"
  else
    run two "$port_a" "$port_b"; run one "$port_a"
  fi
done
echo "fixed rate: $rate req/s, ${seconds}s each" >&2
rated one "$port_a"
rated two "$port_a" "$port_b"

mkdir -p bench-results
out="bench-results/nodes-$(date -u +%Y%m%dT%H%M%SZ).json"
python3 - "$results" "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(nodes, mode, key):
    return statistics.median(r[key] for r in rows if r["nodes"] == nodes and r["mode"] == mode)
s = {n: {"rps": med(n, "closed", "rps"), "cpu_us_per_request": med(n, "closed", "cpu_us_per_request"),
         "p50_ms": med(n, "rate", "p50_ms"), "p99_ms": med(n, "rate", "p99_ms")} for n in ("one", "two")}
s["errors"] = sum(r["errors"] for r in rows)
json.dump({"summary": s, "runs": rows}, open(sys.argv[2], "w"), indent=2)
for n in ("one", "two"):
    x = s[n]
    print(f"{n} node{'s' if n == 'two' else ''} behind HAProxy: {x['rps']:.0f} webhooks/s closed loop, "
          f"{x['cpu_us_per_request']:.0f} us of machine CPU each; p50/p99 {x['p50_ms']:.2f}/{x['p99_ms']:.2f} ms at the fixed rate")
print(f"two nodes / one: {s['two']['rps'] / s['one']['rps']:.2f} of the throughput; errors: {s['errors']}")
print(f"written to {sys.argv[2]}")
PY
