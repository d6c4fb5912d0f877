#!/usr/bin/env bash
# Install everything this repository needs on a fresh machine (Python 3.11+, Node 20+).
# Idempotent: a second run only checks. Used by `make local`, `make test` and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
STAMP=.venv/.installed
inputs_hash() { cat pyproject.toml client/pyproject.toml package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1; }

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$(inputs_hash)" ]; then
  echo "==> installing Python packages"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]" -e ./client
  if [ -f package.json ]; then
    echo "==> installing the pinned CDK CLI (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
  fi
  inputs_hash > "$STAMP"
fi
