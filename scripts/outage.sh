#!/usr/bin/env bash
# A storage outage under load: `dialtone carrier` places calls at RATE a second (default 50)
# against a release `dialtone serve --demo`; after 30 s another process takes the database's
# write lock for OUTAGE_S seconds (default 1,800: half an hour), so no commit can succeed; then
# lets go. Every 5 s it samples the server's RSS and what the call log holds back (healthz).
# At the end: every call the carrier placed was routed (answered by dialtone, backup included)
# and is in the call log once the spool is written back; peak RSS (the issue's bound: 200 MB).
#
#   bash scripts/outage.sh [OUTAGE_S=1800] [RATE=50]
# Results: printed, and written to bench-results/outage-<timestamp>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
outage=${1:-1800}; rate=${2:-50}
cargo build --release -q -p dialtone
bin=target/release/dialtone
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p bench-results
db="$work/outage.db"

"$bin" serve --demo --listen 127.0.0.1:0 --database "sqlite://$db" >"$work/serve.out" 2>"$work/serve.err" &
server=$!
for _ in $(seq 100); do grep -q 'listening on' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/serve.out")
[ -n "$url" ] || { echo "dialtone did not start:"; cat "$work/serve.err"; exit 1; }

(
  start=$(date +%s)
  while kill -0 "$server" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$server/status" 2>/dev/null || echo 0)
    held=$(curl -s -m 2 "$url/healthz" | python3 -c 'import json,sys
try:
    w = json.load(sys.stdin)["call_log"]; print(w["spooled"], w["spilled_bytes"])
except Exception:
    print("nan nan")')
    echo "$(( $(date +%s) - start )) $rss $held" >>"$work/samples.txt"
    sleep 5
  done
) &

calls_s=$(( outage + 90 ))
echo "outage: $rate calls/s for ${calls_s}s; the database locked from 30 s for ${outage}s" >&2
"$bin" carrier --voice-url "$url/twilio/voice" --status-callback "$url/twilio/status" \
  --account-sid AC00000000000000000000000000000001 --auth-token demo-auth-token \
  --to +14045550100 --to +14045550150 --menu-choice 1 --menu-choice 2 \
  --calls $(( rate * calls_s * 2 )) --arrivals-per-second "$rate" --duration-s "$calls_s" \
  --answer-probability 0.8 --ring-median-s 2 --talk-mean-s 10 \
  --cdr-out "$work/cdr.jsonl" --quiet --json >"$work/carrier.json" &
carrier=$!
sleep 30
python3 - "$db" "$outage" <<'PY' &
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
c.execute("BEGIN IMMEDIATE")
time.sleep(float(sys.argv[2]))
c.execute("ROLLBACK")
PY
wait "$carrier"
# The spool written back.
for _ in $(seq 600); do
  curl -s "$url/healthz" | python3 -c 'import json,sys; w=json.load(sys.stdin)["call_log"]; sys.exit(0 if w["spooled"] == 0 and w["spilled_bytes"] == 0 else 1)' && break
  sleep 1
done
kill "$server"; wait "$server" 2>/dev/null || true

out="bench-results/outage-$(date -u +%Y%m%dT%H%M%SZ).json"
python3 - "$work" "$out" "$outage" "$rate" <<'PY'
import json, sqlite3, sys
work, out, outage, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
cdr = [json.loads(l) for l in open(f"{work}/cdr.jsonl") if l.strip()]
placed = {c["sid"] for c in cdr if c.get("direction") == "inbound"}
failed = sum(1 for c in cdr if c.get("direction") == "inbound" and c.get("status") == "failed")
db = sqlite3.connect(f"{work}/outage.db")
logged = {r[0] for r in db.execute("SELECT sid FROM calls")}
routing = dict(db.execute("SELECT routing, count(*) FROM calls GROUP BY 1").fetchall())
samples = [l.split() for l in open(f"{work}/samples.txt")]
peak_rss = max(int(s[1]) for s in samples) / 1024
peak_spilled = max((int(s[3]) for s in samples if s[3] != "nan"), default=0)
summary = {"outage_s": outage, "rate": rate, "calls_placed": len(placed), "calls_failed_at_carrier": failed,
           "calls_logged": len(placed & logged), "calls_lost": len(placed - logged), "routing": routing,
           "peak_rss_mib": round(peak_rss, 1), "peak_spilled_bytes": peak_spilled}
json.dump({"summary": summary, "samples": samples}, open(out, "w"), indent=2)
print(f"placed {len(placed)} calls ({failed} failed at the carrier); logged {summary['calls_logged']}, lost {summary['calls_lost']}; routing {routing}")
print(f"peak RSS {summary['peak_rss_mib']} MiB; peak spilled to disk {peak_spilled} bytes")
ok = summary["calls_lost"] == 0 and failed == 0 and peak_rss < 200
print("outage: " + ("ok" if ok else "FAILED") + f"; written to {out}")
sys.exit(0 if ok else 1)
PY
