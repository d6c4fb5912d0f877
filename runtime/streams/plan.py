"""Everything decided before a stream's first byte: who, what, from where, which filter.

``plan_topic_stream`` / ``plan_channel_stream`` run in the request's worker thread (registry
and broker calls block), raise the fabric's errors (404/403/422/503) before anything is
streamed, and return a :class:`StreamPlan` the engine runs. The plan also answers the
questions the engine asks again while the stream is open (access, new topics).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runtime.domain.errors import FabricError, Unauthenticated, Unavailable
from runtime.domain.models import Topic
from runtime.domain.names import validate_prefix
from runtime.domain.ports import IdentityProvider, Principal, Registry
from runtime.streams.offsets import OffsetsAdmin, start_positions
from runtime.streams.positions import (
    EARLIEST,
    InvalidPosition,
    PositionMap,
    StartSpec,
    parse_channel_id,
    parse_single_topic_id,
    parse_start,
)
from runtime.streams.settings import StreamSettings
from runtime.streams.subscriptions import (
    readable_topics,
    require_namespace_visible,
    require_readable_topic,
    single_topic_end_reason,
)
from runtime.triggers.filters import CompiledFilters, InvalidFilterCriteria, compile_filter_criteria

if TYPE_CHECKING:
    from runtime.streams.engine import EventStreamResponse

# A topic created less than this before the stream (or resume id) is read from its start.
_CREATION_SKEW_MS = 1000


class ActiveStreams:
    """The streams this process serves (bounded by ``max_streams``)."""

    def __init__(self, max_streams: int) -> None:
        self.max_streams = max_streams
        self._lock = threading.Lock()
        self._streams: set[EventStreamResponse] = set()
        self._reserved = 0

    def reserve(self) -> None:
        with self._lock:
            if len(self._streams) + self._reserved >= self.max_streams:
                raise Unavailable(
                    f"this server already serves {self.max_streams} event streams; retry later",
                    details={"limit": self.max_streams},
                )
            self._reserved += 1

    def release(self) -> None:
        with self._lock:
            self._reserved = max(0, self._reserved - 1)

    def opened(self, stream: EventStreamResponse) -> None:
        with self._lock:
            self._reserved = max(0, self._reserved - 1)
            self._streams.add(stream)

    def closed(self, stream: EventStreamResponse) -> None:
        with self._lock:
            self._streams.discard(stream)

    def snapshot(self) -> list[EventStreamResponse]:
        with self._lock:
            return list(self._streams)


@dataclass(frozen=True)
class ChannelChange:
    added: PositionMap
    removed: set[str]


@dataclass
class StreamPlan:
    settings: StreamSettings
    connection: Mapping[str, Any]
    registry: Registry
    admin: OffsetsAdmin
    identity: IdentityProvider | None
    token: str | None
    principal: Principal
    namespace: str
    filters: CompiledFilters
    positions: PositionMap
    registry_of_streams: ActiveStreams
    # single-topic stream: the topic; channel stream: None and ``prefix``
    single_topic: str | None = None
    topic: Topic | None = None
    prefix: str = ""
    start: StartSpec = EARLIEST
    opened_at_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    partitions: dict[str, int] = field(default_factory=dict)

    def partitions_of(self, topic: str) -> int:
        return self.partitions.get(topic, 1)

    # -- asked again while the stream is open (worker thread) -----------------------------

    def end_reason(self) -> str | None:
        """Why the stream must end now (access, token), or None."""
        if self.identity is not None and self.token is not None:
            try:
                self.identity.authenticate(self.token)
            except Unauthenticated:
                return "unauthenticated"
            except FabricError:
                pass  # the identity service is down: keep serving, check again later
        try:
            if self.topic is not None:
                return single_topic_end_reason(
                    self.registry, self.principal, self.namespace, self.topic
                )
            require_namespace_visible(self.registry, self.principal, self.namespace)
        except Unavailable:
            return None  # registry unreachable for a moment: not a reason to end
        except FabricError:
            return "access_revoked"
        return None

    def channel_changes(self, current: set[str]) -> ChannelChange:
        """Topics that joined or left the channel since ``current``."""
        topics = readable_topics(self.registry, self.principal, self.namespace, self.prefix)
        removed = current - set(topics)
        added: PositionMap = {}
        for name in sorted(set(topics) - current):
            topic = topics[name]
            self.partitions[name] = topic.partitions
            created_ms = int(topic.created_at.timestamp() * 1000)
            if created_ms >= self.opened_at_ms - _CREATION_SKEW_MS:
                # Created while the stream is open: nothing in it was streamed yet.
                added[name] = dict.fromkeys(range(topic.partitions), 0)
            else:
                # Became readable (a new grant): read what arrives from now on.
                added[name] = self.admin.end_offsets(topic.kafka_name)
        return ChannelChange(added, removed)


# --------------------------------------------------------------------------- building


def parse_filter(text: str | None) -> CompiledFilters:
    """``?filter=``: FilterCriteria ``{"Filters": [{"Pattern": ...}]}``, a list of patterns
    (as the triggers API takes them) or one pattern object; the triggers' rules apply."""
    if text is None or text.strip() == "":
        return CompiledFilters(())
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidFilterCriteria(
            f"filter is not valid JSON: {exc}", details={"field": "filter"}
        ) from None
    if isinstance(raw, list):
        raw = {"Filters": [{"Pattern": p if isinstance(p, str) else json.dumps(p)} for p in raw]}
    elif isinstance(raw, dict) and "Filters" not in raw:
        raw = {"Filters": [{"Pattern": json.dumps(raw)}]}
    return compile_filter_criteria(raw)


@dataclass(frozen=True)
class StreamContext:
    """What the route hands over from the container and the request."""

    settings: StreamSettings
    connection: Mapping[str, Any]
    registry: Registry
    admin: OffsetsAdmin
    identity: IdentityProvider | None
    token: str | None
    principal: Principal
    streams: ActiveStreams


def _clamp_to_end(positions: dict[int, int], end: dict[int, int]) -> dict[int, int]:
    return {p: min(positions.get(p, 0), high) for p, high in end.items()}


def plan_topic_stream(
    context: StreamContext,
    namespace: str,
    topic_name: str,
    *,
    start_text: str | None,
    last_event_id: str | None,
    filter_text: str | None,
) -> StreamPlan:
    registry = context.registry
    topic = require_readable_topic(registry, context.principal, namespace, topic_name)
    filters = parse_filter(filter_text)
    start = parse_start(start_text)
    kafka_name = topic.kafka_name
    settings = context.settings
    resumed: dict[int, int] = {}
    if last_event_id:
        event_id = parse_single_topic_id(last_event_id)
        if event_id.topic != topic_name:
            raise InvalidPosition(
                f"Last-Event-ID is for topic {event_id.topic!r}, not {topic_name!r}",
                details={"field": "Last-Event-ID"},
            )
        resumed = event_id.positions()
    positions: dict[int, int]
    if resumed and len(resumed) >= topic.partitions:
        positions = _clamp_to_end(resumed, context.admin.end_offsets(kafka_name))
    else:
        positions = start_positions(
            context.admin,
            context.connection,
            kafka_name,
            start,
            broker_time_lookup=settings.broker_time_lookup,
        )
        positions.update({p: o for p, o in resumed.items() if p in positions})
    return StreamPlan(
        settings=settings,
        connection=context.connection,
        registry=registry,
        admin=context.admin,
        identity=context.identity,
        token=context.token,
        principal=context.principal,
        namespace=namespace,
        filters=filters,
        positions={topic_name: positions},
        registry_of_streams=context.streams,
        single_topic=topic_name,
        topic=topic,
        start=start,
        partitions={topic_name: topic.partitions},
    )


def plan_channel_stream(
    context: StreamContext,
    namespace: str,
    prefix: str,
    *,
    start_text: str | None,
    last_event_id: str | None,
    filter_text: str | None,
) -> StreamPlan:
    registry = context.registry
    validate_prefix(namespace, prefix)
    require_namespace_visible(registry, context.principal, namespace)
    filters = parse_filter(filter_text)
    start = parse_start(start_text)
    settings = context.settings
    resumed = parse_channel_id(last_event_id) if last_event_id else None
    topics = readable_topics(registry, context.principal, namespace, prefix)
    positions: PositionMap = {}
    for name, topic in topics.items():
        if resumed is not None and name in resumed.positions:
            end = context.admin.end_offsets(topic.kafka_name)
            positions[name] = {
                p: min(resumed.positions[name].get(p, 0), high) for p, high in end.items()
            }
            continue
        created_ms = int(topic.created_at.timestamp() * 1000)
        if resumed is not None and created_ms >= resumed.made_at_ms - _CREATION_SKEW_MS:
            positions[name] = dict.fromkeys(range(topic.partitions), 0)
            continue
        positions[name] = start_positions(
            context.admin,
            context.connection,
            topic.kafka_name,
            start,
            broker_time_lookup=settings.broker_time_lookup,
        )
    return StreamPlan(
        settings=settings,
        connection=context.connection,
        registry=registry,
        admin=context.admin,
        identity=context.identity,
        token=context.token,
        principal=context.principal,
        namespace=namespace,
        filters=filters,
        positions=positions,
        registry_of_streams=context.streams,
        prefix=prefix,
        start=start,
        partitions={name: topic.partitions for name, topic in topics.items()},
    )
