"""Webhook triggers locally: end-to-end latency (produce -> webhook received) and events/s.

Starts a local fabric (`python -m runtime.local up --detach`: embedded broker, web service and
trigger runner, each its own process) in a temporary state dir, an HTTP receiver on
127.0.0.1, and creates a webhook trigger through the API. Then

1. latency: produces ``--latency-events`` records one at a time, ``--rate`` per second, with a
   Kafka producer (linger 0, acks=all); each value carries its send time, the receiver notes
   the arrival time: p50/p90/p99 of the difference;
2. throughput: produces ``--throughput-events`` records as fast as it can and measures the
   time from the first send to the last arrival (one signed POST per record, as the default
   delivery mode does).

Goal (issue 5): p50 <= 50 ms, p99 <= 250 ms.

Run: .venv/bin/python bench/triggers.py [--latency-events 1000 --rate 100 --throughput-events 5000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer

from runtime.local.broker import find_free_port

GOAL_P50_MS = 50.0
GOAL_P99_MS = 250.0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class Arrivals:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies_ms: dict[int, float] = {}
        self.last_arrival = 0.0
        self.requests = 0

    def add(self, body: bytes) -> None:
        now = time.time()
        with self.lock:
            self.requests += 1
            for record in json.loads(body)["records"]:
                value = record["value"]
                self.latencies_ms.setdefault(value["seq"], (now - value["sent"]) * 1000.0)
            self.last_arrival = now

    def count(self) -> int:
        with self.lock:
            return len(self.latencies_ms)

    def reset(self) -> None:
        with self.lock:
            self.latencies_ms.clear()


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real webhook endpoint would offer
    arrivals: Arrivals

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.arrivals.add(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--latency-events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="events/s in the latency run")
    parser.add_argument("--throughput-events", type=int, default=5000)
    args = parser.parse_args()

    arrivals = Arrivals()
    Receiver.arrivals = arrivals
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{server.server_address[1]}/hook"

    state = Path(tempfile.mkdtemp(prefix="octopus-bench-triggers-"))
    api_port, broker_port = find_free_port(), find_free_port()
    local = [sys.executable, "-m", "runtime.local"]
    subprocess.run(
        [*local, "up", "--detach", "--state-dir", str(state), "--api-port", str(api_port),
         "--broker-port", str(broker_port), "--log-level", "warning"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        token = next(iter(json.loads((state / "dev-tokens.json").read_text())["tokens"]))
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        ns = client.get("/v1/me").json()["default_namespace"]
        reply = client.post(f"/v1/namespaces/{ns}/topics", json={"name": "bench.frames"})
        reply.raise_for_status()
        topic = reply.json()["kafka_name"]
        reply = client.post(
            "/v1/triggers",
            json={
                "name": "bench",
                "namespace": ns,
                "topic": "bench.frames",
                "kind": "webhook",
                "filters": [{"value": {"kind": ["frame"]}}],
                "webhook": {"url": hook_url},
            },
        )
        reply.raise_for_status()
        trigger_id = reply.json()["trigger_id"]

        def state_of() -> str:
            return str(client.get(f"/v1/triggers/{trigger_id}").json()["state"])

        wait_until(lambda: state_of() == "active", 60, "the trigger to become active")

        producer = Producer(
            {
                "bootstrap.servers": f"127.0.0.1:{broker_port}",
                "linger.ms": 0,
                "acks": "all",
                "enable.idempotence": True,
            }
        )
        seq = 0

        def send() -> None:
            nonlocal seq
            value = {"kind": "frame", "seq": seq, "sent": time.time(), "pad": "x" * 200}
            producer.produce(topic, json.dumps(value).encode())
            producer.poll(0)
            seq += 1

        # Warm-up: connections, code paths.
        for _ in range(50):
            send()
            producer.flush()
            time.sleep(0.01)
        wait_until(lambda: arrivals.count() >= 50, 30, "warm-up deliveries")
        arrivals.reset()

        # 1. Latency at a steady rate.
        first_seq = seq
        interval = 1.0 / args.rate
        started = time.perf_counter()
        for i in range(args.latency_events):
            target = started + i * interval
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            send()
            producer.flush()
        wait_until(lambda: arrivals.count() >= args.latency_events, 120, "latency deliveries")
        with arrivals.lock:
            latencies = [v for k, v in arrivals.latencies_ms.items() if k >= first_seq]
        arrivals.reset()

        # 2. Throughput: as fast as the producer goes.
        first = time.time()
        for _ in range(args.throughput_events):
            send()
        producer.flush()
        wait_until(lambda: arrivals.count() >= args.throughput_events, 600, "throughput deliveries")
        throughput = args.throughput_events / (arrivals.last_arrival - first)

        p50, p90, p99 = (percentile(latencies, q) for q in (50, 90, 99))
        print("local fabric: embedded broker + web service + trigger runner; webhook on 127.0.0.1")
        print(f"latency, {len(latencies)} events at {args.rate:g}/s (produce -> webhook received):")
        print(
            f"  p50 {p50:.1f} ms   p90 {p90:.1f} ms   p99 {p99:.1f} ms   "
            f"max {max(latencies):.1f} ms"
        )
        print(
            f"throughput, {args.throughput_events} events, one POST each: "
            f"{throughput:,.0f} events/s"
        )
        met = p50 <= GOAL_P50_MS and p99 <= GOAL_P99_MS
        print(
            f"goal p50 <= {GOAL_P50_MS:g} ms, p99 <= {GOAL_P99_MS:g} ms: "
            f"{'met' if met else 'NOT met'} "
            f"(p50 {p50 / GOAL_P50_MS:.2f}x, p99 {p99 / GOAL_P99_MS:.2f}x of the goal)"
        )
    finally:
        subprocess.run([*local, "down", "--state-dir", str(state)], check=False,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        server.shutdown()


if __name__ == "__main__":
    main()
