"""The web console in headless Chromium against a real fabric (uvicorn + embedded broker)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.events.conftest import LiveEvents

pytestmark = [pytest.mark.browser, pytest.mark.broker]


def _sign_in(page: Any, live: LiveEvents) -> None:
    page.goto(f"{live.url}/console/")
    page.fill("#token", live.owner.token)
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector("#app:not([hidden])", timeout=10_000)


def test_console_lists_topics_and_shows_live_events_within_a_second(
    live_events: LiveEvents, browser_page: Any
) -> None:
    live, page = live_events, browser_page
    live.create_topic("beam.det1", partitions=2)
    live.create_topic("beam.det2")
    live.produce("beam.det1", [{"before": True}])  # not shown: the timeline starts at latest

    _sign_in(page, live)
    page.wait_for_function(
        "document.querySelectorAll('#topics li.clickable').length === 2", timeout=10_000
    )
    topics = page.locator("#topics li").all_inner_texts()
    assert topics == ["beam.det1 (2p)", "beam.det2 (1p)"]
    assert page.locator("#namespaces li").all_inner_texts() == [live.owner.namespace]
    assert page.evaluate("sessionStorage.getItem('octopus.token')") == live.owner.token

    page.locator("#topics li", has_text="beam.det1").click()
    assert page.input_value("#stream-target") == "beam.det1"
    page.click("#stream-start")
    page.wait_for_function(
        "document.getElementById('stream-state').textContent === 'live'", timeout=10_000
    )
    time.sleep(0.3)  # the server has positioned the stream at the end

    values = [{"frame": i, "ok": True} for i in range(5)]
    live.produce("beam.det1", values)
    produced_at = time.monotonic()
    page.wait_for_function(
        "document.querySelectorAll('#timeline tbody tr.record').length === 5", timeout=5_000
    )
    shown_after = time.monotonic() - produced_at
    print(f"console: 5 events shown {shown_after * 1000:.0f} ms after they were produced")
    assert shown_after < 1.0, f"events shown {shown_after:.2f} s after they were produced"

    rows = page.locator("#timeline tbody tr").all()
    cells = [row.locator("td").all_inner_texts() for row in rows]
    assert {c[1] for c in cells} == {"beam.det1"}
    assert sorted(c[4] for c in cells) == sorted(f'{{"frame":{i},"ok":true}}' for i in range(5))
    assert all("/" in c[2] for c in cells)
    assert page.inner_text("#stream-count") == "5"
    assert int(page.inner_text("#stream-rate")) >= 0


def test_console_channel_timeline_and_bad_token(live_events: LiveEvents, browser_page: Any) -> None:
    live, page = live_events, browser_page
    page.goto(f"{live.url}/console/")
    page.fill("#token", "not-a-token")
    page.click("#sign-in button[type=submit]")
    page.wait_for_function(
        "document.getElementById('sign-in-error').textContent.length > 0", timeout=10_000
    )
    assert page.inner_text("#sign-in-error") == "This token is not valid."

    live.create_topic("chan.a")
    _sign_in(page, live)
    page.fill("#stream-target", "chan")
    page.check("#stream-channel")
    page.click("#stream-start")
    page.wait_for_function(
        "document.getElementById('stream-state').textContent === 'live'", timeout=10_000
    )
    time.sleep(0.3)
    live.create_topic("chan.b")  # created while the channel is open: joins it
    live.produce("chan.a", [{"a": 1}])
    live.produce("chan.b", [{"b": 1}])
    page.wait_for_function(
        "document.querySelectorAll('#timeline tbody tr.record').length === 2", timeout=10_000
    )
    topics = sorted(page.locator("#timeline tbody tr td:nth-child(2)").all_inner_texts())
    assert topics == ["chan.a", "chan.b"]
