"""Domain records to wire models."""

from __future__ import annotations

from runtime.api.schemas import GrantOut, KeyOut, NamespaceOut, TopicDetail, TopicOut
from runtime.domain.models import Access, AccessKey, Grant, Namespace, Topic


def topic_out(topic: Topic) -> TopicOut:
    return TopicOut(kafka_name=topic.kafka_name, **topic.model_dump(exclude={"version"}))


def topic_detail(topic: Topic, grants: list[Grant], access: Access) -> TopicDetail:
    return TopicDetail(
        kafka_name=topic.kafka_name,
        access=access,
        grants=[grant_out(g) for g in grants],
        **topic.model_dump(exclude={"version"}),
    )


def grant_out(grant: Grant) -> GrantOut:
    return GrantOut(**grant.model_dump())


def namespace_out(namespace: Namespace) -> NamespaceOut:
    return NamespaceOut(**namespace.model_dump())


def key_out(key: AccessKey) -> KeyOut:
    return KeyOut(
        **key.model_dump(include={"key_id", "name", "kind", "created_at", "last_used_at"})
    )
