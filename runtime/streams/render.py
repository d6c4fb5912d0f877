"""Turns a stream's records into SSE bytes, on the reader's thread.

Rendering where the records are read keeps the event loop free (it only writes bytes)
and hands over the GIL once per chunk, not once per record. The renderer tracks the
position after every record it renders; each chunk carries the positions after it, which
the response adopts only once the chunk was written (so a resume id never skips events).

Single-topic rendering is the hot path of every stream (a few µs per record would be the
whole budget). A common batch — JSON values, no headers, no error events, keys absent or
needing no JSON escaping — is assembled in C (:meth:`Renderer._render_plain`: fields
gathered with ``map``, the events laid out in one flat list by list repetition and slice
assignment, one ``bytes.join``; a run's offset digits come from its first and last offset
when they are consecutive). Any other
batch takes :meth:`Renderer._render_each`, one f-string per event with the slow paths
(headers, non-JSON values, binary keys) only for the records that need them. Both keep
the stream's constant parts precomputed and rebuild the "next offsets" vector of the id
only when the partition changes (consume() returns runs of one partition). Their output
equals :func:`runtime.streams.encoding.record_json` (tested).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from itertools import groupby
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

_INT_BYTES = b"%d".__mod__
_NULL_KEY = b',"key":null,"value":'
_TEXT_KEY = b',"key":"'
_KEY_TAIL = b'","key_encoding":"text","value":'
_VALUE_TAIL = b',"value_encoding":"json","headers":[]}\n\n'
_time_and_key_pieces: dict[bytes, dict[tuple[int, int], bytes]] = {_NULL_KEY: {}, _TEXT_KEY: {}}


def _time_and_key_piece(key_head: bytes, stamp: tuple[int, int]) -> bytes:
    cache = _time_and_key_pieces[key_head]
    piece = cache.get(stamp)
    if piece is None:
        piece = b"," + timestamp_fields(stamp[1]).encode() + key_head
        if len(cache) > 4096:
            cache.clear()
        cache[stamp] = piece
    return piece


# What JSON (and orjson) escapes in a string: text without these is embedded as is.
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


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
        values = list(map(Message.value, messages))
        # One JSON check for the whole batch; a batch with a non-JSON value (or a
        # tombstone, an empty value, an error event) is checked record by record instead.
        # (Truth tests, not ``None in``: comparing bytes with None is slow.)
        joined = json_values_joined(cast(list[bytes], values)) if all(values) else None
        if joined is not None:
            plain = self._render_plain(messages, cast(list[bytes], values), joined)
            if plain is not None:
                return plain
        return self._render_each(messages, values, joined)

    def _run_parts(self, partition: int) -> tuple[str, str, str, str]:
        """The constant parts of a run of ``partition``'s records: the id's prefix, the
        other partitions' next offsets before and after it, the data's prefix.
        ``id: <topic>/<p>/<o>;<head><o + 1><tail>`` — the other partitions do not move
        while p's run lasts (consume() returns runs of one partition)."""
        vector = self._vector
        if partition >= len(vector):
            vector.extend([0] * (partition + 1 - len(vector)))
        head = "".join(f"{n}," for n in vector[:partition])
        tail = "".join(f",{n}" for n in vector[partition + 1 :])
        run_id = f"id: {self.single_topic}/{partition}/"
        run_data = (
            f'\nevent: record\ndata: {{"topic":{self._json_of(self.single_topic or "")},'
            f'"partition":{partition},"offset":'
        )
        return run_id, head, tail, run_data

    def _finish_single(self, touched: set[int], last_partition: int, last_offset: int) -> None:
        """After a batch: the stream's positions move past its records."""
        vector = self._vector
        if last_partition >= 0:
            vector[last_partition] = last_offset + 1
            self.last = (self.single_topic or "", last_partition, last_offset)
        parts = self.positions.setdefault(self.single_topic or "", {})
        for partition in touched:
            parts[partition] = vector[partition]

    def _render_plain(
        self, messages: list[Message], values: list[bytes], joined: bytes
    ) -> Rendered | None:
        """The common batch, assembled in C: JSON values (UTF-8), no error events, no
        headers, keys all absent or all text that needs no JSON escaping. The fields are
        gathered with ``map`` and the events of the batch are laid out in one flat list
        (constant pieces by list repetition, the records' own bytes by slice assignment)
        joined once: no Python code runs per record. None when the batch is not like that.
        """
        count = len(messages)
        # Errors are objects, headers non-empty lists: any() finds either.
        if any(map(Message.error, messages)) or any(map(Message.headers, messages)):
            return None
        try:
            if not joined.isascii():
                joined.decode("utf-8")  # the separators are ASCII: checks every value
        except UnicodeDecodeError:
            return None
        keys = list(map(Message.key, messages))
        if not all(keys):  # some key is absent (or empty)
            if keys.count(None) != count:
                return None
            keyed = False
            key_head = _NULL_KEY
        else:
            try:
                key_text = b",".join(cast(list[bytes], keys)).decode("utf-8")
            except UnicodeDecodeError:
                return None
            if _NEEDS_ESCAPE.search(key_text):
                return None
            keyed = True
            key_head = _TEXT_KEY
        if b"\n" in joined or b"\r" in joined:
            values = [value.replace(b"\r", b" ").replace(b"\n", b" ") for value in values]
        partitions = list(map(Message.partition, messages))
        try:  # a record without a partition (never from a broker): sum() refuses None
            sum(partitions)  # type: ignore[arg-type]
        except TypeError:
            return None
        runs = self._runs(messages, cast(list[int], partitions))
        if runs is None:
            return None
        # ``,"timestamp":..,"timestamp_ms":..`` and the key's opening, one cached piece
        # per (timestamp type, ms) tuple as ``Message.timestamp()`` returns it.
        pieces_of = _time_and_key_pieces[key_head]
        stamps = list(map(Message.timestamp, messages))
        time_parts = list(map(pieces_of.get, stamps))
        if not all(time_parts):  # new milliseconds: make their pieces once, map again
            for stamp in set(stamps).difference(pieces_of):
                _time_and_key_piece(key_head, stamp)
            time_parts = list(map(pieces_of.get, stamps))
        known_time_parts = cast(list[bytes], time_parts)
        known_keys = cast(list[bytes], keys)
        vector = self._vector
        touched: set[int] = set()
        flat: list[bytes] = []
        last_offset = 0
        for partition, start, end, ids, nexts, last_offset in runs:
            run_id, head, tail, run_data = self._run_parts(partition)
            touched.add(partition)
            id_prefix = run_id.encode()
            # One event: id digits, the vector before, the next offset, the vector after
            # and the data up to the offset, the offset, time (+ key), value, and the end
            # of the event with the next event's id prefix (the run's last one drops it).
            layout: list[bytes] = [
                b"",
                f";{head}".encode(),
                b"",
                f"{tail}{run_data}".encode(),
                b"",
                b"",
            ]
            if keyed:
                layout += [b"", _KEY_TAIL, b"", _VALUE_TAIL + id_prefix]
            else:
                layout += [b"", _VALUE_TAIL + id_prefix]
            width = len(layout)
            events = layout * (end - start)
            events[0::width] = ids
            events[2::width] = nexts
            events[4::width] = ids
            events[5::width] = known_time_parts[start:end]
            if keyed:
                events[6::width] = known_keys[start:end]
                events[8::width] = values[start:end]
            else:
                events[6::width] = values[start:end]
            events[-1] = _VALUE_TAIL
            flat.append(id_prefix)
            flat += events
            vector[partition] = last_offset + 1
        self._finish_single(touched, partitions[-1] or 0, last_offset)
        return Rendered(b"".join(flat), count, [])

    @staticmethod
    def _runs(
        messages: list[Message], partitions: list[int]
    ) -> list[tuple[int, int, int, list[bytes], list[bytes], int]] | None:
        """(partition, start, end, offset digits, next offset digits, last offset) of each
        run of one partition. None when a record has no offset (never from a broker)."""
        count = len(partitions)
        first_partition = partitions[0]
        if partitions.count(first_partition) == count:  # the usual batch: one run
            bounds = [(first_partition, 0, count)]
        else:
            bounds = []
            start = 0
            for partition, run in groupby(partitions):
                end = start + sum(1 for _ in run)
                bounds.append((partition, start, end))
                start = end
        runs: list[tuple[int, int, int, list[bytes], list[bytes], int]] = []
        for partition, start, end in bounds:
            first = messages[start].offset()
            last = messages[end - 1].offset()
            if first is None or last is None:
                return None
            if last - first == end - start - 1:
                # Offsets only grow within a partition's fetches (the reader never seeks
                # while it runs), so first and last this far apart mean no gap between.
                digits = list(map(_INT_BYTES, range(first, last + 2)))
                ids, nexts = digits[:-1], digits[1:]
            else:  # a gap (compaction, transaction markers): every offset as it is
                offsets = list(map(Message.offset, messages[start:end]))
                if None in offsets:
                    return None
                known = cast(list[int], offsets)
                ids = list(map(_INT_BYTES, known))
                nexts = [_INT_BYTES(offset + 1) for offset in known]
            runs.append((partition, start, end, ids, nexts, last))
        return runs

    def _render_each(
        self, messages: list[Message], values: list[bytes | None], joined: bytes | None
    ) -> Rendered:
        """Any batch: every record takes the path it needs."""
        all_json = joined is not None
        line_breaks = joined is None or b"\n" in joined or b"\r" in joined
        check = json_syntax_check
        timestamps = timestamp_cache
        chunks: list[str] = []
        append = chunks.append
        errors: list[KafkaError] = []
        touched: set[int] = set()
        vector = self._vector
        current = -1
        run_id = head = tail = run_data = ""
        partition = offset = next_offset = 0
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
                current = partition
                touched.add(partition)
                run_id, head, tail, run_data = self._run_parts(partition)
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
                if key_text and not _NEEDS_ESCAPE.search(key_text):
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
        self._finish_single(touched, current, offset)
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
