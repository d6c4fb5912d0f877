"""The renderer's inlined hot path against the reference encoding (no broker needed)."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import KafkaError, Message

from runtime.streams.encoding import json_string, json_values_joined, record_json, value_json
from runtime.streams.positions import parse_single_topic_id
from runtime.streams.render import Renderer, message_headers

TS = 1_893_456_000_123


def _message(
    partition: int,
    offset: int,
    value: bytes | None,
    key: bytes | None = None,
    headers: list[tuple[str, str | bytes | None]] | None = None,
    timestamp: int = TS,
) -> Message:
    return Message(
        topic="ns1.beam.det1",
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        headers=headers,
        timestamp=(1, timestamp),
    )


def _events(body: bytes) -> list[tuple[str, str, str]]:
    """(id, event, data) of every event in an SSE body."""
    found = []
    for block in body.decode().split("\n\n"):
        if not block:
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        found.append((fields["id"], fields["event"], fields["data"]))
    return found


VALUES: list[tuple[bytes | None, bytes | None, list[tuple[str, str | bytes | None]] | None]] = [
    (b'{"frame": 1, "pad": "x"}', b"k1", None),
    (b'{"a":\r\n 1}', None, None),  # line breaks in JSON become spaces
    (b"12345678901234567890123456789", b"\x00\xff", None),  # big int; binary key
    (b"NaN", b'quote"key', None),  # not JSON -> text; a key that needs escaping
    (b"plain text \xc3\xa9", "é".encode(), [("h", b"v"), ("b", b"\xff"), ("n", None)]),
    (b'"\xff"', None, None),  # JSON syntax, but not UTF-8 -> base64
    (b'"\\ud800"', None, None),  # lone surrogate escape: valid JSON grammar
    (b"\xff\xfe", None, None),  # binary
    (None, b"k", None),  # tombstone
    (b"", None, None),  # empty -> text
    (b"[1] x", None, None),  # trailing garbage -> text
    (b"  {}  ", None, None),  # surrounding whitespace is JSON
]


# Every value JSON: the batch takes the one-check path (a UTF-8 error still falls back).
JSON_VALUES: list[
    tuple[bytes | None, bytes | None, list[tuple[str, str | bytes | None]] | None]
] = [
    (b'{"frame": 1, "pad": "x"}', b"k1", None),
    (b'{"a":\r\n 1}', b"with space", None),
    (b" [1, 2] ", b"\x00\xff", None),
    (b'"\xff"', None, None),  # JSON syntax, but not UTF-8 -> base64
    (b"12345678901234567890123456789", "\u00e9t\u00e9".encode(), [("h", b"v")]),
    (b'"caf\xc3\xa9"', b'quote"key', None),
]


# The common batch (one fast path): JSON values, no headers, keys all letters/digits...
PLAIN_VALUES: list[
    tuple[bytes | None, bytes | None, list[tuple[str, str | bytes | None]] | None]
] = [
    (b'{"frame": 1, "pad": "x"}', b"k1", None),
    (b'{"a":\r\n 1}', "\u00e9t\u00e92".encode(), None),
    (b" [1, 2] ", b"det-1/run.5", None),
    (b'"caf\xc3\xa9"', b"Z", None),
]
# ... or all absent.
PLAIN_NO_KEYS = [(value, None, None) for value, _key, _headers in PLAIN_VALUES]
# A key JSON must escape, or an empty key, sends the batch down the per-record path.
ESCAPED_KEY = [*PLAIN_VALUES, (b"1", b'a"b', None), (b"2", b"tab\there", None)]
EMPTY_KEY = [*PLAIN_VALUES, (b"3", b"", None)]


@pytest.mark.parametrize(
    "values",
    [VALUES, JSON_VALUES, PLAIN_VALUES, PLAIN_NO_KEYS, ESCAPED_KEY, EMPTY_KEY],
    ids=["mixed", "all_json", "plain", "plain_no_keys", "escaped_key", "empty_key"],
)
def test_rendered_events_equal_the_reference_encoding_and_ids_resume(
    values: list[tuple[bytes | None, bytes | None, list[tuple[str, str | bytes | None]] | None]],
) -> None:
    renderer = Renderer("ns1", "beam.det1", {"beam.det1": {0: 0, 1: 5, 2: 0}}, lambda _: 3)
    # Runs of one partition, then a switch, like consume() returns them.
    plan = [(1, 5), (1, 6), (0, 0), (0, 1), (0, 2), (2, 0), (1, 7), (1, 8), (0, 3)]
    plan += [(2, 1), (2, 2), (2, 3), (0, 5), (0, 7), (0, 8)]  # a gap (compaction)
    messages = [_message(p, o, *values[i % len(values)]) for i, (p, o) in enumerate(plan)]
    raw_values = [m.value() for m in messages]
    batch_checked = None not in raw_values and json_values_joined(raw_values) is not None  # type: ignore[arg-type]
    assert batch_checked == (values is not VALUES)
    if batch_checked:  # the fast path takes exactly the plain batches
        fresh = Renderer("ns1", "beam.det1", {"beam.det1": {0: 0, 1: 5, 2: 0}}, lambda _: 3)
        joined = b"[" + b",".join(raw_values) + b"]"  # type: ignore[arg-type]
        taken = fresh._render_plain(messages, raw_values, joined)  # type: ignore[arg-type]
        assert (taken is not None) == (values is PLAIN_VALUES or values is PLAIN_NO_KEYS)
    rendered = renderer.render(messages, {})
    assert rendered.count == len(messages) and not rendered.errors
    events = _events(rendered.body)
    assert len(events) == len(messages)
    expected_next = {0: 0, 1: 5, 2: 0}
    for message, (event_id, event, data) in zip(messages, events, strict=True):
        partition, offset = message.partition(), message.offset()
        assert partition is not None and offset is not None
        expected_next[partition] = offset + 1
        assert event == "record"
        vector = ",".join(str(expected_next[p]) for p in range(3))
        assert event_id == f"beam.det1/{partition}/{offset};{vector}"
        assert parse_single_topic_id(event_id).positions() == expected_next
        reference = record_json(
            json_string("beam.det1"),
            partition,
            offset,
            TS,
            message.key(),
            message.value(),
            message_headers(message),
        )
        assert data == reference
        parsed = json.loads(data)
        if message.value() is not None:
            assert value_json(message.value())[1] == parsed["value_encoding"]
    assert renderer.positions["beam.det1"] == expected_next
    assert renderer.last == ("beam.det1", 0, 8)


def test_error_events_are_reported_not_rendered() -> None:
    renderer = Renderer("ns1", "beam.det1", {"beam.det1": {0: 0}}, lambda _: 1)
    failed = Message(topic="ns1.beam.det1", partition=0, error=KafkaError(KafkaError._TRANSPORT))
    rendered = renderer.render([_message(0, 0, b"1"), failed, _message(0, 1, b"2")], {})
    assert rendered.count == 2
    assert [e.code() for e in rendered.errors] == [KafkaError._TRANSPORT]
    assert renderer.positions["beam.det1"] == {0: 2}


def test_filtered_records_move_positions_without_events() -> None:
    renderer = Renderer("ns1", "beam.det1", {"beam.det1": {0: 0, 1: 0}}, lambda _: 2)
    rendered = renderer.render([], {"beam.det1": {1: 40}})
    assert rendered.count == 0 and rendered.body == b""
    assert renderer.positions["beam.det1"] == {0: 0, 1: 40}
    body = renderer.render([_message(0, 3, b"{}")], {}).body
    assert _events(body)[0][0] == "beam.det1/0/3;4,40"


def test_json_values_with_the_json_check() -> None:
    # Every value the renderer marks "json" is JSON to the stdlib too.
    for raw, _key, _headers in VALUES:
        if raw is None:
            continue
        _text, encoding = value_json(raw)
        if encoding == "json":
            json.loads(raw.decode())
        else:
            assert encoding in ("text", "base64")
    assert value_json(b'"\xff"')[1] == "base64"


def test_batch_json_check_refuses_values_that_only_parse_together() -> None:
    good = [b'{"a": 1}', b" [1] ", b'"x"', b"\n2\n"]
    assert json_values_joined(good) == b"[" + b",".join(good) + b"]"
    # Same element count and total length as the values, yet no value is valid alone.
    assert json_values_joined([b"[1", b"2]", b"3,4"]) is None
    assert json_values_joined([b"1,2", b"3"]) is None
    assert json_values_joined([b"[1", b"2]"]) is None
    assert json_values_joined([b"", b"1"]) is None
    assert json_values_joined([b"\x0c1"]) is None  # form feed is not JSON whitespace
    assert json_values_joined([b"NaN"]) is None
    assert json_values_joined([]) is None


@pytest.mark.parametrize(
    "offsets",
    [list(range(40, 60)), [40, 41, 43, 44, 45, 50]],
    ids=["consecutive", "gaps"],
)
def test_one_partition_batch_ids_follow_the_offsets(offsets: list[int]) -> None:
    # The usual batch: one run of one partition; its ids come from the first and last
    # offset when they are consecutive, else from every record's own offset.
    renderer = Renderer("ns1", "beam.det1", {"beam.det1": {0: 7, 1: 40}}, lambda _: 2)
    messages = [_message(1, o, b'{"n": %d}' % o, b"k%d" % o) for o in offsets]
    events = _events(renderer.render(messages, {}).body)
    assert [e[0] for e in events] == [f"beam.det1/1/{o};7,{o + 1}" for o in offsets]
    for message, (_id, _event, data) in zip(messages, events, strict=True):
        offset = message.offset()
        assert offset is not None
        assert data == record_json(
            json_string("beam.det1"), 1, offset, TS, message.key(), message.value(), None
        )
    assert renderer.positions["beam.det1"] == {0: 7, 1: offsets[-1] + 1}
    assert renderer.last == ("beam.det1", 1, offsets[-1])
