"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright for Python.

No browser download: Playwright launches the system browser. Flags from the engineering
notes keep Chromium off the (closed) network. Skipped, with the reason, when
/usr/bin/chromium is absent (install: apt-get install -y chromium chromium-driver).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.fixtures.broker import bootstrap_servers, embedded_broker  # noqa: E402
from tests.integration.events.conftest import live_events  # noqa: E402

__all__ = ["bootstrap_servers", "browser_page", "embedded_broker", "live_events"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser_page() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(
            "headless Chromium not installed at /usr/bin/chromium "
            "(apt-get install -y chromium chromium-driver)"
        )
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="octopus-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_FLAGS,
            )
            try:
                page = context.new_page()
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
