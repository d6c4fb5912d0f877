"""Wire format of the v1 API: request bodies and replies (OpenAPI comes from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from runtime.config import Quotas
from runtime.domain.models import Access, GrantKind, KeyKind, TopicState, Usage

T = TypeVar("T")


class Body(BaseModel):
    """A request body: unknown fields are refused so typos are not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["topic 'ns-1.t' not found"])
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorReply(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class Me(BaseModel):
    sub: str
    username: str | None
    default_namespace: str
    namespaces: list[str]
    quotas: Quotas
    usage: Usage


class FabricInfo(BaseModel):
    """What a Kafka client needs to connect."""

    bootstrap_servers: str
    security_protocol: Literal["PLAINTEXT", "SASL_SSL"]
    sasl_mechanism: Literal["OAUTHBEARER"] | None
    auth: Literal["aws-msk-iam", "none"]
    region: str
    cluster_mode: Literal["provisioned", "serverless", "local"]
    local: bool
    # Settings the embedded broker needs (group join delay, fetch wait); empty on MSK.
    client_overrides: dict[str, str | int] = Field(default_factory=dict)


class KeyCreate(Body):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class KeyOut(BaseModel):
    key_id: str
    name: str
    kind: KeyKind
    created_at: datetime
    last_used_at: datetime | None = None


class KeyCreated(KeyOut):
    secret: str | None = Field(
        description="Shown once; the fabric does not keep it. Null only in an idempotent "
        "replay (header Octopus-Withheld): delete that key and create another."
    )


class CredentialsCreate(Body):
    duration_seconds: int | None = Field(default=None, ge=900, le=43_200)


class CredentialsOut(BaseModel):
    access_key_id: str
    secret_access_key: str
    session_token: str
    expires_at: datetime
    region: str


class NamespaceCreate(Body):
    name: str


class NamespaceOut(BaseModel):
    name: str
    owner: str
    is_default: bool
    created_at: datetime


class GrantOut(BaseModel):
    namespace: str
    kind: GrantKind
    target: str
    grantee: str
    access: Access
    granted_by: str
    created_at: datetime


class TopicCreate(Body):
    name: str
    partitions: int | None = Field(default=None, ge=1)
    configs: dict[str, str] = Field(default_factory=dict)


class TopicOut(BaseModel):
    namespace: str
    name: str
    kafka_name: str
    owner: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]
    state: TopicState
    created_at: datetime
    updated_at: datetime


class TopicDetail(TopicOut):
    access: Access = Field(description="What the caller may do: read, write or readwrite.")
    grants: list[GrantOut] = Field(default_factory=list, description="Shown to the owner only.")


class TopicConfigure(Body):
    # A null value resets the key to the broker default.
    configs: dict[str, str | None]


class TopicConfigured(BaseModel):
    before: dict[str, str]
    after: dict[str, str]
    topic: TopicOut


class PartitionsIncrease(Body):
    count: int = Field(ge=1)


class GrantPut(Body):
    access: Access


class PrefixGrantPut(Body):
    prefix: str = Field(description="Topic-name prefix within the namespace; '' is all topics.")
    access: Access


class ListOf(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


# Records, in the body form of Confluent's REST API v3.
class RecordData(Body):
    type: Literal["BINARY", "JSON", "STRING"]
    data: Any = None


class RecordHeader(Body):
    name: str = Field(min_length=1)
    value: str | None = Field(default=None, description="base64, or null")


class RecordIn(Body):
    key: RecordData | None = None
    value: RecordData | None = None
    headers: list[RecordHeader] = Field(default_factory=list)
    timestamp: datetime | None = None
    partition_id: int | None = Field(default=None, ge=0)


class BatchEntry(RecordIn):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,80}$")


class RecordBatchIn(Body):
    entries: list[BatchEntry] = Field(min_length=1, max_length=500)


class RecordOut(BaseModel):
    topic_name: str
    partition_id: int
    offset: int
    timestamp: datetime | None


class BatchSuccess(RecordOut):
    id: str


class BatchFailure(BaseModel):
    id: str
    error_code: int
    message: str


class BatchOut(BaseModel):
    successes: list[BatchSuccess]
    failures: list[BatchFailure]
