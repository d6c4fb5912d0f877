"""``octopus local up|down|status|logs``: a thin layer over ``runtime.local.fabric``.

The local fabric (broker, web service, trigger runner) is part of the server
distribution, not this client; these commands import it lazily and say clearly
when it is not installed. Assumed interface: ``up(options)``, ``down(state_dir)``,
``status(state_dir)``, ``logs(state_dir, follow)``. If the module offers an options
class (``LocalOptions`` or ``Options``), ``up`` gets an instance; otherwise a dict.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from octopus_client.cli.state import state, to_jsonable
from octopus_client.config import default_local_state_dir
from octopus_client.errors import LocalFabricMissingError

app = typer.Typer(help="Run a fabric on this machine.", no_args_is_help=True)

LOCAL_MODULE = "runtime.local.fabric"

StateDir = Annotated[Path | None, typer.Option(help="State directory (default ~/.octopus/local).")]


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


def build_options(module: ModuleType, values: dict[str, Any]) -> Any:
    for name in ("LocalOptions", "Options"):
        cls = getattr(module, name, None)
        if cls is not None:
            return cls(**{k: v for k, v in values.items() if v is not None})
    return values


def _state_dir(value: Path | None) -> Path:
    return value or default_local_state_dir()


def _show(ctx: typer.Context, result: Any) -> None:
    if result is None:
        return
    cli = state(ctx)
    if isinstance(result, str):
        cli.emit({"message": result}, lambda: cli.out.print(result))
    else:
        cli.emit(to_jsonable(result if not hasattr(result, "__dict__") else vars(result)))


@app.command()
def up(
    ctx: typer.Context,
    state_dir: StateDir = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background.")] = False,
    host: Annotated[
        str, typer.Option(help="Listen address; anything but loopback is reachable by others.")
    ] = "127.0.0.1",
    api_port: Annotated[int | None, typer.Option(help="Web service port.")] = None,
    broker_port: Annotated[int | None, typer.Option(help="Broker port.")] = None,
) -> None:
    """Start the local fabric (foreground; Ctrl-C stops it) or --detach."""
    module = load_local_fabric()
    options = build_options(
        module,
        {
            "state_dir": _state_dir(state_dir),
            "detach": detach,
            "host": host,
            "api_port": api_port,
            "broker_port": broker_port,
        },
    )
    _show(ctx, module.up(options))


@app.command()
def down(ctx: typer.Context, state_dir: StateDir = None) -> None:
    """Stop a detached local fabric."""
    _show(ctx, load_local_fabric().down(_state_dir(state_dir)))


@app.command()
def status(ctx: typer.Context, state_dir: StateDir = None) -> None:
    """Is the local fabric running, and where."""
    _show(ctx, load_local_fabric().status(_state_dir(state_dir)))


@app.command()
def logs(
    ctx: typer.Context,
    state_dir: StateDir = None,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
) -> None:
    """Show (or follow) the local fabric's logs."""
    _show(ctx, load_local_fabric().logs(_state_dir(state_dir), follow))
