"""The fabric's records: what the registry stores and the core reasons about."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    """Base for stored records: immutable; change with ``model_copy(update=...)``."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Access(StrEnum):
    READ = "read"
    WRITE = "write"
    READWRITE = "readwrite"

    def allows(self, needed: Access) -> bool:
        """Whether holding this access permits ``needed`` (readwrite permits both)."""
        return self is Access.READWRITE or self is needed

    def union(self, other: Access) -> Access:
        return self if self is other else Access.READWRITE


class Identity(Record):
    """A Globus identity (``sub``) known to the fabric, with its usage counters."""

    sub: str
    username: str | None = None
    default_namespace: str
    created_at: datetime = Field(default_factory=utcnow)


class Usage(Record):
    """What an identity holds, checked against its quotas."""

    namespaces: int = 0
    topics: int = 0
    partitions: int = 0
    keys: int = 0
    grants: int = 0
    triggers: int = 0


class Namespace(Record):
    name: str
    owner: str
    is_default: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class TopicState(StrEnum):
    # A topic is written to the registry as CREATING before the broker is asked
    # and turns ACTIVE after; DELETING before the broker deletes it. A crash
    # between the two steps leaves a visible state that reconcile repairs.
    CREATING = "creating"
    ACTIVE = "active"
    DELETING = "deleting"


class Topic(Record):
    namespace: str
    name: str
    owner: str
    partitions: int = Field(ge=1)
    replication_factor: int = Field(ge=1)
    configs: dict[str, str] = Field(default_factory=dict)
    state: TopicState = TopicState.CREATING
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = 0

    @property
    def kafka_name(self) -> str:
        return kafka_topic_name(self.namespace, self.name)


def kafka_topic_name(namespace: str, topic: str) -> str:
    """Topics live in Kafka as ``{namespace}.{topic}``."""
    return f"{namespace}.{topic}"


def collision_key(topic: str) -> str:
    """Kafka treats '.' and '_' alike in metric names: two such topics collide."""
    return topic.replace(".", "_")


class GrantKind(StrEnum):
    TOPIC = "topic"
    PREFIX = "prefix"


class Grant(Record):
    """Access for ``grantee`` to one topic, or to every topic under a dotted prefix.

    A prefix grant's ``target`` is a topic-name prefix within the namespace
    ("" is the whole namespace); it covers topics created later too.
    """

    namespace: str
    kind: GrantKind
    target: str
    grantee: str
    access: Access
    granted_by: str
    created_at: datetime = Field(default_factory=utcnow)

    def covers(self, topic: str) -> bool:
        if self.kind is GrantKind.TOPIC:
            return self.target == topic
        return prefix_covers(self.target, topic)


def prefix_covers(prefix: str, topic: str) -> bool:
    """A channel prefix covers its subtree: "a.b" covers "a.b" and "a.b.c", not "a.bc".

    A prefix ending in "." covers only the subtree below it; "" covers everything.
    """
    if prefix == "":
        return True
    if prefix.endswith("."):
        return topic.startswith(prefix)
    return topic == prefix or topic.startswith(prefix + ".")


class KeyKind(StrEnum):
    LOCAL = "local"  # issued by the local fabric; only a hash is kept
    IAM = "iam"  # an IAM access key of the identity's IAM user


class AccessKey(Record):
    """Metadata of a broker credential. Never holds the secret."""

    key_id: str
    owner: str
    name: str
    kind: KeyKind
    # LOCAL: salted hash of the secret (scrypt); IAM: empty (AWS keeps the secret).
    secret_hash: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None


TriggerKind = Literal["webhook", "function"]


class TriggerState(StrEnum):
    CREATING = "creating"
    ACTIVE = "active"
    FAILING = "failing"
    DISABLED = "disabled"
    DELETING = "deleting"


class Trigger(Record):
    """A managed trigger. ``spec`` holds the kind-specific, validated settings."""

    trigger_id: str
    owner: str
    namespace: str
    topic: str
    kind: TriggerKind
    spec: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    state: TriggerState = TriggerState.CREATING
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = 0

    @property
    def kafka_topic(self) -> str:
        return kafka_topic_name(self.namespace, self.topic)


class IdempotencyRecord(Record):
    """The stored outcome of a mutating request sent with an ``Idempotency-Key``."""

    scope: str  # the caller's identity
    key: str
    request_hash: str
    status_code: int
    body: str
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class ConsumerInstance(Record):
    """A REST consumer instance (Confluent REST v2 style) kept in the registry."""

    group: str
    instance_id: str
    owner: str
    namespace: str
    format: Literal["binary", "json"] = "binary"
    settings: dict[str, Any] = Field(default_factory=dict)
    topics: list[str] = Field(default_factory=list)
    assignments: list[tuple[str, int]] = Field(default_factory=list)
    # "topic:partition" -> next offset to read
    positions: dict[str, int] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime = Field(default_factory=utcnow)
    version: int = 0


class Page(BaseModel, Generic[T]):
    """One page of a listing; pass ``next_cursor`` back to get the next one."""

    items: list[T]
    next_cursor: str | None = None
