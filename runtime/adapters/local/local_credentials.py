"""Broker credentials in local mode: issued, hashed and tracked as on AWS.

A local key looks and behaves like an AWS one from the fabric's side: an id
(``OCTL`` + 16 base32 characters), a secret shown once, and an
:class:`AccessKey` record the registry keeps — holding only a salted scrypt
hash of the secret (``scrypt$n$r$p$salt$hash``), never the secret.

What it does NOT do — stated plainly: the embedded broker enforces no
authentication at all (its SCRAM support cannot store users and its ACL API
crashes clients; see the engineering notes). Local keys are therefore not
checked by the broker; it listens on 127.0.0.1 only, and grants are enforced
by the fabric's own HTTP paths (REST, SSE), which can check a key with
:func:`verify_secret`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

from runtime.domain.models import AccessKey, Identity, KeyKind, utcnow
from runtime.domain.ports import IssuedKey, Permissions, SessionCredentials

KEY_ID_PREFIX = "OCTL"
SESSION_KEY_ID_PREFIX = "OCTS"
# scrypt cost: n=2**14, r=8, p=1 (16 MiB, tens of ms): the interactive-login
# parameters recommended for scrypt; secrets are random, so this mainly
# protects against offline guessing if the registry leaks.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
SALT_BYTES = 16
# Bounds accepted when verifying, so a tampered hash cannot make us burn memory.
_MAX_N = 2**20
_MAX_R = 32
_MAX_P = 16


def new_key_id(prefix: str = KEY_ID_PREFIX) -> str:
    """``prefix`` + 16 random base32 characters (80 bits), like an AWS key id."""
    return prefix + base64.b32encode(secrets.token_bytes(10)).decode("ascii")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=256 * 1024 * 1024
    )


def hash_secret(secret: str) -> str:
    """Salted scrypt hash, encoded ``scrypt$n$r$p$salt$hash`` (base64url, no padding)."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(secret, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(key: AccessKey, secret: str) -> bool:
    """Whether ``secret`` is the secret of local ``key`` (constant-time comparison)."""
    if key.kind is not KeyKind.LOCAL:
        return False
    parts = key.secret_hash.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = (int(part) for part in parts[1:4])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return False
    if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 0 < r <= _MAX_R and 0 < p <= _MAX_P):
        return False
    if not salt or not 16 <= len(expected) <= 64:
        return False
    actual = _scrypt(secret, salt, n, r, p, len(expected))
    return hmac.compare_digest(actual, expected)


class LocalCredentialIssuer:
    """``CredentialIssuer`` for local mode (see the module docstring for its limits).

    No per-identity limit of its own: the core enforces ``keys_per_identity``
    through the registry before asking for a key.
    """

    def create_key(self, identity: Identity, name: str, permissions: Permissions) -> IssuedKey:
        secret = secrets.token_urlsafe(32)
        key = AccessKey(
            key_id=new_key_id(),
            owner=identity.sub,
            name=name,
            kind=KeyKind.LOCAL,
            secret_hash=hash_secret(secret),
        )
        return IssuedKey(key=key, secret=secret)

    def verify_secret(self, key: AccessKey, secret: str) -> bool:
        return verify_secret(key, secret)

    def delete_key(self, identity: Identity, key: AccessKey) -> None:
        """Nothing to do: the key exists only as the registry's record (and hash)."""

    def sync_permissions(self, identity: Identity, permissions: Permissions) -> None:
        """No-op locally, on purpose.

        The embedded broker enforces no authentication or ACLs, so there is no
        broker-side policy to update. Grants are enforced by the fabric's own
        HTTP paths, which read them from the registry on every request.
        """

    def session_credentials(
        self, identity: Identity, permissions: Permissions, duration_seconds: int
    ) -> SessionCredentials:
        """Random short-lived credentials with an expiry.

        Shaped like STS credentials so clients behave the same; the embedded
        broker does not check them (nor their expiry).
        """
        return SessionCredentials(
            access_key_id=new_key_id(SESSION_KEY_ID_PREFIX),
            secret_access_key=secrets.token_urlsafe(32),
            session_token=secrets.token_urlsafe(48),
            expires_at=utcnow() + timedelta(seconds=duration_seconds),
        )

    def delete_principal(self, identity: Identity) -> None:
        """Nothing to do: local identities have no broker-side principal."""
