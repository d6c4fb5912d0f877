"""Find and repair drift between the registry (the truth), the broker and IAM.

Drift comes from crashes between two steps of a lifecycle (a topic left CREATING
or DELETING), from a broker that lost its data (the embedded broker keeps topics
in memory), or from changes made behind the fabric's back (a topic created or
deleted directly on the cluster).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal

from pydantic import BaseModel, Field

from runtime.domain.deps import Deps
from runtime.domain.errors import FabricError, Forbidden
from runtime.domain.identities import IdentityService
from runtime.domain.models import Topic, TopicState
from runtime.domain.ports import Principal
from runtime.domain.topics import IN_FLIGHT_GRACE

DriftKind = Literal[
    "missing_on_broker",
    "stuck_creating",
    "stuck_deleting",
    "orphan_on_broker",
    "permissions",
]


class Drift(BaseModel):
    kind: DriftKind
    target: str
    detail: str
    repaired: bool = False
    error: str | None = None


class ReconcileReport(BaseModel):
    repair: bool
    checked_topics: int
    checked_broker_topics: int
    drift: list[Drift] = Field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.drift


class Reconciler:
    def __init__(self, deps: Deps, identities: IdentityService) -> None:
        self._deps = deps
        self._identities = identities

    def require_admin(self, caller: Principal) -> None:
        if caller.sub not in self._deps.settings.admins:
            raise Forbidden("reconcile is for fabric administrators (settings.admins)")

    def run(self, *, repair: bool) -> ReconcileReport:
        deps = self._deps
        now = deps.clock()
        topics = list(deps.registry.iter_all_topics())
        on_broker = deps.broker.list_topics()
        known = {t.kafka_name for t in topics}
        namespaces = {t.namespace for t in topics}
        report = ReconcileReport(
            repair=repair, checked_topics=len(topics), checked_broker_topics=len(on_broker)
        )

        for topic in topics:
            settled = now - topic.updated_at > IN_FLIGHT_GRACE
            if topic.state is TopicState.ACTIVE and topic.kafka_name not in on_broker:
                self._note(
                    report,
                    "missing_on_broker",
                    topic.kafka_name,
                    "registered and active, absent from the broker",
                    partial(self._create, topic),
                    repair,
                )
            elif topic.state is TopicState.CREATING and settled:
                self._note(
                    report,
                    "stuck_creating",
                    topic.kafka_name,
                    f"creating since {topic.updated_at.isoformat()}",
                    partial(self._finish_create, topic, on_broker),
                    repair,
                )
            elif topic.state is TopicState.DELETING and settled:
                self._note(
                    report,
                    "stuck_deleting",
                    topic.kafka_name,
                    f"deleting since {topic.updated_at.isoformat()}",
                    partial(self._finish_delete, topic),
                    repair,
                )

        for name in sorted(on_broker - known):
            namespace = name.partition(".")[0]
            if namespace in namespaces or deps.registry.get_namespace(namespace) is not None:
                self._note(
                    report,
                    "orphan_on_broker",
                    name,
                    "on the broker under a registered namespace, not in the registry",
                    partial(self._deps.broker.delete_topic, name),
                    repair,
                )

        # Broker-side rights: make every identity the registry knows of match it again.
        subjects = {t.owner for t in topics}
        for namespace in namespaces:
            subjects.update(g.grantee for g in deps.registry.list_grants(namespace))
        if repair:
            for sub in sorted(subjects):
                drift = Drift(kind="permissions", target=sub, detail="re-applied broker rights")
                try:
                    self._identities.sync(sub)
                    drift.repaired = True
                except FabricError as exc:
                    drift.error = exc.message
                    report.drift.append(drift)
        return report

    def recreate_missing_topics(self) -> int:
        """Create every active registered topic the broker lacks (local broker restarts)."""
        report = self.run(repair=True)
        return sum(1 for d in report.drift if d.kind == "missing_on_broker" and d.repaired)

    @staticmethod
    def _note(
        report: ReconcileReport,
        kind: DriftKind,
        target: str,
        detail: str,
        fix: Callable[[], object],
        repair: bool,
    ) -> None:
        drift = Drift(kind=kind, target=target, detail=detail)
        if repair:
            try:
                fix()
                drift.repaired = True
            except FabricError as exc:
                drift.error = exc.message
        report.drift.append(drift)

    def _create(self, topic: Topic) -> None:
        self._deps.broker.create_topic(
            topic.kafka_name, topic.partitions, topic.replication_factor, dict(topic.configs)
        )

    def _finish_create(self, topic: Topic, on_broker: set[str]) -> None:
        if topic.kafka_name not in on_broker:
            self._create(topic)
        self._deps.registry.update_topic(
            topic.model_copy(update={"state": TopicState.ACTIVE, "updated_at": self._deps.clock()}),
            expected_version=topic.version,
            partition_limit=self._deps.settings.quotas.partitions_per_identity,
        )

    def _finish_delete(self, topic: Topic) -> None:
        self._deps.broker.delete_topic(topic.kafka_name)
        removed = self._deps.registry.delete_topic(topic.namespace, topic.name)
        for grantee in sorted({g.grantee for g in removed}):
            self._identities.sync(grantee)
