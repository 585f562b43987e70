#!/usr/bin/env bash
# Installs what the tests need, idempotently; quiet when everything is already there.
# - the carrier's official Python helper library (`twilio`), in .venv-test, the oracle our
#   signature and TwiML code is cross-checked against;
# - promtool (Debian's `prometheus` package), which checks the /metrics format.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
twilio_version=9.13.0
venv="$repo/.venv-test"

if ! "$venv/bin/python" -c "import twilio, sys; sys.exit(twilio.__version__ != '$twilio_version')" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "twilio==$twilio_version"
  echo "test-deps: installed twilio $twilio_version into .venv-test"
fi

if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  echo "test-deps: installed promtool (Debian package prometheus)"
fi
