"""REST consumer instances (Confluent REST Proxy v2 style) under ``/api/v2/consumers``.

The routes ``diaspora-event-sdk``'s ``RESTConsumer`` uses. They act in the caller's
default namespace: group ``g`` is the Kafka group ``<namespace>.g`` and topics are
named without the namespace. Instance state lives in the registry (see
``runtime.domain.consumers``), so any API instance answers the next call.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from runtime.api.auth import ContainerDep, CurrentPrincipal
from runtime.api.container import Container
from runtime.api.routes.compat_v3 import ConfluentErrorRoute, confluent_errors, subject_matches
from runtime.api.routes.http_consume import partition_reader
from runtime.domain.consumers import ConsumerService, Format
from runtime.domain.ports import Principal

SERVICE_EXTRA = "rest_consumers"
V2_JSON = "application/vnd.kafka.v2+json"


def consumer_service(container: Container) -> ConsumerService:
    """The container's consumer service (built once from the settings if not supplied)."""
    service = container.extras.get(SERVICE_EXTRA)
    if service is None:
        from runtime.adapters.kafka_group_offsets import KafkaGroupOffsets
        from runtime.wiring import kafka_client_config

        fabric = container.fabric
        service = ConsumerService(
            fabric.deps,
            fabric.identities,
            fabric.topics,
            reader=partition_reader(container),
            offsets=KafkaGroupOffsets(kafka_client_config(container.settings)),
        )
        container.extras[SERVICE_EXTRA] = service
    result: ConsumerService = service
    return result


def consumer_caller(
    principal: CurrentPrincipal,
    subject: Annotated[str | None, Header(alias="Subject")] = None,
) -> Principal:
    # Plain Confluent clients send no Subject; when one is sent it must match.
    return subject_matches(principal, subject, required=False)


Caller = Annotated[Principal, Depends(consumer_caller)]


def service_of(container: ContainerDep) -> ConsumerService:
    return consumer_service(container)


Service = Annotated[ConsumerService, Depends(service_of)]

router = APIRouter(
    prefix="/api/v2/consumers/{group}",
    tags=["rest-consumers"],
    route_class=ConfluentErrorRoute,
    responses=confluent_errors(406, 409),
)
INSTANCE = "/instances/{instance}"


class V2Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CreateInstance(V2Body):
    name: str | None = None
    format: str = "binary"
    auto_offset_reset: str | None = Field(default=None, alias="auto.offset.reset")
    auto_commit_enable: str | bool | None = Field(default=None, alias="auto.commit.enable")
    fetch_min_bytes: str | int | None = Field(default=None, alias="fetch.min.bytes")
    consumer_request_timeout_ms: str | int | None = Field(
        default=None, alias="consumer.request.timeout.ms"
    )


class InstanceCreated(BaseModel):
    instance_id: str
    base_uri: str


class Subscription(V2Body):
    topics: list[str] = Field(default_factory=list)


class PartitionRef(V2Body):
    topic: str
    partition: int = Field(ge=0)


class PartitionOffset(PartitionRef):
    offset: int = Field(ge=0)


class CommittedOffset(PartitionOffset):
    metadata: str = ""


class Partitions(V2Body):
    partitions: list[PartitionRef] = Field(default_factory=list)


class Offsets(V2Body):
    offsets: list[PartitionOffset] | None = None


class SeekOffsets(V2Body):
    offsets: list[PartitionOffset]


class CommittedOffsets(BaseModel):
    offsets: list[CommittedOffset]


class Topics(BaseModel):
    topics: list[str]


def _no_content() -> Response:
    return Response(status_code=204)


@router.post("", response_model=InstanceCreated, summary="Create a consumer instance")
def create_instance(
    group: str, body: CreateInstance, request: Request, principal: Caller, service: Service
) -> InstanceCreated:
    raw = body.model_dump(by_alias=True, exclude={"name"})
    instance = service.create(principal, group, body.name, raw)
    # Built from the request's own base URL: the SDK sends its token only to the
    # origin it was configured with.
    base = str(request.base_url).rstrip("/")
    quoted = urllib.parse.quote(group, safe="")
    uri = f"{base}/api/v2/consumers/{quoted}/instances/{urllib.parse.quote(instance.instance_id)}"
    return InstanceCreated(instance_id=instance.instance_id, base_uri=uri)


@router.delete(INSTANCE, status_code=204, summary="Delete a consumer instance")
def delete_instance(group: str, instance: str, principal: Caller, service: Service) -> Response:
    service.delete(principal, group, instance)
    return _no_content()


@router.post(INSTANCE + "/subscription", status_code=204, summary="Subscribe to topics")
def subscribe(
    group: str, instance: str, body: Subscription, principal: Caller, service: Service
) -> Response:
    service.subscribe(principal, group, instance, body.topics)
    return _no_content()


@router.get(INSTANCE + "/subscription", response_model=Topics, summary="Subscribed topics")
def subscription(group: str, instance: str, principal: Caller, service: Service) -> Topics:
    return Topics(topics=service.subscription(principal, group, instance))


@router.delete(INSTANCE + "/subscription", status_code=204, summary="Unsubscribe")
def unsubscribe(group: str, instance: str, principal: Caller, service: Service) -> Response:
    service.unsubscribe(principal, group, instance)
    return _no_content()


@router.post(INSTANCE + "/assignments", status_code=204, summary="Assign partitions")
def assign(
    group: str, instance: str, body: Partitions, principal: Caller, service: Service
) -> Response:
    service.assign(principal, group, instance, [(p.topic, p.partition) for p in body.partitions])
    return _no_content()


@router.get(INSTANCE + "/assignments", response_model=Partitions, summary="Assigned partitions")
def assignment(group: str, instance: str, principal: Caller, service: Service) -> Partitions:
    assigned = service.assignment(principal, group, instance)
    return Partitions(partitions=[PartitionRef(topic=t, partition=p) for t, p in assigned])


def _wanted_format(accept: str | None) -> Format | None:
    """The embedded format an Accept header asks for, if it names one."""
    for kind in (accept or "").split(","):
        media = kind.split(";")[0].strip().lower()
        if media == "application/vnd.kafka.binary.v2+json":
            return "binary"
        if media == "application/vnd.kafka.json.v2+json":
            return "json"
    return None


_RECORDS_SCHEMA = {"type": "array", "items": {"type": "object"}}


@router.get(
    INSTANCE + "/records",
    summary="Fetch records (Accept: application/vnd.kafka.{binary|json}.v2+json)",
    response_class=JSONResponse,
    responses={
        200: {
            "description": "Records: topic, key, value, partition, offset, timestamp, headers",
            "content": {
                f"application/vnd.kafka.{fmt}.v2+json": {"schema": _RECORDS_SCHEMA}
                for fmt in ("binary", "json")
            },
        }
    },
)
def records(
    group: str,
    instance: str,
    principal: Caller,
    service: Service,
    accept: Annotated[str | None, Header()] = None,
    timeout: int | None = Query(default=None, ge=0),
    max_bytes: int | None = Query(default=None, ge=1),
) -> Response:
    fmt, fetched = service.fetch(
        principal,
        group,
        instance,
        timeout_ms=timeout,
        max_bytes=max_bytes,
        wanted_format=_wanted_format(accept),
    )
    return JSONResponse(fetched, media_type=f"application/vnd.kafka.{fmt}.v2+json")


@router.post(INSTANCE + "/offsets", status_code=204, summary="Commit offsets")
def commit(
    group: str,
    instance: str,
    principal: Caller,
    service: Service,
    body: Offsets | None = None,
) -> Response:
    offsets = body.offsets if body is not None else None
    service.commit(
        principal,
        group,
        instance,
        [(o.topic, o.partition, o.offset) for o in offsets] if offsets else None,
    )
    return _no_content()


@router.get(INSTANCE + "/offsets", response_model=CommittedOffsets, summary="Committed offsets")
def committed(
    group: str,
    instance: str,
    principal: Caller,
    service: Service,
    body: Partitions | None = None,
) -> CommittedOffsets:
    wanted = [(p.topic, p.partition) for p in body.partitions] if body else []
    found = service.committed(principal, group, instance, wanted)
    return CommittedOffsets(
        offsets=[CommittedOffset(topic=t, partition=p, offset=o) for t, p, o in found]
    )


@router.post(INSTANCE + "/positions", status_code=204, summary="Seek to offsets")
def seek(
    group: str, instance: str, body: SeekOffsets, principal: Caller, service: Service
) -> Response:
    service.seek(
        principal, group, instance, [(o.topic, o.partition, o.offset) for o in body.offsets]
    )
    return _no_content()


@router.post(INSTANCE + "/positions/beginning", status_code=204, summary="Seek to the beginning")
def seek_to_beginning(
    group: str,
    instance: str,
    principal: Caller,
    service: Service,
    body: Partitions | None = None,
) -> Response:
    wanted = [(p.topic, p.partition) for p in body.partitions] if body else []
    service.seek_edge(principal, group, instance, wanted, end=False)
    return _no_content()


@router.post(INSTANCE + "/positions/end", status_code=204, summary="Seek to the end")
def seek_to_end(
    group: str,
    instance: str,
    principal: Caller,
    service: Service,
    body: Partitions | None = None,
) -> Response:
    wanted = [(p.topic, p.partition) for p in body.partitions] if body else []
    service.seek_edge(principal, group, instance, wanted, end=True)
    return _no_content()
