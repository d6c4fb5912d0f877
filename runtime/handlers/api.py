"""Lambda entry point of the web service: the same ASGI app as local mode, via Mangum."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from mangum import Mangum

from runtime.api.app import create_app
from runtime.config import RuntimeSettings
from runtime.wiring import build_container

logger = Logger(service="octopus-api")

# Built once per container (cold start); adapters connect lazily.
_app = create_app(build_container(RuntimeSettings.from_env()))
_mangum = Mangum(_app, lifespan="off", api_gateway_base_path="/")


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result: dict[str, Any] = _mangum(event, context)
    return result
