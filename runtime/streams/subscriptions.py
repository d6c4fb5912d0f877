"""What a stream may read: checked on connect and again while it is open.

A single-topic stream needs read access to the topic (404 / 403 as for every route).
A channel stream reads every topic under the prefix the caller may read; the caller must
be able to see the namespace (owner, or holding some grant in it).
"""

from __future__ import annotations

from runtime.domain.access import grants_of, namespace_or_404, require_topic_access, topic_access
from runtime.domain.errors import FabricError, NotFound
from runtime.domain.models import Access, Topic, TopicState, prefix_covers
from runtime.domain.ports import Principal, Registry

_PAGE = 500


def require_readable_topic(
    registry: Registry, caller: Principal, namespace: str, name: str
) -> Topic:
    require_topic_access(registry, caller, namespace, name, Access.READ)
    topic = registry.get_topic(namespace, name)
    if topic is None or topic.state is TopicState.DELETING:
        raise NotFound(
            f"topic {name!r} not found in namespace {namespace!r}",
            details={"namespace": namespace, "topic": name},
        )
    return topic


def single_topic_end_reason(
    registry: Registry, caller: Principal, namespace: str, topic: Topic
) -> str | None:
    """Why an open single-topic stream must end now, or None."""
    try:
        current = require_readable_topic(registry, caller, namespace, topic.name)
    except FabricError:
        # Revoked grant and deleted topic look alike to a grantee (404): tell them apart
        # only for the caller's benefit when the topic itself is gone.
        if registry.get_topic(namespace, topic.name) is None:
            return "topic_deleted"
        return "access_revoked"
    del current
    return None


def require_namespace_visible(registry: Registry, caller: Principal, namespace: str) -> None:
    ns = namespace_or_404(registry, namespace)
    if ns.owner != caller.sub and not grants_of(registry, namespace, caller.sub):
        raise NotFound(f"namespace {namespace!r} not found", details={"namespace": namespace})


def readable_topics(
    registry: Registry, caller: Principal, namespace: str, prefix: str
) -> dict[str, Topic]:
    """Active topics under ``prefix`` the caller may read, by name."""
    ns = namespace_or_404(registry, namespace)
    found: dict[str, Topic] = {}
    cursor: str | None = None
    while True:
        page = registry.list_topics(namespace, prefix=prefix, cursor=cursor, limit=_PAGE)
        for topic in page.items:
            if topic.state is not TopicState.ACTIVE or not prefix_covers(prefix, topic.name):
                continue
            access = topic_access(registry, caller, ns, topic.name)
            if access is not None and access.allows(Access.READ):
                found[topic.name] = topic
        cursor = page.next_cursor
        if cursor is None:
            return found
