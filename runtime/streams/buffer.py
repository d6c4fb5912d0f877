"""The bounded hand-over between a stream's Kafka reader thread and its HTTP response.

Bounded by records and by bytes. The reader waits for room up to a deadline; if the
client has not made room by then the buffer is marked overflowed and the stream ends
("slow_consumer") — the server never buffers without bound. The asyncio side is woken
through ``call_soon_threadsafe`` only when the buffer goes from empty to non-empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass

from runtime.streams.positions import PositionMap


@dataclass(slots=True)
class Batch:
    """A rendered chunk: SSE text of ``count`` records, the positions after it (every
    partition of the stream, filtered-out records included) and its last record."""

    body: bytes
    count: int
    positions: PositionMap
    last: tuple[str, int, int] | None

    @property
    def size(self) -> int:
        return len(self.body)


class EventBuffer:
    def __init__(self, max_records: int, max_bytes: int, loop: asyncio.AbstractEventLoop) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._loop = loop
        self._batches: deque[Batch] = deque()
        self._records = 0
        self._bytes = 0
        self._room = threading.Condition()
        self.ready = asyncio.Event()
        self.overflowed = False
        self.closed = False
        self.high_water_records = 0  # the most records ever held (for tests and metrics)

    @property
    def records(self) -> int:
        return self._records

    @property
    def bytes(self) -> int:
        return self._bytes

    def put(self, batch: Batch, timeout_s: float) -> bool:
        """Add a batch, waiting up to ``timeout_s`` for room; False on overflow or close."""
        count = batch.count
        deadline = time.monotonic() + timeout_s
        with self._room:
            while (
                not self.closed
                and self._batches
                and (
                    self._records + count > self.max_records
                    or self._bytes + batch.size > self.max_bytes
                )
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.overflowed = True
                    self._wake()
                    return False
                self._room.wait(min(remaining, 0.5))
            if self.closed:
                return False
            was_empty = not self._batches
            self._batches.append(batch)
            self._records += count
            self._bytes += batch.size
            self.high_water_records = max(self.high_water_records, self._records)
        if was_empty:
            self._wake()
        return True

    def take(self, max_records: int) -> list[Batch]:
        """Batches holding up to about ``max_records`` records (at least one batch)."""
        taken: list[Batch] = []
        with self._room:
            count = 0
            while self._batches and (not taken or count + self._batches[0].count <= max_records):
                batch = self._batches.popleft()
                count += batch.count
                self._records -= batch.count
                self._bytes -= batch.size
                taken.append(batch)
            if not self._batches:
                self.ready.clear()
            self._room.notify_all()
        return taken

    def close(self) -> None:
        with self._room:
            self.closed = True
            self._batches.clear()
            self._records = self._bytes = 0
            self._room.notify_all()

    def wake(self) -> None:
        """Wake the response side (the reader stopped or failed)."""
        self._wake()

    def _wake(self) -> None:
        # A closed loop means the stream is gone: nothing to wake.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self.ready.set)
