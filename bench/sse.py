"""SSE throughput: events/s to one client and to 20 concurrent clients, next to a raw consumer.

Starts a local fabric (`python -m runtime.local up --detach`: embedded broker + the web
service under uvicorn, each its own process) in a temporary state dir, produces
``--records`` JSON records into a topic with ``--partitions`` partitions, then reads them all
- with a raw confluent-kafka consumer (assign + seek, no group) from this process;
- over SSE (``from=earliest``) with one client, then with ``--clients`` clients at once.
Clients count ``event: record`` lines (no JSON parsing) so the server is what is measured.
Prints events/s and the ratio to the raw consumer (goal for one client: >= 0.5x).

Run: .venv/bin/python bench/sse.py [--records 100000 --partitions 3 --clients 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition

from runtime.local.broker import find_free_port

GOAL_ONE_CLIENT_RATIO = 0.5
MARKER = b"event: record\n"


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
    started = time.perf_counter()
    while seen < count:
        for message in consumer.consume(num_messages=1000, timeout=1.0):
            if message.error() is None:
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return seen / elapsed


def sse_client(url: str, token: str, count: int, results: list[float], errors: list[str]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    seen = 0
    tail = b""
    started = time.perf_counter()
    try:
        with (
            httpx.Client(timeout=60) as client,
            client.stream("GET", url, params={"from": "earliest"}, headers=headers) as response,
        ):
            if response.status_code != 200:
                errors.append(f"HTTP {response.status_code}")
                return
            for chunk in response.iter_raw():
                data = tail + chunk
                seen += data.count(MARKER)
                tail = data[-(len(MARKER) - 1) :]
                if seen >= count:
                    break
    except httpx.HTTPError as exc:
        errors.append(str(exc))
        return
    results.append(seen / (time.perf_counter() - started))


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()

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

        raw = raw_consumer_rate(bootstrap, kafka_topic, args.records, args.partitions)
        one, _ = sse_rate(url, token, args.records, 1)
        raw_again = raw_consumer_rate(bootstrap, kafka_topic, args.records, args.partitions)
        many, slowest = sse_rate(url, token, args.records, args.clients)
        raw = max(raw, raw_again)

        print(
            f"{args.records} records (~150 B JSON), {args.partitions} partitions; local fabric "
            f"(uvicorn web service and embedded broker in their own processes), 2-core machine"
        )
        print(f"{'reader':<34}{'events/s':>12}{'ratio to raw':>14}")
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


if __name__ == "__main__":
    main()
