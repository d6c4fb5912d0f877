"""Namespaces: first come, first served; the default one belongs to its identity."""

from __future__ import annotations

from runtime.domain.access import require_owner
from runtime.domain.deps import Deps
from runtime.domain.errors import Conflict, FabricError
from runtime.domain.grants import GrantService
from runtime.domain.identities import IdentityService
from runtime.domain.models import Namespace
from runtime.domain.names import validate_namespace
from runtime.domain.ports import Principal
from runtime.domain.topics import TopicService


class NamespaceService:
    def __init__(
        self, deps: Deps, identities: IdentityService, topics: TopicService, grants: GrantService
    ) -> None:
        self._deps = deps
        self._identities = identities
        self._topics = topics
        self._grants = grants

    def create(self, caller: Principal, name: str) -> Namespace:
        validate_namespace(name, creating=True)
        self._identities.ensure(caller)
        namespace = Namespace(name=name, owner=caller.sub, created_at=self._deps.clock())
        self._deps.registry.create_namespace(
            namespace, limit=self._deps.settings.quotas.namespaces_per_identity
        )
        try:
            self._identities.sync(caller.sub)
        except FabricError:
            self._deps.registry.delete_namespace(name)
            raise
        return namespace

    def list(self, caller: Principal) -> list[Namespace]:
        self._identities.ensure(caller)
        return sorted(self._deps.registry.list_namespaces(caller.sub), key=lambda n: n.name)

    def delete(self, caller: Principal, name: str, *, force: bool) -> None:
        validate_namespace(name)
        namespace = require_owner(self._deps.registry, caller, name, "delete it")
        if namespace.is_default:
            raise Conflict(
                f"{name!r} is your default namespace and cannot be deleted; "
                "delete its topics instead"
            )
        topics = self._deps.registry.list_topics(name, limit=1)
        if topics.items and not force:
            raise Conflict(
                f"namespace {name!r} still has topics; delete them first or pass ?force=true",
                details={"namespace": name},
            )
        self._topics.delete_all(name)
        self._grants.remove_all_in_namespace(name)
        self._deps.registry.delete_namespace(name)
        self._identities.sync(caller.sub)
