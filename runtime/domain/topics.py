"""Topic lifecycle: registry first (as a lock and the source of truth), then the broker.

A topic is written as CREATING before the broker creates it and turned ACTIVE
after; it is turned DELETING before the broker deletes it and removed after.
Conditional writes make concurrent calls on one topic take turns (the loser
gets 409), and a crash between the steps leaves a visible state that
``reconcile`` repairs: no orphan topics, no grants to deleted topics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TypeVar

from runtime.domain.access import namespace_or_404, require_owner, topic_access
from runtime.domain.deps import Deps
from runtime.domain.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    FabricError,
    NotFound,
    Unavailable,
    Unprocessable,
    Unsupported,
)
from runtime.domain.identities import IdentityService
from runtime.domain.models import Access, Grant, Page, Topic, TopicState
from runtime.domain.names import validate_prefix, validate_topic
from runtime.domain.ports import Principal

T = TypeVar("T")

# A lifecycle step younger than this may still be running (see reconcile).
IN_FLIGHT_GRACE = timedelta(seconds=60)

# Kafka deletes topics asynchronously: a create right after a delete can find
# the old topic still there. Retry for this long before giving up.
RECREATE_PATIENCE_SECONDS = 15.0


class TopicService:
    def __init__(self, deps: Deps, identities: IdentityService) -> None:
        self._deps = deps
        self._identities = identities
        # Called after a topic is gone (e.g. its triggers are removed), in order.
        self.on_deleted: list[Callable[[Topic], None]] = []

    # ---- reads -------------------------------------------------------------
    def get(
        self, caller: Principal, namespace: str, name: str
    ) -> tuple[Topic, list[Grant], Access]:
        """A topic, its grants (owner only) and the caller's access to it.

        Any grant (read or write) shows the topic, so a writer can check what it
        may do before producing; strangers get 404.
        """
        ns = namespace_or_404(self._deps.registry, namespace)
        access = topic_access(self._deps.registry, caller, ns, name)
        if access is None:
            raise NotFound(
                f"topic {name!r} not found in namespace {namespace!r}",
                details={"namespace": namespace, "topic": name},
            )
        topic = self._existing(namespace, name)
        owner = topic.owner == caller.sub
        grants = self._deps.registry.list_grants(namespace) if owner else []
        return topic, [g for g in grants if g.covers(name)], access

    def list(
        self,
        caller: Principal,
        namespace: str,
        *,
        prefix: str = "",
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[Topic]:
        """The owner sees every topic; a grantee sees the topics its grants cover."""
        registry = self._deps.registry
        validate_prefix(namespace, prefix)
        ns = registry.get_namespace(namespace)
        if ns is None or (
            ns.owner != caller.sub
            and not any(g.grantee == caller.sub for g in registry.list_grants(namespace))
        ):
            raise NotFound(f"namespace {namespace!r} not found", details={"namespace": namespace})
        page = registry.list_topics(namespace, prefix=prefix, cursor=cursor, limit=limit)
        if ns.owner == caller.sub:
            return page
        visible = [t for t in page.items if topic_access(registry, caller, ns, t.name) is not None]
        return Page[Topic](items=visible, next_cursor=page.next_cursor)

    def require_active(self, namespace: str, name: str) -> Topic:
        topic = self._existing(namespace, name)
        if topic.state is not TopicState.ACTIVE:
            raise Conflict(
                f"topic {namespace}/{name} is {topic.state.value}; try again in a moment",
                details={"state": topic.state.value},
            )
        return topic

    # ---- writes ------------------------------------------------------------
    def create(
        self,
        caller: Principal,
        namespace: str,
        name: str,
        *,
        partitions: int | None = None,
        configs: dict[str, str] | None = None,
    ) -> Topic:
        settings = self._deps.settings
        validate_topic(namespace, name)
        self._identities.ensure(caller)
        ns = require_owner(self._deps.registry, caller, namespace, "create topics in it")
        count = partitions or settings.topics.default_partitions
        self._check_partitions(count)
        clean_configs = self._check_configs(configs or {}, allow_reset=False)
        topic = Topic(
            namespace=namespace,
            name=name,
            owner=ns.owner,
            partitions=count,
            replication_factor=settings.topics.default_replication_factor,
            configs={k: v for k, v in clean_configs.items() if v is not None},
        )
        quotas = settings.quotas
        self._deps.registry.create_topic(
            topic,
            topic_limit=quotas.topics_per_identity,
            partition_limit=quotas.partitions_per_identity,
        )
        try:
            self._create_on_broker(topic)
        except FabricError:
            self._abandon_create(topic)
            raise
        return self._set_state(topic, TopicState.ACTIVE)

    def delete(self, caller: Principal, namespace: str, name: str) -> None:
        require_owner(self._deps.registry, caller, namespace, "delete its topics")
        self._delete(self._existing(namespace, name))

    def delete_all(self, namespace: str) -> int:
        """Delete every topic of a namespace (the caller's ownership already checked)."""
        deleted = 0
        while True:
            page = self._deps.registry.list_topics(namespace, limit=100)
            if not page.items:
                return deleted
            for topic in page.items:
                self._delete(topic)
                deleted += 1

    def recreate(self, caller: Principal, namespace: str, name: str) -> Topic:
        """Empty a topic: delete and create it again with the same settings and grants."""
        require_owner(self._deps.registry, caller, namespace, "recreate its topics")
        topic = self.require_active(namespace, name)
        locked = self._set_state(topic, TopicState.CREATING)
        try:
            self._deps.broker.delete_topic(topic.kafka_name)
            self._create_on_broker(locked)
        except FabricError:
            # Leave it visible as CREATING: reconcile (or a retry) finishes the job.
            raise
        return self._set_state(locked, TopicState.ACTIVE)

    def configure(
        self, caller: Principal, namespace: str, name: str, configs: dict[str, str | None]
    ) -> tuple[dict[str, str], dict[str, str], Topic]:
        require_owner(self._deps.registry, caller, namespace, "configure its topics")
        if not configs:
            raise Unprocessable(
                "configs is empty: name at least one key", details={"field": "configs"}
            )
        changes = self._check_configs(configs, allow_reset=True)
        topic = self.require_active(namespace, name)
        before = dict(topic.configs)
        effective = self._deps.broker.alter_topic_configs(
            topic.kafka_name, {k: v if v is not None else "" for k, v in changes.items()}
        )
        after = dict(before)
        for key, value in changes.items():
            if value is None:
                after.pop(key, None)
            else:
                after[key] = effective.get(key, value)
        updated = self._deps.registry.update_topic(
            topic.model_copy(update={"configs": after, "updated_at": self._deps.clock()}),
            expected_version=topic.version,
            partition_limit=self._deps.settings.quotas.partitions_per_identity,
        )
        return before, after, updated

    def add_partitions(self, caller: Principal, namespace: str, name: str, count: int) -> Topic:
        require_owner(self._deps.registry, caller, namespace, "change its topics")
        topic = self.require_active(namespace, name)
        if not self._deps.broker.supports_partition_increase:
            raise Unsupported(
                "the embedded local broker cannot add partitions to a topic; on MSK this "
                "works. Locally, recreate the topic with more partitions instead",
                details={"partitions": topic.partitions},
            )
        if count <= topic.partitions:
            raise Unprocessable(
                f"count must be more than the current {topic.partitions} partitions "
                "(Kafka can only add partitions)",
                details={"field": "count"},
            )
        self._check_partitions(count)
        updated = self._deps.registry.update_topic(
            topic.model_copy(update={"partitions": count, "updated_at": self._deps.clock()}),
            expected_version=topic.version,
            partition_limit=self._deps.settings.quotas.partitions_per_identity,
        )
        try:
            self._deps.broker.add_partitions(topic.kafka_name, count)
        except BaseException:
            self._deps.registry.update_topic(
                updated.model_copy(update={"partitions": topic.partitions}),
                expected_version=updated.version,
                partition_limit=self._deps.settings.quotas.partitions_per_identity,
            )
            raise
        return updated

    # ---- internals -----------------------------------------------------------
    def _existing(self, namespace: str, name: str) -> Topic:
        topic = self._deps.registry.get_topic(namespace, name)
        if topic is None:
            raise NotFound(
                f"topic {name!r} not found in namespace {namespace!r}",
                details={"namespace": namespace, "topic": name},
            )
        return topic

    def _delete(self, topic: Topic) -> None:
        """Claim the topic (ACTIVE -> DELETING, a versioned write), then delete it.

        Exactly one caller wins the claim. A topic left DELETING by a delete that
        stopped half-way is claimed again only once that delete is surely dead
        (older than the in-flight grace): two deleters of one incarnation could
        otherwise delete a topic created again in between.
        """
        in_flight = self._deps.clock() - topic.updated_at < IN_FLIGHT_GRACE
        if topic.state is TopicState.CREATING or (topic.state is TopicState.DELETING and in_flight):
            raise Conflict(
                f"topic {topic.namespace}/{topic.name} is being "
                f"{'created' if topic.state is TopicState.CREATING else 'deleted'}; "
                "try again in a moment",
                details={"state": topic.state.value},
            )
        topic = self._set_state(topic, TopicState.DELETING)
        self._deps.broker.delete_topic(topic.kafka_name)
        removed = self._deps.registry.delete_topic(topic.namespace, topic.name)
        self._after_grant_change({g.grantee for g in removed})
        for listener in self.on_deleted:
            listener(topic)

    def _after_grant_change(self, grantees: set[str]) -> None:
        for grantee in sorted(grantees):
            self._identities.sync(grantee)

    def _abandon_create(self, topic: Topic) -> None:
        """Undo a create whose broker step failed.

        The broker may have created the topic even though the call failed (a timeout
        after the work was done), so the broker topic is removed before the name is
        released. If that fails too, the topic stays CREATING: visible, and repaired
        by reconcile, never an orphan.
        """
        try:
            self._deps.broker.delete_topic(topic.kafka_name)
        except FabricError:
            return
        self._deps.registry.delete_topic(topic.namespace, topic.name)

    def _set_state(self, topic: Topic, state: TopicState) -> Topic:
        return self._deps.registry.update_topic(
            topic.model_copy(update={"state": state, "updated_at": self._deps.clock()}),
            expected_version=topic.version,
            partition_limit=self._deps.settings.quotas.partitions_per_identity,
        )

    def _create_on_broker(self, topic: Topic) -> None:
        """Create the topic at the broker; a leftover of the same name is removed first.

        The registry has just reserved the name, so a broker topic of that name is
        an orphan or an old topic Kafka is still deleting; its records must not
        leak into the new topic.
        """
        broker = self._deps.broker

        def attempt() -> None:
            broker.create_topic(
                topic.kafka_name, topic.partitions, topic.replication_factor, dict(topic.configs)
            )

        def clear_and_retry(_: AlreadyExists) -> None:
            broker.delete_topic(topic.kafka_name)

        _retry_while(attempt, AlreadyExists, clear_and_retry, RECREATE_PATIENCE_SECONDS)

    def _check_partitions(self, count: int) -> None:
        cap = self._deps.settings.quotas.partitions_per_topic
        if count < 1 or count > cap:
            raise Unprocessable(
                f"partitions must be between 1 and {cap} (quota partitions_per_topic), not {count}",
                details={"field": "partitions", "limit": cap},
            )

    def _check_configs(
        self, configs: Mapping[str, str | None], *, allow_reset: bool
    ) -> dict[str, str | None]:
        allowed = set(self._deps.settings.topics.allowed_configs)
        unknown = sorted(set(configs) - allowed)
        if unknown:
            raise Unprocessable(
                f"config keys {unknown} may not be set; allowed: {sorted(allowed)}",
                details={"field": "configs", "keys": unknown},
            )
        for key, value in configs.items():
            if value is None and not allow_reset:
                raise BadRequest(
                    f"config {key!r} needs a value", details={"field": f"configs.{key}"}
                )
            if value is not None and (not value or len(value) > 256):
                raise Unprocessable(
                    f"config {key!r} must be a non-empty string of at most 256 characters",
                    details={"field": f"configs.{key}"},
                )
        return dict(configs)


def _retry_while(
    action: Callable[[], None],
    error: type[AlreadyExists],
    on_error: Callable[[AlreadyExists], None],
    patience: float,
) -> None:
    deadline = time.monotonic() + patience
    delay = 0.05
    while True:
        try:
            action()
            return
        except error as exc:
            if time.monotonic() > deadline:
                raise Unavailable(
                    "the broker still holds an old topic of this name; try again shortly"
                ) from exc
            on_error(exc)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
