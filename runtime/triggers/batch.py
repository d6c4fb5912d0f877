"""At-least-once batch processing: who failed, why, and how far offsets may be committed.

The caller (the local runner, or the Lambda template) hands a batch and a delivery function to
:func:`process_records` (one delivery per record) or :func:`process_batch` (one delivery for
the whole batch) and gets a :class:`BatchOutcome`. It then dead-letters the permanent failures
and commits, per partition, :meth:`BatchOutcome.commit_positions` — the offset of the first
record that is neither delivered nor dead-lettered (Kafka's "next offset to read"). A
retryable failure therefore holds its partition at that record: it and everything after it in
the partition are read again (duplicates are possible, loss is not).

On Lambda the same outcome becomes the partial batch response through Powertools'
``BatchProcessor(EventType.Kafka)`` (see ``runtime/handlers/webhook_trigger.py``).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from runtime.triggers.event_shape import KafkaRecord, record_from_lambda, record_to_lambda
from runtime.triggers.webhook import DeliveryResult

# SQS accepts up to 256 KiB per message; keep room for the envelope.
DEAD_LETTER_MAX_BYTES: Final = 250_000


class FailureKind(StrEnum):
    PERMANENT = "permanent"  # will never succeed as is: dead-letter it, move on
    RETRYABLE = "retryable"  # may succeed later: do not commit past it


@dataclass(frozen=True)
class RecordFailure:
    record: KafkaRecord
    kind: FailureKind
    reason: str
    status: int | None = None
    attempts: int = 0


TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class BatchOutcome:
    """The result of one batch: delivered records and failures, in input order."""

    records: tuple[KafkaRecord, ...]
    delivered: tuple[KafkaRecord, ...] = ()
    failures: tuple[RecordFailure, ...] = ()

    @property
    def permanent(self) -> list[RecordFailure]:
        return [f for f in self.failures if f.kind is FailureKind.PERMANENT]

    @property
    def retryable(self) -> list[RecordFailure]:
        return [f for f in self.failures if f.kind is FailureKind.RETRYABLE]

    @property
    def ok(self) -> bool:
        return not self.failures

    def commit_positions(
        self, dead_lettered: Iterable[KafkaRecord] = ()
    ) -> dict[TopicPartition, int]:
        """Per partition, the offset to commit (next to read) so nothing unsettled is skipped.

        A record is settled when delivered or when it is in ``dead_lettered`` (its permanent
        failure was written to the dead-letter destination). Partitions whose first record is
        unsettled are left out: there is nothing to commit for them.
        """
        settled = {(r.topic, r.partition, r.offset) for r in self.delivered}
        settled |= {(r.topic, r.partition, r.offset) for r in dead_lettered}
        positions: dict[TopicPartition, int] = {}
        blocked: set[TopicPartition] = set()
        for record in sorted(self.records, key=lambda r: (r.topic, r.partition, r.offset)):
            tp = (record.topic, record.partition)
            if tp in blocked:
                continue
            if (record.topic, record.partition, record.offset) in settled:
                positions[tp] = record.offset + 1
            else:
                blocked.add(tp)
        return positions


def _failure(record: KafkaRecord, result: DeliveryResult) -> RecordFailure:
    kind = FailureKind.PERMANENT if result.permanent else FailureKind.RETRYABLE
    return RecordFailure(record, kind, result.reason, result.status, result.attempts)


def _crash(record: KafkaRecord, exc: Exception) -> RecordFailure:
    # An unexpected error in the delivery code is not the record's fault: retry it.
    return RecordFailure(record, FailureKind.RETRYABLE, f"{type(exc).__name__}: {exc}")


def process_records(
    records: Sequence[KafkaRecord],
    deliver: Callable[[KafkaRecord], DeliveryResult],
    *,
    keep_going: Callable[[], bool] = lambda: True,
) -> BatchOutcome:
    """Deliver each record on its own; a failure affects only that record and its successors.

    After a retryable failure the rest of that partition is not attempted (it will be read
    again anyway, since offsets cannot be committed past the failure): this keeps per-partition
    order and avoids needless duplicates. ``keep_going`` is asked before every record but the
    first (e.g. "is there time left in this invocation?"); once it says no, the remaining
    records are retryable failures that were not attempted.
    """
    delivered: list[KafkaRecord] = []
    failures: list[RecordFailure] = []
    held: set[TopicPartition] = set()
    stopped = False
    for index, record in enumerate(records):
        tp = (record.topic, record.partition)
        if not stopped and index > 0 and not keep_going():
            stopped = True
        if stopped:
            failures.append(
                RecordFailure(record, FailureKind.RETRYABLE, "not attempted: out of time")
            )
            continue
        if tp in held:
            failures.append(
                RecordFailure(
                    record,
                    FailureKind.RETRYABLE,
                    "not attempted: an earlier record of this partition must be retried first",
                )
            )
            continue
        try:
            result = deliver(record)
        except Exception as exc:  # delivery code bug or dependency crash: keep going
            failures.append(_crash(record, exc))
            held.add(tp)
            continue
        if result.ok:
            delivered.append(record)
        else:
            failure = _failure(record, result)
            failures.append(failure)
            if failure.kind is FailureKind.RETRYABLE:
                held.add(tp)
    return BatchOutcome(tuple(records), tuple(delivered), tuple(failures))


def process_batch(
    records: Sequence[KafkaRecord],
    deliver: Callable[[Sequence[KafkaRecord]], DeliveryResult],
) -> BatchOutcome:
    """Deliver the batch as one unit; its result applies to every record."""
    if not records:
        return BatchOutcome(())
    try:
        result = deliver(records)
    except Exception as exc:
        return BatchOutcome(tuple(records), (), tuple(_crash(r, exc) for r in records))
    if result.ok:
        return BatchOutcome(tuple(records), tuple(records), ())
    return BatchOutcome(tuple(records), (), tuple(_failure(r, result) for r in records))


@dataclass(frozen=True)
class DeadLetter:
    """What the dead-letter destination stores for one permanently failed record."""

    trigger_id: str
    reason: str
    status: int | None
    attempts: int
    failed_at_ms: int
    record: dict[str, Any]
    truncated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "trigger_id": self.trigger_id,
                "reason": self.reason,
                "status": self.status,
                "attempts": self.attempts,
                "failed_at_ms": self.failed_at_ms,
                "record": self.record,
                "truncated": self.truncated,
                **self.extra,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> DeadLetter:
        data = json.loads(text)
        known = {
            "trigger_id",
            "reason",
            "status",
            "attempts",
            "failed_at_ms",
            "record",
            "truncated",
        }
        return cls(
            trigger_id=data["trigger_id"],
            reason=data["reason"],
            status=data.get("status"),
            attempts=data.get("attempts", 0),
            failed_at_ms=data["failed_at_ms"],
            record=data["record"],
            truncated=data.get("truncated", False),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def kafka_record(self) -> KafkaRecord:
        """The failed record (key/value absent when truncated)."""
        return record_from_lambda(self.record)


def dead_letter_for(
    failure: RecordFailure, *, trigger_id: str, now_ms: int | None = None
) -> DeadLetter:
    """The dead letter for a failure; key/value dropped if the message would be too large."""
    record = record_to_lambda(failure.record)
    letter = DeadLetter(
        trigger_id=trigger_id,
        reason=failure.reason,
        status=failure.status,
        attempts=failure.attempts,
        failed_at_ms=int(time.time() * 1000) if now_ms is None else now_ms,
        record=record,
    )
    if len(letter.to_json().encode()) <= DEAD_LETTER_MAX_BYTES:
        return letter
    sizes = {
        "key_bytes": len(base64.b64decode(record.get("key", ""))),
        "value_bytes": len(base64.b64decode(record.get("value", ""))),
    }
    slim = {k: v for k, v in record.items() if k not in ("key", "value", "headers")}
    return DeadLetter(
        trigger_id=trigger_id,
        reason=failure.reason[:1000],
        status=failure.status,
        attempts=failure.attempts,
        failed_at_ms=letter.failed_at_ms,
        record=slim,
        truncated=True,
        extra=sizes,
    )
