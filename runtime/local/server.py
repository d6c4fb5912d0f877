"""The local fabric's web service: the same ASGI app Lambda runs, served by uvicorn.

The supervisor starts ``uvicorn --factory runtime.local.server:create_local_app`` with
``OCTOPUS_LOCAL_STATE_DIR`` pointing at the state directory; the settings come from
its ``settings.json``. Nothing here adds routes: what differs from AWS is only the
adapters ``runtime.wiring.build_container`` picks for local settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from runtime.api.app import create_app
from runtime.config import RuntimeSettings
from runtime.local.state import STATE_DIR_ENV, StatePaths
from runtime.wiring import build_container


def load_settings(paths: StatePaths) -> RuntimeSettings:
    """The settings ``octopus local up`` wrote into the state directory."""
    try:
        raw = paths.settings.read_bytes()
    except FileNotFoundError:
        raise RuntimeError(
            f"{paths.settings} is missing; start the fabric with `octopus local up`"
        ) from None
    return RuntimeSettings.model_validate_json(raw)


def create_local_app() -> FastAPI:
    """uvicorn factory: build the container from the state directory's settings."""
    state_dir = os.environ.get(STATE_DIR_ENV)
    if not state_dir:
        raise RuntimeError(f"{STATE_DIR_ENV} is not set; the local web service cannot start")
    settings = load_settings(StatePaths.of(Path(state_dir)))
    return create_app(build_container(settings))
