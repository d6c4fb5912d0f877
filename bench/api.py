"""Warm request latency of the local web service: GET /v1/me, topic create, record produce.

Starts a local fabric (`python -m runtime.local up --detach`) in a temporary state dir on
free ports, sends requests over one keep-alive HTTP connection, and prints p50/p99 per
operation. Goal (issue 3): p99 <= 20 ms for GET /v1/me with a cached identity.

Run: .venv/bin/python bench/api.py [--me 2000 --topics 200 --records 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from runtime.local.broker import find_free_port

GOAL_ME_P99_MS = 20.0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def measure(count: int, call: Callable[[int], httpx.Response], expect: int) -> list[float]:
    samples = []
    for i in range(count):
        started = time.perf_counter()
        reply = call(i)
        samples.append((time.perf_counter() - started) * 1000)
        if reply.status_code != expect:
            raise SystemExit(f"unexpected {reply.status_code}: {reply.text[:200]}")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--me", type=int, default=2000)
    parser.add_argument("--topics", type=int, default=200)
    parser.add_argument("--records", type=int, default=1000)
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="octopus-bench-api-"))
    api_port, broker_port = find_free_port(), find_free_port()
    local = [sys.executable, "-m", "runtime.local"]
    subprocess.run(
        [
            *local,
            "up",
            "--detach",
            "--state-dir",
            str(state),
            "--api-port",
            str(api_port),
            "--broker-port",
            str(broker_port),
            "--log-level",
            "warning",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        tokens = json.loads((state / "dev-tokens.json").read_text())["tokens"]
        token = next(iter(tokens))
        # Lift the topic quota so the create benchmark is not cut short.
        settings_path = state / "settings.json"
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        me = client.get("/v1/me").json()
        ns = me["default_namespace"]
        quota = me["quotas"]["topics_per_identity"]
        n_topics = min(args.topics, quota - 1)
        for _ in range(50):  # warm-up: identity cache, connections, code paths
            client.get("/v1/me")

        results: dict[str, list[float]] = {}
        results["GET /v1/me"] = measure(args.me, lambda i: client.get("/v1/me"), 200)
        results["POST topic"] = measure(
            n_topics,
            lambda i: client.post(f"/v1/namespaces/{ns}/topics", json={"name": f"bench.t{i}"}),
            201,
        )
        client.post(f"/v1/namespaces/{ns}/topics", json={"name": "bench.records"})
        payload = {"value": {"type": "JSON", "data": {"frame": 1, "pad": "x" * 900}}}
        results["POST record"] = measure(
            args.records,
            lambda i: client.post(
                f"/v1/namespaces/{ns}/topics/bench.records/records", json=payload
            ),
            200,
        )
        print(
            f"local web service on 127.0.0.1:{api_port} (uvicorn, SQLite, embedded broker); "
            f"settings: {settings_path}"
        )
        print(f"{'operation':<14}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
        for name, samples in results.items():
            print(
                f"{name:<14}{len(samples):>6}{percentile(samples, 50):>10.2f}"
                f"{percentile(samples, 99):>10.2f}{statistics.fmean(samples):>10.2f}"
            )
        me_p99 = percentile(results["GET /v1/me"], 99)
        verdict = "met" if me_p99 <= GOAL_ME_P99_MS else "NOT met"
        print(
            f"goal GET /v1/me p99 <= {GOAL_ME_P99_MS} ms: {verdict} ({me_p99:.2f} ms, "
            f"ratio {me_p99 / GOAL_ME_P99_MS:.2f}x of the goal)"
        )
    finally:
        subprocess.run(
            [*local, "down", "--state-dir", str(state)], check=False, stdout=subprocess.DEVNULL
        )


if __name__ == "__main__":
    main()
