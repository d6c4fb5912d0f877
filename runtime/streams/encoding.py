"""How a Kafka record is written as one SSE event.

``data`` is JSON: topic, partition, offset, timestamp (ISO) and timestamp_ms, key, value,
headers. A value (and a key) is given as JSON when it parses as JSON, else as text when it
is UTF-8, else as base64; ``value_encoding`` / ``key_encoding`` say which ("json", "text",
"base64"; absent when null). Headers: ``[{name, value, encoding}]`` with text or base64.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _decode(raw: bytes | None, *, try_json: bool) -> tuple[Any, str | None]:
    if raw is None:
        return None, None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"
    if try_json and text:
        first = text.lstrip()[:1]
        # Parse only what can be JSON; a plain string costs no exception.
        if first in ("{", "[", '"', "-", "t", "f", "n") or first.isdigit():
            try:
                return json.loads(text), "json"
            except ValueError:
                pass
    return text, "text"


def record_data(
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes | None]] | None,
) -> dict[str, Any]:
    value_out, value_encoding = _decode(value, try_json=True)
    key_out, key_encoding = _decode(key, try_json=False)
    data: dict[str, Any] = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp": (
            datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="milliseconds")
            if timestamp_ms > 0
            else None
        ),
        "timestamp_ms": timestamp_ms,
        "key": key_out,
        "value": value_out,
    }
    if key_encoding is not None:
        data["key_encoding"] = key_encoding
    if value_encoding is not None:
        data["value_encoding"] = value_encoding
    header_list = []
    for name, raw in headers or ():
        header_value, header_encoding = _decode(raw, try_json=False)
        header_list.append({"name": name, "value": header_value, "encoding": header_encoding})
    data["headers"] = header_list
    return data


def sse_event(event: str, data: Any, event_id: str | None = None) -> str:
    """One SSE event; ``data`` JSON-encoded on one line (JSON has no raw newlines)."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}\n")
    lines.append(f"event: {event}\n")
    lines.append(f"data: {_dumps(data)}\n\n")
    return "".join(lines)


def sse_comment(text: str) -> str:
    return f": {text}\n\n"


def sse_retry(milliseconds: int) -> str:
    return f"retry: {milliseconds}\n\n"
