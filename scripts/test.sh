#!/usr/bin/env bash
# Runs every test of the project. Installs what the tests need first (idempotent), so this one
# command works on a fresh machine: the official `twilio` Python package (protocol cross-checks)
# and promtool (the /metrics format check).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
cargo test --workspace --locked
