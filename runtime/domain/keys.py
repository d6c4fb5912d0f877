"""Broker credentials: named long-lived keys and short-lived session credentials."""

from __future__ import annotations

from runtime.domain.deps import Deps
from runtime.domain.errors import AlreadyExists, FabricError, NotFound, QuotaExceeded
from runtime.domain.identities import IdentityService
from runtime.domain.models import AccessKey
from runtime.domain.ports import IssuedKey, Principal, SessionCredentials


class KeyService:
    def __init__(self, deps: Deps, identities: IdentityService) -> None:
        self._deps = deps
        self._identities = identities

    def create(self, caller: Principal, name: str) -> IssuedKey:
        identity = self._identities.ensure(caller)
        registry, limit = self._deps.registry, self._deps.settings.quotas.keys_per_identity
        existing = registry.list_keys(caller.sub)
        if any(k.name == name for k in existing):
            raise AlreadyExists(f"you already have a key named {name!r}")
        if len(existing) >= limit:
            raise QuotaExceeded(
                f"quota keys_per_identity is {limit} and you hold {len(existing)}; delete a key "
                "or use POST /v1/credentials for short-lived credentials",
                details={"quota": "keys_per_identity", "limit": limit},
            )
        issued = self._deps.credentials.create_key(
            identity, name, self._identities.permissions(caller.sub)
        )
        try:
            registry.create_key(issued.key, limit=limit)
        except FabricError:
            # A concurrent create won the last slot: take the new key back.
            self._deps.credentials.delete_key(identity, issued.key)
            raise
        return issued

    def list(self, caller: Principal) -> list[AccessKey]:
        return sorted(self._deps.registry.list_keys(caller.sub), key=lambda k: k.created_at)

    def delete(self, caller: Principal, key_id: str) -> None:
        key = self._deps.registry.get_key(key_id)
        if key is None or key.owner != caller.sub:
            raise NotFound(f"key {key_id!r} not found", details={"key_id": key_id})
        self._deps.credentials.delete_key(self._identities.of(caller.sub), key)
        self._deps.registry.delete_key(caller.sub, key_id)

    def session(self, caller: Principal, duration_seconds: int | None) -> SessionCredentials:
        identity = self._identities.ensure(caller)
        duration = duration_seconds or self._deps.settings.client_session_seconds
        return self._deps.credentials.session_credentials(
            identity, self._identities.permissions(caller.sub), duration
        )
