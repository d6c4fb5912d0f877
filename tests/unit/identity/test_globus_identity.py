"""GlobusIdentityProvider against globus_sdk.testing registered introspection responses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import boto3
import globus_sdk
import pytest
import requests
import responses
from globus_sdk.testing import get_last_request, load_response
from moto import mock_aws

from runtime.adapters.aws.globus_identity import (
    GlobusIdentityProvider,
    load_globus_client_secret,
)
from runtime.adapters.token_cache import TokenCache
from runtime.config import RuntimeSettings
from runtime.domain.errors import Unauthenticated, Unavailable
from runtime.domain.ports import IdentityProvider
from tests.unit.identity.identity_support import (
    CLIENT_ID,
    INTROSPECT_URL,
    REQUIRED_SCOPE,
    FakeClock,
    introspection_calls,
    register_introspection,
)

pytestmark = pytest.mark.usefixtures("globus_mock")


def make_provider(clock: FakeClock | None = None, **cache_kwargs: float) -> GlobusIdentityProvider:
    clock = clock or FakeClock()
    cache = TokenCache(clock=clock, **cache_kwargs)  # type: ignore[arg-type]
    return GlobusIdentityProvider(CLIENT_ID, "s3cret", REQUIRED_SCOPE, cache, clock=clock)


def test_active_token_gives_principal_from_sub() -> None:
    register_introspection()
    provider: IdentityProvider = make_provider()

    principal = provider.authenticate("good-token")

    assert principal.sub == "b7c5a8e2-1d34-4f6a-9b0c-7e8f9a0b1c2d"
    assert principal.username == "ada@example.org"
    assert REQUIRED_SCOPE in principal.scopes
    assert principal.expires_at is not None and principal.expires_at > datetime.now(UTC)
    request = get_last_request()
    assert request is not None
    sent = parse_qs(str(request.body))  # form-encoded introspection request
    assert sent["token"] == ["good-token"]
    assert sent["include"] == ["identity_set"]
    # The fabric authenticates to Globus with its confidential client (HTTP Basic).
    assert str(request.headers["Authorization"]).startswith("Basic ")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"active": False}, "not active"),
        ({"aud": ["auth.globus.org", "someone-else"]}, "wrong audience"),
        ({"aud": "someone-else"}, "wrong audience"),
        ({"scope": "openid email profile"}, "required scope"),
        ({"scope": f"{REQUIRED_SCOPE}/extra"}, "required scope"),
        ({"exp": 1_000_000}, "expired"),
        ({"sub": ""}, "no subject"),
    ],
)
def test_refused_tokens_are_unauthenticated(overrides: dict[str, Any], reason: str) -> None:
    register_introspection(**overrides)
    with pytest.raises(Unauthenticated, match=reason):
        make_provider().authenticate("bad-token")


def test_sdk_example_response_is_refused_as_expired() -> None:
    # globus-sdk's own canned response: active, our audience, but expired in 2024.
    example = load_response(globus_sdk.ConfidentialAppAuthClient.oauth2_token_introspect)
    provider = GlobusIdentityProvider(
        example.metadata["client_id"], "s3cret", "openid", TokenCache()
    )
    with pytest.raises(Unauthenticated, match="expired"):
        provider.authenticate("old-token")


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_globus_errors_are_unavailable_and_not_cached(status: int) -> None:
    register_introspection(status=status)
    provider = make_provider()
    with pytest.raises(Unavailable):
        provider.authenticate("tok")
    assert len(provider.cache) == 0


def test_client_credentials_refused_is_unavailable_not_unauthenticated() -> None:
    register_introspection(status=401)
    with pytest.raises(Unavailable, match="401"):
        make_provider().authenticate("tok")


def test_globus_unreachable_is_unavailable_then_recovers() -> None:
    responses.add(responses.POST, INTROSPECT_URL, body=requests.ConnectionError("down"))
    provider = make_provider()
    with pytest.raises(Unavailable, match="unreachable"):
        provider.authenticate("tok")
    calls_while_down = introspection_calls()
    assert calls_while_down == 2  # one retry, then give up quickly

    responses.reset()
    register_introspection()
    assert provider.authenticate("tok").sub  # failure was not cached


def test_cache_hit_does_not_call_globus() -> None:
    register_introspection()
    provider = make_provider()
    first = provider.authenticate("tok")
    for _ in range(5):
        assert provider.authenticate("tok") == first
    assert introspection_calls() == 1
    provider.authenticate("another-token")
    assert introspection_calls() == 2


def test_cache_ttl_is_five_minutes_for_long_lived_tokens() -> None:
    clock = FakeClock()
    register_introspection(exp=int(clock.now) + 48 * 3600)
    provider = make_provider(clock)
    provider.authenticate("tok")
    clock.advance(299)
    provider.authenticate("tok")
    assert introspection_calls() == 1
    clock.advance(2)
    provider.authenticate("tok")
    assert introspection_calls() == 2


def test_cache_ttl_respects_token_expiry() -> None:
    clock = FakeClock()
    register_introspection(exp=int(clock.now) + 30)
    provider = make_provider(clock)
    provider.authenticate("tok")
    clock.advance(29)
    provider.authenticate("tok")
    assert introspection_calls() == 1
    clock.advance(2)  # token now expired: the cache must not answer for it
    with pytest.raises(Unauthenticated, match="expired"):
        provider.authenticate("tok")
    assert introspection_calls() == 2


def test_refusals_are_cached_briefly() -> None:
    clock = FakeClock()
    register_introspection(active=False)
    provider = make_provider(clock, negative_ttl_seconds=10)
    for _ in range(20):
        with pytest.raises(Unauthenticated, match="not active"):
            provider.authenticate("flood")
    assert introspection_calls() == 1
    clock.advance(11)
    with pytest.raises(Unauthenticated):
        provider.authenticate("flood")
    assert introspection_calls() == 2


def test_empty_or_huge_token_refused_without_calling_globus() -> None:
    provider = make_provider()
    for token in ("", "x" * 5000):
        with pytest.raises(Unauthenticated):
            provider.authenticate(token)
    assert introspection_calls() == 0


def test_secret_loader_is_called_once_and_lazily() -> None:
    loads: list[int] = []

    def loader() -> str:
        loads.append(1)
        return "s3cret"

    register_introspection()
    provider = GlobusIdentityProvider(CLIENT_ID, loader, REQUIRED_SCOPE)
    assert loads == []
    provider.authenticate("a")
    provider.authenticate("b")
    assert loads == [1]


def test_secret_loader_failure_is_unavailable_and_retried() -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("secrets manager down")
        return "s3cret"

    register_introspection()
    provider = GlobusIdentityProvider(CLIENT_ID, flaky, REQUIRED_SCOPE)
    with pytest.raises(Unavailable, match="client secret"):
        provider.authenticate("a")
    assert provider.authenticate("a").sub
    assert len(attempts) == 2


def test_from_settings_requires_globus_keys() -> None:
    settings = RuntimeSettings(identity="globus", globus_client_id=CLIENT_ID)
    with pytest.raises(ValueError, match="globus_secret_name"):
        GlobusIdentityProvider.from_settings(settings)


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("plain-secret", "plain-secret"),
        (json.dumps({"client_secret": "json-secret"}), "json-secret"),
    ],
)
def test_client_secret_read_from_secrets_manager(stored: str, expected: str) -> None:
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        sm.create_secret(Name="octopus/globus", SecretString=stored)
        assert load_globus_client_secret("octopus/globus", client=sm) == expected


def test_missing_secret_is_unavailable() -> None:
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        with pytest.raises(Unavailable, match="ResourceNotFoundException"):
            load_globus_client_secret("octopus/missing", client=sm)
