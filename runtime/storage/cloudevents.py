"""CloudEvents 1.0 JSON envelopes for storage events (structured content mode).

One shape for S3 objects and local files: ``type`` names what happened
(``org.octopus.storage.object.created`` ...), ``source`` the store (``arn:aws:s3:::bucket``
or ``file://host/dir``), ``subject`` the object key / relative path, ``data`` the details.
Spec: https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md and the JSON
format (``application/cloudevents+json``). On Kafka the envelope is the record value, with
``content-type: application/cloudevents+json`` as a header (structured mode).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

SPEC_VERSION = "1.0"
TYPE_PREFIX = "org.octopus.storage.object."
CREATED = TYPE_PREFIX + "created"
MODIFIED = TYPE_PREFIX + "modified"
MOVED = TYPE_PREFIX + "moved"
REMOVED = TYPE_PREFIX + "removed"
RESTORE_STARTED = TYPE_PREFIX + "restore.started"
RESTORED = TYPE_PREFIX + "restored"
RESTORE_EXPIRED = TYPE_PREFIX + "restore.expired"
TAGGED = TYPE_PREFIX + "tagging.put"
UNTAGGED = TYPE_PREFIX + "tagging.deleted"
CHANGED = TYPE_PREFIX + "changed"  # anything else S3 reports (ACL, lifecycle, ...)

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type")


def iso_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a 'Z', as CloudEvents' ``time`` wants."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stable_id(*parts: object) -> str:
    """An id that is the same for the same change reported twice (S3 delivers at least
    once), so consumers can drop duplicates by (source, id)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return digest[:32]


def envelope(
    *,
    event_type: str,
    source: str,
    subject: str,
    time: datetime | str,
    data: Mapping[str, Any],
    event_id: str,
) -> dict[str, Any]:
    return {
        "specversion": SPEC_VERSION,
        "id": event_id,
        "source": source,
        "type": event_type,
        "subject": subject,
        "time": time if isinstance(time, str) else iso_time(time),
        "datacontenttype": "application/json",
        "data": dict(data),
    }


def to_record_value(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def record_headers(event: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """Kafka headers for the structured mode (consumers may route on ``ce_type``)."""
    return [
        ("content-type", STRUCTURED_CONTENT_TYPE.encode()),
        ("ce_type", str(event["type"]).encode()),
        ("ce_id", str(event["id"]).encode()),
    ]


def validate(event: Mapping[str, Any]) -> None:
    """Raise ValueError if ``event`` is not a valid CloudEvents 1.0 JSON envelope."""
    for name in REQUIRED_ATTRIBUTES:
        value = event.get(name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"CloudEvents attribute {name!r} must be a non-empty string")
    if event["specversion"] != SPEC_VERSION:
        raise ValueError(f"specversion must be {SPEC_VERSION!r}")
    if "time" in event:
        datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
    for name in event:
        if name != "data" and not (name.isascii() and name.isalnum() and name.islower()):
            raise ValueError(f"attribute name {name!r} must be lowercase letters and digits")
