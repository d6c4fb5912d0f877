"""Bad input gets a clear JSON error with the right status; never a trace, never a 200."""

from __future__ import annotations

import json
import logging

import pytest

from tests.integration.api.conftest import Fabric


def assert_error(reply, status: int, code: str | None = None) -> dict:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"error"}
    assert "Traceback" not in reply.text
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def test_bad_json_is_400(fabric: Fabric) -> None:
    reply = fabric.client.post(
        "/v1/namespaces",
        content=b"{not json",
        headers={**fabric.owner.headers, "Content-Type": "application/json"},
    )
    assert_error(reply, 400, "bad_json")


def test_wrong_type_names_the_field(fabric: Fabric) -> None:
    reply = fabric.client.post(
        f"/v1/namespaces/{fabric.owner.namespace}/topics",
        json={"name": "a", "partitions": "many"},
        headers=fabric.owner.headers,
    )
    error = assert_error(reply, 422, "invalid_request")
    assert "partitions" in error["message"]


def test_unknown_body_field_is_refused(fabric: Fabric) -> None:
    reply = fabric.client.post(
        "/v1/namespaces", json={"name": "abc-d", "nmae": 1}, headers=fabric.owner.headers
    )
    assert "nmae" in assert_error(reply, 422)["message"]


@pytest.mark.parametrize("name", ["", "a..b", ".a", "a.", "a b", "ä", "x" * 250])
def test_invalid_topic_names(fabric: Fabric, name: str) -> None:
    fabric.client.get("/v1/me", headers=fabric.owner.headers)
    reply = fabric.client.post(
        f"/v1/namespaces/{fabric.owner.namespace}/topics",
        json={"name": name},
        headers=fabric.owner.headers,
    )
    error = assert_error(reply, 400, "invalid_name")
    assert error["details"]["field"] == "name"


def test_kafka_collision_is_refused(fabric: Fabric) -> None:
    fabric.client.get("/v1/me", headers=fabric.owner.headers)
    url = f"/v1/namespaces/{fabric.owner.namespace}/topics"
    assert (
        fabric.client.post(url, json={"name": "a.b"}, headers=fabric.owner.headers).status_code
        == 201
    )
    assert_error(fabric.client.post(url, json={"name": "a_b"}, headers=fabric.owner.headers), 409)


def test_config_keys_outside_the_allowed_list(fabric: Fabric) -> None:
    fabric.client.get("/v1/me", headers=fabric.owner.headers)
    reply = fabric.client.post(
        f"/v1/namespaces/{fabric.owner.namespace}/topics",
        json={"name": "c", "configs": {"unclean.leader.election.enable": "true"}},
        headers=fabric.owner.headers,
    )
    assert "unclean.leader.election.enable" in assert_error(reply, 422)["message"]


def test_oversize_body_is_413(fabric: Fabric) -> None:
    big = "x" * (fabric.settings.max_body_bytes + 10)
    reply = fabric.client.post("/v1/namespaces", json={"name": big}, headers=fabric.owner.headers)
    assert_error(reply, 413, "payload_too_large")


def test_unknown_route_and_method_are_json(fabric: Fabric) -> None:
    assert_error(fabric.client.get("/v1/nope", headers=fabric.owner.headers), 404)
    assert_error(fabric.client.put("/v1/me", headers=fabric.owner.headers), 405)


def test_missing_and_malformed_tokens(fabric: Fabric) -> None:
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer nope"},
    ):
        reply = fabric.client.get("/v1/me", headers=headers)
        assert_error(reply, 401, "unauthenticated")
        assert reply.headers["www-authenticate"] == "Bearer"


def test_grant_to_a_non_identity(fabric: Fabric) -> None:
    fabric.client.get("/v1/me", headers=fabric.owner.headers)
    url = f"/v1/namespaces/{fabric.owner.namespace}/topics"
    fabric.client.post(url, json={"name": "g"}, headers=fabric.owner.headers)
    reply = fabric.client.put(
        f"{url}/g/grants/not-a-uuid", json={"access": "read"}, headers=fabric.owner.headers
    )
    assert assert_error(reply, 400, "invalid_name")["details"]["field"] == "identity"
    bad_access = fabric.client.put(
        f"{url}/g/grants/{fabric.grantee.sub}",
        json={"access": "admin"},
        headers=fabric.owner.headers,
    )
    assert "access" in assert_error(bad_access, 422)["message"]


def test_every_mutation_is_audited(fabric: Fabric, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="octopus.audit")
    fabric.client.post("/v1/namespaces", json={"name": "audited"}, headers=fabric.owner.headers)
    fabric.client.post("/v1/namespaces", json={"name": "audited"}, headers=fabric.stranger.headers)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "octopus.audit"]
    assert [(line["identity"], line["outcome"], line["status"]) for line in lines] == [
        (fabric.owner.sub, "ok", 201),
        (fabric.stranger.sub, "refused", 409),
    ]
    assert lines[0]["action"] == "POST /v1/namespaces"
