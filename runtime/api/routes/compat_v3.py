"""Octopus v3 compatibility (``/api/v3``) so ``diaspora-event-sdk`` works unchanged.

Every route calls the same domain core as ``/v1``: authorization, quotas and name
rules come from there. Replies keep Octopus v3's bodies (``status``, ``message``
and the fields the SDK hands to its users) but errors carry the right HTTP status
and Confluent's ``{"error_code", "message"}`` body — never a 200 for an error.
The ``Subject`` header, which the SDK sends on every call, must be the token's
``sub``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from runtime.api.auth import ContainerDep, CurrentPrincipal
from runtime.api.idempotency import respond
from runtime.api.routes.records import produce_batch, produce_one
from runtime.api.schemas import BatchOut, RecordBatchIn, RecordIn, RecordOut
from runtime.domain.access import require_owner
from runtime.domain.consumers import confluent_code_of
from runtime.domain.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    FabricError,
    Forbidden,
    NotFound,
)
from runtime.domain.ports import Principal

# The one broker key an Octopus v3 client holds; POST /api/v3/key replaces it.
V3_KEY_NAME = "octopus-v3"


class ConfluentErrorRoute(APIRoute):
    """Answers a ``FabricError`` with Confluent's body and the most specific code.

    The app-wide handler already answers ``/api/`` paths in Confluent's form with
    ``status*100+1``; this route class keeps the finer codes the SDK acts on
    (40403 instance gone, 40903 not assigned, 40902 instance exists).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def confluent_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except FabricError as exc:
                headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
                return JSONResponse(
                    {"error_code": confluent_code_of(exc), "message": exc.message},
                    status_code=exc.status,
                    headers=headers,
                )

        return confluent_errors


def subject_matches(principal: Principal, subject: str | None, *, required: bool) -> Principal:
    if subject is None:
        if required:
            raise BadRequest("Subject must be provided in the 'Subject' header")
        return principal
    if subject.strip().lower() != principal.sub.lower():
        raise Forbidden("the Subject header does not match the identity of the token")
    return principal


def v3_caller(
    principal: CurrentPrincipal,
    subject: Annotated[str | None, Header(alias="Subject")] = None,
) -> Principal:
    return subject_matches(principal, subject, required=True)


V3Caller = Annotated[Principal, Depends(v3_caller)]


class ConfluentError(BaseModel):
    error_code: int
    message: str


_ERROR_DESCRIPTIONS = {
    400: "Bad request (missing Subject, invalid name, bad JSON)",
    401: "Missing, invalid or expired token",
    403: "Subject differs from the token, or known resource without the needed access",
    404: "Not found, not visible to you, or consumer instance gone (40403)",
    406: "Accept names the other embedded format (40601)",
    409: "Conflict: name taken (40902), partition not assigned (40903), platform limit",
    413: "Request body too large",
    422: "Invalid field (named in the message)",
    429: "Quota exceeded (named in the message)",
    503: "A dependency is unavailable; nothing was changed",
}


def confluent_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Error replies in Confluent's form, for the OpenAPI document."""
    codes = set(statuses) | {400, 401, 403, 404, 413, 422, 503}
    return {
        code: {"model": ConfluentError, "description": _ERROR_DESCRIPTIONS[code]}
        for code in sorted(codes)
    }


router = APIRouter(
    prefix="/api/v3",
    tags=["octopus-v3"],
    route_class=ConfluentErrorRoute,
    responses=confluent_errors(409, 429),
)


class V3Status(BaseModel):
    status: str = "success"
    message: str


class V3User(V3Status):
    subject: str
    namespace: str


class V3Key(V3Status):
    access_key: str
    secret_key: str
    create_date: str
    endpoint: str
    fresh: bool = True


class V3Namespaces(V3Status):
    namespaces: dict[str, list[str]]


class V3Topics(V3Status):
    topics: list[str]


def _topic_names(container: ContainerDep, principal: Principal, namespace: str) -> list[str]:
    names: list[str] = []
    cursor: str | None = None
    while True:
        page = container.fabric.topics.list(principal, namespace, cursor=cursor, limit=1000)
        names.extend(t.name for t in page.items)
        cursor = page.next_cursor
        if not cursor:
            return sorted(names)


@router.post("/user", response_model=V3User, summary="Register the caller (idempotent)")
def create_user(principal: V3Caller, container: ContainerDep) -> V3User:
    identity = container.fabric.identities.ensure(principal)
    return V3User(
        message=f"User {principal.sub} created with namespace {identity.default_namespace}",
        subject=principal.sub,
        namespace=identity.default_namespace,
    )


@router.delete(
    "/user",
    response_model=V3Status,
    summary="Delete the caller's keys, default-namespace topics and broker principal",
)
def delete_user(principal: V3Caller, container: ContainerDep) -> V3Status:
    fabric = container.fabric
    identity = fabric.identities.ensure(principal)
    others = [n.name for n in fabric.namespaces.list(principal) if not n.is_default]
    if others:
        raise Conflict(
            f"Cannot delete user {principal.sub}: user has {len(others)} additional "
            "namespace(s). Delete namespaces first.",
            details={"namespaces": others},
        )
    for topic in _topic_names(container, principal, identity.default_namespace):
        fabric.topics.delete(principal, identity.default_namespace, topic)
    for key in fabric.keys.list(principal):
        fabric.keys.delete(principal, key.key_id)
    fabric.deps.credentials.delete_principal(identity)
    return V3Status(message=f"User {principal.sub} deleted")


@router.post(
    "/key",
    response_model=V3Key,
    summary="Replace the caller's Octopus v3 key with a new one (secret in this reply only)",
)
def create_key(principal: V3Caller, container: ContainerDep) -> V3Key:
    keys = container.fabric.keys
    for key in keys.list(principal):
        if key.name == V3_KEY_NAME:
            keys.delete(principal, key.key_id)
    issued = keys.create(principal, V3_KEY_NAME)
    return V3Key(
        message=f"Access key created for {principal.sub}",
        access_key=issued.key.key_id,
        secret_key=issued.secret,
        create_date=issued.key.created_at.isoformat(),
        endpoint=container.settings.bootstrap_servers,
    )


@router.delete("/key", response_model=V3Status, summary="Delete the caller's Octopus v3 key")
def delete_key(principal: V3Caller, container: ContainerDep) -> V3Status:
    keys = container.fabric.keys
    for key in keys.list(principal):
        if key.name == V3_KEY_NAME:
            keys.delete(principal, key.key_id)
    return V3Status(message=f"Access key deleted for {principal.sub}")


@router.get(
    "/namespace", response_model=V3Namespaces, summary="The caller's namespaces and their topics"
)
def list_namespaces(principal: V3Caller, container: ContainerDep) -> V3Namespaces:
    owned = container.fabric.namespaces.list(principal)
    return V3Namespaces(
        message=f"Found {len(owned)} namespaces for {principal.sub}",
        namespaces={n.name: _topic_names(container, principal, n.name) for n in owned},
    )


@router.post("/{namespace}/{topic}", response_model=V3Topics, summary="Create a topic")
def create_topic(
    namespace: str, topic: str, principal: V3Caller, container: ContainerDep
) -> V3Topics:
    try:
        container.fabric.topics.create(principal, namespace, topic)
        message = f"Topic {topic} created in {namespace}"
    except AlreadyExists:
        # Octopus v3 answered a repeated create as a success; only the very same topic
        # (not a '.'/'_' collision) counts as already there.
        if container.fabric.deps.registry.get_topic(namespace, topic) is None:
            raise
        message = f"Topic {topic} already exists in {namespace}"
    return V3Topics(message=message, topics=_topic_names(container, principal, namespace))


@router.delete("/{namespace}/{topic}", response_model=V3Topics, summary="Delete a topic")
def delete_topic(
    namespace: str, topic: str, principal: V3Caller, container: ContainerDep
) -> V3Topics:
    fabric = container.fabric
    # The owner check comes first (403/404 for anyone else); for the owner a topic that
    # is already gone is a success, as Octopus v3 answered it.
    require_owner(fabric.deps.registry, principal, namespace, "delete its topics")
    try:
        fabric.topics.delete(principal, namespace, topic)
        message = f"Topic {topic} deleted from {namespace}"
    except NotFound:
        message = f"Topic {topic} not found in {namespace}"
    return V3Topics(message=message, topics=_topic_names(container, principal, namespace))


@router.put(
    "/{namespace}/{topic}/recreate",
    response_model=V3Status,
    summary="Empty a topic: delete and create it again with the same settings",
)
def recreate_topic(
    namespace: str, topic: str, principal: V3Caller, container: ContainerDep
) -> V3Status:
    container.fabric.topics.recreate(principal, namespace, topic)
    return V3Status(message="Topic recreated")


@router.post(
    "/{namespace}/topics/{topic}/records",
    response_model=RecordOut,
    summary="Produce one record (Confluent REST v3 body); replies after acks=all",
)
def produce_record(
    namespace: str,
    topic: str,
    body: RecordIn,
    request: Request,
    principal: V3Caller,
    container: ContainerDep,
) -> Response:
    return respond(
        request,
        principal,
        status=200,
        body=body,
        action=lambda: produce_one(container, principal, namespace, topic, body),
    )


@router.post(
    "/{namespace}/topics/{topic}/records:batch",
    status_code=207,
    response_model=BatchOut,
    summary="Produce up to 500 records; 207 with each entry's outcome",
)
def produce_records_batch(
    namespace: str,
    topic: str,
    body: RecordBatchIn,
    request: Request,
    principal: V3Caller,
    container: ContainerDep,
) -> Response:
    return respond(
        request,
        principal,
        status=207,
        body=body,
        action=lambda: produce_batch(container, principal, namespace, topic, body),
    )
