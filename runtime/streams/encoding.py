"""How a Kafka record is written as one SSE event (the hot path of every stream).

``data`` is JSON: topic, partition, offset, timestamp (ISO 8601, UTC) and timestamp_ms, key,
value, headers. A value is given as JSON when it is valid JSON, else as text when it is
UTF-8, else as base64; ``value_encoding`` says which ("json", "text", "base64"; absent when
the value is null). Keys and header values: text, or base64 (``key_encoding`` /
``encoding``). A JSON value is embedded as sent (its line breaks, which JSON only allows
as whitespace, become spaces: an SSE data line holds no line break), so it is validated
but never re-encoded.

Validation is the costliest step per record: msgspec checks JSON syntax without building
Python objects, a whole batch in one call (:func:`json_values_joined`; ≈0.1 µs per 150-byte
object, against ≈1 µs for ``orjson.loads`` per value); the UTF-8 check is the
``bytes.decode`` the text needs anyway. A value msgspec refuses is asked of the stdlib
(which also accepts e.g. lone surrogate escapes), so the answer is the stdlib's JSON
grammar. Without msgspec, orjson then the stdlib do the same job per value.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

try:
    import orjson

    def _dumps(value: Any) -> str:
        return orjson.dumps(value).decode()

    json_syntax_check: Callable[[bytes], object] = orjson.loads

except ImportError:  # pragma: no cover - orjson is a dependency; the stdlib still works
    _encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

    def _dumps(value: Any) -> str:
        return _encoder.encode(value)

    json_syntax_check = json.loads

_values_check: Callable[[bytes], list[Any]] | None = None
try:
    import msgspec

    # Decoding into ``Raw`` walks the syntax and allocates nothing per element.
    json_syntax_check = msgspec.json.Decoder(msgspec.Raw).decode
    _values_check = msgspec.json.Decoder(list[msgspec.Raw]).decode
except ImportError:  # pragma: no cover - without msgspec orjson (or the stdlib) validates
    pass

_JSON_SPACE = b" \t\r\n"


def json_values_joined(values: list[bytes]) -> bytes | None:
    """``b"[" + b",".join(values) + b"]"`` when every value is one JSON value, else None.

    One decode checks a whole batch (a call per record costs more than the check). The
    array must have one element per value and each element must be exactly its value
    (surrounding JSON whitespace aside): then no value spilled into another (``[1`` and
    ``2]`` would make one element), so each is valid on its own. Not a UTF-8 check.
    """
    if _values_check is None or not values:
        return None
    # The brackets go on the end values, so the batch is copied once (not three times).
    ends = values.copy()
    ends[0] = b"[" + ends[0]
    ends[-1] = ends[-1] + b"]"
    joined = b",".join(ends)
    try:
        elements = _values_check(joined)
    except ValueError:
        return None
    if len(elements) != len(values):
        return None
    if list(map(len, elements)) != list(map(len, values)):
        for element, value in zip(elements, values, strict=True):
            if len(element) != len(value.strip(_JSON_SPACE)):
                return None
    return joined


def json_text_or_none(raw: bytes) -> str | None:
    """``raw`` as text when it is one valid JSON value (UTF-8), else None.

    The fast check raises ``ValueError`` (msgspec/orjson decode errors and
    ``UnicodeDecodeError`` are ValueErrors); only then is the stdlib asked.
    """
    try:
        json_syntax_check(raw)
        return raw.decode("utf-8")
    except ValueError:
        if _stdlib_is_json(raw):
            return raw.decode("utf-8")
        return None


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
_CACHE_ENTRIES = 4096


def iso_json(timestamp_ms: int) -> str:
    """The timestamp as a JSON string (records of a batch often share their millisecond)."""
    cached = _iso_cache.get(timestamp_ms)
    if cached is None:
        if timestamp_ms <= 0:
            cached = "null"
        else:
            moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
            cached = '"' + moment.isoformat(timespec="milliseconds") + '"'
        if len(_iso_cache) > _CACHE_ENTRIES:
            _iso_cache.clear()
        _iso_cache[timestamp_ms] = cached
    return cached


timestamp_cache: dict[int, str] = {}


def timestamp_fields(timestamp_ms: int) -> str:
    """``"timestamp":...,"timestamp_ms":...`` of a record; the renderer reads
    ``timestamp_cache`` first and calls this on a miss."""
    cached = timestamp_cache.get(timestamp_ms)
    if cached is None:
        cached = f'"timestamp":{iso_json(timestamp_ms)},"timestamp_ms":{timestamp_ms}'
        if len(timestamp_cache) > _CACHE_ENTRIES:
            timestamp_cache.clear()
        timestamp_cache[timestamp_ms] = cached
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
    text = json_text_or_none(raw)
    if text is not None:
        if "\n" in text or "\r" in text:
            text = text.replace("\r", " ").replace("\n", " ")
        return text, "json"
    return _text_or_base64(raw)


def key_field(key: bytes | None) -> str:
    """The ``"key":...`` members of a record's data (no leading comma)."""
    if key is None:
        return '"key":null'
    try:
        return '"key":' + _dumps(key.decode("utf-8")) + ',"key_encoding":"text"'
    except UnicodeDecodeError:
        return '"key":"' + base64.b64encode(key).decode("ascii") + '","key_encoding":"base64"'


def value_field(value: bytes | None) -> str:
    """The ``"value":...`` members of a record's data (no leading comma)."""
    if value is None:
        return '"value":null'
    text, encoding = value_json(value)
    return f'"value":{text},"value_encoding":"{encoding}"'


def headers_json(headers: list[tuple[str, bytes | None]] | None) -> str:
    if not headers:
        return "[]"
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
    return _dumps(listed)


def record_json(
    topic_json: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes | None]] | None,
) -> str:
    """The ``data`` of one record event; ``topic_json`` is the topic as a JSON string.

    :class:`runtime.streams.render.Renderer` inlines the same text for speed (a test
    holds the two equal)."""
    return (
        f'{{"topic":{topic_json},"partition":{partition},"offset":{offset},'
        f"{timestamp_fields(timestamp_ms)},"
        f'{key_field(key)},{value_field(value)},"headers":{headers_json(headers)}}}'
    )


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
