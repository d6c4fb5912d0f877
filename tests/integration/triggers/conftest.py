"""Triggers end to end: the web service, the real broker, SQLite, the runner as a process.

- ``trigger_fabric``: the v1 app (``create_app(build_container(settings))``) on the session's
  embedded broker, with three development identities (owner, grantee, stranger);
- ``runner``: starts ``python -m runtime.local.trigger_runner`` with the same settings, as the
  local fabric's supervisor does; it can be SIGKILLed and started again;
- ``webhook_server``: a real HTTP server on 127.0.0.1 that records calls (shared with the
  delivery tests).
"""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from runtime.api.app import create_app
from runtime.api.container import Container
from runtime.config import SETTINGS_ENV_VAR, RuntimeSettings, TriggerLimits
from tests.integration.api.conftest import Person, local_settings, make_people, write_tokens
from tests.integration.triggers_delivery.conftest import (  # noqa: F401 - fixture
    WebhookReceiver,
    webhook_server,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class TriggerFabric:
    client: TestClient
    container: Container
    settings: RuntimeSettings
    owner: Person
    grantee: Person
    stranger: Person
    tmp_path: Path

    def create_topic(self, person: Person | None = None, name: str | None = None) -> str:
        person = person or self.owner
        topic = name or f"t{uuid.uuid4().hex[:8]}.events"
        reply = self.client.post(
            f"/v1/namespaces/{person.namespace}/topics",
            json={"name": topic, "partitions": 2},
            headers=person.headers,
        )
        assert reply.status_code == 201, reply.text
        return topic

    def create_trigger(self, person: Person | None = None, **body: Any) -> dict[str, Any]:
        person = person or self.owner
        reply = self.client.post("/v1/triggers", json=body, headers=person.headers)
        assert reply.status_code == 201, reply.text
        created: dict[str, Any] = reply.json()
        return created

    def get_trigger(self, trigger_id: str, person: Person | None = None) -> dict[str, Any]:
        reply = self.client.get(
            f"/v1/triggers/{trigger_id}", headers=(person or self.owner).headers
        )
        assert reply.status_code == 200, reply.text
        found: dict[str, Any] = reply.json()
        return found

    def wait_state(self, trigger_id: str, state: str, timeout_s: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.get_trigger(trigger_id)
            if found["state"] == state:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"trigger {trigger_id} stayed {found['state']}: {found}")
            time.sleep(0.1)

    def produce(self, topic: str, values: list[Any], person: Person | None = None) -> None:
        """Through the HTTP API (records:batch, up to 500 per call), JSON values."""
        person = person or self.owner
        for start in range(0, len(values), 500):
            entries = [
                {"id": f"e{start + i}", "value": {"type": "JSON", "data": value}}
                for i, value in enumerate(values[start : start + 500])
            ]
            reply = self.client.post(
                f"/v1/namespaces/{person.namespace}/topics/{topic}/records:batch",
                json={"entries": entries},
                headers=person.headers,
            )
            assert reply.status_code == 207, reply.text
            assert not reply.json()["failures"], reply.json()["failures"]

    def all_pages(self, path: str, person: Person | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
            reply = self.client.get(path, params=params, headers=(person or self.owner).headers)
            assert reply.status_code == 200, reply.text
            page = reply.json()
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                return items


def trigger_settings(tmp_path: Path, bootstrap: str, **limits: Any) -> RuntimeSettings:
    return local_settings(tmp_path, bootstrap, trigger_limits=TriggerLimits(**limits))


@pytest.fixture
def trigger_limits() -> dict[str, Any]:
    """Override in a test module to change ``TriggerLimits``."""
    return {}


@pytest.fixture
def trigger_fabric(
    tmp_path: Path, bootstrap_servers: str, trigger_limits: dict[str, Any]
) -> Iterator[TriggerFabric]:
    from runtime.wiring import build_container

    people = make_people()
    settings = trigger_settings(tmp_path, bootstrap_servers, **trigger_limits)
    write_tokens(Path(settings.dev_tokens_file), people)
    container = build_container(settings)
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        yield TriggerFabric(client, container, settings, *people, tmp_path=tmp_path)
    for resource in (container.fabric.deps.records, container.fabric.deps.broker):
        close = getattr(resource, "close", None)
        if callable(close):
            close()


@dataclass
class RunnerProcess:
    settings: RuntimeSettings
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        env = {
            **os.environ,
            SETTINGS_ENV_VAR: self.settings.model_dump_json(),
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runtime.local.trigger_runner"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no cleanup, no final commit — a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def runner(trigger_fabric: TriggerFabric) -> Iterator[RunnerProcess]:
    process = RunnerProcess(trigger_fabric.settings, trigger_fabric.tmp_path / "runner.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.05)


def zip_base64(files: dict[str, str]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return base64.b64encode(buffer.getvalue()).decode()


def received_values(receiver: WebhookReceiver) -> list[Any]:
    """The record values of every 2xx-answered delivery, in arrival order."""
    values: list[Any] = []
    for request in receiver.successful():
        values.extend(record["value"] for record in request.json()["records"])
    return values
