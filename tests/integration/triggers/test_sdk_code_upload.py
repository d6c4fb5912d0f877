"""The SDK uploads a function zip too large to send inline, over real HTTP."""

from __future__ import annotations

import base64
import io
import os
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from octopus_client import Fabric as FabricClient

from runtime.local.broker import find_free_port
from tests.integration.triggers.conftest import TriggerFabric


@pytest.fixture
def served(trigger_fabric: TriggerFabric) -> Iterator[str]:
    port = find_free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            trigger_fabric.client.app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


def big_zip(path: Path) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {'ok': True}\n")
        archive.writestr("blob.bin", os.urandom(1_200_000))  # incompressible: > 1 MiB body cap
    path.write_bytes(buffer.getvalue())
    return path


def test_sdk_uploads_a_large_zip_and_creates_a_function_trigger(
    trigger_fabric: TriggerFabric, served: str, tmp_path: Path
) -> None:
    fabric = trigger_fabric
    topic = fabric.create_topic()
    archive = big_zip(tmp_path / "code.zip")
    inline = base64.b64encode(archive.read_bytes()).decode()
    too_big = fabric.client.post(
        "/v1/triggers",
        json={
            "name": "inline",
            "namespace": fabric.owner.namespace,
            "topic": topic,
            "kind": "function",
            "function": {"runtime": "python3.13", "handler": "app.handler", "code_base64": inline},
        },
        headers=fabric.owner.headers,
    )
    assert too_big.status_code == 413  # the reason uploads exist

    with FabricClient(served, token=fabric.owner.token) as client:
        upload_id = client.upload_trigger_code(archive)
        trigger = client.create_trigger(
            name="uploaded",
            namespace=fabric.owner.namespace,
            topic=topic,
            kind="function",
            function={
                "runtime": "python3.13",
                "handler": "app.handler",
                "code_upload_id": upload_id,
            },
        )
    shown = fabric.client.get(f"/v1/triggers/{trigger.trigger_id}", headers=fabric.owner.headers)
    assert shown.status_code == 200, shown.text
    assert shown.json()["kind"] == "function"
