"""Namespaces, topics and grants end to end: HTTP → core → SQLite + the real broker."""

from __future__ import annotations

import base64

from confluent_kafka import Consumer, TopicPartition

from tests.integration.api.conftest import Fabric


def create_topic(fabric: Fabric, name: str, **body: object) -> dict:
    reply = fabric.client.post(
        f"/v1/namespaces/{fabric.owner.namespace}/topics",
        json={"name": name, **body},
        headers=fabric.owner.headers,
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


def test_health_needs_no_token(fabric: Fabric) -> None:
    reply = fabric.client.get("/v1/health")
    assert reply.status_code == 200
    assert reply.json()["status"] == "ok"


def test_me_creates_the_default_namespace(fabric: Fabric) -> None:
    reply = fabric.client.get("/v1/me", headers=fabric.owner.headers)
    assert reply.status_code == 200
    body = reply.json()
    assert body["sub"] == fabric.owner.sub
    assert body["default_namespace"] == "ns-" + fabric.owner.sub.replace("-", "")[-12:]
    assert body["namespaces"] == [body["default_namespace"]]
    assert body["quotas"]["topics_per_identity"] == 20
    assert body["usage"]["namespaces"] == 1


def test_fabric_info_says_how_to_connect(fabric: Fabric) -> None:
    body = fabric.client.get("/v1/fabric", headers=fabric.owner.headers).json()
    assert body["bootstrap_servers"] == fabric.settings.bootstrap_servers
    assert body["local"] is True and body["auth"] == "none"
    assert body["client_overrides"]["fetch.wait.max.ms"] == 200


def test_topic_lifecycle_reaches_the_broker(fabric: Fabric, topic_name: str) -> None:
    fabric.client.get("/v1/me", headers=fabric.owner.headers)
    created = create_topic(fabric, topic_name, partitions=2, configs={"retention.ms": "60000"})
    kafka_name = f"{fabric.owner.namespace}.{topic_name}"
    assert created["kafka_name"] == kafka_name
    assert created["state"] == "active"
    broker = fabric.container.fabric.deps.broker
    assert kafka_name in broker.list_topics()
    described = broker.describe_topic(kafka_name)
    assert described is not None and described.partitions == 2

    url = f"/v1/namespaces/{fabric.owner.namespace}/topics/{topic_name}"
    shown = fabric.client.get(url, headers=fabric.owner.headers).json()
    assert shown["configs"] == {"retention.ms": "60000"}

    patched = fabric.client.patch(
        url, json={"configs": {"retention.ms": "120000"}}, headers=fabric.owner.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["before"] == {"retention.ms": "60000"}
    assert patched.json()["after"] == {"retention.ms": "120000"}

    more = fabric.client.post(f"{url}/partitions", json={"count": 4}, headers=fabric.owner.headers)
    assert more.status_code == 409
    assert more.json()["error"]["code"] == "unsupported_by_broker"

    deleted = fabric.client.delete(url, headers=fabric.owner.headers)
    assert deleted.status_code == 204
    assert kafka_name not in broker.list_topics()
    assert fabric.client.get(url, headers=fabric.owner.headers).status_code == 404


def test_recreate_empties_the_topic(fabric: Fabric, topic_name: str) -> None:
    fabric.client.get("/v1/me", headers=fabric.owner.headers)
    create_topic(fabric, topic_name)
    url = f"/v1/namespaces/{fabric.owner.namespace}/topics/{topic_name}"
    for i in range(3):
        reply = fabric.client.post(
            f"{url}/records",
            json={"value": {"type": "JSON", "data": {"i": i}}},
            headers=fabric.owner.headers,
        )
        assert reply.status_code == 200, reply.text
    assert reply.json()["offset"] == 2
    again = fabric.client.post(f"{url}/recreate", headers=fabric.owner.headers)
    assert again.status_code == 200, again.text
    first = fabric.client.post(
        f"{url}/records",
        json={"value": {"type": "STRING", "data": "x"}},
        headers=fabric.owner.headers,
    )
    assert first.json()["offset"] == 0


def test_records_round_trip_bytes(fabric: Fabric, topic_name: str) -> None:
    fabric.client.get("/v1/me", headers=fabric.owner.headers)
    create_topic(fabric, topic_name)
    url = f"/v1/namespaces/{fabric.owner.namespace}/topics/{topic_name}"
    raw = bytes(range(256))
    single = fabric.client.post(
        f"{url}/records",
        json={
            "key": {"type": "STRING", "data": "k1"},
            "value": {"type": "BINARY", "data": base64.b64encode(raw).decode()},
            "headers": [{"name": "h", "value": base64.b64encode(b"hv").decode()}, {"name": "n"}],
        },
        headers=fabric.owner.headers,
    )
    assert single.status_code == 200, single.text
    batch = fabric.client.post(
        f"{url}/records:batch",
        json={
            "entries": [
                {"id": "a", "value": {"type": "JSON", "data": {"x": 1}}},
                {"id": "b", "value": {"type": "BINARY", "data": "%%%"}},
                {"id": "c", "key": {"type": "STRING", "data": "k"}},
            ]
        },
        headers=fabric.owner.headers,
    )
    assert batch.status_code == 207, batch.text
    result = batch.json()
    assert [s["id"] for s in result["successes"]] == ["a", "c"]
    assert [f["id"] for f in result["failures"]] == ["b"]
    assert "base64" in result["failures"][0]["message"]

    consumer = Consumer(
        {
            "bootstrap.servers": fabric.settings.bootstrap_servers,
            "group.id": f"{fabric.owner.namespace}.check",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.assign([TopicPartition(f"{fabric.owner.namespace}.{topic_name}", 0, 0)])
    seen = []
    for _ in range(50):
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            seen.append(message)
        if len(seen) == 3:
            break
    consumer.close()
    assert seen[0].key() == b"k1" and seen[0].value() == raw
    assert seen[0].headers() == [("h", b"hv"), ("n", None)]
    assert seen[1].value() == b'{"x":1}'
    assert seen[2].key() == b"k" and seen[2].value() is None


def test_listing_is_paginated_and_filtered_by_prefix(fabric: Fabric) -> None:
    fabric.client.get("/v1/me", headers=fabric.owner.headers)
    names = ["beam.a.frames", "beam.a.logs", "beam.b.frames", "other"]
    for name in names:
        create_topic(fabric, name)
    url = f"/v1/namespaces/{fabric.owner.namespace}/topics"
    seen, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = fabric.client.get(url, params=params, headers=fabric.owner.headers).json()
        seen += [t["name"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(names)
    subtree = fabric.client.get(url, params={"prefix": "beam.a."}, headers=fabric.owner.headers)
    assert [t["name"] for t in subtree.json()["items"]] == ["beam.a.frames", "beam.a.logs"]


def test_grants_give_and_take_access(fabric: Fabric, topic_name: str) -> None:
    owner, grantee = fabric.owner, fabric.grantee
    fabric.client.get("/v1/me", headers=owner.headers)
    create_topic(fabric, topic_name)
    url = f"/v1/namespaces/{owner.namespace}/topics/{topic_name}"
    produce = {"value": {"type": "JSON", "data": 1}}
    assert fabric.client.get(url, headers=grantee.headers).status_code == 404

    granted = fabric.client.put(
        f"{url}/grants/{grantee.sub}", json={"access": "read"}, headers=owner.headers
    )
    assert granted.status_code == 200, granted.text
    assert fabric.client.get(url, headers=grantee.headers).status_code == 200
    refused = fabric.client.post(f"{url}/records", json=produce, headers=grantee.headers)
    assert refused.status_code == 403
    assert "read" in refused.json()["error"]["message"]
    assert fabric.client.delete(url, headers=grantee.headers).status_code == 403

    fabric.client.put(
        f"{url}/grants/{grantee.sub}", json={"access": "readwrite"}, headers=owner.headers
    )
    assert (
        fabric.client.post(f"{url}/records", json=produce, headers=grantee.headers).status_code
        == 200
    )
    listed = fabric.client.get(f"{url}/grants", headers=owner.headers).json()["items"]
    assert [(g["grantee"], g["access"]) for g in listed] == [(grantee.sub, "readwrite")]

    assert (
        fabric.client.delete(f"{url}/grants/{grantee.sub}", headers=owner.headers).status_code
        == 204
    )
    assert fabric.client.get(url, headers=grantee.headers).status_code == 404


def test_prefix_grant_covers_topics_created_later(fabric: Fabric) -> None:
    owner, grantee = fabric.owner, fabric.grantee
    fabric.client.get("/v1/me", headers=owner.headers)
    ns_url = f"/v1/namespaces/{owner.namespace}"
    put = fabric.client.put(
        f"{ns_url}/grants/{grantee.sub}",
        json={"prefix": "beam", "access": "read"},
        headers=owner.headers,
    )
    assert put.status_code == 200, put.text
    create_topic(fabric, "beam.det1.frames")
    create_topic(fabric, "beamline")
    assert (
        fabric.client.get(f"{ns_url}/topics/beam.det1.frames", headers=grantee.headers).status_code
        == 200
    )
    # "beam" covers the subtree beam.*, not a sibling that merely starts with the letters.
    assert (
        fabric.client.get(f"{ns_url}/topics/beamline", headers=grantee.headers).status_code == 404
    )
    listing = fabric.client.get(f"{ns_url}/topics", headers=grantee.headers).json()
    assert [t["name"] for t in listing["items"]] == ["beam.det1.frames"]


def test_deleting_a_topic_removes_its_grants(fabric: Fabric, topic_name: str) -> None:
    owner, grantee = fabric.owner, fabric.grantee
    fabric.client.get("/v1/me", headers=owner.headers)
    create_topic(fabric, topic_name)
    url = f"/v1/namespaces/{owner.namespace}/topics/{topic_name}"
    fabric.client.put(f"{url}/grants/{grantee.sub}", json={"access": "read"}, headers=owner.headers)
    assert fabric.client.delete(url, headers=owner.headers).status_code == 204
    create_topic(fabric, topic_name)
    assert fabric.client.get(url, headers=grantee.headers).status_code == 404
    registry = fabric.container.fabric.deps.registry
    assert registry.list_grants_for_grantee(grantee.sub) == []


def test_namespaces_first_come_first_served(fabric: Fabric) -> None:
    first = fabric.client.post(
        "/v1/namespaces", json={"name": "beamline-7"}, headers=fabric.owner.headers
    )
    assert first.status_code == 201, first.text
    second = fabric.client.post(
        "/v1/namespaces", json={"name": "beamline-7"}, headers=fabric.stranger.headers
    )
    assert second.status_code == 409
    reserved = fabric.client.post(
        "/v1/namespaces", json={"name": "ns-abc"}, headers=fabric.owner.headers
    )
    assert reserved.status_code == 400
    assert reserved.json()["error"]["details"]["field"] == "name"
    stranger_delete = fabric.client.delete(
        "/v1/namespaces/beamline-7", headers=fabric.stranger.headers
    )
    assert stranger_delete.status_code == 404


def test_namespace_delete_refused_while_topics_remain(fabric: Fabric) -> None:
    headers = fabric.owner.headers
    fabric.client.post("/v1/namespaces", json={"name": "scratch"}, headers=headers)
    reply = fabric.client.post(
        "/v1/namespaces/scratch/topics", json={"name": "a.b"}, headers=headers
    )
    assert reply.status_code == 201
    refused = fabric.client.delete("/v1/namespaces/scratch", headers=headers)
    assert refused.status_code == 409
    forced = fabric.client.delete(
        "/v1/namespaces/scratch", params={"force": "true"}, headers=headers
    )
    assert forced.status_code == 204
    assert "scratch.a.b" not in fabric.container.fabric.deps.broker.list_topics()
    default = fabric.client.delete(f"/v1/namespaces/{fabric.owner.namespace}", headers=headers)
    assert default.status_code == 409


def test_quotas_name_the_limit(fabric: Fabric) -> None:
    headers = fabric.owner.headers
    fabric.client.get("/v1/me", headers=headers)
    for name in ("qa", "qb"):
        assert (
            fabric.client.post(
                "/v1/namespaces", json={"name": name + "-ns"}, headers=headers
            ).status_code
            == 201
        )
    over = fabric.client.post("/v1/namespaces", json={"name": "qc-ns"}, headers=headers)
    assert over.status_code == 429
    assert "namespaces_per_identity" in over.json()["error"]["message"]
    big = fabric.client.post(
        f"/v1/namespaces/{fabric.owner.namespace}/topics",
        json={"name": "big", "partitions": 1000},
        headers=headers,
    )
    assert big.status_code == 422
    assert "partitions_per_topic" in big.json()["error"]["message"]


def test_keys_secret_shown_once_and_hashed(fabric: Fabric) -> None:
    headers = fabric.owner.headers
    created = fabric.client.post("/v1/keys", json={"name": "laptop"}, headers=headers)
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    listed = fabric.client.get("/v1/keys", headers=headers).json()["items"]
    assert [k["name"] for k in listed] == ["laptop"]
    assert "secret" not in listed[0]
    stored = fabric.container.fabric.deps.registry.get_key(created.json()["key_id"])
    assert stored is not None and secret not in stored.model_dump_json()
    duplicate = fabric.client.post("/v1/keys", json={"name": "laptop"}, headers=headers)
    assert duplicate.status_code == 409
    fabric.client.post("/v1/keys", json={"name": "hpc"}, headers=headers)
    third = fabric.client.post("/v1/keys", json={"name": "edge"}, headers=headers)
    assert third.status_code == 429
    assert "/v1/credentials" in third.json()["error"]["message"]
    strangers = fabric.client.delete(
        f"/v1/keys/{created.json()['key_id']}", headers=fabric.stranger.headers
    )
    assert strangers.status_code == 404
    assert (
        fabric.client.delete(f"/v1/keys/{created.json()['key_id']}", headers=headers).status_code
        == 204
    )
    creds = fabric.client.post("/v1/credentials", json={}, headers=headers)
    assert creds.status_code == 201, creds.text
    assert creds.json()["session_token"]


def test_topic_reply_tells_the_callers_access(fabric: Fabric, topic_name: str) -> None:
    owner, grantee = fabric.owner, fabric.grantee
    fabric.client.get("/v1/me", headers=owner.headers)
    create_topic(fabric, topic_name)
    url = f"/v1/namespaces/{owner.namespace}/topics/{topic_name}"
    assert fabric.client.get(url, headers=owner.headers).json()["access"] == "readwrite"
    fabric.client.put(
        f"{url}/grants/{grantee.sub}", json={"access": "write"}, headers=owner.headers
    )
    shown = fabric.client.get(url, headers=grantee.headers)
    assert shown.status_code == 200
    assert shown.json()["access"] == "write"
    assert shown.json()["grants"] == []  # only the owner sees who else has access
