#!/usr/bin/env bash
# Replays the seed's afternoon (`dialtone replay may14`) under each policy and prints them side
# by side: the carrier without its limit (the baseline), the 2018 platform (`--policy none`),
# dial admission with the limit configured, and with the limit unknown (estimated), and the
# 2018 platform taken offline 14:39-15:22 (backup documents, then reconcile).
# connected_ratio = calls connected / calls connected by the baseline, same seed.
# Plots land in target/may14/*.svg (policies.svg: all of them side by side). About 5 minutes on a 2-core machine.
#
#   bash scripts/replay-may14.sh [SEED=1]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p dialtone
out=target/may14; mkdir -p "$out"
seed="${1:-1}"
run() {
  local name=$1; shift
  target/release/dialtone replay may14 --seed "$seed" --json --plot "$out/$name.svg" "$@" >"$out/$name.json"
  echo "replayed $name" >&2
}
run baseline --without-limit --policy none
run none --policy none
run adaptive --policy adaptive
run adaptive-limit-unknown --policy adaptive --limit-unknown
run outage --policy none --outage 14:39-15:22
target/release/dialtone plot --out "$out/policies.svg" \
  "$out/baseline.json" "$out/none.json" "$out/adaptive.json" "$out/adaptive-limit-unknown.json" "$out/outage.json"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
runs = ["baseline", "none", "adaptive", "adaptive-limit-unknown", "outage"]
data = {r: json.load(open(f"{out}/{r}.json")) for r in runs}
base = data["baseline"]["report"]["connected"]
print(f"{'policy':24} {'calls':>7} {'connected':>9} {'ratio':>6} {'abandoned':>9} {'voicemail':>9} "
      f"{'pdd p50':>7} {'pdd p95':>7} {'pdd p99':>7} {'degraded':>8} {'tracked':>7} {'alert s':>7} {'wall s':>6}")
for r in runs:
    d = data[r]; rep = d["report"]; p = rep["post_dial_delay_s"]
    print(f"{r:24} {rep['calls']:>7} {rep['connected']:>9} {rep['connected']/base:>6.3f} "
          f"{rep['abandoned']:>9} {rep['voicemail']:>9} {p['p50']:>7.2f} {p['p95']:>7.2f} "
          f"{p['p99']:>7.2f} {d['degraded_calls']:>8} {d['tracked_ratio']:>7.3f} "
          f"{str(d['first_alert_after_onset_s']):>7} {d['wall_s']:>6.1f}")
o = data["outage"]
print(f"outage: {o['recovered_calls']} calls recovered from the carrier's records; "
      f"{o['dialtone_logged_calls']} of {o['report']['calls']} calls in the call log afterwards")
for r in ["adaptive", "adaptive-limit-unknown"]:
    for a in data[r]["alerts"][:4]:
        print(f"{r} alert {a['at'][11:19]} {a['kind']}: {a['message']}")
worst = min(data["none"]["report"]["per_minute"][300:560], key=lambda m: m["connected"] / max(1, m["arrivals"]))
print(f"policy none, worst minute {8 + worst['minute'] // 60}:{worst['minute'] % 60:02d} EDT: "
      f"{worst['connected'] / max(1, worst['arrivals']):.0%} of calls connected, "
      f"queue wait mean {worst['queue_wait_mean_s']:.1f} s")
PY
