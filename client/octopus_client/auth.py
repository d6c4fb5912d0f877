"""Authentication: Globus login (people and services) and local development tokens.

- People: globus-sdk ``UserApp`` (native-app login in the terminal; refresh tokens).
- Services: ``ClientApp`` (client credentials) when ``OCTOPUS_CLIENT_ID`` and
  ``OCTOPUS_CLIENT_SECRET`` are set.
Tokens live where globus-sdk keeps them for the app name (its default JSON token
storage under ``~/.globus/app/<client id>/<app name>/``); this package never copies
them. The fabric's Globus client id and scope come from ``OCTOPUS_GLOBUS_CLIENT_ID``
/ ``OCTOPUS_GLOBUS_SCOPE`` or the profile.

A local fabric uses development tokens from its state directory
(``~/.octopus/local/dev-tokens.json``); they work only against a local fabric.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octopus_client.config import Profile, default_local_state_dir, resolve
from octopus_client.errors import AuthError

if TYPE_CHECKING:
    from globus_sdk import GlobusApp

    from octopus_client.fabric import Fabric

APP_NAME = "octopus-fabric-client"
DEV_TOKENS_FILE = "dev-tokens.json"
# The identity `octopus local up` creates first (runtime.local.fabric.development_token).
DEFAULT_DEV_USERNAME = "developer"
_SCOPE_PREFIX = "https://auth.globus.org/scopes/"


def globus_settings(profile: Profile) -> tuple[str, str]:
    """(client id, scope) of the fabric's Globus registration, env first."""
    client_id = os.environ.get("OCTOPUS_GLOBUS_CLIENT_ID") or profile.globus_client_id
    scope = os.environ.get("OCTOPUS_GLOBUS_SCOPE") or profile.globus_scope
    if not scope:
        raise AuthError(
            "the fabric's Globus scope is not configured: set OCTOPUS_GLOBUS_SCOPE or "
            "`octopus login --scope ...`",
            code="globus_not_configured",
        )
    if not client_id and not os.environ.get("OCTOPUS_CLIENT_ID"):
        raise AuthError(
            "no Globus client id: set OCTOPUS_GLOBUS_CLIENT_ID (people) or "
            "OCTOPUS_CLIENT_ID/OCTOPUS_CLIENT_SECRET (services)",
            code="globus_not_configured",
        )
    return client_id or "", scope


def resource_server_of(scope: str) -> str:
    """``https://auth.globus.org/scopes/<rs>/action_all`` → ``<rs>``."""
    if scope.startswith(_SCOPE_PREFIX):
        return scope[len(_SCOPE_PREFIX) :].split("/", 1)[0]
    raise AuthError(f"cannot find the resource server in scope {scope!r}", code="bad_scope")


def make_globus_app(profile: Profile, *, app_name: str = APP_NAME) -> GlobusApp:
    """A ``ClientApp`` when service credentials are in the environment, else a ``UserApp``."""
    # Lazy: globus-sdk takes a noticeable time to import; token users never need it.
    from globus_sdk import ClientApp, GlobusAppConfig, UserApp

    client_id, scope = globus_settings(profile)
    requirements = {resource_server_of(scope): [scope]}
    service_id = os.environ.get("OCTOPUS_CLIENT_ID")
    service_secret = os.environ.get("OCTOPUS_CLIENT_SECRET")
    if service_id and service_secret:
        return ClientApp(
            app_name,
            client_id=service_id,
            client_secret=service_secret,
            scope_requirements=requirements,
        )
    return UserApp(
        app_name,
        client_id=client_id,
        scope_requirements=requirements,
        config=GlobusAppConfig(request_refresh_tokens=True),
    )


def app_resource_server(app: GlobusApp) -> str:
    """The fabric's resource server among the app's scope requirements."""
    candidates = [rs for rs in app.scope_requirements if rs != "auth.globus.org"]
    if len(candidates) != 1:
        raise AuthError(
            f"cannot tell the fabric's resource server among {candidates}; pass resource_server",
            code="globus_not_configured",
        )
    return candidates[0]


def authorization_header_provider(
    app: GlobusApp, resource_server: str | None = None
) -> Callable[[], str]:
    """A callable giving a fresh ``Authorization`` header (globus-sdk refreshes tokens)."""
    server = resource_server or app_resource_server(app)

    def header() -> str:
        value = app.get_authorizer(server).get_authorization_header()
        if not value:
            raise AuthError("not logged in: run `octopus login`", code="login_required")
        return str(value)

    return header


# -- local development tokens --------------------------------------------------------------
def read_dev_token(state_dir: str | Path | None = None, identity: str | None = None) -> str:
    """A development token from a local fabric's state directory.

    The local fabric writes ``{"tokens": {"<token>": {"sub", "username"}}}`` (sorted by
    token, so file order means nothing); other shapes are accepted too: a mapping of
    token → identity, a mapping of name → token, or a list of ``{"token", "sub"|"name"}``.
    ``identity`` is a sub or a username. Without it the fabric's default user
    (username ``developer``, created on the first ``octopus local up``) is used,
    else the first token.
    """
    path = Path(state_dir or default_local_state_dir()) / DEV_TOKENS_FILE
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AuthError(
            f"no development tokens at {path}: is the local fabric running "
            "(`octopus local up`)? Or pass --token",
            code="local_fabric_not_found",
        ) from None
    except ValueError as exc:
        raise AuthError(f"cannot read {path}: {exc}", code="bad_token_file") from exc
    entries = _token_entries(data)
    if not entries:
        raise AuthError(f"{path} holds no tokens", code="bad_token_file")
    if identity is None:
        for token, names in entries:
            if DEFAULT_DEV_USERNAME in names:
                return token
        return entries[0][0]
    for token, names in entries:
        if identity in names:
            return token
    raise AuthError(
        f"no development token for identity {identity!r} in {path}", code="unknown_identity"
    )


def _token_entries(data: Any) -> list[tuple[str, set[str]]]:
    """(token, names it is known by) pairs, in file order."""
    if isinstance(data, dict) and "tokens" in data:
        return _token_entries(data["tokens"])
    entries: list[tuple[str, set[str]]] = []
    if isinstance(data, list):
        for item in data:
            if isinstance(item, str):
                entries.append((item, set()))
            elif isinstance(item, dict) and isinstance(item.get("token"), str):
                names = {str(v) for k, v in item.items() if k != "token" and isinstance(v, str)}
                entries.append((item["token"], names))
    elif isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, dict) and isinstance(v.get("token"), str):
                names = {k} | {
                    str(x) for key, x in v.items() if key != "token" and isinstance(x, str)
                }
                entries.append((v["token"], names))
            elif isinstance(v, dict):  # token -> {sub, username, ...}
                entries.append((k, {str(x) for x in v.values() if isinstance(x, str)}))
            elif isinstance(v, str):
                # name -> token or token -> sub: the longer string is the token.
                token, name = (v, k) if len(v) >= len(k) else (k, v)
                entries.append((token, {name}))
    return entries


def connect(
    url: str | None = None,
    token: str | None = None,
    *,
    profile: str | None = None,
    timeout: float = 30.0,
) -> Fabric:
    """A :class:`Fabric` from flags, environment and the stored profile.

    Token order: ``token`` / ``OCTOPUS_TOKEN``, a token stored in the profile, the local
    fabric's development token (profile auth ``local``), then Globus login tokens.
    """
    from octopus_client.fabric import Fabric

    settings = resolve(url=url, token=token, profile=profile)
    if not settings.url:
        raise AuthError(
            "no fabric URL: run `octopus login --url URL` or set OCTOPUS_URL",
            code="no_fabric_url",
        )
    stored = settings.profile
    bearer = settings.token or stored.token
    if bearer is None and stored.auth == "local":
        bearer = read_dev_token(stored.state_dir, stored.identity)
    if bearer is not None:
        return Fabric(settings.url, bearer, timeout=timeout)
    app = make_globus_app(stored)
    if app.login_required():
        raise AuthError("not logged in: run `octopus login`", code="login_required")
    return Fabric(settings.url, app=app, timeout=timeout)
