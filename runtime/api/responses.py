"""Error replies declared on routes so the OpenAPI document lists them."""

from __future__ import annotations

from typing import Any

from runtime.api.schemas import ErrorReply

_DESCRIPTIONS = {
    400: "Bad request (bad JSON, invalid name)",
    401: "Missing, invalid or expired token",
    403: "Known resource, but not allowed",
    404: "Not found (or not visible to you)",
    409: "Conflict, platform limit, or unsupported by the broker",
    413: "Request body too large",
    422: "Invalid field (named in the message)",
    429: "Quota exceeded (named in the message)",
    503: "A dependency is unavailable; nothing was changed",
    504: "Sent but not acknowledged in time: it may or may not have been written",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    codes = set(statuses) | {400, 401, 413, 422, 503}
    return {
        code: {"model": ErrorReply, "description": _DESCRIPTIONS[code]} for code in sorted(codes)
    }
