"""The domain core: one object the Lambda handlers and the local server both call."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.domain.deps import Deps
from runtime.domain.grants import GrantService
from runtime.domain.identities import IdentityService
from runtime.domain.keys import KeyService
from runtime.domain.namespaces import NamespaceService
from runtime.domain.reconcile import Reconciler
from runtime.domain.records import RecordService
from runtime.domain.topics import TopicService


@dataclass(frozen=True)
class Fabric:
    deps: Deps
    identities: IdentityService
    keys: KeyService
    namespaces: NamespaceService
    topics: TopicService
    grants: GrantService
    records: RecordService
    reconciler: Reconciler

    @classmethod
    def build(cls, deps: Deps) -> Fabric:
        identities = IdentityService(deps)
        topics = TopicService(deps, identities)
        grants = GrantService(deps, identities, topics)
        return cls(
            deps=deps,
            identities=identities,
            keys=KeyService(deps, identities),
            namespaces=NamespaceService(deps, identities, topics, grants),
            topics=topics,
            grants=grants,
            records=RecordService(deps, topics),
            reconciler=Reconciler(deps, identities),
        )
