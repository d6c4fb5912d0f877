"""Producing records through the web service (HTTP produce; Octopus v3 produce)."""

from __future__ import annotations

from runtime.domain.access import require_topic_access
from runtime.domain.deps import Deps
from runtime.domain.errors import Unavailable, Unprocessable
from runtime.domain.models import Access, Topic
from runtime.domain.ports import OutboundRecord, Principal, WriteOutcome
from runtime.domain.topics import TopicService


class RecordService:
    def __init__(self, deps: Deps, topics: TopicService) -> None:
        self._deps = deps
        self._topics = topics

    def writable_topic(self, caller: Principal, namespace: str, topic: str) -> Topic:
        require_topic_access(self._deps.registry, caller, namespace, topic, Access.WRITE)
        return self._topics.require_active(namespace, topic)

    def write(
        self, caller: Principal, namespace: str, topic: str, records: list[OutboundRecord]
    ) -> tuple[Topic, list[WriteOutcome]]:
        """Write records after checking write access; replies come after acks=all."""
        target = self.writable_topic(caller, namespace, topic)
        for index, record in enumerate(records):
            if record.partition is not None and record.partition >= target.partitions:
                raise Unprocessable(
                    f"partition_id {record.partition} does not exist: {namespace}/{topic} has "
                    f"partitions 0..{target.partitions - 1}",
                    details={"field": "partition_id", "index": index},
                )
        if self._deps.records is None:
            raise Unavailable("this deployment has no record writer configured")
        return target, self._deps.records.write(target.kafka_name, records)
