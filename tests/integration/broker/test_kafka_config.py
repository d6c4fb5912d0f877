"""Client configs: the local one against the embedded broker, the MSK IAM token callback offline."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlparse

import pytest
from confluent_kafka import Consumer, Producer

from runtime.adapters.kafka_admin import KafkaBrokerAdmin
from runtime.adapters.kafka_config import (
    EMBEDDED_BROKER_CONSUMER_SETTINGS,
    consumer_defaults,
    local_client_config,
    msk_iam_client_config,
    producer_defaults,
)


def test_local_config_is_plaintext_and_role_specific():
    admin = local_client_config("127.0.0.1:9092")
    assert admin == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT"}
    consumer = local_client_config("127.0.0.1:9092", "consumer")
    assert 3000 <= consumer["session.timeout.ms"] <= 6000
    assert consumer["heartbeat.interval.ms"] == 500
    assert consumer["fetch.wait.max.ms"] == 200
    assert "linger.ms" not in consumer
    producer = local_client_config("127.0.0.1:9092", "producer")
    assert 5 <= producer["linger.ms"] <= 10
    assert "session.timeout.ms" not in producer


def test_at_least_once_defaults():
    assert producer_defaults() == {"acks": "all", "enable.idempotence": True}
    assert consumer_defaults() == {"enable.auto.commit": False}


def test_msk_iam_config_signs_a_token_offline(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "fake-access-key-for-tests")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    config = msk_iam_client_config("b-1.example.kafka.us-east-1.amazonaws.com:9098", "us-east-1")
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanisms"] == "OAUTHBEARER"

    token, expiry = config["oauth_cb"](None)
    assert time.time() < expiry < time.time() + 3600
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    parsed = urlparse(url)
    assert parsed.hostname == "kafka.us-east-1.amazonaws.com"
    query = parse_qs(parsed.query)
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("fake-access-key-for-tests/")


@pytest.mark.broker
def test_local_group_consumer_gets_records_quickly(bootstrap_servers, unique_topic_name):
    topic = unique_topic_name()
    KafkaBrokerAdmin(local_client_config(bootstrap_servers)).create_topic(topic, 1, 1, {})
    producer = Producer(
        {**local_client_config(bootstrap_servers, "producer"), **producer_defaults()}
    )
    for i in range(10):
        producer.produce(topic, value=b"%d" % i)
    assert producer.flush(5) == 0

    consumer = Consumer(
        {
            **local_client_config(bootstrap_servers, "consumer"),
            **consumer_defaults(),
            "group.id": "g-" + topic,
            "auto.offset.reset": "earliest",
        }
    )
    started = time.monotonic()
    consumer.subscribe([topic])
    values = []
    while len(values) < 10 and time.monotonic() - started < 10:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            values.append(message.value())
    elapsed = time.monotonic() - started
    consumer.close()
    assert values == [b"%d" % i for i in range(10)]
    # The broker delays a group join by half the session timeout (1.5 s here, not 23 s).
    assert elapsed < EMBEDDED_BROKER_CONSUMER_SETTINGS["session.timeout.ms"] / 1000 + 1.0
