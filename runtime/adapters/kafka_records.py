"""Producing and reading records for the web service's record routes.

``RecordProducer`` answers only after each record is acknowledged by all in-sync replicas
(idempotent producer, ``acks=all``) and tells apart the two ways a record can fail:
- nothing was written (topic unknown, queue full, broker unreachable before the record
  left the client) → ``BrokerUnavailable`` / ``TopicNotFound``: safe to retry;
- the outcome is unknown (sent, never acknowledged) → ``DeliveryOutcomeUnknown``.

``RecordReader`` serves stateless fetches (assign + seek, no consumer group).

Both refuse topics the caller does not know: a metadata request for an unknown topic
makes the embedded broker create it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from runtime.adapters.kafka_config import producer_defaults
from runtime.adapters.kafka_errors import (
    BrokerError,
    BrokerUnavailable,
    DeliveryOutcomeUnknown,
    PartitionNotFound,
    TopicNotFound,
    from_exception,
    from_kafka_error,
    kafka_error_of,
)
from runtime.domain.errors import Unprocessable

MAX_BATCH_RECORDS = 500
Header = tuple[str, bytes | None]


@dataclass(frozen=True)
class OutgoingRecord:
    key: bytes | None = None
    value: bytes | None = None
    headers: Sequence[Header] = ()
    timestamp_ms: int | None = None
    partition: int | None = None


@dataclass(frozen=True)
class DeliveredRecord:
    partition: int
    offset: int
    timestamp_ms: int


@dataclass(frozen=True)
class RecordOutcome:
    """One entry of a batch: either ``delivered`` or ``error`` is set."""

    delivered: DeliveredRecord | None = None
    error: BrokerError | None = None

    @property
    def ok(self) -> bool:
        return self.delivered is not None


class _Delivery:
    """Collects the delivery reports of one call."""

    def __init__(self, size: int, current_generation: Callable[[], int]) -> None:
        self.outcomes: list[RecordOutcome | None] = [None] * size
        # Records that were surely not written because their producer died or was
        # replaced: they are resent once on the new producer.
        self.resend: list[int] = []
        self.pending = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self._current_generation = current_generation

    def expect(self) -> None:
        with self.lock:
            self.pending += 1
            self.done.clear()

    def settle(self, index: int, outcome: RecordOutcome | None) -> None:
        """Record an outcome (``None``: resend the record)."""
        with self.lock:
            if outcome is None:
                self.resend.append(index)
            else:
                self.outcomes[index] = outcome
            self.pending -= 1
            if self.pending <= 0:
                self.done.set()

    def callback(self, index: int, generation: int) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is None:
                _type, timestamp = message.timestamp()
                partition, offset = message.partition(), message.offset()
                assert partition is not None and offset is not None
                delivered = DeliveredRecord(partition, offset, timestamp)
                self.settle(index, RecordOutcome(delivered=delivered))
            elif _is_fatal(error) or (
                error.code() == KafkaError._PURGE_QUEUE and self._current_generation() != generation
            ):
                self.settle(index, None)
            else:
                self.settle(index, RecordOutcome(error=_delivery_error(error)))

        return on_delivery


def _is_fatal(error: KafkaError) -> bool:
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


def _delivery_error(error: KafkaError) -> BrokerError:
    code = error.code()
    if code == KafkaError._PURGE_QUEUE:
        return BrokerUnavailable(
            "the broker did not take the record in time; it was not sent",
            kafka_code=error.name(),
        )
    if code in (KafkaError._PURGE_INFLIGHT, KafkaError._MSG_TIMED_OUT):
        return DeliveryOutcomeUnknown(
            "the record was sent but not acknowledged in time; it may or may not be stored",
            kafka_code=error.name(),
        )
    return from_kafka_error(error, "producing a record")


class RecordProducer:
    """A shared, thread-safe idempotent producer that reports each record's outcome."""

    def __init__(
        self,
        connection: Mapping[str, Any],
        *,
        topic_exists: Callable[[str], bool],
        delivery_timeout_s: float = 10.0,
        stall_timeout_s: float = 1.0,
    ) -> None:
        """``connection``: ``kafka_config`` output for role "producer". ``topic_exists``: the
        fabric's own answer (registry), consulted before anything is sent.
        ``stall_timeout_s``: after this long without acknowledgements from a reachable
        broker the producer is considered wedged and is replaced."""
        self._config: dict[str, Any] = {
            **connection,
            **producer_defaults(),
            # A producer's metadata request may create unknown topics on the embedded broker.
            "allow.auto.create.topics": False,
            # librdkafka's own timeout stays above ours, so on our deadline we can still tell
            # queued (never sent) records from in-flight ones.
            "message.timeout.ms": int((delivery_timeout_s + 5.0) * 1000),
        }
        self._topic_exists = topic_exists
        self.delivery_timeout_s = delivery_timeout_s
        self.stall_timeout_s = stall_timeout_s
        self._lock = threading.Lock()
        self._producer = Producer(self._config)
        self.generation = 0  # bumped each time a fatally failed producer is replaced

    def produce(self, topic: str, record: OutgoingRecord) -> DeliveredRecord:
        """Produce one record; raise its error if it was not delivered."""
        outcome = self.produce_batch(topic, [record])[0]
        if outcome.error is not None:
            raise outcome.error
        assert outcome.delivered is not None
        return outcome.delivered

    def produce_batch(self, topic: str, records: Sequence[OutgoingRecord]) -> list[RecordOutcome]:
        """Produce up to ``MAX_BATCH_RECORDS`` records; one outcome per record, in order."""
        if len(records) > MAX_BATCH_RECORDS:
            raise Unprocessable(
                f"a batch holds at most {MAX_BATCH_RECORDS} records, got {len(records)}"
            )
        if not self._topic_exists(topic):
            raise TopicNotFound(f"topic {topic} is not known to the fabric; nothing was produced")
        delivery = _Delivery(len(records), lambda: self.generation)
        generation, producer = self.generation, self._producer
        self._send(producer, generation, topic, records, range(len(records)), delivery)
        self._await(producer, generation, delivery, detect_stall=True)
        if delivery.resend:
            # The producer died (fatal error) or was wedged and replaced: those records
            # were not written. Resend them once on the new producer.
            retry = sorted(delivery.resend)
            delivery.resend.clear()
            producer = self._replace_producer(generation)
            generation = self.generation
            self._send(producer, generation, topic, records, retry, delivery)
            self._await(producer, generation, delivery, detect_stall=False)
            for index in delivery.resend:
                delivery.outcomes[index] = RecordOutcome(
                    error=BrokerUnavailable(
                        "the producer failed twice in a row; the record was not written",
                        kafka_code="_FATAL",
                    )
                )
        return [
            outcome
            if outcome is not None
            else RecordOutcome(
                error=DeliveryOutcomeUnknown("no delivery report arrived for the record")
            )
            for outcome in delivery.outcomes
        ]

    def _send(
        self,
        producer: Producer,
        generation: int,
        topic: str,
        records: Sequence[OutgoingRecord],
        indices: Sequence[int],
        delivery: _Delivery,
    ) -> None:
        for index in indices:
            record = records[index]
            kwargs: dict[str, Any] = {
                "value": record.value,
                "key": record.key,
                "headers": list(record.headers),
                "on_delivery": delivery.callback(index, generation),
            }
            if record.timestamp_ms is not None:
                kwargs["timestamp"] = record.timestamp_ms
            if record.partition is not None:
                kwargs["partition"] = record.partition
            delivery.expect()
            try:
                self._produce_one(producer, topic, kwargs)
            except BufferError:
                delivery.settle(
                    index,
                    RecordOutcome(
                        error=BrokerUnavailable(
                            "the producer queue is full (broker slow or down); "
                            "the record was not sent"
                        )
                    ),
                )
            except KafkaException as exc:
                error = kafka_error_of(exc)
                fatal = error is not None and _is_fatal(error)
                outcome = None if fatal else RecordOutcome(error=from_exception(exc, "producing"))
                delivery.settle(index, outcome)

    @staticmethod
    def _produce_one(producer: Producer, topic: str, kwargs: dict[str, Any]) -> None:
        try:
            producer.produce(topic, **kwargs)
        except BufferError:
            producer.poll(0.05)  # serve delivery reports to make room, then try once more
            producer.produce(topic, **kwargs)

    def _await(
        self, producer: Producer, generation: int, delivery: _Delivery, *, detect_stall: bool
    ) -> None:
        started = time.monotonic()
        deadline = started + self.delivery_timeout_s
        stall_check_at = started + self.stall_timeout_s if detect_stall else float("inf")
        while not delivery.done.is_set() and time.monotonic() < deadline:
            producer.poll(0.01)
            if time.monotonic() >= stall_check_at and not delivery.done.is_set():
                stall_check_at = float("inf")
                if self._broker_answers(producer):
                    # Broker up but nothing acknowledged: after a restart of the embedded
                    # broker an idempotent producer loops on UNKNOWN_PRODUCER_ID forever
                    # (librdkafka 2.16 bumps its epoch locally, never fails). Replace it;
                    # its queued records come back as _PURGE_QUEUE and are resent.
                    self._replace_producer(generation)
        if delivery.done.is_set():
            return
        # Records still queued were never sent: purge them (reported as _PURGE_QUEUE) and
        # give in-flight ones a moment; whatever stays unsettled has an unknown outcome.
        producer.purge(in_queue=True, in_flight=False, blocking=False)
        grace = time.monotonic() + 1.0
        while not delivery.done.is_set() and time.monotonic() < grace:
            producer.poll(0.01)

    @staticmethod
    def _broker_answers(producer: Producer) -> bool:
        try:
            producer.list_topics(timeout=1.0)  # full metadata: never creates a topic
        except KafkaException:
            return False
        return True

    def _replace_producer(self, failed_generation: int) -> Producer:
        with self._lock:
            if self.generation == failed_generation:
                old = self._producer
                self._producer = Producer(self._config)
                self.generation += 1
                # Queued records were never sent; in-flight ones still report to their
                # callers, who keep polling the old producer.
                old.purge(in_queue=True, in_flight=False, blocking=False)
            return self._producer

    def close(self, timeout_s: float = 5.0) -> None:
        self._producer.flush(timeout_s)


@dataclass(frozen=True)
class FetchedRecord:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[Header]


def _headers_of(message: Message) -> list[Header]:
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [(key, value.encode() if isinstance(value, str) else value) for key, value in pairs]


class RecordReader:
    """Stateless reads of one partition from an offset (no consumer group)."""

    def __init__(
        self,
        connection: Mapping[str, Any],
        *,
        partition_count: Callable[[str], int | None],
        max_records: int = 1000,
    ) -> None:
        """``partition_count``: the fabric's own answer (registry) — partitions of a topic,
        ``None`` if the topic is unknown (the broker is not asked: see module docstring)."""
        self._connection = dict(connection)
        self._partition_count = partition_count
        self.max_records = max_records

    def read(
        self, topic: str, partition: int, offset: int, limit: int, timeout_ms: int
    ) -> tuple[list[FetchedRecord], int, int]:
        """Up to ``limit`` records from ``offset``; returns (records, next_offset, high_watermark).

        Returns as soon as ``limit`` records arrived or the end of the partition is reached,
        else after ``timeout_ms`` (a long poll for new records).
        """
        partitions = self._partition_count(topic)
        if partitions is None:
            raise TopicNotFound(f"topic {topic} is not known to the fabric")
        if not 0 <= partition < partitions:
            raise PartitionNotFound(f"topic {topic} has no partition {partition}")
        if limit < 1 or limit > self.max_records:
            raise Unprocessable(f"limit must be between 1 and {self.max_records}")
        if offset < 0:
            raise Unprocessable("offset must not be negative")
        consumer = Consumer(
            {
                **self._connection,
                "group.id": "octopus-http-reader",  # never joined (assign only), never committed
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "error",
                "allow.auto.create.topics": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": min(200, max(10, timeout_ms)),
            }
        )
        watched = TopicPartition(topic, partition)
        records: list[FetchedRecord] = []
        next_offset = offset
        try:
            consumer.assign([TopicPartition(topic, partition, offset)])
            deadline = time.monotonic() + timeout_ms / 1000.0
            while len(records) < limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                message = consumer.poll(min(remaining, 0.05))
                if message is None:
                    _low, high = consumer.get_watermark_offsets(watched, cached=True)
                    if high != OFFSET_INVALID and high >= 0 and next_offset >= high and records:
                        break
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        if records:
                            break
                        continue  # nothing yet: long-poll until the deadline
                    raise from_kafka_error(error, f"reading {topic}[{partition}]")
                message_offset = message.offset()
                assert message_offset is not None
                _type, timestamp = message.timestamp()
                records.append(
                    FetchedRecord(
                        partition=partition,
                        offset=message_offset,
                        timestamp_ms=timestamp,
                        key=message.key(),
                        value=message.value(),
                        headers=_headers_of(message),
                    )
                )
                next_offset = message_offset + 1
            _low, high = consumer.get_watermark_offsets(watched, cached=True)
            if high == OFFSET_INVALID or high < 0:
                high = next_offset
            return records, next_offset, max(high, next_offset)
        except KafkaException as exc:
            raise from_exception(exc, f"reading {topic}[{partition}]") from exc
        finally:
            consumer.close()
