"""Namespaces: first come, first served; quota-bound."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from runtime.api.auth import ContainerDep, CurrentPrincipal
from runtime.api.convert import namespace_out
from runtime.api.idempotency import respond
from runtime.api.responses import errors
from runtime.api.schemas import ListOf, NamespaceCreate, NamespaceOut

router = APIRouter(prefix="/v1", tags=["namespaces"])


@router.post(
    "/namespaces",
    status_code=201,
    response_model=NamespaceOut,
    responses=errors(409, 429),
    summary="Claim a namespace",
)
def create_namespace(
    body: NamespaceCreate, request: Request, principal: CurrentPrincipal, container: ContainerDep
) -> Response:
    return respond(
        request,
        principal,
        status=201,
        body=body,
        action=lambda: namespace_out(container.fabric.namespaces.create(principal, body.name)),
    )


@router.get(
    "/namespaces", response_model=ListOf[NamespaceOut], responses=errors(), summary="My namespaces"
)
def list_namespaces(principal: CurrentPrincipal, container: ContainerDep) -> ListOf[NamespaceOut]:
    items = [namespace_out(ns) for ns in container.fabric.namespaces.list(principal)]
    return ListOf[NamespaceOut](items=items)


@router.delete(
    "/namespaces/{ns}",
    status_code=204,
    responses=errors(403, 404, 409),
    summary="Delete a namespace (409 while topics remain unless force=true)",
)
def delete_namespace(
    ns: str,
    request: Request,
    principal: CurrentPrincipal,
    container: ContainerDep,
    force: bool = Query(default=False, description="Delete its topics and grants too"),
) -> Response:
    return respond(
        request,
        principal,
        status=204,
        action=lambda: container.fabric.namespaces.delete(principal, ns, force=force),
    )
