"""Typed errors of the client: every failure the fabric reports maps to one class.

The fabric answers errors as ``{"error": {"code", "message", "details"}}`` with a
meaningful HTTP status; :func:`error_from_response` turns that into the matching
subclass so callers can ``except NotFoundError`` instead of inspecting statuses.
"""

from __future__ import annotations

from typing import Any


class OctopusClientError(Exception):
    """Base of everything this package raises on purpose."""


class FabricAPIError(OctopusClientError):
    """The fabric answered with an error (or could not be reached)."""

    default_code = "error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or self.default_code
        self.message = message
        self.details: dict[str, Any] = details or {}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(status={self.status!r}, code={self.code!r}, message={self.message!r})"


class ValidationError(FabricAPIError):
    """400/413/422: the request was refused as malformed (the field is named in details)."""

    default_code = "invalid_request"


class AuthError(FabricAPIError):
    """401: no token, or the token is invalid or expired (log in again)."""

    default_code = "unauthorized"


class ForbiddenError(FabricAPIError):
    """403: the resource exists but the caller lacks the needed access."""

    default_code = "forbidden"


class NotFoundError(FabricAPIError):
    """404: missing, or not visible to the caller."""

    default_code = "not_found"


class UnknownTopicError(NotFoundError):
    """The SDK refused to produce to a topic the fabric does not know.

    The embedded local broker would silently auto-create such a topic, so a
    typo would otherwise write events nobody reads.
    """

    default_code = "unknown_topic"


class ConflictError(FabricAPIError):
    """409: the request conflicts with the current state or a platform limit."""

    default_code = "conflict"


class QuotaError(FabricAPIError):
    """429 (or a quota-coded 403): a quota or rate limit was reached; details name it."""

    default_code = "quota_exceeded"


class UnavailableError(FabricAPIError):
    """503, connection failures, or a broker that never became ready."""

    default_code = "unavailable"


class KafkaClientError(OctopusClientError):
    """A Kafka client (producer/consumer) reported a fatal or delivery error."""

    def __init__(self, message: str, *, code: str = "kafka_error") -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class LocalFabricMissingError(OctopusClientError):
    """``octopus local ...`` needs the fabric runtime package, which is not installed."""

    code = "local_fabric_missing"


class LocalFabricCommandError(OctopusClientError):
    """``octopus local ...`` failed (a port in use, already running, a service that died)."""

    # These mean "something else holds it": the CLI exits with the conflict code.
    CONFLICT_CODES = frozenset({"port_in_use", "local_already_running"})

    def __init__(self, message: str, *, code: str = "local_fabric_error") -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


_BY_STATUS: dict[int, type[FabricAPIError]] = {
    400: ValidationError,
    401: AuthError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: ValidationError,
    422: ValidationError,
    429: QuotaError,
    503: UnavailableError,
}


def error_class_for(status: int, code: str | None) -> type[FabricAPIError]:
    """The error class for an HTTP status; a quota code wins over a 403 status."""
    if code and "quota" in code:
        return QuotaError
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return UnavailableError if status in (502, 504) else FabricAPIError
    return FabricAPIError


def error_from_reply(status: int, body: Any, fallback_text: str = "") -> FabricAPIError:
    """Build the typed error from a reply's status and decoded JSON body (any shape)."""
    code: str | None = None
    message = fallback_text.strip() or f"HTTP {status}"
    details: dict[str, Any] = {}
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = str(error.get("code") or "") or None
            message = str(error.get("message") or message)
            raw_details = error.get("details")
            details = raw_details if isinstance(raw_details, dict) else {}
        elif "detail" in body:  # FastAPI's default shape, should the server ever fall back to it
            message = str(body["detail"])
        elif "message" in body:
            message = str(body["message"])
    cls = error_class_for(status, code)
    return cls(message, status=status, code=code, details=details)
