"""The event Lambda hands a function for an Amazon MSK event source, built and parsed.

Shape (AWS Lambda developer guide, "Using Lambda with Amazon MSK", example event:
https://docs.aws.amazon.com/lambda/latest/dg/with-msk.html and
https://docs.aws.amazon.com/lambda/latest/dg/kafka-filtering.html)::

    {
      "eventSource": "aws:kafka",
      "eventSourceArn": "arn:aws:kafka:...:cluster/NAME/UUID",
      "bootstrapServers": "b-1...:9098,b-2...:9098",
      "records": {
        "mytopic-0": [
          {"topic": "mytopic", "partition": 0, "offset": 15,
           "timestamp": 1545084650987, "timestampType": "CREATE_TIME",
           "key": "<base64>", "value": "<base64>",
           "headers": [{"headerKey": [104, 101, 97, 100, 101, 114]}]}
        ]
      }
    }

Records are grouped under ``"<topic>-<partition>"`` in the order given; each header is its
own one-entry object whose value is the header's bytes as a list of integers. Local mode
builds this exact event so the same handler code runs on a laptop and on Lambda.

Two choices AWS does not document, made here so the round trip is loss-free where it can be:
a record without a key has no ``key`` field; a record without a value (tombstone) has no
``value`` field. A header whose value is null is sent as an empty list (Kafka allows null
header values; they read back as ``b""``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runtime.domain.errors import BadRequest

MSK_EVENT_SOURCE = "aws:kafka"
CREATE_TIME = "CREATE_TIME"
LOG_APPEND_TIME = "LOG_APPEND_TIME"
_TIMESTAMP_TYPES = frozenset({CREATE_TIME, LOG_APPEND_TIME})


class MalformedEvent(BadRequest):
    """An event does not have the shape Lambda gives for an MSK event source."""

    code = "malformed_event"


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """One Kafka record as the fabric sees it: raw bytes, no decoding decisions yet."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None = None
    value: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = field(default_factory=tuple)
    timestamp_type: str = CREATE_TIME

    def __post_init__(self) -> None:
        # Accept any iterable of pairs (e.g. confluent-kafka's list of tuples), store a tuple
        # so records stay hashable and immutable.
        if not isinstance(self.headers, tuple):
            object.__setattr__(self, "headers", tuple(tuple(h) for h in self.headers))

    @property
    def partition_key(self) -> str:
        """The ``records`` key Lambda groups this record under: ``<topic>-<partition>``."""
        return f"{self.topic}-{self.partition}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def record_to_lambda(record: KafkaRecord) -> dict[str, Any]:
    """One record in Lambda's MSK form (base64 key/value, headers as byte-integer lists)."""
    out: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp_ms,
        "timestampType": record.timestamp_type,
    }
    if record.key is not None:
        out["key"] = _b64(record.key)
    if record.value is not None:
        out["value"] = _b64(record.value)
    out["headers"] = [{name: list(value or b"")} for name, value in record.headers]
    return out


def build_msk_event(
    records: Iterable[KafkaRecord],
    *,
    event_source_arn: str,
    bootstrap_servers: str,
) -> dict[str, Any]:
    """The event Lambda would invoke a function with for these records."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(record.partition_key, []).append(record_to_lambda(record))
    return {
        "eventSource": MSK_EVENT_SOURCE,
        "eventSourceArn": event_source_arn,
        "bootstrapServers": bootstrap_servers,
        "records": grouped,
    }


def _decode_b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedEvent(f"{what} must be a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedEvent(f"{what} is not valid base64: {exc}") from exc


def _parse_headers(raw: Any, where: str) -> tuple[tuple[str, bytes | None], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise MalformedEvent(f"{where}.headers must be a list")
    headers: list[tuple[str, bytes | None]] = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            raise MalformedEvent(f"{where}.headers[{index}] must be an object")
        for name, octets in entry.items():
            if not isinstance(octets, list) or not all(
                isinstance(o, int) and not isinstance(o, bool) and 0 <= o <= 255 for o in octets
            ):
                raise MalformedEvent(
                    f"{where}.headers[{index}].{name} must be a list of byte values (0-255)"
                )
            headers.append((str(name), bytes(octets)))
    return tuple(headers)


def record_from_lambda(raw: Mapping[str, Any], where: str = "record") -> KafkaRecord:
    """Parse one record of Lambda's MSK form back into a :class:`KafkaRecord`."""
    try:
        topic, partition, offset = raw["topic"], raw["partition"], raw["offset"]
        timestamp = raw["timestamp"]
    except KeyError as exc:
        raise MalformedEvent(f"{where} lacks the field {exc.args[0]!r}") from exc
    for name, value in (("partition", partition), ("offset", offset), ("timestamp", timestamp)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise MalformedEvent(f"{where}.{name} must be an integer")
    if not isinstance(topic, str) or not topic:
        raise MalformedEvent(f"{where}.topic must be a non-empty string")
    timestamp_type = raw.get("timestampType", CREATE_TIME)
    if timestamp_type not in _TIMESTAMP_TYPES:
        raise MalformedEvent(f"{where}.timestampType must be one of {sorted(_TIMESTAMP_TYPES)}")
    key = _decode_b64(raw["key"], f"{where}.key") if raw.get("key") is not None else None
    value = _decode_b64(raw["value"], f"{where}.value") if raw.get("value") is not None else None
    return KafkaRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp_ms=timestamp,
        key=key,
        value=value,
        headers=_parse_headers(raw.get("headers"), where),
        timestamp_type=timestamp_type,
    )


def parse_msk_event(event: Mapping[str, Any]) -> list[KafkaRecord]:
    """All records of an MSK (or self-managed Kafka) event, in delivery order."""
    source = event.get("eventSource")
    if source not in (MSK_EVENT_SOURCE, "SelfManagedKafka", "aws:SelfManagedKafka"):
        raise MalformedEvent(f"eventSource must be {MSK_EVENT_SOURCE!r}, got {source!r}")
    groups = event.get("records")
    if not isinstance(groups, Mapping):
        raise MalformedEvent("records must be an object keyed by '<topic>-<partition>'")
    records: list[KafkaRecord] = []
    for group_key, group in groups.items():
        if not isinstance(group, Sequence) or isinstance(group, str | bytes):
            raise MalformedEvent(f"records[{group_key!r}] must be a list")
        for index, raw in enumerate(group):
            if not isinstance(raw, Mapping):
                raise MalformedEvent(f"records[{group_key!r}][{index}] must be an object")
            record = record_from_lambda(raw, f"records[{group_key!r}][{index}]")
            if record.partition_key != group_key:
                raise MalformedEvent(
                    f"records[{group_key!r}][{index}] belongs to {record.partition_key!r}"
                )
            records.append(record)
    return records
