"""LOCAL ONLY — development identities with bearer tokens read from a file.

    !!! This provider accepts any token listed in a local JSON file. It exists
    !!! so the fabric can run on a laptop without Globus Auth. It refuses to be
    !!! constructed unless ``cluster_mode`` is ``"local"``, and the settings
    !!! model already refuses ``identity="dev"`` outside local mode: it can
    !!! never be reached in a deployed stack.

File format (mode 0600)::

    {"tokens": {"<token>": {"sub": "<uuid>", "username": "..."}}}

:func:`create_tokens_file` writes a file with one random development identity
and token; :func:`add_identity` adds more (tests need an owner, a grantee and a
stranger). The provider re-reads the file when it changes, so identities added
while the local fabric runs work at once.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from runtime.config import RuntimeSettings
from runtime.domain.errors import Unauthenticated
from runtime.domain.ports import Principal

logger = logging.getLogger(__name__)

FILE_MODE = 0o600


class DevIdentityNotAllowed(RuntimeError):
    """The development identity provider was asked for outside local mode."""


class DevIdentityEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sub: str
    username: str | None = None


class DevTokensFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: dict[str, DevIdentityEntry] = {}


@dataclass(frozen=True)
class DevToken:
    """A development identity and the bearer token that stands for it."""

    token: str
    sub: str
    username: str


def _read(path: Path) -> DevTokensFile:
    try:
        return DevTokensFile.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise
    except (ValidationError, ValueError) as exc:
        raise ValueError(f"development tokens file {path} is not valid: {exc}") from exc


def _write(path: Path, content: DevTokensFile) -> None:
    """Write atomically, readable by the owner only (the file holds live tokens)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(content.model_dump(mode="json"), handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _new_token(username: str, sub: str | None) -> DevToken:
    return DevToken(
        token=secrets.token_urlsafe(32), sub=sub or str(uuid.uuid4()), username=username
    )


def create_tokens_file(
    path: str | Path, username: str = "developer", *, overwrite: bool = False
) -> DevToken:
    """Create a tokens file with one random development identity; return it."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    identity = _new_token(username, None)
    entry = DevIdentityEntry(sub=identity.sub, username=identity.username)
    _write(target, DevTokensFile(tokens={identity.token: entry}))
    return identity


def add_identity(path: str | Path, username: str, *, sub: str | None = None) -> DevToken:
    """Add a development identity (random sub unless given) to an existing file."""
    target = Path(path)
    current = _read(target)
    identity = _new_token(username, sub)
    entry = DevIdentityEntry(sub=identity.sub, username=identity.username)
    _write(target, DevTokensFile(tokens={**current.tokens, identity.token: entry}))
    return identity


def ensure_tokens_file(path: str | Path, username: str = "developer") -> DevToken | None:
    """Create the file if missing (returning the new identity); None if it exists."""
    target = Path(path)
    return None if target.exists() else create_tokens_file(target, username)


class DevIdentityProvider:
    """LOCAL ONLY ``IdentityProvider``: bearer tokens looked up in a JSON file.

    Raises :class:`DevIdentityNotAllowed` when constructed with settings whose
    ``cluster_mode`` is not ``"local"`` — a second guard behind the settings
    model, so a mistake in one place cannot expose it.
    """

    def __init__(self, tokens_file: str | Path, settings: RuntimeSettings) -> None:
        if settings.cluster_mode != "local":
            raise DevIdentityNotAllowed(
                "the development identity provider is for local mode only; "
                f"cluster_mode is {settings.cluster_mode!r}"
            )
        self.tokens_file = Path(tokens_file)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._tokens: dict[str, DevIdentityEntry] = {}
        self._reload_if_changed()  # fail now, not on the first request, if unreadable
        logger.warning(
            "LOCAL ONLY: development identity provider enabled; tokens from %s "
            "are accepted without Globus Auth. Never use this outside a laptop.",
            self.tokens_file,
        )

    def authenticate(self, token: str) -> Principal:
        if not token:
            raise Unauthenticated("missing bearer token")
        try:
            tokens = self._reload_if_changed()
        except FileNotFoundError:
            raise Unauthenticated("development tokens file is missing") from None
        entry = tokens.get(token)
        if entry is None:
            raise Unauthenticated("unknown development token")
        return Principal(sub=entry.sub, username=entry.username)

    def _reload_if_changed(self) -> dict[str, DevIdentityEntry]:
        stat = self.tokens_file.stat()
        # Writes replace the file atomically, so the inode changes on every write.
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._tokens = dict(_read(self.tokens_file).tokens)
                self._stamp = stamp
            return self._tokens
