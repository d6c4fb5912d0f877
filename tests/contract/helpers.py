"""Records and helpers shared by the registry contract tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runtime.domain.errors import (
    QuotaExceeded,
)
from runtime.domain.models import (
    Access,
    AccessKey,
    ConsumerInstance,
    Grant,
    GrantKind,
    IdempotencyRecord,
    Identity,
    KeyKind,
    Namespace,
    Topic,
    Trigger,
)
from runtime.domain.ports import Registry

ALICE = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
BOB = "11111111-2222-3333-4444-555555555555"
CAROL = "99999999-8888-7777-6666-abcdefabcdef"
BIG = 10_000  # a limit that is never reached


def default_ns(sub: str) -> str:
    return f"ns-{sub.replace('-', '')[-12:]}"


def register(registry: Registry, sub: str, username: str | None = None) -> Identity:
    identity = Identity(sub=sub, username=username, default_namespace=default_ns(sub))
    return registry.ensure_identity(
        identity, Namespace(name=default_ns(sub), owner=sub, is_default=True)
    )


def make_topic(namespace: str, name: str, owner: str, partitions: int = 1, **extra: Any) -> Topic:
    return Topic(
        namespace=namespace,
        name=name,
        owner=owner,
        partitions=partitions,
        replication_factor=3,
        **extra,
    )


def add_topic(
    registry: Registry, namespace: str, name: str, owner: str, partitions: int = 1
) -> Topic:
    topic = make_topic(namespace, name, owner, partitions)
    registry.create_topic(topic, topic_limit=BIG, partition_limit=BIG)
    return topic


def topic_grant(namespace: str, topic: str, grantee: str, granted_by: str, access=Access.READ):
    return Grant(
        namespace=namespace,
        kind=GrantKind.TOPIC,
        target=topic,
        grantee=grantee,
        access=access,
        granted_by=granted_by,
    )


def prefix_grant(namespace: str, prefix: str, grantee: str, granted_by: str):
    return Grant(
        namespace=namespace,
        kind=GrantKind.PREFIX,
        target=prefix,
        grantee=grantee,
        access=Access.READWRITE,
        granted_by=granted_by,
    )


def make_key(owner: str, key_id: str, name: str, **extra: Any) -> AccessKey:
    return AccessKey(key_id=key_id, owner=owner, name=name, kind=KeyKind.LOCAL, **extra)


def make_trigger(trigger_id: str, owner: str, namespace: str, topic: str) -> Trigger:
    return Trigger(
        trigger_id=trigger_id,
        owner=owner,
        namespace=namespace,
        topic=topic,
        kind="webhook",
        spec={"url": "https://example.org/hook", "batch_size": 10, "ratio": 0.25, "tags": ["a"]},
    )


def all_topics(registry: Registry, namespace: str, prefix: str = "", page: int = 7) -> list[Topic]:
    topics: list[Topic] = []
    cursor = None
    while True:
        result = registry.list_topics(namespace, prefix=prefix, cursor=cursor, limit=page)
        topics += result.items
        cursor = result.next_cursor
        if cursor is None:
            return topics


def run_concurrently(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` for i < count on as many threads, released together."""
    barrier = threading.Barrier(count)

    def start(i: int) -> Any:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(start, range(count)))


def assert_quota(error: pytest.ExceptionInfo[QuotaExceeded], quota: str, limit: int) -> None:
    assert quota in error.value.message
    assert str(limit) in error.value.message
    assert error.value.details["quota"] == quota
    assert error.value.details["limit"] == limit
    assert error.value.status == 429


def idempotency_record(key: str, expires_in: float, body: str = '{"ok":true}'):
    now = datetime.now(UTC)
    return IdempotencyRecord(
        scope=ALICE,
        key=key,
        request_hash="sha256:abc",
        status_code=201,
        body=body,
        created_at=now,
        expires_at=now + timedelta(seconds=expires_in),
    )


def consumer(instance_id: str = "c1", **extra: Any) -> ConsumerInstance:
    return ConsumerInstance(
        group="grp", instance_id=instance_id, owner=ALICE, namespace="ns-a", **extra
    )
