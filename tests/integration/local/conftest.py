"""Run ``python -m runtime.local`` as a user would: a subprocess on free ports in a tmp dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from runtime.local.broker import find_free_port
from runtime.local.state import FabricRecord, ProcessRef, StatePaths, read_record

REPO_ROOT = Path(__file__).resolve().parents[3]


def run_local(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``python -m runtime.local ARGS`` from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "runtime.local", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


@dataclass
class LocalFabric:
    state_dir: Path
    api_port: int
    broker_port: int

    @property
    def paths(self) -> StatePaths:
        return StatePaths.of(self.state_dir)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    def up(self) -> subprocess.CompletedProcess[str]:
        return run_local(
            "up",
            "--detach",
            "--state-dir",
            str(self.state_dir),
            "--api-port",
            str(self.api_port),
            "--broker-port",
            str(self.broker_port),
        )

    def down(self) -> subprocess.CompletedProcess[str]:
        return run_local("down", "--state-dir", str(self.state_dir))

    def record(self) -> FabricRecord:
        record = read_record(self.paths)
        assert record is not None, "fabric.json is missing"
        return record

    def token(self) -> str:
        tokens: dict[str, object] = json.loads(self.paths.dev_tokens.read_text())["tokens"]
        return next(iter(tokens))

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def broker_topics(self) -> set[str]:
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        return set(admin.list_topics(timeout=10).topics)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def all_gone(processes: list[ProcessRef]) -> bool:
    return not any(process.alive() for process in processes)


def create_namespace_and_topic(fabric: LocalFabric, namespace: str, topic: str) -> None:
    with httpx.Client(base_url=fabric.api, headers=fabric.headers(), timeout=30) as client:
        created = client.post("/v1/namespaces", json={"name": namespace})
        assert created.status_code == 201, created.text
        made = client.post(
            f"/v1/namespaces/{namespace}/topics", json={"name": topic, "partitions": 2}
        )
        assert made.status_code == 201, made.text


@pytest.fixture
def new_fabric(tmp_path: Path) -> Iterator[LocalFabric]:
    """Free ports and a fresh state dir; whatever is still running at the end is stopped."""
    fabric = LocalFabric(tmp_path / "state", find_free_port(), find_free_port())
    yield fabric
    record = read_record(fabric.paths)
    fabric.down()
    if record is not None:
        wait_until(lambda: all_gone(record.processes()), 10, "the fabric to stop")
