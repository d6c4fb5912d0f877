"""Webhook delivery against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time

import pytest

from runtime.triggers.batch import FailureKind, process_batch, process_records
from runtime.triggers.event_shape import KafkaRecord
from runtime.triggers.webhook import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    RetryPolicy,
    WebhookConfig,
    WebhookDeliverer,
    verify_signature,
)

SECRET = "whsec_test_0123456789"
FAST = RetryPolicy(max_attempts=5, base_delay_s=0.01, max_delay_s=0.05, max_total_s=10, timeout_s=2)


def records(n: int, partition: int = 0) -> list[KafkaRecord]:
    return [
        KafkaRecord(
            "ns.frames",
            partition,
            offset,
            1_700_000_000_000 + offset,
            key=f"k{offset}".encode(),
            value=json.dumps({"frame": offset}).encode(),
            headers=(("trace", b"abc"), ("bin", b"\xff\x00")),
        )
        for offset in range(n)
    ]


def deliverer(url: str, **overrides: object) -> WebhookDeliverer:
    config = WebhookConfig(
        url=url,
        secret=SECRET,
        allow_private=True,
        retry=FAST,
        static_headers={"Authorization": "Bearer abc"},
    )
    for name, value in overrides.items():
        config = type(config)(**{**config.__dict__, name: value})
    return WebhookDeliverer(config)


def test_500_three_times_then_200_delivers_every_event(webhook_server) -> None:
    webhook_server.fail_each_delivery = (500, 3)
    batch = records(5)
    with deliverer(webhook_server.url) as d:
        outcome = process_records(batch, d.deliver_one)
    assert outcome.ok and len(outcome.delivered) == 5
    assert len(webhook_server.requests) == 5 * 4
    delivered_offsets = sorted(
        r.json()["records"][0]["offset"] for r in webhook_server.successful()
    )
    assert delivered_offsets == [0, 1, 2, 3, 4]
    assert outcome.commit_positions() == {("ns.frames", 0): 5}


def test_every_request_is_signed_and_verifies(webhook_server) -> None:
    webhook_server.fail_each_delivery = (503, 1)
    with deliverer(webhook_server.url) as d:
        assert d.deliver(records(3)).ok
    assert len(webhook_server.requests) == 2
    for request in webhook_server.requests:
        headers = request.headers
        assert verify_signature(
            SECRET,
            headers[TIMESTAMP_HEADER.lower()],
            request.body,
            headers[SIGNATURE_HEADER.lower()],
        )
        assert not verify_signature(
            "wrong",
            headers[TIMESTAMP_HEADER.lower()],
            request.body,
            headers[SIGNATURE_HEADER.lower()],
        )
        assert not verify_signature(
            SECRET,
            headers[TIMESTAMP_HEADER.lower()],
            request.body + b" ",
            headers[SIGNATURE_HEADER.lower()],
        )
        assert headers["authorization"] == "Bearer abc"
        assert headers["content-type"] == "application/json"
        assert headers[DELIVERY_ID_HEADER.lower()] == "ns.frames/0/0-2"
    body = webhook_server.requests[-1].json()
    first = body["records"][0]
    assert first["value"] == {"frame": 0} and first["value_encoding"] == "json"
    assert first["key"] == "k0" and first["key_encoding"] == "text"
    assert first["headers"] == [
        {"name": "trace", "value": "abc", "encoding": "text"},
        {"name": "bin", "value": "/wA=", "encoding": "base64"},
    ]


def test_400_is_permanent_with_status_and_reply_snippet(webhook_server) -> None:
    webhook_server.script = [(400, "bad payload: field 'frame' " + "x" * 1000, 0.0)]
    with deliverer(webhook_server.url) as d:
        outcome = process_records(records(2), d.deliver_one)
    assert len(webhook_server.requests) == 2  # no retry of the 400
    (failure,) = outcome.failures
    assert failure.kind is FailureKind.PERMANENT
    assert failure.status == 400 and failure.attempts == 1
    assert failure.reason.startswith("HTTP 400: bad payload: field 'frame'")
    assert len(failure.reason) < 400
    assert [r.offset for r in outcome.delivered] == [1]
    # Nothing is committed until the permanent failure is dead-lettered.
    assert outcome.commit_positions() == {}
    assert outcome.commit_positions(dead_lettered=[failure.record]) == {("ns.frames", 0): 2}


def test_429_is_retried(webhook_server) -> None:
    webhook_server.fail_each_delivery = (429, 2)
    with deliverer(webhook_server.url) as d:
        result = d.deliver(records(1))
    assert result.ok and result.attempts == 3


def test_retries_are_bounded_and_failure_is_retryable(webhook_server) -> None:
    webhook_server.fail_each_delivery = (502, 100)
    policy = RetryPolicy(
        max_attempts=3, base_delay_s=0.01, max_delay_s=0.02, max_total_s=10, timeout_s=2
    )
    with deliverer(webhook_server.url, retry=policy) as d:
        outcome = process_records(records(3), d.deliver_one)
    # The first record exhausts its attempts; the rest of the partition waits for it.
    assert len(webhook_server.requests) == 3
    assert [f.kind for f in outcome.failures] == [FailureKind.RETRYABLE] * 3
    assert "gave up after 3 attempts" in outcome.failures[0].reason
    assert "not attempted" in outcome.failures[1].reason
    assert outcome.commit_positions() == {}


def test_timeout_is_retried(webhook_server) -> None:
    webhook_server.script = [(200, "slow", 1.5)]
    policy = RetryPolicy(
        max_attempts=2, base_delay_s=0.01, max_delay_s=0.01, max_total_s=10, timeout_s=0.5
    )
    with deliverer(webhook_server.url, retry=policy) as d:
        result = d.deliver(records(1))
    assert result.ok and result.attempts == 2
    assert len(webhook_server.requests) == 2


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    policy = RetryPolicy(
        max_attempts=2, base_delay_s=0.01, max_delay_s=0.01, max_total_s=5, timeout_s=1
    )
    with deliverer(f"http://127.0.0.1:{port}/x", retry=policy) as d:
        result = d.deliver(records(1))
    assert result.retryable and "connection error" in result.reason and result.attempts == 2


def test_redirect_is_not_followed(webhook_server) -> None:
    webhook_server.script = [(302, "moved", 0.0)]
    with deliverer(webhook_server.url) as d:
        result = d.deliver(records(1))
    assert result.permanent and result.status == 302
    assert len(webhook_server.requests) == 1


def test_private_url_refused_without_allow_private(webhook_server) -> None:
    with deliverer(webhook_server.url, allow_private=False) as d:
        result = d.deliver(records(1))
    assert result.permanent and "loopback" in result.reason
    assert webhook_server.requests == []


def test_batch_mode_one_post_for_all(webhook_server) -> None:
    webhook_server.fail_each_delivery = (500, 3)
    batch = records(4) + records(2, partition=1)
    with deliverer(webhook_server.url) as d:
        outcome = process_batch(batch, d.deliver)
    assert outcome.ok
    assert len(webhook_server.requests) == 4
    assert len(webhook_server.requests[-1].json()["records"]) == 6
    assert outcome.commit_positions() == {("ns.frames", 0): 4, ("ns.frames", 1): 2}


def test_total_time_budget_is_respected(webhook_server) -> None:
    webhook_server.fail_each_delivery = (500, 100)
    policy = RetryPolicy(
        max_attempts=50, base_delay_s=0.2, max_delay_s=0.2, max_total_s=1.5, timeout_s=0.5
    )
    started = time.monotonic()
    with deliverer(webhook_server.url, retry=policy) as d:
        result = d.deliver(records(1))
    assert result.retryable and "time budget" in result.reason
    assert time.monotonic() - started < 2.0
    assert 1 < result.attempts < 50


@pytest.mark.parametrize("secret", ["s3cr3t", b"\x00binary-key"])
def test_unsigned_when_no_secret_and_signed_with_bytes(webhook_server, secret) -> None:
    with deliverer(webhook_server.url, secret=None) as d:
        assert d.deliver(records(1)).ok
    assert SIGNATURE_HEADER.lower() not in webhook_server.requests[0].headers
    with deliverer(webhook_server.url, secret=secret) as d:
        assert d.deliver(records(1)).ok
    signed = webhook_server.requests[1]
    assert verify_signature(
        secret,
        signed.headers["x-octopus-timestamp"],
        signed.body,
        signed.headers["x-octopus-signature"],
    )
