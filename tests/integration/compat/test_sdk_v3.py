# mypy: disable-error-code="no-untyped-call"
"""Issue 3's done-when: the installed ``diaspora-event-sdk`` works against our service."""

from __future__ import annotations

import pytest
from diaspora_event_sdk.sdk.web_client import WebAPIError

from tests.integration.compat.conftest import LiveService
from tests.integration.compat.sdk_client import sdk_client


def test_sdk_keys_namespaces_topics_and_produce(
    live: LiveService, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = live.alice
    client = sdk_client(live, alice, monkeypatch)
    assert client.namespace == alice.namespace

    user = client.create_user()
    assert user == {
        "status": "success",
        "message": f"User {alice.sub} created with namespace {alice.namespace}",
        "subject": alice.sub,
        "namespace": alice.namespace,
    }

    first = client.create_key()
    assert first["status"] == "success"
    assert first["secret_key"] and first["access_key"] and first["create_date"]
    assert first["endpoint"] == live.settings.bootstrap_servers
    second = client.create_key()  # force refresh: the old key is replaced, not added to
    assert second["access_key"] != first["access_key"]
    keys = live.call("GET", "/v1/keys", alice).json()["items"]
    assert [k["key_id"] for k in keys] == [second["access_key"]]

    created = client.create_topic("events")
    assert created["status"] == "success"
    assert "events" in created["topics"]
    again = client.create_topic("events")
    assert again["status"] == "success" and "already exists" in again["message"]
    listed = client.list_namespaces()
    assert listed["status"] == "success"
    assert listed["namespaces"] == {alice.namespace: ["events"]}

    one = client.produce("events", {"n": 0}, key="k0", headers={"trace": "abc"})
    assert (one["topic_name"], one["partition_id"], one["offset"]) == ("events", 0, 0)
    batch = client.produce_batch("events", [{"value": {"n": i}, "key": f"k{i}"} for i in (1, 2, 3)])
    assert not batch["failures"]
    assert sorted(s["offset"] for s in batch["successes"]) == [1, 2, 3]

    page = live.call(
        "GET", f"/v1/namespaces/{alice.namespace}/topics/events/records?offset=0", alice
    ).json()
    assert [r["value_json"] for r in page["records"]] == [{"n": i} for i in range(4)]
    assert page["next_offset"] == 4 and page["high_watermark"] == 4

    assert client.recreate_topic("events") == {"status": "success", "message": "Topic recreated"}
    page = live.call(
        "GET", f"/v1/namespaces/{alice.namespace}/topics/events/records?timeout_ms=300", alice
    ).json()
    assert page["records"] == []

    deleted = client.delete_topic("events")
    assert deleted["status"] == "success" and deleted["topics"] == []
    assert (
        client.delete_topic("events")["message"] == f"Topic events not found in {alice.namespace}"
    )
    assert client.delete_key() == {
        "status": "success",
        "message": f"Access key deleted for {alice.sub}",
    }
    assert live.call("GET", "/v1/keys", alice).json()["items"] == []


def test_sdk_errors_carry_status_and_confluent_code(
    live: LiveService, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = live.alice, live.bob
    sdk_client(live, alice, monkeypatch).create_topic("private")
    client = sdk_client(live, bob, monkeypatch)
    # A stranger's namespace: not visible (404), never a 200 with status "failure".
    with pytest.raises(WebAPIError) as refused:
        client.produce("private", {"x": 1}, namespace=alice.namespace)
    assert refused.value.http_status == 404
    assert refused.value.error_code == 40401
    with pytest.raises(WebAPIError) as refused:
        client.web_client.delete_topic(bob.sub, alice.namespace, "private")
    assert refused.value.http_status == 404
    with pytest.raises(WebAPIError) as refused:
        client.produce("nowhere", {"x": 1})
    assert refused.value.http_status == 404
