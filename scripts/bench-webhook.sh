#!/usr/bin/env bash
# Benchmarks dialtone's inbound-call webhook against a bare axum responder, side by side in one
# run (method: the team's shared/benchmarking.md):
# - closed loop with wrk (-t2 -c64), rounds alternating bare / dialtone, every request to dialtone
#   a new call: pre-signed by `loadgen --write-requests` into files of distinct CallSids, one per
#   wrk thread and run, read in order by scripts/bench/inbound.lua (a file sized for
#   $NEW_CALLS_PER_SECOND, default 40,000 per thread; a run that outruns it repeats calls, which
#   the results count as `repeated`); the bare responder cycles a file of its own the same way;
# - server CPU per request from utime+stime in /proc/PID/stat, independent of core sharing;
# - latency from a fixed-rate open-loop run (`loadgen --rate`, latency measured from when each
#   request was due).
# dialtone runs with durable logging on: SQLite WAL, synchronous=FULL (fsync per group commit).
# With TARGET=dni (what scripts/bench-dni.sh sets) the endpoint is DNI session creation instead:
# every request a new visitor from a Google Ads click (scripts/bench/dni.lua, `loadgen --dni`),
# each lease durable before the answer, against the demo configuration with its rate limits
# raised (all the load comes from one address).
#
# With DATABASE=postgres dialtone logs to PostgreSQL instead (the throwaway server of
# scripts/postgres.sh, a fresh database each run, synchronous_commit on), and the server's CPU
# per request includes PostgreSQL's processes (reported as the call log's share).
#
#   bash scripts/bench-webhook.sh [ROUNDS=3] [SECONDS=10] [RATE=2000] [DATABASE_OPTIONS]
# e.g. DATABASE_OPTIONS="?synchronous=normal" to measure without fsync (SQLite);
# scripts/bench-postgres.sh runs it on both databases and compares them.
# Results: printed, and written to bench-results/<target>-<timestamp>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; seconds=${2:-10}; rate=${3:-2000}; dbopts=${4:-}; conns=64
target=${TARGET:-webhook}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null || { echo "needs wrk (Debian package wrk)"; exit 1; }; }
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
# The same per group of threads: the call log's (SQLite writer and checkpointer, named
# dialtone-sqlite-*) and everything else (HTTP workers). Threads that exited are in neither.
cpu_log() { cat /proc/"$1"/task/*/stat 2>/dev/null | awk '/\(dialtone-sqlite/ { sub(/.*\) /, ""); n = split($0, f, " "); t += f[12] + f[13] } END { print t + 0 }'; }
ticks=$(getconf CLK_TCK)

config=()
if [ "$target" = dni ]; then
  path=/dni/v1/sessions; lua=(-s scripts/bench/dni.lua); loadgen_mode=(--dni acme-plumbing)
  { printf '[dni]\nsessions_per_minute_per_address = 100000000\nsessions_per_minute_per_visitor = 100000000\nburst = 100000\n\n'
    "$bin/dialtone" config demo; } >"$work/dni.toml"
  config=(--config "$work/dni.toml")
else
  path=/twilio/voice; loadgen_mode=()
fi
database=${DATABASE:-sqlite}
if [ "$database" = postgres ]; then
  pg=$(bash scripts/postgres.sh start)
  pgdb="bench_$$"
  psql "$pg" -q -c "DROP DATABASE IF EXISTS $pgdb" -c "CREATE DATABASE $pgdb"
  trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"; psql "$pg" -q -c "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" 2>/dev/null || true' EXIT
  dburl="${pg%/*}/$pgdb"
  # The call log's CPU is PostgreSQL's: every process of the cluster's user.
  cpu_log() { for p in $(pgrep -u dialtone-pg); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done | awk '{t += $1} END {print t + 0}'; }
else
  dburl="sqlite://$work/bench.db$dbopts"
fi
start bare "$ex/bare_responder" 127.0.0.1:0
start dialtone "$bin/dialtone" serve --demo "${config[@]}" ${WORKERS:+--worker-threads $WORKERS} --listen 127.0.0.1:0 --database "$dburl"
# Pre-signed calls for the webhook: per wrk thread and run, a file of calls no other run uses.
per_thread=$(( ${NEW_CALLS_PER_SECOND:-40000} * seconds ))
calls_for() { # name, run (0 = warm-up, 1.. = rounds) → writes $work/<name>.<run>.<thread>.tsv
  local url_var="URL_$1" t
  for t in 1 2; do
    "$ex/loadgen" --url "${!url_var}$path" --write-requests "$work/$1.$2.$t.tsv" \
      --first $(( ($2 * 2 + t - 1) * per_thread )) --count "$per_thread"
  done
}
if [ "$target" = webhook ]; then
  echo "signing $(( (rounds + 1) * 2 * per_thread )) distinct calls" >&2
  calls_for bare 0
  for r in $(seq 0 "$rounds"); do calls_for dialtone "$r"; done
fi
# The fixed-rate run's calls come after all of those.
rate_first=$(( (rounds + 1) * 2 * per_thread ))
# wrk's script and arguments for a server and run: the pre-signed calls, or the DNI script.
wrk_args() { # url_var, name, run
  if [ "$target" = webhook ]; then
    local run=$3; [ "$2" = bare ] && run=0
    echo "-s scripts/bench/inbound.lua ${!1}$path -- $work/$2.$run.1.tsv $work/$2.$run.2.tsv"
  else echo "${lua[*]} ${!1}$path"; fi
}

results="$work/results.jsonl"
closed() { # name, round → one JSON line
  local name=$1 url_var="URL_$1" pid_var="PID_$1"
  local before; before=$(cpu "${!pid_var}")
  local log_before; log_before=$(cpu_log "${!pid_var}")
  local out; out=$(wrk -t2 -c$conns -d"${seconds}s" $(wrk_args "$url_var" "$name" "$2"))
  local after; after=$(cpu "${!pid_var}")
  local log_after; log_after=$(cpu_log "${!pid_var}")
  python3 - "$name" "$before" "$after" "$ticks" "$log_before" "$log_after" "$database" <<PY >>"$results"
import json, re, sys
out = """$out"""
name, before, after, ticks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
log = int(sys.argv[6]) - int(sys.argv[5])
if sys.argv[7] == "postgres":
    # The database's processes work for dialtone alone: counted in its CPU, as the call log's.
    log = log if name == "dialtone" else 0
    after += log
reqs = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
errors = re.search(r"Socket errors: .*", out)
repeated = re.search(r"repeated requests: (\d+)", out)
print(json.dumps({"mode": "closed", "server": name, "requests": reqs, "rps": rps,
                  "errors": int(bad.group(1)) if bad else 0, "socket_errors": errors.group(0) if errors else None,
                  "repeated": int(repeated.group(1)) if repeated else 0,
                  "cpu_us_per_request": round((after - before) / ticks * 1e6 / max(reqs, 1), 2),
                  "call_log_cpu_us_per_request": round(log / ticks * 1e6 / max(reqs, 1), 2)}))
PY
}
fixed_rate() { # name → one JSON line
  local name=$1 url_var="URL_$1"
  "$ex/loadgen" --url "${!url_var}$path" "${loadgen_mode[@]}" --first "$rate_first" --seconds "$seconds" --rate "$rate" | sed "s/^{/{\"mode\":\"rate\",\"server\":\"$name\",/" >>"$results"
}

wrk -t2 -c$conns -d2s $(wrk_args URL_bare bare 0) >/dev/null   # warm up
wrk -t2 -c$conns -d2s $(wrk_args URL_dialtone dialtone 0) >/dev/null
for r in $(seq "$rounds"); do
  echo "round $r/$rounds: wrk -t2 -c$conns, ${seconds}s each" >&2
  closed bare "$r"
  closed dialtone "$r"
done
echo "fixed rate: $rate req/s, ${seconds}s each" >&2
fixed_rate bare
fixed_rate dialtone

out=${OUT:-"bench-results/$target-$database-$(date -u +%Y%m%dT%H%M%SZ).json"}
python3 - "$results" "$out" "$dbopts" "$target" "$database" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(server, mode, key):
    vals = [r[key] for r in rows if r["server"] == server and r["mode"] == mode]
    return statistics.median(vals) if vals else float("nan")
s = {
    "target": sys.argv[4],
    "database": sys.argv[5],
    "database_options": sys.argv[3] or ("synchronous=full (default)" if sys.argv[5] == "sqlite" else "synchronous_commit=on (default)"),
    "closed_loop_rps": {"bare": med("bare", "closed", "rps"), "dialtone": med("dialtone", "closed", "rps")},
    "cpu_us_per_request": {"bare": med("bare", "closed", "cpu_us_per_request"), "dialtone": med("dialtone", "closed", "cpu_us_per_request"),
                           "dialtone_call_log": med("dialtone", "closed", "call_log_cpu_us_per_request")},
    "fixed_rate_latency_ms": {srv: {"p50": med(srv, "rate", "p50_ms"), "p99": med(srv, "rate", "p99_ms")} for srv in ("bare", "dialtone")},
    "errors": sum(r.get("errors", 0) for r in rows),
    # Requests to dialtone that repeated a call already sent (0 unless a run outran its calls).
    "repeated_calls": sum(r.get("repeated", 0) for r in rows if r["server"] == "dialtone"),
}
s["throughput_ratio"] = round(s["closed_loop_rps"]["dialtone"] / s["closed_loop_rps"]["bare"], 3)
json.dump({"summary": s, "runs": rows}, open(sys.argv[2], "w"), indent=2)
print(f"database: {s['database']}, {s['database_options']}")
print(f"closed loop (median of rounds): bare {s['closed_loop_rps']['bare']:.0f} req/s, dialtone {s['closed_loop_rps']['dialtone']:.0f} req/s, ratio {s['throughput_ratio']:.2f}")
c = s["cpu_us_per_request"]
print(f"server CPU per request: bare {c['bare']:.1f} us, dialtone {c['dialtone']:.1f} us "
      f"(call log threads {c['dialtone_call_log']:.1f} us, HTTP workers and the rest {c['dialtone'] - c['dialtone_call_log']:.1f} us)")
for srv in ("bare", "dialtone"):
    l = s["fixed_rate_latency_ms"][srv]
    print(f"fixed rate latency {srv}: p50 {l['p50']:.2f} ms, p99 {l['p99']:.2f} ms")
print(f"errors (non-2xx and failed requests): {s['errors']}")
if s["repeated_calls"]:
    print(f"WARNING: {s['repeated_calls']} requests to dialtone repeated a call (carrier retries, "
          "not new calls); raise NEW_CALLS_PER_SECOND")
print(f"written to {sys.argv[2]}")
PY
