"""The S3 bridge on the real broker: moto notifications in, CloudEvents records out (read
back over SSE), one record per object change, keyed by bucket/key."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from runtime.adapters.kafka_config import local_client_config
from runtime.adapters.kafka_records import RecordProducer
from runtime.handlers.s3_bridge import S3Bridge
from runtime.storage import cloudevents as ce
from runtime.storage.s3_events import ROUTES_ENV_VAR, parse_routes
from tests.integration.events.conftest import LiveEvents, read_events

pytestmark = [pytest.mark.broker]


def test_notifications_through_the_bridge_become_records(live_events: LiveEvents) -> None:
    live = live_events
    live.create_topic("storage.raw")
    kafka_topic = live.kafka_name("storage.raw")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="bridge")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        s3.create_bucket(Bucket="det")
        s3.put_bucket_notification_configuration(
            Bucket="det",
            NotificationConfiguration={
                "QueueConfigurations": [
                    {"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
                ]
            },
        )
        s3.put_object(Bucket="det", Key="raw/f1.h5", Body=b"1" * 10)
        s3.put_object(Bucket="det", Key="raw/f2.h5", Body=b"2" * 20)
        s3.put_object(Bucket="det", Key="elsewhere/x", Body=b"x")  # no route: skipped
        s3.delete_object(Bucket="det", Key="raw/f1.h5")
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    event = {
        "Records": [
            {"messageId": m["MessageId"], "body": m["Body"], "eventSource": "aws:sqs"}
            for m in messages
        ]
    }
    routes = parse_routes(json.dumps([{"bucket": "det", "prefix": "raw/", "topic": kafka_topic}]))
    producer = RecordProducer(
        local_client_config(live.settings.bootstrap_servers, "producer"),
        topic_exists=lambda _name: True,
    )
    try:
        result = S3Bridge(producer, routes).handle(event)
    finally:
        producer.close()
    assert result == {"produced": 3, "skipped": 1, "batchItemFailures": []}

    path = f"/v1/namespaces/{live.owner.namespace}/topics/storage.raw/events"
    with (
        live.client(live.owner) as client,
        client.stream("GET", path, params={"from": "earliest"}) as response,
    ):
        records = [e.data for e in read_events(response, limit=3)]
    envelopes = [r["value"] for r in records]
    assert [(e["type"], e["subject"]) for e in envelopes] == [
        (ce.CREATED, "raw/f1.h5"),
        (ce.CREATED, "raw/f2.h5"),
        (ce.REMOVED, "raw/f1.h5"),
    ]
    for envelope in envelopes:
        ce.validate(envelope)
    assert envelopes[1]["data"]["size"] == 20
    assert [r["key"] for r in records] == ["det/raw/f1.h5", "det/raw/f2.h5", "det/raw/f1.h5"]
    headers = {h["name"]: h["value"] for h in records[0]["headers"]}
    assert headers["content-type"] == ce.STRUCTURED_CONTENT_TYPE
    assert headers["ce_type"] == ce.CREATED


def test_bridge_from_env_reads_routes_and_settings(live_events: LiveEvents) -> None:
    env = {
        **live_events.settings.to_env(),
        ROUTES_ENV_VAR: json.dumps([{"bucket": "b", "topic": "ns.t"}]),
    }
    bridge = S3Bridge.from_env(env)
    try:
        assert [r.topic for r in bridge.routes] == ["ns.t"]
        assert bridge.handle({"Records": []}) == {
            "produced": 0,
            "skipped": 0,
            "batchItemFailures": [],
        }
    finally:
        bridge.producer.close()
