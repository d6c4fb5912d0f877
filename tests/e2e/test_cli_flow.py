"""Issue 4's headline: the local fabric and the CLI, used as a person would, end to end.

`octopus local up --detach` on free ports in a temporary state dir; then the CLI as a
subprocess: log in with the development token, create a namespace and a hierarchical
topic, grant a second identity read access to the channel, produce 10,000 JSON events
from a file, consume them all as the grantee through a prefix subscription (in order
per partition), see a stranger refused by the API and told why by the CLI, `down`
leaving no process; then a restart keeps namespaces, topics, grants, keys and triggers.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.adapters.local.dev_identity import DevToken, add_identity
from runtime.local.state import FabricRecord, ProcessRef, StatePaths, read_record
from tests.e2e.cli_runner import Octopus, Result, free_port

pytestmark = pytest.mark.slow

EVENTS = 10_000
NAMESPACE = "beamline"
TOPIC = "beam.det1.frames"
ADDRESS = f"{NAMESPACE}/{TOPIC}"
CHANNEL = f"{NAMESPACE}/beam"  # covers beam and beam.* (beam.det1.frames included)
PARTITIONS = 3

EXIT_NOT_FOUND = 4


@dataclass
class LocalFabric:
    cli: Octopus
    state_dir: Path
    api_port: int
    broker_port: int

    @property
    def paths(self) -> StatePaths:
        return StatePaths.of(self.state_dir)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def up(self) -> Result:
        return self.cli.ok(
            "local",
            "up",
            "--detach",
            "--state-dir",
            str(self.state_dir),
            "--api-port",
            str(self.api_port),
            "--broker-port",
            str(self.broker_port),
            timeout=150,
        )

    def down(self) -> Result:
        return self.cli.run("local", "down", "--state-dir", str(self.state_dir), timeout=60)

    def record(self) -> FabricRecord:
        record = read_record(self.paths)
        assert record is not None, "fabric.json is missing while the fabric runs"
        return record

    def add_identity(self, username: str) -> DevToken:
        return add_identity(self.paths.dev_tokens, username)


@pytest.fixture
def fabric(tmp_path: Path) -> Iterator[LocalFabric]:
    home = tmp_path / "home"
    home.mkdir()
    api_port, broker_port = free_port(), free_port()
    while broker_port == api_port:
        broker_port = free_port()
    local = LocalFabric(Octopus(home), tmp_path / "state", api_port, broker_port)
    try:
        yield local
    finally:
        # Whatever happened, leave no process behind.
        record = read_record(local.paths)
        local.down()
        if record is not None:
            for process in record.processes():
                assert not process.alive(), f"pid {process.pid} survived `octopus local down`"


def write_events(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for seq in range(count):
            event = {"seq": seq, "detector": "det1", "frame": f"f{seq:06d}", "pixels": [seq % 7, 3]}
            handle.write(json.dumps(event) + "\n")


def only_line(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.describe()
    assert "Traceback" not in result.stderr
    return lines[0]


def names(items: list[dict[str, Any]], key: str = "name") -> set[str]:
    return {str(item[key]) for item in items}


def test_local_fabric_end_to_end_with_the_cli(fabric: LocalFabric, tmp_path: Path) -> None:
    cli = fabric.cli
    state = str(fabric.state_dir)
    fabric.up()
    assert cli.ok("local", "status", "--state-dir", state).returncode == 0

    # -- the owner logs in with the development token and builds a channel --------------
    owner = cli.ok("--json", "login", "--local", "--state-dir", state).json()
    assert owner["local"] is True and owner["username"] == "developer"
    assert owner["url"] == fabric.api_url
    cli.ok("--profile", "default", "namespace", "create", NAMESPACE)
    created = cli.ok(
        "--profile", "default", "--json", "topic", "create", ADDRESS, "--partitions", "3"
    ).json()
    assert created["kafka_name"] == f"{NAMESPACE}.{TOPIC}"
    assert created["partitions"] == PARTITIONS

    grantee = fabric.add_identity("grantee")
    stranger = fabric.add_identity("stranger")
    writer = fabric.add_identity("writer")
    grant = cli.ok(
        "--profile", "default", "--json", "grant", "add", "--prefix", CHANNEL, grantee.sub,
        "--access", "read",
    ).json()  # fmt: skip
    assert (grant["kind"], grant["target"], grant["access"]) == ("prefix", "beam", "read")
    cli.ok("--profile", "default", "grant", "add", ADDRESS, writer.sub, "--access", "write")

    # -- 10,000 JSON events from a file ----------------------------------------------------
    events_file = tmp_path / "frames.jsonl"
    write_events(events_file, EVENTS)
    produced = cli.ok(
        "--profile", "default", "--json", "produce", ADDRESS, "--file", str(events_file)
    ).json()
    assert produced == {
        "topic": f"{NAMESPACE}.{TOPIC}",
        "source": str(events_file),
        "produced": EVENTS,
        "failed": 0,
        "errors": [],
    }

    # -- the grantee reads them all through a prefix subscription ----------------------------
    cli.ok(
        "--profile", "grantee", "login", "--local", "--state-dir", state, "--identity", "grantee"
    )
    consumed = cli.ok(
        "--profile", "grantee", "--json", "consume", "--prefix", CHANNEL,
        "--from-beginning", "--limit", str(EVENTS), "--idle-timeout", "60",
    ).json_lines()  # fmt: skip
    assert len(consumed) == EVENTS
    assert sorted(record["value"]["seq"] for record in consumed) == list(range(EVENTS))
    by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in consumed:
        assert record["topic"] == f"{NAMESPACE}.{TOPIC}"
        by_partition[record["partition"]].append(record)
    assert len(by_partition) > 1, "sticky partitioning should spread 10,000 events"
    for records in by_partition.values():
        offsets = [r["offset"] for r in records]
        sequence = [r["value"]["seq"] for r in records]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
        assert sequence == sorted(sequence), "events out of order within a partition"

    # A write-only grantee can produce (the topic check accepts its 403 on GET).
    cli.ok("--profile", "writer", "login", "--local", "--state-dir", state, "--identity", "writer")
    cli.ok("--profile", "writer", "produce", ADDRESS, '{"seq": -1}')

    # -- a stranger: refused by the API, and the CLI says why in one line --------------------
    base = f"{fabric.api_url}/v1/namespaces/{NAMESPACE}"
    headers = {"Authorization": f"Bearer {stranger.token}"}
    for method, path, body in (
        ("GET", f"/topics/{TOPIC}", None),
        ("GET", f"/topics/{TOPIC}/grants", None),
        ("GET", f"/topics/{TOPIC}/records?partition=0&offset=0", None),
        ("POST", f"/topics/{TOPIC}/records", {"value": {"type": "JSON", "data": 1}}),
        ("PUT", f"/topics/{TOPIC}/grants/{stranger.sub}", {"access": "read"}),
        ("GET", "/topics", None),
    ):
        reply = httpx.request(method, base + path, headers=headers, json=body, timeout=30)
        assert reply.status_code in (403, 404), (method, path, reply.status_code, reply.text)
        assert reply.json()["error"]["code"] in ("not_found", "forbidden")

    cli.ok(
        "--profile", "stranger", "login", "--local", "--state-dir", state, "--identity", "stranger"
    )
    refusals = {
        "topic show": cli.run("--profile", "stranger", "topic", "show", ADDRESS),
        "consume": cli.run(
            "--profile",
            "stranger",
            "consume",
            "--prefix",
            CHANNEL,
            "--from-beginning",
            "--limit",
            "1",
            "--idle-timeout",
            "5",
        ),
        "produce": cli.run("--profile", "stranger", "produce", ADDRESS, '{"sneaky": true}'),
    }
    for what, result in refusals.items():
        assert result.returncode == EXIT_NOT_FOUND, f"{what}: {result.describe()}"
        line = only_line(result)
        assert line.startswith("error: "), f"{what}: {result.describe()}"
        assert NAMESPACE in line and (
            "no access" in line or "not found" in line or "no grant" in line
        )
        assert result.stdout.strip() == "", f"{what} printed data: {result.stdout[:200]}"

    # -- configuration that must survive a restart ---------------------------------------------
    key = cli.ok("--profile", "default", "--json", "key", "create", "e2e-key").json()
    trigger = cli.ok(
        "--profile", "default", "--json", "trigger", "create", "frames-hook", "--topic", ADDRESS,
        "--webhook-url", "http://127.0.0.1:9/hook", "--filter", '{"value": {"seq": [0]}}',
        "--disabled",
    ).json()  # fmt: skip
    assert trigger["webhook_secret"], "a webhook trigger's secret is shown once, on create"

    # -- down leaves no process ----------------------------------------------------------------
    running = fabric.record()
    processes = running.processes()
    assert {"broker", "api"} <= set(running.services)
    assert all(process.alive() for process in processes)
    stopped = cli.ok("--json", "local", "down", "--state-dir", state).json()
    assert stopped["stopped"] is True
    assert not fabric.paths.fabric_record.exists()
    assert wait_gone(processes), [p.pid for p in processes if p.alive()]
    assert cli.run("local", "status", "--state-dir", state).returncode == EXIT_NOT_FOUND

    # -- restart: the registry kept everything; the broker got its topics back -----------------
    fabric.up()
    status = cli.ok("--json", "local", "status", "--state-dir", state).json()
    assert status["topics_recreated"] >= 1
    assert NAMESPACE in names(cli.ok("--profile", "default", "--json", "namespace", "list").json())
    topics = cli.ok("--profile", "default", "--json", "topic", "list", NAMESPACE).json()
    assert names(topics) == {TOPIC}
    assert topics[0]["partitions"] == PARTITIONS and topics[0]["state"] == "active"
    grants = cli.ok(
        "--profile", "default", "--json", "grant", "list", "--namespace", NAMESPACE
    ).json()
    assert {(g["grantee"], g["kind"], g["target"], g["access"]) for g in grants} == {
        (grantee.sub, "prefix", "beam", "read"),
        (writer.sub, "topic", TOPIC, "write"),
    }
    keys = cli.ok("--profile", "default", "--json", "key", "list").json()
    assert key["key_id"] in names(keys, "key_id")
    triggers = cli.ok("--profile", "default", "--json", "trigger", "list").json()
    assert trigger["trigger_id"] in names(triggers, "trigger_id")
    assert next(t for t in triggers if t["trigger_id"] == trigger["trigger_id"])["enabled"] is False
    # The grantee's access came back too (and the stranger's refusal).
    assert (
        cli.ok("--profile", "grantee", "--json", "topic", "show", ADDRESS).json()["name"] == TOPIC
    )
    assert cli.run("--profile", "stranger", "topic", "show", ADDRESS).returncode == EXIT_NOT_FOUND


def wait_gone(processes: list[ProcessRef], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while any(process.alive() for process in processes):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
