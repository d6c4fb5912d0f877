"""Options, addresses and the ready banner (no processes)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydantic import ValidationError
from rich.console import Console

from runtime.adapters.local.dev_identity import DevToken
from runtime.local.fabric import LocalOptions, api_url, is_loopback, render_banner
from runtime.local.state import FabricRecord, ProcessRef


def test_defaults_match_the_sdk_local_environment() -> None:
    options = LocalOptions()
    assert options.state_dir == Path("~/.octopus/local").expanduser().resolve()
    assert (options.host, options.api_port, options.broker_port) == ("127.0.0.1", 8000, 9092)
    assert options.loopback_only and not options.detach


def test_the_same_port_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match="both 9000"):
        LocalOptions(api_port=9000, broker_port=9000)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_wildcard_bind_is_probed_on_loopback() -> None:
    assert api_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert api_url("::1", 8000) == "http://[::1]:8000"


def banner(host: str) -> str:
    record = FabricRecord(
        supervisor=ProcessRef(pid=1),
        host=host,
        api_port=8000,
        broker_port=9092,
        api_url=api_url(host, 8000),
        docs_url=api_url(host, 8000) + "/v1/docs",
        bootstrap_servers="127.0.0.1:9092",
        state_dir="/tmp/state",
        topics_recreated=3,
    )
    out = io.StringIO()
    token = DevToken(token="tok-123", sub="sub-1", username="developer")
    render_banner(Console(file=out, width=300), record, token)
    return out.getvalue()


def test_the_banner_names_everything_and_warns_about_memory() -> None:
    text = banner("127.0.0.1")
    for expected in (
        "http://127.0.0.1:8000",
        "http://127.0.0.1:8000/v1/docs",
        "127.0.0.1:9092",
        "/tmp/state",
        "tok-123",
        "3 recreated",
        "Events are kept in memory: restarting the broker loses events, not configuration",
    ):
        assert expected in text
    assert "WARNING" not in text


def test_a_non_loopback_host_is_warned_about_loudly() -> None:
    text = banner("0.0.0.0")
    assert "WARNING: the web service listens on 0.0.0.0" in text
    assert "The broker stays on 127.0.0.1" in text
