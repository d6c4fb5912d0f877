"""RecordProducer and RecordReader against the real embedded broker."""

from __future__ import annotations

import time

import pytest

from runtime.adapters.kafka_admin import KafkaBrokerAdmin
from runtime.adapters.kafka_config import local_client_config
from runtime.adapters.kafka_errors import (
    BrokerUnavailable,
    PartitionNotFound,
    RecordTooLarge,
    TopicNotFound,
)
from runtime.adapters.kafka_records import (
    MAX_BATCH_RECORDS,
    OutgoingRecord,
    RecordProducer,
    RecordReader,
)
from runtime.domain.errors import Unprocessable
from runtime.local.broker import EmbeddedBroker, find_free_port

pytestmark = pytest.mark.broker


@pytest.fixture
def admin(bootstrap_servers):
    admin = KafkaBrokerAdmin(local_client_config(bootstrap_servers), timeout_s=5.0)
    yield admin
    admin.close()


@pytest.fixture
def producer(bootstrap_servers, admin):
    producer = RecordProducer(
        local_client_config(bootstrap_servers, "producer"),
        topic_exists=lambda name: name in admin.list_topics(),
        delivery_timeout_s=5.0,
    )
    yield producer
    producer.close()


@pytest.fixture
def reader(bootstrap_servers, admin):
    def partition_count(name):
        description = admin.describe_topic(name)
        return description.partitions if description else None

    return RecordReader(
        local_client_config(bootstrap_servers, "consumer"), partition_count=partition_count
    )


def test_produce_one_and_read_it_back(admin, producer, reader, unique_topic_name):
    topic = unique_topic_name()
    admin.create_topic(topic, 1, 1, {})
    record = OutgoingRecord(
        key=b"k1",
        value=b'{"x": 1}',
        headers=[("content-type", b"application/json"), ("empty", None)],
        timestamp_ms=1_700_000_000_123,
    )
    delivered = producer.produce(topic, record)
    assert (delivered.partition, delivered.offset) == (0, 0)
    assert delivered.timestamp_ms == 1_700_000_000_123

    records, next_offset, high = reader.read(topic, 0, 0, limit=10, timeout_ms=2000)
    assert (next_offset, high) == (1, 1)
    [fetched] = records
    assert (fetched.offset, fetched.key, fetched.value) == (0, b"k1", b'{"x": 1}')
    assert fetched.timestamp_ms == 1_700_000_000_123
    assert fetched.headers == [("content-type", b"application/json"), ("empty", None)]


def test_batch_of_500_reports_every_record(admin, producer, unique_topic_name):
    topic = unique_topic_name()
    admin.create_topic(topic, 2, 1, {})
    records = [
        OutgoingRecord(key=b"k%d" % (i % 7), value=b"v%d" % i) for i in range(MAX_BATCH_RECORDS)
    ]
    outcomes = producer.produce_batch(topic, records)

    assert len(outcomes) == MAX_BATCH_RECORDS
    assert all(outcome.ok for outcome in outcomes)
    by_partition: dict[int, list[int]] = {}
    for outcome in outcomes:
        by_partition.setdefault(outcome.delivered.partition, []).append(outcome.delivered.offset)
    for offsets in by_partition.values():
        assert sorted(offsets) == list(range(len(offsets)))
    assert admin.end_offsets(topic) == {p: len(o) for p, o in by_partition.items()} | {
        p: 0 for p in (0, 1) if p not in by_partition
    }


def test_batch_reports_a_bad_entry_separately(admin, producer, unique_topic_name):
    topic = unique_topic_name()
    admin.create_topic(topic, 1, 1, {})
    too_big = b"x" * (2 * 1024 * 1024)  # above the client's message.max.bytes (1 MB)
    outcomes = producer.produce_batch(
        topic,
        [OutgoingRecord(value=b"a"), OutgoingRecord(value=too_big), OutgoingRecord(value=b"c")],
    )
    assert outcomes[0].ok and outcomes[2].ok
    assert not outcomes[1].ok
    assert isinstance(outcomes[1].error, RecordTooLarge)
    assert outcomes[1].error.status == 413
    assert admin.end_offsets(topic) == {0: 2}


def test_batch_over_limit_is_refused(admin, producer, unique_topic_name):
    topic = unique_topic_name()
    admin.create_topic(topic, 1, 1, {})
    with pytest.raises(Unprocessable):
        producer.produce_batch(topic, [OutgoingRecord(value=b"x")] * (MAX_BATCH_RECORDS + 1))
    assert admin.end_offsets(topic) == {0: 0}


def test_unknown_topic_is_refused_and_not_created(admin, producer, reader, unique_topic_name):
    topic = unique_topic_name("typo")
    with pytest.raises(TopicNotFound):
        producer.produce(topic, OutgoingRecord(value=b"x"))
    with pytest.raises(TopicNotFound):
        reader.read(topic, 0, 0, limit=1, timeout_ms=100)
    time.sleep(0.2)
    assert topic not in admin.list_topics()


def test_unreachable_broker_means_nothing_written():
    closed = f"127.0.0.1:{find_free_port()}"
    producer = RecordProducer(
        local_client_config(closed, "producer"),
        topic_exists=lambda name: True,
        delivery_timeout_s=1.0,
    )
    started = time.monotonic()
    outcomes = producer.produce_batch("ns.t", [OutgoingRecord(value=b"x")] * 3)
    assert time.monotonic() - started < 3.0
    assert all(isinstance(outcome.error, BrokerUnavailable) for outcome in outcomes)
    assert outcomes[0].error.status == 503
    assert producer.generation == 0  # an unreachable broker is not a wedged producer
    producer.close(timeout_s=0.5)


def test_producer_survives_broker_restart(tmp_path):
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        admin = KafkaBrokerAdmin(local_client_config(broker.bootstrap_servers), timeout_s=5.0)
        producer = RecordProducer(
            local_client_config(broker.bootstrap_servers, "producer"),
            topic_exists=lambda name: name in admin.list_topics(),
            delivery_timeout_s=8.0,
        )
        admin.create_topic("ns.restart", 1, 1, {})
        assert producer.produce("ns.restart", OutgoingRecord(value=b"before")).offset == 0

        broker.restart()  # memory storage: the topic is gone; the fabric recreates it
        admin.create_topic("ns.restart", 1, 1, {})
        started = time.monotonic()
        delivered = producer.produce("ns.restart", OutgoingRecord(value=b"after"))
        assert delivered.offset == 0
        assert producer.generation == 1  # the wedged idempotent producer was replaced
        assert time.monotonic() - started < 4.0
        assert producer.produce("ns.restart", OutgoingRecord(value=b"again")).offset == 1
        assert admin.end_offsets("ns.restart") == {0: 2}
        producer.close()


def test_reader_pages_and_reports_high_watermark(admin, producer, reader, unique_topic_name):
    topic = unique_topic_name()
    admin.create_topic(topic, 2, 1, {})
    producer.produce_batch(topic, [OutgoingRecord(value=b"%d" % i, partition=1) for i in range(25)])

    records, next_offset, high = reader.read(topic, 1, 0, limit=10, timeout_ms=2000)
    assert [r.value for r in records] == [b"%d" % i for i in range(10)]
    assert (next_offset, high) == (10, 25)

    records, next_offset, high = reader.read(topic, 1, 20, limit=10, timeout_ms=2000)
    assert [r.offset for r in records] == [20, 21, 22, 23, 24]
    assert (next_offset, high) == (25, 25)

    started = time.monotonic()
    records, next_offset, high = reader.read(topic, 1, 25, limit=10, timeout_ms=300)
    waited = time.monotonic() - started
    assert (records, next_offset, high) == ([], 25, 25)
    assert 0.25 <= waited < 2.0

    records, next_offset, high = reader.read(topic, 0, 0, limit=10, timeout_ms=200)
    assert (records, next_offset, high) == ([], 0, 0)


def test_reader_rejects_missing_partition(admin, reader, unique_topic_name):
    topic = unique_topic_name()
    admin.create_topic(topic, 1, 1, {})
    with pytest.raises(PartitionNotFound):
        reader.read(topic, 5, 0, limit=1, timeout_ms=2000)
    with pytest.raises(PartitionNotFound):
        reader.read(topic, -1, 0, limit=1, timeout_ms=2000)
    assert admin.describe_topic(topic).partitions == 1
