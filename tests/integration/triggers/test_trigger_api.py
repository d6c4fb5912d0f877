"""The /v1/triggers contract: ownership, topic access, quota, validation, idempotency."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import pytest

from runtime.adapters.aws.lambda_triggers import LambdaTriggerPlatform
from runtime.domain.models import TopicState
from tests.integration.triggers.conftest import TriggerFabric, zip_base64


@pytest.fixture
def trigger_limits() -> dict[str, Any]:
    return {"per_identity": 2, "max_memory_mb": 512, "max_timeout_seconds": 30}


def webhook_body(
    fabric: TriggerFabric, topic: str, namespace: str | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "hook",
        "namespace": namespace or fabric.owner.namespace,
        "topic": topic,
        "kind": "webhook",
        "webhook": {"url": "http://127.0.0.1:9/hook"},
    }
    body.update(extra)
    return body


def function_body(fabric: TriggerFabric, topic: str, **function: Any) -> dict[str, Any]:
    return {
        "name": "fn",
        "namespace": fabric.owner.namespace,
        "topic": topic,
        "kind": "function",
        "function": {
            "runtime": "python3.13",
            "handler": "app.handler",
            "code_base64": zip_base64({"app.py": "def handler(e, c):\n    return 1\n"}),
            **function,
        },
    }


def test_strangers_cannot_see_or_change_a_trigger(trigger_fabric: TriggerFabric) -> None:
    fabric = trigger_fabric
    topic = fabric.create_topic()
    trigger_id = fabric.create_trigger(**webhook_body(fabric, topic))["trigger_id"]
    stranger = fabric.stranger.headers
    path = f"/v1/triggers/{trigger_id}"
    missing = "/v1/triggers/doesnotexist0000000000"
    for method, url, body in (
        ("GET", path, None),
        ("PATCH", path, {"enabled": False}),
        ("DELETE", path, None),
        ("GET", f"{path}/logs", None),
        ("GET", f"{path}/dead-letters", None),
    ):
        reply = fabric.client.request(method, url, json=body, headers=stranger)
        assert reply.status_code == 404, (method, url, reply.text)
        # The same answer as for a trigger that does not exist: nothing is revealed.
        absent = fabric.client.request(
            method, url.replace(path, missing), json=body, headers=stranger
        )
        assert absent.status_code == 404
        assert reply.json()["error"]["code"] == absent.json()["error"]["code"] == "not_found"
    assert fabric.client.get("/v1/triggers", headers=stranger).json()["items"] == []
    assert fabric.get_trigger(trigger_id)["enabled"] is True  # untouched


def test_topic_needs_read_access(trigger_fabric: TriggerFabric) -> None:
    fabric = trigger_fabric
    topic = fabric.create_topic()
    owner_ns = fabric.owner.namespace
    # No access at all: the topic's existence is not revealed.
    reply = fabric.client.post(
        "/v1/triggers", json=webhook_body(fabric, topic, owner_ns), headers=fabric.stranger.headers
    )
    assert reply.status_code == 404
    # Write-only grant: known, but not enough.
    grant = fabric.client.put(
        f"/v1/namespaces/{owner_ns}/topics/{topic}/grants/{fabric.grantee.sub}",
        json={"access": "write"},
        headers=fabric.owner.headers,
    )
    assert grant.status_code in (200, 201), grant.text
    reply = fabric.client.post(
        "/v1/triggers", json=webhook_body(fabric, topic, owner_ns), headers=fabric.grantee.headers
    )
    assert reply.status_code == 403
    # A read grant is enough; the grantee owns the trigger, its group is under its namespace.
    fabric.client.put(
        f"/v1/namespaces/{owner_ns}/topics/{topic}/grants/{fabric.grantee.sub}",
        json={"access": "read"},
        headers=fabric.owner.headers,
    )
    created = fabric.create_trigger(fabric.grantee, **webhook_body(fabric, topic, owner_ns))
    assert created["owner"] == fabric.grantee.sub
    assert (
        created["consumer_group"] == f"{fabric.grantee.namespace}.trigger-{created['trigger_id']}"
    )
    # The topic owner does not see (or control) the grantee's trigger.
    assert (
        fabric.client.get(
            f"/v1/triggers/{created['trigger_id']}", headers=fabric.owner.headers
        ).status_code
        == 404
    )
    # Revoked: the next change is refused (access is checked again on every deploy).
    revoke = fabric.client.delete(
        f"/v1/namespaces/{owner_ns}/topics/{topic}/grants/{fabric.grantee.sub}",
        headers=fabric.owner.headers,
    )
    assert revoke.status_code == 204
    patch = fabric.client.patch(
        f"/v1/triggers/{created['trigger_id']}",
        json={"batch_size": 10},
        headers=fabric.grantee.headers,
    )
    assert patch.status_code == 404
    # A topic that does not exist.
    reply = fabric.client.post(
        "/v1/triggers", json=webhook_body(fabric, "no.such.topic"), headers=fabric.owner.headers
    )
    assert reply.status_code == 404


def test_quota_per_identity(trigger_fabric: TriggerFabric) -> None:
    fabric = trigger_fabric
    topic = fabric.create_topic()
    first = fabric.create_trigger(**webhook_body(fabric, topic))
    fabric.create_trigger(**webhook_body(fabric, topic))
    third = fabric.client.post(
        "/v1/triggers", json=webhook_body(fabric, topic), headers=fabric.owner.headers
    )
    assert third.status_code == 429
    assert "trigger" in third.json()["error"]["message"]
    # Deleting one frees a slot.
    assert (
        fabric.client.delete(
            f"/v1/triggers/{first['trigger_id']}", headers=fabric.owner.headers
        ).status_code
        == 204
    )
    assert (
        fabric.client.get(
            f"/v1/triggers/{first['trigger_id']}", headers=fabric.owner.headers
        ).status_code
        == 404
    )
    fabric.create_trigger(**webhook_body(fabric, topic))


BAD_ZIP = base64.b64encode(b"not a zip").decode()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "lambda"}, "kind"),
        ({"name": ""}, "name"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 100_000}, "batch_size"),
        ({"batching_window_seconds": 301}, "batching_window_seconds"),
        ({"max_retries": -1}, "max_retries"),
        ({"starting_position": "AT_TIMESTAMP"}, "starting_timestamp"),
        ({"starting_position": "EARLIEST"}, "starting_position"),
        ({"filters": [{"value": {"n": [{"wildcard": "a*"}]}}]}, "filters[0]"),
        ({"filters": [{"value": {"n": [1]}}, {"key": ["k"]}]}, "filters[1]"),
        ({"filters": ["{not json"]}, "filters[0]"),
        ({"webhook": {"url": "http://169.254.169.254/latest/meta-data/"}}, "webhook.url"),
        ({"webhook": {"url": "ftp://example.org/x"}}, "webhook.url"),
        (
            {"webhook": {"url": "http://127.0.0.1:9/x", "headers": {"X-Octopus-Signature": "x"}}},
            "webhook.headers",
        ),
        ({"webhook": None}, "webhook"),
    ],
)
def test_webhook_validation_names_the_field(
    trigger_fabric: TriggerFabric, change: dict[str, Any], field: str
) -> None:
    fabric = trigger_fabric
    topic = fabric.create_topic()
    reply = fabric.client.post(
        "/v1/triggers", json=webhook_body(fabric, topic, **change), headers=fabric.owner.headers
    )
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["details"].get("field") == field or field in error["details"].get("fields", []), (
        error
    )
    assert error["message"].startswith(field), error


@pytest.mark.parametrize(
    ("function", "field", "status"),
    [
        ({"runtime": "python2.7"}, "function.runtime", 422),
        ({"runtime": "nodejs20.x"}, "function.runtime", 422),
        ({"handler": "handler"}, "function.handler", 422),
        ({"handler": "missing.handler"}, "function.handler", 422),
        ({"memory_mb": 64}, "function.memory_mb", 422),
        ({"memory_mb": 1024}, "function.memory_mb", 422),
        ({"timeout_seconds": 31}, "function.timeout_seconds", 422),
        ({"environment": {"AWS_REGION": "x"}}, "function.environment.AWS_REGION", 422),
        ({"environment": {"BIG": "x" * 5000}}, "function.environment", 422),
        ({"code_base64": BAD_ZIP}, "function.code_base64", 422),
        ({"code_base64": "%%%"}, "function.code_base64", 422),
        (
            {"code_base64": zip_base64({"../evil.py": "x", "app.py": "x"})},
            "function.code_base64",
            422,
        ),
    ],
)
def test_function_validation_names_the_field(
    trigger_fabric: TriggerFabric, function: dict[str, Any], field: str, status: int
) -> None:
    fabric = trigger_fabric
    topic = fabric.create_topic()
    reply = fabric.client.post(
        "/v1/triggers", json=function_body(fabric, topic, **function), headers=fabric.owner.headers
    )
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["details"]["field"] == field
    assert reply.json()["error"]["message"].startswith(field)


def test_list_get_patch_and_idempotent_create(trigger_fabric: TriggerFabric) -> None:
    fabric = trigger_fabric
    topic_a = fabric.create_topic()
    topic_b = fabric.create_topic()
    headers = {**fabric.owner.headers, "Idempotency-Key": "create-hook-1"}
    body = webhook_body(fabric, topic_a, filters=[{"value": {"ok": [True]}}])
    first = fabric.client.post("/v1/triggers", json=body, headers=headers)
    again = fabric.client.post("/v1/triggers", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["webhook_secret"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["trigger_id"] == first.json()["trigger_id"]
    assert again.json()["webhook_secret"] is None  # shown once; never stored
    second = fabric.create_trigger(**webhook_body(fabric, topic_b))

    items = fabric.all_pages("/v1/triggers")
    assert {t["trigger_id"] for t in items} == {first.json()["trigger_id"], second["trigger_id"]}
    only_b = fabric.client.get(
        "/v1/triggers",
        params={"namespace": fabric.owner.namespace, "topic": topic_b},
        headers=fabric.owner.headers,
    )
    assert [t["trigger_id"] for t in only_b.json()["items"]] == [second["trigger_id"]]
    page = fabric.client.get(
        "/v1/triggers", params={"limit": 1}, headers=fabric.owner.headers
    ).json()
    assert len(page["items"]) == 1 and page["next_cursor"]

    trigger_id = first.json()["trigger_id"]
    patched = fabric.client.patch(
        f"/v1/triggers/{trigger_id}",
        json={"enabled": False, "batch_size": 7, "filters": ['{"value": [{"prefix": "ERR"}]}']},
        headers=fabric.owner.headers,
    )
    assert patched.status_code == 200, patched.text
    out = patched.json()
    assert out["enabled"] is False and out["state"] == "disabled" and out["batch_size"] == 7
    assert out["filters"] == ['{"value": [{"prefix": "ERR"}]}']
    bad = fabric.client.patch(
        f"/v1/triggers/{trigger_id}", json={"batch_size": 0}, headers=fabric.owner.headers
    )
    assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == "batch_size"
    code = fabric.client.patch(
        f"/v1/triggers/{trigger_id}",
        json={"function": {"code_base64": BAD_ZIP}},
        headers=fabric.owner.headers,
    )
    assert code.status_code == 422
    assert code.json()["error"]["details"]["field"] == "function.code_base64"
    unknown = fabric.client.patch(
        f"/v1/triggers/{trigger_id}", json={"topic": "x"}, headers=fabric.owner.headers
    )
    assert unknown.status_code == 422


def test_openapi_lists_the_trigger_routes(trigger_fabric: TriggerFabric) -> None:
    from fastapi import FastAPI

    from runtime.api.routes import triggers

    # The trigger routes' own OpenAPI (the whole app's also holds other layers' routes).
    alone = FastAPI()
    alone.include_router(triggers.router)
    paths = alone.openapi()["paths"]
    documented = {(path, method.upper()) for path, item in paths.items() for method in item}
    assert documented == {
        ("/v1/triggers", "GET"),
        ("/v1/triggers", "POST"),
        ("/v1/triggers/{trigger_id}", "GET"),
        ("/v1/triggers/{trigger_id}", "PATCH"),
        ("/v1/triggers/{trigger_id}", "DELETE"),
        ("/v1/triggers/{trigger_id}/logs", "GET"),
        ("/v1/triggers/{trigger_id}/dead-letters", "GET"),
        ("/v1/triggers/code-uploads", "POST"),
        ("/v1/triggers/code-uploads/{upload_id}", "PUT"),
    }
    for path, method in documented:  # served by the app: asks for a token, not a 404/405
        concrete = path.replace("{trigger_id}", "0123456789abcdef0123")
        concrete = concrete.replace("{upload_id}", "0123456789abcdef0123456789abcdef")
        assert trigger_fabric.client.request(method, concrete).status_code == 401
    create = paths["/v1/triggers"]["post"]["responses"]
    assert {"201", "403", "404", "409", "422", "429"} <= set(create)


def test_deleting_a_topic_removes_its_triggers(trigger_fabric: TriggerFabric) -> None:
    fabric = trigger_fabric
    owner_ns = fabric.owner.namespace
    topic = fabric.create_topic()
    other = fabric.create_topic(name=f"{topic}x")  # its name starts with the doomed one's
    doomed = fabric.create_trigger(**webhook_body(fabric, topic))["trigger_id"]
    kept = fabric.create_trigger(**webhook_body(fabric, other))["trigger_id"]
    # A reader's trigger on the topic is the reader's, and goes with the topic too.
    grant = fabric.client.put(
        f"/v1/namespaces/{owner_ns}/topics/{topic}/grants/{fabric.grantee.sub}",
        json={"access": "read"},
        headers=fabric.owner.headers,
    )
    assert grant.status_code in (200, 201), grant.text
    readers = fabric.create_trigger(fabric.grantee, **webhook_body(fabric, topic, owner_ns))
    url = f"/v1/namespaces/{owner_ns}/topics/{topic}"
    assert fabric.client.delete(url, headers=fabric.owner.headers).status_code == 204
    gone = fabric.client.get(f"/v1/triggers/{doomed}", headers=fabric.owner.headers)
    assert gone.status_code == 404
    readers_gone = fabric.client.get(
        f"/v1/triggers/{readers['trigger_id']}", headers=fabric.grantee.headers
    )
    assert readers_gone.status_code == 404
    assert fabric.client.get("/v1/triggers", headers=fabric.grantee.headers).json()["items"] == []
    assert (
        fabric.client.get(f"/v1/triggers/{kept}", headers=fabric.owner.headers).status_code == 200
    )


@pytest.mark.parametrize("trigger_limits", [{"per_identity": 10}])
def test_a_page_asks_the_platform_for_live_states_a_few_at_a_time(
    trigger_fabric: TriggerFabric, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Lambda each live status is two API calls: a page must not ask them one by one."""
    fabric = trigger_fabric
    topic = fabric.create_topic()
    made = [fabric.create_trigger(**webhook_body(fabric, topic, name=f"h{i}")) for i in range(6)]
    fabric.client.patch(  # one with a state of its own, to see that states stay with their trigger
        f"/v1/triggers/{made[2]['trigger_id']}",
        json={"enabled": False},
        headers=fabric.owner.headers,
    )
    platform = fabric.container.extras["triggers"].platform
    real_status = platform.status
    lock = threading.Lock()
    in_flight = 0
    most_in_flight = 0

    def slow_status(trigger: Any) -> Any:
        nonlocal in_flight, most_in_flight
        with lock:
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
        try:
            time.sleep(0.1)  # a control-plane round trip
            return real_status(trigger)
        finally:
            with lock:
                in_flight -= 1

    monkeypatch.setattr(platform, "status", slow_status)
    # The local platform's statuses are local reads (one at a time); Lambda's are round trips.
    assert platform.status_concurrency == 1
    monkeypatch.setattr(platform, "status_concurrency", LambdaTriggerPlatform.status_concurrency)
    reply = fabric.client.get(
        "/v1/triggers",
        params={"namespace": fabric.owner.namespace, "topic": topic},
        headers=fabric.owner.headers,
    )
    assert reply.status_code == 200, reply.text
    listed = reply.json()["items"]
    assert most_in_flight > 1
    # Same order and the same states as asking one trigger at a time.
    stored = fabric.container.extras["triggers"]._deps.registry.list_triggers(
        fabric.owner.sub, namespace=fabric.owner.namespace, topic=topic
    )
    assert [t["trigger_id"] for t in listed] == [t.trigger_id for t in stored.items]
    assert len(listed) == len(made)
    one_by_one = {t["trigger_id"]: fabric.get_trigger(t["trigger_id"])["state"] for t in made}
    assert {t["trigger_id"]: t["state"] for t in listed} == one_by_one
    assert one_by_one[made[2]["trigger_id"]] == "disabled"


def test_a_topic_delete_between_a_creates_check_and_its_write_leaves_no_trigger(
    trigger_fabric: TriggerFabric, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete's lookup of the topic's triggers ran before this trigger was written: the
    create must see the topic going and take its trigger back, not leave it bound to nothing."""
    fabric = trigger_fabric
    topic = fabric.create_topic()
    service = fabric.container.extras["triggers"]
    registry = service._deps.registry
    real_create = registry.create_trigger

    def delete_claims_the_topic_first(trigger: Any, *, limit: int) -> None:
        current = registry.get_topic(fabric.owner.namespace, topic)
        registry.update_topic(
            current.model_copy(update={"state": TopicState.DELETING}),
            expected_version=current.version,
            partition_limit=1000,
        )
        real_create(trigger, limit=limit)

    monkeypatch.setattr(registry, "create_trigger", delete_claims_the_topic_first)
    reply = fabric.client.post(
        "/v1/triggers", json=webhook_body(fabric, topic), headers=fabric.owner.headers
    )
    assert reply.status_code == 409, reply.text
    assert "deleting" in reply.json()["error"]["message"]
    assert registry.list_triggers_on_topic(fabric.owner.namespace, topic) == []
    assert fabric.client.get("/v1/triggers", headers=fabric.owner.headers).json()["items"] == []


def test_a_topic_delete_during_the_deploy_leaves_nothing_deployed(
    trigger_fabric: TriggerFabric, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete found the trigger and removed it while the platform was deploying it: the
    create must not leave the platform's part behind, nor claim success."""
    fabric = trigger_fabric
    topic = fabric.create_topic()
    service = fabric.container.extras["triggers"]
    platform, registry = service.platform, service._deps.registry
    real_deploy = platform.deploy
    deployed_ids: list[str] = []

    def topic_deleted_meanwhile(trigger: Any, **kwargs: Any) -> Any:
        status = real_deploy(trigger, **kwargs)
        deployed_ids.append(trigger.trigger_id)
        assert platform.store.deployment(trigger.trigger_id) is not None
        registry.delete_trigger(trigger.trigger_id)  # what the topic delete's lookup did
        return status

    monkeypatch.setattr(platform, "deploy", topic_deleted_meanwhile)
    reply = fabric.client.post(
        "/v1/triggers", json=webhook_body(fabric, topic), headers=fabric.owner.headers
    )
    assert reply.status_code == 409, reply.text
    assert "was deleted while the trigger was being created" in reply.json()["error"]["message"]
    assert [t.trigger_id for t in registry.iter_all_triggers()] == []
    # What the platform deployed (locally: the runner's deployment) is gone as well.
    (trigger_id,) = deployed_ids
    assert platform.store.deployment(trigger_id) is None
