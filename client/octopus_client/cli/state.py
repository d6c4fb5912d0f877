"""Per-invocation CLI state (global options), output helpers and exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from octopus_client.auth import connect
from octopus_client.errors import (
    AuthError,
    ConflictError,
    FabricAPIError,
    ForbiddenError,
    LocalFabricCommandError,
    NotFoundError,
    QuotaError,
    UnavailableError,
    ValidationError,
)
from octopus_client.fabric import Fabric

# Exit codes (documented in docs/client.md).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_FORBIDDEN = 5
EXIT_CONFLICT = 6
EXIT_QUOTA = 7
EXIT_UNAVAILABLE = 8

_EXIT_BY_ERROR: Sequence[tuple[type[BaseException], int]] = (
    (AuthError, EXIT_AUTH),
    (NotFoundError, EXIT_NOT_FOUND),
    (ForbiddenError, EXIT_FORBIDDEN),
    (ConflictError, EXIT_CONFLICT),
    (QuotaError, EXIT_QUOTA),
    (UnavailableError, EXIT_UNAVAILABLE),
    (ValidationError, EXIT_USAGE),
)


def exit_code_for(error: BaseException) -> int:
    if isinstance(error, ValueError) and not isinstance(error, FabricAPIError):
        return EXIT_USAGE  # bad arguments or input detected before any call
    if isinstance(error, LocalFabricCommandError):
        return EXIT_CONFLICT if error.code in error.CONFLICT_CODES else EXIT_ERROR
    for cls, code in _EXIT_BY_ERROR:
        if isinstance(error, cls):
            return code
    return EXIT_ERROR


def error_line(error: BaseException) -> str:
    """``error: <code>: <message>`` on one line."""
    code = getattr(error, "code", None)
    if isinstance(error, FabricAPIError | ValueError) or code:
        message = getattr(error, "message", None) or str(error)
        code = code or ("invalid_argument" if isinstance(error, ValueError) else "error")
    else:
        code, message = type(error).__name__, str(error)
    text = " ".join(str(message).split())  # one line, whatever the server sent
    return f"error: {code}: {text}"


@dataclass
class CliState:
    url: str | None = None
    token: str | None = None
    profile: str | None = None
    json: bool = False
    debug: bool = False
    out: Console = field(default_factory=lambda: Console(soft_wrap=True))
    err: Console = field(default_factory=lambda: Console(stderr=True, soft_wrap=True))
    _fabric: Fabric | None = None

    def fabric(self) -> Fabric:
        if self._fabric is None:
            self._fabric = connect(self.url, self.token, profile=self.profile)
        return self._fabric

    def close(self) -> None:
        if self._fabric is not None:
            self._fabric.close()

    # -- output ------------------------------------------------------------------------
    def emit_json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(to_jsonable(data), indent=None, default=str) + "\n")
        sys.stdout.flush()

    def emit(self, data: Any, human: Callable[[], None] | None = None) -> None:
        """JSON with ``--json``, else the human rendering (or pretty JSON)."""
        if self.json:
            self.emit_json(data)
        elif human is not None:
            human()
        else:
            self.out.print_json(json.dumps(to_jsonable(data), default=str))

    def table(self, rows: Iterable[BaseModel | dict[str, Any]], columns: Sequence[str]) -> None:
        table = Table(*columns, header_style="bold")
        count = 0
        for row in rows:
            data = to_jsonable(row)
            table.add_row(*[_cell(data.get(column)) for column in columns])
            count += 1
        if count:
            self.out.print(table)
        else:
            self.err.print("(none)")

    def note(self, message: str) -> None:
        """Status for people, on stderr (stdout stays clean for data)."""
        if not self.json:
            self.err.print(message)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def to_jsonable(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list | tuple):
        return [to_jsonable(item) for item in data]
    if isinstance(data, dict):
        return {key: to_jsonable(value) for key, value in data.items()}
    return data


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


class CliInputError(ValueError):
    """Bad input data for a command (e.g. a line that is not JSON): exit code 2."""

    code = "invalid_input"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
