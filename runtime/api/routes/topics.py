"""Topics of a namespace: Kafka name ``{ns}.{topic}``; dotted names form channels."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from runtime.api.auth import ContainerDep, CurrentPrincipal
from runtime.api.convert import topic_detail, topic_out
from runtime.api.idempotency import respond
from runtime.api.responses import errors
from runtime.api.schemas import (
    ListOf,
    PartitionsIncrease,
    TopicConfigure,
    TopicConfigured,
    TopicCreate,
    TopicDetail,
    TopicOut,
)

router = APIRouter(prefix="/v1/namespaces/{ns}/topics", tags=["topics"])


@router.post(
    "",
    status_code=201,
    response_model=TopicOut,
    responses=errors(403, 404, 409, 429),
    summary="Create a topic",
)
def create_topic(
    ns: str,
    body: TopicCreate,
    request: Request,
    principal: CurrentPrincipal,
    container: ContainerDep,
) -> Response:
    def action() -> TopicOut:
        topic = container.fabric.topics.create(
            principal, ns, body.name, partitions=body.partitions, configs=body.configs
        )
        return topic_out(topic)

    return respond(request, principal, status=201, action=action, body=body)


@router.get(
    "",
    response_model=ListOf[TopicOut],
    responses=errors(404),
    summary="List topics (paginated; ?prefix= for a channel subtree)",
)
def list_topics(
    ns: str,
    principal: CurrentPrincipal,
    container: ContainerDep,
    prefix: str = Query(default="", max_length=249),
    cursor: str | None = Query(default=None, max_length=2048),
    limit: int = Query(default=100, ge=1, le=1000),
) -> ListOf[TopicOut]:
    page = container.fabric.topics.list(principal, ns, prefix=prefix, cursor=cursor, limit=limit)
    return ListOf[TopicOut](items=[topic_out(t) for t in page.items], next_cursor=page.next_cursor)


@router.get(
    "/{topic}",
    response_model=TopicDetail,
    responses=errors(404),
    summary="A topic: partitions, configs, owner, and (for the owner) grants",
)
def get_topic(
    ns: str, topic: str, principal: CurrentPrincipal, container: ContainerDep
) -> TopicDetail:
    found, grants, access = container.fabric.topics.get(principal, ns, topic)
    return topic_detail(found, grants, access)


@router.patch(
    "/{topic}",
    response_model=TopicConfigured,
    responses=errors(403, 404, 409),
    summary="Change allowed topic configs; answers before and after",
)
def configure_topic(
    ns: str,
    topic: str,
    body: TopicConfigure,
    request: Request,
    principal: CurrentPrincipal,
    container: ContainerDep,
) -> Response:
    def action() -> TopicConfigured:
        before, after, updated = container.fabric.topics.configure(
            principal, ns, topic, body.configs
        )
        return TopicConfigured(before=before, after=after, topic=topic_out(updated))

    return respond(request, principal, status=200, action=action, body=body)


@router.post(
    "/{topic}/partitions",
    response_model=TopicOut,
    responses=errors(403, 404, 409, 429),
    summary="Increase the partition count (the embedded broker cannot: 409)",
)
def add_partitions(
    ns: str,
    topic: str,
    body: PartitionsIncrease,
    request: Request,
    principal: CurrentPrincipal,
    container: ContainerDep,
) -> Response:
    def action() -> TopicOut:
        return topic_out(container.fabric.topics.add_partitions(principal, ns, topic, body.count))

    return respond(request, principal, status=200, action=action, body=body)


@router.post(
    "/{topic}/recreate",
    response_model=TopicOut,
    responses=errors(403, 404, 409),
    summary="Empty a topic: delete and create it again with the same settings and grants",
)
def recreate_topic(
    ns: str, topic: str, request: Request, principal: CurrentPrincipal, container: ContainerDep
) -> Response:
    def action() -> TopicOut:
        return topic_out(container.fabric.topics.recreate(principal, ns, topic))

    return respond(request, principal, status=200, action=action)


@router.delete(
    "/{topic}", status_code=204, responses=errors(403, 404, 409), summary="Delete a topic"
)
def delete_topic(
    ns: str, topic: str, request: Request, principal: CurrentPrincipal, container: ContainerDep
) -> Response:
    return respond(
        request,
        principal,
        status=204,
        action=lambda: container.fabric.topics.delete(principal, ns, topic),
    )
