"""The SDK's HTTP layer against a real HTTP server on 127.0.0.1 with scripted replies."""

from __future__ import annotations

import socket
import uuid

import pytest
from octopus_client import (
    AuthError,
    ConflictError,
    Fabric,
    FabricAPIError,
    ForbiddenError,
    NotFoundError,
    QuotaError,
    UnavailableError,
    ValidationError,
)
from octopus_client._http import RetryPolicy

from tests.unit.client.client_fake_api import NOW, FakeAPI, Reply, grant_body, me_body, topic_body


def make_fabric(api: FakeAPI, **kwargs) -> Fabric:
    delays: list[float] = []
    retry = RetryPolicy(attempts=3, base_delay=0.01)
    fabric = Fabric(api.url, "tok-1", retry=retry, sleep=delays.append, **kwargs)
    fabric.test_delays = delays  # type: ignore[attr-defined]
    return fabric


def error(status: int, code: str, message: str = "boom", **details) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message, "details": details}})


def test_bearer_token_and_user_agent_are_sent(api: FakeAPI) -> None:
    api.reply("GET", "/v1/me", me_body())
    me = make_fabric(api).me()
    assert me.default_namespace == "ns-abc"
    seen = api.calls("GET", "/v1/me")[0]
    assert seen.headers["authorization"] == "Bearer tok-1"
    assert "octopus-fabric-client/" in seen.headers["user-agent"]
    assert "idempotency-key" not in seen.headers


def test_every_mutating_call_sends_a_fresh_uuid4_idempotency_key(api: FakeAPI) -> None:
    api.reply("POST", "/v1/namespaces/ns-abc/topics", Reply(201, topic_body()))
    fabric = make_fabric(api)
    fabric.create_topic("ns-abc", "sensors.temp", partitions=2, configs={"retention.ms": "1000"})
    fabric.create_topic("ns-abc", "sensors.temp")
    first, second = api.calls("POST")
    assert first.body == {
        "name": "sensors.temp",
        "partitions": 2,
        "configs": {"retention.ms": "1000"},
    }
    keys = [first.headers["idempotency-key"], second.headers["idempotency-key"]]
    assert keys[0] != keys[1]
    assert all(uuid.UUID(k).version == 4 for k in keys)


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "invalid_name", ValidationError),
        (401, "unauthorized", AuthError),
        (403, "forbidden", ForbiddenError),
        (403, "quota_exceeded", QuotaError),
        (404, "not_found", NotFoundError),
        (409, "unsupported_by_broker", ConflictError),
        (413, "too_large", ValidationError),
        (422, "invalid_request", ValidationError),
        (429, "quota_exceeded", QuotaError),
        (500, "internal", FabricAPIError),
    ],
)
def test_errors_are_typed_with_status_code_message_details(
    api: FakeAPI, status: int, code: str, cls: type[FabricAPIError]
) -> None:
    api.reply("GET", "/v1/namespaces/ns-abc/topics/t", error(status, code, "nope", field="name"))
    with pytest.raises(cls) as caught:
        make_fabric(api).get_topic("ns-abc", "t")
    assert type(caught.value) is cls
    assert caught.value.status == status
    assert caught.value.code == code
    assert caught.value.message == "nope"
    assert caught.value.details == {"field": "name"}
    assert str(caught.value) == f"{code}: nope"


def test_error_reply_without_the_error_envelope_still_maps(api: FakeAPI) -> None:
    api.reply("GET", "/v1/me", Reply(502, raw=b"<html>bad gateway</html>"))
    with pytest.raises(UnavailableError) as caught:
        make_fabric(api).me()
    assert caught.value.status == 502


def test_get_is_retried_on_503_then_succeeds(api: FakeAPI) -> None:
    api.reply("GET", "/v1/me", error(503, "unavailable"), error(503, "unavailable"), me_body())
    fabric = make_fabric(api)
    assert fabric.me().sub == "sub-1"
    assert len(api.calls("GET", "/v1/me")) == 3
    assert len(fabric.test_delays) == 2  # type: ignore[attr-defined]


def test_retry_gives_up_after_the_attempt_budget(api: FakeAPI) -> None:
    api.reply("GET", "/v1/me", error(503, "unavailable", "registry down"))
    with pytest.raises(UnavailableError, match="registry down"):
        make_fabric(api).me()
    assert len(api.calls("GET", "/v1/me")) == 3


def test_mutating_retry_reuses_the_same_idempotency_key(api: FakeAPI) -> None:
    api.reply(
        "POST",
        "/v1/namespaces",
        Reply(429, {"error": {"code": "rate_limited", "message": "slow"}}, {"Retry-After": "0.5"}),
        Reply(201, {"name": "proj", "owner": "sub-1", "is_default": False, "created_at": NOW}),
    )
    fabric = make_fabric(api)
    assert fabric.create_namespace("proj").name == "proj"
    first, second = api.calls("POST", "/v1/namespaces")
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert fabric.test_delays == [0.5]  # type: ignore[attr-defined]  # Retry-After honoured


def test_mutating_call_without_idempotency_key_is_not_retried(api: FakeAPI) -> None:
    api.reply("POST", "/v1/namespaces/ns-abc/topics/t/records", error(503, "unavailable"))
    with pytest.raises(UnavailableError):
        make_fabric(api).produce("ns-abc", "t", {"a": 1}, idempotency_key=False)
    calls = api.calls("POST")
    assert len(calls) == 1
    assert "idempotency-key" not in calls[0].headers


def test_other_errors_are_not_retried(api: FakeAPI) -> None:
    api.reply("DELETE", "/v1/namespaces/ns-abc/topics/t", error(409, "conflict"))
    with pytest.raises(ConflictError):
        make_fabric(api).delete_topic("ns-abc", "t")
    assert len(api.calls()) == 1


def test_connection_refused_is_retried_then_reported_as_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    delays: list[float] = []
    fabric = Fabric(
        f"http://127.0.0.1:{port}", "t", retry=RetryPolicy(attempts=3), sleep=delays.append
    )
    with pytest.raises(UnavailableError) as caught:
        fabric.create_namespace("x")
    assert caught.value.code == "unreachable"
    assert len(delays) == 2


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.1, max_delay=1.0)
    assert 0.05 <= policy.delay(0) <= 0.1
    assert 0.4 <= policy.delay(3) <= 0.8
    assert policy.delay(9) <= 1.0
    assert policy.delay(0, "3") == 1.0  # Retry-After is capped too


def test_path_segments_are_escaped(api: FakeAPI) -> None:
    api.reply("PUT", "/v1/namespaces/ns-abc/topics/a.b/grants/user%40example.org", grant_body())
    make_fabric(api).grant("ns-abc", "a.b", "user@example.org", "read")
    seen = api.calls("PUT")[0]
    assert seen.body == {"access": "read"}


def test_pagination_follows_cursors(api: FakeAPI) -> None:
    # The fake serves pages in order; the client must pass each cursor back.
    api.reply(
        "GET",
        "/v1/namespaces/ns-abc/topics",
        {"items": [topic_body(name="a"), topic_body(name="b")], "next_cursor": "c1"},
        {"items": [topic_body(name="c")], "next_cursor": "c2"},
        {"items": [], "next_cursor": None},
    )
    names = [t.name for t in make_fabric(api).iter_topics("ns-abc", prefix="sensors", page_size=2)]
    assert names == ["a", "b", "c"]
    queries = [c.query for c in api.calls("GET")]
    assert queries[0] == {"prefix": ["sensors"], "limit": ["2"]}
    assert queries[1]["cursor"] == ["c1"]
    assert queries[2]["cursor"] == ["c2"]
