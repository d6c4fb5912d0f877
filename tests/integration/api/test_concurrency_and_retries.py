"""Concurrent and retried mutations leave registry, broker and grants consistent."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from runtime.domain.models import TopicState
from tests.integration.api.conftest import Fabric


@pytest.mark.slow
def test_fifty_concurrent_creates_and_deletes_of_one_topic(fabric: Fabric) -> None:
    owner, grantee = fabric.owner, fabric.grantee
    fabric.client.get("/v1/me", headers=owner.headers)
    ns = owner.namespace
    url = f"/v1/namespaces/{ns}/topics"
    start = threading.Barrier(50)

    def call(i: int) -> tuple[str, int]:
        start.wait()
        if i % 2 == 0:
            reply = fabric.client.post(url, json={"name": "race.topic"}, headers=owner.headers)
            return "create", reply.status_code
        if i % 5 == 1:
            reply = fabric.client.put(
                f"{url}/race.topic/grants/{grantee.sub}",
                json={"access": "read"},
                headers=owner.headers,
            )
            return "grant", reply.status_code
        reply = fabric.client.delete(f"{url}/race.topic", headers=owner.headers)
        return "delete", reply.status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = Counter(pool.map(call, range(50)))
    # Every answer is a decision, never a server error.
    assert all(status in (200, 201, 204, 404, 409) for _, status in outcomes), outcomes
    assert outcomes[("create", 201)] >= 1

    deps = fabric.container.fabric.deps
    topic = deps.registry.get_topic(ns, "race.topic")
    in_broker = f"{ns}.race.topic" in deps.broker.list_topics()
    if topic is None:
        assert not in_broker, "orphan topic in the broker"
    else:
        assert topic.state is TopicState.ACTIVE
        assert in_broker, "registry topic missing from the broker"
    for grant in deps.registry.list_grants(ns):
        assert topic is not None, f"grant {grant} outlived its topic"
    usage = deps.registry.get_usage(owner.sub)
    assert usage.topics == (1 if topic else 0)


def test_idempotency_key_replays_the_first_reply(fabric: Fabric) -> None:
    headers = {**fabric.owner.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = fabric.client.post("/v1/namespaces", json={"name": "retry-me"}, headers=headers)
    again = fabric.client.post("/v1/namespaces", json={"name": "retry-me"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    other_body = fabric.client.post("/v1/namespaces", json={"name": "retry-you"}, headers=headers)
    assert other_body.status_code == 422
    # Without the key, the same call is a conflict: the namespace exists.
    plain = fabric.client.post(
        "/v1/namespaces", json={"name": "retry-me"}, headers=fabric.owner.headers
    )
    assert plain.status_code == 409


def test_idempotent_produce_writes_once(fabric: Fabric) -> None:
    fabric.client.get("/v1/me", headers=fabric.owner.headers)
    url = f"/v1/namespaces/{fabric.owner.namespace}/topics"
    fabric.client.post(url, json={"name": "once"}, headers=fabric.owner.headers)
    headers = {**fabric.owner.headers, "Idempotency-Key": "produce-1"}
    record = {"value": {"type": "JSON", "data": "hello"}}
    replies = [
        fabric.client.post(f"{url}/once/records", json=record, headers=headers) for _ in range(3)
    ]
    assert {r.json()["offset"] for r in replies} == {0}
    nxt = fabric.client.post(f"{url}/once/records", json=record, headers=fabric.owner.headers)
    assert nxt.json()["offset"] == 1


def test_idempotency_keys_are_per_identity(fabric: Fabric) -> None:
    key = {"Idempotency-Key": "shared"}
    a = fabric.client.post(
        "/v1/namespaces", json={"name": "per-a"}, headers={**fabric.owner.headers, **key}
    )
    b = fabric.client.post(
        "/v1/namespaces", json={"name": "per-b"}, headers={**fabric.stranger.headers, **key}
    )
    assert a.status_code == b.status_code == 201
    assert b.json()["owner"] == fabric.stranger.sub


def test_a_replayed_key_create_never_stores_or_shows_the_secret(fabric: Fabric) -> None:
    headers = {**fabric.owner.headers, "Idempotency-Key": "key-once"}
    first = fabric.client.post("/v1/keys", json={"name": "laptop"}, headers=headers)
    assert first.status_code == 201 and first.json()["secret"]
    again = fabric.client.post("/v1/keys", json={"name": "laptop"}, headers=headers)
    assert again.status_code == 201
    assert again.json()["secret"] is None
    assert again.json()["key_id"] == first.json()["key_id"]
    assert again.headers["octopus-withheld"] == "secret"
    stored = fabric.container.fabric.deps.registry.get_idempotency(fabric.owner.sub, "key-once")
    assert stored is not None and first.json()["secret"] not in stored.body


def test_session_credentials_are_never_stored_for_replay(fabric: Fabric) -> None:
    headers = {**fabric.owner.headers, "Idempotency-Key": "creds"}
    first = fabric.client.post("/v1/credentials", json={}, headers=headers)
    second = fabric.client.post("/v1/credentials", json={}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["session_token"] != second.json()["session_token"]
    assert fabric.container.fabric.deps.registry.get_idempotency(fabric.owner.sub, "creds") is None
