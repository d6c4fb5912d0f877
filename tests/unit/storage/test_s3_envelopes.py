"""S3 notification payloads (from moto, and AWS's documented example) → CloudEvents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from runtime.storage import cloudevents as ce
from runtime.storage.s3_events import (
    StorageRoute,
    parse_routes,
    route_for,
    s3_envelope,
    s3_records,
)

REGION = "us-east-1"
BUCKET = "beamline-data"


@pytest.fixture
def s3_to_sqs() -> Iterator[tuple[Any, Any, str]]:
    """A bucket whose notifications (created, removed, restore, tagging) go to SQS."""
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="storage-events")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": queue_arn,
                        "Events": [
                            "s3:ObjectCreated:*",
                            "s3:ObjectRemoved:*",
                            "s3:ObjectRestore:*",
                            "s3:ObjectTagging:*",
                        ],
                    }
                ]
            },
        )
        yield s3, sqs, queue_url


def _sqs_event(sqs: Any, queue_url: str) -> dict[str, Any]:
    """Drain the queue into the event Lambda gets from an SQS event source."""
    records = []
    while True:
        reply = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
        messages = reply.get("Messages", [])
        if not messages:
            break
        for message in messages:
            records.append(
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "eventSource": "aws:sqs",
                    "awsRegion": REGION,
                }
            )
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return {"Records": records}


def test_moto_notifications_become_one_envelope_per_object_change(
    s3_to_sqs: tuple[Any, Any, str],
) -> None:
    s3, sqs, queue_url = s3_to_sqs
    s3.put_object(Bucket=BUCKET, Key="raw/run 1/frame+0001.h5", Body=b"x" * 1234)
    s3.put_object_tagging(
        Bucket=BUCKET,
        Key="raw/run 1/frame+0001.h5",
        Tagging={"TagSet": [{"Key": "state", "Value": "done"}]},
    )
    s3.delete_object(Bucket=BUCKET, Key="raw/run 1/frame+0001.h5")

    pairs = list(s3_records(_sqs_event(sqs, queue_url)))
    envelopes = [s3_envelope(record) for _message_id, record in pairs]
    assert all(message_id for message_id, _ in pairs)
    # moto reports the tagging twice (S3 itself delivers at least once): one change
    # per notification, in order.
    types = [e["type"] for e in envelopes]
    assert [t for i, t in enumerate(types) if i == 0 or types[i - 1] != t] == [
        ce.CREATED,
        ce.TAGGED,
        ce.REMOVED,
    ]
    created = envelopes[0]
    ce.validate(created)
    assert created["specversion"] == "1.0"
    assert created["source"] == f"arn:aws:s3:::{BUCKET}"
    assert created["subject"] == "raw/run 1/frame+0001.h5"  # URL-decoded key
    assert created["datacontenttype"] == "application/json"
    assert created["data"]["bucket"] == BUCKET
    assert created["data"]["size"] == 1234
    assert created["data"]["etag"]
    assert created["data"]["event_name"] == "ObjectCreated:Put"
    assert created["time"].endswith("Z")
    assert envelopes[0]["id"] != envelopes[-1]["id"]
    # The same notification delivered twice gets the same id (consumers can dedupe).
    assert s3_envelope(pairs[0][1])["id"] == created["id"]


# AWS's documented example message (eventVersion 2.1), from
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
AWS_EXAMPLE_RECORD: dict[str, Any] = {
    "eventVersion": "2.1",
    "eventSource": "aws:s3",
    "awsRegion": "us-west-2",
    "eventTime": "1970-01-01T00:00:00.000Z",
    "eventName": "ObjectCreated:Put",
    "userIdentity": {"principalId": "AIDAJDPLRKLG7UEXAMPLE"},
    "requestParameters": {"sourceIPAddress": "127.0.0.1"},
    "responseElements": {
        "x-amz-request-id": "C3D13FE58DE4C810",
        "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
    },
    "s3": {
        "s3SchemaVersion": "1.0",
        "configurationId": "testConfigRule",
        "bucket": {
            "name": "amzn-s3-demo-bucket",
            "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
            "arn": "arn:aws:s3:::amzn-s3-demo-bucket",
        },
        "object": {
            "key": "HappyFace.jpg",
            "size": 1024,
            "eTag": "d41d8cd98f00b204e9800998ecf8427e",
            "versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko",
            "sequencer": "0055AED6DCD90281E5",
        },
    },
}


def test_documented_example_with_version_and_sequencer() -> None:
    envelope = s3_envelope(AWS_EXAMPLE_RECORD)
    ce.validate(envelope)
    assert envelope["data"] == {
        "bucket": "amzn-s3-demo-bucket",
        "key": "HappyFace.jpg",
        "size": 1024,
        "etag": "d41d8cd98f00b204e9800998ecf8427e",
        "version_id": "096fKKXTRTtl3on89fVO.nfljtsv6qko",
        "event_name": "ObjectCreated:Put",
        "region": "us-west-2",
        "sequencer": "0055AED6DCD90281E5",
    }
    assert envelope["time"] == "1970-01-01T00:00:00.000Z"
    # Direct S3 → Lambda invocation, and S3 → SNS → SQS wrapping, read the same.
    direct = list(s3_records({"Records": [AWS_EXAMPLE_RECORD]}))
    assert direct == [(None, AWS_EXAMPLE_RECORD)]
    sns_body = json.dumps({"Message": json.dumps({"Records": [AWS_EXAMPLE_RECORD]})})
    wrapped = list(
        s3_records({"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": sns_body}]})
    )
    assert wrapped == [("m1", AWS_EXAMPLE_RECORD)]


@pytest.mark.parametrize(
    ("event_name", "event_type"),
    [
        ("ObjectCreated:CompleteMultipartUpload", ce.CREATED),
        ("ObjectRemoved:DeleteMarkerCreated", ce.REMOVED),
        ("ObjectRestore:Post", ce.RESTORE_STARTED),
        ("ObjectRestore:Completed", ce.RESTORED),
        ("ObjectRestore:Delete", ce.RESTORE_EXPIRED),
        ("ObjectTagging:Delete", ce.UNTAGGED),
        ("ObjectAcl:Put", ce.CHANGED),
    ],
)
def test_event_types(event_name: str, event_type: str) -> None:
    record = json.loads(json.dumps(AWS_EXAMPLE_RECORD))
    record["eventName"] = event_name
    assert s3_envelope(record)["type"] == event_type


def test_s3_test_event_is_ignored() -> None:
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"})
    assert list(s3_records({"Records": [{"eventSource": "aws:sqs", "body": body}]})) == []


def test_routes_pick_the_longest_prefix() -> None:
    routes = parse_routes(
        '[{"bucket": "b", "topic": "ns1.all"},'
        ' {"bucket": "b", "prefix": "raw/", "topic": "ns1.raw"}]'
    )
    assert route_for(routes, "b", "raw/x") == StorageRoute("b", "ns1.raw", "raw/")
    assert route_for(routes, "b", "other/x") == StorageRoute("b", "ns1.all", "")
    assert route_for(routes, "c", "raw/x") is None
    with pytest.raises(ValueError, match="needs bucket and topic"):
        parse_routes('[{"bucket": "b"}]')
    with pytest.raises(ValueError):
        parse_routes("[]")
