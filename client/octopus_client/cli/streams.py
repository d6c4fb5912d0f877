"""Event commands: ``produce``, ``consume``, ``tail`` (over the Kafka protocol, via the SDK)."""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from octopus_client.cli.state import EXIT_ERROR, CliInputError, CliState, state
from octopus_client.kafka import ConsumedRecord, FabricConsumer
from octopus_client.names import TopicRef


def _parse_argument(value: str) -> Any:
    """Arguments are JSON when they parse as JSON, else plain strings."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def _json_lines(lines: Iterator[str], source: str) -> Iterator[Any]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError as exc:
            raise CliInputError(f"{source} line {number} is not JSON: {exc}") from None


def produce(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(metavar="NS/TOPIC")],
    values: Annotated[
        list[str] | None, typer.Argument(help="Values (JSON, or plain strings).")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="JSON lines file ('-' for stdin).", dir_okay=False),
    ] = None,
    key: Annotated[str | None, typer.Option(help="The key of every record.")] = None,
    header: Annotated[list[str] | None, typer.Option(help="Header K=V (repeatable).")] = None,
    flush_timeout: Annotated[float, typer.Option(help="Seconds to wait for deliveries.")] = 60.0,
) -> None:
    """Produce JSON events from arguments, a JSON-lines file, or stdin."""
    cli = state(ctx)
    headers = []
    for item in header or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise CliInputError(f"--header expects K=V, got {item!r}")
        headers.append((name, value.encode()))
    total: int | None
    if values and file is not None:
        raise CliInputError("give values as arguments or --file, not both")
    if values:
        records: Iterator[Any] = iter([_parse_argument(v) for v in values])
        total, label = len(values), "arguments"
    elif file is not None and str(file) != "-":
        total = sum(1 for line in file.open(encoding="utf-8") if line.strip())
        records = _json_lines(file.open(encoding="utf-8"), str(file))
        label = str(file)
    else:
        if sys.stdin.isatty() and file is None:
            raise CliInputError("no values: pass them as arguments, with --file, or on stdin")
        records, total, label = _json_lines(iter(sys.stdin), "stdin"), None, "stdin"

    fabric = cli.fabric()
    producer = fabric.producer()
    kafka_topic = producer.kafka_topic(topic)  # refuses unknown topics before reading input
    queued = 0
    progress = Progress(
        TextColumn("producing to {task.fields[topic]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=cli.err,
        transient=True,
        disable=cli.json,
    )
    with progress:
        task = progress.add_task("produce", total=total, topic=kafka_topic)
        for value in records:
            producer.produce_json(topic, value, key=key, headers=headers or None)
            queued += 1
            if queued % 1000 == 0:
                producer.poll(0)
                progress.update(task, completed=producer.stats.delivered)
        remaining = producer.flush(flush_timeout)
        progress.update(task, completed=producer.stats.delivered)
    stats = producer.stats
    failed = stats.failed + remaining
    summary = {
        "topic": kafka_topic,
        "source": label,
        "produced": stats.delivered,
        "failed": failed,
        "errors": stats.errors,
    }
    cli.emit(
        summary,
        lambda: cli.err.print(
            f"produced {stats.delivered} records to {kafka_topic}"
            + (f", [red]{failed} failed[/red]: {'; '.join(stats.errors[:3])}" if failed else "")
        ),
    )
    if failed:
        raise typer.Exit(EXIT_ERROR)


def _open_consumer(
    cli: CliState,
    topic: str | None,
    prefix: str | None,
    group: str | None,
    from_beginning: bool,
) -> tuple[FabricConsumer, str]:
    if (topic is None) == (prefix is None):
        raise CliInputError("give a TOPIC or --prefix, not both")
    fabric = cli.fabric()
    # Without a group nothing is committed: a fresh group each time.
    overrides: dict[str, Any] = {"auto.offset.reset": "earliest" if from_beginning else "latest"}
    consumer = fabric.consumer(group=group, **overrides)
    try:
        if prefix is not None:
            namespace, slash, rest = prefix.partition("/")
            ref = TopicRef(namespace, rest) if slash else TopicRef(fabric.default_namespace, prefix)
            pattern = consumer.subscribe_prefix(ref.namespace, ref.topic)
            return consumer, f"channel {ref.namespace}/{ref.topic} ({pattern})"
        (name,) = consumer.subscribe(topic or "")
        return consumer, name
    except BaseException:
        consumer.close()  # refused (unknown topic, no access): leave no client behind
        raise


def consume(
    ctx: typer.Context,
    topic: Annotated[str | None, typer.Argument(metavar="[NS/TOPIC]")] = None,
    prefix: Annotated[
        str | None, typer.Option(help="A channel subtree NS/PREFIX (every topic below it).")
    ] = None,
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest record.")] = False,
    group: Annotated[
        str | None, typer.Option(help="Consumer group (in your namespace); commits progress.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after N records.")] = None,
    idle_timeout: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without records.")
    ] = None,
) -> None:
    """Print records as JSON lines on stdout (status on stderr)."""
    cli = state(ctx)
    consumer, what = _open_consumer(cli, topic, prefix, group, from_beginning)
    cli.err.print(f"consuming {what} as group {consumer.group_id} (Ctrl-C to stop)")
    count = 0
    out = sys.stdout
    try:
        for record in consumer.records(limit=limit, idle_timeout=idle_timeout):
            out.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
            count += 1
            if group and count % 1000 == 0:
                consumer.commit(asynchronous=True)
        out.flush()
        if group:
            consumer.commit()
    finally:
        consumer.close()
        cli.err.print(f"consumed {count} records")


def _preview(record: ConsumedRecord, width: int = 60) -> str:
    if record.is_json:
        text = json.dumps(record.value, ensure_ascii=False)
    elif isinstance(record.value, bytes):
        text = f"<{len(record.value)} bytes>"
    else:
        text = str(record.value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _timeline(rows: deque[ConsumedRecord], title: str, seen: int, rate: float) -> Table:
    table = Table(title=f"{title} — {seen} events, {rate:.1f}/s", expand=True)
    for column in ("time", "topic", "p/offset", "key", "value"):
        table.add_column(column, overflow="fold" if column == "value" else "ellipsis")
    for record in rows:
        when = record.timestamp or datetime.now(UTC)
        key = record.key if isinstance(record.key, str) else ("" if record.key is None else "<bin>")
        table.add_row(
            when.astimezone().strftime("%H:%M:%S.%f")[:-3],
            record.topic,
            f"{record.partition}/{record.offset}",
            key,
            _preview(record),
        )
    return table


def tail(
    ctx: typer.Context,
    topic: Annotated[str | None, typer.Argument(metavar="[NS/TOPIC]")] = None,
    prefix: Annotated[str | None, typer.Option(help="A channel subtree NS/PREFIX.")] = None,
    rows: Annotated[int, typer.Option(min=1, help="Rows shown.")] = 20,
    from_beginning: Annotated[bool, typer.Option()] = False,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    idle_timeout: Annotated[float | None, typer.Option()] = None,
) -> None:
    """A live timeline of a topic or channel: time, topic, partition/offset, key, value."""
    cli = state(ctx)
    consumer, what = _open_consumer(cli, topic, prefix, None, from_beginning)
    recent: deque[ConsumedRecord] = deque(maxlen=rows)
    seen = 0
    started = time.monotonic()
    live_view = cli.out.is_terminal and not cli.json
    try:
        if live_view:
            with Live(
                _timeline(recent, what, 0, 0.0), console=cli.out, refresh_per_second=8
            ) as live:
                for record in consumer.records(limit=limit, idle_timeout=idle_timeout):
                    recent.append(record)
                    seen += 1
                    rate = seen / max(time.monotonic() - started, 1e-6)
                    live.update(_timeline(recent, what, seen, rate))
        else:
            for record in consumer.records(limit=limit, idle_timeout=idle_timeout):
                seen += 1
                if cli.json:
                    cli.emit_json(record.to_json())
                else:
                    sys.stdout.write(
                        f"{record.timestamp.isoformat() if record.timestamp else '-'} "
                        f"{record.topic} {record.partition}/{record.offset} "
                        f"{record.key if isinstance(record.key, str) else ''} {_preview(record)}\n"
                    )
            sys.stdout.flush()
    finally:
        consumer.close()
        cli.err.print(f"{seen} events")


def register(app: typer.Typer) -> None:
    app.command()(produce)
    app.command()(consume)
    app.command()(tail)
