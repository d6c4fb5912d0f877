"""What every domain service is given: the settings and the ports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from runtime.config import RuntimeSettings
from runtime.domain.models import utcnow
from runtime.domain.ports import BrokerAdmin, CredentialIssuer, RecordWriter, Registry


@dataclass(frozen=True)
class Deps:
    settings: RuntimeSettings
    registry: Registry
    broker: BrokerAdmin
    credentials: CredentialIssuer
    records: RecordWriter | None = None
    clock: Callable[[], datetime] = field(default=utcnow)
