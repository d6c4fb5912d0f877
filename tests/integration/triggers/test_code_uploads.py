"""Function code from an upload (local mode): PUT to the web service, then code_upload_id.

The upload route is the one route allowed a body above ``max_body_bytes`` (1 MiB here), up to
``trigger_code_max_bytes`` (3 MiB here); uploads are per caller.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from runtime.api.app import create_app
from tests.integration.api.conftest import Person, local_settings, make_people, write_tokens
from tests.integration.triggers.conftest import RunnerProcess, TriggerFabric, wait_for

CODE_MAX_BYTES = 3 * 1024 * 1024

HANDLER = """
import base64, json, os

def handler(event, context):
    size = os.path.getsize(os.path.join(os.path.dirname(__file__), "blob.bin"))
    for records in event["records"].values():
        for record in records:
            value = json.loads(base64.b64decode(record["value"]))
            print(f"uploaded-code n={value['n']} blob={size}")
    return {"batchItemFailures": []}
"""


@pytest.fixture
def trigger_fabric(tmp_path: Path, bootstrap_servers: str) -> Iterator[TriggerFabric]:
    """The triggers fabric with a small code-upload cap (the runner fixture follows it)."""
    from runtime.wiring import build_container

    people = make_people()
    settings = local_settings(tmp_path, bootstrap_servers, trigger_code_max_bytes=CODE_MAX_BYTES)
    assert settings.max_body_bytes == 1_048_576
    write_tokens(Path(settings.dev_tokens_file), people)
    container = build_container(settings)
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        yield TriggerFabric(client, container, settings, *people, tmp_path=tmp_path)
    container.close()


def big_zip(handler: str = HANDLER, blob_bytes: int = 1_500_000) -> bytes:
    """A zip over 1 MiB (random bytes, stored: they do not compress)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("app.py", handler)
        archive.writestr("blob.bin", os.urandom(blob_bytes))
    return buffer.getvalue()


def start_upload(fabric: TriggerFabric, person: Person) -> dict[str, Any]:
    reply = fabric.client.post("/v1/triggers/code-uploads", headers=person.headers)
    assert reply.status_code == 201, reply.text
    ticket: dict[str, Any] = reply.json()
    return ticket


def upload(fabric: TriggerFabric, person: Person, body: bytes) -> str:
    ticket = start_upload(fabric, person)
    reply = fabric.client.put(
        ticket["url"], content=body, headers={**person.headers, **ticket["headers"]}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"upload_id": ticket["upload_id"], "size": len(body)}
    return str(ticket["upload_id"])


def function_body(fabric: TriggerFabric, topic: str, **function: Any) -> dict[str, Any]:
    return {
        "name": "uploaded",
        "namespace": fabric.owner.namespace,
        "topic": topic,
        "kind": "function",
        "starting_position": "TRIM_HORIZON",
        "max_retries": 0,
        "function": {"runtime": "python3.13", "handler": "app.handler", **function},
    }


def test_the_ticket_points_at_this_service_with_the_cap(trigger_fabric: TriggerFabric) -> None:
    ticket = start_upload(trigger_fabric, trigger_fabric.owner)
    assert ticket["method"] == "PUT"
    assert ticket["url"] == f"http://testserver/v1/triggers/code-uploads/{ticket['upload_id']}"
    assert ticket["fields"] == {}
    assert ticket["headers"] == {"Content-Type": "application/zip"}
    assert ticket["max_bytes"] == CODE_MAX_BYTES
    expires = datetime.fromisoformat(ticket["expires_at"])
    assert 14 * 60 < (expires - datetime.now(UTC)).total_seconds() <= 15 * 60
    assert start_upload(trigger_fabric, trigger_fabric.owner)["upload_id"] != ticket["upload_id"]


def test_uploaded_code_over_a_mebibyte_runs_and_its_logs_are_readable(
    trigger_fabric: TriggerFabric, runner: RunnerProcess
) -> None:
    fabric = trigger_fabric
    code = big_zip()
    assert len(code) > 1024 * 1024
    upload_id = upload(fabric, fabric.owner, code)
    topic = fabric.create_topic()
    created = fabric.create_trigger(**function_body(fabric, topic, code_upload_id=upload_id))
    assert created["function"]["code_sha256"] == hashlib.sha256(code).hexdigest()
    assert created["function"]["code_size"] == len(code)
    trigger_id = created["trigger_id"]
    fabric.wait_state(trigger_id, "active")
    fabric.produce(topic, [{"n": n} for n in range(3)])

    def messages() -> list[str]:
        return [line["message"] for line in fabric.all_pages(f"/v1/triggers/{trigger_id}/logs")]

    wait_for(
        lambda: sum("uploaded-code" in m for m in messages()) >= 3, 60, "the uploaded code's logs"
    )
    assert {m for m in messages() if "uploaded-code" in m} == {
        f"uploaded-code n={n} blob=1500000" for n in range(3)
    }

    # PATCH with another upload replaces the code (and its digest).
    newer = big_zip(HANDLER.replace("uploaded-code", "newer-code"), blob_bytes=1_200_000)
    patched = fabric.client.patch(
        f"/v1/triggers/{trigger_id}",
        json={"function": {"code_upload_id": upload(fabric, fabric.owner, newer)}},
        headers=fabric.owner.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["function"]["code_sha256"] == hashlib.sha256(newer).hexdigest()
    fabric.wait_state(trigger_id, "active")
    fabric.produce(topic, [{"n": 9}])
    wait_for(lambda: "newer-code n=9 blob=1200000" in messages(), 60, "the replaced code's output")


def test_someone_elses_or_a_missing_upload_is_not_found(trigger_fabric: TriggerFabric) -> None:
    fabric = trigger_fabric
    theirs = upload(fabric, fabric.stranger, big_zip(blob_bytes=10))
    topic = fabric.create_topic()
    for upload_id in (theirs, "0" * 32, "../../etc/passwd"):
        reply = fabric.client.post(
            "/v1/triggers",
            json=function_body(fabric, topic, code_upload_id=upload_id),
            headers=fabric.owner.headers,
        )
        assert reply.status_code == 404, reply.text
        assert reply.json()["error"]["code"] == "not_found"
    # The stranger may use it: it is theirs (the topic is not, so that is what stops them).
    reply = fabric.client.post(
        "/v1/triggers",
        json=function_body(fabric, topic, code_upload_id=theirs),
        headers=fabric.stranger.headers,
    )
    assert reply.status_code in (403, 404), reply.text
    assert "topic" in reply.json()["error"]["message"]


def test_code_that_is_not_a_zip_or_lacks_the_handler_is_refused_naming_the_field(
    trigger_fabric: TriggerFabric,
) -> None:
    fabric = trigger_fabric
    topic = fabric.create_topic()
    cases = [
        (b"certainly not a zip file", "function.code_upload_id"),
        (big_zip(blob_bytes=10).replace(b"app.py", b"xyz.py"), "function.handler"),
    ]
    for body, field in cases:
        upload_id = upload(fabric, fabric.owner, body)
        reply = fabric.client.post(
            "/v1/triggers",
            json=function_body(fabric, topic, code_upload_id=upload_id),
            headers=fabric.owner.headers,
        )
        assert reply.status_code == 422, reply.text
        assert reply.json()["error"]["details"]["field"] == field
    both = fabric.client.post(
        "/v1/triggers",
        json=function_body(fabric, topic, code_upload_id="0" * 32, code_base64="UEs="),
        headers=fabric.owner.headers,
    )
    assert both.status_code == 422
    assert both.json()["error"]["details"]["field"] == "function.code_upload_id"
    neither = fabric.client.post(
        "/v1/triggers", json=function_body(fabric, topic), headers=fabric.owner.headers
    )
    assert neither.status_code == 422
    assert neither.json()["error"]["details"]["field"] == "function.code_base64"


def test_an_upload_over_the_cap_is_413_and_keeps_nothing(trigger_fabric: TriggerFabric) -> None:
    fabric = trigger_fabric
    person = fabric.owner
    too_big = os.urandom(CODE_MAX_BYTES + 1)

    declared = start_upload(fabric, person)
    reply = fabric.client.put(declared["url"], content=too_big, headers=person.headers)
    assert reply.status_code == 413, reply.text
    assert reply.json()["error"]["code"] == "payload_too_large"

    # Streamed without a Content-Length: cut off once the cap is crossed.
    streamed = start_upload(fabric, person)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(too_big), 256 * 1024):
            yield too_big[start : start + 256 * 1024]

    reply = fabric.client.put(streamed["url"], content=chunks(), headers=person.headers)
    assert reply.status_code == 413, reply.text
    uploads = fabric.tmp_path / "triggers" / "uploads"
    assert [p for p in uploads.rglob("*") if p.is_file()] == []
    topic = fabric.create_topic()
    for ticket in (declared, streamed):
        reply = fabric.client.post(
            "/v1/triggers",
            json=function_body(fabric, topic, code_upload_id=ticket["upload_id"]),
            headers=person.headers,
        )
        assert reply.status_code == 404, reply.text

    # The exemption is this route only: other bodies keep the 1 MiB cap.
    reply = fabric.client.post(
        "/v1/triggers",
        content=b"{" + b" " * (1024 * 1024 + 1) + b"}",
        headers={**person.headers, "Content-Type": "application/json"},
    )
    assert reply.status_code == 413
    # And it needs the caller's token like every route.
    reply = fabric.client.put(streamed["url"], content=b"PK")
    assert reply.status_code == 401
