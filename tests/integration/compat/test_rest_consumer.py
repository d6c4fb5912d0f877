# mypy: disable-error-code="no-untyped-call"
"""Issue 6's done-when: the SDK's RESTConsumer reads across a restart of the web service."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, TopicPartition
from diaspora_event_sdk.sdk.rest_consumer import RESTConsumer

from tests.integration.compat.conftest import LiveService
from tests.integration.compat.sdk_client import sdk_client


def _fetch_until(consumer: RESTConsumer, count: int) -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    for _ in range(20):
        records.extend(consumer.fetch(timeout_ms=1000))
        if len(records) >= count:
            break
    return records


def test_rest_consumer_reads_every_record_once_across_a_restart(
    live: LiveService, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = live.alice
    client = sdk_client(live, alice, monkeypatch)
    client.create_topic("stream")
    client.produce_batch("stream", [{"value": {"n": i}, "key": f"k{i}"} for i in range(5)])

    # recover=False: a lost instance would raise instead of being re-created silently.
    consumer = RESTConsumer(
        "readers",
        client=client,
        name="r1",
        format="json",
        auto_offset_reset="earliest",
        recover=False,
    )
    assert consumer.base_uri == f"{live.url}/api/v2/consumers/readers/instances/r1"
    consumer.subscribe(["stream"])
    assert consumer.subscription() == ["stream"]
    assert consumer.assignment() == []  # partitions come with the first fetch

    first = _fetch_until(consumer, 5)
    assert consumer.assignment() == [("stream", 0)]
    consumer.commit()

    client.produce_batch("stream", [{"value": {"n": i}, "key": f"k{i}"} for i in range(5, 10)])
    live.restart()  # a new server and container: nothing of the instance is in memory

    second = _fetch_until(consumer, 5)
    records = first + second
    assert [r["value"] for r in records] == [{"n": i} for i in range(10)]
    assert [r["offset"] for r in records] == list(range(10))
    assert {r["topic"] for r in records} == {"stream"}
    assert records[0]["key"] == "k0"
    consumer.commit()

    # The commits went to the Kafka group: a Kafka client of the group sees them.
    group_view = Consumer(
        {
            "bootstrap.servers": live.settings.bootstrap_servers,
            "group.id": f"{alice.namespace}.readers",
        }
    )
    try:
        [committed] = group_view.committed(
            [TopicPartition(f"{alice.namespace}.stream", 0)], timeout=10
        )
    finally:
        group_view.close()
    assert committed.offset == 10
    assert consumer.committed([("stream", 0)]) == {("stream", 0): 10}

    # Nothing more: an empty fetch after the long poll.
    assert consumer.fetch(timeout_ms=300) == []
    consumer.close()
    assert consumer.closed


def test_binary_assign_seek_and_commit_offsets(
    live: LiveService, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = sdk_client(live, live.alice, monkeypatch)
    client.create_topic("raw")
    client.produce_batch(
        "raw",
        [{"value": bytes([i, 255]), "key": b"\x00k", "headers": {"h": b"\x01"}} for i in range(4)],
    )
    with RESTConsumer("tools", client=client, auto_offset_reset="latest") as consumer:
        consumer.assign([("raw", 0)])
        assert consumer.assignment() == [("raw", 0)]
        assert consumer.fetch(timeout_ms=300) == []  # latest: only records written from now
        consumer.seek({("raw", 0): 2})
        records = consumer.fetch(timeout_ms=2000)
        assert [(r["offset"], r["value"]) for r in records] == [(2, b"\x02\xff"), (3, b"\x03\xff")]
        assert records[0]["key"] == b"\x00k"
        assert records[0]["headers"] == [{"name": "h", "value": b"\x01"}]
        consumer.commit({("raw", 0): 2})  # last processed record 2: the group resumes at 3
        assert consumer.committed([("raw", 0)]) == {("raw", 0): 3}
        consumer.seek_to_beginning()
        assert [r["offset"] for r in consumer.fetch(timeout_ms=2000, max_bytes=1)] == [0]
        consumer.seek_to_end()
        assert consumer.fetch(timeout_ms=200) == []

    # A new instance of the group starts at the group's commit.
    with RESTConsumer("tools", client=client, auto_offset_reset="earliest") as again:
        again.subscribe(["raw"])
        assert [r["offset"] for r in again.fetch(timeout_ms=2000)] == [3]
