"""The Kafka side of a stream: one group-less consumer (assign + seek) in its own thread.

It reads from the positions it is given, drops records the filter refuses, and hands
batches to the bounded :class:`EventBuffer`. Partitions can be added and removed while it
runs (channel streams); those changes are applied on the reader's own thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from runtime.domain.models import kafka_topic_name
from runtime.streams.buffer import Batch, EventBuffer
from runtime.streams.positions import PositionMap
from runtime.streams.render import Renderer, message_headers
from runtime.streams.settings import StreamSettings
from runtime.triggers.event_shape import KafkaRecord
from runtime.triggers.filters import CompiledFilters

logger = logging.getLogger(__name__)

_IGNORED_ERRORS = frozenset({KafkaError._PARTITION_EOF})
# Not marked retriable, yet passing: a broker restart, a topic deleted under the stream
# (the access re-check ends the stream then).
_TRANSIENT_ERRORS = frozenset(
    {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError.UNKNOWN_TOPIC_OR_PART}
)


def stream_consumer_config(
    connection: Mapping[str, Any], settings: StreamSettings
) -> dict[str, Any]:
    """A consumer that never joins a group nor commits, with a bounded prefetch."""
    return {
        **connection,
        "group.id": f"octopus-sse-{uuid.uuid4().hex}",  # required; never joined (assign only)
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # A resume position no longer stored (retention, recreated topic): restart at the
        # first stored record rather than fail.
        "auto.offset.reset": "earliest",
        "allow.auto.create.topics": False,
        "enable.partition.eof": False,
        # The memory bound of the prefetch is the kbytes; a message-count threshold
        # (queued.min.messages) only makes librdkafka stop fetching sooner: at 2000 a
        # stream waited on fetch round trips (≈1.8 µs/record against ≈1.1 µs at
        # librdkafka's default of 100000, same 2 MiB bound; measured on the local broker).
        "queued.max.messages.kbytes": settings.prefetch_kbytes,
        "queued.min.messages": 100_000,
        # librdkafka (>= 2.3) postpones the next fetch by this much when the prefetch queue
        # is over its bounds (default 1 s): with small bounds that stalls a stream.
        "fetch.queue.backoff.ms": 10,
        "max.partition.fetch.bytes": 1024 * 1024,
        "fetch.wait.max.ms": 100,
    }


class LogReader:
    def __init__(
        self,
        connection: Mapping[str, Any],
        namespace: str,
        buffer: EventBuffer,
        filters: CompiledFilters,
        settings: StreamSettings,
        renderer: Renderer,
    ) -> None:
        self._config = stream_consumer_config(connection, settings)
        self._namespace = namespace
        self._prefix_len = len(namespace) + 1
        self._buffer = buffer
        self._filters = filters
        self._settings = settings
        self._renderer = renderer
        self._commands: queue.SimpleQueue[tuple[str, PositionMap | list[str]]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="octopus-sse-reader", daemon=True)
        self.error: str | None = None
        self.finished = False

    # -- control (any thread) -------------------------------------------------------------

    def start(self, positions: PositionMap) -> None:
        self._commands.put(("add", positions))
        self._thread.start()

    def add(self, positions: PositionMap) -> None:
        self._commands.put(("add", positions))

    def remove(self, topics: list[str]) -> None:
        self._commands.put(("remove", topics))

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the reader thread ----------------------------------------------------------------

    def _run(self) -> None:
        consumer: Consumer | None = None
        try:
            consumer = Consumer(self._config)
            self._loop(consumer)
        except KafkaException as exc:
            self.error = f"the broker failed: {exc.args[0] if exc.args else exc}"
        except Exception as exc:  # the stream must end, not hang, on any reader failure
            logger.exception("event stream reader failed")
            self.error = f"the reader failed: {exc}"
        finally:
            self.finished = True
            if consumer is not None:
                try:
                    consumer.close()
                except Exception:  # closing a broken consumer must not mask the reason
                    logger.debug("closing the stream consumer failed", exc_info=True)
            self._buffer.wake()

    def _apply_commands(self, consumer: Consumer) -> None:
        while True:
            try:
                command, argument = self._commands.get_nowait()
            except queue.Empty:
                return
            if command == "add":
                assert isinstance(argument, dict)
                partitions = [
                    TopicPartition(kafka_topic_name(self._namespace, topic), p, offset)
                    for topic, parts in argument.items()
                    for p, offset in parts.items()
                ]
                self._renderer.add(argument)
                if partitions:
                    consumer.incremental_assign(partitions)
            else:
                assert isinstance(argument, list)
                self._renderer.remove(argument)
                names = {kafka_topic_name(self._namespace, t) for t in argument}
                dropped = [tp for tp in consumer.assignment() if tp.topic in names]
                if dropped:
                    consumer.incremental_unassign(dropped)

    def _loop(self, consumer: Consumer) -> None:
        settings = self._settings
        filtering = bool(self._filters.patterns)
        renderer = self._renderer
        while not self._stop.is_set():
            self._apply_commands(consumer)
            messages = consumer.consume(num_messages=settings.batch_records, timeout=0.2)
            if not messages:
                continue
            advanced: PositionMap = {}
            if filtering:
                messages, advanced = self._filtered(messages)
            # Without a filter every record is rendered: the renderer moves the positions
            # itself and reports error events instead of a second pass over the batch.
            rendered = renderer.render(messages, advanced)
            for error in rendered.errors:
                self._check_error(error)
            if not rendered.count and not advanced:
                continue
            batch = Batch(rendered.body, rendered.count, renderer.snapshot(), renderer.last)
            if not self._buffer.put(batch, settings.slow_consumer_seconds):
                return  # overflowed (slow client) or closed: the response side ends

    @staticmethod
    def _check_error(error: KafkaError) -> None:
        if error.code() in _IGNORED_ERRORS:
            return
        if error.fatal() or (not error.retriable() and error.code() not in _TRANSIENT_ERRORS):
            raise KafkaException(error)

    def _filtered(self, messages: list[Message]) -> tuple[list[Message], PositionMap]:
        """The records the filter keeps, and the positions past every record read (the
        dropped ones too, so a resume id skips them)."""
        records: list[Message] = []
        last: dict[tuple[str | None, int | None], int] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                self._check_error(error)
                continue
            last[(message.topic(), message.partition())] = message.offset() or 0
            if self._filters.matches(self._filter_view(message)):
                records.append(message)
        advanced: PositionMap = {}
        for (kafka_topic, partition), offset in last.items():
            topic = (kafka_topic or "")[self._prefix_len :]
            advanced.setdefault(topic, {})[partition or 0] = offset + 1
        return records, advanced

    @staticmethod
    def _filter_view(message: Message) -> KafkaRecord:
        return KafkaRecord(
            topic=message.topic() or "",
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            timestamp_ms=message.timestamp()[1],
            key=message.key(),
            value=message.value(),
            headers=tuple(message_headers(message) or ()),
        )
