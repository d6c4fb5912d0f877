"""What the web service runs on: settings, the domain core and the identity provider."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runtime.config import RuntimeSettings
from runtime.domain.fabric import Fabric
from runtime.domain.ports import IdentityProvider

VERSION = "0.1.0"


@dataclass
class Container:
    settings: RuntimeSettings
    fabric: Fabric
    # None when API Gateway's authorizer has already established the caller.
    identity: IdentityProvider | None
    version: str = VERSION
    # Optional services added by later layers (triggers, event streams), by name.
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        """Release broker connections (flushes nothing: writes already waited for acks)."""
        deps = self.fabric.deps
        for resource in (*self.extras.values(), deps.records, deps.broker):
            close = getattr(resource, "close", None)
            if callable(close):
                close()
