#!/usr/bin/env bash
# The test command: lint, type-check, then every test (unit, contract, infra, integration, browser).
set -euo pipefail
cd "$(dirname "$0")/.."
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CDK_DISABLE_CLI_TELEMETRY=true

# The web console's tests drive Debian's Chromium (a test tool's own browser download
# cannot work on machines without general internet access).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "==> installing Chromium for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "==> /usr/bin/chromium is missing and cannot be installed here: browser tests will be skipped"
  fi
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy runtime stacks fabric_constructs app.py
MYPYPATH=client .venv/bin/mypy client/octopus_client
.venv/bin/python -m pytest -q "$@"
