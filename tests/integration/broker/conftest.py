"""Broker fixtures for the Kafka adapter tests (the real embedded broker)."""

from __future__ import annotations

import sys
from pathlib import Path

# The repository root must be importable for ``tests.fixtures`` when pytest runs as a script.
_REPO_ROOT = str(Path(__file__).resolve().parents[3])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.fixtures.broker import (  # noqa: E402
    bootstrap_servers,
    embedded_broker,
    unique_topic_name,
)

__all__ = ["bootstrap_servers", "embedded_broker", "unique_topic_name"]
