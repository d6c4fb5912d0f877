"""Turns a stream's records into SSE bytes, on the reader's thread.

Rendering where the records are read keeps the event loop free (it only writes bytes)
and hands over the GIL once per chunk, not once per record. The renderer tracks the
position after every record it renders; each chunk carries the positions after it, which
the response adopts only once the chunk was written (so a resume id never skips events).

The single-topic loop is the hot path of every stream (a few µs per record would be the
whole budget): it builds each event with one f-string straight from the message's fields,
keeps the stream's constant parts (topic, id prefix) precomputed, rebuilds the "next
offsets" vector of the id only when the partition changes (consume() returns runs of one
partition), and takes the slow paths (headers, non-JSON values, binary keys) only for the
records that need them. Its output equals :func:`runtime.streams.encoding.record_json`
(tested).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from confluent_kafka import KafkaError, Message

from runtime.streams.encoding import (
    headers_json,
    json_string,
    json_syntax_check,
    json_values_joined,
    key_field,
    record_json,
    sse_record,
    timestamp_cache,
    timestamp_fields,
    value_field,
)
from runtime.streams.positions import PositionMap, channel_id


def message_headers(message: Message) -> list[tuple[str, bytes | None]] | None:
    raw = message.headers()
    if not raw:
        return None
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in pairs]


class Rendered:
    """One rendered chunk: the SSE bytes, how many record events, and the error events
    met among the messages (the reader decides whether they end the stream)."""

    __slots__ = ("body", "count", "errors")

    def __init__(self, body: bytes, count: int, errors: list[KafkaError]) -> None:
        self.body = body
        self.count = count
        self.errors = errors


class Renderer:
    def __init__(
        self,
        namespace: str,
        single_topic: str | None,
        positions: PositionMap,
        partitions_of: Callable[[str], int],
    ) -> None:
        self.prefix_len = len(namespace) + 1
        self.single_topic = single_topic
        self.positions: PositionMap = {t: dict(p) for t, p in positions.items()}
        self._topic_json: dict[str, str] = {}
        self.last: tuple[str, int, int] | None = None
        self._vector: list[int] = []
        if single_topic is not None:
            parts = self.positions.setdefault(single_topic, {})
            self._vector = [parts.get(p, 0) for p in range(partitions_of(single_topic))]

    def add(self, positions: PositionMap) -> None:
        for topic, parts in positions.items():
            self.positions[topic] = dict(parts)

    def remove(self, topics: list[str]) -> None:
        for topic in topics:
            self.positions.pop(topic, None)

    def snapshot(self) -> PositionMap:
        return {t: dict(p) for t, p in self.positions.items()}

    def _json_of(self, topic: str) -> str:
        cached = self._topic_json.get(topic)
        if cached is None:
            cached = self._topic_json[topic] = json_string(topic)
        return cached

    def render(self, messages: list[Message], advanced: PositionMap) -> Rendered:
        """SSE bytes of ``messages`` (error events are skipped and returned); then every
        position moves past ``advanced`` too (records the filter dropped)."""
        if self.single_topic is not None:
            rendered = self._render_single(messages)
        else:
            rendered = self._render_channel(messages)
        positions = self.positions
        single = self.single_topic
        for topic, moved in advanced.items():
            known = positions.get(topic)
            if known is None:
                continue
            for partition, next_offset in moved.items():
                if next_offset > known.get(partition, 0):
                    known[partition] = next_offset
                    if topic == single and partition < len(self._vector):
                        self._vector[partition] = next_offset
        return rendered

    def _render_single(self, messages: list[Message]) -> Rendered:
        single = self.single_topic
        assert single is not None
        parts = self.positions.setdefault(single, {})
        vector = self._vector
        topic_json = self._json_of(single)
        values = [message.value() for message in messages]
        # One JSON check for the whole batch; a batch with a non-JSON value (or a
        # tombstone, or an error event) is checked record by record instead.
        joined = None if None in values else json_values_joined(cast(list[bytes], values))
        all_json = joined is not None
        line_breaks = joined is None or b"\n" in joined or b"\r" in joined
        check = json_syntax_check
        timestamps = timestamp_cache
        chunks: list[str] = []
        append = chunks.append
        errors: list[KafkaError] = []
        # Per record: ``id: <topic>/<p>/<o>;<head><o + 1><tail>`` where head/tail are the
        # other partitions' next offsets (they do not move while p's run lasts).
        current = -1
        head = tail = run_id = run_data = ""
        partition = offset = next_offset = 0
        touched: set[int] = set()
        for message, value in zip(messages, values, strict=True):
            error = message.error()
            if error is not None:
                errors.append(error)
                continue
            partition = message.partition() or 0
            offset = message.offset() or 0
            if partition != current:
                if current >= 0:
                    vector[current] = next_offset
                if partition >= len(vector):
                    vector.extend([0] * (partition + 1 - len(vector)))
                current = partition
                touched.add(partition)
                head = "".join(f"{n}," for n in vector[:partition])
                tail = "".join(f",{n}" for n in vector[partition + 1 :])
                run_id = f"id: {single}/{partition}/"
                run_data = (
                    f'\nevent: record\ndata: {{"topic":{topic_json},"partition":{partition},'
                    '"offset":'
                )
            next_offset = offset + 1
            timestamp_ms = message.timestamp()[1]
            time_part = timestamps.get(timestamp_ms) or timestamp_fields(timestamp_ms)
            key = message.key()
            if key is None:
                key_part = '"key":null'
            else:
                try:
                    key_text = key.decode("utf-8")
                except UnicodeDecodeError:
                    key_text = ""
                # Letters and digits need no JSON escaping.
                if key_text.isalnum():
                    key_part = f'"key":"{key_text}","key_encoding":"text"'
                else:
                    key_part = key_field(key)
            # The usual value: JSON, so embedded as sent.
            try:
                if value is None:
                    raise ValueError
                if not all_json:
                    check(value)
                text = value.decode("utf-8")
                if line_breaks and ("\n" in text or "\r" in text):
                    text = text.replace("\r", " ").replace("\n", " ")
                value_part = f'"value":{text},"value_encoding":"json"'
            except ValueError:
                value_part = value_field(value)
            header_part = headers_json(message_headers(message)) if message.headers() else "[]"
            offset_text = str(offset)
            append(
                f"{run_id}{offset_text};{head}{next_offset}{tail}{run_data}{offset_text},"
                f'{time_part},{key_part},{value_part},"headers":{header_part}}}\n\n'
            )
        if current >= 0:
            vector[current] = next_offset
            self.last = (single, partition, offset)
        for touched_partition in touched:
            parts[touched_partition] = vector[touched_partition]
        return Rendered("".join(chunks).encode("utf-8"), len(chunks), errors)

    def _render_channel(self, messages: list[Message]) -> Rendered:
        chunks: list[str] = []
        errors: list[KafkaError] = []
        positions = self.positions
        made_at_ms = int(time.time() * 1000)
        prefix_len = self.prefix_len
        last = self.last
        for message in messages:
            error = message.error()
            if error is not None:
                errors.append(error)
                continue
            partition = message.partition() or 0
            offset = message.offset() or 0
            topic = (message.topic() or "")[prefix_len:]
            topic_parts = positions.get(topic)
            if topic_parts is None:
                continue  # left the channel (unsubscribed) while this was in flight
            topic_parts[partition] = offset + 1
            data = record_json(
                self._json_of(topic),
                partition,
                offset,
                message.timestamp()[1],
                message.key(),
                message.value(),
                message_headers(message),
            )
            chunks.append(sse_record(channel_id(positions, made_at_ms), data))
            last = (topic, partition, offset)
        self.last = last
        return Rendered("".join(chunks).encode("utf-8"), len(chunks), errors)
