"""Dead letters on AWS: a queue per trigger, archived into a log group when listed.

Design (why not just read the queue):

- each trigger has its **own** KMS-encrypted SQS queue; the webhook template writes its
  permanent failures there (``OCTOPUS_DLQ_URL``, :class:`runtime.triggers.batch.DeadLetter`
  JSON) and the event source mapping sends its on-failure records there (batches that
  exhausted their retries: Lambda's invocation record with ``KafkaBatchInfo``);
- SQS cannot be listed: receiving hides messages and gives no stable order or cursor. So a
  listing first **drains** the queue — receive, append each letter to the trigger's archive
  log group (``/aws/lambda/<function>/dead-letters``, written only by the control plane),
  then delete it from the queue — and then pages through the archive with CloudWatch
  Logs' ``nextToken``. Drained letters stay listable for the archive's retention;
- a crash between "archived" and "deleted" only duplicates a letter (at least once), and
  concurrent listings never lose one (SQS's visibility timeout hands each message to one).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final

from runtime.domain.ports import TriggerDeadLetter

ARCHIVE_STREAM: Final = "archive"


def _when(ms: Any, fallback: datetime) -> datetime:
    if isinstance(ms, int | float) and not isinstance(ms, bool):
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    return fallback


def _iso(text: Any, fallback: datetime) -> datetime:
    if isinstance(text, str):
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return fallback
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return fallback


def _int(value: Any, default: int = -1) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _batch_info(body: dict[str, Any]) -> dict[str, Any] | None:
    # Lambda names it KafkaBatchInfo; accept any "*BatchInfo" so a renamed key still parses.
    for key, value in body.items():
        if key.endswith("BatchInfo") and isinstance(value, dict):
            return value
    return None


def parse_queue_message(
    body: str, *, received_at: datetime, default_topic: str
) -> TriggerDeadLetter:
    """One queue message, in either producer's format, as the API's dead letter."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return TriggerDeadLetter(
            failed_at=received_at,
            reason=f"unreadable dead letter: {body[:200]}",
            topic=default_topic,
            partition=-1,
            offset=-1,
        )
    record = data.get("record")
    if isinstance(record, dict) and "reason" in data:  # the template's DeadLetter
        reason = str(data["reason"])
        if data.get("status") is not None:
            reason = f"{reason} (HTTP {data['status']})"
        if data.get("truncated"):
            reason = f"{reason} [key/value too large to keep]"
        key = record.get("key")
        value = record.get("value")
        return TriggerDeadLetter(
            failed_at=_when(data.get("failed_at_ms"), received_at),
            reason=reason,
            topic=str(record.get("topic", default_topic)),
            partition=_int(record.get("partition")),
            offset=_int(record.get("offset")),
            key=key if isinstance(key, str) else None,
            value=value if isinstance(value, str) else None,
        )
    info = _batch_info(data)
    if info is not None:  # the event source mapping's on-failure invocation record
        context = data.get("requestContext") or {}
        response = data.get("responseContext") or {}
        condition = context.get("condition", "failed")
        first, last = _int(info.get("firstOffset")), _int(info.get("lastOffset"))
        parts = [f"batch discarded by Lambda: {condition}"]
        if response.get("functionError"):
            parts.append(f"function error {response['functionError']}")
        if context.get("approximateInvokeCount") is not None:
            parts.append(f"{context['approximateInvokeCount']} invocations")
        parts.append(f"offsets {first}-{last} ({info.get('batchSize', '?')} records)")
        return TriggerDeadLetter(
            failed_at=_iso(data.get("timestamp"), received_at),
            reason="; ".join(parts),
            topic=str(info.get("topic", default_topic)),
            partition=_int(info.get("partition")),
            offset=first,
        )
    return TriggerDeadLetter(
        failed_at=received_at,
        reason=f"dead letter in an unknown format: {body[:200]}",
        topic=default_topic,
        partition=-1,
        offset=-1,
    )
