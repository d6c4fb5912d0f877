"""API Gateway (REST) TOKEN authorizer: Globus Auth bearer tokens → IAM policy.

- Allowed: a policy allowing ``execute-api:Invoke`` on every method of the
  API's stage (``arn:...:apiId/stage/*/*``) — not just the called route — so
  API Gateway's own authorizer cache can answer later calls to other routes;
  ``principalId`` is the Globus ``sub`` and ``context`` carries sub, username,
  scopes (space-joined) and expires_at (epoch seconds): only str/number/bool,
  as API Gateway requires.
- Invalid, expired, wrong-audience or missing token: ``Exception("Unauthorized")``,
  which API Gateway turns into 401.
- Globus unreachable: a different error, which API Gateway answers with 500:
  an outage must never look like a Deny (or an Allow).

The provider and its token cache live at module level: one per container,
shared by every invocation it serves. Tokens are never logged; the first
12 hex characters of their SHA-256 are.
"""

from __future__ import annotations

import re
from typing import Any

from aws_lambda_powertools import Logger

from runtime.adapters.aws.globus_identity import GlobusIdentityProvider
from runtime.adapters.token_cache import TokenCache, token_hash
from runtime.config import RuntimeSettings
from runtime.domain.errors import Unauthenticated, Unavailable
from runtime.domain.ports import IdentityProvider, Principal

logger = Logger(service="octopus-authorizer")

_BEARER = re.compile(r"^\s*bearer\s+(\S+)\s*$", re.IGNORECASE)
# arn:PARTITION:execute-api:REGION:ACCOUNT:API_ID/STAGE/METHOD/RESOURCE...
_METHOD_ARN = re.compile(r"^(arn:[^:]+:execute-api:[^:]+:[^:]+:[^/]+/[^/]+)/.+$")

_provider: IdentityProvider | None = None


class AuthorizerUnavailable(Exception):
    """Raised so API Gateway answers 500: the identity provider could not decide."""


def get_provider() -> IdentityProvider:
    """The container's identity provider, built on first use from ``OCTOPUS_SETTINGS``."""
    global _provider  # noqa: PLW0603 - one provider (and cache) per container, by design
    if _provider is None:
        _provider = GlobusIdentityProvider.from_settings(RuntimeSettings.from_env(), TokenCache())
    return _provider


def set_provider(provider: IdentityProvider | None) -> None:
    """Replace (or reset, with None) the container's provider."""
    global _provider  # noqa: PLW0603
    _provider = provider


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (scheme case-insensitive)."""
    if not header:
        return None
    match = _BEARER.match(header)
    return match.group(1) if match else None


def stage_wide_resource(method_arn: str) -> str:
    """``arn:...:apiId/stage/GET/v1/me`` → ``arn:...:apiId/stage/*/*``."""
    match = _METHOD_ARN.match(method_arn)
    if not match:
        raise ValueError(f"not an execute-api method ARN: {method_arn!r}")
    return f"{match.group(1)}/*/*"


def allow_response(principal: Principal, method_arn: str) -> dict[str, Any]:
    expires_at = int(principal.expires_at.timestamp()) if principal.expires_at else 0
    return {
        "principalId": principal.sub,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": stage_wide_resource(method_arn),
                }
            ],
        },
        "context": {
            "sub": principal.sub,
            "username": principal.username or "",
            "scopes": " ".join(principal.scopes),
            "expires_at": expires_at,
        },
    }


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    method_arn = str(event.get("methodArn", ""))
    token = bearer_token(event.get("authorizationToken"))
    if token is None:
        logger.info("no bearer token", extra={"method_arn": method_arn})
        raise Exception("Unauthorized")
    logger.append_keys(token_hash=token_hash(token)[:12])
    try:
        provider = get_provider()
        principal = provider.authenticate(token)
    except Unauthenticated as refusal:
        logger.info("token refused", extra={"reason": refusal.message})
        raise Exception("Unauthorized") from None
    except Unavailable as outage:
        logger.error("identity provider unavailable", extra={"reason": outage.message})
        raise AuthorizerUnavailable(outage.message) from None
    try:
        response = allow_response(principal, method_arn)
    except ValueError:
        logger.error("unexpected methodArn", extra={"method_arn": method_arn})
        raise AuthorizerUnavailable("unexpected methodArn") from None
    logger.info("token allowed", extra={"sub": principal.sub})
    return response
