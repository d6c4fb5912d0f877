"""Server-Sent Events: a topic, or a channel (every readable topic under a prefix).

``GET /v1/namespaces/{ns}/topics/{topic}/events`` and ``GET /v1/namespaces/{ns}/events?prefix=``
answer ``text/event-stream``. Access, start positions and the filter are checked before the
first byte (errors answer as JSON with the usual status); the stream itself is
:class:`runtime.streams.engine.EventStreamResponse`. See docs/events.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request

from runtime.api.auth import ContainerDep, CurrentPrincipal
from runtime.api.container import Container
from runtime.api.responses import errors
from runtime.domain.ports import Principal
from runtime.streams.engine import EventStreamResponse
from runtime.streams.plan import (
    ActiveStreams,
    StreamContext,
    StreamPlan,
    plan_channel_stream,
    plan_topic_stream,
)
from runtime.streams.settings import EXTRAS_KEY, StreamSettings

router = APIRouter(prefix="/v1/namespaces/{ns}", tags=["events"])

STREAMS_EXTRA = "active_streams"
CONNECTION_EXTRA = "stream_connection"

_SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An event stream: `event: record` (id = resume position), comments "
        "`: keepalive`, and a final `event: end` with `{reason, resume_id, message}`.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **errors(403, 404, 422, 503),
}

FromQuery = Annotated[
    str | None,
    Query(
        alias="from",
        description="earliest | latest (default) | <offset> | <epoch ms> | <ISO 8601 time>; "
        "Last-Event-ID takes precedence",
    ),
]
FilterQuery = Annotated[
    str | None,
    Query(
        alias="filter",
        description='URL-encoded JSON: FilterCriteria {"Filters": [{"Pattern": ...}]}, a list '
        "of patterns, or one pattern (the triggers' filter rules)",
    ),
]
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]


def stream_settings(container: Container) -> StreamSettings:
    settings = container.extras.get(EXTRAS_KEY)
    if settings is None:
        settings = StreamSettings.from_env(
            broker_time_lookup=container.settings.cluster_mode != "local"
        )
        container.extras[EXTRAS_KEY] = settings
    result: StreamSettings = settings
    return result


def active_streams(container: Container) -> ActiveStreams:
    streams = container.extras.get(STREAMS_EXTRA)
    if streams is None:
        streams = ActiveStreams(stream_settings(container).max_streams)
        container.extras[STREAMS_EXTRA] = streams
    result: ActiveStreams = streams
    return result


def _context(container: Container, request: Request, principal: Principal) -> StreamContext:
    connection = container.extras.get(CONNECTION_EXTRA)
    if connection is None:
        from runtime.wiring import kafka_client_config

        connection = kafka_client_config(container.settings, "consumer")
        container.extras[CONNECTION_EXTRA] = connection
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return StreamContext(
        settings=stream_settings(container),
        connection=connection,
        registry=container.fabric.deps.registry,
        admin=container.fabric.deps.broker,
        identity=container.identity,
        token=token.strip() if scheme.lower() == "bearer" and token.strip() else None,
        principal=principal,
        streams=active_streams(container),
    )


def _respond(context: StreamContext, build: Any) -> EventStreamResponse:
    context.streams.reserve()
    try:
        plan: StreamPlan = build()
    except BaseException:
        context.streams.release()
        raise
    return EventStreamResponse(plan)


@router.get(
    "/topics/{topic}/events",
    response_class=EventStreamResponse,
    status_code=200,
    responses=_SSE_RESPONSES,
    summary="Stream a topic's records as Server-Sent Events (resumable)",
)
def topic_events(
    ns: str,
    topic: str,
    request: Request,
    principal: CurrentPrincipal,
    container: ContainerDep,
    start: FromQuery = None,
    filter_text: FilterQuery = None,
    last_event_id: LastEventId = None,
) -> EventStreamResponse:
    context = _context(container, request, principal)
    return _respond(
        context,
        lambda: plan_topic_stream(
            context,
            ns,
            topic,
            start_text=start,
            last_event_id=last_event_id,
            filter_text=filter_text,
        ),
    )


@router.get(
    "/events",
    response_class=EventStreamResponse,
    status_code=200,
    responses=_SSE_RESPONSES,
    summary="Stream a channel (every topic under a prefix you may read) as Server-Sent Events",
)
def channel_events(
    ns: str,
    request: Request,
    principal: CurrentPrincipal,
    container: ContainerDep,
    prefix: Annotated[
        str, Query(description="Channel prefix: 'a.b' covers a.b and a.b.*; '' all topics")
    ] = "",
    start: FromQuery = None,
    filter_text: FilterQuery = None,
    last_event_id: LastEventId = None,
) -> EventStreamResponse:
    context = _context(container, request, principal)
    return _respond(
        context,
        lambda: plan_channel_stream(
            context,
            ns,
            prefix,
            start_text=start,
            last_event_id=last_event_id,
            filter_text=filter_text,
        ),
    )
