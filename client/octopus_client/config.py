"""Profiles: which fabric to talk to and how to authenticate, in ``~/.octopus/config.toml``.

A profile stores a URL and an auth kind: ``globus`` (people: native-app login),
``client`` (services: client credentials from ``OCTOPUS_CLIENT_ID``/``_SECRET``),
``local`` (a local fabric's development token, read from its state directory) or
``token`` (a bearer token stored in the profile; the file is written mode 0600).
Environment ``OCTOPUS_URL``, ``OCTOPUS_TOKEN`` and ``OCTOPUS_PROFILE`` override it;
``OCTOPUS_HOME`` moves ``~/.octopus``.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

AuthKind = Literal["globus", "client", "local", "token"]
DEFAULT_PROFILE = "default"


def octopus_home() -> Path:
    return Path(os.environ.get("OCTOPUS_HOME") or Path.home() / ".octopus")


def default_local_state_dir() -> Path:
    return octopus_home() / "local"


@dataclass
class Profile:
    url: str | None = None
    auth: AuthKind = "globus"
    token: str | None = None
    # The fabric's Globus settings: the app's client id (native app, for login) and
    # the fabric's scope (``https://auth.globus.org/scopes/<resource server>/action_all``).
    globus_client_id: str | None = None
    globus_scope: str | None = None
    state_dir: str | None = None  # a local fabric's state dir (auth == "local")
    identity: str | None = None  # which development identity to use locally

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class ConfigFile:
    path: Path
    current: str = DEFAULT_PROFILE
    profiles: dict[str, Profile] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> ConfigFile:
        path = path or config_path()
        if not path.exists():
            return cls(path=path)
        text = path.read_text(encoding="utf-8")
        data: dict[str, Any] = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        profiles = {
            name: Profile.from_dict(value)
            for name, value in (data.get("profiles") or {}).items()
            if isinstance(value, dict)
        }
        return cls(path=path, current=str(data.get("current", DEFAULT_PROFILE)), profiles=profiles)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "current": self.current,
            "profiles": {name: p.to_dict() for name, p in sorted(self.profiles.items())},
        }
        text = json.dumps(data, indent=2) if self.path.suffix == ".json" else dump_toml(data)
        # Profiles may hold a token: create the file readable by its owner only.
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        tmp.replace(self.path)


def config_path() -> Path:
    """``config.toml`` unless only a ``config.json`` exists."""
    home = octopus_home()
    toml_path, json_path = home / "config.toml", home / "config.json"
    if not toml_path.exists() and json_path.exists():
        return json_path
    return toml_path


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def _toml_key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else json.dumps(key)


def dump_toml(data: dict[str, Any]) -> str:
    """Write the small, flat structure of the config file (scalars and one level of tables)."""
    lines: list[str] = []
    for key, value in data.items():
        if not isinstance(value, dict):
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            for name, table in value.items():
                lines.append("")
                lines.append(f"[{_toml_key(key)}.{_toml_key(name)}]")
                lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


@dataclass
class ResolvedSettings:
    profile_name: str
    profile: Profile
    url: str | None
    token: str | None


def resolve(
    *,
    url: str | None = None,
    token: str | None = None,
    profile: str | None = None,
    config: ConfigFile | None = None,
) -> ResolvedSettings:
    """Flags beat environment, environment beats the profile."""
    config = config or ConfigFile.load()
    name = profile or os.environ.get("OCTOPUS_PROFILE") or config.current or DEFAULT_PROFILE
    stored = config.profiles.get(name, Profile())
    return ResolvedSettings(
        profile_name=name,
        profile=stored,
        url=url or os.environ.get("OCTOPUS_URL") or stored.url,
        token=token or os.environ.get("OCTOPUS_TOKEN") or None,
    )
