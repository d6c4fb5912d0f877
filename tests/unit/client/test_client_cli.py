"""The ``octopus`` CLI through typer's CliRunner: parsing, --json, error lines, exit codes."""

from __future__ import annotations

import json
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from octopus_client.cli import local as local_cli
from octopus_client.cli.main import app
from typer.testing import CliRunner

from tests.unit.client.client_fake_api import (
    NOW,
    FakeAPI,
    Reply,
    fabric_body,
    grant_body,
    me_body,
    topic_body,
)

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "octopus-home"
    monkeypatch.setenv("OCTOPUS_HOME", str(home))
    for name in ("OCTOPUS_URL", "OCTOPUS_TOKEN", "OCTOPUS_PROFILE", "OCTOPUS_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    return home


def run(api: FakeAPI | None, *args: str, input: str | None = None):
    base = ["--url", api.url, "--token", "tok"] if api is not None else []
    return runner.invoke(app, [*base, *args], input=input)


def error(status: int, code: str, message: str = "nope") -> Reply:
    return Reply(status, {"error": {"code": code, "message": message}})


def test_json_output_is_machine_readable(api: FakeAPI) -> None:
    api.reply(
        "GET",
        "/v1/namespaces",
        {"items": [{"name": "proj", "owner": "s", "is_default": True, "created_at": NOW}]},
    )
    result = run(api, "--json", "namespace", "list")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"name": "proj", "owner": "s", "is_default": True, "created_at": "2025-01-01T00:00:00Z"}
    ]


@pytest.mark.parametrize(
    ("status", "code", "exit_code"),
    [
        (401, "unauthorized", 3),
        (404, "not_found", 4),
        (403, "forbidden", 5),
        (409, "conflict", 6),
        (429, "quota_exceeded", 7),
        (422, "invalid_request", 2),
        (500, "internal", 1),
    ],
)
def test_errors_are_one_line_with_meaningful_exit_codes(
    api: FakeAPI, status, code, exit_code
) -> None:
    api.reply("GET", "/v1/namespaces/ns-x/topics/t", error(status, code, "it went\nwrong"))
    result = run(api, "topic", "show", "ns-x/t")
    assert result.exit_code == exit_code
    assert result.stderr == f"error: {code}: it went wrong\n"
    assert "Traceback" not in result.output


def test_unavailable_exits_8_after_retries(api: FakeAPI) -> None:
    api.reply("GET", "/v1/me", error(503, "unavailable", "registry down"))
    result = run(api, "whoami")
    assert result.exit_code == 8
    assert result.stderr == "error: unavailable: registry down\n"
    assert len(api.calls("GET", "/v1/me")) == 4  # the default attempt budget


def test_debug_lets_the_exception_through(api: FakeAPI) -> None:
    api.reply("GET", "/v1/namespaces/ns-x/topics/t", error(404, "not_found"))
    result = run(api, "--debug", "topic", "show", "ns-x/t")
    assert result.exit_code != 0
    assert type(result.exception).__name__ == "NotFoundError"


def test_topic_addresses_default_to_my_namespace(api: FakeAPI) -> None:
    api.reply("GET", "/v1/me", me_body("ns-abc"))
    api.reply("POST", "/v1/namespaces/ns-abc/topics", Reply(201, topic_body()))
    result = run(
        api, "topic", "create", "sensors.temp", "--partitions", "3", "-c", "retention.ms=60000"
    )
    assert result.exit_code == 0, result.output
    assert api.calls("POST")[0].body == {
        "name": "sensors.temp",
        "partitions": 3,
        "configs": {"retention.ms": "60000"},
    }
    api.reply("GET", "/v1/namespaces/other/topics/a.b", topic_body("other", "a.b"))
    assert run(api, "--json", "topic", "show", "other/a.b").exit_code == 0
    assert len(api.calls("GET", "/v1/me")) == 1  # NS/TOPIC needs no lookup


def test_bad_topic_address_is_a_usage_error(api: FakeAPI) -> None:
    result = run(api, "topic", "show", "ns/")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid_argument: invalid topic address")


def test_topic_configure_sets_and_resets(api: FakeAPI) -> None:
    api.reply(
        "PATCH",
        "/v1/namespaces/ns-abc/topics/t",
        {
            "before": {"retention.ms": "1"},
            "after": {"retention.ms": "5"},
            "topic": topic_body(name="t"),
        },
    )
    result = run(
        api,
        "topic",
        "configure",
        "ns-abc/t",
        "--set",
        "retention.ms=5",
        "--reset",
        "cleanup.policy",
    )
    assert result.exit_code == 0, result.output
    assert api.calls("PATCH")[0].body == {"configs": {"retention.ms": "5", "cleanup.policy": None}}
    assert "retention.ms: 1 -> 5" in result.stdout


def test_destructive_commands_ask_unless_yes(api: FakeAPI) -> None:
    api.reply("DELETE", "/v1/namespaces/ns-abc/topics/t", Reply(204))
    refused = run(api, "topic", "delete", "ns-abc/t", input="n\n")
    assert refused.exit_code == 1 and not api.calls("DELETE")
    assert run(api, "topic", "delete", "ns-abc/t", "--yes").exit_code == 0
    assert len(api.calls("DELETE")) == 1


def test_grant_add_topic_and_prefix(api: FakeAPI) -> None:
    api.reply("PUT", "/v1/namespaces/ns-abc/topics/a.b/grants/sub-2", grant_body())
    api.reply("PUT", "/v1/namespaces/ns-abc/grants/sub-2", grant_body("prefix", "lab"))
    api.reply("DELETE", "/v1/namespaces/ns-abc/grants/sub-2", Reply(204))
    assert run(api, "grant", "add", "ns-abc/a.b", "sub-2").exit_code == 0
    assert api.calls("PUT")[0].body == {"access": "read"}
    assert (
        run(
            api, "grant", "add", "--prefix", "ns-abc/lab", "sub-2", "--access", "readwrite"
        ).exit_code
        == 0
    )
    assert api.calls("PUT")[1].body == {"prefix": "lab", "access": "readwrite"}
    assert run(api, "grant", "remove", "--prefix", "ns-abc/lab", "sub-2").exit_code == 0
    assert api.calls("DELETE")[0].query == {"prefix": ["lab"]}
    bad = run(api, "grant", "add", "ns-abc/a.b", "sub-2", "--access", "all")
    assert bad.exit_code == 2


def test_trigger_create_webhook_body_and_secret(api: FakeAPI) -> None:
    api.reply("GET", "/v1/me", me_body("ns-abc"))
    api.reply(
        "POST",
        "/v1/triggers",
        Reply(
            201,
            {
                "trigger_id": "tr-1",
                "namespace": "ns-abc",
                "topic": "t",
                "kind": "webhook",
                "webhook_secret": "whsec",
            },
        ),
    )
    result = run(
        api,
        "trigger",
        "create",
        "hook",
        "--topic",
        "t",
        "--webhook-url",
        "https://example.org/h",
        "--filter",
        '{"value": {"kind": ["x"]}}',
        "--header",
        "X-A=1",
    )
    assert result.exit_code == 0, result.output
    body = api.calls("POST")[0].body
    assert body["namespace"] == "ns-abc" and body["kind"] == "webhook"
    assert body["filters"] == [{"value": {"kind": ["x"]}}]
    assert body["webhook"] == {"url": "https://example.org/h", "headers": {"X-A": "1"}}
    assert "whsec" in result.stdout
    neither = run(api, "trigger", "create", "hook", "--topic", "t")
    assert neither.exit_code == 2


def test_admin_reconcile_repair(api: FakeAPI) -> None:
    report = {"repair": True, "checked_topics": 2, "checked_broker_topics": 3, "drift": []}
    api.reply("POST", "/v1/admin/reconcile", report)
    result = run(api, "--json", "admin", "reconcile", "--repair")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == report
    assert api.calls()[0].query == {"repair": ["true"]}


def test_login_with_token_saves_the_profile(api: FakeAPI, isolated_home: Path) -> None:
    api.reply("GET", "/v1/me", me_body("ns-abc"))
    api.reply(
        "GET", "/v1/fabric", fabric_body("127.0.0.1:9092", local=False, cluster_mode="serverless")
    )
    result = runner.invoke(app, ["--json", "login", "--url", api.url, "--token", "secret-tok"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["default_namespace"] == "ns-abc"
    config_file = isolated_home / "config.toml"
    stored = tomllib.loads(config_file.read_text())
    assert stored["profiles"]["default"] == {"url": api.url, "auth": "token", "token": "secret-tok"}
    assert config_file.stat().st_mode & 0o077 == 0  # holds a token: owner-only
    # later commands need neither --url nor --token
    whoami = runner.invoke(app, ["--json", "whoami"])
    assert whoami.exit_code == 0, whoami.output
    assert api.calls("GET", "/v1/me")[-1].headers["authorization"] == "Bearer secret-tok"
    assert runner.invoke(app, ["logout"]).exit_code == 0
    assert "token" not in tomllib.loads(config_file.read_text())["profiles"]["default"]


def test_login_local_uses_the_dev_token_from_the_state_dir(api: FakeAPI, tmp_path: Path) -> None:
    state_dir = tmp_path / "local"
    state_dir.mkdir()
    (state_dir / "dev-tokens.json").write_text(
        json.dumps(
            {"tokens": [{"token": "dev-alice", "sub": "alice"}, {"token": "dev-bob", "sub": "bob"}]}
        )
    )
    api.reply("GET", "/v1/me", me_body("ns-abc"))
    api.reply("GET", "/v1/fabric", fabric_body("127.0.0.1:9092"))
    result = runner.invoke(
        app,
        ["login", "--local", "--url", api.url, "--state-dir", str(state_dir), "--identity", "bob"],
    )
    assert result.exit_code == 0, result.output
    assert "local fabric" in result.stdout
    assert api.calls("GET", "/v1/me")[0].headers["authorization"] == "Bearer dev-bob"
    # the profile points at the state dir: the token is read from there each time
    assert runner.invoke(app, ["whoami"]).exit_code == 0
    assert api.calls("GET", "/v1/me")[-1].headers["authorization"] == "Bearer dev-bob"


def test_login_local_without_a_running_fabric_says_so(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["login", "--local", "--url", "http://127.0.0.1:9", "--state-dir", str(tmp_path)]
    )
    assert result.exit_code == 3
    assert result.stderr.startswith("error: local_fabric_not_found:")


def test_local_commands_explain_a_missing_local_fabric(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_cli, "LOCAL_MODULE", "runtime.local.not_installed_here")
    result = runner.invoke(app, ["local", "status"])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: local_fabric_missing: the local fabric is not installed"
    )


LOCAL_PROBE = """
from dataclasses import dataclass, field

calls = []


class LocalFabricError(Exception):
    code = "local_fabric_error"

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class PortTaken(LocalFabricError):
    code = "port_in_use"


@dataclass(frozen=True)
class LocalOptions:
    state_dir: object
    host: str = "127.0.0.1"
    api_port: int = 8000
    broker_port: int = 9092
    detach: bool = False


@dataclass
class Service:
    name: str
    pid: int
    healthy: bool
    restarts: int = 0
    detail: str = ""


@dataclass
class Status:
    phase: str = "ready"
    supervisor_pid: int = 42
    api_url: str = "http://127.0.0.1:8000"
    docs_url: str = "http://127.0.0.1:8000/v1/docs"
    bootstrap_servers: str = "127.0.0.1:9092"
    services: list = field(default_factory=list)

    @property
    def healthy(self):
        return all(s.healthy for s in self.services)

    def model_dump(self, mode="python"):
        return {"phase": self.phase, "services": [s.name for s in self.services]}


RUNNING = {}


def up(options):
    calls.append(("up", options))
    if options.api_port == 1:
        raise PortTaken("port 1 on 127.0.0.1 (for the web service) is already in use")


def down(state_dir):
    calls.append(("down", state_dir))
    return bool(RUNNING)


def status(state_dir):
    calls.append(("status", state_dir))
    return RUNNING.get("status")


def logs(state_dir, *, follow, service):
    calls.append(("logs", state_dir, follow, service))
    yield f"{service or 'all'} line 1"
    yield f"{service or 'all'} line 2"
"""


@pytest.fixture
def local_probe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """A module with the interface of runtime.local.fabric, recording the calls."""
    name = f"pkg_local_fabric_probe_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(LOCAL_PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(local_cli, "LOCAL_MODULE", name)
    import importlib

    return importlib.import_module(name)


def test_local_up_builds_the_options_of_the_local_fabric(local_probe: Any, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["local", "up", "--detach", "--api-port", "8123", "--state-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    ((_, options),) = local_probe.calls
    assert (options.detach, options.api_port, options.broker_port, options.state_dir) == (
        True,
        8123,
        9092,
        tmp_path,
    )


def test_local_errors_are_one_line_with_an_exit_code(local_probe: Any, tmp_path: Path) -> None:
    result = runner.invoke(app, ["local", "up", "--api-port", "1", "--state-dir", str(tmp_path)])
    assert result.exit_code == 6  # a port in use: conflict
    assert result.stderr.strip() == (
        "error: port_in_use: port 1 on 127.0.0.1 (for the web service) is already in use"
    )


def test_local_status_down_and_logs(local_probe: Any, tmp_path: Path) -> None:
    state_dir = ["--state-dir", str(tmp_path)]
    stopped = runner.invoke(app, ["--json", "local", "status", *state_dir])
    assert stopped.exit_code == 4
    assert json.loads(stopped.stdout) == {"running": False, "state_dir": str(tmp_path)}
    down = runner.invoke(app, ["--json", "local", "down", *state_dir])
    assert down.exit_code == 0
    assert json.loads(down.stdout) == {"stopped": False, "state_dir": str(tmp_path)}

    service = local_probe.Service
    local_probe.RUNNING["status"] = local_probe.Status(
        services=[service("broker", 10, True), service("api", 11, False, 2, "restarting")]
    )
    running = runner.invoke(app, ["local", "status", *state_dir])
    assert running.exit_code == 8  # running, but a service is unhealthy
    assert "api" in running.stdout and "unhealthy" in running.stdout
    shown = runner.invoke(app, ["--json", "local", "status", *state_dir])
    assert json.loads(shown.stdout) == {
        "running": True,
        "phase": "ready",
        "services": ["broker", "api"],
    }

    logs = runner.invoke(app, ["local", "logs", "api", *state_dir])
    assert logs.exit_code == 0
    assert logs.stdout.splitlines() == ["api line 1", "api line 2"]
    assert local_probe.calls[-1] == ("logs", tmp_path, False, "api")


def test_local_commands_match_the_real_local_fabric() -> None:
    """The client calls runtime.local.fabric by these names and keywords."""
    import inspect

    real = pytest.importorskip("runtime.local.fabric")
    fields = set(real.LocalOptions.model_fields)
    assert {"state_dir", "host", "api_port", "broker_port", "detach"} <= fields
    assert list(inspect.signature(real.down).parameters) == ["state_dir"]
    assert list(inspect.signature(real.status).parameters) == ["state_dir"]
    logs_params = inspect.signature(real.logs).parameters
    assert {"follow", "service"} <= set(logs_params)
    assert issubclass(real.PortTaken, real.LocalFabricError)
    assert real.PortTaken.code == "port_in_use" and real.AlreadyRunning.code in (
        "local_already_running"
    )


def test_login_local_picks_the_developer_and_pins_it(api: FakeAPI, tmp_path: Path) -> None:
    """The local fabric's file is sorted by token: the default user is found by name."""
    state_dir = tmp_path / "local"
    state_dir.mkdir()
    tokens = {
        "aaa-grantee-token": {"sub": "sub-grantee", "username": "grantee"},
        "zzz-developer-token": {"sub": "sub-1", "username": "developer"},
    }
    (state_dir / "dev-tokens.json").write_text(json.dumps({"tokens": tokens}))
    api.reply("GET", "/v1/me", me_body("ns-abc"))
    api.reply("GET", "/v1/fabric", fabric_body("127.0.0.1:9092"))
    result = runner.invoke(
        app, ["login", "--local", "--url", api.url, "--state-dir", str(state_dir)]
    )
    assert result.exit_code == 0, result.output
    assert api.calls("GET", "/v1/me")[0].headers["authorization"] == "Bearer zzz-developer-token"
    # Another identity sorting first later does not change who the profile is.
    tokens["000-new-token"] = {"sub": "sub-new", "username": "newcomer"}
    (state_dir / "dev-tokens.json").write_text(json.dumps({"tokens": tokens}))
    assert runner.invoke(app, ["whoami"]).exit_code == 0
    assert api.calls("GET", "/v1/me")[-1].headers["authorization"] == "Bearer zzz-developer-token"


# -- produce / consume against the embedded broker ------------------------------------------------
@pytest.fixture
def broker_fabric(api: FakeAPI, bootstrap_servers: str):
    namespace = f"ns-{uuid.uuid4().hex[:10]}"
    api.reply("GET", "/v1/fabric", fabric_body(bootstrap_servers))
    api.reply("GET", "/v1/me", me_body(namespace))
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    admin.create_topics([NewTopic(f"{namespace}.lab.temp", 1)])[f"{namespace}.lab.temp"].result(10)
    api.reply(
        "GET", f"/v1/namespaces/{namespace}/topics/lab.temp", topic_body(namespace, "lab.temp")
    )
    api.reply("GET", f"/v1/namespaces/{namespace}/topics", {"items": [], "next_cursor": None})
    return namespace


@pytest.mark.broker
def test_produce_from_file_and_arguments_then_consume(
    api: FakeAPI, broker_fabric: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(50)))
    produced = run(api, "--json", "produce", "lab.temp", "--file", str(events), "--key", "k1")
    assert produced.exit_code == 0, produced.output
    assert json.loads(produced.stdout)["produced"] == 50
    assert run(api, "produce", "lab.temp", '{"i": 50}', "plain text").exit_code == 0
    consumed = run(
        api,
        "consume",
        f"{broker_fabric}/lab.temp",
        "--from-beginning",
        "--limit",
        "52",
        "--idle-timeout",
        "20",
    )
    assert consumed.exit_code == 0, consumed.output
    lines = [json.loads(line) for line in consumed.stdout.splitlines()]
    assert [line["value"] for line in lines[:51]] == [{"i": i} for i in range(51)]
    assert lines[51]["value"] == "plain text"
    assert lines[0]["key"] == "k1" and lines[0]["offset"] == 0
    assert "consumed 52 records" in consumed.stderr


@pytest.mark.broker
def test_produce_refuses_unknown_topics_and_bad_lines(
    api: FakeAPI, broker_fabric: str, tmp_path: Path
) -> None:
    unknown = run(api, "produce", "nope", '{"a": 1}')
    assert unknown.exit_code == 4
    assert unknown.stderr.startswith("error: unknown_topic: topic ")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ok": 1}\n{not json\n')
    result = run(api, "produce", "lab.temp", "--file", str(bad))
    assert result.exit_code == 2
    assert "line 2 is not JSON" in result.stderr


@pytest.mark.broker
def test_tail_prints_a_timeline_line_per_event(api: FakeAPI, broker_fabric: str) -> None:
    assert run(api, "produce", "lab.temp", '{"temp": 21.5}').exit_code == 0
    result = run(
        api,
        "tail",
        "--prefix",
        f"{broker_fabric}/lab",
        "--from-beginning",
        "--limit",
        "1",
        "--idle-timeout",
        "20",
    )
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    assert f"{broker_fabric}.lab.temp 0/0" in line and '{"temp": 21.5}' in line
