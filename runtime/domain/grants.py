"""Grants: owners give other identities read/write access to a topic or a channel subtree.

On MSK a grant takes effect at the broker: the grantee's IAM policy is
rewritten after the registry changes, and the registry change is undone if
IAM refuses (e.g. the policy would exceed IAM's size limit).
"""

from __future__ import annotations

from runtime.domain.access import require_owner
from runtime.domain.deps import Deps
from runtime.domain.errors import FabricError, NotFound, Unprocessable
from runtime.domain.identities import IdentityService
from runtime.domain.models import Access, Grant, GrantKind
from runtime.domain.names import validate_identity, validate_prefix, validate_topic
from runtime.domain.ports import Principal
from runtime.domain.topics import TopicService


class GrantService:
    def __init__(self, deps: Deps, identities: IdentityService, topics: TopicService) -> None:
        self._deps = deps
        self._identities = identities
        self._topics = topics

    def list_for_topic(self, caller: Principal, namespace: str, topic: str) -> list[Grant]:
        require_owner(self._deps.registry, caller, namespace, "see its grants")
        self._topics.require_active(namespace, topic)
        return self._deps.registry.list_grants(namespace, kind=GrantKind.TOPIC, target=topic)

    def list_for_namespace(self, caller: Principal, namespace: str) -> list[Grant]:
        require_owner(self._deps.registry, caller, namespace, "see its grants")
        return self._deps.registry.list_grants(namespace)

    def put_topic_grant(
        self, caller: Principal, namespace: str, topic: str, grantee: str, access: Access
    ) -> Grant:
        grantee = validate_identity(grantee, field="identity")
        validate_topic(namespace, topic, field="topic")
        require_owner(self._deps.registry, caller, namespace, "grant access to its topics")
        self._topics.require_active(namespace, topic)
        return self._put(caller, namespace, GrantKind.TOPIC, topic, grantee, access)

    def put_prefix_grant(
        self, caller: Principal, namespace: str, prefix: str, grantee: str, access: Access
    ) -> Grant:
        grantee = validate_identity(grantee, field="identity")
        validate_prefix(namespace, prefix)
        require_owner(self._deps.registry, caller, namespace, "grant access to its topics")
        return self._put(caller, namespace, GrantKind.PREFIX, prefix, grantee, access)

    def remove(
        self, caller: Principal, namespace: str, kind: GrantKind, target: str, grantee: str
    ) -> None:
        grantee = validate_identity(grantee, field="identity")
        require_owner(self._deps.registry, caller, namespace, "revoke access to its topics")
        if not self._deps.registry.delete_grant(namespace, kind, target, grantee):
            raise NotFound(
                f"no {kind.value} grant on {namespace}/{target or '*'} for {grantee}",
                details={"grantee": grantee},
            )
        self._identities.sync(grantee)

    def remove_all_in_namespace(self, namespace: str) -> None:
        registry = self._deps.registry
        grantees = set()
        for grant in registry.list_grants(namespace):
            registry.delete_grant(namespace, grant.kind, grant.target, grant.grantee)
            grantees.add(grant.grantee)
        for grantee in sorted(grantees):
            self._identities.sync(grantee)

    def _put(
        self,
        caller: Principal,
        namespace: str,
        kind: GrantKind,
        target: str,
        grantee: str,
        access: Access,
    ) -> Grant:
        if grantee == caller.sub:
            raise Unprocessable(
                "you own this namespace: a grant to yourself changes nothing",
                details={"field": "identity"},
            )
        registry = self._deps.registry
        previous = registry.get_grant(namespace, kind, target, grantee)
        grant = registry.put_grant(
            Grant(
                namespace=namespace,
                kind=kind,
                target=target,
                grantee=grantee,
                access=access,
                granted_by=caller.sub,
                created_at=previous.created_at if previous else self._deps.clock(),
            ),
            limit=self._deps.settings.quotas.grants_per_identity,
        )
        try:
            self._identities.sync(grantee)
        except FabricError:
            if previous is None:
                registry.delete_grant(namespace, kind, target, grantee)
            else:
                registry.put_grant(previous, limit=self._deps.settings.quotas.grants_per_identity)
            raise
        return grant
