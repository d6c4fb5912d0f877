"""Runs the ``octopus`` CLI as a subprocess, the way a user does, in a private home."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Nothing from the developer's own environment may leak into the CLI under test.
_SCRUBBED = (
    "OCTOPUS_URL",
    "OCTOPUS_TOKEN",
    "OCTOPUS_PROFILE",
    "OCTOPUS_CLIENT_ID",
    "OCTOPUS_CLIENT_SECRET",
    "OCTOPUS_LOCAL_STATE_DIR",
)


def octopus_executable() -> str:
    """The venv's ``octopus`` script (next to this interpreter), else the one on PATH."""
    beside = Path(sys.executable).with_name("octopus")
    if beside.exists():
        return str(beside)
    found = shutil.which("octopus")
    if found is None:
        raise RuntimeError("the octopus CLI is not installed (pip install -e ./client)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def describe(self) -> str:
        return (
            f"octopus {' '.join(self.args)} -> {self.returncode}\n"
            f"stdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}"
        )


class Octopus:
    """``octopus`` with HOME and OCTOPUS_HOME in a temporary directory."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.executable = octopus_executable()
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        env.update(
            HOME=str(home),
            OCTOPUS_HOME=str(home / ".octopus"),
            COLUMNS="200",  # rich wraps long lines at 80 otherwise
            NO_COLOR="1",
        )
        self.env = env

    def run(self, *args: str, timeout: float = 120.0, stdin: str | None = None) -> Result:
        completed = subprocess.run(
            [self.executable, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        return Result(tuple(args), completed.returncode, completed.stdout, completed.stderr)

    def ok(self, *args: str, timeout: float = 120.0) -> Result:
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, result.describe()
        return result
