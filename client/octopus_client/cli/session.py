"""``login``, ``logout``, ``whoami``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from octopus_client.auth import make_globus_app, read_dev_token
from octopus_client.cli.state import state
from octopus_client.config import ConfigFile, Profile, default_local_state_dir
from octopus_client.errors import AuthError
from octopus_client.fabric import Fabric

# Files a local fabric may leave in its state dir that name its API URL.
_LOCAL_STATE_FILES = ("state.json", "fabric.json")


def _local_url(state_dir: Path) -> str | None:
    for name in _LOCAL_STATE_FILES:
        try:
            data = json.loads((state_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            for key in ("api_url", "url"):
                if isinstance(data.get(key), str):
                    return str(data[key])
    return None


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def login(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option("--url", help="The fabric's URL.")] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="Use this bearer token.", show_default=False)
    ] = None,
    local_fabric: Annotated[
        bool, typer.Option("--local", help="Use the local fabric's development token.")
    ] = False,
    state_dir: Annotated[
        Path | None, typer.Option(help="The local fabric's state dir (default ~/.octopus/local).")
    ] = None,
    identity: Annotated[
        str | None, typer.Option(help="Which local development identity to use.")
    ] = None,
    client_id: Annotated[
        str | None, typer.Option(help="The fabric's Globus app client id (native app).")
    ] = None,
    scope: Annotated[str | None, typer.Option(help="The fabric's Globus scope.")] = None,
) -> None:
    """Log in to a fabric and remember it in the profile."""
    cli = state(ctx)
    config = ConfigFile.load()
    name = cli.profile or os.environ.get("OCTOPUS_PROFILE") or config.current
    profile = config.profiles.get(name, Profile())
    local_dir = state_dir or (Path(profile.state_dir) if profile.state_dir else None)
    local_dir = local_dir or default_local_state_dir()
    url = (
        url
        or cli.url
        or os.environ.get("OCTOPUS_URL")
        or (_local_url(local_dir) if local_fabric else None)
        or profile.url
    )
    if not url:
        raise AuthError("no fabric URL: pass --url", code="no_fabric_url")
    token = token or cli.token
    # A local fabric is recognised by --local, or a loopback URL with dev tokens present.
    use_local = local_fabric or (
        token is None and _is_loopback(url) and (local_dir / "dev-tokens.json").exists()
    )
    if use_local and token is None:
        token = read_dev_token(local_dir, identity)
        profile = Profile(url=url, auth="local", state_dir=str(local_dir), identity=identity)
    elif token is not None:
        profile = Profile(url=url, auth="token", token=token)
    else:
        profile = Profile(
            url=url,
            auth="client" if os.environ.get("OCTOPUS_CLIENT_ID") else "globus",
            globus_client_id=client_id or profile.globus_client_id,
            globus_scope=scope or profile.globus_scope,
        )
        app = make_globus_app(profile)
        app.login()
        fabric = Fabric(url, app=app)
    if token is not None:
        fabric = Fabric(url, token)
    with fabric:
        me = fabric.me()
        info = fabric.fabric_info()
    if info.local and profile.auth == "token":
        profile.state_dir = str(local_dir)
    if profile.auth == "local" and profile.identity is None:
        # Pin the identity: more development identities may be added to the tokens file.
        profile.identity = me.sub
    config.profiles[name] = profile
    config.current = name
    config.save()
    data = {
        "profile": name,
        "url": url,
        "auth": profile.auth,
        "sub": me.sub,
        "username": me.username,
        "default_namespace": me.default_namespace,
        "local": info.local,
    }
    where = "local fabric" if info.local else f"fabric ({info.cluster_mode}, {info.region})"
    cli.emit(
        data,
        lambda: cli.out.print(
            f"logged in to the {where} at {url} as {me.username or me.sub} "
            f"(default namespace {me.default_namespace}; profile {name!r})"
        ),
    )


def logout(ctx: typer.Context) -> None:
    """Forget the stored token (and revoke Globus tokens) for the profile."""
    cli = state(ctx)
    config = ConfigFile.load()
    name = cli.profile or os.environ.get("OCTOPUS_PROFILE") or config.current
    profile = config.profiles.get(name)
    if profile is None:
        cli.emit({"profile": name, "logged_out": False}, lambda: cli.note("not logged in"))
        return
    if profile.auth in ("globus", "client") and profile.globus_scope:
        make_globus_app(profile).logout()
    profile.token = None
    config.save()
    cli.emit({"profile": name, "logged_out": True}, lambda: cli.note(f"logged out ({name})"))


def whoami(ctx: typer.Context) -> None:
    """Who the fabric thinks you are, with your namespaces, quotas and usage."""
    cli = state(ctx)
    me = cli.fabric().me()

    def human() -> None:
        cli.out.print(f"[bold]{me.username or me.sub}[/bold]  sub={me.sub}")
        cli.out.print(f"default namespace: {me.default_namespace}")
        cli.out.print(f"namespaces: {', '.join(me.namespaces) or '-'}")
        for key, limit in sorted(me.quotas.items()):
            cli.out.print(f"  {key}: {limit}")
        if me.usage:
            usage = ", ".join(f"{k}={v}" for k, v in sorted(me.usage.items()))
            cli.out.print(f"usage: {usage}")

    cli.emit(me, human)


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command()(logout)
    app.command()(whoami)
