#!/usr/bin/env bash
# Benchmarks DNI session creation against a bare axum responder in the same run: the method of
# scripts/bench-webhook.sh (which see), with TARGET=dni.
#
#   bash scripts/bench-dni.sh [ROUNDS=3] [SECONDS=10] [RATE=2000] [DATABASE_OPTIONS]
set -euo pipefail
TARGET=dni exec bash "$(dirname "$0")/bench-webhook.sh" "$@"
