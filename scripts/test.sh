#!/usr/bin/env bash
# Runs every test of the project. Installs what the tests need first (idempotent), so this one
# command works on a fresh machine: the official `twilio` Python package (protocol cross-checks),
# promtool (the /metrics format check), Chromium, and a throwaway PostgreSQL server (the store's
# conformance tests run on SQLite and on PostgreSQL), stopped again at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
DIALTONE_TEST_POSTGRES="$(bash scripts/postgres.sh start)"
export DIALTONE_TEST_POSTGRES
trap 'bash scripts/postgres.sh stop' EXIT
cargo test --workspace --locked
