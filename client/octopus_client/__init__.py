"""Octopus Event Fabric client: the Python SDK and the ``octopus`` CLI."""

from __future__ import annotations

__version__ = "0.1.0"

from octopus_client.errors import (
    AuthError,
    ConflictError,
    FabricAPIError,
    ForbiddenError,
    KafkaClientError,
    NotFoundError,
    OctopusClientError,
    QuotaError,
    UnavailableError,
    UnknownTopicError,
    ValidationError,
)
from octopus_client.fabric import Fabric

__all__ = [
    "AuthError",
    "ConflictError",
    "Fabric",
    "FabricAPIError",
    "ForbiddenError",
    "KafkaClientError",
    "NotFoundError",
    "OctopusClientError",
    "QuotaError",
    "UnavailableError",
    "UnknownTopicError",
    "ValidationError",
    "__version__",
]
