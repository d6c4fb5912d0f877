"""``python -m runtime.local up --detach / status / down`` end to end, as a user runs it.

Real parts only: the Tansu broker, uvicorn serving the same app Lambda runs, SQLite,
development tokens, signals and pids.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from runtime.local.state import read_record
from tests.integration.local.conftest import (
    REPO_ROOT,
    LocalFabric,
    all_gone,
    create_namespace_and_topic,
    run_local,
    wait_until,
)


@pytest.mark.slow
def test_up_down_up_keeps_the_registry_and_recreates_topics(new_fabric: LocalFabric) -> None:
    fabric = new_fabric
    started = fabric.up()
    assert started.returncode == 0, started.stderr + started.stdout
    out = started.stdout
    assert fabric.api in out
    assert f"{fabric.api}/v1/docs" in out
    assert fabric.bootstrap in out
    assert str(fabric.paths.root) in out
    assert fabric.token() in out
    assert "in memory" in out

    # The state dir as documented; the tokens file is the owner's only.
    paths = fabric.paths
    for path in (paths.settings, paths.registry, paths.dev_tokens, paths.fabric_record):
        assert path.exists(), path
    for name in ("broker", "api", "fabric"):
        assert paths.log(name).exists(), name
    assert stat.S_IMODE(paths.dev_tokens.stat().st_mode) == 0o600
    settings = json.loads(paths.settings.read_text())
    assert settings["bootstrap_servers"] == fabric.bootstrap
    assert settings["sqlite_path"] == str(paths.registry)

    assert httpx.get(f"{fabric.api}/v1/health", timeout=10).status_code == 200
    shown = run_local("status", "--state-dir", str(fabric.state_dir), "--json")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    report = json.loads(shown.stdout)
    assert report["phase"] == "ready"
    healthy = {s["name"]: s["healthy"] for s in report["services"]}
    # The trigger runner joins once runtime.local.trigger_runner exists.
    assert set(healthy) - {"trigger-runner"} == {"broker", "api"}
    assert all(healthy.values()), healthy

    create_namespace_and_topic(fabric, "lab-one", "detector.frames")
    assert "lab-one.detector.frames" in fabric.broker_topics()

    # A second fabric in the same state dir is refused.
    again = fabric.up()
    assert again.returncode == 1
    assert "already running" in again.stderr

    processes = fabric.record().processes()
    assert len(processes) == 1 + len(healthy)
    stopped = fabric.down()
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert all_gone(processes), [p.pid for p in processes if p.alive()]
    assert not paths.fabric_record.exists()
    gone = run_local("status", "--state-dir", str(fabric.state_dir))
    assert gone.returncode == 4

    restarted = fabric.up()
    assert restarted.returncode == 0, restarted.stderr + restarted.stdout
    assert "1 recreated" in restarted.stdout
    assert "lab-one.detector.frames" in fabric.broker_topics()
    with httpx.Client(base_url=fabric.api, headers=fabric.headers(), timeout=30) as client:
        namespaces = client.get("/v1/namespaces").json()
        assert "lab-one" in json.dumps(namespaces)
        topic = client.get("/v1/namespaces/lab-one/topics/detector.frames")
        assert topic.status_code == 200, topic.text
        assert topic.json()["partitions"] == 2

    processes = fabric.record().processes()
    assert fabric.down().returncode == 0
    assert all_gone(processes)


@pytest.mark.slow
def test_killed_services_are_restarted_and_topics_recreated(new_fabric: LocalFabric) -> None:
    fabric = new_fabric
    started = fabric.up()
    assert started.returncode == 0, started.stderr + started.stdout
    create_namespace_and_topic(fabric, "lab-two", "beamline.events")

    api = fabric.record().services["api"].process
    assert api is not None
    os.kill(api.pid, signal.SIGKILL)
    wait_until(
        lambda: (
            fabric.record().services["api"].restarts >= 1
            and fabric.record().services["api"].state == "running"
        ),
        60,
        "the web service to be restarted",
    )
    new_api = fabric.record().services["api"].process
    assert new_api is not None and new_api.pid != api.pid
    assert httpx.get(f"{fabric.api}/v1/health", timeout=10).status_code == 200

    broker = fabric.record().services["broker"].process
    assert broker is not None
    os.kill(broker.pid, signal.SIGKILL)
    wait_until(
        lambda: (
            fabric.record().services["broker"].restarts >= 1
            and fabric.record().services["broker"].state == "running"
        ),
        60,
        "the broker to be restarted",
    )
    assert "lab-two.beamline.events" in fabric.broker_topics()
    assert fabric.record().topics_recreated == 1
    assert "recreated 1 of 1" in fabric.paths.log("fabric").read_text()

    # The API works against the new broker (same registry, topic back on the broker).
    with httpx.Client(base_url=fabric.api, headers=fabric.headers(), timeout=30) as client:
        topic = client.get("/v1/namespaces/lab-two/topics/beamline.events")
        assert topic.status_code == 200, topic.text

    processes = fabric.record().processes()
    assert fabric.down().returncode == 0
    assert all_gone(processes)


@pytest.mark.parametrize("taken", ["api", "broker"])
def test_a_taken_port_is_refused_clearly(new_fabric: LocalFabric, taken: str) -> None:
    fabric = new_fabric
    port = fabric.api_port if taken == "api" else fabric.broker_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = fabric.up()
    assert result.returncode == 1
    assert f"port {port}" in result.stderr
    assert ("--api-port" if taken == "api" else "--broker-port") in result.stderr
    assert not fabric.paths.fabric_record.exists()


@pytest.mark.slow
def test_foreground_stops_cleanly_on_ctrl_c(new_fabric: LocalFabric, tmp_path: Path) -> None:
    fabric = new_fabric
    output = tmp_path / "foreground.out"
    with output.open("w") as sink:
        process = subprocess.Popen(  # the terminal's Ctrl-C reaches the foreground process
            [
                sys.executable,
                "-m",
                "runtime.local",
                "up",
                "--state-dir",
                str(fabric.state_dir),
                "--api-port",
                str(fabric.api_port),
                "--broker-port",
                str(fabric.broker_port),
            ],
            cwd=REPO_ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
        )
        try:
            wait_until(
                lambda: (
                    ((record := read_record(fabric.paths)) is not None and record.phase == "ready")
                    or process.poll() is not None
                ),
                60,
                "the foreground fabric to be ready",
            )
            record = fabric.record()
            assert record.supervisor.pid == process.pid
            logged = run_local("logs", "api", "--state-dir", str(fabric.state_dir))
            assert logged.returncode == 0
            assert "--- starting api" in logged.stdout
            everything = run_local("logs", "--state-dir", str(fabric.state_dir))
            assert re.search(r"^broker +\| .* --- starting broker", everything.stdout, re.M)
            unknown = run_local("logs", "nope", "--state-dir", str(fabric.state_dir))
            assert unknown.returncode == 1 and "have: api, broker, fabric" in unknown.stderr, (
                unknown.stderr
            )

            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
    text = output.read_text()
    assert "Octopus local fabric is ready" in text
    assert "Local fabric stopped." in text
    assert all_gone(record.processes())
    assert not fabric.paths.fabric_record.exists()
