"""The SDK's Kafka wrappers against the real embedded broker (Tansu), configured via /v1/fabric."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from octopus_client import Fabric, UnavailableError, UnknownTopicError
from octopus_client.kafka import ConsumedRecord, FabricConsumer, KafkaCredentials, MskOAuthCallback
from octopus_client.names import prefix_subscription_regex

from tests.unit.client.client_fake_api import FakeAPI, Reply, fabric_body, me_body, topic_body

pytestmark = pytest.mark.broker


@pytest.fixture
def namespace() -> str:
    return f"ns-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def fabric(api: FakeAPI, bootstrap_servers: str, namespace: str) -> Fabric:
    api.reply("GET", "/v1/fabric", fabric_body(bootstrap_servers))
    api.reply("GET", "/v1/me", me_body(namespace))
    # Prefix subscriptions ask the fabric whether the channel is visible first.
    api.reply("GET", f"/v1/namespaces/{namespace}/topics", {"items": [], "next_cursor": None})
    return Fabric(api.url, "tok")


@pytest.fixture
def make_topic(api: FakeAPI, bootstrap_servers: str, namespace: str) -> Callable[..., str]:
    """Create the topic on the broker and make the fake API know it; returns the Kafka name."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})

    def make(name: str, partitions: int = 1, *, register: bool = True) -> str:
        kafka_name = f"{namespace}.{name}"
        admin.create_topics([NewTopic(kafka_name, partitions)])[kafka_name].result(10)
        if register:
            path = f"/v1/namespaces/{namespace}/topics/{name}"
            api.reply("GET", path, topic_body(namespace, name, partitions=partitions))
        return kafka_name

    return make


def broker_topics(bootstrap_servers: str) -> set[str]:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    return set(admin.list_topics(timeout=10).topics)


def drain(consumer: FabricConsumer, count: int, timeout: float = 20.0) -> list[ConsumedRecord]:
    records: list[ConsumedRecord] = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        record = consumer.poll_json(0.5)
        if record is not None:
            records.append(record)
    return records


def test_producer_refuses_a_topic_the_fabric_does_not_know(
    fabric: Fabric, namespace: str, bootstrap_servers: str
) -> None:
    producer = fabric.producer()
    with pytest.raises(UnknownTopicError) as caught:
        producer.produce_json("typo.topic", {"a": 1})
    assert caught.value.details == {"namespace": namespace, "topic": "typo.topic"}
    producer.flush(5)
    # Nothing reached the broker, which would have auto-created the topic.
    assert f"{namespace}.typo.topic" not in broker_topics(bootstrap_servers)


def test_the_topic_check_is_cached(fabric: Fabric, api: FakeAPI, make_topic, namespace) -> None:
    make_topic("events")
    producer = fabric.producer()
    for i in range(5):
        producer.produce_json("events", {"i": i})
    assert producer.flush(10) == 0
    assert len(api.calls("GET", f"/v1/namespaces/{namespace}/topics/events")) == 1
    assert producer.stats.delivered == 5


def test_json_round_trip_with_keys_headers_and_commit_resume(
    fabric: Fabric, make_topic, namespace: str
) -> None:
    kafka_name = make_topic("sensors.temp")
    with fabric.producer() as producer:
        for i in range(10):
            producer.produce_json(
                f"{namespace}/sensors.temp",
                {"i": i, "t": 20 + i},
                key=f"dev-{i % 2}",
                headers={"src": "lab"},
            )
        producer.produce("sensors.temp", b"\xff\xfe not json")  # bare topic: default namespace
    consumer = fabric.consumer(group="readers")
    assert consumer.group_id == f"{namespace}.readers"
    assert consumer.subscribe(kafka_name) == [kafka_name]  # a Kafka name in my namespace
    records = drain(consumer, 11)
    assert [r.value["i"] for r in records[:10]] == list(range(10))
    assert records[0].key == "dev-0"
    assert records[0].headers == [("src", b"lab")]
    assert records[0].is_json and records[0].timestamp is not None
    assert records[10].is_json is False
    assert isinstance(records[10].value, bytes)
    assert records[10].to_json()["value"] == base64.b64encode(b"\xff\xfe not json").decode()
    consumer.commit(records[4])  # processed up to and including offset 4
    consumer.close()

    again = fabric.consumer(group="readers")
    again.subscribe("sensors.temp")
    resumed = drain(again, 6)
    assert [r.offset for r in resumed] == [5, 6, 7, 8, 9, 10]
    again.commit()
    again.close()


def test_commit_after_breaking_out_of_records_covers_only_what_was_seen(
    fabric: Fabric, make_topic, namespace: str
) -> None:
    """records() fetches in batches; a commit must not cover the unseen rest of a batch."""
    make_topic("frames")
    with fabric.producer() as producer:
        for i in range(50):
            producer.produce_json("frames", {"i": i})
    consumer = fabric.consumer(group="batch-readers")
    consumer.subscribe("frames")
    seen = []
    for record in consumer.records(idle_timeout=20, batch_size=50):
        seen.append(record.value["i"])
        if len(seen) == 7:
            break  # the batch held more than 7 records
    consumer.commit()
    consumer.close()
    assert seen == list(range(7))

    again = fabric.consumer(group="batch-readers")
    again.subscribe("frames")
    rest = [r.value["i"] for r in again.records(limit=43, idle_timeout=20)]
    again.close()
    assert rest == list(range(7, 50))


def test_prefix_subscription_covers_the_subtree_only(
    fabric: Fabric, make_topic, namespace: str
) -> None:
    for name in ("lab.a", "lab.a.b", "lab.ab"):
        make_topic(name)
    with fabric.producer() as producer:
        for name in ("lab.a", "lab.a.b", "lab.ab"):
            producer.produce_json(name, {"topic": name})
    consumer = fabric.consumer()
    pattern = consumer.subscribe_prefix(namespace, "lab.a")
    assert pattern == prefix_subscription_regex(namespace, "lab.a")
    got = drain(consumer, 2, timeout=20)
    # a third record (lab.ab) must never arrive
    extra = drain(consumer, 1, timeout=1.5)
    consumer.close()
    assert sorted(r.value["topic"] for r in got) == ["lab.a", "lab.a.b"]
    assert extra == []


def test_consumer_gets_local_overrides_and_producer_does_not_get_consumer_keys(
    fabric: Fabric,
) -> None:
    consumer_conf = fabric.kafka_config()
    assert consumer_conf["session.timeout.ms"] == 6000
    assert consumer_conf["security.protocol"] == "PLAINTEXT"
    producer = fabric.producer(**{"linger.ms": 7})
    assert len(producer) == 0
    from octopus_client.kafka import connection_config

    producer_conf = connection_config(fabric, {"linger.ms": 7}, role="producer")
    assert "session.timeout.ms" not in producer_conf
    assert "fetch.wait.max.ms" not in producer_conf
    assert producer_conf["linger.ms"] == 7


def test_group_ids_stay_in_the_callers_namespace(fabric: Fabric, namespace: str) -> None:
    assert fabric.consumer(group=f"{namespace}.mine").group_id == f"{namespace}.mine"
    consumer = fabric.consumer(group="g", **{"group.id": "other-ns.g"})
    assert consumer.group_id == f"{namespace}.g"
    assert fabric.consumer().group_id.startswith(f"{namespace}.octopus-")


def test_wait_until_ready_returns_at_once_on_a_live_broker(fabric: Fabric) -> None:
    assert fabric.wait_until_ready(timeout=10) < 5


def test_wait_until_ready_gives_up_with_unavailable(api: FakeAPI) -> None:
    api.reply("GET", "/v1/fabric", fabric_body("127.0.0.1:1"))
    started = time.monotonic()
    with pytest.raises(UnavailableError) as caught:
        Fabric(api.url, "tok").wait_until_ready(timeout=2)
    assert caught.value.code == "broker_not_ready"
    assert time.monotonic() - started < 6


def test_msk_config_uses_oauthbearer_with_credentials_from_the_api(api: FakeAPI) -> None:
    api.reply(
        "GET",
        "/v1/fabric",
        fabric_body(
            "b-1.example:9098",
            security_protocol="SASL_SSL",
            sasl_mechanism="OAUTHBEARER",
            auth="aws-msk-iam",
            region="us-east-1",
            cluster_mode="serverless",
            local=False,
        ),
    )
    api.reply(
        "POST",
        "/v1/credentials",
        Reply(
            201,
            {
                "access_key_id": "ASIAEXAMPLE",
                "secret_access_key": "secret",
                "session_token": "session",
                "expires_at": "2999-01-01T00:00:00Z",
                "region": "us-east-1",
            },
        ),
    )
    conf = Fabric(api.url, "tok").kafka_config()
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "OAUTHBEARER"
    assert "session.timeout.ms" not in conf  # local overrides are not applied on MSK
    token, expiry = conf["oauth_cb"](None)
    signed_url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    assert signed_url.startswith("https://kafka.us-east-1.amazonaws.com/")
    assert "ASIAEXAMPLE" in signed_url and "X-Amz-Security-Token=session" in signed_url
    assert expiry > time.time()
    conf["oauth_cb"](None)  # a second token reuses the unexpired credentials
    assert len(api.calls("POST", "/v1/credentials")) == 1


def test_msk_token_from_a_created_iam_key() -> None:
    callback = MskOAuthCallback("eu-west-1", lambda: KafkaCredentials("AKIAKEY", "s3cret"))
    token, _ = callback(None)
    signed_url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    assert "AKIAKEY" in signed_url
    assert "X-Amz-Security-Token" not in signed_url
