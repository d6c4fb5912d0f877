"""Identities: a Globus ``sub`` becomes a fabric identity with a default namespace."""

from __future__ import annotations

import threading
from collections import OrderedDict

from runtime.domain.access import permissions_for
from runtime.domain.deps import Deps
from runtime.domain.models import Identity, Namespace
from runtime.domain.names import default_namespace
from runtime.domain.ports import Permissions, Principal


class IdentityService:
    """Knows every caller; remembers recent ones so ``/v1/me`` stays cheap."""

    def __init__(self, deps: Deps, *, cache_size: int = 4096) -> None:
        self._deps = deps
        self._known: OrderedDict[str, Identity] = OrderedDict()
        self._lock = threading.Lock()
        self._cache_size = cache_size

    def ensure(self, principal: Principal) -> Identity:
        with self._lock:
            known = self._known.get(principal.sub)
            if known is not None:
                self._known.move_to_end(principal.sub)
                return known
        ns_name = default_namespace(principal.sub)
        identity = self._deps.registry.ensure_identity(
            Identity(sub=principal.sub, username=principal.username, default_namespace=ns_name),
            Namespace(name=ns_name, owner=principal.sub, is_default=True),
        )
        with self._lock:
            self._known[principal.sub] = identity
            while len(self._known) > self._cache_size:
                self._known.popitem(last=False)
        return identity

    def of(self, sub: str) -> Identity:
        """The identity of ``sub`` (e.g. a grantee), stored or as it will be."""
        stored = self._deps.registry.get_identity(sub)
        return stored or Identity(sub=sub, default_namespace=default_namespace(sub))

    def permissions(self, sub: str) -> Permissions:
        return permissions_for(self._deps.registry, sub)

    def sync(self, sub: str) -> None:
        """Bring the broker-side rights of ``sub`` in line with the registry."""
        self._deps.credentials.sync_permissions(self.of(sub), self.permissions(sub))
