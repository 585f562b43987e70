#!/usr/bin/env bash
# /api/v1/calls and CallRail's /v3/a/{account}/calls.json on a PostgreSQL database of many calls
# (10 million by default): the latency of keyset pages (relative_pagination=true, following
# next_page links) through `dialtone serve`, unfiltered and filtered by company, outcome and a date
# range, and of CallRail's default offset pages (which count the matches for total_records),
# against the same requests on a
# database of 10,000 calls in the same run (the baseline: what the listing costs when nothing is
# big). The calls are written straight into the tables (generate_series) in the shapes the call
# log writes: three companies, five trackers, outcomes in realistic shares, 30 days.
#
#   bash scripts/bench-calls-api.sh [CALLS=10000000] [PAGES=300]
# The big database is kept between runs (filled again only if its count differs).
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-10000000}; pages=${2:-300}
cargo build --release -q -p dialtone
bin=target/release/dialtone
pg=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
server=$(bash scripts/postgres.sh start)
base=${server%/*}

fill() { # URL N
  local url=$1 n=$2 have
  "$pg/psql" "$server" -qtAc "SELECT 1 FROM pg_database WHERE datname = '${url##*/}'" | grep -q 1 \
    || "$pg/psql" "$server" -qc "CREATE DATABASE ${url##*/}"
  "$bin" migrate --database "$url" >/dev/null 2>&1
  have=$("$pg/psql" "$url" -qtAc "SELECT count(*) FROM calls")
  if [ "$have" != "$n" ]; then
    echo "filling ${url##*/} with $n calls..." >&2
    "$pg/psql" "$url" -q -v ON_ERROR_STOP=1 -v n="$n" <<'SQL'
TRUNCATE calls, events, legs;
DROP INDEX calls_by_account_time;
INSERT INTO calls (sid, account, company, tracker, tracker_kind, carrier_account_sid,
    tracking_number, caller, flow, routing, started_at, ended_at, status, outcome, answered,
    duration_s, first_call)
SELECT 'CA' || lpad(to_hex(i), 32, '0'), 'demo',
    (ARRAY['acme-plumbing', 'acme-hvac', 'acme-electric'])[1 + i % 3],
    (ARRAY['Google Ads', 'Billboard', 'Website', 'Yelp', 'Direct'])[1 + i % 5], 'source',
    'AC00000000000000000000000000000001', '+1404555' || lpad((100 + i % 50)::text, 4, '0'),
    '+1770' || lpad((i % 9999991)::text, 7, '0'), 'main', 'normal',
    now() - interval '30 days' + (i::float8 / :n) * interval '30 days',
    now() - interval '30 days' + (i::float8 / :n) * interval '30 days' + interval '2 minutes',
    'completed',
    CASE WHEN i % 50 = 0 THEN 'voicemail' WHEN i % 7 = 0 THEN 'missed' ELSE 'answered' END,
    i % 7 <> 0, 120, i % 4 = 0
FROM generate_series(1, :n) AS i;
CREATE INDEX calls_by_account_time ON calls (account, started_at DESC, sid DESC);
VACUUM ANALYZE calls;
SQL
  fi
}

big="$base/bench_calls_${calls}"
small="$base/bench_calls_10000"
fill "$big" "$calls"
fill "$small" 10000

python3 - "$bin" "$big" "$small" "$pages" <<'PY'
import json, socket, subprocess, sys, time, urllib.request

bin, big, small, pages = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def serve(url):
    port = free_port()
    p = subprocess.Popen([bin, "serve", "--listen", f"127.0.0.1:{port}", "--database", url, "--demo"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        if line.startswith("listening on "):
            return p, line.split()[-1]
    raise SystemExit("dialtone serve did not start")

def get(base, path):
    req = urllib.request.Request(base + path, headers={"Authorization": "Bearer demo-api-key"})
    t = time.perf_counter()
    body = json.loads(urllib.request.urlopen(req).read())
    return (time.perf_counter() - t) * 1000, body

V1 = "/api/v1/calls?per_page=25&relative_pagination=true"
V3 = "/v3/a/ACCdemo/calls.json?per_page=25"
QUERIES = {
    "all": V1,
    "company": V1 + "&company=acme-hvac",
    "outcome=voicemail": V1 + "&outcome=voicemail",
    "last 7 days": V1 + "&start_date=" + time.strftime("%Y-%m-%d", time.gmtime(time.time() - 7 * 86400)),
    "v3 all_time": V3 + "&relative_pagination=true&date_range=all_time",
    "v3 missed, 30 days": V3 + "&relative_pagination=true&date_range=last_30_days&answer_status=missed",
    # CallRail's defaults: offset pages of the last 7 days, each counting the matches.
    "v3 offset, recent": V3,
    "v3 offset, 30 days": V3 + "&date_range=last_30_days&company_id=COMacme-hvac",
}

def measure(url):
    proc, base = serve(url)
    out = {}
    try:
        for name, first in QUERIES.items():
            times, path = [], first
            for _ in range(3):  # warm the connection pool and the plans
                get(base, path)
            for n in range(pages):
                ms, body = get(base, path)
                times.append(ms)
                nxt = body.get("next_page")
                if "page" in body and body["page"] < body["total_pages"]:
                    path = f"{first}&page={body['page'] + 1}"  # offset pages, in order
                elif not nxt:
                    path = first
                else:
                    path = nxt[len(base):]
            times.sort()
            out[name] = {"p50": times[len(times) // 2], "p95": times[int(len(times) * 0.95) - 1], "max": times[-1]}
    finally:
        proc.terminate(); proc.wait()
    return out

result = {"big": measure(big), "small": measure(small)}
print(f"{'pages of 25':<22} {'10,000 calls p50/p95':>22} {big.rsplit('_', 1)[1] + ' calls p50/p95':>26}")
for name in QUERIES:
    s, b = result["small"][name], result["big"][name]
    print(f"{name:<22} {s['p50']:>10.1f} / {s['p95']:>5.1f} ms {b['p50']:>14.1f} / {b['p95']:>5.1f} ms")
worst = max(result["big"][n]["p95"] for n in QUERIES)
print(f"worst p95 on the big database: {worst:.1f} ms (goals: under 50 ms on 10 million calls for keyset pages; a page under 20 ms on 1 million)")
PY
