"""The small interfaces the core talks to; each has an AWS and a local adapter.

- Registry: DynamoDB (AWS) / SQLite (local)
- BrokerAdmin: MSK via IAM OAUTHBEARER / the embedded broker (same confluent-kafka adapter)
- CredentialIssuer: IAM users, policies and STS (AWS) / hashed local keys (local)
- IdentityProvider: Globus Auth introspection (AWS) / development tokens (local only)
- TriggerPlatform: Lambda + MSK event source mappings (AWS) / the local runner
- CodeUploads: presigned S3 POSTs (AWS) / a PUT to the web service into the state dir (local)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO, Protocol

from pydantic import BaseModel, ConfigDict

from runtime.domain.models import (
    Access,
    AccessKey,
    ConsumerInstance,
    Grant,
    GrantKind,
    IdempotencyRecord,
    Identity,
    Namespace,
    Page,
    Topic,
    Trigger,
    Usage,
)


class Principal(BaseModel):
    """Who is calling, as established by the identity provider."""

    model_config = ConfigDict(frozen=True)

    sub: str
    username: str | None = None
    scopes: tuple[str, ...] = ()
    expires_at: datetime | None = None


class IdentityProvider(Protocol):
    def authenticate(self, token: str) -> Principal:
        """Return the token's principal or raise ``Unauthenticated`` (never more)."""
        ...


class Registry(Protocol):
    """The fabric's source of truth. Every write is conditional: no lost updates.

    Quota-bound creates check and bump the owner's ``Usage`` in the same atomic
    write as the record (DynamoDB transaction / SQLite transaction), so
    concurrent creates cannot overshoot a quota.
    """

    # identities
    def ensure_identity(self, identity: Identity, default_namespace: Namespace) -> Identity:
        """Store the identity and its default namespace if absent; return the stored one."""
        ...

    def get_identity(self, sub: str) -> Identity | None: ...

    def get_usage(self, sub: str) -> Usage: ...

    # namespaces
    def create_namespace(self, namespace: Namespace, *, limit: int) -> None:
        """Raise ``AlreadyExists`` if taken (by anyone), ``QuotaExceeded`` past ``limit``."""
        ...

    def get_namespace(self, name: str) -> Namespace | None: ...

    def list_namespaces(self, owner: str) -> list[Namespace]: ...

    def delete_namespace(self, name: str) -> None:
        """Delete an empty namespace; ``Conflict`` if any topic (any state) remains."""
        ...

    # topics
    def create_topic(self, topic: Topic, *, topic_limit: int, partition_limit: int) -> None:
        """Store a new topic (normally in state CREATING) and bump the owner's usage.

        ``NotFound`` if the namespace is missing; ``AlreadyExists`` if the name, or a
        name that differs only by '.' vs '_' (Kafka collision), exists;
        ``QuotaExceeded`` past either limit.
        """
        ...

    def get_topic(self, namespace: str, name: str) -> Topic | None: ...

    def list_topics(
        self, namespace: str, *, prefix: str = "", cursor: str | None = None, limit: int = 100
    ) -> Page[Topic]:
        """Topics of a namespace sorted by name, optionally under a name prefix."""
        ...

    def iter_all_topics(self) -> Iterator[Topic]: ...

    def update_topic(self, topic: Topic, *, expected_version: int, partition_limit: int) -> Topic:
        """Replace a topic if its stored version is ``expected_version``; bump version.

        A change of partition count adjusts the owner's usage (``QuotaExceeded``
        past ``partition_limit``). ``Conflict`` on a version mismatch, ``NotFound``
        if gone.
        """
        ...

    def delete_topic(self, namespace: str, name: str) -> list[Grant]:
        """Delete a topic, its topic grants and its usage; return the grants removed."""
        ...

    # grants (one per namespace/kind/target/grantee)
    def put_grant(self, grant: Grant, *, limit: int) -> Grant:
        """Create or replace a grant; ``QuotaExceeded`` if the granter has ``limit``."""
        ...

    def get_grant(
        self, namespace: str, kind: GrantKind, target: str, grantee: str
    ) -> Grant | None: ...

    def delete_grant(self, namespace: str, kind: GrantKind, target: str, grantee: str) -> bool: ...

    def list_grants(
        self, namespace: str, *, kind: GrantKind | None = None, target: str | None = None
    ) -> list[Grant]: ...

    def list_grants_for_grantee(self, grantee: str) -> list[Grant]: ...

    # broker credentials (metadata only, never a secret)
    def create_key(self, key: AccessKey, *, limit: int) -> None:
        """``QuotaExceeded`` past ``limit``; ``AlreadyExists`` if the owner has that name."""
        ...

    def get_key(self, key_id: str) -> AccessKey | None: ...

    def list_keys(self, owner: str) -> list[AccessKey]: ...

    def delete_key(self, owner: str, key_id: str) -> bool: ...

    def touch_key(self, key_id: str, when: datetime) -> None: ...

    # triggers
    def create_trigger(self, trigger: Trigger, *, limit: int) -> None: ...

    def get_trigger(self, trigger_id: str) -> Trigger | None: ...

    def list_triggers(
        self,
        owner: str,
        *,
        namespace: str | None = None,
        topic: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[Trigger]: ...

    def list_triggers_on_topic(self, namespace: str, topic: str) -> list[Trigger]:
        """Every trigger bound to this topic, whoever owns it, sorted by trigger id.

        Answered from an index on (namespace, topic), never a pass over all triggers:
        deleting a topic removes its triggers with this.
        """
        ...

    def iter_all_triggers(self) -> Iterator[Trigger]: ...

    def update_trigger(self, trigger: Trigger, *, expected_version: int) -> Trigger: ...

    def delete_trigger(self, trigger_id: str) -> bool: ...

    # idempotency
    def get_idempotency(self, scope: str, key: str) -> IdempotencyRecord | None: ...

    def put_idempotency(self, record: IdempotencyRecord) -> bool:
        """Store if absent (or expired); False if a live record already holds the key."""
        ...

    # REST consumer instances
    def put_consumer_instance(self, instance: ConsumerInstance) -> None:
        """Create; ``AlreadyExists`` if the group already has that instance id."""
        ...

    def get_consumer_instance(self, group: str, instance_id: str) -> ConsumerInstance | None: ...

    def update_consumer_instance(
        self, instance: ConsumerInstance, *, expected_version: int
    ) -> ConsumerInstance: ...

    def delete_consumer_instance(self, group: str, instance_id: str) -> bool: ...


class TopicDescription(BaseModel):
    name: str
    partitions: int
    configs: dict[str, str] = {}


class BrokerAdmin(Protocol):
    supports_partition_increase: bool

    def create_topic(
        self, name: str, partitions: int, replication_factor: int, configs: dict[str, str]
    ) -> None: ...

    def delete_topic(self, name: str) -> bool: ...

    def describe_topic(self, name: str) -> TopicDescription | None: ...

    def list_topics(self) -> set[str]: ...

    def alter_topic_configs(self, name: str, configs: dict[str, str]) -> dict[str, str]: ...

    def add_partitions(self, name: str, total: int) -> None: ...

    def end_offsets(self, name: str) -> dict[int, int]: ...

    def begin_offsets(self, name: str) -> dict[int, int]: ...

    def delete_consumer_group(self, group_id: str) -> None: ...

    def close(self) -> None: ...


class TopicAccess(BaseModel):
    """One topic (Kafka name) or Kafka-name prefix the identity may use, and how."""

    model_config = ConfigDict(frozen=True)

    kafka_name: str
    is_prefix: bool
    access: Access


class Permissions(BaseModel):
    """What an identity may do at the broker: rendered into IAM policy on AWS."""

    model_config = ConfigDict(frozen=True)

    owned_namespaces: tuple[str, ...] = ()
    grants: tuple[TopicAccess, ...] = ()


class IssuedKey(BaseModel):
    """A new key: ``secret`` is shown to the caller once and never stored."""

    key: AccessKey
    secret: str


class SessionCredentials(BaseModel):
    access_key_id: str
    secret_access_key: str
    session_token: str
    expires_at: datetime


class CredentialIssuer(Protocol):
    def create_key(self, identity: Identity, name: str, permissions: Permissions) -> IssuedKey:
        """Issue a key (ensuring the identity's principal exists with ``permissions``).

        ``LimitReached`` (409) when the platform cannot hold another key
        (IAM: two access keys per user), explaining the limit.
        """
        ...

    def delete_key(self, identity: Identity, key: AccessKey) -> None: ...

    def sync_permissions(self, identity: Identity, permissions: Permissions) -> None:
        """Make the broker-side rights match ``permissions`` (IAM policy on AWS).

        ``LimitReached`` when the policy would exceed IAM's size limit.
        """
        ...

    def session_credentials(
        self, identity: Identity, permissions: Permissions, duration_seconds: int
    ) -> SessionCredentials: ...

    def delete_principal(self, identity: Identity) -> None: ...


class OutboundRecord(BaseModel):
    """A record to write, already decoded from its wire form."""

    key: bytes | None = None
    value: bytes | None = None
    headers: list[tuple[str, bytes | None]] = []
    timestamp_ms: int | None = None
    partition: int | None = None


class WriteOutcome(BaseModel):
    """Where a record landed, or why it did not (``error`` set, nothing written)."""

    partition: int = -1
    offset: int = -1
    timestamp_ms: int | None = None
    error: str | None = None
    # True when the failure happened before anything could be written (safe to retry).
    retriable: bool = False


class RecordWriter(Protocol):
    def write(self, topic: str, records: list[OutboundRecord]) -> list[WriteOutcome]:
        """Write records with acks=all; one outcome per record, in order.

        Raise ``Unavailable`` only if nothing at all was written.
        """
        ...


class TriggerLogLine(BaseModel):
    timestamp: datetime
    message: str


class TriggerDeadLetter(BaseModel):
    """An event a trigger could not deliver, and why (see runtime.triggers.batch.DeadLetter)."""

    failed_at: datetime
    reason: str
    topic: str
    partition: int
    offset: int
    key: str | None = None  # base64, dropped when too large
    value: str | None = None  # base64, dropped when too large


class TriggerStatus(BaseModel):
    state: str  # a TriggerState value
    last_error: str | None = None


class UploadedCode(BaseModel):
    """A function's zip the core has checked, by where it was uploaded (not its bytes).

    ``key`` is ``uploads/<owner>/<upload id>.zip``: an object key in ``trigger_code_bucket``
    on AWS, a path under the local uploads folder locally. ``sha256`` is the digest the core
    validated; the platform refuses code that no longer matches it.
    """

    model_config = ConfigDict(frozen=True)

    key: str
    sha256: str
    size: int


# A function trigger's code as the platform receives it: the zip's bytes (inline base64
# decoded by the core) or a reference to a checked upload.
CodeSource = bytes | UploadedCode


class CodeUploadTicket(BaseModel):
    """How to send a zip: an HTML-form POST (``fields`` + the file) or a raw PUT."""

    upload_id: str
    method: str
    url: str
    fields: dict[str, str]
    headers: dict[str, str]
    expires_at: datetime
    max_bytes: int


class CodeUploads(Protocol):
    """Where function code too large for inline base64 is uploaded, one folder per owner."""

    max_bytes: int

    def start(self, owner: str, upload_id: str) -> CodeUploadTicket:
        """A ticket to upload ``uploads/<owner>/<upload_id>.zip``."""
        ...

    def key(self, owner: str, upload_id: str) -> str: ...

    def open(self, owner: str, upload_id: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """The upload as a seekable file: NotFound if absent (or someone else's),
        PayloadTooLarge past ``max_bytes``."""
        ...


class TriggerPlatform(Protocol):
    """Where triggers run: Lambda + MSK event source mappings on AWS, the local runner locally.

    The core has already validated the spec and checked ownership and quotas.
    """

    # How many ``status`` calls the core may make at once when it lists triggers: 1 where
    # a status is a local read, more where each one is a network round trip.
    status_concurrency: int

    def deploy(
        self, trigger: Trigger, *, secret: str | None, code: CodeSource | None
    ) -> TriggerStatus:
        """Create everything the trigger needs; wait for real readiness with backoff.

        On failure, roll back what was created or leave a visible FAILING status.
        """
        ...

    def update(self, trigger: Trigger, *, code: CodeSource | None) -> TriggerStatus:
        """Apply a changed spec (filters, batching, enabled, code)."""
        ...

    def remove(self, trigger: Trigger) -> None:
        """Delete every piece (function, role, mapping, secret, log group); missing is fine."""
        ...

    def status(self, trigger: Trigger) -> TriggerStatus: ...

    def logs(
        self, trigger: Trigger, *, since: datetime | None, cursor: str | None, limit: int
    ) -> Page[TriggerLogLine]: ...

    def dead_letters(
        self, trigger: Trigger, *, cursor: str | None, limit: int
    ) -> Page[TriggerDeadLetter]: ...
