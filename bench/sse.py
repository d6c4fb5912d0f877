"""SSE throughput: events/s to one client and to 20 concurrent clients, next to a raw consumer.

Starts a local fabric (`python -m runtime.local up --detach`: embedded broker, the web
service under uvicorn and the trigger runner, each its own process) in a temporary state
dir, produces ``--records`` JSON records (~150 B values, text keys, no headers) into a topic
with ``--partitions`` partitions, then reads them all, from the same broker in the same run:

- raw: a confluent-kafka consumer in this process (assign + seek to 0, no group), counting
  the messages that carry no error: no decoding, no per-record work beyond ``error()``;
- SSE: ``GET .../events?from=earliest`` over a plain socket (HTTP/1.1, chunked transfer
  decoded by the client), counting ``event: record\\n`` lines with ``bytes.count`` in the
  de-chunked body (no parsing of ids or JSON), stopping when every record was counted.
  The server does all its work per record (JSON check, rendering, ids, positions).

Raw and 1-client SSE alternate ``--rounds`` times; the ratio compares the best of each
(the machine is shared, so single runs are noisy; all rounds are printed). Then
``--clients`` SSE clients read at once (threads of this process; they spend their time in
``recv``/``count``, which release the GIL).

Goal (issue 6): SSE to one client >= 0.5x the raw consumer.

Run: .venv/bin/python bench/sse.py [--records 200000 --partitions 3 --clients 20 --rounds 3]
Server settings come from the environment (``OCTOPUS_SSE_*``, passed through to uvicorn).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import confluent_kafka
import httpx
from confluent_kafka import Consumer, Producer, TopicPartition

from runtime.local.broker import find_free_port
from runtime.streams.settings import ENV_PREFIX, StreamSettings

GOAL_ONE_CLIENT_RATIO = 0.5
MARKER = b"event: record\n"
_RECV_BYTES = 1 << 20


def produce(bootstrap: str, topic: str, count: int, partitions: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
    for i in range(count):
        value = json.dumps({"frame": i, "detector": "d1", "pad": "x" * 120}).encode()
        while True:
            try:
                producer.produce(topic, value=value, key=str(i).encode(), partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
    if producer.flush(60) != 0:
        raise SystemExit("producing the bench records failed")


def raw_consumer_rate(bootstrap: str, topic: str, count: int, partitions: int) -> float:
    started = time.perf_counter()  # like SSE: set-up included (client, assignment)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-raw",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = 0
    while seen < count:
        for message in consumer.consume(num_messages=1000, timeout=1.0):
            if message.error() is None:
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return seen / elapsed


class _ChunkedCounter:
    """Decodes an HTTP/1.1 chunked body as it arrives and counts MARKER in it.

    Bytes are received straight into one preallocated buffer (``recv_into``) and counted
    in place (``bytearray.count`` with bounds): no copy per read beyond the kernel's.
    """

    def __init__(self, size: int = 8 * _RECV_BYTES) -> None:
        self.buffer = bytearray(size)
        self.view = memoryview(self.buffer)
        self.filled = 0  # bytes received into the buffer
        self.position = 0  # bytes of the buffer already decoded
        self.remaining = 0  # bytes left in the current chunk
        self.crlf_due = False  # a chunk's data ended; its CRLF follows
        self.tail = b""  # the body's last len(MARKER) - 1 bytes
        self.count = 0
        self.ended = False

    def receive(self, sock: socket.socket) -> int:
        """One ``recv_into``; the number of bytes read (0: the peer closed)."""
        if len(self.buffer) - self.filled < _RECV_BYTES:
            # Only an unfinished chunk-size line or chunk data can be left: move it.
            left = self.filled - self.position
            self.buffer[:left] = self.buffer[self.position : self.filled]
            self.filled, self.position = left, 0
        read = sock.recv_into(self.view[self.filled :], _RECV_BYTES)
        self.filled += read
        self._decode()
        return read

    def feed(self, data: bytes) -> None:
        """Add bytes received elsewhere (the end of the response head)."""
        left = self.filled - self.position
        self.buffer[:left] = self.buffer[self.position : self.filled]
        self.buffer[left : left + len(data)] = data
        self.filled, self.position = left + len(data), 0
        self._decode()

    def _decode(self) -> None:
        buffer = self.buffer
        while not self.ended:
            if self.remaining:
                end = min(self.filled, self.position + self.remaining)
                if end == self.position:
                    return
                self._count(self.position, end)
                self.remaining -= end - self.position
                self.position = end
                if not self.remaining:
                    self.crlf_due = True
                continue
            if self.crlf_due:
                if self.filled - self.position < 2:
                    return
                self.position += 2
                self.crlf_due = False
            line_end = buffer.find(b"\r\n", self.position, self.filled)
            if line_end < 0:
                return
            size = int(bytes(buffer[self.position : line_end]).split(b";")[0], 16)
            self.position = line_end + 2
            if size == 0:
                self.ended = True
            self.remaining = size

    def _count(self, start: int, end: int) -> None:
        buffer, width = self.buffer, len(MARKER) - 1
        # A marker across the previous piece's end, then the ones inside this piece.
        self.count += (self.tail + buffer[start : min(end, start + width)]).count(MARKER)
        self.count += buffer.count(MARKER, start, end)
        self.tail = bytes((self.tail + buffer[max(start, end - width) : end])[-width:])


def sse_client(url: str, token: str, count: int, results: list[float], errors: list[str]) -> None:
    parts = urlsplit(url)
    request = (
        f"GET {parts.path}?from=earliest HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    started = time.perf_counter()
    counter = _ChunkedCounter()
    try:
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=60) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                data = sock.recv(65536)
                if not data:
                    errors.append("connection closed before the response")
                    return
                head += data
            head, _, rest = head.partition(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            if status_line.split()[1] != "200":
                errors.append(status_line)
                return
            headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
            if headers.get("transfer-encoding", "").lower() != "chunked":
                errors.append(f"expected a chunked body, got {headers}")
                return
            counter.feed(rest)
            while counter.count < count and not counter.ended and counter.receive(sock):
                pass
    except OSError as exc:
        errors.append(str(exc))
        return
    if counter.count < count:
        errors.append(f"the stream ended after {counter.count} of {count} events")
        return
    results.append(counter.count / (time.perf_counter() - started))


def sse_rate(url: str, token: str, count: int, clients: int) -> tuple[float, float]:
    """(total events/s delivered, slowest client's events/s)."""
    results: list[float] = []
    errors: list[str] = []
    threads = [
        threading.Thread(target=sse_client, args=(url, token, count, results, errors))
        for _ in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"SSE clients failed: {errors[:3]}")
    return clients * count / elapsed, min(results)


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


class _CpuMeter:
    """CPU µs per event of the broker, the web service and this process (the raw
    consumer or the SSE clients) over one measured read."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.samples: dict[str, dict[str, list[float]]] = {}

    def measure(self, phase: str, events: int, read: Callable[[], float]) -> float:
        before = {name: _cpu_seconds(pid) for name, pid in self.pids.items()}
        own = time.process_time()
        rate = read()
        spent = {name: _cpu_seconds(pid) - before[name] for name, pid in self.pids.items()}
        spent["bench process"] = time.process_time() - own
        rows = self.samples.setdefault(phase, {})
        for name, seconds in spent.items():
            rows.setdefault(name, []).append(seconds / events * 1e6)
        return rate

    def total(self, phase: str) -> float:
        """CPU µs per event of every process measured in ``phase`` (median per process)."""
        return sum(statistics.median(v) for v in self.samples[phase].values())

    def lines(self) -> list[str]:
        return [
            f"  {phase}: "
            + ", ".join(f"{name} {statistics.median(v):.2f}" for name, v in rows.items())
            for phase, rows in self.samples.items()
        ]


def _settings_lines(args: argparse.Namespace) -> list[str]:
    def installed(name: str) -> str:
        return "yes" if importlib.util.find_spec(name) is not None else "no"

    overrides = {k: v for k, v in os.environ.items() if k.startswith((ENV_PREFIX, "UVICORN_"))}
    stream = StreamSettings.from_env()
    return [
        f"records {args.records} (~150 B JSON values, text keys), partitions {args.partitions}, "
        f"rounds {args.rounds}, clients {args.clients}",
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; "
        f"Python {platform.python_version()}, confluent-kafka {confluent_kafka.__version__}, "
        f"librdkafka {confluent_kafka.libversion()[0]}",
        "local fabric: embedded broker, uvicorn web service (--http/--loop auto unless "
        "UVICORN_HTTP/UVICORN_LOOP below: httptools "
        f"{installed('httptools')}, uvloop {installed('uvloop')}), trigger runner; "
        f"msgspec {installed('msgspec')}, orjson {installed('orjson')}",
        f"stream settings: batch_records {stream.batch_records}, buffer_max_records "
        f"{stream.buffer_max_records}, buffer_max_bytes {stream.buffer_max_bytes}, "
        f"prefetch_kbytes {stream.prefetch_kbytes}; overrides {overrides or 'none'}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured reads of each kind first")
    args = parser.parse_args()
    settings_lines = _settings_lines(args)

    state = Path(tempfile.mkdtemp(prefix="octopus-bench-sse-"))
    api_port, broker_port = find_free_port(), find_free_port()
    local = [sys.executable, "-m", "runtime.local"]
    subprocess.run(
        [*local, "up", "--detach", "--state-dir", str(state), "--api-port", str(api_port),
         "--broker-port", str(broker_port), "--log-level", "warning"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        token = next(iter(json.loads((state / "dev-tokens.json").read_text())["tokens"]))
        base = f"http://127.0.0.1:{api_port}"
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
        ns = client.get("/v1/me").json()["default_namespace"]
        reply = client.post(
            f"/v1/namespaces/{ns}/topics",
            json={"name": "bench.sse", "partitions": args.partitions},
        )
        if reply.status_code != 201:
            raise SystemExit(f"creating the topic failed: {reply.text}")
        bootstrap = f"127.0.0.1:{broker_port}"
        kafka_topic = f"{ns}.bench.sse"
        produce(bootstrap, kafka_topic, args.records, args.partitions)
        url = f"{base}/v1/namespaces/{ns}/topics/bench.sse/events"

        services = json.loads((state / "fabric.json").read_text())["services"]
        meter = _CpuMeter({n: services[n]["process"]["pid"] for n in ("broker", "api")})
        count, partitions = args.records, args.partitions
        for _ in range(args.warmup):  # first reads: broker caches, the app's first request
            raw_consumer_rate(bootstrap, kafka_topic, count, partitions)
            sse_rate(url, token, count, 1)
        raws: list[float] = []
        ones: list[float] = []
        for _ in range(args.rounds):
            raws.append(
                meter.measure(
                    "raw",
                    count,
                    lambda: raw_consumer_rate(bootstrap, kafka_topic, count, partitions),
                )
            )
            ones.append(
                meter.measure("SSE 1 client", count, lambda: sse_rate(url, token, count, 1)[0])
            )
        many, slowest = sse_rate(url, token, count, args.clients)
        raw, one = max(raws), max(ones)

        for line in settings_lines:
            print(line)
        print("CPU µs per event (median of the rounds; 'bench process' = the reader):")
        for line in meter.lines():
            print(line)
        # What the machine allows: a reader can go no faster than all cores divided by the
        # CPU its whole pipeline spends per event (broker + web service + client).
        raw_cpu, sse_cpu = meter.total("raw"), meter.total("SSE 1 client")
        cores = os.cpu_count() or 1
        most = cores / sse_cpu * 1e6
        print(
            f"CPU per event, all processes: raw {raw_cpu:.2f} µs, SSE 1 client {sse_cpu:.2f} µs "
            f"({sse_cpu / raw_cpu:.1f}x); with all {cores} cores busy SSE could deliver at most "
            f"{most:,.0f} events/s = {most / raw:.2f}x the best raw round"
        )
        print("rounds, events/s: raw " + ", ".join(f"{r:,.0f}" for r in raws))
        print("                  SSE 1 client " + ", ".join(f"{r:,.0f}" for r in ones))
        print(
            f"median ratio (SSE 1 client / raw, per round): "
            f"{statistics.median(o / r for o, r in zip(ones, raws, strict=True)):.2f}"
        )
        print(f"{'reader (best round)':<34}{'events/s':>12}{'ratio to raw':>14}")
        print(f"{'raw confluent-kafka consumer':<34}{raw:>12,.0f}{1.0:>14.2f}")
        print(f"{'SSE, 1 client':<34}{one:>12,.0f}{one / raw:>14.2f}")
        print(f"{f'SSE, {args.clients} clients (total)':<34}{many:>12,.0f}{many / raw:>14.2f}")
        print(f"{f'SSE, {args.clients} clients (slowest one)':<34}{slowest:>12,.0f}"
              f"{slowest / raw:>14.2f}")  # fmt: skip
        verdict = "met" if one / raw >= GOAL_ONE_CLIENT_RATIO else "NOT met"
        print(f"goal SSE 1 client >= {GOAL_ONE_CLIENT_RATIO}x raw: {verdict} ({one / raw:.2f}x)")
    finally:
        subprocess.run([*local, "down", "--state-dir", str(state)], check=False,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
