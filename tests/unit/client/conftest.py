"""Fixtures for the client's tests: a scripted HTTP server on 127.0.0.1.

The embedded broker comes from ``tests.fixtures.broker`` (``bootstrap_servers``),
registered for the whole suite by the top-level conftest.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.client.client_fake_api import FakeAPI


@pytest.fixture
def api() -> Iterator[FakeAPI]:
    server = FakeAPI()
    yield server
    server.close()
