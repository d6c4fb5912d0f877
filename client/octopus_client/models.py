"""The client's own models of the fabric's v1 replies.

They mirror the wire format (``docs/api.md``) but ignore unknown fields, so a newer
fabric that adds fields does not break an older client. The client never imports
the server's models: it is a separate distribution.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

T = TypeVar("T")

Access = Literal["read", "write", "readwrite"]


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class OpenModel(BaseModel):
    """For replies whose exact shape is still settling: unknown fields are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Page(Model, Generic[T]):
    """One page of a listing; pass ``next_cursor`` back for the next page."""

    items: list[T]
    next_cursor: str | None = None


class Health(Model):
    status: str
    version: str = ""


class Me(OpenModel):
    sub: str
    username: str | None = None
    default_namespace: str
    namespaces: list[str] = Field(default_factory=list)
    quotas: dict[str, Any] = Field(default_factory=dict)
    usage: dict[str, Any] = Field(default_factory=dict)


class FabricInfo(Model):
    """What a Kafka client needs to connect (``GET /v1/fabric``)."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    auth: str = "none"
    region: str = "local"
    cluster_mode: str = "local"
    local: bool = False
    client_overrides: dict[str, str | int] = Field(default_factory=dict)

    @property
    def uses_msk_iam(self) -> bool:
        return self.auth == "aws-msk-iam"


class Key(Model):
    key_id: str
    name: str
    kind: str
    created_at: datetime
    last_used_at: datetime | None = None


class KeyCreated(Key):
    """A new key; ``secret`` is shown this once and never again."""

    secret: str


class Credentials(Model):
    """Short-lived AWS credentials for Kafka clients (``POST /v1/credentials``)."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expires_at: datetime
    region: str


class Namespace(Model):
    name: str
    owner: str
    is_default: bool = False
    created_at: datetime


class Grant(Model):
    namespace: str
    kind: Literal["topic", "prefix"]
    target: str
    grantee: str
    access: Access
    granted_by: str
    created_at: datetime


class Topic(Model):
    namespace: str
    name: str
    kafka_name: str
    owner: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = Field(default_factory=dict)
    state: str
    created_at: datetime
    updated_at: datetime


class TopicDetail(Topic):
    # What the caller may do: "read", "write" or "readwrite".
    access: str = "readwrite"
    grants: list[Grant] = Field(default_factory=list)


class TopicConfigured(Model):
    before: dict[str, str]
    after: dict[str, str]
    topic: Topic


class RecordMetadata(Model):
    """Where a record produced over HTTP landed (after acks=all)."""

    topic_name: str
    partition_id: int
    offset: int
    timestamp: datetime | None = None


class BatchSuccess(RecordMetadata):
    id: str


class BatchFailure(Model):
    id: str
    error_code: int
    message: str


class BatchResult(Model):
    successes: list[BatchSuccess] = Field(default_factory=list)
    failures: list[BatchFailure] = Field(default_factory=list)


class Trigger(OpenModel):
    """A managed trigger with its state; the full settings are kept as extra fields."""

    trigger_id: str = Field(validation_alias=AliasChoices("trigger_id", "id"))
    name: str | None = None
    namespace: str
    topic: str
    kind: str
    enabled: bool = True
    state: str = "creating"
    last_error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    webhook_secret: str | None = None


class TriggerLogEntry(OpenModel):
    timestamp: datetime
    message: str


class DeadLetter(OpenModel):
    failed_at: datetime
    reason: str
    topic: str
    partition: int | None = None
    offset: int | None = None
    key: Any = None
    value: Any = None


class Drift(OpenModel):
    """One difference between the registry (the truth) and the broker or IAM."""

    kind: str  # missing_on_broker, stuck_creating, stuck_deleting, orphan_on_broker, permissions
    target: str
    detail: str = ""
    repaired: bool = False
    error: str | None = None


class ReconcileReport(OpenModel):
    """The drift report of ``POST /v1/admin/reconcile`` (admins only)."""

    repair: bool = False
    checked_topics: int = 0
    checked_broker_topics: int = 0
    drift: list[Drift] = Field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.drift
