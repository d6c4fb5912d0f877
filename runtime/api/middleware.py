"""ASGI middleware: a body size cap and one audit line per mutating call.

Pure ASGI (not BaseHTTPMiddleware) so streamed replies such as SSE pass through
untouched.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.api.errors import is_compat_path

audit_logger = logging.getLogger("octopus.audit")
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyTooLarge(Exception):
    pass


@dataclass(frozen=True)
class BodyLimitOverride:
    """A different cap for exactly one method and path shape (e.g. a streamed upload)."""

    method: str
    path: re.Pattern[str]
    max_bytes: int

    def applies(self, scope: Scope) -> bool:
        return scope.get("method") == self.method and bool(
            self.path.fullmatch(scope.get("path", ""))
        )


class BodySizeLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        overrides: tuple[BodyLimitOverride, ...] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides

    def _limit(self, scope: Scope) -> int:
        for override in self.overrides:
            if override.applies(scope):
                return override.max_bytes
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, send, limit)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, send, limit)

    async def _refuse(self, scope: Scope, send: Send, limit: int) -> None:
        message = f"the request body is larger than {limit} bytes"
        body: dict[str, Any]
        if is_compat_path(scope.get("path", "")):
            body = {"error_code": 41301, "message": message}
        else:
            body = {"error": {"code": "payload_too_large", "message": message, "details": {}}}
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


class AuditLog:
    """Writes ``{"audit": true, identity, action, target, outcome, status}`` per mutation."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in MUTATING:
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            state = scope.get("state") or {}
            principal = state.get("principal")
            route_path = getattr(scope.get("route"), "path", scope.get("path"))
            audit_logger.info(
                json.dumps(
                    {
                        "audit": True,
                        "identity": getattr(principal, "sub", None),
                        "action": f"{scope.get('method')} {route_path}",
                        "target": scope.get("path_params") or {},
                        "outcome": "ok" if status < 400 else "refused" if status < 500 else "error",
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                    default=str,
                    sort_keys=True,
                )
            )
