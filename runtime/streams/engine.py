"""One open SSE stream: the ASGI response that drives a reader thread and writes events.

Everything the stream needs was decided before the first byte (access, start positions,
filter): see :mod:`runtime.streams.plan`. While open it
- writes buffered records as ``event: record`` with a resumable ``id``;
- writes ``: keepalive`` when nothing was written for ``heartbeat_seconds``;
- checks access again every ``access_recheck_seconds`` (and re-authenticates the token),
  and ends at the token's ``expires_at``;
- (channel) lists its topics every ``topic_relist_seconds``: new readable topics join,
  topics no longer readable leave (``event: unsubscribed``);
- ends with ``event: end`` ``{reason, resume_id, message}`` (``id:`` = resume id) when it
  must stop: ``slow_consumer``, ``access_revoked``, ``topic_deleted``, ``token_expired``,
  ``unauthenticated``, ``broker_error``, ``server_shutdown``.
A write the client does not take is watched, not awaited blindly: if the buffer overflows,
access ends or the client leaves while it is blocked, the stream ends all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from runtime.streams.buffer import Batch, EventBuffer
from runtime.streams.encoding import sse_comment, sse_event, sse_retry
from runtime.streams.plan import StreamPlan
from runtime.streams.positions import PositionMap, channel_id, single_topic_id
from runtime.streams.reader import LogReader
from runtime.streams.render import Renderer

logger = logging.getLogger(__name__)

RECONNECT_DELAY_MS = 2000
_BLOCKED_WRITE_POLL_S = 0.5

END_MESSAGES = {
    "slow_consumer": "the client did not read fast enough; reconnect with the resume id",
    "access_revoked": "read access to this stream was revoked",
    "topic_deleted": "the topic was deleted",
    "token_expired": "the token expired; reconnect with a new token and the resume id",
    "unauthenticated": "the token is no longer valid",
    "broker_error": "the broker failed; reconnect with the resume id",
    "server_shutdown": "the server is shutting down; reconnect with the resume id",
}


class _EndStream(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, plan: StreamPlan, on_close: Callable[[], None] | None = None) -> None:
        super().__init__(content=None, status_code=200, media_type=self.media_type)
        self.plan = plan
        self._on_close = on_close
        self.positions: PositionMap = {t: dict(p) for t, p in plan.positions.items()}
        self._last: tuple[str, int, int] | None = None  # last delivered (topic, partition, offset)
        self.events_sent = 0
        self.end_reason: str | None = None

    # -- ids ------------------------------------------------------------------------------

    def resume_id(self) -> str:
        plan = self.plan
        if plan.single_topic is None:
            return channel_id(self.positions, int(time.time() * 1000))
        parts = self.positions.get(plan.single_topic, {})
        vector = [parts.get(p, 0) for p in range(plan.partitions_of(plan.single_topic))]
        if self._last is None:
            return single_topic_id(plan.single_topic, None, None, vector)
        _topic, partition, offset = self._last
        return single_topic_id(plan.single_topic, partition, offset, vector)

    def _commit(self, batches: list[Batch]) -> None:
        """The client has these batches' events: the resume position moves past them."""
        for batch in batches:
            self.events_sent += batch.count
            if batch.last is not None:
                self._last = batch.last
        # Topics that left a channel meanwhile stay out.
        latest = batches[-1].positions
        self.positions = {t: dict(latest.get(t, p)) for t, p in self.positions.items()}

    # -- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plan = self.plan
        settings = plan.settings
        loop = asyncio.get_running_loop()
        buffer = EventBuffer(settings.buffer_max_records, settings.buffer_max_bytes, loop)
        renderer = Renderer(plan.namespace, plan.single_topic, self.positions, plan.partitions_of)
        reader = LogReader(
            plan.connection, plan.namespace, buffer, plan.filters, settings, renderer
        )
        self.buffer, self.reader = buffer, reader
        plan.registry_of_streams.opened(self)
        disconnected = asyncio.Event()

        async def listen() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    buffer.ready.set()  # the writer waits on this one event
                    return

        listener = asyncio.ensure_future(listen())
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache, no-transform"),
                        (b"x-accel-buffering", b"no"),  # nginx-style proxies: do not buffer
                    ],
                }
            )
            reader.start(self.positions)
            await self._run(send, buffer, reader, disconnected)
        finally:
            listener.cancel()
            reader.stop()
            buffer.close()
            with contextlib.suppress(Exception):
                await asyncio.to_thread(reader.join, 10.0)
            plan.registry_of_streams.closed(self)
            if self._on_close is not None:
                self._on_close()

    async def _run(
        self, send: Send, buffer: EventBuffer, reader: LogReader, disconnected: asyncio.Event
    ) -> None:
        plan = self.plan
        settings = plan.settings
        write = self._writer(send, buffer, reader, disconnected)
        now = time.monotonic()
        self._next_heartbeat = now + settings.heartbeat_seconds
        self._next_access_check = now + settings.access_recheck_seconds
        self._next_relist = now + settings.topic_relist_seconds
        try:
            hello = (sse_retry(RECONNECT_DELAY_MS) + sse_comment("connected")).encode()
            if not await write(hello):
                return
            while True:
                await self._wait(buffer, disconnected)
                if disconnected.is_set():
                    return
                await self._checks(buffer, reader)
                batches = buffer.take(settings.batch_records * 4)
                if batches:
                    body = b"".join(batch.body for batch in batches)
                    if body and not await write(body):
                        return
                    self._commit(batches)
                elif time.monotonic() >= self._next_heartbeat and not await write(
                    sse_comment("keepalive").encode()
                ):
                    return
        except _EndStream as end:
            # Free what the stream holds first: the end event may wait for a slow client.
            reader.stop()
            buffer.close()
            await self._end(send, end.reason)

    async def _wait(self, buffer: EventBuffer, disconnected: asyncio.Event) -> None:
        """Until records are buffered, the reader stopped, the client left (the listener
        sets ``buffer.ready`` too) or a periodic duty is due."""
        if buffer.ready.is_set() or disconnected.is_set():
            return
        deadline = min(self._next_heartbeat, self._next_access_check, self._deadline_expiry())
        if self.plan.single_topic is None:
            deadline = min(deadline, self._next_relist)
        # A timeout scope rather than tasks + asyncio.wait: this runs once per chunk.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await buffer.ready.wait()

    def _deadline_expiry(self) -> float:
        expires_at = self.plan.principal.expires_at
        if expires_at is None:
            return float("inf")
        return time.monotonic() + (expires_at - datetime.now(UTC)).total_seconds()

    async def _checks(self, buffer: EventBuffer, reader: LogReader) -> None:
        """Raise ``_EndStream`` if the stream must end now; run due re-checks."""
        plan = self.plan
        if buffer.overflowed:
            raise _EndStream("slow_consumer")
        if plan.principal.expires_at is not None and plan.principal.expires_at <= datetime.now(UTC):
            raise _EndStream("token_expired")
        if reader.finished and not buffer.ready.is_set():
            raise _EndStream("broker_error" if reader.error else "server_shutdown")
        now = time.monotonic()
        if now >= self._next_access_check:
            self._next_access_check = now + plan.settings.access_recheck_seconds
            reason = await asyncio.to_thread(plan.end_reason)
            if reason is not None:
                raise _EndStream(reason)
        if plan.single_topic is None and now >= self._next_relist:
            self._next_relist = now + plan.settings.topic_relist_seconds
            await self._relist(reader)

    async def _relist(self, reader: LogReader) -> None:
        change = await asyncio.to_thread(self.plan.channel_changes, set(self.positions))
        if change.removed:
            reader.remove(sorted(change.removed))
            for topic in change.removed:
                self.positions.pop(topic, None)
            self._pending_notices = [
                sse_event("unsubscribed", {"topic": t, "reason": "access_revoked_or_deleted"})
                for t in sorted(change.removed)
            ]
        if change.added:
            reader.add(change.added)
            for topic, parts in change.added.items():
                self.positions[topic] = dict(parts)

    def _writer(
        self, send: Send, buffer: EventBuffer, reader: LogReader, disconnected: asyncio.Event
    ) -> Callable[[bytes], Awaitable[bool]]:
        async def write(body: bytes) -> bool:
            """Write one chunk; False if the client left. Raises ``_EndStream``.

            The caller moves the resume position only after this returned True; a write
            given up on leaves it before the chunk (uvicorn waits for the transport to
            drain *before* writing, so a cancelled write wrote nothing).
            """
            notices = getattr(self, "_pending_notices", None)
            if notices:
                body = "".join(notices).encode() + body
                self._pending_notices = []
            message = {"type": "http.response.body", "body": body, "more_body": True}
            while True:
                try:
                    async with asyncio.timeout(_BLOCKED_WRITE_POLL_S):
                        await send(message)
                except TimeoutError:
                    # The client is not reading; the write was given up on before it
                    # wrote anything. Stop if the stream has to end anyway, else retry.
                    if disconnected.is_set():
                        return False
                    await self._checks(buffer, reader)
                    continue
                self._next_heartbeat = time.monotonic() + self.plan.settings.heartbeat_seconds
                return True

        return write

    async def _end(self, send: Send, reason: str) -> None:
        self.end_reason = reason
        resume = self.resume_id()
        message_text = END_MESSAGES.get(reason, reason)
        reader_error = getattr(getattr(self, "reader", None), "error", None)
        if reason == "broker_error" and reader_error:
            message_text = f"{message_text} ({reader_error})"
        event = sse_event(
            "end", {"reason": reason, "resume_id": resume, "message": message_text}, resume
        )
        message: dict[str, Any] = {
            "type": "http.response.body",
            "body": event.encode(),
            "more_body": False,
        }
        # A client that reads nothing may take this late or never: wait a bounded time
        # (the stream holds no buffered records any more while it waits).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(send(message), timeout=self.plan.settings.end_write_seconds)
