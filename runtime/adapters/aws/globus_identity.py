"""Globus Auth identity: token introspection with the fabric's confidential client.

A token is accepted only if Globus says it is ``active``, it was issued for
this fabric (our client id is in ``aud``), it carries the required scope and
its ``exp`` is in the future. The identity is the token's ``sub``.

Results are cached by token hash (see :mod:`runtime.adapters.token_cache`).
Any failure to get an answer from Globus — network, timeout, 5xx, our own
client credentials refused — is :class:`Unavailable` (503), never an
acceptance and never a cached refusal.

The client secret is read once per process (container) from Secrets Manager,
lazily on the first introspection, so a cold start with Secrets Manager
briefly unreachable fails that one request with 503 and the next one retries.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import boto3
import globus_sdk
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from globus_sdk.transport import RequestsTransport, RetryConfig

from runtime.adapters.token_cache import Rejection, TokenCache, token_hash
from runtime.config import RuntimeSettings
from runtime.domain.errors import Unauthenticated, Unavailable
from runtime.domain.ports import Principal

logger = logging.getLogger(__name__)

# Globus access tokens are ~70 characters; anything huge is refused without a
# round trip so it cannot be used to make us send large requests to Globus.
MAX_TOKEN_LENGTH = 4096
SecretLoader = Callable[[], str]


def load_globus_client_secret(secret_name: str, *, client: Any | None = None) -> str:
    """Read the Globus client secret from Secrets Manager.

    The secret is either the plain client secret or a JSON object with a
    ``client_secret`` key (what ``aws secretsmanager create-secret
    --secret-string '{"client_secret": "..."}'`` stores).
    """
    sm = client or boto3.client(
        "secretsmanager",
        config=Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard"}),
    )
    try:
        value = sm.get_secret_value(SecretId=secret_name)
    except (ClientError, BotoCoreError) as exc:
        code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
        raise Unavailable(
            f"cannot read the Globus client secret {secret_name!r} from Secrets Manager ({code})"
        ) from exc
    raw = value.get("SecretString")
    if not raw:
        raise Unavailable(f"secret {secret_name!r} has no SecretString")
    try:
        parsed = json.loads(raw)
    except ValueError:
        return str(raw).strip()
    if isinstance(parsed, dict):
        secret = parsed.get("client_secret")
        if not isinstance(secret, str) or not secret:
            raise Unavailable(f"secret {secret_name!r} is JSON without a 'client_secret' string")
        return secret
    return str(raw).strip()


def secrets_manager_loader(secret_name: str, *, client: Any | None = None) -> SecretLoader:
    """A loader that reads ``secret_name`` when first called (by the provider)."""

    def load() -> str:
        return load_globus_client_secret(secret_name, client=client)

    return load


class GlobusIdentityProvider:
    """``IdentityProvider`` backed by Globus Auth token introspection."""

    def __init__(
        self,
        client_id: str,
        client_secret: str | SecretLoader,
        required_scope: str,
        cache: TokenCache | None = None,
        *,
        http_timeout_seconds: float = 5.0,
        max_retries: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not client_id:
            raise ValueError("Globus client id is empty (settings key 'globus_client_id')")
        if not required_scope:
            raise ValueError("required scope is empty (settings key 'required_scope')")
        self.client_id = client_id
        self.required_scope = required_scope
        self.cache = cache if cache is not None else TokenCache()
        self._secret_source = client_secret
        self._http_timeout = http_timeout_seconds
        # Few, short retries: the caller (API Gateway, a user) is waiting.
        self._retry_config = RetryConfig(max_retries=max_retries, max_sleep=0.5)
        self._clock = clock
        self._client: globus_sdk.ConfidentialAppAuthClient | None = None
        self._client_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: RuntimeSettings, cache: TokenCache | None = None
    ) -> GlobusIdentityProvider:
        for key in ("globus_client_id", "globus_secret_name", "required_scope"):
            if not getattr(settings, key):
                raise ValueError(f"settings key {key!r} must be set for Globus identity")
        return cls(
            settings.globus_client_id,
            secrets_manager_loader(settings.globus_secret_name),
            settings.required_scope,
            cache,
        )

    def authenticate(self, token: str) -> Principal:
        """Return the token's principal; ``Unauthenticated`` or ``Unavailable``."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("missing or malformed bearer token")
        cached = self.cache.get(token)
        if isinstance(cached, Principal):
            return cached
        if isinstance(cached, Rejection):
            raise Unauthenticated(cached.reason)

        data = self._introspect(token)
        try:
            principal = self._validate(data)
        except Unauthenticated as refusal:
            self.cache.put_invalid(token, refusal.message)
            logger.info(
                "token refused",
                extra={"token_hash": token_hash(token)[:12], "reason": refusal.message},
            )
            raise
        self.cache.put_valid(token, principal)
        return principal

    def _introspect(self, token: str) -> Mapping[str, Any]:
        client = self._auth_client()
        try:
            response = client.oauth2_token_introspect(token, include="identity_set")
        except globus_sdk.NetworkError as exc:
            raise Unavailable("Globus Auth is unreachable; try again shortly") from exc
        except globus_sdk.GlobusAPIError as exc:
            if exc.http_status in (401, 403):
                # Our own client credentials were refused: a deployment problem,
                # not the caller's. Say so in the log, answer 503.
                logger.error("Globus refused the fabric's client credentials (%s)", exc.http_status)
            raise Unavailable(
                f"Globus Auth could not introspect the token (HTTP {exc.http_status})"
            ) from exc
        data = response.data
        if not isinstance(data, dict):
            raise Unavailable("Globus Auth answered introspection with an unexpected body")
        return data

    def _validate(self, data: Mapping[str, Any]) -> Principal:
        if data.get("active") is not True:
            raise Unauthenticated("token is not active (expired, revoked or unknown)")
        audience = data.get("aud") or []
        if isinstance(audience, str):
            audience = [audience]
        if self.client_id not in audience:
            raise Unauthenticated("token was not issued for this fabric (wrong audience)")
        scopes = tuple(str(data.get("scope") or "").split())
        if self.required_scope not in scopes:
            raise Unauthenticated(f"token lacks the required scope {self.required_scope}")
        exp = data.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= self._clock():
            raise Unauthenticated("token has expired")
        sub = data.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthenticated("token has no subject")
        username = data.get("username")
        return Principal(
            sub=sub,
            username=username if isinstance(username, str) else None,
            scopes=scopes,
            expires_at=datetime.fromtimestamp(exp, UTC),
        )

    def _auth_client(self) -> globus_sdk.ConfidentialAppAuthClient:
        if self._client is not None:
            return self._client
        with self._client_lock:
            if self._client is None:
                source = self._secret_source
                try:
                    secret = source() if callable(source) else source
                except Unavailable:
                    raise
                except Exception as exc:
                    raise Unavailable("cannot load the Globus client secret") from exc
                self._client = globus_sdk.ConfidentialAppAuthClient(
                    self.client_id,
                    secret,
                    transport=RequestsTransport(http_timeout=self._http_timeout),
                    retry_config=self._retry_config,
                )
            return self._client
