"""Who may do what: decided from the registry before any side effect."""

from __future__ import annotations

from runtime.domain.errors import Forbidden, NotFound
from runtime.domain.models import Access, Grant, GrantKind, Namespace, kafka_topic_name
from runtime.domain.ports import Permissions, Principal, Registry, TopicAccess


def namespace_or_404(registry: Registry, name: str) -> Namespace:
    namespace = registry.get_namespace(name)
    if namespace is None:
        raise NotFound(f"namespace {name!r} not found", details={"namespace": name})
    return namespace


def grants_of(registry: Registry, namespace: str, grantee: str) -> list[Grant]:
    return [g for g in registry.list_grants(namespace) if g.grantee == grantee]


def require_owner(registry: Registry, caller: Principal, name: str, action: str) -> Namespace:
    """The namespace, if the caller owns it.

    Someone holding a grant in the namespace learns it exists (403); anyone else
    gets the same 404 as for a namespace that does not exist.
    """
    namespace = namespace_or_404(registry, name)
    if namespace.owner == caller.sub:
        return namespace
    if grants_of(registry, name, caller.sub):
        raise Forbidden(f"only the owner of namespace {name!r} may {action}")
    raise NotFound(f"namespace {name!r} not found", details={"namespace": name})


def topic_access(
    registry: Registry, caller: Principal, namespace: Namespace, topic: str
) -> Access | None:
    """The caller's access to a topic of a namespace (owner: read and write)."""
    if namespace.owner == caller.sub:
        return Access.READWRITE
    access: Access | None = None
    for grant in grants_of(registry, namespace.name, caller.sub):
        if grant.covers(topic):
            access = grant.access if access is None else access.union(grant.access)
    return access


def require_topic_access(
    registry: Registry, caller: Principal, namespace_name: str, topic: str, needed: Access
) -> Namespace:
    """The namespace, if the caller may use ``topic`` with ``needed`` access.

    Holding some access but not the needed one answers 403; holding none
    answers 404 so a stranger cannot probe which topics exist.
    """
    namespace = namespace_or_404(registry, namespace_name)
    access = topic_access(registry, caller, namespace, topic)
    if access is None:
        raise NotFound(
            f"topic {topic!r} not found in namespace {namespace_name!r}",
            details={"namespace": namespace_name, "topic": topic},
        )
    if not access.allows(needed):
        raise Forbidden(
            f"your grant on {namespace_name}/{topic} is {access.value}; this needs {needed.value}"
        )
    return namespace


def permissions_for(registry: Registry, sub: str) -> Permissions:
    """What ``sub`` may do at the broker: its namespaces and the grants it holds."""
    owned = tuple(sorted(ns.name for ns in registry.list_namespaces(sub)))
    merged: dict[tuple[str, bool], Access] = {}
    for grant in registry.list_grants_for_grantee(sub):
        if grant.namespace in owned:
            continue
        is_prefix = grant.kind is GrantKind.PREFIX
        name = (
            kafka_topic_name(grant.namespace, grant.target)
            if grant.target
            else grant.namespace + "."
        )
        if is_prefix and grant.target and not grant.target.endswith("."):
            # "a.b" covers "a.b" itself and "a.b.*": the broker sees two entries.
            exact = (name, False)
            merged[exact] = merged[exact].union(grant.access) if exact in merged else grant.access
            name = name + "."
        slot = (name, is_prefix)
        merged[slot] = merged[slot].union(grant.access) if slot in merged else grant.access
    grants = tuple(
        TopicAccess(kafka_name=name, is_prefix=is_prefix, access=access)
        for (name, is_prefix), access in sorted(merged.items())
    )
    return Permissions(owned_namespaces=owned, grants=grants)
