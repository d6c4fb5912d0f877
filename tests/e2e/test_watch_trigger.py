"""Issue 6: files in a directory drive a trigger. `octopus watch` publishes one storage event
per finished file, and a webhook trigger on that topic delivers each, signed.

`octopus local up --detach` on free ports in a temporary state dir; the CLI as a subprocess
logs in, creates a topic and a webhook trigger pointing at a real HTTP server on 127.0.0.1;
`octopus watch TMPDIR --topic T` runs as a subprocess while the test writes three files (one
at once, one slowly in chunks, one under a temporary name then renamed). Exactly one
`created` event per file is on the topic, the webhook received a signed POST for each, Ctrl-C
stops the watcher with exit 0 and a count, and `local down` leaves no process.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.local.state import read_record
from runtime.storage import cloudevents as ce
from runtime.storage.watcher import file_sha256
from runtime.triggers.webhook import verify_signature
from tests.e2e.cli_runner import Octopus, free_port
from tests.e2e.test_cli_flow import LocalFabric, wait_gone
from tests.integration.triggers_delivery.conftest import (  # noqa: F401 (a fixture)
    WebhookReceiver,
    webhook_server,
)

pytestmark = pytest.mark.slow

TOPIC = "lab.files"
SETTLE_MS = 400
EXIT_OK = 0


@pytest.fixture
def local_fabric(tmp_path: Path) -> Iterator[LocalFabric]:
    home = tmp_path / "home"
    home.mkdir()
    api_port, broker_port = free_port(), free_port()
    while broker_port == api_port:
        broker_port = free_port()
    local = LocalFabric(Octopus(home), tmp_path / "state", api_port, broker_port)
    try:
        yield local
    finally:
        record = read_record(local.paths)
        local.down()
        if record is not None:
            assert wait_gone(record.processes()), "a process survived `octopus local down`"


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def start_watch(cli: Octopus, directory: Path, topic: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [cli.executable, "--json", "watch", str(directory), "--topic", topic,
         "--settle-ms", str(SETTLE_MS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env,
    )  # fmt: skip
    assert process.stderr is not None
    # The watch is in place once it says so (the observer is set up before that line).
    line = process.stderr.readline()
    if not line.startswith("watching "):
        process.kill()
        _out, rest = process.communicate(timeout=30)
        raise AssertionError(f"octopus watch did not start: {line}{rest}")
    return process


def write_files(directory: Path) -> dict[str, bytes]:
    contents = {
        "at-once.txt": b"written in one go\n",
        "slow.bin": os.urandom(64 * 1024),
        "renamed.csv": b"a,b\n" + b"1,2\n" * 1000,
    }
    (directory / "at-once.txt").write_bytes(contents["at-once.txt"])
    # Slowly, in chunks: the pauses are shorter than the settle time, so it is one event.
    with (directory / "slow.bin").open("wb") as handle:
        data = contents["slow.bin"]
        for start in range(0, len(data), 8 * 1024):
            handle.write(data[start : start + 8 * 1024])
            handle.flush()
            time.sleep(SETTLE_MS / 1000 / 4)
    # Written under a temporary name, then renamed: one `created` under the final name.
    temporary = directory / ".renamed.csv.part"
    temporary.write_bytes(contents["renamed.csv"])
    temporary.rename(directory / "renamed.csv")
    return contents


def delivered_records(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    return [record for request in receiver.requests for record in request.json()["records"]]


def test_watched_files_fire_a_webhook_trigger(
    local_fabric: LocalFabric,
    webhook_server: WebhookReceiver,  # noqa: F811 (the imported fixture)
    tmp_path: Path,
) -> None:
    cli = local_fabric.cli
    state = str(local_fabric.state_dir)
    local_fabric.up()
    namespace = cli.ok("--json", "login", "--local", "--state-dir", state).json()[
        "default_namespace"
    ]
    address = f"{namespace}/{TOPIC}"
    kafka_name = f"{namespace}.{TOPIC}"
    cli.ok("topic", "create", address)
    trigger = cli.ok(
        "--json", "trigger", "create", "files-hook", "--topic", address,
        "--webhook-url", webhook_server.url, "--batch-size", "1",
        "--starting-position", "TRIM_HORIZON",
    ).json()  # fmt: skip
    secret = trigger["webhook_secret"]
    assert isinstance(secret, str) and secret

    watched = tmp_path / "instrument"
    watched.mkdir()
    watch = start_watch(cli, watched, address)
    try:
        contents = write_files(watched)
        wait_for(lambda: len(delivered_records(webhook_server)) >= 3, 90, "three webhook calls")
        # Nothing else follows: no second event for a file, none for the temporary name.
        time.sleep(2 * SETTLE_MS / 1000 + 1.5)
    finally:
        watch.send_signal(signal.SIGINT)
        stdout, stderr = watch.communicate(timeout=60)
    assert watch.returncode == EXIT_OK, stderr
    assert stderr.splitlines()[-1] == f"published 3 events to {kafka_name}", stderr
    printed = [json.loads(line) for line in stdout.splitlines()]
    assert sorted(line["event"]["subject"] for line in printed) == sorted(contents)

    # -- exactly one `created` event per finished file on the topic ----------------------------
    consumed = cli.ok(
        "--json", "consume", address, "--from-beginning", "--idle-timeout", "5"
    ).json_lines()
    assert Counter(record["value"]["subject"] for record in consumed) == Counter(list(contents))
    for record in consumed:
        event = record["value"]
        ce.validate(event)
        name = event["subject"]
        assert event["type"] == ce.CREATED
        assert event["source"].startswith("file://") and event["source"].endswith(
            watched.resolve().as_posix()
        )
        assert record["key"] == name
        headers = {k: base64.b64decode(v).decode() for k, v in record["headers"].items()}
        assert headers["content-type"] == ce.STRUCTURED_CONTENT_TYPE
        assert headers["ce_type"] == ce.CREATED
        assert headers["ce_id"] == event["id"]
        assert event["data"]["size"] == len(contents[name])
        assert event["data"]["sha256"] == file_sha256(watched / name)
        assert "from_path" not in event["data"]

    # -- the webhook got a signed POST for each, each file once -------------------------------
    assert len(webhook_server.requests) == 3, [r.body[:200] for r in webhook_server.requests]
    for request in webhook_server.requests:
        assert verify_signature(
            secret,
            request.headers["x-octopus-timestamp"],
            request.body,
            request.headers["x-octopus-signature"],
        )
        assert not verify_signature(
            "not-the-secret",
            request.headers["x-octopus-timestamp"],
            request.body,
            request.headers["x-octopus-signature"],
        )
    hooked = delivered_records(webhook_server)
    assert Counter(record["value"]["subject"] for record in hooked) == Counter(list(contents))
    for record in hooked:
        assert record["topic"] == kafka_name
        assert record["key"] == record["value"]["subject"]
        assert record["value"]["type"] == ce.CREATED

    # -- down leaves no process ----------------------------------------------------------------
    processes = local_fabric.record().processes()
    assert cli.ok("--json", "local", "down", "--state-dir", state).json()["stopped"] is True
    assert wait_gone(processes), [p.pid for p in processes if p.alive()]
