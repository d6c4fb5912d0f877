"""Shared pytest setup. Area fixtures live in tests/fixtures/ and each area's conftest."""

from __future__ import annotations

import os

# jsii prints a large end-of-life banner for Node 20 on every start.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CDK_DISABLE_CLI_TELEMETRY", "true")

# The embedded broker fixtures (one broker per session) are available to every test.
pytest_plugins = ["tests.fixtures.broker"]
