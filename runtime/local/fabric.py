"""``octopus local up|down|status|logs``: the whole fabric on one machine.

The CLI (and ``python -m runtime.local``) call :func:`up`, :func:`down`, :func:`status`
and :func:`logs`. ``up`` runs a :class:`~runtime.local.supervisor.Supervisor` over the
services of :func:`local_services` — the embedded broker on 127.0.0.1, the web service
under uvicorn, and the trigger runner once it exists — either in this process
(foreground; Ctrl-C stops everything) or in a detached session (``--detach``).
State lives in one directory (see :mod:`runtime.local.state` and docs/local.md).
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import ipaddress
import json
import logging
import logging.handlers
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from rich.console import Console

import runtime
from runtime.adapters.kafka_admin import KafkaBrokerAdmin
from runtime.adapters.kafka_config import local_client_config
from runtime.adapters.local.dev_identity import DevToken, DevTokensFile, ensure_tokens_file
from runtime.adapters.local.sqlite_registry import SqliteRegistry
from runtime.config import SETTINGS_ENV_VAR, RuntimeSettings, TopicPolicy
from runtime.domain.models import TopicState
from runtime.local.broker import DEFAULT_HOST, EmbeddedBroker, port_is_free
from runtime.local.state import (
    DEFAULT_STATE_DIR,
    LOG_BACKUPS,
    LOG_MAX_BYTES,
    STATE_DIR_ENV,
    FabricRecord,
    ProcessRef,
    StateDirLock,
    StatePaths,
    lock_is_held,
    read_record,
    remove_record,
    write_json_atomic,
    write_record,
)
from runtime.local.supervisor import (
    LocalFabricError,
    RestartPolicy,
    ServiceGaveUp,
    ServiceSpec,
    StartFailed,
    Supervisor,
    broker_healthy,
    http_healthy,
)

__all__ = [
    "AlreadyRunning",
    "LocalFabricError",
    "LocalOptions",
    "LocalStatus",
    "PortTaken",
    "ServiceGaveUp",
    "ServiceStatus",
    "StartFailed",
    "down",
    "logs",
    "status",
    "up",
]

logger = logging.getLogger("octopus.local")

LogLevel = Literal["debug", "info", "warning", "error"]
EVENTS_IN_MEMORY_WARNING = (
    "Events are kept in memory: restarting the broker loses events, not configuration "
    "(the registry keeps namespaces, topics, grants, keys and triggers)."
)
STEP_LABELS = {"api": "web service", "trigger-runner": "trigger runner"}
DETACHED_READY_TIMEOUT_S = 90.0
DOWN_TIMEOUT_S = 20.0


class AlreadyRunning(LocalFabricError):
    code = "local_already_running"


class PortTaken(LocalFabricError):
    status = 409
    code = "port_in_use"


class LocalOptions(BaseModel):
    """Options of ``octopus local up``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state_dir: Path = Field(default=DEFAULT_STATE_DIR, validate_default=True)
    # The web service binds here; anything but loopback is reachable from the network.
    host: str = DEFAULT_HOST
    # diaspora-event-sdk's "local" environment expects http://localhost:8000.
    api_port: int = Field(default=8000, ge=1, le=65535)
    # The broker always binds 127.0.0.1 (it has no authentication).
    broker_port: int = Field(default=9092, ge=1, le=65535)
    detach: bool = False
    log_level: LogLevel = "info"

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _distinct_ports(self) -> LocalOptions:
        if self.api_port == self.broker_port:
            raise ValueError(f"--api-port and --broker-port are both {self.api_port}")
        return self

    @property
    def loopback_only(self) -> bool:
        return is_loopback(self.host)


class ServiceStatus(BaseModel):
    name: str
    pid: int | None
    running: bool
    healthy: bool
    restarts: int
    state: str
    detail: str = ""


class LocalStatus(BaseModel):
    state_dir: str
    supervisor_pid: int
    phase: str
    started_at: datetime
    host: str
    api_url: str
    docs_url: str
    bootstrap_servers: str
    topics_recreated: int
    services: list[ServiceStatus]

    @property
    def healthy(self) -> bool:
        return self.phase == "ready" and all(service.healthy for service in self.services)


# -- addresses ------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _probe_host(host: str) -> str:
    """Where this machine reaches a listener bound to ``host``."""
    if host in ("0.0.0.0", "", "::"):  # noqa: S104 - mapping a wildcard bind to loopback
        return DEFAULT_HOST
    return f"[{host}]" if ":" in host else host


def api_url(host: str, port: int) -> str:
    return f"http://{_probe_host(host)}:{port}"


# -- the state directory ---------------------------------------------------------------------


def prepare_state(
    options: LocalOptions, paths: StatePaths
) -> tuple[RuntimeSettings, DevToken | None]:
    """Write ``settings.json`` (keeping edits to an existing one) and ensure the tokens file.

    Returns the settings and the development identity if one was just created.
    """
    paths.create()
    stored: dict[str, object] = {}
    if paths.settings.exists():
        try:
            stored = json.loads(paths.settings.read_text())
            RuntimeSettings.model_validate(stored)
        except ValueError as exc:
            raise LocalFabricError(f"{paths.settings} is not valid settings: {exc}") from exc
    else:
        # One broker: replication factor 1 is the honest default for new topics.
        stored["topics"] = TopicPolicy(default_replication_factor=1).model_dump(mode="json")
    # What ties the settings to this run; everything else (quotas, admins…) is the user's.
    stored.update(
        stage="local",
        region="local",
        cluster_mode="local",
        bootstrap_servers=f"{DEFAULT_HOST}:{options.broker_port}",
        internal_bootstrap_servers="",
        registry="sqlite",
        sqlite_path=str(paths.registry),
        identity="dev",
        dev_tokens_file=str(paths.dev_tokens),
        credentials="local",
    )
    settings = RuntimeSettings.model_validate(stored)
    write_json_atomic(paths.settings, settings.model_dump_json(indent=2) + "\n", mode=0o600)
    created = ensure_tokens_file(paths.dev_tokens)
    paths.dev_tokens.chmod(0o600)
    return settings, created


def development_token(paths: StatePaths) -> DevToken | None:
    """The identity to show on the banner: the "developer" created on first up."""
    try:
        content = DevTokensFile.model_validate_json(paths.dev_tokens.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    entries = sorted(
        content.tokens.items(), key=lambda item: (item[1].username != "developer", item[0])
    )
    if not entries:
        return None
    token, entry = entries[0]
    return DevToken(token=token, sub=entry.sub, username=entry.username or "")


# -- the services ------------------------------------------------------------------------


def recreate_topics(settings: RuntimeSettings) -> tuple[int, int]:
    """Create on the broker every ACTIVE registry topic it lacks; (created, active)."""
    registry = SqliteRegistry(settings.sqlite_path)
    admin = KafkaBrokerAdmin({**local_client_config(settings.bootstrap_servers), "log_level": 0})
    try:
        on_broker = admin.list_topics()
        active = [t for t in registry.iter_all_topics() if t.state == TopicState.ACTIVE]
        created = 0
        for topic in active:
            if topic.kafka_name in on_broker:
                continue
            admin.create_topic(
                topic.kafka_name, topic.partitions, topic.replication_factor, dict(topic.configs)
            )
            created += 1
        return created, len(active)
    finally:
        admin.close()
        registry.close()


def child_environment(paths: StatePaths, settings: RuntimeSettings) -> dict[str, str]:
    """What every child gets: where the state is, the settings, and our code on the path."""
    source_root = str(Path(runtime.__file__).resolve().parent.parent)
    python_path = os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH")) if p)
    return {
        STATE_DIR_ENV: str(paths.root),
        SETTINGS_ENV_VAR: settings.model_dump_json(),
        "PYTHONPATH": python_path,
        "PYTHONUNBUFFERED": "1",
    }


def local_services(
    options: LocalOptions,
    settings: RuntimeSettings,
    paths: StatePaths,
    on_ready: Callable[[str, bool], None],
) -> list[ServiceSpec]:
    """The fabric's services. Add a service here: one ``ServiceSpec``.

    ``on_ready(name, restarted)`` runs after each service became healthy (for the
    broker it recreates the registered topics)."""

    def ready_hook(name: str) -> Callable[[bool], None]:
        return lambda restarted: on_ready(name, restarted)

    env = child_environment(paths, settings)
    broker = EmbeddedBroker(port=options.broker_port, host=DEFAULT_HOST)
    broker_env = {"RUST_LOG": "debug" if options.log_level == "debug" else "warn"}
    health_url = api_url(options.host, options.api_port) + "/v1/health"
    services = [
        ServiceSpec(
            name="broker",
            command=broker.command(),
            health_check=lambda: broker_healthy(DEFAULT_HOST, options.broker_port),
            env=broker_env,
            on_ready=ready_hook("broker"),
            stop_signal=signal.SIGINT,
            startup_timeout_s=20.0,
        ),
        ServiceSpec(
            name="api",
            command=[
                sys.executable,
                "-m",
                "uvicorn",
                "runtime.local.server:create_local_app",
                "--factory",
                "--host",
                options.host,
                "--port",
                str(options.api_port),
                "--log-level",
                options.log_level,
                "--timeout-graceful-shutdown",
                "3",
            ],
            health_check=lambda: http_healthy(health_url),
            depends_on=("broker",),
            env=env,
            on_ready=ready_hook("api"),
            startup_timeout_s=60.0,
        ),
    ]
    # Added by the triggers work; picked up as soon as the module exists.
    if importlib.util.find_spec("runtime.local.trigger_runner") is not None:
        services.append(
            ServiceSpec(
                name="trigger-runner",
                command=[sys.executable, "-m", "runtime.local.trigger_runner"],
                depends_on=("broker", "api"),
                env=env,
                on_ready=ready_hook("trigger-runner"),
            )
        )
    return services


# -- reporting ---------------------------------------------------------------------------


class Reporter:
    """Progress lines and events: logged, kept in fabric.json, and printed in the foreground."""

    def __init__(self, console: Console | None) -> None:
        self.console = console
        self.steps: list[str] = []

    def step(self, label: str, message: str) -> None:
        line = f"{label:<17}{message}"
        self.steps.append(line)
        logger.info("%s", line)
        if self.console is not None:
            self.console.print(f"[green]✓[/green] [bold]{label:<17}[/bold]{message}")

    def event(self, message: str) -> None:
        logger.warning("%s", message)
        if self.console is not None:
            self.console.print(f"[yellow]![/yellow] {message}")


def render_banner(console: Console, record: FabricRecord, token: DevToken | None) -> None:
    console.print()
    console.print("[bold green]Octopus local fabric is ready[/bold green]")
    console.print(f"  API        {record.api_url}")
    console.print(f"  API docs   {record.docs_url}")
    console.print(f"  Broker     {record.bootstrap_servers}  (Kafka protocol, PLAINTEXT, loopback)")
    console.print(f"  State dir  {record.state_dir}")
    if token is not None:
        console.print(f"  Dev token  {token.token}  (identity {token.username}, local only)")
    console.print(
        f"  Topics     {record.topics_recreated} recreated on the broker from the registry"
    )
    console.print(f"[yellow]  {EVENTS_IN_MEMORY_WARNING}[/yellow]")
    if not is_loopback(record.host):
        _warn_exposed(console, record.host)


def _warn_exposed(console: Console, host: str) -> None:
    console.print(
        f"[bold red]WARNING: the web service listens on {host}, reachable from other machines. "
        "It accepts development tokens, which are not real authentication: anyone holding one "
        "acts as that identity. The broker stays on 127.0.0.1.[/bold red]"
    )


# -- running the supervisor (foreground, or the detached child) ------------------------------


class _StopRequested:
    """SIGINT/SIGTERM set an event the supervisor watches (restored afterwards)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, object] = {}

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self.event

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        logger.info("received %s: stopping", signal.Signals(signum).name)
        self.event.set()

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


def _file_logging(paths: StatePaths, level: LogLevel) -> logging.Handler:
    handler = logging.handlers.RotatingFileHandler(
        paths.log("fabric"), maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    return handler


def _api_port_free(host: str, port: int) -> bool:
    """Like ``port_is_free`` but for any address family (``--host ::1``)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise LocalFabricError(f"--host {host!r} is not an address of this machine") from exc
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise LocalFabricError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        return True


def check_ports(options: LocalOptions) -> None:
    """``PortTaken`` naming the port, the service and the option to change it."""
    for service, host, port, flag, free in (
        ("web service", options.host, options.api_port, "--api-port", _api_port_free),
        ("broker", DEFAULT_HOST, options.broker_port, "--broker-port", port_is_free),
    ):
        if not free(host, port):
            raise PortTaken(
                f"port {port} on {host} (for the {service}) is already in use; stop what listens "
                f"there or choose another port with {flag}",
                details={"service": service, "host": host, "port": port, "option": flag},
            )


def check_not_running(paths: StatePaths) -> None:
    record = read_record(paths)
    running = record is not None and record.supervisor.alive()
    if running or lock_is_held(paths):
        pid = f" (supervisor pid {record.supervisor.pid})" if record is not None else ""
        raise AlreadyRunning(
            f"a local fabric is already running in {paths.root}{pid}; "
            "stop it with `octopus local down` or use another --state-dir",
            details={"state_dir": str(paths.root)},
        )


def run_supervisor(
    options: LocalOptions, *, console: Console | None, keep_failed_record: bool = False
) -> None:
    """Start the services, watch them until SIGINT/SIGTERM, stop them; in this process."""
    paths = StatePaths.of(options.state_dir)
    paths.create()
    lock = StateDirLock(paths)
    if not lock.acquire():
        check_not_running(paths)
        raise AlreadyRunning(f"a local fabric is already running in {paths.root}")
    handler = _file_logging(paths, options.log_level)
    record: FabricRecord | None = None
    supervisor: Supervisor | None = None
    failed = False
    try:
        check_ports(options)
        settings, _ = prepare_state(options, paths)
        url = api_url(options.host, options.api_port)
        record = FabricRecord(
            supervisor=ProcessRef.of(os.getpid()),
            host=options.host,
            api_port=options.api_port,
            broker_port=options.broker_port,
            api_url=url,
            docs_url=f"{url}/v1/docs",
            bootstrap_servers=settings.bootstrap_servers,
            state_dir=str(paths.root),
        )
        reporter = Reporter(console)
        current = record

        def save() -> None:
            nonlocal current
            services = supervisor.records() if supervisor is not None else {}
            current = current.model_copy(
                update={"services": services, "steps": list(reporter.steps)}
            )
            write_record(paths, current)

        def on_ready(name: str, restarted: bool) -> None:
            if name == "broker":
                on_broker_ready(restarted)
            elif not restarted:
                reporter.step(STEP_LABELS.get(name, name), url if name == "api" else "running")
                save()

        def on_broker_ready(restarted: bool) -> None:
            nonlocal current
            if not restarted:
                reporter.step("broker", f"{settings.bootstrap_servers} (in-memory storage)")
            created, active = recreate_topics(settings)
            current = current.model_copy(update={"topics_recreated": created})
            if restarted:
                reporter.event(
                    f"the broker restarted: its events are lost; recreated {created} of "
                    f"{active} registered topics"
                )
            else:
                reporter.step("registry", f"{paths.registry} ({active} active topics)")
                reporter.step("topics recreated", f"{created} of {active}")
            save()

        supervisor = Supervisor(
            local_services(options, settings, paths, on_ready),
            paths,
            policy=RestartPolicy(),
            on_event=reporter.event,
            on_change=save,
        )
        save()
        with _StopRequested() as stop:
            try:
                supervisor.start_all(stop)
                if stop.is_set():
                    return
                reporter.step("ready", f"docs at {url}/v1/docs")
                current = current.model_copy(update={"phase": "ready"})
                save()
                if console is not None:
                    render_banner(console, current, development_token(paths))
                    console.print("Press Ctrl-C to stop.  Logs: octopus local logs --follow")
                supervisor.run(stop)
            except LocalFabricError as error:
                failed = True
                current = current.model_copy(update={"phase": "failed", "error": error.message})
                save()
                raise
            finally:
                if not failed:
                    if console is not None:
                        console.print("Stopping the local fabric…")
                    current = current.model_copy(update={"phase": "stopping"})
                supervisor.stop_all()
    except LocalFabricError as error:
        failed = True
        logger.error("%s", error.message)
        if keep_failed_record:
            _record_failure(paths, options, error.message)
        raise
    finally:
        if not (failed and keep_failed_record):
            remove_record(paths)
        logger.info("local fabric stopped")
        logger.removeHandler(handler)
        handler.close()
        lock.release()


def _record_failure(paths: StatePaths, options: LocalOptions, message: str) -> None:
    """Leave the reason in fabric.json for the ``up --detach`` that is waiting for us."""
    record = read_record(paths) or FabricRecord(
        supervisor=ProcessRef.of(os.getpid()),
        host=options.host,
        api_port=options.api_port,
        broker_port=options.broker_port,
        api_url=api_url(options.host, options.api_port),
        docs_url="",
        bootstrap_servers=f"{DEFAULT_HOST}:{options.broker_port}",
        state_dir=str(paths.root),
    )
    write_record(paths, record.model_copy(update={"phase": "failed", "error": message}))


# -- the public entry points -------------------------------------------------------------


def up(options: LocalOptions) -> None:
    """Start the local fabric; in the foreground it returns once stopped (Ctrl-C/SIGTERM).

    Raises ``PortTaken``, ``AlreadyRunning``, ``StartFailed``, ``ServiceGaveUp``
    (all ``LocalFabricError``) with a message fit for one line.
    """
    paths = StatePaths.of(options.state_dir)
    paths.create()
    check_not_running(paths)
    check_ports(options)
    console = Console(highlight=False, soft_wrap=True)
    if not options.loopback_only:
        _warn_exposed(console, options.host)
    if options.detach:
        _up_detached(options, paths, console)
    else:
        run_supervisor(options, console=console)
        console.print("Local fabric stopped.")


def _up_detached(options: LocalOptions, paths: StatePaths, console: Console) -> None:
    remove_record(paths)  # stale (checked above): its pids are not ours to wait for
    command = [
        sys.executable,
        "-m",
        "runtime.local",
        "_supervise",
        "--state-dir",
        str(paths.root),
        "--host",
        options.host,
        "--api-port",
        str(options.api_port),
        "--broker-port",
        str(options.broker_port),
        "--log-level",
        options.log_level,
    ]
    source_root = str(Path(runtime.__file__).resolve().parent.parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH")) if p),
    }
    with paths.log("fabric").open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 - our own module
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    shown = 0
    deadline = time.monotonic() + DETACHED_READY_TIMEOUT_S
    with console.status("Starting the local fabric…"):
        while True:
            record = read_record(paths)
            if record is not None and record.supervisor.pid == process.pid:
                for line in record.steps[shown:]:
                    label, message = line[:17], line[17:]
                    console.print(f"[green]✓[/green] [bold]{label}[/bold]{message}")
                shown = len(record.steps)
                if record.phase == "ready" and http_healthy(record.api_url + "/v1/health"):
                    break
                if record.phase == "failed":
                    _wait_exit(process, 10.0)
                    remove_record(paths)
                    raise StartFailed(record.error or "the local fabric failed to start")
            code = process.poll()
            if code is not None:
                record = read_record(paths)
                remove_record(paths)
                reason = record.error if record is not None and record.error else None
                raise StartFailed(
                    reason
                    or f"the local fabric exited with code {code} while starting "
                    f"(log: {paths.log('fabric')})"
                )
            if time.monotonic() >= deadline:
                down(paths.root)
                raise StartFailed(
                    f"the local fabric was not ready after {DETACHED_READY_TIMEOUT_S:.0f} s "
                    f"(log: {paths.log('fabric')})"
                )
            time.sleep(0.1)
    # The supervisor outlives us in its own session; stop tracking it.
    process.returncode = 0
    render_banner(console, record, development_token(paths))
    console.print(
        "Running in the background.  Stop: octopus local down   Logs: octopus local logs -f"
    )


def _wait_exit(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout_s)


def down(state_dir: Path) -> bool:
    """Stop the fabric running in ``state_dir``; True if something was running.

    Signals the supervisor (which stops its children in order), waits, kills
    whatever is left (pids checked against their start time), and checks that
    none of the recorded processes remains.
    """
    paths = StatePaths.of(state_dir)
    record = read_record(paths)
    if record is None:
        return False
    processes = record.processes()
    if not any(process.alive() for process in processes):
        remove_record(paths)
        return False
    supervisor = record.supervisor
    if supervisor.alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(supervisor.pid, signal.SIGTERM)
        deadline = time.monotonic() + DOWN_TIMEOUT_S
        while supervisor.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
            # Children restarted since we read the record are the supervisor's to stop,
            # but keep the newest pids in case we have to kill them ourselves.
            latest = read_record(paths)
            if latest is not None:
                processes = _merge(processes, latest.processes())
    leftovers = [process for process in processes if process.alive()]
    for process in leftovers:
        logger.warning("killing leftover process %d", process.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while any(process.alive() for process in processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    remaining = [process.pid for process in processes if process.alive()]
    if remaining:
        raise LocalFabricError(f"could not stop processes {remaining} of the local fabric")
    remove_record(paths)
    return True


def _merge(known: list[ProcessRef], latest: list[ProcessRef]) -> list[ProcessRef]:
    return known + [process for process in latest if process not in known]


def status(state_dir: Path) -> LocalStatus | None:
    """The running fabric and the live health of each service; None if none runs."""
    paths = StatePaths.of(state_dir)
    record = read_record(paths)
    if record is None or not record.supervisor.alive():
        return None
    services = []
    for name, service in record.services.items():
        running = service.process is not None and service.process.alive()
        if not running:
            healthy = False
        elif name == "broker":
            healthy = broker_healthy(DEFAULT_HOST, record.broker_port)
        elif name == "api":
            healthy = http_healthy(record.api_url + "/v1/health")
        else:
            healthy = True
        services.append(
            ServiceStatus(
                name=name,
                pid=service.process.pid if service.process is not None else None,
                running=running,
                healthy=healthy,
                restarts=service.restarts,
                state=service.state,
                detail=service.detail,
            )
        )
    return LocalStatus(
        state_dir=record.state_dir,
        supervisor_pid=record.supervisor.pid,
        phase=record.phase,
        started_at=record.started_at,
        host=record.host,
        api_url=record.api_url,
        docs_url=record.docs_url,
        bootstrap_servers=record.bootstrap_servers,
        topics_recreated=record.topics_recreated,
        services=services,
    )


FOLLOW_BACKLOG_LINES = 50


def logs(state_dir: Path, *, follow: bool, service: str | None) -> Iterator[str]:
    """Lines of the logs (without newline). One service: its lines as they are; all
    services: each line prefixed with ``name | ``. ``follow``: the last
    ``FOLLOW_BACKLOG_LINES`` lines, then new lines as they are written (forever)."""
    paths = StatePaths.of(state_dir)
    available = sorted(path.stem for path in paths.logs.glob("*.log"))
    if service is not None and service not in available:
        known = ", ".join(available) or "none yet"
        raise LocalFabricError(f"no log for service {service!r} in {paths.logs} (have: {known})")
    names = [service] if service is not None else available
    prefix = service is None and len(names) > 1
    width = max((len(name) for name in names), default=0)

    def label(name: str, line: str) -> str:
        return f"{name:<{width}} | {line}" if prefix else line

    if not follow:
        for name in names:
            with paths.log(name).open("rb") as handle:
                for raw in handle:
                    yield label(name, raw.decode("utf-8", "replace").rstrip("\n"))
        return
    tails = {name: _Tail(paths.log(name)) for name in names}
    for name, tail in tails.items():
        for line in tail.backlog(FOLLOW_BACKLOG_LINES):
            yield label(name, line)
    while True:
        quiet = True
        for name, tail in tails.items():
            for line in tail.new_lines():
                quiet = False
                yield label(name, line)
        if quiet:
            time.sleep(0.2)


class _Tail:
    """Follows a log file across rotation (a new inode or a shorter file: start over)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._inode: int | None = None
        self._offset = 0
        self._partial = b""

    def backlog(self, count: int) -> list[str]:
        try:
            data = self.path.read_bytes()
            self._inode = self.path.stat().st_ino
        except FileNotFoundError:
            return []
        cut = data.rfind(b"\n") + 1
        self._offset = cut
        self._partial = b""
        lines = data[:cut].decode("utf-8", "replace").splitlines()
        return lines[-count:]

    def new_lines(self) -> list[str]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        if stat.st_ino != self._inode or stat.st_size < self._offset:
            self._inode, self._offset, self._partial = stat.st_ino, 0, b""
        if stat.st_size == self._offset:
            return []
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        self._offset += len(data)
        data = self._partial + data
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return data[:cut].decode("utf-8", "replace").splitlines()
