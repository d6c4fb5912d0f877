"""How a Kafka record is written as one SSE event (the hot path of every stream).

``data`` is JSON: topic, partition, offset, timestamp (ISO 8601, UTC) and timestamp_ms, key,
value, headers. A value is given as JSON when it is valid JSON, else as text when it is
UTF-8, else as base64; ``value_encoding`` says which ("json", "text", "base64"; absent when
the value is null). Keys and header values: text, or base64 (``key_encoding`` /
``encoding``). A JSON value is embedded as sent (its line breaks, which JSON only allows
as whitespace, become spaces: an SSE data line holds no line break), so it is validated
but never re-encoded. orjson is used when installed (≈10x faster), else the stdlib.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

try:
    import orjson

    def _dumps(value: Any) -> str:
        return orjson.dumps(value).decode()

    def _is_json(raw: bytes) -> bool:
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError:
            # orjson refuses integers beyond 64 bits that JSON allows: ask the stdlib.
            return _stdlib_is_json(raw)
        return True

except ImportError:  # pragma: no cover - orjson is a dependency; the stdlib still works
    _encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

    def _dumps(value: Any) -> str:
        return _encoder.encode(value)

    def _is_json(raw: bytes) -> bool:
        return _stdlib_is_json(raw)


_JSON_STARTS = frozenset(b'{["-0123456789tfn \t\r\n')


def _stdlib_is_json(raw: bytes) -> bool:
    if not raw or raw[0] not in _JSON_STARTS:
        return False
    try:
        json.loads(raw.decode("utf-8"), parse_constant=_refuse)
    except ValueError:
        return False
    return True


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_iso_cache: dict[int, str] = {}


def _iso_json(timestamp_ms: int) -> str:
    """The timestamp as a JSON string (records of a batch often share their millisecond)."""
    cached = _iso_cache.get(timestamp_ms)
    if cached is None:
        if timestamp_ms <= 0:
            cached = "null"
        else:
            moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
            cached = '"' + moment.isoformat(timespec="milliseconds") + '"'
        if len(_iso_cache) > 4096:
            _iso_cache.clear()
        _iso_cache[timestamp_ms] = cached
    return cached


def _text_or_base64(raw: bytes) -> tuple[str, str]:
    """(JSON string, encoding) of bytes that are not used as JSON."""
    try:
        return _dumps(raw.decode("utf-8")), "text"
    except UnicodeDecodeError:
        return '"' + base64.b64encode(raw).decode("ascii") + '"', "base64"


def value_json(raw: bytes | None) -> tuple[str, str | None]:
    """(the value as JSON text, its encoding)."""
    if raw is None:
        return "null", None
    if _is_json(raw):
        text = raw.decode("utf-8")
        if "\n" in text or "\r" in text:
            text = text.replace("\r", " ").replace("\n", " ")
        return text, "json"
    return _text_or_base64(raw)


def record_json(
    topic_json: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes | None]] | None,
) -> str:
    """The ``data`` of one record event; ``topic_json`` is the topic as a JSON string."""
    value_text, value_encoding = value_json(value)
    parts = [
        '{"topic":',
        topic_json,
        ',"partition":',
        str(partition),
        ',"offset":',
        str(offset),
        ',"timestamp":',
        _iso_json(timestamp_ms),
        ',"timestamp_ms":',
        str(timestamp_ms),
    ]
    if key is None:
        parts.append(',"key":null')
    else:
        key_text, key_encoding = _text_or_base64(key)
        parts += [',"key":', key_text, ',"key_encoding":"', key_encoding, '"']
    parts += [',"value":', value_text]
    if value_encoding is not None:
        parts += [',"value_encoding":"', value_encoding, '"']
    if headers:
        listed = []
        for name, raw in headers:
            if raw is None:
                listed.append({"name": name, "value": None, "encoding": None})
                continue
            try:
                listed.append({"name": name, "value": raw.decode("utf-8"), "encoding": "text"})
            except UnicodeDecodeError:
                encoded = base64.b64encode(raw).decode("ascii")
                listed.append({"name": name, "value": encoded, "encoding": "base64"})
        parts += [',"headers":', _dumps(listed), "}"]
    else:
        parts.append(',"headers":[]}')
    return "".join(parts)


def json_string(text: str) -> str:
    return _dumps(text)


def sse_record(event_id: str, data_json: str) -> str:
    return f"id: {event_id}\nevent: record\ndata: {data_json}\n\n"


def sse_event(event: str, data: Any, event_id: str | None = None) -> str:
    """One SSE event; ``data`` JSON-encoded on one line (JSON has no raw newlines)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {_dumps(data)}\n\n"


def sse_comment(text: str) -> str:
    return f": {text}\n\n"


def sse_retry(milliseconds: int) -> str:
    return f"retry: {milliseconds}\n\n"
