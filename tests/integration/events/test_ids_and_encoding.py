"""Event ids, ``from=`` parsing and the record encoding (pure functions, no broker)."""

from __future__ import annotations

import json

import pytest

from runtime.streams.encoding import record_json, value_json
from runtime.streams.plan import parse_filter
from runtime.streams.positions import (
    InvalidPosition,
    StartSpec,
    channel_id,
    parse_channel_id,
    parse_single_topic_id,
    parse_start,
    single_topic_id,
)
from runtime.triggers.filters import InvalidFilterCriteria


def test_single_topic_ids_round_trip() -> None:
    text = single_topic_id("a.b-c_d", 1, 41, [7, 42, 0])
    assert text == "a.b-c_d/1/41;7,42,0"
    parsed = parse_single_topic_id(text)
    assert parsed.positions() == {0: 7, 1: 42, 2: 0}
    assert parse_single_topic_id("a.b/2/9").positions() == {2: 10}
    assert parse_single_topic_id("a.b;3,4").positions() == {0: 3, 1: 4}
    for bad in ("a.b", "a/b/c", "a.b/1/x;1", "", "a.b/1/2;1,x"):
        with pytest.raises(InvalidPosition):
            parse_single_topic_id(bad)


def test_channel_ids_round_trip_and_reject_garbage() -> None:
    positions = {"beam.det1": {0: 5, 1: 7}, "beam.det2": {0: 1}}
    text = channel_id(positions, 1_700_000_000_000)
    assert text.startswith("c1.") and "=" not in text and "\n" not in text
    parsed = parse_channel_id(text)
    assert parsed.positions == positions and parsed.made_at_ms == 1_700_000_000_000
    for bad in ("c1.!!!", "x.abc", "c1.e30", "a.b/1/2"):
        with pytest.raises(InvalidPosition):
            parse_channel_id(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, StartSpec("latest")),
        ("earliest", StartSpec("earliest")),
        ("latest", StartSpec("latest")),
        ("1234", StartSpec("offset", 1234)),
        ("1893456000000", StartSpec("time", 1_893_456_000_000)),
        ("2030-01-01T00:00:00Z", StartSpec("time", 1_893_456_000_000)),
        ("2030-01-01T01:00:00+01:00", StartSpec("time", 1_893_456_000_000)),
        ("2030-01-01T00:00:00", StartSpec("time", 1_893_456_000_000)),
    ],
)
def test_from_parameter(text: str | None, expected: StartSpec) -> None:
    assert parse_start(text) == expected


def test_from_parameter_rejects_junk() -> None:
    with pytest.raises(InvalidPosition):
        parse_start("yesterday")


def test_values_json_text_base64() -> None:
    assert value_json(b'{"a":\n 1}') == ('{"a":  1}', "json")  # line break -> space
    assert value_json(b"12345678901234567890123") == ("12345678901234567890123", "json")
    assert value_json(b"NaN") == ('"NaN"', "text")
    assert value_json(b"hello") == ('"hello"', "text")
    assert value_json(b"\xff") == ('"/w=="', "base64")
    assert value_json(None) == ("null", None)


def test_record_json_is_valid_json_on_one_line() -> None:
    text = record_json(
        '"t"', 2, 9, 1_893_456_000_123, b"\x00\xff", b'["x",\r\n2]', [("h", b"v"), ("b", b"\xff")]
    )
    assert "\n" not in text and "\r" not in text
    assert json.loads(text) == {
        "topic": "t",
        "partition": 2,
        "offset": 9,
        "timestamp": "2030-01-01T00:00:00.123+00:00",
        "timestamp_ms": 1_893_456_000_123,
        "key": "AP8=",
        "key_encoding": "base64",
        "value": ["x", 2],
        "value_encoding": "json",
        "headers": [
            {"name": "h", "value": "v", "encoding": "text"},
            {"name": "b", "value": "/w==", "encoding": "base64"},
        ],
    }


def test_filter_parameter_forms() -> None:
    assert parse_filter(None).patterns == ()
    assert len(parse_filter('[{"value": {"a": [1]}}, {"value": {"b": [2]}}]').patterns) == 2
    assert len(parse_filter('{"value": {"a": [1]}}').patterns) == 1
    with pytest.raises(InvalidFilterCriteria):
        parse_filter("{not json")
    with pytest.raises(InvalidFilterCriteria):
        parse_filter(
            '{"Filters": [{"Pattern": "{\\"value\\": {\\"a\\": [{\\"cidr\\": \\"x\\"}]}}"}]}'
        )
