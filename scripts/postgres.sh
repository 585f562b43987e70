#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests and benchmarks: Debian's packages, a cluster in
# /tmp (created once per checkout), run as the unprivileged user `dialtone-pg` when started by
# root (PostgreSQL refuses to run as root), listening on 127.0.0.1 only, with trust auth (nothing
# else can reach it). Idempotent: `start` on a running cluster only prints its URL.
#
#   bash scripts/postgres.sh start   # prints postgres://dialtone@127.0.0.1:PORT/postgres
#   bash scripts/postgres.sh url     # the same, if it is running
#   bash scripts/postgres.sh database NAME  # a fresh, empty database NAME on it: its URL
#   bash scripts/postgres.sh stop
# DIALTONE_PG_DIR and DIALTONE_PG_PORT run another cluster beside it (the outage test stops one).
# Its port is 55432 unless another checkout's cluster has it (then a free one from 55450, kept).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
# Under /tmp, not the checkout: the cluster's user must be able to reach it, and a checkout may
# sit in a directory only its owner can enter. One cluster per checkout.
dir="${DIALTONE_PG_DIR:-/tmp/dialtone-postgres-$(id -u)-$(printf '%s' "$repo" | sha1sum | cut -c1-10)}"
# The port: DIALTONE_PG_PORT, else the one this cluster was started on last, else 55432 — or,
# when something else listens there (another checkout's cluster), the first free one from 55450.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port="${DIALTONE_PG_PORT:-$(cat "$dir/port" 2>/dev/null || echo 55432)}"
url="postgres://dialtone@127.0.0.1:$port/postgres"

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/pg_ctl" ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  echo "postgres: installed PostgreSQL (Debian package postgresql)" >&2
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    id dialtone-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin dialtone-pg
    (cd / && runuser -u dialtone-pg -- "$@")
  else
    "$@"
  fi
}

running() { [ -f "$dir/data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; }

case "${1:-start}" in
  start)
    if ! running; then
      mkdir -p "$dir"
      if [ -z "${DIALTONE_PG_PORT:-}" ] && listening "$port"; then
        port=55450 # past the ports the tests' own clusters take (55433…)
        while listening "$port"; do port=$((port + 1)); done
        url="postgres://dialtone@127.0.0.1:$port/postgres"
      fi
      echo "$port" >"$dir/port"
      [ "$(id -u)" -eq 0 ] && { id dialtone-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin dialtone-pg; chown dialtone-pg "$dir"; }
      if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bin/initdb" -D "$dir/data" --username=dialtone --auth=trust --encoding=UTF8 \
          --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
      fi
      # Connections for several test binaries at once, each with a writer and a reader pool.
      as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=400 -c shared_buffers=256MB" \
        start >/dev/null || { tail -20 "$dir/server.log" >&2; exit 1; }
    fi
    echo "$url"
    ;;
  database)
    name="${2:?usage: bash scripts/postgres.sh database NAME}"
    [[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "postgres: database names are [a-z_][a-z0-9_]*" >&2; exit 2; }
    server="${DIALTONE_TEST_POSTGRES:-$("$0" start)}"
    PGOPTIONS="--client-min-messages=warning" "$bin/psql" "$server" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" \
      -c "CREATE DATABASE $name" >/dev/null
    echo "${server%/*}/$name"
    ;;
  url)
    running || { echo "postgres: not running (bash scripts/postgres.sh start)" >&2; exit 1; }
    echo "$url"
    ;;
  stop)
    if running; then as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null; fi
    ;;
  *)
    echo "usage: bash scripts/postgres.sh start|url|database NAME|stop" >&2
    exit 2
    ;;
esac
