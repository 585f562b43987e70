#!/usr/bin/env bash
# Installs what the tests need, idempotently; quiet when everything is already there.
# - the carrier's official Python helper library (`twilio`), in .venv-test, the oracle our
#   signature and TwiML code is cross-checked against, and two CallRail API v3 clients
#   (callrail-mcp, pycallrail), which the /v3 API is tested with;
# - promtool (Debian's `prometheus` package), which checks the /metrics format;
# - Chromium (Debian's `chromium` package), the real browser the DNI snippet is tested in;
# - HAProxy (Debian's `haproxy` package), the load balancer two nodes are tested behind.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
twilio_version=9.13.0
callrail_mcp_version=1.3.1
pycallrail_version=0.9.0.2
venv="$repo/.venv-test"

if ! "$venv/bin/python" -c "import twilio, sys; sys.exit(twilio.__version__ != '$twilio_version')" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "twilio==$twilio_version"
  echo "test-deps: installed twilio $twilio_version into .venv-test"
fi

# Third-party CallRail API v3 clients, the oracle of the /v3 API: callrail-mcp (maintained) and
# pycallrail (strict models that refuse unknown keys; its pinned aiohttp/ujson are never
# imported, so it goes in without its declared dependencies and with the ones it imports).
have() { "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" 2>/dev/null; }
if ! have callrail-mcp "$callrail_mcp_version" || ! have pycallrail "$pycallrail_version"; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "callrail-mcp==$callrail_mcp_version" \
    python-dateutil typeguard typing-extensions requests
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "pycallrail==$pycallrail_version"
  echo "test-deps: installed callrail-mcp $callrail_mcp_version and pycallrail $pycallrail_version into .venv-test"
fi

if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
updated=""
apt_install() {
  if [ -z "$updated" ]; then $sudo apt-get update -qq >/dev/null; updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v promtool >/dev/null 2>&1; then
  apt_install prometheus
  echo "test-deps: installed promtool (Debian package prometheus)"
fi

if ! command -v haproxy >/dev/null 2>&1; then
  apt_install haproxy
  echo "test-deps: installed HAProxy (Debian package haproxy)"
fi

if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium
  echo "test-deps: installed Chromium (Debian package chromium)"
fi
