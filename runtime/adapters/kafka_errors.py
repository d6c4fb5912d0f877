"""Errors of the Kafka adapters, each already carrying its HTTP meaning.

Every class derives from ``BrokerError`` (itself a ``FabricError``), and the ones
with a domain twin also derive from it (``BrokerUnavailable`` is an ``Unavailable``,
``TopicAlreadyExists`` an ``AlreadyExists``...), so the core and the web service can
catch either. ``from_kafka_error`` turns a librdkafka error into the right class.
"""

from __future__ import annotations

from typing import Any, ClassVar

from confluent_kafka import KafkaError

from runtime.domain.errors import (
    AlreadyExists,
    Conflict,
    FabricError,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    Unprocessable,
    Unsupported,
)


class BrokerError(FabricError):
    """The broker refused or failed an operation (base of every Kafka adapter error)."""

    status: ClassVar[int] = 502
    code: ClassVar[str] = "broker_error"

    def __init__(
        self,
        message: str,
        *,
        kafka_code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        merged = dict(details or {})
        if kafka_code is not None:
            merged.setdefault("kafka_error", kafka_code)
        super().__init__(message, details=merged)
        self.kafka_code = kafka_code


class BrokerUnavailable(BrokerError, Unavailable):
    """The broker could not be reached in time; nothing was written (HTTP 503, retry later)."""

    status: ClassVar[int] = 503
    code: ClassVar[str] = "broker_unavailable"


class DeliveryOutcomeUnknown(BrokerError):
    """A record was sent but no acknowledgement came: it may or may not be stored.

    Not a 503 on purpose: clients retry 503 blindly, which could duplicate the record.
    """

    status: ClassVar[int] = 504
    code: ClassVar[str] = "delivery_outcome_unknown"


class TopicAlreadyExists(BrokerError, AlreadyExists):
    status: ClassVar[int] = 409
    code: ClassVar[str] = "topic_already_exists"


class TopicNotFound(BrokerError, NotFound):
    status: ClassVar[int] = 404
    code: ClassVar[str] = "topic_not_found"


class PartitionIncreaseUnsupported(BrokerError, Unsupported):
    """The broker in use cannot add partitions (the embedded broker cannot)."""

    status: ClassVar[int] = 409
    code: ClassVar[str] = "unsupported_by_broker"


class InvalidTopicRequest(BrokerError, Unprocessable):
    """The broker rejected a topic setting (config value, partition count, replication)."""

    status: ClassVar[int] = 422
    code: ClassVar[str] = "invalid_topic_request"


class RecordTooLarge(BrokerError, PayloadTooLarge):
    status: ClassVar[int] = 413
    code: ClassVar[str] = "record_too_large"


class PartitionNotFound(BrokerError, NotFound):
    status: ClassVar[int] = 404
    code: ClassVar[str] = "partition_not_found"


class OffsetOutOfRange(BrokerError, Unprocessable):
    """The requested offset is outside the stored range of the partition."""

    status: ClassVar[int] = 422
    code: ClassVar[str] = "offset_out_of_range"


class ConsumerGroupActive(BrokerError, Conflict):
    """A consumer group still has members and cannot be deleted."""

    status: ClassVar[int] = 409
    code: ClassVar[str] = "consumer_group_active"


# Errors that mean "the broker was not reached / did not answer in time".
_UNAVAILABLE_CODES = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._MSG_TIMED_OUT,
        KafkaError._RESOLVE,
        KafkaError._WAIT_COORD,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.BROKER_NOT_AVAILABLE,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_CONTROLLER,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    }
)
_INVALID_TOPIC_CODES = frozenset(
    {
        KafkaError.INVALID_CONFIG,
        KafkaError.INVALID_PARTITIONS,
        KafkaError.INVALID_REPLICATION_FACTOR,
        KafkaError.INVALID_REPLICA_ASSIGNMENT,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError.POLICY_VIOLATION,
        KafkaError._INVALID_ARG,
    }
)
_TOO_LARGE_CODES = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})
_UNSUPPORTED_CODES = frozenset({KafkaError._UNSUPPORTED_FEATURE, KafkaError.UNSUPPORTED_VERSION})


def kafka_error_of(exc: BaseException) -> KafkaError | None:
    """The ``KafkaError`` inside a ``KafkaException`` (or ``None``)."""
    if exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def from_kafka_error(error: KafkaError, action: str) -> BrokerError:
    """Translate a librdkafka error raised while doing ``action`` into an adapter error."""
    code = error.code()
    text = f"{action}: {error.str()}"
    name = error.name()
    if code in _UNAVAILABLE_CODES:
        return BrokerUnavailable(f"Kafka broker unavailable while {text}", kafka_code=name)
    if code == KafkaError.TOPIC_ALREADY_EXISTS:
        return TopicAlreadyExists(text, kafka_code=name)
    if code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
        return TopicNotFound(text, kafka_code=name)
    if code in (KafkaError._UNKNOWN_PARTITION,):
        return PartitionNotFound(text, kafka_code=name)
    if code in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET):
        return OffsetOutOfRange(text, kafka_code=name)
    if code in _INVALID_TOPIC_CODES:
        return InvalidTopicRequest(text, kafka_code=name)
    if code in _TOO_LARGE_CODES:
        return RecordTooLarge(text, kafka_code=name)
    if code == KafkaError.NON_EMPTY_GROUP:
        return ConsumerGroupActive(text, kafka_code=name)
    if code in _UNSUPPORTED_CODES:
        return BrokerError(f"the broker does not support this: {text}", kafka_code=name)
    return BrokerError(text, kafka_code=name)


def from_exception(exc: BaseException, action: str) -> BrokerError:
    """Translate whatever a confluent-kafka call raised into an adapter error."""
    if isinstance(exc, BrokerError):
        return exc
    error = kafka_error_of(exc)
    if error is not None:
        return from_kafka_error(error, action)
    if isinstance(exc, TimeoutError):
        return BrokerUnavailable(f"Kafka broker did not answer in time while {action}")
    return BrokerError(f"{action}: {exc}")
