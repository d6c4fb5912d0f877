"""KafkaBrokerAdmin against the real embedded broker."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from runtime.adapters.kafka_admin import (
    EMBEDDED_BROKER,
    BrokerCapabilities,
    KafkaBrokerAdmin,
)
from runtime.adapters.kafka_config import local_client_config
from runtime.adapters.kafka_errors import (
    BrokerUnavailable,
    PartitionIncreaseUnsupported,
    TopicAlreadyExists,
    TopicNotFound,
)
from runtime.domain.errors import AlreadyExists, Unavailable, Unsupported
from runtime.local.broker import find_free_port

pytestmark = pytest.mark.broker


@pytest.fixture
def admin(bootstrap_servers):
    admin = KafkaBrokerAdmin(local_client_config(bootstrap_servers), timeout_s=5.0)
    yield admin
    admin.close()


def produce_batches(bootstrap, topic, batches, per_batch, partition=0):
    """Each flush ends a batch: ``batches`` stored batches of ``per_batch`` records."""
    producer = Producer(
        {**local_client_config(bootstrap, "producer"), "linger.ms": 50, "acks": "all"}
    )
    for _ in range(batches):
        for i in range(per_batch):
            producer.produce(topic, value=b"v%d" % i, partition=partition)
        assert producer.flush(10) == 0


def test_create_list_describe(admin, unique_topic_name):
    name = unique_topic_name("orders")
    admin.create_topic(name, 3, 1, {"retention.ms": "3600000"})

    assert name in admin.list_topics()
    description = admin.describe_topic(name)
    assert description is not None
    assert description.name == name
    assert description.partitions == 3
    assert sorted(description.leaders) == [0, 1, 2]
    assert all(leader >= 0 for leader in description.leaders.values())
    assert description.configs == {"retention.ms": "3600000"}


def test_create_existing_topic_raises_topic_already_exists(admin, unique_topic_name):
    name = unique_topic_name()
    admin.create_topic(name, 1, 1, {})
    with pytest.raises(TopicAlreadyExists) as caught:
        admin.create_topic(name, 2, 1, {})
    assert isinstance(caught.value, AlreadyExists)
    assert caught.value.status == 409
    assert admin.describe_topic(name).partitions == 1


def test_describe_missing_topic_does_not_create_it(admin, unique_topic_name):
    name = unique_topic_name("typo")
    assert admin.describe_topic(name) is None
    time.sleep(0.2)
    assert name not in admin.list_topics()
    assert admin.describe_topic(name) is None


def test_delete_topic_reports_whether_it_existed(admin, unique_topic_name):
    name = unique_topic_name()
    admin.create_topic(name, 1, 1, {})
    assert admin.delete_topic(name) is True
    assert name not in admin.list_topics()
    assert admin.delete_topic(name) is False
    assert name not in admin.list_topics()


def test_alter_topic_configs_sets_and_resets(admin, unique_topic_name):
    name = unique_topic_name()
    admin.create_topic(name, 1, 1, {"retention.ms": "1000"})

    effective = admin.alter_topic_configs(
        name, {"retention.ms": "5000", "cleanup.policy": "compact"}
    )
    assert effective == {"cleanup.policy": "compact", "retention.ms": "5000"}

    effective = admin.alter_topic_configs(name, {"cleanup.policy": None})
    assert effective == {"retention.ms": "5000"}
    assert admin.describe_topic(name).configs == {"retention.ms": "5000"}


def test_alter_configs_of_missing_topic_raises_and_creates_nothing(admin, unique_topic_name):
    name = unique_topic_name()
    with pytest.raises(TopicNotFound):
        admin.alter_topic_configs(name, {"retention.ms": "5000"})
    assert name not in admin.list_topics()


def test_add_partitions_refused_without_asking_the_embedded_broker():
    # Pointed at a closed port: a call to the broker would fail with BrokerUnavailable.
    closed = f"127.0.0.1:{find_free_port()}"
    admin = KafkaBrokerAdmin(local_client_config(closed), capabilities=EMBEDDED_BROKER)
    assert admin.supports_partition_increase is False
    started = time.monotonic()
    with pytest.raises(PartitionIncreaseUnsupported) as caught:
        admin.add_partitions("ns.any", 8)
    assert time.monotonic() - started < 0.5
    assert isinstance(caught.value, Unsupported)
    assert caught.value.status == 409
    assert "does not support adding partitions" in caught.value.message


def test_add_partitions_detects_broker_without_support(bootstrap_servers, unique_topic_name):
    claims_support = BrokerCapabilities(
        supports_partition_increase=True, reliable_list_offsets=False, reports_config_sources=False
    )
    admin = KafkaBrokerAdmin(
        local_client_config(bootstrap_servers), capabilities=claims_support, timeout_s=5.0
    )
    name = unique_topic_name()
    admin.create_topic(name, 2, 1, {})
    with pytest.raises(PartitionIncreaseUnsupported) as caught:
        admin.add_partitions(name, 4)
    assert caught.value.kafka_code == "_UNSUPPORTED_FEATURE"
    assert admin.describe_topic(name).partitions == 2
    with pytest.raises(TopicNotFound):
        admin.add_partitions(unique_topic_name("missing"), 4)


def test_end_offsets_after_many_batches(admin, bootstrap_servers, unique_topic_name):
    name = unique_topic_name()
    admin.create_topic(name, 1, 1, {})
    produce_batches(bootstrap_servers, name, batches=3, per_batch=100)

    assert admin.end_offsets(name) == {0: 300}
    assert admin.begin_offsets(name) == {0: 0}
    # The broker's own ListOffsets(latest) is the quirk this method avoids: it answers the
    # first offset of the last batch + 1. If this starts failing, the broker got fixed.
    raw = AdminClient(local_client_config(bootstrap_servers))
    tp = TopicPartition(name, 0)
    assert raw.list_offsets({tp: OffsetSpec.latest()})[tp].result(5).offset == 201


def test_end_offsets_per_partition_and_empty(admin, bootstrap_servers, unique_topic_name):
    name = unique_topic_name()
    admin.create_topic(name, 4, 1, {})
    assert admin.end_offsets(name) == {0: 0, 1: 0, 2: 0, 3: 0}
    produce_batches(bootstrap_servers, name, batches=2, per_batch=7, partition=1)
    produce_batches(bootstrap_servers, name, batches=3, per_batch=5, partition=3)
    assert admin.end_offsets(name) == {0: 0, 1: 14, 2: 0, 3: 15}
    # Reading from the start (the fallback for brokers that reject a far offset) agrees.
    assert admin.high_watermarks_from_fetch(name, [0, 1, 2, 3], start_offset=0) == {
        0: 0,
        1: 14,
        2: 0,
        3: 15,
    }


def test_end_offsets_of_missing_topic_raises_and_creates_nothing(admin, unique_topic_name):
    name = unique_topic_name()
    with pytest.raises(TopicNotFound):
        admin.end_offsets(name)
    with pytest.raises(TopicNotFound):
        admin.begin_offsets(name)
    assert name not in admin.list_topics()


def test_end_offsets_of_100k_records_is_fast(admin, bootstrap_servers, unique_topic_name):
    name = unique_topic_name()
    admin.create_topic(name, 1, 1, {})
    producer = Producer({**local_client_config(bootstrap_servers, "producer"), "linger.ms": 20})
    for i in range(100_000):
        producer.produce(name, value=b"x" * 100)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0

    started = time.perf_counter()
    offsets = admin.end_offsets(name)
    elapsed = time.perf_counter() - started
    assert offsets == {0: 100_000}
    assert elapsed < 1.0, f"end_offsets took {elapsed:.3f} s"


def test_delete_consumer_group(admin, bootstrap_servers, unique_topic_name):
    admin.delete_consumer_group("no-such-group-" + unique_topic_name())  # no error

    name = unique_topic_name()
    group = "g-" + name
    admin.create_topic(name, 1, 1, {})
    produce_batches(bootstrap_servers, name, batches=1, per_batch=3)
    consumer = Consumer({**local_client_config(bootstrap_servers, "consumer"), "group.id": group})
    consumer.commit(offsets=[TopicPartition(name, 0, 2)], asynchronous=False)
    assert consumer.committed([TopicPartition(name, 0)], timeout=5)[0].offset == 2
    consumer.close()

    raw = AdminClient(local_client_config(bootstrap_servers))
    groups = {g.group_id for g in raw.list_consumer_groups().result(5).valid}
    assert group in groups
    admin.delete_consumer_group(group)
    groups = {g.group_id for g in raw.list_consumer_groups().result(5).valid}
    assert group not in groups


def test_unreachable_broker_raises_broker_unavailable():
    closed = f"127.0.0.1:{find_free_port()}"
    admin = KafkaBrokerAdmin(local_client_config(closed), timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as caught:
        admin.list_topics()
    assert time.monotonic() - started < 3.0
    assert isinstance(caught.value, Unavailable)
    assert caught.value.status == 503
    with pytest.raises(BrokerUnavailable):
        admin.create_topic("ns.t", 1, 1, {})
