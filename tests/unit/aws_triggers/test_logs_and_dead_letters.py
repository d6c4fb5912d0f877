"""Logs from CloudWatch with cursors; dead letters drained from the trigger's queue."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from runtime.adapters.aws.trigger_dead_letters import parse_queue_message
from runtime.domain.errors import Unavailable
from runtime.domain.models import Trigger
from runtime.triggers.batch import FailureKind, RecordFailure, dead_letter_for
from runtime.triggers.event_shape import KafkaRecord
from tests.unit.aws_triggers.conftest import PREFIX, AwsWorld
from tests.unit.aws_triggers.support import KAFKA_TOPIC, webhook_trigger
from tests.unit.aws_triggers.test_deploy import expect_create_mapping

# Recent: CloudWatch (and moto) refuse events older than 14 days.
T0 = (int(time.time()) - 3600) * 1000  # ms


def write_logs(aws: AwsWorld, trigger: Trigger, count: int) -> None:
    group = f"/aws/lambda/{PREFIX}{trigger.trigger_id}"
    aws.logs.create_log_group(logGroupName=group)
    aws.logs.create_log_stream(logGroupName=group, logStreamName="2026/01/01/[$LATEST]abc")
    aws.logs.put_log_events(
        logGroupName=group,
        logStreamName="2026/01/01/[$LATEST]abc",
        logEvents=[{"timestamp": T0 + i * 1000, "message": f"line {i}\n"} for i in range(count)],
    )


def test_logs_page_through_with_an_opaque_cursor(aws: AwsWorld) -> None:
    trigger = webhook_trigger()
    write_logs(aws, trigger, 5)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = aws.platform.logs(trigger, since=None, cursor=cursor, limit=2)
        pages += 1
        assert len(page.items) <= 2
        seen += [line.message for line in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"line {i}" for i in range(5)]
    assert pages == 3
    first = aws.platform.logs(trigger, since=None, cursor=None, limit=1).items[0]
    assert first.timestamp == datetime.fromtimestamp(T0 / 1000, tz=UTC)


def test_logs_since_skips_older_lines(aws: AwsWorld) -> None:
    trigger = webhook_trigger()
    write_logs(aws, trigger, 5)
    since = datetime.fromtimestamp((T0 + 3000) / 1000, tz=UTC)
    page = aws.platform.logs(trigger, since=since, cursor=None, limit=100)
    assert [line.message for line in page.items] == ["line 3", "line 4"]
    assert page.next_cursor is None


def test_logs_of_a_trigger_without_a_log_group_are_empty(aws: AwsWorld) -> None:
    page = aws.platform.logs(webhook_trigger(), since=None, cursor=None, limit=10)
    assert page.items == [] and page.next_cursor is None


def template_dead_letter(offset: int) -> str:
    record = KafkaRecord(
        topic=KAFKA_TOPIC,
        partition=1,
        offset=offset,
        timestamp_ms=T0,
        key=b"k",
        value=b'{"status":"done"}',
    )
    failure = RecordFailure(record, FailureKind.PERMANENT, "HTTP 400 Bad Request", 400, 1)
    return dead_letter_for(failure, trigger_id="x", now_ms=T0 + offset).to_json()


ESM_RECORD = json.dumps(
    {
        "requestContext": {
            "requestId": "r-1",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 4,
        },
        "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-01-02T03:04:05.000Z",
        "KafkaBatchInfo": {
            "batchSize": 3,
            "topic": KAFKA_TOPIC,
            "partition": 2,
            "firstOffset": 40,
            "lastOffset": 42,
        },
    }
)


def test_dead_letters_are_drained_into_a_stable_archive_and_paged(aws: AwsWorld) -> None:
    trigger = webhook_trigger()
    expect_create_mapping(aws, trigger)
    aws.platform.deploy(trigger, secret="k", code=None)
    queue = aws.sqs.get_queue_url(QueueName=f"{PREFIX}{trigger.trigger_id}-dlq")["QueueUrl"]
    for offset in (7, 8):
        aws.sqs.send_message(QueueUrl=queue, MessageBody=template_dead_letter(offset))
    aws.sqs.send_message(QueueUrl=queue, MessageBody=ESM_RECORD)

    first = aws.platform.dead_letters(trigger, cursor=None, limit=2)
    assert len(first.items) == 2 and first.next_cursor is not None
    second = aws.platform.dead_letters(trigger, cursor=first.next_cursor, limit=2)
    letters = first.items + second.items
    assert second.next_cursor is None

    # The queue is empty: every letter moved to the archive, none lost.
    remaining = aws.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    assert remaining.get("Messages", []) == []
    by_offset = {letter.offset: letter for letter in letters}
    assert set(by_offset) == {7, 8, 40}
    assert by_offset[7].reason == "HTTP 400 Bad Request (HTTP 400)"
    assert by_offset[7].partition == 1 and by_offset[7].value is not None
    assert by_offset[7].failed_at == datetime.fromtimestamp((T0 + 7) / 1000, tz=UTC)
    batch = by_offset[40]
    assert batch.partition == 2 and batch.topic == KAFKA_TOPIC
    assert "RetryAttemptsExhausted" in batch.reason and "offsets 40-42" in batch.reason
    assert batch.failed_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    # Listing again shows the same letters: reading is not consuming.
    again = aws.platform.dead_letters(trigger, cursor=None, limit=10)
    assert sorted(letter.offset for letter in again.items) == [7, 8, 40]


def test_dead_letters_of_a_trigger_without_a_queue_are_empty(aws: AwsWorld) -> None:
    page = aws.platform.dead_letters(webhook_trigger(), cursor=None, limit=10)
    assert page.items == [] and page.next_cursor is None


def test_unreadable_queue_messages_still_become_dead_letters() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    letter = parse_queue_message("not json", received_at=when, default_topic="ns.t")
    assert (letter.topic, letter.offset, letter.failed_at) == ("ns.t", -1, when)
    assert "unreadable" in letter.reason
    other = parse_queue_message('{"hello": 1}', received_at=when, default_topic="ns.t")
    assert "unknown format" in other.reason


def test_letters_the_archive_refuses_stay_in_the_queue(aws: AwsWorld) -> None:
    trigger = webhook_trigger()
    expect_create_mapping(aws, trigger)
    aws.platform.deploy(trigger, secret="k", code=None)
    queue = aws.sqs.get_queue_url(QueueName=f"{PREFIX}{trigger.trigger_id}-dlq")["QueueUrl"]
    aws.sqs.send_message(QueueUrl=queue, MessageBody=template_dead_letter(1))
    aws.now[0] -= 30 * 24 * 3600  # CloudWatch rejects events this old

    with pytest.raises(Unavailable, match="could not archive"):
        aws.platform.dead_letters(trigger, cursor=None, limit=10)

    counts = aws.sqs.get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert sum(int(v) for v in counts.values()) == 1
