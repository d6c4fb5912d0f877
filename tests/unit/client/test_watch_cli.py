"""``octopus watch`` through typer's CliRunner: arguments, one-line errors, exit codes,
and (with the embedded broker) finished files published as CloudEvents until Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from octopus_client.cli.main import app
from typer.testing import CliRunner, Result

from runtime.storage import cloudevents as ce
from runtime.storage.watcher import file_sha256
from tests.unit.client.client_fake_api import FakeAPI, fabric_body, me_body, topic_body

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "octopus-home"
    monkeypatch.setenv("OCTOPUS_HOME", str(home))
    for name in ("OCTOPUS_URL", "OCTOPUS_TOKEN", "OCTOPUS_PROFILE", "OCTOPUS_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    return home


def run(api: FakeAPI | None, *args: str) -> Result:
    base = ["--url", api.url, "--token", "tok"] if api is not None else []
    return runner.invoke(app, [*base, *args])


def one_error_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


# -- arguments -------------------------------------------------------------------------------
def test_topic_is_required(tmp_path: Path) -> None:
    result = run(None, "watch", str(tmp_path))
    assert result.exit_code == 2
    assert "--topic" in result.stderr


def test_settle_ms_must_not_be_negative(tmp_path: Path) -> None:
    result = run(None, "watch", str(tmp_path), "--topic", "t", "--settle-ms", "-1")
    assert result.exit_code == 2
    assert "--settle-ms" in result.stderr


def test_a_missing_directory_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # No URL, no token: the directory is checked before anything is contacted.
    missing = tmp_path / "nope"
    result = run(None, "watch", str(missing), "--topic", "t")
    assert result.exit_code == 2
    assert one_error_line(result) == f"error: not_a_directory: {missing} does not exist"
    assert result.stdout == ""


def test_a_file_is_not_a_directory(tmp_path: Path) -> None:
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    result = run(None, "watch", str(a_file), "--topic", "t")
    assert result.exit_code == 2
    assert one_error_line(result) == f"error: not_a_directory: {a_file} is not a directory"


def test_without_the_fabric_package_it_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "runtime.storage.watcher", None)
    result = run(None, "watch", str(tmp_path), "--topic", "t")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert line.startswith("error: watcher_missing: ")
    assert "pip install -e ." in line and "octopus watch" in line


def test_without_watchdog_it_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "runtime.storage.watcher", raising=False)
    monkeypatch.setitem(sys.modules, "watchdog", None)
    monkeypatch.setitem(sys.modules, "watchdog.events", None)
    result = run(None, "watch", str(tmp_path), "--topic", "t")
    assert result.exit_code == 1
    assert one_error_line(result) == (
        "error: watcher_missing: the directory watcher needs watchdog: `pip install watchdog`"
    )


def test_an_unknown_topic_is_refused_before_watching(api: FakeAPI, tmp_path: Path) -> None:
    api.reply("GET", "/v1/fabric", fabric_body("127.0.0.1:9"))
    api.reply("GET", "/v1/me", me_body("ns-w"))
    result = run(api, "watch", str(tmp_path), "--topic", "ns-w/no.such")
    assert result.exit_code == 4
    assert one_error_line(result).startswith("error: unknown_topic: topic ns-w/no.such ")
    assert "watching" not in result.output


# -- publishing, against the embedded broker ---------------------------------------------------
@pytest.fixture
def watch_topic(api: FakeAPI, bootstrap_servers: str) -> str:
    namespace = f"ns-{uuid.uuid4().hex[:10]}"
    api.reply("GET", "/v1/fabric", fabric_body(bootstrap_servers))
    api.reply("GET", "/v1/me", me_body(namespace))
    kafka_name = f"{namespace}.lab.files"
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    admin.create_topics([NewTopic(kafka_name, 1)])[kafka_name].result(10)
    api.reply(
        "GET", f"/v1/namespaces/{namespace}/topics/lab.files", topic_body(namespace, "lab.files")
    )
    return kafka_name


def read_records(bootstrap: str, topic: str, count: int, timeout: float) -> list[object]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"watch-test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    # Assigned, not subscribed: the embedded broker delays each group join by seconds.
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    records: list[object] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                records.append(message)
    finally:
        consumer.close()
    return records


@pytest.mark.broker
@pytest.mark.parametrize(
    ("stop_signal", "json_output"), [(signal.SIGINT, True), (signal.SIGTERM, False)]
)
def test_finished_files_become_events_until_stopped(
    api: FakeAPI,
    bootstrap_servers: str,
    watch_topic: str,
    tmp_path: Path,
    stop_signal: signal.Signals,
    json_output: bool,
) -> None:
    watched = tmp_path / "incoming"
    watched.mkdir()
    namespace = watch_topic.split(".", maxsplit=1)[0]
    topic_path = f"/v1/namespaces/{namespace}/topics/lab.files"
    outcome: dict[str, object] = {}

    def drive() -> None:
        # The watcher starts right after the topic was accepted (the observer's inotify
        # watch is set up synchronously); write two files, wait for both events on the
        # topic, then press Ctrl-C (or send SIGTERM). The signal is only sent once events
        # are on the topic, so the command's handlers are in place by then.
        deadline = time.monotonic() + 30
        while not api.calls("GET", topic_path) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)
        (watched / "a.txt").write_bytes(b"alpha")
        with (watched / "b.bin").open("wb") as handle:
            for _ in range(3):
                handle.write(b"x" * 1000)
                handle.flush()
                time.sleep(0.05)
        outcome["records"] = read_records(bootstrap_servers, watch_topic, 2, 30)
        time.sleep(0.5)  # nothing else follows (checked below)
        os.kill(os.getpid(), stop_signal)

    driver = threading.Thread(target=drive)
    driver.start()
    args = ["watch", str(watched), "--topic", "lab.files", "--settle-ms", "200"]
    result = run(api, *args, *(["--json"] if json_output else []))
    driver.join(60)
    assert result.exit_code == 0, result.output

    records = outcome["records"]
    assert isinstance(records, list) and len(records) == 2
    envelopes = {}
    for message in records:
        envelope = json.loads(message.value())
        envelopes[envelope["subject"]] = envelope
        assert message.key().decode() == envelope["subject"]
        headers = dict(message.headers())
        assert headers["content-type"] == ce.STRUCTURED_CONTENT_TYPE.encode()
        assert headers["ce_type"] == ce.CREATED.encode()
        assert headers["ce_id"] == envelope["id"].encode()
        ce.validate(envelope)
        assert envelope["type"] == ce.CREATED
        assert envelope["data"]["sha256"] == file_sha256(watched / envelope["subject"])
        assert envelope["data"]["size"] == (watched / envelope["subject"]).stat().st_size
    assert sorted(envelopes) == ["a.txt", "b.bin"]

    # One line per delivered event, and nothing else.
    if json_output:
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert {line["event"]["subject"]: line["event"] for line in lines} == envelopes
        assert len(lines) == 2 and {line["topic"] for line in lines} == {watch_topic}
    else:
        expected = {f"{e['time']} created {name}" for name, e in envelopes.items()}
        assert sorted(result.stdout.splitlines()) == sorted(expected)
    assert f"watching {watched.resolve()} -> {watch_topic}" in result.stderr
    assert result.stderr.splitlines()[-1] == f"published 2 events to {watch_topic}"
