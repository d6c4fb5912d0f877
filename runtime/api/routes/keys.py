"""Broker credentials: named keys (secret shown once) and short-lived credentials."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from runtime.api.auth import ContainerDep, CurrentPrincipal
from runtime.api.convert import key_out
from runtime.api.idempotency import respond
from runtime.api.responses import errors
from runtime.api.schemas import (
    CredentialsCreate,
    CredentialsOut,
    KeyCreate,
    KeyCreated,
    KeyOut,
    ListOf,
)

router = APIRouter(prefix="/v1", tags=["credentials"])


@router.post(
    "/keys",
    status_code=201,
    response_model=KeyCreated,
    responses=errors(409, 429),
    summary="Create a named key; the secret is in this reply only",
)
def create_key(
    body: KeyCreate, request: Request, principal: CurrentPrincipal, container: ContainerDep
) -> Response:
    def action() -> KeyCreated:
        issued = container.fabric.keys.create(principal, body.name)
        return KeyCreated(secret=issued.secret, **key_out(issued.key).model_dump())

    return respond(request, principal, status=201, action=action, body=body, withhold=("secret",))


@router.get("/keys", response_model=ListOf[KeyOut], responses=errors(), summary="List my keys")
def list_keys(principal: CurrentPrincipal, container: ContainerDep) -> ListOf[KeyOut]:
    return ListOf[KeyOut](items=[key_out(k) for k in container.fabric.keys.list(principal)])


@router.delete("/keys/{key_id}", status_code=204, responses=errors(404), summary="Delete a key")
def delete_key(
    key_id: str, request: Request, principal: CurrentPrincipal, container: ContainerDep
) -> Response:
    return respond(
        request,
        principal,
        status=204,
        action=lambda: container.fabric.keys.delete(principal, key_id),
    )


@router.post(
    "/credentials",
    status_code=201,
    response_model=CredentialsOut,
    responses=errors(409),
    summary="Short-lived broker credentials for more clients",
)
def create_credentials(
    request: Request,
    principal: CurrentPrincipal,
    container: ContainerDep,
    body: CredentialsCreate | None = None,
) -> Response:
    def action() -> CredentialsOut:
        creds = container.fabric.keys.session(principal, body.duration_seconds if body else None)
        return CredentialsOut(region=container.settings.region, **creds.model_dump())

    # Short-lived credentials are secrets and cheap to issue again: a retry (with or
    # without Idempotency-Key) gets fresh ones; nothing is stored for a replay.
    return Response(action().model_dump_json(), status_code=201, media_type="application/json")
