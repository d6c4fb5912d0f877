"""Build the real ``diaspora-event-sdk`` ``Client`` against a local service.

The SDK resolves the caller with Globus Auth's ``userinfo``: that one call is
answered by ``globus_sdk.testing``; every call to 127.0.0.1 passes through to
the real server.
"""

from __future__ import annotations

import globus_sdk
import pytest
import responses
from diaspora_event_sdk.sdk import client as sdk_client_module
from diaspora_event_sdk.sdk.client import Client
from globus_sdk.testing import RegisteredResponse

from tests.integration.compat.conftest import LiveService, Person


def sdk_client(live: LiveService, person: Person, monkeypatch: pytest.MonkeyPatch) -> Client:
    # Stands for DIASPORA_SDK_ENVIRONMENT: the SDK knows only fixed URLs, ours has a free port.
    monkeypatch.setattr(sdk_client_module, "get_web_service_url", lambda _env=None: live.url)
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add_passthru("http://127.0.0.1")
        RegisteredResponse(
            service="auth",
            path="/v2/oauth2/userinfo",
            json={"sub": person.sub, "preferred_username": f"{person.name}@example.org"},
        ).add(requests_mock=mock)
        client = Client(authorizer=globus_sdk.AccessTokenAuthorizer(person.token))
    assert client.subject_openid == person.sub
    return client
