"""Records in Confluent REST v3's body form, decoded to bytes for Kafka."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from runtime.api.schemas import RecordData, RecordIn, RecordOut
from runtime.domain.errors import Unprocessable
from runtime.domain.ports import OutboundRecord, WriteOutcome


def _data_bytes(data: RecordData | None, field: str) -> bytes | None:
    if data is None:
        return None
    if data.type == "JSON":
        # Compact JSON, as Confluent's REST proxy writes it.
        return json.dumps(data.data, separators=(",", ":"), ensure_ascii=False).encode()
    if data.type == "STRING":
        if not isinstance(data.data, str):
            raise Unprocessable(
                f"{field}.data must be a string for type STRING", details={"field": f"{field}.data"}
            )
        return data.data.encode()
    if not isinstance(data.data, str):
        raise Unprocessable(
            f"{field}.data must be base64 text for type BINARY", details={"field": f"{field}.data"}
        )
    try:
        return base64.b64decode(data.data, validate=True)
    except (binascii.Error, ValueError):
        raise Unprocessable(
            f"{field}.data is not valid base64", details={"field": f"{field}.data"}
        ) from None


def decode_record(record: RecordIn, *, prefix: str = "") -> OutboundRecord:
    if record.key is None and record.value is None:
        raise Unprocessable("a record needs a key or a value", details={"field": f"{prefix}value"})
    headers: list[tuple[str, bytes | None]] = []
    for index, header in enumerate(record.headers):
        value = None
        if header.value is not None:
            try:
                value = base64.b64decode(header.value, validate=True)
            except (binascii.Error, ValueError):
                raise Unprocessable(
                    f"header {header.name!r} value is not valid base64",
                    details={"field": f"{prefix}headers.{index}.value"},
                ) from None
        headers.append((header.name, value))
    timestamp_ms = None
    if record.timestamp is not None:
        stamp = (
            record.timestamp if record.timestamp.tzinfo else record.timestamp.replace(tzinfo=UTC)
        )
        timestamp_ms = int(stamp.timestamp() * 1000)
    return OutboundRecord(
        key=_data_bytes(record.key, f"{prefix}key"),
        value=_data_bytes(record.value, f"{prefix}value"),
        headers=headers,
        timestamp_ms=timestamp_ms,
        partition=record.partition_id,
    )


def record_out(topic: str, outcome: WriteOutcome) -> RecordOut:
    stamp = (
        datetime.fromtimestamp(outcome.timestamp_ms / 1000, UTC)
        if outcome.timestamp_ms is not None
        else None
    )
    return RecordOut(
        topic_name=topic, partition_id=outcome.partition, offset=outcome.offset, timestamp=stamp
    )
