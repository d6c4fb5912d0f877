"""``octopus local up|down|status|logs``: a thin layer over ``runtime.local.fabric``.

The local fabric (broker, web service, trigger runner) is part of the server
distribution, not this client; these commands import it lazily and say clearly
when it is not installed. Its interface: ``up(LocalOptions)``, ``down(state_dir) ->
bool``, ``status(state_dir) -> LocalStatus | None``, ``logs(state_dir, *, follow,
service) -> Iterator[str]``; failures are ``LocalFabricError`` (``code``, ``message``),
turned here into one error line and an exit code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, TypeVar

import typer

from octopus_client.cli.state import EXIT_NOT_FOUND, EXIT_UNAVAILABLE, state
from octopus_client.config import default_local_state_dir
from octopus_client.errors import LocalFabricCommandError, LocalFabricMissingError

app = typer.Typer(help="Run a fabric on this machine.", no_args_is_help=True)

LOCAL_MODULE = "runtime.local.fabric"

StateDir = Annotated[
    Path | None,
    typer.Option(help="State directory (default $OCTOPUS_HOME/local, i.e. ~/.octopus/local)."),
]
T = TypeVar("T")


def load_local_fabric() -> ModuleType:
    try:
        return importlib.import_module(LOCAL_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name and LOCAL_MODULE.startswith(exc.name):
            raise LocalFabricMissingError(
                "the local fabric is not installed: install the server package "
                "(`pip install -e .` in the octopus-event-fabric repository) to use `octopus local`"
            ) from None
        raise


def _run(module: ModuleType, call: Callable[[], T]) -> T:
    """Run a local-fabric call; its ``LocalFabricError`` becomes a client error (one line)."""
    failure = getattr(module, "LocalFabricError", None)
    if failure is None:
        return call()
    try:
        return call()
    except failure as error:
        raise LocalFabricCommandError(
            str(getattr(error, "message", error)),
            code=str(getattr(error, "code", "local_fabric_error")),
        ) from error


def _state_dir(value: Path | None) -> Path:
    return value or default_local_state_dir()


@app.command()
def up(
    ctx: typer.Context,
    state_dir: StateDir = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background.")] = False,
    host: Annotated[
        str, typer.Option(help="Listen address; anything but loopback is reachable by others.")
    ] = "127.0.0.1",
    api_port: Annotated[int, typer.Option(help="Web service port.")] = 8000,
    broker_port: Annotated[int, typer.Option(help="Broker port (always on 127.0.0.1).")] = 9092,
) -> None:
    """Start the local fabric (foreground; Ctrl-C stops it) or --detach."""
    module = load_local_fabric()
    options = module.LocalOptions(
        state_dir=_state_dir(state_dir),
        detach=detach,
        host=host,
        api_port=api_port,
        broker_port=broker_port,
    )
    _run(module, lambda: module.up(options))


@app.command()
def down(ctx: typer.Context, state_dir: StateDir = None) -> None:
    """Stop a detached local fabric (and every process it started)."""
    cli = state(ctx)
    module = load_local_fabric()
    directory = _state_dir(state_dir)
    stopped = bool(_run(module, lambda: module.down(directory)))
    message = "local fabric stopped" if stopped else "no local fabric was running"
    cli.emit({"stopped": stopped, "state_dir": str(directory)}, lambda: cli.note(message))


@app.command()
def status(ctx: typer.Context, state_dir: StateDir = None) -> None:
    """Is the local fabric running, where, and is every service healthy.

    Exit 0 running and healthy, 8 running with an unhealthy service, 4 not running.
    """
    cli = state(ctx)
    module = load_local_fabric()
    directory = _state_dir(state_dir)
    current: Any = _run(module, lambda: module.status(directory))
    if current is None:
        cli.emit(
            {"running": False, "state_dir": str(directory)},
            lambda: cli.note(f"no local fabric is running in {directory}"),
        )
        raise typer.Exit(EXIT_NOT_FOUND)

    def human() -> None:
        cli.out.print(f"local fabric ({current.phase}), supervisor pid {current.supervisor_pid}")
        cli.out.print(f"  API     {current.api_url}   docs {current.docs_url}")
        cli.out.print(f"  Broker  {current.bootstrap_servers}")
        for service in current.services:
            mark = "[green]healthy[/green]" if service.healthy else "[red]unhealthy[/red]"
            detail = f"  ({service.detail})" if service.detail else ""
            cli.out.print(
                f"  {service.name:<15} pid {service.pid}  {mark}  "
                f"restarts {service.restarts}{detail}"
            )

    cli.emit({"running": True, **current.model_dump(mode="json")}, human)
    if not current.healthy:
        raise typer.Exit(EXIT_UNAVAILABLE)


@app.command()
def logs(
    ctx: typer.Context,
    service: Annotated[
        str | None, typer.Argument(help="broker, api, fabric, trigger-runner … (default: all)")
    ] = None,
    state_dir: StateDir = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
) -> None:
    """Show (or follow) the local fabric's logs."""
    module = load_local_fabric()
    directory = _state_dir(state_dir)
    lines = _run(module, lambda: module.logs(directory, follow=follow, service=service))
    _run(module, lambda: _print_lines(lines))


def _print_lines(lines: Any) -> None:
    for line in lines:
        typer.echo(line)  # click flushes each line, so --follow shows lines as they come
