"""The long-lived event-stream service on AWS (ECS Fargate behind an ALB).

API Gateway buffers responses, so SSE is served by this container instead: the *same*
ASGI app (every /v1 route, the console), started with
``uvicorn --factory runtime.streams.service:create_service_app --host 0.0.0.0 --port 8080``.
Settings come from ``OCTOPUS_SETTINGS`` like every function; there is no API Gateway
authorizer in front of an ALB, so the service authenticates bearer tokens itself
(``identity: "globus"``); ``apigw-authorizer`` is refused here. ALB health check:
``GET /v1/health`` (no token). Set the ALB idle timeout above the heartbeat interval
(``OCTOPUS_SSE_HEARTBEAT_SECONDS``, 15 s by default).
"""

from __future__ import annotations

from fastapi import FastAPI

from runtime.api.app import create_app
from runtime.config import RuntimeSettings
from runtime.wiring import build_container


def create_service_app() -> FastAPI:
    settings = RuntimeSettings.from_env()
    if settings.identity == "apigw-authorizer":
        raise RuntimeError(
            "the event-stream service has no API Gateway authorizer in front of it: "
            "run it with identity 'globus' (it introspects bearer tokens itself)"
        )
    return create_app(build_container(settings))
