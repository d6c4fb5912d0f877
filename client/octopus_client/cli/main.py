"""``octopus``: the command line of Octopus Event Fabric.

Global options come before the command: ``octopus [--url] [--token] [--profile]
[--json] [--debug] COMMAND``. Errors print one line on stderr (``error: <code>:
<message>``) and exit with a code that says what went wrong (see ``state.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from octopus_client import __version__
from octopus_client.cli import local, resources, session, streams, watch
from octopus_client.cli.state import CliState, error_line, exit_code_for, state
from octopus_client.errors import OctopusClientError


class OctopusGroup(TyperGroup):
    """Turns every expected failure into one stderr line and a meaningful exit code."""

    def invoke(self, ctx: Any) -> Any:  # typer's (vendored) click Context
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise  # typer reports these itself (usage errors exit 2)
        except (OctopusClientError, ValueError, OSError) as error:
            cli = ctx.obj if isinstance(ctx.obj, CliState) else None
            if cli is not None and cli.debug:
                raise
            typer.echo(error_line(error), err=True)
            raise typer.Exit(exit_code_for(error)) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        finally:
            if isinstance(ctx.obj, CliState):
                ctx.obj.close()


app = typer.Typer(
    cls=OctopusGroup,
    name="octopus",
    help="Octopus Event Fabric: topics, grants, keys, events and triggers, local or on AWS.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold tokens
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"octopus {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(help="Fabric URL (env OCTOPUS_URL, else the profile).")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="Bearer token (env OCTOPUS_TOKEN).", show_default=False)
    ] = None,
    profile: Annotated[
        str | None, typer.Option(help="Profile in ~/.octopus/config.toml (env OCTOPUS_PROFILE).")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Machine-readable JSON on stdout.")
    ] = False,
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    cli = state(ctx)
    cli.url, cli.token, cli.profile, cli.json, cli.debug = url, token, profile, json_output, debug


session.register(app)
resources.register(app)
streams.register(app)
watch.register(app)
app.add_typer(local.app, name="local")
