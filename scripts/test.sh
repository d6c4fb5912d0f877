#!/usr/bin/env bash
# The test command: lint, then every test (unit, contract, infrastructure, integration).
set -euo pipefail
cd "$(dirname "$0")/.."
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CDK_DISABLE_CLI_TELEMETRY=true
.venv/bin/ruff check .
.venv/bin/python -m pytest -q "$@"
