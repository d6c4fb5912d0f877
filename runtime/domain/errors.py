"""The fabric's errors: each carries an HTTP status, a stable code and a message.

Domain code raises these; the web service turns them into
``{"error": {"code", "message"}}`` (v1) or Confluent's ``{"error_code", "message"}``
(Octopus v3 compatibility) without ever showing a stack trace.
"""

from __future__ import annotations

from typing import Any, ClassVar


class FabricError(Exception):
    """Base of every error the fabric reports to a caller."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class BadRequest(FabricError):
    status = 400
    code = "bad_request"


class InvalidName(BadRequest):
    code = "invalid_name"


class Unauthenticated(FabricError):
    status = 401
    code = "unauthenticated"


class Forbidden(FabricError):
    status = 403
    code = "forbidden"


class NotFound(FabricError):
    status = 404
    code = "not_found"


class Conflict(FabricError):
    status = 409
    code = "conflict"


class AlreadyExists(Conflict):
    code = "already_exists"


class LimitReached(Conflict):
    """A hard limit of the platform (IAM, Kafka) would be crossed."""

    code = "limit_reached"


class Unsupported(Conflict):
    """The broker in use cannot do this (e.g. the embedded broker adding partitions)."""

    code = "unsupported_by_broker"


class PayloadTooLarge(FabricError):
    status = 413
    code = "payload_too_large"


class Unprocessable(FabricError):
    status = 422
    code = "unprocessable"


class QuotaExceeded(FabricError):
    """A per-identity quota from config would be crossed; the message names it."""

    status = 429
    code = "quota_exceeded"


class Unavailable(FabricError):
    """A dependency (broker, IAM) is unreachable and nothing was changed."""

    status = 503
    code = "unavailable"


class OutcomeUnknown(FabricError):
    """Sent but not acknowledged in time: it may or may not have been written (no blind retry)."""

    status = 504
    code = "outcome_unknown"
