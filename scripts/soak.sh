#!/usr/bin/env bash
# Soak: `dialtone carrier` places calls in real time against a release `dialtone serve --demo`
# for DURATION seconds (default an hour) at RATE calls a second (default 200), under a carrier
# dial limit, with status, leg and recording callbacks (the demo's main flow records, its menu
# flow takes a key press and dials in turn). Every 10 s it samples the server's resident memory
# (split as the kernel counts it: anonymous, the heap and SQLite's page caches; file-backed; shared,
# SQLite's WAL index) and open descriptors. At the end it checks that every call the carrier placed is in the call
# log (0 lost) and that memory and descriptors stayed flat after warm-up (the median of the last
# quarter under 10 % above the median of the first).
#
#   bash scripts/soak.sh [DURATION_S=3600] [RATE=200]
# Results: printed, and written to bench-results/soak-<timestamp>.json (samples included).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-3600}; rate=${2:-200}
cargo build --release -q -p dialtone
bin=target/release/dialtone
work=$(mktemp -d)
# On failure the work directory (samples, database, CDRs) is kept for a look.
trap 'rc=$?; kill $(jobs -p) 2>/dev/null || true; if [ $rc = 0 ]; then rm -rf "$work"; else echo "kept $work" >&2; fi' EXIT
mkdir -p bench-results
ulimit -n "$(ulimit -Hn)"

"$bin" serve --demo --listen 127.0.0.1:0 --database "sqlite://$work/soak.db" >"$work/serve.out" 2>"$work/serve.err" &
server=$!
for _ in $(seq 100); do grep -q 'listening on' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/serve.out")
[ -n "$url" ] || { echo "dialtone did not start:"; cat "$work/serve.err"; exit 1; }

sample() { # elapsed_s → "elapsed,rss_kib,fds,anon_kib,file_kib,shmem_kib"
  local rss fds
  rss=$(awk '/^(VmRSS|RssAnon|RssFile|RssShmem)/ {printf "%s ", $2}' "/proc/$server/status")
  fds=$(ls "/proc/$server/fd" | wc -l)
  set -- "$1" $rss
  echo "$1,$2,$fds,$3,$4,$5"
}
(
  start=$(date +%s)
  while kill -0 "$server" 2>/dev/null; do
    sample $(( $(date +%s) - start )) >>"$work/samples.csv"
    sleep 10
  done
) &
sampler=$!

echo "soak: $rate calls/s for ${duration}s against $url" >&2
# More calls than the duration can place: --duration-s ends the arrivals.
# The Fallback URL is set as in production (a second path for a webhook that fails in transit:
# in the session-8 hour one of 719,247 calls was lost without it).
"$bin" carrier --voice-url "$url/twilio/voice" --status-callback "$url/twilio/status" \
  --fallback-url "$url/twilio/voice" \
  --account-sid AC00000000000000000000000000000001 --auth-token demo-auth-token \
  --to +14045550100 --to +14045550150 --menu-choice 1 --menu-choice 2 --menu-choice "" \
  --calls $(( rate * duration * 2 )) --arrivals-per-second "$rate" --duration-s "$duration" \
  --dial-limit $(( rate * 3 )) --dial-burst 50 --answer-probability 0.8 --ring-median-s 2 \
  --talk-mean-s 10 --patience-mean-s 60 --cdr-out "$work/cdr.jsonl" --quiet --json >"$work/carrier.json"
sleep 5 # the last callbacks
kill "$sampler" 2>/dev/null || true
sample end >>"$work/samples.csv"
health=$(curl -s "$url/healthz")
kill "$server"; wait "$server" 2>/dev/null || true

out="bench-results/soak-$(date -u +%Y%m%dT%H%M%SZ).json"
python3 - "$work" "$out" "$duration" "$rate" "$health" <<'PY'
import json, sqlite3, sys
work, out, duration, rate, health = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
cdr = [json.loads(l) for l in open(f"{work}/cdr.jsonl") if l.strip()]
placed = {c["sid"] for c in cdr if c.get("direction") == "inbound"}
db = sqlite3.connect(f"{work}/soak.db")
logged = {r[0] for r in db.execute("SELECT sid FROM calls")}
routing = dict(db.execute("SELECT routing, count(*) FROM calls GROUP BY 1").fetchall())
lost = sorted(placed - logged)
samples = []
for line in open(f"{work}/samples.csv"):
    t, rss, fds, anon, file, shmem = line.strip().split(",")
    samples.append({"t": t, "rss_mib": int(rss) / 1024, "fds": int(fds), "anon_mib": int(anon) / 1024,
                    "file_mib": int(file) / 1024, "shmem_mib": int(shmem) / 1024})
timed = [s for s in samples if s["t"] != "end"]
# Warm-up: the first tenth of the run (at least a minute). Growth compares the median of the first
# quarter after it with the median of the last quarter: descriptors follow the calls in flight
# (each an HTTP connection), so single samples jump; a leak moves the medians.
warm = [s for s in timed if int(s["t"]) >= max(60, duration // 10)] or timed
quarter = max(1, len(warm) // 4)
def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]
def growth(key):
    first = median([s[key] for s in warm[:quarter]])
    last = median([s[key] for s in warm[-quarter:]])
    return first, last, max(s[key] for s in warm), round(100 * (last - first) / max(first, 1), 1)
rss0, rss1, rss_peak, rss_growth = growth("rss_mib")
fd0, fd1, fd_peak, fd_growth = growth("fds")
parts = {k: dict(zip(("first_quarter_median", "last_quarter_median", "peak", "growth_pct"),
                     (round(x, 1) for x in growth(f"{k}_mib")))) for k in ("anon", "file", "shmem")}
summary = {
    "duration_s": duration, "rate": rate, "calls_placed": len(placed), "calls_logged": len(placed & logged),
    "calls_lost": len(lost), "routing": routing,
    "rss_mib": {"first_quarter_median": round(rss0, 1), "last_quarter_median": round(rss1, 1),
                "peak": round(rss_peak, 1), "growth_pct": rss_growth, "parts": parts},
    "fds": {"first_quarter_median": fd0, "last_quarter_median": fd1, "peak": fd_peak, "growth_pct": fd_growth},
    "carrier": json.load(open(f"{work}/carrier.json")) if open(f"{work}/carrier.json").read().strip() else None,
    "healthz": json.loads(health) if health else None,
}
json.dump({"summary": summary, "samples": samples, "lost": lost[:100]}, open(out, "w"), indent=2)
print(f"placed {len(placed)} calls in {duration}s at {rate}/s; logged {summary['calls_logged']}; lost {len(lost)}; routing {routing}")
r, f = summary["rss_mib"], summary["fds"]
print(f"RSS after warm-up: median {r['first_quarter_median']} MiB in the first quarter, {r['last_quarter_median']} MiB in the last (growth {r['growth_pct']} %), peak {r['peak']} MiB")
print("  of which " + "; ".join(f"{k} {p['first_quarter_median']} → {p['last_quarter_median']} MiB" for k, p in parts.items()))
print(f"descriptors: median {f['first_quarter_median']} in the first quarter, {f['last_quarter_median']} in the last (growth {f['growth_pct']} %), peak {f['peak']}")
ok = not lost and r["growth_pct"] < 10 and f["growth_pct"] < 10
print("soak: " + ("ok" if ok else "FAILED") + f"; written to {out}")
sys.exit(0 if ok else 1)
PY
