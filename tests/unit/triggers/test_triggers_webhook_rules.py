"""Webhook URL guard, signatures, body decoding, batch bookkeeping, dead letters."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.triggers.batch import (
    DEAD_LETTER_MAX_BYTES,
    DeadLetter,
    FailureKind,
    RecordFailure,
    dead_letter_for,
    process_batch,
    process_records,
)
from runtime.triggers.event_shape import KafkaRecord
from runtime.triggers.webhook import (
    DeliveryResult,
    InvalidWebhook,
    RetryPolicy,
    decode_bytes,
    sign,
    validate_static_headers,
    validate_webhook_url,
    verify_signature,
)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://169.254.10.1/",
        "http://[::ffff:169.254.169.254]/",
        "http://10.0.0.5/hook",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
        "http://localhost/",
    ],
)
def test_aws_mode_refuses_non_public_addresses(url: str) -> None:
    with pytest.raises(InvalidWebhook, match="resolves to"):
        validate_webhook_url(url, allow_private=False)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://10.1.2.3/", "http://[::1]:80/"])
def test_local_mode_allows_loopback_and_private(url: str) -> None:
    validate_webhook_url(url, allow_private=True)


@pytest.mark.parametrize("url", ["http://169.254.169.254/", "http://[fe80::1]/"])
def test_metadata_and_link_local_refused_even_locally(url: str) -> None:
    with pytest.raises(InvalidWebhook):
        validate_webhook_url(url, allow_private=True)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.org/x", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("example.org/x", "http or https"),
        ("https:///nohost", "no host"),
        ("https://user:pw@93.184.215.14/", "credentials"),
        ("https://93.184.215.14:99999/", "invalid port"),
    ],
)
def test_malformed_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidWebhook, match=message):
        validate_webhook_url(url, allow_private=False)


def test_public_ip_literal_is_accepted_without_resolution() -> None:
    validate_webhook_url("https://93.184.215.14/hook", allow_private=False)
    validate_webhook_url("https://hooks.example.org/x", allow_private=False, resolve=False)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Octopus-Signature": "x"},
        {"host": "evil"},
        {"Content-Length": "1"},
        {"X-Ok": "a\r\nInjected: 1"},
        {"Bad Name": "x"},
    ],
)
def test_static_headers_guard(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidWebhook):
        validate_static_headers(headers)


def test_signature_recipe_and_tolerance() -> None:
    body = b'{"records":[]}'
    signature = sign("k", 1_700_000_000, body)
    import hashlib
    import hmac

    assert (
        signature == "sha256=" + hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    )
    assert verify_signature("k", "1700000000", body, signature, 300, now=1_700_000_100)
    assert not verify_signature("k", "1700000000", body, signature, 300, now=1_700_000_301)
    assert not verify_signature("k", "1700000001", body, signature, 300, now=1_700_000_000)
    assert not verify_signature("k", "not-a-number", body, signature, 300)


@given(st.binary(max_size=32))
def test_decode_bytes_is_reversible(data: bytes) -> None:
    import base64

    decoded, encoding = decode_bytes(data)
    if encoding == "json":
        assert json.loads(data.decode()) == decoded
    elif encoding == "text":
        assert decoded.encode() == data
    else:
        assert base64.b64decode(decoded) == data


def test_backoff_is_full_jitter_and_capped() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=3)
    assert [policy.backoff(n, lambda: 1.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3, 3]
    rng = random.Random(1).random
    assert all(0 <= policy.backoff(4, rng) <= 3 for _ in range(100))


def rec(partition: int, offset: int) -> KafkaRecord:
    return KafkaRecord("t", partition, offset, 0, value=b"v")


OK = DeliveryResult(True, False, 1, 200, "")
GONE = DeliveryResult(False, True, 1, 410, "HTTP 410: gone")
LATER = DeliveryResult(False, False, 5, 503, "HTTP 503: busy")


def test_commit_positions_stop_at_the_first_unsettled_record() -> None:
    script = {(0, 0): OK, (0, 1): GONE, (0, 2): OK, (1, 5): OK, (1, 6): LATER, (2, 9): LATER}
    batch = [rec(0, 0), rec(1, 5), rec(0, 1), rec(1, 6), rec(1, 7), rec(0, 2), rec(2, 9)]
    outcome = process_records(batch, lambda r: script[(r.partition, r.offset)])
    assert [f.record.offset for f in outcome.permanent] == [1]
    assert [f.record.offset for f in outcome.retryable] == [6, 7, 9]
    assert "not attempted" in outcome.retryable[1].reason
    assert outcome.commit_positions() == {("t", 0): 1, ("t", 1): 6}
    dead = [f.record for f in outcome.permanent]
    assert outcome.commit_positions(dead) == {("t", 0): 3, ("t", 1): 6}


def test_delivery_crash_is_retryable() -> None:
    def boom(record: KafkaRecord) -> DeliveryResult:
        raise RuntimeError("bug")

    outcome = process_records([rec(0, 0)], boom)
    assert outcome.failures[0].kind is FailureKind.RETRYABLE
    assert "RuntimeError: bug" in outcome.failures[0].reason
    outcome = process_batch([rec(0, 0), rec(0, 1)], lambda rs: GONE)
    assert [f.kind for f in outcome.failures] == [FailureKind.PERMANENT] * 2


def test_dead_letter_round_trip_and_truncation() -> None:
    failure = RecordFailure(rec(0, 3), FailureKind.PERMANENT, "HTTP 400: no", 400, 1)
    letter = dead_letter_for(failure, trigger_id="t-1", now_ms=5)
    again = DeadLetter.from_json(letter.to_json())
    assert again == letter and again.kafka_record() == rec(0, 3)

    big = KafkaRecord("t", 0, 4, 0, value=b"x" * (DEAD_LETTER_MAX_BYTES + 1))
    letter = dead_letter_for(
        RecordFailure(big, FailureKind.PERMANENT, "HTTP 413: too big", 413), trigger_id="t-1"
    )
    assert letter.truncated and "value" not in letter.record
    assert letter.extra["value_bytes"] == DEAD_LETTER_MAX_BYTES + 1
    assert len(letter.to_json()) < DEAD_LETTER_MAX_BYTES
