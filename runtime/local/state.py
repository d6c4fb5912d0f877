"""The local fabric's state directory: where every file lives, and the running-fabric record.

Layout (``~/.octopus/local`` unless ``--state-dir``; see docs/local.md)::

    settings.json        the RuntimeSettings the web service runs with (edit quotas here)
    registry.sqlite      the registry: namespaces, topics, grants, keys, triggers
    dev-tokens.json      development identities and their bearer tokens (mode 0600)
    fabric.json          the running fabric: pids, ports, URLs (removed on a clean stop)
    supervisor.lock      held (flock) by the running supervisor
    logs/fabric.log      the supervisor: starts, health, restarts, stops
    logs/broker.log      the embedded broker's output
    logs/api.log         the web service's output (uvicorn + audit log)

Logs are capped at ``LOG_MAX_BYTES`` each and rotated to ``.1`` … ``.N``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal

from pydantic import BaseModel, ConfigDict, Field

STATE_DIR_ENV = "OCTOPUS_LOCAL_STATE_DIR"
DEFAULT_STATE_DIR = Path("~/.octopus/local")
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 3


@dataclass(frozen=True)
class StatePaths:
    """Every path of one state directory (absolute)."""

    root: Path

    @classmethod
    def of(cls, state_dir: str | Path) -> StatePaths:
        return cls(Path(state_dir).expanduser().resolve())

    @property
    def settings(self) -> Path:
        return self.root / "settings.json"

    @property
    def registry(self) -> Path:
        return self.root / "registry.sqlite"

    @property
    def dev_tokens(self) -> Path:
        return self.root / "dev-tokens.json"

    @property
    def fabric_record(self) -> Path:
        return self.root / "fabric.json"

    @property
    def lock(self) -> Path:
        return self.root / "supervisor.lock"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def create(self) -> None:
        # The directory holds live tokens: owner only.
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.logs.mkdir(exist_ok=True, mode=0o700)


# -- processes ----------------------------------------------------------------------------


class ProcessRef(BaseModel):
    """A pid plus its kernel start time, so a reused pid is never mistaken for ours."""

    model_config = ConfigDict(frozen=True)

    pid: int
    start_ticks: int | None = None

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        return cls(pid=pid, start_ticks=_start_ticks(pid))

    def alive(self) -> bool:
        """Running (a zombie counts as gone) and still the same process."""
        stat = _proc_stat(self.pid)
        if stat is None:
            return _signal_zero(self.pid)
        state, start_ticks = stat
        if state in ("Z", "X"):
            return False
        return self.start_ticks is None or start_ticks == self.start_ticks


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) from /proc, None where /proc is unavailable."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return ("X", -1) if Path("/proc/self").exists() else None
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _start_ticks(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return stat[1] if stat is not None and stat[1] >= 0 else None


def _signal_zero(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the running-fabric record ------------------------------------------------------------

Phase = Literal["starting", "ready", "stopping", "failed"]


class ServiceRecord(BaseModel):
    name: str
    process: ProcessRef | None = None
    restarts: int = 0
    state: Literal["starting", "running", "restarting", "failed", "stopped"] = "starting"
    detail: str = ""


class FabricRecord(BaseModel):
    """``fabric.json``: written by the supervisor, read by ``status``/``down``/``up --detach``."""

    supervisor: ProcessRef
    phase: Phase = "starting"
    error: str | None = None
    host: str
    api_port: int
    broker_port: int
    api_url: str
    docs_url: str
    bootstrap_servers: str
    state_dir: str
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # Progress lines, in order; ``up --detach`` shows them as they appear.
    steps: list[str] = Field(default_factory=list)
    topics_recreated: int = 0
    services: dict[str, ServiceRecord] = Field(default_factory=dict)

    def processes(self) -> list[ProcessRef]:
        children = [s.process for s in self.services.values() if s.process is not None]
        return [self.supervisor, *children]


def write_json_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_record(paths: StatePaths, record: FabricRecord) -> None:
    write_json_atomic(paths.fabric_record, record.model_dump_json(indent=2) + "\n")


def read_record(paths: StatePaths) -> FabricRecord | None:
    """The record, or None if there is none (or it is unreadable: a crash mid-write)."""
    try:
        return FabricRecord.model_validate_json(paths.fabric_record.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        return None


def remove_record(paths: StatePaths) -> None:
    paths.fabric_record.unlink(missing_ok=True)


# -- the one-supervisor-per-state-dir lock ------------------------------------------------


class StateDirLock:
    """An exclusive flock on ``supervisor.lock``; the kernel drops it when the process dies."""

    def __init__(self, paths: StatePaths) -> None:
        self._path = paths.lock
        self._handle: IO[str] | None = None

    def acquire(self) -> bool:
        handle = self._path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def lock_is_held(paths: StatePaths) -> bool:
    if not paths.lock.exists():
        return False
    probe = StateDirLock(paths)
    if probe.acquire():
        probe.release()
        return False
    return True


# -- size-capped logs ---------------------------------------------------------------------


class RotatingLog:
    """An append-only log file capped at ``max_bytes``, rotated to ``.1`` … ``.backups``.

    Child processes write into a pipe; the supervisor copies the pipe here, so a
    chatty service cannot fill the disk.
    """

    def __init__(
        self, path: Path, max_bytes: int = LOG_MAX_BYTES, backups: int = LOG_BACKUPS
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._handle: IO[bytes] = path.open("ab")

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._handle.tell() + len(data) > self.max_bytes and self._handle.tell() > 0:
                self._rotate()
            self._handle.write(data)
            self._handle.flush()

    def _rotate(self) -> None:
        self._handle.close()
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._handle = self.path.open("ab")

    def close(self) -> None:
        with self._lock:
            self._handle.close()


def dump_json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
