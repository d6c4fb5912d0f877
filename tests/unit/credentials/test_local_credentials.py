"""LocalCredentialIssuer: keys issued and hashed as on AWS; secrets never stored."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from runtime.adapters.local.local_credentials import (
    LocalCredentialIssuer,
    hash_secret,
    verify_secret,
)
from runtime.domain.models import AccessKey, Identity, KeyKind
from runtime.domain.ports import CredentialIssuer, Permissions

OWNER = Identity(sub="b7c5a8e2-1d34-4f6a-9b0c-7e8f9a0b1c2d", default_namespace="ns-7e8f9a0b1c2d")


def test_issued_key_shape_and_hash() -> None:
    issuer: CredentialIssuer = LocalCredentialIssuer()
    issued = issuer.create_key(OWNER, "laptop", Permissions())
    key = issued.key
    assert re.fullmatch(r"OCTL[A-Z2-7]{16}", key.key_id)
    assert key.kind is KeyKind.LOCAL and key.owner == OWNER.sub and key.name == "laptop"
    assert len(issued.secret) >= 43
    assert issued.secret not in key.model_dump_json()  # the record never holds the secret
    assert re.fullmatch(r"scrypt\$16384\$8\$1\$[\w-]{22}\$[\w-]{43}", key.secret_hash)
    assert verify_secret(key, issued.secret)
    assert LocalCredentialIssuer().verify_secret(key, issued.secret)
    assert not verify_secret(key, issued.secret + "x")
    assert not verify_secret(key, "")


def test_keys_and_salts_are_unique() -> None:
    issuer = LocalCredentialIssuer()
    keys = [issuer.create_key(OWNER, f"k{i}", Permissions()) for i in range(5)]
    assert len({k.key.key_id for k in keys}) == 5
    assert len({k.secret for k in keys}) == 5
    assert hash_secret("same") != hash_secret("same")  # random salt


def test_no_limit_of_its_own() -> None:
    # The registry enforces keys_per_identity; the local issuer adds none (unlike IAM's 2).
    issuer = LocalCredentialIssuer()
    assert len({issuer.create_key(OWNER, str(i), Permissions()).key.key_id for i in range(3)}) == 3


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        "bcrypt$1$2$3$a$b",
        "scrypt$x$8$1$AAAA$AAAA",
        "scrypt$16385$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43,  # n not a power of two
        "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43,  # absurd cost refused
        "scrypt$16384$8$1$$" + "A" * 43,
    ],
)
def test_malformed_hashes_never_verify(stored: str) -> None:
    key = AccessKey(key_id="OCTLX", owner="s", name="n", kind=KeyKind.LOCAL, secret_hash=stored)
    started = time.monotonic()
    assert not verify_secret(key, "anything")
    assert time.monotonic() - started < 1


def test_iam_keys_never_verify_locally() -> None:
    issued = LocalCredentialIssuer().create_key(OWNER, "k", Permissions())
    as_iam = issued.key.model_copy(update={"kind": KeyKind.IAM})
    assert not verify_secret(as_iam, issued.secret)


def test_session_credentials_expire() -> None:
    before = datetime.now(UTC)
    creds = LocalCredentialIssuer().session_credentials(OWNER, Permissions(), 900)
    assert creds.access_key_id.startswith("OCTS")
    assert creds.secret_access_key and creds.session_token
    assert (
        before + timedelta(seconds=899)
        <= creds.expires_at
        <= datetime.now(UTC) + timedelta(seconds=900)
    )


def test_broker_side_operations_are_harmless_no_ops() -> None:
    issuer = LocalCredentialIssuer()
    issued = issuer.create_key(OWNER, "k", Permissions())
    issuer.sync_permissions(OWNER, Permissions(owned_namespaces=("ns-x",)))
    issuer.delete_key(OWNER, issued.key)
    issuer.delete_principal(OWNER)
    assert verify_secret(issued.key, issued.secret)  # the record alone decides
