#!/usr/bin/env bash
# What keeping the nodes' shared state in PostgreSQL on every call would cost, against telling
# the other nodes by NOTIFY, on this machine (ARCHITECTURE.md, "Several nodes", explains the
# choice these figures made). pgbench, 16 clients, each for SECONDS:
#   gcra-unlogged  the dial-limit mirror as one hot row (a GCRA step: UPDATE ... RETURNING) in an
#                  UNLOGGED table (its commits write no WAL to wait for)
#   gcra-logged    the same row in a logged table, synchronous_commit on (PostgreSQL's default)
#   notify         one pg_notify of a 120-byte message per transaction, as a node would tell the
#                  others of each dial if it did not batch them
# Prints transactions per second and PostgreSQL's CPU per transaction (all its processes, from
# /proc), to set against the whole SQLite webhook's CPU (scripts/bench-webhook.sh).
#
#   bash scripts/bench-shared-state.sh [SECONDS=10]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
url=$(bash scripts/postgres.sh database bench_shared_state)
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin/psql" "$url" -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE UNLOGGED TABLE gcra_unlogged (account text PRIMARY KEY, tat timestamptz NOT NULL);
CREATE TABLE gcra_logged (account text PRIMARY KEY, tat timestamptz NOT NULL);
INSERT INTO gcra_unlogged VALUES ('AC1', now());
INSERT INTO gcra_logged VALUES ('AC1', now());
SQL
cat >"$work/gcra-unlogged.sql" <<'SQL'
UPDATE gcra_unlogged SET tat = greatest(tat, now()) + interval '50 milliseconds' WHERE account = 'AC1' RETURNING tat;
SQL
cat >"$work/gcra-logged.sql" <<'SQL'
UPDATE gcra_logged SET tat = greatest(tat, now()) + interval '50 milliseconds' WHERE account = 'AC1' RETURNING tat;
SQL
cat >"$work/notify.sql" <<'SQL'
SELECT pg_notify('dialtone_bench', '{"t":"adm","a":"AC00000000000000000000000000000001","o":{"k":"dialed","legs":2,"at":"2026-12-03T12:00:00Z"}}');
SQL

# CPU ticks (user + system, and of exited children: backends that ended) of every PostgreSQL
# process on the machine so far (run it on a quiet
# machine: the tests' clusters count too).
pg_cpu() {
  local ticks=0 pid
  for pid in $(pgrep -x postgres); do
    [ -r "/proc/$pid/stat" ] || continue
    ticks=$((ticks + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat")))
  done
  echo "$ticks"
}
hz=$(getconf CLK_TCK)

printf '%-14s %12s %22s\n' test "tx/s" "PostgreSQL CPU µs/tx"
for t in gcra-unlogged gcra-logged notify; do
  before=$(pg_cpu)
  out=$("$bin/pgbench" "$url" -n -c 16 -j 2 -T "$seconds" -f "$work/$t.sql" 2>&1)
  after=$(pg_cpu)
  tps=$(echo "$out" | awk '/^tps = / {print $3; exit}')
  tx=$(echo "$out" | awk '/number of transactions actually processed/ {print $NF; exit}' | cut -d/ -f1)
  cpu_us=$(awk -v a="$after" -v b="$before" -v hz="$hz" -v n="$tx" 'BEGIN { printf "%.0f", (a - b) / hz * 1e6 / n }')
  printf '%-14s %12.0f %22s\n' "$t" "$tps" "$cpu_us"
done
