"""The HTTP layer: auth header, Idempotency-Key, retries with backoff, typed errors.

Retry rule: a call is retried only when repeating it cannot do harm — safe methods
(GET/HEAD/PUT/DELETE are idempotent by HTTP's definition) or a mutating call that
carries an ``Idempotency-Key`` (the fabric then returns the first outcome to the
retry). Retried outcomes: 429 and 503 (the fabric promises nothing was written),
and connection failures that happened before the request reached the server.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import IO, Any

import httpx

from octopus_client import __version__
from octopus_client.errors import FabricAPIError, UnavailableError, error_from_reply

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 503})
# The request never left this machine: repeating it is always safe.
_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# For idempotent calls a broken reply can be retried too.
_IDEMPOTENT_RETRY_ERRORS = (*_NOT_SENT_ERRORS, httpx.ReadError, httpx.RemoteProtocolError)


class RetryPolicy:
    """Exponential backoff with full jitter, honouring ``Retry-After`` up to ``max_delay``."""

    def __init__(self, attempts: int = 4, base_delay: float = 0.2, max_delay: float = 5.0) -> None:
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), self.max_delay)
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)


class Transport:
    """Sends requests to the fabric and decodes replies or raises typed errors."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None,
        timeout: float,
        retry: RetryPolicy | None = None,
        user_agent_app: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        agent = f"octopus-fabric-client/{__version__}"
        if user_agent_app:
            agent = f"{user_agent_app} {agent}"
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            timeout=timeout,
            headers={"User-Agent": agent, "Accept": "application/json"},
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | bool = True,
    ) -> Any:
        """Send one call; return the decoded JSON body (``None`` for 204).

        Mutating calls get a fresh uuid4 ``Idempotency-Key`` unless one is given
        (a string) or it is turned off (``False``, which also turns off retries).
        """
        method = method.upper()
        headers: dict[str, str] = {}
        if method not in IDEMPOTENT_METHODS and idempotency_key is not False:
            headers["Idempotency-Key"] = (
                idempotency_key if isinstance(idempotency_key, str) else str(uuid.uuid4())
            )
        retryable = method in IDEMPOTENT_METHODS or "Idempotency-Key" in headers
        clean_params = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            try:
                response = self._client.request(
                    method, path, json=json, params=clean_params, headers=headers
                )
            except httpx.TransportError as exc:
                safe = (
                    _IDEMPOTENT_RETRY_ERRORS if method in IDEMPOTENT_METHODS else _NOT_SENT_ERRORS
                )
                if retryable and isinstance(exc, safe) and attempt + 1 < self.retry.attempts:
                    self._sleep(self.retry.delay(attempt))
                    attempt += 1
                    continue
                raise UnavailableError(
                    f"cannot reach the fabric at {self.base_url}: {exc or type(exc).__name__}",
                    code="unreachable",
                ) from exc
            if (
                response.status_code in RETRY_STATUSES
                and retryable
                and attempt + 1 < self.retry.attempts
            ):
                self._sleep(self.retry.delay(attempt, response.headers.get("Retry-After")))
                attempt += 1
                continue
            return _decode(response)

    def upload(self, path: str, stream: IO[bytes], headers: Mapping[str, str]) -> Any:
        """PUT a file's bytes to the fabric itself (streamed, sent once: no retry)."""
        try:
            response = self._client.put(path, content=stream, headers=dict(headers))
        except httpx.TransportError as exc:
            raise UnavailableError(
                f"cannot reach the fabric at {self.base_url}: {exc or type(exc).__name__}",
                code="unreachable",
            ) from exc
        return _decode(response)


def _decode(response: httpx.Response) -> Any:
    if response.status_code == 204 or not response.content:
        if response.is_success:
            return None
        raise error_from_reply(response.status_code, None, response.reason_phrase)
    try:
        body = response.json()
    except ValueError:
        body = None
    # 207 (batch produce) is a success whose entries carry their own outcomes.
    if response.is_success:
        if body is None:
            raise FabricAPIError(
                f"the fabric answered {response.status_code} with a body that is not JSON",
                status=response.status_code,
                code="bad_reply",
            )
        return body
    raise error_from_reply(response.status_code, body, response.text[:200])


class BearerToken(httpx.Auth):
    """A fixed bearer token (a development token, or one passed with ``--token``)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


class HeaderProviderAuth(httpx.Auth):
    """Asks a provider for the ``Authorization`` header on each request (refreshing tokens)."""

    def __init__(self, header: Callable[[], str]) -> None:
        self.header = header

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["Authorization"] = self.header()
        yield request
