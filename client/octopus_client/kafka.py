"""Kafka clients preconfigured for a fabric: at-least-once producer and consumer wrappers.

Connection settings come from ``GET /v1/fabric``:
- on AWS (``auth == "aws-msk-iam"``): SASL_SSL + OAUTHBEARER, the token signed by
  ``aws_msk_iam_sasl_signer`` from the caller's AWS credentials (a created IAM key,
  or short-lived ones from ``POST /v1/credentials``, refreshed before they expire);
- locally: PLAINTEXT on loopback plus the fabric's ``client_overrides`` (the
  embedded broker delays each group join by half the session timeout, and its
  fetch cost grows with stored batches), applied only there.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
from botocore.credentials import CredentialProvider, Credentials
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from octopus_client.errors import (
    ForbiddenError,
    KafkaClientError,
    NotFoundError,
    UnavailableError,
    UnknownTopicError,
)
from octopus_client.models import KeyCreated
from octopus_client.names import TopicRef, consumer_group_id, prefix_subscription_regex

if TYPE_CHECKING:
    from octopus_client.fabric import Fabric

# Properties librdkafka accepts for one client role only; the fabric's overrides list
# both kinds, and passing the other role's keys makes librdkafka print warnings.
CONSUMER_ONLY = frozenset(
    {
        "group.id",
        "group.instance.id",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "group.protocol",
        "partition.assignment.strategy",
        "max.poll.interval.ms",
        "enable.auto.commit",
        "auto.commit.interval.ms",
        "enable.auto.offset.store",
        "auto.offset.reset",
        "fetch.wait.max.ms",
        "fetch.min.bytes",
        "fetch.max.bytes",
        "max.partition.fetch.bytes",
        "fetch.message.max.bytes",
        "queued.min.messages",
        "queued.max.messages.kbytes",
        "isolation.level",
        "enable.partition.eof",
        "check.crcs",
    }
)
PRODUCER_ONLY = frozenset(
    {
        "acks",
        "request.required.acks",
        "enable.idempotence",
        "linger.ms",
        "queue.buffering.max.ms",
        "queue.buffering.max.messages",
        "queue.buffering.max.kbytes",
        "batch.num.messages",
        "batch.size",
        "compression.type",
        "compression.codec",
        "message.send.max.retries",
        "retries",
        "retry.backoff.ms",
        "delivery.timeout.ms",
        "message.timeout.ms",
        "transactional.id",
        "partitioner",
        "sticky.partitioning.linger.ms",
    }
)

# Refresh short-lived credentials this long before they expire.
_CREDENTIALS_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class KafkaCredentials:
    """AWS credentials for MSK IAM auth (an IAM key, or STS session credentials)."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    expires_at: datetime | None = None

    @classmethod
    def from_key(cls, key: KeyCreated) -> KafkaCredentials:
        """An IAM key from ``POST /v1/keys``: its id is the access key id, its secret the secret."""
        return cls(access_key_id=key.key_id, secret_access_key=key.secret)

    def expiring(self, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        return (now or datetime.now(UTC)) >= self.expires_at - _CREDENTIALS_MARGIN


class CredentialSource:
    """Hands out the caller's AWS credentials, fetching fresh STS ones when needed."""

    def __init__(self, fabric: Fabric, fixed: KafkaCredentials | None) -> None:
        self._fabric = fabric
        self._current = fixed
        self._fixed = fixed is not None
        self._lock = threading.Lock()

    def get(self) -> KafkaCredentials:
        with self._lock:
            if self._current is None or (not self._fixed and self._current.expiring()):
                issued = self._fabric.create_credentials()
                self._current = KafkaCredentials(
                    issued.access_key_id,
                    issued.secret_access_key,
                    issued.session_token,
                    issued.expires_at,
                )
            return self._current


class MskOAuthCallback:
    """confluent-kafka ``oauth_cb``: a signed MSK IAM token from the caller's credentials."""

    def __init__(self, region: str, credentials: Callable[[], KafkaCredentials]) -> None:
        self.region = region
        self.credentials = credentials

    def __call__(self, _oauth_config: str | None) -> tuple[str, float]:
        creds = self.credentials()

        class _Provider(CredentialProvider):
            METHOD = "octopus-fabric"

            def load(self) -> Credentials:
                return Credentials(
                    creds.access_key_id, creds.secret_access_key, creds.session_token
                )

        token, expiry_ms = MSKAuthTokenProvider.generate_auth_token_from_credentials_provider(
            self.region, _Provider()
        )
        return token, expiry_ms / 1000.0


def role_settings(settings: Mapping[str, Any], role: str) -> dict[str, Any]:
    """Drop the keys that belong to the other client role."""
    other = CONSUMER_ONLY if role == "producer" else PRODUCER_ONLY
    return {k: v for k, v in settings.items() if k not in other}


def connection_config(
    fabric: Fabric, overrides: Mapping[str, Any] | None = None, role: str | None = None
) -> dict[str, Any]:
    """librdkafka settings for this fabric; ``overrides`` win over everything."""
    info = fabric.fabric_info()
    conf: dict[str, Any] = {
        "bootstrap.servers": info.bootstrap_servers,
        "security.protocol": info.security_protocol,
        "client.id": "octopus-fabric-client",
    }
    if info.uses_msk_iam:
        source = CredentialSource(fabric, fabric._kafka_credentials)
        conf["security.protocol"] = "SASL_SSL"
        conf["sasl.mechanism"] = "OAUTHBEARER"
        conf["oauth_cb"] = MskOAuthCallback(info.region, source.get)
    elif info.local:
        conf.update(info.client_overrides)
    if overrides:
        conf.update(overrides)
    return role_settings(conf, role) if role else conf


class _TopicDirectory:
    """Resolves topic addresses to Kafka names, confirming with the fabric that they exist.

    Cached per client: a topic that existed stays usable for the client's lifetime.
    """

    def __init__(self, fabric: Fabric) -> None:
        self._fabric = fabric
        self._known: dict[str, str] = {}

    def resolve(self, address: str) -> TopicRef:
        if "/" in address:
            return self._fabric.topic_ref(address)
        # A Kafka name that starts with one of the caller's namespaces is split there
        # (longest first); anything else is a topic in the default namespace.
        me = self._fabric.me()
        for namespace in sorted({*me.namespaces, me.default_namespace}, key=len, reverse=True):
            if address.startswith(f"{namespace}.") and len(address) > len(namespace) + 1:
                return TopicRef(namespace, address[len(namespace) + 1 :])
        return TopicRef(me.default_namespace, address)

    def kafka_name(self, address: str, *, for_write: bool = False) -> str:
        """The topic's Kafka name, once the fabric confirms it exists and we may use it.

        The topic's reply says what the caller may do; a producer on a read-only grant is
        refused here (locally the broker would accept it; on MSK, IAM would refuse later
        and less clearly).
        """
        cache_key = f"{address}\0{'w' if for_write else 'r'}"
        cached = self._known.get(cache_key)
        if cached is not None:
            return cached
        ref = self.resolve(address)
        try:
            detail = self._fabric.get_topic(ref.namespace, ref.topic)
        except NotFoundError as exc:
            raise UnknownTopicError(
                f"topic {ref} does not exist or you have no access to it (the owner creates it "
                f"with `octopus topic create {ref}` and grants access with `octopus grant add`)",
                status=exc.status,
                details={"namespace": ref.namespace, "topic": ref.topic},
            ) from exc
        needed = "write" if for_write else "read"
        if needed not in detail.access:
            raise ForbiddenError(
                f"your grant on {ref} is {detail.access}; {'producing' if for_write else 'reading'}"
                f" needs {needed} access (ask the owner: `octopus grant add`)",
                status=403,
                code="forbidden",
                details={"namespace": ref.namespace, "topic": ref.topic},
            )
        name = detail.kafka_name
        self._known[cache_key] = name
        return name

    def check_channel(self, namespace: str, prefix: str) -> None:
        """Refuse a channel the caller cannot see (404 for a namespace it has no grant in).

        Locally the broker enforces nothing, so without this a stranger's prefix
        subscription would read the channel; on AWS, IAM would refuse it later and less clearly.
        """
        try:
            self._fabric.list_topics(namespace, prefix=prefix, limit=1)
        except NotFoundError as exc:
            raise NotFoundError(
                f"channel {namespace}/{prefix} is not visible to you: namespace {namespace!r} "
                "does not exist or you hold no grant in it",
                status=exc.status,
                code=exc.code,
                details={"namespace": namespace, "prefix": prefix},
            ) from exc


@dataclass
class DeliveryStats:
    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class FabricProducer:
    """An at-least-once producer (``acks=all``, idempotent) that refuses unknown topics.

    Topics are addressed as ``NS/TOPIC``, ``TOPIC`` (default namespace) or a Kafka
    name in one of the caller's namespaces. ``raw`` is the confluent-kafka Producer.
    """

    def __init__(self, fabric: Fabric, **overrides: Any) -> None:
        defaults = {"acks": "all", "enable.idempotence": True}
        conf = connection_config(fabric, {**defaults, **overrides}, role="producer")
        self.raw = Producer(conf)
        self.stats = DeliveryStats()
        self._topics = _TopicDirectory(fabric)
        # The hot path: bound once, not looked up per record (see bench/throughput.py).
        self._raw_produce = self.raw.produce
        self._names: dict[str, str] = {}
        self._on_delivery = self._delivery_counter(self.stats)

    def kafka_topic(self, topic: str) -> str:
        name = self._names.get(topic)
        if name is None:
            name = self._names[topic] = self._topics.kafka_name(topic, for_write=True)
        return name

    @staticmethod
    def _delivery_counter(stats: DeliveryStats) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                stats.delivered += 1
            else:
                stats.failed += 1
                if len(stats.errors) < 20:
                    stats.errors.append(str(err))

        return on_delivery

    def produce(
        self,
        topic: str,
        value: bytes | str | None,
        key: bytes | str | None = None,
        headers: Mapping[str, str | bytes] | Sequence[tuple[str, str | bytes]] | None = None,
        *,
        partition: int | None = None,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        """Queue one record (bytes or str); waits for queue space instead of failing."""
        name = self._names.get(topic)
        if name is None:
            name = self.kafka_topic(topic)
        callback = self._on_delivery
        if on_delivery is not None:
            count = callback

            def callback(err: KafkaError | None, msg: Message) -> None:
                count(err, msg)
                on_delivery(err, msg)

        pairs: list[tuple[str, str | bytes | None]] | None = None
        if headers:
            pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        # Positional: (topic, value, key, partition, callback, on_delivery, timestamp, headers);
        # -1 is librdkafka's "any partition". Keyword parsing costs ~0.3 µs per record.
        where = -1 if partition is None else partition
        try:
            self._raw_produce(name, value, key, where, callback, None, 0, pairs)
        except BufferError:
            while True:
                self.raw.poll(0.05)  # the local queue is full: serve deliveries, then retry
                try:
                    self._raw_produce(name, value, key, where, callback, None, 0, pairs)
                    return
                except BufferError:
                    continue

    def produce_json(
        self,
        topic: str,
        value: Any,
        key: str | bytes | None = None,
        headers: Mapping[str, str | bytes] | Sequence[tuple[str, str | bytes]] | None = None,
        *,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        """Queue ``value`` serialised as compact UTF-8 JSON."""
        payload = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        self.produce(topic, payload, key, headers, on_delivery=on_delivery)

    def poll(self, timeout: float = 0.0) -> int:
        return int(self.raw.poll(timeout))

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still undelivered."""
        return int(self.raw.flush(timeout))

    def __len__(self) -> int:
        return len(self.raw)

    def close(self, timeout: float = 30.0) -> None:
        remaining = self.flush(timeout)
        if remaining:
            raise KafkaClientError(
                f"{remaining} records were not delivered within {timeout}s", code="undelivered"
            )

    def __enter__(self) -> FabricProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


_UNSET: Any = object()


class ConsumedRecord:
    """A consumed record. ``value`` is JSON-decoded when the bytes are JSON, else UTF-8
    text, else the bytes; ``is_json`` says which. Decoding (value, key, timestamp,
    headers) happens on first access, so records you only count or route by topic,
    partition and offset cost no parsing. ``message`` is the confluent-kafka Message.
    """

    __slots__ = ("_headers", "_is_json", "_key", "_timestamp", "_value", "message")

    def __init__(self, message: Message) -> None:
        # The hot path of every consumer: store the message, decode nothing yet.
        self.message = message
        self._value: Any = _UNSET
        self._is_json = False
        self._key: Any = _UNSET
        self._timestamp: Any = _UNSET
        self._headers: Any = _UNSET

    @property
    def topic(self) -> str:
        return self.message.topic() or ""

    @property
    def partition(self) -> int:
        return self.message.partition() or 0

    @property
    def offset(self) -> int:
        return self.message.offset() or 0

    @property
    def raw_value(self) -> bytes | None:
        return self.message.value()

    def _decode_value(self) -> None:
        raw = self.message.value()
        if raw is None:
            self._value = None
            return
        try:
            self._value = json.loads(raw)
            self._is_json = True
        except ValueError:
            self._value = _decode_text(raw)

    @property
    def value(self) -> Any:
        if self._value is _UNSET:
            self._decode_value()
        return self._value

    @property
    def is_json(self) -> bool:
        if self._value is _UNSET:
            self._decode_value()
        return self._is_json

    @property
    def key(self) -> str | bytes | None:
        if self._key is _UNSET:
            self._key = _decode_text(self.message.key())
        return self._key  # type: ignore[no-any-return]

    @property
    def timestamp(self) -> datetime | None:
        if self._timestamp is _UNSET:
            ts_type, ts_ms = self.message.timestamp()
            self._timestamp = (
                datetime.fromtimestamp(ts_ms / 1000, UTC) if ts_type and ts_ms >= 0 else None
            )
        return self._timestamp  # type: ignore[no-any-return]

    @property
    def headers(self) -> list[tuple[str, bytes | None]]:
        if self._headers is _UNSET:
            self._headers = _header_list(self.message.headers())
        return self._headers  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return (
            f"ConsumedRecord(topic={self.topic!r}, partition={self.partition}, "
            f"offset={self.offset}, key={self.key!r}, value={self.value!r})"
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict (bytes become base64 strings)."""

        def text(data: str | bytes | None) -> str | None:
            if isinstance(data, bytes):
                return base64.b64encode(data).decode("ascii")
            return data

        value = self.value
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "key": text(self.key),
            "value": text(value) if isinstance(value, bytes) else value,
            "headers": {name: text(data) for name, data in self.headers},
        }


def _decode_text(data: bytes | None) -> str | bytes | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def _header_list(headers: Any) -> list[tuple[str, bytes | None]]:
    # A consumed message carries a list of (name, bytes) pairs; stay lenient anyway.
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or [])
    return [(str(n), v.encode() if isinstance(v, str) else v) for n, v in pairs]


def decode_message(msg: Message) -> ConsumedRecord:
    return ConsumedRecord(msg)


class FabricConsumer:
    """An at-least-once consumer: manual commits, group id inside the caller's namespace.

    ``raw`` is the confluent-kafka Consumer. Iterate it (or call :meth:`poll_json`)
    for decoded records; call :meth:`commit` after processing them.
    """

    def __init__(self, fabric: Fabric, group: str | None = None, **overrides: Any) -> None:
        self.group_id = consumer_group_id(
            fabric.default_namespace, group or f"octopus-{uuid.uuid4().hex[:12]}"
        )
        defaults = {
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # Offsets are stored for commit as records are handed out (see records()),
            # not when librdkafka returns a batch: a commit never covers unseen records.
            "enable.auto.offset.store": False,
        }
        conf = connection_config(fabric, {**defaults, **overrides}, role="consumer")
        conf["group.id"] = self.group_id  # the namespace prefix is not overridable
        self.raw = Consumer(conf)
        self._topics = _TopicDirectory(fabric)
        self._closed = False
        self._store = str(conf.get("enable.auto.offset.store")).lower() not in ("true", "1")

    def subscribe(self, topics: str | Sequence[str]) -> list[str]:
        """Subscribe to topics (addresses); each is checked with the fabric first."""
        addresses = [topics] if isinstance(topics, str) else list(topics)
        names = [self._topics.kafka_name(t) for t in addresses]
        self.raw.subscribe(names)
        return names

    def subscribe_prefix(self, namespace: str, prefix: str) -> str:
        """Subscribe to a channel subtree: ``prefix`` and every topic below it, new ones too.

        Uses a regex subscription (``^ns\\.prefix(\\..+)?$``); the broker reports topics
        created later within a few seconds.
        """
        self._topics.check_channel(namespace, prefix)
        pattern = prefix_subscription_regex(namespace, prefix)
        self.raw.subscribe([pattern])
        return pattern

    @staticmethod
    def _check(err: KafkaError) -> None:
        """Raise for errors that end consumption; the rest (EOF, retriable) are skipped."""
        if err.code() == KafkaError._PARTITION_EOF:
            return
        if err.fatal() or not err.retriable():
            raise KafkaClientError(str(err), code=err.name().lower().lstrip("_"))

    def poll_json(self, timeout: float = 1.0) -> ConsumedRecord | None:
        """One record (decoded on access), or ``None`` if none arrived within ``timeout`` s."""
        msg = self.raw.poll(timeout)
        if msg is None:
            return None
        err = msg.error()
        if err is not None:
            self._check(err)
            return None
        if self._store:
            self._store_through([msg], 1)
        return ConsumedRecord(msg)

    def _store_through(self, batch: Sequence[Message], count: int) -> None:
        """Store (for the next commit) the offsets after the first ``count`` messages."""
        # Scan backwards: the first message seen per partition is its last one handed out.
        # Stop once every partition this consumer holds is found (one step when a batch
        # comes from one partition), so storing costs almost nothing per record.
        last: dict[tuple[str, int], int] = {}
        held = len(self.raw.assignment())
        for index in range(count - 1, -1, -1):
            msg = batch[index]
            if msg.error() is not None:
                continue
            slot = (msg.topic() or "", msg.partition() or 0)
            if slot not in last:
                last[slot] = msg.offset() or 0
                if held and len(last) >= held:
                    break
        if not last:
            return
        positions = [TopicPartition(t, p, offset + 1) for (t, p), offset in last.items()]
        # A partition revoked meanwhile refuses: its new owner re-reads from the last commit.
        with contextlib.suppress(KafkaException):
            self.raw.store_offsets(offsets=positions)

    def records(
        self,
        *,
        limit: int | None = None,
        idle_timeout: float | None = None,
        poll_timeout: float = 0.5,
        batch_size: int = 500,
    ) -> Iterator[ConsumedRecord]:
        """Yield records until ``limit`` are seen or nothing arrives for ``idle_timeout`` s.

        Fetches up to ``batch_size`` messages per call (``Consumer.consume``: about 1 µs
        less per record than one ``poll`` each) but stores offsets for commit only up
        to the records yielded, also when you break out of the loop: a ``commit()``
        afterwards never covers records you did not see.
        """
        consume = self.raw.consume  # the hot loop: no per-record attribute lookups
        store = self._store
        check = self._check
        seen = 0
        idle_since: float | None = time.monotonic()
        while not self._closed and (limit is None or seen < limit):
            want = batch_size if limit is None else min(batch_size, limit - seen)
            batch = consume(want, poll_timeout)
            before, handed = seen, 0
            try:
                for msg in batch:
                    handed += 1
                    err = msg.error()
                    if err is None:
                        seen += 1
                        yield ConsumedRecord(msg)
                    else:
                        check(err)
            finally:
                if store and handed:
                    self._store_through(batch, handed)
            if seen > before:
                idle_since = None
            elif idle_timeout is not None:
                now = time.monotonic()
                if idle_since is None:
                    idle_since = now
                elif now - idle_since >= idle_timeout:
                    return

    def __iter__(self) -> Iterator[ConsumedRecord]:
        return self.records()

    def commit(self, record: ConsumedRecord | None = None, *, asynchronous: bool = False) -> None:
        """Commit everything consumed so far, or up to and including ``record``."""
        try:
            if record is None:
                if asynchronous:
                    self.raw.commit(asynchronous=True)
                else:
                    self.raw.commit(asynchronous=False)
                return
            position = [TopicPartition(record.topic, record.partition, record.offset + 1)]
            if asynchronous:
                self.raw.commit(offsets=position, asynchronous=True)
            else:
                self.raw.commit(offsets=position, asynchronous=False)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError._NO_OFFSET:
                return  # nothing consumed since the last commit
            raise KafkaClientError(str(exc), code="commit_failed") from exc

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.raw.close()

    def __enter__(self) -> FabricConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until_ready(
    fabric: Fabric,
    timeout: float = 60.0,
    *,
    first_delay: float = 0.25,
    max_delay: float = 8.0,
) -> float:
    """Retry a metadata request with fresh clients until the broker accepts us.

    On AWS a new IAM key takes a while to be accepted by MSK; each attempt gets a
    new client (librdkafka caches a failed authentication) and a longer wait.
    Locally the first attempt succeeds. No fixed sleeps: the wait ends as soon as
    a metadata call succeeds.
    """
    start = time.monotonic()
    deadline = start + timeout
    delay = first_delay
    last_error = "no attempt made"
    conf = {
        k: v for k, v in connection_config(fabric).items() if k not in CONSUMER_ONLY | PRODUCER_ONLY
    }
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UnavailableError(
                f"the broker did not accept this client within {timeout:.0f}s: {last_error}",
                code="broker_not_ready",
            )
        attempt_timeout = max(0.5, min(remaining, max(delay * 4, 2.0)))
        try:
            AdminClient(conf).list_topics(timeout=attempt_timeout)
            return time.monotonic() - start
        except KafkaException as exc:
            last_error = str(exc.args[0] if exc.args else exc)
        pause = min(delay, max(0.0, deadline - time.monotonic()))
        if pause > 0:
            time.sleep(pause)  # backoff between attempts, bounded by the deadline
        delay = min(delay * 2, max_delay)
