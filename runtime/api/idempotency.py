"""``Idempotency-Key``: a retried mutating call returns the first call's outcome."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta

from fastapi import Request, Response
from pydantic import BaseModel

from runtime.api.auth import container_of
from runtime.domain.errors import Unprocessable
from runtime.domain.models import IdempotencyRecord
from runtime.domain.ports import Principal

KEY_HEADER = "idempotency-key"
KEY_MAX = 128
KEEP_FOR = timedelta(hours=24)
WITHHELD_HEADER = "Octopus-Withheld"


def fingerprint(request: Request, body: BaseModel | None) -> str:
    parts = [request.method, request.url.path, str(sorted(request.query_params.multi_items()))]
    if body is not None:
        parts.append(body.model_dump_json())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def respond(
    request: Request,
    principal: Principal,
    *,
    status: int,
    action: Callable[[], BaseModel | None],
    body: BaseModel | None = None,
    withhold: tuple[str, ...] = (),
) -> Response:
    """Run ``action`` once per idempotency key; replay its successful reply on retries.

    Fields named in ``withhold`` (secrets shown once) are never stored: a replay carries
    them as null and names them in the ``Octopus-Withheld`` header.
    """
    key = request.headers.get(KEY_HEADER)
    if key is None:
        return _reply(status, action())
    if not key or len(key) > KEY_MAX:
        raise Unprocessable(
            f"Idempotency-Key must be 1 to {KEY_MAX} characters",
            details={"field": "Idempotency-Key"},
        )
    registry = container_of(request).fabric.deps.registry
    digest = fingerprint(request, body)
    stored = registry.get_idempotency(principal.sub, key)
    if stored is not None:
        if stored.request_hash != digest:
            raise Unprocessable(
                "this Idempotency-Key was used for a different request",
                details={"field": "Idempotency-Key"},
            )
        headers = {"Idempotent-Replayed": "true"}
        if withhold:
            headers[WITHHELD_HEADER] = ", ".join(withhold)
        return Response(
            stored.body or None,
            status_code=stored.status_code,
            media_type="application/json",
            headers=headers,
        )
    result = action()
    reply = _reply(status, result)
    stored_reply = reply
    if withhold and result is not None:
        stored_reply = _reply(status, result.model_copy(update=dict.fromkeys(withhold)))
    now = container_of(request).fabric.deps.clock()
    registry.put_idempotency(
        IdempotencyRecord(
            scope=principal.sub,
            key=key,
            request_hash=digest,
            status_code=stored_reply.status_code,
            body=bytes(stored_reply.body).decode(),
            created_at=now,
            expires_at=now + KEEP_FOR,
        )
    )
    return reply


def _reply(status: int, result: BaseModel | None) -> Response:
    if result is None:
        return Response(status_code=status)
    return Response(result.model_dump_json(), status_code=status, media_type="application/json")
