"""Webhook triggers end to end: API -> registry -> runner -> broker -> real HTTP server."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections import Counter
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from runtime.triggers.webhook import verify_signature
from tests.integration.triggers.conftest import (
    RunnerProcess,
    TriggerFabric,
    received_values,
    wait_for,
)
from tests.integration.triggers_delivery.conftest import WebhookReceiver


def webhook_trigger(
    fabric: TriggerFabric, topic: str, url: str, **overrides: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "hook",
        "namespace": fabric.owner.namespace,
        "topic": topic,
        "kind": "webhook",
        "starting_position": "TRIM_HORIZON",
        "webhook": {"url": url, "headers": {"X-Team": "beamline-7"}},
    }
    body.update(overrides)
    return fabric.create_trigger(**body)


def test_only_matching_events_arrive_signed(
    trigger_fabric: TriggerFabric, runner: RunnerProcess, webhook_server: WebhookReceiver
) -> None:
    topic = trigger_fabric.create_topic()
    created = webhook_trigger(
        trigger_fabric,
        topic,
        webhook_server.url,
        filters=[{"value": {"status": ["done"]}}, '{"value": {"size": [{"numeric": [">", 990]}]}}'],
        starting_position="LATEST",
    )
    secret = created["webhook_secret"]
    assert isinstance(secret, str) and len(secret) >= 40
    trigger_id = str(created["trigger_id"])
    trigger_fabric.wait_state(trigger_id, "active")

    values = [
        {"i": i, "status": "done" if i % 7 == 0 else "pending", "size": i} for i in range(1000)
    ]
    trigger_fabric.produce(topic, values)
    expected = {i for i in range(1000) if i % 7 == 0 or i > 990}

    wait_for(lambda: len(received_values(webhook_server)) >= len(expected), 60, "deliveries")
    time.sleep(1.0)  # nothing else trickles in afterwards
    received = [v["i"] for v in received_values(webhook_server)]
    assert Counter(received) == Counter(expected)  # each exactly once: no failures injected

    for request in webhook_server.requests:
        assert request.headers["x-team"] == "beamline-7"
        assert verify_signature(
            secret,
            request.headers["x-octopus-timestamp"],
            request.body,
            request.headers["x-octopus-signature"],
        )
        assert not verify_signature(
            "wrong-secret",
            request.headers["x-octopus-timestamp"],
            request.body,
            request.headers["x-octopus-signature"],
        )
        record = request.json()["records"][0]
        assert request.headers["x-octopus-delivery-id"] == (
            f"{record['topic']}/{record['partition']}/{record['offset']}"
        )

    # The secret is in the create reply only: not in the registry, not in the trigger store.
    settings = trigger_fabric.settings
    for database in (
        settings.sqlite_path,
        str(trigger_fabric.tmp_path / "triggers" / "triggers.sqlite"),
    ):
        with sqlite3.connect(database) as db:
            dump = "\n".join(db.iterdump())
        assert secret not in dump
    assert "webhook_secret" not in trigger_fabric.get_trigger(trigger_id)


def test_killed_runner_loses_nothing(
    trigger_fabric: TriggerFabric, runner: RunnerProcess, webhook_server: WebhookReceiver
) -> None:
    topic = trigger_fabric.create_topic()
    # A slow receiver keeps the runner busy in the middle of its batches.
    webhook_server.script = [(200, "ok", 0.01)] * 100_000
    created = webhook_trigger(trigger_fabric, topic, webhook_server.url, batch_size=50)
    trigger_id = str(created["trigger_id"])
    trigger_fabric.wait_state(trigger_id, "active")
    trigger_fabric.produce(topic, [{"n": n} for n in range(400)])

    wait_for(lambda: len(webhook_server.requests) >= 60, 30, "the first deliveries")
    runner.kill()
    delivered_before_kill = len(webhook_server.requests)
    assert delivered_before_kill < 400, "the runner finished before it could be killed"
    runner.start()

    wait_for(lambda: len({v["n"] for v in received_values(webhook_server)}) == 400, 60, "all")
    counts = Counter(v["n"] for v in received_values(webhook_server))
    assert set(counts) == set(range(400))
    # The batch in flight when the runner died was delivered again (at least once).
    assert runner.starts == 2


def test_500_three_times_then_200_delivers_every_event(
    trigger_fabric: TriggerFabric, runner: RunnerProcess, webhook_server: WebhookReceiver
) -> None:
    webhook_server.fail_each_delivery = (500, 3)
    topic = trigger_fabric.create_topic()
    created = webhook_trigger(trigger_fabric, topic, webhook_server.url)
    trigger_id = str(created["trigger_id"])
    trigger_fabric.wait_state(trigger_id, "active")
    trigger_fabric.produce(topic, [{"n": n} for n in range(4)])

    wait_for(lambda: len(received_values(webhook_server)) >= 4, 60, "deliveries after 500s")
    assert sorted(v["n"] for v in received_values(webhook_server)) == [0, 1, 2, 3]
    by_delivery = Counter(r.headers["x-octopus-delivery-id"] for r in webhook_server.requests)
    assert sorted(by_delivery.values()) == [4, 4, 4, 4]  # 3 x 500, then 200
    assert trigger_fabric.all_pages(f"/v1/triggers/{trigger_id}/dead-letters") == []


def test_400_goes_to_dead_letters_with_the_reason(
    trigger_fabric: TriggerFabric, runner: RunnerProcess, webhook_server: WebhookReceiver
) -> None:
    webhook_server.default = (400, "schema mismatch: field 'n' unexpected")
    topic = trigger_fabric.create_topic()
    created = webhook_trigger(trigger_fabric, topic, webhook_server.url)
    trigger_id = str(created["trigger_id"])
    trigger_fabric.wait_state(trigger_id, "active")
    trigger_fabric.produce(topic, [{"n": n} for n in range(3)])

    path = f"/v1/triggers/{trigger_id}/dead-letters"
    wait_for(lambda: len(trigger_fabric.all_pages(path)) >= 3, 30, "dead letters")
    letters = trigger_fabric.all_pages(path)
    assert len(letters) == 3
    assert len(webhook_server.requests) == 3  # permanent: not retried
    values = sorted(json.loads(base64.b64decode(letter["value"]))["n"] for letter in letters)
    assert values == [0, 1, 2]
    for letter in letters:
        assert letter["reason"].startswith("HTTP 400: schema mismatch")
        assert letter["topic"] == f"{trigger_fabric.owner.namespace}.{topic}"
        assert letter["offset"] >= 0
    found = trigger_fabric.get_trigger(trigger_id)
    assert found["state"] == "active"
    assert "HTTP 400" in (found["last_error"] or "")

    # Pagination: one per page, in order, nothing twice.
    first = trigger_fabric.client.get(
        path, params={"limit": 1}, headers=trigger_fabric.owner.headers
    )
    assert first.json()["next_cursor"]
    # A stranger sees nothing of it.
    stranger = trigger_fabric.client.get(path, headers=trigger_fabric.stranger.headers)
    assert stranger.status_code == 404


def test_retries_exhausted_go_to_dead_letters(
    trigger_fabric: TriggerFabric, runner: RunnerProcess, webhook_server: WebhookReceiver
) -> None:
    webhook_server.default = (503, "down for maintenance")
    topic = trigger_fabric.create_topic()
    created = webhook_trigger(trigger_fabric, topic, webhook_server.url, max_retries=1)
    trigger_id = str(created["trigger_id"])
    trigger_fabric.wait_state(trigger_id, "active")
    trigger_fabric.produce(topic, [{"n": 1}])

    path = f"/v1/triggers/{trigger_id}/dead-letters"
    wait_for(lambda: bool(trigger_fabric.all_pages(path)), 90, "the exhausted record's letter")
    (letter,) = trigger_fabric.all_pages(path)
    assert letter["reason"].startswith("gave up after 2 tries (max_retries 1): HTTP 503")
    # Each try is the template's own bounded retry loop (5 attempts by default).
    assert len(webhook_server.requests) == 10


def test_disable_delete_and_revoked_access_stop_deliveries(
    trigger_fabric: TriggerFabric, runner: RunnerProcess, webhook_server: WebhookReceiver
) -> None:
    fabric = trigger_fabric
    topic = fabric.create_topic()
    owner_ns = fabric.owner.namespace
    fabric.client.put(
        f"/v1/namespaces/{owner_ns}/topics/{topic}/grants/{fabric.grantee.sub}",
        json={"access": "read"},
        headers=fabric.owner.headers,
    )
    mine = webhook_trigger(fabric, topic, webhook_server.url)
    theirs = fabric.create_trigger(
        fabric.grantee,
        name="grantee-hook",
        namespace=owner_ns,
        topic=topic,
        kind="webhook",
        webhook={"url": webhook_server.url},
    )
    fabric.wait_state(str(mine["trigger_id"]), "active")
    # The grantee's trigger is the grantee's: its state is read with the grantee's token.
    wait_for(
        lambda: fabric.get_trigger(str(theirs["trigger_id"]), fabric.grantee)["state"] == "active",
        30,
        "the grantee's trigger",
    )

    revoke = fabric.client.delete(
        f"/v1/namespaces/{owner_ns}/topics/{topic}/grants/{fabric.grantee.sub}",
        headers=fabric.owner.headers,
    )
    assert revoke.status_code == 204
    wait_for(
        lambda: fabric.get_trigger(str(theirs["trigger_id"]), fabric.grantee)["state"] == "failing",
        30,
        "the grantee's trigger to fail after the revoke",
    )
    found = fabric.get_trigger(str(theirs["trigger_id"]), fabric.grantee)
    assert "no longer has read access" in found["last_error"]

    disabled = fabric.client.patch(
        f"/v1/triggers/{mine['trigger_id']}", json={"enabled": False}, headers=fabric.owner.headers
    )
    assert disabled.json()["state"] == "disabled"
    time.sleep(1.5)  # the runner notices within its refresh interval
    fabric.produce(topic, [{"n": n} for n in range(5)])
    time.sleep(2.0)
    assert webhook_server.requests == []  # neither the disabled nor the revoked one delivered

    enabled = fabric.client.patch(
        f"/v1/triggers/{mine['trigger_id']}", json={"enabled": True}, headers=fabric.owner.headers
    )
    assert enabled.status_code == 200
    # Re-enabled: it resumes at its committed position, so the 5 records still arrive.
    wait_for(lambda: len(received_values(webhook_server)) >= 5, 30, "deliveries after enabling")
    assert (
        fabric.client.delete(
            f"/v1/triggers/{mine['trigger_id']}", headers=fabric.owner.headers
        ).status_code
        == 204
    )
    time.sleep(1.5)
    before = len(webhook_server.requests)
    fabric.produce(topic, [{"n": 99}])
    time.sleep(2.0)
    assert len(webhook_server.requests) == before
    assert not (fabric.tmp_path / "triggers" / str(mine["trigger_id"])).exists()
    # The runner also dropped the deleted trigger's consumer group (its committed offsets).
    consumer = Consumer(
        {"bootstrap.servers": fabric.settings.bootstrap_servers, "group.id": mine["consumer_group"]}
    )
    try:
        kafka_topic = f"{owner_ns}.{topic}"
        committed = consumer.committed([TopicPartition(kafka_topic, p) for p in (0, 1)], timeout=10)
        assert all(tp.offset < 0 for tp in committed), committed
    finally:
        consumer.close()
