"""S3 event notifications → CloudEvents envelopes, and which topic each one goes to.

The notification format is AWS's (eventVersion 2.x):
https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
Object keys arrive URL-encoded ('+' for spaces); the subject is the decoded key.
They arrive directly (S3 → Lambda) or wrapped in SQS messages (S3 → SQS → Lambda).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from runtime.storage import cloudevents as ce

ROUTES_ENV_VAR = "OCTOPUS_STORAGE_ROUTES"

_TYPES_BY_EVENT = (
    ("ObjectCreated:", ce.CREATED),
    ("ObjectRemoved:", ce.REMOVED),
    ("LifecycleExpiration:", ce.REMOVED),
    ("ObjectRestore:Post", ce.RESTORE_STARTED),
    ("ObjectRestore:Completed", ce.RESTORED),
    ("ObjectRestore:Delete", ce.RESTORE_EXPIRED),
    ("ObjectTagging:Put", ce.TAGGED),
    ("ObjectTagging:Delete", ce.UNTAGGED),
)


@dataclass(frozen=True)
class StorageRoute:
    """Objects of ``bucket`` whose key starts with ``prefix`` go to Kafka topic ``topic``
    (``{namespace}.{topic}``)."""

    bucket: str
    topic: str
    prefix: str = ""


def parse_routes(raw: str | Sequence[Mapping[str, str]]) -> list[StorageRoute]:
    """Routes from config: ``[{"bucket", "topic", "prefix"?}]`` (a JSON string or a list)."""
    items = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise ValueError("storage routes must be a non-empty list of {bucket, topic, prefix?}")
    routes = []
    for item in items:
        unknown = set(item) - {"bucket", "topic", "prefix"}
        if unknown or not item.get("bucket") or not item.get("topic"):
            raise ValueError(f"storage route {item!r}: needs bucket and topic (and maybe prefix)")
        routes.append(StorageRoute(item["bucket"], item["topic"], item.get("prefix", "")))
    return routes


def route_for(routes: Sequence[StorageRoute], bucket: str, key: str) -> StorageRoute | None:
    """The most specific route (longest prefix) covering the object, if any."""
    matching = [r for r in routes if r.bucket == bucket and key.startswith(r.prefix)]
    return max(matching, key=lambda r: len(r.prefix)) if matching else None


def event_type_of(event_name: str) -> str:
    for prefix, event_type in _TYPES_BY_EVENT:
        if event_name.startswith(prefix):
            return event_type
    return ce.CHANGED


def s3_records(event: Mapping[str, Any]) -> Iterator[tuple[str | None, Mapping[str, Any]]]:
    """(SQS message id or None, S3 record) for a direct S3 event or an SQS batch of them.
    S3's ``s3:TestEvent`` (sent when a notification is configured) yields nothing."""
    for record in event.get("Records") or ():
        if record.get("eventSource") == "aws:s3":
            yield None, record
        elif record.get("eventSource") == "aws:sqs":
            body = json.loads(record.get("body") or "{}")
            if isinstance(body.get("Message"), str):  # S3 → SNS → SQS
                body = json.loads(body["Message"])
            for inner in body.get("Records") or ():
                if inner.get("eventSource") == "aws:s3":
                    yield record.get("messageId"), inner


def s3_envelope(record: Mapping[str, Any]) -> dict[str, Any]:
    """The CloudEvents envelope of one S3 notification record."""
    s3 = record["s3"]
    bucket = s3["bucket"]["name"]
    obj = s3["object"]
    key = unquote_plus(obj["key"])
    event_name = record["eventName"]
    version_id = obj.get("versionId")
    data: dict[str, Any] = {
        "bucket": bucket,
        "key": key,
        "size": obj.get("size"),
        "etag": obj.get("eTag"),
        "version_id": version_id,
        "event_name": event_name,
        "region": record.get("awsRegion"),
        "sequencer": obj.get("sequencer"),
    }
    restore = record.get("glacierEventData", {}).get("restoreEventData")
    if restore:
        data["restore"] = {
            "expiry_time": restore.get("lifecycleRestorationExpiryTime"),
            "storage_class": restore.get("lifecycleRestoreStorageClass"),
        }
    return ce.envelope(
        event_type=event_type_of(event_name),
        source=f"arn:aws:s3:::{bucket}",
        subject=key,
        time=record["eventTime"],
        data=data,
        event_id=ce.stable_id(
            bucket, key, version_id, obj.get("sequencer"), event_name, record["eventTime"]
        ),
    )
