"""The supervisor on real child processes: order, restarts with backoff, give-up, logs."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from runtime.local.state import LOG_BACKUPS, ProcessRef, RotatingLog, StatePaths
from runtime.local.supervisor import (
    RestartPolicy,
    ServiceGaveUp,
    ServiceSpec,
    StartFailed,
    Supervisor,
    dependency_order,
)

FAST = RestartPolicy(
    max_restarts=3,
    window_s=30,
    backoff_initial_s=0.05,
    backoff_max_s=0.2,
    health_interval_s=0.1,
    unhealthy_after=2,
)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


SLEEPER = python("import time; print('up', flush=True); time.sleep(60)")


@pytest.fixture
def paths(tmp_path: Path) -> StatePaths:
    state = StatePaths.of(tmp_path)
    state.create()
    return state


def run_in_thread(supervisor: Supervisor, stop: threading.Event) -> list[BaseException]:
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            supervisor.run(stop)
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    threading.Thread(target=watch, daemon=True).start()
    return errors


def test_services_start_in_dependency_order_and_ready_hooks_run(paths: StatePaths) -> None:
    started: list[str] = []
    specs = [
        ServiceSpec("web", SLEEPER, depends_on=("db",), on_ready=lambda r: started.append("web")),
        ServiceSpec("db", SLEEPER, on_ready=lambda r: started.append("db")),
    ]
    assert [s.name for s in dependency_order(specs)] == ["db", "web"]
    supervisor = Supervisor(specs, paths, policy=FAST)
    try:
        supervisor.start_all(threading.Event())
        assert started == ["db", "web"]
        records = supervisor.records()
        assert all(r.state == "running" and r.process is not None for r in records.values())
        pids = [r.process.pid for r in records.values() if r.process is not None]
    finally:
        supervisor.stop_all()
    assert {r.state for r in supervisor.records().values()} == {"stopped"}
    assert "up" in paths.log("db").read_text()
    assert not any(ProcessRef.of(pid).alive() for pid in pids)


def test_a_dependency_cycle_is_refused() -> None:
    with pytest.raises(ValueError, match="cycle"):
        dependency_order(
            [
                ServiceSpec("a", SLEEPER, depends_on=("b",)),
                ServiceSpec("b", SLEEPER, depends_on=("a",)),
            ]
        )


def test_a_service_that_cannot_start_names_itself(paths: StatePaths) -> None:
    supervisor = Supervisor([ServiceSpec("broken", python("raise SystemExit(7)"))], paths)
    with pytest.raises(StartFailed, match="broken did not start: exited with code 7"):
        supervisor.start_all(threading.Event())
    supervisor.stop_all()


def test_a_dead_child_is_restarted_then_given_up_on(paths: StatePaths) -> None:
    marker = paths.root / "runs"
    # Runs for 0.3 s, then dies: healthy at start, dies again after every restart.
    flaky = python(
        f"import time; open({str(marker)!r}, 'a').write('x'); time.sleep(0.3); raise SystemExit(1)"
    )
    events: list[str] = []
    supervisor = Supervisor(
        [ServiceSpec("flaky", flaky, settle_s=0.1)], paths, policy=FAST, on_event=events.append
    )
    stop = threading.Event()
    supervisor.start_all(stop)
    errors = run_in_thread(supervisor, stop)
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    supervisor.stop_all()
    assert errors and isinstance(errors[0], ServiceGaveUp), errors
    assert "restarted 3 times" in str(errors[0])
    assert marker.read_text() == "x" * 4  # the first start and three restarts
    assert sum("restarting" in e for e in events) == 3
    assert supervisor.records()["flaky"].restarts == 3


def test_an_unhealthy_child_is_replaced(paths: StatePaths) -> None:
    healthy = {"value": True}
    events: list[str] = []
    supervisor = Supervisor(
        [ServiceSpec("svc", SLEEPER, health_check=lambda: healthy["value"])],
        paths,
        policy=FAST,
        on_event=events.append,
    )
    stop = threading.Event()
    supervisor.start_all(stop)
    first = supervisor.records()["svc"].process
    errors = run_in_thread(supervisor, stop)
    healthy["value"] = False
    deadline = time.monotonic() + 10
    while not any("unhealthy" in e for e in events):
        assert time.monotonic() < deadline, events
        time.sleep(0.02)
    healthy["value"] = True
    while supervisor.records()["svc"].state != "running" or (
        supervisor.records()["svc"].process == first
    ):
        assert time.monotonic() < deadline, supervisor.records()
        time.sleep(0.05)
    stop.set()
    time.sleep(0.3)
    supervisor.stop_all()
    assert not errors
    assert first is not None and not first.alive()
    assert supervisor.records()["svc"].restarts == 1
    assert any("unhealthy (2 failed health checks in a row)" in e for e in events), events


def test_logs_are_capped_and_rotated(tmp_path: Path) -> None:
    log = RotatingLog(tmp_path / "svc.log", max_bytes=100, backups=LOG_BACKUPS)
    for index in range(40):
        log.write(f"line {index:02d} .........\n".encode())
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["svc.log", "svc.log.1", "svc.log.2", "svc.log.3"]
    assert all((tmp_path / name).stat().st_size <= 100 for name in files)
    assert (tmp_path / "svc.log").read_text().endswith("line 39 .........\n")
