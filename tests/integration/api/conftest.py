"""The web service on the real embedded broker, SQLite and development identities."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from runtime.api.app import create_app
from runtime.api.container import Container
from runtime.config import Quotas, RuntimeSettings
from runtime.domain.names import default_namespace
from runtime.wiring import build_container


@dataclass(frozen=True)
class Person:
    name: str
    sub: str
    token: str

    @property
    def namespace(self) -> str:
        return default_namespace(self.sub)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Fabric:
    app: FastAPI
    container: Container
    client: TestClient
    owner: Person
    grantee: Person
    stranger: Person
    settings: RuntimeSettings

    def as_(self, person: Person) -> dict[str, str]:
        return person.headers


def make_people() -> tuple[Person, Person, Person]:
    return tuple(  # type: ignore[return-value]
        Person(name, str(uuid.uuid4()), secrets.token_urlsafe(24))
        for name in ("owner", "grantee", "stranger")
    )


def write_tokens(path: Path, people: tuple[Person, ...]) -> None:
    tokens = {p.token: {"sub": p.sub, "username": f"{p.name}@example.org"} for p in people}
    path.write_text(json.dumps({"tokens": tokens}))
    path.chmod(0o600)


def local_settings(tmp_path: Path, bootstrap: str, **overrides: object) -> RuntimeSettings:
    values: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "sqlite_path": str(tmp_path / "registry.sqlite"),
        "dev_tokens_file": str(tmp_path / "dev-tokens.json"),
        "quotas": Quotas(namespaces_per_identity=3, topics_per_identity=20, keys_per_identity=2),
    }
    values.update(overrides)
    return RuntimeSettings.model_validate(values)


@pytest.fixture
def fabric(tmp_path: Path, bootstrap_servers: str) -> Iterator[Fabric]:
    people = make_people()
    # The owner is also the fabric's administrator (reconcile).
    settings = local_settings(tmp_path, bootstrap_servers, admins=(people[0].sub,))
    write_tokens(Path(settings.dev_tokens_file), people)
    container = build_container(settings)
    app = create_app(container)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Fabric(app, container, client, *people, settings=settings)
    container.close()


@pytest.fixture
def topic_name() -> str:
    return f"t{uuid.uuid4().hex[:8]}.frames"
