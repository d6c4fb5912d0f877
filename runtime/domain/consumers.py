"""Reading records over HTTP: stateless partition reads, and REST consumer instances.

REST consumer instances (Confluent REST Proxy v2 style, as Octopus v3 offered them
and ``diaspora-event-sdk``'s ``RESTConsumer`` uses them) keep all of their state
in the registry — settings, subscription, assignments, positions, owner, last use —
so any API instance serves the next call and a restart loses nothing. A fetch is a
stateless read from the stored positions; the new positions are written back with
optimistic concurrency, so two concurrent fetches of one instance cannot both
deliver the same records. Commits go to the Kafka consumer group, where a Kafka
client of the same group sees them.

A subscribed instance takes *every* partition of its topics at its first fetch.
Instances of one group do not split partitions between them the way Kafka's group
protocol does: that protocol needs a member that stays connected and heartbeats,
which a stateless HTTP service cannot be. Two instances of a group therefore each
read all records; they share only the committed offsets.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, Literal, Protocol

from runtime.domain.access import require_topic_access
from runtime.domain.deps import Deps
from runtime.domain.errors import AlreadyExists, Conflict, FabricError, NotFound, Unprocessable
from runtime.domain.identities import IdentityService
from runtime.domain.models import Access, ConsumerInstance, Topic, TopicState
from runtime.domain.ports import Principal
from runtime.domain.topics import TopicService

# ---- ports this module needs (adapters: runtime.adapters.kafka_records / kafka_group_offsets)


class FetchedRecordLike(Protocol):
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp_ms(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...


class PartitionReader(Protocol):
    """Stateless reads of one partition from an offset (no consumer group)."""

    def read(
        self, topic: str, partition: int, offset: int, limit: int, timeout_ms: int
    ) -> tuple[Sequence[FetchedRecordLike], int, int]:
        """(records, next_offset, high_watermark)."""
        ...


class GroupOffsets(Protocol):
    """Committed offsets of Kafka consumer groups (next offset to read)."""

    def committed(
        self, group: str, partitions: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        """Committed offsets; partitions the group never committed are left out."""
        ...

    def commit(self, group: str, offsets: dict[tuple[str, int], int]) -> None: ...


# ---- errors in Confluent REST's codes -------------------------------------------------


class InstanceNotFound(NotFound):
    code = "consumer_instance_not_found"
    confluent_code: ClassVar[int] = 40403


class InstanceExists(AlreadyExists):
    code = "consumer_instance_exists"
    confluent_code: ClassVar[int] = 40902


class NotAssigned(Conflict):
    code = "partition_not_assigned"
    confluent_code: ClassVar[int] = 40903


class NoResetPolicy(Conflict):
    code = "no_committed_offset"
    confluent_code: ClassVar[int] = 40904


class FormatMismatch(FabricError):
    status = 406
    code = "format_mismatch"
    confluent_code: ClassVar[int] = 40601


class InvalidConsumerRequest(Unprocessable):
    code = "invalid_consumer_request"
    confluent_code: ClassVar[int] = 42204


def confluent_code_of(error: FabricError) -> int:
    """The ``error_code`` a Confluent-style reply carries for ``error``."""
    code = getattr(error, "confluent_code", None)
    if isinstance(code, int):
        return code
    detail = error.details.get("error_code")
    return detail if isinstance(detail, int) else error.status * 100 + 1


# ---- settings ---------------------------------------------------------------------------

DEFAULT_IDLE_SECONDS = 300  # Octopus v3 dropped an instance idle for 5 minutes
DEFAULT_REQUEST_TIMEOUT_MS = 5000
MAX_FETCH_TIMEOUT_MS = 30_000
# Replies stay well under Lambda's 6 MB response limit even after base64 (4/3).
MAX_FETCH_BYTES = 3 * 1024 * 1024
MAX_FETCH_RECORDS = 500
NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
Format = Literal["binary", "json"]
Reset = Literal["earliest", "latest", "none"]
TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True)
class InstanceSettings:
    format: Format = "binary"
    auto_offset_reset: Reset = "latest"
    auto_commit_enable: bool = False
    fetch_min_bytes: int | None = None
    request_timeout_ms: int = DEFAULT_REQUEST_TIMEOUT_MS

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> InstanceSettings:
        """Settings from a create body (Confluent's dotted keys, values as str or int)."""
        fmt: Format = raw.get("format") or "binary"
        if fmt not in ("binary", "json"):
            raise InvalidConsumerRequest(
                f"format {fmt!r} is not supported; use 'binary' or 'json'",
                details={"field": "format"},
            )
        reset: Reset = raw.get("auto.offset.reset") or "latest"
        if reset not in ("earliest", "latest", "none"):
            raise InvalidConsumerRequest(
                f"auto.offset.reset {reset!r} is invalid; use earliest, latest or none",
                details={"field": "auto.offset.reset"},
            )
        commit = str(raw.get("auto.commit.enable") or "false").lower()
        if commit not in ("true", "false"):
            raise InvalidConsumerRequest(
                "auto.commit.enable must be 'true' or 'false'",
                details={"field": "auto.commit.enable"},
            )
        return cls(
            format=fmt,
            auto_offset_reset=reset,
            auto_commit_enable=commit == "true",
            fetch_min_bytes=_optional_int(raw, "fetch.min.bytes", 0, 10**9),
            request_timeout_ms=_optional_int(
                raw, "consumer.request.timeout.ms", 0, MAX_FETCH_TIMEOUT_MS
            )
            or DEFAULT_REQUEST_TIMEOUT_MS,
        )

    def stored(self) -> dict[str, Any]:
        return {
            "auto.offset.reset": self.auto_offset_reset,
            "auto.commit.enable": self.auto_commit_enable,
            "fetch.min.bytes": self.fetch_min_bytes,
            "consumer.request.timeout.ms": self.request_timeout_ms,
        }

    @classmethod
    def of(cls, instance: ConsumerInstance) -> InstanceSettings:
        s = instance.settings
        return cls(
            format=instance.format,
            auto_offset_reset=s.get("auto.offset.reset", "latest"),
            auto_commit_enable=bool(s.get("auto.commit.enable", False)),
            fetch_min_bytes=s.get("fetch.min.bytes"),
            request_timeout_ms=int(
                s.get("consumer.request.timeout.ms") or DEFAULT_REQUEST_TIMEOUT_MS
            ),
        )


def _optional_int(raw: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidConsumerRequest(
            f"{name} must be an integer", details={"field": name}
        ) from None
    if not low <= number <= high:
        raise InvalidConsumerRequest(
            f"{name} must be between {low} and {high}", details={"field": name}
        )
    return number


def _check_name(value: str, field: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise InvalidConsumerRequest(
            f"{field} {value!r} is invalid: use 1-128 letters, digits, '.', '_' and '-'",
            details={"field": field},
        )
    return value


def _slot(topic: str, partition: int) -> str:
    """Positions are stored as ``"topic:partition" -> next offset``."""
    return f"{topic}:{partition}"


def _unslot(slot: str) -> TopicPartitionKey:
    topic, _, partition = slot.rpartition(":")
    return topic, int(partition)


# ---- record encodings -------------------------------------------------------------------


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def json_form(data: bytes | None) -> Any:
    """A json instance's key or value: one JSON value as that value, other text as str.

    Bytes that are not UTF-8 come back in base64, as Octopus v3 answered them.
    """
    if data is None:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return b64(data)
    try:
        return json.loads(text)
    except ValueError:
        return text


def headers_out(headers: Sequence[tuple[str, bytes | None]]) -> list[dict[str, str | None]]:
    return [{"name": name, "value": b64(value)} for name, value in headers]


# ---- the service --------------------------------------------------------------------------


class EndOffsets(Protocol):
    def __call__(self, kafka_topic: str) -> dict[int, int]: ...


class ConsumerService:
    """REST consumer instances whose whole state is a registry record."""

    def __init__(
        self,
        deps: Deps,
        identities: IdentityService,
        topics: TopicService,
        *,
        reader: PartitionReader,
        offsets: GroupOffsets,
        idle_seconds: int = DEFAULT_IDLE_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._deps = deps
        self._identities = identities
        self._topics = topics
        self._reader = reader
        self._offsets = offsets
        self.idle_seconds = idle_seconds
        self._sleep = sleep

    # -- naming -----------------------------------------------------------------
    def namespace_of(self, caller: Principal) -> str:
        return self._identities.ensure(caller).default_namespace

    def kafka_group(self, caller: Principal, group: str) -> str:
        """Group ``g`` is the Kafka consumer group ``<default namespace>.g``."""
        return f"{self.namespace_of(caller)}.{_check_name(group, 'group')}"

    # -- lifecycle ----------------------------------------------------------------
    def create(
        self, caller: Principal, group: str, name: str | None, raw_settings: dict[str, Any]
    ) -> ConsumerInstance:
        settings = InstanceSettings.parse(raw_settings)
        kafka_group = self.kafka_group(caller, group)
        instance_id = _check_name(name, "name") if name else secrets.token_hex(6)
        now = self._deps.clock()
        instance = ConsumerInstance(
            group=kafka_group,
            instance_id=instance_id,
            owner=caller.sub,
            namespace=self.namespace_of(caller),
            format=settings.format,
            settings=settings.stored(),
            created_at=now,
            last_used_at=now,
        )
        registry = self._deps.registry
        stale = registry.get_consumer_instance(kafka_group, instance_id)
        if stale is not None and self._expired(stale):
            registry.delete_consumer_instance(kafka_group, instance_id)
        try:
            registry.put_consumer_instance(instance)
        except AlreadyExists:
            raise InstanceExists(
                "Consumer instance with the specified name already exists.",
                details={"group": group, "instance": instance_id},
            ) from None
        return instance

    def delete(self, caller: Principal, group: str, instance_id: str) -> None:
        instance = self._load(caller, group, instance_id)
        self._deps.registry.delete_consumer_instance(instance.group, instance.instance_id)

    # -- subscription and assignment -------------------------------------------
    def subscribe(self, caller: Principal, group: str, instance_id: str, topics: list[str]) -> None:
        instance = self._load(caller, group, instance_id)
        if not topics:
            raise InvalidConsumerRequest(
                "name at least one topic to subscribe to", details={"field": "topics"}
            )
        names = sorted(set(topics))
        for topic in names:
            self._readable(caller, instance.namespace, topic)
        self._save(instance, topics=names, assignments=[], positions={})

    def subscription(self, caller: Principal, group: str, instance_id: str) -> list[str]:
        instance = self._touch(self._load(caller, group, instance_id))
        return sorted(instance.topics)

    def unsubscribe(self, caller: Principal, group: str, instance_id: str) -> None:
        instance = self._load(caller, group, instance_id)
        self._save(instance, topics=[], assignments=[], positions={})

    def assign(
        self, caller: Principal, group: str, instance_id: str, partitions: list[TopicPartitionKey]
    ) -> None:
        instance = self._load(caller, group, instance_id)
        wanted = sorted(set(partitions))
        for topic, partition in wanted:
            found = self._readable(caller, instance.namespace, topic)
            self._check_partition(found, partition)
        self._save(instance, topics=[], assignments=wanted, positions={})

    def assignment(
        self, caller: Principal, group: str, instance_id: str
    ) -> list[TopicPartitionKey]:
        instance = self._touch(self._load(caller, group, instance_id))
        return sorted(instance.assignments)

    # -- records --------------------------------------------------------------------
    def fetch(
        self,
        caller: Principal,
        group: str,
        instance_id: str,
        *,
        timeout_ms: int | None,
        max_bytes: int | None,
        wanted_format: Format | None,
    ) -> tuple[Format, list[dict[str, Any]]]:
        instance = self._load(caller, group, instance_id)
        settings = InstanceSettings.of(instance)
        if wanted_format is not None and wanted_format != instance.format:
            raise FormatMismatch(
                f"this is a {instance.format} consumer instance; ask for "
                f"application/vnd.kafka.{instance.format}.v2+json",
            )
        wait_ms = settings.request_timeout_ms if timeout_ms is None else timeout_ms
        wait_ms = max(0, min(wait_ms, MAX_FETCH_TIMEOUT_MS))
        budget = MAX_FETCH_BYTES if max_bytes is None else max(1, min(max_bytes, MAX_FETCH_BYTES))
        deadline = time.monotonic() + wait_ms / 1000.0

        # Read access is checked on every fetch: a revoked grant stops reads at once.
        topics = self._current_topics(caller, instance)
        assignments = list(instance.assignments)
        if instance.topics and not assignments:
            assignments = sorted((t.name, p) for t in topics.values() for p in range(t.partitions))
        positions = self._positions(instance, assignments, topics, settings)
        if settings.auto_commit_enable and instance.positions:
            # Like Kafka's auto-commit: what earlier fetches returned is committed now.
            self._commit_positions(instance, instance.positions)

        records = self._read(instance, topics, assignments, positions, budget, deadline)
        self._save(instance, assignments=assignments, positions=positions)
        return instance.format, records

    def _read(
        self,
        instance: ConsumerInstance,
        topics: dict[str, Topic],
        assignments: list[TopicPartitionKey],
        positions: dict[str, int],
        budget: int,
        deadline: float,
    ) -> list[dict[str, Any]]:
        readable = [(t, p) for t, p in assignments if t in topics]
        if not readable:
            self._wait_until(deadline)
            return []
        out: list[dict[str, Any]] = []
        used = 0
        while True:
            # One partition: the reader itself long-polls for new records. Several: read
            # only those with records waiting, and look again until the deadline.
            pending = readable if len(readable) == 1 else self._pending(topics, readable, positions)
            for topic, partition in pending:
                room = MAX_FETCH_RECORDS - len(out)
                if room <= 0 or (out and used >= budget):
                    break
                remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
                start = positions[_slot(topic, partition)]
                fetched, _next, _high = self._reader.read(
                    topics[topic].kafka_name,
                    partition,
                    start,
                    room,
                    max(remaining_ms, 200) if out == [] else 200,
                )
                for record in fetched:
                    size = len(record.key or b"") + len(record.value or b"")
                    if out and used + size > budget:
                        break
                    used += size
                    out.append(self._record_out(instance, topic, record))
                    positions[_slot(topic, partition)] = record.offset + 1
            if out or time.monotonic() >= deadline:
                return out
            self._wait_until(min(deadline, time.monotonic() + 0.25))

    def _pending(
        self,
        topics: dict[str, Topic],
        readable: list[TopicPartitionKey],
        positions: dict[str, int],
    ) -> list[TopicPartitionKey]:
        ends: dict[str, dict[int, int]] = {}
        pending = []
        for topic, partition in readable:
            if topic not in ends:
                ends[topic] = self._deps.broker.end_offsets(topics[topic].kafka_name)
            if positions[_slot(topic, partition)] < ends[topic].get(partition, 0):
                pending.append((topic, partition))
        return pending

    def _wait_until(self, moment: float) -> None:
        delay = moment - time.monotonic()
        if delay > 0:
            self._sleep(delay)

    @staticmethod
    def _record_out(
        instance: ConsumerInstance, topic: str, record: FetchedRecordLike
    ) -> dict[str, Any]:
        encode = b64 if instance.format == "binary" else json_form
        return {
            "topic": topic,
            "key": encode(record.key),
            "value": encode(record.value),
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp_ms,
            "headers": headers_out(record.headers),
        }

    # -- offsets and positions ---------------------------------------------------------
    def commit(
        self,
        caller: Principal,
        group: str,
        instance_id: str,
        offsets: list[tuple[str, int, int]] | None,
    ) -> None:
        """Commit positions (no offsets), or for each ``(topic, partition, offset)`` of a
        last processed record, the offset after it."""
        instance = self._load(caller, group, instance_id)
        if not offsets:
            for topic in {t for t, _ in map(_unslot, instance.positions)}:
                self._readable(caller, instance.namespace, topic)
            self._commit_positions(instance, instance.positions)
            self._touch(instance)
            return
        wanted: dict[str, int] = {}
        for topic, partition, offset in offsets:
            self._require_assigned(instance, topic, partition)
            self._readable(caller, instance.namespace, topic)
            if offset < 0:
                raise InvalidConsumerRequest("offsets must not be negative")
            wanted[_slot(topic, partition)] = offset + 1
        self._commit_positions(instance, wanted)
        self._touch(instance)

    def committed(
        self, caller: Principal, group: str, instance_id: str, partitions: list[TopicPartitionKey]
    ) -> list[tuple[str, int, int]]:
        instance = self._touch(self._load(caller, group, instance_id))
        kafka: list[TopicPartitionKey] = []
        names: dict[TopicPartitionKey, TopicPartitionKey] = {}
        for topic, partition in partitions:
            found = self._readable(caller, instance.namespace, topic)
            names[(found.kafka_name, partition)] = (topic, partition)
            kafka.append((found.kafka_name, partition))
        committed = self._offsets.committed(instance.group, kafka) if kafka else {}
        return [(*names[k], offset) for k, offset in committed.items() if k in names]

    def seek(
        self, caller: Principal, group: str, instance_id: str, offsets: list[tuple[str, int, int]]
    ) -> None:
        instance = self._load(caller, group, instance_id)
        positions = dict(instance.positions)
        for topic, partition, offset in offsets:
            self._require_assigned(instance, topic, partition)
            self._readable(caller, instance.namespace, topic)
            if offset < 0:
                raise InvalidConsumerRequest("offsets must not be negative")
            positions[_slot(topic, partition)] = offset
        self._save(instance, positions=positions)

    def seek_edge(
        self,
        caller: Principal,
        group: str,
        instance_id: str,
        partitions: list[TopicPartitionKey],
        *,
        end: bool,
    ) -> None:
        instance = self._load(caller, group, instance_id)
        chosen = partitions or list(instance.assignments)
        positions = dict(instance.positions)
        edges: dict[str, dict[int, int]] = {}
        for topic, partition in chosen:
            self._require_assigned(instance, topic, partition)
            found = self._readable(caller, instance.namespace, topic)
            if topic not in edges:
                broker = self._deps.broker
                edges[topic] = (broker.end_offsets if end else broker.begin_offsets)(
                    found.kafka_name
                )
            positions[_slot(topic, partition)] = edges[topic].get(partition, 0)
        self._save(instance, positions=positions)

    # -- internals -----------------------------------------------------------------------
    def _expired(self, instance: ConsumerInstance) -> bool:
        return self._deps.clock() - instance.last_used_at > timedelta(seconds=self.idle_seconds)

    def _load(self, caller: Principal, group: str, instance_id: str) -> ConsumerInstance:
        kafka_group = self.kafka_group(caller, group)
        instance = self._deps.registry.get_consumer_instance(kafka_group, instance_id)
        if instance is not None and self._expired(instance):
            self._deps.registry.delete_consumer_instance(kafka_group, instance_id)
            instance = None
        if instance is None or instance.owner != caller.sub:
            raise InstanceNotFound(
                "Consumer instance not found",
                details={"group": group, "instance": instance_id},
            )
        return instance

    def _save(self, instance: ConsumerInstance, **changes: Any) -> ConsumerInstance:
        updated = instance.model_copy(update={**changes, "last_used_at": self._deps.clock()})
        try:
            return self._deps.registry.update_consumer_instance(
                updated, expected_version=instance.version
            )
        except NotFound:
            raise InstanceNotFound("Consumer instance not found") from None
        except Conflict:
            raise Conflict(
                "another request changed this consumer instance meanwhile; the service "
                "serves an instance one request at a time — send the request again"
            ) from None

    def _touch(self, instance: ConsumerInstance) -> ConsumerInstance:
        return self._save(instance)

    def _readable(self, caller: Principal, namespace: str, topic: str) -> Topic:
        require_topic_access(self._deps.registry, caller, namespace, topic, Access.READ)
        return self._topics.require_active(namespace, topic)

    @staticmethod
    def _check_partition(topic: Topic, partition: int) -> None:
        if not 0 <= partition < topic.partitions:
            raise NotFound(
                f"partition {partition} of topic {topic.name!r} does not exist "
                f"(partitions 0..{topic.partitions - 1})",
                details={"error_code": 40402},
            )

    @staticmethod
    def _require_assigned(instance: ConsumerInstance, topic: str, partition: int) -> None:
        if (topic, partition) not in {tuple(a) for a in instance.assignments}:
            hint = (
                " A subscribed instance gets its partitions at its first fetch."
                if instance.topics
                else ""
            )
            raise NotAssigned(
                f"partition {partition} of topic {topic!r} is not assigned to this instance." + hint
            )

    def _current_topics(self, caller: Principal, instance: ConsumerInstance) -> dict[str, Topic]:
        """The instance's topics the caller may still read (checked now), by name."""
        names = set(instance.topics) | {t for t, _ in instance.assignments}
        found: dict[str, Topic] = {}
        for name in sorted(names):
            require_topic_access(self._deps.registry, caller, instance.namespace, name, Access.READ)
            topic = self._deps.registry.get_topic(instance.namespace, name)
            if topic is not None and topic.state is TopicState.ACTIVE:
                found[name] = topic
        return found

    def _positions(
        self,
        instance: ConsumerInstance,
        assignments: list[TopicPartitionKey],
        topics: dict[str, Topic],
        settings: InstanceSettings,
    ) -> dict[str, int]:
        """Stored positions; new partitions start at the group's commit, else the reset."""
        positions = {
            slot: offset
            for slot, offset in instance.positions.items()
            if _unslot(slot) in set(assignments)
        }
        missing = [(t, p) for t, p in assignments if _slot(t, p) not in positions and t in topics]
        if not missing:
            return positions
        committed = self._offsets.committed(
            instance.group, [(topics[t].kafka_name, p) for t, p in missing]
        )
        edges: dict[str, dict[int, int]] = {}
        for topic, partition in missing:
            start = committed.get((topics[topic].kafka_name, partition))
            if start is None:
                if settings.auto_offset_reset == "none":
                    raise NoResetPolicy(
                        f"the group has no committed offset for {topic}[{partition}] and "
                        "auto.offset.reset is none"
                    )
                if topic not in edges:
                    broker = self._deps.broker
                    lookup = (
                        broker.begin_offsets
                        if settings.auto_offset_reset == "earliest"
                        else broker.end_offsets
                    )
                    edges[topic] = lookup(topics[topic].kafka_name)
                start = edges[topic].get(partition, 0)
            positions[_slot(topic, partition)] = start
        return positions

    def _commit_positions(self, instance: ConsumerInstance, positions: dict[str, int]) -> None:
        if not positions:
            return
        offsets: dict[TopicPartitionKey, int] = {}
        for slot, offset in positions.items():
            topic, partition = _unslot(slot)
            offsets[(f"{instance.namespace}.{topic}", partition)] = offset
        self._offsets.commit(instance.group, offsets)


# ---- stateless HTTP consume --------------------------------------------------------------


@dataclass(frozen=True)
class PartitionRead:
    topic: Topic
    partition: int
    records: list[FetchedRecordLike]
    next_offset: int
    high_watermark: int


class RecordReads:
    """``GET .../topics/{t}/records``: one partition from an offset, no state kept."""

    MAX_LIMIT = 1000

    def __init__(self, deps: Deps, topics: TopicService, reader: PartitionReader) -> None:
        self._deps = deps
        self._topics = topics
        self._reader = reader

    def read(
        self,
        caller: Principal,
        namespace: str,
        topic: str,
        *,
        partition: int,
        offset: int | None,
        limit: int,
        timeout_ms: int,
    ) -> PartitionRead:
        require_topic_access(self._deps.registry, caller, namespace, topic, Access.READ)
        found = self._topics.require_active(namespace, topic)
        if not 0 <= partition < found.partitions:
            raise Unprocessable(
                f"partition {partition} does not exist: {namespace}/{topic} has partitions "
                f"0..{found.partitions - 1}",
                details={"field": "partition"},
            )
        first = self._deps.broker.begin_offsets(found.kafka_name).get(partition, 0)
        start = first if offset is None else offset
        if start < first:
            raise Unprocessable(
                f"offset {start} is no longer stored; the first stored offset is {first}",
                details={"field": "offset", "first_offset": first},
            )
        records, next_offset, high = self._reader.read(
            found.kafka_name, partition, start, limit, timeout_ms
        )
        return PartitionRead(found, partition, list(records), next_offset, high)
