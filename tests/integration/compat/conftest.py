"""The real web service, served by uvicorn on 127.0.0.1, for Octopus v3 clients.

``diaspora-event-sdk`` talks HTTP through ``requests``, so the app runs in a real
server: SQLite in tmp_path, the embedded broker, development identities (two
people). ``LiveService.restart()`` stops the server and serves a *new* container
(fresh adapters, nothing kept in memory) from the same SQLite file on the same port.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn

from runtime.api.app import create_app
from runtime.api.container import Container
from runtime.config import RuntimeSettings
from runtime.domain.names import default_namespace
from runtime.local.broker import find_free_port
from runtime.wiring import build_container
from tests.fixtures.broker import bootstrap_servers, embedded_broker

__all__ = ["bootstrap_servers", "embedded_broker"]


@dataclass(frozen=True)
class Person:
    name: str
    sub: str
    token: str

    @property
    def namespace(self) -> str:
        return default_namespace(self.sub)

    def headers(self, subject: str | None = "self") -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if subject is not None:
            headers["Subject"] = self.sub if subject == "self" else subject
        return headers


@dataclass
class LiveService:
    settings: RuntimeSettings
    port: int
    alice: Person
    bob: Person
    container: Container | None = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    restarts: int = field(default=0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.container = build_container(self.settings)
        app = create_app(self.container)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
            assert not self._thread.is_alive(), "uvicorn did not stop"
        if self.container is not None:
            self.container.fabric.deps.broker.close()
        self._server = self._thread = self.container = None
        # The port must be free again before a new server takes it.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.02)

    def restart(self) -> None:
        self.stop()
        self.start()
        self.restarts += 1

    def call(
        self,
        method: str,
        path: str,
        person: Person,
        *,
        subject: str | None = "self",
        extra_headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> requests.Response:
        headers = {**person.headers(subject), **(extra_headers or {})}
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kw)


def _person(name: str) -> Person:
    return Person(name, str(uuid.uuid4()), secrets.token_urlsafe(24))


@pytest.fixture
def live(tmp_path: Path, bootstrap_servers: str) -> Iterator[LiveService]:
    alice, bob = _person("alice"), _person("bob")
    tokens_file = tmp_path / "dev-tokens.json"
    tokens = {p.token: {"sub": p.sub, "username": f"{p.name}@example.org"} for p in (alice, bob)}
    tokens_file.write_text(json.dumps({"tokens": tokens}))
    tokens_file.chmod(0o600)
    settings = RuntimeSettings.model_validate(
        {
            "bootstrap_servers": bootstrap_servers,
            "sqlite_path": str(tmp_path / "registry.sqlite"),
            "dev_tokens_file": str(tokens_file),
        }
    )
    service = LiveService(settings=settings, port=find_free_port(), alice=alice, bob=bob)
    service.start()
    try:
        yield service
    finally:
        service.stop()
