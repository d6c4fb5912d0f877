"""DevIdentityProvider: local-only development tokens from a 0600 JSON file."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from runtime.adapters.local.dev_identity import (
    DevIdentityNotAllowed,
    DevIdentityProvider,
    add_identity,
    create_tokens_file,
    ensure_tokens_file,
)
from runtime.config import ClusterMode, RuntimeSettings
from runtime.domain.errors import Unauthenticated
from runtime.domain.ports import IdentityProvider

LOCAL = RuntimeSettings()


def test_created_file_has_one_random_identity_and_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "dev" / "tokens.json"
    dev = create_tokens_file(path, "ada")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = json.loads(path.read_text())
    assert content == {"tokens": {dev.token: {"sub": dev.sub, "username": "ada"}}}
    assert len(dev.token) >= 40
    assert create_tokens_file(tmp_path / "other.json").token != dev.token


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    create_tokens_file(path)
    with pytest.raises(FileExistsError):
        create_tokens_file(path)
    assert ensure_tokens_file(path) is None
    assert create_tokens_file(path, overwrite=True).token


def test_several_identities_each_authenticate_as_themselves(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    owner = create_tokens_file(path, "owner")
    grantee = add_identity(path, "grantee")
    stranger = add_identity(path, "stranger", sub="00000000-0000-4000-8000-000000000003")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    provider: IdentityProvider = DevIdentityProvider(path, LOCAL)
    for dev in (owner, grantee, stranger):
        principal = provider.authenticate(dev.token)
        assert (principal.sub, principal.username) == (dev.sub, dev.username)
    assert provider.authenticate(stranger.token).sub == "00000000-0000-4000-8000-000000000003"
    assert len({owner.sub, grantee.sub, stranger.sub}) == 3


@pytest.mark.parametrize("token", ["", "nope", "Bearer x"])
def test_unknown_token_is_unauthenticated(tmp_path: Path, token: str) -> None:
    path = tmp_path / "tokens.json"
    create_tokens_file(path)
    with pytest.raises(Unauthenticated):
        DevIdentityProvider(path, LOCAL).authenticate(token)


def test_identities_added_later_are_seen_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    create_tokens_file(path)
    provider = DevIdentityProvider(path, LOCAL)
    late = add_identity(path, "late")
    assert provider.authenticate(late.token).sub == late.sub
    path.unlink()
    with pytest.raises(Unauthenticated, match="missing"):
        provider.authenticate(late.token)


@pytest.mark.parametrize("mode", ["provisioned", "serverless"])
def test_refuses_to_exist_outside_local_mode(tmp_path: Path, mode: ClusterMode) -> None:
    path = tmp_path / "tokens.json"
    create_tokens_file(path)
    deployed = RuntimeSettings(cluster_mode=mode, identity="apigw-authorizer")
    with pytest.raises(DevIdentityNotAllowed, match=mode):
        DevIdentityProvider(path, deployed)
    # ... and the settings model itself refuses identity=dev there (first guard).
    with pytest.raises(ValueError, match="only allowed with cluster_mode 'local'"):
        RuntimeSettings(cluster_mode=mode, identity="dev")


def test_construction_logs_a_loud_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tokens.json"
    create_tokens_file(path)
    with caplog.at_level(logging.WARNING):
        DevIdentityProvider(path, LOCAL)
    assert any(
        r.levelno == logging.WARNING and "LOCAL ONLY" in r.getMessage() for r in caplog.records
    )


def test_invalid_or_missing_file_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        DevIdentityProvider(tmp_path / "absent.json", LOCAL)
    bad = tmp_path / "bad.json"
    bad.write_text('{"tokens": {"t": {"username": "no sub"}}}')
    with pytest.raises(ValueError, match="not valid"):
        DevIdentityProvider(bad, LOCAL)
