"""Managed triggers: act on matching events with a webhook or a function (docs/triggers.md).

The routes only translate: ``runtime.domain.triggers.TriggerService`` validates against the
configured limits, checks ownership and topic access, and drives the platform (Lambda on
AWS, the local runner locally). Its field errors name the field (``webhook.url``,
``function.memory_mb``, ``filters[0]`` ...).

Function code too large for inline base64 is uploaded first: ``POST /v1/triggers/code-uploads``
answers where and how (a presigned S3 POST on AWS; locally a ``PUT`` to
``/v1/triggers/code-uploads/{upload_id}`` on this service, streamed to the state directory),
and the trigger names it as ``function.code_upload_id``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from runtime.api.auth import ContainerDep, CurrentPrincipal
from runtime.api.container import Container
from runtime.api.idempotency import respond
from runtime.api.responses import errors
from runtime.api.schemas import Body, ListOf
from runtime.domain.errors import NotFound, Unavailable
from runtime.domain.models import Trigger, TriggerState
from runtime.domain.triggers import (
    FunctionDraft,
    TriggerChanges,
    TriggerDraft,
    TriggerService,
    WebhookDraft,
    field_error,
    spec_of,
)

router = APIRouter(prefix="/v1/triggers", tags=["triggers"])

SERVICE_KEY = "triggers"
# The one route allowed a body above max_body_bytes (its own cap: trigger_code_max_bytes).
CODE_UPLOAD_PUT_PATH: Final = re.compile(r"/v1/triggers/code-uploads/[^/]+")


def trigger_service(container: Container) -> TriggerService:
    service = container.extras.get(SERVICE_KEY)
    if not isinstance(service, TriggerService):
        raise Unavailable("triggers are not configured on this fabric")
    return service


# ----------------------------------------------------------------------------- wire format

Pattern = dict[str, Any] | str


class WebhookIn(Body):
    url: str = Field(max_length=2048, examples=["https://example.org/hooks/octopus"])
    headers: dict[str, str] = Field(default_factory=dict, description="Static request headers")


class FunctionIn(Body):
    runtime: str = Field(examples=["python3.13"])
    handler: str = Field(examples=["app.handler"], description="module.function in the zip")
    code_base64: str | None = Field(
        default=None,
        description="The zip file, base64 (Lambda's inline limit: 50 MB); or code_upload_id",
    )
    code_upload_id: str | None = Field(
        default=None,
        max_length=64,
        description="An upload of yours (POST /v1/triggers/code-uploads); or code_base64",
    )
    memory_mb: int = 128
    timeout_seconds: int = 3
    environment: dict[str, str] = Field(default_factory=dict)


class TriggerCreate(Body):
    name: str = Field(examples=["frames-to-webhook"])
    namespace: str
    topic: str
    kind: Literal["webhook", "function"]
    filters: list[Pattern] = Field(
        default_factory=list,
        description="Lambda filter patterns (JSON objects or strings) on 'value'; ORed",
        examples=[[{"value": {"status": ["done"]}}]],
    )
    batch_size: int = 100
    batching_window_seconds: int = 0
    starting_position: Literal["LATEST", "TRIM_HORIZON", "AT_TIMESTAMP"] = "LATEST"
    starting_timestamp: datetime | None = None
    enabled: bool = True
    max_retries: int = Field(
        default=3, description="Retries of a failed delivery before it is dead-lettered"
    )
    webhook: WebhookIn | None = None
    function: FunctionIn | None = None


class FunctionPatch(Body):
    code_base64: str | None = None
    code_upload_id: str | None = Field(default=None, max_length=64)


class TriggerPatch(Body):
    filters: list[Pattern] | None = None
    batch_size: int | None = None
    batching_window_seconds: int | None = None
    enabled: bool | None = None
    max_retries: int | None = None
    function: FunctionPatch | None = None


class WebhookOut(BaseModel):
    url: str
    headers: dict[str, str]


class FunctionOut(BaseModel):
    runtime: str
    handler: str
    memory_mb: int
    timeout_seconds: int
    environment: dict[str, str]
    code_sha256: str
    code_size: int


class TriggerOut(BaseModel):
    trigger_id: str
    name: str
    owner: str
    namespace: str
    topic: str
    kind: Literal["webhook", "function"]
    filters: list[str] = Field(description="Lambda filter patterns, as JSON strings")
    batch_size: int
    batching_window_seconds: int
    starting_position: Literal["LATEST", "TRIM_HORIZON", "AT_TIMESTAMP"]
    starting_timestamp: datetime | None
    enabled: bool
    max_retries: int
    consumer_group: str
    webhook: WebhookOut | None
    function: FunctionOut | None
    state: TriggerState
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class TriggerCreated(TriggerOut):
    webhook_secret: str | None = Field(
        default=None,
        description="HMAC-SHA256 signing key of a webhook trigger: in this reply only",
    )


class CodeUploadOut(BaseModel):
    upload_id: str
    method: Literal["POST", "PUT"] = Field(
        description="POST: an HTML form upload (fields, then the file as 'file'); PUT: the raw zip"
    )
    url: str
    fields: dict[str, str] = Field(description="Form fields to send before the file (POST)")
    headers: dict[str, str] = Field(description="Headers to send with the upload")
    expires_at: datetime
    max_bytes: int


class CodeUploaded(BaseModel):
    upload_id: str
    size: int


class LogLineOut(BaseModel):
    timestamp: datetime
    message: str


class DeadLetterOut(BaseModel):
    failed_at: datetime
    reason: str
    topic: str
    partition: int
    offset: int
    key: str | None = Field(description="base64; null if absent or dropped for size")
    value: str | None = Field(description="base64; null if absent or dropped for size")


def trigger_out(trigger: Trigger) -> TriggerOut:
    spec = spec_of(trigger)
    return TriggerOut(
        trigger_id=trigger.trigger_id,
        name=spec.name,
        owner=trigger.owner,
        namespace=trigger.namespace,
        topic=trigger.topic,
        kind=trigger.kind,
        filters=spec.filters,
        batch_size=spec.batch_size,
        batching_window_seconds=spec.batching_window_seconds,
        starting_position=spec.starting_position,
        starting_timestamp=spec.starting_timestamp,
        enabled=trigger.enabled,
        max_retries=spec.max_retries,
        consumer_group=spec.consumer_group,
        webhook=WebhookOut(**spec.webhook.model_dump()) if spec.webhook else None,
        function=FunctionOut(**spec.function.model_dump()) if spec.function else None,
        state=trigger.state,
        last_error=trigger.last_error,
        created_at=trigger.created_at,
        updated_at=trigger.updated_at,
    )


def draft_of(body: TriggerCreate) -> TriggerDraft:
    webhook = (
        WebhookDraft(url=body.webhook.url, headers=body.webhook.headers) if body.webhook else None
    )
    function = (
        FunctionDraft(
            runtime=body.function.runtime,
            handler=body.function.handler,
            code_base64=body.function.code_base64,
            code_upload_id=body.function.code_upload_id,
            memory_mb=body.function.memory_mb,
            timeout_seconds=body.function.timeout_seconds,
            environment=body.function.environment,
        )
        if body.function
        else None
    )
    return TriggerDraft(
        name=body.name,
        namespace=body.namespace,
        topic=body.topic,
        kind=body.kind,
        filters=list(body.filters),
        batch_size=body.batch_size,
        batching_window_seconds=body.batching_window_seconds,
        starting_position=body.starting_position,
        starting_timestamp=body.starting_timestamp,
        enabled=body.enabled,
        max_retries=body.max_retries,
        webhook=webhook,
        function=function,
    )


# ---------------------------------------------------------------------------------- routes


@router.post(
    "/code-uploads",
    status_code=201,
    response_model=CodeUploadOut,
    responses=errors(503),
    summary="Where to upload a function's zip; then create or patch with function.code_upload_id",
)
def start_code_upload(
    request: Request, principal: CurrentPrincipal, container: ContainerDep
) -> CodeUploadOut:
    ticket = trigger_service(container).start_upload(principal)
    url = ticket.url
    if url.startswith("/"):  # local mode: this service, at the address the caller used
        url = str(request.base_url).rstrip("/") + url
    return CodeUploadOut(**ticket.model_dump(exclude={"url"}), url=url)


@router.put(
    "/code-uploads/{upload_id}",
    response_model=CodeUploaded,
    responses=errors(404, 413),
    summary="Local mode: the zip as the raw body (up to trigger_code_max_bytes)",
)
async def put_code_upload(
    upload_id: str, request: Request, principal: CurrentPrincipal, container: ContainerDep
) -> CodeUploaded:
    # Imported here: the route exists on AWS too, where uploads go to S3 instead.
    from runtime.adapters.local.code_uploads import LocalCodeUploads

    uploads = trigger_service(container).uploads
    if not isinstance(uploads, LocalCodeUploads):
        raise NotFound("on this fabric, upload to the URL from POST /v1/triggers/code-uploads")
    size = await uploads.receive(principal.sub, upload_id, request.stream())
    return CodeUploaded(upload_id=upload_id, size=size)


@router.post(
    "",
    status_code=201,
    response_model=TriggerCreated,
    responses=errors(403, 404, 409, 429),
    summary="Create a trigger; a webhook's signing secret is in this reply only",
)
def create_trigger(
    body: TriggerCreate, request: Request, principal: CurrentPrincipal, container: ContainerDep
) -> Response:
    service = trigger_service(container)

    def action() -> TriggerCreated:
        created = service.create(principal, draft_of(body))
        return TriggerCreated(
            **trigger_out(created.trigger).model_dump(), webhook_secret=created.webhook_secret
        )

    return respond(
        request, principal, status=201, action=action, body=body, withhold=("webhook_secret",)
    )


@router.get(
    "",
    response_model=ListOf[TriggerOut],
    responses=errors(),
    summary="List my triggers (paginated; ?namespace= and ?topic= narrow it)",
)
def list_triggers(
    principal: CurrentPrincipal,
    container: ContainerDep,
    namespace: str | None = Query(default=None, max_length=64),
    topic: str | None = Query(default=None, max_length=249),
    cursor: str | None = Query(default=None, max_length=2048),
    limit: int = Query(default=100, ge=1, le=1000),
) -> ListOf[TriggerOut]:
    page = trigger_service(container).list(
        principal, namespace=namespace, topic=topic, cursor=cursor, limit=limit
    )
    return ListOf[TriggerOut](
        items=[trigger_out(t) for t in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/{trigger_id}",
    response_model=TriggerOut,
    responses=errors(404),
    summary="A trigger: its settings and state (creating, active, failing, disabled)",
)
def get_trigger(
    trigger_id: str, principal: CurrentPrincipal, container: ContainerDep
) -> TriggerOut:
    return trigger_out(trigger_service(container).get(principal, trigger_id))


@router.patch(
    "/{trigger_id}",
    response_model=TriggerOut,
    responses=errors(403, 404, 409),
    summary="Change filters, batching, retries, enabled, or a function's code",
)
def update_trigger(
    trigger_id: str,
    body: TriggerPatch,
    request: Request,
    principal: CurrentPrincipal,
    container: ContainerDep,
) -> Response:
    service = trigger_service(container)
    if body.function is not None and (
        body.function.code_base64 is None and body.function.code_upload_id is None
    ):
        raise field_error("function.code_base64", "give code_base64 or code_upload_id")
    changes = TriggerChanges(
        filters=list(body.filters) if body.filters is not None else None,
        batch_size=body.batch_size,
        batching_window_seconds=body.batching_window_seconds,
        enabled=body.enabled,
        max_retries=body.max_retries,
        code_base64=body.function.code_base64 if body.function else None,
        code_upload_id=body.function.code_upload_id if body.function else None,
    )

    def action() -> TriggerOut:
        return trigger_out(service.update(principal, trigger_id, changes))

    return respond(request, principal, status=200, action=action, body=body)


@router.delete(
    "/{trigger_id}",
    status_code=204,
    responses=errors(404, 409),
    summary="Delete a trigger and everything it runs on",
)
def delete_trigger(
    trigger_id: str, request: Request, principal: CurrentPrincipal, container: ContainerDep
) -> Response:
    service = trigger_service(container)
    return respond(
        request, principal, status=204, action=lambda: service.delete(principal, trigger_id)
    )


@router.get(
    "/{trigger_id}/logs",
    response_model=ListOf[LogLineOut],
    responses=errors(404),
    summary="The trigger's logs in time order (?since= an ISO time; paginated)",
)
def trigger_logs(
    trigger_id: str,
    principal: CurrentPrincipal,
    container: ContainerDep,
    since: datetime | None = Query(default=None, description="ISO 8601 time"),  # noqa: B008
    cursor: str | None = Query(default=None, max_length=2048),
    limit: int = Query(default=100, ge=1, le=1000),
) -> ListOf[LogLineOut]:
    page = trigger_service(container).logs(
        principal, trigger_id, since=since, cursor=cursor, limit=limit
    )
    return ListOf[LogLineOut](
        items=[LogLineOut(**line.model_dump()) for line in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/{trigger_id}/dead-letters",
    response_model=ListOf[DeadLetterOut],
    responses=errors(404),
    summary="Events the trigger could not deliver, and why (paginated)",
)
def trigger_dead_letters(
    trigger_id: str,
    principal: CurrentPrincipal,
    container: ContainerDep,
    cursor: str | None = Query(default=None, max_length=2048),
    limit: int = Query(default=100, ge=1, le=1000),
) -> ListOf[DeadLetterOut]:
    page = trigger_service(container).dead_letters(
        principal, trigger_id, cursor=cursor, limit=limit
    )
    return ListOf[DeadLetterOut](
        items=[DeadLetterOut(**letter.model_dump()) for letter in page.items],
        next_cursor=page.next_cursor,
    )
