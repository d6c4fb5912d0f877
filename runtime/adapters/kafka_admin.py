"""BrokerAdmin over confluent-kafka's AdminClient, for MSK and for the embedded broker.

Rules this adapter keeps because of the embedded broker (docs/local-broker.md):
- never send a per-topic metadata request: for an unknown topic it *creates* the topic.
  Existence is always checked against the full topic listing first;
- the latest offset reported by ListOffsets is wrong there, so end offsets come from
  the high watermark of a fetch response (a consumer positioned far past the end);
- adding partitions is unsupported there: refused without asking the broker.
Every call is bounded by ``timeout_s`` and raises the errors of ``kafka_errors``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exports untyped
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)
from pydantic import Field

from runtime.adapters.kafka_errors import (
    BrokerError,
    BrokerUnavailable,
    PartitionIncreaseUnsupported,
    TopicNotFound,
    from_exception,
    from_kafka_error,
    kafka_error_of,
)
from runtime.domain.ports import TopicDescription

T = TypeVar("T")

# Far beyond any real offset: the embedded broker answers a fetch there with an empty
# reply that carries the true high watermark (and no OFFSET_OUT_OF_RANGE).
_PROBE_OFFSET = 2**62


@dataclass(frozen=True)
class BrokerCapabilities:
    """What the broker in use can be trusted to do."""

    supports_partition_increase: bool
    # ListOffsets(latest) answers the true end of each partition.
    reliable_list_offsets: bool
    # DescribeConfigs marks topic overrides with source DYNAMIC_TOPIC_CONFIG (the embedded
    # broker returns only the stored overrides, all marked "default").
    reports_config_sources: bool


MSK_BROKER = BrokerCapabilities(
    supports_partition_increase=True, reliable_list_offsets=True, reports_config_sources=True
)
EMBEDDED_BROKER = BrokerCapabilities(
    supports_partition_increase=False, reliable_list_offsets=False, reports_config_sources=False
)


class KafkaTopicDescription(TopicDescription):
    """A topic as the broker sees it; ``leaders`` maps partition id to leader broker id."""

    leaders: dict[int, int] = Field(default_factory=dict)


class KafkaBrokerAdmin:
    """The BrokerAdmin port on a Kafka-protocol broker."""

    def __init__(
        self,
        connection: Mapping[str, Any],
        *,
        capabilities: BrokerCapabilities = EMBEDDED_BROKER,
        timeout_s: float = 10.0,
    ) -> None:
        """``connection``: a config from ``kafka_config`` (``local_client_config`` /
        ``msk_iam_client_config``) for role "admin"."""
        self._connection = dict(connection)
        self.capabilities = capabilities
        self.supports_partition_increase = capabilities.supports_partition_increase
        self.timeout_s = timeout_s
        self._admin = AdminClient({**self._connection, "socket.timeout.ms": int(timeout_s * 1000)})

    # -- topics -------------------------------------------------------------------------

    def list_topics(self) -> set[str]:
        """Names of all topics, internal ones (``__...``) left out."""
        return {name for name in self._full_metadata() if not name.startswith("__")}

    def create_topic(
        self, name: str, partitions: int, replication_factor: int, configs: Mapping[str, str]
    ) -> None:
        """Create a topic; ``TopicAlreadyExists`` if the name is taken (the core decides)."""
        new_topic = NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            config=dict(configs),
        )
        futures = self._admin.create_topics(
            [new_topic], operation_timeout=self.timeout_s, request_timeout=self.timeout_s
        )
        self._result(futures[name], f"creating topic {name}")

    def delete_topic(self, name: str) -> bool:
        """Delete a topic; False if it did not exist."""
        futures = self._admin.delete_topics(
            [name], operation_timeout=self.timeout_s, request_timeout=self.timeout_s
        )
        try:
            self._result(futures[name], f"deleting topic {name}")
        except TopicNotFound:
            return False
        return True

    def describe_topic(self, name: str) -> KafkaTopicDescription | None:
        """Partitions, leaders and config overrides of a topic; None if it does not exist."""
        metadata = self._full_metadata()
        topic = metadata.get(name)
        if topic is None:
            return None
        leaders = {partition_id: part.leader for partition_id, part in topic.partitions.items()}
        return KafkaTopicDescription(
            name=name,
            partitions=len(topic.partitions),
            leaders=dict(sorted(leaders.items())),
            configs=self._topic_configs(name),
        )

    def alter_topic_configs(self, name: str, configs: Mapping[str, str | None]) -> dict[str, str]:
        """Set (``None``: reset to default) topic configs; return the overrides now in effect."""
        self._require_topic(name)
        entries = [
            ConfigEntry(
                key,
                value,
                incremental_operation=(
                    AlterConfigOpType.DELETE if value is None else AlterConfigOpType.SET
                ),
            )
            for key, value in configs.items()
        ]
        resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries)
        futures = self._admin.incremental_alter_configs([resource], request_timeout=self.timeout_s)
        self._result(futures[resource], f"changing configs of topic {name}")
        return self._topic_configs(name)

    def add_partitions(self, name: str, total: int) -> None:
        """Grow a topic to ``total`` partitions (Kafka can only increase)."""
        if not self.supports_partition_increase:
            raise PartitionIncreaseUnsupported(
                f"cannot add partitions to {name}: the broker in use (the embedded local "
                "broker) does not support adding partitions; recreate the topic with the "
                "partition count you need"
            )
        self._require_topic(name)
        futures = self._admin.create_partitions(
            [NewPartitions(name, total)],
            operation_timeout=self.timeout_s,
            request_timeout=self.timeout_s,
        )
        try:
            self._result(futures[name], f"adding partitions to {name}")
        except BrokerError as error:
            if error.kafka_code in ("_UNSUPPORTED_FEATURE", "UNSUPPORTED_VERSION"):
                raise PartitionIncreaseUnsupported(
                    f"cannot add partitions to {name}: the broker does not support it",
                    kafka_code=error.kafka_code,
                ) from error
            raise

    # -- offsets ------------------------------------------------------------------------

    def begin_offsets(self, name: str) -> dict[int, int]:
        """First offset still stored in each partition."""
        partitions = self._partition_ids(name)
        return self._list_offsets(name, partitions, OffsetSpec.earliest())  # type: ignore[no-untyped-call]

    def end_offsets(self, name: str) -> dict[int, int]:
        """Offset the next record of each partition will get (the high watermark)."""
        partitions = self._partition_ids(name)
        if self.capabilities.reliable_list_offsets:
            return self._list_offsets(name, partitions, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        return self.high_watermarks_from_fetch(name, partitions)

    def high_watermarks_from_fetch(
        self, name: str, partitions: list[int], start_offset: int = _PROBE_OFFSET
    ) -> dict[int, int]:
        """High watermarks as reported in fetch responses, read by a group-less consumer.

        Positioned at ``start_offset`` (default: far past the end, so no record is
        transferred). A partition whose fetch fails with an offset error is probed again
        from its beginning. The caller has checked that the topic exists.
        """
        if not partitions:
            return {}
        consumer = Consumer(
            {
                **self._connection,
                # Never joins (assign only) and never commits; a unique id keeps it apart.
                "group.id": f"octopus-offset-probe-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "error",
                "allow.auto.create.topics": False,
                "fetch.wait.max.ms": 10,
                "enable.partition.eof": False,
                "socket.timeout.ms": int(self.timeout_s * 1000),
            }
        )
        try:
            consumer.assign([TopicPartition(name, p, start_offset) for p in partitions])
            found: dict[int, int] = {}
            deadline = time.monotonic() + self.timeout_s
            while len(found) < len(partitions):
                if time.monotonic() >= deadline:
                    raise BrokerUnavailable(
                        f"no fetch response for {name} within {self.timeout_s:.0f} s"
                    )
                message = consumer.poll(0.005)
                error = message.error() if message is not None else None
                if message is not None and error is not None:
                    self._handle_probe_error(consumer, name, message.partition(), error)
                for partition in partitions:
                    if partition in found:
                        continue
                    _low, high = consumer.get_watermark_offsets(
                        TopicPartition(name, partition), cached=True
                    )
                    if high != OFFSET_INVALID and high >= 0:
                        found[partition] = high
            return dict(sorted(found.items()))
        except KafkaException as exc:
            raise from_exception(exc, f"reading end offsets of {name}") from exc
        finally:
            consumer.close()

    @staticmethod
    def _handle_probe_error(
        consumer: Consumer, name: str, partition: int | None, error: KafkaError
    ) -> None:
        code = error.code()
        if code in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET) and (
            partition is not None and partition >= 0
        ):
            # A broker that rejects the far offset: read the watermark from the start.
            consumer.seek(TopicPartition(name, partition, OFFSET_BEGINNING))
            return
        if code in (KafkaError._PARTITION_EOF,):
            return
        raise from_kafka_error(error, f"reading end offsets of {name}")

    def _list_offsets(self, name: str, partitions: list[int], spec: OffsetSpec) -> dict[int, int]:
        if not partitions:
            return {}
        request = {TopicPartition(name, p): spec for p in partitions}
        futures = self._admin.list_offsets(request, request_timeout=self.timeout_s)
        offsets: dict[int, int] = {}
        for topic_partition, future in futures.items():
            info = self._result(future, f"listing offsets of {name}")
            offsets[topic_partition.partition] = info.offset
        return dict(sorted(offsets.items()))

    # -- groups -------------------------------------------------------------------------

    def delete_consumer_group(self, group_id: str) -> None:
        """Delete a group and its committed offsets; no error if it does not exist.

        ``ConsumerGroupActive`` if it still has members.
        """
        futures = self._admin.delete_consumer_groups([group_id], request_timeout=self.timeout_s)
        try:
            self._result(futures[group_id], f"deleting consumer group {group_id}")
        except BrokerError as error:
            if error.kafka_code == "GROUP_ID_NOT_FOUND":
                return
            raise

    def close(self) -> None:
        """Release the client (librdkafka frees it when the last reference goes)."""
        self._admin.poll(0)

    # -- helpers ------------------------------------------------------------------------

    def _full_metadata(self) -> dict[str, Any]:
        """All topics (a metadata request without topic names: never creates one)."""
        try:
            metadata = self._admin.list_topics(timeout=self.timeout_s)
        except KafkaException as exc:
            raise from_exception(exc, "listing topics") from exc
        return dict(metadata.topics)

    def _require_topic(self, name: str) -> Any:
        topic = self._full_metadata().get(name)
        if topic is None:
            raise TopicNotFound(f"topic {name} does not exist on the broker")
        return topic

    def _partition_ids(self, name: str) -> list[int]:
        return sorted(self._require_topic(name).partitions)

    def _topic_configs(self, name: str) -> dict[str, str]:
        resource = ConfigResource(ResourceType.TOPIC, name)
        futures = self._admin.describe_configs([resource], request_timeout=self.timeout_s)
        entries = self._result(futures[resource], f"describing configs of topic {name}")
        configs: dict[str, str] = {}
        for key, entry in entries.items():
            if entry.value is None:
                continue
            if (
                self.capabilities.reports_config_sources
                and entry.source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value
            ):
                continue
            configs[key] = entry.value
        return dict(sorted(configs.items()))

    def _result(self, future: Future[T], action: str) -> T:
        try:
            return future.result(timeout=self.timeout_s + 1.0)
        except KafkaException as exc:
            raise from_exception(exc, action) from exc
        except TimeoutError as exc:
            raise BrokerUnavailable(
                f"Kafka broker did not answer within {self.timeout_s:.0f} s while {action}"
            ) from exc
        except Exception as exc:
            if kafka_error_of(exc) is not None:
                raise from_exception(exc, action) from exc
            raise BrokerError(f"{action}: {exc}") from exc
