"""What both registry adapters share: cursors, quota errors, record (de)serialization.

Cursors are opaque to callers: URL-safe base64 of a small JSON document that
names what was being listed (``scope``) and where the next page starts
(``position``). A cursor is only accepted for the listing that produced it, so a
tampered or replayed cursor answers ``BadRequest`` instead of reading from
somewhere else (for DynamoDB: another partition).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from runtime.domain.errors import BadRequest, QuotaExceeded

CURSOR_VERSION = 1
MAX_PAGE_SIZE = 1000
# Long enough for any key we store (DynamoDB keys are at most 2 KiB each).
MAX_CURSOR_CHARS = 8192

ModelT = TypeVar("ModelT", bound=BaseModel)

# Quota names as they appear in RuntimeSettings, so a 429 names the setting.
QUOTA_NAMESPACES = "namespaces_per_identity"
QUOTA_TOPICS = "topics_per_identity"
QUOTA_PARTITIONS = "partitions_per_identity"
QUOTA_KEYS = "keys_per_identity"
QUOTA_GRANTS = "grants_per_identity"
QUOTA_TRIGGERS = "trigger_limits.per_identity"

_QUOTA_UNITS = {
    QUOTA_NAMESPACES: "namespaces",
    QUOTA_TOPICS: "topics",
    QUOTA_PARTITIONS: "partitions",
    QUOTA_KEYS: "keys",
    QUOTA_GRANTS: "grants",
    QUOTA_TRIGGERS: "triggers",
}


def quota_exceeded(quota: str, limit: int, owner: str, *, requested: int = 1) -> QuotaExceeded:
    """The error for a create that would take ``owner`` past ``limit`` of ``quota``."""
    unit = _QUOTA_UNITS[quota]
    more = "" if requested == 1 else f" ({requested} more requested)"
    return QuotaExceeded(
        f"quota {quota} exceeded: an identity may hold at most {limit} {unit}{more}",
        details={"quota": quota, "limit": limit, "owner": owner, "requested": requested},
    )


def check_page_size(limit: int) -> int:
    if limit < 1:
        raise BadRequest(f"page size must be at least 1, not {limit}")
    return min(limit, MAX_PAGE_SIZE)


def encode_cursor(scope: dict[str, str], position: dict[str, str]) -> str:
    document = {"v": CURSOR_VERSION, "scope": scope, "after": position}
    raw = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(
    cursor: str, scope: dict[str, str], position_keys: frozenset[str]
) -> dict[str, str]:
    """The position a cursor carries, if it was made for ``scope``; else ``BadRequest``."""
    invalid = BadRequest("invalid cursor: pass back the next_cursor of the previous page unchanged")
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise invalid
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        document = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, UnicodeError, ValueError) as error:
        raise invalid from error
    if not isinstance(document, dict) or document.get("v") != CURSOR_VERSION:
        raise invalid
    if document.get("scope") != scope:
        # Made for another listing (other namespace, owner, prefix or filter).
        raise invalid
    position = document.get("after")
    if (
        not isinstance(position, dict)
        or set(position) != position_keys
        or not all(isinstance(value, str) for value in position.values())
    ):
        raise invalid
    return position


def dump_record(record: BaseModel) -> str:
    """The JSON a record is stored as; ``load_record`` gives back an equal model."""
    return record.model_dump_json()


def load_record(model: type[ModelT], data: str) -> ModelT:
    try:
        return model.model_validate_json(data)
    except ValidationError as error:  # a corrupt row is a server fault, not the caller's
        raise RuntimeError(f"stored {model.__name__} does not parse: {error}") from error


def epoch_seconds(when: datetime) -> float:
    """Seconds since the epoch; naive datetimes are taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def now_epoch() -> float:
    return datetime.now(UTC).timestamp()


def merged(record: ModelT, **changes: Any) -> ModelT:
    """A validated copy (``model_copy`` does not validate)."""
    return type(record).model_validate({**record.model_dump(), **changes})


# -- the two paginated listings, with the same cursors in both adapters --------------


def topics_scope(namespace: str, prefix: str) -> dict[str, str]:
    return {"list": "topics", "namespace": namespace, "prefix": prefix}


def topics_after(cursor: str | None, namespace: str, prefix: str) -> str | None:
    """The topic name a ``list_topics`` page starts after (None: from the start)."""
    if cursor is None:
        return None
    name = decode_cursor(cursor, topics_scope(namespace, prefix), frozenset({"name"}))["name"]
    if not name.startswith(prefix):
        raise BadRequest("invalid cursor: pass back the next_cursor of the previous page unchanged")
    return name


def topics_cursor(namespace: str, prefix: str, last_name: str) -> str:
    return encode_cursor(topics_scope(namespace, prefix), {"name": last_name})


TRIGGER_POSITION = frozenset({"namespace", "topic", "trigger_id"})


def triggers_scope(owner: str, namespace: str | None, topic: str | None) -> dict[str, str]:
    if topic is not None and namespace is None:
        raise BadRequest("filtering triggers by topic needs the topic's namespace")
    return {"list": "triggers", "owner": owner, "namespace": namespace or "", "topic": topic or ""}


def triggers_after(
    cursor: str | None, owner: str, namespace: str | None, topic: str | None
) -> dict[str, str] | None:
    """The (namespace, topic, trigger_id) a ``list_triggers`` page starts after."""
    scope = triggers_scope(owner, namespace, topic)
    if cursor is None:
        return None
    position = decode_cursor(cursor, scope, TRIGGER_POSITION)
    if (namespace is not None and position["namespace"] != namespace) or (
        topic is not None and position["topic"] != topic
    ):
        raise BadRequest("invalid cursor: pass back the next_cursor of the previous page unchanged")
    return position


def triggers_cursor(
    owner: str, namespace: str | None, topic: str | None, last: dict[str, str]
) -> str:
    return encode_cursor(triggers_scope(owner, namespace, topic), last)
