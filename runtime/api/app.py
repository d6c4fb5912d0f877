"""The web service: one ASGI app for Lambda (via Mangum) and local mode (uvicorn)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from runtime.api.container import Container
from runtime.api.errors import install_error_handlers
from runtime.api.middleware import AuditLog, BodyLimitOverride, BodySizeLimit
from runtime.api.routes import (
    admin,
    compat_v3,
    events,
    grants,
    http_consume,
    keys,
    meta,
    namespaces,
    records,
    rest_consumers,
    topics,
    triggers,
)
from runtime.api.routes.triggers import CODE_UPLOAD_PUT_PATH
from runtime.config import RuntimeSettings

DESCRIPTION = """Octopus Event Fabric web service: identities, broker credentials, namespaces,
topics, grants, records over HTTP, and triggers. Every route but `/v1/health` and these docs needs
`Authorization: Bearer <token>`. Errors: `{"error": {"code", "message", "details"}}` with the right
HTTP status."""

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"

# Routers added by later layers register here (triggers, event streams, Octopus v3).
RouterFactory = Callable[[Container], APIRouter]


def create_app(container: Container, extra_routers: Iterable[APIRouter] = ()) -> FastAPI:
    app = FastAPI(
        title="Octopus Event Fabric",
        version=container.version,
        description=DESCRIPTION,
        openapi_url="/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.container = container
    install_error_handlers(app)
    for router in (
        meta.router,
        keys.router,
        namespaces.router,
        topics.router,
        grants.router,
        records.router,
        http_consume.router,
        compat_v3.router,
        rest_consumers.router,
        triggers.router,
        admin.router,
        events.router,
    ):
        app.include_router(router)
    for router in extra_routers:
        app.include_router(router)

    # The web console: static files (no build step), served from the package.
    app.mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")

    @app.get("/v1/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/v1/openapi.json", title="Octopus Event Fabric API")

    # Order: the size cap sees the request first; audit wraps everything inside.
    app.add_middleware(AuditLog)
    if container.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(container.settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "Last-Event-ID",
                "Subject",
            ],
        )
    app.add_middleware(
        BodySizeLimit,
        max_bytes=container.settings.max_body_bytes,
        overrides=body_limit_overrides(container.settings),
    )
    return app


def body_limit_overrides(settings: RuntimeSettings) -> tuple[BodyLimitOverride, ...]:
    """Only the local code-upload PUT may exceed ``max_body_bytes`` (it streams to disk)."""
    if settings.cluster_mode != "local":
        return ()
    return (
        BodyLimitOverride("PUT", CODE_UPLOAD_PUT_PATH, max_bytes=settings.trigger_code_max_bytes),
    )
