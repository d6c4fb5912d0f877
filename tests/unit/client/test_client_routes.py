# ruff: noqa: E501  (the route table reads best one route per line)
"""Every SDK method sends the v1 route, body and query of docs/api.md and parses the reply."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from octopus_client import Fabric
from octopus_client.models import (
    BatchResult,
    Credentials,
    DeadLetter,
    Grant,
    Key,
    KeyCreated,
    Namespace,
    ReconcileReport,
    RecordMetadata,
    Topic,
    TopicConfigured,
    TopicDetail,
    Trigger,
    TriggerLogEntry,
)

from tests.unit.client.client_fake_api import NOW, FakeAPI, Reply, grant_body, topic_body

KEY = {"key_id": "k1", "name": "laptop", "kind": "local", "created_at": NOW, "last_used_at": None}
NS = {"name": "proj", "owner": "sub-1", "is_default": False, "created_at": NOW}
TRIGGER = {
    "trigger_id": "tr-1",
    "name": "hook",
    "namespace": "ns-abc",
    "topic": "sensors.temp",
    "kind": "webhook",
    "enabled": True,
    "state": "active",
    "last_error": None,
    "batch_size": 10,
}
TP = "/v1/namespaces/ns-abc/topics/sensors.temp"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


CASES: list[tuple[str, Callable[[Fabric], Any], str, str, Any, Any, Any, dict[str, list[str]]]] = [
    # id, call, method, path, reply, expected body, expected type, expected query
    ("health", lambda f: f.health(), "GET", "/v1/health", {"status": "ok", "version": "1"}, None, None, {}),
    ("create_key", lambda f: f.create_key("laptop"), "POST", "/v1/keys", Reply(201, {**KEY, "secret": "s"}), {"name": "laptop"}, KeyCreated, {}),
    ("list_keys", lambda f: f.list_keys(), "GET", "/v1/keys", {"items": [KEY]}, None, Key, {}),
    ("delete_key", lambda f: f.delete_key("k1"), "DELETE", "/v1/keys/k1", Reply(204), None, None, {}),
    ("credentials", lambda f: f.create_credentials(900), "POST", "/v1/credentials", Reply(201, {"access_key_id": "A", "secret_access_key": "S", "session_token": "T", "expires_at": NOW, "region": "us-east-1"}), {"duration_seconds": 900}, Credentials, {}),
    ("create_ns", lambda f: f.create_namespace("proj"), "POST", "/v1/namespaces", Reply(201, NS), {"name": "proj"}, Namespace, {}),
    ("list_ns", lambda f: f.list_namespaces(), "GET", "/v1/namespaces", {"items": [NS]}, None, Namespace, {}),
    ("delete_ns", lambda f: f.delete_namespace("proj", force=True), "DELETE", "/v1/namespaces/proj", Reply(204), None, None, {"force": ["true"]}),
    ("get_topic", lambda f: f.get_topic("ns-abc", "sensors.temp"), "GET", TP, topic_body(grants=[grant_body()]), None, TopicDetail, {}),
    ("configure", lambda f: f.configure_topic("ns-abc", "sensors.temp", {"retention.ms": "5", "cleanup.policy": None}), "PATCH", TP, {"before": {}, "after": {"retention.ms": "5"}, "topic": topic_body()}, {"configs": {"retention.ms": "5", "cleanup.policy": None}}, TopicConfigured, {}),
    ("partitions", lambda f: f.increase_partitions("ns-abc", "sensors.temp", 4), "POST", TP + "/partitions", topic_body(partitions=4), {"count": 4}, Topic, {}),
    ("recreate", lambda f: f.recreate_topic("ns-abc", "sensors.temp"), "POST", TP + "/recreate", topic_body(), None, Topic, {}),
    ("delete_topic", lambda f: f.delete_topic("ns-abc", "sensors.temp"), "DELETE", TP, Reply(204), None, None, {}),
    ("topic_grants", lambda f: f.list_topic_grants("ns-abc", "sensors.temp"), "GET", TP + "/grants", {"items": [grant_body()]}, None, Grant, {}),
    ("ns_grants", lambda f: f.list_grants("ns-abc"), "GET", "/v1/namespaces/ns-abc/grants", {"items": [grant_body("prefix", "sensors")]}, None, Grant, {}),
    ("grant", lambda f: f.grant("ns-abc", "sensors.temp", "sub-2", "readwrite"), "PUT", TP + "/grants/sub-2", grant_body(access="readwrite"), {"access": "readwrite"}, Grant, {}),
    ("revoke", lambda f: f.revoke("ns-abc", "sensors.temp", "sub-2"), "DELETE", TP + "/grants/sub-2", Reply(204), None, None, {}),
    ("grant_prefix", lambda f: f.grant_prefix("ns-abc", "sensors", "sub-2", "read"), "PUT", "/v1/namespaces/ns-abc/grants/sub-2", grant_body("prefix", "sensors"), {"prefix": "sensors", "access": "read"}, Grant, {}),
    ("revoke_prefix", lambda f: f.revoke_prefix("ns-abc", "sensors", "sub-2"), "DELETE", "/v1/namespaces/ns-abc/grants/sub-2", Reply(204), None, None, {"prefix": ["sensors"]}),
    ("produce", lambda f: f.produce("ns-abc", "sensors.temp", {"t": 21.5}, key="dev-1", headers={"h": "v"}, partition=0), "POST", TP + "/records", {"topic_name": "ns-abc.sensors.temp", "partition_id": 0, "offset": 7, "timestamp": NOW}, {"key": {"type": "JSON", "data": "dev-1"}, "value": {"type": "JSON", "data": {"t": 21.5}}, "headers": [{"name": "h", "value": b64("v")}], "partition_id": 0}, RecordMetadata, {}),
    ("produce_binary", lambda f: f.produce("ns-abc", "sensors.temp", b"\x00\x01"), "POST", TP + "/records", {"topic_name": "x", "partition_id": 0, "offset": 0, "timestamp": None}, {"value": {"type": "BINARY", "data": "AAE="}}, RecordMetadata, {}),
    ("batch", lambda f: f.produce_batch("ns-abc", "sensors.temp", [{"id": "a", "value": 1}, {"value": 2}]), "POST", TP + "/records:batch", Reply(207, {"successes": [{"id": "a", "topic_name": "x", "partition_id": 0, "offset": 1, "timestamp": None}], "failures": [{"id": "1", "error_code": 40401, "message": "m"}]}), {"entries": [{"id": "a", "value": {"type": "JSON", "data": 1}}, {"id": "1", "value": {"type": "JSON", "data": 2}}]}, BatchResult, {}),
    ("create_trigger", lambda f: f.create_trigger({"name": "hook", "namespace": "ns-abc"}, topic="sensors.temp", kind="webhook"), "POST", "/v1/triggers", Reply(201, {**TRIGGER, "webhook_secret": "sec"}), {"name": "hook", "namespace": "ns-abc", "topic": "sensors.temp", "kind": "webhook"}, Trigger, {}),
    ("list_triggers", lambda f: f.list_triggers(namespace="ns-abc", topic="sensors.temp", limit=5), "GET", "/v1/triggers", {"items": [TRIGGER], "next_cursor": None}, None, None, {"namespace": ["ns-abc"], "topic": ["sensors.temp"], "limit": ["5"]}),
    ("get_trigger", lambda f: f.get_trigger("tr-1"), "GET", "/v1/triggers/tr-1", TRIGGER, None, Trigger, {}),
    ("disable", lambda f: f.disable_trigger("tr-1"), "PATCH", "/v1/triggers/tr-1", {**TRIGGER, "enabled": False}, {"enabled": False}, Trigger, {}),
    ("update", lambda f: f.update_trigger("tr-1", batch_size=5, filters=[{"value": {"a": [1]}}]), "PATCH", "/v1/triggers/tr-1", TRIGGER, {"batch_size": 5, "filters": [{"value": {"a": [1]}}]}, Trigger, {}),
    ("delete_trigger", lambda f: f.delete_trigger("tr-1"), "DELETE", "/v1/triggers/tr-1", Reply(204), None, None, {}),
    ("logs", lambda f: f.trigger_logs("tr-1", since="2025-01-01T00:00:00Z"), "GET", "/v1/triggers/tr-1/logs", {"items": [{"timestamp": NOW, "message": "ok"}], "next_cursor": None}, None, None, {"since": ["2025-01-01T00:00:00Z"]}),
    ("dead_letters", lambda f: list(f.iter_dead_letters("tr-1")), "GET", "/v1/triggers/tr-1/dead-letters", {"items": [{"failed_at": NOW, "reason": "400", "topic": "t", "partition": 0, "offset": 3}], "next_cursor": None}, None, DeadLetter, {}),
    ("reconcile", lambda f: f.reconcile(repair=True), "POST", "/v1/admin/reconcile", {"repair": True, "checked_topics": 1, "checked_broker_topics": 2, "drift": [{"kind": "orphan_on_broker", "target": "ns.x", "detail": "not in the registry"}]}, None, ReconcileReport, {"repair": ["true"]}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "method", "path", "reply", "body", "kind", "query"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_route(api: FakeAPI, call, method, path, reply, body, kind, query) -> None:
    api.reply(method, path, reply)
    result = call(Fabric(api.url, "tok"))
    (seen,) = api.calls()
    assert (seen.method, seen.path) == (method, path)
    assert seen.body == body
    assert seen.query == query
    if method in ("POST", "PATCH") and path != "/v1/admin/reconcile":
        assert "idempotency-key" in seen.headers
    if kind is not None:
        item = result[0] if isinstance(result, list) else result
        assert isinstance(item, kind)
    if method == "DELETE":
        assert result is None


def test_trigger_keeps_unknown_fields_and_accepts_id_alias(api: FakeAPI) -> None:
    api.reply(
        "GET",
        "/v1/triggers/tr-1",
        {**{k: v for k, v in TRIGGER.items() if k != "trigger_id"}, "id": "tr-1"},
    )
    trigger = Fabric(api.url, "tok").get_trigger("tr-1")
    assert trigger.trigger_id == "tr-1"
    assert trigger.model_extra == {"batch_size": 10}


def test_log_pages_are_iterated(api: FakeAPI) -> None:
    api.reply(
        "GET",
        "/v1/triggers/tr-1/logs",
        {"items": [{"timestamp": NOW, "message": "a"}], "next_cursor": "x"},
        {"items": [{"timestamp": NOW, "message": "b"}], "next_cursor": None},
    )
    entries = list(Fabric(api.url, "tok").iter_trigger_logs("tr-1"))
    assert [e.message for e in entries] == ["a", "b"]
    assert isinstance(entries[0], TriggerLogEntry)
