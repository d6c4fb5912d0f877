"""``octopus watch DIR --topic T``: finished files in a directory become storage events.

The watching itself (watchdog, debounce until a file stops changing, CloudEvents 1.0
envelopes) is ``runtime.storage.watcher.DirectoryWatcher`` from the fabric's server
package, imported on demand like ``octopus local``: without it the client still imports,
and this command says in one line what to install. Each envelope is produced through the
SDK producer (which refuses unknown topics before anything is watched) with key =
subject, value = the envelope JSON and the CloudEvents structured-mode headers, then
flushed at once so an event reaches the topic (and triggers) within milliseconds of the
file settling. One line per delivered event on stdout (JSON lines with ``--json``);
Ctrl-C or SIGTERM stops the watcher, waits for outstanding deliveries and prints the count.
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, ModuleType
from typing import Annotated, Any

import typer
from confluent_kafka import KafkaError, Message

from octopus_client.cli.state import EXIT_ERROR, CliInputError, state
from octopus_client.errors import OctopusClientError
from octopus_client.kafka import FabricProducer

WATCHER_MODULE = "runtime.storage.watcher"
CLOUDEVENTS_MODULE = "runtime.storage.cloudevents"
# A flush that takes longer leaves the record queued; librdkafka keeps retrying it
# (idempotent producer, until delivery.timeout.ms) and the next flush collects it.
EVENT_FLUSH_TIMEOUT_S = 10.0


class WatcherMissingError(OctopusClientError):
    """``octopus watch`` needs the fabric's server package (or watchdog), not installed."""

    code = "watcher_missing"


def load_storage_modules() -> tuple[ModuleType, ModuleType]:
    """(watcher, cloudevents) from the fabric package, or one clear error line."""
    try:
        return importlib.import_module(WATCHER_MODULE), importlib.import_module(CLOUDEVENTS_MODULE)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == "watchdog" or missing.startswith("watchdog."):
            raise WatcherMissingError(
                "the directory watcher needs watchdog: `pip install watchdog`"
            ) from None
        if missing and WATCHER_MODULE.startswith(missing):
            raise WatcherMissingError(
                "the directory watcher is part of the fabric's server package: install it "
                "(`pip install -e .` in the octopus-event-fabric repository) to use `octopus watch`"
            ) from None
        raise


class NotADirectoryInputError(CliInputError):
    code = "not_a_directory"


def short_type(event_type: str, prefix: str) -> str:
    return event_type[len(prefix) :] if event_type.startswith(prefix) else event_type


class EventPublisher:
    """The watcher's ``publish`` callback: produce, flush, report each delivery.

    Called from the watcher's thread; delivery callbacks run in whichever thread
    flushes (that thread, or the main one at the end), so output and counts are locked.
    """

    def __init__(
        self,
        producer: FabricProducer,
        topic: str,
        cloudevents: ModuleType,
        *,
        json_lines: bool,
        write_out: Callable[[str], None],
        write_err: Callable[[str], None],
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.kafka_topic = producer.kafka_topic(topic)  # refuses unknown topics up front
        self._ce = cloudevents
        self._json_lines = json_lines
        self._write_out = write_out
        self._write_err = write_err
        self._lock = threading.Lock()
        self.delivered = 0
        self.failed = 0

    def __call__(self, envelope: dict[str, Any]) -> None:
        self.producer.produce(
            self.topic,
            self._ce.to_record_value(envelope),
            key=str(envelope["subject"]),
            headers=self._ce.record_headers(envelope),
            on_delivery=self._reporter(envelope),
        )
        self.producer.flush(EVENT_FLUSH_TIMEOUT_S)

    def _reporter(self, envelope: dict[str, Any]) -> Callable[[KafkaError | None, Message], None]:
        def report(err: KafkaError | None, message: Message) -> None:
            with self._lock:
                if err is not None:
                    self.failed += 1
                    self._write_err(f"error: delivery_failed: {envelope['subject']}: {err.str()}")
                    return
                self.delivered += 1
                self._write_out(self._line(envelope, message))

        return report

    def _line(self, envelope: dict[str, Any], message: Message) -> str:
        if self._json_lines:
            return json.dumps(
                {
                    "topic": message.topic(),
                    "partition": message.partition(),
                    "offset": message.offset(),
                    "event": envelope,
                },
                ensure_ascii=False,
            )
        kind = short_type(str(envelope["type"]), self._ce.TYPE_PREFIX)
        return f"{envelope['time']} {kind} {envelope['subject']}"

    def publish_failed(self, error: Exception) -> None:
        """The watcher's ``on_error``: producing raised (not a delivery failure)."""
        with self._lock:
            self.failed += 1
            self._write_err(f"error: publish_failed: {' '.join(str(error).split())}")

    def finish(self, timeout: float) -> int:
        """Wait for outstanding deliveries; those still pending count as failed."""
        remaining = self.producer.flush(timeout)
        with self._lock:
            self.failed += remaining
        return remaining


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (a clean stop, exit 0) instead of interrupting."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _echo(stream: Any) -> Callable[[str], None]:
    def write(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()  # one line per event, visible at once through pipes too

    return write


def watch(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="The directory to watch.")],
    topic: Annotated[
        str, typer.Option(metavar="NS/TOPIC", help="Publish to this topic (NS/TOPIC or TOPIC).")
    ],
    recursive: Annotated[bool, typer.Option(help="Watch subdirectories too.")] = False,
    settle_ms: Annotated[
        int,
        typer.Option(min=0, help="A file is finished when unchanged (size, mtime) for this long."),
    ] = 500,
    json_output: Annotated[
        bool, typer.Option("--json", help="JSON lines on stdout (same as the global --json).")
    ] = False,
    flush_timeout: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for outstanding deliveries at the end.")
    ] = 30.0,
) -> None:
    """Publish finished files (created, modified, moved, deleted) as CloudEvents to a topic.

    One line per event: time, type, path (JSON lines with --json). Ctrl-C stops it.
    """
    cli = state(ctx)
    json_lines = cli.json or json_output
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a directory"
        raise NotADirectoryInputError(f"{directory} {what}")
    watcher_module, cloudevents = load_storage_modules()
    producer = cli.fabric().producer()
    publisher = EventPublisher(
        producer,
        topic,
        cloudevents,
        json_lines=json_lines,
        write_out=_echo(sys.stdout),
        write_err=_echo(sys.stderr),
    )
    watcher = watcher_module.DirectoryWatcher(
        directory,
        publisher,
        recursive=recursive,
        settle_ms=settle_ms,
        on_error=publisher.publish_failed,
    )
    stop = threading.Event()
    with stop_on_signals(stop):
        watcher.start()
        try:
            typer.echo(
                f"watching {watcher.root}{' (recursive)' if recursive else ''} -> "
                f"{publisher.kafka_topic} (Ctrl-C to stop)",
                err=True,
            )
            while not stop.wait(0.5):  # a timed wait: the signal handler always gets to run
                pass
        finally:
            watcher.stop()
            remaining = publisher.finish(flush_timeout)
    summary = f"published {publisher.delivered} events to {publisher.kafka_topic}"
    if publisher.failed:
        summary += f", {publisher.failed} failed"
        if remaining:
            summary += f" ({remaining} undelivered after {flush_timeout:g}s)"
    typer.echo(summary, err=True)
    if publisher.failed:
        raise typer.Exit(EXIT_ERROR)


def register(app: typer.Typer) -> None:
    app.command()(watch)
