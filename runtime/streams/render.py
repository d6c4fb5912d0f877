"""Turns a stream's records into SSE text, on the reader's thread.

Rendering where the records are read keeps the event loop free (it only writes bytes)
and hands over the GIL once per chunk, not once per record. The renderer tracks the
position after every record it renders; each chunk carries the positions after it, which
the response adopts only once the chunk was written (so a resume id never skips events).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Message

from runtime.streams.encoding import json_string, record_json, sse_record
from runtime.streams.positions import PositionMap, channel_id


def message_headers(message: Message) -> list[tuple[str, bytes | None]] | None:
    raw = message.headers()
    if not raw:
        return None
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in pairs]


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

    def render(self, messages: list[Message], advanced: PositionMap) -> str:
        """SSE text of ``messages``; then every position moves past ``advanced`` too
        (records the filter dropped)."""
        chunks: list[str] = []
        positions = self.positions
        single = self.single_topic
        last = self.last
        if single is not None:
            parts = positions.setdefault(single, {})
            vector = self._vector
            topic_json = self._json_of(single)
            id_prefix = single + "/"
            for message in messages:
                partition = message.partition() or 0
                offset = message.offset() or 0
                parts[partition] = offset + 1
                if partition >= len(vector):
                    vector.extend([0] * (partition + 1 - len(vector)))
                vector[partition] = offset + 1
                data = record_json(
                    topic_json,
                    partition,
                    offset,
                    message.timestamp()[1],
                    message.key(),
                    message.value(),
                    message_headers(message),
                )
                event_id = f"{id_prefix}{partition}/{offset};{','.join(map(str, vector))}"
                chunks.append(sse_record(event_id, data))
            if messages:
                last = (single, partition, offset)
        else:
            made_at_ms = int(time.time() * 1000)
            prefix_len = self.prefix_len
            for message in messages:
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
        for topic, moved in advanced.items():
            known = positions.get(topic)
            if known is None:
                continue
            for partition, next_offset in moved.items():
                if next_offset > known.get(partition, 0):
                    known[partition] = next_offset
                    if topic == single and partition < len(self._vector):
                        self._vector[partition] = next_offset
        self.last = last
        return "".join(chunks)
