"""The MSK event shape: built exactly as Lambda sends it, parsed back loss-free."""

from __future__ import annotations

import base64

import pytest
from aws_lambda_powertools.utilities.data_classes.kafka_event import KafkaEvent
from hypothesis import given
from hypothesis import strategies as st

from runtime.triggers.event_shape import (
    KafkaRecord,
    MalformedEvent,
    build_msk_event,
    parse_msk_event,
)

ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/octo/abcd-1"


def test_shape_matches_the_documented_example() -> None:
    record = KafkaRecord(
        "mytopic",
        0,
        15,
        1545084650987,
        key=b"recordKey",
        value=b'{"key":"value"}',
        headers=(("headerKey", b"headerValue"),),
    )
    event = build_msk_event([record], event_source_arn=ARN, bootstrap_servers="b-1:9098")
    assert event == {
        "eventSource": "aws:kafka",
        "eventSourceArn": ARN,
        "bootstrapServers": "b-1:9098",
        "records": {
            "mytopic-0": [
                {
                    "topic": "mytopic",
                    "partition": 0,
                    "offset": 15,
                    "timestamp": 1545084650987,
                    "timestampType": "CREATE_TIME",
                    "key": "cmVjb3JkS2V5",
                    "value": "eyJrZXkiOiJ2YWx1ZSJ9",
                    "headers": [
                        {"headerKey": [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101]}
                    ],
                }
            ]
        },
    }


def test_powertools_reads_our_event() -> None:
    recs = [
        KafkaRecord("t", p, o, 1, key=b"k", value=b'{"a": 1}', headers=(("h", b"v"),))
        for p, o in [(0, 1), (1, 7), (0, 2)]
    ]
    event = KafkaEvent(build_msk_event(recs, event_source_arn=ARN, bootstrap_servers="b:1"))
    seen = [
        (r.topic, r.partition, r.offset, r.decoded_key, r.json_value, r.decoded_headers)
        for r in event.records
    ]
    assert seen == [
        ("t", 0, 1, b"k", {"a": 1}, {"h": b"v"}),
        ("t", 0, 2, b"k", {"a": 1}, {"h": b"v"}),
        ("t", 1, 7, b"k", {"a": 1}, {"h": b"v"}),
    ]
    assert event.decoded_bootstrap_servers == ["b:1"]


header = st.tuples(st.text(min_size=1, max_size=5), st.binary(max_size=8))
kafka_records = st.builds(
    KafkaRecord,
    topic=st.sampled_from(["a", "b.c", "x-1"]),
    partition=st.integers(0, 3),
    offset=st.integers(0, 2**40),
    timestamp_ms=st.integers(0, 2**42),
    key=st.none() | st.binary(max_size=16),
    value=st.none() | st.binary(max_size=64),
    headers=st.lists(header, max_size=3).map(tuple),
    timestamp_type=st.sampled_from(["CREATE_TIME", "LOG_APPEND_TIME"]),
)


@given(st.lists(kafka_records, max_size=6))
def test_round_trip(records: list[KafkaRecord]) -> None:
    event = build_msk_event(records, event_source_arn=ARN, bootstrap_servers="b:1")
    parsed = parse_msk_event(event)
    # Grouping by topic-partition keeps order within a group.
    expected = [r for key in event["records"] for r in records if r.partition_key == key]
    assert parsed == expected


def test_null_header_value_reads_back_empty() -> None:
    event = build_msk_event(
        [KafkaRecord("t", 0, 0, 0, headers=(("n", None),))],
        event_source_arn=ARN,
        bootstrap_servers="b:1",
    )
    assert event["records"]["t-0"][0]["headers"] == [{"n": []}]
    assert "key" not in event["records"]["t-0"][0]
    assert parse_msk_event(event)[0].headers == (("n", b""),)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.update(eventSource="aws:sqs"), "eventSource"),
        (lambda e: e.update(records=[]), "keyed by"),
        (lambda e: e["records"]["t-0"][0].update(value="***"), "not valid base64"),
        (lambda e: e["records"]["t-0"][0].pop("offset"), "lacks the field 'offset'"),
        (lambda e: e["records"]["t-0"][0].update(headers=[{"h": [300]}]), "byte values"),
        (lambda e: e["records"].update({"t-9": e["records"]["t-0"]}), "belongs to 't-0'"),
    ],
)
def test_malformed_events_are_named(mutate, message) -> None:
    event = build_msk_event(
        [KafkaRecord("t", 0, 0, 0, value=base64.b64encode(b"x"))],
        event_source_arn=ARN,
        bootstrap_servers="b:1",
    )
    mutate(event)
    with pytest.raises(MalformedEvent, match=message):
        parse_msk_event(event)
