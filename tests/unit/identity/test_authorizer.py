"""The TOKEN authorizer Lambda, called with API Gateway events.

The provider is built from OCTOPUS_SETTINGS as in Lambda; the client secret
comes from (moto's) Secrets Manager and introspection from globus_sdk.testing.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
import responses
from moto import mock_aws

from runtime.adapters.token_cache import token_hash
from runtime.config import RuntimeSettings
from runtime.handlers import authorizer
from tests.unit.identity.identity_support import (
    CLIENT_ID,
    INTROSPECT_URL,
    REQUIRED_SCOPE,
    introspection_calls,
    register_introspection,
)

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/v1/me"
SUB = "b7c5a8e2-1d34-4f6a-9b0c-7e8f9a0b1c2d"


@dataclass
class LambdaContext:
    function_name: str = "octopus-authorizer"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:octopus-authorizer"
    aws_request_id: str = "req-1"


def event(header: str | None, method_arn: str = METHOD_ARN) -> dict[str, object]:
    body: dict[str, object] = {"type": "TOKEN", "methodArn": method_arn}
    if header is not None:
        body["authorizationToken"] = header
    return body


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch, globus_mock: None) -> Iterator[None]:
    settings = RuntimeSettings(
        stage="prod",
        region="us-east-1",
        cluster_mode="provisioned",
        identity="apigw-authorizer",
        registry="dynamodb",
        credentials="iam",
        globus_client_id=CLIENT_ID,
        globus_secret_name="octopus/globus-client",
        required_scope=REQUIRED_SCOPE,
    )
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    authorizer.set_provider(None)
    with mock_aws():
        boto3.client("secretsmanager").create_secret(
            Name="octopus/globus-client", SecretString=json.dumps({"client_secret": "s3cret"})
        )
        yield
    authorizer.set_provider(None)


pytestmark = pytest.mark.usefixtures("deployed")


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_valid_token_is_allowed_on_the_whole_stage(scheme: str) -> None:
    register_introspection()
    result = authorizer.handler(event(f"{scheme} good-token"), LambdaContext())

    assert result["principalId"] == SUB
    statement = result["policyDocument"]["Statement"][0]
    assert statement == {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/*/*",
    }
    ctx = result["context"]
    assert ctx["sub"] == SUB
    assert ctx["username"] == "ada@example.org"
    assert REQUIRED_SCOPE in ctx["scopes"].split(" ")
    assert isinstance(ctx["expires_at"], int)
    assert all(isinstance(v, str | int | float | bool) for v in ctx.values())


def test_provider_and_cache_shared_across_invocations() -> None:
    register_introspection()
    authorizer.handler(event("Bearer tok"), LambdaContext())
    provider = authorizer.get_provider()
    for path in ("GET/v1/me", "POST/v1/keys", "GET/v1/namespaces"):
        arn = f"arn:aws:execute-api:us-east-1:123456789012:abc123/prod/{path}"
        assert authorizer.handler(event("Bearer tok"), LambdaContext())["principalId"] == SUB
        assert authorizer.handler(event("Bearer tok", arn), LambdaContext())["principalId"] == SUB
    assert introspection_calls() == 1
    assert authorizer.get_provider() is provider


@pytest.mark.parametrize(
    "header", [None, "", "tok", "Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Token abc"]
)
def test_missing_or_malformed_header_is_unauthorized(header: str | None) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.handler(event(header), LambdaContext())
    assert introspection_calls() == 0


@pytest.mark.parametrize(
    "overrides",
    [{"active": False}, {"aud": ["other"]}, {"scope": "openid"}, {"exp": 1_000_000}],
)
def test_invalid_tokens_are_unauthorized(overrides: dict[str, Any]) -> None:
    register_introspection(**overrides)
    with pytest.raises(Exception, match=r"^Unauthorized$") as raised:
        authorizer.handler(event("Bearer bad"), LambdaContext())
    assert type(raised.value) is Exception


def test_globus_down_is_not_a_deny() -> None:
    responses.add(responses.POST, INTROSPECT_URL, body=requests.ConnectionError("down"))
    with pytest.raises(authorizer.AuthorizerUnavailable) as raised:
        authorizer.handler(event("Bearer tok"), LambdaContext())
    assert str(raised.value) != "Unauthorized"


def test_globus_5xx_is_not_a_deny() -> None:
    register_introspection(status=503)
    with pytest.raises(authorizer.AuthorizerUnavailable):
        authorizer.handler(event("Bearer tok"), LambdaContext())


@pytest.mark.parametrize("active", [True, False])
def test_token_never_logged_but_its_hash_prefix_is(
    active: bool, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_introspection(active=active)
    stream = io.StringIO()
    monkeypatch.setattr(authorizer.logger.registered_handler, "stream", stream)
    secret_token = "super-secret-token-value-123"
    with caplog.at_level(logging.DEBUG):
        try:
            authorizer.handler(event(f"Bearer {secret_token}"), LambdaContext())
        except Exception as refused:
            assert str(refused) == "Unauthorized"
    structured = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert structured, "the authorizer writes structured (JSON) log lines"
    assert all(line["token_hash"] == token_hash(secret_token)[:12] for line in structured)
    assert secret_token not in stream.getvalue() + caplog.text


def test_stage_wide_resource() -> None:
    assert (
        authorizer.stage_wide_resource(
            "arn:aws-us-gov:execute-api:us-gov-west-1:1:api/dev/DELETE/v1/namespaces/ns/topics/t"
        )
        == "arn:aws-us-gov:execute-api:us-gov-west-1:1:api/dev/*/*"
    )
    with pytest.raises(ValueError):
        authorizer.stage_wide_resource("arn:aws:lambda:x")
