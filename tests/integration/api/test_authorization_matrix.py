"""Every route, for every kind of caller: the right status, decided before any side effect.

Roles: the namespace owner; a reader (read grant on the topic); a stranger
(authenticated, no grant); anonymous (no token); a bad token. A stranger gets
404 where existence must not leak; a reader gets 403 where it knows the
resource but lacks the right.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.integration.api.conftest import Fabric

TOPIC = "matrix.topic"
RECORD = {"value": {"type": "JSON", "data": {"x": 1}}}


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: dict | None
    owner: int
    reader: int
    stranger: int


CASES = [
    Case("GET", "/v1/me", None, 200, 200, 200),
    Case("GET", "/v1/fabric", None, 200, 200, 200),
    Case("GET", "/v1/keys", None, 200, 200, 200),
    Case("POST", "/v1/keys", {"name": "k"}, 201, 201, 201),
    Case("DELETE", "/v1/keys/{key_id}", None, 204, 404, 404),
    Case("POST", "/v1/credentials", {}, 201, 201, 201),
    Case("GET", "/v1/namespaces", None, 200, 200, 200),
    Case("POST", "/v1/namespaces", {"name": "matrix-{role}"}, 201, 201, 201),
    Case("DELETE", "/v1/namespaces/{ns}", None, 409, 403, 404),
    Case("POST", "/v1/namespaces/{ns}/topics", {"name": "new.one"}, 201, 403, 404),
    Case("GET", "/v1/namespaces/{ns}/topics", None, 200, 200, 404),
    Case("GET", "/v1/namespaces/{ns}/topics/{topic}", None, 200, 200, 404),
    Case(
        "PATCH",
        "/v1/namespaces/{ns}/topics/{topic}",
        {"configs": {"retention.ms": "1000"}},
        200,
        403,
        404,
    ),
    Case("POST", "/v1/namespaces/{ns}/topics/{topic}/partitions", {"count": 3}, 409, 403, 404),
    Case("POST", "/v1/namespaces/{ns}/topics/{topic}/recreate", None, 200, 403, 404),
    Case("DELETE", "/v1/namespaces/{ns}/topics/{topic}", None, 204, 403, 404),
    Case("GET", "/v1/namespaces/{ns}/topics/{topic}/grants", None, 200, 403, 404),
    Case(
        "PUT",
        "/v1/namespaces/{ns}/topics/{topic}/grants/{other}",
        {"access": "read"},
        200,
        403,
        404,
    ),
    Case("DELETE", "/v1/namespaces/{ns}/topics/{topic}/grants/{reader}", None, 204, 403, 404),
    Case("GET", "/v1/namespaces/{ns}/grants", None, 200, 403, 404),
    Case(
        "PUT",
        "/v1/namespaces/{ns}/grants/{other}",
        {"prefix": "matrix", "access": "read"},
        200,
        403,
        404,
    ),
    Case("DELETE", "/v1/namespaces/{ns}/grants/{reader}?prefix=matrix", None, 204, 403, 404),
    Case("POST", "/v1/namespaces/{ns}/topics/{topic}/records", RECORD, 200, 403, 404),
    Case(
        "POST",
        "/v1/namespaces/{ns}/topics/{topic}/records:batch",
        {"entries": [{"id": "1", **RECORD}]},
        207,
        403,
        404,
    ),
    Case("POST", "/v1/admin/reconcile", None, 200, 403, 403),
]

ROLES = ["owner", "reader", "stranger", "anonymous", "bad-token"]


def _setup(fabric: Fabric) -> dict[str, str]:
    owner, reader = fabric.owner, fabric.grantee
    client = fabric.client
    client.get("/v1/me", headers=reader.headers)
    ns = owner.namespace
    assert (
        client.post(
            f"/v1/namespaces/{ns}/topics", json={"name": TOPIC}, headers=owner.headers
        ).status_code
        == 201
    )
    topic_url = f"/v1/namespaces/{ns}/topics/{TOPIC}"
    assert (
        client.put(
            f"{topic_url}/grants/{reader.sub}", json={"access": "read"}, headers=owner.headers
        ).status_code
        == 200
    )
    prefix = client.put(
        f"/v1/namespaces/{ns}/grants/{reader.sub}",
        json={"prefix": "matrix", "access": "read"},
        headers=owner.headers,
    )
    assert prefix.status_code == 200
    key = client.post("/v1/keys", json={"name": "owner-key"}, headers=owner.headers)
    assert key.status_code == 201
    return {
        "ns": ns,
        "topic": TOPIC,
        "reader": reader.sub,
        "other": fabric.stranger.sub,
        "key_id": key.json()["key_id"],
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.path}")
def test_route_answers_each_role(fabric: Fabric, case: Case, role: str) -> None:
    values = _setup(fabric)
    path = case.path.format(**values)
    body = None
    if case.body is not None:
        body = {
            k: (v.format(role=role.replace("-", "")) if isinstance(v, str) else v)
            for k, v in case.body.items()
        }
    headers = {
        "owner": fabric.owner.headers,
        "reader": fabric.grantee.headers,
        "stranger": fabric.stranger.headers,
        "anonymous": {},
        "bad-token": {"Authorization": "Bearer not-a-real-token"},
    }[role]
    before = _state(fabric)
    reply = fabric.client.request(case.method, path, json=body, headers=headers)
    expected = {"owner": case.owner, "reader": case.reader, "stranger": case.stranger}.get(
        role, 401
    )
    assert reply.status_code == expected, (
        f"{role} {case.method} {path}: {reply.status_code} {reply.text}"
    )
    if expected >= 400:
        assert set(reply.json()) == {"error"}
        assert reply.json()["error"]["code"]
        # A refusal changes nothing: registry and broker are as they were.
        assert _state(fabric) == before


def _state(fabric: Fabric) -> tuple:
    deps = fabric.container.fabric.deps
    registry = deps.registry
    topics = tuple(
        sorted(
            (t.kafka_name, t.state.value, tuple(sorted(t.configs.items())))
            for t in registry.iter_all_topics()
        )
    )
    grants = tuple(
        sorted(
            (g.namespace, g.kind.value, g.target, g.grantee, g.access.value)
            for g in registry.list_grants(fabric.owner.namespace)
        )
    )
    keys = tuple(sorted(k.key_id for k in registry.list_keys(fabric.owner.sub)))
    broker_topics = tuple(
        sorted(t for t in deps.broker.list_topics() if t.startswith(fabric.owner.namespace))
    )
    return topics, grants, keys, broker_topics
