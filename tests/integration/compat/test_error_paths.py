"""Error paths of the compatibility routes: right status, Confluent body, precise codes."""

from __future__ import annotations

import time

import pytest
import requests

from runtime.api.routes.rest_consumers import consumer_service
from tests.integration.compat.conftest import LiveService

V2 = {"Content-Type": "application/vnd.kafka.v2+json"}


def _confluent(reply: requests.Response, status: int, code: int | None = None) -> str:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == (code if code is not None else status * 100 + 1)
    message: str = body["message"]
    return message


def test_subject_header_must_match_the_token(live: LiveService) -> None:
    alice, bob = live.alice, live.bob
    _confluent(live.call("POST", "/api/v3/user", alice, subject=bob.sub), 403)
    _confluent(live.call("GET", "/api/v3/namespace", alice, subject=None), 400)
    no_token = requests.post(f"{live.url}/api/v3/user", headers={"Subject": alice.sub}, timeout=10)
    _confluent(no_token, 401)
    assert no_token.headers["WWW-Authenticate"] == "Bearer"
    assert live.call("POST", "/api/v3/user", alice).status_code == 200


def test_strangers_namespace_is_refused(live: LiveService) -> None:
    alice, bob = live.alice, live.bob
    assert live.call("POST", f"/api/v3/{alice.namespace}/mine", alice).status_code == 200
    for method, path in [
        ("POST", f"/api/v3/{alice.namespace}/theirs"),
        ("DELETE", f"/api/v3/{alice.namespace}/mine"),
        ("PUT", f"/api/v3/{alice.namespace}/mine/recreate"),
    ]:
        _confluent(live.call(method, path, bob), 404)
    produce = live.call(
        "POST",
        f"/api/v3/{alice.namespace}/topics/mine/records",
        bob,
        json={"value": {"type": "JSON", "data": 1}},
    )
    _confluent(produce, 404)
    batch = live.call(
        "POST",
        f"/api/v3/{alice.namespace}/topics/mine/records:batch",
        alice,
        json={"entries": [{"id": "a", "value": {"type": "JSON", "data": 1}}]},
    )
    assert batch.status_code == 207 and batch.json()["successes"][0]["offset"] == 0
    # A grantee without write access: 403 (the topic is visible to it).
    grant = live.call(
        "PUT",
        f"/v1/namespaces/{alice.namespace}/topics/mine/grants/{bob.sub}",
        alice,
        json={"access": "read"},
    )
    assert grant.status_code == 200, grant.text
    produce = live.call(
        "POST",
        f"/api/v3/{alice.namespace}/topics/mine/records",
        bob,
        json={"value": {"type": "JSON", "data": 1}},
    )
    _confluent(produce, 403)
    # Invalid names come from the core's rules.
    _confluent(live.call("POST", f"/api/v3/{alice.namespace}/bad..name", alice), 400)


def _instance(live: LiveService, group: str, **settings: object) -> str:
    reply = live.call(
        "POST", f"/api/v2/consumers/{group}", live.alice, extra_headers=V2, json=settings
    )
    assert reply.status_code == 200, reply.text
    uri: str = reply.json()["base_uri"]
    return uri


def test_consumer_instance_errors(live: LiveService) -> None:
    alice, bob = live.alice, live.bob
    live.call("POST", f"/api/v3/{alice.namespace}/feed", alice)
    uri = _instance(live, "g1", name="i1", format="json")
    path = uri.removeprefix(live.url)

    # The same name again: 409 40902.
    again = live.call("POST", "/api/v2/consumers/g1", alice, extra_headers=V2, json={"name": "i1"})
    _confluent(again, 409, 40902)
    # Someone else's instance (another namespace, another Kafka group): not found.
    _confluent(live.call("GET", path + "/subscription", bob), 404, 40403)
    # Not assigned: commit and seek refuse with 409 40903.
    live.call("POST", path + "/subscription", alice, json={"topics": ["feed"]})
    commit = live.call(
        "POST",
        path + "/offsets",
        alice,
        json={"offsets": [{"topic": "feed", "partition": 0, "offset": 1}]},
    )
    _confluent(commit, 409, 40903)
    # A binary Accept on a json instance: 406.
    binary = {"Accept": "application/vnd.kafka.binary.v2+json"}
    wrong = live.call("GET", path + "/records", alice, extra_headers=binary)
    _confluent(wrong, 406, 40601)
    # A topic the caller cannot read: 404.
    _confluent(live.call("POST", path + "/subscription", alice, json={"topics": ["missing"]}), 404)
    # Deleted: 40403 afterwards.
    assert live.call("DELETE", path, alice).status_code == 204
    _confluent(live.call("GET", path + "/subscription", alice), 404, 40403)
    _confluent(live.call("DELETE", path, alice), 404, 40403)


def test_idle_instance_expires(live: LiveService) -> None:
    assert live.container is not None
    consumer_service(live.container).idle_seconds = 1
    path = _instance(live, "g2", name="sleepy").removeprefix(live.url)
    assert live.call("GET", path + "/subscription", live.alice).status_code == 200
    time.sleep(1.3)
    _confluent(live.call("GET", path + "/subscription", live.alice), 404, 40403)


def test_revoked_grant_stops_reads(live: LiveService) -> None:
    alice, bob = live.alice, live.bob
    live.call("POST", f"/api/v3/{alice.namespace}/shared", alice)
    live.call(
        "POST",
        f"/api/v3/{alice.namespace}/topics/shared/records",
        alice,
        json={"value": {"type": "STRING", "data": "plain text"}},
    )
    grant_path = f"/v1/namespaces/{alice.namespace}/topics/shared/grants/{bob.sub}"
    read_path = f"/v1/namespaces/{alice.namespace}/topics/shared/records?offset=0&timeout_ms=500"
    assert live.call("GET", read_path, bob).status_code == 404
    live.call("PUT", grant_path, alice, json={"access": "read"})
    page = live.call("GET", read_path, bob).json()
    [record] = page["records"]
    assert record["value"] == "cGxhaW4gdGV4dA=="  # base64 of the bytes as written
    assert "value_json" not in record  # not JSON
    assert page["next_offset"] == 1 and page["high_watermark"] == 1
    assert live.call("DELETE", grant_path, alice).status_code == 204
    refused = live.call("GET", read_path, bob)
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("query", ["partition=3", "offset=-1", "limit=0"])
def test_http_consume_validates_its_query(live: LiveService, query: str) -> None:
    alice = live.alice
    live.call("POST", f"/api/v3/{alice.namespace}/checked", alice)
    reply = live.call(
        "GET", f"/v1/namespaces/{alice.namespace}/topics/checked/records?{query}", alice
    )
    assert reply.status_code == 422, reply.text
