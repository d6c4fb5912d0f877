"""The domain's RecordWriter port on the Kafka RecordProducer."""

from __future__ import annotations

from runtime.adapters.kafka_errors import BrokerUnavailable, TopicNotFound
from runtime.adapters.kafka_records import OutgoingRecord, RecordProducer
from runtime.domain.ports import OutboundRecord, WriteOutcome


class KafkaRecordWriter:
    def __init__(self, producer: RecordProducer) -> None:
        self._producer = producer

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
        outcomes = self._producer.produce_batch(topic, outgoing)
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
        self._producer.close()
