"""``octopus watch`` core on a real directory (inotify, watchdog): one event per finished file."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

from runtime.storage import cloudevents as ce
from runtime.storage.watcher import DirectoryWatcher

SETTLE_MS = 300


class Collected:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, envelope: dict[str, Any]) -> None:
        with self.lock:
            self.events.append(envelope)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.events) >= count:
                    return list(self.events)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} events, got {self.events}")


def _quiet(watcher: DirectoryWatcher, collected: Collected, seconds: float = 1.0) -> None:
    """Let any stray event settle: nothing more may arrive."""
    before = len(collected.events)
    time.sleep(seconds)
    assert len(collected.events) == before, collected.events[before:]


def test_one_event_per_finished_file_including_a_slow_writer(tmp_path: Path) -> None:
    collected = Collected()
    with DirectoryWatcher(tmp_path, collected, settle_ms=SETTLE_MS, host="edge1") as watcher:
        (tmp_path / "a.txt").write_bytes(b"alpha")
        (tmp_path / "b.bin").write_bytes(os.urandom(4096))
        # A file written slowly in chunks: 8 chunks, 100 ms apart (< settle time).
        slow = tmp_path / "slow.dat"
        chunks = [os.urandom(10_000) for _ in range(8)]
        with slow.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                handle.flush()
                time.sleep(0.1)
        events = collected.wait_for(3)
        _quiet(watcher, collected)
    by_subject = {e["subject"]: e for e in collected.events}
    assert sorted(by_subject) == ["a.txt", "b.bin", "slow.dat"]
    assert len(collected.events) == 3
    for event in events:
        ce.validate(event)
        assert event["type"] == ce.CREATED
        assert event["source"] == f"file://edge1{tmp_path.resolve().as_posix()}"
    slow_event = by_subject["slow.dat"]["data"]
    assert slow_event["size"] == 80_000  # announced once, complete
    assert slow_event["sha256"] == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert by_subject["a.txt"]["data"]["path"] == "a.txt"
    assert by_subject["a.txt"]["data"]["mtime"].endswith("Z")


def test_modified_moved_deleted_and_write_then_rename(tmp_path: Path) -> None:
    collected = Collected()
    target = tmp_path / "data.csv"
    with DirectoryWatcher(tmp_path, collected, settle_ms=SETTLE_MS) as watcher:
        target.write_text("1\n")
        collected.wait_for(1)
        target.write_text("1\n2\n")
        collected.wait_for(2)
        target.rename(tmp_path / "final.csv")
        collected.wait_for(3)
        (tmp_path / "final.csv").unlink()
        collected.wait_for(4)
        # Written under a temporary name, renamed before it settled: one "created".
        temporary = tmp_path / ".part"
        temporary.write_text("payload")
        temporary.rename(tmp_path / "done.txt")
        collected.wait_for(5)
        # Created and deleted before it settled: never announced.
        gone = tmp_path / "gone.tmp"
        gone.write_text("x")
        gone.unlink()
        _quiet(watcher, collected)
    kinds = [(e["type"], e["subject"]) for e in collected.events]
    assert kinds == [
        (ce.CREATED, "data.csv"),
        (ce.MODIFIED, "data.csv"),
        (ce.MOVED, "final.csv"),
        (ce.REMOVED, "final.csv"),
        (ce.CREATED, "done.txt"),
    ]
    assert collected.events[1]["data"]["size"] == 4
    assert collected.events[2]["data"]["from_path"] == "data.csv"
    assert collected.events[3]["data"]["sha256"] is None


def test_recursive_option(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    flat, deep = Collected(), Collected()
    with (
        DirectoryWatcher(tmp_path, flat, settle_ms=SETTLE_MS) as flat_watcher,
        DirectoryWatcher(tmp_path, deep, settle_ms=SETTLE_MS, recursive=True),
    ):
        (tmp_path / "sub" / "inner.txt").write_text("deep")
        (tmp_path / "top.txt").write_text("top")
        deep.wait_for(2)
        flat.wait_for(1)
        _quiet(flat_watcher, flat, 0.6)
    assert sorted(e["subject"] for e in deep.events) == ["sub/inner.txt", "top.txt"]
    assert [e["subject"] for e in flat.events] == ["top.txt"]


def test_a_failing_publish_does_not_stop_the_watcher(tmp_path: Path) -> None:
    errors: list[Exception] = []
    delivered = Collected()
    calls = {"n": 0}

    def flaky(envelope: dict[str, Any]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("broker down")
        delivered(envelope)

    with DirectoryWatcher(tmp_path, flaky, settle_ms=SETTLE_MS, on_error=errors.append):
        (tmp_path / "one").write_text("1")
        time.sleep(SETTLE_MS / 1000 + 0.4)
        (tmp_path / "two").write_text("2")
        delivered.wait_for(1)
    assert [type(e) for e in errors] == [ConnectionError]
    assert [e["subject"] for e in delivered.events] == ["two"]
