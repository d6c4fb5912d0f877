"""The core of ``octopus watch DIR --topic T [--recursive]``: file changes → CloudEvents.

watchdog reports created / modified / moved / deleted. A file being written produces many
events; it is announced once, when it is *finished*: its size and mtime have not changed
for ``settle_ms`` (and no event arrived for it in that time). Then the envelope carries its
size, mtime and sha256. Deletions are announced at once; a file created and deleted before
it settled is never announced; a file moved before it settled is announced once, as
created, under its new name (the write-then-rename pattern).

Envelopes (see :mod:`runtime.storage.cloudevents`): ``source`` ``file://<host><dir>``,
``subject`` the path relative to the watched directory (POSIX separators), ``data``
``{path, size, mtime, sha256, from_path?}``. Publishing is a callback (the CLI wires it to
the SDK producer, keyed by subject). Only the standard library, watchdog and
:mod:`runtime.storage.cloudevents` are used, so the CLI can take this module as is.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
    FileSystemMovedEvent,
)
from watchdog.observers import Observer

from runtime.storage import cloudevents as ce

logger = logging.getLogger(__name__)

Publish = Callable[[dict[str, Any]], None]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class _Pending:
    kind: str  # the event type to announce once the file settles
    last_event: float  # monotonic time of the last watchdog event for it
    stat: tuple[int, int] | None  # (size, mtime_ns) at the last check
    stat_changed: float
    from_path: str | None = None


class DirectoryWatcher(FileSystemEventHandler):
    def __init__(
        self,
        directory: str | Path,
        publish: Publish,
        *,
        recursive: bool = False,
        settle_ms: int = 500,
        check_interval_s: float = 0.05,
        host: str | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.root = Path(directory).resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(f"{self.root} is not a directory")
        self.publish = publish
        self.recursive = recursive
        self.settle_s = settle_ms / 1000.0
        self.check_interval_s = check_interval_s
        self.source = f"file://{host or socket.gethostname()}{self.root.as_posix()}"
        self.on_error = on_error or (lambda exc: logger.error("publishing failed: %s", exc))
        self._pending: dict[str, _Pending] = {}
        self._announced: set[str] = set()  # files consumers know under their current name
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._observer: Any = None
        self._ticker: threading.Thread | None = None
        self.published = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        observer = Observer()
        observer.schedule(self, str(self.root), recursive=self.recursive)
        observer.start()
        self._observer = observer
        self._ticker = threading.Thread(target=self._tick, name="octopus-watch", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._ticker is not None:
            self._ticker.join(timeout=5)

    def __enter__(self) -> DirectoryWatcher:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def run_until(self, stop: threading.Event) -> None:
        """Watch until ``stop`` is set (the CLI sets it on Ctrl-C)."""
        with self:
            stop.wait()

    # -- watchdog callbacks (observer thread) ---------------------------------------------

    def _relative(self, raw: str | bytes) -> str | None:
        path = Path(os.fsdecode(raw))
        try:
            relative = path.resolve().relative_to(self.root)
        except ValueError:
            return None
        if not self.recursive and len(relative.parts) != 1:
            return None
        return relative.as_posix()

    def on_created(self, event: FileSystemEvent) -> None:
        if isinstance(event, DirCreatedEvent) or event.is_directory:
            return
        self._touch(event.src_path, ce.CREATED)

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._touch(event.src_path, ce.MODIFIED)

    def on_closed(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._touch(event.src_path, ce.MODIFIED)

    def on_moved(self, event: FileSystemEvent) -> None:
        if event.is_directory or not isinstance(event, FileSystemMovedEvent):
            return
        source = self._relative(event.src_path)
        target = self._relative(event.dest_path)
        removed = None
        with self._lock:
            was_pending = self._pending.pop(source, None) if source else None
            known = source is not None and source in self._announced
            if source is not None:
                self._announced.discard(source)
            if target is None:
                # Moved out of what we watch: it is gone for our consumers.
                removed = source if known else None
            else:
                now = time.monotonic()
                if known:
                    kind, from_path = ce.MOVED, source
                else:
                    kind = was_pending.kind if was_pending is not None else ce.CREATED
                    from_path = None
                self._pending[target] = _Pending(kind, now, None, now, from_path)
        if removed is not None:
            self._emit_removed(removed)

    def on_deleted(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        relative = self._relative(event.src_path)
        if relative is None:
            return
        with self._lock:
            self._pending.pop(relative, None)
            known = relative in self._announced
            self._announced.discard(relative)
        if known:
            self._emit_removed(relative)

    def _touch(self, raw: str | bytes, kind: str) -> None:
        relative = self._relative(raw)
        if relative is None:
            return
        now = time.monotonic()
        with self._lock:
            pending = self._pending.get(relative)
            if pending is None:
                if kind == ce.MODIFIED and relative not in self._announced:
                    kind = ce.CREATED  # first time we see it (e.g. created before start)
                self._pending[relative] = _Pending(kind, now, None, now)
            else:
                pending.last_event = now

    # -- settling (ticker thread) ---------------------------------------------------------

    def _tick(self) -> None:
        while not self._stop.wait(self.check_interval_s):
            self.check_pending()

    def check_pending(self) -> None:
        now = time.monotonic()
        ready: list[tuple[str, _Pending, os.stat_result]] = []
        with self._lock:
            for relative, pending in list(self._pending.items()):
                try:
                    stat = (self.root / relative).stat()
                except FileNotFoundError:
                    self._pending.pop(relative, None)
                    continue
                current = (stat.st_size, stat.st_mtime_ns)
                if current != pending.stat:
                    pending.stat, pending.stat_changed = current, now
                    continue
                if now - max(pending.last_event, pending.stat_changed) >= self.settle_s:
                    del self._pending[relative]
                    ready.append((relative, pending, stat))
        for relative, pending, stat in ready:
            self._announce(relative, pending, stat)

    def _announce(self, relative: str, pending: _Pending, stat: os.stat_result) -> None:
        path = self.root / relative
        try:
            digest = file_sha256(path)
            after = path.stat()
        except FileNotFoundError:
            return  # deleted while we hashed: its deletion is reported (if announced)
        if (after.st_size, after.st_mtime_ns) != (stat.st_size, stat.st_mtime_ns):
            with self._lock:  # written again while hashing: settle again
                now = time.monotonic()
                self._pending.setdefault(relative, _Pending(pending.kind, now, None, now))
            return
        mtime = datetime.fromtimestamp(stat.st_mtime_ns / 1e9, UTC)
        data: dict[str, Any] = {
            "path": relative,
            "size": stat.st_size,
            "mtime": ce.iso_time(mtime),
            "sha256": digest,
        }
        if pending.from_path is not None:
            data["from_path"] = pending.from_path
        envelope = ce.envelope(
            event_type=pending.kind,
            source=self.source,
            subject=relative,
            time=mtime,
            data=data,
            event_id=ce.stable_id(self.source, relative, pending.kind, stat.st_mtime_ns, digest),
        )
        with self._lock:
            self._announced.add(relative)
        self._send(envelope)

    def _emit_removed(self, relative: str) -> None:
        now = datetime.now(UTC)
        envelope = ce.envelope(
            event_type=ce.REMOVED,
            source=self.source,
            subject=relative,
            time=now,
            data={"path": relative, "size": None, "mtime": None, "sha256": None},
            event_id=ce.stable_id(self.source, relative, ce.REMOVED, now.isoformat()),
        )
        self._send(envelope)

    def _send(self, envelope: dict[str, Any]) -> None:
        try:
            self.publish(envelope)
            self.published += 1
        except Exception as exc:  # a failed publish must not stop the watcher
            self.on_error(exc)
