"""The domain's RecordWriter port on the Kafka RecordProducer."""

from __future__ import annotations

import threading
from collections.abc import Callable

from runtime.adapters.kafka_errors import BrokerUnavailable, TopicNotFound
from runtime.adapters.kafka_records import OutgoingRecord, RecordProducer
from runtime.domain.ports import OutboundRecord, WriteOutcome


class KafkaRecordWriter:
    """Writes through one shared producer, made on first use (a cold start that only
    serves registry routes never connects to the broker)."""

    def __init__(self, producer: RecordProducer | Callable[[], RecordProducer]) -> None:
        self._producer: RecordProducer | None = None
        self._factory: Callable[[], RecordProducer] | None = None
        if isinstance(producer, RecordProducer):
            self._producer = producer
        else:
            self._factory = producer
        self._lock = threading.Lock()

    def _get(self) -> RecordProducer:
        if self._producer is None:
            with self._lock:
                if self._producer is None:
                    assert self._factory is not None
                    self._producer = self._factory()
        return self._producer

    def write(self, topic: str, records: list[OutboundRecord]) -> list[WriteOutcome]:
        outgoing = [
            OutgoingRecord(
                key=r.key,
                value=r.value,
                headers=tuple(r.headers),
                timestamp_ms=r.timestamp_ms,
                partition=r.partition,
            )
            for r in records
        ]
        outcomes = self._get().produce_batch(topic, outgoing)
        results: list[WriteOutcome] = []
        for outcome in outcomes:
            if outcome.delivered is not None:
                delivered = outcome.delivered
                results.append(
                    WriteOutcome(
                        partition=delivered.partition,
                        offset=delivered.offset,
                        timestamp_ms=delivered.timestamp_ms,
                    )
                )
            else:
                error = outcome.error
                retriable = isinstance(error, (BrokerUnavailable, TopicNotFound))
                results.append(WriteOutcome(error=str(error), retriable=retriable))
        if results and all(r.retriable for r in results):
            # Nothing at all was written: the caller may answer 503 and be retried safely.
            raise BrokerUnavailable(results[0].error or "the broker is unavailable")
        return results

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
