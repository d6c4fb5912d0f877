"""Stateless HTTP consume: ``GET /v1/namespaces/{ns}/topics/{t}/records``.

One partition from an offset, nothing kept between calls: the caller carries
``next_offset`` to the next call. Read access is checked on every call.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from runtime.api.auth import ContainerDep, CurrentPrincipal
from runtime.api.container import Container
from runtime.api.responses import errors
from runtime.domain.consumers import FetchedRecordLike, PartitionReader, RecordReads, b64

router = APIRouter(prefix="/v1/namespaces/{ns}/topics/{topic}", tags=["records"])

READER_EXTRA = "record_reader"
READS_EXTRA = "record_reads"


def partition_reader(container: Container) -> PartitionReader:
    """The container's stateless reader (built once from the settings if not supplied)."""
    reader = container.extras.get(READER_EXTRA)
    if reader is None:
        from runtime.adapters.kafka_records import RecordReader
        from runtime.wiring import kafka_client_config

        registry = container.fabric.deps.registry

        def partitions_of(kafka_name: str) -> int | None:
            # Namespaces hold no dots: the first one separates namespace and topic.
            namespace, _, topic = kafka_name.partition(".")
            found = registry.get_topic(namespace, topic)
            return found.partitions if found is not None else None

        reader = RecordReader(
            kafka_client_config(container.settings), partition_count=partitions_of
        )
        container.extras[READER_EXTRA] = reader
    result: PartitionReader = reader
    return result


def record_reads(container: Container) -> RecordReads:
    reads = container.extras.get(READS_EXTRA)
    if reads is None:
        fabric = container.fabric
        reads = RecordReads(fabric.deps, fabric.topics, partition_reader(container))
        container.extras[READS_EXTRA] = reads
    result: RecordReads = reads
    return result


class HeaderOut(BaseModel):
    name: str
    value: str | None = Field(description="base64, or null")


class FetchedRecordOut(BaseModel):
    partition: int
    offset: int
    timestamp: datetime | None
    key: str | None = Field(description="base64, or null")
    value: str | None = Field(description="base64, or null")
    value_json: Any = Field(
        default=None, description="The value parsed as JSON; present only when it is JSON"
    )
    headers: list[HeaderOut]


class RecordsPage(BaseModel):
    topic: str
    partition: int
    records: list[FetchedRecordOut]
    next_offset: int = Field(description="Pass as ?offset= to read on")
    high_watermark: int = Field(description="Offset the next record written will get")


def record_out(record: FetchedRecordLike) -> FetchedRecordOut:
    fields: dict[str, Any] = {
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": (
            datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
            if record.timestamp_ms and record.timestamp_ms > 0
            else None
        ),
        "key": b64(record.key),
        "value": b64(record.value),
        "headers": [HeaderOut(name=n, value=b64(v)) for n, v in record.headers],
    }
    if record.value is not None:
        with contextlib.suppress(ValueError):
            fields["value_json"] = json.loads(record.value)
    return FetchedRecordOut(**fields)


@router.get(
    "/records",
    response_model=RecordsPage,
    response_model_exclude_unset=True,
    responses=errors(403, 404),
    summary="Read records of one partition from an offset (stateless)",
)
def read_records(
    ns: str,
    topic: str,
    principal: CurrentPrincipal,
    container: ContainerDep,
    partition: int = Query(default=0, ge=0),
    offset: int | None = Query(default=None, ge=0, description="Default: the first stored"),
    limit: int = Query(default=100, ge=1, le=RecordReads.MAX_LIMIT),
    timeout_ms: int = Query(default=1000, ge=0, le=30_000),
) -> RecordsPage:
    read = record_reads(container).read(
        principal,
        ns,
        topic,
        partition=partition,
        offset=offset,
        limit=limit,
        timeout_ms=timeout_ms,
    )
    return RecordsPage(
        topic=topic,
        partition=partition,
        records=[record_out(r) for r in read.records],
        next_offset=read.next_offset,
        high_watermark=read.high_watermark,
    )
