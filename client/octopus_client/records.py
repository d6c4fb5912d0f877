"""Record bodies for HTTP produce, in the form of Confluent's REST API v3."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any

HeaderValue = str | bytes | None
Headers = Mapping[str, HeaderValue] | list[tuple[str, HeaderValue]]


def record_data(data: Any) -> dict[str, Any]:
    """bytes travel as BINARY (base64); everything else as JSON."""
    if isinstance(data, bytes | bytearray | memoryview):
        return {"type": "BINARY", "data": base64.b64encode(bytes(data)).decode("ascii")}
    return {"type": "JSON", "data": data}


def header_list(headers: Headers | None) -> list[dict[str, str | None]]:
    items = headers.items() if isinstance(headers, Mapping) else (headers or [])
    out: list[dict[str, str | None]] = []
    for name, value in items:
        if value is None:
            out.append({"name": name, "value": None})
            continue
        raw = value.encode() if isinstance(value, str) else bytes(value)
        out.append({"name": name, "value": base64.b64encode(raw).decode("ascii")})
    return out


def record_body(
    value: Any = None,
    *,
    key: Any = None,
    headers: Headers | None = None,
    partition: int | None = None,
    timestamp: datetime | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if key is not None:
        body["key"] = record_data(key)
    if value is not None:
        body["value"] = record_data(value)
    if headers:
        body["headers"] = header_list(headers)
    if partition is not None:
        body["partition_id"] = partition
    if timestamp is not None:
        body["timestamp"] = timestamp.isoformat()
    return body
