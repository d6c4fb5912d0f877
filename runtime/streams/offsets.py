"""Concrete start positions for a stream, computed from the log.

- ``latest``: the admin's ``end_offsets`` (on the embedded broker ListOffsets(latest) is
  wrong; the admin reads the fetch high watermark instead);
- ``earliest``: the admin's ``begin_offsets``;
- an offset: that offset in every partition, clamped to [begin, end];
- a time: the first offset whose record timestamp is at or after it. The broker's
  OffsetsForTimes when it is reliable (MSK: ``broker_time_lookup``), else a bisection over
  record timestamps read from the log (the embedded broker answers 0 to OffsetsForTimes).
  Bisection assumes timestamps grow with offsets (CreateTime set by ordinary producers);
  with out-of-order timestamps it lands on *a* boundary, never skips past a later one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from runtime.adapters.kafka_errors import BrokerUnavailable, from_exception, from_kafka_error
from runtime.streams.positions import StartSpec


class OffsetsAdmin(Protocol):
    def end_offsets(self, name: str) -> dict[int, int]: ...

    def begin_offsets(self, name: str) -> dict[int, int]: ...


class TimestampProbe:
    """Reads the timestamp of the record at (or first after) an offset; one consumer."""

    def __init__(self, connection: Mapping[str, Any], timeout_s: float = 10.0) -> None:
        self._consumer = Consumer(
            {
                **connection,
                "group.id": f"octopus-sse-time-{uuid.uuid4().hex}",  # never joined
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "allow.auto.create.topics": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 10,
                "queued.min.messages": 1,
                "queued.max.messages.kbytes": 1024,
            }
        )
        self.timeout_s = timeout_s
        self.probes = 0

    def close(self) -> None:
        self._consumer.close()

    def at(self, topic: str, partition: int, offset: int) -> tuple[int, int] | None:
        """(offset, timestamp_ms) of the first record at or after ``offset``; None at the end."""
        self.probes += 1
        self._consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            message = self._consumer.poll(0.1)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return None
                raise from_kafka_error(error, f"reading timestamps of {topic}[{partition}]")
            found = message.offset()
            if message.partition() != partition or found is None or found < offset:
                continue
            return found, message.timestamp()[1]
        raise BrokerUnavailable(f"no record of {topic}[{partition}] at {offset} within the timeout")


def bisect_time(
    probe: TimestampProbe, topic: str, partition: int, begin: int, end: int, time_ms: int
) -> int:
    """The first position in [begin, end] from which every record has a timestamp >= ``time_ms``
    (assuming timestamps grow with offsets); ``end`` if no record is that recent.

    A probe at ``middle`` returns the first stored record at or after it; offsets with no
    record (compaction, transaction markers) read like the next stored one.
    """
    low, high = begin, end
    while low < high:
        middle = (low + high) // 2
        found = probe.at(topic, partition, middle)
        if found is None or found[0] >= high or found[1] >= time_ms:
            high = middle
        else:
            low = found[0] + 1
    return low


def broker_offsets_for_time(
    connection: Mapping[str, Any],
    topic: str,
    partitions: list[int],
    time_ms: int,
    end: Mapping[int, int],
) -> dict[int, int]:
    consumer = Consumer(
        {
            **connection,
            "group.id": f"octopus-sse-time-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    try:
        found = consumer.offsets_for_times(
            [TopicPartition(topic, p, time_ms) for p in partitions], timeout=10.0
        )
    except KafkaException as exc:
        raise from_exception(exc, f"looking up offsets of {topic} by time") from exc
    finally:
        consumer.close()
    # -1: no record at or after the time: start at the end.
    return {tp.partition: tp.offset if tp.offset >= 0 else end[tp.partition] for tp in found}


def start_positions(
    admin: OffsetsAdmin,
    connection: Mapping[str, Any],
    kafka_topic: str,
    spec: StartSpec,
    *,
    broker_time_lookup: bool,
) -> dict[int, int]:
    """Next offset to read per partition of ``kafka_topic`` for ``spec``."""
    if spec.kind == "latest":
        return admin.end_offsets(kafka_topic)
    begin = admin.begin_offsets(kafka_topic)
    if spec.kind == "earliest":
        return begin
    end = admin.end_offsets(kafka_topic)
    if spec.kind == "offset":
        return {p: min(max(spec.value, begin.get(p, 0)), end[p]) for p in end}
    if broker_time_lookup:
        return broker_offsets_for_time(connection, kafka_topic, sorted(end), spec.value, end)
    probe = TimestampProbe(connection)
    try:
        return {
            p: bisect_time(probe, kafka_topic, p, begin.get(p, 0), end[p], spec.value)
            for p in sorted(end)
        }
    finally:
        probe.close()
