"""Fixtures for identity tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses


@pytest.fixture
def globus_mock() -> Iterator[None]:
    """Activate `responses` so globus_sdk.testing registrations answer HTTP calls."""
    responses.start()
    try:
        yield
    finally:
        responses.stop()
        responses.reset()
