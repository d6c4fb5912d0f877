"""Lambda entry point: S3 event notifications → one CloudEvents record per object change.

Invoked by S3 directly or through SQS (then ``batchItemFailures`` names the messages to
retry; ``ReportBatchItemFailures`` must be on). Config: ``OCTOPUS_SETTINGS`` (the Kafka
connection) and ``OCTOPUS_STORAGE_ROUTES`` (JSON ``[{"bucket", "topic", "prefix"?}]``, topic
as the Kafka name ``{namespace}.{topic}``). Records are produced with ``acks=all`` by the
idempotent :class:`RecordProducer`; the record key is ``bucket/key`` so the changes of one
object stay in order. A notification for a bucket/key no route covers is skipped (logged).
S3 delivers at least once: the envelope id is stable, so consumers can drop duplicates.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from typing import Any

from runtime.adapters.kafka_records import MAX_BATCH_RECORDS, OutgoingRecord, RecordProducer
from runtime.config import RuntimeSettings
from runtime.storage import cloudevents as ce
from runtime.storage.s3_events import (
    ROUTES_ENV_VAR,
    StorageRoute,
    parse_routes,
    route_for,
    s3_envelope,
    s3_records,
)

logger = logging.getLogger(__name__)


class S3Bridge:
    def __init__(self, producer: RecordProducer, routes: list[StorageRoute]) -> None:
        self.producer = producer
        self.routes = routes

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> S3Bridge:
        from runtime.wiring import kafka_client_config

        env = os.environ if environ is None else environ
        settings = RuntimeSettings.from_env(dict(env))
        routes = parse_routes(env.get(ROUTES_ENV_VAR, ""))
        producer = RecordProducer(
            kafka_client_config(settings, "producer"),
            topic_exists=lambda _name: True,  # the routes name existing topics (deploy config)
        )
        return cls(producer, routes)

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Produce every object change; the SQS messages whose records failed are returned."""
        pending: list[tuple[str | None, str, OutgoingRecord]] = []
        skipped = 0
        for message_id, record in s3_records(event):
            envelope = s3_envelope(record)
            data = envelope["data"]
            route = route_for(self.routes, data["bucket"], data["key"])
            if route is None:
                skipped += 1
                logger.warning("no storage route for s3://%s/%s", data["bucket"], data["key"])
                continue
            outgoing = OutgoingRecord(
                key=f"{data['bucket']}/{data['key']}".encode(),
                value=ce.to_record_value(envelope),
                headers=ce.record_headers(envelope),
            )
            pending.append((message_id, route.topic, outgoing))
        failed_messages: set[str] = set()
        failures = 0
        by_topic: dict[str, list[tuple[str | None, OutgoingRecord]]] = {}
        for message_id, topic, outgoing in pending:
            by_topic.setdefault(topic, []).append((message_id, outgoing))
        for topic, all_items in by_topic.items():
            for start in range(0, len(all_items), MAX_BATCH_RECORDS):
                chunk = all_items[start : start + MAX_BATCH_RECORDS]
                failures += self._produce(topic, chunk, failed_messages)
        if failures and not failed_messages:
            # Invoked by S3 directly: fail the invocation so Lambda retries it.
            raise RuntimeError(f"{failures} storage event(s) were not produced")
        return {
            "produced": len(pending) - failures,
            "skipped": skipped,
            "batchItemFailures": [{"itemIdentifier": m} for m in sorted(failed_messages)],
        }

    def _produce(
        self,
        topic: str,
        items: list[tuple[str | None, OutgoingRecord]],
        failed_messages: set[str],
    ) -> int:
        outcomes = self.producer.produce_batch(topic, [o for _m, o in items])
        failures = 0
        for (message_id, _record), outcome in zip(items, outcomes, strict=True):
            if outcome.error is None:
                continue
            failures += 1
            logger.error("producing a storage event to %s failed: %s", topic, outcome.error)
            if message_id is not None:
                failed_messages.add(message_id)
        return failures


@functools.cache
def _bridge() -> S3Bridge:
    """Built once per Lambda container (the producer keeps its connections)."""
    return S3Bridge.from_env()


def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    return _bridge().handle(event)
