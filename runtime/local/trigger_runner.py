"""The local trigger runner: each enabled trigger as a consumer on the embedded broker.

``python -m runtime.local.trigger_runner`` (started by ``octopus local up``'s supervisor, with
``OCTOPUS_SETTINGS`` in the environment). Every ``REFRESH_S`` it reads the registry and starts,
restarts (changed settings or code) or stops one worker thread per trigger.

A worker reads the trigger's topic under the consumer group ``<owner's default
namespace>.trigger-<id>`` (offsets committed to the broker; partitions assigned directly, so
a restarted runner resumes at once without waiting out a dead member's session) and hands
each batch to the same code Lambda runs:

1. the batch becomes Lambda's MSK event (``build_msk_event``) after the trigger's filters
   selected the records (``compile_filter_criteria(...).select``; on AWS the event source
   mapping filters before invoking);
2. webhook triggers: the template function's own processing (``WebhookTriggerApp.deliver``:
   ``process_records`` + ``WebhookDeliverer``, dead letters for permanent failures);
   function triggers: the user's handler in a subprocess (``function_host``) with the
   timeout and memory caps, its output kept as the trigger's logs;
3. records that came back retryable are retried with exponential backoff up to the
   trigger's ``max_retries``, then dead-lettered with the reason;
4. offsets are committed only up to the first record neither delivered, filtered out nor
   dead-lettered (``BatchOutcome.commit_positions``): at least once, never lost.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from types import FrameType
from typing import Any, Final

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from runtime.adapters.kafka_admin import EMBEDDED_BROKER, KafkaBrokerAdmin
from runtime.adapters.kafka_config import consumer_defaults, local_client_config
from runtime.adapters.local.local_triggers import (
    Deployment,
    LocalTriggerStore,
    config_fingerprint,
)
from runtime.adapters.local.sqlite_registry import SqliteRegistry
from runtime.config import RuntimeSettings
from runtime.domain.access import topic_access
from runtime.domain.models import Access, TopicState, Trigger, TriggerState
from runtime.domain.ports import Principal
from runtime.domain.triggers import TriggerSpec, spec_of
from runtime.handlers.webhook_trigger import WebhookTriggerApp, WebhookTriggerSettings
from runtime.local.function_host import FunctionHost
from runtime.triggers.batch import (
    BatchOutcome,
    FailureKind,
    RecordFailure,
    dead_letter_for,
    process_batch,
)
from runtime.triggers.event_shape import KafkaRecord, build_msk_event
from runtime.triggers.filters import CompiledFilters, compile_filter_criteria
from runtime.triggers.webhook import (
    DeliveryResult,
    RetryPolicy,
    WebhookConfig,
    WebhookDeliverer,
)

logger = logging.getLogger("octopus.trigger_runner")

REFRESH_S: Final = 0.5
# The embedded broker answers a fetch only when fetch.wait.max.ms has passed, even if a
# record arrived meanwhile (measured: p50 produce->poll 42 ms at 100 ms, 17 ms at 50 ms,
# 1 ms at 10 ms). 20 ms keeps latency low at ~50 idle fetches/s per trigger.
FETCH_WAIT_MS: Final = int(os.environ.get("OCTOPUS_TRIGGER_FETCH_WAIT_MS", "20"))
POLL_S: Final = 0.1
RETRY_BASE_S: Final = 0.5
RETRY_MAX_S: Final = 30.0
SETUP_RETRY_MAX_S: Final = 10.0
STOP_JOIN_S: Final = 5.0


def _now_ms() -> int:
    return int(time.time() * 1000)


def event_source_arn(settings: RuntimeSettings) -> str:
    """A stand-in for the MSK cluster ARN Lambda puts in ``eventSourceArn``."""
    return (
        settings.cluster_arn
        or f"arn:local:kafka:local:000000000000:cluster/{settings.cluster_name}/local"
    )


def consumer_config(
    settings: RuntimeSettings, group_id: str, starting_position: str
) -> dict[str, Any]:
    return {
        **local_client_config(settings.runtime_bootstrap_servers, "consumer"),
        **consumer_defaults(),
        "group.id": group_id,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "latest" if starting_position == "LATEST" else "earliest",
        "allow.auto.create.topics": False,
        "enable.partition.eof": False,
        "fetch.wait.max.ms": FETCH_WAIT_MS,
        "log_level": 3,
    }


def record_of(message: Message) -> KafkaRecord:
    timestamp_type, timestamp = message.timestamp()
    headers = message.headers() or []
    return KafkaRecord(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        timestamp_ms=timestamp if timestamp is not None and timestamp >= 0 else _now_ms(),
        key=message.key(),
        value=message.value(),
        headers=tuple((str(h[0]), _header_bytes(h[1])) for h in headers),
        timestamp_type="LOG_APPEND_TIME" if timestamp_type == 2 else "CREATE_TIME",
    )


def _header_bytes(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode()


def _key(record: KafkaRecord) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset


# ------------------------------------------------------------------------------ executors


Executor = Callable[[Sequence[KafkaRecord]], tuple[BatchOutcome, list[KafkaRecord]]]


class LocalWebhookApp(WebhookTriggerApp):
    """The webhook template function's processing, with the local secret and dead letters."""

    def __init__(
        self,
        settings: WebhookTriggerSettings,
        *,
        secret: str | None,
        store: LocalTriggerStore,
        sleep: Callable[[float], None],
    ) -> None:
        super().__init__(settings)
        self._store = store
        self._local_deliverer = WebhookDeliverer(
            WebhookConfig(
                url=settings.url,
                secret=secret,
                static_headers=settings.static_headers,
                retry=settings.retry,
                allow_private=settings.allow_private,
                trigger_id=settings.trigger_id,
            ),
            sleep=sleep,
        )

    def _current_deliverer(self) -> WebhookDeliverer:
        return self._local_deliverer

    def _dead_letter(self, failure: RecordFailure) -> bool:
        try:
            self._store.add_dead_letters(
                [dead_letter_for(failure, trigger_id=self.settings.trigger_id)]
            )
        except Exception:  # not written: the record stays unsettled and comes back
            logger.exception("could not store a dead letter for %s", self.settings.trigger_id)
            return False
        return True

    def close(self) -> None:
        self._local_deliverer.close()


def webhook_executor(
    trigger: Trigger,
    spec: TriggerSpec,
    deployment: Deployment,
    store: LocalTriggerStore,
    settings: RuntimeSettings,
    sleep: Callable[[float], None],
) -> tuple[Executor, Callable[[], None]]:
    assert spec.webhook is not None
    app = LocalWebhookApp(
        WebhookTriggerSettings(
            url=spec.webhook.url,
            static_headers=dict(spec.webhook.headers),
            trigger_id=trigger.trigger_id,
            retry=RetryPolicy(),
            allow_private=True,
        ),
        secret=deployment.secret,
        store=store,
        sleep=sleep,
    )
    arn = event_source_arn(settings)

    def run(records: Sequence[KafkaRecord]) -> tuple[BatchOutcome, list[KafkaRecord]]:
        event = build_msk_event(
            records, event_source_arn=arn, bootstrap_servers=settings.bootstrap_servers
        )
        outcome, unsettled = app.deliver(event)
        dead = [f.record for f in outcome.permanent if _key(f.record) not in unsettled]
        return outcome, dead

    return run, app.close


def function_executor(
    trigger: Trigger,
    spec: TriggerSpec,
    deployment: Deployment,
    store: LocalTriggerStore,
    settings: RuntimeSettings,
) -> tuple[Executor, Callable[[], None]]:
    assert spec.function is not None
    if deployment.code_dir is None:
        raise RuntimeError("the function's code is missing from the local deployment")
    host = FunctionHost(
        trigger_id=trigger.trigger_id,
        function=spec.function,
        code_dir=deployment.code_dir,
        log=lambda lines: store.add_logs(trigger.trigger_id, lines),
    )
    arn = event_source_arn(settings)

    def invoke(records: Sequence[KafkaRecord]) -> DeliveryResult:
        event = build_msk_event(
            records, event_source_arn=arn, bootstrap_servers=settings.bootstrap_servers
        )
        run = host.invoke(event)
        # A function error or timeout fails the whole batch, as Lambda retries it.
        return DeliveryResult(run.ok, False, 1, None, run.error or "")

    def run(records: Sequence[KafkaRecord]) -> tuple[BatchOutcome, list[KafkaRecord]]:
        return process_batch(records, invoke), []

    return run, lambda: None


# -------------------------------------------------------------------------------- worker


@dataclass
class Settled:
    delivered: list[KafkaRecord]
    dead_lettered: list[KafkaRecord]
    unsettled: list[KafkaRecord]
    retried: bool
    last_error: str | None


class TriggerWorker(threading.Thread):
    """Consumes one trigger's topic and delivers its batches until stopped."""

    def __init__(
        self,
        trigger: Trigger,
        deployment: Deployment,
        *,
        settings: RuntimeSettings,
        store: LocalTriggerStore,
        admin: KafkaBrokerAdmin,
    ) -> None:
        super().__init__(name=f"trigger-{trigger.trigger_id}", daemon=True)
        self.trigger = trigger
        self.spec = spec_of(trigger)
        self.fingerprint = config_fingerprint(trigger)
        self.deployment = deployment
        self.settings = settings
        self.store = store
        self.admin = admin
        self.filters: CompiledFilters = compile_filter_criteria(self.spec.filter_criteria())
        self._stop_event = threading.Event()
        self._reported: tuple[TriggerState, str | None] | None = None
        ts = self.spec.starting_timestamp
        self._skip_before_ms = (
            int(ts.replace(tzinfo=ts.tzinfo or UTC).timestamp() * 1000)
            if self.spec.starting_position == "AT_TIMESTAMP" and ts is not None
            else None
        )

    # ---- lifecycle --------------------------------------------------------------------

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def _sleep(self, seconds: float) -> None:
        self._stop_event.wait(seconds)

    def report(self, state: TriggerState, last_error: str | None = None) -> None:
        if self._reported == (state, last_error):
            return
        try:
            self.store.set_status(self.trigger.trigger_id, self.fingerprint, state, last_error)
            self._reported = (state, last_error)
        except Exception:
            logger.exception("could not report the state of %s", self.trigger.trigger_id)

    def log(self, message: str) -> None:
        try:
            self.store.log(self.trigger.trigger_id, message)
        except Exception:
            logger.exception("could not write a log line for %s", self.trigger.trigger_id)

    def run(self) -> None:
        failures = 0
        while not self.stopping:
            try:
                self._run_once()
                return
            except Exception as exc:
                failures += 1
                message = f"{type(exc).__name__}: {exc}"
                logger.exception("trigger %s failed", self.trigger.trigger_id)
                self.report(TriggerState.FAILING, message)
                self.log(f"[ERROR] runner: {message}")
                self._sleep(min(SETUP_RETRY_MAX_S, RETRY_BASE_S * 2**failures))

    def _executor(self) -> tuple[Executor, Callable[[], None]]:
        if self.trigger.kind == "webhook":
            return webhook_executor(
                self.trigger, self.spec, self.deployment, self.store, self.settings, self._sleep
            )
        return function_executor(
            self.trigger, self.spec, self.deployment, self.store, self.settings
        )

    def _run_once(self) -> None:
        executor, close_executor = self._executor()
        consumer = Consumer(
            consumer_config(self.settings, self.spec.consumer_group, self.spec.starting_position)
        )
        try:
            self._position(consumer)
            self.report(TriggerState.ACTIVE)
            self.log(f"consuming {self.trigger.kafka_topic} as group {self.spec.consumer_group}")
            while not self.stopping:
                records = self._next_batch(consumer)
                if records:
                    self._handle(consumer, records, executor)
        finally:
            close_executor()
            consumer.close()

    def _position(self, consumer: Consumer) -> None:
        """Assign every partition at its committed offset, or at the starting position."""
        topic = self.trigger.kafka_topic
        metadata = consumer.list_topics(topic, timeout=10)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            raise RuntimeError(f"topic {topic} is not available on the broker")
        partitions = sorted(described.partitions)
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        start: dict[int, int] = {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
        missing = [p for p in partitions if p not in start]
        if missing:
            if self.spec.starting_position == "LATEST":
                # The embedded broker's ListOffsets(latest) is wrong; its admin adapter finds the
                # end from fetch high watermarks. Commit it so a restart resumes there.
                ends = self.admin.end_offsets(topic)
                fresh = {p: ends.get(p, 0) for p in missing}
                consumer.commit(
                    offsets=[TopicPartition(topic, p, o) for p, o in fresh.items()],
                    asynchronous=False,
                )
                start.update(fresh)
            else:
                start.update({p: OFFSET_BEGINNING for p in missing})
        consumer.assign([TopicPartition(topic, p, start[p]) for p in partitions])

    def _next_batch(self, consumer: Consumer) -> list[KafkaRecord]:
        """Up to ``batch_size`` records: at once what is there, or within the batching window."""
        first = consumer.poll(POLL_S)
        if first is None:
            return []
        messages = [first]
        window = float(self.spec.batching_window_seconds)
        deadline = time.monotonic() + window
        while len(messages) < self.spec.batch_size and not self.stopping:
            remaining = deadline - time.monotonic()
            more = consumer.consume(
                self.spec.batch_size - len(messages), timeout=max(0.0, min(remaining, POLL_S))
            )
            messages.extend(more)
            if remaining <= 0 and not more:
                break
            if window == 0:
                break
        records: list[KafkaRecord] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise RuntimeError(f"consumer failed: {error.str()}")
                if error.code() != KafkaError._PARTITION_EOF:
                    logger.warning("consumer error on %s: %s", self.trigger.trigger_id, error.str())
                continue
            records.append(record_of(message))
        return records

    def _wanted(self, record: KafkaRecord) -> bool:
        if self._skip_before_ms is not None and record.timestamp_ms < self._skip_before_ms:
            return False
        return self.filters.matches(record)

    def _handle(self, consumer: Consumer, records: list[KafkaRecord], executor: Executor) -> None:
        selected = [r for r in records if self._wanted(r)]
        keys = {_key(r) for r in selected}
        filtered_out = [r for r in records if _key(r) not in keys]
        settled = self._settle(selected, executor) if selected else Settled([], [], [], False, None)
        outcome = BatchOutcome(tuple(records), tuple(settled.delivered + filtered_out), ())
        positions = outcome.commit_positions(settled.dead_lettered)
        if positions:
            consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in positions.items()],
                asynchronous=False,
            )
        if settled.unsettled:
            # Stopping mid-retry: what is not committed is read again by the next worker.
            return
        # The last error stays visible until a batch goes through without one.
        self.report(TriggerState.ACTIVE, settled.last_error)

    def _settle(self, records: list[KafkaRecord], executor: Executor) -> Settled:
        """Deliver until every record is delivered or dead-lettered (or the worker stops)."""
        delivered: list[KafkaRecord] = []
        dead: list[KafkaRecord] = []
        attempts: dict[tuple[str, int, int], int] = {}
        pending = list(records)
        retried = False
        last_error: str | None = None
        round_number = 0
        while pending:
            outcome, dead_now = executor(pending)
            delivered.extend(outcome.delivered)
            dead.extend(dead_now)
            for failure in outcome.permanent:
                last_error = (
                    f"dead-lettered {failure.record.partition_key}@"
                    f"{failure.record.offset}: {failure.reason}"
                )
                self.log(f"[WARN] {last_error}")
            retry: list[KafkaRecord] = []
            give_up: list[RecordFailure] = []
            for failure in outcome.retryable:
                key = _key(failure.record)
                if not failure.reason.startswith("not attempted"):
                    attempts[key] = attempts.get(key, 0) + 1
                    last_error = failure.reason
                if attempts.get(key, 0) > self.spec.max_retries:
                    give_up.append(failure)
                else:
                    retry.append(failure.record)
            if give_up:
                dead.extend(self._dead_letter_exhausted(give_up, attempts))
            if not retry:
                break
            if self.stopping:
                return Settled(delivered, dead, retry, True, last_error)
            retried = True
            round_number += 1
            self.report(TriggerState.FAILING, last_error)
            delay = min(RETRY_MAX_S, RETRY_BASE_S * 2 ** (round_number - 1))
            self._sleep(random.uniform(delay / 2, delay))
            if self.stopping:
                return Settled(delivered, dead, retry, True, last_error)
            pending = retry
        return Settled(delivered, dead, [], retried, last_error)

    def _dead_letter_exhausted(
        self, failures: list[RecordFailure], attempts: dict[tuple[str, int, int], int]
    ) -> list[KafkaRecord]:
        letters = []
        for failure in failures:
            tries = attempts.get(_key(failure.record), 0)
            exhausted = RecordFailure(
                failure.record,
                FailureKind.PERMANENT,
                f"gave up after {tries} tries (max_retries {self.spec.max_retries}): "
                f"{failure.reason}",
                failure.status,
                failure.attempts,
            )
            letters.append(dead_letter_for(exhausted, trigger_id=self.trigger.trigger_id))
            self.log(
                f"[WARN] dead-lettered {failure.record.partition_key}@"
                f"{failure.record.offset}: {exhausted.reason}"
            )
        # If this write fails the batch fails: nothing is committed past these records.
        self.store.add_dead_letters(letters)
        return [f.record for f in failures]


# -------------------------------------------------------------------------------- runner


def runs_on_broker(registry: SqliteRegistry, trigger: Trigger) -> str | None:
    """Why the trigger may not read now (owner lost access, topic gone), or None."""
    namespace = registry.get_namespace(trigger.namespace)
    topic = registry.get_topic(trigger.namespace, trigger.topic)
    if namespace is None or topic is None:
        return f"topic {trigger.namespace}/{trigger.topic} no longer exists"
    if topic.state is not TopicState.ACTIVE:
        return f"topic {trigger.namespace}/{trigger.topic} is {topic.state.value}"
    access = topic_access(registry, Principal(sub=trigger.owner), namespace, trigger.topic)
    if access is None or not access.allows(Access.READ):
        return f"the owner no longer has read access to {trigger.namespace}/{trigger.topic}"
    return None


class TriggerRunner:
    def __init__(self, settings: RuntimeSettings) -> None:
        if settings.cluster_mode != "local":
            raise RuntimeError(
                "the trigger runner is for local mode; on AWS triggers run on Lambda"
            )
        self.settings = settings
        self.registry = SqliteRegistry(settings.sqlite_path)
        self.store = LocalTriggerStore.for_settings(settings)
        self.admin = KafkaBrokerAdmin(
            {**local_client_config(settings.runtime_bootstrap_servers), "log_level": 0},
            capabilities=EMBEDDED_BROKER,
        )
        self.workers: dict[str, TriggerWorker] = {}
        self._retiring: list[TriggerWorker] = []
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run_forever(self) -> None:
        logger.info("trigger runner started (state in %s)", self.store.root)
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:
                logger.exception("refresh failed; trying again")
            self._stop.wait(REFRESH_S)
        self.shutdown()

    def _retire(self, trigger_id: str) -> None:
        worker = self.workers.pop(trigger_id, None)
        if worker is not None:
            worker.stop()
            self._retiring.append(worker)

    def refresh(self) -> None:
        triggers = {t.trigger_id: t for t in self.registry.iter_all_triggers()}
        self._retiring = [w for w in self._retiring if w.is_alive()]
        busy = {w.trigger.trigger_id for w in self._retiring}
        for trigger_id in list(self.workers):
            trigger = triggers.get(trigger_id)
            worker = self.workers[trigger_id]
            if trigger is None:
                self._retire(trigger_id)
                self._forget_group(worker.spec.consumer_group)
            elif config_fingerprint(trigger) != worker.fingerprint:
                self._retire(trigger_id)
            elif not worker.is_alive():
                self.workers.pop(trigger_id)
            elif (refusal := runs_on_broker(self.registry, trigger)) is not None:
                # A revoked grant or a deleted topic stops a running trigger too.
                self._retire(trigger_id)
                self.store.set_status(trigger_id, worker.fingerprint, TriggerState.FAILING, refusal)
                busy.add(trigger_id)
        for trigger_id, trigger in triggers.items():
            if not trigger.enabled or trigger.state is TriggerState.DELETING:
                self._retire(trigger_id)
                continue
            if trigger_id in self.workers or trigger_id in busy:
                continue  # running, or its previous worker is still stopping
            deployment = self.store.deployment(trigger_id)
            if deployment is None:
                continue  # the web service has not finished deploying it
            refusal = runs_on_broker(self.registry, trigger)
            fingerprint = config_fingerprint(trigger)
            if refusal is not None:
                self.store.set_status(trigger_id, fingerprint, TriggerState.FAILING, refusal)
                continue
            worker = TriggerWorker(
                trigger, deployment, settings=self.settings, store=self.store, admin=self.admin
            )
            self.workers[trigger_id] = worker
            worker.start()

    def _forget_group(self, group_id: str) -> None:
        """A deleted trigger's committed offsets go too (best effort: it is only metadata)."""
        try:
            self.admin.delete_consumer_group(group_id)
        except Exception as exc:
            logger.info("could not delete consumer group %s: %s", group_id, exc)

    def shutdown(self) -> None:
        for trigger_id in list(self.workers):
            self._retire(trigger_id)
        deadline = time.monotonic() + STOP_JOIN_S
        for worker in self._retiring:
            worker.join(max(0.0, deadline - time.monotonic()))
        self.admin.close()


class _Signals:
    def __init__(self, runner: TriggerRunner) -> None:
        self.runner = runner

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.runner.stop()


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("OCTOPUS_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = RuntimeSettings.from_env()
    runner = TriggerRunner(settings)
    handler = _Signals(runner)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    runner.run_forever()


if __name__ == "__main__":
    main()
