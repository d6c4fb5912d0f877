"""Reconcile finds drift between registry and broker, and repairs it on request."""

from __future__ import annotations

from datetime import timedelta

from runtime.domain.models import TopicState
from tests.integration.api.conftest import Fabric


def _setup_topic(fabric: Fabric, name: str) -> str:
    fabric.client.get("/v1/me", headers=fabric.owner.headers)
    reply = fabric.client.post(
        f"/v1/namespaces/{fabric.owner.namespace}/topics",
        json={"name": name},
        headers=fabric.owner.headers,
    )
    assert reply.status_code == 201, reply.text
    return f"{fabric.owner.namespace}.{name}"


def _reconcile(fabric: Fabric, repair: bool) -> dict:
    reply = fabric.client.post(
        "/v1/admin/reconcile", params={"repair": str(repair).lower()}, headers=fabric.owner.headers
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_clean_fabric_reports_no_drift(fabric: Fabric) -> None:
    _setup_topic(fabric, "clean")
    assert _reconcile(fabric, repair=False)["drift"] == []


def test_topic_lost_by_the_broker_is_recreated(fabric: Fabric) -> None:
    kafka_name = _setup_topic(fabric, "lost")
    broker = fabric.container.fabric.deps.broker
    broker.delete_topic(kafka_name)
    report = _reconcile(fabric, repair=False)
    assert [(d["kind"], d["target"], d["repaired"]) for d in report["drift"]] == [
        ("missing_on_broker", kafka_name, False)
    ]
    assert kafka_name not in broker.list_topics()
    repaired = _reconcile(fabric, repair=True)
    assert [(d["kind"], d["repaired"]) for d in repaired["drift"]] == [("missing_on_broker", True)]
    assert kafka_name in broker.list_topics()
    assert _reconcile(fabric, repair=False)["drift"] == []


def test_orphan_broker_topic_is_removed(fabric: Fabric) -> None:
    _setup_topic(fabric, "kept")
    orphan = f"{fabric.owner.namespace}.orphan"
    broker = fabric.container.fabric.deps.broker
    broker.create_topic(orphan, 1, 1, {})
    report = _reconcile(fabric, repair=True)
    assert [(d["kind"], d["target"], d["repaired"]) for d in report["drift"]] == [
        ("orphan_on_broker", orphan, True)
    ]
    assert orphan not in broker.list_topics()


def test_half_finished_lifecycles_are_completed(fabric: Fabric) -> None:
    creating = _setup_topic(fabric, "creating")
    deleting = _setup_topic(fabric, "deleting")
    deps = fabric.container.fabric.deps
    registry, limit = deps.registry, deps.settings.quotas.partitions_per_identity
    old = deps.clock() - timedelta(minutes=5)
    for name, state in (("creating", TopicState.CREATING), ("deleting", TopicState.DELETING)):
        topic = registry.get_topic(fabric.owner.namespace, name)
        assert topic is not None
        registry.update_topic(
            topic.model_copy(update={"state": state, "updated_at": old}),
            expected_version=topic.version,
            partition_limit=limit,
        )
    deps.broker.delete_topic(creating)
    report = _reconcile(fabric, repair=True)
    assert sorted((d["kind"], d["repaired"]) for d in report["drift"]) == [
        ("stuck_creating", True),
        ("stuck_deleting", True),
    ]
    fixed = registry.get_topic(fabric.owner.namespace, "creating")
    assert fixed is not None and fixed.state is TopicState.ACTIVE
    assert creating in deps.broker.list_topics()
    assert registry.get_topic(fabric.owner.namespace, "deleting") is None
    assert deleting not in deps.broker.list_topics()


def test_reconcile_is_for_admins(fabric: Fabric) -> None:
    reply = fabric.client.post("/v1/admin/reconcile", headers=fabric.stranger.headers)
    assert reply.status_code == 403
