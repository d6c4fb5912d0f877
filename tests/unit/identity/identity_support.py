"""Helpers for identity tests: Globus Auth introspection answered by globus_sdk.testing."""

from __future__ import annotations

import time
import uuid
from typing import Any

import responses
from globus_sdk.testing import RegisteredResponse

CLIENT_ID = "3f0a1c4e-6f5b-4b8e-9a55-0c1d2e3f4a5b"
REQUIRED_SCOPE = f"https://auth.globus.org/scopes/{CLIENT_ID}/action_all"
INTROSPECT_URL = "https://auth.globus.org/v2/oauth2/token/introspect"


class FakeClock:
    """A settable wall clock shared by the provider and its cache."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def introspection_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "active": True,
        "token_type": "Bearer",
        "scope": f"openid {REQUIRED_SCOPE} email",
        "client_id": str(uuid.uuid4()),
        "username": "ada@example.org",
        "exp": int(time.time()) + 3600,
        "iat": int(time.time()),
        "sub": "b7c5a8e2-1d34-4f6a-9b0c-7e8f9a0b1c2d",
        "aud": ["auth.globus.org", CLIENT_ID],
        "iss": "https://auth.globus.org",
        "identity_set": ["b7c5a8e2-1d34-4f6a-9b0c-7e8f9a0b1c2d"],
    }
    body.update(overrides)
    return body


def register_introspection(status: int = 200, **overrides: Any) -> None:
    RegisteredResponse(
        service="auth",
        path="/v2/oauth2/token/introspect",
        method="POST",
        status=status,
        json=introspection_body(**overrides) if status == 200 else {"errors": [{"status": status}]},
    ).add()


def introspection_calls() -> int:
    """Introspection requests sent. While moto's mock_aws is active its own
    `responses` mock sees (and records) every request first, passing unknown
    ones through to ours, so count both."""
    from moto.core.models import responses_mock as moto_mock

    calls = list(responses.calls) + list(moto_mock.calls)
    return sum(1 for call in calls if call.request.url == INTROSPECT_URL)
