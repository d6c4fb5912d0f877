"""Run the local fabric's services as supervised child processes.

Each service is a :class:`ServiceSpec` (name, command, health check, dependencies);
adding a service to the fabric is adding one entry to the list ``fabric.py`` builds.
The supervisor

- starts services in dependency order, each only once the ones it depends on are healthy;
- copies every child's output into ``logs/<name>.log`` (size-capped, rotated);
- restarts a child that exits or fails its health check several times in a row, with
  exponential backoff, at most ``max_restarts`` times per ``window_s`` — past that it
  gives up loudly (:class:`ServiceGaveUp`) and the fabric stops;
- runs the service's ``on_ready`` hook after every (re)start (the broker's recreates
  the registered topics), and stops everything in reverse order.

Children run in their own process group (so a terminal's Ctrl-C reaches only the
supervisor, which stops them in order) and, on Linux, die with the supervisor
(``PR_SET_PDEATHSIG``) so a killed supervisor leaves no orphans.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

from confluent_kafka.admin import AdminClient

from runtime.domain.errors import FabricError
from runtime.local.state import ProcessRef, RotatingLog, ServiceRecord, StatePaths

logger = logging.getLogger("octopus.local")

HealthCheck = Callable[[], bool]
# Called after a service became healthy; the flag says whether this was a restart.
ReadyHook = Callable[[bool], None]


class LocalFabricError(FabricError):
    """Something stopped the local fabric from starting or running."""

    status = 500
    code = "local_fabric_error"


class StartFailed(LocalFabricError):
    code = "local_start_failed"


class ServiceGaveUp(LocalFabricError):
    """A service kept dying: restarted ``max_restarts`` times within the window."""

    code = "local_service_gave_up"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    command: Sequence[str]
    # None: a running process counts as healthy.
    health_check: HealthCheck | None = None
    depends_on: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    on_ready: ReadyHook | None = None
    # The broker exits at once on SIGINT (SIGTERM takes ~5 s); uvicorn handles both.
    stop_signal: int = signal.SIGTERM
    startup_timeout_s: float = 30.0
    stop_timeout_s: float = 5.0
    # Without a health check, a service counts as started once it has run this long.
    settle_s: float = 1.0


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 5
    window_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    health_interval_s: float = 2.0
    # Consecutive failed health checks of a running process before it is restarted.
    unhealthy_after: int = 3


# -- health checks ------------------------------------------------------------------------


def tcp_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def broker_healthy(host: str, port: int, timeout_s: float = 5.0) -> bool:
    """TCP connect, then a full metadata request (never a per-topic one: it creates topics)."""
    if not tcp_open(host, port, timeout_s=min(timeout_s, 2.0)):
        return False
    admin = AdminClient(
        {
            "bootstrap.servers": f"{host}:{port}",
            "socket.timeout.ms": int(timeout_s * 1000),
            "log_level": 0,
        }
    )
    try:
        admin.list_topics(timeout=timeout_s)
    except Exception:
        return False
    return True


def http_healthy(url: str, timeout_s: float = 5.0) -> bool:
    """GET ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - our URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


# -- dying with the supervisor ------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _pdeathsig_setter() -> Callable[[], None] | None:
    """A preexec function asking the kernel to SIGKILL the child when we die (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    prctl = ctypes.CDLL(libc_name, use_errno=True).prctl  # resolved now, not after fork

    def set_pdeathsig() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return set_pdeathsig


_SET_PDEATHSIG = _pdeathsig_setter()


# -- one supervised child -----------------------------------------------------------------


class _Child:
    def __init__(self, spec: ServiceSpec, paths: StatePaths) -> None:
        self.spec = spec
        self.log = RotatingLog(paths.log(spec.name))
        self.process: subprocess.Popen[bytes] | None = None
        self.pump: threading.Thread | None = None
        self.record = ServiceRecord(name=spec.name)
        self.recent_restarts: deque[float] = deque()
        self.failed_checks = 0
        self.next_check_at = 0.0
        self.restart_at: float | None = None

    def spawn(self) -> None:
        self.note(f"--- starting {self.spec.name}: {' '.join(self.spec.command)}")
        process = subprocess.Popen(  # noqa: S603 - commands built by the fabric, no shell
            list(self.spec.command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.spec.env},
            process_group=0,
            preexec_fn=_SET_PDEATHSIG,  # noqa: PLW1509 - only a prctl call, resolved before fork
        )
        self.process = process
        self.record = self.record.model_copy(
            update={"process": ProcessRef.of(process.pid), "state": "starting", "detail": ""}
        )
        assert process.stdout is not None
        self.pump = threading.Thread(
            target=_copy_output,
            args=(process.stdout, self.log),
            name=f"log-{self.spec.name}",
            daemon=True,
        )
        self.pump.start()

    def note(self, line: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.log.write(f"{stamp} {line}\n".encode())

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def healthy(self) -> bool:
        if self.exit_code() is not None or self.process is None:
            return False
        check = self.spec.health_check
        return True if check is None else check()

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process.pid, self.spec.stop_signal)
            try:
                process.wait(timeout=self.spec.stop_timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "%s did not stop in %.0f s; killing it",
                    self.spec.name,
                    self.spec.stop_timeout_s,
                )
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        # Anything the service left in its process group goes too.
        _signal_group(process.pid, signal.SIGKILL)
        if self.pump is not None:
            self.pump.join(timeout=2)
        self.note(f"--- {self.spec.name} stopped (exit code {process.returncode})")
        self.process = None

    def close(self) -> None:
        self.log.close()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _copy_output(stream: IO[bytes], log: RotatingLog) -> None:
    with contextlib.suppress(ValueError, OSError):
        for line in iter(stream.readline, b""):
            log.write(line)
    with contextlib.suppress(OSError):
        stream.close()


def dependency_order(specs: Sequence[ServiceSpec]) -> list[ServiceSpec]:
    """Specs sorted so every service comes after the ones it depends on."""
    by_name = {spec.name: spec for spec in specs}
    ordered: list[ServiceSpec] = []
    visiting: set[str] = set()

    def visit(spec: ServiceSpec) -> None:
        if spec in ordered:
            return
        if spec.name in visiting:
            raise ValueError(f"services depend on each other in a cycle through {spec.name}")
        visiting.add(spec.name)
        for dependency in spec.depends_on:
            if dependency not in by_name:
                raise ValueError(f"service {spec.name} depends on unknown service {dependency}")
            visit(by_name[dependency])
        visiting.discard(spec.name)
        ordered.append(spec)

    for spec in specs:
        visit(spec)
    return ordered


# -- the supervisor -----------------------------------------------------------------------


class Supervisor:
    """Starts, watches, restarts and stops a set of services.

    ``on_event(message)`` is told about everything a user should see (starts,
    restarts, give-ups); ``on_change()`` after any change of pids or states, so
    the caller can rewrite ``fabric.json``.
    """

    def __init__(
        self,
        specs: Sequence[ServiceSpec],
        paths: StatePaths,
        *,
        policy: RestartPolicy | None = None,
        on_event: Callable[[str], None] = lambda message: None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.paths = paths
        self.policy = policy or RestartPolicy()
        self.on_event = on_event
        self.on_change = on_change
        self._children = [_Child(spec, paths) for spec in dependency_order(specs)]

    def records(self) -> dict[str, ServiceRecord]:
        return {child.spec.name: child.record for child in self._children}

    def start_all(self, stop: threading.Event) -> None:
        """Start every service in order; ``StartFailed`` naming the one that did not come up."""
        for child in self._children:
            if stop.is_set():
                return
            error = self._start(child, stop, restarted=False)
            if error is not None:
                raise StartFailed(
                    f"{child.spec.name} did not start: {error} (log: {child.log.path})",
                    details={"service": child.spec.name, "log": str(child.log.path)},
                )

    def run(self, stop: threading.Event) -> None:
        """Watch the services until ``stop`` is set; ``ServiceGaveUp`` if one keeps dying."""
        while not stop.is_set():
            now = time.monotonic()
            for child in self._children:
                if stop.is_set():
                    break
                self._watch(child, now, stop)
            stop.wait(0.2)

    def stop_all(self) -> None:
        for child in reversed(self._children):
            if child.process is not None:
                logger.info("stopping %s", child.spec.name)
            child.stop()
            child.record = child.record.model_copy(update={"state": "stopped"})
        for child in self._children:
            child.close()
        self.on_change()

    # -- internals ------------------------------------------------------------------------

    def _start(self, child: _Child, stop: threading.Event, *, restarted: bool) -> str | None:
        """Spawn and wait until healthy and ready; the reason if it did not get there."""
        child.spawn()
        self.on_change()
        error = self._wait_healthy(child, stop)
        if error is None and child.spec.on_ready is not None and not stop.is_set():
            try:
                child.spec.on_ready(restarted)
            except Exception as exc:  # a failed hook means the service is not usable
                error = f"not ready: {exc}"
        if error is not None:
            if not stop.is_set():
                child.note(f"--- {child.spec.name} failed to start: {error}")
            child.stop()
            child.record = child.record.model_copy(update={"detail": error})
            self.on_change()
            return error
        child.failed_checks = 0
        child.next_check_at = time.monotonic() + self.policy.health_interval_s
        child.record = child.record.model_copy(update={"state": "running", "detail": ""})
        self.on_change()
        logger.info("%s is healthy (pid %s)", child.spec.name, child.process and child.process.pid)
        return None

    def _wait_healthy(self, child: _Child, stop: threading.Event) -> str | None:
        started = time.monotonic()
        deadline = started + child.spec.startup_timeout_s
        delay = 0.02
        while not stop.is_set():
            code = child.exit_code()
            if code is not None:
                return f"exited with code {code}"
            settled = time.monotonic() - started >= child.spec.settle_s
            if (child.spec.health_check is not None or settled) and child.healthy():
                return None
            if time.monotonic() >= deadline:
                return f"not healthy after {child.spec.startup_timeout_s:.0f} s"
            stop.wait(delay)
            delay = min(delay * 2, 0.25)
        return "stopping"

    def _watch(self, child: _Child, now: float, stop: threading.Event) -> None:
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.restart_at = None
                self._restart(child, stop)
            return
        code = child.exit_code()
        if code is not None:
            self._schedule_restart(child, f"exited with code {code}")
            return
        if now < child.next_check_at:
            return
        child.next_check_at = now + self.policy.health_interval_s
        if child.healthy():
            child.failed_checks = 0
            return
        child.failed_checks += 1
        logger.warning(
            "%s failed its health check (%d/%d)",
            child.spec.name,
            child.failed_checks,
            self.policy.unhealthy_after,
        )
        if child.failed_checks >= self.policy.unhealthy_after:
            child.stop()
            self._schedule_restart(
                child, f"unhealthy ({child.failed_checks} failed health checks in a row)"
            )

    def _schedule_restart(self, child: _Child, reason: str) -> None:
        if child.process is not None:
            child.stop()
        now = time.monotonic()
        recent = child.recent_restarts
        while recent and now - recent[0] > self.policy.window_s:
            recent.popleft()
        if len(recent) >= self.policy.max_restarts:
            message = (
                f"{child.spec.name} {reason}; it was restarted {len(recent)} times in the last "
                f"{self.policy.window_s:.0f} s — giving up (log: {child.log.path})"
            )
            child.record = child.record.model_copy(update={"state": "failed", "detail": message})
            self.on_change()
            logger.error("%s", message)
            raise ServiceGaveUp(message, details={"service": child.spec.name})
        recent.append(now)
        delay = min(
            self.policy.backoff_initial_s * 2 ** (len(recent) - 1), self.policy.backoff_max_s
        )
        child.restart_at = now + delay
        child.record = child.record.model_copy(
            update={"state": "restarting", "restarts": child.record.restarts + 1, "detail": reason}
        )
        self.on_change()
        self.on_event(f"{child.spec.name} {reason}; restarting in {delay:.1f} s")
        logger.warning("%s %s; restarting in %.1f s", child.spec.name, reason, delay)

    def _restart(self, child: _Child, stop: threading.Event) -> None:
        error = self._start(child, stop, restarted=True)
        if stop.is_set():
            return
        if error is not None:
            self._schedule_restart(child, f"failed to restart: {error}")
            return
        pid = child.process.pid if child.process is not None else None
        self.on_event(f"{child.spec.name} restarted (pid {pid})")
