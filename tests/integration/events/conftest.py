"""Event streams on a real server: uvicorn on 127.0.0.1, the embedded broker, SQLite.

Reuses the API harness's people, tokens and settings (``tests/integration/api/conftest.py``).
Stream timings are shortened through ``container.extras["stream_settings"]``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from confluent_kafka import Producer

from runtime.api.app import create_app
from runtime.api.container import Container
from runtime.config import RuntimeSettings
from runtime.local.broker import find_free_port
from runtime.streams.settings import EXTRAS_KEY, StreamSettings
from runtime.wiring import build_container
from tests.fixtures.broker import bootstrap_servers, embedded_broker
from tests.integration.api.conftest import Person, local_settings, make_people, write_tokens

__all__ = ["bootstrap_servers", "embedded_broker"]

TEST_STREAM_SETTINGS = StreamSettings(
    heartbeat_seconds=1.0,
    access_recheck_seconds=0.5,
    topic_relist_seconds=0.5,
    buffer_max_records=500,
    buffer_max_bytes=2 * 1024 * 1024,
    slow_consumer_seconds=1.5,
    end_write_seconds=30.0,
    batch_records=200,
    prefetch_kbytes=512,
)


@dataclass
class SseEvent:
    event: str
    data: Any
    id: str | None


@dataclass
class LiveEvents:
    settings: RuntimeSettings
    container: Container
    port: int
    owner: Person
    grantee: Person
    stranger: Person
    server: uvicorn.Server
    thread: threading.Thread
    producers: list[Producer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, person: Person, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=person.headers, timeout=timeout)

    def call(self, method: str, path: str, person: Person, **kw: Any) -> httpx.Response:
        with self.client(person) as client:
            return client.request(method, path, **kw)

    def create_topic(self, name: str, partitions: int = 1, person: Person | None = None) -> str:
        owner = person or self.owner
        reply = self.call(
            "POST",
            f"/v1/namespaces/{owner.namespace}/topics",
            owner,
            json={"name": name, "partitions": partitions},
        )
        assert reply.status_code == 201, reply.text
        return name

    def kafka_name(self, topic: str, person: Person | None = None) -> str:
        return f"{(person or self.owner).namespace}.{topic}"

    def produce(
        self,
        topic: str,
        values: list[Any],
        *,
        partition: int | None = None,
        timestamps: list[int] | None = None,
        key: bytes | None = None,
    ) -> None:
        """Produce straight to the broker (fast), waiting for every acknowledgement."""
        if not self.producers:
            self.producers.append(
                Producer(
                    {
                        "bootstrap.servers": self.settings.bootstrap_servers,
                        "linger.ms": 5,
                        "acks": "all",
                        "allow.auto.create.topics": False,
                    }
                )
            )
        producer = self.producers[0]
        failures: list[str] = []

        def report(error: Any, _message: Any) -> None:
            if error is not None:
                failures.append(str(error))

        for index, value in enumerate(values):
            raw = value if isinstance(value, bytes) else json.dumps(value).encode()
            kwargs: dict[str, Any] = {"value": raw, "on_delivery": report}
            if key is not None:
                kwargs["key"] = key
            if partition is not None:
                kwargs["partition"] = partition
            if timestamps is not None:
                kwargs["timestamp"] = timestamps[index]
            while True:
                try:
                    producer.produce(self.kafka_name(topic), **kwargs)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        assert producer.flush(30) == 0
        assert not failures, failures[:3]


def read_events(
    response: httpx.Response, *, stop: Any = None, limit: int | None = None
) -> Iterator[SseEvent]:
    """Parse an SSE body (no comment lines in the output); ``stop(event)`` ends early."""
    event_type, event_id = "message", None
    data_lines: list[str] = []
    count = 0
    for line in response.iter_lines():
        if line == "":
            if data_lines:
                parsed = SseEvent(event_type, json.loads("\n".join(data_lines)), event_id)
                yield parsed
                count += 1
                if (stop is not None and stop(parsed)) or (limit is not None and count >= limit):
                    return
            event_type, data_lines, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event_type = value
        elif name == "data":
            data_lines.append(value)
        elif name == "id":
            event_id = value


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start_server(container: Container) -> tuple[uvicorn.Server, threading.Thread, int]:
    port = find_free_port()
    config = uvicorn.Config(
        create_app(container), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return server, thread, port


@pytest.fixture
def live_events(tmp_path: Path, bootstrap_servers: str) -> Iterator[LiveEvents]:
    people = make_people()
    settings = local_settings(tmp_path, bootstrap_servers)
    write_tokens(Path(settings.dev_tokens_file), people)
    container = build_container(settings)
    container.extras[EXTRAS_KEY] = TEST_STREAM_SETTINGS
    server, thread, port = start_server(container)
    live = LiveEvents(settings, container, port, *people, server=server, thread=thread)
    try:
        yield live
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        container.close()
        for producer in live.producers:
            producer.flush(5)
        live.producers.clear()  # librdkafka frees a producer with its last reference


@pytest.fixture
def topic_name() -> str:
    return f"t{uuid.uuid4().hex[:8]}.frames"
