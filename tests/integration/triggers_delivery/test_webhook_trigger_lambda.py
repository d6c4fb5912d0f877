"""The webhook template Lambda function: moto (SQS, Secrets Manager) + a real HTTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import boto3
import pytest
from moto import mock_aws

from runtime.handlers import webhook_trigger
from runtime.handlers.webhook_trigger import (
    InvalidTriggerConfig,
    WebhookTriggerApp,
    WebhookTriggerSettings,
)
from runtime.triggers.batch import DeadLetter
from runtime.triggers.event_shape import KafkaRecord, build_msk_event
from runtime.triggers.webhook import validate_webhook_url, verify_signature

REGION = "us-east-1"
SECRET = "trigger-secret-shown-once"


@pytest.fixture
def aws(monkeypatch) -> Iterator[dict[str, str]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="octopus-trigger-dlq")["QueueUrl"]
        secrets = boto3.client("secretsmanager", region_name=REGION)
        arn = secrets.create_secret(Name="octopus/triggers/t-1", SecretString=SECRET)["ARN"]
        yield {"queue_url": queue_url, "secret_arn": arn}


def env(url: str, aws: dict[str, str], **extra: str) -> dict[str, str]:
    return {
        "OCTOPUS_WEBHOOK_URL": url,
        "OCTOPUS_WEBHOOK_HEADERS": json.dumps({"X-Team": "beamline-7"}),
        "OCTOPUS_WEBHOOK_SECRET_ARN": aws["secret_arn"],
        "OCTOPUS_DLQ_URL": aws["queue_url"],
        "OCTOPUS_TRIGGER_ID": "t-1",
        "OCTOPUS_WEBHOOK_ALLOW_PRIVATE": "true",
        "OCTOPUS_WEBHOOK_BASE_DELAY_S": "0.01",
        "OCTOPUS_WEBHOOK_MAX_DELAY_S": "0.02",
        "OCTOPUS_WEBHOOK_TIMEOUT_S": "2",
        **extra,
    }


def msk_event(n: int, partitions: int = 1) -> dict:
    recs = [
        KafkaRecord(
            "ns.runs",
            offset % partitions,
            offset,
            1_700_000_000_000,
            key=b"run",
            value=json.dumps({"i": offset}).encode(),
        )
        for offset in range(n)
    ]
    return build_msk_event(
        recs,
        event_source_arn="arn:aws:kafka:us-east-1:123456789012:cluster/octo/abcd-1",
        bootstrap_servers="b-1.octo:9098",
    )


def dead_letters(queue_url: str) -> list[DeadLetter]:
    sqs = boto3.client("sqs", region_name=REGION)
    out = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )
    return [DeadLetter.from_json(m["Body"]) for m in out.get("Messages", [])]


class Context:
    def __init__(self, remaining_ms: int = 300_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_all_delivered_signed_no_failures(aws, webhook_server) -> None:
    app = WebhookTriggerApp(WebhookTriggerSettings.from_env(env(webhook_server.url, aws)))
    webhook_server.fail_each_delivery = (500, 3)
    response = app.handle(msk_event(4, partitions=2), Context())
    assert response == {"batchItemFailures": []}
    ok = webhook_server.successful()
    assert sorted(r.json()["records"][0]["value"]["i"] for r in ok) == [0, 1, 2, 3]
    for request in webhook_server.requests:
        assert request.headers["x-team"] == "beamline-7"
        assert verify_signature(
            SECRET,
            request.headers["x-octopus-timestamp"],
            request.body,
            request.headers["x-octopus-signature"],
        )
    assert dead_letters(aws["queue_url"]) == []


def test_400_goes_to_dead_letters_and_is_not_reported(aws, webhook_server) -> None:
    webhook_server.script = [(400, '{"error": "unknown run"}', 0.0)]
    app = WebhookTriggerApp(WebhookTriggerSettings.from_env(env(webhook_server.url, aws)))
    response = app.handle(msk_event(3), Context())
    assert response == {"batchItemFailures": []}
    (letter,) = dead_letters(aws["queue_url"])
    assert letter.trigger_id == "t-1" and letter.status == 400
    assert letter.reason == 'HTTP 400: {"error": "unknown run"}'
    record = letter.kafka_record()
    assert (record.topic, record.partition, record.offset) == ("ns.runs", 0, 0)
    assert json.loads(record.value or b"") == {"i": 0}


def test_retryable_failures_are_reported_for_lambda_to_retry(aws, webhook_server) -> None:
    webhook_server.fail_each_delivery = (503, 100)
    settings = env(webhook_server.url, aws, OCTOPUS_WEBHOOK_MAX_ATTEMPTS="2")
    app = WebhookTriggerApp(WebhookTriggerSettings.from_env(settings))
    response = app.handle(msk_event(4, partitions=2), Context())
    failures = response["batchItemFailures"]
    assert {
        (f["itemIdentifier"]["partition"], f["itemIdentifier"]["offset"]) for f in failures
    } == {("ns.runs-0", 0), ("ns.runs-0", 2), ("ns.runs-1", 1), ("ns.runs-1", 3)}
    # Only the first record of each partition was tried (twice); the rest waited.
    assert len(webhook_server.requests) == 4
    assert dead_letters(aws["queue_url"]) == []


def test_dead_letter_write_failure_keeps_record_failed(aws, webhook_server) -> None:
    webhook_server.script = [(404, "no such hook", 0.0)]
    settings = env(webhook_server.url, aws, OCTOPUS_DLQ_URL=aws["queue_url"] + "-missing")
    app = WebhookTriggerApp(WebhookTriggerSettings.from_env(settings))
    response = app.handle(msk_event(2), Context())
    assert response == {
        "batchItemFailures": [{"itemIdentifier": {"partition": "ns.runs-0", "offset": 0}}]
    }


def test_batch_mode_and_out_of_time(aws, webhook_server) -> None:
    app = WebhookTriggerApp(
        WebhookTriggerSettings.from_env(env(webhook_server.url, aws, OCTOPUS_WEBHOOK_MODE="batch"))
    )
    assert app.handle(msk_event(5), Context()) == {"batchItemFailures": []}
    assert len(webhook_server.requests) == 1
    assert len(webhook_server.requests[0].json()["records"]) == 5

    # Record mode with no time left: the first record is still tried, the rest come back.
    app = WebhookTriggerApp(WebhookTriggerSettings.from_env(env(webhook_server.url, aws)))
    response = app.handle(msk_event(3), Context(remaining_ms=1000))
    assert [f["itemIdentifier"]["offset"] for f in response["batchItemFailures"]] == [1, 2]


def test_secret_fetched_once_per_container(aws, webhook_server) -> None:
    calls = []
    secrets = boto3.client("secretsmanager", region_name=REGION)
    original = secrets.get_secret_value

    def counting(**kwargs):
        calls.append(kwargs)
        return original(**kwargs)

    secrets.get_secret_value = counting
    app = WebhookTriggerApp(
        WebhookTriggerSettings.from_env(env(webhook_server.url, aws)), secrets_client=secrets
    )
    for _ in range(3):
        app.handle(msk_event(1), Context())
    assert len(calls) == 1


def test_rebinding_to_an_internal_address_is_dead_lettered(aws, webhook_server, fake_dns) -> None:
    # As deployed (no private addresses): the name answers public to the control plane's
    # check and then the fabric's own host; the template must refuse, not POST to it.
    url = f"http://rebind.invalid:{urlsplit(webhook_server.url).port}/hook"
    fake_dns.answer("rebind.invalid", ["93.184.215.14"], ["127.0.0.1"])
    validate_webhook_url(url, allow_private=False)
    settings = env(url, aws, OCTOPUS_WEBHOOK_ALLOW_PRIVATE="false")
    app = WebhookTriggerApp(WebhookTriggerSettings.from_env(settings))
    assert app.handle(msk_event(1), Context()) == {"batchItemFailures": []}
    assert webhook_server.requests == []
    (letter,) = dead_letters(aws["queue_url"])
    assert letter.reason == (
        "refused: webhook host 'rebind.invalid' resolves to 127.0.0.1, which is a loopback address"
    )


def test_module_handler_reads_environment(aws, webhook_server, monkeypatch) -> None:
    for name, value in env(webhook_server.url, aws).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(webhook_trigger, "_APP", None)
    assert webhook_trigger.handler(msk_event(2), Context()) == {"batchItemFailures": []}
    assert len(webhook_server.requests) == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"OCTOPUS_WEBHOOK_URL": ""}, "OCTOPUS_WEBHOOK_URL is not set"),
        ({"OCTOPUS_WEBHOOK_URL": "ftp://x/y"}, "http or https"),
        ({"OCTOPUS_WEBHOOK_HEADERS": "[1]"}, "JSON object"),
        ({"OCTOPUS_WEBHOOK_HEADERS": '{"X-Octopus-Signature": "forged"}'}, "cannot be overridden"),
        ({"OCTOPUS_WEBHOOK_MODE": "stream"}, "'record' or 'batch'"),
        ({"OCTOPUS_WEBHOOK_MAX_ATTEMPTS": "many"}, "must be a number"),
    ],
)
def test_bad_configuration_is_named(overrides, message) -> None:
    base = env("http://127.0.0.1:1/x", {"secret_arn": "", "queue_url": ""})
    with pytest.raises(Exception, match=message) as info:
        WebhookTriggerSettings.from_env({**base, **overrides})
    assert info.value.status == 400  # type: ignore[attr-defined]
    assert isinstance(info.value, InvalidTriggerConfig) or info.value.code == "invalid_webhook"
