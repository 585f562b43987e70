#!/usr/bin/env bash
# Benchmarks dialtone's inbound-call webhook against a bare axum responder, side by side in one
# run (shared/benchmarking.md): alternating A B A B closed-loop runs, then a fixed-rate run for
# latency; server CPU per request from /proc/PID/stat. Durable logging is on (SQLite, WAL,
# synchronous=FULL): every request is a distinct call whose event is committed before the answer.
#
#   bash scripts/bench-webhook.sh [ROUNDS=3] [SECONDS=10] [RATE=2000]
# Results: printed, and written to bench-results/webhook-<timestamp>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; seconds=${2:-10}; rate=${3:-2000}; conns=64
cargo build --release -q -p dialtone -p dialtone-server --examples --bins
bin=target/release; ex=target/release/examples
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p bench-results

start() { # name, command... → sets URL_<name>, PID_<name>
  local name=$1; shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  local pid=$!
  for _ in $(seq 100); do grep -q 'listening on' "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  local url; url=$(sed -n 's/^listening on //p' "$work/$name.out")
  [ -n "$url" ] || { echo "$name did not start:"; cat "$work/$name.err"; exit 1; }
  printf -v "URL_$name" '%s' "$url"; printf -v "PID_$name" '%s' "$pid"
}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, in clock ticks
ticks=$(getconf CLK_TCK)

start bare "$ex/bare_responder" 127.0.0.1:0
start dialtone "$bin/dialtone" serve --demo --listen 127.0.0.1:0 --database "sqlite://$work/bench.db"

run() { # name, extra loadgen flags → JSON line with cpu_us_per_request added
  local name=$1; shift
  local url_var="URL_$name" pid_var="PID_$name"
  local before; before=$(cpu "${!pid_var}")
  local out; out=$("$ex/loadgen" --url "${!url_var}/twilio/voice" --seconds "$seconds" "$@")
  local after; after=$(cpu "${!pid_var}")
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); r['server']=sys.argv[2]; r['cpu_us_per_request']=round((int(sys.argv[4])-int(sys.argv[3]))/int(sys.argv[5])*1e6/max(r['requests'],1),2); print(json.dumps(r))" "$out" "$name" "$before" "$after" "$ticks"
}

results="$work/results.jsonl"
"$ex/loadgen" --url "$URL_bare/twilio/voice" --seconds 2 --connections $conns >/dev/null   # warm up
"$ex/loadgen" --url "$URL_dialtone/twilio/voice" --seconds 2 --connections $conns >/dev/null
for r in $(seq "$rounds"); do
  echo "round $r/$rounds: closed loop, $conns connections, ${seconds}s each" >&2
  run bare --connections $conns | sed 's/^{/{"mode":"closed",/' >>"$results"
  run dialtone --connections $conns | sed 's/^{/{"mode":"closed",/' >>"$results"
done
echo "fixed rate: $rate req/s, ${seconds}s each" >&2
run bare --rate "$rate" | sed 's/^{/{"mode":"rate",/' >>"$results"
run dialtone --rate "$rate" | sed 's/^{/{"mode":"rate",/' >>"$results"

out="bench-results/webhook-$(date -u +%Y%m%dT%H%M%SZ).json"
python3 - "$results" "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(server, mode, key):
    vals = [r[key] for r in rows if r["server"] == server and r["mode"] == mode]
    return statistics.median(vals) if vals else float("nan")
summary = {
    "closed_loop_rps": {"bare": med("bare", "closed", "rps"), "dialtone": med("dialtone", "closed", "rps")},
    "cpu_us_per_request": {"bare": med("bare", "closed", "cpu_us_per_request"), "dialtone": med("dialtone", "closed", "cpu_us_per_request")},
    "fixed_rate_latency_ms": {s: {"p50": med(s, "rate", "p50_ms"), "p99": med(s, "rate", "p99_ms")} for s in ("bare", "dialtone")},
    "errors": sum(r["errors"] for r in rows),
}
summary["throughput_ratio"] = round(summary["closed_loop_rps"]["dialtone"] / summary["closed_loop_rps"]["bare"], 3)
json.dump({"summary": summary, "runs": rows}, open(sys.argv[2], "w"), indent=2)
s = summary
print(f"closed loop (median of rounds): bare {s['closed_loop_rps']['bare']:.0f} req/s, dialtone {s['closed_loop_rps']['dialtone']:.0f} req/s, ratio {s['throughput_ratio']:.2f}")
print(f"server CPU per request: bare {s['cpu_us_per_request']['bare']:.1f} us, dialtone {s['cpu_us_per_request']['dialtone']:.1f} us")
for srv in ("bare", "dialtone"):
    l = s["fixed_rate_latency_ms"][srv]
    print(f"fixed rate latency {srv}: p50 {l['p50']:.2f} ms, p99 {l['p99']:.2f} ms")
print(f"errors: {s['errors']}")
print(f"written to {sys.argv[2]}")
PY
